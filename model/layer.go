package model

import (
	"github.com/houlsby/adapters/backend"
)

// layerParams are one encoder layer's tensors.
type layerParams struct {
	// Q, K and V fused at load: qkvW (3C, C) rows [0,C) query, [C,2C) key,
	// [2C,3C) value; qkvB (3C). The registry's q/k/v Params are views into
	// them. qkvDW/qkvDB view the whole (3C, C)/(3C) gradient when all three
	// train; qkvPartDW/qkvPartDB are the per-part gradients (nil when frozen).
	qkvW, qkvB, qkvDW, qkvDB backend.Tensor
	qkvPartDW, qkvPartDB     [3]backend.Tensor
	qkvTrain                 bool

	attnOut dense     // attention.output.dense (C, C)
	ln1     layerNorm // attention.output.LayerNorm (C)
	inter   dense     // intermediate.dense (F, C)
	out     dense     // output.dense (C, F)
	ln2     layerNorm // output.LayerNorm (C)
	// adapter[0] after attention, adapter[1] after the FFN; nil when absent.
	adapter [2]*adapterParams
}

// adapterParams are one Houlsby adapter: down (M, C) + (M), up (C, M) + (C).
type adapterParams struct{ down, up dense }

func (a *adapterParams) trainable() bool { return a.down.trainable() || a.up.trainable() }

// layerActs is what one layer's forward writes; a layer that backward visits
// has its own set, the others share one. Shapes are for N = B·T rows.
type layerActs struct {
	qkv   backend.Tensor    // (N, 3C) projected Q|K|V: attention backward input
	probs backend.Tensor    // (B, NH, T, T) softmax before dropout (padded layout)
	lse   backend.Tensor    // (NH, N) F32 log-sum-exp of the scores (packed layout)
	ctx   backend.Tensor    // (N, C) attention output before the projection
	ao    backend.Tensor    // (N, C) dropout(attention.output.dense(ctx)): adapter input
	z     [2]backend.Tensor // (N, M) adapter pre-activations (nil without adapter)
	res1  backend.Tensor    // (N, C) residual sum into LayerNorm 1
	mean1 backend.Tensor    // (N) F32
	rstd1 backend.Tensor    // (N) F32
	h1    backend.Tensor    // (N, C) LayerNorm 1 output
	ffPre backend.Tensor    // (N, F) intermediate before GELU
	ffAct backend.Tensor    // (N, F) after GELU
	fo    backend.Tensor    // (N, C) dropout(output.dense(ffAct)): adapter input
	res2  backend.Tensor    // (N, C) residual sum into LayerNorm 2
	mean2 backend.Tensor    // (N) F32
	rstd2 backend.Tensor    // (N) F32
	out   backend.Tensor    // (N, C) layer output (next layer's input)
	// recomputeFF: ffPre and ffAct are scratch shared with other layers
	// (the FFN's weights are frozen): the backward recomputes ffPre from h1.
	recomputeFF bool
}

// site numbers the dropout sites, so each gets its own seed (siteSeed).
func siteAttnProbs(l int) uint64 { return uint64(1 + 3*l) }
func siteAttnOut(l int) uint64   { return uint64(2 + 3*l) }
func siteFFNOut(l int) uint64    { return uint64(3 + 3*l) }

// siteSeed derives the dropout seed of one site from the step's seed.
func siteSeed(seed, site uint64) uint64 { return mix64(seed ^ mix64(site+0x5eed)) }

// linear computes y (N, out) = x (N, in)·Wᵀ + b (one op: a backend may
// fuse the bias add into its GEMM, backend.LinearForward).
func (m *Model) linear(y, x backend.Tensor, d dense, N, out, in int) error {
	return backend.LinearForward(m.b, y, x, d.W, d.B, N, out, in, 0, 0)
}

// linearBackward accumulates dW += dyᵀ·x and dB += Σ dy when trainable, and
// sets dx = dy·W when dx is not nil.
func (m *Model) linearBackward(dx, dy, x backend.Tensor, d dense, N, out, in int) error {
	if d.dW != nil {
		if err := m.b.Gemm(d.dW, dy, x, backend.MatMul{TransA: true, M: out, N: in, K: N, Alpha: 1, Beta: 1}); err != nil {
			return err
		}
	}
	if d.dB != nil {
		if err := m.b.BiasGrad(d.dB, dy, N, out); err != nil {
			return err
		}
	}
	if dx != nil {
		return m.b.Gemm(dx, dy, d.W, backend.MatMul{M: N, N: in, K: out, Alpha: 1})
	}
	return nil
}

// layerForward runs layer l on x (N, C) into a.out. x may alias a.out (the
// shared set): x is last read by the first residual add, before a.out is
// written.
func (m *Model) layerForward(l int, x backend.Tensor, a *layerActs, sh shape, train bool, seed uint64) error {
	b, p := m.b, &m.layers[l]
	N, C, F := sh.N, m.C, m.F
	pa, ph := float32(0), float32(0)
	if train {
		pa, ph = m.pAttn, m.pHidden
	}
	// Self-attention: qkv = x·Wqkvᵀ + bqkv, one GEMM for Q, K and V.
	if err := m.linear(a.qkv, x, dense{W: p.qkvW, B: p.qkvB}, N, 3*C, C); err != nil {
		return wrap(err, "layer %d query/key/value", l)
	}
	if err := m.attentionForward(a, sh, pa, siteSeed(seed, siteAttnProbs(l))); err != nil {
		return wrap(err, "layer %d attention", l)
	}
	// attention.output: dense, dropout, adapter, residual, LayerNorm.
	if err := m.denseDropout(a.ao, a.ctx, p.attnOut, N, C, C, ph, siteSeed(seed, siteAttnOut(l))); err != nil {
		return wrap(err, "layer %d attention.output.dense", l)
	}
	if err := m.residualLayerNorm(l, 0, a.h1, a.res1, a.mean1, a.rstd1, a.z[0], a.ao, x, p.adapter[0], p.ln1, N); err != nil {
		return wrap(err, "layer %d attention adapter, residual and LayerNorm", l)
	}
	// Feed-forward: intermediate dense + GELU, output dense, dropout,
	// adapter, residual, LayerNorm.
	if err := m.linear(a.ffPre, a.h1, p.inter, N, F, C); err != nil {
		return wrap(err, "layer %d intermediate.dense", l)
	}
	if err := b.ActForward(a.ffAct, a.ffPre, N*F, backend.GELU); err != nil {
		return wrap(err, "layer %d GELU", l)
	}
	if err := m.denseDropout(a.fo, a.ffAct, p.out, N, C, F, ph, siteSeed(seed, siteFFNOut(l))); err != nil {
		return wrap(err, "layer %d output.dense", l)
	}
	return wrap(m.residualLayerNorm(l, 1, a.out, a.res2, a.mean2, a.rstd2, a.z[1], a.fo, a.h1, p.adapter[1], p.ln2, N),
		"layer %d output adapter, residual and LayerNorm", l)
}

// attentionForward runs self-attention on a.qkv into a.ctx: packed with
// backend.PackedAttention (saving a.lse), or padded over the mask (saving
// a.probs).
func (m *Model) attentionForward(a *layerActs, sh shape, p float32, seed uint64) error {
	if m.packed {
		return m.b.(backend.PackedAttention).PackedAttentionForward(a.ctx, a.lse, a.qkv, m.step.views.starts, sh.B, sh.T, m.NH, m.HS, p, seed)
	}
	return backend.AttentionForward(m.b, a.ctx, a.probs, a.qkv, m.io.mask, sh.B, sh.T, m.NH, m.HS, p, seed)
}

// attentionBackward sets grads.qkv from dctx, the gradient of a.ctx.
func (m *Model) attentionBackward(dctx backend.Tensor, a *layerActs, sh shape, p float32, seed uint64) error {
	if m.packed {
		return m.b.(backend.PackedAttention).PackedAttentionBackward(m.grads.qkv, dctx, a.qkv, a.ctx, a.lse, m.step.views.starts, sh.B, sh.T, m.NH, m.HS, p, seed)
	}
	return backend.AttentionBackward(m.b, m.grads.qkv, dctx, a.qkv, a.probs, m.io.mask, sh.B, sh.T, m.NH, m.HS, p, seed)
}

// denseDropout sets y = dropout(x·Wᵀ + b) with probability pr, one
// backend.LinearForward (dropout over y's flat index, as DropoutForward).
func (m *Model) denseDropout(y, x backend.Tensor, d dense, N, out, in int, pr float32, seed uint64) error {
	return backend.LinearForward(m.b, y, x, d.W, d.B, N, out, in, pr, seed)
}

// residualLayerNorm sets res = adapter(h) + resid (adapter(h) = h +
// up(act(down(h)))), or h + resid without an adapter, and out =
// LayerNorm(res): HF's LayerNorm(hidden + input_tensor) with AdapterHub's
// adapter applied to hidden first. The add and the LayerNorm are one op
// (backend.AddLayerNormForward). l and i (0 after attention, 1 after the
// FFN) name the site for Multi's per-task adapters and LayerNorms
// (m.tasks), which replace the model's own there.
func (m *Model) residualLayerNorm(l, i int, out, res, mean, rstd, z, h, resid backend.Tensor, ad *adapterParams, ln layerNorm, N int) error {
	if m.tasks != nil {
		if err := m.tasks.adapter(l, i, res, h, N); err != nil {
			return err
		}
		if err := m.b.Add(res, res, resid, N*m.C); err != nil {
			return err
		}
		return m.tasks.layerNorm(l, i, out, mean, rstd, res, N)
	}
	sum := h
	if ad != nil {
		if err := backend.AdapterForward(m.b, res, z, h, ad.down.W, ad.down.B, ad.up.W, ad.up.B, N, m.C, m.opts.Adapter.M, m.opts.Adapter.Act); err != nil {
			return err
		}
		sum = res
	}
	return backend.AddLayerNormForward(m.b, out, res, mean, rstd, sum, resid, ln.W, ln.B, N, m.C, m.eps)
}

// layerBackward propagates dout (N, C), the gradient of a.out, through layer
// l: parameter gradients accumulate into trainable tensors, and the gradient
// of the layer input x is written into dx, unless the layer is the lowest one
// backward visits (dx is then not computed). stop is the lowest stage whose
// tensors need gradients (-1: everything, including dx). dout is clobbered.
func (m *Model) layerBackward(l int, dx, dout, x backend.Tensor, a *layerActs, sh shape, stop int, train bool, seed uint64) error {
	b, p, g := m.b, &m.layers[l], &m.grads
	N, C, F := sh.N, m.C, m.F
	pa, ph := float32(0), float32(0)
	if train {
		pa, ph = m.pAttn, m.pHidden
	}
	// output.LayerNorm: dres2 → g.a.
	var dres2 backend.Tensor
	if stop < stageLN2 {
		dres2 = g.a
	}
	if err := m.lnBackward(dres2, dout, a.res2, a.mean2, a.rstd2, p.ln2, N); err != nil {
		return wrap(err, "layer %d output.LayerNorm backward", l)
	}
	if stop >= stageLN2 {
		return nil
	}
	// res2 = adapter(fo) + h1: dfo from the adapter into g.b (or dres2 itself).
	dfo, err := m.adapterBackward(g.b, dres2, a.fo, a.z[1], p.adapter[1], N, stop < stageAdapter2)
	if err != nil {
		return wrap(err, "layer %d output adapter backward", l)
	}
	if stop >= stageAdapter2 {
		return nil
	}
	// Dropout, then output.dense: dffAct → g.f1.
	dfo, err = m.dropoutBackward(dfo, g.c, N*C, ph, siteSeed(seed, siteFFNOut(l)))
	if err != nil {
		return wrap(err, "layer %d output dropout backward", l)
	}
	var dffAct backend.Tensor
	if stop < stageOut {
		dffAct = g.f1
	}
	if err := m.linearBackward(dffAct, dfo, a.ffAct, p.out, N, C, F); err != nil {
		return wrap(err, "layer %d output.dense backward", l)
	}
	if stop >= stageOut {
		return nil
	}
	// GELU and intermediate.dense: dh1 → g.b, plus the residual dres2.
	if a.recomputeFF {
		if err := m.linear(a.ffPre, a.h1, p.inter, N, F, C); err != nil {
			return wrap(err, "layer %d intermediate.dense recomputed", l)
		}
	}
	if err := b.ActBackward(g.f2, dffAct, a.ffPre, N*F, backend.GELU); err != nil {
		return wrap(err, "layer %d GELU backward", l)
	}
	var dh1 backend.Tensor
	if stop < stageInter {
		dh1 = g.b
	}
	if err := m.linearBackward(dh1, g.f2, a.h1, p.inter, N, F, C); err != nil {
		return wrap(err, "layer %d intermediate.dense backward", l)
	}
	if stop >= stageInter {
		return nil
	}
	if err := b.Add(dh1, dh1, dres2, N*C); err != nil {
		return wrap(err, "layer %d residual backward", l)
	}
	// attention.output.LayerNorm: dres1 → g.a.
	var dres1 backend.Tensor
	if stop < stageLN1 {
		dres1 = g.a
	}
	if err := m.lnBackward(dres1, dh1, a.res1, a.mean1, a.rstd1, p.ln1, N); err != nil {
		return wrap(err, "layer %d attention.output.LayerNorm backward", l)
	}
	if stop >= stageLN1 {
		return nil
	}
	// res1 = adapter(ao) + x.
	dao, err := m.adapterBackward(g.b, dres1, a.ao, a.z[0], p.adapter[0], N, stop < stageAdapter1)
	if err != nil {
		return wrap(err, "layer %d attention adapter backward", l)
	}
	if stop >= stageAdapter1 {
		return nil
	}
	dao, err = m.dropoutBackward(dao, g.c, N*C, ph, siteSeed(seed, siteAttnOut(l)))
	if err != nil {
		return wrap(err, "layer %d attention output dropout backward", l)
	}
	var dctx backend.Tensor
	if stop < stageAttnOut {
		dctx = g.b
		if dao == g.b {
			dctx = g.c
		}
	}
	if err := m.linearBackward(dctx, dao, a.ctx, p.attnOut, N, C, C); err != nil {
		return wrap(err, "layer %d attention.output.dense backward", l)
	}
	if stop >= stageAttnOut {
		return nil
	}
	if err := m.attentionBackward(dctx, a, sh, pa, siteSeed(seed, siteAttnProbs(l))); err != nil {
		return wrap(err, "layer %d attention backward", l)
	}
	if err := m.qkvBackward(l, dx, x, N, stop < stageQKV); err != nil {
		return wrap(err, "layer %d query/key/value backward", l)
	}
	if stop >= stageQKV {
		return nil
	}
	return wrap(b.Add(dx, dx, dres1, N*C), "layer %d residual backward", l)
}

// qkvBackward accumulates the Q/K/V weight and bias gradients from g.qkv
// (N, 3C) and, when needDx, sets dx = dqkv·Wqkv.
func (m *Model) qkvBackward(l int, dx, x backend.Tensor, N int, needDx bool) error {
	b, p, g, C := m.b, &m.layers[l], &m.grads, m.C
	if p.qkvDW != nil || p.qkvDB != nil {
		// All three train (and their gradients are contiguous): one GEMM.
		d := dense{W: p.qkvW, dW: p.qkvDW, dB: p.qkvDB}
		if err := m.linearBackward(nil, g.qkv, x, d, N, 3*C, C); err != nil {
			return err
		}
	}
	if p.qkvDW == nil {
		for i, dw := range p.qkvPartDW {
			if dw == nil {
				continue
			}
			// dW_i (C, C) += dqkv[:, iC:(i+1)C]ᵀ·x, reading the strided third.
			if err := b.Gemm(dw, g.qkvPart[i], x, backend.MatMul{TransA: true, M: C, N: C, K: N, Alpha: 1, Beta: 1, LdA: 3 * C}); err != nil {
				return err
			}
		}
	}
	if p.qkvDB == nil && (p.qkvPartDB[0] != nil || p.qkvPartDB[1] != nil || p.qkvPartDB[2] != nil) {
		// Column sums of the whole (N, 3C) into a scratch, then into each part.
		if err := b.Zero(g.bias3); err != nil {
			return err
		}
		if err := b.BiasGrad(g.bias3, g.qkv, N, 3*C); err != nil {
			return err
		}
		for i, db := range p.qkvPartDB {
			if db != nil {
				if err := b.Add(db, db, g.bias3Part[i], C); err != nil {
					return err
				}
			}
		}
	}
	if needDx {
		return b.Gemm(dx, g.qkv, p.qkvW, backend.MatMul{M: N, N: C, K: 3 * C, Alpha: 1})
	}
	return nil
}

// lnBackward runs a LayerNorm backward: dinp (=, nil to skip) and the
// parameter gradients when trainable.
func (m *Model) lnBackward(dinp, dout, inp, mean, rstd backend.Tensor, n layerNorm, N int) error {
	if dinp == nil && !n.trainable() {
		return nil
	}
	return m.b.LayerNormBackward(dinp, n.dW, n.dB, dout, inp, n.W, mean, rstd, N, m.C)
}

// adapterBackward returns the gradient of the adapter input h given dout, the
// gradient of adapter(h): it is computed into dst when there is an adapter
// (or only its parameter gradients, when !needDin), and is dout itself
// without one (adapter(h) = h).
func (m *Model) adapterBackward(dst, dout, h, z backend.Tensor, ad *adapterParams, N int, needDin bool) (backend.Tensor, error) {
	if ad == nil {
		return dout, nil
	}
	if !needDin {
		dst = nil
		if !ad.trainable() {
			return nil, nil
		}
	}
	a := m.opts.Adapter
	err := backend.AdapterBackward(m.b, dst, ad.down.dW, ad.down.dB, ad.up.dW, ad.up.dB, dout, h, z, ad.down.W, ad.up.W, N, m.C, a.M, a.Act)
	return dst, err
}

// dropoutBackward returns the gradient before a dropout given d after it:
// computed into dst when dropout was active, d itself otherwise. dst must
// not alias d.
func (m *Model) dropoutBackward(d, dst backend.Tensor, n int, p float32, seed uint64) (backend.Tensor, error) {
	if p == 0 {
		return d, nil
	}
	if err := m.b.DropoutBackward(dst, d, n, p, seed); err != nil {
		return nil, err
	}
	return dst, nil
}
