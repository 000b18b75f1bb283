package gpu_test

// The launch-saving kernels on the emulator: LinearForward (the GEMM's bias
// and dropout epilogue), AddLayerNormForward, the one-launch LayerNorm
// backward and bias_grad2, each against the CPU backend at the model's
// sizes and, where the fused kernel promises the same operations as the
// kernels it replaces, bit for bit against those kernels.

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/houlsby/adapters/backend"
	"github.com/houlsby/adapters/gpu"
	"github.com/houlsby/adapters/tests/conformance"
)

// bits downloads t from the gpu backend as float32 bit patterns.
func bits(t *testing.T, g *gpu.Backend, x backend.Tensor) []uint32 {
	t.Helper()
	v := make([]float32, x.Len())
	require.NoError(t, g.Download(v, x))
	out := make([]uint32, len(v))
	for i, f := range v {
		out[i] = math.Float32bits(f)
	}
	return out
}

// maxAbs is the largest |value| of the CPU side of p.
func (d *duo) maxAbs(p *pair) float64 {
	d.t.Helper()
	v := make([]float32, p.c.Len())
	require.NoError(d.t, d.c.Download(v, p.c))
	m := 0.0
	for _, x := range v {
		m = math.Max(m, math.Abs(float64(x)))
	}
	return m
}

func TestLinearForwardRealSizes(t *testing.T) {
	const N, in = 74, 384 // N = 2·37: not a multiple of the 64-row tiles
	for _, tc := range []struct {
		name       string
		xd, wd, bd backend.DType
	}{
		{"f32", backend.F32, backend.F32, backend.F32},
		{"bf16 (the model: frozen bf16 weights and bias)", backend.BF16, backend.BF16, backend.BF16},
		{"bf16x-f32w", backend.BF16, backend.F32, backend.F32},
		{"f32x-bf16w", backend.F32, backend.BF16, backend.F32},
	} {
		for _, out := range []int{384, 1536} {
			for _, p := range []float32{0, 0.1} {
				t.Run(fmt.Sprintf("%s/out=%d/p=%v", tc.name, out, p), func(t *testing.T) {
					d := newDuo(t)
					x := d.tensor(tc.xd, N*in, 1, nil)
					w := d.tensor(tc.wd, out*in, float32(1/math.Sqrt(in)), nil)
					b := d.tensor(tc.bd, out, 0.5, nil)
					y := d.tensor(tc.xd, N*out, 0, make([]float32, N*out))
					const seed = 0xfeed
					d.both("LinearForward", func(be backend.Backend, s func(*pair) backend.Tensor) error {
						return backend.LinearForward(be, s(y), s(x), s(w), s(b), N, out, in, p, seed)
					})
					if tc.xd == backend.F32 && tc.wd == backend.F32 {
						// K = 384 fp32 terms of O(1/√384) products in
						// another order: see f32Atol.
						d.compare("y", y, f32Atol, f32Rtol)
					} else {
						// The CPU rounds y to bf16 after the GEMM, the bias
						// add and the dropout, the fused kernel once; the
						// tensor cores round F32 operands: a few u of the
						// largest |y| (see the bf16 constants).
						d.compare("y", y, 4*bf16u*d.maxAbs(y), bf16Rtol)
					}
					// Against the kernels it replaces (gemm, bias_add,
					// dropout_fwd: the generic composition on this same
					// backend): bit for bit when y is float32, the same fp32
					// operations in the same order.
					y2 := d.tensor(tc.xd, N*out, 0, make([]float32, N*out))
					require.NoError(t, backend.LinearForward(conformance.CoreOnly(d.g), y2.g, x.g, w.g, b.g, N, out, in, p, seed))
					if tc.xd == backend.F32 {
						assert.Equal(t, bits(t, d.g, y2.g), bits(t, d.g, y.g), "fused and unfused y differ")
					}
				})
			}
		}
	}
	// Argument checks of the fused launcher.
	d := newDuo(t)
	x := d.tensor(backend.F32, 4*3, 1, nil)
	w := d.tensor(backend.F32, 5*3, 1, nil)
	assert.ErrorContains(t, d.g.LinearForward(x.g, x.g, w.g, nil, 4, 3, 3, 0, 0), "y overlaps x, w or bias")
	assert.ErrorContains(t, d.g.LinearForward(d.tensor(backend.F32, 20, 0, nil).g, x.g, w.g, nil, 4, 5, 3, 1.5, 0), "outside [0, 1)")
	assert.ErrorContains(t, d.g.LinearForward(d.tensor(backend.F32, 20, 0, nil).g, x.g, w.g, nil, 4, 5, 4, 0, 0), "x has 12 elements, need 16")
}

func TestAddLayerNormRealSizes(t *testing.T) {
	const N, C = 21, 384
	// Against the CPU, which keeps res in float32 where the gpu rounds it
	// to bf16 (u·|res|, |res| < 3 here): the mean moves by up to u·mean|res|
	// (atol 2u), the normalised output by u·|res|·rstd·|w| (atol 4u), rstd
	// by u relative. The exact check is the bitwise one against the gpu's
	// own add and layernorm_fwd kernels below.
	for _, tc := range []struct {
		name             string
		xd, wd           backend.DType
		atol, rtol, matl float64
	}{
		{"f32", backend.F32, backend.F32, f32Atol, f32Rtol, f32Atol},
		{"bf16x-f32w", backend.BF16, backend.F32, 4 * bf16u, bf16Rtol, 2 * bf16u},
		{"bf16x-bf16w", backend.BF16, backend.BF16, 4 * bf16u, bf16Rtol, 2 * bf16u},
	} {
		for _, inPlace := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/in place %v", tc.name, inPlace), func(t *testing.T) {
				d := newDuo(t)
				a := d.tensor(tc.xd, N*C, 2, nil)
				bb := d.tensor(tc.xd, N*C, 1, nil)
				w, b := d.tensor(tc.wd, C, 1, nil), d.tensor(tc.wd, C, 1, nil)
				res := a
				if !inPlace {
					res = d.tensor(tc.xd, N*C, 0, make([]float32, N*C))
				}
				out := d.tensor(tc.xd, N*C, 0, make([]float32, N*C))
				mean, rstd := d.tensor(backend.F32, N, 0, make([]float32, N)), d.tensor(backend.F32, N, 0, make([]float32, N))
				// The unfused kernels (add, layernorm_fwd) on the gpu first,
				// from copies of the inputs, for the bitwise comparison.
				a2, res2 := d.tensor(tc.xd, N*C, 0, a.host), d.tensor(tc.xd, N*C, 0, make([]float32, N*C))
				if inPlace {
					res2 = a2
				}
				out2 := d.tensor(tc.xd, N*C, 0, make([]float32, N*C))
				m2, r2 := d.tensor(backend.F32, N, 0, make([]float32, N)), d.tensor(backend.F32, N, 0, make([]float32, N))
				require.NoError(t, backend.AddLayerNormForward(conformance.CoreOnly(d.g), out2.g, res2.g, m2.g, r2.g, a2.g, bb.g, w.g, b.g, N, C, 1e-12))
				d.both("AddLayerNormForward", func(be backend.Backend, s func(*pair) backend.Tensor) error {
					return backend.AddLayerNormForward(be, s(out), s(res), s(mean), s(rstd), s(a), s(bb), s(w), s(b), N, C, 1e-12)
				})
				d.compare("res", res, tc.atol, tc.rtol)
				d.compare("out", out, tc.atol, tc.rtol)
				d.compare("mean", mean, tc.matl, f32Rtol)
				d.compare("rstd", rstd, f32Atol, max(f32Rtol, tc.rtol))
				for _, c := range []struct {
					name       string
					fused, sep *pair
				}{{"res", res, res2}, {"out", out, out2}, {"mean", mean, m2}, {"rstd", rstd, r2}} {
					assert.Equal(t, bits(t, d.g, c.sep.g), bits(t, d.g, c.fused.g), "%s: add_layernorm_fwd and add + layernorm_fwd differ", c.name)
				}
			})
		}
	}
	d := newDuo(t)
	x := d.tensor(backend.F32, 4*3, 1, nil)
	w := d.tensor(backend.F32, 3, 1, nil)
	st := d.tensor(backend.F32, 4, 0, nil)
	assert.ErrorContains(t, d.g.AddLayerNormForward(x.g, x.g, st.g, st.g, x.g, x.g, w.g, w.g, 4, 3, 1e-5), "out overlaps res, a or b")
}

// The one-launch LayerNorm backward writes exactly what the two kernels it
// replaces write (their own launches: no dinp, then no weight gradients),
// over several row blocks.
func TestLayerNormBackwardFusedBitwise(t *testing.T) {
	const C = 384
	for _, xd := range []backend.DType{backend.F32, backend.BF16} {
		for _, N := range []int{21, 100} {
			t.Run(fmt.Sprintf("%v/N=%d", xd, N), func(t *testing.T) {
				d := newDuo(t)
				inp := d.tensor(xd, N*C, 2, nil)
				w := d.tensor(backend.F32, C, 1, nil)
				mean, rstd := d.tensor(backend.F32, N, 0, make([]float32, N)), d.tensor(backend.F32, N, 0, make([]float32, N))
				out := d.tensor(xd, N*C, 0, make([]float32, N*C))
				bias := d.tensor(backend.F32, C, 1, nil)
				require.NoError(t, d.g.LayerNormForward(out.g, mean.g, rstd.g, inp.g, w.g, bias.g, N, C, 1e-12))
				dout := d.tensor(xd, N*C, 1, nil)
				dw0, db0 := make([]float32, C), make([]float32, C)
				for i := range dw0 {
					dw0[i], db0[i] = float32(i)/C, -float32(i)/C
				}
				dinp := d.tensor(xd, N*C, 0, make([]float32, N*C))
				dw, db := d.tensor(backend.F32, C, 0, dw0), d.tensor(backend.F32, C, 0, db0)
				require.NoError(t, d.g.LayerNormBackward(dinp.g, dw.g, db.g, dout.g, inp.g, w.g, mean.g, rstd.g, N, C))
				dinp2 := d.tensor(xd, N*C, 0, make([]float32, N*C))
				dw2, db2 := d.tensor(backend.F32, C, 0, dw0), d.tensor(backend.F32, C, 0, db0)
				require.NoError(t, d.g.LayerNormBackward(nil, dw2.g, db2.g, dout.g, inp.g, w.g, mean.g, rstd.g, N, C))
				require.NoError(t, d.g.LayerNormBackward(dinp2.g, nil, nil, dout.g, inp.g, w.g, mean.g, rstd.g, N, C))
				assert.Equal(t, bits(t, d.g, dinp2.g), bits(t, d.g, dinp.g), "dinp")
				assert.Equal(t, bits(t, d.g, dw2.g), bits(t, d.g, dw.g), "dw")
				assert.Equal(t, bits(t, d.g, db2.g), bits(t, d.g, db.g), "db")
			})
		}
	}
}

// bias_grad2 sums each of its two column sets exactly as bias_grad does.
func TestBiasGrad2Bitwise(t *testing.T) {
	dv := emuDevice(t)
	const N, C1, C2 = 77, 384, 70
	for _, x := range []string{"f32", "bf16"} {
		bf := x == "bf16"
		r := randVec(rand.New(rand.NewSource(3)), N*C1)
		d2 := randVec(rand.New(rand.NewSource(4)), N*C2)
		pd1, pd2 := upload(t, dv, r, bf), upload(t, dv, d2, false)
		init1, init2 := randVec(rand.New(rand.NewSource(5)), C1), randVec(rand.New(rand.NewSource(6)), C2)
		one1, one2 := upload(t, dv, init1, false), upload(t, dv, init2, false)
		sep1, sep2 := upload(t, dv, init1, false), upload(t, dv, init2, false)
		launch(t, dv, "bias_grad2_"+x, gpu.Dim3{X: cdiv(C1, 32) + cdiv(C2, 32), Y: 1, Z: 1}, gpu.Dim3{X: 32, Y: 8, Z: 1}, 0,
			gpu.Ptr(one1), gpu.Ptr(pd1), gpu.Int(C1), gpu.Ptr(one2), gpu.Ptr(pd2), gpu.Int(C2), gpu.Int(N))
		launch(t, dv, "bias_grad_"+x, gpu.Dim3{X: cdiv(C1, 32), Y: 1, Z: 1}, gpu.Dim3{X: 32, Y: 8, Z: 1}, 0,
			gpu.Ptr(sep1), gpu.Ptr(pd1), gpu.Int(N), gpu.Int(C1))
		launch(t, dv, "bias_grad_f32", gpu.Dim3{X: cdiv(C2, 32), Y: 1, Z: 1}, gpu.Dim3{X: 32, Y: 8, Z: 1}, 0,
			gpu.Ptr(sep2), gpu.Ptr(pd2), gpu.Int(N), gpu.Int(C2))
		assert.Equal(t, download(t, dv, sep1, C1), download(t, dv, one1, C1), "%s: first bias", x)
		assert.Equal(t, download(t, dv, sep2, C2), download(t, dv, one2, C2), "%s: second bias", x)
	}
}
