package cpu

// Vectorized float32 pointwise math: exp, erf, GELU and its derivative, and
// the row kernels of the softmax (max, exp-and-sum, dot product, gradient).
//
// Every kernel is defined by the scalar float32 functions in this file
// (exp32, erf32, gelu32, geluGrad32): a fixed sequence of float32
// operations, each rounded once (fma32 for the fused multiply-adds, plain
// float32 arithmetic otherwise, min/max that let NaN through). The assembly
// kernels (vecmath_amd64.s: AVX2+FMA on 8 lanes, AVX-512F on 16) execute
// exactly that sequence per lane, so all implementations give bitwise the
// same result for every input, on every length and alignment
// (TestVecKernelsMatchGo). Reductions (the sum of the exps, dot products)
// use 16 partial sums, element i going to lane i mod 16, combined by one
// fixed tree (lanes16Sum), whatever the vector width. Which implementation
// runs therefore changes speed only, never a bit of the results, and a
// slice's tail (its last len mod 16 elements) goes through the same vector
// code as its body (padded in a vecBuf) or through the bitwise-equal Go
// loop, so an element's result does not depend on where a parallel chunk
// boundary falls.
//
// Accuracy against float64 math.Exp / math.Erf, measured by
// TestVecMathAccuracy over every float32 input of each range (run with
// HOULSBY_EXHAUSTIVE=1, 3.5 minutes; by default every 97th input):
//   - exp32: ≤ 1.010 ulp (relative) for x in [-87.3, 88.376], where the
//     result is a normal float32; results below 2⁻¹²⁶ are gradual-underflow
//     roundings of the same formula (absolute error ≤ 8.3e-39), x < -87.68
//     gives 0, x > 88.376 saturates (the kernels only see x <= 0: softmax
//     x - max, GELU's -x²/2, sigmoid's -|x|). NaN propagates.
//   - erf32: absolute error ≤ 4.42e-7 over [-6, 6] (the worst near |x| =
//     3.9, where erf is within 3e-8 of 1: about 7 float32 ulps of 1, the
//     rounding of the rational's two polynomials; 0.95e-7 when the same
//     rational runs in float64), exactly ±1 from |x| = 3.995.
//   - gelu32: absolute error ≤ 2.42e-7·max(1, |x|) over [-20, 20], i.e. at
//     most about 3 float32 ulps of the result (worst at x = 5.5); exactly x
//     above 5.65 and 0 below -5.65 (within 4.5e-8 of the true value).
//   - geluGrad32: absolute error ≤ 2.39e-7 over [-20, 20].
//
// The comments at each function give the method and the source of its
// coefficients.

//go:generate go run vecmath_gen.go

import (
	"fmt"
	"math"

	"github.com/houlsby/adapters/backend"
)

// fma32 returns a·b+c rounded once to float32: IEEE 754's binary32
// fusedMultiplyAdd, which the VFMADD*PS instructions of the assembly
// kernels compute. a·b is exact in float64 (24+24 significant bits), so s =
// a·b+c in float64 is rounded once; rounding s to float32 then gives the
// correctly rounded result unless s fell exactly halfway between two
// float32 values (a double rounding) or below the float32 normal range
// (where the halfway points have other bit patterns). In those rare cases
// s is first rounded to odd: its last bit forced to 1 when s is inexact,
// the exact error e coming from Knuth's TwoSum. Rounding to odd at 53 bits
// and then to nearest at 24 is correctly rounded because 53 >= 2·24+2
// (Boldo & Melquiond, "When double rounding is odd", 2005). Written out in
// one function, without calls, so that the compiler inlines it.
func fma32(a, b, c float32) float32 {
	p := float64(a) * float64(b) // exact
	s := p + float64(c)
	u := math.Float64bits(s)
	// Bits 0..28 of the float64 significand are the ones float32 drops;
	// exactly 1<<28 there is a halfway point. u<<1 drops the sign; 0x381
	// is the biased float64 exponent of 2⁻¹²⁶. (Inf and NaN match neither.)
	if u&(1<<29-1) == 1<<28 || u<<1 < 0x381<<53 {
		bb := s - p
		if e := (p - (s - bb)) + (float64(c) - bb); e != 0 && u&1 == 0 {
			// The float64 neighbours of the exact value are s and s ± 1 ulp
			// toward e; take the odd one.
			if (e > 0) == (s > 0) {
				u++
			} else {
				u--
			}
			s = math.Float64frombits(u)
		}
	}
	return float32(s)
}

// Constants of exp32: Cephes's expf (S. L. Moshier, Cephes Math Library
// 2.2, expf.c): Cody–Waite reduction x = k·ln2 + r with ln2 split into
// C1 = 0.693359375 (9 significant bits, so k·C1 is exact) and C2 =
// -2.12194440e-4, |r| <= ln2/2, then e^r ≈ 1 + r + r²·P(r) with Moshier's
// degree-5 minimax P (coefficients p0..p5, relative error of the
// polynomial about 1e-8 on [-ln2/2, ln2/2]). k is rounded to nearest by
// adding 1.5·2²³ (expShifter), whose float32 bits then hold k in the low
// mantissa bits; 2^k is built from the exponent bits k+127, clamped at 0
// so that k <= -127 gives exactly 0.
const (
	expLo      float32 = -88              // below: k <= -127, result 0
	expHi      float32 = 88.3762626647949 // Cephes MAXLOGF = ln(2^127.5): k <= 127
	expLog2e   float32 = 1.44269504088896341
	expShifter float32 = 0x1.8p23
	expC1      float32 = 0.693359375
	expC2      float32 = -2.12194440e-4
	expP0      float32 = 1.9875691500e-4
	expP1      float32 = 1.3981999507e-3
	expP2      float32 = 8.3334519073e-3
	expP3      float32 = 4.1665795894e-2
	expP4      float32 = 1.6666665459e-1
	expP5      float32 = 5.0000001201e-1
)

// exp32 is e^x in float32 (see the file comment for its accuracy and
// range). NaN propagates.
func exp32(x float32) float32 {
	// Clamps that let NaN through, as VMAXPS/VMINPS with x as the second
	// source operand do.
	if x < expLo {
		x = expLo
	}
	if x > expHi {
		x = expHi
	}
	t := fma32(x, expLog2e, expShifter) // 1.5·2²³ + round(x·log₂e)
	kf := t - expShifter
	r := fma32(kf, -expC1, x)
	r = fma32(kf, -expC2, r)
	p := fma32(expP0, r, expP1)
	p = fma32(p, r, expP2)
	p = fma32(p, r, expP3)
	p = fma32(p, r, expP4)
	p = fma32(p, r, expP5)
	r2 := r * r
	y := fma32(p, r2, r) + 1
	k := int32(math.Float32bits(t)-math.Float32bits(expShifter)) + 127
	if k < 0 {
		k = 0
	}
	return y * math.Float32frombits(uint32(k)<<23)
}

// Constants of erf32: Eigen's generic_fast_erf_float (Eigen 3.4,
// Eigen/src/Core/MathFunctionsImpl.h), an odd rational approximation
// erf(x) ≈ x·P(x²)/Q(x²) with P of degree 6 and Q of degree 4 in x², fitted
// for float32 evaluation, the argument clamped to [-4, 4] (past which erf
// is 1 to within 1.6e-8). The backend's earlier float64 erf used the same
// coefficients.
const (
	erfClamp float32 = 4
	erfA1    float32 = -1.60960333262415e-02
	erfA3    float32 = -2.95459980854025e-03
	erfA5    float32 = -7.34990630326855e-04
	erfA7    float32 = -5.69250639462346e-05
	erfA9    float32 = -2.10102402082508e-06
	erfA11   float32 = 2.77068142495902e-08
	erfA13   float32 = -2.72614225801306e-10
	erfB0    float32 = -1.42647390514189e-02
	erfB2    float32 = -7.37332916720468e-03
	erfB4    float32 = -1.68282697438203e-03
	erfB6    float32 = -2.13374055278905e-04
	erfB8    float32 = -1.45660718464996e-05
)

// Constants of GELU, and of the kernels' layout.
const (
	halfF32       float32 = 0.5
	rsqrt2F32     float32 = 1 / math.Sqrt2     // 1/√2
	rsqrt2PiF32   float32 = 0.3989422804014327 // 1/√(2π)
	negHalfF32    float32 = -0.5               // for -x²/2
	negInfF32bits uint32  = 0xff800000         // -Inf, the padding of exp tails
	// vecLanes is the number of partial sums of the reductions, and the
	// granule of the assembly kernels (one zmm, two ymm).
	vecLanes = 16
)

// erf32 is erf(x) in float32: Eigen's rational (above) evaluated by
// Horner's scheme with fused multiply-adds.
func erf32(x float32) float32 {
	if x < -erfClamp {
		x = -erfClamp
	}
	if x > erfClamp {
		x = erfClamp
	}
	y := x * x
	p := fma32(erfA13, y, erfA11)
	p = fma32(p, y, erfA9)
	p = fma32(p, y, erfA7)
	p = fma32(p, y, erfA5)
	p = fma32(p, y, erfA3)
	p = fma32(p, y, erfA1)
	p = x * p
	q := fma32(erfB8, y, erfB6)
	q = fma32(q, y, erfB4)
	q = fma32(q, y, erfB2)
	q = fma32(q, y, erfB0)
	return p / q
}

// gelu32 is the exact GELU x·Φ(x) = h + h·erf(x/√2) with h = x/2, the last
// step one fused multiply-add.
func gelu32(x float32) float32 {
	h := x * halfF32
	z := x * rsqrt2F32
	return fma32(h, erf32(z), h)
}

// geluGrad32 is d/dx x·Φ(x) = Φ(x) + x·φ(x), with Φ = 1/2 + erf(x/√2)/2
// and φ(x) = e^(-x²/2)/√(2π).
func geluGrad32(x float32) float32 {
	cdf := fma32(erf32(x*rsqrt2F32), halfF32, halfF32)
	y := (x * x) * negHalfF32
	px := x * exp32(y)
	return fma32(px, rsqrt2PiF32, cdf)
}

// lanes16Sum combines 16 partial sums in a fixed tree (lane j with j+8,
// then j+4, j+2, j+1), the order the assembly's horizontal reduction uses.
func lanes16Sum(l *[vecLanes]float32) float32 {
	var t [8]float32
	for j := 0; j < 8; j++ {
		t[j] = l[j] + l[j+8]
	}
	for j := 0; j < 4; j++ {
		t[j] += t[j+4]
	}
	for j := 0; j < 2; j++ {
		t[j] += t[j+2]
	}
	return t[0] + t[1]
}

// vecImpl is one implementation of the vector kernels: the plain Go loops
// (vecGoID) or an assembly instruction set. The slice functions below
// (geluVec, ...) take one and handle any length; the assembly entry points
// (vecmath_amd64.s, contracts at vecKernel* in vecmath_amd64.go) take raw
// pointers and a length that is a positive multiple of 16, and are called
// directly by instruction set (vecmath_amd64.go), not through function
// values, so that escape analysis sees they keep no pointer and nothing is
// allocated per call.
type vecImpl struct {
	name string
	id   vecID
}

// vecID names an implementation of the vector kernels.
type vecID int

const (
	vecGoID vecID = iota
	vecAVX2ID
	vecAVX512ID
)

// vecGo is the plain Go implementation, always available and the oracle
// the assembly is tested against.
var vecGo = &vecImpl{name: "go", id: vecGoID}

// vec is the implementation the backend uses: the widest this CPU runs
// (vecImpls is ordered narrowest first). All give the same bits.
var vec = vecImpls[len(vecImpls)-1]

// vecTable is the constant table of the assembly kernels: each constant
// repeated 16 times (64 bytes, one zmm or the first half for a ymm), in the
// order of the vt* indices, which vecmath_amd64.s mirrors with its C_*
// offsets. Built from the Go constants above, so both sides use the same
// bits.
var vecTable = func() []float32 {
	vals := [...]float32{
		vtHalf:     halfF32,
		vtRsqrt2:   rsqrt2F32,
		vtRsqrt2Pi: rsqrt2PiF32,
		vtNegHalf:  negHalfF32,
		vtOne:      1,
		vtErfLo:    -erfClamp,
		vtErfHi:    erfClamp,
		vtA1:       erfA1, vtA3: erfA3, vtA5: erfA5, vtA7: erfA7, vtA9: erfA9, vtA11: erfA11, vtA13: erfA13,
		vtB0: erfB0, vtB2: erfB2, vtB4: erfB4, vtB6: erfB6, vtB8: erfB8,
		vtExpLo: expLo, vtExpHi: expHi, vtLog2e: expLog2e, vtShifter: expShifter,
		vtNegC1: -expC1, vtNegC2: -expC2,
		vtP0: expP0, vtP1: expP1, vtP2: expP2, vtP3: expP3, vtP4: expP4, vtP5: expP5,
		vtI127: math.Float32frombits(127),
		vtZero: 0,
	}
	t := make([]float32, 0, len(vals)*vecLanes)
	for _, v := range vals {
		for j := 0; j < vecLanes; j++ {
			t = append(t, v)
		}
	}
	return t
}()

// Indices into vecTable (×64 bytes in the assembly).
const (
	vtHalf = iota
	vtRsqrt2
	vtRsqrt2Pi
	vtNegHalf
	vtOne
	vtErfLo
	vtErfHi
	vtA1
	vtA3
	vtA5
	vtA7
	vtA9
	vtA11
	vtA13
	vtB0
	vtB2
	vtB4
	vtB6
	vtB8
	vtExpLo
	vtExpHi
	vtLog2e
	vtShifter
	vtNegC1
	vtNegC2
	vtP0
	vtP1
	vtP2
	vtP3
	vtP4
	vtP5
	vtI127
	vtZero
)

// vecBuf carries the last n < 16 elements of a slice through an
// elementwise assembly kernel, padded to 16 (load), so they get the same
// vector code as the body.
type vecBuf [vecLanes]float32

func (b *vecBuf) load(src []float32, pad float32) *float32 {
	n := copy(b[:], src)
	for i := n; i < vecLanes; i++ {
		b[i] = pad
	}
	return &b[0]
}

// geluVec sets o[i] = gelu32(a[i]); o may alias a.
func geluVec(k *vecImpl, o, a []float32) {
	a = a[:len(o)]
	n := len(o)
	if k.id == vecGoID {
		for i, x := range a {
			o[i] = gelu32(x)
		}
		return
	}
	m := n &^ (vecLanes - 1)
	if m > 0 {
		vecKernelGelu(k.id, &o[0], &a[0], m)
	}
	if m < n {
		var b vecBuf
		p := b.load(a[m:], 0)
		vecKernelGelu(k.id, p, p, vecLanes)
		copy(o[m:], b[:])
	}
}

// geluGradMulVec sets o[i] = g[i]·geluGrad32(a[i]); o may alias g or a.
func geluGradMulVec(k *vecImpl, o, g, a []float32) {
	n := len(o)
	a, g = a[:n], g[:n]
	if k.id == vecGoID {
		for i, x := range a {
			o[i] = g[i] * geluGrad32(x)
		}
		return
	}
	m := n &^ (vecLanes - 1)
	if m > 0 {
		vecKernelGeluGradMul(k.id, &o[0], &g[0], &a[0], m)
	}
	if m < n {
		var ba, bg vecBuf
		pa, pg := ba.load(a[m:], 0), bg.load(g[m:], 0)
		vecKernelGeluGradMul(k.id, pa, pg, pa, vecLanes)
		copy(o[m:], ba[:])
	}
}

// expVec sets o[i] = exp32(a[i]); o may alias a.
func expVec(k *vecImpl, o, a []float32) {
	a = a[:len(o)]
	n := len(o)
	if k.id == vecGoID {
		for i, x := range a {
			o[i] = exp32(x)
		}
		return
	}
	m := n &^ (vecLanes - 1)
	if m > 0 {
		vecKernelExp(k.id, &o[0], &a[0], m)
	}
	if m < n {
		var b vecBuf
		p := b.load(a[m:], 0)
		vecKernelExp(k.id, p, p, vecLanes)
		copy(o[m:], b[:])
	}
}

// expSubSumVec sets x[i] = exp32(x[i]-m) and returns their sum, added in
// 16 lanes (element i into lane i mod 16) combined by lanes16Sum.
func expSubSumVec(k *vecImpl, x []float32, m float32) float32 {
	var acc [vecLanes]float32
	n := len(x)
	if k.id == vecGoID {
		for i, v := range x {
			e := exp32(v - m)
			x[i] = e
			acc[i%vecLanes] += e
		}
		return lanes16Sum(&acc)
	}
	nb := n &^ (vecLanes - 1)
	if nb > 0 {
		vecKernelExpSubSum(k.id, &x[0], nb, m, &acc)
	}
	if nb < n {
		// Padding -Inf gives exp = +0, which leaves its lane's sum as is.
		var b vecBuf
		p := b.load(x[nb:], math.Float32frombits(negInfF32bits))
		vecKernelExpSubSum(k.id, p, vecLanes, m, &acc)
		copy(x[nb:], b[:])
	}
	return lanes16Sum(&acc)
}

// maxVec returns the largest element of x that is greater than m (else
// m); NaN elements are ignored, as `if v > m { m = v }` does.
func maxVec(k *vecImpl, x []float32, m float32) float32 {
	n := len(x)
	nb := n &^ (vecLanes - 1)
	if k.id != vecGoID && nb > 0 {
		m = vecKernelMax(k.id, &x[0], nb, m)
		x = x[nb:]
	}
	for _, v := range x {
		if v > m {
			m = v
		}
	}
	return m
}

// dotVec returns Σ a[i]·b[i], accumulated with fused multiply-adds in 16
// lanes (element i into lane i mod 16) combined by lanes16Sum.
func dotVec(k *vecImpl, a, b []float32) float32 {
	var acc [vecLanes]float32
	n := len(a)
	b = b[:n]
	if k.id == vecGoID {
		for i, v := range a {
			acc[i%vecLanes] = fma32(v, b[i], acc[i%vecLanes])
		}
		return lanes16Sum(&acc)
	}
	nb := n &^ (vecLanes - 1)
	if nb > 0 {
		vecKernelDot(k.id, &a[0], &b[0], nb, &acc)
	}
	if nb < n {
		// Zero padding adds fma(0, 0, s) = s.
		var ba, bb vecBuf
		vecKernelDot(k.id, ba.load(a[nb:], 0), bb.load(b[nb:], 0), vecLanes, &acc)
	}
	return lanes16Sum(&acc)
}

// softmaxGradVec sets o[i] = (p[i]·(g[i]-d))·s; o may alias g or p.
func softmaxGradVec(k *vecImpl, o, g, p []float32, d, s float32) {
	n := len(o)
	g, p = g[:n], p[:n]
	nb := n &^ (vecLanes - 1)
	if k.id != vecGoID && nb > 0 {
		vecKernelSoftmaxGrad(k.id, &o[0], &g[0], &p[0], nb, d, s)
	} else {
		nb = 0
	}
	for i := nb; i < n; i++ {
		// Explicit conversion: no fused multiply-add, as in the assembly.
		o[i] = float32(p[i]*(g[i]-d)) * s
	}
}

// scaleVec multiplies x by s.
func scaleVec(k *vecImpl, x []float32, s float32) {
	n := len(x)
	nb := n &^ (vecLanes - 1)
	if k.id != vecGoID && nb > 0 {
		vecKernelScale(k.id, &x[0], nb, s)
	} else {
		nb = 0
	}
	for i := nb; i < n; i++ {
		x[i] *= s
	}
}

// actVec sets o[i] = act(a[i]) (see backend.Act); o may alias a.
func actVec(k *vecImpl, act backend.Act, o, a []float32) {
	a = a[:len(o)]
	switch act {
	case backend.GELU:
		geluVec(k, o, a)
	case backend.Swish:
		swishVec(k, o, a, nil)
	case backend.ReLU:
		reluVec(k, o, a)
	default:
		panic(fmt.Sprintf("cpu: unknown activation %v", act))
	}
}

// actGradMulVec sets o[i] = g[i]·act'(a[i]), from the forward's input a
// (ReLU'(0) = 0, as in PyTorch); o may alias g or a.
func actGradMulVec(k *vecImpl, act backend.Act, o, g, a []float32) {
	n := len(o)
	a, g = a[:n], g[:n]
	switch act {
	case backend.GELU:
		geluGradMulVec(k, o, g, a)
	case backend.Swish:
		swishVec(k, o, a, g)
	case backend.ReLU:
		reluGradMulVec(k, o, g, a)
	default:
		panic(fmt.Sprintf("cpu: unknown activation %v", act))
	}
}

// swishVec sets o[i] = a[i]·σ(a[i]) when g is nil, else o[i] =
// g[i]·swish'(a[i]) with swish' = σ·(1 + x·(1-σ)); o may alias a or g.
// σ(x) is 1/(1+e) for x >= 0 and e/(1+e) below, with e = exp32(-|x|) <= 1
// from the vector kernel, so no exp ever overflows; it is a few roundings
// from σ (exp32's 2 ulp, the sum and the division).
func swishVec(k *vecImpl, o, a, g []float32) {
	var e [4 * vecLanes]float32
	for lo := 0; lo < len(o); lo += len(e) {
		n := min(len(e), len(o)-lo)
		as, os := a[lo:lo+n], o[lo:lo+n]
		for i, x := range as {
			e[i] = -float32(math.Abs(float64(x)))
		}
		expVec(k, e[:n], e[:n])
		for i, x := range as {
			var s float32
			if x >= 0 {
				s = 1 / (1 + e[i])
			} else {
				s = e[i] / (1 + e[i])
			}
			if g == nil {
				os[i] = x * s
			} else {
				// Explicit conversions: no fused multiply-add.
				os[i] = g[lo+i] * float32(s*float32(1+float32(x*(1-s))))
			}
		}
	}
}

// lanes16Sum64 is lanes16Sum for float64 lanes.
func lanes16Sum64(l *[vecLanes]float64) float64 {
	var t [8]float64
	for j := 0; j < 8; j++ {
		t[j] = l[j] + l[j+8]
	}
	for j := 0; j < 4; j++ {
		t[j] += t[j+4]
	}
	for j := 0; j < 2; j++ {
		t[j] += t[j+2]
	}
	return t[0] + t[1]
}

// The kernels below contain no fused multiply-add: each Go loop is
// bitwise the assembly's result as written (explicit float32/float64
// conversions keep the compiler from fusing a multiply into an add), so
// the assembly takes whole blocks of 16 and Go does the rest.

// addVec sets o[i] = a[i] + b[i]; o may alias a or b.
func addVec(k *vecImpl, o, a, b []float32) {
	n := len(o)
	a, b = a[:n], b[:n]
	nb := n &^ (vecLanes - 1)
	if k.id == vecGoID || nb == 0 {
		nb = 0
	} else {
		vecKernelAdd(k.id, &o[0], &a[0], &b[0], nb)
	}
	for i := nb; i < n; i++ {
		o[i] = a[i] + b[i]
	}
}

// reluVec sets o[i] = a[i] if a[i] > 0, else +0 (NaN gives 0); o may alias
// a.
func reluVec(k *vecImpl, o, a []float32) {
	n := len(o)
	a = a[:n]
	nb := n &^ (vecLanes - 1)
	if k.id == vecGoID || nb == 0 {
		nb = 0
	} else {
		vecKernelRelu(k.id, &o[0], &a[0], nb)
	}
	for i := nb; i < n; i++ {
		if z := a[i]; z > 0 {
			o[i] = z
		} else {
			o[i] = 0
		}
	}
}

// reluGradMulVec sets o[i] = g[i] if a[i] > 0, else +0; o may alias g or
// a.
func reluGradMulVec(k *vecImpl, o, g, a []float32) {
	n := len(o)
	g, a = g[:n], a[:n]
	nb := n &^ (vecLanes - 1)
	if k.id == vecGoID || nb == 0 {
		nb = 0
	} else {
		vecKernelReluGradMul(k.id, &o[0], &g[0], &a[0], nb)
	}
	for i := nb; i < n; i++ {
		if a[i] > 0 {
			o[i] = g[i]
		} else {
			o[i] = 0
		}
	}
}

// lnStats returns the mean of x and the reciprocal standard deviation
// 1/√(var + eps), both accumulated in float64 (16 lanes each: Σ x, then
// Σ (x - mean)² with the float64 mean) and rounded to float32.
func lnStats(k *vecImpl, x []float32, eps float32) (mean, rstd float32) {
	n := len(x)
	nb := n &^ (vecLanes - 1)
	if k.id == vecGoID {
		nb = 0
	}
	var acc [vecLanes]float64
	if nb > 0 {
		vecKernelSum64(k.id, &x[0], nb, &acc)
	}
	for i := nb; i < n; i++ {
		acc[i%vecLanes] += float64(x[i])
	}
	m := lanes16Sum64(&acc) / float64(n)
	acc = [vecLanes]float64{}
	if nb > 0 {
		vecKernelSumSqDev64(k.id, &x[0], nb, m, &acc)
	}
	for i := nb; i < n; i++ {
		d := float64(x[i]) - m
		acc[i%vecLanes] += float64(d * d)
	}
	r := 1 / math.Sqrt(lanes16Sum64(&acc)/float64(n)+float64(eps))
	return float32(m), float32(r)
}

// lnApplyVec sets o[i] = ((x[i]-m)·r)·w[i] + b[i].
func lnApplyVec(k *vecImpl, o, x, w, b []float32, m, r float32) {
	n := len(o)
	x, w, b = x[:n], w[:n], b[:n]
	nb := n &^ (vecLanes - 1)
	if k.id == vecGoID || nb == 0 {
		nb = 0
	} else {
		vecKernelLNApply(k.id, &o[0], &x[0], &w[0], &b[0], nb, m, r)
	}
	for i := nb; i < n; i++ {
		o[i] = float32(float32((x[i]-m)*r)*w[i]) + b[i]
	}
}

// lnGradSums returns Σ g·w and Σ (g·w)·x̂ with x̂ = (x-m)·r, accumulated in
// float64 (16 lanes each; the products of float32 values are exact in
// float64) and rounded to float32. float64 here, as for the forward's
// statistics: with float32 sums the ten-step training trajectory of
// tests/trainstep_parity_test.go drifted from PyTorch's float64 run more
// than PyTorch's float32 run does.
func lnGradSums(k *vecImpl, g, x, w []float32, m, r float32) (sg, sgx float32) {
	n := len(g)
	x, w = x[:n], w[:n]
	nb := n &^ (vecLanes - 1)
	if k.id == vecGoID {
		nb = 0
	}
	var a, b [vecLanes]float64
	m64, r64 := float64(m), float64(r)
	if nb > 0 {
		vecKernelLNGradSums(k.id, &g[0], &w[0], &x[0], nb, m64, r64, &a, &b)
	}
	for i := nb; i < n; i++ {
		gw := float64(g[i]) * float64(w[i])
		a[i%vecLanes] += gw
		b[i%vecLanes] += float64(gw * float64((float64(x[i])-m64)*r64))
	}
	return float32(lanes16Sum64(&a)), float32(lanes16Sum64(&b))
}

// lnGradRowVec sets o[i] = r·((g[i]·w[i] - sg) - x̂[i]·sgx), x̂ = (x-m)·r:
// LayerNorm's input gradient given the row means sg, sgx; o may alias g.
func lnGradRowVec(k *vecImpl, o, g, x, w []float32, m, r, sg, sgx float32) {
	n := len(o)
	g, x, w = g[:n], x[:n], w[:n]
	nb := n &^ (vecLanes - 1)
	if k.id == vecGoID || nb == 0 {
		nb = 0
	} else {
		vecKernelLNGradRow(k.id, &o[0], &g[0], &x[0], &w[0], nb, m, r, sg, sgx)
	}
	for i := nb; i < n; i++ {
		xs := float32((x[i]-m)*r) * sgx
		o[i] = r * (float32(float32(g[i]*w[i])-sg) - xs)
	}
}

// lnParamRowVec adds one row's LayerNorm parameter gradients:
// sw[i] += g[i]·((x[i]-m)·r), sb[i] += g[i].
func lnParamRowVec(k *vecImpl, sw, sb, g, x []float32, m, r float32) {
	n := len(sw)
	sb, g, x = sb[:n], g[:n], x[:n]
	nb := n &^ (vecLanes - 1)
	if k.id == vecGoID || nb == 0 {
		nb = 0
	} else {
		vecKernelLNParamRow(k.id, &sw[0], &sb[0], &g[0], &x[0], nb, m, r)
	}
	for i := nb; i < n; i++ {
		sw[i] += float32(g[i] * float32((x[i]-m)*r))
		sb[i] += g[i]
	}
}
