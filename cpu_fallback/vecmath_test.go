package cpu

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"os"
	"testing"
)

// fma32Big is the correctly rounded float32 a·b+c by exact arithmetic.
func fma32Big(a, b, c float32) float32 {
	if math.IsNaN(float64(a)) || math.IsNaN(float64(b)) || math.IsNaN(float64(c)) ||
		math.IsInf(float64(a), 0) || math.IsInf(float64(b), 0) || math.IsInf(float64(c), 0) {
		return float32(float64(a)*float64(b) + float64(c))
	}
	x := new(big.Float).SetPrec(400).SetFloat64(float64(a))
	x.Mul(x, new(big.Float).SetPrec(400).SetFloat64(float64(b)))
	x.Add(x, new(big.Float).SetPrec(400).SetFloat64(float64(c)))
	f, _ := x.Float32()
	if f == 0 {
		// big.Float has no signed zero result of a sum: IEEE gives +0 for
		// x + (-x) under round to nearest, and the sign of the operands
		// when both are zero of the same sign.
		if a*b == 0 && c == 0 && math.Signbit(float64(c)) && math.Signbit(float64(a*b)) {
			return float32(math.Copysign(0, -1))
		}
		return 0
	}
	return f
}

// TestFMA32 checks fma32 against exact arithmetic on random operands and
// on the cases that defeat a plain float64 evaluation: exact halfway points
// of float32 with a tiny addend (double rounding) and float32-subnormal
// results.
func TestFMA32(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	check := func(a, b, c float32) {
		t.Helper()
		got, want := fma32(a, b, c), fma32Big(a, b, c)
		if math.Float32bits(got) != math.Float32bits(want) && !(got != got && want != want) {
			t.Fatalf("fma32(%g, %g, %g) = %g (%#x), want %g (%#x)", a, b, c, got, math.Float32bits(got), want, math.Float32bits(want))
		}
	}
	for i := 0; i < 200000; i++ {
		a := math.Float32frombits(r.Uint32())
		b := math.Float32frombits(r.Uint32())
		c := math.Float32frombits(r.Uint32())
		check(a, b, c)
		// Operands of similar magnitude (cancellation).
		a, b = float32(r.NormFloat64()), float32(r.NormFloat64())
		check(a, b, -a*b)
		check(a, b, float32(r.NormFloat64()))
	}
	// a·b = 1 + 2⁻²⁴ (exactly halfway between 1 and 1+2⁻²³) plus tiny c:
	// the correct result rounds up, a float64 sum rounds to the midpoint and
	// then to even (down).
	a, b := float32(1+0x1p-12), float32(1+0x1p-12) // a·b = 1 + 2⁻¹¹ + 2⁻²⁴
	for _, c := range []float32{0x1p-60, -0x1p-60, 0x1p-100, -0x1p-149, 0x1p-149} {
		check(a, b, c)
		check(-a, b, c)
	}
	// Halfway points with c in the low bits, at many magnitudes.
	for i := 0; i < 100000; i++ {
		m := uint32(r.Uint32()&0x7fffff) | 0x800000 // 24-bit significand
		e := r.IntN(60) - 30
		x := float32(math.Ldexp(float64(m), e))
		y := float32(1 + 0x1p-12)
		check(x, y, float32(math.Ldexp(1, e-60)))
		check(x, y, float32(-math.Ldexp(1, e-70)))
	}
	// Subnormal results.
	for i := 0; i < 100000; i++ {
		a := float32(math.Ldexp(r.Float64()+0.5, -70))
		b := float32(math.Ldexp(r.Float64()+0.5, -60))
		c := float32(math.Ldexp(r.Float64()-0.5, -128))
		check(a, b, c)
		check(a, -b, c)
	}
}

// vecInputs returns n test inputs: special values, the clamp boundaries of
// exp and erf and their neighbours, random bit patterns (every exponent,
// NaNs, infinities) and values in the ranges the kernels are used on.
func vecInputs(r *rand.Rand, n int) []float32 {
	special := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 0.5, -0.5,
		float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)),
		math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32, 0x1p-126, -0x1p-126,
		expLo, expHi, erfClamp, -erfClamp, 4 * math.Sqrt2, -4 * math.Sqrt2, -87.33654, -87.68, -103.9, 88.7228, 89,
	}
	var v []float32
	for _, s := range special {
		v = append(v, s, math.Nextafter32(s, float32(math.Inf(1))), math.Nextafter32(s, float32(math.Inf(-1))))
	}
	for len(v) < n {
		switch r.IntN(4) {
		case 0:
			v = append(v, math.Float32frombits(r.Uint32()))
		case 1:
			v = append(v, float32(r.NormFloat64()*4))
		case 2:
			v = append(v, float32((r.Float64()*2-1)*100))
		default:
			v = append(v, float32(-r.ExpFloat64()*20))
		}
	}
	r.Shuffle(len(v), func(i, j int) { v[i], v[j] = v[j], v[i] })
	return v[:n]
}

func sameBits(a, b float32) bool {
	return math.Float32bits(a) == math.Float32bits(b) || (a != a && b != b)
}

// TestVecKernelsMatchGo runs every vector implementation this CPU has
// against the plain Go loop for every length 0..80 at every start offset
// 0..15 (and out-of-place and in-place), demanding bitwise-equal results:
// elementwise outputs and the 16-lane sums.
func TestVecKernelsMatchGo(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const maxN, maxOff = 80, 16
	in := vecInputs(r, maxN+maxOff)
	g := vecInputs(r, maxN+maxOff)
	for _, k := range vecImpls {
		if k == vecGo {
			continue
		}
		t.Run(k.name, func(t *testing.T) {
			for n := 0; n <= maxN; n++ {
				for off := 0; off < maxOff; off++ {
					checkVecCase(t, k, in[off:off+n], g[off:off+n], fmt.Sprintf("n=%d off=%d", n, off))
				}
			}
			// Long inputs of every kind.
			big := vecInputs(r, 4099)
			checkVecCase(t, k, big, vecInputs(r, 4099), "n=4099")
		})
	}
}

func checkVecCase(t *testing.T, k *vecImpl, a, g []float32, name string) {
	t.Helper()
	n := len(a)
	want, got := make([]float32, n), make([]float32, n)
	cmp := func(op string) {
		t.Helper()
		for i := range want {
			if !sameBits(got[i], want[i]) {
				t.Fatalf("%s %s: element %d (input %g) = %g (%#x), Go gives %g (%#x)", op, name, i, a[i], got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
			}
		}
	}
	geluVec(vecGo, want, a)
	geluVec(k, got, a)
	cmp("gelu")
	copy(got, a)
	geluVec(k, got, got)
	cmp("gelu in place")

	geluGradMulVec(vecGo, want, g, a)
	geluGradMulVec(k, got, g, a)
	cmp("geluGradMul")
	copy(got, g)
	geluGradMulVec(k, got, got, a)
	cmp("geluGradMul in place")

	expVec(vecGo, want, a)
	expVec(k, got, a)
	cmp("exp")

	for _, m := range []float32{0, 3.5, -2, maxVec(vecGo, a, float32(math.Inf(-1)))} {
		copy(want, a)
		copy(got, a)
		sw, sg := expSubSumVec(vecGo, want, m), expSubSumVec(k, got, m)
		cmp(fmt.Sprintf("expSubSum m=%g", m))
		if !sameBits(sw, sg) {
			t.Fatalf("expSubSum %s m=%g: sum %g, Go gives %g", name, m, sg, sw)
		}
	}
	for _, m := range []float32{float32(math.Inf(-1)), 0, float32(math.NaN())} {
		if w, g := maxVec(vecGo, a, m), maxVec(k, a, m); !sameBits(w, g) {
			t.Fatalf("max %s from %g: %g, Go gives %g", name, m, g, w)
		}
	}
	if w, gt := dotVec(vecGo, a, g), dotVec(k, a, g); !sameBits(w, gt) {
		t.Fatalf("dot %s: %g, Go gives %g", name, gt, w)
	}
	softmaxGradVec(vecGo, want, g, a, 0.375, 1.25)
	softmaxGradVec(k, got, g, a, 0.375, 1.25)
	cmp("softmaxGrad")
	copy(want, a)
	copy(got, a)
	scaleVec(vecGo, want, -1.7)
	scaleVec(k, got, -1.7)
	cmp("scale")

	addVec(vecGo, want, a, g)
	addVec(k, got, a, g)
	cmp("add")
	reluVec(vecGo, want, a)
	reluVec(k, got, a)
	cmp("relu")
	reluGradMulVec(vecGo, want, g, a)
	reluGradMulVec(k, got, g, a)
	cmp("reluGradMul")

	// LayerNorm rows (g doubles as w and b, a as x and dout).
	if n > 0 {
		m1, r1 := lnStats(vecGo, a, 1e-5)
		m2, r2 := lnStats(k, a, 1e-5)
		if !sameBits(m1, m2) || !sameBits(r1, r2) {
			t.Fatalf("lnStats %s: %g %g, Go gives %g %g", name, m2, r2, m1, r1)
		}
	}
	lnApplyVec(vecGo, want, a, g, a, 0.25, 1.5)
	lnApplyVec(k, got, a, g, a, 0.25, 1.5)
	cmp("lnApply")
	sg1, sx1 := lnGradSums(vecGo, a, g, a, 0.25, 1.5)
	sg2, sx2 := lnGradSums(k, a, g, a, 0.25, 1.5)
	if !sameBits(sg1, sg2) || !sameBits(sx1, sx2) {
		t.Fatalf("lnGradSums %s: %g %g, Go gives %g %g", name, sg2, sx2, sg1, sx1)
	}
	lnGradRowVec(vecGo, want, a, g, a, 0.25, 1.5, 0.125, -0.75)
	lnGradRowVec(k, got, a, g, a, 0.25, 1.5, 0.125, -0.75)
	cmp("lnGradRow")
	w2, g2 := make([]float32, n), make([]float32, n)
	copy(want, g)
	copy(w2, a)
	copy(got, g)
	copy(g2, a)
	lnParamRowVec(vecGo, want, w2, a, g, 0.25, 1.5)
	lnParamRowVec(k, got, g2, a, g, 0.25, 1.5)
	cmp("lnParamRow sw")
	copy(want, w2)
	copy(got, g2)
	cmp("lnParamRow sb")
}

// ulp32 is the spacing of float32 values at |x| (x a normal float32 value
// or a float64 in the normal range).
func ulp32(x float64) float64 {
	_, e := math.Frexp(math.Abs(x)) // |x| = f·2^e, f in [0.5, 1)
	return math.Ldexp(1, max(e-24, -149))
}

// accuracyInputs calls fn with batches of float32 inputs covering [lo, hi]:
// every float32 there when exhaustive, else every stride-th bit pattern
// (stride odd, so all low-bit patterns occur) plus the endpoints.
func accuracyInputs(lo, hi float32, exhaustive bool, fn func([]float32)) {
	stride := uint32(97)
	if exhaustive {
		stride = 1
	}
	buf := make([]float32, 0, 4096)
	flush := func() {
		if len(buf) > 0 {
			fn(buf)
			buf = buf[:0]
		}
	}
	add := func(x float32) {
		buf = append(buf, x)
		if len(buf) == cap(buf) {
			flush()
		}
	}
	// Walk the non-negative part [max(lo,0), hi] and the negative part
	// [lo, min(hi,0)] by bit patterns.
	walk := func(a, b float32, neg bool) { // 0 <= a <= b, magnitudes
		sign := float32(1)
		if neg {
			sign = -1
		}
		for u := math.Float32bits(a); u <= math.Float32bits(b); u += stride {
			add(sign * math.Float32frombits(u))
		}
		add(sign * b)
	}
	if hi >= 0 {
		walk(max(lo, 0), hi, false)
	}
	if lo < 0 {
		walk(max(-hi, 0), -lo, true)
	}
	flush()
}

func exhaustive() bool { return os.Getenv("HOULSBY_EXHAUSTIVE") == "1" }

// TestVecMathAccuracy measures the maximum error of the kernels the backend
// uses (vec, the widest implementation; all give the same bits) against
// float64 math over the float32 ranges that matter, and checks the bounds
// stated in vecmath.go. HOULSBY_EXHAUSTIVE=1 walks every float32 of each
// range (about 2·10⁹ inputs, a few minutes); the default walks every 97th.
func TestVecMathAccuracy(t *testing.T) {
	ex := exhaustive()
	if testing.Short() && !ex {
		t.Skip("dense accuracy sweep skipped with -short")
	}
	out := make([]float32, 4096)
	gout := make([]float32, 4096)
	ones := make([]float32, 4096)
	for i := range ones {
		ones[i] = 1
	}

	// exp: relative error in ulps of the float32 result, over x with a
	// normal result; below that, the absolute error.
	var expUlp, expSubAbs float64
	accuracyInputs(-104, expHi, ex, func(x []float32) {
		expVec(vec, out[:len(x)], x)
		for i, v := range x {
			want := math.Exp(float64(v))
			d := math.Abs(float64(out[i]) - want)
			if want >= 0x1p-126 {
				expUlp = max(expUlp, d/ulp32(want))
			} else {
				expSubAbs = max(expSubAbs, d)
			}
		}
	})
	t.Logf("exp32: max error %.3f ulp for normal results on [-87.3, %g]; %.3g absolute below 2^-126", expUlp, expHi, expSubAbs)
	if expUlp > 1.1 || expSubAbs > 0x1p-126 {
		t.Errorf("exp32 error %.3f ulp / %.3g absolute, want <= 1.1 ulp / 2^-126", expUlp, expSubAbs)
	}

	// erf: absolute error.
	var erfAbs float64
	accuracyInputs(-6, 6, ex, func(x []float32) {
		for i, v := range x {
			out[i] = erf32(v)
		}
		for i, v := range x {
			erfAbs = max(erfAbs, math.Abs(float64(out[i])-math.Erf(float64(v))))
		}
	})
	t.Logf("erf32: max absolute error %.3g on [-6, 6]", erfAbs)
	if erfAbs > 4.5e-7 {
		t.Errorf("erf32 absolute error %.3g, want <= 4.5e-7", erfAbs)
	}

	// GELU and its derivative: absolute error (relative to max(1, |x|) for
	// GELU, whose error grows with |x|/2 times erf's).
	var geluErr, gradErr float64
	var geluWorst, gradWorst float32
	accuracyInputs(-20, 20, ex, func(x []float32) {
		n := len(x)
		geluVec(vec, out[:n], x)
		geluGradMulVec(vec, gout[:n], ones[:n], x)
		for i, v := range x {
			xd := float64(v)
			g := 0.5 * xd * (1 + math.Erf(xd/math.Sqrt2))
			dg := 0.5*(1+math.Erf(xd/math.Sqrt2)) + xd*math.Exp(-xd*xd/2)/math.Sqrt(2*math.Pi)
			if e := math.Abs(float64(out[i])-g) / max(1, math.Abs(xd)); e > geluErr {
				geluErr, geluWorst = e, v
			}
			if e := math.Abs(float64(gout[i]) - dg); e > gradErr {
				gradErr, gradWorst = e, v
			}
		}
	})
	t.Logf("gelu32: max |error|/max(1,|x|) %.3g (at x=%g); geluGrad32: max |error| %.3g (at x=%g), on [-20, 20]", geluErr, geluWorst, gradErr, gradWorst)
	if geluErr > 2.5e-7 || gradErr > 2.5e-7 {
		t.Errorf("gelu32 error %.3g (want <= 2.5e-7), geluGrad32 %.3g (want <= 2.5e-7)", geluErr, gradErr)
	}
	// Beyond ±20 GELU is x or -0/0 and its derivative 1 or 0 in float32.
	for _, x := range []float32{20, 1e3, 1e30, math.MaxFloat32, -20, -1e3, -1e30, -math.MaxFloat32} {
		g, d := gelu32(x), geluGrad32(x)
		if (x > 0 && (g != x || d != 1)) || (x < 0 && (g != 0 || math.Abs(float64(d)) > 1e-30)) {
			t.Errorf("gelu32(%g) = %g, geluGrad32 = %g", x, g, d)
		}
	}
	for _, f := range []func(float32) float32{exp32, erf32, gelu32, geluGrad32} {
		if v := f(float32(math.NaN())); v == v {
			t.Errorf("NaN input gives %v", v)
		}
	}
	if exp32(float32(math.Inf(-1))) != 0 || exp32(0) != 1 || exp32(-88) != 0 {
		t.Errorf("exp32(-Inf, 0, -88) = %v, %v, %v", exp32(float32(math.Inf(-1))), exp32(0), exp32(-88))
	}
}

// TestSoftmaxMasked: rows against the float64 softmax (exp32's 1 ulp, the
// 16-lane sum of T terms and the scaling: under 4e-7 relative here, plus
// the rounding of s - max),
// masked keys exactly 0, a row with every key masked all zeros, NaN rows
// NaN, and every implementation bitwise equal to the Go loop.
func TestSoftmaxMasked(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	for _, T := range []int{1, 7, 16, 33, 128} {
		rows := 5
		S := make([]float32, rows*T)
		for i := range S {
			S[i] = float32(r.NormFloat64() * 8)
		}
		S[1*T] = float32(math.NaN()) // row 1: NaN, unless masked
		mask := make([]int32, T)
		for i := range mask {
			mask[i] = int32(r.IntN(4) % 3) // about a quarter masked
		}
		mask[0] = 1
		var want []float32
		for _, k := range vecImpls {
			got := append([]float32(nil), S...)
			softmaxMasked(k, got, mask, rows, T)
			if want == nil {
				want = got
				for row := 0; row < rows; row++ {
					mx := math.Inf(-1)
					for s := 0; s < T; s++ {
						if mask[s] != 0 && !math.IsNaN(float64(S[row*T+s])) {
							mx = math.Max(mx, float64(S[row*T+s]))
						}
					}
					var z float64
					for s := 0; s < T; s++ {
						if mask[s] != 0 {
							z += math.Exp(float64(S[row*T+s]) - mx)
						}
					}
					for s := 0; s < T; s++ {
						g := float64(got[row*T+s])
						switch {
						case mask[s] == 0 && row != 1: // (a NaN row is NaN throughout)
							if g != 0 || math.Signbit(g) {
								t.Fatalf("T=%d row %d: masked key %d has %v", T, row, s, g)
							}
						case row == 1 && math.IsInf(mx, -1):
							// Every unmasked score NaN: zeros, like a row
							// with every key masked.
							if g != 0 {
								t.Fatalf("T=%d: all-NaN row gives %v at %d", T, g, s)
							}
						case row == 1:
							if !math.IsNaN(g) && mask[s] != 0 {
								t.Fatalf("T=%d: NaN row gives %v at %d", T, g, s)
							}
						default:
							// The float32 difference s - max is rounded
							// (2⁻²⁴ relative), which exp turns into
							// |s - max|·2⁻²⁴ relative.
							d := float64(S[row*T+s]) - mx
							w := math.Exp(d) / z
							if math.Abs(g-w) > (4e-7+0x1p-24*math.Abs(d))*w+1e-37 {
								t.Fatalf("T=%d row %d key %d: %v, want %v", T, row, s, g, w)
							}
						}
					}
				}
				continue
			}
			for i := range want {
				if !sameBits(got[i], want[i]) {
					t.Fatalf("%s T=%d: element %d = %v, Go gives %v", k.name, T, i, got[i], want[i])
				}
			}
		}
		all := append([]float32(nil), S...)
		softmaxMasked(vec, all, make([]int32, T), rows, T)
		for i, v := range all {
			if v != 0 {
				t.Fatalf("every key masked: element %d = %v", i, v)
			}
		}
	}
}
