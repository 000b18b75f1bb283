//go:build unix

package sweep

import (
	"runtime"
	"syscall"
)

// processUsage returns this process's user + system CPU seconds and its
// peak resident set in bytes (getrusage(2); ru_maxrss is in kilobytes on
// Linux and in bytes on macOS).
func processUsage() (cpuSeconds float64, peakRSS int64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	rss := int64(ru.Maxrss)
	if runtime.GOOS != "darwin" {
		rss *= 1024
	}
	return tv(ru.Utime) + tv(ru.Stime), rss
}
