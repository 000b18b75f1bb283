// Package gpu is the CUDA backend. Its Go code (argument checks, launch
// geometry, the kernels' argument lists) is written against the small Device
// interface below, not against CUDA directly, so the same launchers drive
//
//   - the real GPU: cuda.Device (package cuda, build tag `cuda`, over
//     gorgonia.org/cu), running kernels/*.cu compiled to PTX; and
//   - the emulator: gpu/emu (cgo, no CUDA), running the very same
//     kernels/*.cu sources compiled as C++ against kernels/emu/cuda_emu.h,
//     which is how CI checks indexing, bounds, barriers and reductions
//     on every change without a GPU.
package gpu

import (
	"math"

	"github.com/houlsby/adapters/backend"
)

// DevicePtr is a device address (on the emulator, a host address).
type DevicePtr uint64

// Dim3 is a CUDA grid or block shape.
type Dim3 struct{ X, Y, Z uint32 }

// Device is what the backend needs from a CUDA-like device. Every call
// returns its own error at once; nothing is stored for later.
type Device interface {
	// Name describes the device, e.g. "cuda:0 NVIDIA H100 80GB HBM3".
	Name() string
	// Alloc returns zeroed device memory of the given size.
	Alloc(bytes int) (DevicePtr, error)
	Free(p DevicePtr) error
	// HtoD / DtoH copy between host byte slices and device memory.
	HtoD(dst DevicePtr, src []byte) error
	DtoH(dst []byte, src DevicePtr) error
	DtoD(dst, src DevicePtr, bytes int) error
	Memset0(dst DevicePtr, bytes int) error
	// Launch runs kernel (an extern "C" name from kernels/*.cu) on the
	// backend's stream. Every argument is 8 bytes: a device pointer or a
	// scalar made with Ptr, Int or F (gorgonia.org/cu copies each kernel
	// argument as 8 bytes, so kernels take pointers, long long and double).
	Launch(kernel string, grid, block Dim3, sharedBytes int, args ...uint64) error
	// Sync waits for queued work and reports a deferred fault.
	Sync() error
}

// Ptr passes a device pointer as a kernel argument.
func Ptr(p DevicePtr) uint64 { return uint64(p) }

// Int passes an integer as a `long long` kernel argument.
func Int(n int) uint64 { return uint64(int64(n)) }

// F passes a float as a `double` kernel argument (kernels convert it to
// float; every float32 is exactly representable as a double).
func F(x float32) uint64 { return math.Float64bits(float64(x)) }

// Tensor is a device tensor. Views share ptr's allocation with their parent.
type Tensor struct {
	Ptr   DevicePtr
	shape []int
	dt    backend.DType
	n     int
	view  bool
}

// Shape implements backend.Tensor.
func (t *Tensor) Shape() []int { return t.shape }

// DType implements backend.Tensor.
func (t *Tensor) DType() backend.DType { return t.dt }

// Len implements backend.Tensor.
func (t *Tensor) Len() int { return t.n }
