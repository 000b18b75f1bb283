package main

import (
	"fmt"
	"io"

	"github.com/houlsby/adapters/backend"
	cpu "github.com/houlsby/adapters/cpu_fallback"
	"github.com/houlsby/adapters/gpu"
)

// openDevice selects the backend for device.kind: cpu, cuda (an error
// without CUDA support or GPU), or auto (CUDA when it opens, else the CPU,
// saying why on log).
func openDevice(kind string, ordinal int, log io.Writer) (backend.Backend, error) {
	switch kind {
	case "cpu":
		return cpu.New(), nil
	case "cuda":
		be, err := gpu.Open(ordinal)
		if err != nil {
			return nil, fmt.Errorf("device cuda: %w", err)
		}
		return be, nil
	case "auto", "":
		be, err := gpu.Open(ordinal)
		if err == nil {
			return be, nil
		}
		fmt.Fprintf(log, "device auto: CUDA unavailable (%v); using the CPU\n", err)
		return cpu.New(), nil
	}
	return nil, fmt.Errorf("device %q: want auto, cpu or cuda", kind)
}
