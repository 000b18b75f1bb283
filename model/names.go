package model

import (
	"fmt"
	"strings"
)

// Canonical BERT tensor names: the Hugging Face BertModel state_dict keys,
// without the "bert." prefix that task models (BertForSequenceClassification,
// ...) add. Linear weights are (out_features, in_features).
//
// Dimension letters: V vocab_size, P max_position_embeddings, TV
// type_vocab_size, C hidden_size, I intermediate_size.
const (
	NameWordEmbeddings      = "embeddings.word_embeddings.weight"       // (V, C)
	NamePositionEmbeddings  = "embeddings.position_embeddings.weight"   // (P, C)
	NameTokenTypeEmbeddings = "embeddings.token_type_embeddings.weight" // (TV, C)
	NameEmbeddingsLNWeight  = "embeddings.LayerNorm.weight"             // (C)
	NameEmbeddingsLNBias    = "embeddings.LayerNorm.bias"               // (C)
	NamePoolerWeight        = "pooler.dense.weight"                     // (C, C)
	NamePoolerBias          = "pooler.dense.bias"                       // (C)
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

// LayerTensorName is the canonical name of a per-layer tensor, e.g.
// LayerTensorName(3, SuffixQueryWeight) = "encoder.layer.3.attention.self.query.weight".
func LayerTensorName(layer int, suffix string) string {
	return fmt.Sprintf("encoder.layer.%d.%s", layer, suffix)
}

// TensorSpec is the canonical name and shape of one checkpoint tensor.
type TensorSpec struct {
	Name  string
	Shape []int
}

// Group is the parameter group of the tensor, as Inspect reports it:
// "embeddings", "attention" (self-attention and its output projection),
// "ffn" (intermediate and output dense), "layernorm" (the two per-layer
// LayerNorms; the embedding LayerNorm counts as "embeddings") or "pooler".
func (s TensorSpec) Group() string { return tensorGroup(s.Name) }

func tensorGroup(name string) string {
	switch {
	case strings.HasPrefix(name, "embeddings."):
		return "embeddings"
	case strings.HasPrefix(name, "pooler."):
		return "pooler"
	case strings.Contains(name, ".LayerNorm."):
		return "layernorm"
	case strings.Contains(name, ".attention."):
		return "attention"
	case strings.HasPrefix(name, "encoder.layer."):
		return "ffn"
	}
	return "other"
}

// NumElements is the product of the shape.
func (s TensorSpec) NumElements() int {
	n := 1
	for _, d := range s.Shape {
		n *= d
	}
	return n
}

// ExpectedTensors lists the tensors of a BERT encoder with config cfg, in
// model order: embeddings, then each layer, then the pooler when withPooler.
func ExpectedTensors(cfg Config, withPooler bool) []TensorSpec {
	C, I := cfg.HiddenSize, cfg.IntermediateSize
	specs := []TensorSpec{
		{NameWordEmbeddings, []int{cfg.VocabSize, C}},
		{NamePositionEmbeddings, []int{cfg.MaxPositionEmbeddings, C}},
		{NameTokenTypeEmbeddings, []int{cfg.TypeVocabSize, C}},
		{NameEmbeddingsLNWeight, []int{C}},
		{NameEmbeddingsLNBias, []int{C}},
	}
	for l := 0; l < cfg.NumHiddenLayers; l++ {
		for _, s := range []TensorSpec{
			{SuffixQueryWeight, []int{C, C}},
			{SuffixQueryBias, []int{C}},
			{SuffixKeyWeight, []int{C, C}},
			{SuffixKeyBias, []int{C}},
			{SuffixValueWeight, []int{C, C}},
			{SuffixValueBias, []int{C}},
			{SuffixAttnOutWeight, []int{C, C}},
			{SuffixAttnOutBias, []int{C}},
			{SuffixAttnLNWeight, []int{C}},
			{SuffixAttnLNBias, []int{C}},
			{SuffixInterWeight, []int{I, C}},
			{SuffixInterBias, []int{I}},
			{SuffixOutputWeight, []int{C, I}},
			{SuffixOutputBias, []int{C}},
			{SuffixOutputLNWeight, []int{C}},
			{SuffixOutputLNBias, []int{C}},
		} {
			specs = append(specs, TensorSpec{LayerTensorName(l, s.Name), s.Shape})
		}
	}
	if withPooler {
		specs = append(specs,
			TensorSpec{NamePoolerWeight, []int{C, C}},
			TensorSpec{NamePoolerBias, []int{C}})
	}
	return specs
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
