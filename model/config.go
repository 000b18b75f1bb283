// Package model holds the BERT side of the project: the configuration
// (mirroring Hugging Face config.json), checkpoint loading from safetensors
// with the Hugging Face tensor names, the tokenizer and the encoder written
// against the backend contract.
package model

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
)

// Config mirrors a Hugging Face BERT config.json (transformers BertConfig).
// Fields absent from the file keep BertConfig's defaults (DefaultConfig);
// keys this package does not know are ignored, as transformers does.
type Config struct {
	ModelType                 string   `json:"model_type"`
	Architectures             []string `json:"architectures,omitempty"`
	VocabSize                 int      `json:"vocab_size"`
	HiddenSize                int      `json:"hidden_size"`
	NumHiddenLayers           int      `json:"num_hidden_layers"`
	NumAttentionHeads         int      `json:"num_attention_heads"`
	IntermediateSize          int      `json:"intermediate_size"`
	HiddenAct                 string   `json:"hidden_act"`
	HiddenDropoutProb         float64  `json:"hidden_dropout_prob"`
	AttentionProbsDropoutProb float64  `json:"attention_probs_dropout_prob"`
	// ClassifierDropout is BertForSequenceClassification's dropout before the
	// classifier; nil (JSON null, the default) means "use HiddenDropoutProb".
	ClassifierDropout     *float64 `json:"classifier_dropout"`
	MaxPositionEmbeddings int      `json:"max_position_embeddings"`
	TypeVocabSize         int      `json:"type_vocab_size"`
	InitializerRange      float64  `json:"initializer_range"`
	LayerNormEps          float64  `json:"layer_norm_eps"`
	PadTokenID            int      `json:"pad_token_id"`
	PositionEmbeddingType string   `json:"position_embedding_type"`
	// ID2Label and Label2ID are the label maps of a fine-tuned checkpoint; keys
	// of ID2Label are decimal class indices, as in config.json.
	ID2Label map[string]string `json:"id2label,omitempty"`
	Label2ID map[string]int    `json:"label2id,omitempty"`
}

// DefaultConfig returns transformers' BertConfig defaults (BERT-base,
// uncased): what a config.json key that is absent means.
func DefaultConfig() Config {
	return Config{
		ModelType:                 "bert",
		VocabSize:                 30522,
		HiddenSize:                768,
		NumHiddenLayers:           12,
		NumAttentionHeads:         12,
		IntermediateSize:          3072,
		HiddenAct:                 "gelu",
		HiddenDropoutProb:         0.1,
		AttentionProbsDropoutProb: 0.1,
		MaxPositionEmbeddings:     512,
		TypeVocabSize:             2,
		InitializerRange:          0.02,
		LayerNormEps:              1e-12,
		PadTokenID:                0,
		PositionEmbeddingType:     "absolute",
	}
}

// HeadSize is HiddenSize / NumAttentionHeads (HS).
func (c Config) HeadSize() int { return c.HiddenSize / c.NumAttentionHeads }

// LoadConfig reads and validates a BERT config.json. Errors name the file and
// the field.
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("model: config: %w", err)
	}
	return ParseConfig(path, b)
}

// ParseConfig decodes and validates config.json bytes; name (usually the
// path) is used in error messages.
func ParseConfig(name string, data []byte) (Config, error) {
	c := DefaultConfig()
	if err := json.Unmarshal(data, &c); err != nil {
		if te, ok := err.(*json.UnmarshalTypeError); ok {
			return Config{}, fmt.Errorf("model: %s: field %s: %s is not a valid %s", name, te.Field, te.Value, te.Type)
		}
		return Config{}, fmt.Errorf("model: %s: not a JSON config: %w", name, err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("model: %s: %w", name, err)
	}
	return c, nil
}

// Validate checks that c describes a model this package implements: a BERT
// encoder with absolute positions and exact (erf) GELU. The error names the
// field (its config.json key).
func (c Config) Validate() error {
	if c.ModelType != "bert" {
		return fmt.Errorf("field model_type: %q is not supported (only \"bert\"; RoBERTa-style models offset positions differently)", c.ModelType)
	}
	for _, f := range []struct {
		key string
		v   int
	}{
		{"vocab_size", c.VocabSize},
		{"hidden_size", c.HiddenSize},
		{"num_hidden_layers", c.NumHiddenLayers},
		{"num_attention_heads", c.NumAttentionHeads},
		{"intermediate_size", c.IntermediateSize},
		{"max_position_embeddings", c.MaxPositionEmbeddings},
		{"type_vocab_size", c.TypeVocabSize},
	} {
		if f.v <= 0 {
			return fmt.Errorf("field %s: %d, must be positive", f.key, f.v)
		}
	}
	if c.HiddenSize%c.NumAttentionHeads != 0 {
		return fmt.Errorf("field hidden_size: %d is not divisible by num_attention_heads %d", c.HiddenSize, c.NumAttentionHeads)
	}
	if c.HiddenAct != "gelu" {
		// "gelu_new"/"gelu_pytorch_tanh" are the tanh approximation, which
		// differs from erf GELU by up to ~1e-3 and is not implemented.
		return fmt.Errorf("field hidden_act: %q is not supported (only \"gelu\", the exact erf form, is implemented)", c.HiddenAct)
	}
	if c.PositionEmbeddingType != "absolute" {
		return fmt.Errorf("field position_embedding_type: %q is not supported (only \"absolute\")", c.PositionEmbeddingType)
	}
	for _, f := range []struct {
		key string
		v   float64
	}{
		{"hidden_dropout_prob", c.HiddenDropoutProb},
		{"attention_probs_dropout_prob", c.AttentionProbsDropoutProb},
	} {
		if !(f.v >= 0 && f.v < 1) {
			return fmt.Errorf("field %s: %v, must be in [0, 1)", f.key, f.v)
		}
	}
	if c.ClassifierDropout != nil && !(*c.ClassifierDropout >= 0 && *c.ClassifierDropout < 1) {
		return fmt.Errorf("field classifier_dropout: %v, must be in [0, 1) or null", *c.ClassifierDropout)
	}
	if !(c.LayerNormEps > 0) || math.IsInf(c.LayerNormEps, 0) {
		return fmt.Errorf("field layer_norm_eps: %v, must be positive and finite", c.LayerNormEps)
	}
	if c.PadTokenID < 0 || c.PadTokenID >= c.VocabSize {
		return fmt.Errorf("field pad_token_id: %d is outside the vocabulary [0, %d)", c.PadTokenID, c.VocabSize)
	}
	if _, err := c.Labels(); err != nil {
		return err
	}
	return nil
}

// Labels returns the class names of a fine-tuned checkpoint in index order,
// from id2label (keys must be 0..n-1); nil when the config has no label map.
// label2id, when present, must be its inverse.
func (c Config) Labels() ([]string, error) {
	if len(c.ID2Label) == 0 {
		if len(c.Label2ID) != 0 {
			return nil, fmt.Errorf("field label2id: present without id2label")
		}
		return nil, nil
	}
	labels := make([]string, len(c.ID2Label))
	keys := make([]string, 0, len(c.ID2Label))
	for k := range c.ID2Label {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		i, err := strconv.Atoi(k)
		if err != nil || i < 0 || i >= len(labels) || strconv.Itoa(i) != k {
			return nil, fmt.Errorf("field id2label: key %q is not a class index in [0, %d)", k, len(labels))
		}
		labels[i] = c.ID2Label[k]
	}
	if len(c.Label2ID) != 0 {
		if len(c.Label2ID) != len(labels) {
			return nil, fmt.Errorf("field label2id: %d entries, id2label has %d", len(c.Label2ID), len(labels))
		}
		for i, l := range labels {
			if j, ok := c.Label2ID[l]; !ok || j != i {
				return nil, fmt.Errorf("field label2id: %q maps to %d, id2label says %d", l, j, i)
			}
		}
	}
	return labels, nil
}
