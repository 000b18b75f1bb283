package model

// A float64 backend for the model's gradient check: backend.Backend over
// tests/ref64's reference loops (each of which ref64_test.go checks against
// finite differences). Running the whole encoder in float64 lets a central
// difference check the model's wiring (residuals, stages, fused Q/K/V,
// strided [CLS] rows, dropout seeds) to ~1e-7, far tighter than float32
// allows.

import (
	"fmt"

	"github.com/houlsby/adapters/backend"
	"github.com/houlsby/adapters/tests/ref64"
)

type tensor64 struct {
	d     []float64
	ints  []int32
	shape []int
	dt    backend.DType
}

func (t *tensor64) Shape() []int         { return t.shape }
func (t *tensor64) DType() backend.DType { return t.dt }
func (t *tensor64) Len() int             { return prod(t.shape) }

type backend64 struct{ allocs int }

var (
	_ backend.Backend        = (*backend64)(nil)
	_ backend.FusedAdapter   = (*backend64)(nil)
	_ backend.FusedAttention = (*backend64)(nil)
)

func (*backend64) Name() string               { return "ref64" }
func (*backend64) FrozenDType() backend.DType { return backend.F32 }

func (be *backend64) Alloc(dt backend.DType, shape ...int) (backend.Tensor, error) {
	be.allocs++
	t := &tensor64{shape: append([]int(nil), shape...), dt: dt}
	if dt == backend.I32 {
		t.ints = make([]int32, prod(shape))
	} else {
		t.d = make([]float64, prod(shape))
	}
	return t, nil
}

func (*backend64) View(t backend.Tensor, off int, shape ...int) (backend.Tensor, error) {
	p := t.(*tensor64)
	n := prod(shape)
	if off < 0 || off+n > p.Len() {
		return nil, fmt.Errorf("ref64 view [%d,%d) of %d", off, off+n, p.Len())
	}
	v := &tensor64{shape: append([]int(nil), shape...), dt: p.dt}
	if p.ints != nil {
		v.ints = p.ints[off : off+n]
	} else {
		v.d = p.d[off : off+n]
	}
	return v, nil
}

func (*backend64) Free(backend.Tensor) {}

func (*backend64) Upload(t backend.Tensor, src []float32) error {
	d := f(t)
	if len(src) != len(d) {
		return fmt.Errorf("ref64 upload %d into %d", len(src), len(d))
	}
	for i, x := range src {
		d[i] = float64(x)
	}
	return nil
}

func (*backend64) UploadInt32(t backend.Tensor, src []int32) error {
	d := t.(*tensor64).ints
	if len(src) != len(d) {
		return fmt.Errorf("ref64 upload %d into %d", len(src), len(d))
	}
	copy(d, src)
	return nil
}

func (*backend64) Download(dst []float32, t backend.Tensor) error {
	for i, x := range f(t)[:len(dst)] {
		dst[i] = float32(x)
	}
	return nil
}

func (*backend64) DownloadInt32(dst []int32, t backend.Tensor) error {
	copy(dst, t.(*tensor64).ints)
	return nil
}

func (*backend64) Copy(dst, src backend.Tensor) error { copy(f(dst), f(src)); return nil }

func (*backend64) Zero(t backend.Tensor) error {
	if p := t.(*tensor64); p.ints != nil {
		clear(p.ints)
	} else {
		clear(p.d)
	}
	return nil
}

func (*backend64) Sync() error { return nil }

// f returns t's float64 elements (nil for a nil tensor).
func f(t backend.Tensor) []float64 {
	if t == nil {
		return nil
	}
	return t.(*tensor64).d
}

func ints(t backend.Tensor) []int32 { return t.(*tensor64).ints }

func (*backend64) Gemm(c, a, b backend.Tensor, p backend.MatMul) error {
	ref64.Gemm(f(c), f(a), f(b), p)
	return nil
}
func (*backend64) AddBias(x, bias backend.Tensor, N, C int) error {
	ref64.AddBias(f(x), f(bias), N, C)
	return nil
}
func (*backend64) BiasGrad(dbias, dout backend.Tensor, N, C int) error {
	ref64.BiasGrad(f(dbias), f(dout), N, C)
	return nil
}
func (*backend64) Add(out, a, b backend.Tensor, n int) error {
	ref64.Add(f(out), f(a), f(b), n)
	return nil
}
func (*backend64) Scale(x backend.Tensor, alpha float32, n int) error {
	ref64.Scale(f(x), float64(alpha), n)
	return nil
}
func (*backend64) SumSquares(out, x backend.Tensor, n int) error {
	f(out)[0] = ref64.SumSquares(f(x), n)
	return nil
}
func (*backend64) LayerNormForward(out, mean, rstd, inp, w, b backend.Tensor, N, C int, eps float32) error {
	ref64.LayerNormForward(f(out), f(mean), f(rstd), f(inp), f(w), f(b), N, C, float64(eps))
	return nil
}
func (*backend64) LayerNormBackward(dinp, dw, db, dout, inp, w, mean, rstd backend.Tensor, N, C int) error {
	ref64.LayerNormBackward(f(dinp), f(dw), f(db), f(dout), f(inp), f(w), f(mean), f(rstd), N, C)
	return nil
}
func (*backend64) ActForward(out, inp backend.Tensor, n int, act backend.Act) error {
	ref64.ActForward(f(out), f(inp), n, act)
	return nil
}
func (*backend64) ActBackward(dinp, dout, inp backend.Tensor, n int, act backend.Act) error {
	ref64.ActBackward(f(dinp), f(dout), f(inp), n, act)
	return nil
}
func (*backend64) TanhForward(out, inp backend.Tensor, n int) error {
	ref64.TanhForward(f(out), f(inp), n)
	return nil
}
func (*backend64) TanhBackward(dinp, dout, out backend.Tensor, n int) error {
	ref64.TanhBackward(f(dinp), f(dout), f(out), n)
	return nil
}
func (*backend64) DropoutForward(out, inp backend.Tensor, n int, p float32, seed uint64) error {
	ref64.DropoutForward(f(out), f(inp), n, p, seed)
	return nil
}
func (*backend64) DropoutBackward(dinp, dout backend.Tensor, n int, p float32, seed uint64) error {
	ref64.DropoutBackward(f(dinp), f(dout), n, p, seed)
	return nil
}
func (*backend64) MaskedSoftmaxForward(probs, scores, mask backend.Tensor, B, R, T int, scale float32) error {
	ref64.MaskedSoftmaxForward(f(probs), f(scores), ints(mask), B, R, T, float64(scale))
	return nil
}
func (*backend64) MaskedSoftmaxBackward(dscores, dprobs, probs backend.Tensor, N, T int, scale float32) error {
	ref64.MaskedSoftmaxBackward(f(dscores), f(dprobs), f(probs), N, T, float64(scale))
	return nil
}
func (*backend64) AttentionForward(out, probs, qkv, mask backend.Tensor, B, T, NH, HS int, p float32, seed uint64) error {
	ref64.AttentionForward(f(out), f(probs), f(qkv), ints(mask), B, T, NH, HS, p, seed)
	return nil
}
func (*backend64) AttentionBackward(dqkv, dout, qkv, probs, mask backend.Tensor, B, T, NH, HS int, p float32, seed uint64) error {
	ref64.AttentionBackward(f(dqkv), f(dout), f(qkv), f(probs), ints(mask), B, T, NH, HS, p, seed)
	return nil
}
func (*backend64) EmbeddingForward(out, ids, table backend.Tensor, N, C int, accumulate bool) error {
	ref64.EmbeddingForward(f(out), ints(ids), f(table), N, C, accumulate)
	return nil
}
func (*backend64) EmbeddingBackward(dtable, dout, ids backend.Tensor, N, C int) error {
	ref64.EmbeddingBackward(f(dtable), f(dout), ints(ids), N, C)
	return nil
}
func (*backend64) AdapterForward(out, z, inp, wDown, bDown, wUp, bUp backend.Tensor, N, C, M int, act backend.Act) error {
	ref64.AdapterForward(f(out), f(z), f(inp), f(wDown), f(bDown), f(wUp), f(bUp), N, C, M, act)
	return nil
}
func (*backend64) AdapterBackward(dinp, dWDown, dBDown, dWUp, dBUp, dout, inp, z, wDown, wUp backend.Tensor, N, C, M int, act backend.Act) error {
	ref64.AdapterBackward(f(dinp), f(dWDown), f(dBDown), f(dWUp), f(dBUp), f(dout), f(inp), f(z), f(wDown), f(wUp), N, C, M, act)
	return nil
}
func (*backend64) SoftmaxCrossEntropy(loss, dlogits, logits, labels backend.Tensor, N, V int, scale float32) error {
	ref64.SoftmaxCrossEntropy(f(loss), f(dlogits), f(logits), ints(labels), N, V, float64(scale))
	return nil
}
func (*backend64) MSE(loss, dpred, pred, target backend.Tensor, N int, scale float32) error {
	ref64.MSE(f(loss), f(dpred), f(pred), f(target), N, float64(scale))
	return nil
}
func (*backend64) AdamWStep(param, grad, m, v, decay backend.Tensor, n int, h backend.AdamW) error {
	var table []int32
	if decay != nil {
		table = ints(decay)
	}
	ref64.AdamWStep(f(param), f(grad), f(m), f(v), table, n, h)
	return nil
}
