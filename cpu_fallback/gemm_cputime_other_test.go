//go:build !linux

package cpu

// processCPUSeconds is unknown off Linux (see the Linux version).
func processCPUSeconds() float64 { return -1 }
