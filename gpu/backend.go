package gpu

// This file is the core of the CUDA backend: memory (a caching pool over the
// Device), host↔device copies with dtype conversion, and the non-op methods
// of backend.Backend. The ops (Gemm, LayerNorm, attention, the adapter, ...)
// are launchers in ops_*.go, methods on the same Backend.
//
// Host-side conversions (Upload, Download, Copy between dtypes):
//   - F32 → BF16 rounds to nearest, ties to even, keeping NaN a NaN (a quiet
//     NaN with the top of its payload), as torch's and CUDA's __float2bfloat16;
//   - F32 → F16 rounds to nearest, ties to even, with IEEE overflow to ±Inf
//     and gradual underflow (subnormals);
//   - BF16/F16 → F32 is exact.
//
// The Backend is not safe for concurrent use: one goroutine drives it (the
// training loop), as one CUDA stream orders its work.

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"sort"

	"github.com/houlsby/adapters/backend"
)

// Options configures New.
type Options struct {
	// BF16 selects bf16 storage for frozen weights and activations (the
	// GPU's default through Open); false keeps them in F32, which is slower
	// but numerically closest to the CPU backend.
	BF16 bool
}

// Backend is the CUDA backend: backend.Backend over a Device (the real GPU,
// package cuda, or the kernel emulator, package gpu/emu).
type Backend struct {
	dev  Device
	opts Options
	pool pool
	// closeDev is set when the Backend owns dev (Open made it) and Close
	// must close it too.
	closeDev bool
	// host is the staging buffer of Upload/Download/Copy, grown on demand
	// and kept, so the steady-state training step allocates no host memory.
	host []byte
	// hostF is the float32 staging buffer of Copy between dtypes.
	hostF []float32
	// decayChecked holds the AdamWStep decay tables already read back and
	// found well-formed, with their largest range end (see checkDecay).
	decayChecked map[decayKey]int
}

// New returns a Backend over dev. The caller keeps ownership of dev: Close
// frees the Backend's device memory but does not close dev.
func New(dev Device, opts Options) (*Backend, error) {
	if dev == nil {
		return nil, fmt.Errorf("gpu.New: nil Device")
	}
	b := &Backend{dev: dev, opts: opts}
	b.pool.init()
	return b, nil
}

// Name identifies the backend by its device, e.g. "cuda:0 NVIDIA H100 80GB HBM3".
func (b *Backend) Name() string { return b.dev.Name() }

// FrozenDType is BF16 with Options.BF16, else F32.
func (b *Backend) FrozenDType() backend.DType {
	if b.opts.BF16 {
		return backend.BF16
	}
	return backend.F32
}

// Device returns the device the backend runs on (for benchmarks and tools
// that need the device's extra abilities, such as event timing).
func (b *Backend) Device() Device { return b.dev }

// Close waits for queued work, then frees every device allocation of the
// backend, live tensors included (using one afterwards is a bug), and closes
// the device when the backend owns it (Open). The backend is unusable after.
func (b *Backend) Close() error {
	err := b.dev.Sync()
	if ferr := b.pool.releaseAll(b.dev); ferr != nil && err == nil {
		err = ferr
	}
	if c, ok := b.dev.(io.Closer); ok && b.closeDev {
		if cerr := c.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("gpu.Close: %w", err)
	}
	return nil
}

// shapeLen validates a shape and returns its number of elements.
func shapeLen(op string, shape []int) (int, error) {
	n := 1
	for i, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("%s: dimension %d of shape %v is negative", op, i, shape)
		}
		if d != 0 && n > math.MaxInt/d {
			return 0, fmt.Errorf("%s: shape %v overflows int", op, shape)
		}
		n *= d
	}
	return n, nil
}

func validDType(dt backend.DType) bool {
	switch dt {
	case backend.F32, backend.BF16, backend.F16, backend.I32:
		return true
	}
	return false
}

func isFloat(dt backend.DType) bool {
	return dt == backend.F32 || dt == backend.BF16 || dt == backend.F16
}

// devTensor checks that t is a live tensor of this package and returns it.
// op names the calling method and name the argument, for the error.
func devTensor(op, name string, t backend.Tensor) (*Tensor, error) {
	if t == nil {
		return nil, fmt.Errorf("%s: %s is nil", op, name)
	}
	g, ok := t.(*Tensor)
	if !ok {
		return nil, fmt.Errorf("%s: %s is a %T, not a gpu tensor", op, name, t)
	}
	if g == nil {
		return nil, fmt.Errorf("%s: %s is a nil *gpu.Tensor", op, name)
	}
	if g.n > 0 && g.Ptr == 0 {
		return nil, fmt.Errorf("%s: %s %v was freed", op, name, g.shape)
	}
	return g, nil
}

// Alloc returns a zeroed device tensor. Memory comes from the backend's
// pool, so a training step that allocates and frees the same sizes every
// iteration reaches a steady state with no device allocation.
func (b *Backend) Alloc(dt backend.DType, shape ...int) (backend.Tensor, error) {
	if !validDType(dt) {
		return nil, fmt.Errorf("gpu.Alloc: unknown dtype %v", dt)
	}
	n, err := shapeLen("gpu.Alloc", shape)
	if err != nil {
		return nil, err
	}
	t := &Tensor{shape: append([]int(nil), shape...), dt: dt, n: n}
	if n == 0 {
		return t, nil // nothing to allocate; Ptr stays 0
	}
	if n > math.MaxInt/dt.Size() {
		return nil, fmt.Errorf("gpu.Alloc: %v %v overflows int bytes", dt, shape)
	}
	bytes := n * dt.Size()
	p, err := b.pool.get(b.dev, bytes)
	if err != nil {
		return nil, fmt.Errorf("gpu.Alloc %v %v (%d bytes): %w", dt, shape, bytes, err)
	}
	if err := b.dev.Memset0(p, bytes); err != nil {
		b.pool.put(p)
		return nil, fmt.Errorf("gpu.Alloc %v %v: zeroing: %w", dt, shape, err)
	}
	b.wrote(p, bytes)
	t.Ptr = p
	return t, nil
}

// View returns a tensor aliasing t's elements [offset, offset+prod(shape)).
func (b *Backend) View(t backend.Tensor, offset int, shape ...int) (backend.Tensor, error) {
	g, err := devTensor("gpu.View", "t", t)
	if err != nil {
		return nil, err
	}
	n, err := shapeLen("gpu.View", shape)
	if err != nil {
		return nil, err
	}
	if offset < 0 || offset > g.n || n > g.n-offset {
		return nil, fmt.Errorf("gpu.View: elements [%d, %d) are outside %v (%d elements)", offset, offset+n, g.shape, g.n)
	}
	v := &Tensor{shape: append([]int(nil), shape...), dt: g.dt, n: n, view: true}
	if g.Ptr != 0 {
		v.Ptr = g.Ptr + DevicePtr(offset*g.dt.Size())
	}
	return v, nil
}

// Free returns t's memory to the pool (a no-op for views, nil, zero-length
// and already freed tensors). Views of t must not be used afterwards.
// Freeing a tensor of another backend is a bug and panics.
func (b *Backend) Free(t backend.Tensor) {
	if t == nil {
		return
	}
	g, ok := t.(*Tensor)
	if !ok {
		panic(fmt.Sprintf("gpu: Free of a %T, not a gpu tensor", t))
	}
	if g == nil || g.view || g.Ptr == 0 {
		return
	}
	b.wrote(g.Ptr, g.n*g.dt.Size())
	if !b.pool.put(g.Ptr) {
		panic(fmt.Sprintf("gpu: Free of %v %v at %#x, which this backend did not allocate", g.dt, g.shape, uint64(g.Ptr)))
	}
	g.Ptr = 0
}

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
	if k := convertKernel(d.dt, s.dt); k != "" {
		if err := b.dev.Launch(k, grid1D(d.n), b1(block1D), 0, Ptr(d.Ptr), Ptr(s.Ptr), Int(d.n)); err != nil {
			return fmt.Errorf("gpu.Copy %v→%v %v: kernel %s: %w", s.dt, d.dt, d.shape, k, err)
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

// convertKernel names the device kernel converting src into dst ("" if none).
func convertKernel(dst, src backend.DType) string {
	switch {
	case dst == backend.BF16 && src == backend.F32:
		return "convert_f32_bf16"
	case dst == backend.F32 && src == backend.BF16:
		return "convert_bf16_f32"
	}
	return ""
}

// Zero sets every element of t to 0 (queued on the stream).
func (b *Backend) Zero(t backend.Tensor) error {
	g, err := devTensor("gpu.Zero", "t", t)
	if err != nil {
		return err
	}
	if g.n == 0 {
		return nil
	}
	b.wrote(g.Ptr, g.n*g.dt.Size())
	if err := b.dev.Memset0(g.Ptr, g.n*g.dt.Size()); err != nil {
		return fmt.Errorf("gpu.Zero %v %v: %w", g.dt, g.shape, err)
	}
	return nil
}

// Sync waits for all queued work and reports a deferred device fault.
func (b *Backend) Sync() error {
	if err := b.dev.Sync(); err != nil {
		return fmt.Errorf("gpu.Sync on %s: %w", b.dev.Name(), err)
	}
	return nil
}

// ---------------------------------------------------------------------------
// Host conversions.

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

// ---------------------------------------------------------------------------
// Memory pool.

// PoolStats counts the pool's traffic (see Backend.PoolStats).
type PoolStats struct {
	// DeviceAllocs and DeviceFrees count calls to Device.Alloc and
	// Device.Free; in a steady-state training step both stay constant.
	DeviceAllocs, DeviceFrees int
	// Reuses counts allocations served from the free lists.
	Reuses int
	// LiveBytes is held by live tensors, CachedBytes by the free lists
	// (both in size-class bytes).
	LiveBytes, CachedBytes int
}

// PoolStats reports the memory pool's counters.
func (b *Backend) PoolStats() PoolStats { return b.pool.stats }

// ReleaseCached returns every cached (free) block to the device.
func (b *Backend) ReleaseCached() error {
	if err := b.pool.releaseCached(b.dev); err != nil {
		return fmt.Errorf("gpu.ReleaseCached: %w", err)
	}
	return nil
}

// Size classes: small blocks round up to a power of two (at least 512 bytes,
// twice the 256-byte alignment cudaMalloc guarantees, so views of them stay
// aligned for vector loads); blocks above 1 MiB round up to a multiple of
// 1 MiB, wasting at most 1 MiB per block instead of up to half of it.
const (
	poolMinClass   = 512
	poolLargeAlign = 1 << 20
)

// poolClass is the size class (the bytes actually allocated) for n bytes.
func poolClass(n int) int {
	if n <= poolMinClass {
		return poolMinClass
	}
	if n <= poolLargeAlign {
		c := poolMinClass
		for c < n {
			c <<= 1
		}
		return c
	}
	return (n + poolLargeAlign - 1) / poolLargeAlign * poolLargeAlign
}

// pool is a caching allocator with one free list per size class. Blocks are
// never split or merged: a training step allocates the same sizes every
// iteration, so after the first step every request is served from a list.
type pool struct {
	free  map[int][]DevicePtr // size class → free blocks
	live  map[DevicePtr]int   // live block → its size class
	stats PoolStats
}

func (p *pool) init() {
	p.free = make(map[int][]DevicePtr)
	p.live = make(map[DevicePtr]int)
}

// get returns a block of at least n bytes (contents undefined). When the
// device is out of memory it releases the cached blocks and tries once more.
func (p *pool) get(dev Device, n int) (DevicePtr, error) {
	c := poolClass(n)
	if l := p.free[c]; len(l) > 0 {
		ptr := l[len(l)-1]
		p.free[c] = l[:len(l)-1]
		p.live[ptr] = c
		p.stats.Reuses++
		p.stats.CachedBytes -= c
		p.stats.LiveBytes += c
		return ptr, nil
	}
	ptr, err := dev.Alloc(c)
	if err != nil && p.stats.CachedBytes > 0 {
		if rerr := p.releaseCached(dev); rerr != nil {
			return 0, fmt.Errorf("%w (and releasing the pool's cache failed: %v)", err, rerr)
		}
		ptr, err = dev.Alloc(c)
	}
	if err != nil {
		return 0, fmt.Errorf("device alloc of %d bytes (%d live, pool cache empty): %w", c, p.stats.LiveBytes, err)
	}
	p.stats.DeviceAllocs++
	p.live[ptr] = c
	p.stats.LiveBytes += c
	return ptr, nil
}

// put returns a live block to its free list; false if ptr is not live.
func (p *pool) put(ptr DevicePtr) bool {
	c, ok := p.live[ptr]
	if !ok {
		return false
	}
	delete(p.live, ptr)
	p.free[c] = append(p.free[c], ptr)
	p.stats.LiveBytes -= c
	p.stats.CachedBytes += c
	return true
}

// releaseCached frees every cached block on the device.
func (p *pool) releaseCached(dev Device) error {
	var first error
	for c, l := range p.free {
		for _, ptr := range l {
			if err := dev.Free(ptr); err != nil && first == nil {
				first = err
			}
			p.stats.DeviceFrees++
			p.stats.CachedBytes -= c
		}
		delete(p.free, c)
	}
	return first
}

// releaseAll frees every block, cached or live, in address order (so that a
// failure is reproducible).
func (p *pool) releaseAll(dev Device) error {
	first := p.releaseCached(dev)
	ptrs := make([]DevicePtr, 0, len(p.live))
	for ptr := range p.live {
		ptrs = append(ptrs, ptr)
	}
	sort.Slice(ptrs, func(i, j int) bool { return ptrs[i] < ptrs[j] })
	for _, ptr := range ptrs {
		if err := dev.Free(ptr); err != nil && first == nil {
			first = err
		}
		p.stats.DeviceFrees++
		p.stats.LiveBytes -= p.live[ptr]
		delete(p.live, ptr)
	}
	return first
}
