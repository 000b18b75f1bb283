package gpu_test

// The benchmark table of bench_test.go (tag cuda): shapes, ops, their work
// in flops and bytes, and the setup of their operands. It is untagged so
// that TestBenchOpsOnEmulator checks every entry (dtypes, shapes, argument
// order) on the kernel emulator at a small shape, without a GPU.

import (
	"math"
	"math/rand"
	"testing"

	"github.com/houlsby/adapters/backend"
	"github.com/houlsby/adapters/gpu"
	"github.com/houlsby/adapters/gpu/emu"
)

// benchShape is a BERT configuration at the benchmark batch.
type benchShape struct {
	name               string
	B, T, C, NH, FF, M int
	L                  int // layers, for the adapter parameter count
}

var benchShapes = []benchShape{
	{name: "bert-base_B32_T128", B: 32, T: 128, C: 768, NH: 12, FF: 3072, M: 64, L: 12},
	{name: "bert-large_B32_T128", B: 32, T: 128, C: 1024, NH: 16, FF: 4096, M: 64, L: 24},
}

// benchOp is one benchmark: flops and bytes are the op's work, setup
// allocates its operands and returns the call to time.
type benchOp struct {
	name         string
	flops, bytes func(s benchShape, ew float64) float64
	setup        func(b testing.TB, be backend.Backend, s benchShape) func() error
}

// bench allocates and fills tensors for a benchmark.
type bench struct {
	b   testing.TB
	be  backend.Backend
	rng *rand.Rand
	all []backend.Tensor
}

func (x *bench) t(dt backend.DType, scale float32, shape ...int) backend.Tensor {
	x.b.Helper()
	t, err := x.be.Alloc(dt, shape...)
	if err != nil {
		x.b.Fatal(err)
	}
	x.all = append(x.all, t)
	switch dt {
	case backend.I32:
		v := make([]int32, t.Len())
		for i := range v {
			v[i] = 1 // masks: all real tokens; ids/labels: token 1, class 1
		}
		err = x.be.UploadInt32(t, v)
	default:
		v := make([]float32, t.Len())
		for i := range v {
			v[i] = scale * float32(x.rng.NormFloat64())
		}
		err = x.be.Upload(t, v)
	}
	if err != nil {
		x.b.Fatal(err)
	}
	return t
}

func (x *bench) free() {
	for _, t := range x.all {
		x.be.Free(t)
	}
}

func zero(benchShape, float64) float64 { return 0 }

// gemmOp is Y (rows, out) = X (rows, in) · W (out, in)ᵀ, or with dx the
// input gradient dX (rows, in) = dY (rows, out) · W (out, in).
func gemmOp(name string, out, in func(benchShape) int, dx bool) benchOp {
	return benchOp{
		name: name,
		flops: func(s benchShape, _ float64) float64 {
			return 2 * float64(s.B*s.T) * float64(out(s)) * float64(in(s))
		},
		bytes: func(s benchShape, ew float64) float64 {
			n, o, i := float64(s.B*s.T), float64(out(s)), float64(in(s))
			if dx {
				return ew * (n*o + o*i + n*i)
			}
			return ew * (n*i + o*i + n*o)
		},
		setup: func(b testing.TB, be backend.Backend, s benchShape) func() error {
			x := &bench{b: b, be: be, rng: rand.New(rand.NewSource(2))}
			b.Cleanup(x.free)
			N, O, I := s.B*s.T, out(s), in(s)
			w := x.t(be.FrozenDType(), 0.02, O, I)
			if dx {
				dy := x.t(be.FrozenDType(), 1, N, O)
				dX := x.t(be.FrozenDType(), 0, N, I)
				p := backend.MatMul{M: N, N: I, K: O, Alpha: 1}
				return func() error { return be.Gemm(dX, dy, w, p) }
			}
			in := x.t(be.FrozenDType(), 1, N, I)
			y := x.t(be.FrozenDType(), 0, N, O)
			p := backend.MatMul{TransB: true, M: N, N: O, K: I, Alpha: 1}
			return func() error { return be.Gemm(y, in, w, p) }
		},
	}
}

// linearOp is backend.LinearForward: Y = dropout(X·Wᵀ + b) with p = 0.1,
// one launch on the GPU (bias and dropout in the GEMM's epilogue) where
// the core ops take three (gemm_*, add_bias, dropout_fwd).
func linearOp(name string, out, in func(benchShape) int) benchOp {
	op := gemmOp(name, out, in, false)
	op.bytes = func(s benchShape, ew float64) float64 {
		n, o, i := float64(s.B*s.T), float64(out(s)), float64(in(s))
		return ew * (n*i + o*i + n*o + o)
	}
	op.setup = func(b testing.TB, be backend.Backend, s benchShape) func() error {
		x := &bench{b: b, be: be, rng: rand.New(rand.NewSource(2))}
		b.Cleanup(x.free)
		N, O, I := s.B*s.T, out(s), in(s)
		w, bias := x.t(be.FrozenDType(), 0.02, O, I), x.t(be.FrozenDType(), 0.1, O)
		in, y := x.t(be.FrozenDType(), 1, N, I), x.t(be.FrozenDType(), 0, N, O)
		seed := uint64(0)
		return func() error { seed++; return backend.LinearForward(be, y, in, w, bias, N, O, I, 0.1, seed) }
	}
	return op
}

func cOf(s benchShape) int  { return s.C }
func c3Of(s benchShape) int { return 3 * s.C }
func ffOf(s benchShape) int { return s.FF }
func adapterParams(s benchShape) int {
	return s.L * 2 * (2*s.C*s.M + s.C + s.M) // Houlsby: two adapters per layer
}

// elementwise describes an op over n = f(s) activations touching k arrays.
func elementwise(name string, n func(benchShape) int, k float64, run func(x *bench, s benchShape) func() error) benchOp {
	return benchOp{
		name:  name,
		flops: zero,
		bytes: func(s benchShape, ew float64) float64 { return k * ew * float64(n(s)) },
		setup: func(b testing.TB, be backend.Backend, s benchShape) func() error {
			x := &bench{b: b, be: be, rng: rand.New(rand.NewSource(3))}
			b.Cleanup(x.free)
			return run(x, s)
		},
	}
}

func nc(s benchShape) int  { return s.B * s.T * s.C }
func nff(s benchShape) int { return s.B * s.T * s.FF }

var benchOps = []benchOp{
	gemmOp("gemm_qkv_fwd", c3Of, cOf, false),
	gemmOp("gemm_attnout_fwd", cOf, cOf, false),
	gemmOp("gemm_ffn_up_fwd", ffOf, cOf, false),
	gemmOp("gemm_ffn_down_fwd", cOf, ffOf, false),
	gemmOp("gemm_qkv_dx", c3Of, cOf, true),
	gemmOp("gemm_ffn_up_dx", ffOf, cOf, true),
	linearOp("linear_attnout_fused", cOf, cOf),
	linearOp("linear_ffn_down_fused", cOf, ffOf),
	gemmOp("gemm_ffn_down_dx", cOf, ffOf, true),
	{
		name: "attention_fwd",
		// QKᵀ and P·V: 2·2·B·NH·T²·HS = 4·B·T²·C.
		flops: func(s benchShape, _ float64) float64 { return 4 * float64(s.B) * float64(s.T*s.T) * float64(s.C) },
		bytes: func(s benchShape, ew float64) float64 {
			return ew * (float64(s.B*s.T*4*s.C) + float64(s.B*s.NH*s.T*s.T))
		},
		setup: func(b testing.TB, be backend.Backend, s benchShape) func() error {
			x := &bench{b: b, be: be, rng: rand.New(rand.NewSource(4))}
			b.Cleanup(x.free)
			dt := be.FrozenDType() // activations
			qkv := x.t(dt, 1, s.B, s.T, 3*s.C)
			mask := x.t(backend.I32, 0, s.B, s.T)
			out := x.t(dt, 0, s.B, s.T, s.C)
			probs := x.t(dt, 0, s.B, s.NH, s.T, s.T)
			return func() error {
				return backend.AttentionForward(be, out, probs, qkv, mask, s.B, s.T, s.NH, s.C/s.NH, 0.1, 7)
			}
		},
	},
	{
		name: "attention_bwd",
		// dV = Pᵀ·dO, dP = dO·Vᵀ, dQ = dS·K, dK = dSᵀ·Q: 8·B·T²·C.
		flops: func(s benchShape, _ float64) float64 { return 8 * float64(s.B) * float64(s.T*s.T) * float64(s.C) },
		bytes: func(s benchShape, ew float64) float64 {
			return ew * (float64(s.B*s.T*7*s.C) + float64(s.B*s.NH*s.T*s.T))
		},
		setup: func(b testing.TB, be backend.Backend, s benchShape) func() error {
			x := &bench{b: b, be: be, rng: rand.New(rand.NewSource(5))}
			b.Cleanup(x.free)
			dt := be.FrozenDType() // activations
			qkv := x.t(dt, 1, s.B, s.T, 3*s.C)
			mask := x.t(backend.I32, 0, s.B, s.T)
			out := x.t(dt, 0, s.B, s.T, s.C)
			probs := x.t(dt, 0, s.B, s.NH, s.T, s.T)
			if err := backend.AttentionForward(be, out, probs, qkv, mask, s.B, s.T, s.NH, s.C/s.NH, 0.1, 7); err != nil {
				b.Fatal(err)
			}
			dout := x.t(dt, 1, s.B, s.T, s.C)
			dqkv := x.t(dt, 0, s.B, s.T, 3*s.C)
			return func() error {
				return backend.AttentionBackward(be, dqkv, dout, qkv, probs, mask, s.B, s.T, s.NH, s.C/s.NH, 0.1, 7)
			}
		},
	},
	{
		name: "adapter_fwd",
		// down (N·C·M) and up (N·M·C) projections, 2 flops per MAC.
		flops: func(s benchShape, _ float64) float64 { return 4 * float64(s.B*s.T) * float64(s.C*s.M) },
		bytes: func(s benchShape, ew float64) float64 {
			return ew*float64(2*nc(s)+s.B*s.T*s.M) + 4*float64(2*s.C*s.M+s.C+s.M)
		},
		setup: func(b testing.TB, be backend.Backend, s benchShape) func() error {
			x := &bench{b: b, be: be, rng: rand.New(rand.NewSource(6))}
			b.Cleanup(x.free)
			dt := be.FrozenDType() // activations
			N := s.B * s.T
			inp := x.t(dt, 1, N, s.C)
			out := x.t(dt, 0, N, s.C)
			z := x.t(dt, 0, N, s.M)
			wd, bd := x.t(backend.F32, 0.02, s.M, s.C), x.t(backend.F32, 0.02, s.M)
			wu, bu := x.t(backend.F32, 0.02, s.C, s.M), x.t(backend.F32, 0.02, s.C)
			return func() error {
				return backend.AdapterForward(be, out, z, inp, wd, bd, wu, bu, N, s.C, s.M, backend.ReLU)
			}
		},
	},
	{
		name: "adapter_bwd",
		// dh = dout·wUp, dinp += dz·wDown, dWUp += doutᵀ·act(z), dWDown += dzᵀ·inp.
		flops: func(s benchShape, _ float64) float64 { return 8 * float64(s.B*s.T) * float64(s.C*s.M) },
		bytes: func(s benchShape, ew float64) float64 {
			return ew*float64(3*nc(s)+s.B*s.T*s.M) + 8*float64(2*s.C*s.M+s.C+s.M)
		},
		setup: func(b testing.TB, be backend.Backend, s benchShape) func() error {
			x := &bench{b: b, be: be, rng: rand.New(rand.NewSource(7))}
			b.Cleanup(x.free)
			dt := be.FrozenDType() // activations
			N := s.B * s.T
			inp, dout := x.t(dt, 1, N, s.C), x.t(dt, 1, N, s.C)
			z := x.t(dt, 1, N, s.M)
			dinp := x.t(dt, 0, N, s.C)
			wd, wu := x.t(backend.F32, 0.02, s.M, s.C), x.t(backend.F32, 0.02, s.C, s.M)
			dwd, dbd := x.t(backend.F32, 0, s.M, s.C), x.t(backend.F32, 0, s.M)
			dwu, dbu := x.t(backend.F32, 0, s.C, s.M), x.t(backend.F32, 0, s.C)
			return func() error {
				return backend.AdapterBackward(be, dinp, dwd, dbd, dwu, dbu, dout, inp, z, wd, wu, N, s.C, s.M, backend.ReLU)
			}
		},
	},
	elementwise("layernorm_fwd", nc, 2, func(x *bench, s benchShape) func() error {
		dt := x.be.FrozenDType() // activations
		N := s.B * s.T
		inp, out := x.t(dt, 1, N, s.C), x.t(dt, 0, N, s.C)
		mean, rstd := x.t(backend.F32, 0, N), x.t(backend.F32, 0, N)
		w, bias := x.t(backend.F32, 1, s.C), x.t(backend.F32, 0.1, s.C)
		return func() error { return x.be.LayerNormForward(out, mean, rstd, inp, w, bias, N, s.C, 1e-12) }
	}),
	elementwise("layernorm_bwd", nc, 3, func(x *bench, s benchShape) func() error {
		dt := x.be.FrozenDType() // activations
		N := s.B * s.T
		inp, out, dout, dinp := x.t(dt, 1, N, s.C), x.t(dt, 0, N, s.C), x.t(dt, 1, N, s.C), x.t(dt, 0, N, s.C)
		mean, rstd := x.t(backend.F32, 0, N), x.t(backend.F32, 0, N)
		w, bias := x.t(backend.F32, 1, s.C), x.t(backend.F32, 0.1, s.C)
		dw, db := x.t(backend.F32, 0, s.C), x.t(backend.F32, 0, s.C)
		if err := x.be.LayerNormForward(out, mean, rstd, inp, w, bias, N, s.C, 1e-12); err != nil {
			x.b.Fatal(err)
		}
		return func() error { return x.be.LayerNormBackward(dinp, dw, db, dout, inp, w, mean, rstd, N, s.C) }
	}),
	elementwise("add_layernorm_fwd", nc, 4, func(x *bench, s benchShape) func() error {
		dt := x.be.FrozenDType() // activations
		N := s.B * s.T
		a, c, res, out := x.t(dt, 1, N, s.C), x.t(dt, 1, N, s.C), x.t(dt, 0, N, s.C), x.t(dt, 0, N, s.C)
		mean, rstd := x.t(backend.F32, 0, N), x.t(backend.F32, 0, N)
		w, bias := x.t(backend.F32, 1, s.C), x.t(backend.F32, 0.1, s.C)
		return func() error {
			return backend.AddLayerNormForward(x.be, out, res, mean, rstd, a, c, w, bias, N, s.C, 1e-12)
		}
	}),
	elementwise("gelu_fwd", nff, 2, func(x *bench, s benchShape) func() error {
		dt := x.be.FrozenDType() // activations
		inp, out := x.t(dt, 1, nff(s)), x.t(dt, 0, nff(s))
		return func() error { return x.be.ActForward(out, inp, nff(s), backend.GELU) }
	}),
	elementwise("gelu_bwd", nff, 3, func(x *bench, s benchShape) func() error {
		dt := x.be.FrozenDType() // activations
		inp, dout, dinp := x.t(dt, 1, nff(s)), x.t(dt, 1, nff(s)), x.t(dt, 0, nff(s))
		return func() error { return x.be.ActBackward(dinp, dout, inp, nff(s), backend.GELU) }
	}),
	elementwise("add_bias", nff, 2, func(x *bench, s benchShape) func() error {
		dt := x.be.FrozenDType() // activations
		y, bias := x.t(dt, 1, s.B*s.T, s.FF), x.t(x.be.FrozenDType(), 0.1, s.FF)
		return func() error { return x.be.AddBias(y, bias, s.B*s.T, s.FF) }
	}),
	elementwise("add", nc, 3, func(x *bench, s benchShape) func() error {
		dt := x.be.FrozenDType() // activations
		a, c, out := x.t(dt, 1, nc(s)), x.t(dt, 1, nc(s)), x.t(dt, 0, nc(s))
		return func() error { return x.be.Add(out, a, c, nc(s)) }
	}),
	elementwise("dropout_fwd", nc, 2, func(x *bench, s benchShape) func() error {
		dt := x.be.FrozenDType() // activations
		inp, out := x.t(dt, 1, nc(s)), x.t(dt, 0, nc(s))
		seed := uint64(0)
		return func() error { seed++; return x.be.DropoutForward(out, inp, nc(s), 0.1, seed) }
	}),
	{
		name:  "adamw_adapters",
		flops: zero,
		// param, grad, m, v read; param, m, v written; all F32 (e unused;
		// the decay table is a few hundred bytes, read through the cache).
		bytes: func(s benchShape, _ float64) float64 { return 7 * 4 * float64(adapterParams(s)) },
		setup: func(b testing.TB, be backend.Backend, s benchShape) func() error {
			x := &bench{b: b, be: be, rng: rand.New(rand.NewSource(8))}
			b.Cleanup(x.free)
			P := adapterParams(s)
			p, g := x.t(backend.F32, 0.02, P), x.t(backend.F32, 1e-3, P)
			m, v := x.t(backend.F32, 0, P), x.t(backend.F32, 0, P)
			// One arena of every adapter, [wDown bDown wUp bUp] each: the
			// two weights decay, the biases do not (as trainer.DecayFor).
			var table []int32
			for off := 0; off < P; off += 2*s.C*s.M + s.C + s.M {
				wd, wu := off, off+s.C*s.M+s.M
				table = append(table, int32(wd), int32(wd+s.C*s.M), int32(wu), int32(wu+s.C*s.M))
			}
			decay := x.t(backend.I32, 0, len(table))
			if err := be.UploadInt32(decay, table); err != nil {
				b.Fatal(err)
			}
			h := backend.AdamW{LR: 1e-4, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01}
			return func() error { h.Step++; return be.AdamWStep(p, g, m, v, decay, P, h) }
		},
	},
	{
		name:  "sumsquares_adapter_grads",
		flops: func(s benchShape, _ float64) float64 { return 2 * float64(adapterParams(s)) },
		bytes: func(s benchShape, _ float64) float64 { return 4 * float64(adapterParams(s)) },
		setup: func(b testing.TB, be backend.Backend, s benchShape) func() error {
			x := &bench{b: b, be: be, rng: rand.New(rand.NewSource(9))}
			b.Cleanup(x.free)
			P := adapterParams(s)
			g, out := x.t(backend.F32, 1e-3, P), x.t(backend.F32, 0, 1)
			return func() error { return be.SumSquares(out, g, P) }
		},
	},
	{
		name:  "embedding_fwd",
		flops: zero,
		bytes: func(s benchShape, ew float64) float64 { return 2 * ew * float64(nc(s)) },
		setup: func(b testing.TB, be backend.Backend, s benchShape) func() error {
			x := &bench{b: b, be: be, rng: rand.New(rand.NewSource(10))}
			b.Cleanup(x.free)
			dt := be.FrozenDType() // activations
			N := s.B * s.T
			table := x.t(be.FrozenDType(), 0.02, 30522, s.C)
			ids := x.t(backend.I32, 0, N)
			out := x.t(dt, 0, N, s.C)
			return func() error { return be.EmbeddingForward(out, ids, table, N, s.C, false) }
		},
	},
}

// tinyShape is small enough for the emulator and not a multiple of any
// block size.
var tinyShape = benchShape{name: "tiny", B: 2, T: 7, C: 24, NH: 4, FF: 40, M: 5, L: 1}

// TestBenchOpsOnEmulator runs every benchmark op once on the emulator with
// the GPU's default options, so a wrong dtype, shape or argument order in
// the table fails here rather than on the GPU machine; and checks that the
// work counts are positive.
func TestBenchOpsOnEmulator(t *testing.T) {
	dev := emu.New()
	if p, err := dev.Alloc(16); err != nil {
		t.Skipf("emulator unavailable: %v", err)
	} else if err := dev.Free(p); err != nil {
		t.Fatal(err)
	}
	gb, err := gpu.New(dev, gpu.Options{BF16: true})
	if err != nil {
		t.Fatal(err)
	}
	defer gb.Close()
	var be backend.Backend = gb
	// One work count by hand: the BERT-base QKV projection is
	// 2·(32·128)·(3·768)·768 flops.
	if got := benchOps[0].flops(benchShapes[0], 2); benchOps[0].name != "gemm_qkv_fwd" || got != 2*4096*2304*768 {
		t.Fatalf("%s flops at %s = %v", benchOps[0].name, benchShapes[0].name, got)
	}
	for _, op := range benchOps {
		t.Run(op.name, func(t *testing.T) {
			if op.flops(tinyShape, 2)+op.bytes(tinyShape, 2) <= 0 {
				t.Fatalf("%s does no work at %+v", op.name, tinyShape)
			}
			call := op.setup(t, be, tinyShape)
			if err := call(); err != nil {
				t.Fatal(err)
			}
			if err := be.Sync(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestCopyConvertOnEmulator runs Backend.Copy's device conversions (the
// convert_* kernels) on the emulator and checks them against the host
// rounding of Upload, ties and overflow included.
func TestCopyConvertOnEmulator(t *testing.T) {
	dev := emu.New()
	if p, err := dev.Alloc(16); err != nil {
		t.Skipf("emulator unavailable: %v", err)
	} else if err := dev.Free(p); err != nil {
		t.Fatal(err)
	}
	b, err := gpu.New(dev, gpu.Options{BF16: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rng := rand.New(rand.NewSource(13))
	src := []float32{0, float32(math.Copysign(0, -1)), 1, 1.00390625, 1.01171875, 3.4e38, -3.4e38, 1e-40, 65504}
	for len(src) < 1000 { // not a multiple of the 256-thread block
		src = append(src, float32(rng.NormFloat64()*math.Exp(rng.NormFloat64()*5)))
	}
	f32, _ := b.Alloc(backend.F32, len(src))
	bf, _ := b.Alloc(backend.BF16, len(src))
	back, _ := b.Alloc(backend.F32, len(src))
	if err := b.Upload(f32, src); err != nil {
		t.Fatal(err)
	}
	if err := b.Copy(bf, f32); err != nil {
		t.Fatal(err)
	}
	if err := b.Copy(back, bf); err != nil {
		t.Fatal(err)
	}
	got := make([]float32, len(src))
	if err := b.Download(got, back); err != nil {
		t.Fatal(err)
	}
	for i, x := range src {
		want := gpu.BF16ToF32(gpu.F32ToBF16(x))
		if math.Float32bits(got[i]) != math.Float32bits(want) {
			t.Fatalf("element %d: %v → bf16 → %v, want %v", i, x, got[i], want)
		}
	}
}
