//go:build amd64 && !purego

package cpu

import (
	"runtime"
	"sync"
	"testing"

	"golang.org/x/sys/cpu"
)

// BenchmarkFMAPeak measures this machine's FP32 FMA throughput with
// independent 8-wide FMAs (fmaPeakAVX2), on one core and on all of them. The
// per-core figure divided by 2 FMA pipes × 8 lanes × 2 flops gives the
// effective clock (docs/benchmarks.md); GFLOP/cpu-s divided by the same 32
// is the clock a thread sees while it runs, whatever else loads the machine.
func BenchmarkFMAPeak(b *testing.B) {
	if !(cpu.X86.HasAVX2 && cpu.X86.HasFMA) {
		b.Skip("no AVX2+FMA on this CPU")
	}
	const iters = 1 << 20 // 192 Mflop per call, ~1-2 ms on one core
	for _, threads := range []int{1, runtime.GOMAXPROCS(0)} {
		b.Run(map[bool]string{true: "1core", false: "allcores"}[threads == 1], func(b *testing.B) {
			cpu0 := processCPUSeconds()
			for i := 0; i < b.N; i++ {
				var wg sync.WaitGroup
				for t := 0; t < threads; t++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						fmaPeakAVX2(iters)
					}()
				}
				wg.Wait()
			}
			flops := float64(threads) * iters * 12 * 8 * 2 * float64(b.N)
			reportGflops(b, flops, processCPUSeconds()-cpu0, cpu0 >= 0)
		})
	}
}
