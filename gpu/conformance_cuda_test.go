//go:build cuda

package gpu_test

// The shared backend suite (tests/conformance) on the real GPU, in float32
// and bf16 modes: the same checks the emulator passes in gpu/emu, now with
// the PTX kernels, real tensor cores and the CUDA math library. Needs a GPU
// (see docs/gpu-status.md for how to run the test binary there).

import (
	"sync"
	"testing"

	"github.com/houlsby/adapters/backend"
	"github.com/houlsby/adapters/cuda"
	"github.com/houlsby/adapters/gpu"
	"github.com/houlsby/adapters/tests/conformance"
)

var (
	confOnce sync.Once
	confDev  *gpu.CUDA
	confErr  error
)

// gpuBackend returns a constructor of backends over one shared GPU context
// (a context per subtest would be slow to create); each backend
// frees its memory when its test ends.
func gpuBackend(t *testing.T, bf16 bool) func() backend.Backend {
	confOnce.Do(func() {
		d, err := cuda.Open(0)
		if err != nil {
			confErr = err
			return
		}
		confDev = gpu.CUDADevice(d)
	})
	if confErr != nil {
		t.Skipf("no usable GPU: %v", confErr)
	}
	return func() backend.Backend {
		be, err := gpu.New(confDev, gpu.Options{BF16: bf16})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := be.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return be
	}
}

// TestConformanceGPUF32 runs the suite with F32 storage: GEMMs of two F32
// operands use the fp32 kernel, so the float32 tolerances apply. (CUDA's
// expf and erff are within 2 ulp, inside the suite's pointwise margin of 4
// roundings.)
func TestConformanceGPUF32(t *testing.T) {
	conformance.Run(t, gpuBackend(t, false), conformance.Float32())
}

// TestConformanceGPUBF16 runs the suite with bf16 storage (the GPU default),
// which exercises every *_bf16 kernel and the WMMA GEMM on tensor cores.
func TestConformanceGPUBF16(t *testing.T) {
	conformance.Run(t, gpuBackend(t, true), conformance.BF16())
}
