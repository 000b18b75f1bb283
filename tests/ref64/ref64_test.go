package ref64

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/houlsby/adapters/backend"
)

// Finite-difference settings. Central differences have truncation error
// h²/6·|f⁽³⁾| and roundoff about eps·|L|/h (eps = 2⁻⁵² ≈ 2.2e-16); the sum is
// smallest near h = eps^(1/3) ≈ 6e-6. With h = 5e-6, |f⁽³⁾| = O(10) and
// |L| = O(10) for these small problems, both terms are ~1e-10, four orders
// below fdTol.
const (
	fdH   = 5e-6
	fdTol = 1e-6 // relative error, |fd-an| / max(|an|, 1)
)

func randVec(r *rand.Rand, n int, scale float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = (2*r.Float64() - 1) * scale
	}
	return v
}

func dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// fdCheck compares the analytic gradient an of loss with respect to x with
// central differences, element by element: |fd-an| <= fdTol·max(|an|, 1).
// The max with 1 keeps components that are zero or tiny (masked keys,
// dropped elements) from demanding an impossible relative accuracy; every
// gradient here is O(1), so this is a relative test where it matters.
func fdCheck(t *testing.T, name string, x, an []float64, loss func() float64) {
	t.Helper()
	if len(x) != len(an) {
		t.Fatalf("%s: %d inputs but %d gradient entries", name, len(x), len(an))
	}
	worst, nonzero := 0.0, 0
	for i := range x {
		old := x[i]
		x[i] = old + fdH
		lp := loss()
		x[i] = old - fdH
		lm := loss()
		x[i] = old
		fd := (lp - lm) / (2 * fdH)
		err := math.Abs(fd-an[i]) / math.Max(math.Abs(an[i]), 1)
		worst = math.Max(worst, err)
		if an[i] != 0 {
			nonzero++
		}
		if !(err <= fdTol) {
			t.Errorf("%s[%d]: analytic %.12g, finite difference %.12g (rel err %.3g > %g)", name, i, an[i], fd, err, fdTol)
			return
		}
	}
	if nonzero == 0 && len(x) > 0 {
		t.Errorf("%s: analytic gradient is identically zero; the check proves nothing", name)
	}
	t.Logf("%s: %d entries, worst rel err %.2e", name, len(x), worst)
}

// seqMask returns a (B, T) key mask with a different number of padded keys
// per sequence (b+1 for b < T-1), the first key always real, as BERT's [CLS].
func seqMask(B, T int) []int32 {
	m := make([]int32, B*T)
	for b := 0; b < B; b++ {
		real := max(T-1-b, 1)
		for t := 0; t < real; t++ {
			m[b*T+t] = 1
		}
	}
	return m
}

func TestGemmGradients(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const M, N, K = 4, 5, 3
	for _, ta := range []bool{false, true} {
		for _, tb := range []bool{false, true} {
			t.Run(fmt.Sprintf("tA=%v,tB=%v", ta, tb), func(t *testing.T) {
				a, b, c0 := randVec(r, M*K, 1), randVec(r, K*N, 1), randVec(r, M*N, 1)
				g := randVec(r, M*N, 1)
				p := backend.MatMul{TransA: ta, TransB: tb, M: M, N: N, K: K, Alpha: 0.75, Beta: 0.5}
				loss := func() float64 {
					c := append([]float64(nil), c0...)
					Gemm(c, a, b, p)
					return dot(g, c)
				}
				// dop(A) = α·dC·op(B)ᵀ (M×K), dop(B) = α·op(A)ᵀ·dC (K×N),
				// computed with Gemm itself; the stored gradient of a
				// transposed operand is the transpose.
				dA := make([]float64, M*K)
				if !ta {
					Gemm(dA, g, b, backend.MatMul{TransB: !tb, M: M, N: K, K: N, Alpha: p.Alpha})
				} else {
					Gemm(dA, b, g, backend.MatMul{TransA: tb, TransB: true, M: K, N: M, K: N, Alpha: p.Alpha})
				}
				dB := make([]float64, K*N)
				if !tb {
					Gemm(dB, a, g, backend.MatMul{TransA: !ta, M: K, N: N, K: M, Alpha: p.Alpha})
				} else {
					Gemm(dB, g, a, backend.MatMul{TransA: true, TransB: ta, M: N, N: K, K: M, Alpha: p.Alpha})
				}
				fdCheck(t, "dA", a, dA, loss)
				fdCheck(t, "dB", b, dB, loss)
				dC0 := append([]float64(nil), g...)
				Scale(dC0, float64(p.Beta), len(dC0))
				fdCheck(t, "dC0", c0, dC0, loss)
			})
		}
	}
}

// TestGemmStridedBatch checks a strided, padded batch against separate
// tightly packed problems, with explicit element formulas.
func TestGemmStridedBatch(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const M, N, K, batch = 3, 4, 5, 3
	const lda, ldb, ldc = K + 2, N + 1, N + 3
	sa, sb, sc := M*lda+1, K*ldb+2, M*ldc+5
	a, b := randVec(r, batch*sa, 1), randVec(r, batch*sb, 1)
	c := randVec(r, batch*sc, 1)
	orig := append([]float64(nil), c...)
	Gemm(c, a, b, backend.MatMul{M: M, N: N, K: K, Alpha: 2, Beta: -1, LdA: lda, LdB: ldb, LdC: ldc, Batch: batch, StrideA: sa, StrideB: sb, StrideC: sc})
	for q := 0; q < batch; q++ {
		for i := 0; i < M; i++ {
			for j := 0; j < ldc; j++ {
				idx := q*sc + i*ldc + j
				want := orig[idx]
				if j < N {
					var s float64
					for k := 0; k < K; k++ {
						s += a[q*sa+i*lda+k] * b[q*sb+k*ldb+j]
					}
					want = 2*s - orig[idx]
				}
				if math.Abs(c[idx]-want) > 1e-12 { // a few roundings of O(1) sums of 5 terms
					t.Fatalf("batch %d (%d,%d): got %v want %v", q, i, j, c[idx], want)
				}
			}
		}
	}
	// beta = 0 must not read c.
	c2 := make([]float64, M*N)
	for i := range c2 {
		c2[i] = math.NaN()
	}
	Gemm(c2, a, b, backend.MatMul{M: M, N: N, K: K, Alpha: 1, LdA: lda, LdB: ldb})
	for i, v := range c2 {
		if math.IsNaN(v) {
			t.Fatalf("beta=0 read c (NaN at %d)", i)
		}
	}
}

func TestBiasGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const N, C = 6, 7
	x0, bias, g := randVec(r, N*C, 1), randVec(r, C, 1), randVec(r, N*C, 1)
	loss := func() float64 {
		x := append([]float64(nil), x0...)
		AddBias(x, bias, N, C)
		return dot(g, x)
	}
	db := randVec(r, C, 1) // += rule: start from a nonzero buffer
	start := append([]float64(nil), db...)
	BiasGrad(db, g, N, C)
	for i := range db {
		db[i] -= start[i]
	}
	fdCheck(t, "dbias", bias, db, loss)
}

func TestLayerNormGradients(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	const N, C, eps = 5, 9, 1e-5
	inp, w, b, g := randVec(r, N*C, 2), randVec(r, C, 1), randVec(r, C, 1), randVec(r, N*C, 1)
	for i := range inp {
		inp[i] += 3 // a nonzero mean exercises the centring
	}
	out, mean, rstd := make([]float64, N*C), make([]float64, N), make([]float64, N)
	loss := func() float64 {
		LayerNormForward(out, mean, rstd, inp, w, b, N, C, eps)
		return dot(g, out)
	}
	loss()
	dinp, dw, db := make([]float64, N*C), make([]float64, C), make([]float64, C)
	LayerNormBackward(dinp, dw, db, g, inp, w, mean, rstd, N, C)
	fdCheck(t, "dinp", inp, dinp, loss)
	fdCheck(t, "dw", w, dw, loss)
	fdCheck(t, "db", b, db, loss)
	// Frozen: nil dw, db give the same dinp.
	d2 := make([]float64, N*C)
	LayerNormBackward(d2, nil, nil, g, inp, w, mean, rstd, N, C)
	for i := range d2 {
		if d2[i] != dinp[i] {
			t.Fatalf("dinp[%d] differs with frozen w, b: %v vs %v", i, d2[i], dinp[i])
		}
	}
}

func TestPointwiseGradients(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	const n = 40
	x, g := randVec(r, n, 3), randVec(r, n, 1)
	out := make([]float64, n)
	for _, act := range []backend.Act{backend.ReLU, backend.GELU, backend.Swish} {
		t.Run(act.String(), func(t *testing.T) {
			// x is drawn from a continuous distribution, so no element sits
			// on ReLU's kink at 0 (|x| > fdH with probability 1 - 40·fdH/3).
			d := make([]float64, n)
			ActBackward(d, g, x, n, act)
			fdCheck(t, "dinp", x, d, func() float64 { ActForward(out, x, n, act); return dot(g, out) })
		})
	}
	// Spot values of the exact (erf) form: GELU(1) = Φ(1) = 0.841344746...
	if v := Gelu(1); math.Abs(v-0.8413447460685429) > 1e-15 {
		t.Errorf("GELU(1) = %.16g, want 0.8413447460685429", v)
	}
	t.Run("tanh", func(t *testing.T) {
		TanhForward(out, x, n)
		d := make([]float64, n)
		TanhBackward(d, g, out, n)
		fdCheck(t, "dinp", x, d, func() float64 { TanhForward(out, x, n); return dot(g, out) })
	})
	for _, p := range []float32{0, 0.1, 0.5} {
		t.Run(fmt.Sprintf("dropout p=%v", p), func(t *testing.T) {
			const seed = 42
			d := make([]float64, n)
			DropoutBackward(d, g, n, p, seed)
			fdCheck(t, "dinp", x, d, func() float64 { DropoutForward(out, x, n, p, seed); return dot(g, out) })
			DropoutForward(out, x, n, p, seed)
			dropped := 0
			for i := range out {
				switch out[i] {
				case 0:
					dropped++
				default:
					if want := x[i] / (1 - float64(p)); math.Abs(out[i]-want) > 1e-15*math.Abs(want) {
						t.Fatalf("kept element %d = %v, want %v", i, out[i], want)
					}
				}
			}
			if p == 0 && dropped != 0 || p == 0.5 && (dropped < n/5 || dropped > 4*n/5) {
				t.Errorf("p=%v dropped %d of %d", p, dropped, n)
			}
		})
	}
}

func TestAttentionGradients(t *testing.T) {
	const B, T, NH, HS = 3, 6, 2, 3
	C := NH * HS
	mask := seqMask(B, T)
	for _, p := range []float32{0, 0.25} {
		t.Run(fmt.Sprintf("p=%v", p), func(t *testing.T) {
			r := rand.New(rand.NewPCG(11, 12))
			const seed = 7
			qkv, g := randVec(r, B*T*3*C, 1.5), randVec(r, B*T*C, 1)
			out, probs := make([]float64, B*T*C), make([]float64, B*NH*T*T)
			loss := func() float64 {
				AttentionForward(out, probs, qkv, mask, B, T, NH, HS, p, seed)
				return dot(g, out)
			}
			loss()
			// Probabilities: rows sum to 1, masked keys are 0.
			for b := 0; b < B; b++ {
				for h := 0; h < NH; h++ {
					for q := 0; q < T; q++ {
						var s float64
						for k := 0; k < T; k++ {
							v := probs[((b*NH+h)*T+q)*T+k]
							if mask[b*T+k] == 0 && v != 0 {
								t.Fatalf("masked key %d of batch %d has prob %v", k, b, v)
							}
							s += v
						}
						if math.Abs(s-1) > 1e-14 {
							t.Fatalf("row (%d,%d,%d) sums to %v", b, h, q, s)
						}
					}
				}
			}
			dqkv := make([]float64, B*T*3*C)
			AttentionBackward(dqkv, g, qkv, probs, mask, B, T, NH, HS, p, seed)
			fdCheck(t, "dqkv", qkv, dqkv, loss)
		})
	}
}

func TestMaskedSoftmaxGradient(t *testing.T) {
	const B, R, T, scale = 3, 4, 6, 0.7
	mask := seqMask(B, T)
	for t := 0; t < T; t++ {
		mask[1*T+t] = 0 // batch element 1: every key masked
	}
	r := rand.New(rand.NewPCG(21, 22))
	scores, g := randVec(r, B*R*T, 3), randVec(r, B*R*T, 1)
	probs := make([]float64, B*R*T)
	loss := func() float64 {
		MaskedSoftmaxForward(probs, scores, mask, B, R, T, scale)
		return dot(g, probs)
	}
	loss()
	for b := 0; b < B; b++ {
		for q := 0; q < R; q++ {
			var s float64
			for k := 0; k < T; k++ {
				v := probs[(b*R+q)*T+k]
				if mask[b*T+k] == 0 && v != 0 {
					t.Fatalf("masked key %d of batch %d has prob %v", k, b, v)
				}
				s += v
			}
			if want := map[bool]float64{true: 0, false: 1}[b == 1]; math.Abs(s-want) > 1e-14 {
				t.Fatalf("row (%d,%d) sums to %v, want %v", b, q, s, want)
			}
		}
	}
	ds := make([]float64, B*R*T)
	MaskedSoftmaxBackward(ds, g, probs, B*R, T, scale)
	fdCheck(t, "dscores", scores, ds, loss)
	// In place (dscores = dprobs) gives the same.
	d2 := append([]float64(nil), g...)
	MaskedSoftmaxBackward(d2, d2, probs, B*R, T, scale)
	assertClose(t, "dscores in place", ds, d2, 0)
}

func TestEmbeddingGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	const V, N, C = 6, 9, 4
	ids := []int32{0, 3, 3, 5, 1, 3, 0, 2, 5} // repeated ids accumulate
	table, g, base := randVec(r, V*C, 1), randVec(r, N*C, 1), randVec(r, N*C, 1)
	out := make([]float64, N*C)
	for _, acc := range []bool{false, true} {
		loss := func() float64 {
			copy(out, base)
			EmbeddingForward(out, ids, table, N, C, acc)
			return dot(g, out)
		}
		d := make([]float64, V*C)
		EmbeddingBackward(d, g, ids, N, C)
		fdCheck(t, fmt.Sprintf("dtable(accumulate=%v)", acc), table, d, loss)
	}
}

func TestAdapterGradients(t *testing.T) {
	const N, C, M = 5, 7, 3
	for _, act := range []backend.Act{backend.ReLU, backend.GELU, backend.Swish} {
		t.Run(act.String(), func(t *testing.T) {
			r := rand.New(rand.NewPCG(15, uint64(act)))
			inp, wd, bd := randVec(r, N*C, 1), randVec(r, M*C, 0.6), randVec(r, M, 0.5)
			wu, bu, g := randVec(r, C*M, 0.6), randVec(r, C, 0.5), randVec(r, N*C, 1)
			out, z := make([]float64, N*C), make([]float64, N*M)
			loss := func() float64 {
				AdapterForward(out, z, inp, wd, bd, wu, bu, N, C, M, act)
				return dot(g, out)
			}
			loss()
			if act == backend.ReLU {
				// ReLU has a kink at 0: keep every z well away from it so a
				// step of fdH cannot cross it.
				for _, v := range z {
					if math.Abs(v) < 1e-3 {
						t.Fatalf("z = %v too close to the ReLU kink; change the seed", v)
					}
				}
			}
			dinp, dwd, dbd := make([]float64, N*C), make([]float64, M*C), make([]float64, M)
			dwu, dbu := make([]float64, C*M), make([]float64, C)
			AdapterBackward(dinp, dwd, dbd, dwu, dbu, g, inp, z, wd, wu, N, C, M, act)
			fdCheck(t, "dinp", inp, dinp, loss)
			fdCheck(t, "dWDown", wd, dwd, loss)
			fdCheck(t, "dBDown", bd, dbd, loss)
			fdCheck(t, "dWUp", wu, dwu, loss)
			fdCheck(t, "dBUp", bu, dbu, loss)

			// The fused op equals its unfused composition
			// gemm + bias + act + gemm + bias + add, forward and backward.
			z2 := make([]float64, N*M)
			Gemm(z2, inp, wd, backend.MatMul{TransB: true, M: N, N: M, K: C, Alpha: 1})
			AddBias(z2, bd, N, M)
			h := make([]float64, N*M)
			for i := range h {
				h[i] = Act(act, z2[i])
			}
			y := make([]float64, N*C)
			Gemm(y, h, wu, backend.MatMul{TransB: true, M: N, N: C, K: M, Alpha: 1})
			AddBias(y, bu, N, C)
			Add(y, y, inp, N*C)
			AdapterForward(out, z, inp, wd, bd, wu, bu, N, C, M, act)
			assertClose(t, "unfused z", z2, z, 1e-13)
			assertClose(t, "unfused out", y, out, 1e-13)
			// Backward of the composition, op by op.
			dh := make([]float64, N*M)
			Gemm(dh, g, wu, backend.MatMul{M: N, N: M, K: C, Alpha: 1})
			dz := make([]float64, N*M)
			for i := range dz {
				dz[i] = dh[i] * ActGrad(act, z2[i])
			}
			dx := append([]float64(nil), g...)
			Gemm(dx, dz, wd, backend.MatMul{M: N, N: C, K: M, Alpha: 1, Beta: 1})
			dwu2, dwd2 := make([]float64, C*M), make([]float64, M*C)
			Gemm(dwu2, g, h, backend.MatMul{TransA: true, M: C, N: M, K: N, Alpha: 1})
			Gemm(dwd2, dz, inp, backend.MatMul{TransA: true, M: M, N: C, K: N, Alpha: 1})
			dbd2, dbu2 := make([]float64, M), make([]float64, C)
			BiasGrad(dbd2, dz, N, M)
			BiasGrad(dbu2, g, N, C)
			assertClose(t, "unfused dinp", dx, dinp, 1e-13)
			assertClose(t, "unfused dWUp", dwu2, dwu, 1e-13)
			assertClose(t, "unfused dWDown", dwd2, dwd, 1e-13)
			assertClose(t, "unfused dBDown", dbd2, dbd, 1e-13)
			assertClose(t, "unfused dBUp", dbu2, dbu, 1e-13)
		})
	}
}

// assertClose checks |a-b| <= tol·max(1, |b|); the callers' tol of 1e-13
// allows a few dozen float64 roundings (2⁻⁵³ ≈ 1.1e-16 each) of O(1) sums.
func assertClose(t *testing.T, name string, want, got []float64, tol float64) {
	t.Helper()
	for i := range want {
		if math.Abs(want[i]-got[i]) > tol*math.Max(1, math.Abs(want[i])) {
			t.Fatalf("%s[%d]: got %.17g want %.17g", name, i, got[i], want[i])
		}
	}
}

func TestLossGradients(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	t.Run("cross-entropy", func(t *testing.T) {
		const N, V, scale = 6, 5, 0.7
		logits := randVec(r, N*V, 3)
		labels := []int32{2, -1, 0, 4, -100, 1} // negatives are ignored
		loss := make([]float64, N)
		L := func() float64 {
			SoftmaxCrossEntropy(loss, nil, logits, labels, N, V, scale)
			var s float64
			for _, v := range loss {
				s += v
			}
			return scale * s
		}
		d := make([]float64, N*V)
		SoftmaxCrossEntropy(loss, d, logits, labels, N, V, scale)
		for n, y := range labels {
			if y < 0 && loss[n] != 0 {
				t.Errorf("ignored row %d has loss %v", n, loss[n])
			}
		}
		// Closed form for one row: -log softmax(x)[y].
		x := logits[0:V]
		var s float64
		for _, v := range x {
			s += math.Exp(v)
		}
		if want := math.Log(s) - x[2]; math.Abs(loss[0]-want) > 1e-14 {
			t.Errorf("loss[0] = %v, want %v", loss[0], want)
		}
		fdCheck(t, "dlogits", logits, d, L)
	})
	t.Run("mse", func(t *testing.T) {
		const N, scale = 7, 0.3
		pred, target := randVec(r, N, 2), randVec(r, N, 2)
		loss, d := make([]float64, N), make([]float64, N)
		MSE(loss, d, pred, target, N, scale)
		L := func() float64 {
			MSE(loss, nil, pred, target, N, scale)
			var s float64
			for _, v := range loss {
				s += v
			}
			return scale * s
		}
		fdCheck(t, "dpred", pred, d, L)
	})
}

func TestAdamWClosedForm(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 20))
	const n = 9
	h := backend.AdamW{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01, Step: 1}
	param, grad := randVec(r, n, 1), randVec(r, n, 1)
	p0 := append([]float64(nil), param...)
	m, v := make([]float64, n), make([]float64, n)
	AdamWStep(param, grad, m, v, []int32{0, n}, n, h)
	lr, wd, eps := float64(h.LR), float64(h.WeightDecay), float64(h.Eps)
	for i := range param {
		// Step 1 from zero moments: m̂ = g, v̂ = g², so the step is
		// lr·(wd·p + g/(|g|+eps)) — about lr·sign(g).
		want := p0[i] - lr*(wd*p0[i]+grad[i]/(math.Abs(grad[i])+eps))
		if math.Abs(param[i]-want) > 1e-15 {
			t.Errorf("step 1 param[%d] = %.17g, want %.17g", i, param[i], want)
		}
		// Betas are float32: 1-β is taken of the float32 value, in float64.
		wm, wv := (1-float64(h.Beta1))*grad[i], (1-float64(h.Beta2))*grad[i]*grad[i]
		if math.Abs(m[i]-wm) > 1e-16*math.Abs(wm) || math.Abs(v[i]-wv) > 1e-16*wv {
			t.Errorf("step 1 moments[%d] = (%v, %v)", i, m[i], v[i])
		}
	}
	// A later step from arbitrary moments, in torch's arrangement:
	// p ← p·(1-lr·wd) - (lr/bc1)·m/(√v/√bc2 + eps).
	h.Step = 5
	m0, v0 := randVec(r, n, 0.1), randVec(r, n, 0.01)
	for i := range v0 {
		v0[i] = math.Abs(v0[i])
	}
	copy(m, m0)
	copy(v, v0)
	copy(p0, param)
	AdamWStep(param, grad, m, v, []int32{0, n}, n, h)
	b1, b2 := float64(h.Beta1), float64(h.Beta2)
	bc1, bc2 := 1-math.Pow(b1, 5), 1-math.Pow(b2, 5)
	for i := range param {
		mi := b1*m0[i] + (1-b1)*grad[i]
		vi := b2*v0[i] + (1-b2)*grad[i]*grad[i]
		want := p0[i]*(1-lr*wd) - lr/bc1*mi/(math.Sqrt(vi)/math.Sqrt(bc2)+eps)
		if math.Abs(param[i]-want) > 1e-15 {
			t.Errorf("step 5 param[%d] = %.17g, want %.17g", i, param[i], want)
		}
	}
}

// TestAdamWDecayRanges: elements inside the decay ranges step as with
// WeightDecay, the others as with WeightDecay = 0.
func TestAdamWDecayRanges(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 24))
	const n = 12
	h := backend.AdamW{LR: 1e-2, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1, Step: 3}
	param, grad := randVec(r, n, 1), randVec(r, n, 1)
	m, v := randVec(r, n, 0.1), randVec(r, n, 0.01)
	for i := range v {
		v[i] = math.Abs(v[i])
	}
	decay := []int32{1, 4, 4, 4, 9, 12}
	in := func(i int) bool { return i >= 1 && i < 4 || i >= 9 }
	got := [4][]float64{append([]float64(nil), param...), append([]float64(nil), grad...), append([]float64(nil), m...), append([]float64(nil), v...)}
	AdamWStep(got[0], got[1], got[2], got[3], decay, n, h)
	for i := 0; i < n; i++ {
		hi := h
		if !in(i) {
			hi.WeightDecay = 0
		}
		w := [4][]float64{{param[i]}, {grad[i]}, {m[i]}, {v[i]}}
		AdamWStep(w[0], w[1], w[2], w[3], []int32{0, 1}, 1, hi)
		if got[0][i] != w[0][0] || got[2][i] != w[2][0] || got[3][i] != w[3][0] {
			t.Errorf("element %d (decays %v): (%v, %v, %v), want (%v, %v, %v)", i, in(i), got[0][i], got[2][i], got[3][i], w[0][0], w[2][0], w[3][0])
		}
	}
}

func TestSumSquaresScaleAdd(t *testing.T) {
	x := []float64{1, -2, 3, 0.5}
	if s := SumSquares(x, 4); s != 14.25 {
		t.Errorf("SumSquares = %v, want 14.25", s)
	}
	y := append([]float64(nil), x...)
	Scale(y, -2, 4)
	out := make([]float64, 4)
	Add(out, x, y, 4)
	for i := range out {
		if out[i] != -x[i] {
			t.Errorf("x + (-2x) = %v at %d, want %v", out[i], i, -x[i])
		}
	}
}

// The grouped (serving) ops are forward only; they are checked against the
// ungrouped references on each segment's rows with that segment's slot,
// which TestAdapterGradients and TestLayerNormGradients check by finite
// differences.
func TestGroupedForward(t *testing.T) {
	const N, C, M, G = 11, 5, 3, 3
	// Segments: empty, slot 2, no adapter, slot 0, slot 2 again, slot 1.
	segs := []int32{0, 0, 1, 0, 3, 2, 3, 5, -1, 5, 6, 0, 6, 9, 2, 9, 11, 1}
	r := rand.New(rand.NewPCG(21, 22))
	inp := randVec(r, N*C, 1)
	wd, bd, wu, bu := randVec(r, G*M*C, 0.6), randVec(r, G*M, 0.5), randVec(r, G*C*M, 0.6), randVec(r, G*C, 0.5)
	lw, lb := randVec(r, G*C, 1), randVec(r, G*C, 1)
	for _, act := range []backend.Act{backend.ReLU, backend.GELU, backend.Swish} {
		out := make([]float64, N*C)
		GroupedAdapterForward(out, inp, wd, bd, wu, bu, segs, N, C, M, act)
		for s := 0; s < len(segs); s += 3 {
			r0, r1, g := int(segs[s]), int(segs[s+1]), int(segs[s+2])
			n := r1 - r0
			want := append([]float64(nil), inp[r0*C:r1*C]...)
			if g >= 0 {
				AdapterForward(want, make([]float64, n*M), inp[r0*C:r1*C], wd[g*M*C:(g+1)*M*C], bd[g*M:(g+1)*M],
					wu[g*C*M:(g+1)*C*M], bu[g*C:(g+1)*C], n, C, M, act)
			}
			assertClose(t, fmt.Sprintf("adapter %v segment %d", act, s/3), want, out[r0*C:r1*C], 1e-14)
		}
	}
	out := make([]float64, N*C)
	GroupedLayerNormForward(out, inp, lw, lb, []int32{0, 4, 1, 4, 4, 0, 4, 11, 2}, N, C, 1e-12)
	want := make([]float64, N*C)
	mean, rstd := make([]float64, N), make([]float64, N)
	LayerNormForward(want[:4*C], mean, rstd, inp[:4*C], lw[C:2*C], lb[C:2*C], 4, C, 1e-12)
	LayerNormForward(want[4*C:], mean, rstd, inp[4*C:], lw[2*C:], lb[2*C:], 7, C, 1e-12)
	assertClose(t, "layernorm", want, out, 1e-14)
}

// padPacked copies the rows of packed sequences (starts, row width w) into
// the padded layout (S, maxT, w), zero rows after each sequence, and returns
// it with the key mask (S, maxT).
func padPacked(x []float64, starts []int32, S, maxT, w int) ([]float64, []int32) {
	out := make([]float64, S*maxT*w)
	mask := make([]int32, S*maxT)
	for s := 0; s < S; s++ {
		for i := 0; i < int(starts[s+1]-starts[s]); i++ {
			copy(out[(s*maxT+i)*w:(s*maxT+i+1)*w], x[(int(starts[s])+i)*w:(int(starts[s])+i+1)*w])
			mask[s*maxT+i] = 1
		}
	}
	return out, mask
}

// TestPackedAttentionGradients: the packed attention's backward against
// finite differences of its forward, with and without dropout, on
// sequences of lengths 4, 1 and 6 packed with maxT = 7; and both directions
// against the padded reference (AttentionForward/Backward on B = S,
// T = maxT with the key mask), which also checks the dropout index formula
// and the log-sum-exp.
func TestPackedAttentionGradients(t *testing.T) {
	starts := []int32{0, 4, 5, 11}
	const S, maxT, NH, HS = 3, 7, 2, 3
	C, N := NH*HS, int(starts[S])
	for _, p := range []float32{0, 0.25} {
		t.Run(fmt.Sprintf("p=%v", p), func(t *testing.T) {
			r := rand.New(rand.NewPCG(13, 14))
			const seed = 9
			qkv, g := randVec(r, N*3*C, 1.5), randVec(r, N*C, 1)
			out, lse := make([]float64, N*C), make([]float64, NH*N)
			loss := func() float64 {
				PackedAttentionForward(out, lse, qkv, starts, S, maxT, NH, HS, p, seed)
				return dot(g, out)
			}
			loss()
			dqkv := make([]float64, N*3*C)
			PackedAttentionBackward(dqkv, g, qkv, starts, S, maxT, NH, HS, p, seed)
			fdCheck(t, "dqkv", qkv, dqkv, loss)
			loss() // out and lse at the unperturbed qkv again

			// The padded layout gives the same rows.
			pq, mask := padPacked(qkv, starts, S, maxT, 3*C)
			pg, _ := padPacked(g, starts, S, maxT, C)
			pout, probs := make([]float64, S*maxT*C), make([]float64, S*NH*maxT*maxT)
			AttentionForward(pout, probs, pq, mask, S, maxT, NH, HS, p, seed)
			pd := make([]float64, S*maxT*3*C)
			AttentionBackward(pd, pg, pq, probs, mask, S, maxT, NH, HS, p, seed)
			wantOut, _ := padPacked(out, starts, S, maxT, C)
			wantD, _ := padPacked(dqkv, starts, S, maxT, 3*C)
			for i := range pout {
				if mask[i/C] == 0 {
					continue
				}
				if math.Abs(pout[i]-wantOut[i]) > 1e-12 {
					t.Fatalf("out element %d: packed %v, padded %v", i, wantOut[i], pout[i])
				}
			}
			for i := range pd {
				if mask[i/(3*C)] != 0 && math.Abs(pd[i]-wantD[i]) > 1e-12 {
					t.Fatalf("dqkv element %d: packed %v, padded %v", i, wantD[i], pd[i])
				}
			}
			// lse: probs = exp(score - lse) for every real key.
			for s := 0; s < S; s++ {
				r0, L := int(starts[s]), int(starts[s+1]-starts[s])
				for h := 0; h < NH; h++ {
					for i := 0; i < L; i++ {
						for j := 0; j < L; j++ {
							var sc float64
							for d := 0; d < HS; d++ {
								sc += qkv[(r0+i)*3*C+h*HS+d] * qkv[(r0+j)*3*C+C+h*HS+d]
							}
							sc /= math.Sqrt(HS)
							pr := probs[((s*NH+h)*maxT+i)*maxT+j]
							if math.Abs(math.Exp(sc-lse[h*N+r0+i])-pr) > 1e-14 {
								t.Fatalf("lse of (s=%d, h=%d, i=%d) disagrees with the padded probabilities at key %d", s, h, i, j)
							}
						}
					}
				}
			}
		})
	}
}
