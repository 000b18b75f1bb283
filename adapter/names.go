package adapter

import (
	"fmt"
	"strconv"
	"strings"
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
	HeadPooler = "pooler"
	// HeadCLS puts the classifier straight on the [CLS] hidden state.
	HeadCLS = "cls"
	// HeadMean puts the classifier on the masked mean of the hidden states
	// (the sentence-transformers pooling of all-MiniLM-L6-v2).
	HeadMean = "mean"
)

// Head describes the task head. NumLabels = 1 means regression (STS-B).
type Head struct {
	Kind      string `json:"kind" toml:"kind"`
	NumLabels int    `json:"num_labels" toml:"num_labels"`
}

// Validate checks the kind and label count.
func (h Head) Validate() error {
	switch h.Kind {
	case HeadPooler, HeadCLS, HeadMean:
	default:
		return fmt.Errorf("head kind %q: want %s, %s or %s", h.Kind, HeadPooler, HeadCLS, HeadMean)
	}
	if h.NumLabels < 1 {
		return fmt.Errorf("head: %d labels, need at least 1 (1 = regression)", h.NumLabels)
	}
	return nil
}

// UsesPooler reports whether the head reads the pooler's output.
func (h Head) UsesPooler() bool { return h.Kind == HeadPooler }

// Category sorts tensors for parameter accounting.
type Category int

// Tensor categories.
const (
	// Backbone tensors come from the pretrained checkpoint.
	Backbone Category = iota
	// AdapterTensor tensors are the bottleneck adapters' weights and biases.
	AdapterTensor
	// HeadTensor tensors are the classifier and a pooler the checkpoint lacked.
	HeadTensor
)

// String names the category.
func (c Category) String() string {
	switch c {
	case Backbone:
		return "backbone"
	case AdapterTensor:
		return "adapter"
	case HeadTensor:
		return "head"
	}
	return fmt.Sprintf("Category(%d)", int(c))
}

// TensorSpec names one tensor of the adapted model.
type TensorSpec struct {
	Name     string
	Shape    []int
	Category Category
}

// Len is the number of elements.
func (t TensorSpec) Len() int64 {
	n := int64(1)
	for _, s := range t.Shape {
		n *= int64(s)
	}
	return n
}

// Adapter positions inside a layer, as they appear in tensor names.
const (
	// PosAttention is the adapter after the attention output projection.
	PosAttention = "attention.output"
	// PosFFN is the adapter after the feed-forward output projection.
	PosFFN = "output"
)

// AdapterName returns the name of one adapter tensor: pos is PosAttention or
// PosFFN, proj "down" or "up", kind "weight" or "bias".
func AdapterName(layer int, pos, proj, kind string) string {
	return "encoder.layer." + strconv.Itoa(layer) + "." + pos + ".adapter." + proj + "." + kind
}

// Tensors lists every tensor of the adapted model: the backbone (with the
// pooler only when withPooler, i.e. the checkpoint has one and the head uses
// it), the adapters of r (nil: none), and the head (a pooler is created when
// the head uses one and withPooler is false). The order is stable: embeddings,
// layers in order, pooler, classifier.
func Tensors(b Base, withPooler bool, r *Resolved, h Head) []TensorSpec {
	d, I := b.HiddenSize, b.IntermediateSize
	var out []TensorSpec
	add := func(cat Category, name string, shape ...int) {
		out = append(out, TensorSpec{Name: name, Shape: shape, Category: cat})
	}
	add(Backbone, "embeddings.word_embeddings.weight", b.VocabSize, d)
	add(Backbone, "embeddings.position_embeddings.weight", b.MaxPositionEmbeddings, d)
	add(Backbone, "embeddings.token_type_embeddings.weight", b.TypeVocabSize, d)
	add(Backbone, "embeddings.LayerNorm.weight", d)
	add(Backbone, "embeddings.LayerNorm.bias", d)
	adapted := map[int]bool{}
	if r != nil {
		for _, l := range r.Layers {
			adapted[l] = true
		}
	}
	adapterAt := func(l int, pos string) {
		add(AdapterTensor, AdapterName(l, pos, "down", "weight"), r.M, d)
		add(AdapterTensor, AdapterName(l, pos, "down", "bias"), r.M)
		add(AdapterTensor, AdapterName(l, pos, "up", "weight"), d, r.M)
		add(AdapterTensor, AdapterName(l, pos, "up", "bias"), d)
	}
	for l := 0; l < b.NumHiddenLayers; l++ {
		p := "encoder.layer." + strconv.Itoa(l) + "."
		for _, qkv := range []string{"query", "key", "value"} {
			add(Backbone, p+"attention.self."+qkv+".weight", d, d)
			add(Backbone, p+"attention.self."+qkv+".bias", d)
		}
		add(Backbone, p+"attention.output.dense.weight", d, d)
		add(Backbone, p+"attention.output.dense.bias", d)
		if adapted[l] && r.Attention {
			adapterAt(l, PosAttention)
		}
		add(Backbone, p+"attention.output.LayerNorm.weight", d)
		add(Backbone, p+"attention.output.LayerNorm.bias", d)
		add(Backbone, p+"intermediate.dense.weight", I, d)
		add(Backbone, p+"intermediate.dense.bias", I)
		add(Backbone, p+"output.dense.weight", d, I)
		add(Backbone, p+"output.dense.bias", d)
		if adapted[l] && r.FFN {
			adapterAt(l, PosFFN)
		}
		add(Backbone, p+"output.LayerNorm.weight", d)
		add(Backbone, p+"output.LayerNorm.bias", d)
	}
	if h.UsesPooler() {
		cat := HeadTensor
		if withPooler {
			cat = Backbone
		}
		add(cat, "pooler.dense.weight", d, d)
		add(cat, "pooler.dense.bias", d)
	}
	add(HeadTensor, "classifier.weight", h.NumLabels, d)
	add(HeadTensor, "classifier.bias", h.NumLabels)
	return out
}

// IsLayerNorm reports whether name is a LayerNorm weight or bias.
func IsLayerNorm(name string) bool { return strings.Contains(name, "LayerNorm.") }

// IsAdapter reports whether name is an adapter tensor.
func IsAdapter(name string) bool { return strings.Contains(name, ".adapter.") }

// IsPooler reports whether name belongs to the pooler.
func IsPooler(name string) bool { return strings.HasPrefix(name, "pooler.") }

// IsClassifier reports whether name belongs to the classifier.
func IsClassifier(name string) bool { return strings.HasPrefix(name, "classifier.") }

// IsBias reports whether name is a bias (including LayerNorm biases).
func IsBias(name string) bool { return strings.HasSuffix(name, ".bias") }

// NoDecay reports whether AdamW should skip weight decay for name: biases
// and LayerNorm parameters, as in BERT's original optimizer setup.
func NoDecay(name string) bool { return IsBias(name) || IsLayerNorm(name) }

// LayerOf returns the encoder layer index in name, or -1 for tensors outside
// the encoder layers (embeddings, pooler, classifier).
func LayerOf(name string) int {
	const pre = "encoder.layer."
	if !strings.HasPrefix(name, pre) {
		return -1
	}
	rest := name[len(pre):]
	i := strings.IndexByte(rest, '.')
	if i <= 0 {
		return -1
	}
	n, err := strconv.Atoi(rest[:i])
	if err != nil {
		return -1
	}
	return n
}
