package cpu

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/houlsby/adapters/backend"
)

// Benchmarks of the hot non-GEMM ops at all-MiniLM-L6-v2 / BERT shapes
// (C = 384, NH = 12, HS = 32, T = 128, m = 64), named BenchmarkOp/cpu/<op
// and shape>. Attention and adapter report GFLOP/s (2 flops per
// multiply-add of their GEMMs); LayerNorm and GELU report GB/s of the
// tensors they must read and write.

func benchTensor(b *testing.B, be *Backend, r *rand.Rand, scale float64, shape ...int) backend.Tensor {
	x, err := be.Alloc(backend.F32, shape...)
	if err != nil {
		b.Fatal(err)
	}
	for i, d := 0, x.(*Tensor).Data; i < len(d); i++ {
		d[i] = float32((2*r.Float64() - 1) * scale)
	}
	return x
}

func benchRun(b *testing.B, be *Backend, flops, bytes float64, fn func() error) {
	if err := fn(); err != nil { // warm-up: scratch, pools
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := fn(); err != nil {
			b.Fatal(err)
		}
	}
	if err := be.Sync(); err != nil {
		b.Fatal(err)
	}
	sec := b.Elapsed().Seconds() / float64(b.N)
	if flops > 0 {
		b.ReportMetric(flops/sec/1e9, "GFLOP/s")
	}
	if bytes > 0 {
		b.ReportMetric(bytes/sec/1e9, "GB/s")
	}
}

func BenchmarkOp(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, sh := range []struct{ B, T, NH, HS int }{{8, 128, 12, 32}, {32, 64, 12, 32}} {
		B, T, NH, HS := sh.B, sh.T, sh.NH, sh.HS
		C := NH * HS
		be := New()
		qkv := benchTensor(b, be, r, 1, B, T, 3*C)
		out := benchTensor(b, be, r, 0, B, T, C)
		probs := benchTensor(b, be, r, 0, B, NH, T, T)
		dout := benchTensor(b, be, r, 1, B, T, C)
		dqkv := benchTensor(b, be, r, 0, B, T, 3*C)
		mask, _ := be.Alloc(backend.I32, B, T)
		for i := range mask.(*Tensor).Ints {
			mask.(*Tensor).Ints[i] = 1
		}
		// Forward: QKᵀ and PV, 2·T·T·HS flops each per (b, h).
		fl := float64(B*NH) * 2 * 2 * float64(T*T*HS)
		for _, p := range []float32{0, 0.1} {
			name := fmt.Sprintf("cpu/attention_fwd_B%d_T%d_NH%d_HS%d_p%v", B, T, NH, HS, p)
			b.Run(name, func(b *testing.B) {
				benchRun(b, be, fl, 0, func() error {
					return be.AttentionForward(out, probs, qkv, mask, B, T, NH, HS, p, 1)
				})
			})
			name = fmt.Sprintf("cpu/attention_bwd_B%d_T%d_NH%d_HS%d_p%v", B, T, NH, HS, p)
			b.Run(name, func(b *testing.B) {
				benchRun(b, be, 2*fl, 0, func() error {
					return be.AttentionBackward(dqkv, dout, qkv, probs, mask, B, T, NH, HS, p, 1)
				})
			})
		}
		// The packed attention on the same batch (every sequence T rows
		// long, so the same flops) and on sequences of lengths T/4..T
		// (flops of the real rows only; the padded op would pay for B·T²).
		lse := benchTensor(b, be, r, 0, NH, B*T)
		starts, _ := be.Alloc(backend.I32, B+1)
		mixed, _ := be.Alloc(backend.I32, B+1)
		var flMixed float64
		for i := 0; i < B; i++ {
			starts.(*Tensor).Ints[i+1] = int32((i + 1) * T)
			L := T/4 + (3*T/4)*i/max(B-1, 1)
			mixed.(*Tensor).Ints[i+1] = mixed.(*Tensor).Ints[i] + int32(L)
			flMixed += float64(NH) * 2 * 2 * float64(L*L*HS)
		}
		for _, st := range []struct {
			name   string
			starts backend.Tensor
			fl     float64
		}{{"full", starts, fl}, {"mixed", mixed, flMixed}} {
			for _, p := range []float32{0, 0.1} {
				name := fmt.Sprintf("cpu/packed_attention_fwd_%s_S%d_maxT%d_NH%d_HS%d_p%v", st.name, B, T, NH, HS, p)
				b.Run(name, func(b *testing.B) {
					benchRun(b, be, st.fl, 0, func() error {
						return be.PackedAttentionForward(out, lse, qkv, st.starts, B, T, NH, HS, p, 1)
					})
				})
				name = fmt.Sprintf("cpu/packed_attention_bwd_%s_S%d_maxT%d_NH%d_HS%d_p%v", st.name, B, T, NH, HS, p)
				b.Run(name, func(b *testing.B) {
					benchRun(b, be, 2*st.fl, 0, func() error {
						return be.PackedAttentionBackward(dqkv, dout, qkv, out, lse, st.starts, B, T, NH, HS, p, 1)
					})
				})
			}
		}
	}

	const N, C, M = 4096, 384, 64
	be := New()
	inp := benchTensor(b, be, r, 1, N, C)
	out := benchTensor(b, be, r, 0, N, C)
	dout := benchTensor(b, be, r, 1, N, C)
	dinp := benchTensor(b, be, r, 0, N, C)
	w, bb := benchTensor(b, be, r, 1, C), benchTensor(b, be, r, 1, C)
	dw, db := benchTensor(b, be, r, 0, C), benchTensor(b, be, r, 0, C)
	mean, rstd := benchTensor(b, be, r, 0, N), benchTensor(b, be, r, 0, N)
	rw := float64(N*C) * 4 * 2 // read one (N, C) tensor, write one
	b.Run(fmt.Sprintf("cpu/layernorm_fwd_N%d_C%d", N, C), func(b *testing.B) {
		benchRun(b, be, 0, rw, func() error { return be.LayerNormForward(out, mean, rstd, inp, w, bb, N, C, 1e-12) })
	})
	b.Run(fmt.Sprintf("cpu/layernorm_bwd_N%d_C%d", N, C), func(b *testing.B) {
		benchRun(b, be, 0, rw*1.5, func() error {
			return be.LayerNormBackward(dinp, dw, db, dout, inp, w, mean, rstd, N, C)
		})
	})
	b.Run(fmt.Sprintf("cpu/layernorm_bwd_frozen_N%d_C%d", N, C), func(b *testing.B) {
		benchRun(b, be, 0, rw*1.5, func() error {
			return be.LayerNormBackward(dinp, nil, nil, dout, inp, w, mean, rstd, N, C)
		})
	})
	b.Run(fmt.Sprintf("cpu/gelu_fwd_n%d", N*4*C), func(b *testing.B) {
		x := benchTensor(b, be, r, 3, N, 4*C)
		y := benchTensor(b, be, r, 0, N, 4*C)
		benchRun(b, be, 0, 4*rw, func() error { return be.ActForward(y, x, N*4*C, backend.GELU) })
	})
	b.Run(fmt.Sprintf("cpu/gelu_bwd_n%d", N*4*C), func(b *testing.B) {
		x := benchTensor(b, be, r, 3, N, 4*C)
		g := benchTensor(b, be, r, 1, N, 4*C)
		y := benchTensor(b, be, r, 0, N, 4*C)
		benchRun(b, be, 0, 6*rw, func() error { return be.ActBackward(y, g, x, N*4*C, backend.GELU) })
	})

	wd, bd := benchTensor(b, be, r, 0.1, M, C), benchTensor(b, be, r, 0.1, M)
	wu, bu := benchTensor(b, be, r, 0.1, C, M), benchTensor(b, be, r, 0.1, C)
	dwd, dbd := benchTensor(b, be, r, 0, M, C), benchTensor(b, be, r, 0, M)
	dwu, dbu := benchTensor(b, be, r, 0, C, M), benchTensor(b, be, r, 0, C)
	z := benchTensor(b, be, r, 0, N, M)
	fl := 2 * 2 * float64(N*C*M) // two GEMMs
	for _, act := range []backend.Act{backend.ReLU, backend.GELU} {
		b.Run(fmt.Sprintf("cpu/adapter_fwd_N%d_C%d_M%d_%v", N, C, M, act), func(b *testing.B) {
			benchRun(b, be, fl, 0, func() error { return be.AdapterForward(out, z, inp, wd, bd, wu, bu, N, C, M, act) })
		})
		b.Run(fmt.Sprintf("cpu/adapter_bwd_N%d_C%d_M%d_%v", N, C, M, act), func(b *testing.B) {
			benchRun(b, be, 2*fl, 0, func() error {
				return be.AdapterBackward(dinp, dwd, dbd, dwu, dbu, dout, inp, z, wd, wu, N, C, M, act)
			})
		})
		b.Run(fmt.Sprintf("cpu/adapter_bwd_frozen_N%d_C%d_M%d_%v", N, C, M, act), func(b *testing.B) {
			benchRun(b, be, fl, 0, func() error {
				return be.AdapterBackward(dinp, nil, nil, nil, nil, dout, inp, z, wd, wu, N, C, M, act)
			})
		})
	}
}
