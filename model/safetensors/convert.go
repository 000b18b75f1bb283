package safetensors

import (
	"encoding/binary"
	"fmt"
	"math"
)

// DecodeF32 converts little-endian F32 bytes into dst (len(src) == 4*len(dst)).
func DecodeF32(dst []float32, src []byte) {
	checkLen("DecodeF32", len(dst), len(src), 4)
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
}

// DecodeBF16 converts little-endian bfloat16 bytes into dst; exact, since
// bfloat16 is the top half of a float32.
func DecodeBF16(dst []float32, src []byte) {
	checkLen("DecodeBF16", len(dst), len(src), 2)
	for i := range dst {
		dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(src[2*i:])) << 16)
	}
}

// DecodeF16 converts little-endian IEEE half-precision bytes into dst; exact,
// including subnormals, infinities and NaN payloads.
func DecodeF16(dst []float32, src []byte) {
	checkLen("DecodeF16", len(dst), len(src), 2)
	for i := range dst {
		dst[i] = F16ToFloat32(binary.LittleEndian.Uint16(src[2*i:]))
	}
}

// EncodeF32 converts src to little-endian F32 bytes (len(dst) == 4*len(src)).
func EncodeF32(dst []byte, src []float32) {
	checkLen("EncodeF32", len(src), len(dst), 4)
	for i, v := range src {
		binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
	}
}

// F32Tensor is a NamedTensor holding a copy of data as F32.
func F32Tensor(name string, shape []int, data []float32) NamedTensor {
	b := make([]byte, 4*len(data))
	EncodeF32(b, data)
	return NamedTensor{Name: name, DType: F32, Shape: append([]int(nil), shape...), Data: b}
}

// F16ToFloat32 widens one IEEE 754 binary16 value.
func F16ToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // inf or NaN: keep the payload
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp != 0: // normal: rebias 15 -> 127
		return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
	case mant == 0: // signed zero
		return math.Float32frombits(sign)
	}
	// Subnormal half: mant * 2^-24, normal as a float32. Normalise: shift the
	// leading one into bit 10.
	e := uint32(127 - 15 + 1)
	for mant&0x400 == 0 {
		mant <<= 1
		e--
	}
	return math.Float32frombits(sign | e<<23 | (mant&0x3ff)<<13)
}

func checkLen(fn string, n, nbytes, size int) {
	if nbytes != n*size {
		panic(fmt.Sprintf("safetensors: %s: %d elements need %d bytes, got %d", fn, n, n*size, nbytes))
	}
}
