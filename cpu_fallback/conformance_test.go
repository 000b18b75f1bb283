package cpu_test

import (
	"testing"

	"github.com/houlsby/adapters/backend"
	cpu "github.com/houlsby/adapters/cpu_fallback"
	"github.com/houlsby/adapters/tests/conformance"
)

// TestConformance runs the shared backend suite on the CPU backend with
// float32 tolerances (see conformance.Float32 for their derivation).
func TestConformance(t *testing.T) {
	conformance.Run(t, func() backend.Backend { return cpu.New() }, conformance.Float32())
}

// TestConformanceAccumulateF64 runs the same suite on the backend with
// float64 accumulation: its products are closer to exact than the float32
// ones, so the float32 tolerances hold a fortiori.
func TestConformanceAccumulateF64(t *testing.T) {
	conformance.Run(t, func() backend.Backend { return cpu.NewWithOptions(cpu.Options{AccumulateF64: true}) }, conformance.Float32())
}
