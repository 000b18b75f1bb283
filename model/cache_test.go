package model

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/houlsby/adapters/backend"
	cpu "github.com/houlsby/adapters/cpu_fallback"
)

// ForwardFrom with the values CacheValues took is bitwise the full forward:
// the same loss, logits and gradients, with dropout on above the cache point,
// for adapters in the top layer only (cache at layer 1) and for the head
// alone (cache at the head's input), every pooling, padded and packed.
func TestForwardFromCacheIsExact(t *testing.T) {
	cfg := tinyConfig()
	ck := randomCheckpoint(cfg, true, 23)
	top := &AdapterOptions{M: 4, Act: backend.ReLU, Attention: true, FFN: true, Layers: []int{1}, Seed: 3}
	for _, pooling := range []string{PoolingPooler, PoolingCLS, PoolingMean, PoolingCLSDense} {
		for _, tc := range []struct {
			name      string
			adapter   *AdapterOptions
			trainable func(string) bool
			point     int
		}{
			{"top-adapters", top, func(n string) bool { return IsAdapter(n) }, 1},
			{"head", nil, func(n string) bool { return false }, cfg.NumHiddenLayers},
		} {
			for _, packed := range []bool{false, true} {
				name := pooling + "/" + tc.name + map[bool]string{false: "/padded", true: "/packed"}[packed]
				t.Run(name, func(t *testing.T) {
					be := cpu.New() // it packs; NoPacking keeps the padded layout
					m := newTiny(t, be, ck, Options{Adapter: tc.adapter, Trainable: tc.trainable, NoFrozenDropout: true, NoPacking: !packed,
						Head: HeadOptions{Kind: HeadClassification, NumLabels: 3, Pooling: pooling}})
					require.Equal(t, packed, m.Packed())
					randomizeTrainable(t, m, 9)
					k, ok := m.CachePoint()
					require.True(t, ok)
					require.Equal(t, tc.point, k)
					step := func(cached [][]float32) (float32, []float32, []float32) {
						require.NoError(t, m.ZeroGrads())
						var loss float32
						var logits []float32
						var err error
						if cached == nil {
							loss, logits, err = m.Forward(raggedBatch(), true, 77)
						} else {
							loss, logits, err = m.ForwardFrom(raggedBatch(), cached, true, 77)
						}
						require.NoError(t, err)
						logits = append([]float32(nil), logits...)
						require.NoError(t, m.Backward())
						_, grads, _ := m.TrainArena()
						return loss, logits, download(t, be, grads)
					}
					loss0, logits0, grads0 := step(nil)
					vals := make([][]float32, 3)
					require.NoError(t, m.CacheValues(vals))
					for s, v := range vals {
						if k < cfg.NumHiddenLayers || pooling == PoolingMean {
							assert.Len(t, v, []int{6, 2, 4}[s]*cfg.HiddenSize, "sequence %d", s)
						} else {
							assert.Len(t, v, cfg.HiddenSize, "sequence %d", s)
						}
					}
					// Something else in between, as in training.
					_, _, err := m.Forward(tinyBatch(false), true, 5)
					require.NoError(t, err)
					loss1, logits1, grads1 := step(vals)
					assert.Equal(t, loss0, loss1)
					assert.Equal(t, logits0, logits1)
					assert.Equal(t, grads0, grads1)
				})
			}
		}
	}
}

// Without Options.NoFrozenDropout, or with the embeddings training, there is
// no sound cache point and the cache calls refuse.
func TestCachePointNeedsFrozenInputs(t *testing.T) {
	ck := randomCheckpoint(tinyConfig(), true, 23)
	m := newTiny(t, cpu.New(), ck, Options{Trainable: IsAdapter, Adapter: adapterOpts(backend.ReLU)})
	_, ok := m.CachePoint()
	assert.False(t, ok, "cache point without NoFrozenDropout")
	_, _, err := m.ForwardFrom(raggedBatch(), make([][]float32, 3), true, 1)
	require.Error(t, err)
	m2 := newTiny(t, cpu.New(), ck, Options{Trainable: allTrainable, NoFrozenDropout: true})
	_, ok = m2.CachePoint()
	assert.False(t, ok, "cache point with trainable embeddings")
	err = m2.CacheValues(make([][]float32, 3))
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), "cache point"), err.Error())
}

// A sequence's cached values do not depend on where it sat in the batch
// that computed them: a batch of 100 sequences (about 500 rows, more than one GEMM
// k-block) cached in one order and replayed reversed gives bitwise what the
// reversed batch computes from scratch, for every head.
func TestCachedValuesIndependentOfBatchPosition(t *testing.T) {
	cfg := tinyConfig()
	ck := randomCheckpoint(cfg, true, 29)
	const B, T = 100, 8
	r := rand.New(rand.NewPCG(4, 4))
	fwd := &Batch{B: B, T: T, IDs: make([]int32, B*T), Mask: make([]int32, B*T), Labels: make([]int32, B)}
	for s := 0; s < B; s++ {
		n := 2 + r.IntN(T-1)
		for i := 0; i < n; i++ {
			fwd.IDs[s*T+i], fwd.Mask[s*T+i] = int32(r.IntN(cfg.VocabSize)), 1
		}
		fwd.Labels[s] = int32(r.IntN(3))
	}
	rev := &Batch{B: B, T: T}
	for s := B - 1; s >= 0; s-- {
		rev.IDs = append(rev.IDs, fwd.IDs[s*T:(s+1)*T]...)
		rev.Mask = append(rev.Mask, fwd.Mask[s*T:(s+1)*T]...)
		rev.Labels = append(rev.Labels, fwd.Labels[s])
	}
	for _, pooling := range []string{PoolingPooler, PoolingCLS, PoolingMean, PoolingCLSDense} {
		t.Run(pooling, func(t *testing.T) {
			m := newTiny(t, cpu.New(), ck, Options{MaxBatch: B, MaxSeq: T, Trainable: func(string) bool { return false },
				NoFrozenDropout: true, Head: HeadOptions{Kind: HeadClassification, NumLabels: 3, Pooling: pooling}})
			require.True(t, m.Packed())
			_, _, err := m.Forward(fwd, false, 0)
			require.NoError(t, err)
			vals := make([][]float32, B)
			require.NoError(t, m.CacheValues(vals))
			reversed := make([][]float32, B)
			for s := range vals {
				reversed[B-1-s] = vals[s]
			}
			_, want, err := m.Forward(rev, false, 0)
			require.NoError(t, err)
			want = append([]float32(nil), want...)
			_, got, err := m.ForwardFrom(rev, reversed, false, 0)
			require.NoError(t, err)
			assert.Equal(t, want, got)
		})
	}
}
