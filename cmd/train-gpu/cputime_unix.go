//go:build unix

package main

import "syscall"

// processCPUSeconds is the CPU time (user + system, all threads) this
// process has used: on a machine shared with other work it measures the
// work done, where wall time also measures the others.
func processCPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}
