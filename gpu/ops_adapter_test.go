package gpu_test

// Op tests of the launchers in ops_adapter.go on the kernel emulator against the
// CPU backend, at the model's real sizes and dtype mixes (helpers in
// emu_helpers_test.go).

import (
	"errors"
	"math"
	"testing"

	"github.com/houlsby/adapters/backend"
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
	if err := d.g.AdapterForward(inp.g, z.g, inp.g, wd.g, bd.g, wu.g, bu.g, N, C, M, backend.GELU); !errors.Is(err, backend.ErrNotFused) {
		t.Fatalf("gpu AdapterForward at M = %d: %v, want backend.ErrNotFused", M, err)
	}
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
