package model

import (
	"github.com/houlsby/adapters/backend"
)

// headActs is what the pooler and head write (B rows).
type headActs struct {
	pre     backend.Tensor // (B, C) pooler dense output on [CLS]
	poolW   backend.Tensor // F32 pooling weights: (B, T) padded ("cls", "mean"), (B, N) packed (every pooling)
	gath    backend.Tensor // (B, C) packed layout: the [CLS] rows the pooler reads
	pooled  backend.Tensor // (B, C) tanh(pre), or the cls/mean pooled vector
	drop    backend.Tensor // (B, C) dropout(pooled) (training only)
	logits  backend.Tensor // (B, V)
	dlogits backend.Tensor // (B, V) loss gradient, written by the forward
	loss    backend.Tensor // (B) F32 per-row loss
	dpooled backend.Tensor // (B, C) (training only)
	dpre    backend.Tensor // (B, C) (training only)

	// PoolingCLSDense only (nil otherwise): the [CLS] rows, their dropout
	// (training only), and the gradients of both.
	cls, clsDrop, dcls, dclsDrop backend.Tensor // (B, C)
}

// siteHead is the dropout site of the pooled output (HF
// BertForSequenceClassification applies classifier_dropout, defaulting to
// hidden_dropout_prob, there).
func (m *Model) siteHead() uint64 { return uint64(1 + 3*m.L) }

// siteHeadIn is the dropout site of the [CLS] vector before the dense layer
// of PoolingCLSDense (AdapterHub's head applies its dropout before each of
// its two linear layers).
func (m *Model) siteHeadIn() uint64 { return uint64(2 + 3*m.L) }

// headForward computes the pooled vector per sequence, then
// logits = dropout(pooled)·Whᵀ + bh. Pooling "pooler": pooled =
// tanh(hidden_[CLS]·Wpᵀ + bp) on each sequence's [CLS] row; "cls": pooled =
// hidden_[CLS]; "mean": the mean of hidden over the sequence's real tokens;
// "cls_dense": pooled = tanh(dropout(hidden_[CLS])·Wdᵀ + bd). Pooling reads
// hidden through a GEMM with per-step weights (one-hot at [CLS], or
// mask/count): a one-hot row copies [CLS] exactly (1·h + 0·h' = h).
func (m *Model) headForward(bt *Batch, v *stepViews, sh shape, train bool, seed uint64, cachedPool bool) error {
	b, h, C := m.b, &m.headAct, m.C
	B := sh.B
	var err error
	switch {
	case cachedPool && m.pooling == PoolingPooler:
		err = m.pooler(h.gath, B, C) // gath holds the cached [CLS] rows
	case cachedPool:
		// pooled holds the cached cls/mean vectors, cls the cls_dense head's
		// [CLS] rows.
	case m.packed:
		err = m.poolPacked(v, sh)
	default:
		err = m.poolPadded(bt, v, sh)
	}
	if err == nil && m.pooling == PoolingCLSDense {
		err = m.clsDenseForward(B, train, seed)
	}
	if err != nil {
		return err
	}
	in := h.pooled
	if train && m.pHead != 0 {
		if err := b.DropoutForward(h.drop, h.pooled, B*C, m.pHead, siteSeed(seed, m.siteHead())); err != nil {
			return wrap(err, "classifier dropout")
		}
		in = h.drop
	}
	return wrap(m.linear(h.logits, in, m.head, B, m.numLabels, C), "classifier")
}

// pooler sets pooled = tanh(x·Wpᵀ + bp) for the B rows of x (row stride ld).
func (m *Model) pooler(x backend.Tensor, B, ld int) error {
	b, h, C := m.b, &m.headAct, m.C
	if err := b.Gemm(h.pre, x, m.poolerW.W, backend.MatMul{TransB: true, M: B, N: C, K: C, Alpha: 1, LdA: ld}); err != nil {
		return wrap(err, "pooler.dense")
	}
	if err := b.AddBias(h.pre, m.poolerW.B, B, C); err != nil {
		return wrap(err, "pooler.dense bias")
	}
	return wrap(b.TanhForward(h.pooled, h.pre, B*C), "pooler tanh")
}

// poolPadded pools the padded hidden state: the pooler reads each
// sequence's [CLS] row (row stride T·C); "cls" and "mean" are one batched
// GEMM, pooled_b (1, C) = w_b (1, T)·hidden_b (T, C), with weights w
// uploaded per step (one-hot at t = 0, or mask/count).
func (m *Model) poolPadded(bt *Batch, v *stepViews, sh shape) error {
	b, h, C := m.b, &m.headAct, m.C
	B, T := sh.B, sh.T
	hidden := m.acts[m.L-1].out
	if m.pooling == PoolingPooler {
		return m.pooler(hidden, B, T*C)
	}
	w := m.host.poolW[:B*T]
	clear(w)
	for r := 0; r < B; r++ {
		if m.pooling != PoolingMean {
			w[r*T] = 1
			continue
		}
		n := 0
		for t := 0; t < T; t++ {
			n += int(bt.Mask[r*T+t])
		}
		for t := 0; t < T && n > 0; t++ {
			w[r*T+t] = float32(bt.Mask[r*T+t]) / float32(n)
		}
	}
	if err := b.Upload(v.poolW, w); err != nil {
		return wrap(err, "uploading pooling weights")
	}
	if err := b.Gemm(m.poolDst(), h.poolW, hidden, backend.MatMul{M: 1, N: C, K: T, Alpha: 1,
		Batch: B, StrideA: T, StrideB: T * C, StrideC: C}); err != nil {
		return wrap(err, "%s pooling", m.pooling)
	}
	return nil
}

// poolDst is where the pooling GEMM writes: the gathered [CLS] rows for the
// pooler (packed) and the cls_dense head, else the pooled vector itself.
func (m *Model) poolDst() backend.Tensor {
	switch m.pooling {
	case PoolingPooler:
		return m.headAct.gath
	case PoolingCLSDense:
		return m.headAct.cls
	}
	return m.headAct.pooled
}

// poolPacked pools the packed hidden state (N, C) with one GEMM,
// P (B, N)·hidden: P is one-hot at each sequence's first row ([CLS]) for
// "pooler", "cls" and "cls_dense", 1/len over its rows for "mean". The
// pooler then reads the gathered [CLS] rows.
func (m *Model) poolPacked(v *stepViews, sh shape) error {
	b, h, C := m.b, &m.headAct, m.C
	B, N := sh.B, sh.N
	w := m.host.poolW[:B*N]
	clear(w)
	for s := 0; s < B; s++ {
		r0, r1 := int(m.host.starts[s]), int(m.host.starts[s+1])
		if m.pooling != PoolingMean {
			w[s*N+r0] = 1
			continue
		}
		for r := r0; r < r1; r++ {
			w[s*N+r] = 1 / float32(r1-r0)
		}
	}
	if err := b.Upload(v.poolW, w); err != nil {
		return wrap(err, "uploading pooling weights")
	}
	if err := b.Gemm(m.poolDst(), h.poolW, m.acts[m.L-1].out, backend.MatMul{M: B, N: C, K: N, Alpha: 1}); err != nil {
		return wrap(err, "%s pooling", m.pooling)
	}
	if m.pooling == PoolingPooler {
		return m.pooler(h.gath, B, C)
	}
	return nil
}

// clsDenseForward computes pooled = tanh(dropout(cls)·Wdᵀ + bd) from the
// [CLS] rows in h.cls (PoolingCLSDense).
func (m *Model) clsDenseForward(B int, train bool, seed uint64) error {
	b, h, C := m.b, &m.headAct, m.C
	in := h.cls
	if train && m.pHead != 0 {
		if err := b.DropoutForward(h.clsDrop, h.cls, B*C, m.pHead, siteSeed(seed, m.siteHeadIn())); err != nil {
			return wrap(err, "head dropout before head.dense")
		}
		in = h.clsDrop
	}
	if err := m.linear(h.pre, in, m.poolerW, B, C, C); err != nil {
		return wrap(err, "head.dense")
	}
	return wrap(b.TanhForward(h.pooled, h.pre, B*C), "head tanh")
}

// lossForward computes the per-row loss (and, when anything trains, the
// logits' gradient, scaled by 1/B so the loss is the batch mean) and returns
// the mean loss.
func (m *Model) lossForward(bt *Batch, v *stepViews) (float32, error) {
	b, h := m.b, &m.headAct
	B := bt.B
	var dl backend.Tensor
	if m.anyTrainable {
		dl = h.dlogits
	}
	scale := 1 / float32(B)
	if bt.Labels != nil {
		if err := b.UploadInt32(v.labels, bt.Labels); err != nil {
			return 0, wrap(err, "uploading labels")
		}
		if err := b.SoftmaxCrossEntropy(h.loss, dl, h.logits, m.io.labels, B, m.numLabels, scale); err != nil {
			return 0, wrap(err, "cross-entropy loss")
		}
	} else {
		if err := b.Upload(v.targets, bt.Targets); err != nil {
			return 0, wrap(err, "uploading targets")
		}
		if err := b.MSE(h.loss, dl, h.logits, m.io.targets, B, scale); err != nil {
			return 0, wrap(err, "squared-error loss")
		}
	}
	rows := m.host.loss[:B]
	if err := b.Download(rows, v.loss); err != nil {
		return 0, wrap(err, "downloading the loss")
	}
	var sum float64
	for _, x := range rows {
		sum += float64(x)
	}
	return float32(sum / float64(B)), nil
}

// headBackward takes the logits' gradient (from lossForward) through the
// classifier and pooling into grads.dh (N, C), the gradient of the last
// hidden state, when anything below trains.
func (m *Model) headBackward(sh shape, train bool, seed uint64) error {
	b, h, C := m.b, &m.headAct, m.C
	B := sh.B
	below := m.lowestLayer < m.L || (m.lowestLayer == m.L && m.lowestStage < stageHead)
	in := h.pooled
	dropped := train && m.pHead != 0
	if dropped {
		in = h.drop
	}
	var dIn backend.Tensor
	if below {
		dIn = h.dpooled
	}
	if err := m.linearBackward(dIn, h.dlogits, in, m.head, B, m.numLabels, C); err != nil {
		return wrap(err, "classifier backward")
	}
	if !below {
		return nil
	}
	// dpooled → (dropout backward) → (tanh backward); the two (B, C) buffers
	// alternate so no op reads and writes the same one.
	dp, other := h.dpooled, h.dpre
	if dropped {
		if err := b.DropoutBackward(other, dp, B*C, m.pHead, siteSeed(seed, m.siteHead())); err != nil {
			return wrap(err, "classifier dropout backward")
		}
		dp, other = other, dp
	}
	if m.pooling == PoolingCLSDense {
		return m.clsDenseBackward(dp, other, sh, train, seed)
	}
	if m.pooling != PoolingPooler {
		if m.lowestLayer >= m.L {
			return nil
		}
		return m.poolBackward(dp, sh)
	}
	dpre := other
	if err := b.TanhBackward(dpre, dp, h.pooled, B*C); err != nil {
		return wrap(err, "pooler tanh backward")
	}
	// The pooler's input: the [CLS] rows, gathered (packed or cached) or
	// strided (padded).
	x, ld := m.acts[m.L-1].out, sh.T*C
	if m.packed || m.step.fromCache {
		x, ld = h.gath, C
	}
	if m.poolerW.dW != nil {
		if err := b.Gemm(m.poolerW.dW, dpre, x, backend.MatMul{TransA: true, M: C, N: C, K: B, Alpha: 1, Beta: 1, LdB: ld}); err != nil {
			return wrap(err, "pooler.dense weight gradient")
		}
	}
	if m.poolerW.dB != nil {
		if err := b.BiasGrad(m.poolerW.dB, dpre, B, C); err != nil {
			return wrap(err, "pooler.dense bias gradient")
		}
	}
	if m.lowestLayer >= m.L {
		return nil
	}
	if m.packed {
		// d[CLS rows] = dpre·Wp into the free (B, C) buffer, then spread.
		if err := b.Gemm(dp, dpre, m.poolerW.W, backend.MatMul{M: B, N: C, K: C, Alpha: 1}); err != nil {
			return wrap(err, "pooler.dense input gradient")
		}
		return m.poolBackward(dp, sh)
	}
	// d hidden: zero, then the [CLS] rows (row stride T·C) = dpre·Wp.
	if err := b.Zero(m.grads.dh); err != nil {
		return wrap(err, "zeroing the hidden-state gradient")
	}
	return wrap(b.Gemm(m.grads.dh, dpre, m.poolerW.W, backend.MatMul{M: B, N: C, K: C, Alpha: 1, LdC: sh.T * C}), "pooler.dense input gradient")
}

// clsDenseBackward continues headBackward for PoolingCLSDense from dp, the
// gradient of pooled (scratch is the other (B, C) buffer): through tanh and
// head.dense (whose gradients always accumulate: the head trains), then,
// when a layer below trains, through the dropout before the dense into the
// [CLS] rows of grads.dh (every other row zero), as "cls" pooling does.
func (m *Model) clsDenseBackward(dp, scratch backend.Tensor, sh shape, train bool, seed uint64) error {
	b, h, C := m.b, &m.headAct, m.C
	B := sh.B
	dpre := scratch
	if err := b.TanhBackward(dpre, dp, h.pooled, B*C); err != nil {
		return wrap(err, "head tanh backward")
	}
	in := h.cls
	dropped := train && m.pHead != 0
	if dropped {
		in = h.clsDrop
	}
	var dIn backend.Tensor
	if m.lowestLayer < m.L {
		dIn = h.dcls
	}
	if err := m.linearBackward(dIn, dpre, in, m.poolerW, B, C, C); err != nil {
		return wrap(err, "head.dense backward")
	}
	if dIn == nil {
		return nil
	}
	if dropped {
		if err := b.DropoutBackward(h.dclsDrop, dIn, B*C, m.pHead, siteSeed(seed, m.siteHeadIn())); err != nil {
			return wrap(err, "head dropout backward")
		}
		dIn = h.dclsDrop
	}
	return m.poolBackward(dIn, sh)
}

// poolBackward sets grads.dh, every row of the hidden state's gradient, from
// dpooled (B, C), the gradient of the pooling GEMM's output: Pᵀ·dpooled
// (packed, (N, B)·(B, C)) or w_bᵀ·dpooled_b per sequence (padded).
func (m *Model) poolBackward(dpooled backend.Tensor, sh shape) error {
	h, C := &m.headAct, m.C
	p := backend.MatMul{TransA: true, M: sh.N, N: C, K: sh.B, Alpha: 1} // packed: (N, B)·(B, C)
	if !m.packed {
		T := sh.T
		p = backend.MatMul{TransA: true, M: T, N: C, K: 1, Alpha: 1, Batch: sh.B, StrideA: T, StrideB: C, StrideC: T * C}
	}
	if err := m.b.Gemm(m.grads.dh, h.poolW, dpooled, p); err != nil {
		// Only here: boxing m.pooling for the message allocates.
		return wrap(err, "%s pooling backward", m.pooling)
	}
	return nil
}
