package model

// The BERT encoder (post-LN, as Hugging Face's BertModel) with Houlsby
// adapters, [CLS] pooler and a task head, written against backend.Backend.
//
// Dimension letters (as in package backend): B batch, T sequence length,
// N = B·T rows, C hidden size, NH heads, HS = C/NH head size, F intermediate
// size, M adapter bottleneck, L layers, V vocabulary (or labels for the
// head), P max positions.
//
// Gradient rule (backend.go): parameter gradients accumulate (+=) into the
// model's gradient arena, so call ZeroGrads between optimizer steps and
// micro-batches accumulate; activation gradients overwrite and the model adds
// residual branches explicitly. Frozen tensors have no gradient buffer and get
// no weight-gradient GEMM; below the lowest trainable tensor no backward runs.
//
// Memory: one allocation per category. Parameters: a frozen arena
// (Backend.FrozenDType) and a trainable arena (F32), a gradient arena (F32)
// for trainable tensors only. Activations: one arena in FrozenDType sized for
// Options.MaxBatch×Options.MaxSeq, holding a saved set per layer that backward
// visits and one shared set reused by every layer below (which never runs a
// backward, so nothing there needs keeping), plus a small F32 arena for
// LayerNorm statistics and the loss. Nothing is allocated per step after the
// first step of a given (B, T).

import (
	"fmt"

	"github.com/pkg/errors"

	"github.com/houlsby/adapters/backend"
)

// HeadOptions describes the task head on the pooled [CLS] output.
type HeadOptions struct {
	// Kind is "classification" (softmax cross-entropy over NumLabels) or
	// "regression" (mean squared error on one output).
	Kind string
	// NumLabels is the number of classes (classification) or 1 (regression;
	// 0 is read as 1).
	NumLabels int
	// Pooling picks the vector the classifier reads: PoolingPooler (default,
	// BERT's tanh dense on [CLS]), PoolingCLS ([CLS] hidden state) or
	// PoolingMean (masked mean, sentence-transformers style). Without the
	// pooler, no pooler tensors are in the registry (the checkpoint's, if
	// any, are not uploaded), as in adapter.Tensors.
	Pooling string
}

// Poolings (the strings of adapter.HeadPooler, HeadCLS, HeadMean).
const (
	PoolingPooler = "pooler"
	PoolingCLS    = "cls"
	PoolingMean   = "mean"
)

// Head kinds.
const (
	HeadClassification = "classification"
	HeadRegression     = "regression"
)

// Options configures New.
type Options struct {
	// MaxBatch and MaxSeq size the activation buffers (defaults 32 and 128).
	MaxBatch, MaxSeq int
	// Trainable decides, by HF name, which tensors train. It is asked before
	// anything is uploaded, because trainable tensors live in F32 and frozen
	// ones in Backend.FrozenDType. nil means: only the tensors the model
	// creates (adapters, a pooler missing from the checkpoint, the head)
	// train; every checkpoint tensor is frozen. A pooler created because the
	// checkpoint has none is always trainable (it is new, like the head) and
	// so is the head.
	Trainable func(name string) bool
	// Adapter inserts Houlsby adapters; nil means none.
	Adapter *AdapterOptions
	// Head is the task head.
	Head HeadOptions
	// Seed initialises the created pooler and head (each tensor from its own
	// stream derived from Seed and its name).
	Seed uint64
}

// Batch is one padded batch of B sequences of length T, flattened row-major
// (B, T).
type Batch struct {
	// IDs are token ids (B·T); TypeIDs are segment ids (nil means all 0).
	IDs, TypeIDs []int32
	// Mask is 1 for real tokens and 0 for padding (B·T).
	Mask []int32
	// B and T are the batch size and the sequence length.
	B, T int
	// Labels (B) are class indices for a classification head (negative:
	// ignored); Targets (B) are regression targets. With neither, Forward
	// computes logits but no loss and Backward is refused.
	Labels  []int32
	Targets []float32
}

// Model is a BERT encoder with optional adapters, a pooler and a task head on
// one backend. It is not safe for concurrent use.
type Model struct {
	b    backend.Backend
	cfg  Config
	opts Options

	L, C, NH, HS, F, V, P, TV int // layers, hidden, heads, head size, FFN, vocab, positions, type vocab
	numLabels                 int
	pooling                   string
	maxB, maxT                int
	eps                       float32 // LayerNorm epsilon
	pHidden, pAttn, pHead     float32 // dropout probabilities (hidden, attention, classifier)
	actDT                     backend.DType

	params                             []*Param
	byName                             map[string]*Param
	arenas                             []backend.Tensor // every allocation, for Free
	frozenArena, trainArena, gradArena backend.Tensor
	gradLen                            int

	emb    embeddingParams
	layers []layerParams
	pooler dense // pooler.dense (C, C)
	head   dense // classifier (V, C)

	// The lowest trainable tensor: backward runs down to it and no further.
	anyTrainable             bool
	lowestLayer, lowestStage int

	acts    []*layerActs // per layer; layers below lowestLayer share one set
	embActs embActs
	headAct headActs
	io      ioTensors
	grads   gradScratch

	views map[[2]int]*stepViews // exact-size I/O views per (B, T)

	host struct {
		pos    []int32   // (maxB·maxT) position ids
		zeros  []int32   // (maxB·maxT) default type ids
		loss   []float32 // (maxB)
		logits []float32 // (maxB·V)
		poolW  []float32 // (maxB·maxT) cls/mean pooling weights
	}

	// State of the last Forward, for Backward.
	step struct {
		done, hasLoss, train bool
		B, T                 int
		seed                 uint64
	}
}

// New builds a model from a checkpoint on b: it decides trainability,
// creates adapters, pooler (when the checkpoint has none) and head, uploads
// every tensor once and allocates all buffers.
func New(b backend.Backend, ck *Checkpoint, opts Options) (*Model, error) {
	if b == nil || ck == nil {
		panic("model: New needs a backend and a checkpoint")
	}
	cfg := ck.Config
	if err := cfg.Validate(); err != nil {
		return nil, errors.Wrap(err, "model: checkpoint config")
	}
	m := &Model{b: b, cfg: cfg, opts: opts}
	m.L, m.C, m.NH = cfg.NumHiddenLayers, cfg.HiddenSize, cfg.NumAttentionHeads
	m.F, m.V, m.P, m.TV = cfg.IntermediateSize, cfg.VocabSize, cfg.MaxPositionEmbeddings, cfg.TypeVocabSize
	if m.L <= 0 || m.C <= 0 || m.NH <= 0 || m.F <= 0 || m.V <= 0 || m.P <= 0 || m.TV <= 0 {
		return nil, fmt.Errorf("model: config has a non-positive size (layers %d, hidden %d, heads %d, intermediate %d, vocab %d, positions %d, type vocab %d)",
			m.L, m.C, m.NH, m.F, m.V, m.P, m.TV)
	}
	if m.C%m.NH != 0 {
		return nil, fmt.Errorf("model: config hidden_size %d is not a multiple of num_attention_heads %d", m.C, m.NH)
	}
	m.HS = m.C / m.NH
	if cfg.HiddenAct != "gelu" && cfg.HiddenAct != "" {
		return nil, fmt.Errorf("model: config hidden_act %q is not supported (only \"gelu\", the exact erf form)", cfg.HiddenAct)
	}
	m.eps = float32(cfg.LayerNormEps)
	m.pHidden, m.pAttn = float32(cfg.HiddenDropoutProb), float32(cfg.AttentionProbsDropoutProb)
	m.pHead = m.pHidden // BertForSequenceClassification: classifier_dropout, else hidden_dropout_prob
	if cfg.ClassifierDropout != nil {
		m.pHead = float32(*cfg.ClassifierDropout)
	}
	m.actDT = b.FrozenDType()

	m.maxB, m.maxT = opts.MaxBatch, opts.MaxSeq
	if m.maxB == 0 {
		m.maxB = 32
	}
	if m.maxT == 0 {
		m.maxT = min(128, m.P)
	}
	if m.maxB < 0 || m.maxT < 0 || m.maxT > m.P {
		return nil, fmt.Errorf("model: MaxBatch %d and MaxSeq %d must be positive and MaxSeq <= max_position_embeddings %d", m.maxB, m.maxT, m.P)
	}
	switch opts.Head.Kind {
	case HeadClassification:
		m.numLabels = opts.Head.NumLabels
		if m.numLabels < 2 {
			return nil, fmt.Errorf("model: classification head needs NumLabels >= 2, got %d", m.numLabels)
		}
	case HeadRegression:
		m.numLabels = 1
		if opts.Head.NumLabels > 1 {
			return nil, fmt.Errorf("model: regression head has one output, got NumLabels %d", opts.Head.NumLabels)
		}
	default:
		return nil, fmt.Errorf("model: unknown head kind %q (want %q or %q)", opts.Head.Kind, HeadClassification, HeadRegression)
	}
	switch m.pooling = opts.Head.Pooling; m.pooling {
	case "":
		m.pooling = PoolingPooler
	case PoolingPooler, PoolingCLS, PoolingMean:
	default:
		return nil, fmt.Errorf("model: unknown pooling %q (want %q, %q or %q)", opts.Head.Pooling, PoolingPooler, PoolingCLS, PoolingMean)
	}
	if opts.Adapter != nil {
		if err := opts.Adapter.validate(m.L); err != nil {
			return nil, err
		}
	}

	groups, err := m.plan(ck)
	if err != nil {
		return nil, err
	}
	if err := m.allocateParams(groups); err != nil {
		m.Free()
		return nil, err
	}
	m.bind(groups)
	if err := m.allocateActivations(); err != nil {
		m.Free()
		return nil, err
	}
	return m, nil
}

// Config returns the encoder configuration.
func (m *Model) Config() Config { return m.cfg }

// Backend returns the backend the model lives on.
func (m *Model) Backend() backend.Backend { return m.b }

// NumLabels is the width of the head's output.
func (m *Model) NumLabels() int { return m.numLabels }

// Free releases every buffer. The model must not be used afterwards.
func (m *Model) Free() {
	for _, t := range m.arenas {
		m.b.Free(t)
	}
	m.arenas = nil
}

// plan lists every tensor with its initial values and trainability, grouped
// for storage (fused Q/K/V per layer).
func (m *Model) plan(ck *Checkpoint) ([]*paramGroup, error) {
	C, F := m.C, m.F
	userTrain := m.opts.Trainable
	if userTrain == nil {
		userTrain = func(string) bool { return false }
	}
	var groups []*paramGroup
	var firstErr error
	fromCk := func(name string, layer, stage int, shape ...int) *paramSpec {
		data, err := checkpointTensor(ck, name, shape...)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		return &paramSpec{name: name, shape: shape, layer: layer, stage: stage, data: data, trainable: userTrain(name)}
	}
	single := func(s ...*paramSpec) {
		for _, x := range s {
			groups = append(groups, &paramGroup{specs: []*paramSpec{x}})
		}
	}
	e := layerEmbedding
	single(
		fromCk("embeddings.word_embeddings.weight", e, 0, m.V, C),
		fromCk("embeddings.position_embeddings.weight", e, 0, m.P, C),
		fromCk("embeddings.token_type_embeddings.weight", e, 0, m.TV, C),
		fromCk("embeddings.LayerNorm.weight", e, 0, C),
		fromCk("embeddings.LayerNorm.bias", e, 0, C),
	)
	for l := 0; l < m.L; l++ {
		pre := fmt.Sprintf("encoder.layer.%d.", l)
		var w, bias []*paramSpec
		for _, qkv := range []string{"query", "key", "value"} {
			n := pre + "attention.self." + qkv
			w = append(w, fromCk(n+".weight", l, stageQKV, C, C))
			bias = append(bias, fromCk(n+".bias", l, stageQKV, C))
		}
		groups = append(groups, &paramGroup{specs: w}, &paramGroup{specs: bias})
		single(
			fromCk(pre+"attention.output.dense.weight", l, stageAttnOut, C, C),
			fromCk(pre+"attention.output.dense.bias", l, stageAttnOut, C),
		)
		if a := m.opts.Adapter; a != nil && a.Attention && a.inLayer(l) {
			single(m.adapterSpecs(l, false)...)
		}
		single(
			fromCk(pre+"attention.output.LayerNorm.weight", l, stageLN1, C),
			fromCk(pre+"attention.output.LayerNorm.bias", l, stageLN1, C),
			fromCk(pre+"intermediate.dense.weight", l, stageInter, F, C),
			fromCk(pre+"intermediate.dense.bias", l, stageInter, F),
			fromCk(pre+"output.dense.weight", l, stageOut, C, F),
			fromCk(pre+"output.dense.bias", l, stageOut, C),
		)
		if a := m.opts.Adapter; a != nil && a.FFN && a.inLayer(l) {
			single(m.adapterSpecs(l, true)...)
		}
		single(
			fromCk(pre+"output.LayerNorm.weight", l, stageLN2, C),
			fromCk(pre+"output.LayerNorm.bias", l, stageLN2, C),
		)
	}
	// Pooler (pooling "pooler" only): from the checkpoint when it has one
	// (trainability as asked), otherwise created N(0, 0.02²) with zero bias (HF's _init_weights) and
	// trainable, as part of the head (checkpoints saved from a BertModel built
	// without a pooling layer ship none).
	switch {
	case m.pooling != PoolingPooler:
		// No pooler in the model.
	case ck.HasPooler:
		single(
			fromCk("pooler.dense.weight", m.L, stagePooler, C, C),
			fromCk("pooler.dense.bias", m.L, stagePooler, C),
		)
	default:
		w := make([]float32, C*C)
		normal(w, adapterInitStd, streamSeed(m.opts.Seed, "pooler.dense.weight"))
		single(
			&paramSpec{name: "pooler.dense.weight", shape: []int{C, C}, layer: m.L, stage: stagePooler, data: w, trainable: true},
			&paramSpec{name: "pooler.dense.bias", shape: []int{C}, layer: m.L, stage: stagePooler, data: make([]float32, C), trainable: true},
		)
	}
	// Head: HF BertForSequenceClassification's "classifier", N(0, 0.02²), bias 0.
	hw := make([]float32, m.numLabels*C)
	normal(hw, adapterInitStd, streamSeed(m.opts.Seed, "classifier.weight"))
	single(
		&paramSpec{name: "classifier.weight", shape: []int{m.numLabels, C}, layer: m.L, stage: stageHead, data: hw, trainable: true},
		&paramSpec{name: "classifier.bias", shape: []int{m.numLabels}, layer: m.L, stage: stageHead, data: make([]float32, m.numLabels), trainable: true},
	)
	if firstErr != nil {
		return nil, firstErr
	}
	return groups, nil
}

// adapterSpecs creates one adapter's tensors, trainable unless
// Options.Trainable says otherwise (nil Trainable: trainable).
func (m *Model) adapterSpecs(l int, ffn bool) []*paramSpec {
	specs := adapterSpecs(m.opts.Adapter, l, ffn, m.C)
	for _, s := range specs {
		s.trainable = m.opts.Trainable == nil || m.opts.Trainable(s.name)
	}
	return specs
}

// bind points the typed layer structs at the registry's tensors and finds
// the lowest trainable tensor.
func (m *Model) bind(groups []*paramGroup) {
	get := func(name string) *Param {
		p := m.byName[name]
		if p == nil {
			panic("model: bind: no parameter " + name)
		}
		return p
	}
	m.emb = embeddingParams{
		word: get("embeddings.word_embeddings.weight"),
		pos:  get("embeddings.position_embeddings.weight"),
		typ:  get("embeddings.token_type_embeddings.weight"),
		ln:   lnOf(get("embeddings.LayerNorm.weight"), get("embeddings.LayerNorm.bias")),
	}
	m.layers = make([]layerParams, m.L)
	for _, g := range groups {
		s := g.specs[0]
		if len(g.specs) == 3 && s.stage == stageQKV {
			lp := &m.layers[s.layer]
			if len(s.shape) == 2 {
				lp.qkvW, lp.qkvDW = g.t, g.grad
				for i, p := range g.params {
					lp.qkvPartDW[i] = p.Grad
				}
			} else {
				lp.qkvB, lp.qkvDB = g.t, g.grad
				for i, p := range g.params {
					lp.qkvPartDB[i] = p.Grad
				}
			}
		}
	}
	for l := range m.layers {
		lp := &m.layers[l]
		pre := fmt.Sprintf("encoder.layer.%d.", l)
		lp.qkvTrain = lp.qkvPartDW[0] != nil || lp.qkvPartDW[1] != nil || lp.qkvPartDW[2] != nil ||
			lp.qkvPartDB[0] != nil || lp.qkvPartDB[1] != nil || lp.qkvPartDB[2] != nil
		lp.attnOut = denseOf(get(pre+"attention.output.dense.weight"), get(pre+"attention.output.dense.bias"))
		lp.ln1 = lnOf(get(pre+"attention.output.LayerNorm.weight"), get(pre+"attention.output.LayerNorm.bias"))
		lp.inter = denseOf(get(pre+"intermediate.dense.weight"), get(pre+"intermediate.dense.bias"))
		lp.out = denseOf(get(pre+"output.dense.weight"), get(pre+"output.dense.bias"))
		lp.ln2 = lnOf(get(pre+"output.LayerNorm.weight"), get(pre+"output.LayerNorm.bias"))
		for i, ffn := range []bool{false, true} {
			ap := AdapterPrefix(l, ffn)
			if m.byName[ap+"down.weight"] == nil {
				continue
			}
			lp.adapter[i] = &adapterParams{
				down: denseOf(get(ap+"down.weight"), get(ap+"down.bias")),
				up:   denseOf(get(ap+"up.weight"), get(ap+"up.bias")),
			}
		}
	}
	if m.pooling == PoolingPooler {
		m.pooler = denseOf(get("pooler.dense.weight"), get("pooler.dense.bias"))
	}
	m.head = denseOf(get("classifier.weight"), get("classifier.bias"))

	m.lowestLayer, m.lowestStage = m.L+1, 0
	for _, p := range m.params {
		if !p.Trainable {
			continue
		}
		m.anyTrainable = true
		if p.layer < m.lowestLayer || (p.layer == m.lowestLayer && p.stage < m.lowestStage) {
			m.lowestLayer, m.lowestStage = p.layer, p.stage
		}
	}
}

// dense is a linear layer Y = X·Wᵀ + b with W (out, in); dW, dB nil when frozen.
type dense struct{ W, B, dW, dB backend.Tensor }

func denseOf(w, b *Param) dense { return dense{W: w.T, B: b.T, dW: w.Grad, dB: b.Grad} }

// layerNorm holds a LayerNorm's weight and bias (C) and their gradients.
type layerNorm struct{ W, B, dW, dB backend.Tensor }

func lnOf(w, b *Param) layerNorm { return layerNorm{W: w.T, B: b.T, dW: w.Grad, dB: b.Grad} }

func (d dense) trainable() bool     { return d.dW != nil || d.dB != nil }
func (n layerNorm) trainable() bool { return n.dW != nil || n.dB != nil }

// wrap adds the model's context to a backend error.
func wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return errors.Wrapf(err, "model: "+format, args...)
}
