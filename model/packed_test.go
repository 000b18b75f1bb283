package model

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/houlsby/adapters/backend"
	cpu "github.com/houlsby/adapters/cpu_fallback"
)

// unpackingCPU gives the CPU backend a backend.PackedAttention built from its
// padded attention: unpack to (S, maxT), run the fused padded kernel, pack
// the rows back. The backward recomputes the probabilities by running the
// forward again (lse is only filled with zeros). Slow, but exactly the
// padded computation, so a model on it must match the padded model: the
// test checks the model's packed layout (embeddings, rows, pooling, head,
// backward) independently of any real packed kernel.
type unpackingCPU struct{ *cpu.Backend }

var _ backend.PackedAttention = unpackingCPU{}

// unpack returns the padded copy of packed rows (N, w) as (S·maxT, w) and
// the key mask.
func (u unpackingCPU) unpack(x backend.Tensor, starts []int32, maxT, w int) ([]float32, []int32, error) {
	S := len(starts) - 1
	host := make([]float32, x.Len())
	if err := u.Download(host, x); err != nil {
		return nil, nil, err
	}
	pad := make([]float32, S*maxT*w)
	mask := make([]int32, S*maxT)
	for s := 0; s < S; s++ {
		for i, r := 0, int(starts[s]); r < int(starts[s+1]); i, r = i+1, r+1 {
			copy(pad[(s*maxT+i)*w:(s*maxT+i+1)*w], host[r*w:(r+1)*w])
			mask[s*maxT+i] = 1
		}
	}
	return pad, mask, nil
}

// pack writes the real rows of a padded (S·maxT, w) buffer into x (N, w).
func (u unpackingCPU) pack(x backend.Tensor, pad []float32, starts []int32, maxT, w int) error {
	host := make([]float32, x.Len())
	if err := u.Download(host, x); err != nil {
		return err
	}
	for s := 0; s+1 < len(starts); s++ {
		for i, r := 0, int(starts[s]); r < int(starts[s+1]); i, r = i+1, r+1 {
			copy(host[r*w:(r+1)*w], pad[(s*maxT+i)*w:(s*maxT+i+1)*w])
		}
	}
	return u.Upload(x, host)
}

func (u unpackingCPU) tensor(dt backend.DType, v []float32, shape ...int) backend.Tensor {
	t, err := u.Alloc(dt, shape...)
	if err != nil {
		panic(err)
	}
	if err := u.Upload(t, v); err != nil {
		panic(err)
	}
	return t
}

// forward runs the padded attention on the unpacked qkv; it returns the
// padded tensors the backward needs too.
func (u unpackingCPU) forward(qkv, starts backend.Tensor, S, maxT, NH, HS int, p float32, seed uint64) (outP, probs, qkvP, maskT backend.Tensor, st []int32, err error) {
	C := NH * HS
	st = make([]int32, S+1)
	if err = u.DownloadInt32(st, starts); err != nil {
		return
	}
	q, mask, err := u.unpack(qkv, st, maxT, 3*C)
	if err != nil {
		return
	}
	qkvP = u.tensor(backend.F32, q, S*maxT, 3*C)
	maskT, _ = u.Alloc(backend.I32, S*maxT)
	if err = u.UploadInt32(maskT, mask); err != nil {
		return
	}
	outP, _ = u.Alloc(backend.F32, S*maxT, C)
	probs, _ = u.Alloc(backend.F32, S, NH, maxT, maxT)
	err = u.AttentionForward(outP, probs, qkvP, maskT, S, maxT, NH, HS, p, seed)
	return
}

func (u unpackingCPU) PackedAttentionForward(out, lse, qkv, starts backend.Tensor, S, maxT, NH, HS int, p float32, seed uint64) error {
	outP, _, _, _, st, err := u.forward(qkv, starts, S, maxT, NH, HS, p, seed)
	if err != nil {
		return err
	}
	host := make([]float32, outP.Len())
	if err := u.Download(host, outP); err != nil {
		return err
	}
	if err := u.Zero(lse); err != nil {
		return err
	}
	return u.pack(out, host, st, maxT, NH*HS)
}

func (u unpackingCPU) PackedAttentionBackward(dqkv, dout, qkv, out, lse, starts backend.Tensor, S, maxT, NH, HS int, p float32, seed uint64) error {
	_, probs, qkvP, maskT, st, err := u.forward(qkv, starts, S, maxT, NH, HS, p, seed)
	if err != nil {
		return err
	}
	C := NH * HS
	d, _, err := u.unpack(dout, st, maxT, C)
	if err != nil {
		return err
	}
	dP := u.tensor(backend.F32, d, S*maxT, C)
	dqkvP, _ := u.Alloc(backend.F32, S*maxT, 3*C)
	if err := u.AttentionBackward(dqkvP, dP, qkvP, probs, maskT, S, maxT, NH, HS, p, seed); err != nil {
		return err
	}
	host := make([]float32, dqkvP.Len())
	if err := u.Download(host, dqkvP); err != nil {
		return err
	}
	return u.pack(dqkv, host, st, maxT, 3*C)
}

// raggedBatch is B=3, T=6 with lengths 6, 2 and 4 (prefix masks).
func raggedBatch() *Batch {
	return &Batch{
		B: 3, T: 6,
		IDs:     []int32{2, 7, 11, 3, 19, 4, 2, 5, 0, 0, 0, 0, 2, 9, 13, 3, 0, 0},
		TypeIDs: []int32{0, 0, 0, 1, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0},
		Mask:    []int32{1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0},
		Labels:  []int32{2, 0, 1},
	}
}

// The packed layout computes what the padded one does: the same loss,
// logits, real-token hidden states and gradients of every trainable tensor,
// for each pooling, with adapters, LayerNorms and the pooler training and
// with everything training. Dropout is off: the hidden-state dropout masks
// of the two layouts are drawn over different element indices.
func TestPackedMatchesPadded(t *testing.T) {
	cfg := tinyConfig()
	ck := randomCheckpoint(cfg, true, 21)
	for _, pooling := range []string{PoolingPooler, PoolingCLS, PoolingMean, PoolingCLSDense} {
		for _, tc := range []struct {
			name      string
			trainable func(string) bool
		}{{"adapters", func(n string) bool { return IsAdapter(n) || IsLayerNorm(n) || IsPooler(n) }}, {"all", allTrainable}} {
			t.Run(pooling+"/"+tc.name, func(t *testing.T) {
				run := func(b backend.Backend, noPacking bool) (float32, []float32, []float32, []float32) {
					m := newTiny(t, b, ck, Options{Adapter: adapterOpts(backend.GELU), Trainable: tc.trainable, NoPacking: noPacking,
						Head: HeadOptions{Kind: HeadClassification, NumLabels: 3, Pooling: pooling}})
					require.Equal(t, !noPacking, m.Packed())
					randomizeTrainable(t, m, 5)
					require.NoError(t, m.ZeroGrads())
					loss, logits, err := m.Forward(raggedBatch(), false, 0)
					require.NoError(t, err)
					logits = append([]float32(nil), logits...)
					hidden := hiddenHost(t, m)
					require.NoError(t, m.Backward())
					_, grads, _ := m.TrainArena()
					return loss, logits, hidden, download(t, b, grads)
				}
				be := cpu.New()
				loss0, logits0, hidden0, grads0 := run(be, true)
				// The packed layout over the padded kernel (unpackingCPU),
				// then over the CPU's own packed attention (online softmax).
				for _, packed := range []backend.Backend{unpackingCPU{be}, be} {
					loss1, logits1, hidden1, grads1 := run(packed, false)
					// The pooling GEMM's summation (one GEMM over all packed
					// rows instead of one per sequence), the rows' GEMM
					// tiling and the online softmax's rescaling: float32
					// roundings of O(1) values, a few ulps.
					const tol = 1e-5
					require.InDelta(t, loss0, loss1, tol, "loss")
					requireClose(t, logits0, logits1, tol, "logits")
					bt := raggedBatch()
					for i, m := range bt.Mask {
						if m == 0 {
							continue
						}
						C := cfg.HiddenSize
						requireClose(t, hidden0[i*C:(i+1)*C], hidden1[i*C:(i+1)*C], tol, "hidden")
					}
					requireClose(t, grads0, grads1, tol, "gradients")
				}
			})
		}
	}
}

func requireClose(t *testing.T, want, got []float32, tol float64, what string) {
	t.Helper()
	require.Equal(t, len(want), len(got), what)
	for i := range want {
		if d := math.Abs(float64(want[i]) - float64(got[i])); d > tol*math.Max(1, math.Abs(float64(want[i]))) {
			t.Fatalf("%s[%d]: padded %v, packed %v (|diff| %.3g)", what, i, want[i], got[i], d)
		}
	}
}
