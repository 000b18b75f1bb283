package emu

import (
	"testing"

	"github.com/houlsby/adapters/backend"
	"github.com/houlsby/adapters/gpu"
	"github.com/houlsby/adapters/tests/conformance"
)

// newBackend returns the gpu backend over a fresh emulated device.
func newBackend(t *testing.T, bf16 bool) func() backend.Backend {
	return func() backend.Backend {
		be, err := gpu.New(New(), gpu.Options{BF16: bf16})
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
	conformance.Run(t, newBackend(t, false), conformance.Float32())
}

// bf16Tolerances are the tolerances of bf16 storage (Options.BF16): every
// activation the backend writes is rounded once to bf16, whose unit
// roundoff is u = 2^-8 (8 significant bits), so a result computed in fp32
// from exactly stored inputs is off by at most u relative; rtol = 2u leaves
// a factor 2 for the fp32 arithmetic before the rounding. The inputs
// themselves are rounded before the reference sees them (conformance reads
// back what was stored), so only the backend's own roundings count.
// Where a rounded intermediate is reused (attention probabilities, the
// adapter's z), its error u·|x| propagates through a weighted sum, which is
// what the absolute tolerances bound:
//   - attention: out = Σ_j P̃_j V_j with each P_j off by ≤ u·P_j gives
//     |Δout| ≤ u·Σ_j P_j|V_j| ≤ u·max|V|; the suite draws V with scale 1.5,
//     so max|V| ≲ 6 and atol = 6u ≈ 0.023. The backward reads those
//     rounded probabilities and rounded dout/qkv: the same bound applies
//     to dV, and dQ, dK see dS = P(dP-D) with the same relative error
//     times Σ|K|/√HS, also ≲ 6u;
//   - adapter: z is rounded (u·|z|), which passes through act' ≤ 1.1 and
//     wUp (M = 7 entries of scale 0.5): |Δout| ≤ 7·0.5·1.1·u·max|z| with
//     max|z| ≲ 4 → ≈ 15u ≈ 0.06; the backward multiplies by the same
//     weights once more (wDown, scale 0.3, C = 45 terms is bounded the same
//     way through |dz|), so 0.06 is used for both;
//   - parameter gradients, statistics, losses and optimizer state are F32
//     and keep the float32 tolerances (Reduce, AdamW).
func bf16Tolerances() conformance.Tolerances {
	const u = 1.0 / 256 // bf16 unit roundoff, 2^-8
	tol := conformance.Float32()
	tol.Pointwise = conformance.Tol{Atol: 1e-6, Rtol: 2 * u}
	tol.Gemm = conformance.Tol{Atol: 1e-5, Rtol: 2 * u}
	tol.LayerNorm = conformance.Tol{Atol: 1e-5, Rtol: 2 * u}
	tol.Attention = conformance.Tol{Atol: 6 * u, Rtol: 2 * u}
	tol.Adapter = conformance.Tol{Atol: 15 * u, Rtol: 2 * u}
	tol.Loss = conformance.Tol{Atol: 1e-5, Rtol: 2 * u}
	return tol
}

// TestConformanceBF16 runs the shared suite with bf16 storage of the
// activations (Options.BF16), which exercises every *_bf16 kernel and the
// tensor-core GEMM.
func TestConformanceBF16(t *testing.T) {
	conformance.Run(t, newBackend(t, true), bf16Tolerances())
}
