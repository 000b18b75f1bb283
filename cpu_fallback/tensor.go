package cpu

import (
	"fmt"
	"math"

	"github.com/houlsby/adapters/backend"
)

// Tensor is the CPU backend's tensor. F32, BF16 and F16 tensors keep their
// elements in Data as float32; I32 tensors keep them in Ints. Views alias
// their parent's slice.
//
// BF16 and F16 are storage formats here only: Upload and Copy into such a
// tensor round every value to the nearest representable bf16/f16 value
// (round to nearest even), so a caller sees the precision it asked for, but
// ops compute and store float32 results. The CPU backend's FrozenDType is F32,
// so these dtypes only appear when a caller asks for them explicitly.
type Tensor struct {
	// Data holds the elements of a floating-point tensor (nil for I32).
	Data []float32
	// Ints holds the elements of an I32 tensor (nil otherwise).
	Ints  []int32
	shape []int
	dt    backend.DType
	n     int
	view  bool
}

// Shape returns the tensor's shape. The caller must not modify it.
func (t *Tensor) Shape() []int { return t.shape }

// DType returns the element type the tensor was created with.
func (t *Tensor) DType() backend.DType { return t.dt }

// Len is the number of elements (the product of the shape).
func (t *Tensor) Len() int { return t.n }

// String describes the tensor for error messages and debugging.
func (t *Tensor) String() string {
	return fmt.Sprintf("cpu.Tensor(%v %v)", t.dt, t.shape)
}

// shapeLen validates dims and returns their product.
func shapeLen(op string, shape []int) (int, error) {
	n := 1
	for i, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("%s: dimension %d is negative (%d) in shape %v", op, i, d, shape)
		}
		if d != 0 && n > math.MaxInt32*16/d {
			return 0, fmt.Errorf("%s: shape %v is too large", op, shape)
		}
		n *= d
	}
	return n, nil
}

func isFloat(dt backend.DType) bool {
	return dt == backend.F32 || dt == backend.BF16 || dt == backend.F16
}

// roundBF16 rounds x to the nearest bfloat16 value (ties to even), keeping
// NaN a NaN.
func roundBF16(x float32) float32 {
	b := math.Float32bits(x)
	if b&0x7f800000 == 0x7f800000 { // Inf or NaN: truncation keeps the class
		if b&0x007fffff != 0 {
			return x
		}
		return x
	}
	b += 0x7fff + (b>>16)&1
	return math.Float32frombits(b & 0xffff0000)
}

// roundF16 rounds x to the nearest IEEE half-precision value (ties to even),
// with overflow to ±Inf and gradual underflow (subnormal step 2⁻²⁴).
func roundF16(x float32) float32 {
	if x != x || math.IsInf(float64(x), 0) {
		return x
	}
	ax := math.Abs(float64(x))
	if ax < 0x1p-14 { // subnormal range of f16: multiples of 2⁻²⁴
		return float32(math.RoundToEven(float64(x)*0x1p24) * 0x1p-24)
	}
	b := math.Float32bits(x)
	b += 0xfff + (b>>13)&1 // keep 10 mantissa bits out of 23
	b &= 0xffffe000
	r := math.Float32frombits(b)
	if math.Abs(float64(r)) > 65504 { // largest finite f16
		return float32(math.Copysign(math.Inf(1), float64(x)))
	}
	return r
}

// roundTo rounds v in place to dt's precision (a no-op for F32).
func roundTo(dt backend.DType, v []float32) {
	switch dt {
	case backend.BF16:
		for i, x := range v {
			v[i] = roundBF16(x)
		}
	case backend.F16:
		for i, x := range v {
			v[i] = roundF16(x)
		}
	}
}
