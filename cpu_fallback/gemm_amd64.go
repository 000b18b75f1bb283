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
	// covers every BERT width (<= 3072) in one block. On a CPU with
	// AVX-512 its kc is the AVX-512 kernel's (gemmSharedKC; both 256).
	mc: 144, kc: 256, nc: 4096,
	fn:        sgemmKernelAVX2Go,
	fnDirectA: sgemmKernelAVX2DirectAGo,
}

// gemmAVX512Kernel is the 12×32 AVX-512F micro-kernel: 24 zmm accumulators,
// two zmm of B and one broadcast of A per step, a prefetch of the C tile
// at the start, and its direct-A variant. Blocking measured on AMD EPYC
// Zen 5 (family 0x1A; 48 KiB L1d, 1 MiB L2 per core, 32 MiB L3),
// BenchmarkGemm -cpu 1, best of 3-4, GFLOP per CPU-second
// (docs/benchmarks.md): without the C prefetch kc=768 ran 20-30% faster
// than kc=256 (fewer stalls on C per k step); with it kc=256 matches 384
// and 768, so kc=256, the AVX2 kernel's, which keeps the two kernels'
// roundings identical (gemmSharedKC) and the sums as short as before. mc:
// 96, 144 and 192 were within 3% (noise here); 96 (A block 96 KiB). nc=4096
// as for AVX2. A is read unpacked (direct-A) up to 24 B panels (n <= 768):
// 4-17% faster than packing A there (4096x384x384_NT 216 against 184,
// 4096x768x768_NN 222 against 207), slower from n = 1536
// (4096x3072x768_NT 179 against 211).
var gemmAVX512Kernel = &gemmKernel{
	name: "avx512", mr: 12, nr: 32,
	mc: 96, kc: 256, nc: 4096,
	fn:        sgemmKernelAVX512Go,
	fnDirectA: sgemmKernelAVX512DirectAGo,
	directMax: 24,
}

// gemmKernels lists the kernels this CPU can run, fastest last; the plain
// Go kernel is always first.
var gemmKernels = availableGemmKernels()

// bestGemmKernel is the kernel sgemm uses for the products where the rule
// of gemmKernelFor does not prefer another.
var bestGemmKernel = chooseGemmKernel(gemmKernels, avx512Measured() || os.Getenv("HOULSBY_GEMM_AVX512") == "1")

// gemmKernelFor is the kernel sgemm uses for a product of this shape. The
// rule is static: which kernels the CPU has, and whether AVX-512 was
// measured faster on this CPU family (avx512Measured): then the AVX-512
// kernel, for every shape (on Zen 5 it beat AVX2 on every BenchmarkGemm
// shape, 1.5-2.2x per CPU-second, the attention tiles included:
// docs/benchmarks.md); otherwise AVX2, unless HOULSBY_GEMM_AVX512=1. No
// timing at start-up: and since the kernels share their k-block
// (gemmSharedKC) and give bitwise the same results, which one runs changes
// the speed only.
func gemmKernelFor(transA bool, m, n, k int) *gemmKernel {
	return bestGemmKernel
}

// avx512Measured reports whether this CPU belongs to a family on which the
// AVX-512 kernel was measured faster than AVX2: AMD family 0x1A (Zen 5,
// whose FMA units are 512 bits wide). Not (yet) Zen 4 (family 0x19, whose
// AVX-512 runs on 256-bit units) nor Intel cores (some lower their clock
// for 512-bit code): unmeasured, they keep AVX2.
func avx512Measured() bool {
	vendor, family, _ := cpuid()
	return vendor == "AuthenticAMD" && family == 0x1a
}

// chooseGemmKernel returns the widest kernel of ks (ordered narrowest first),
// passing over the AVX-512 one unless allowAVX512.
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
		gemmSharedKC(ks)
	}
	return ks
}

// gemmSharedKC gives every SIMD kernel the k-block of the last (widest)
// one. Each C element is the sum over k blocks, each block's sum in p
// order with fused multiply-adds, then alpha·sum and one fused
// multiply-add with beta·C (edge tiles too, see macroKernel); tile shapes
// and A packing only decide where that happens. With the same k blocks the
// AVX2 and AVX-512 kernels therefore give bitwise the same C
// (TestGemmKernelsBitwiseEqual), and the per-shape choice cannot change a
// result. (Both are 256 today; the rule keeps it so if either is retuned.
// The AVX2 kernel measured the same with kc 256, 512 and 768 on Zen 5.)
func gemmSharedKC(ks []*gemmKernel) {
	kc := ks[len(ks)-1].kc
	for _, k := range ks {
		if k != gemmGoKernel {
			k.kc = kc
		}
	}
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
// nr=32; contract: gemmKernel.fn).
//
//go:noescape
func sgemmKernelAVX512(kc int, a, b, c *float32, ldc int, alpha, beta float32)

// sgemmKernelAVX512DirectA is sgemmKernelAVX512 reading A unpacked:
// element (i, p) of the 12×kc A tile at a[i*lda+p] (contract:
// gemmKernel.fnDirectA).
//
//go:noescape
func sgemmKernelAVX512DirectA(kc int, a *float32, lda int, b, c *float32, ldc int, alpha, beta float32)

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

// copyRows12 packs a transposed A panel of 12 rows (contract:
// copyRows12Go).
func copyRows12(dst, src []float32, ld, kc int) {
	_ = src[(kc-1)*ld+11]
	_ = dst[12*kc-1]
	copyRows12SSE(&dst[0], &src[0], ld, kc)
}

//go:noescape
func copyRows12SSE(dst, src *float32, ld, kc int)

// packBTRows8 is packBTRows8Go with the 8×8 blocks transposed in
// registers (transpose8AVX, AVX only) and the last kc mod 8 columns in Go:
// about a quarter of the instructions of the element-wise copy, which was
// 3-4% of the encoder's time (packBT32, perf).
func packBTRows8(panel []float32, nr int, b []float32, base, ldb, kc int) {
	k8 := kc / 8
	if k8 > 0 && cpu.X86.HasAVX {
		_ = b[base+7*ldb+8*k8-1]
		_ = panel[(8*k8-1)*nr+7]
		transpose8AVX(&panel[0], nr, &b[base], ldb, k8)
	} else {
		k8 = 0
	}
	if rest := kc - 8*k8; rest > 0 {
		packBTRows8Go(panel[8*k8*nr:], nr, b, base+8*k8, ldb, rest)
	}
}

//go:noescape
func transpose8AVX(dst *float32, nr int, src *float32, ld int, kc8 int)

// copyRows32 packs 32-wide rows of B (contract: copyRows32Go), for the
// AVX-512 kernel's panels.
func copyRows32(dst, src []float32, ld, kc int) {
	_ = src[(kc-1)*ld+31]
	_ = dst[32*kc-1]
	copyRows32SSE(&dst[0], &src[0], ld, kc)
}

//go:noescape
func copyRows32SSE(dst, src *float32, ld, kc int)

// fmaPeakAVX2 runs n iterations of 12 independent 8-wide FMAs (192 flops per
// iteration, 12 chains hide the 4-cycle latency on 2 FMA pipes); it only
// exists to measure this machine's FP32 peak (BenchmarkFMAPeak).
//
//go:noescape
func fmaPeakAVX2(n int)

// fmaPeakAVX512 is fmaPeakAVX2 with 24 independent 16-wide FMAs (768 flops
// per iteration), for the AVX-512 peak.
//
//go:noescape
func fmaPeakAVX512(n int)

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

func sgemmKernelAVX512DirectAGo(kc int, a []float32, lda int, b, c []float32, ldc int, alpha, beta float32) {
	_ = a[11*lda+kc-1]
	_ = b[kc*32-1]
	_ = c[11*ldc+31]
	sgemmKernelAVX512DirectA(kc, &a[0], lda, &b[0], &c[0], ldc, alpha, beta)
}

func sgemmKernelAVX2DirectAGo(kc int, a []float32, lda int, b, c []float32, ldc int, alpha, beta float32) {
	_ = a[5*lda+kc-1]
	_ = b[kc*16-1]
	_ = c[5*ldc+15]
	sgemmKernelAVX2DirectA(kc, &a[0], lda, &b[0], &c[0], ldc, alpha, beta)
}

// cpuid returns the CPU vendor string (CPUID leaf 0) and the family and
// model of leaf 1 (with the extended fields added as both vendors define
// them for families 0xF and up; x/sys/cpu reports features, not these).
func cpuid() (vendor string, family, model uint32) {
	_, b, c, d := cpuidRaw(0, 0)
	v := make([]byte, 0, 12)
	for _, r := range []uint32{b, d, c} {
		v = append(v, byte(r), byte(r>>8), byte(r>>16), byte(r>>24))
	}
	a, _, _, _ := cpuidRaw(1, 0)
	family = (a >> 8) & 0xf
	model = (a >> 4) & 0xf
	if family == 0xf {
		family += (a >> 20) & 0xff
		model |= ((a >> 16) & 0xf) << 4
	} else if family == 6 {
		model |= ((a >> 16) & 0xf) << 4
	}
	return string(v), family, model
}

// cpuidRaw executes CPUID with EAX = eaxArg, ECX = ecxArg.
func cpuidRaw(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)

// gemmAVX512KernelF64 is the 12×16 float64-accumulating AVX-512 kernel
// (gemm_f64.go, gemm_amd64.s). Blocking: an A panel is 12·k float64 (36 KiB
// at k = 384, in L1; 288 KiB at k = 3072, in L2), the A block mc·k float64
// and the B block nc·k float32 (docs/numerics.md gives the speed).
var gemmAVX512KernelF64 = &gemmKernelF64{
	name: "avx512-f64", mr: 12, nr: 16,
	mc: 48, nc: 512,
	fn: sgemmF64KernelAVX512Go,
}

// gemmAVX2KernelF64 is the 6×8 float64-accumulating AVX2+FMA kernel: 12
// ymm accumulators, the register budget of the 16 ymm registers.
var gemmAVX2KernelF64 = &gemmKernelF64{
	name: "avx2-f64", mr: 6, nr: 8,
	mc: 48, nc: 512,
	fn: sgemmF64KernelAVX2Go,
}

// bestGemmKernelF64 is the float64-accumulating kernel sgemmF64 uses: the
// widest this CPU runs, AVX-512 wherever the CPU has AVX-512F (whatever its
// family: this path is for accuracy, and every kernel gives the same bits).
var bestGemmKernelF64 = gemmKernelsF64[len(gemmKernelsF64)-1]

// gemmKernelsF64 lists the float64-accumulating kernels this CPU can run,
// narrowest first.
var gemmKernelsF64 = func() []*gemmKernelF64 {
	ks := []*gemmKernelF64{gemmGoKernelF64}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		ks = append(ks, gemmAVX2KernelF64)
	}
	if cpu.X86.HasAVX512F {
		ks = append(ks, gemmAVX512KernelF64)
	}
	return ks
}()

// sgemmF64KernelAVX2 is the assembly body of gemmAVX2KernelF64 (contract:
// gemmKernelF64.fn, with mr=6, nr=8, kc >= 1, ldc in elements).
//
//go:noescape
func sgemmF64KernelAVX2(kc int, a *float64, b, c *float32, ldc int, alpha, beta float32)

func sgemmF64KernelAVX2Go(kc int, a []float64, b, c []float32, ldc int, alpha, beta float32) {
	_ = a[kc*6-1]
	_ = b[kc*8-1]
	_ = c[5*ldc+7]
	sgemmF64KernelAVX2(kc, &a[0], &b[0], &c[0], ldc, alpha, beta)
}

// sgemmF64KernelAVX512 is the assembly body of gemmAVX512KernelF64
// (contract: gemmKernelF64.fn, with mr=12, nr=16, kc >= 1, ldc in
// elements).
//
//go:noescape
func sgemmF64KernelAVX512(kc int, a *float64, b, c *float32, ldc int, alpha, beta float32)

func sgemmF64KernelAVX512Go(kc int, a []float64, b, c []float32, ldc int, alpha, beta float32) {
	_ = a[kc*12-1]
	_ = b[kc*16-1]
	_ = c[11*ldc+15]
	sgemmF64KernelAVX512(kc, &a[0], &b[0], &c[0], ldc, alpha, beta)
}
