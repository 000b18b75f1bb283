package model

import (
	"math"
	"strings"
	"testing"

	"github.com/houlsby/adapters/backend"
)

// Finite-difference settings for the float64 model (backend64). Central
// differences have truncation error h²/6·|d³L/dx³| ≈ 1.7e-11·|d³L/dx³| and
// roundoff ≈ ε·|L|/h ≈ 2e-11 (ε = 2.2e-16, h = 1e-5, |L| = O(1)); both stay
// below gdTol unless the third derivative exceeds ~6e4. In practice
// the observed worst scaled error over all cases is ~1e-10 (logged per
// case). gdTol = 1e-6 leaves four orders of margin, while a wiring bug (a
// missing residual, a wrong stride, a swapped Q/K/V third, a dropout seed
// mismatch) gives errors of the order of the gradient itself (deleting the
// last residual add of layerBackward fails 144 entries of the first case).
const (
	gdH   = 1e-5
	gdTol = 1e-6 // |fd-an| <= gdTol·max(|an|, 1)
)

// lossOf runs Forward and returns the mean loss in float64, read straight
// from backend64's buffer (Forward's float32 return would cost 7 digits).
func lossOf(t *testing.T, m *Model, bt *Batch, train bool, seed uint64) float64 {
	t.Helper()
	if _, _, err := m.Forward(bt, train, seed); err != nil {
		t.Fatal(err)
	}
	var s float64
	for _, x := range f(m.headAct.loss)[:bt.B] {
		s += x
	}
	return s / float64(bt.B)
}

type gradCase struct {
	name       string
	regression bool
	pooler     bool // checkpoint has a pooler
	train      bool // dropout on
	pooling    string
	// stride > 1 checks every stride-th element of each tensor (plus its
	// last), to keep the suite fast where another case already checks the
	// same paths element by element.
	stride    int
	adapter   *AdapterOptions
	trainable func(string) bool
	// wantTrain lists name fragments that must be trainable, wantFrozen
	// fragments that must be frozen (checked against the registry).
	wantTrain, wantFrozen []string
}

func gradCases() []gradCase {
	isAd := func(n string) bool { return strings.Contains(n, ".adapter.") }
	return []gradCase{
		{name: "all/classification/gelu-adapters/pooler", pooler: true, adapter: adapterOpts(backend.GELU), trainable: allTrainable,
			wantTrain: []string{"embeddings.word_embeddings.weight", "encoder.layer.0.attention.self.key.weight", "pooler.dense.weight"}},
		{name: "all/regression/relu-adapters/dropout", regression: true, train: true, stride: 5, adapter: adapterOpts(backend.ReLU), trainable: allTrainable},
		{name: "all/classification/swish/dropout/no-adapter-layer0", train: true, stride: 5,
			adapter:   &AdapterOptions{M: 3, Act: backend.Swish, Attention: true, FFN: true, Layers: []int{1}},
			trainable: allTrainable},
		{name: "adapters+LayerNorm+head", adapter: adapterOpts(backend.GELU), train: true,
			trainable: func(n string) bool { return isAd(n) || strings.Contains(n, "LayerNorm") },
			wantTrain: []string{"embeddings.LayerNorm.bias", "classifier.weight", "pooler.dense.bias"},
			wantFrozen: []string{"embeddings.word_embeddings.weight", "encoder.layer.1.attention.self.query.weight",
				"encoder.layer.0.intermediate.dense.weight"}},
		{name: "adapters-only/attention-adapter-lowest", adapter: adapterOpts(backend.GELU), pooler: true,
			trainable: isAd, wantFrozen: []string{"encoder.layer.0.output.LayerNorm.weight", "pooler.dense.weight"}},
		{name: "ffn-adapter-layer1-only", adapter: &AdapterOptions{M: 4, Act: backend.GELU, FFN: true, Layers: []int{1}},
			trainable: isAd},
		{name: "top-LayerNorm-only", pooler: true,
			trainable: func(n string) bool { return n == "encoder.layer.1.output.LayerNorm.weight" }},
		{name: "partial-qkv", pooler: true, train: true,
			trainable: func(n string) bool {
				return n == "encoder.layer.0.attention.self.query.weight" || n == "encoder.layer.0.attention.self.value.bias" ||
					n == "encoder.layer.1.attention.self.key.weight"
			},
			wantFrozen: []string{"encoder.layer.0.attention.self.key.weight", "encoder.layer.0.attention.self.query.bias"}},
		{name: "word-embeddings-only", regression: true, pooler: true,
			trainable: func(n string) bool { return n == "embeddings.word_embeddings.weight" }},
		{name: "head-only (feature extraction)", pooler: true},
		{name: "mean-pooling/all/dropout", pooling: PoolingMean, train: true, stride: 5, adapter: adapterOpts(backend.ReLU), trainable: allTrainable,
			wantFrozen: []string{}},
		{name: "cls-pooling/adapters", pooling: PoolingCLS, pooler: true, adapter: adapterOpts(backend.GELU), trainable: isAd},
		{name: "mean-pooling/regression/top-LayerNorm", pooling: PoolingMean, regression: true,
			trainable: func(n string) bool { return strings.Contains(n, "layer.1.output.LayerNorm") }},
		{name: "created-pooler+head"},
		// AdapterHub's head: dropout before head.dense and before the
		// classifier (two masks), the gradient into the [CLS] rows.
		{name: "cls-dense/adapters/dropout", pooling: PoolingCLSDense, pooler: true, train: true,
			adapter: &AdapterOptions{M: 4, Act: backend.Swish, Attention: true, FFN: true, Init: InitBERT, Seed: 3}, trainable: isAd,
			wantTrain: []string{"head.dense.weight", "head.dense.bias", "classifier.weight"}, wantFrozen: []string{"encoder.layer.1.output.LayerNorm.weight"}},
		{name: "cls-dense/head-only", pooling: PoolingCLSDense, pooler: true, train: true,
			wantTrain: []string{"head.dense.weight", "classifier.bias"}},
		{name: "cls-dense/regression/all", pooling: PoolingCLSDense, regression: true, stride: 5, trainable: allTrainable},
	}
}

// TestGradientFiniteDifference checks Backward against central differences
// of Forward's loss for every element of every trainable tensor, on a whole
// small random encoder in float64, under several trainability patterns (each
// exercising a different "stop backward here" point).
func TestGradientFiniteDifference(t *testing.T) {
	for ci, tc := range gradCases() {
		t.Run(tc.name, func(t *testing.T) {
			be := &backend64{}
			kind := HeadClassification
			nl := 3
			if tc.regression {
				kind, nl = HeadRegression, 1
			}
			ck := randomCheckpoint(tinyConfig(), tc.pooler, uint64(100+ci))
			m, err := New(be, ck, Options{MaxBatch: 3, MaxSeq: 6, Trainable: tc.trainable, Adapter: tc.adapter,
				Head: HeadOptions{Kind: kind, NumLabels: nl, Pooling: tc.pooling}, Seed: 5})
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range tc.wantTrain {
				if p := m.Param(n); p == nil || !p.Trainable || p.Grad == nil {
					t.Errorf("%s should be trainable with a gradient buffer", n)
				}
			}
			if tc.pooling != "" && tc.pooling != PoolingPooler && m.Param("pooler.dense.weight") != nil {
				t.Errorf("%s pooling: the registry has a pooler", tc.pooling)
			}
			for _, n := range tc.wantFrozen {
				if p := m.Param(n); p == nil || p.Trainable || p.Grad != nil {
					t.Errorf("%s should be frozen without a gradient buffer", n)
				}
			}
			randomizeTrainable(t, m, uint64(200+ci))
			bt := tinyBatch(tc.regression)
			const seed = 77
			if err := m.ZeroGrads(); err != nil {
				t.Fatal(err)
			}
			lossOf(t, m, bt, tc.train, seed)
			if err := m.Backward(); err != nil {
				t.Fatal(err)
			}
			checked, nonzero := 0, 0
			worst := 0.0
			for _, p := range m.Params() {
				if !p.Trainable {
					if p.Grad != nil {
						t.Errorf("frozen %s has a gradient buffer", p.Name)
					}
					continue
				}
				an := append([]float64(nil), f(p.Grad)...)
				x := f(p.T)
				bad := 0
				stride := max(tc.stride, 1)
				for i := range x {
					if i%stride != 0 && i != len(x)-1 {
						continue
					}
					old := x[i]
					x[i] = old + gdH
					lp := lossOf(t, m, bt, tc.train, seed)
					x[i] = old - gdH
					lm := lossOf(t, m, bt, tc.train, seed)
					x[i] = old
					fd := (lp - lm) / (2 * gdH)
					e := math.Abs(fd-an[i]) / math.Max(math.Abs(an[i]), 1)
					worst = math.Max(worst, e)
					if e > gdTol {
						if bad < 3 {
							t.Errorf("%s[%d]: analytic %.10g, finite difference %.10g (err %.3g)", p.Name, i, an[i], fd, e)
						}
						bad++
					}
					if math.Abs(an[i]) > 1e-9 {
						nonzero++
					}
					checked++
				}
			}
			t.Logf("%d gradient entries checked (%d nonzero), worst scaled error %.3g", checked, nonzero, worst)
			// Guard against a vacuous pass: most entries must carry gradient
			// (rows of embedding tables the batch does not use are zero).
			if checked == 0 || nonzero < checked/4 {
				t.Errorf("only %d of %d gradient entries are nonzero", nonzero, checked)
			}
		})
	}
}

// TestSharedActivations: buffers a layer's backward never reads are shared
// scratch, and only those. Adapter training (FFN and Q/K/V weights frozen)
// shares every layer's GELU input and output and every output but the last
// layer's; a layer whose intermediate or output weights train keeps its
// own FFN buffers, and a layer's output is kept when the next layer's Q/K/V
// weights train. (The gradients of these layouts are checked by
// TestGradientFiniteDifference; the parity tests in tests/ run them on
// MiniLM.)
func TestSharedActivations(t *testing.T) {
	cfg := tinyConfig()
	cfg.NumHiddenLayers = 4
	ck := randomCheckpoint(cfg, true, 9)
	build := func(trainable func(string) bool) *Model {
		m, err := New(&backend64{}, ck, Options{MaxBatch: 2, MaxSeq: 4, Trainable: trainable, Adapter: adapterOpts(backend.GELU),
			Head: HeadOptions{Kind: HeadClassification, NumLabels: 2}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Free)
		return m
	}
	isAd := func(n string) bool { return strings.Contains(n, ".adapter.") || strings.Contains(n, "LayerNorm") }
	ad := build(isAd)
	for l, a := range ad.acts {
		if !a.recomputeFF || a.ffPre != ad.acts[0].ffPre || a.ffAct != ad.acts[0].ffAct {
			t.Errorf("adapters: layer %d's FFN buffers are not the shared scratch", l)
		}
		if shared := a.out == ad.acts[0].out; shared != (l < cfg.NumHiddenLayers-1) {
			t.Errorf("adapters: layer %d's output shared = %v", l, shared)
		}
	}
	mixed := build(func(n string) bool {
		return isAd(n) || n == "encoder.layer.2.attention.self.query.weight" || n == "encoder.layer.1.output.dense.weight"
	})
	a := mixed.acts
	if a[1].recomputeFF || a[1].ffPre == a[0].ffPre || a[1].ffAct == a[0].ffAct || !a[0].recomputeFF || !a[2].recomputeFF {
		t.Error("mixed: layer 1 (output.dense trains) must keep its own FFN buffers, layers 0 and 2 share theirs")
	}
	if a[1].out == a[0].out || a[0].out != a[2].out {
		t.Error("mixed: layer 1's output is layer 2's Q/K/V input and must be kept; 0 and 2 share theirs")
	}
	full := build(func(string) bool { return true })
	for l, a := range full.acts {
		if a.recomputeFF || (l > 0 && (a.out == full.acts[0].out || a.ffPre == full.acts[0].ffPre)) {
			t.Errorf("full fine-tuning: layer %d shares a buffer", l)
		}
	}
}
