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
