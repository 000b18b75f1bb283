package model

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/houlsby/adapters/backend"
	cpu "github.com/houlsby/adapters/cpu_fallback"
)

// multiTaskCase is one task as its own Model would train it.
type multiTaskCase struct {
	name      string
	adapter   *AdapterOptions
	trainable func(string) bool
	head      HeadOptions
}

func multiCases() []multiTaskCase {
	withLN := func(n string) bool { return IsAdapter(n) || IsLayerNorm(n) }
	onlyAd := func(n string) bool { return IsAdapter(n) }
	none := func(string) bool { return false }
	return []multiTaskCase{
		{"adapters+ln relu", &AdapterOptions{M: 4, Act: backend.ReLU, Attention: true, FFN: true}, withLN, classification(3)},
		{"ffn adapter layer 1 gelu", &AdapterOptions{M: 6, Act: backend.GELU, FFN: true, Layers: []int{1}}, onlyAd, HeadOptions{Kind: HeadClassification, NumLabels: 2, Pooling: PoolingCLS}},
		{"layernorm regression", nil, IsLayerNorm, HeadOptions{Kind: HeadRegression, Pooling: PoolingMean}},
		{"head only", nil, none, HeadOptions{Kind: HeadClassification, NumLabels: 2}},
		{"adapters relu again", &AdapterOptions{M: 4, Act: backend.ReLU, Attention: true, FFN: true}, onlyAd, HeadOptions{Kind: HeadClassification, NumLabels: 4, Pooling: PoolingMean}},
		{"adapters+ln relu third (stack grows)", &AdapterOptions{M: 4, Act: backend.ReLU, Attention: true, FFN: true}, withLN, classification(2)},
		{"layernorm again", nil, IsLayerNorm, classification(2)},
		{"layernorm, third", nil, IsLayerNorm, HeadOptions{Kind: HeadClassification, NumLabels: 2, Pooling: PoolingCLS}},
		{"layernorm, fourth (LayerNorm slots grow)", nil, IsLayerNorm, classification(3)},
	}
}

// singleModel builds c's own model with every trainable tensor perturbed
// (a trained task) and returns it with its TaskSpec.
func singleModel(t *testing.T, b backend.Backend, ck *Checkpoint, c multiTaskCase, seed uint64, noPacking bool) (*Model, TaskSpec) {
	t.Helper()
	m := newTiny(t, b, ck, Options{MaxBatch: 8, MaxSeq: 8, Adapter: c.adapter, Trainable: c.trainable, Head: c.head, Seed: seed, NoPacking: noPacking})
	r := rand.New(rand.NewPCG(seed, 3))
	spec := TaskSpec{Adapter: c.adapter, Head: c.head, Tensors: map[string][]float32{}}
	for _, p := range m.TrainableParams() {
		v := download(t, b, p.T)
		for i := range v {
			v[i] += float32(0.3 * r.NormFloat64())
		}
		require.NoError(t, b.Upload(p.T, v))
		spec.Tensors[p.Name] = v
	}
	return m, spec
}

// mixedBatch returns B sequences of lengths 1..T with ids below vocab.
func mixedBatch(r *rand.Rand, B, T, vocab int) *Batch {
	bt := &Batch{B: B, T: T, IDs: make([]int32, B*T), TypeIDs: make([]int32, B*T), Mask: make([]int32, B*T)}
	for s := 0; s < B; s++ {
		n := 1 + r.IntN(T)
		for k := 0; k < n; k++ {
			bt.IDs[s*T+k], bt.Mask[s*T+k] = int32(r.IntN(vocab)), 1
			if k > n/2 {
				bt.TypeIDs[s*T+k] = 1
			}
		}
	}
	return bt
}

// sub returns sequences [s0, s1) of bt, trimmed to their longest.
func sub(bt *Batch, s0, s1 int) *Batch {
	T := 0
	for s := s0; s < s1; s++ {
		for k := 0; k < bt.T; k++ {
			if bt.Mask[s*bt.T+k] == 1 {
				T = max(T, k+1)
			}
		}
	}
	out := &Batch{B: s1 - s0, T: T}
	for s := s0; s < s1; s++ {
		out.IDs = append(out.IDs, bt.IDs[s*bt.T:s*bt.T+T]...)
		out.TypeIDs = append(out.TypeIDs, bt.TypeIDs[s*bt.T:s*bt.T+T]...)
		out.Mask = append(out.Mask, bt.Mask[s*bt.T:s*bt.T+T]...)
	}
	return out
}

// TestMultiMatchesSingle: tasks of every kind that shares a backbone (two
// adapter stacks, adapters in some layers or positions only, LayerNorms,
// head only; pooler, cls and mean pooling; regression), in mixed batches,
// get what each task's own model computes for its sequences alone: bit
// for bit on the CPU in the padded layout, within float32 rounding packed.
// Stacks grow, tasks leave and their slots are reused.
func TestMultiMatchesSingle(t *testing.T) {
	cfg := tinyConfig()
	ck := randomCheckpoint(cfg, true, 31)
	for _, layout := range []string{"padded", "packed"} {
		t.Run(layout, func(t *testing.T) {
			// The CPU backend packs (it has backend.PackedAttention);
			// NoPacking keeps it padded, where Multi is bitwise its tasks'
			// own models.
			be := cpu.New()
			padded, tol := layout == "padded", 1e-5
			if padded {
				tol = 0
			}
			mt, err := NewMulti(be, ck, MultiOptions{MaxBatch: 8, MaxSeq: 8, NoPacking: padded})
			require.NoError(t, err)
			defer mt.Free()
			require.Equal(t, layout == "packed", mt.Backbone().Packed())
			var singles []*Model
			var ids []int
			for k, c := range multiCases() {
				m, spec := singleModel(t, be, ck, c, uint64(100+k), padded)
				id, err := mt.AddTask(spec)
				require.NoError(t, err, c.name)
				singles, ids = append(singles, m), append(ids, id)
				assert.Positive(t, mt.TaskBytes(id))
			}
			check := func(live []int, seed uint64) {
				r := rand.New(rand.NewPCG(seed, 1))
				for rep := 0; rep < 4; rep++ {
					var runs []TaskRun
					var which []int
					B := 0
					for B < 8 {
						k := live[r.IntN(len(live))]
						n := min(1+r.IntN(3), 8-B)
						runs, which = append(runs, TaskRun{Task: ids[k], Seqs: n}), append(which, k)
						B += n
					}
					bt := mixedBatch(r, B, 8, cfg.VocabSize)
					got, err := mt.Forward(bt, runs)
					require.NoError(t, err)
					s := 0
					for j, run := range runs {
						_, want, err := singles[which[j]].Forward(sub(bt, s, s+run.Seqs), false, 0)
						require.NoError(t, err)
						V := singles[which[j]].NumLabels()
						for q := 0; q < run.Seqs; q++ {
							for v := 0; v < V; v++ {
								w, g := want[q*V+v], got[s+q][v]
								if tol == 0 {
									require.Equal(t, math.Float32bits(w), math.Float32bits(g), "%s seq %d logit %d: alone %v, mixed %v", multiCases()[which[j]].name, q, v, w, g)
								} else {
									require.InDelta(t, w, g, tol*math.Max(1, math.Abs(float64(w))), multiCases()[which[j]].name)
								}
							}
						}
						s += run.Seqs
					}
				}
			}
			all := make([]int, len(ids))
			for k := range all {
				all[k] = k
			}
			check(all, 1)
			// Tasks leave; the others are unaffected; a new task reuses a slot.
			require.NoError(t, mt.RemoveTask(ids[0]))
			require.NoError(t, mt.RemoveTask(ids[2]))
			require.Error(t, mt.RemoveTask(ids[0]))
			_, err = mt.Forward(mixedBatch(rand.New(rand.NewPCG(1, 1)), 1, 4, cfg.VocabSize), []TaskRun{{Task: ids[0], Seqs: 1}})
			require.Error(t, err, "a removed task")
			m, spec := singleModel(t, be, ck, multiCases()[0], 999, padded)
			id, err := mt.AddTask(spec)
			require.NoError(t, err)
			singles[0], ids[0] = m, id
			check([]int{0, 1, 3, 4, 5, 6, 7, 8}, 2)
			assert.Positive(t, mt.BackboneBytes())
		})
	}
}

func TestMultiRefusesBackboneChanges(t *testing.T) {
	ck := randomCheckpoint(tinyConfig(), false, 3)
	mt, err := NewMulti(cpu.New(), ck, MultiOptions{MaxBatch: 2, MaxSeq: 4})
	require.NoError(t, err)
	defer mt.Free()
	C := 16
	head := map[string][]float32{NameClassifierWeight: make([]float32, 2*C), NameClassifierBias: make([]float32, 2)}
	spec := func(extra map[string][]float32, h HeadOptions) TaskSpec {
		ts := map[string][]float32{}
		for k, v := range head {
			ts[k] = v
		}
		for k, v := range extra {
			ts[k] = v
		}
		return TaskSpec{Head: h, Tensors: ts}
	}
	cls := HeadOptions{Kind: HeadClassification, NumLabels: 2, Pooling: PoolingCLS}
	for _, c := range []struct {
		name string
		spec TaskSpec
		want string
	}{
		{"attention weight", spec(map[string][]float32{LayerTensorName(0, SuffixQueryWeight): make([]float32, C*C)}, cls), "model of its own"},
		{"bias (bitfit)", spec(map[string][]float32{LayerTensorName(1, SuffixOutputBias): make([]float32, C)}, cls), "model of its own"},
		{"wrong shape", spec(map[string][]float32{NameEmbeddingsLNWeight: make([]float32, 3)}, cls), "values"},
		{"no classifier", TaskSpec{Head: cls, Tensors: map[string][]float32{}}, "classifier"},
		{"pooler without one", spec(nil, HeadOptions{Kind: HeadClassification, NumLabels: 2}), "pooler"},
		{"adapter tensors without options", spec(map[string][]float32{AdapterPrefix(0, true) + AdapterUpBias: make([]float32, C)}, cls), "model of its own"},
		{"missing adapter tensors", TaskSpec{Adapter: &AdapterOptions{M: 2, Act: backend.ReLU, FFN: true}, Head: cls, Tensors: head}, "lacks"},
	} {
		_, err := mt.AddTask(c.spec)
		require.Error(t, err, c.name)
		assert.Contains(t, err.Error(), c.want, c.name)
	}
	// A pooler of its own (the checkpoint has none) is fine.
	own := spec(map[string][]float32{NamePoolerWeight: make([]float32, C*C), NamePoolerBias: make([]float32, C)}, HeadOptions{Kind: HeadClassification, NumLabels: 2})
	_, err = mt.AddTask(own)
	require.NoError(t, err)
}

// TestMultiOwnPooler: on a checkpoint without a pooler, a task whose head
// reads the pooler brings its own (created and trained with it), and a
// cls-pooled task shares the pass: both as their own models compute.
func TestMultiOwnPooler(t *testing.T) {
	cfg := tinyConfig()
	ck := randomCheckpoint(cfg, false, 41)
	be := cpu.New()
	mt, err := NewMulti(be, ck, MultiOptions{MaxBatch: 8, MaxSeq: 8})
	require.NoError(t, err)
	defer mt.Free()
	cases := []multiTaskCase{
		{"created pooler", &AdapterOptions{M: 3, Act: backend.Swish, Attention: true}, IsAdapter, classification(2)},
		{"cls", nil, IsLayerNorm, HeadOptions{Kind: HeadClassification, NumLabels: 3, Pooling: PoolingCLS}},
	}
	var singles []*Model
	var runs []TaskRun
	for k, c := range cases {
		m, spec := singleModel(t, be, ck, c, uint64(7+k), false)
		if k == 0 {
			require.Contains(t, spec.Tensors, NamePoolerWeight, "the created pooler trains")
		}
		id, err := mt.AddTask(spec)
		require.NoError(t, err)
		singles = append(singles, m)
		runs = append(runs, TaskRun{Task: id, Seqs: 3})
	}
	bt := mixedBatch(rand.New(rand.NewPCG(5, 5)), 6, 8, cfg.VocabSize)
	got, err := mt.Forward(bt, runs)
	require.NoError(t, err)
	for k, m := range singles {
		_, want, err := m.Forward(sub(bt, 3*k, 3*k+3), false, 0)
		require.NoError(t, err)
		V := m.NumLabels()
		for q := 0; q < 3; q++ {
			for v := 0; v < V; v++ {
				require.Equal(t, math.Float32bits(want[q*V+v]), math.Float32bits(got[3*k+q][v]), cases[k].name)
			}
		}
	}
}
