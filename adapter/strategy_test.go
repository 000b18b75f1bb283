package adapter

import (
	"fmt"
	"sort"
	"testing"

	"github.com/houlsby/adapters/model"
)

// expectedNames builds, independently of Tensors, the names one strategy
// must select on BERT-base with Houlsby adapters in every layer.
func expectedNames(strategy string, topK int, trainLN, createdPooler bool) map[string]bool {
	want := map[string]bool{"classifier.weight": true, "classifier.bias": true}
	if createdPooler {
		want["pooler.dense.weight"], want["pooler.dense.bias"] = true, true
	}
	ln := func() {
		want["embeddings.LayerNorm.weight"], want["embeddings.LayerNorm.bias"] = true, true
		for l := 0; l < 12; l++ {
			for _, p := range []string{"attention.output", "output"} {
				for _, k := range []string{"weight", "bias"} {
					want[fmt.Sprintf("encoder.layer.%d.%s.LayerNorm.%s", l, p, k)] = true
				}
			}
		}
	}
	adapters := func(bias bool) {
		for l := 0; l < 12; l++ {
			for _, p := range []string{"attention.output", "output"} {
				for _, proj := range []string{"down", "up"} {
					want[fmt.Sprintf("encoder.layer.%d.%s.adapter.%s.bias", l, p, proj)] = true
					if !bias {
						want[fmt.Sprintf("encoder.layer.%d.%s.adapter.%s.weight", l, p, proj)] = true
					}
				}
			}
		}
	}
	switch strategy {
	case StratHead:
	case StratLayerNorm:
		ln()
	case StratAdapters:
		adapters(false)
		if trainLN {
			ln()
		}
	case StratBitFit:
		want["embeddings.LayerNorm.bias"], want["pooler.dense.bias"] = true, true
		for l := 0; l < 12; l++ {
			for _, n := range []string{"attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
				"attention.output.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm"} {
				want[fmt.Sprintf("encoder.layer.%d.%s.bias", l, n)] = true
			}
		}
		adapters(true)
	case StratTopK:
		want["pooler.dense.weight"], want["pooler.dense.bias"] = true, true
		for l := 12 - topK; l < 12; l++ {
			for _, n := range []string{"attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
				"attention.output.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm"} {
				want[fmt.Sprintf("encoder.layer.%d.%s.weight", l, n)] = true
				want[fmt.Sprintf("encoder.layer.%d.%s.bias", l, n)] = true
			}
			for _, p := range []string{"attention.output", "output"} {
				for _, proj := range []string{"down", "up"} {
					want[fmt.Sprintf("encoder.layer.%d.%s.adapter.%s.weight", l, p, proj)] = true
					want[fmt.Sprintf("encoder.layer.%d.%s.adapter.%s.bias", l, p, proj)] = true
				}
			}
		}
	}
	return want
}

// Every strategy over the full name list of BERT-base (with adapter tensors
// present in every layer, so a strategy that wrongly picks them is caught)
// selects exactly the intended tensors.
func TestStrategiesSelectExactly(t *testing.T) {
	b := bertBase(t)
	r, err := Default().Resolve(768, 12)
	if err != nil {
		t.Fatal(err)
	}
	for _, created := range []bool{false, true} {
		h := Head{Kind: HeadPooler, NumLabels: 2}.Options()
		specs := model.Tensors(b.Config(), !created, &r, &h)
		// 5 embedding tensors + 12·(16 backbone + 8 adapter) + 2 pooler + 2 classifier.
		if len(specs) != 5+12*24+4 {
			t.Fatalf("%d tensors", len(specs))
		}
		for _, tc := range []struct {
			name    string
			topK    int
			trainLN bool
		}{
			{StratHead, 0, false}, {StratLayerNorm, 0, false}, {StratAdapters, 0, true}, {StratAdapters, 0, false},
			{StratBitFit, 0, false}, {StratTopK, 1, false}, {StratTopK, 3, false}, {StratTopK, 12, false}, {StratFull, 0, false},
		} {
			s := Strategy{Name: tc.name, TopK: tc.topK, TrainLayerNorm: tc.trainLN, NumLayers: 12, CreatedPooler: created}
			if err := s.Validate(); err != nil {
				t.Fatal(err)
			}
			var want map[string]bool
			if tc.name == StratFull {
				want = map[string]bool{}
				for _, sp := range specs {
					want[sp.Name] = true
				}
			} else {
				want = expectedNames(tc.name, tc.topK, tc.trainLN, created)
			}
			var extra, missing []string
			for _, sp := range specs {
				got := s.Trainable(sp.Name)
				if got && !want[sp.Name] {
					extra = append(extra, sp.Name)
				}
				if !got && want[sp.Name] {
					missing = append(missing, sp.Name)
				}
			}
			sort.Strings(extra)
			sort.Strings(missing)
			if len(extra)+len(missing) > 0 {
				t.Errorf("%s top_k=%d ln=%v created=%v: extra %v missing %v", tc.name, tc.topK, tc.trainLN, created, extra, missing)
			}
		}
	}
}

func TestStrategyValidate(t *testing.T) {
	for _, s := range []Strategy{{Name: "lora"}, {Name: StratTopK, NumLayers: 12}, {Name: StratTopK, TopK: 13, NumLayers: 12}, {Name: ""}} {
		if err := s.Validate(); err == nil {
			t.Errorf("%+v: no error", s)
		}
	}
	for _, n := range Strategies {
		s := Strategy{Name: n, TopK: 2, NumLayers: 12}
		if err := s.Validate(); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
}
