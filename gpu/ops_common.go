package gpu

// Launchers: the methods of Backend that implement the ops of
// backend.Backend by launching the kernels of kernels/*.cu (their exact C
// signatures are listed in kernels/README.md). Each launcher validates its
// arguments, picks the grid, launches on the device's stream and returns the
// launch error at once.
//
// Dimension letters (package backend): B batch, T sequence length, C hidden
// size, NH heads, HS head size, M adapter bottleneck, N rows, V classes or
// vocabulary.
//
// Gradient rule (package backend): parameter gradients accumulate (+=),
// input gradients overwrite (=), a nil parameter gradient means frozen (no
// kernel, no buffer touched), a nil input gradient means skip it.
//
// Dtypes: activations and activation gradients (the "x" tensors of a
// kernel) may be F32 or BF16 but must agree within one call; weights and
// biases (the "w" tensors: biases, LayerNorm weights, embedding tables,
// adapter weights) may be F32 or BF16 independently of the activations; the
// Gemm operands and result may each be F32 or BF16. Parameter gradients,
// LayerNorm statistics, losses and optimizer state are F32. Arithmetic is
// always fp32; a BF16 result is rounded once, to nearest even. Other
// combinations return an error naming the argument.

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"

	"github.com/houlsby/adapters/backend"
)

// The GPU backend implements the core contract, every fused capability
// (adapter, attention, linear, residual + LayerNorm) and both grouped
// (serving) capabilities; the adapter, grouped adapter and attention answer
// backend.ErrNotFused beyond their kernels' limits (adapter and grouped
// adapter M > 256, more than 65535 segments; attention T > 512, HS > 128, a
// grid dimension above 65535, and the bf16 backward with HS < 2), and
// backend's generic composition of core ops runs instead.
var (
	_ backend.Backend           = (*Backend)(nil)
	_ backend.FusedAdapter      = (*Backend)(nil)
	_ backend.FusedAttention    = (*Backend)(nil)
	_ backend.FusedLinear       = (*Backend)(nil)
	_ backend.FusedAddLayerNorm = (*Backend)(nil)
	_ backend.GroupedAdapter    = (*Backend)(nil)
	_ backend.GroupedLayerNorm  = (*Backend)(nil)
)

// block1D is the block size of the 1-D grid-stride kernels.
const block1D = 256

// grid1D covers n elements with block1D-thread blocks, capped at 65535
// blocks: the kernels stride over the rest.
func grid1D(n int) Dim3 {
	g := (n + block1D - 1) / block1D
	return Dim3{X: uint32(max(1, min(g, 65535))), Y: 1, Z: 1}
}

// b1 is a 1-D block of n threads.
func b1(n int) Dim3 { return Dim3{X: uint32(n), Y: 1, Z: 1} }

// launch runs kernel k (from its family in kernels.go) and wraps its error
// with the op's name.
func (b *Backend) launch(op string, k kernel, grid, block Dim3, sharedBytes int, args ...uint64) error {
	if err := b.dev.Launch(k.name, grid, block, sharedBytes, args...); err != nil {
		return fmt.Errorf("%s: kernel %s: %w", op, k.name, err)
	}
	return nil
}

// ptr passes t's address as a kernel argument; a nil t passes a null pointer.
func ptr(t *Tensor) uint64 {
	if t == nil {
		return 0
	}
	return uint64(t.Ptr)
}

// i64 passes a bool as a long long flag.
func i64(v bool) uint64 {
	if v {
		return 1
	}
	return 0
}

// sizes returns an error unless every size is >= 0. names lists the sizes'
// names, comma-separated, in order.
func sizes(op, names string, vals ...int) error {
	for i, v := range vals {
		if v < 0 {
			name := "size"
			if ns := strings.Split(names, ","); i < len(ns) {
				name = strings.TrimSpace(ns[i])
			}
			return fmt.Errorf("%s: %s = %d is negative", op, name, v)
		}
	}
	return nil
}

// arg returns t as a device tensor of one of the dtypes dts holding at least
// n elements.
func arg(op, name string, t backend.Tensor, n int, dts ...backend.DType) (*Tensor, error) {
	g, err := devTensor(op, name, t)
	if err != nil {
		return nil, err
	}
	ok := false
	for _, dt := range dts {
		ok = ok || g.dt == dt
	}
	if !ok {
		return nil, fmt.Errorf("%s: %s has dtype %v, want one of %v", op, name, g.dt, dts)
	}
	if g.n < n {
		return nil, fmt.Errorf("%s: %s has %d elements, need %d", op, name, g.n, n)
	}
	return g, nil
}

// f32 is arg for an F32 tensor.
func f32(op, name string, t backend.Tensor, n int) (*Tensor, error) {
	return arg(op, name, t, n, backend.F32)
}

// isNil reports whether t is nil or a nil *Tensor.
func isNil(t backend.Tensor) bool {
	if t == nil {
		return true
	}
	g, ok := t.(*Tensor)
	return ok && g == nil
}

// optF32 is f32 for an optional argument: nil gives nil.
func optF32(op, name string, t backend.Tensor, n int) (*Tensor, error) {
	if isNil(t) {
		return nil, nil
	}
	return f32(op, name, t, n)
}

// activ is arg for an activation (or activation gradient), F32 or BF16.
func activ(op, name string, t backend.Tensor, n int) (*Tensor, error) {
	return arg(op, name, t, n, backend.F32, backend.BF16)
}

// optActiv is activ for an optional argument: nil gives nil.
func optActiv(op, name string, t backend.Tensor, n int) (*Tensor, error) {
	if isNil(t) {
		return nil, nil
	}
	return activ(op, name, t, n)
}

// weight is arg for a weight that may be stored F32 or BF16.
func weight(op, name string, t backend.Tensor, n int) (*Tensor, error) {
	return arg(op, name, t, n, backend.F32, backend.BF16)
}

// i32 is arg for an I32 tensor.
func i32(op, name string, t backend.Tensor, n int) (*Tensor, error) {
	return arg(op, name, t, n, backend.I32)
}

// sameDType returns an error unless all non-nil tensors share one dtype.
func sameDType(op, names string, ts ...*Tensor) error {
	var first *Tensor
	for _, t := range ts {
		if t == nil {
			continue
		}
		if first == nil {
			first = t
			continue
		}
		if t.dt != first.dt {
			return fmt.Errorf("%s: %s must share one dtype, got %v and %v", op, names, first.dt, t.dt)
		}
	}
	return nil
}

// overlaps reports whether the first na elements of a and the first nb
// elements of b share memory.
func overlaps(a *Tensor, na int, b *Tensor, nb int) bool {
	if a == nil || b == nil || na == 0 || nb == 0 {
		return false
	}
	ae, be := a.Ptr+DevicePtr(na*a.dt.Size()), b.Ptr+DevicePtr(nb*b.dt.Size())
	return a.Ptr < be && b.Ptr < ae
}

// mulOK returns an error if the product of vals overflows int.
func mulOK(op string, vals ...int) (int, error) {
	p := 1
	for _, v := range vals {
		if v != 0 && p > (1<<62)/v {
			return 0, fmt.Errorf("%s: sizes %v overflow", op, vals)
		}
		p *= v
	}
	return p, nil
}

// checkP returns an error unless 0 <= p < 1.
func checkP(op string, p float32) error {
	if !(p >= 0 && p < 1) {
		return fmt.Errorf("%s: dropout probability %v is outside [0, 1)", op, p)
	}
	return nil
}

// checkIndices returns an error naming the first of the first n ints of
// the I32 tensor t that is >= hi, or < 0 when negOK is false. The kernels
// cannot report a bad index, and the contract wants an error. When the
// backend uploaded t's values itself (known.go) it checks them on the host;
// otherwise it reads them back, one small device-to-host copy that waits
// for the queued work.
func (b *Backend) checkIndices(op, name string, t *Tensor, n, hi int, negOK bool) error {
	if n == 0 {
		return nil
	}
	vals, ok := b.knownIntsAt(t.Ptr, n)
	if !ok {
		buf := b.stage(4 * n)
		if err := b.dev.DtoH(buf, t.Ptr); err != nil {
			return fmt.Errorf("%s: reading %s back to check them: %w", op, name, err)
		}
		if cap(b.hostI) < n {
			b.hostI = make([]int32, n)
		}
		vals = b.hostI[:n]
		for i := range vals {
			vals[i] = int32(binary.LittleEndian.Uint32(buf[4*i:]))
		}
	}
	for i, v := range vals {
		if int(v) >= hi || (v < 0 && !negOK) {
			return fmt.Errorf("%s: %s[%d] = %d is outside [%d, %d)", op, name, i, v, map[bool]int{true: math.MinInt32, false: 0}[negOK], hi)
		}
	}
	return nil
}
