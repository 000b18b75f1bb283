package gpu

// Host↔device copies with dtype conversion. Host-side conversions (Upload,
// Download, Copy between dtypes):
//   - F32 → BF16 rounds to nearest, ties to even, keeping NaN a NaN (a quiet
//     NaN with the top of its payload), as torch's and CUDA's __float2bfloat16;
//   - F32 → F16 rounds to nearest, ties to even, with IEEE overflow to ±Inf
//     and gradual underflow (subnormals);
//   - BF16/F16 → F32 is exact.
//
// Copy between F32 and BF16 stays on the device (convert_* kernels).

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/houlsby/adapters/backend"
)

// stage returns the host staging buffer with n bytes.
func (b *Backend) stage(n int) []byte {
	if cap(b.host) < n {
		b.host = make([]byte, n)
	}
	return b.host[:n]
}

// Upload copies host floats into t (len(src) must equal t.Len()), converting
// to t's dtype on the host (see the top of this file for the rounding).
func (b *Backend) Upload(t backend.Tensor, src []float32) error {
	g, err := devTensor("gpu.Upload", "t", t)
	if err != nil {
		return err
	}
	if !isFloat(g.dt) {
		return fmt.Errorf("gpu.Upload: t has dtype %v, want a floating-point dtype (use UploadInt32)", g.dt)
	}
	if len(src) != g.n {
		return fmt.Errorf("gpu.Upload: src has %d elements, t %v has %d", len(src), g.shape, g.n)
	}
	if g.n == 0 {
		return nil
	}
	buf := b.stage(g.n * g.dt.Size())
	encodeFloats(buf, src, g.dt)
	if err := b.dev.HtoD(g.Ptr, buf); err != nil {
		return fmt.Errorf("gpu.Upload %v %v: %w", g.dt, g.shape, err)
	}
	return nil
}

// UploadInt32 copies host ints into an I32 tensor (len(src) == t.Len()).
func (b *Backend) UploadInt32(t backend.Tensor, src []int32) error {
	g, err := devTensor("gpu.UploadInt32", "t", t)
	if err != nil {
		return err
	}
	if g.dt != backend.I32 {
		return fmt.Errorf("gpu.UploadInt32: t has dtype %v, want I32", g.dt)
	}
	if len(src) != g.n {
		return fmt.Errorf("gpu.UploadInt32: src has %d elements, t %v has %d", len(src), g.shape, g.n)
	}
	if g.n == 0 {
		return nil
	}
	b.wrote(g.Ptr, 4*g.n)
	buf := b.stage(4 * g.n)
	for i, v := range src {
		binary.LittleEndian.PutUint32(buf[4*i:], uint32(v))
	}
	if err := b.dev.HtoD(g.Ptr, buf); err != nil {
		return fmt.Errorf("gpu.UploadInt32 %v: %w", g.shape, err)
	}
	b.rememberInts(g.Ptr, src)
	return nil
}

// Download copies t into dst (len(dst) == t.Len()), converting to float32.
// It waits for the work queued before it (a device fault surfaces here).
func (b *Backend) Download(dst []float32, t backend.Tensor) error {
	g, err := devTensor("gpu.Download", "t", t)
	if err != nil {
		return err
	}
	if !isFloat(g.dt) {
		return fmt.Errorf("gpu.Download: t has dtype %v, want a floating-point dtype (use DownloadInt32)", g.dt)
	}
	if len(dst) != g.n {
		return fmt.Errorf("gpu.Download: dst has %d elements, t %v has %d", len(dst), g.shape, g.n)
	}
	if g.n == 0 {
		return nil
	}
	buf := b.stage(g.n * g.dt.Size())
	if err := b.dev.DtoH(buf, g.Ptr); err != nil {
		return fmt.Errorf("gpu.Download %v %v: %w", g.dt, g.shape, err)
	}
	decodeFloats(dst, buf, g.dt)
	return nil
}

// DownloadInt32 copies an I32 tensor to the host (len(dst) == t.Len()).
func (b *Backend) DownloadInt32(dst []int32, t backend.Tensor) error {
	g, err := devTensor("gpu.DownloadInt32", "t", t)
	if err != nil {
		return err
	}
	if g.dt != backend.I32 {
		return fmt.Errorf("gpu.DownloadInt32: t has dtype %v, want I32", g.dt)
	}
	if len(dst) != g.n {
		return fmt.Errorf("gpu.DownloadInt32: dst has %d elements, t %v has %d", len(dst), g.shape, g.n)
	}
	if g.n == 0 {
		return nil
	}
	buf := b.stage(4 * g.n)
	if err := b.dev.DtoH(buf, g.Ptr); err != nil {
		return fmt.Errorf("gpu.DownloadInt32 %v: %w", g.shape, err)
	}
	for i := range dst {
		dst[i] = int32(binary.LittleEndian.Uint32(buf[4*i:]))
	}
	return nil
}

// Copy copies src into dst. Both must have the same length; floating-point
// dtypes convert into each other (rounding to nearest even, as Upload does),
// I32 copies only to I32. Same-dtype copies and F32↔BF16 conversions stay on
// the device, queued on the stream (kernels convert_f32_bf16 and
// convert_bf16_f32 of kernels/elementwise.cu). Conversions involving F16,
// which no kernel handles, go through the host (a Download and an Upload):
// exact but synchronous, meant for setup, not for the training step.
func (b *Backend) Copy(dst, src backend.Tensor) error {
	d, err := devTensor("gpu.Copy", "dst", dst)
	if err != nil {
		return err
	}
	s, err := devTensor("gpu.Copy", "src", src)
	if err != nil {
		return err
	}
	if d.n != s.n {
		return fmt.Errorf("gpu.Copy: dst %v has %d elements, src %v has %d", d.shape, d.n, s.shape, s.n)
	}
	if (d.dt == backend.I32) != (s.dt == backend.I32) {
		return fmt.Errorf("gpu.Copy: cannot copy %v into %v", s.dt, d.dt)
	}
	if d.n == 0 {
		return nil
	}
	b.wrote(d.Ptr, d.n*d.dt.Size())
	if d.dt == s.dt {
		if d.Ptr == s.Ptr {
			return nil
		}
		if err := b.dev.DtoD(d.Ptr, s.Ptr, d.n*d.dt.Size()); err != nil {
			return fmt.Errorf("gpu.Copy %v %v: %w", d.dt, d.shape, err)
		}
		return nil
	}
	if k, ok := convertKernel(d.dt, s.dt); ok {
		if err := b.dev.Launch(k.name, grid1D(d.n), b1(block1D), 0, Ptr(d.Ptr), Ptr(s.Ptr), Int(d.n)); err != nil {
			return fmt.Errorf("gpu.Copy %v→%v %v: kernel %s: %w", s.dt, d.dt, d.shape, k.name, err)
		}
		return nil
	}
	if cap(b.hostF) < s.n {
		b.hostF = make([]float32, s.n)
	}
	f := b.hostF[:s.n]
	if err := b.Download(f, s); err != nil {
		return fmt.Errorf("gpu.Copy %v→%v: %w", s.dt, d.dt, err)
	}
	if err := b.Upload(d, f); err != nil {
		return fmt.Errorf("gpu.Copy %v→%v: %w", s.dt, d.dt, err)
	}
	return nil
}

// convertKernel returns the device kernel converting src into dst, if any.
func convertKernel(dst, src backend.DType) (kernel, bool) {
	switch {
	case dst == backend.BF16 && src == backend.F32:
		return kToBF16.of(), true
	case dst == backend.F32 && src == backend.BF16:
		return kToF32.of(), true
	}
	return kernel{}, false
}

// encodeFloats writes src into buf (len(src)·dt.Size() bytes, little endian)
// in dtype dt.
func encodeFloats(buf []byte, src []float32, dt backend.DType) {
	switch dt {
	case backend.F32:
		for i, x := range src {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(x))
		}
	case backend.BF16:
		for i, x := range src {
			binary.LittleEndian.PutUint16(buf[2*i:], F32ToBF16(x))
		}
	case backend.F16:
		for i, x := range src {
			binary.LittleEndian.PutUint16(buf[2*i:], F32ToF16(x))
		}
	default:
		panic(fmt.Sprintf("gpu: encodeFloats of dtype %v", dt))
	}
}

// decodeFloats reads len(dst) elements of dtype dt from buf into dst.
func decodeFloats(dst []float32, buf []byte, dt backend.DType) {
	switch dt {
	case backend.F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:]))
		}
	case backend.BF16:
		for i := range dst {
			dst[i] = BF16ToF32(binary.LittleEndian.Uint16(buf[2*i:]))
		}
	case backend.F16:
		for i := range dst {
			dst[i] = F16ToF32(binary.LittleEndian.Uint16(buf[2*i:]))
		}
	default:
		panic(fmt.Sprintf("gpu: decodeFloats of dtype %v", dt))
	}
}

// F32ToBF16 rounds x to the nearest bfloat16 (ties to even). NaN stays NaN:
// the top 16 bits are kept and the quiet bit set, so rounding cannot carry a
// NaN payload into the exponent and turn it into an infinity.
func F32ToBF16(x float32) uint16 {
	u := math.Float32bits(x)
	if u&0x7fffffff > 0x7f800000 { // NaN
		return uint16(u>>16) | 0x0040
	}
	// Round to nearest even: add 0x7fff plus the lowest kept bit, then
	// truncate. A carry out of the mantissa correctly bumps the exponent
	// (and rounds the largest finite values up to ±Inf, as IEEE does).
	u += 0x7fff + (u>>16)&1
	return uint16(u >> 16)
}

// BF16ToF32 widens a bfloat16 to float32 (exact).
func BF16ToF32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// F32ToF16 rounds x to the nearest IEEE binary16 (ties to even), with
// overflow to ±Inf, gradual underflow, and NaN kept a (quiet) NaN.
func F32ToF16(x float32) uint16 {
	u := math.Float32bits(x)
	sign := uint16(u>>16) & 0x8000
	exp := int(u>>23) & 0xff
	mant := u & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00 | uint16(mant>>13)
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15 // binary16 biased exponent
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e >= 1 { // normal: keep 10 of 23 mantissa bits
		h := uint32(e)<<10 | mant>>13
		rem := mant & 0x1fff
		if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
			h++ // may carry into the exponent, up to 0x7c00 = Inf: correct
		}
		return sign | uint16(h)
	}
	// Subnormal or zero: the value is m·2^(e-15-23) with the implicit bit,
	// in units of 2^-24 that is m >> (14-e).
	if e < -10 {
		return sign // below half the smallest subnormal: rounds to ±0
	}
	m := mant | 0x800000
	shift := uint(14 - e)
	h := m >> shift
	rem := m & (1<<shift - 1)
	half := uint32(1) << (shift - 1)
	if rem > half || (rem == half && h&1 == 1) {
		h++ // may become the smallest normal (0x400): correct
	}
	return sign | uint16(h)
}

// F16ToF32 widens an IEEE binary16 to float32 (exact).
func F16ToF32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch exp {
	case 0:
		f := float32(mant) * 0x1p-24
		if sign != 0 {
			f = -f
		}
		return f
	case 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}
