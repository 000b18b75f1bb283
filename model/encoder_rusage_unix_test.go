//go:build unix

package model

import "syscall"

// processCPUSeconds is the CPU time (user + system, all threads) this
// process has used: a measure of work that, unlike wall time, hardly depends
// on how many other processes share the cores.
func processCPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}
