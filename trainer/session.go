package trainer

import (
	"fmt"
	"runtime/debug"

	"github.com/houlsby/adapters/adapter"
	"github.com/houlsby/adapters/backend"
	"github.com/houlsby/adapters/model"
	"github.com/houlsby/adapters/model/tokenizer"
)

// Session is a loaded base model, tokenizer and the encoded data of a run.
type Session struct {
	Cfg *Config
	// Ckpt is the base model. Train releases its host copy of the tensors
	// once the model holds them (model.Checkpoint.Release); whatever needs
	// them again (model.New, the exporters) reloads them.
	Ckpt   *model.Checkpoint
	Tok    *tokenizer.Tokenizer
	Splits *Splits
	// Enc holds the tokenized examples of each split (nil when absent).
	EncTrain, EncVal, EncTest []Encoded
}

// Open loads the checkpoint, the tokenizer and the data of cfg and
// tokenizes every example.
func Open(cfg *Config) (*Session, error) { return OpenSplits(cfg, nil) }

// OpenSplits is Open with the data already loaded (sp == nil: load it).
func OpenSplits(cfg *Config, sp *Splits) (*Session, error) {
	ck, err := model.LoadCheckpoint(cfg.Model.Dir)
	if err != nil {
		return nil, err
	}
	if cfg.Model.MaxLength > ck.Config.MaxPositionEmbeddings {
		return nil, fmt.Errorf("model.max_length = %d exceeds the model's max_position_embeddings %d", cfg.Model.MaxLength, ck.Config.MaxPositionEmbeddings)
	}
	tok, err := tokenizer.Load(cfg.Model.Dir)
	if err != nil {
		return nil, err
	}
	if sp == nil {
		if sp, err = LoadSplits(cfg); err != nil {
			return nil, err
		}
	}
	s := &Session{Cfg: cfg, Ckpt: ck, Tok: tok, Splits: sp}
	s.EncTrain = Tokenize(tok, sp.Train, cfg.Model.MaxLength)
	if sp.Validation != nil {
		s.EncVal = Tokenize(tok, sp.Validation, cfg.Model.MaxLength)
	}
	if sp.Test != nil {
		s.EncTest = Tokenize(tok, sp.Test, cfg.Model.MaxLength)
	}
	return s, nil
}

// Tokenize encodes every example of ds, truncated to maxLen tokens.
func Tokenize(tok *tokenizer.Tokenizer, ds *Dataset, maxLen int) []Encoded {
	out := make([]Encoded, len(ds.Examples))
	opt := tokenizer.Options{MaxLength: maxLen}
	for i, ex := range ds.Examples {
		var e tokenizer.Encoding
		if ex.Pair != "" {
			e = tok.EncodePair(ex.Text, ex.Pair, opt)
		} else {
			e = tok.Encode(ex.Text, opt)
		}
		out[i] = Encoded{IDs: e.IDs, TypeIDs: e.TypeIDs}
	}
	return out
}

// NumLabels is the head's output count.
func (s *Session) NumLabels() int {
	if s.Splits.Labels == nil {
		return 1
	}
	return s.Splits.Labels.Len()
}

// AdapterFile describes the run's trained tensors (without the tensors).
func (s *Session) AdapterFile() *adapter.File {
	c := s.Cfg
	var labels []string
	if s.Splits.Labels != nil {
		labels = s.Splits.Labels.Names
	}
	return adapter.NewFile(s.Ckpt, c.AdapterStrategy(), &c.Adapter, adapter.Head{Kind: c.Model.Head, NumLabels: s.NumLabels()}, labels)
}

// NewModel builds the encoder an adapter file f describes on be, sized for
// batches of maxB × maxT, initialised from seed (created tensors), with the
// file's strategy deciding what trains. Tensors of f, if any, are uploaded.
func NewModel(be backend.Backend, ck *model.Checkpoint, f *adapter.File, maxB, maxT int, seed uint64) (*model.Model, error) {
	return NewModelOpts(be, ck, f, model.Options{MaxBatch: maxB, MaxSeq: maxT, Seed: seed})
}

// NewModelOpts is NewModel with the model options o (sizes, seed, layout,
// NoFrozenDropout); what trains, the adapters and the head come from f.
func NewModelOpts(be backend.Backend, ck *model.Checkpoint, f *adapter.File, o model.Options) (*model.Model, error) {
	seed := o.Seed
	if f.Base != adapter.BaseOf(ck.Config) || f.BaseHasPooler != ck.HasPooler {
		return nil, fmt.Errorf("the adapter was made for a base model of another shape (%+v, pooler %v) than %s (%+v, pooler %v)",
			f.Base, f.BaseHasPooler, ck.Dir, adapter.BaseOf(ck.Config), ck.HasPooler)
	}
	p, r, err := f.Plan().Resolve()
	if err != nil {
		return nil, err
	}
	if p.Strategy.UsesAdapters() && f.Adapter == nil {
		return nil, fmt.Errorf("strategy adapters without an adapter config")
	}
	opts := o
	opts.Trainable, opts.Head, opts.Adapter = p.Strategy.Trainable, f.Head.Options(), nil
	if r != nil {
		r.Seed = seed
		opts.Adapter = r
	}
	m, err := model.New(be, ck, opts)
	if err != nil {
		return nil, err
	}
	for _, t := range f.Tensors {
		p := m.Param(t.Name)
		if p == nil {
			m.Free()
			return nil, fmt.Errorf("trainer: the model has no tensor %s", t.Name)
		}
		if err := be.Upload(p.T, t.Data); err != nil {
			m.Free()
			return nil, fmt.Errorf("uploading %s: %w", t.Name, err)
		}
	}
	return m, nil
}

// TrainedFile returns a copy of f holding the current values of m's
// trainable tensors: what adapter.Save writes after training.
func TrainedFile(m *model.Model, f *adapter.File) (*adapter.File, error) {
	be := m.Backend()
	out := *f
	out.Tensors = nil
	for _, p := range m.TrainableParams() {
		d := make([]float32, p.Len())
		if err := be.Download(d, p.T); err != nil {
			return nil, fmt.Errorf("downloading %s: %w", p.Name, err)
		}
		out.Tensors = append(out.Tensors, adapter.Tensor{Name: p.Name, Shape: append([]int(nil), p.Shape...), Data: d})
	}
	return &out, nil
}

// ReleaseHostWeights drops the host copy of the base model's tensors now
// that a model holds them, and hands the memory back to the system, so the
// activations a training run touches next do not come on top of it (the
// base model's size off the peak resident memory: 0.41 GiB for BERT-base).
func ReleaseHostWeights(ck *model.Checkpoint) {
	ck.Release()
	debug.FreeOSMemory()
}
