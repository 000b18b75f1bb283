//go:build !unix

package model

// processCPUSeconds is not measured on this platform (the benchmark then
// reports 0 CPU seconds).
func processCPUSeconds() float64 { return 0 }
