package gpu_test

// Graph mode (Options.Graphs, graph.go) on the emulator: the recorder
// captures the training step's segments, patches the arguments that change
// from step to step, and replays them through gpu.ReplayGraphs, which runs
// the stored operations for real; the results must be those of direct
// launches, bit for bit.

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/houlsby/adapters/backend"
	"github.com/houlsby/adapters/gpu"
	"github.com/houlsby/adapters/trainer"
)

// TestGraphsMatchDirect trains the same small model for 8 steps (dropout on,
// clipping, AdamW; batch shapes alternating, as a last batch does) with and
// without graphs, and compares every step's loss and gradient norm and the
// final trainable weights bit for bit.
func TestGraphsMatchDirect(t *testing.T) {
	for _, bf16 := range []bool{false, true} {
		t.Run(fmt.Sprint("bf16=", bf16), func(t *testing.T) {
			s := shape{L: 2, C: 24, NH: 4, F: 40, V: 50, P: 16}
			ck := randomCheckpoint(s, 1)
			type run struct {
				losses, norms []float64
				params        []float32
				stats         gpu.GraphStats
			}
			train := func(graphs bool) run {
				var dev gpu.Device = emuDevice(t)
				if graphs {
					dev = gpu.ReplayGraphs(dev)
				}
				be, err := gpu.New(dev, gpu.Options{BF16: bf16, Graphs: graphs})
				require.NoError(t, err)
				t.Cleanup(func() { assert.NoError(t, be.Close()) })
				l := stepLearner(t, be, ck, 5, 3, 9)
				var r run
				for step := 0; step < 8; step++ {
					b := stepBatch(3, 9, s.V, int64(step%2))
					if step%2 == 1 {
						b = stepBatch(2, 6, s.V, 7)
					}
					res, err := l.Step(b, trainer.StepOptions{LR: 1e-2, ClipNorm: 0.5, Dropout: true, Seed: uint64(100 + step)})
					require.NoError(t, err, "step %d", step)
					r.losses = append(r.losses, float64(res.Loss))
					r.norms = append(r.norms, res.GradNorm)
				}
				params, _, n := l.Model.TrainArena()
				r.params = make([]float32, n)
				v, err := be.View(params, 0, n)
				require.NoError(t, err)
				require.NoError(t, be.Download(r.params, v))
				r.stats = be.GraphStats()
				return r
			}
			direct, graphs := train(false), train(true)
			assert.Equal(t, direct.losses, graphs.losses, "losses")
			assert.Equal(t, direct.norms, graphs.norms, "gradient norms")
			require.Equal(t, len(direct.params), len(graphs.params))
			for i := range direct.params {
				if math.Float32bits(direct.params[i]) != math.Float32bits(graphs.params[i]) {
					t.Fatalf("trainable weight %d: %v direct, %v with graphs", i, direct.params[i], graphs.params[i])
				}
			}
			st := graphs.stats
			t.Logf("graph mode over 8 steps: %+v", st)
			assert.Positive(t, st.Captured, "graphs captured")
			assert.Greater(t, st.Replays, st.Captured, "graphs replayed after their capture")
			assert.Positive(t, st.PatchedOps, "launch arguments patched (the dropout seeds change every step)")
			assert.Zero(t, direct.stats, "no graph statistics without graphs")
		})
	}
}

// TestGraphSubmissionsPerStep counts what a steady-state step submits in
// graph mode: graph launches plus operations issued one by one, against the
// launches of direct mode (TestLaunchesPerStep).
func TestGraphSubmissionsPerStep(t *testing.T) {
	s := shape{L: 2, C: 24, NH: 4, F: 40, V: 50, P: 16}
	be, err := gpu.New(gpu.ReplayGraphs(emuDevice(t)), gpu.Options{Graphs: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = be.Close() })
	l := stepLearner(t, be, randomCheckpoint(s, 1), 5, 3, 9)
	b := stepBatch(3, 9, s.V, 2)
	step := func(i int) {
		_, err := l.Step(b, trainer.StepOptions{LR: 1e-3, ClipNorm: 1, Dropout: true, Seed: uint64(i)})
		require.NoError(t, err)
		require.NoError(t, be.Sync())
	}
	for i := 0; i < 3; i++ { // seen once, captured, replayed
		step(i)
	}
	before := be.GraphStats()
	const n = 4
	for i := 0; i < n; i++ {
		step(10 + i)
	}
	after := be.GraphStats()
	replays, direct := (after.Replays-before.Replays)/n, (after.DirectOps-before.DirectOps)/n
	inGraphs, patched := (after.GraphOpsRun-before.GraphOpsRun)/n, (after.PatchedOps-before.PatchedOps)/n
	t.Logf("per steady-state step: %d graph launches holding %d operations, %d operations issued directly, %d launches patched",
		replays, inGraphs, direct, patched)
	assert.Zero(t, after.Captured-before.Captured, "no capture in the steady state")
	assert.LessOrEqual(t, replays+direct, 12, "submissions per step")
	assert.GreaterOrEqual(t, inGraphs, 70, "most of the step's launches run inside graphs")
}

// The recorder's rules: short segments and first-seen structures are issued
// directly, the second occurrence is captured, changed arguments are
// patched, a device without graphs is refused, a failing queued operation
// is reported at the flush.
func TestGraphRecorder(t *testing.T) {
	_, err := gpu.New(newNullDevice(), gpu.Options{Graphs: true})
	assert.ErrorContains(t, err, "Options.Graphs needs a GraphDevice")

	dev := &flakyDevice{Device: newNullDevice()}
	be, err := gpu.New(gpu.ReplayGraphs(dev), gpu.Options{Graphs: true})
	require.NoError(t, err)
	defer be.Close()
	y, err := be.Alloc(backend.F32, 16)
	require.NoError(t, err)
	run := func(scale float32, n int) {
		for i := 0; i < n; i++ {
			require.NoError(t, be.Scale(y, scale, 16))
		}
		require.NoError(t, be.Sync())
	}
	run(2, 3)
	assert.Zero(t, be.GraphStats().Segments, "Alloc's zeroing and 3 launches: too short to graph")
	assert.Equal(t, 4, be.GraphStats().LastSegments)
	run(2, 10)
	st := be.GraphStats()
	assert.Equal(t, 1, st.Segments)
	assert.Zero(t, st.Captured, "first occurrence: direct")
	run(2, 10)
	st = be.GraphStats()
	assert.Equal(t, 1, st.Captured, "second occurrence: captured")
	assert.Equal(t, 1, st.Replays)
	run(3, 10)
	st = be.GraphStats()
	assert.Equal(t, 2, st.Replays)
	assert.Equal(t, 10, st.PatchedOps, "the ten launches' alpha changed")
	run(3, 10)
	assert.Equal(t, 10, be.GraphStats().PatchedOps, "nothing changed: nothing patched")

	dev.fail = errors.New("injected launch failure")
	for i := 0; i < 10; i++ {
		require.NoError(t, be.Scale(y, 3, 16), "queued: no error yet")
	}
	err = be.Sync()
	assert.ErrorIs(t, err, dev.fail)
	assert.ErrorContains(t, err, "launching a graph of 10 operations (scale_f32 ... scale_f32)")
	dev.fail = nil
	require.NoError(t, be.Sync(), "the failed segment is dropped")
}

// flakyDevice fails every launch while fail is set.
type flakyDevice struct {
	gpu.Device
	fail error
}

func (d *flakyDevice) Launch(kernel string, grid, block gpu.Dim3, shared int, args ...uint64) error {
	if d.fail != nil {
		return d.fail
	}
	return d.Device.Launch(kernel, grid, block, shared, args...)
}
