package gpu_test

import (
	"testing"

	"github.com/houlsby/adapters/backend"
	"github.com/houlsby/adapters/gpu"
	"github.com/houlsby/adapters/tests/conformance"
)

// emuBackend returns a constructor of gpu backends, each over a fresh
// emulated device.
func emuBackend(t *testing.T, bf16 bool) func() backend.Backend {
	emuDevice(t) // skip without the emulator
	return func() backend.Backend {
		be, err := gpu.New(emuDevice(t), gpu.Options{BF16: bf16})
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

// TestConformanceF32 runs the shared backend suite on the gpu backend in
// float32 mode, with the float32 tolerances (the GEMMs of two F32 operands
// run the fp32 kernel, so nothing is rounded to bf16).
func TestConformanceF32(t *testing.T) {
	conformance.Run(t, emuBackend(t, false), conformance.Float32())
}

// TestConformanceBF16 runs the shared suite with bf16 storage of the
// activations (Options.BF16), which exercises every *_bf16 kernel and the
// tensor-core GEMM.
func TestConformanceBF16(t *testing.T) {
	conformance.Run(t, emuBackend(t, true), conformance.BF16())
}
