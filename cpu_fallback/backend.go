package cpu

import (
	"fmt"
	"sync"

	"github.com/houlsby/adapters/backend"
)

// Backend is the pure-Go float32 backend. Its ops run synchronously on all
// cores (parallelFor), so Sync has nothing to wait for. Ops keep scratch
// buffers in the Backend (grown on demand, never shrunk) and hold a mutex
// while they use them, so one Backend may be shared by goroutines; its calls
// are then serialised.
//
// Results are deterministic: every reduction runs in an order fixed by the
// sizes alone (not by the number of cores), so the same inputs give bitwise
// identical outputs on every run and every machine with the same sgemm.
type Backend struct {
	// acc is how every matrix product accumulates (Options.AccumulateF64).
	acc gemmAcc

	mu      sync.Mutex
	scratch [nScratch][]float32

	// One task struct per kind of parallel region (see tasks.go), filled
	// under mu.
	gb   gemmBatchTask
	ew   ewTask
	cs   colSumTask
	row  rowTask
	ss   sumSqTask
	ln   lnTask
	emb  embTask
	attn attnTask
	sm   smTask
	ce   ceTask

	// The packed attention's task, its per-worker GEMM packing workspaces
	// and its work split (grown on demand, reused).
	pattn   packedTask
	attnWS  []*gemmWorkspace
	attnCut []int
	// packTiles overrides the packed attention's tile sizes (attnBqFwd or
	// attnBqBwd, attnBk) when nonzero: tests use small tiles so that small inputs
	// cross tile boundaries.
	packTiles [2]int
}

// Scratch slots; each op uses its own fixed slots.
const (
	scrA = iota
	scrB
	scrC
	nScratch
)

// The CPU backend implements the core contract, the fused capabilities, the
// packed attention and both grouped (serving) capabilities, for every size.
var (
	_ backend.Backend          = (*Backend)(nil)
	_ backend.FusedAdapter     = (*Backend)(nil)
	_ backend.FusedAttention   = (*Backend)(nil)
	_ backend.PackedAttention  = (*Backend)(nil)
	_ backend.GroupedAdapter   = (*Backend)(nil)
	_ backend.GroupedLayerNorm = (*Backend)(nil)
)

// New returns a CPU backend.
func New() *Backend { return &Backend{} }

// Options configure a CPU backend; the zero value is New's.
type Options struct {
	// AccumulateF64 makes every matrix product (the frozen and trainable
	// weights' GEMMs, the adapters' and the attention's) sum its terms in
	// float64 and round each result to float32 once; storage, every other
	// op and the results' type stay float32. The results are within half a
	// float32 ulp of the exact product of the stored inputs, where float32
	// accumulation loses up to about k/2 ulps. It costs speed: the products
	// run at a third to a half of the float32 kernels' rate (docs/numerics.md
	// "Float64 accumulation" has the measurements and when it matters).
	AccumulateF64 bool
}

// NewWithOptions returns a CPU backend configured by o.
func NewWithOptions(o Options) *Backend { return &Backend{acc: gemmAcc(o.AccumulateF64)} }

// AccumulatesF64 reports whether the backend's matrix products accumulate
// in float64 (Options.AccumulateF64).
func (be *Backend) AccumulatesF64() bool { return bool(be.acc) }

// Name identifies the backend.
func (*Backend) Name() string { return "cpu" }

// FrozenDType is F32: the CPU computes and stores everything in float32.
func (*Backend) FrozenDType() backend.DType { return backend.F32 }

// buf returns scratch slot i with at least n elements (contents undefined).
// The caller must hold b.mu.
func (b *Backend) buf(i, n int) []float32 {
	if cap(b.scratch[i]) < n {
		b.scratch[i] = make([]float32, n)
	}
	return b.scratch[i][:n]
}

// Alloc returns a zeroed tensor of the given dtype and shape.
func (*Backend) Alloc(dt backend.DType, shape ...int) (backend.Tensor, error) {
	n, err := shapeLen("cpu.Alloc", shape)
	if err != nil {
		return nil, err
	}
	t := &Tensor{shape: append([]int(nil), shape...), dt: dt, n: n}
	switch {
	case dt == backend.I32:
		t.Ints = make([]int32, n)
	case isFloat(dt):
		t.Data = make([]float32, n)
	default:
		return nil, fmt.Errorf("cpu.Alloc: unknown dtype %v", dt)
	}
	return t, nil
}

// View returns a tensor aliasing t's elements [offset, offset+prod(shape)).
func (*Backend) View(t backend.Tensor, offset int, shape ...int) (backend.Tensor, error) {
	ct, err := asTensor("cpu.View", "t", t)
	if err != nil {
		return nil, err
	}
	n, err := shapeLen("cpu.View", shape)
	if err != nil {
		return nil, err
	}
	if offset < 0 || offset+n > ct.n {
		return nil, fmt.Errorf("cpu.View: elements [%d, %d) are outside %v (%d elements)", offset, offset+n, ct, ct.n)
	}
	v := &Tensor{shape: append([]int(nil), shape...), dt: ct.dt, n: n, view: true}
	if ct.dt == backend.I32 {
		v.Ints = ct.Ints[offset : offset+n : offset+n]
	} else {
		v.Data = ct.Data[offset : offset+n : offset+n]
	}
	return v, nil
}

// Free drops t's storage (a no-op for views and nil). Using t afterwards is
// an error; views of it keep the memory alive and remain usable.
func (*Backend) Free(t backend.Tensor) {
	ct, ok := t.(*Tensor)
	if !ok || ct == nil || ct.view {
		return
	}
	ct.Data, ct.Ints = nil, nil
}

// Upload copies host floats into t (len(src) must equal t.Len()), rounding
// to t's precision for BF16 and F16.
func (*Backend) Upload(t backend.Tensor, src []float32) error {
	ct, err := asTensor("cpu.Upload", "t", t)
	if err != nil {
		return err
	}
	if !isFloat(ct.dt) {
		return fmt.Errorf("cpu.Upload: t has dtype %v, want a floating-point dtype (use UploadInt32)", ct.dt)
	}
	if len(src) != ct.n {
		return fmt.Errorf("cpu.Upload: src has %d elements, t %v has %d", len(src), ct, ct.n)
	}
	copy(ct.Data, src)
	roundTo(ct.dt, ct.Data)
	return nil
}

// UploadInt32 copies host ints into an I32 tensor (len(src) == t.Len()).
func (*Backend) UploadInt32(t backend.Tensor, src []int32) error {
	ct, err := asTensor("cpu.UploadInt32", "t", t)
	if err != nil {
		return err
	}
	if ct.dt != backend.I32 {
		return fmt.Errorf("cpu.UploadInt32: t has dtype %v, want I32", ct.dt)
	}
	if len(src) != ct.n {
		return fmt.Errorf("cpu.UploadInt32: src has %d elements, t %v has %d", len(src), ct, ct.n)
	}
	copy(ct.Ints, src)
	return nil
}

// Download copies t into dst (len(dst) == t.Len()).
func (*Backend) Download(dst []float32, t backend.Tensor) error {
	ct, err := asTensor("cpu.Download", "t", t)
	if err != nil {
		return err
	}
	if !isFloat(ct.dt) {
		return fmt.Errorf("cpu.Download: t has dtype %v, want a floating-point dtype (use DownloadInt32)", ct.dt)
	}
	if len(dst) != ct.n {
		return fmt.Errorf("cpu.Download: dst has %d elements, t %v has %d", len(dst), ct, ct.n)
	}
	copy(dst, ct.Data)
	return nil
}

// DownloadInt32 copies an I32 tensor to the host (len(dst) == t.Len()).
func (*Backend) DownloadInt32(dst []int32, t backend.Tensor) error {
	ct, err := asTensor("cpu.DownloadInt32", "t", t)
	if err != nil {
		return err
	}
	if ct.dt != backend.I32 {
		return fmt.Errorf("cpu.DownloadInt32: t has dtype %v, want I32", ct.dt)
	}
	if len(dst) != ct.n {
		return fmt.Errorf("cpu.DownloadInt32: dst has %d elements, t %v has %d", len(dst), ct, ct.n)
	}
	copy(dst, ct.Ints)
	return nil
}

// Copy copies src into dst. Both must have the same length; floating-point
// dtypes convert into each other (rounding into BF16/F16), I32 copies only to
// I32.
func (*Backend) Copy(dst, src backend.Tensor) error {
	d, err := asTensor("cpu.Copy", "dst", dst)
	if err != nil {
		return err
	}
	s, err := asTensor("cpu.Copy", "src", src)
	if err != nil {
		return err
	}
	if d.n != s.n {
		return fmt.Errorf("cpu.Copy: dst %v has %d elements, src %v has %d", d, d.n, s, s.n)
	}
	if (d.dt == backend.I32) != (s.dt == backend.I32) {
		return fmt.Errorf("cpu.Copy: cannot copy %v into %v", s.dt, d.dt)
	}
	if d.dt == backend.I32 {
		copy(d.Ints, s.Ints)
		return nil
	}
	copy(d.Data, s.Data)
	if d.dt != s.dt {
		roundTo(d.dt, d.Data)
	}
	return nil
}

// Zero sets every element of t to 0.
func (*Backend) Zero(t backend.Tensor) error {
	ct, err := asTensor("cpu.Zero", "t", t)
	if err != nil {
		return err
	}
	clear(ct.Data)
	clear(ct.Ints)
	return nil
}

// Sync returns nil: CPU ops complete before they return.
func (*Backend) Sync() error { return nil }
