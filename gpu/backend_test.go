package gpu

// A fake Device over host memory for the tests of the backend's memory,
// pool and conversion code (memory_test.go, pool_test.go, convert_test.go)
// and of host-side launcher checks; construction and error wrapping here.

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
