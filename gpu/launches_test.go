package gpu_test

// Launch overhead of one training step (trainer.Learner.Step: forward with
// dropout, loss, backward, gradient norm, clipping, AdamW): how many
// kernels it launches and how often it waits for the device, counted by
// gpu.CountingDevice, and the host time the Go side spends per step.
// docs/gpu-status.md ("Launch overhead") records the numbers.
//
//   - TestLaunchesPerStep counts on the emulator (the launchers run the
//     real kernels, so the counted path is the computing one) for a small
//     2-layer BERT, and bounds the counts so they cannot grow unnoticed.
//   - BenchmarkStepHost counts on nullDevice (host memory, kernels not
//     run) at all-MiniLM-L6-v2's shape (6 layers, C = 384, F = 1536,
//     m = 64, B = 16, T = 128): ns/op is then the Go side's host time per
//     step alone; a GPU adds its driver's launch cost per launch (measured
//     by cuda.test's BenchmarkLaunch on a GPU machine).

import (
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/houlsby/adapters/adapter"
	"github.com/houlsby/adapters/gpu"
	"github.com/houlsby/adapters/model"
	"github.com/houlsby/adapters/trainer"
)

// shape is a BERT encoder's size.
type shape struct{ L, C, NH, F, V, P int }

// randomCheckpoint is a random BERT of shape s with a pooler: the values
// are small uniform numbers, enough for shapes, counts and comparisons.
func randomCheckpoint(s shape, seed int64) *model.Checkpoint {
	cfg := model.DefaultConfig()
	cfg.HiddenSize, cfg.NumHiddenLayers, cfg.NumAttentionHeads, cfg.IntermediateSize = s.C, s.L, s.NH, s.F
	cfg.VocabSize, cfg.MaxPositionEmbeddings, cfg.TypeVocabSize = s.V, s.P, 2
	r := rand.New(rand.NewSource(seed))
	ck := &model.Checkpoint{Config: cfg, Tensors: map[string]model.HostTensor{}, HasPooler: true}
	for _, spec := range model.ExpectedTensors(cfg, true) {
		v := make([]float32, spec.NumElements())
		for i := range v {
			v[i] = float32(r.Float64()-0.5) * 0.4
		}
		ck.Tensors[spec.Name] = model.HostTensor{Shape: spec.Shape, Data: v}
	}
	return ck
}

// stepLearner is the learner of `train-gpu bench`: Houlsby adapters of
// bottleneck m with LayerNorms and a two-class pooler head, on be.
func stepLearner(t testing.TB, be *gpu.Backend, ck *model.Checkpoint, m, B, T int) *trainer.Learner {
	t.Helper()
	a := adapter.Default()
	a.Bottleneck = m
	f := adapter.NewFile(ck, adapter.Strategy{Name: adapter.StratAdapters, TrainLayerNorm: true}, &a,
		adapter.Head{Kind: adapter.HeadPooler, NumLabels: 2}, []string{"0", "1"})
	mod, err := trainer.NewModel(be, ck, f, B, T, 1)
	require.NoError(t, err)
	t.Cleanup(mod.Free)
	l, err := trainer.NewLearner(mod, 0.01)
	require.NoError(t, err)
	t.Cleanup(l.Free)
	return l
}

// stepBatch is a batch of random ids with the last quarter of every other
// row padded, and random labels.
func stepBatch(B, T, V int, seed int64) *model.Batch {
	r := rand.New(rand.NewSource(seed))
	b := &model.Batch{B: B, T: T, IDs: make([]int32, B*T), Mask: make([]int32, B*T), Labels: make([]int32, B)}
	for i := range b.IDs {
		b.IDs[i] = int32(r.Intn(V))
		if row, col := i/T, i%T; row%2 == 0 || col < T*3/4 {
			b.Mask[i] = 1
		}
	}
	for i := range b.Labels {
		b.Labels[i] = int32(r.Intn(2))
	}
	return b
}

// stepCounts runs warm steps, then measured ones, and returns the counts
// per measured step and the mean host time of one.
func stepCounts(t testing.TB, l *trainer.Learner, dev *gpu.CountingDevice, b *model.Batch, warm, measured int) (gpu.DeviceCounts, time.Duration) {
	t.Helper()
	step := func(s int) {
		_, err := l.Step(b, trainer.StepOptions{LR: 1e-3, ClipNorm: 1, Dropout: true, Seed: uint64(s)})
		require.NoError(t, err)
		require.NoError(t, l.Model.Backend().Sync())
	}
	for s := 0; s < warm; s++ {
		step(s)
	}
	before := dev.Counts.Clone()
	t0 := time.Now()
	for s := 0; s < measured; s++ {
		step(warm + s)
	}
	el := time.Since(t0) / time.Duration(measured)
	d := dev.Counts.Sub(before)
	per := func(n int) int { return n / measured }
	out := gpu.DeviceCounts{Launches: per(d.Launches), HtoD: per(d.HtoD), DtoH: per(d.DtoH), DtoD: per(d.DtoD),
		Memset0: per(d.Memset0), Sync: per(d.Sync), Alloc: per(d.Alloc), Free: per(d.Free), Kernels: map[string]int{}}
	for k, n := range d.Kernels {
		out.Kernels[k] = n / measured
	}
	return out, el
}

// Budgets of one training step of the 2-layer model below (B=3, T=9,
// dropout on, adapters m=5 after attention and FFN, LayerNorms and head
// trained); docs/gpu-status.md has the breakdown.
const (
	maxLaunchesPerStep2L = 87 // kernel launches (110 before the fused kernels; 85 before the FFN recompute, model.Options.KeepFFNActivations, added 1 GEMM a layer)
	maxMemsetsPerStep    = 2  // zeroings (10 before launcher scratch went unzeroed)
	maxDtoHPerStep       = 3  // waits: loss, logits, gradient norm (7 when indices were read back)
)

// TestLaunchesPerStep counts a steady-state training step on the emulator
// in both storage modes and checks the budgets.
func TestLaunchesPerStep(t *testing.T) {
	for _, bf16 := range []bool{false, true} {
		t.Run(fmt.Sprint("bf16=", bf16), func(t *testing.T) {
			dev := gpu.NewCountingDevice(emuDevice(t))
			be, err := gpu.New(dev, gpu.Options{BF16: bf16})
			require.NoError(t, err)
			t.Cleanup(func() { _ = be.Close() })
			s := shape{L: 2, C: 24, NH: 4, F: 40, V: 50, P: 16}
			l := stepLearner(t, be, randomCheckpoint(s, 1), 5, 3, 9)
			c, _ := stepCounts(t, l, dev, stepBatch(3, 9, s.V, 2), 2, 2)
			t.Logf("per step: %d launches, %d DtoH, %d HtoD, %d memsets, %d DtoD, %d Sync, %d Alloc; by kernel: %v",
				c.Launches, c.DtoH, c.HtoD, c.Memset0, c.DtoD, c.Sync, c.Alloc, c.Kernels)
			assert.LessOrEqual(t, c.Launches, maxLaunchesPerStep2L, "kernel launches per step")
			assert.LessOrEqual(t, c.DtoH, maxDtoHPerStep, "device-to-host copies (waits) per step")
			assert.LessOrEqual(t, c.Memset0, maxMemsetsPerStep, "zeroings per step")
			assert.Zero(t, c.Alloc, "device allocations in a steady-state step")
		})
	}
}

// BenchmarkStepHost reports, per training step at all-MiniLM-L6-v2's shape
// on nullDevice: launches/step, dtoh/step and the host time (ns/op), and
// with graphs=true (Options.Graphs over gpu.ReplayGraphs) submissions/step,
// the graph launches plus the operations still issued one by one: what a
// GPU's driver would see per step.
func BenchmarkStepHost(b *testing.B) {
	for _, graphs := range []bool{false, true} {
		for _, bf16 := range []bool{false, true} {
			b.Run(fmt.Sprintf("graphs=%v/bf16=%v", graphs, bf16), func(b *testing.B) {
				dev := gpu.NewCountingDevice(newNullDevice())
				var d gpu.Device = dev
				if graphs {
					d = gpu.ReplayGraphs(dev)
				}
				be, err := gpu.New(d, gpu.Options{BF16: bf16, Graphs: graphs})
				require.NoError(b, err)
				b.Cleanup(func() { _ = be.Close() })
				s := shape{L: 6, C: 384, NH: 12, F: 1536, V: 1000, P: 512}
				const B, T = 16, 128
				l := stepLearner(b, be, randomCheckpoint(s, 1), 64, B, T)
				batch := stepBatch(B, T, s.V, 2)
				c, _ := stepCounts(b, l, dev, batch, 3, 1)
				g0 := be.GraphStats()
				b.ResetTimer()
				_, el := stepCounts(b, l, dev, batch, 0, b.N)
				b.StopTimer()
				g1 := be.GraphStats()
				b.ReportMetric(float64(c.Launches), "launches/step")
				b.ReportMetric(float64(c.DtoH), "dtoh/step")
				b.ReportMetric(float64(c.Memset0), "memsets/step")
				b.ReportMetric(float64(el.Nanoseconds())/1e3/float64(c.Launches), "host-us/launch")
				if graphs {
					b.ReportMetric(float64((g1.Replays-g0.Replays)+(g1.DirectOps-g0.DirectOps))/float64(b.N), "submissions/step")
					b.ReportMetric(float64(g1.PatchedOps-g0.PatchedOps)/float64(b.N), "patched/step")
				}
			})
		}
	}
}
