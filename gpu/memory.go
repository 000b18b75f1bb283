package gpu

// Device tensors: allocation from the caching pool (pool.go), views,
// freeing and zeroing.

import (
	"fmt"
	"math"

	"github.com/houlsby/adapters/backend"
)

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

// scratch is Alloc without the zeroing, for the launchers' internal
// buffers that a kernel overwrites completely before anything reads them
// (a zeroing is one more operation on the stream per buffer and step).
func (b *Backend) scratch(op, name string, dt backend.DType, n int) (*Tensor, error) {
	bytes := max(n, 1) * dt.Size()
	p, err := b.pool.get(b.dev, bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: scratch %s (%d bytes): %w", op, name, bytes, err)
	}
	b.wrote(p, bytes)
	return &Tensor{Ptr: p, shape: []int{max(n, 1)}, dt: dt, n: max(n, 1)}, nil
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
