package cpu

import (
	"fmt"
	"math/rand"
	"testing"
)

// gemmBenchShape is one benchmarked problem, named MxNxK_tAtB with N/T for
// op(X) = X / Xᵀ.
type gemmBenchShape struct {
	m, n, k        int
	transA, transB bool
}

func (s gemmBenchShape) String() string {
	return fmt.Sprintf("%dx%dx%d_%s%s", s.m, s.n, s.k, tf(s.transA), tf(s.transB))
}

// gemmBenchShapes are the GEMMs of a BERT layer over 4096 tokens (BERT-base
// d=768/FFN 3072 and MiniLM d=384/FFN 1536) in the three transpose cases the
// model uses, of a d=768 and a d=384 m=64 bottleneck adapter, and the small
// per-head products of attention:
//
//	forward     Y  = X·Wᵀ   M=tokens, N=out, K=in    NT
//	input grad  dX = dY·W   M=tokens, N=in,  K=out   NN
//	weight grad dW = dYᵀ·X  M=out,    N=in,  K=tokens TN
//
// scripts/bench_gemm.py times numpy/OpenBLAS on the same list.
var gemmBenchShapes = []gemmBenchShape{
	// forward, X·Wᵀ
	{4096, 384, 384, false, true},
	{4096, 1536, 384, false, true},
	{4096, 384, 1536, false, true},
	{4096, 768, 768, false, true},
	{4096, 3072, 768, false, true},
	{4096, 768, 3072, false, true},
	// input gradient, dY·W
	{4096, 384, 1536, false, false},
	{4096, 768, 768, false, false},
	{4096, 768, 3072, false, false},
	{4096, 3072, 768, false, false},
	// weight gradient, dYᵀ·X
	{384, 1536, 4096, true, false},
	{768, 768, 4096, true, false},
	{3072, 768, 4096, true, false},
	{768, 3072, 4096, true, false},
	// adapter d=768, m=64: down and up projections, their dX and dW
	{4096, 64, 768, false, true},
	{4096, 768, 64, false, true},
	{4096, 768, 64, false, false},
	{4096, 64, 768, false, false},
	{64, 768, 4096, true, false},
	{768, 64, 4096, true, false},
	// adapter d=384 (all-MiniLM-L6-v2), m=64: the same six products
	{4096, 64, 384, false, true},
	{4096, 384, 64, false, true},
	{4096, 384, 64, false, false},
	{4096, 64, 384, false, false},
	{64, 384, 4096, true, false},
	{384, 64, 4096, true, false},
	// tiles of the packed attention (48 queries forward, 96 backward, by
	// attnBk = 128 keys, HS = 32): forward scores Q·Kᵀ and P·V; backward
	// scores and dP̃ = dout·Vᵀ, dV = P̃ᵀ·dout and dK, dQ; and the padded
	// attention's per-head products at T = 128
	{48, 128, 32, false, true},
	{48, 32, 128, false, false},
	{96, 128, 32, false, true},
	{128, 32, 96, true, false},
	{96, 32, 128, false, false},
	{128, 128, 32, false, true},
	{128, 32, 128, false, false},
}

// BenchmarkGemm times sgemm (beta = 0, all cores) on gemmBenchShapes as
// BenchmarkGemm/cpu/<shape> with the kernel sgemm chooses for the shape,
// every SIMD kernel this CPU has as BenchmarkGemm/kernel-<name>/<shape>
// (the measurements behind the choice rule, gemmKernelFor), and the plain
// Go kernel on two shapes as BenchmarkGemm/cpu-go/<shape>, reporting
// GFLOP/s = 2·M·N·K / time.
func BenchmarkGemm(b *testing.B) {
	for _, s := range gemmBenchShapes {
		b.Run("cpu/"+s.String(), func(b *testing.B) { benchGemm(b, gemmKernelFor(s.transA, s.m, s.n, s.k), s) })
	}
	for _, k := range gemmKernels {
		if k == gemmGoKernel {
			continue
		}
		for _, s := range gemmBenchShapes {
			b.Run("kernel-"+k.name+"/"+s.String(), func(b *testing.B) { benchGemm(b, k, s) })
		}
	}
	for _, s := range []gemmBenchShape{{4096, 768, 768, false, true}, {4096, 768, 64, false, true}} {
		b.Run("cpu-go/"+s.String(), func(b *testing.B) { benchGemm(b, gemmGoKernel, s) })
	}
}

// gemmBenchData returns random operands of a benchmark shape (values in
// [-1, 1), seed 1), a zero C, and A's and B's leading dimensions.
func gemmBenchData(s gemmBenchShape) (a, b, c []float32, lda, ldb int) {
	rng := rand.New(rand.NewSource(1))
	fill := func(n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = 2*rng.Float32() - 1
		}
		return x
	}
	a, b, c = fill(s.m*s.k), fill(s.k*s.n), make([]float32, s.m*s.n)
	lda, ldb = s.k, s.n
	if s.transA {
		lda = s.m
	}
	if s.transB {
		ldb = s.k
	}
	return a, b, c, lda, ldb
}

func benchGemm(b *testing.B, kern *gemmKernel, s gemmBenchShape) {
	a, bm, c, lda, ldb := gemmBenchData(s)
	workers := gemmWorkers(kern.mr, kern.nr, s.m, s.n, s.k)
	call := func() {
		sgemmBlocked(kern, workers, s.transA, s.transB, s.m, s.n, s.k, 1, a, lda, bm, ldb, 0, c, s.n)
	}
	call() // warm-up: packing buffers, worker pool
	b.ResetTimer()
	cpu0 := processCPUSeconds()
	for i := 0; i < b.N; i++ {
		call()
	}
	b.StopTimer()
	reportGflops(b, 2*float64(s.m)*float64(s.n)*float64(s.k)*float64(b.N), processCPUSeconds()-cpu0, cpu0 >= 0)
}

// reportGflops reports GFLOP/s (wall clock) and, when CPU time is known,
// GFLOP/cpu-s: flops per CPU-second of this process (all threads), a
// measure of per-core efficiency that other processes' load barely moves.
func reportGflops(b *testing.B, flops, cpuSeconds float64, haveCPU bool) {
	b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	if haveCPU && cpuSeconds > 0 {
		b.ReportMetric(flops/cpuSeconds/1e9, "GFLOP/cpu-s")
	}
}
