package model

import (
	"fmt"
	"strconv"
	"strings"
)

// This file is the one place that spells tensor names. Everything else (the
// encoder's registry, checkpoint loading, the adapter package's strategies,
// accounting and file format, the trainer's weight-decay rule, the
// Hugging Face export) asks Tensors and the predicates below.
//
// Names are the Hugging Face BertModel state_dict keys without the "bert."
// prefix that task models (BertForSequenceClassification, ...) add; the
// adapters use the same scheme (AdapterPrefix) and the head is
// BertForSequenceClassification's "classifier". Linear weights are
// (out_features, in_features).
//
// Dimension letters: V vocab_size, P max_position_embeddings, TV
// type_vocab_size, C hidden_size, I intermediate_size, M adapter bottleneck,
// K classes (1 for regression).
const (
	NameWordEmbeddings      = "embeddings.word_embeddings.weight"       // (V, C)
	NamePositionEmbeddings  = "embeddings.position_embeddings.weight"   // (P, C)
	NameTokenTypeEmbeddings = "embeddings.token_type_embeddings.weight" // (TV, C)
	NameEmbeddingsLNWeight  = "embeddings.LayerNorm.weight"             // (C)
	NameEmbeddingsLNBias    = "embeddings.LayerNorm.bias"               // (C)
	NamePoolerWeight        = "pooler.dense.weight"                     // (C, C)
	NamePoolerBias          = "pooler.dense.bias"                       // (C)
	NameClassifierWeight    = "classifier.weight"                       // (K, C)
	NameClassifierBias      = "classifier.bias"                         // (K)
	// The dense layer of the PoolingCLSDense head (AdapterHub's default
	// two-layer classification head: dense + tanh on [CLS], then the
	// classifier). It is new, like the classifier, and always trains.
	NameHeadDenseWeight = "head.dense.weight" // (C, C)
	NameHeadDenseBias   = "head.dense.bias"   // (C)
)

// Per-layer tensor name suffixes; LayerTensorName joins one to a layer.
const (
	SuffixQueryWeight    = "attention.self.query.weight"       // (C, C)
	SuffixQueryBias      = "attention.self.query.bias"         // (C)
	SuffixKeyWeight      = "attention.self.key.weight"         // (C, C)
	SuffixKeyBias        = "attention.self.key.bias"           // (C)
	SuffixValueWeight    = "attention.self.value.weight"       // (C, C)
	SuffixValueBias      = "attention.self.value.bias"         // (C)
	SuffixAttnOutWeight  = "attention.output.dense.weight"     // (C, C)
	SuffixAttnOutBias    = "attention.output.dense.bias"       // (C)
	SuffixAttnLNWeight   = "attention.output.LayerNorm.weight" // (C)
	SuffixAttnLNBias     = "attention.output.LayerNorm.bias"   // (C)
	SuffixInterWeight    = "intermediate.dense.weight"         // (I, C)
	SuffixInterBias      = "intermediate.dense.bias"           // (I)
	SuffixOutputWeight   = "output.dense.weight"               // (C, I)
	SuffixOutputBias     = "output.dense.bias"                 // (C)
	SuffixOutputLNWeight = "output.LayerNorm.weight"           // (C)
	SuffixOutputLNBias   = "output.LayerNorm.bias"             // (C)
)

// Adapter tensor suffixes, joined to AdapterPrefix.
const (
	AdapterDownWeight = "down.weight" // (M, C)
	AdapterDownBias   = "down.bias"   // (M)
	AdapterUpWeight   = "up.weight"   // (C, M)
	AdapterUpBias     = "up.bias"     // (C)
)

// LayerTensorName is the canonical name of a per-layer tensor, e.g.
// LayerTensorName(3, SuffixQueryWeight) = "encoder.layer.3.attention.self.query.weight".
func LayerTensorName(layer int, suffix string) string {
	return "encoder.layer." + strconv.Itoa(layer) + "." + suffix
}

// AdapterPrefix returns the name prefix of the adapter at layer l: the one
// after the attention block (ffn=false, "encoder.layer.l.attention.output.adapter.")
// or after the feed-forward block (ffn=true, "encoder.layer.l.output.adapter.").
func AdapterPrefix(l int, ffn bool) string {
	if ffn {
		return LayerTensorName(l, "output.adapter.")
	}
	return LayerTensorName(l, "attention.output.adapter.")
}

// Category sorts tensors for parameter accounting and initialisation.
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

// TensorSpec is the name, shape and category of one tensor of an (adapted)
// BERT model.
type TensorSpec struct {
	Name     string
	Shape    []int
	Category Category

	// layer and stage place the tensor in the network (see the stage
	// constants in params.go) for the encoder's "no backward below the
	// lowest trainable tensor" rule.
	layer, stage int
}

// NumElements is the product of the shape.
func (s TensorSpec) NumElements() int { return prod(s.Shape) }

// Group is the parameter group of the tensor, as Inspect reports it:
// "embeddings", "attention" (self-attention and its output projection),
// "ffn" (intermediate and output dense), "layernorm" (the two per-layer
// LayerNorms; the embedding LayerNorm counts as "embeddings"), "adapter",
// "pooler" or "head".
func (s TensorSpec) Group() string {
	switch name := s.Name; {
	case strings.HasPrefix(name, "embeddings."):
		return "embeddings"
	case IsPooler(name):
		return "pooler"
	case IsClassifier(name), IsHeadDense(name):
		return "head"
	case IsAdapter(name):
		return "adapter"
	case IsLayerNorm(name):
		return "layernorm"
	case strings.Contains(name, ".attention."):
		return "attention"
	case strings.HasPrefix(name, "encoder.layer."):
		return "ffn"
	}
	return "other"
}

// Tensors lists every tensor of a BERT encoder with config cfg, in model
// order: embeddings, then each layer (self-attention Q, K, V, attention
// output, its adapter, LayerNorm, intermediate, output, its adapter,
// LayerNorm), then pooler and classifier.
//
// hasPooler tells whether the checkpoint ships "pooler.dense.*". adapter
// (nil: none) places adapters. head (nil: none) adds the task head: the
// pooler when head.Pooling is PoolingPooler (category Backbone when the
// checkpoint has one, else HeadTensor: it is created), the head's own dense
// layer when head.Pooling is PoolingCLSDense (HeadTensor), and the
// classifier.
// Without a head the pooler is listed when the checkpoint has one: the list
// is then exactly the checkpoint's tensors.
func Tensors(cfg Config, hasPooler bool, adapter *AdapterOptions, head *HeadOptions) []TensorSpec {
	C, I := cfg.HiddenSize, cfg.IntermediateSize
	var out []TensorSpec
	add := func(cat Category, layer, stage int, name string, shape ...int) {
		out = append(out, TensorSpec{Name: name, Shape: shape, Category: cat, layer: layer, stage: stage})
	}
	e := layerEmbedding
	add(Backbone, e, 0, NameWordEmbeddings, cfg.VocabSize, C)
	add(Backbone, e, 0, NamePositionEmbeddings, cfg.MaxPositionEmbeddings, C)
	add(Backbone, e, 0, NameTokenTypeEmbeddings, cfg.TypeVocabSize, C)
	add(Backbone, e, 0, NameEmbeddingsLNWeight, C)
	add(Backbone, e, 0, NameEmbeddingsLNBias, C)
	adapterAt := func(l int, ffn bool, stage int) {
		if adapter == nil || !adapter.inLayer(l) || (ffn && !adapter.FFN) || (!ffn && !adapter.Attention) {
			return
		}
		pre, M := AdapterPrefix(l, ffn), adapter.M
		add(AdapterTensor, l, stage, pre+AdapterDownWeight, M, C)
		add(AdapterTensor, l, stage, pre+AdapterDownBias, M)
		add(AdapterTensor, l, stage, pre+AdapterUpWeight, C, M)
		add(AdapterTensor, l, stage, pre+AdapterUpBias, C)
	}
	for l := 0; l < cfg.NumHiddenLayers; l++ {
		layer := func(stage int, suffix string, shape ...int) {
			add(Backbone, l, stage, LayerTensorName(l, suffix), shape...)
		}
		layer(stageQKV, SuffixQueryWeight, C, C)
		layer(stageQKV, SuffixQueryBias, C)
		layer(stageQKV, SuffixKeyWeight, C, C)
		layer(stageQKV, SuffixKeyBias, C)
		layer(stageQKV, SuffixValueWeight, C, C)
		layer(stageQKV, SuffixValueBias, C)
		layer(stageAttnOut, SuffixAttnOutWeight, C, C)
		layer(stageAttnOut, SuffixAttnOutBias, C)
		adapterAt(l, false, stageAdapter1)
		layer(stageLN1, SuffixAttnLNWeight, C)
		layer(stageLN1, SuffixAttnLNBias, C)
		layer(stageInter, SuffixInterWeight, I, C)
		layer(stageInter, SuffixInterBias, I)
		layer(stageOut, SuffixOutputWeight, C, I)
		layer(stageOut, SuffixOutputBias, C)
		adapterAt(l, true, stageAdapter2)
		layer(stageLN2, SuffixOutputLNWeight, C)
		layer(stageLN2, SuffixOutputLNBias, C)
	}
	L := cfg.NumHiddenLayers
	if head == nil {
		if hasPooler {
			add(Backbone, L, stagePooler, NamePoolerWeight, C, C)
			add(Backbone, L, stagePooler, NamePoolerBias, C)
		}
		return out
	}
	if head.Pooling == "" || head.Pooling == PoolingPooler {
		cat := HeadTensor
		if hasPooler {
			cat = Backbone
		}
		add(cat, L, stagePooler, NamePoolerWeight, C, C)
		add(cat, L, stagePooler, NamePoolerBias, C)
	}
	if head.Pooling == PoolingCLSDense {
		add(HeadTensor, L, stagePooler, NameHeadDenseWeight, C, C)
		add(HeadTensor, L, stagePooler, NameHeadDenseBias, C)
	}
	K := head.NumLabels
	if head.Kind == HeadRegression || K < 1 {
		K = 1
	}
	add(HeadTensor, L, stageHead, NameClassifierWeight, K, C)
	add(HeadTensor, L, stageHead, NameClassifierBias, K)
	return out
}

// ExpectedTensors lists the tensors of a BERT checkpoint with config cfg, in
// model order: embeddings, then each layer, then the pooler when withPooler.
func ExpectedTensors(cfg Config, withPooler bool) []TensorSpec {
	return Tensors(cfg, withPooler, nil, nil)
}

// IsLayerNorm reports whether name is a LayerNorm weight or bias.
func IsLayerNorm(name string) bool { return strings.Contains(name, "LayerNorm.") }

// IsAdapter reports whether name is an adapter tensor.
func IsAdapter(name string) bool { return strings.Contains(name, ".adapter.") }

// IsPooler reports whether name belongs to the pooler.
func IsPooler(name string) bool { return strings.HasPrefix(name, "pooler.") }

// IsClassifier reports whether name belongs to the classifier.
func IsClassifier(name string) bool { return strings.HasPrefix(name, "classifier.") }

// IsHeadDense reports whether name belongs to the dense layer of the
// PoolingCLSDense head.
func IsHeadDense(name string) bool { return strings.HasPrefix(name, "head.dense.") }

// IsBias reports whether name is a bias (including LayerNorm biases).
func IsBias(name string) bool { return strings.HasSuffix(name, ".bias") }

// NoDecay reports whether AdamW skips weight decay for name: biases and
// LayerNorm parameters, as in BERT's original optimizer setup (and the
// no_decay list of transformers' run_glue.py).
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

// CanonicalTensorName maps a Hugging Face checkpoint key to its canonical
// name: it drops the "bert." prefix of task models and renames the legacy
// (TF-converted) LayerNorm.gamma / LayerNorm.beta to weight / bias. Other
// names are returned unchanged.
func CanonicalTensorName(key string) string {
	name := strings.TrimPrefix(key, "bert.")
	if strings.HasSuffix(name, "LayerNorm.gamma") {
		name = strings.TrimSuffix(name, "gamma") + "weight"
	} else if strings.HasSuffix(name, "LayerNorm.beta") {
		name = strings.TrimSuffix(name, "beta") + "bias"
	}
	return name
}
