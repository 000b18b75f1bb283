// Package conformance is the shared test suite of the backend contract
// (package backend): Run checks every op of a backend, forward and backward,
// against the float64 reference implementations of tests/ref64, including
// the gradient rule (parameter gradients +=, input gradients =, nil
// parameter gradients = frozen) and argument validation.
//
// The adapter, attention, dense layer and residual LayerNorm are reached
// through backend.AdapterForward, LinearForward etc., which use a backend's
// fused capability when it has one. Run checks them twice: as the backend offers them, and (subtests named ...Generic) through
// CoreOnly, which hides the capabilities so that the generic compositions of
// the backend's core ops are checked against the same references.
//
// Sizes are deliberately not multiples of any block size (N=37, C=45, M=7,
// B=3, T=13, NH=3, HS=5, V=11, ...), and results are compared element by
// element with |got-want| <= Atol + Rtol·|want|.
//
// Dtypes: activations and frozen weights are allocated with the backend's
// FrozenDType; trainable parameters, their gradients, optimizer state,
// LayerNorm statistics and losses are F32 (as kernels/README.md states for
// the GPU; the CPU stores everything as float32). The
// reference always sees the values the backend actually stored (read back
// after Upload), so rounding of inputs to bf16 is not counted as error.
package conformance

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/houlsby/adapters/backend"
)

// Tol is one tolerance: |got-want| <= Atol + Rtol·|want|.
type Tol struct{ Atol, Rtol float64 }

// Tolerances groups the tolerances per family of ops, so that a backend with
// bf16 storage can pass looser ones than a float32 backend.
type Tolerances struct {
	// Pointwise: Add, Scale, AddBias, ReLU/GELU/Swish, tanh, dropout, embedding gather,
	// MSE: one to a few roundings per element.
	Pointwise Tol
	// Gemm: dot products of K <= 45 terms of O(1) values.
	Gemm Tol
	// Reduce: column sums over N = 37 rows (BiasGrad, embedding scatter,
	// LayerNorm weight gradients) and SumSquares.
	Reduce Tol
	// LayerNorm forward and backward (rows of C = 45).
	LayerNorm Tol
	// Attention forward (out, probs) and backward.
	Attention Tol
	// Adapter forward and backward (two chained GEMMs, K = 45 and 7, and
	// weight gradients summed over N = 37 rows).
	Adapter Tol
	// Loss: softmax cross-entropy over V = 11 classes.
	Loss Tol
	// AdamW: one step; the parameters move by about LR.
	AdamW Tol
	// Deterministic demands bitwise-identical results from repeated calls
	// and from the frozen (nil-gradient) paths, as the CPU backend promises.
	Deterministic bool
}

// Float32 returns tolerances for a backend that computes in float32 with
// float32 (or better) accumulation. u32 below is float32's unit roundoff,
// 2⁻²⁴ ≈ 6.0e-8. Each is a bound of the form
// (number of roundings)·u32 times the size of the terms, rounded up:
//   - pointwise: ≤ 4 roundings of an O(1) result, 4·u32 ≈ 2.4e-7 → 1e-6;
//   - GEMM with K = 45 terms: the standard bound γ_K = K·u32 ≈ 2.7e-6
//     relative to Σ|a||b| (≈ 2-5× the result here) → 1e-5;
//   - column sums of 37 rows: 37·u32 ≈ 2.2e-6 of Σ|x| → 1e-5;
//   - LayerNorm: x̂ = (x-mean)·rstd with C = 45 terms in the mean and
//     variance, then a dot of 45 terms in the backward → 1e-5;
//   - attention: softmax over T = 13 keys (exp has ~1 ulp), two GEMMs with
//     K ≤ 13 and the softmax backward → 1e-5;
//   - adapter: two chained GEMMs (γ₄₅ + γ₇) amplified by |wUp|·|act'| ≤ 1
//     → 2e-5;
//   - cross-entropy: log-sum-exp of 11 terms, loss O(1) → 1e-5;
//   - AdamW: m̂/(√v̂+ε) is O(1) with a few roundings, times LR = 1e-2;
//     param O(1) has 1 ulp = 6e-8 → atol 1e-6.
func Float32() Tolerances {
	return Tolerances{
		Pointwise:     Tol{Atol: 1e-6, Rtol: 1e-6},
		Gemm:          Tol{Atol: 1e-5, Rtol: 1e-5},
		Reduce:        Tol{Atol: 1e-5, Rtol: 1e-5},
		LayerNorm:     Tol{Atol: 1e-5, Rtol: 1e-5},
		Attention:     Tol{Atol: 1e-5, Rtol: 1e-5},
		Adapter:       Tol{Atol: 2e-5, Rtol: 2e-5},
		Loss:          Tol{Atol: 1e-5, Rtol: 1e-5},
		AdamW:         Tol{Atol: 1e-6, Rtol: 1e-6},
		Deterministic: true,
	}
}

// BF16 returns the tolerances of bf16 storage (the GPU backend's gpu.Options.BF16): every
// activation the backend writes is rounded once to bf16, whose unit
// roundoff is u = 2^-8 (8 significant bits), so a result computed in fp32
// from exactly stored inputs is off by at most u relative; rtol = 2u leaves
// a factor 2 for the fp32 arithmetic before the rounding. The inputs
// themselves are rounded before the reference sees them (conformance reads
// back what was stored), so only the backend's own roundings count.
// Where a rounded intermediate is reused (attention probabilities, the
// adapter's z), its error u·|x| propagates through a weighted sum, which is
// what the absolute tolerances bound:
//   - attention: out = Σ_j P̃_j V_j with each P_j off by ≤ u·P_j gives
//     |Δout| ≤ u·Σ_j P_j|V_j| ≤ u·max|V|; the suite draws V with scale 1.5,
//     so max|V| ≲ 6 and atol = 6u ≈ 0.023. The backward reads those
//     rounded probabilities and rounded dout/qkv: the same bound applies
//     to dV, and dQ, dK see dS = P(dP-D) with the same relative error
//     times Σ|K|/√HS, also ≲ 6u;
//   - adapter: z is rounded (u·|z|), which passes through act' ≤ 1.1 and
//     wUp (M = 7 entries of scale 0.5): |Δout| ≤ 7·0.5·1.1·u·max|z| with
//     max|z| ≲ 4 → ≈ 15u ≈ 0.06; the backward multiplies by the same
//     weights once more (wDown, scale 0.3, C = 45 terms is bounded the same
//     way through |dz|), so 0.06 is used for both;
//   - parameter gradients, statistics, losses and optimizer state are F32
//     and keep the float32 tolerances (Reduce, AdamW).
func BF16() Tolerances {
	const u = 1.0 / 256 // bf16 unit roundoff, 2^-8
	tol := Float32()
	tol.Pointwise = Tol{Atol: 1e-6, Rtol: 2 * u}
	tol.Gemm = Tol{Atol: 1e-5, Rtol: 2 * u}
	tol.LayerNorm = Tol{Atol: 1e-5, Rtol: 2 * u}
	tol.Attention = Tol{Atol: 6 * u, Rtol: 2 * u}
	tol.Adapter = Tol{Atol: 15 * u, Rtol: 2 * u}
	tol.Loss = Tol{Atol: 1e-5, Rtol: 2 * u}
	return tol
}

// Sizes used by the suite: none is a multiple of 4, 8, 16 or 32.
const (
	sN  = 37 // rows
	sC  = 45 // hidden size
	sM  = 7  // adapter bottleneck
	sB  = 3  // batch
	sT  = 13 // sequence length
	sNH = 3  // heads
	sHS = 5  // head size (attention C = 15)
	sV  = 11 // classes
	sVV = 29 // embedding vocabulary
)

// suite carries one subtest's backend and helpers.
type suite struct {
	t   *testing.T
	be  backend.Backend
	tol Tolerances
	r   *rand.Rand
	adt backend.DType // activations and frozen weights
}

func newSuite(t *testing.T, newBackend func() backend.Backend, tol Tolerances, seed uint64) *suite {
	be := newBackend()
	if be == nil {
		t.Fatal("conformance: newBackend returned nil")
	}
	return &suite{t: t, be: be, tol: tol, r: rand.New(rand.NewPCG(seed, 0x5eed)), adt: be.FrozenDType()}
}

// Run runs the conformance suite on backends made by newBackend (called once
// per subtest).
func Run(t *testing.T, newBackend func() backend.Backend, tol Tolerances) {
	tests := []struct {
		name string
		fn   func(*suite)
		// generic: the test reaches a fused capability, so it runs a
		// second time on CoreOnly(backend).
		generic bool
	}{
		{"Memory", testMemory, false},
		{"Gemm", testGemm, false},
		{"Bias", testBias, false},
		{"AddScale", testAddScale, false},
		{"SumSquares", testSumSquares, false},
		{"LayerNorm", testLayerNorm, false},
		{"AddLayerNorm", testAddLayerNorm, true},
		{"Linear", testLinear, true},
		{"Act", testAct, false},
		{"Tanh", testTanh, false},
		{"Dropout", testDropout, false},
		{"MaskedSoftmax", testMaskedSoftmax, false},
		{"Attention", testAttention, true},
		{"PackedAttention", testPackedAttention, false},
		{"Embedding", testEmbedding, false},
		{"Adapter", testAdapter, true},
		{"GroupedAdapter", testGroupedAdapter, true},
		{"GroupedLayerNorm", testGroupedLayerNorm, true},
		{"SoftmaxCrossEntropy", testCrossEntropy, false},
		{"MSE", testMSE, false},
		{"AdamW", testAdamW, false},
		{"Views", testViews, true},
		{"BadArguments", testBadArguments, true},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(newSuite(t, newBackend, tol, uint64(i+1)))
		})
		if tc.generic {
			t.Run(tc.name+"Generic", func(t *testing.T) {
				tc.fn(newSuite(t, func() backend.Backend { return CoreOnly(newBackend()) }, tol, uint64(i+1)))
			})
		}
	}
}

// CoreOnly returns be seen through the core contract alone: the wrapper
// embeds only the backend.Backend interface, so be's optional capabilities
// (backend.FusedAdapter, FusedAttention, FusedLinear, FusedAddLayerNorm,
// GroupedAdapter, GroupedLayerNorm, PackedAttention) are hidden and the
// package functions backend.AdapterForward etc. run their generic
// compositions of be's core ops. (PackedAttention has no composition: a
// model without it keeps the padded layout, so its test skips backends that
// lack it.)
func CoreOnly(be backend.Backend) backend.Backend { return coreOnly{be} }

type coreOnly struct{ backend.Backend }

// ---- helpers ----

func (s *suite) must(err error, what string) {
	s.t.Helper()
	if err != nil {
		s.t.Fatalf("%s: %v", what, err)
	}
}

// rnd returns n uniform values in [-scale, scale).
func (s *suite) rnd(n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32((2*s.r.Float64() - 1) * scale)
	}
	return v
}

func nans(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(math.NaN())
	}
	return v
}

// tensor allocates a tensor of dtype dt, uploads vals and returns it with
// the values it actually holds (after any rounding), as float64.
func (s *suite) tensor(dt backend.DType, vals []float32, shape ...int) (backend.Tensor, []float64) {
	s.t.Helper()
	x, err := s.be.Alloc(dt, shape...)
	s.must(err, fmt.Sprintf("Alloc(%v, %v)", dt, shape))
	if x.Len() != len(vals) {
		s.t.Fatalf("conformance: shape %v does not hold %d values", shape, len(vals))
	}
	s.must(s.be.Upload(x, vals), "Upload")
	return x, s.get(x)
}

// ints allocates an I32 tensor holding vals.
func (s *suite) ints(vals []int32, shape ...int) backend.Tensor {
	s.t.Helper()
	x, err := s.be.Alloc(backend.I32, shape...)
	s.must(err, fmt.Sprintf("Alloc(I32, %v)", shape))
	s.must(s.be.UploadInt32(x, vals), "UploadInt32")
	return x
}

// get syncs and downloads x as float64.
func (s *suite) get(x backend.Tensor) []float64 {
	s.t.Helper()
	s.must(s.be.Sync(), "Sync")
	v := make([]float32, x.Len())
	s.must(s.be.Download(v, x), "Download")
	out := make([]float64, len(v))
	for i, f := range v {
		out[i] = float64(f)
	}
	return out
}

// check compares got with want element by element and logs the worst
// ratio of difference to tolerance.
func (s *suite) check(name string, got, want []float64, tol Tol) {
	s.t.Helper()
	s.compare(name, got, want, tol, true)
}

// checkq is check without the log line on success.
func (s *suite) checkq(name string, got, want []float64, tol Tol) {
	s.t.Helper()
	s.compare(name, got, want, tol, false)
}

func (s *suite) compare(name string, got, want []float64, tol Tol, log bool) {
	s.t.Helper()
	if len(got) != len(want) {
		s.t.Fatalf("%s: %d values, want %d", name, len(got), len(want))
	}
	worst, bad := 0.0, 0
	for i := range want {
		d := math.Abs(got[i] - want[i])
		lim := tol.Atol + tol.Rtol*math.Abs(want[i])
		if !(d <= lim) { // also catches NaN
			if bad < 3 {
				s.t.Errorf("%s[%d]: got %.9g, want %.9g (|diff| %.3g > %.3g)", name, i, got[i], want[i], d, lim)
			}
			bad++
		}
		if lim > 0 && d/lim > worst {
			worst = d / lim
		}
	}
	if bad > 0 {
		s.t.Errorf("%s: %d of %d values out of tolerance", name, bad, len(want))
		return
	}
	if !log {
		return
	}
	s.t.Logf("%s: %d values, worst |diff| at %.2f of the tolerance", name, len(want), worst)
}

// same asserts bitwise-equal results when the backend is deterministic.
func (s *suite) same(name string, a, b []float64) {
	s.t.Helper()
	if !s.tol.Deterministic {
		return
	}
	for i := range a {
		if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
			s.t.Fatalf("%s[%d]: %v then %v; results must be bitwise identical", name, i, a[i], b[i])
		}
	}
}

func clone(v []float64) []float64 { return append([]float64(nil), v...) }

// seqMask returns a (B, T) key mask with a different number of padded keys
// per sequence: sequence b has b·3+1 padded keys at the end (capped so the
// first key stays real, as BERT's [CLS]).
func seqMask(B, T int) []int32 {
	m := make([]int32, B*T)
	for b := 0; b < B; b++ {
		real := max(T-(3*b+1), 1)
		for t := 0; t < real; t++ {
			m[b*T+t] = 1
		}
	}
	return m
}
