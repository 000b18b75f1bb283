//go:build !unix

package main

// processCPUSeconds is unknown off Unix (-1: bench reports no CPU time).
func processCPUSeconds() float64 { return -1 }
