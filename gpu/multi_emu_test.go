package gpu_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/houlsby/adapters/backend"
	cpu "github.com/houlsby/adapters/cpu_fallback"
	"github.com/houlsby/adapters/gpu"
	"github.com/houlsby/adapters/internal/tinybert"
	"github.com/houlsby/adapters/model"
)

// TestMultiMatchesCPU serves three tasks of a tiny BERT (adapters with
// LayerNorms, adapters of another size after the FFN only, head only) in
// one mixed batch through model.Multi on the gpu backend over the
// emulator, and compares every logit with Multi on the CPU backend: the
// grouped kernels under the serving model's real call pattern (segment
// tables per site, in-place adapters, per-run heads), in float32 and bf16
// modes.
func TestMultiMatchesCPU(t *testing.T) {
	dir := t.TempDir()
	_, err := tinybert.Create(dir, tinybert.Sentiment)
	require.NoError(t, err)
	ck, err := model.LoadCheckpoint(dir)
	require.NoError(t, err)
	r := rand.New(rand.NewPCG(3, 4))
	noisy := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(0.3 * r.NormFloat64())
		}
		return v
	}
	C, L := ck.Config.HiddenSize, ck.Config.NumHiddenLayers
	head := func(K int, pooling string) (model.HeadOptions, map[string][]float32) {
		return model.HeadOptions{Kind: model.HeadClassification, NumLabels: K, Pooling: pooling},
			map[string][]float32{model.NameClassifierWeight: noisy(K * C), model.NameClassifierBias: noisy(K)}
	}
	adapters := func(ts map[string][]float32, o *model.AdapterOptions) {
		for _, s := range model.Tensors(ck.Config, true, o, nil) {
			if model.IsAdapter(s.Name) {
				ts[s.Name] = noisy(s.NumElements())
			}
		}
	}
	var specs []model.TaskSpec
	a1 := &model.AdapterOptions{M: 4, Act: backend.ReLU, Attention: true, FFN: true}
	h, ts := head(2, model.PoolingPooler)
	adapters(ts, a1)
	for l := -1; l < L; l++ {
		names := []string{model.NameEmbeddingsLNWeight, model.NameEmbeddingsLNBias}
		if l >= 0 {
			names = []string{model.LayerTensorName(l, model.SuffixAttnLNWeight), model.LayerTensorName(l, model.SuffixOutputLNBias)}
		}
		for _, n := range names {
			ts[n] = noisy(C)
		}
	}
	specs = append(specs, model.TaskSpec{Adapter: a1, Head: h, Tensors: ts})
	a2 := &model.AdapterOptions{M: 6, Act: backend.GELU, FFN: true, Layers: []int{1}}
	h, ts = head(3, model.PoolingMean)
	adapters(ts, a2)
	specs = append(specs, model.TaskSpec{Adapter: a2, Head: h, Tensors: ts})
	h, ts = head(2, model.PoolingCLS)
	specs = append(specs, model.TaskSpec{Head: h, Tensors: ts})

	const B, T = 6, 10
	bt := &model.Batch{B: B, T: T, IDs: make([]int32, B*T), Mask: make([]int32, B*T)}
	for s := 0; s < B; s++ {
		n := 3 + s%(T-2)
		for k := 0; k < n; k++ {
			bt.IDs[s*T+k], bt.Mask[s*T+k] = int32(r.IntN(ck.Config.VocabSize)), 1
		}
	}
	run := func(be backend.Backend) [][]float32 {
		mt, err := model.NewMulti(be, ck, model.MultiOptions{MaxBatch: B, MaxSeq: T})
		require.NoError(t, err)
		defer mt.Free()
		var runs []model.TaskRun
		for k, sp := range specs {
			id, err := mt.AddTask(sp)
			require.NoError(t, err)
			runs = append(runs, model.TaskRun{Task: id, Seqs: []int{2, 3, 1}[k]})
		}
		out, err := mt.Forward(bt, runs)
		require.NoError(t, err)
		var cp [][]float32
		for _, o := range out {
			cp = append(cp, append([]float32(nil), o...))
		}
		return cp
	}
	want := run(cpu.New())
	for _, bf16 := range []bool{false, true} {
		g, err := gpu.New(emuDevice(t), gpu.Options{BF16: bf16})
		require.NoError(t, err)
		got := run(g)
		require.NoError(t, g.Close())
		// f32: fp32 arithmetic in another order, a few ulps of O(1) logits
		// (seen: 1.8e-7); bf16: every activation rounded to 8 bits
		// (u = 2^-8 ≈ 0.004) through 2 layers, pooling and the classifier,
		// about a dozen roundings (seen: 0.014).
		tol := 1e-5
		if bf16 {
			tol = 12.0 / 256
		}
		worst := 0.0
		for s := range want {
			for v := range want[s] {
				worst = math.Max(worst, math.Abs(float64(got[s][v]-want[s][v])))
				require.LessOrEqual(t, math.Abs(float64(got[s][v]-want[s][v])), tol*math.Max(1, math.Abs(float64(want[s][v]))),
					"bf16=%v sequence %d logit %d: gpu %v, cpu %v", bf16, s, v, got[s][v], want[s][v])
			}
		}
		t.Logf("bf16=%v: largest logit difference %.3g", bf16, worst)
	}
}
