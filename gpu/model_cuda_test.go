//go:build cuda

package gpu_test

import (
	"os"
	"testing"

	"github.com/houlsby/adapters/gpu"
	"github.com/houlsby/adapters/internal/testassets"
	"github.com/houlsby/adapters/model"
)

// TestModelMatchesCPUOnGPU is TestModelMatchesCPU on the GPU: one training
// step of a real encoder with Houlsby adapters, loss and every trainable
// gradient against the CPU backend, in float32 and bf16 modes, with the
// emulator test's tolerances. The model is GPU_TEST_MODEL_DIR when set (the
// verification bundle's 2-layer all-MiniLM-L6-v2 slice), else `make
// assets`' all-MiniLM-L6-v2.
func TestModelMatchesCPUOnGPU(t *testing.T) {
	dir := os.Getenv("GPU_TEST_MODEL_DIR")
	if dir == "" {
		dir = testassets.ModelDir()
	}
	testassets.Require(t, "make assets, or GPU_TEST_MODEL_DIR=<a BERT folder>", dir)
	ck, err := model.LoadCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	gpuBackend(t, false) // opens the shared GPU context, or skips
	modelMatchesCPU(t, ck, func(t *testing.T) gpu.Device { return confDev })
}
