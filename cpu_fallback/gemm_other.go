//go:build !amd64 || purego

package cpu

// gemmKernels lists the kernels this build can run: only the plain Go one
// off amd64 (or with the purego tag).
var gemmKernels = []*gemmKernel{gemmGoKernel}

// bestGemmKernel is the kernel sgemm uses.
var bestGemmKernel = gemmGoKernel

// gemmKernelFor is the kernel sgemm uses for a product of this shape.
func gemmKernelFor(bool, int, int, int) *gemmKernel { return gemmGoKernel }

// copyRows16 packs 16-wide rows of B; see copyRows16Go.
var copyRows16 = copyRows16Go

// copyRows32 packs 32-wide rows of B; see copyRows32Go.
var copyRows32 = copyRows32Go

// copyRows12 packs a transposed 12-row A panel; see copyRows12Go.
var copyRows12 = copyRows12Go

// packBTRows8 packs 8 stored rows of B into a panel; see packBTRows8Go.
var packBTRows8 = packBTRows8Go

// gemmKernelsF64 lists the float64-accumulating kernels of this build.
var gemmKernelsF64 = []*gemmKernelF64{gemmGoKernelF64}

// bestGemmKernelF64 is the float64-accumulating kernel: the Go one here.
var bestGemmKernelF64 = gemmGoKernelF64
