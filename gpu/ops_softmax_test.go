package gpu_test

// Op tests of the launchers in ops_softmax.go on the kernel emulator against
// the CPU backend (helpers in emu_helpers_test.go).

import (
	"testing"

	"github.com/houlsby/adapters/backend"
)

// TestMaskedSoftmaxRealSizes: rows of T = 130 keys (more than one warp's
// 32 lanes, so each lane strides over several keys), R = 24 rows per
// sequence (NH·T of a small attention), a fully masked sequence, F32 and
// BF16 probabilities from F32 scores, in place, and the backward.
//
// Tolerances (|gpu-cpu| <= atol + rtol·|cpu|): with F32 probabilities both
// compute in fp32, in different orders and with different exp (the cpu's
// polynomial, CUDA's expf within 2 ulp): a row of 130 terms sums with
// relative error <= 130·2^-24 ≈ 8e-6 -> f32Atol, f32Rtol (1e-4). BF16
// probabilities are rounded once (bf16Rtol covers a rounding boundary).
func TestMaskedSoftmaxRealSizes(t *testing.T) {
	const B, R, T, scale = 3, 24, 130, 0.125 // 1/√64, a head size of 64
	for _, tc := range []struct {
		name       string
		pd         backend.DType
		atol, rtol float64
	}{{"f32", backend.F32, f32Atol, f32Rtol}, {"bf16 probs", backend.BF16, 1e-6, bf16Rtol}} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDuo(t)
			mask := make([]int32, B*T)
			for i := range mask {
				if b, k := i/T, i%T; b != 1 && k < T-7*b { // sequence 1: every key masked
					mask[i] = 1
				}
			}
			mk := d.ints(mask)
			scores := d.tensor(backend.F32, B*R*T, 4, nil)
			probs := d.tensor(tc.pd, B*R*T, 0, make([]float32, B*R*T))
			d.both("MaskedSoftmaxForward", func(be backend.Backend, s func(*pair) backend.Tensor) error {
				return be.MaskedSoftmaxForward(s(probs), s(scores), s(mk), B, R, T, scale)
			})
			d.compare("probs", probs, tc.atol, tc.rtol)
			// In place on F32 scores.
			d.both("MaskedSoftmaxForward in place", func(be backend.Backend, s func(*pair) backend.Tensor) error {
				return be.MaskedSoftmaxForward(s(scores), s(scores), s(mk), B, R, T, scale)
			})
			d.compare("probs in place", scores, f32Atol, f32Rtol)
			// Backward from the gpu's probabilities on both sides, in place.
			pg := make([]float32, B*R*T)
			if err := d.g.Download(pg, probs.g); err != nil {
				t.Fatal(err)
			}
			if err := d.c.Upload(probs.c, pg); err != nil {
				t.Fatal(err)
			}
			dp := d.tensor(backend.F32, B*R*T, 1, nil)
			d.both("MaskedSoftmaxBackward", func(be backend.Backend, s func(*pair) backend.Tensor) error {
				return be.MaskedSoftmaxBackward(s(dp), s(dp), s(probs), B*R, T, scale)
			})
			d.compare("dscores", dp, f32Atol, f32Rtol)
		})
	}
}
