package gpu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/houlsby/adapters/backend"
)

// fakeDevice is a Device over host byte slices, enough to test the
// backend's memory, copy and conversion code without kernels (the kernels
// are tested on the emulator, gpu/emu, and on the GPU).
type fakeDevice struct {
	mem      map[DevicePtr][]byte
	next     DevicePtr
	capacity int   // bytes; 0 = unlimited
	used     int   // bytes currently allocated
	failNext error // returned (once) by the next HtoD/DtoH/DtoD/Memset0
	allocs   int
	dtoh     int // DtoH calls
	launches []string
}

func newFake() *fakeDevice {
	return &fakeDevice{mem: map[DevicePtr][]byte{}, next: 0x10000}
}

var errFakeOOM = errors.New("fake: out of memory")

func (f *fakeDevice) Name() string { return "fake:0" }

func (f *fakeDevice) Alloc(n int) (DevicePtr, error) {
	if n <= 0 {
		return 0, fmt.Errorf("fake: alloc of %d bytes", n)
	}
	if f.capacity > 0 && f.used+n > f.capacity {
		return 0, errFakeOOM
	}
	p := f.next
	f.next += DevicePtr((n + 255) / 256 * 256)
	f.mem[p] = make([]byte, n)
	f.used += n
	f.allocs++
	return p, nil
}

func (f *fakeDevice) Free(p DevicePtr) error {
	b, ok := f.mem[p]
	if !ok {
		return fmt.Errorf("fake: free of unknown pointer %#x", uint64(p))
	}
	f.used -= len(b)
	delete(f.mem, p)
	return nil
}

// slice resolves [p, p+n) inside one allocation, as a device would fault.
func (f *fakeDevice) slice(p DevicePtr, n int) ([]byte, error) {
	for base, b := range f.mem {
		if p >= base && int(p-base)+n <= len(b) {
			return b[p-base : int(p-base)+n], nil
		}
	}
	return nil, fmt.Errorf("fake: illegal address [%#x, +%d)", uint64(p), n)
}

func (f *fakeDevice) injected() error {
	err := f.failNext
	f.failNext = nil
	return err
}

func (f *fakeDevice) HtoD(dst DevicePtr, src []byte) error {
	if err := f.injected(); err != nil {
		return err
	}
	d, err := f.slice(dst, len(src))
	if err != nil {
		return err
	}
	copy(d, src)
	return nil
}

func (f *fakeDevice) DtoH(dst []byte, src DevicePtr) error {
	f.dtoh++
	if err := f.injected(); err != nil {
		return err
	}
	s, err := f.slice(src, len(dst))
	if err != nil {
		return err
	}
	copy(dst, s)
	return nil
}

func (f *fakeDevice) DtoD(dst, src DevicePtr, n int) error {
	if err := f.injected(); err != nil {
		return err
	}
	d, err := f.slice(dst, n)
	if err != nil {
		return err
	}
	s, err := f.slice(src, n)
	if err != nil {
		return err
	}
	copy(d, s)
	return nil
}

func (f *fakeDevice) Memset0(dst DevicePtr, n int) error {
	if err := f.injected(); err != nil {
		return err
	}
	d, err := f.slice(dst, n)
	if err != nil {
		return err
	}
	clear(d)
	return nil
}

// Launch runs the two conversion kernels of kernels/elementwise.cu that the
// backend core uses (convert_f32_bf16, convert_bf16_f32: out, in, n), on the
// host, and accepts adamw_f32 without running it (its launcher's host-side
// checks are what the fake tests); any other kernel is an error. It records
// the launches.
func (f *fakeDevice) Launch(kernel string, grid, block Dim3, shared int, args ...uint64) error {
	f.launches = append(f.launches, kernel)
	if kernel == "adamw_f32" {
		return nil
	}
	if len(args) != 3 || grid.X*block.X < 1 {
		return fmt.Errorf("fake: %s: %d args, grid %v block %v", kernel, len(args), grid, block)
	}
	n := int(int64(args[2]))
	var isz, osz int
	switch kernel {
	case "convert_f32_bf16":
		isz, osz = 4, 2
	case "convert_bf16_f32":
		isz, osz = 2, 4
	default:
		return fmt.Errorf("fake: no kernel %q", kernel)
	}
	out, err := f.slice(DevicePtr(args[0]), n*osz)
	if err != nil {
		return err
	}
	in, err := f.slice(DevicePtr(args[1]), n*isz)
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		if kernel == "convert_f32_bf16" {
			binary.LittleEndian.PutUint16(out[2*i:], F32ToBF16(math.Float32frombits(binary.LittleEndian.Uint32(in[4*i:]))))
		} else {
			binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(BF16ToF32(binary.LittleEndian.Uint16(in[2*i:]))))
		}
	}
	return nil
}

func (f *fakeDevice) Sync() error { return nil }

func newTestBackend(t *testing.T) (*Backend, *fakeDevice) {
	t.Helper()
	f := newFake()
	b, err := New(f, Options{BF16: true})
	if err != nil {
		t.Fatal(err)
	}
	return b, f
}

func mustAlloc(t *testing.T, b *Backend, dt backend.DType, shape ...int) *Tensor {
	t.Helper()
	x, err := b.Alloc(dt, shape...)
	if err != nil {
		t.Fatal(err)
	}
	return x.(*Tensor)
}

func TestNewAndName(t *testing.T) {
	if _, err := New(nil, Options{}); err == nil {
		t.Fatal("New(nil) succeeded")
	}
	b, _ := newTestBackend(t)
	if b.Name() != "fake:0" || b.FrozenDType() != backend.BF16 {
		t.Fatalf("Name %q FrozenDType %v", b.Name(), b.FrozenDType())
	}
	b32, _ := New(newFake(), Options{})
	if b32.FrozenDType() != backend.F32 {
		t.Fatalf("FrozenDType without BF16 = %v", b32.FrozenDType())
	}
}

func TestRoundTripF32AndI32(t *testing.T) {
	b, _ := newTestBackend(t)
	x := mustAlloc(t, b, backend.F32, 3, 5)
	src := make([]float32, 15)
	for i := range src {
		src[i] = float32(i)*1.37 - 7 + float32(math.Pi)*1e-6
	}
	src[3] = float32(math.Inf(-1))
	src[4] = float32(math.Copysign(0, -1))
	if err := b.Upload(x, src); err != nil {
		t.Fatal(err)
	}
	got := make([]float32, 15)
	if err := b.Download(got, x); err != nil {
		t.Fatal(err)
	}
	for i := range src {
		if math.Float32bits(got[i]) != math.Float32bits(src[i]) {
			t.Fatalf("F32 element %d: got %v want %v", i, got[i], src[i])
		}
	}
	ids := mustAlloc(t, b, backend.I32, 4)
	in := []int32{0, -1, math.MaxInt32, math.MinInt32}
	if err := b.UploadInt32(ids, in); err != nil {
		t.Fatal(err)
	}
	out := make([]int32, 4)
	if err := b.DownloadInt32(out, ids); err != nil {
		t.Fatal(err)
	}
	for i := range in {
		if in[i] != out[i] {
			t.Fatalf("I32 element %d: got %d want %d", i, out[i], in[i])
		}
	}
}

func TestArgumentErrors(t *testing.T) {
	b, _ := newTestBackend(t)
	x := mustAlloc(t, b, backend.F32, 4)
	ids := mustAlloc(t, b, backend.I32, 4)
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"upload short", b.Upload(x, make([]float32, 3)), "src has 3 elements"},
		{"upload to I32", b.Upload(ids, make([]float32, 4)), "use UploadInt32"},
		{"upload nil", b.Upload(nil, nil), "t is nil"},
		{"uploadInt32 to F32", b.UploadInt32(x, make([]int32, 4)), "want I32"},
		{"download long", b.Download(make([]float32, 5), x), "dst has 5 elements"},
		{"downloadInt32 F32", b.DownloadInt32(make([]int32, 4), x), "want I32"},
		{"copy I32 into F32", b.Copy(x, ids), "cannot copy I32 into F32"},
		{"copy length", b.Copy(x, mustAlloc(t, b, backend.F32, 5)), "src [5] has 5"},
		{"zero foreign", b.Zero(foreignTensor{}), "not a gpu tensor"},
	}
	for _, c := range cases {
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, c.err, c.want)
		}
	}
	if _, err := b.Alloc(backend.F32, 2, -1); err == nil || !strings.Contains(err.Error(), "negative") {
		t.Errorf("Alloc with a negative dim: %v", err)
	}
	if _, err := b.Alloc(backend.DType(42), 2); err == nil {
		t.Error("Alloc of an unknown dtype succeeded")
	}
	if _, err := b.Alloc(backend.F32, math.MaxInt/2, 4); err == nil {
		t.Error("Alloc of an overflowing shape succeeded")
	}
}

type foreignTensor struct{}

func (foreignTensor) Shape() []int         { return nil }
func (foreignTensor) DType() backend.DType { return backend.F32 }
func (foreignTensor) Len() int             { return 0 }

func TestAllocIsZeroedEvenWhenReused(t *testing.T) {
	b, f := newTestBackend(t)
	x := mustAlloc(t, b, backend.F32, 100)
	if err := b.Upload(x, ones(100)); err != nil {
		t.Fatal(err)
	}
	p := x.Ptr
	b.Free(x)
	y := mustAlloc(t, b, backend.F32, 90) // same size class (512 bytes)
	if y.Ptr != p {
		t.Fatalf("pool did not reuse the block: %#x, then %#x", uint64(p), uint64(y.Ptr))
	}
	if f.allocs != 1 {
		t.Fatalf("device allocs = %d, want 1", f.allocs)
	}
	got := make([]float32, 90)
	if err := b.Download(got, y); err != nil {
		t.Fatal(err)
	}
	for i, v := range got {
		if v != 0 {
			t.Fatalf("reused block element %d = %v, want 0", i, v)
		}
	}
}

func ones(n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = 1
	}
	return s
}

// TestSteadyStateNoDeviceAlloc runs the allocation pattern of a training
// step (activations of several sizes allocated, used, freed) many times and
// checks that only the first iteration reaches the device.
func TestSteadyStateNoDeviceAlloc(t *testing.T) {
	b, f := newTestBackend(t)
	shapes := [][]int{{32, 128, 384}, {32, 128, 1152}, {32, 12, 128, 128}, {32, 128}, {7}, {32, 128, 384}}
	step := func() {
		var ts []backend.Tensor
		for _, s := range shapes {
			x, err := b.Alloc(backend.BF16, s...)
			if err != nil {
				t.Fatal(err)
			}
			ts = append(ts, x)
		}
		for _, x := range ts {
			b.Free(x)
		}
	}
	step()
	first := b.PoolStats()
	if first.DeviceAllocs != len(shapes) || f.allocs != len(shapes) {
		t.Fatalf("first step: %+v, fake allocs %d", first, f.allocs)
	}
	for i := 0; i < 20; i++ {
		step()
	}
	s := b.PoolStats()
	if s.DeviceAllocs != first.DeviceAllocs || f.allocs != len(shapes) {
		t.Fatalf("steady state allocated on the device: %+v (fake allocs %d)", s, f.allocs)
	}
	if s.Reuses != 20*len(shapes) || s.LiveBytes != 0 || s.CachedBytes != f.used {
		t.Fatalf("pool stats %+v, fake has %d bytes allocated", s, f.used)
	}
}

func TestPoolClass(t *testing.T) {
	cases := map[int]int{1: 512, 512: 512, 513: 1024, 1000: 1024, 1 << 20: 1 << 20, 1<<20 + 1: 2 << 20, 24 << 20: 24 << 20, 24<<20 + 5: 25 << 20}
	for n, want := range cases {
		if got := poolClass(n); got != want {
			t.Errorf("poolClass(%d) = %d, want %d", n, got, want)
		}
	}
	for n := 1; n < 5<<20; n += 4093 {
		if c := poolClass(n); c < n {
			t.Fatalf("poolClass(%d) = %d < n", n, c)
		}
	}
}

func TestOutOfMemoryReleasesCacheAndRetries(t *testing.T) {
	b, f := newTestBackend(t)
	f.capacity = 3 << 20
	x := mustAlloc(t, b, backend.F32, 1<<19) // 2 MiB
	b.Free(x)                                // cached, not returned
	y, err := b.Alloc(backend.F32, 1<<18)    // 1 MiB class: 2+1 fits
	if err != nil {
		t.Fatal(err)
	}
	// 1.5 MiB → 2 MiB class is cached: reused, no device call.
	z, err := b.Alloc(backend.F32, 3<<17)
	if err != nil {
		t.Fatal(err)
	}
	b.Free(z)
	// A 3 MiB class does not fit next to the live 1 MiB and the cached
	// 2 MiB: the pool must give back the cache and retry... which still
	// does not fit (1 + 3 > 3), so the error must say so.
	if _, err := b.Alloc(backend.F32, 3<<18); !errors.Is(err, errFakeOOM) {
		t.Fatalf("Alloc beyond capacity: %v, want errFakeOOM", err)
	}
	if s := b.PoolStats(); s.CachedBytes != 0 || f.used != 1<<20 {
		t.Fatalf("after the failed alloc: %+v, fake used %d", s, f.used)
	}
	b.Free(y)
	// Now 1 MiB is cached and 3 MiB fits only after releasing it.
	w, err := b.Alloc(backend.F32, 3<<18)
	if err != nil {
		t.Fatalf("Alloc after release: %v", err)
	}
	if f.used != 3<<20 {
		t.Fatalf("fake used %d, want %d", f.used, 3<<20)
	}
	b.Free(w)
}

func TestFreeViewsAndUseAfterFree(t *testing.T) {
	b, f := newTestBackend(t)
	x := mustAlloc(t, b, backend.F32, 2, 8)
	src := make([]float32, 16)
	for i := range src {
		src[i] = float32(i)
	}
	if err := b.Upload(x, src); err != nil {
		t.Fatal(err)
	}
	v, err := b.View(x, 8, 2, 4)
	if err != nil {
		t.Fatal(err)
	}
	if v.(*Tensor).Ptr != x.Ptr+32 {
		t.Fatalf("view pointer %#x, want base+32", uint64(v.(*Tensor).Ptr))
	}
	got := make([]float32, 8)
	if err := b.Download(got, v); err != nil {
		t.Fatal(err)
	}
	if got[0] != 8 || got[7] != 15 {
		t.Fatalf("view contents %v", got)
	}
	vv, err := b.View(v, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	got = got[:3]
	if err := b.Download(got, vv); err != nil || got[0] != 10 {
		t.Fatalf("view of a view: %v %v", got, err)
	}
	for _, c := range [][2]int{{-1, 2}, {15, 2}, {17, 0}} {
		if _, err := b.View(x, c[0], c[1]); err == nil {
			t.Errorf("View(offset %d, %d elements) of 16 succeeded", c[0], c[1])
		}
	}
	b.Free(v) // no-op for views
	if b.PoolStats().LiveBytes == 0 {
		t.Fatal("freeing a view freed its parent")
	}
	b.Free(x)
	b.Free(x) // double free: no-op
	if err := b.Upload(x, src); err == nil || !strings.Contains(err.Error(), "freed") {
		t.Fatalf("Upload after Free: %v", err)
	}
	if _, err := b.View(x, 0, 1); err == nil {
		t.Fatal("View of a freed tensor succeeded")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if len(f.mem) != 0 {
		t.Fatalf("Close left %d device allocations", len(f.mem))
	}
}

func TestFreeForeignPanics(t *testing.T) {
	b, _ := newTestBackend(t)
	other, _ := newTestBackend(t)
	x := mustAlloc(t, other, backend.F32, 4)
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "did not allocate") {
			t.Fatalf("recovered %v", r)
		}
	}()
	b.Free(x)
}

func TestZeroLengthTensors(t *testing.T) {
	b, f := newTestBackend(t)
	x := mustAlloc(t, b, backend.BF16, 0, 7)
	if x.Len() != 0 || f.allocs != 0 {
		t.Fatalf("len %d, device allocs %d", x.Len(), f.allocs)
	}
	if err := b.Upload(x, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Download(nil, x); err != nil {
		t.Fatal(err)
	}
	if err := b.Zero(x); err != nil {
		t.Fatal(err)
	}
	b.Free(x)
}

func TestCopyAndZero(t *testing.T) {
	b, f := newTestBackend(t)
	src := []float32{1, 1.00390625, 1.01171875, -3.1415927, 65504, 1e-30, float32(math.NaN()), 70000}
	a := mustAlloc(t, b, backend.F32, len(src))
	if err := b.Upload(a, src); err != nil {
		t.Fatal(err)
	}
	for _, dt := range []backend.DType{backend.F32, backend.BF16, backend.F16} {
		d := mustAlloc(t, b, dt, len(src))
		n0 := len(f.launches)
		if err := b.Copy(d, a); err != nil {
			t.Fatal(err)
		}
		got := make([]float32, len(src))
		if err := b.Download(got, d); err != nil {
			t.Fatal(err)
		}
		for i, x := range src {
			var want float32
			switch dt {
			case backend.F32:
				want = x
			case backend.BF16:
				want = BF16ToF32(F32ToBF16(x))
			case backend.F16:
				want = F16ToF32(F32ToF16(x))
			}
			if math.Float32bits(got[i]) != math.Float32bits(want) && !(isNaN32(got[i]) && isNaN32(want)) {
				t.Errorf("Copy F32→%v element %d: got %v want %v", dt, i, got[i], want)
			}
		}
		if l := f.launches[n0:]; dt == backend.BF16 && (len(l) != 1 || l[0] != "convert_f32_bf16") {
			t.Errorf("Copy F32→BF16 launched %v, want one convert_f32_bf16", l)
		} else if dt != backend.BF16 && len(l) != 0 {
			t.Errorf("Copy F32→%v launched %v (no kernel converts it)", dt, l)
		}
		// back to F32 (through the device for BF16, the host for F16)
		back := mustAlloc(t, b, backend.F32, len(src))
		if err := b.Copy(back, d); err != nil {
			t.Fatal(err)
		}
		got2 := make([]float32, len(src))
		if err := b.Download(got2, back); err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if math.Float32bits(got2[i]) != math.Float32bits(got[i]) && !(isNaN32(got[i]) && isNaN32(got2[i])) {
				t.Errorf("Copy %v→F32 element %d: got %v want %v", dt, i, got2[i], got[i])
			}
		}
		// and back, same dtype: device-to-device
		e := mustAlloc(t, b, dt, len(src))
		if err := b.Copy(e, d); err != nil {
			t.Fatal(err)
		}
		if err := b.Zero(d); err != nil {
			t.Fatal(err)
		}
		if err := b.Download(got, d); err != nil || got[0] != 0 || got[7] != 0 {
			t.Fatalf("after Zero: %v %v", got, err)
		}
		if err := b.Download(got, e); err != nil || got[0] != 1 {
			t.Fatalf("same-dtype copy: %v %v", got, err)
		}
	}
}

func isNaN32(x float32) bool { return x != x }

func TestDeviceErrorsAreWrapped(t *testing.T) {
	b, f := newTestBackend(t)
	x := mustAlloc(t, b, backend.BF16, 3)
	boom := errors.New("boom")
	f.failNext = boom
	err := b.Upload(x, []float32{1, 2, 3})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "gpu.Upload BF16 [3]") {
		t.Fatalf("Upload error %v", err)
	}
	f.failNext = boom
	if _, err := b.Alloc(backend.F32, 5); !errors.Is(err, boom) || !strings.Contains(err.Error(), "zeroing") {
		t.Fatalf("Alloc error %v", err)
	}
	if s := b.PoolStats(); s.LiveBytes != poolClass(6) {
		// only x (6 bytes) is live: the failed Alloc returned its block.
		t.Fatalf("pool after a failed Alloc: %+v", s)
	}
}

// TestBF16Rounding checks F32ToBF16 against the definition on every pair of
// adjacent positive finite bfloat16 values: their exact midpoint rounds to
// the even one, and the float32 neighbours of the midpoint round to the
// nearer one.
func TestBF16Rounding(t *testing.T) {
	for h := uint16(0); h < 0x7f80; h++ {
		lo, hi := BF16ToF32(h), BF16ToF32(h+1)
		if F32ToBF16(lo) != h || F32ToBF16(-lo) != h|0x8000 {
			t.Fatalf("bf16 %#04x does not round-trip", h)
		}
		if h == 0x7f7f {
			break // the next value is +Inf: checked below
		}
		mid := float32((float64(lo) + float64(hi)) / 2) // exact: 9 significant bits
		even := h
		if h&1 == 1 {
			even = h + 1
		}
		if got := F32ToBF16(mid); got != even {
			t.Fatalf("midpoint of %#04x and %#04x rounds to %#04x, want %#04x", h, h+1, got, even)
		}
		if got := F32ToBF16(math.Nextafter32(mid, 0)); got != h {
			t.Fatalf("just below the midpoint after %#04x: %#04x", h, got)
		}
		if got := F32ToBF16(math.Nextafter32(mid, float32(math.Inf(1)))); got != h+1 {
			t.Fatalf("just above the midpoint after %#04x: %#04x", h, got)
		}
	}
	if got := F32ToBF16(math.MaxFloat32); got != 0x7f80 {
		t.Errorf("MaxFloat32 → %#04x, want +Inf 0x7f80 (it is above the last midpoint)", got)
	}
	if got := F32ToBF16(float32(math.Inf(-1))); got != 0xff80 {
		t.Errorf("-Inf → %#04x", got)
	}
	// NaNs whose payload sits only in the low 16 bits, or all ones, stay NaN.
	for _, u := range []uint32{0x7f800001, 0x7fffffff, 0xff800001, 0x7fc00000, 0x7f80ffff} {
		h := F32ToBF16(math.Float32frombits(u))
		if !isNaN32(BF16ToF32(h)) || (h>>15) != uint16(u>>31) {
			t.Errorf("NaN %#08x → %#04x, not a NaN of the same sign", u, h)
		}
	}
}

// TestF16Rounding is TestBF16Rounding for IEEE binary16, subnormals and the
// overflow threshold included.
func TestF16Rounding(t *testing.T) {
	for h := uint16(0); h < 0x7c00; h++ {
		lo, hi := F16ToF32(h), F16ToF32(h+1)
		if F32ToF16(lo) != h || F32ToF16(-lo) != h|0x8000 {
			t.Fatalf("f16 %#04x (%v) does not round-trip: %#04x", h, lo, F32ToF16(lo))
		}
		if h == 0x7bff {
			break // the next value is +Inf: checked below
		}
		mid := float32((float64(lo) + float64(hi)) / 2) // exact: 12 significant bits
		even := h
		if h&1 == 1 {
			even = h + 1
		}
		if got := F32ToF16(mid); got != even {
			t.Fatalf("midpoint %v of %#04x and %#04x rounds to %#04x, want %#04x", mid, h, h+1, got, even)
		}
		if got := F32ToF16(math.Nextafter32(mid, 0)); got != h {
			t.Fatalf("just below the midpoint after %#04x: %#04x", h, got)
		}
		if got := F32ToF16(math.Nextafter32(mid, float32(math.Inf(1)))); got != h+1 {
			t.Fatalf("just above the midpoint after %#04x: %#04x", h, got)
		}
	}
	// 65520 is the midpoint between the largest half (65504) and 2^16: ties
	// to even round it up to +Inf, anything below stays finite.
	if got := F32ToF16(65520); got != 0x7c00 {
		t.Errorf("65520 → %#04x, want +Inf", got)
	}
	if got := F32ToF16(math.Nextafter32(65520, 0)); got != 0x7bff {
		t.Errorf("just below 65520 → %#04x, want 0x7bff", got)
	}
	if got := F32ToF16(1e-30); got != 0 {
		t.Errorf("1e-30 → %#04x, want +0", got)
	}
	if got := F32ToF16(0x1p-25); got != 0 {
		t.Errorf("2^-25 (half the smallest subnormal, a tie) → %#04x, want +0", got)
	}
	if got := F32ToF16(math.Nextafter32(0x1p-25, 1)); got != 1 {
		t.Errorf("just above 2^-25 → %#04x, want 0x0001", got)
	}
	for _, u := range []uint32{0x7f800001, 0x7fffffff, 0xff800001, 0x7fc00000} {
		h := F32ToF16(math.Float32frombits(u))
		if !isNaN32(F16ToF32(h)) || (h>>15) != uint16(u>>31) {
			t.Errorf("NaN %#08x → %#04x, not a NaN of the same sign", u, h)
		}
	}
	if F16ToF32(0x7c00) != float32(math.Inf(1)) || F16ToF32(0x8001) != -0x1p-24 {
		t.Error("F16ToF32 of Inf or of the smallest negative subnormal is wrong")
	}
}
