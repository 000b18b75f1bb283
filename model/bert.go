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
	// BERT's tanh dense on [CLS]), PoolingCLS ([CLS] hidden state),
	// PoolingMean (masked mean, sentence-transformers style) or
	// PoolingCLSDense (a new dense + tanh on [CLS], AdapterHub's default
	// classification head). Without the pooler, no pooler tensors are in
	// the registry (the checkpoint's, if any, are not uploaded), as in
	// adapter.Tensors.
	Pooling string
}

// Poolings (the strings of adapter.HeadPooler, HeadCLS, HeadMean,
// HeadCLSDense).
const (
	PoolingPooler = "pooler"
	PoolingCLS    = "cls"
	PoolingMean   = "mean"
	// PoolingCLSDense is AdapterHub's default classification head
	// (ClassificationHead with layers=2, activation tanh, use_pooler=False):
	// dropout, dense "head.dense" (C, C, created like the classifier),
	// tanh, dropout, classifier, on the [CLS] hidden state. It has the
	// pooler's shape but its own, always-trained tensors, and a dropout
	// before the dense that BERT's pooler head does not have.
	PoolingCLSDense = "cls_dense"
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
	// NoPacking keeps the padded layout even on a backend with
	// backend.PackedAttention (see Model.Packed).
	NoPacking bool
	// NoFrozenDropout turns dropout off, even when training, in the
	// embeddings and every layer below the lowest trainable tensor, so
	// their outputs depend on the input alone and can be cached (see
	// CachePoint). It changes training: less dropout.
	NoFrozenDropout bool
	// KeepFFNActivations keeps every trainable layer's FFN activations for
	// the backward. By default a layer whose FFN weights are frozen (adapter
	// and LayerNorm training) keeps neither its GELU input nor its output
	// (8·C floats a token) and its backward recomputes the GELU input (one
	// GEMM, identical results): less memory for about a tenth more time a
	// training step.
	KeepFFNActivations bool
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
	trainLen                           int // elements of the trainable and gradient arenas

	emb     embeddingParams
	layers  []layerParams
	poolerW dense // pooler.dense (C, C), or head.dense with PoolingCLSDense
	head    dense // classifier (V, C)

	// The lowest trainable tensor: backward runs down to it and no further.
	anyTrainable             bool
	lowestLayer, lowestStage int

	acts    []*layerActs // per layer; layers below lowestLayer share one set
	embActs embActs
	headAct headActs
	io      ioTensors
	grads   gradScratch

	// packed: batches run in the packed layout (see Packed).
	packed bool

	// tasks, when set, applies per-task adapters and LayerNorms at every
	// site (Multi: this model is then its shared, frozen backbone).
	tasks taskSites

	views map[shape]*stepViews // exact-size I/O views per batch shape

	host struct {
		ids, types, pos []int32   // (maxB·maxT) the step's token, type and position ids as uploaded
		mask            []int32   // (maxB·maxT) the step's mask (B, T)
		zeros           []int32   // (maxB·maxT) default type ids
		starts          []int32   // (maxB+1) packed layout: first row of each sequence
		loss            []float32 // (maxB)
		logits          []float32 // (maxB·V)
		poolW           []float32 // (maxB·maxT) pooling weights: (B, T) padded, (B, N) packed
		hidden          []float32 // (maxB·maxT·C) Hidden's unpacking buffer, made on first use
	}
	hiddenPad backend.Tensor // (maxB·maxT, C) Hidden's padded copy, made on first use

	// State of the last Forward, for Backward.
	step struct {
		done, hasLoss, train bool
		fromCache            bool // ForwardFrom: the layers below the cache point did not run
		sh                   shape
		views                *stepViews // the batch's exact-size views (set at the start of forward)
		seed                 uint64
	}
}

// shape is the layout of one batch: B sequences, padded length T, and N
// rows of activations: B·T in the padded layout, the number of real tokens
// in the packed one.
type shape struct{ B, T, N int }

// New builds a model from a checkpoint on b: it decides trainability,
// creates adapters, pooler (when the checkpoint has none) and head, uploads
// every tensor once and allocates all buffers.
func New(b backend.Backend, ck *Checkpoint, opts Options) (*Model, error) {
	if b == nil || ck == nil {
		panic("model: New needs a backend and a checkpoint")
	}
	if err := ck.EnsureTensors(); err != nil {
		return nil, err
	}
	cfg := ck.Config
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("model: checkpoint config: %w", err)
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
	case PoolingPooler, PoolingCLS, PoolingMean, PoolingCLSDense:
	default:
		return nil, fmt.Errorf("model: unknown pooling %q (want %q, %q, %q or %q)", opts.Head.Pooling, PoolingPooler, PoolingCLS, PoolingMean, PoolingCLSDense)
	}
	if opts.Adapter != nil {
		if err := opts.Adapter.validate(m.L); err != nil {
			return nil, err
		}
	}
	if _, ok := b.(backend.PackedAttention); ok && !opts.NoPacking {
		m.packed = true
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

// Packed reports whether the model runs batches packed: the real tokens of
// all sequences back to back, so every GEMM, LayerNorm and pointwise op runs
// on real tokens only and attention keeps each sequence's bounds
// (backend.PackedAttention). It does when the backend has that capability
// (unless Options.NoPacking); otherwise batches keep their padded (B, T)
// layout. Both layouts give the same results up to float32 rounding in the
// attention; with dropout on, hidden-state dropout masks are drawn over
// different element indices (attention dropout masks are the same).
func (m *Model) Packed() bool { return m.packed }

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

// plan lists every tensor (Tensors) with its initial values and
// trainability, grouped for storage: the Q, K, V weights of a layer form one
// (3C, C) group and their biases one (3C) group, so one GEMM computes all
// three; every other tensor is a group of its own. Checkpoint tensors carry
// the checkpoint's values; adapters, a created pooler and the classifier
// their initialisers' (adapterInit, headInit).
func (m *Model) plan(ck *Checkpoint) ([]*paramGroup, error) {
	trainable := m.opts.Trainable
	head := m.opts.Head
	head.Pooling = m.pooling
	var groups []*paramGroup
	var qkvW, qkvB *paramGroup // the current layer's Q/K/V groups
	qkvLayer := -1
	for _, t := range Tensors(m.cfg, ck.HasPooler, m.opts.Adapter, &head) {
		s := &paramSpec{name: t.Name, shape: t.Shape, layer: t.layer, stage: t.stage}
		switch t.Category {
		case Backbone:
			data, err := checkpointTensor(ck, t.Name, t.Shape...)
			if err != nil {
				return nil, err
			}
			s.data = data
			s.trainable = trainable != nil && trainable(t.Name)
		case AdapterTensor:
			s.data = adapterInit(m.opts.Adapter, t)
			s.trainable = trainable == nil || trainable(t.Name)
		case HeadTensor:
			// New tensors (a pooler the checkpoint lacks, the classifier)
			// always train.
			s.data = headInit(t, m.opts.Seed)
			s.trainable = true
		}
		if t.stage == stageQKV && t.layer >= 0 && t.layer < m.L {
			if t.layer != qkvLayer {
				qkvW, qkvB, qkvLayer = &paramGroup{}, &paramGroup{}, t.layer
				groups = append(groups, qkvW, qkvB)
			}
			g := qkvB
			if len(t.Shape) == 2 {
				g = qkvW
			}
			g.specs = append(g.specs, s)
			continue
		}
		groups = append(groups, &paramGroup{specs: []*paramSpec{s}})
	}
	return groups, nil
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
		word: get(NameWordEmbeddings),
		pos:  get(NamePositionEmbeddings),
		typ:  get(NameTokenTypeEmbeddings),
		ln:   lnOf(get(NameEmbeddingsLNWeight), get(NameEmbeddingsLNBias)),
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
		lp.qkvTrain = lp.qkvPartDW[0] != nil || lp.qkvPartDW[1] != nil || lp.qkvPartDW[2] != nil ||
			lp.qkvPartDB[0] != nil || lp.qkvPartDB[1] != nil || lp.qkvPartDB[2] != nil
		lp.attnOut = denseOf(get(LayerTensorName(l, SuffixAttnOutWeight)), get(LayerTensorName(l, SuffixAttnOutBias)))
		lp.ln1 = lnOf(get(LayerTensorName(l, SuffixAttnLNWeight)), get(LayerTensorName(l, SuffixAttnLNBias)))
		lp.inter = denseOf(get(LayerTensorName(l, SuffixInterWeight)), get(LayerTensorName(l, SuffixInterBias)))
		lp.out = denseOf(get(LayerTensorName(l, SuffixOutputWeight)), get(LayerTensorName(l, SuffixOutputBias)))
		lp.ln2 = lnOf(get(LayerTensorName(l, SuffixOutputLNWeight)), get(LayerTensorName(l, SuffixOutputLNBias)))
		for i, ffn := range []bool{false, true} {
			ap := AdapterPrefix(l, ffn)
			if m.byName[ap+AdapterDownWeight] == nil {
				continue
			}
			lp.adapter[i] = &adapterParams{
				down: denseOf(get(ap+AdapterDownWeight), get(ap+AdapterDownBias)),
				up:   denseOf(get(ap+AdapterUpWeight), get(ap+AdapterUpBias)),
			}
		}
	}
	switch m.pooling {
	case PoolingPooler:
		m.poolerW = denseOf(get(NamePoolerWeight), get(NamePoolerBias))
	case PoolingCLSDense:
		// The head's dense layer computes like the pooler (tanh(W·x + b)),
		// so it takes the pooler's slot; its tensors are its own.
		m.poolerW = denseOf(get(NameHeadDenseWeight), get(NameHeadDenseBias))
	}
	m.head = denseOf(get(NameClassifierWeight), get(NameClassifierBias))

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
	return fmt.Errorf("model: %s: %w", fmt.Sprintf(format, args...), err)
}
