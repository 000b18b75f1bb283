package cpu

import "math"

// erf approximates the error function with the odd rational minimax
// approximation of Eigen's generic_fast_erf_float (numerator degree 13,
// denominator degree 8 in x, argument clamped to [-4, 4] where erf is 1 to
// within 2e-8), evaluated in float64. Against math.Erf its absolute error is
// below 9.5e-8 (0.8 float32 ulp at 1) over [-8, 8] (TestErfAccuracy), at a
// fraction of the cost of math.Erf.
func erf(x float64) float64 {
	// Branches, not the builtin min/max: those handle NaN and signed zeros
	// and cost about 1.5× the whole polynomial here. NaN passes through.
	if x > 4 {
		x = 4
	} else if x < -4 {
		x = -4
	}
	// Estrin's scheme (independent pairs, then powers of x²) rather than
	// Horner's: half the dependent chain, so neighbouring elements overlap.
	y := x * x
	y2 := y * y
	y4 := y2 * y2
	p := (-1.60960333262415e-02 + -2.95459980854025e-03*y) +
		y2*(-7.34990630326855e-04+-5.69250639462346e-05*y) +
		y4*((-2.10102402082508e-06+2.77068142495902e-08*y)+y2*-2.72614225801306e-10)
	q := (-1.42647390514189e-02 + -7.37332916720468e-03*y) +
		y2*(-1.68282697438203e-03+-2.13374055278905e-04*y) +
		y4*-1.45660718464996e-05
	return x * p / q
}

// invSqrt2Pi is 1/√(2π), the normal density at 0.
const invSqrt2Pi = 0.3989422804014327

// gelu is the exact GELU x·Φ(x) = x/2·(1+erf(x/√2)).
func gelu(x float32) float32 {
	xd := float64(x)
	return float32(0.5 * xd * (1 + erf(xd*(1/math.Sqrt2))))
}

// geluGrad is d/dx x·Φ(x) = Φ(x) + x·φ(x).
func geluGrad(x float32) float32 {
	xd := float64(x)
	cdf := 0.5 * (1 + erf(xd*(1/math.Sqrt2)))
	return float32(cdf + xd*invSqrt2Pi*exp(-0.5*xd*xd))
}

// sigmoid is 1/(1+e^-x) in float64.
func sigmoid(x float32) float64 { return 1 / (1 + exp(-float64(x))) }

// Constants of exp: log₂e, ln2 split into a high part with 32 trailing zero
// bits (so k·ln2Hi is exact for |k| < 2²⁰) and the rest (Cody & Waite), and
// the round-to-nearest shifter 1.5·2⁵².
const (
	log2e    = 1.4426950408889634
	ln2Hi    = 6.93147180369123816490e-01
	ln2Lo    = 1.90821492927058770002e-10
	shifter  = 0x1.8p52
	expUnder = -104.0 // e^-104 < 2⁻¹⁴⁹/2: rounds to 0 in float32
	expOver  = 89.0   // e^89 > MaxFloat32: +Inf in float32
)

// exp is e^x for results meant for float32: Cody-Waite reduction
// x = k·ln2 + r with |r| <= ln2/2, then the degree-7 Taylor polynomial (Estrin) of
// e^r, whose truncation error r⁸/8! <= 5.3e-9 (relative) is a tenth of a
// float32 ulp; evaluated in float64. Below -104 it returns 0 and above 89
// +Inf (both what float32 rounding gives). NaN propagates. Much faster than
// math.Exp (TestExpAccuracy checks the error bound).
func exp(x float64) float64 {
	if !(x > expUnder) { // also NaN
		if x != x {
			return x
		}
		return 0
	}
	if x > expOver {
		return math.Inf(1)
	}
	k := (x*log2e + shifter) - shifter // round(x/ln2)
	r := (x - k*ln2Hi) - k*ln2Lo
	r2 := r * r
	r4 := r2 * r2
	p := (1 + r) + r2*(0.5+r*(1.0/6)) + r4*((1.0/24+r*(1.0/120))+r2*(1.0/720+r*(1.0/5040)))
	return p * math.Float64frombits(uint64(int64(k)+1023)<<52)
}

// The slice kernels below are erf and exp written out inside their loops:
// the Go compiler does not inline erf or exp (too large), and the call plus
// reloading the constants costs about twice the arithmetic. They compute
// the same expressions as gelu, geluGrad and exp (TestSliceKernels).

// geluSlice sets o[i] = gelu(a[i]); o may alias a.
func geluSlice(o, a []float32) {
	a = a[:len(o)]
	for i, xf := range a {
		x := float64(xf) * (1 / math.Sqrt2)
		if x > 4 {
			x = 4
		} else if x < -4 {
			x = -4
		}
		// Estrin's scheme (independent pairs, then powers of x²) rather than
		// Horner's: half the dependent chain, so neighbouring elements overlap.
		y := x * x
		y2 := y * y
		y4 := y2 * y2
		p := (-1.60960333262415e-02 + -2.95459980854025e-03*y) +
			y2*(-7.34990630326855e-04+-5.69250639462346e-05*y) +
			y4*((-2.10102402082508e-06+2.77068142495902e-08*y)+y2*-2.72614225801306e-10)
		q := (-1.42647390514189e-02 + -7.37332916720468e-03*y) +
			y2*(-1.68282697438203e-03+-2.13374055278905e-04*y) +
			y4*-1.45660718464996e-05
		o[i] = float32(0.5 * float64(xf) * (1 + x*p/q))
	}
}

// geluGradMulSlice sets o[i] = g[i]·gelu'(a[i]); o may alias g or a.
func geluGradMulSlice(o, g, a []float32) {
	a, g = a[:len(o)], g[:len(o)]
	for i, xf := range a {
		xd := float64(xf)
		x := xd * (1 / math.Sqrt2)
		if x > 4 {
			x = 4
		} else if x < -4 {
			x = -4
		}
		// Estrin's scheme (independent pairs, then powers of x²) rather than
		// Horner's: half the dependent chain, so neighbouring elements overlap.
		y := x * x
		y2 := y * y
		y4 := y2 * y2
		p := (-1.60960333262415e-02 + -2.95459980854025e-03*y) +
			y2*(-7.34990630326855e-04+-5.69250639462346e-05*y) +
			y4*((-2.10102402082508e-06+2.77068142495902e-08*y)+y2*-2.72614225801306e-10)
		q := (-1.42647390514189e-02 + -7.37332916720468e-03*y) +
			y2*(-1.68282697438203e-03+-2.13374055278905e-04*y) +
			y4*-1.45660718464996e-05
		cdf := 0.5 * (1 + x*p/q)
		// φ(x)·√(2π) = e^(-x²/2), exp as in exp().
		e := -0.5 * xd * xd
		var pdf float64
		if e > expUnder {
			k := (e*log2e + shifter) - shifter
			r := (e - k*ln2Hi) - k*ln2Lo
			r2 := r * r
			r4 := r2 * r2
			s := (1 + r) + r2*(0.5+r*(1.0/6)) + r4*((1.0/24+r*(1.0/120))+r2*(1.0/720+r*(1.0/5040)))
			pdf = s * math.Float64frombits(uint64(int64(k)+1023)<<52)
		} else if e != e {
			pdf = e
		}
		o[i] = g[i] * float32(cdf+xd*invSqrt2Pi*pdf)
	}
}
