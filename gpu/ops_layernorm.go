package gpu

import (
	"fmt"

	"github.com/houlsby/adapters/backend"
)

// lnRows is the number of rows (one warp each) per LayerNorm block;
// lnFusedRows that of layernorm_bwd_fused's row blocks (block 256).
const (
	lnRows      = 4
	lnFusedRows = 8
)

// LayerNormForward: out = (inp-mean)·rstd·w + b over rows of inp (N, C),
// saving mean and rstd (N, F32). out and inp share one dtype, w and b
// another (each F32 or BF16).
func (b *Backend) LayerNormForward(out, mean, rstd, inp, w, bias backend.Tensor, N, C int, eps float32) error {
	const op = "gpu.LayerNormForward"
	if err := sizes(op, "N,C", N, C); err != nil {
		return err
	}
	nc, err := mulOK(op, N, C)
	if err != nil {
		return err
	}
	ot, err := activ(op, "out", out, nc)
	if err != nil {
		return err
	}
	mt, err := f32(op, "mean", mean, N)
	if err != nil {
		return err
	}
	rt, err := f32(op, "rstd", rstd, N)
	if err != nil {
		return err
	}
	it, err := activ(op, "inp", inp, nc)
	if err != nil {
		return err
	}
	wt, err := weight(op, "w", w, C)
	if err != nil {
		return err
	}
	bt, err := weight(op, "b", bias, C)
	if err != nil {
		return err
	}
	if err := sameDType(op, "w and b", wt, bt); err != nil {
		return err
	}
	if err := sameDType(op, "out and inp", ot, it); err != nil {
		return err
	}
	if N == 0 || C == 0 {
		return nil
	}
	return b.launch(op, kLNFwd.of(it, wt), Dim3{X: uint32((N + lnRows - 1) / lnRows), Y: 1, Z: 1}, b1(32*lnRows), 0,
		ptr(ot), ptr(mt), ptr(rt), ptr(it), ptr(wt), ptr(bt), Int(N), Int(C), F(eps))
}

// LayerNormBackward: dinp (=, nil to skip), dw and db (+=, nil when frozen).
// With dinp and a weight gradient and no overlap of dinp and dout, one
// launch of layernorm_bwd_fused computes both; otherwise the weight
// gradients run first, so dinp may alias dout.
func (b *Backend) LayerNormBackward(dinp, dw, db, dout, inp, w, mean, rstd backend.Tensor, N, C int) error {
	const op = "gpu.LayerNormBackward"
	if err := sizes(op, "N,C", N, C); err != nil {
		return err
	}
	nc, err := mulOK(op, N, C)
	if err != nil {
		return err
	}
	dit, err := optActiv(op, "dinp", dinp, nc)
	if err != nil {
		return err
	}
	dwt, err := optF32(op, "dw", dw, C)
	if err != nil {
		return err
	}
	dbt, err := optF32(op, "db", db, C)
	if err != nil {
		return err
	}
	gt, err := activ(op, "dout", dout, nc)
	if err != nil {
		return err
	}
	it, err := activ(op, "inp", inp, nc)
	if err != nil {
		return err
	}
	if err := sameDType(op, "dinp, dout and inp", dit, gt, it); err != nil {
		return err
	}
	wt, err := weight(op, "w", w, C)
	if err != nil {
		return err
	}
	mt, err := f32(op, "mean", mean, N)
	if err != nil {
		return err
	}
	rt, err := f32(op, "rstd", rstd, N)
	if err != nil {
		return err
	}
	if N == 0 || C == 0 {
		return nil
	}
	colBlocks := (C + 31) / 32
	if dit != nil && (dwt != nil || dbt != nil) && !overlaps(dit, nc, gt, nc) {
		// One launch: 8 rows of dinp per block, then 32 columns of dw/db
		// per block, each part as its own kernel computes it.
		rowBlocks := (N + lnFusedRows - 1) / lnFusedRows
		return b.launch(op, kLNBwd.of(it, wt), Dim3{X: uint32(rowBlocks + colBlocks), Y: 1, Z: 1}, b1(32*lnFusedRows), 0,
			ptr(dit), ptr(dwt), ptr(dbt), ptr(gt), ptr(it), ptr(wt), ptr(mt), ptr(rt), Int(N), Int(C), Int(rowBlocks))
	}
	if dwt != nil || dbt != nil {
		if err := b.launch(op, kLNBwdDwb.of(it), Dim3{X: uint32(colBlocks), Y: 1, Z: 1}, Dim3{X: 32, Y: 8, Z: 1}, 0,
			ptr(dwt), ptr(dbt), ptr(gt), ptr(it), ptr(mt), ptr(rt), Int(N), Int(C)); err != nil {
			return err
		}
	}
	if dit == nil {
		return nil
	}
	return b.launch(op, kLNBwdDx.of(it, wt), Dim3{X: uint32((N + lnRows - 1) / lnRows), Y: 1, Z: 1}, b1(32*lnRows), 0,
		ptr(dit), ptr(gt), ptr(it), ptr(wt), ptr(mt), ptr(rt), Int(N), Int(C))
}

// AddLayerNormForward sets res = a + b and out = LayerNorm(res) in one
// launch (backend.FusedAddLayerNorm): res is rounded to its storage and
// normalised as stored, so the result is bit for bit Add then
// LayerNormForward. res, a, b and out share one dtype (F32 or BF16), w and
// bias another; res may alias a or b exactly; out must not overlap res, a
// or b.
func (b *Backend) AddLayerNormForward(out, res, mean, rstd, a, bt backend.Tensor, w, bias backend.Tensor, N, C int, eps float32) error {
	const op = "gpu.AddLayerNormForward"
	if err := sizes(op, "N,C", N, C); err != nil {
		return err
	}
	nc, err := mulOK(op, N, C)
	if err != nil {
		return err
	}
	ot, err := activ(op, "out", out, nc)
	if err != nil {
		return err
	}
	st, err := activ(op, "res", res, nc)
	if err != nil {
		return err
	}
	at, err := activ(op, "a", a, nc)
	if err != nil {
		return err
	}
	bbt, err := activ(op, "b", bt, nc)
	if err != nil {
		return err
	}
	if err := sameDType(op, "out, res, a and b", ot, st, at, bbt); err != nil {
		return err
	}
	mt, err := f32(op, "mean", mean, N)
	if err != nil {
		return err
	}
	rt, err := f32(op, "rstd", rstd, N)
	if err != nil {
		return err
	}
	wt, err := weight(op, "w", w, C)
	if err != nil {
		return err
	}
	wbt, err := weight(op, "bias", bias, C)
	if err != nil {
		return err
	}
	if err := sameDType(op, "w and bias", wt, wbt); err != nil {
		return err
	}
	for _, in := range []*Tensor{at, bbt} {
		if overlaps(st, nc, in, nc) && st.Ptr != in.Ptr {
			return fmt.Errorf("%s: res partly overlaps a or b (it may only alias one exactly)", op)
		}
	}
	if overlaps(ot, nc, st, nc) || overlaps(ot, nc, at, nc) || overlaps(ot, nc, bbt, nc) {
		return fmt.Errorf("%s: out overlaps res, a or b", op)
	}
	if nc == 0 {
		return nil
	}
	return b.launch(op, kAddLNFwd.of(st, wt), Dim3{X: uint32((N + lnRows - 1) / lnRows), Y: 1, Z: 1}, b1(32*lnRows), 0,
		ptr(ot), ptr(st), ptr(mt), ptr(rt), ptr(at), ptr(bbt), ptr(wt), ptr(wbt), Int(N), Int(C), F(eps))
}
