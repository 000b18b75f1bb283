package emu

import (
	"encoding/binary"
	"math"
	"math/rand"
	"testing"

	"github.com/houlsby/adapters/backend"
	cpu "github.com/houlsby/adapters/cpu_fallback"
	"github.com/houlsby/adapters/gpu"
)

// Op-level tests of the gpu backend on the emulator against the CPU backend,
// at the model's real sizes (C = 384, up to M = 256, T up to 512, HS up to
// 128) and in the dtype mixes the model uses, plus bit-exactness of the
// dropout mask and of the bf16 conversion.

// pair holds one tensor on both backends.
type pair struct {
	g, c backend.Tensor
	host []float32 // as stored (rounded to the dtype)
}

type duo struct {
	t  *testing.T
	g  *gpu.Backend
	c  *cpu.Backend
	r  *rand.Rand
	dv *Device
}

func newDuo(t *testing.T) *duo {
	dv := New()
	g, err := gpu.New(dv, gpu.Options{BF16: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	return &duo{t: t, g: g, c: cpu.New(), r: rand.New(rand.NewSource(7)), dv: dv}
}

// tensor uploads vals (scaled normals when nil) as dtype dt to both backends.
func (d *duo) tensor(dt backend.DType, n int, scale float32, vals []float32) *pair {
	d.t.Helper()
	if vals == nil {
		vals = make([]float32, n)
		for i := range vals {
			vals[i] = scale * float32(d.r.NormFloat64())
		}
	}
	g, err := d.g.Alloc(dt, n)
	if err != nil {
		d.t.Fatal(err)
	}
	c, err := d.c.Alloc(dt, n)
	if err != nil {
		d.t.Fatal(err)
	}
	if err := d.g.Upload(g, vals); err != nil {
		d.t.Fatal(err)
	}
	if err := d.c.Upload(c, vals); err != nil {
		d.t.Fatal(err)
	}
	host := make([]float32, n)
	if err := d.c.Download(host, c); err != nil {
		d.t.Fatal(err)
	}
	return &pair{g: g, c: c, host: host}
}

func (d *duo) ints(vals []int32) *pair {
	d.t.Helper()
	g, _ := d.g.Alloc(backend.I32, len(vals))
	c, _ := d.c.Alloc(backend.I32, len(vals))
	if err := d.g.UploadInt32(g, vals); err != nil {
		d.t.Fatal(err)
	}
	if err := d.c.UploadInt32(c, vals); err != nil {
		d.t.Fatal(err)
	}
	return &pair{g: g, c: c}
}

// both runs f on the gpu and on the cpu tensors of the pairs.
func (d *duo) both(what string, f func(be backend.Backend, side func(*pair) backend.Tensor) error) {
	d.t.Helper()
	if err := f(d.g, func(p *pair) backend.Tensor {
		if p == nil {
			return nil
		}
		return p.g
	}); err != nil {
		d.t.Fatalf("%s (gpu): %v", what, err)
	}
	if err := f(d.c, func(p *pair) backend.Tensor {
		if p == nil {
			return nil
		}
		return p.c
	}); err != nil {
		d.t.Fatalf("%s (cpu): %v", what, err)
	}
}

// compare checks the gpu result of p against the cpu one.
func (d *duo) compare(what string, p *pair, atol, rtol float64) {
	d.t.Helper()
	n := p.g.Len()
	g, c := make([]float32, n), make([]float32, n)
	if err := d.g.Download(g, p.g); err != nil {
		d.t.Fatal(err)
	}
	if err := d.c.Download(c, p.c); err != nil {
		d.t.Fatal(err)
	}
	closeTo(d.t, what, g, c, atol, rtol)
}

// Tolerances (|gpu-cpu| <= atol + rtol·|cpu|):
//   - f32 storage: both compute in fp32, in different orders; sums of K
//     <= 384 terms of O(1) differ by <= K·2^-24·Σ|terms| ~ 1e-4 relative to
//     Σ|terms|; atol 1e-4, rtol 1e-4 bound that with margin for the C=384
//     rows used here;
//   - bf16 results: both backends round to bf16 (u = 2^-8) from fp32 values
//     that differ by ~1e-5; a value near a rounding boundary can then land
//     one bf16 ulp (2u relative) apart: rtol 2·2u = 1/64;
//   - bf16 GEMM / adapter / attention on F32 activations: the tensor cores
//     round the F32 operand to bf16 (u relative per product) where the CPU
//     does not: |Δ| <= u·Σ|a||b|, which for O(1) inputs and K terms of random
//     sign is ~u·√K; the atol per test says which K it covers.
const (
	f32Atol, f32Rtol   = 1e-4, 1e-4
	bf16Rtol           = 4.0 / 256
	bf16u              = 1.0 / 256
	bf16AtolSmallTerms = 4 * bf16u
)

func TestAdapterRealSizes(t *testing.T) {
	const N, C = 19, 384
	for _, tc := range []struct {
		name   string
		M      int
		xd, wd backend.DType
		act    backend.Act
		atol   float64
		rtol   float64
	}{
		{"f32/M=256/gelu", 256, backend.F32, backend.F32, backend.GELU, f32Atol, f32Rtol},
		{"f32/M=64/relu", 64, backend.F32, backend.F32, backend.ReLU, f32Atol, f32Rtol},
		// M > 256: backend's composition of core ops (GEMMs + pointwise kernels).
		{"f32/M=300/swish (unfused)", 300, backend.F32, backend.F32, backend.Swish, f32Atol, f32Rtol},
		{"bf16/M=320/relu (unfused)", 320, backend.BF16, backend.BF16, backend.ReLU, 12 * bf16u, bf16Rtol},
		// bf16 weights with F32 activations: the kernel reads the weights
		// as stored, both sides see the same rounded weights: fp32 tolerance.
		{"f32x-bf16w/M=48/swish", 48, backend.F32, backend.BF16, backend.Swish, f32Atol, f32Rtol},
		// bf16 activations: z and out are rounded (see the constants); the
		// weight-gradient GEMMs run on tensor cores with a and dz rounded to
		// bf16 (u·Σ over N = 19 rows of O(1)·O(1) terms -> ~u·√19·2).
		{"bf16/M=64/gelu", 64, backend.BF16, backend.F32, backend.GELU, 12 * bf16u, bf16Rtol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDuo(t)
			M := tc.M
			inp := d.tensor(tc.xd, N*C, 1, nil)
			// Weight scales keep z and the output O(1), as trained adapters.
			wd := d.tensor(tc.wd, M*C, float32(1/math.Sqrt(C)), nil)
			bd := d.tensor(tc.wd, M, 0.1, nil)
			wu := d.tensor(tc.wd, C*M, float32(1/math.Sqrt(float64(M))), nil)
			bu := d.tensor(tc.wd, C, 0.1, nil)
			out := d.tensor(tc.xd, N*C, 0, make([]float32, N*C))
			z := d.tensor(tc.xd, N*M, 0, make([]float32, N*M))
			d.both("AdapterForward", func(be backend.Backend, s func(*pair) backend.Tensor) error {
				return backend.AdapterForward(be, s(out), s(z), s(inp), s(wd), s(bd), s(wu), s(bu), N, C, M, tc.act)
			})
			d.compare("z", z, tc.atol, tc.rtol)
			d.compare("out", out, tc.atol, tc.rtol)
			// Backward from the CPU's z on both sides, so the bf16 case
			// compares the backward alone (a ReLU'(z) flip at z ≈ 0 would
			// otherwise dominate).
			zh := make([]float32, N*M)
			if err := d.c.Download(zh, z.c); err != nil {
				t.Fatal(err)
			}
			if err := d.g.Upload(z.g, zh); err != nil {
				t.Fatal(err)
			}
			dout := d.tensor(tc.xd, N*C, 1, nil)
			dinp := d.tensor(tc.xd, N*C, 0, make([]float32, N*C))
			g0 := func(n int) *pair { return d.tensor(backend.F32, n, 0.5, nil) } // += onto nonzero
			dwd, dbd, dwu, dbu := g0(M*C), g0(M), g0(C*M), g0(C)
			d.both("AdapterBackward", func(be backend.Backend, s func(*pair) backend.Tensor) error {
				return backend.AdapterBackward(be, s(dinp), s(dwd), s(dbd), s(dwu), s(dbu), s(dout), s(inp), s(z), s(wd), s(wu), N, C, M, tc.act)
			})
			d.compare("dinp", dinp, tc.atol, tc.rtol)
			d.compare("dBDown", dbd, tc.atol, tc.rtol)
			d.compare("dBUp", dbu, tc.atol, tc.rtol)
			wdAtol, wuAtol := tc.atol, tc.atol
			if tc.xd == backend.BF16 {
				// The weight-gradient GEMMs have a bf16 operand (dout,
				// inp), so they run on tensor cores, which round the F32
				// one (a = act(z), dz) to bf16: each product is off by
				// <= u relative, |ΔdWUp[c,m]| <= u·Σ_n|dout[n,c]||a[n,m]|
				// <= u·max_c Σ_n|dout[n,c]|·max|z| (|act(z)| <= |z|), and
				// |ΔdWDown[m,c]| <= u·max_c Σ_n|inp[n,c]|·max|dz| with
				// |dz[n,m]| <= 1.1·Σ_c|dout[n,c]||wUp[c,m]| (|act'| <= 1.1).
				// Twice those bounds, for the fp32 sums around them.
				maxZ, maxDz, colDout, colInp := 0.0, 0.0, 0.0, 0.0
				for _, v := range zh {
					maxZ = math.Max(maxZ, math.Abs(float64(v)))
				}
				for c := 0; c < C; c++ {
					var sd, si float64
					for n := 0; n < N; n++ {
						sd += math.Abs(float64(dout.host[n*C+c]))
						si += math.Abs(float64(inp.host[n*C+c]))
					}
					colDout, colInp = math.Max(colDout, sd), math.Max(colInp, si)
				}
				for n := 0; n < N; n++ {
					for m := 0; m < M; m++ {
						var sz float64
						for c := 0; c < C; c++ {
							sz += math.Abs(float64(dout.host[n*C+c]) * float64(wu.host[c*M+m]))
						}
						maxDz = math.Max(maxDz, 1.1*sz)
					}
				}
				wuAtol = 2 * bf16u * colDout * maxZ
				wdAtol = 2 * bf16u * colInp * maxDz
			}
			d.compare("dWDown", dwd, wdAtol, tc.rtol)
			d.compare("dWUp", dwu, wuAtol, tc.rtol)
		})
	}
}

// TestAdapterAliasingAndFrozen: out may alias inp, dinp may alias dout, and
// nil gradients leave everything else alone.
func TestAdapterAliasingAndFrozen(t *testing.T) {
	d := newDuo(t)
	const N, C, M = 13, 70, 9
	inp := d.tensor(backend.F32, N*C, 1, nil)
	wd, bd := d.tensor(backend.F32, M*C, 0.2, nil), d.tensor(backend.F32, M, 0.1, nil)
	wu, bu := d.tensor(backend.F32, C*M, 0.3, nil), d.tensor(backend.F32, C, 0.1, nil)
	z := d.tensor(backend.F32, N*M, 0, make([]float32, N*M))
	// In place on the gpu, out of place on the cpu.
	ref := d.tensor(backend.F32, N*C, 0, make([]float32, N*C))
	if err := d.g.AdapterForward(inp.g, z.g, inp.g, wd.g, bd.g, wu.g, bu.g, N, C, M, backend.GELU); err != nil {
		t.Fatal(err)
	}
	if err := d.c.AdapterForward(ref.c, z.c, inp.c, wd.c, bd.c, wu.c, bu.c, N, C, M, backend.GELU); err != nil {
		t.Fatal(err)
	}
	ref.g = inp.g
	d.compare("out (aliasing inp)", ref, f32Atol, f32Rtol)

	dout := d.tensor(backend.F32, N*C, 1, nil)
	base := d.tensor(backend.F32, N*C, 1, nil) // inp for the backward
	dinpRef := d.tensor(backend.F32, N*C, 0, make([]float32, N*C))
	dwu := d.tensor(backend.F32, C*M, 0, make([]float32, C*M))
	dwuRef := d.tensor(backend.F32, C*M, 0, make([]float32, C*M))
	if err := d.g.AdapterBackward(dout.g, nil, nil, dwu.g, nil, dout.g, base.g, z.g, wd.g, wu.g, N, C, M, backend.GELU); err != nil {
		t.Fatal(err)
	}
	if err := d.c.AdapterBackward(dinpRef.c, nil, nil, dwuRef.c, nil, dout.c, base.c, z.c, wd.c, wu.c, N, C, M, backend.GELU); err != nil {
		t.Fatal(err)
	}
	dinpRef.g = dout.g
	d.compare("dinp (aliasing dout)", dinpRef, f32Atol, f32Rtol)
	dwuRef.g = dwu.g
	d.compare("dWUp (read dout before dinp overwrote it)", dwuRef, f32Atol, f32Rtol)

	// Frozen: no gradient buffers, no dinp: nothing may change.
	before := make([]float32, N*C)
	if err := d.g.Download(before, dout.g); err != nil {
		t.Fatal(err)
	}
	if err := d.g.AdapterBackward(nil, nil, nil, nil, nil, dout.g, base.g, z.g, wd.g, wu.g, N, C, M, backend.GELU); err != nil {
		t.Fatal(err)
	}
	after := make([]float32, N*C)
	if err := d.g.Download(after, dout.g); err != nil {
		t.Fatal(err)
	}
	closeTo(t, "dout after a fully frozen backward", after, before, 0, 0)
}

func TestAttentionRealSizes(t *testing.T) {
	for _, tc := range []struct {
		name          string
		B, T, NH, HS  int
		p             float32
		xd            backend.DType
		atolF, atolB  float64
		rtolF         float64
		skipInShort   bool
		maskFromIndex int
	}{
		{"f32/T=130/HS=64/p=0.1", 2, 130, 2, 64, 0.1, backend.F32, f32Atol, f32Atol, f32Rtol, false, 100},
		{"f32/T=77/HS=128", 1, 77, 1, 128, 0, backend.F32, f32Atol, f32Atol, f32Rtol, false, 70},
		{"f32/T=512/HS=32", 1, 512, 1, 32, 0.1, backend.F32, f32Atol, f32Atol, f32Rtol, true, 500},
		// bf16 storage: probs are rounded (u·P) before P̃·V, so |Δout| <=
		// u·Σ P|V| <= u·max|V| ~ 4u for unit normals; the backward
		// compounds one more such step: 8u.
		{"bf16/T=45/HS=32/p=0.2", 2, 45, 3, 32, 0.2, backend.BF16, 4 * bf16u, 8 * bf16u, bf16Rtol, false, 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.skipInShort && testing.Short() {
				t.Skip("T=512 takes a few seconds in the emulator; skipped with -short")
			}
			d := newDuo(t)
			B, T, NH, HS := tc.B, tc.T, tc.NH, tc.HS
			C := NH * HS
			qkv := d.tensor(tc.xd, B*T*3*C, 1, nil)
			mask := make([]int32, B*T)
			for i := range mask {
				if i%T < tc.maskFromIndex {
					mask[i] = 1
				}
			}
			mk := d.ints(mask)
			out := d.tensor(tc.xd, B*T*C, 0, make([]float32, B*T*C))
			probs := d.tensor(tc.xd, B*NH*T*T, 0, make([]float32, B*NH*T*T))
			const seed = 0x1234abcd5678
			d.both("AttentionForward", func(be backend.Backend, s func(*pair) backend.Tensor) error {
				return backend.AttentionForward(be, s(out), s(probs), s(qkv), s(mk), B, T, NH, HS, tc.p, seed)
			})
			d.compare("out", out, tc.atolF, tc.rtolF)
			d.compare("probs", probs, tc.atolF, tc.rtolF)
			dout := d.tensor(tc.xd, B*T*C, 1, nil)
			dqkv := d.tensor(tc.xd, B*T*3*C, 0, make([]float32, B*T*3*C))
			// Both sides read the gpu's probs, so the backward is compared alone.
			pg := make([]float32, B*NH*T*T)
			if err := d.g.Download(pg, probs.g); err != nil {
				t.Fatal(err)
			}
			if err := d.c.Upload(probs.c, pg); err != nil {
				t.Fatal(err)
			}
			d.both("AttentionBackward", func(be backend.Backend, s func(*pair) backend.Tensor) error {
				return backend.AttentionBackward(be, s(dqkv), s(dout), s(qkv), s(probs), s(mk), B, T, NH, HS, tc.p, seed)
			})
			d.compare("dqkv", dqkv, tc.atolB, tc.rtolF)
		})
	}
}

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

// TestGemmModelShapes: the encoder's projections, Y = X·Wᵀ (+ the backward's
// dX = dY·W and dW += dYᵀ·X), with K = 384, on both kernels.
func TestGemmModelShapes(t *testing.T) {
	const N, C, F = 67, 384, 150 // rows, in, out
	for _, tc := range []struct {
		name   string
		xd, wd backend.DType
	}{{"f32", backend.F32, backend.F32}, {"f32x-bf16w", backend.F32, backend.BF16}, {"bf16", backend.BF16, backend.BF16}} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDuo(t)
			x := d.tensor(tc.xd, N*C, 1, nil)
			w := d.tensor(tc.wd, F*C, 1, nil)
			y := d.tensor(tc.xd, N*F, 0, make([]float32, N*F))
			d.both("Gemm", func(be backend.Backend, s func(*pair) backend.Tensor) error {
				return be.Gemm(s(y), s(x), s(w), backend.MatMul{TransB: true, M: N, N: F, K: C, Alpha: 1})
			})
			// Tolerance: with an F32 operand next to a BF16 one, the tensor
			// cores round the F32 one to bf16: each product is off by <= u
			// relative, |Δy| <= u·Σ_k|x_k||w_k| (computed exactly below);
			// bf16 y adds its own rounding (rtol); fp32 order differences
			// add K·2^-24·Σ|x||w|.
			yg, yc := make([]float32, N*F), make([]float32, N*F)
			if err := d.g.Download(yg, y.g); err != nil {
				t.Fatal(err)
			}
			if err := d.c.Download(yc, y.c); err != nil {
				t.Fatal(err)
			}
			rounds := tc.xd != tc.wd
			for i := 0; i < N; i++ {
				for j := 0; j < F; j++ {
					var sabs float64
					for k := 0; k < C; k++ {
						sabs += math.Abs(float64(x.host[i*C+k]) * float64(w.host[j*C+k]))
					}
					tol := C * 0x1p-24 * sabs
					if rounds {
						tol += bf16u * sabs
					}
					if tc.xd == backend.BF16 {
						tol += 2 * bf16u * math.Abs(float64(yc[i*F+j]))
					}
					if diff := math.Abs(float64(yg[i*F+j] - yc[i*F+j])); diff > tol {
						t.Fatalf("y[%d,%d] = %v, cpu %v, |diff| %g > %g", i, j, yg[i*F+j], yc[i*F+j], diff, tol)
					}
				}
			}
		})
	}
}

func TestEmbeddingAndLossRealSizes(t *testing.T) {
	d := newDuo(t)
	const V, C, N = 1000, 384, 50
	table := d.tensor(backend.BF16, V*C, 1, nil)
	ids := make([]int32, N)
	for i := range ids {
		ids[i] = int32((i * 37) % 23 * 41 % V) // repeats, so the scatter-add sums
	}
	idp := d.ints(ids)
	out := d.tensor(backend.F32, N*C, 1, nil)
	d.both("EmbeddingForward", func(be backend.Backend, s func(*pair) backend.Tensor) error {
		return be.EmbeddingForward(s(out), s(idp), s(table), N, C, true)
	})
	d.compare("gather (accumulate)", out, 0, 1e-7)
	dt := d.tensor(backend.F32, V*C, 0, make([]float32, V*C))
	dout := d.tensor(backend.F32, N*C, 1, nil)
	d.both("EmbeddingBackward", func(be backend.Backend, s func(*pair) backend.Tensor) error {
		return be.EmbeddingBackward(s(dt), s(dout), s(idp), N, C)
	})
	// Both sum the repeated rows in row order: identical.
	d.compare("scatter-add", dt, 0, 0)
	if err := d.g.EmbeddingForward(out.g, d.ints([]int32{0, V}).g, table.g, 2, C, false); err == nil {
		t.Errorf("EmbeddingForward with id = V: no error")
	}

	// Cross-entropy over a vocabulary-sized row (several block strides).
	const NV, VV = 3, 30522
	logits := d.tensor(backend.F32, NV*VV, 3, nil)
	labels := d.ints([]int32{5, -1, VV - 1})
	loss := d.tensor(backend.F32, NV, 0, make([]float32, NV))
	dl := d.tensor(backend.F32, NV*VV, 0, make([]float32, NV*VV))
	d.both("SoftmaxCrossEntropy", func(be backend.Backend, s func(*pair) backend.Tensor) error {
		return be.SoftmaxCrossEntropy(s(loss), s(dl), s(logits), s(labels), NV, VV, 0.5)
	})
	// log-sum-exp over 30522 terms: fp32 (gpu) vs float64 (cpu) sums,
	// |Δ| <= V·2^-24 relative to the sum -> 2e-3 relative in the worst case,
	// far less in practice; loss ~ 10.
	d.compare("loss", loss, 1e-3, 1e-4)
	d.compare("dlogits", dl, 1e-7, 1e-3)

	x := d.tensor(backend.BF16, 100003, 1, nil)
	ss := d.tensor(backend.F32, 1, 0, []float32{0})
	d.both("SumSquares", func(be backend.Backend, s func(*pair) backend.Tensor) error {
		return be.SumSquares(s(ss), s(x), 100003)
	})
	// 100003 positive terms in fp32, different orders: n·2^-24 ~ 6e-3 worst
	// case relative; a few 1e-5 in practice.
	d.compare("SumSquares", ss, 0, 1e-3)
}

// TestDropoutMaskBitExact: the kernel's keep mask equals
// backend.DropoutKeep for every index, several seeds and rates, and kept
// values are scaled by exactly float32(1/(1-p)).
func TestDropoutMaskBitExact(t *testing.T) {
	d := newDuo(t)
	const n = 40000
	ones := make([]float32, n)
	for i := range ones {
		ones[i] = 1
	}
	in := d.tensor(backend.F32, n, 0, ones)
	out := d.tensor(backend.F32, n, 0, make([]float32, n))
	got := make([]float32, n)
	for _, seed := range []uint64{0, 1, 0xdeadbeefcafebabe, math.MaxUint64} {
		for _, p := range []float32{1e-6, 0.1, 0.5, 0.9, 0.999} {
			if err := d.g.DropoutForward(out.g, in.g, n, p, seed); err != nil {
				t.Fatal(err)
			}
			if err := d.g.Download(got, out.g); err != nil {
				t.Fatal(err)
			}
			s := 1 / (1 - p)
			bad := 0
			for i, v := range got {
				want := float32(0)
				if backend.DropoutKeep(seed, i, p) {
					want = s
				}
				if v != want {
					bad++
				}
			}
			if bad > 0 {
				t.Errorf("seed %#x p %v: %d of %d elements differ from backend.DropoutKeep", seed, p, bad, n)
			}
		}
	}
}

// TestConvertBitExact: the device conversion f32 -> bf16 equals
// gpu.F32ToBF16 bit for bit (ties to even, NaN, Inf, overflow, subnormals),
// and bf16 -> f32 is exact.
func TestConvertBitExact(t *testing.T) {
	d := newDuo(t)
	special := []uint32{0, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001, 0xffbfffff,
		0x3f808000, 0x3f818000, 0x3f80ffff, 0x7f7fffff, 0xff7fffff, 0x00000001, 0x00018000, 0x007fffff, 0x7f7f8000}
	r := rand.New(rand.NewSource(3))
	vals := make([]float32, 0, len(special)+5000)
	for _, u := range special {
		vals = append(vals, math.Float32frombits(u))
	}
	for i := 0; i < 5000; i++ {
		vals = append(vals, math.Float32frombits(r.Uint32()))
	}
	n := len(vals)
	src := d.tensor(backend.F32, n, 0, vals)
	dst, err := d.g.Alloc(backend.BF16, n)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.g.Convert(dst, src.g, n); err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 2*n)
	if err := d.dv.DtoH(raw, dst.(*gpu.Tensor).Ptr); err != nil {
		t.Fatal(err)
	}
	for i, v := range vals {
		got := binary.LittleEndian.Uint16(raw[2*i:])
		if want := gpu.F32ToBF16(v); got != want {
			t.Errorf("f32 %#08x -> bf16 %#04x, want %#04x", math.Float32bits(v), got, want)
		}
	}
	back, _ := d.g.Alloc(backend.F32, n)
	if err := d.g.Convert(back, dst, n); err != nil {
		t.Fatal(err)
	}
	fb := make([]float32, n)
	if err := d.g.Download(fb, back); err != nil {
		t.Fatal(err)
	}
	for i := range fb {
		want := gpu.BF16ToF32(binary.LittleEndian.Uint16(raw[2*i:]))
		if math.Float32bits(fb[i]) != math.Float32bits(want) && !(math.IsNaN(float64(want)) && math.IsNaN(float64(fb[i]))) {
			t.Errorf("bf16 %#04x -> f32 %v, want %v", binary.LittleEndian.Uint16(raw[2*i:]), fb[i], want)
		}
	}
}

// TestSumSquaresSizes covers the one-block and the two-stage paths (the
// switch is at 2^14 elements) against a float64 sum, and checks that
// repeated calls agree bitwise (fixed reduction order).
func TestSumSquaresSizes(t *testing.T) {
	d := newDuo(t)
	for _, n := range []int{0, 1, 255, 257, 1 << 14, 1<<14 + 1, 3<<14 + 5, 1 << 20} {
		x := d.tensor(backend.F32, max(n, 1), 1, nil)
		out := d.tensor(backend.F32, 1, 0, []float32{42})
		var want float64
		for _, v := range x.host[:n] {
			want += float64(v) * float64(v)
		}
		var got [2]float32
		for k := range got {
			if err := d.g.SumSquares(out.g, x.g, n); err != nil {
				t.Fatal(err)
			}
			v := make([]float32, 1)
			if err := d.g.Download(v, out.g); err != nil {
				t.Fatal(err)
			}
			got[k] = v[0]
		}
		// fp32 partial sums of <= 2^14/256 = 64 terms per thread, then
		// tree and block sums: relative error ~ (64 + log2 n)·2^-24 ≈ 5e-6;
		// 1e-5 relative bounds it.
		if math.Abs(float64(got[0])-want) > 1e-5*want {
			t.Errorf("n=%d: %v, want %v", n, got[0], want)
		}
		if got[0] != got[1] {
			t.Errorf("n=%d: two calls gave %v and %v", n, got[0], got[1])
		}
	}
}

// TestAttentionBackwardRejectsAliasing: dqkv overlapping qkv, dout or probs
// (even partly, through views) is an error, not a silent wrong result.
func TestAttentionBackwardRejectsAliasing(t *testing.T) {
	be, err := gpu.New(New(), gpu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	const B, T, NH, HS = 1, 5, 2, 3
	C := NH * HS
	big, _ := be.Alloc(backend.F32, 1000)
	view := func(off, n int) backend.Tensor {
		v, err := be.View(big, off, n)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	mask, _ := be.Alloc(backend.I32, B*T)
	n3, n1, np := B*T*3*C, B*T*C, B*NH*T*T
	// dqkv at [0, n3); the other operands start inside it or after it.
	for _, tc := range []struct {
		name          string
		qkv, dout, pr int
		wantErr       bool
	}{
		{"disjoint", n3, n3 + n3, n3 + n3 + n1, false},
		{"dout inside dqkv", n3, n3 - 2, n3 + n3 + n1, true},
		{"probs inside dqkv", n3, n3 + n3, 10, true},
		{"qkv overlapping", n3 - 1, n3 + n3, n3 + n3 + n1, true},
	} {
		err := be.AttentionBackward(view(0, n3), view(tc.dout, n1), view(tc.qkv, n3), view(tc.pr, np), mask, B, T, NH, HS, 0, 1)
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: err = %v, want error %v", tc.name, err, tc.wantErr)
		}
	}
}

// TestCrossEntropyInPlace: dlogits may alias logits (the loss must use the
// logits read before they are overwritten).
func TestCrossEntropyInPlace(t *testing.T) {
	d := newDuo(t)
	const N, V = 5, 300
	logits := d.tensor(backend.F32, N*V, 2, nil)
	ref := d.tensor(backend.F32, N*V, 2, logits.host)
	labels := d.ints([]int32{0, 299, -1, 17, 150})
	loss := d.tensor(backend.F32, N, 0, make([]float32, N))
	lossRef := d.tensor(backend.F32, N, 0, make([]float32, N))
	// Twice on the gpu (the emulator alternates its thread order between
	// blocks, so each row runs once in each order); both must match.
	if err := d.g.SoftmaxCrossEntropy(loss.g, logits.g, logits.g, labels.g, N, V, 1); err != nil {
		t.Fatal(err)
	}
	if err := d.g.SoftmaxCrossEntropy(lossRef.g, ref.g, ref.g, labels.g, N, V, 1); err != nil {
		t.Fatal(err)
	}
	second := &pair{g: lossRef.g, c: lossRef.c}
	secondD := &pair{g: ref.g, c: ref.c}
	if err := d.c.SoftmaxCrossEntropy(lossRef.c, ref.c, logits.c, labels.c, N, V, 1); err != nil {
		t.Fatal(err)
	}
	loss.c, logits.c = lossRef.c, ref.c
	// fp32 log-sum-exp of 300 terms vs the CPU's float64: ~1e-6 relative.
	d.compare("loss (in place)", loss, 1e-5, 1e-5)
	d.compare("dlogits (in place)", logits, 1e-6, 1e-4)
	d.compare("loss (in place, second run)", second, 1e-5, 1e-5)
	d.compare("dlogits (in place, second run)", secondD, 1e-6, 1e-4)
}

// TestAdapterUnfusedAliasing: for M > 256 the gpu backend answers
// backend.ErrNotFused and backend's composition of core ops runs; it keeps
// the aliasing rules (out = inp in place, dinp = dout in place).
func TestAdapterUnfusedAliasing(t *testing.T) {
	d := newDuo(t)
	const N, C, M = 7, 40, 260
	inp := d.tensor(backend.F32, N*C, 1, nil)
	ref := d.tensor(backend.F32, N*C, 0, make([]float32, N*C))
	wd, bd := d.tensor(backend.F32, M*C, 0.15, nil), d.tensor(backend.F32, M, 0.1, nil)
	wu, bu := d.tensor(backend.F32, C*M, 0.06, nil), d.tensor(backend.F32, C, 0.1, nil)
	z := d.tensor(backend.F32, N*M, 0, make([]float32, N*M))
	if err := backend.AdapterForward(d.g, inp.g, z.g, inp.g, wd.g, bd.g, wu.g, bu.g, N, C, M, backend.GELU); err != nil {
		t.Fatal(err)
	}
	if err := backend.AdapterForward(d.c, ref.c, z.c, inp.c, wd.c, bd.c, wu.c, bu.c, N, C, M, backend.GELU); err != nil {
		t.Fatal(err)
	}
	ref.g = inp.g
	d.compare("out (in place, unfused)", ref, f32Atol, f32Rtol)
	dout := d.tensor(backend.F32, N*C, 1, nil)
	x := d.tensor(backend.F32, N*C, 1, nil)
	dref := d.tensor(backend.F32, N*C, 0, make([]float32, N*C))
	dwu, dwuRef := d.tensor(backend.F32, C*M, 0, make([]float32, C*M)), d.tensor(backend.F32, C*M, 0, make([]float32, C*M))
	dbd, dbdRef := d.tensor(backend.F32, M, 0, make([]float32, M)), d.tensor(backend.F32, M, 0, make([]float32, M))
	if err := backend.AdapterBackward(d.g, dout.g, nil, dbd.g, dwu.g, nil, dout.g, x.g, z.g, wd.g, wu.g, N, C, M, backend.GELU); err != nil {
		t.Fatal(err)
	}
	if err := backend.AdapterBackward(d.c, dref.c, nil, dbdRef.c, dwuRef.c, nil, dout.c, x.c, z.c, wd.c, wu.c, N, C, M, backend.GELU); err != nil {
		t.Fatal(err)
	}
	dref.g, dwuRef.g, dbdRef.g = dout.g, dwu.g, dbd.g
	d.compare("dinp (in place, unfused)", dref, f32Atol, f32Rtol)
	d.compare("dWUp (unfused)", dwuRef, f32Atol, f32Rtol)
	d.compare("dBDown (unfused)", dbdRef, f32Atol, f32Rtol)
}
