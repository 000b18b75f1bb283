package conformance

import (
	"fmt"
	"math"

	"github.com/houlsby/adapters/backend"
	"github.com/houlsby/adapters/tests/ref64"
)

// testLinear checks backend.LinearForward (the FusedLinear capability, or
// its composition of Gemm, AddBias and DropoutForward in place): without
// and with a bias (F32 and the frozen dtype), without and with dropout,
// against ref64's Gemm, AddBias and DropoutForward on the stored values.
//
// Tolerance: the composition rounds a bf16 y three times (GEMM, bias add,
// dropout scaling) where a fused kernel rounds once, each rounding at most
// u·|value| with the value bounded by max|x·wᵀ| + max|bias| times the
// dropout scale; so |Δ| <= 3·u·scale·(max|x·wᵀ| + max|bias|) plus the
// GEMM's own error, which Tol.Gemm bounds. In float32 the same argument
// with u = 2⁻²⁴ is far inside Tol.Gemm.
func testLinear(s *suite) {
	const N, out, in = sN, 29, sC
	x, xv := s.tensor(s.adt, s.rnd(N*in, 1), N, in)
	for _, wdt := range []backend.DType{backend.F32, s.adt} {
		w, wv := s.tensor(wdt, s.rnd(out*in, 0.3), out, in)
		for _, withBias := range []bool{false, true} {
			var bias backend.Tensor
			bv := make([]float64, out)
			if withBias {
				bias, bv = s.tensor(wdt, s.rnd(out, 0.5), out)
			}
			for _, p := range []float32{0, 0.1} {
				const seed = 0x11ea4
				name := fmt.Sprintf("w %v bias %v p %v", wdt, withBias, p)
				y, _ := s.tensor(s.adt, nans(N*out), N, out)
				s.must(backend.LinearForward(s.be, y, x, w, bias, N, out, in, p, seed), "LinearForward "+name)
				want := make([]float64, N*out)
				ref64.Gemm(want, xv, wv, backend.MatMul{TransB: true, M: N, N: out, K: in, Alpha: 1})
				mag := 0.0
				for _, v := range want {
					mag = math.Max(mag, math.Abs(v))
				}
				ref64.AddBias(want, bv, N, out)
				maxBias := 0.0
				for _, v := range bv {
					maxBias = math.Max(maxBias, math.Abs(v))
				}
				mag += maxBias
				ref64.DropoutForward(want, want, N*out, p, seed)
				scale := 1 / (1 - float64(p))
				u := s.tol.Gemm.Rtol / 2 // the dtype's unit roundoff (BF16: 2u = Rtol)
				tol := Tol{Atol: s.tol.Gemm.Atol + 3*u*scale*mag, Rtol: s.tol.Gemm.Rtol}
				got := s.get(y)
				s.check("y "+name, got, want, tol)
				for i := range got {
					if p > 0 && !backend.DropoutKeep(seed, i, p) && got[i] != 0 {
						s.t.Fatalf("%s: element %d = %v, but DropoutKeep drops it", name, i, got[i])
					}
				}
			}
		}
	}
	// Bad arguments are errors, not panics.
	y, _ := s.tensor(s.adt, nans(N*out), N, out)
	w, _ := s.tensor(backend.F32, s.rnd(out*in, 0.3), out, in)
	if err := backend.LinearForward(s.be, y, x, w, nil, N, out, in, 1, 0); err == nil {
		s.t.Error("LinearForward with p = 1 succeeded")
	}
	if err := backend.LinearForward(s.be, y, x, w, nil, N, out, in+1, 0, 0); err == nil {
		s.t.Error("LinearForward with a short x succeeded")
	}
}

// testAddLayerNorm checks backend.AddLayerNormForward (FusedAddLayerNorm,
// or Add then LayerNormForward): res = a + b as stored, then the LayerNorm
// of res as stored, with res separate from and aliasing a; weights F32 and
// in the frozen dtype.
func testAddLayerNorm(s *suite) {
	const N, C, eps = sN, sC, 1e-12
	for _, wdt := range []backend.DType{backend.F32, s.adt} {
		for _, inPlace := range []bool{false, true} {
			name := fmt.Sprintf("w %v in place %v", wdt, inPlace)
			av := s.rnd(N*C, 2)
			for i := range av {
				av[i] += 1 // a nonzero mean
			}
			a, aw := s.tensor(s.adt, av, N, C)
			b, bw := s.tensor(s.adt, s.rnd(N*C, 1), N, C)
			w, wv := s.tensor(wdt, s.rnd(C, 1), C)
			bias, biasv := s.tensor(wdt, s.rnd(C, 1), C)
			res := a
			if !inPlace {
				res, _ = s.tensor(s.adt, nans(N*C), N, C)
			}
			out, _ := s.tensor(s.adt, nans(N*C), N, C)
			mean, _ := s.tensor(backend.F32, nans(N), N)
			rstd, _ := s.tensor(backend.F32, nans(N), N)
			s.must(backend.AddLayerNormForward(s.be, out, res, mean, rstd, a, b, w, bias, N, C, eps), "AddLayerNormForward "+name)
			wantRes := make([]float64, N*C)
			ref64.Add(wantRes, aw, bw, N*C)
			gotRes := s.get(res)
			s.check("res "+name, gotRes, wantRes, s.tol.Pointwise)
			wo, wm, wr := make([]float64, N*C), make([]float64, N), make([]float64, N)
			ref64.LayerNormForward(wo, wm, wr, gotRes, wv, biasv, N, C, float64(float32(eps)))
			s.check("out "+name, s.get(out), wo, s.tol.LayerNorm)
			s.check("mean "+name, s.get(mean), wm, s.tol.LayerNorm)
			s.check("rstd "+name, s.get(rstd), wr, s.tol.LayerNorm)
			if !inPlace {
				s.same("a after AddLayerNormForward", s.get(a), aw)
			}
		}
	}
}
