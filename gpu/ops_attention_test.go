package gpu_test

// Op tests of the launchers in ops_attention.go on the kernel emulator against the
// CPU backend, at the model's real sizes and dtype mixes (helpers in
// emu_helpers_test.go).

import (
	"errors"
	"testing"

	"github.com/houlsby/adapters/backend"
	"github.com/houlsby/adapters/gpu"
)

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

// TestAttentionBeyondTheFusedKernels: beyond the fused kernels' limits
// (T > 512, HS > 128) the gpu backend answers backend.ErrNotFused and the
// package functions run backend's composition of core ops (strided GEMMs,
// MaskedSoftmax, dropout), which must agree with the CPU's fused attention
// (same dropout mask). Tolerances as TestAttentionRealSizes' f32 cases: the
// same fp32 sums in another order.
func TestAttentionBeyondTheFusedKernels(t *testing.T) {
	for _, tc := range []struct {
		name         string
		B, T, NH, HS int
	}{
		{"T=520/HS=8", 1, 520, 2, 8},
		{"T=21/HS=130", 2, 21, 1, 130},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDuo(t)
			B, T, NH, HS := tc.B, tc.T, tc.NH, tc.HS
			C := NH * HS
			qkv := d.tensor(backend.F32, B*T*3*C, 1, nil)
			mask := make([]int32, B*T)
			for i := range mask {
				if i%T < T-3 {
					mask[i] = 1
				}
			}
			mk := d.ints(mask)
			out := d.tensor(backend.F32, B*T*C, 0, make([]float32, B*T*C))
			probs := d.tensor(backend.F32, B*NH*T*T, 0, make([]float32, B*NH*T*T))
			if err := d.g.AttentionForward(out.g, probs.g, qkv.g, mk.g, B, T, NH, HS, 0, 1); !errors.Is(err, backend.ErrNotFused) {
				t.Fatalf("gpu AttentionForward at T = %d, HS = %d: %v, want backend.ErrNotFused", T, HS, err)
			}
			const p, seed = 0.1, 99
			d.both("AttentionForward", func(be backend.Backend, s func(*pair) backend.Tensor) error {
				return backend.AttentionForward(be, s(out), s(probs), s(qkv), s(mk), B, T, NH, HS, p, seed)
			})
			d.compare("out", out, f32Atol, f32Rtol)
			d.compare("probs", probs, f32Atol, f32Rtol)
			dout := d.tensor(backend.F32, B*T*C, 1, nil)
			dqkv := d.tensor(backend.F32, B*T*3*C, 0, make([]float32, B*T*3*C))
			d.both("AttentionBackward", func(be backend.Backend, s func(*pair) backend.Tensor) error {
				return backend.AttentionBackward(be, s(dqkv), s(dout), s(qkv), s(probs), s(mk), B, T, NH, HS, p, seed)
			})
			d.compare("dqkv", dqkv, f32Atol, f32Rtol)
		})
	}
}

// TestAttentionBackwardRejectsAliasing: dqkv overlapping qkv, dout or probs
// (even partly, through views) is an error, not a silent wrong result.
func TestAttentionBackwardRejectsAliasing(t *testing.T) {
	be, err := gpu.New(emuDevice(t), gpu.Options{})
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
