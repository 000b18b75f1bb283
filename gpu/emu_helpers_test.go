package gpu_test

// Helpers of the tests that run the launchers on the kernel emulator
// (gpu/emu): emuDevice, the duo of gpu and cpu backends the op tests
// compare, and device buffers for the kernel-level GEMM tests.

import (
	"encoding/binary"
	"math"
	"math/rand"
	"testing"

	cpu "github.com/houlsby/adapters/cpu_fallback"

	"github.com/houlsby/adapters/backend"
	"github.com/houlsby/adapters/gpu"
	"github.com/houlsby/adapters/gpu/emu"
)

// listedDevice is the emulator with one more check: every kernel a
// launcher launches must be one of gpu.KernelNames (the list of
// gpu/kernels.go). The op, conformance and model tests of this package run
// on it, so each name the launchers build on those paths is checked.
type listedDevice struct {
	*emu.Device
	t testing.TB
}

var listedKernels = func() map[string]bool {
	m := map[string]bool{}
	for _, k := range gpu.KernelNames() {
		m[k] = true
	}
	return m
}()

// Launch checks kernel against the list, then runs it.
func (d *listedDevice) Launch(kernel string, grid, block gpu.Dim3, sharedBytes int, args ...uint64) error {
	if !listedKernels[kernel] {
		d.t.Errorf("a launcher launched %s, which gpu.KernelNames does not list", kernel)
	}
	return d.Device.Launch(kernel, grid, block, sharedBytes, args...)
}

// emuDevice returns a fresh emulated device that checks kernel names, or
// skips the test (loudly) when the emulator is not built (CGO_ENABLED=0).
func emuDevice(t testing.TB) *listedDevice {
	t.Helper()
	dev := emu.New()
	p, err := dev.Alloc(16)
	if err != nil {
		t.Skipf("SKIPPED: the kernel emulator is unavailable (%v); gpu/emu needs cgo and a C++17 compiler", err)
	}
	if err := dev.Free(p); err != nil {
		t.Fatal(err)
	}
	return &listedDevice{Device: dev, t: t}
}

// Op-level tests of the gpu backend on the emulator against the CPU backend,
// at the model's real sizes (C = 384, up to M = 256, T up to 512, HS up to
// 128) and in the dtype mixes the model uses, plus bit-exactness of the
// dropout mask and of the bf16 conversion.

// pair holds one tensor on both backends.
type pair struct {
	g, c backend.Tensor
	host []float32 // as stored (rounded to the dtype)
}

type duo struct {
	t  *testing.T
	g  *gpu.Backend
	c  *cpu.Backend
	r  *rand.Rand
	dv *listedDevice
}

func newDuo(t *testing.T) *duo {
	dv := emuDevice(t)
	g, err := gpu.New(dv, gpu.Options{BF16: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	return &duo{t: t, g: g, c: cpu.New(), r: rand.New(rand.NewSource(7)), dv: dv}
}

// tensor uploads vals (scaled normals when nil) as dtype dt to both backends.
func (d *duo) tensor(dt backend.DType, n int, scale float32, vals []float32) *pair {
	d.t.Helper()
	if vals == nil {
		vals = make([]float32, n)
		for i := range vals {
			vals[i] = scale * float32(d.r.NormFloat64())
		}
	}
	g, err := d.g.Alloc(dt, n)
	if err != nil {
		d.t.Fatal(err)
	}
	c, err := d.c.Alloc(dt, n)
	if err != nil {
		d.t.Fatal(err)
	}
	if err := d.g.Upload(g, vals); err != nil {
		d.t.Fatal(err)
	}
	if err := d.c.Upload(c, vals); err != nil {
		d.t.Fatal(err)
	}
	host := make([]float32, n)
	if err := d.c.Download(host, c); err != nil {
		d.t.Fatal(err)
	}
	return &pair{g: g, c: c, host: host}
}

func (d *duo) ints(vals []int32) *pair {
	d.t.Helper()
	g, _ := d.g.Alloc(backend.I32, len(vals))
	c, _ := d.c.Alloc(backend.I32, len(vals))
	if err := d.g.UploadInt32(g, vals); err != nil {
		d.t.Fatal(err)
	}
	if err := d.c.UploadInt32(c, vals); err != nil {
		d.t.Fatal(err)
	}
	return &pair{g: g, c: c}
}

// both runs f on the gpu and on the cpu tensors of the pairs.
func (d *duo) both(what string, f func(be backend.Backend, side func(*pair) backend.Tensor) error) {
	d.t.Helper()
	if err := f(d.g, func(p *pair) backend.Tensor {
		if p == nil {
			return nil
		}
		return p.g
	}); err != nil {
		d.t.Fatalf("%s (gpu): %v", what, err)
	}
	if err := f(d.c, func(p *pair) backend.Tensor {
		if p == nil {
			return nil
		}
		return p.c
	}); err != nil {
		d.t.Fatalf("%s (cpu): %v", what, err)
	}
}

// compare checks the gpu result of p against the cpu one.
func (d *duo) compare(what string, p *pair, atol, rtol float64) {
	d.t.Helper()
	n := p.g.Len()
	g, c := make([]float32, n), make([]float32, n)
	if err := d.g.Download(g, p.g); err != nil {
		d.t.Fatal(err)
	}
	if err := d.c.Download(c, p.c); err != nil {
		d.t.Fatal(err)
	}
	closeTo(d.t, what, g, c, atol, rtol)
}

// Tolerances (|gpu-cpu| <= atol + rtol·|cpu|):
//   - f32 storage: both compute in fp32, in different orders; sums of K
//     <= 384 terms of O(1) differ by <= K·2^-24·Σ|terms| ~ 1e-4 relative to
//     Σ|terms|; atol 1e-4, rtol 1e-4 bound that with margin for the C=384
//     rows used here;
//   - bf16 results: both backends round to bf16 (u = 2^-8) from fp32 values
//     that differ by ~1e-5; a value near a rounding boundary can then land
//     one bf16 ulp (2u relative) apart: rtol 2·2u = 1/64;
//   - bf16 GEMM / adapter / attention on F32 activations: the tensor cores
//     round the F32 operand to bf16 (u relative per product) where the CPU
//     does not: |Δ| <= u·Σ|a||b|, which for O(1) inputs and K terms of random
//     sign is ~u·√K; the atol per test says which K it covers.
const (
	f32Atol, f32Rtol   = 1e-4, 1e-4
	bf16Rtol           = 4.0 / 256
	bf16u              = 1.0 / 256
	bf16AtolSmallTerms = 4 * bf16u
)

// Kernel-level test helpers: device buffers from host slices and back.

func f32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// bf16Round rounds to the nearest bf16 (ties to even), as the kernels do.
func bf16Round(x float32) float32 {
	return math.Float32frombits(uint32(bf16Bits(x)) << 16)
}

func bf16Bits(x float32) uint16 {
	u := math.Float32bits(x)
	if u&0x7fffffff > 0x7f800000 {
		return uint16(u>>16) | 0x40
	}
	u += 0x7fff + (u>>16)&1
	return uint16(u >> 16)
}

func bf16Bytes(v []float32) []byte {
	b := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(b[2*i:], bf16Bits(x))
	}
	return b
}

// upload allocates a device buffer holding v as float32 (bf16 false) or bf16.
func upload(t testing.TB, d gpu.Device, v []float32, bf16 bool) gpu.DevicePtr {
	t.Helper()
	b := f32Bytes(v)
	if bf16 {
		b = bf16Bytes(v)
	}
	p, err := d.Alloc(len(b))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.HtoD(p, b); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Free(p) })
	return p
}

func download(t testing.TB, d gpu.Device, p gpu.DevicePtr, n int) []float32 {
	t.Helper()
	b := make([]byte, 4*n)
	if err := d.DtoH(b, p); err != nil {
		t.Fatal(err)
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

func randVec(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

func launch(t testing.TB, d gpu.Device, k string, grid, block gpu.Dim3, shared int, args ...uint64) {
	t.Helper()
	if err := d.Launch(k, grid, block, shared, args...); err != nil {
		t.Fatal(err)
	}
}

func cdiv(a, b int) uint32 { return uint32((a + b - 1) / b) }

// closeTo reports the first index where |got-want| > atol + rtol·|want|.
func closeTo(t testing.TB, what string, got, want []float32, atol, rtol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	bad := 0
	for i := range got {
		g, w := float64(got[i]), float64(want[i])
		if !(math.Abs(g-w) <= atol+rtol*math.Abs(w)) {
			if bad < 5 {
				t.Errorf("%s[%d] = %v, want %v (atol %g, rtol %g)", what, i, g, w, atol, rtol)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d values out of tolerance", what, bad, len(got))
	}
}
