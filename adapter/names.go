package adapter

import (
	"fmt"

	"github.com/houlsby/adapters/model"
)

// Base holds the essentials of a base model's config.json that decide tensor
// names and shapes. The json tags are Hugging Face's, so a config.json
// decodes straight into it, and adapter files store it in their metadata.
type Base struct {
	HiddenSize            int `json:"hidden_size"`
	NumHiddenLayers       int `json:"num_hidden_layers"`
	NumAttentionHeads     int `json:"num_attention_heads"`
	IntermediateSize      int `json:"intermediate_size"`
	VocabSize             int `json:"vocab_size"`
	MaxPositionEmbeddings int `json:"max_position_embeddings"`
	TypeVocabSize         int `json:"type_vocab_size"`
}

// Validate reports the first field that cannot describe a BERT encoder.
func (b Base) Validate() error {
	for _, f := range []struct {
		name string
		v    int
	}{
		{"hidden_size", b.HiddenSize}, {"num_hidden_layers", b.NumHiddenLayers},
		{"num_attention_heads", b.NumAttentionHeads}, {"intermediate_size", b.IntermediateSize},
		{"vocab_size", b.VocabSize}, {"max_position_embeddings", b.MaxPositionEmbeddings},
		{"type_vocab_size", b.TypeVocabSize},
	} {
		if f.v <= 0 {
			return fmt.Errorf("model config: %s = %d, must be positive", f.name, f.v)
		}
	}
	if b.HiddenSize%b.NumAttentionHeads != 0 {
		return fmt.Errorf("model config: hidden_size %d is not a multiple of num_attention_heads %d", b.HiddenSize, b.NumAttentionHeads)
	}
	return nil
}

// Head kinds. The head reads one vector per example and maps it to
// NumLabels outputs with "classifier.weight" (labels, d) and
// "classifier.bias" (labels).
const (
	// HeadPooler is BERT's sequence-classification head: the pooler
	// (tanh(W·h_[CLS] + b), "pooler.dense.*") then the classifier. A
	// checkpoint without a pooler gets a freshly initialised, trained one.
	HeadPooler = model.PoolingPooler
	// HeadCLS puts the classifier straight on the [CLS] hidden state.
	HeadCLS = model.PoolingCLS
	// HeadMean puts the classifier on the masked mean of the hidden states
	// (the sentence-transformers pooling of all-MiniLM-L6-v2).
	HeadMean = model.PoolingMean
	// HeadCLSDense is AdapterHub's default classification head: a new dense
	// layer ("head.dense.*") and tanh on the [CLS] hidden state, then the
	// classifier, with dropout before each linear layer. It trains with the
	// classifier whatever the strategy.
	HeadCLSDense = model.PoolingCLSDense
)

// HeadKinds lists the head kinds in the order --help shows them.
var HeadKinds = []string{HeadPooler, HeadCLS, HeadMean, HeadCLSDense}

// Head describes the task head. NumLabels = 1 means regression (STS-B).
type Head struct {
	Kind      string `json:"kind" toml:"kind"`
	NumLabels int    `json:"num_labels" toml:"num_labels"`
}

// Validate checks the kind and label count.
func (h Head) Validate() error {
	switch h.Kind {
	case HeadPooler, HeadCLS, HeadMean, HeadCLSDense:
	default:
		return fmt.Errorf("head kind %q: want %s, %s, %s or %s", h.Kind, HeadPooler, HeadCLS, HeadMean, HeadCLSDense)
	}
	if h.NumLabels < 1 {
		return fmt.Errorf("head: %d labels, need at least 1 (1 = regression)", h.NumLabels)
	}
	return nil
}

// UsesPooler reports whether the head reads the pooler's output.
func (h Head) UsesPooler() bool { return h.Kind == HeadPooler }

// BaseOf extracts the adapter-relevant shape of a model config.
func BaseOf(c model.Config) Base {
	return Base{
		HiddenSize: c.HiddenSize, NumHiddenLayers: c.NumHiddenLayers, NumAttentionHeads: c.NumAttentionHeads,
		IntermediateSize: c.IntermediateSize, VocabSize: c.VocabSize, MaxPositionEmbeddings: c.MaxPositionEmbeddings,
		TypeVocabSize: c.TypeVocabSize,
	}
}

// Config returns a model config with b's shape (and package model's
// defaults elsewhere), enough to list the tensors of the model b describes.
func (b Base) Config() model.Config {
	c := model.DefaultConfig()
	c.HiddenSize, c.NumHiddenLayers, c.NumAttentionHeads = b.HiddenSize, b.NumHiddenLayers, b.NumAttentionHeads
	c.IntermediateSize, c.VocabSize, c.MaxPositionEmbeddings, c.TypeVocabSize = b.IntermediateSize, b.VocabSize, b.MaxPositionEmbeddings, b.TypeVocabSize
	return c
}

// Options returns the model's head options for h: the pooling and, with one
// output, a regression head.
func (h Head) Options() model.HeadOptions {
	o := model.HeadOptions{Kind: model.HeadClassification, NumLabels: h.NumLabels, Pooling: h.Kind}
	if h.NumLabels == 1 {
		o.Kind = model.HeadRegression
	}
	return o
}
