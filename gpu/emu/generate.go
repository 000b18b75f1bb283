package emu

// kernel_list.h, runtime.cc's table of kernels, is generated from
// gpu.KernelNames (gpu/kernels.go, the one list of kernel names); the test
// of internal/kernellist fails when it is stale.
//go:generate go run ./internal/genkernellist
