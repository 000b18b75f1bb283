package gpu_test

// Op tests of the launchers in ops_layernorm.go on the kernel emulator against the
// CPU backend, at the model's real sizes and dtype mixes (helpers in
// emu_helpers_test.go).

import (
	"testing"

	"github.com/houlsby/adapters/backend"
)

func TestLayerNormRealSizes(t *testing.T) {
	const N, C = 21, 384
	for _, tc := range []struct {
		name       string
		xd, wd     backend.DType
		atol, rtol float64
	}{
		{"f32", backend.F32, backend.F32, f32Atol, f32Rtol},
		{"f32x-bf16w", backend.F32, backend.BF16, f32Atol, f32Rtol},
		{"bf16x-f32w", backend.BF16, backend.F32, 1e-5, bf16Rtol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDuo(t)
			inp := d.tensor(tc.xd, N*C, 2, nil)
			w, b := d.tensor(tc.wd, C, 1, nil), d.tensor(tc.wd, C, 1, nil)
			out := d.tensor(tc.xd, N*C, 0, make([]float32, N*C))
			mean, rstd := d.tensor(backend.F32, N, 0, make([]float32, N)), d.tensor(backend.F32, N, 0, make([]float32, N))
			d.both("LayerNormForward", func(be backend.Backend, s func(*pair) backend.Tensor) error {
				return be.LayerNormForward(s(out), s(mean), s(rstd), s(inp), s(w), s(b), N, C, 1e-12)
			})
			d.compare("out", out, tc.atol, tc.rtol)
			d.compare("mean", mean, f32Atol, f32Rtol)
			d.compare("rstd", rstd, f32Atol, f32Rtol)
			dout := d.tensor(tc.xd, N*C, 1, nil)
			dinp := d.tensor(tc.xd, N*C, 0, make([]float32, N*C))
			dw, db := d.tensor(backend.F32, C, 1, nil), d.tensor(backend.F32, C, 1, nil)
			d.both("LayerNormBackward", func(be backend.Backend, s func(*pair) backend.Tensor) error {
				return be.LayerNormBackward(s(dinp), s(dw), s(db), s(dout), s(inp), s(w), s(mean), s(rstd), N, C)
			})
			d.compare("dinp", dinp, tc.atol, tc.rtol)
			d.compare("dw", dw, f32Atol, f32Rtol)
			d.compare("db", db, f32Atol, f32Rtol)
		})
	}
}
