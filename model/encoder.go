package model

import (
	"errors"
	"fmt"
	"slices"

	"github.com/houlsby/adapters/backend"
)

// embeddingParams are the embedding tables and their LayerNorm.
type embeddingParams struct {
	word, pos, typ *Param    // (V, C), (P, C), (TV, C)
	ln             layerNorm // embeddings.LayerNorm (C)
}

// embActs is what the embedding block's forward writes (N = B·T rows).
type embActs struct {
	sum  backend.Tensor // (N, C) word + type + position: LayerNorm input
	mean backend.Tensor // (N) F32
	rstd backend.Tensor // (N) F32
	out  backend.Tensor // (N, C) dropout(LayerNorm(sum)): layer 0's input
}

// ioTensors receive the batch.
type ioTensors struct {
	ids, types, pos, mask backend.Tensor // (N) I32; mask in the padded layout only
	starts                backend.Tensor // (B+1) I32 packed layout: first row of each sequence
	labels                backend.Tensor // (B) I32
	targets               backend.Tensor // (B) F32
}

// gradScratch holds activation gradients (overwritten every step) and the
// forward's pre-dropout scratch.
type gradScratch struct {
	pre       backend.Tensor    // (N, C) dense output before dropout (forward)
	dh        backend.Tensor    // (N, C) gradient of a layer's output, then of its input
	a, b, c   backend.Tensor    // (N, C) gradients inside a layer
	f1, f2    backend.Tensor    // (N, F)
	qkv       backend.Tensor    // (N, 3C)
	qkvPart   [3]backend.Tensor // views of qkv from column i·C on (row stride 3C)
	bias3     backend.Tensor    // (3C) F32 column sums for partly trainable Q/K/V biases
	bias3Part [3]backend.Tensor // (C) views of bias3
}

// stepViews are exact-size views of the I/O buffers for one batch shape,
// cached so steady-state steps allocate nothing.
type stepViews struct {
	ids, types, pos, mask backend.Tensor // (N); mask (B·T) padded only
	starts                backend.Tensor // (B+1) packed only
	labels, targets, loss backend.Tensor // (B)
	logits                backend.Tensor // (B, V)
	hidden                backend.Tensor // (B, T, C) padded only
	poolW                 backend.Tensor // (B, T) padded, (B, N) packed
}

// carver hands out consecutive views of one arena. With a nil arena it only
// measures, so the same layout code sizes the arena and then carves it.
type carver struct {
	b     backend.Backend
	arena backend.Tensor
	off   int
	err   error
}

func (c *carver) take(shape ...int) backend.Tensor {
	n := prod(shape)
	off := c.off
	c.off += alignUp(n)
	if c.arena == nil || c.err != nil {
		return nil
	}
	t, err := c.b.View(c.arena, off, shape...)
	if err != nil {
		c.err = fmt.Errorf("model: carving activation %v at %d: %w", shape, off, err)
	}
	return t
}

// allocateActivations sizes and carves the activation arenas.
func (m *Model) allocateActivations() error {
	var act, f32, i32 carver
	m.layoutActivations(&act, &f32, &i32)
	for _, a := range []struct {
		c  *carver
		dt backend.DType
	}{{&act, m.actDT}, {&f32, backend.F32}, {&i32, backend.I32}} {
		t, err := m.b.Alloc(a.dt, a.c.off)
		if err != nil {
			return fmt.Errorf("model: allocating the %v activation arena (%d elements): %w", a.dt, a.c.off, err)
		}
		m.arenas = append(m.arenas, t)
		*a.c = carver{b: m.b, arena: t}
	}
	m.layoutActivations(&act, &f32, &i32)
	for _, c := range []*carver{&act, &f32, &i32} {
		if c.err != nil {
			return c.err
		}
	}
	N := m.maxB * m.maxT
	m.host.ids, m.host.types, m.host.pos, m.host.mask = make([]int32, N), make([]int32, N), make([]int32, N), make([]int32, N)
	m.host.zeros = make([]int32, N)
	m.host.starts = make([]int32, m.maxB+1)
	m.host.loss = make([]float32, m.maxB)
	m.host.logits = make([]float32, m.maxB*m.numLabels)
	m.host.poolW = make([]float32, m.poolWLen())
	m.views = make(map[shape]*stepViews)
	return nil
}

// layoutActivations assigns every activation buffer from the three carvers:
// floating activations and their gradients in FrozenDType (one dtype per op
// call, as the GPU backend requires); LayerNorm statistics, the loss, the
// regression targets and the pooling weights in F32 (1/n in bf16 would scale
// a mean-pooled vector by up to 2⁻⁹); the batch's integers in I32.
func (m *Model) layoutActivations(act, f32, i32 *carver) {
	N, B, T, C, F := m.maxB*m.maxT, m.maxB, m.maxT, m.C, m.F
	M := 0
	if m.opts.Adapter != nil {
		M = m.opts.Adapter.M
	}
	// A trainable layer whose FFN weights are frozen keeps neither the
	// FFN's (N, F) GELU input nor its output (8·C floats a token): its
	// backward reads the GELU input only, recomputed from h1 (one GEMM, the
	// forward's own call, so bit for bit). Nor is a layer's output kept
	// when the next layer's Q/K/V weights (the only reader in the
	// backward) are frozen. Such buffers are one scratch shared by all
	// those layers (x may alias a.out in layerForward). Adapter and
	// LayerNorm training keep 9.2·C floats a token a layer instead of 18.2.
	var scratch struct {
		ff, out  bool
		pre, act backend.Tensor
		o        backend.Tensor
	}
	newSet := func(l int) *layerActs {
		a := &layerActs{
			qkv:   act.take(N, 3*C),
			ctx:   act.take(N, C),
			ao:    act.take(N, C),
			res1:  act.take(N, C),
			mean1: f32.take(N),
			rstd1: f32.take(N),
			h1:    act.take(N, C),
		}
		if a.recomputeFF = l >= 0 && !m.opts.KeepFFNActivations && m.ffnFrozen(l); a.recomputeFF {
			if !scratch.ff {
				scratch.ff, scratch.pre, scratch.act = true, act.take(N, F), act.take(N, F)
			}
			a.ffPre, a.ffAct = scratch.pre, scratch.act
		} else {
			a.ffPre, a.ffAct = act.take(N, F), act.take(N, F)
		}
		a.fo, a.res2, a.mean2, a.rstd2 = act.take(N, C), act.take(N, C), f32.take(N), f32.take(N)
		if l >= 0 && !m.outputRead(l) {
			if !scratch.out {
				scratch.out, scratch.o = true, act.take(N, C)
			}
			a.out = scratch.o
		} else {
			a.out = act.take(N, C)
		}
		for i := range a.z {
			if m.hasAdapter(l, i) {
				a.z[i] = act.take(N, M)
			}
		}
		// The attention's saved state: the probabilities (padded), or one
		// log-sum-exp per head and row (packed: no T×T matrix at all).
		if m.packed {
			a.lse = f32.take(m.NH, N)
		} else {
			a.probs = act.take(B, m.NH, T, T)
		}
		return a
	}
	// Layers below the lowest trainable one never run backward: they share
	// one set (l = -1: it gets adapter buffers if any layer has adapters;
	// its output is the cache point's input, CachePoint).
	m.acts = make([]*layerActs, m.L)
	var shared *layerActs
	for l := range m.acts {
		if m.anyTrainable && l >= m.lowestLayer {
			m.acts[l] = newSet(l)
			continue
		}
		if shared == nil {
			shared = newSet(-1)
		}
		m.acts[l] = shared
	}
	m.embActs = embActs{sum: act.take(N, C), mean: f32.take(N), rstd: f32.take(N), out: act.take(N, C)}
	m.headAct = headActs{
		pre: act.take(B, C), poolW: f32.take(m.poolWLen()), pooled: act.take(B, C), drop: act.take(B, C),
		logits: act.take(B, m.numLabels), dlogits: act.take(B, m.numLabels),
		loss: f32.take(B),
	}
	m.headAct.gath = act.take(B, C)
	m.io = ioTensors{ids: i32.take(N), types: i32.take(N), pos: i32.take(N), mask: i32.take(N), starts: i32.take(B + 1),
		labels: i32.take(B), targets: f32.take(B)}
	g := &m.grads
	g.pre = act.take(N, C)
	if m.pooling == PoolingCLSDense {
		// Taken after every buffer of the other heads, so their layout is
		// unchanged.
		m.headAct.cls, m.headAct.clsDrop = act.take(B, C), act.take(B, C)
	}
	if !m.anyTrainable {
		return
	}
	g.dh = act.take(N, C)
	m.headAct.dpooled, m.headAct.dpre = act.take(B, C), act.take(B, C)
	if m.pooling == PoolingCLSDense {
		m.headAct.dcls, m.headAct.dclsDrop = act.take(B, C), act.take(B, C)
	}
	if m.lowestLayer >= m.L {
		return // only pooler/head train
	}
	g.a, g.b, g.c = act.take(N, C), act.take(N, C), act.take(N, C)
	g.f1, g.f2 = act.take(N, F), act.take(N, F)
	// qkv: three views offset by a third's columns (row stride 3C, given as
	// LdA); each extends to the end of the buffer.
	start := act.off
	g.qkv = act.take(N, 3*C)
	for i := range g.qkvPart {
		if act.arena != nil && act.err == nil {
			t, err := m.b.View(act.arena, start+i*C, N*3*C-i*C)
			if err != nil {
				act.err = fmt.Errorf("model: carving Q/K/V gradient views: %w", err)
			}
			g.qkvPart[i] = t
		}
	}
	g.bias3 = f32.take(3 * C)
	for i := range g.bias3Part {
		if f32.arena != nil && f32.err == nil {
			t, err := m.b.View(f32.arena, f32.off-alignUp(3*C)+i*C, C)
			if err != nil {
				f32.err = fmt.Errorf("model: carving Q/K/V bias gradient views: %w", err)
			}
			g.bias3Part[i] = t
		}
	}
}

// ffnFrozen reports whether layer l's FFN weights are frozen (its backward
// then needs only the GELU input, recomputed).
func (m *Model) ffnFrozen(l int) bool {
	p := &m.layers[l]
	return p.inter.dW == nil && p.out.dW == nil
}

// outputRead reports whether the backward reads layer l's output: the last
// layer's (the head's input), or as the input of layer l+1 whose Q/K/V
// weights train.
func (m *Model) outputRead(l int) bool {
	if l == m.L-1 {
		return true
	}
	p := &m.layers[l+1]
	return p.qkvDW != nil || p.qkvPartDW[0] != nil || p.qkvPartDW[1] != nil || p.qkvPartDW[2] != nil
}

// hasAdapter reports whether layer l has adapter i (0 attention, 1 FFN); for
// l = -1, whether any layer has it.
func (m *Model) hasAdapter(l, i int) bool {
	a := m.opts.Adapter
	if a == nil || (i == 0 && !a.Attention) || (i == 1 && !a.FFN) {
		return false
	}
	return l < 0 || a.inLayer(l)
}

// poolWLen is the length of the pooling-weight buffer: (B, T) in the padded
// layout, (B, N) in the packed one (N ≤ B·T rows).
func (m *Model) poolWLen() int {
	if m.packed {
		return m.maxB * m.maxB * m.maxT
	}
	return m.maxB * m.maxT
}

// stepViewsFor returns the exact-size I/O views for a batch shape, creating
// them on first use.
func (m *Model) stepViewsFor(sh shape) (*stepViews, error) {
	if v := m.views[sh]; v != nil {
		return v, nil
	}
	B, T, N := sh.B, sh.T, sh.N
	var err error
	view := func(t backend.Tensor, shape ...int) backend.Tensor {
		if err != nil {
			return nil
		}
		var v backend.Tensor
		v, err = m.b.View(t, 0, shape...)
		return v
	}
	v := &stepViews{
		ids: view(m.io.ids, N), types: view(m.io.types, N), pos: view(m.io.pos, N),
		labels: view(m.io.labels, B), targets: view(m.io.targets, B), loss: view(m.headAct.loss, B),
		logits: view(m.headAct.logits, B, m.numLabels),
	}
	if m.packed {
		v.starts = view(m.io.starts, B+1)
		v.poolW = view(m.headAct.poolW, B, N)
	} else {
		v.mask = view(m.io.mask, N)
		v.hidden = view(m.acts[m.L-1].out, B, T, m.C)
		v.poolW = view(m.headAct.poolW, B, T)
	}
	if err != nil {
		return nil, fmt.Errorf("model: views for batch %dx%d (%d rows): %w", B, T, N, err)
	}
	m.views[sh] = v
	return v, nil
}

// layout fills the host id buffers for bt and returns its shape: in the
// packed layout sequence b's real tokens (mask 1), in order, are rows
// [starts[b], starts[b+1]), with the position ids of their columns.
func (m *Model) layout(bt *Batch) shape {
	B, T := bt.B, bt.T
	types := bt.TypeIDs
	if types == nil {
		types = m.host.zeros[:B*T]
	}
	copy(m.host.mask, bt.Mask)
	if !m.packed {
		N := B * T
		copy(m.host.ids, bt.IDs)
		copy(m.host.types, types)
		for i := 0; i < N; i++ {
			m.host.pos[i] = int32(i % T)
		}
		return shape{B, T, N}
	}
	n := 0
	for b := 0; b < B; b++ {
		m.host.starts[b] = int32(n)
		for t := 0; t < T; t++ {
			if i := b*T + t; bt.Mask[i] == 1 {
				m.host.ids[n], m.host.types[n], m.host.pos[n] = bt.IDs[i], types[i], int32(t)
				n++
			}
		}
	}
	m.host.starts[B] = int32(n)
	return shape{B, T, n}
}

// check validates a batch against the model's limits and vocabulary.
func (m *Model) check(bt *Batch) error {
	B, T := bt.B, bt.T
	if B <= 0 || T <= 0 || B > m.maxB || T > m.maxT {
		return fmt.Errorf("model: batch %dx%d outside 1..%d x 1..%d (Options.MaxBatch, MaxSeq)", B, T, m.maxB, m.maxT)
	}
	N := B * T
	if len(bt.IDs) != N {
		return fmt.Errorf("model: batch has %d ids, want B·T = %d", len(bt.IDs), N)
	}
	if bt.TypeIDs != nil && len(bt.TypeIDs) != N {
		return fmt.Errorf("model: batch has %d type ids, want B·T = %d", len(bt.TypeIDs), N)
	}
	if len(bt.Mask) != N {
		return fmt.Errorf("model: batch has %d mask values, want B·T = %d", len(bt.Mask), N)
	}
	for i, id := range bt.IDs {
		if id < 0 || int(id) >= m.V {
			return fmt.Errorf("model: batch row %d position %d: token id %d outside vocabulary [0, %d)", i/T, i%T, id, m.V)
		}
	}
	for i, id := range bt.TypeIDs {
		if id < 0 || int(id) >= m.TV {
			return fmt.Errorf("model: batch row %d position %d: type id %d outside [0, %d)", i/T, i%T, id, m.TV)
		}
	}
	for i, v := range bt.Mask {
		if v != 0 && v != 1 {
			return fmt.Errorf("model: batch row %d position %d: mask value %d is not 0 or 1", i/T, i%T, v)
		}
	}
	for r := 0; r < B; r++ {
		if !slices.Contains(bt.Mask[r*T:(r+1)*T], 1) {
			return fmt.Errorf("model: batch row %d has no real token (its mask is all 0)", r)
		}
	}
	if bt.Labels != nil && bt.Targets != nil {
		return fmt.Errorf("model: batch has both labels and regression targets")
	}
	if bt.Labels != nil {
		if m.opts.Head.Kind != HeadClassification {
			return fmt.Errorf("model: batch has class labels but the head is %q", m.opts.Head.Kind)
		}
		if len(bt.Labels) != B {
			return fmt.Errorf("model: batch has %d labels, want B = %d", len(bt.Labels), B)
		}
		for i, y := range bt.Labels {
			if int(y) >= m.numLabels {
				return fmt.Errorf("model: batch row %d: label %d outside [0, %d)", i, y, m.numLabels)
			}
		}
	}
	if bt.Targets != nil {
		if m.opts.Head.Kind != HeadRegression {
			return fmt.Errorf("model: batch has regression targets but the head is %q", m.opts.Head.Kind)
		}
		if len(bt.Targets) != B {
			return fmt.Errorf("model: batch has %d targets, want B = %d", len(bt.Targets), B)
		}
	}
	return nil
}

// Forward runs the encoder, pooler and head on a batch. With train, dropout
// is active, its masks drawn from dropoutSeed (each site gets its own seed
// derived from dropoutSeed and a fixed site number, so Backward recomputes
// them). It returns the mean loss over the batch (0 without labels/targets)
// and the logits (B, NumLabels), a slice of a model buffer valid until the
// next Forward.
func (m *Model) Forward(bt *Batch, train bool, dropoutSeed uint64) (float32, []float32, error) {
	return m.forward(bt, train, dropoutSeed, nil)
}

// forward is Forward, or with cached values (ForwardFrom) the part of it
// above the cache point.
func (m *Model) forward(bt *Batch, train bool, dropoutSeed uint64, cached [][]float32) (float32, []float32, error) {
	m.step.done = false
	if err := m.check(bt); err != nil {
		return 0, nil, err
	}
	sh := m.layout(bt)
	v, err := m.stepViewsFor(sh)
	if err != nil {
		return 0, nil, err
	}
	m.step.views = v
	N := sh.N
	uploads := []struct {
		t    backend.Tensor
		src  []int32
		what string
	}{{v.ids, m.host.ids[:N], "ids"}, {v.types, m.host.types[:N], "type ids"}, {v.pos, m.host.pos[:N], "positions"},
		{v.mask, bt.Mask, "mask"}, {v.starts, m.host.starts[:sh.B+1], "sequence starts"}}
	for _, u := range uploads {
		if u.t == nil {
			continue // mask (packed) or starts (padded)
		}
		if err := m.b.UploadInt32(u.t, u.src); err != nil {
			return 0, nil, wrap(err, "uploading %s", u.what)
		}
	}
	from := 0
	if cached != nil {
		if from, err = m.placeCached(bt, sh, cached); err != nil {
			return 0, nil, err
		}
	} else if err := m.embeddingForward(sh, train && m.dropoutIn(layerEmbedding), dropoutSeed); err != nil {
		return 0, nil, err
	}
	for l := from; l < m.L; l++ {
		x := m.embActs.out
		if l > 0 {
			x = m.acts[l-1].out
		}
		if err := m.layerForward(l, x, m.acts[l], sh, train && m.dropoutIn(l), dropoutSeed); err != nil {
			return 0, nil, err
		}
	}
	if err := m.headForward(bt, v, sh, train, dropoutSeed, cached != nil && m.cachesHeadInput(from)); err != nil {
		return 0, nil, err
	}
	var loss float32
	hasLoss := bt.Labels != nil || bt.Targets != nil
	if hasLoss {
		if loss, err = m.lossForward(bt, v); err != nil {
			return 0, nil, err
		}
	}
	logits := m.host.logits[:sh.B*m.numLabels]
	if err := m.b.Download(logits, v.logits); err != nil {
		return 0, nil, wrap(err, "downloading logits")
	}
	m.step.done, m.step.hasLoss, m.step.train = true, hasLoss, train
	m.step.sh, m.step.seed, m.step.fromCache = sh, dropoutSeed, cached != nil
	return loss, logits, nil
}

// dropoutIn reports whether dropout runs in layer l (layerEmbedding: the
// embeddings) when training: always, except below the lowest trainable
// tensor under Options.NoFrozenDropout.
func (m *Model) dropoutIn(l int) bool { return !m.opts.NoFrozenDropout || l >= m.lowestLayer }

// Hidden returns the last hidden state (B, T, C) of the last Forward, a view
// of a model buffer valid until the next Forward. In the packed layout it is
// an unpacked copy whose padding rows are zero.
func (m *Model) Hidden() (backend.Tensor, error) {
	if !m.step.done {
		return nil, errors.New("model: Hidden before a successful Forward")
	}
	sh := m.step.sh
	v, err := m.stepViewsFor(sh)
	if err != nil {
		return nil, err
	}
	if !m.packed {
		return v.hidden, nil
	}
	C := m.C
	if m.hiddenPad == nil {
		t, err := m.b.Alloc(m.actDT, m.maxB*m.maxT, C)
		if err != nil {
			return nil, wrap(err, "allocating Hidden's buffer")
		}
		m.arenas = append(m.arenas, t)
		m.hiddenPad = t
		m.host.hidden = make([]float32, m.maxB*m.maxT*C)
	}
	packed := m.host.hidden[:sh.N*C]
	out, err := m.b.View(m.acts[m.L-1].out, 0, sh.N, C)
	if err != nil {
		return nil, err
	}
	if err := m.b.Download(packed, out); err != nil {
		return nil, wrap(err, "downloading the hidden state")
	}
	pad := make([]float32, sh.B*sh.T*C)
	for b := 0; b < sh.B; b++ {
		r0, r1 := int(m.host.starts[b]), int(m.host.starts[b+1])
		for r := r0; r < r1; r++ {
			t := int(m.host.pos[r])
			copy(pad[(b*sh.T+t)*C:(b*sh.T+t+1)*C], packed[r*C:(r+1)*C])
		}
	}
	h, err := m.b.View(m.hiddenPad, 0, sh.B, sh.T, C)
	if err != nil {
		return nil, err
	}
	return h, wrap(m.b.Upload(h, pad), "uploading the unpacked hidden state")
}

// embeddingForward: out = dropout(LayerNorm(word[ids] + type[types] + pos[t])),
// summed in Hugging Face's order (word + type, then + position).
func (m *Model) embeddingForward(sh shape, train bool, seed uint64) error {
	b, e, a := m.b, &m.emb, &m.embActs
	N, C := sh.N, m.C
	if err := b.EmbeddingForward(a.sum, m.io.ids, e.word.T, N, C, false); err != nil {
		return wrap(err, "word embeddings")
	}
	if err := b.EmbeddingForward(a.sum, m.io.types, e.typ.T, N, C, true); err != nil {
		return wrap(err, "token type embeddings")
	}
	if err := b.EmbeddingForward(a.sum, m.io.pos, e.pos.T, N, C, true); err != nil {
		return wrap(err, "position embeddings")
	}
	p := float32(0)
	if train {
		p = m.pHidden
	}
	ln := a.out
	if p != 0 {
		ln = m.grads.pre
	}
	if err := m.layerNormForward(layerEmbedding, 0, ln, a.mean, a.rstd, a.sum, e.ln, N); err != nil {
		return wrap(err, "embeddings.LayerNorm")
	}
	if p != 0 {
		return wrap(b.DropoutForward(a.out, ln, N*C, p, siteSeed(seed, 0)), "embeddings dropout")
	}
	return nil
}

// embeddingBackward takes dout (N, C), the gradient of the embedding block's
// output (clobbered), into the trainable tables and LayerNorm.
func (m *Model) embeddingBackward(dout backend.Tensor, sh shape, train bool, seed uint64) error {
	b, e, a, g := m.b, &m.emb, &m.embActs, &m.grads
	N, C := sh.N, m.C
	p := float32(0)
	if train {
		p = m.pHidden
	}
	d, err := m.dropoutBackward(dout, g.a, N*C, p, siteSeed(seed, 0))
	if err != nil {
		return wrap(err, "embeddings dropout backward")
	}
	tables := e.word.Grad != nil || e.pos.Grad != nil || e.typ.Grad != nil
	var dsum backend.Tensor
	if tables {
		dsum = g.b
	}
	if err := m.lnBackward(dsum, d, a.sum, a.mean, a.rstd, e.ln, N); err != nil {
		return wrap(err, "embeddings.LayerNorm backward")
	}
	for _, t := range []struct {
		p   *Param
		ids backend.Tensor
	}{{e.word, m.io.ids}, {e.typ, m.io.types}, {e.pos, m.io.pos}} {
		if t.p.Grad == nil {
			continue
		}
		if err := b.EmbeddingBackward(t.p.Grad, dsum, t.ids, N, C); err != nil {
			return wrap(err, "%s backward", t.p.Name)
		}
	}
	return nil
}

// Backward computes the gradient of the last Forward's loss: weight
// gradients (accumulated) for trainable tensors only, input gradients
// through every layer down to the lowest trainable tensor and no further.
// With nothing trainable it does nothing.
func (m *Model) Backward() error {
	if !m.step.done {
		return errors.New("model: Backward without a successful Forward")
	}
	if !m.step.hasLoss {
		return errors.New("model: Backward after a Forward without labels or targets")
	}
	if !m.anyTrainable {
		return nil
	}
	sh, train, seed := m.step.sh, m.step.train, m.step.seed
	if err := m.headBackward(sh, train, seed); err != nil {
		return err
	}
	for l := m.L - 1; l >= 0 && l >= m.lowestLayer; l-- {
		stop := -1
		if l == m.lowestLayer {
			stop = m.lowestStage
		}
		x := m.embActs.out
		if l > 0 {
			x = m.acts[l-1].out
		}
		if err := m.layerBackward(l, m.grads.dh, m.grads.dh, x, m.acts[l], sh, stop, train, seed); err != nil {
			return err
		}
	}
	if m.lowestLayer == layerEmbedding {
		return m.embeddingBackward(m.grads.dh, sh, train, seed)
	}
	return nil
}
