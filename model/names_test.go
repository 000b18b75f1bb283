package model

import (
	"testing"
)

// TestExpectedTensors checks the list for a small config: count, order,
// shapes of a few tensors in Hugging Face (out, in) layout, uniqueness, and
// the parameter count against the closed form
// V*C + P*C + TV*C + 2C + L*(4(C*C+C) + 2(C*I) + I + C + 4C) + (C*C+C).
func TestExpectedTensors(t *testing.T) {
	cfg := DefaultConfig()
	cfg.HiddenSize, cfg.NumHiddenLayers, cfg.NumAttentionHeads, cfg.IntermediateSize = 8, 3, 2, 20
	cfg.VocabSize, cfg.MaxPositionEmbeddings, cfg.TypeVocabSize = 50, 16, 2
	specs := ExpectedTensors(cfg, true)
	if len(specs) != 5+16*3+2 {
		t.Fatalf("%d tensors", len(specs))
	}
	if specs[0].Name != "embeddings.word_embeddings.weight" || specs[len(specs)-1].Name != "pooler.dense.bias" {
		t.Errorf("order: first %s last %s", specs[0].Name, specs[len(specs)-1].Name)
	}
	byName := map[string][]int{}
	total := 0
	for _, s := range specs {
		if _, dup := byName[s.Name]; dup {
			t.Fatalf("duplicate %s", s.Name)
		}
		byName[s.Name] = s.Shape
		total += s.NumElements()
	}
	for name, want := range map[string][]int{
		"encoder.layer.2.attention.self.query.weight":       {8, 8},
		"encoder.layer.1.attention.output.LayerNorm.weight": {8},
		"encoder.layer.0.intermediate.dense.weight":         {20, 8},
		"encoder.layer.2.output.dense.weight":               {8, 20},
		"encoder.layer.2.output.dense.bias":                 {8},
		"embeddings.position_embeddings.weight":             {16, 8},
		"pooler.dense.weight":                               {8, 8},
	} {
		if !ckptEqualShape(byName[name], want) {
			t.Errorf("%s: %v, want %v", name, byName[name], want)
		}
	}
	C, I, L := 8, 20, 3
	want := 50*C + 16*C + 2*C + 2*C + L*(4*(C*C+C)+2*C*I+I+C+4*C) + C*C + C
	if total != want {
		t.Errorf("total %d, want %d", total, want)
	}
	if n := len(ExpectedTensors(cfg, false)); n != len(specs)-2 {
		t.Errorf("without pooler: %d tensors", n)
	}
}

// TestCanonicalTensorName covers the prefix and legacy LayerNorm mappings.
func TestCanonicalTensorName(t *testing.T) {
	for in, want := range map[string]string{
		"bert.embeddings.LayerNorm.gamma":                   "embeddings.LayerNorm.weight",
		"bert.encoder.layer.0.output.LayerNorm.beta":        "encoder.layer.0.output.LayerNorm.bias",
		"encoder.layer.11.attention.self.key.weight":        "encoder.layer.11.attention.self.key.weight",
		"bert.pooler.dense.weight":                          "pooler.dense.weight",
		"cls.predictions.transform.LayerNorm.gamma":         "cls.predictions.transform.LayerNorm.weight",
		"classifier.weight":                                 "classifier.weight",
		"encoder.layer.0.attention.output.LayerNorm.weight": "encoder.layer.0.attention.output.LayerNorm.weight",
	} {
		if got := CanonicalTensorName(in); got != want {
			t.Errorf("%s -> %s, want %s", in, got, want)
		}
	}
	if g := (TensorSpec{Name: LayerTensorName(4, SuffixAttnLNBias)}).Group(); g != "layernorm" {
		t.Errorf("group %s", g)
	}
	if g := (TensorSpec{Name: LayerTensorName(4, SuffixOutputBias)}).Group(); g != "ffn" {
		t.Errorf("group %s", g)
	}
}

func TestLayerOf(t *testing.T) {
	for name, want := range map[string]int{
		"encoder.layer.11.output.dense.weight": 11, "encoder.layer.0.attention.output.adapter.up.bias": 0,
		"embeddings.LayerNorm.bias": -1, "pooler.dense.weight": -1, "encoder.layer.x.output": -1, "encoder.layer.3": -1,
	} {
		if got := LayerOf(name); got != want {
			t.Errorf("LayerOf(%q) = %d, want %d", name, got, want)
		}
	}
}
