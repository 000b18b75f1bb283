//go:build amd64 && !purego

package cpu

import (
	"os"

	"golang.org/x/sys/cpu"
)

// gemmAVX2Kernel is the 6×16 AVX2+FMA micro-kernel (gemm_amd64.s): 12 ymm
// accumulators, two ymm of B and one broadcast of A per step, the register
// budget of the 16 ymm registers (the BLIS Haswell/Zen choice).
var gemmAVX2Kernel = &gemmKernel{
	name: "avx2", mr: 6, nr: 16,
	// kc=256: the B panel (16*256*4 B = 16 KiB) plus the A panel (6 KiB)
	// fit the 32 KiB L1d of Zen 3 and Intel cores. mc=144 (24 panels):
	// the A block is 144 KiB, under half the 512 KiB-1 MiB per-core L2.
	// nc=4096: the B block is 4 MiB, a share of a 32 MiB L3; it also
	// covers every BERT width (<= 3072) in one block.
	mc: 144, kc: 256, nc: 4096,
	fn:        sgemmKernelAVX2Go,
	fnDirectA: sgemmKernelAVX2DirectAGo,
}

// gemmAVX512Kernel is the 12×32 AVX-512F micro-kernel: 24 zmm accumulators.
// UNTESTED ON HARDWARE: it was written on an AVX2-only machine (AMD EPYC
// Zen 3); it is only selected when the CPU and OS report AVX-512F, and
// TestGemmKernels compares it with the reference wherever that is true.
var gemmAVX512Kernel = &gemmKernel{
	name: "avx512", mr: 12, nr: 32,
	// kc=192: B panel 32*192*4 B = 24 KiB and A panel 9 KiB within the
	// 48 KiB L1d of Ice Lake and later (32 KiB on Skylake-SP: the B panel
	// still fits). mc=144 (12 panels) and nc as for AVX2.
	mc: 144, kc: 192, nc: 4096,
	fn: sgemmKernelAVX512Go,
}

// gemmKernels lists the kernels this CPU can run, fastest last; the plain
// Go kernel is always first.
var gemmKernels = availableGemmKernels()

// bestGemmKernel is the kernel sgemm uses: the fastest available one, except
// that the AVX-512 kernel, which has not yet run on AVX-512 hardware in this
// project's testing, is used only when HOULSBY_GEMM_AVX512=1 asks for it.
// The tests run every available kernel against the reference regardless, so
// `go test ./cpu_fallback` on an AVX-512 machine is how to verify it first.
var bestGemmKernel = chooseGemmKernel(gemmKernels, os.Getenv("HOULSBY_GEMM_AVX512") == "1")

func chooseGemmKernel(ks []*gemmKernel, allowAVX512 bool) *gemmKernel {
	for i := len(ks) - 1; i >= 0; i-- {
		if ks[i] != gemmAVX512Kernel || allowAVX512 {
			return ks[i]
		}
	}
	panic("cpu: no GEMM kernel")
}

func availableGemmKernels() []*gemmKernel {
	ks := []*gemmKernel{gemmGoKernel}
	// x/sys/cpu reports AVX2 and AVX-512 only when the OS also saves the
	// ymm/zmm state (XGETBV), so these are safe to use as they stand.
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		ks = append(ks, gemmAVX2Kernel)
	}
	if cpu.X86.HasAVX512F {
		ks = append(ks, gemmAVX512Kernel)
	}
	return ks
}

// sgemmKernelAVX2 is the assembly body of gemmAVX2Kernel (contract:
// gemmKernel.fn, with mr=6, nr=16, kc >= 1, ldc in elements).
//
//go:noescape
func sgemmKernelAVX2(kc int, a, b, c *float32, ldc int, alpha, beta float32)

// sgemmKernelAVX2DirectA is sgemmKernelAVX2 reading A unpacked: element
// (i, p) of the 6×kc A tile at a[i*lda+p] (contract: gemmKernel.fnDirectA).
//
//go:noescape
func sgemmKernelAVX2DirectA(kc int, a *float32, lda int, b, c *float32, ldc int, alpha, beta float32)

// sgemmKernelAVX512 is the assembly body of gemmAVX512Kernel (mr=12,
// nr=32). Untested on hardware; see gemmAVX512Kernel.
//
//go:noescape
func sgemmKernelAVX512(kc int, a, b, c *float32, ldc int, alpha, beta float32)

// copyRows16 packs 16-wide rows of B (contract: copyRows16Go). Assembly
// because Go compiles a 64-byte array copy to a runtime.memmove call, which
// was 30% of the time of 64x768x4096_TN; SSE only, so any amd64 runs it.
func copyRows16(dst, src []float32, ld, kc int) {
	_ = src[(kc-1)*ld+15]
	_ = dst[16*kc-1]
	copyRows16SSE(&dst[0], &src[0], ld, kc)
}

//go:noescape
func copyRows16SSE(dst, src *float32, ld, kc int)

// fmaPeakAVX2 runs n iterations of 12 independent 8-wide FMAs (192 flops per
// iteration, 12 chains hide the 4-cycle latency on 2 FMA pipes); it only
// exists to measure this machine's FP32 peak (BenchmarkFMAPeak).
//
//go:noescape
func fmaPeakAVX2(n int)

func sgemmKernelAVX2Go(kc int, a, b, c []float32, ldc int, alpha, beta float32) {
	// Bounds: the kernel reads kc*6 of a and kc*16 of b, and touches rows
	// 0..5 of c, columns 0..15. Slicing here panics instead of letting the
	// assembly run off the end.
	_ = a[kc*6-1]
	_ = b[kc*16-1]
	_ = c[5*ldc+15]
	sgemmKernelAVX2(kc, &a[0], &b[0], &c[0], ldc, alpha, beta)
}

func sgemmKernelAVX512Go(kc int, a, b, c []float32, ldc int, alpha, beta float32) {
	_ = a[kc*12-1]
	_ = b[kc*32-1]
	_ = c[11*ldc+31]
	sgemmKernelAVX512(kc, &a[0], &b[0], &c[0], ldc, alpha, beta)
}

func sgemmKernelAVX2DirectAGo(kc int, a []float32, lda int, b, c []float32, ldc int, alpha, beta float32) {
	_ = a[5*lda+kc-1]
	_ = b[kc*16-1]
	_ = c[5*ldc+15]
	sgemmKernelAVX2DirectA(kc, &a[0], lda, &b[0], &c[0], ldc, alpha, beta)
}
