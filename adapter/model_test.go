package adapter_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/houlsby/adapters/adapter"
	"github.com/houlsby/adapters/model"
)

// The accounting's backbone tensors are exactly package model's
// ExpectedTensors (names, shapes, order), with and without pooler.
func TestBackboneMatchesModel(t *testing.T) {
	cfg, err := model.LoadConfig(filepath.Join("testdata", "bert-base-uncased-config.json"))
	if err != nil {
		t.Fatal(err)
	}
	b := adapter.Base{HiddenSize: cfg.HiddenSize, NumHiddenLayers: cfg.NumHiddenLayers, NumAttentionHeads: cfg.NumAttentionHeads,
		IntermediateSize: cfg.IntermediateSize, VocabSize: cfg.VocabSize, MaxPositionEmbeddings: cfg.MaxPositionEmbeddings, TypeVocabSize: cfg.TypeVocabSize}
	r, err := adapter.Default().Resolve(cfg.HiddenSize, cfg.NumHiddenLayers)
	if err != nil {
		t.Fatal(err)
	}
	for _, withPooler := range []bool{true, false} {
		want := model.ExpectedTensors(cfg, withPooler)
		var got []adapter.TensorSpec
		for _, s := range adapter.Tensors(b, withPooler, &r, adapter.Head{Kind: adapter.HeadPooler, NumLabels: 2}) {
			if s.Category == adapter.Backbone {
				got = append(got, s)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("pooler %v: %d backbone tensors, model expects %d", withPooler, len(got), len(want))
		}
		for i := range want {
			if got[i].Name != want[i].Name || fmt.Sprint(got[i].Shape) != fmt.Sprint(want[i].Shape) {
				t.Errorf("tensor %d: %s %v, model %s %v", i, got[i].Name, got[i].Shape, want[i].Name, want[i].Shape)
			}
		}
		if c := model.CountParams(cfg, withPooler).Total(); int64(c) != sum(got) {
			t.Errorf("model counts %d, accounting %d", c, sum(got))
		}
	}
}

func sum(ts []adapter.TensorSpec) int64 {
	var n int64
	for _, t := range ts {
		n += t.Len()
	}
	return n
}
