//go:build amd64 && !purego

package cpu

import (
	"runtime"
	"sync"
	"testing"

	"golang.org/x/sys/cpu"
)

// BenchmarkFMAPeak measures this machine's FP32 FMA throughput with
// independent 8-wide FMAs (fmaPeakAVX2), on one core and on all of them,
// and with 16-wide ones (fmaPeakAVX512, as .../avx512) where the CPU has
// AVX-512. The per-core figure divided by 2 FMA pipes × 8 lanes × 2 flops
// gives the effective clock (docs/benchmarks.md); GFLOP/cpu-s divided by
// the same 32 is the clock a thread sees while it runs, whatever else loads
// the machine. A core with full-width 512-bit FMA units (Zen 5, Intel
// server cores) doubles the figure with AVX-512.
func BenchmarkFMAPeak(b *testing.B) {
	if !(cpu.X86.HasAVX2 && cpu.X86.HasFMA) {
		b.Skip("no AVX2+FMA on this CPU")
	}
	const iters = 1 << 20 // 192 Mflop per call, ~1-2 ms on one core
	type peak struct {
		name  string
		fn    func(int)
		flops float64 // per iteration
	}
	peaks := []peak{{"", fmaPeakAVX2, 12 * 8 * 2}}
	if cpu.X86.HasAVX512F {
		peaks = append(peaks, peak{"/avx512", fmaPeakAVX512, 24 * 16 * 2})
	}
	for _, pk := range peaks {
		for _, threads := range []int{1, runtime.GOMAXPROCS(0)} {
			benchFMAPeak(b, map[bool]string{true: "1core", false: "allcores"}[threads == 1]+pk.name, threads, iters, pk.fn, pk.flops)
		}
	}
}

func benchFMAPeak(b *testing.B, name string, threads, iters int, fn func(int), flopsPerIter float64) {
	{
		b.Run(name, func(b *testing.B) {
			cpu0 := processCPUSeconds()
			for i := 0; i < b.N; i++ {
				var wg sync.WaitGroup
				for t := 0; t < threads; t++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						fn(iters)
					}()
				}
				wg.Wait()
			}
			flops := float64(threads) * float64(iters) * flopsPerIter * float64(b.N)
			reportGflops(b, flops, processCPUSeconds()-cpu0, cpu0 >= 0)
		})
	}
}
