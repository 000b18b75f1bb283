//go:build linux

package cpu

import "syscall"

// processCPUSeconds is the user+system CPU time of this process so far, or
// -1 when unknown. Benchmarks divide flops by it to report a rate per
// CPU-second, which load from other processes on a shared machine affects
// far less than the wall-clock rate.
func processCPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
