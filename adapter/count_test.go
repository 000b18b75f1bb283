package adapter

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/houlsby/adapters/internal/testassets"
	"github.com/houlsby/adapters/model"
	"github.com/houlsby/adapters/model/safetensors"
)

func loadBase(t *testing.T, path string) Base {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var b Base
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	return b
}

func bertBase(t *testing.T) Base {
	return loadBase(t, filepath.Join("testdata", "bert-base-uncased-config.json"))
}

// The adapter parameter counts of BERT-base (d = 768, 12 layers, two
// adapters per layer). The expected values were produced by AdapterHub's
// `adapters` 1.3.0 (DoubleSeqBnConfig, reduction_factor = 768/m, summing
// numel over the adapter parameters of a BertModel built from this config)
// and equal 24·(2·768·m + 768 + m). NOTE: the issue text quotes
// 313,344 ... 9,455,616, which is 24·(2·d·m + d): it omits b_down.
func TestCountBertBaseSweep(t *testing.T) {
	want := map[int]int64{8: 313536, 16: 608640, 32: 1198848, 64: 2379264, 128: 4740096, 256: 9461760}
	b := bertBase(t)
	for m, w := range want {
		a := Default()
		a.Bottleneck = m
		a.TrainLayerNorm = false
		c, err := Count(Plan{Base: b, HasPooler: true, Adapter: a, Strategy: Strategy{Name: StratAdapters}, Head: Head{Kind: HeadCLS, NumLabels: 2}})
		if err != nil {
			t.Fatal(err)
		}
		if c.Adapters != w {
			t.Errorf("m=%d: %d adapter parameters, want %d", m, c.Adapters, w)
		}
		if c.NumAdapters != 24 || c.PerAdapter != PerAdapter(768, m) {
			t.Errorf("m=%d: %d adapters of %d", m, c.NumAdapters, c.PerAdapter)
		}
		// Trained = adapters + classifier (2·768 + 2); LayerNorms are off.
		if c.Trained != w+2*768+2 {
			t.Errorf("m=%d: trained %d, want %d", m, c.Trained, w+2*768+2)
		}
	}
}

// BERT-base with its pooler holds 109,482,240 parameters (Devlin et al.'s
// "110M"; the sum over bert-base-uncased's pytorch_model.bin).
func TestCountBertBaseTotals(t *testing.T) {
	b := bertBase(t)
	a := Default() // m = 64, LayerNorms trained
	c, err := Count(Plan{Base: b, HasPooler: true, Adapter: a, Strategy: Strategy{Name: StratAdapters, TrainLayerNorm: true}, Head: Head{Kind: HeadPooler, NumLabels: 2}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Backbone != 109482240 {
		t.Errorf("backbone %d, want 109,482,240", c.Backbone)
	}
	// 25 LayerNorms (2 per layer + embeddings) of 2·768.
	if c.LayerNorms != 25*2*768 || c.TrainedLayerNorms != c.LayerNorms {
		t.Errorf("layernorms %d trained %d, want %d", c.LayerNorms, c.TrainedLayerNorms, 25*2*768)
	}
	// The pretrained pooler is frozen under the adapters strategy.
	if c.Head != 2*768+2 {
		t.Errorf("head %d, want %d", c.Head, 2*768+2)
	}
	if c.Total != c.Backbone+c.Adapters+c.Head {
		t.Errorf("total %d != backbone+adapters+head", c.Total)
	}
	wantTrained := int64(2379264 + 25*2*768 + 2*768 + 2)
	if c.Trained != wantTrained {
		t.Errorf("trained %d, want %d", c.Trained, wantTrained)
	}
	// The paper's "m = 64 is about 2.2%": 2,419,202 / 109,482,240.
	if s := c.TrainedShare(); math.Abs(s-float64(wantTrained)/109482240) > 1e-12 || s < 0.021 || s > 0.023 {
		t.Errorf("trained share %.5f", s)
	}

	// Without a pooler in the checkpoint the pooler head creates one; it
	// counts as head and trains.
	c2, err := Count(Plan{Base: b, HasPooler: false, Adapter: a, Strategy: Strategy{Name: StratHead}, Head: Head{Kind: HeadPooler, NumLabels: 3}})
	if err != nil {
		t.Fatal(err)
	}
	if c2.Backbone != 109482240-768*768-768 || c2.Head != 768*768+768+3*768+3 || c2.Trained != c2.Head || c2.Adapters != 0 {
		t.Errorf("created pooler: %+v", c2)
	}
}

// all-MiniLM-L6-v2: the accounting must match the real checkpoint's tensors
// one for one (names, shapes) and in total.
func TestCountMiniLMCheckpoint(t *testing.T) {
	dir := testassets.ModelDir()
	testassets.Require(t, "make assets", filepath.Join(dir, "model.safetensors"))
	b := loadBase(t, filepath.Join(dir, "config.json"))
	f, err := safetensors.Open(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var fileTotal int64
	fileShapes := map[string][]int{}
	for _, n := range f.Names() {
		info, _ := f.Info(n)
		if info.DType != safetensors.F32 {
			// embeddings.position_ids (I64) is a buffer, not a parameter.
			if n != "embeddings.position_ids" {
				t.Errorf("unexpected non-F32 tensor %s (%s)", n, info.DType)
			}
			continue
		}
		fileTotal += int64(info.NumElements())
		fileShapes[n] = info.Shape
	}
	c, err := Count(Plan{Base: b, HasPooler: true, Strategy: Strategy{Name: StratFull}, Head: Head{Kind: HeadPooler, NumLabels: 2}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Backbone != fileTotal || fileTotal != 22713216 {
		t.Errorf("backbone %d, checkpoint %d, want 22,713,216", c.Backbone, fileTotal)
	}
	if c.Trained != c.Total || c.Total != fileTotal+2*384+2 {
		t.Errorf("full: trained %d total %d", c.Trained, c.Total)
	}
	specs, _, err := Plan{Base: b, HasPooler: true, Strategy: Strategy{Name: StratFull}, Head: Head{Kind: HeadPooler, NumLabels: 2}}.Tensors()
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, s := range specs {
		if s.Category != model.Backbone {
			continue
		}
		seen++
		fs, ok := fileShapes[s.Name]
		if !ok {
			t.Errorf("%s: not in the checkpoint", s.Name)
			continue
		}
		if !equalInts(fs, s.Shape) {
			t.Errorf("%s: shape %v, checkpoint %v", s.Name, s.Shape, fs)
		}
	}
	if seen != len(fileShapes) {
		t.Errorf("accounting lists %d backbone tensors, checkpoint has %d", seen, len(fileShapes))
	}
	// The mean head does not load the pooler.
	c3, _ := Count(Plan{Base: b, HasPooler: true, Strategy: Strategy{Name: StratHead}, Head: Head{Kind: HeadMean, NumLabels: 2}})
	if c3.Backbone != 22713216-384*384-384 {
		t.Errorf("mean head backbone %d", c3.Backbone)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestResolveValidation(t *testing.T) {
	cases := []struct {
		mod  func(*Config)
		want string // substring of the error; "" = ok
	}{
		{func(c *Config) {}, ""},
		{func(c *Config) { c.Bottleneck = 0 }, "adapter.bottleneck"},
		{func(c *Config) { c.Bottleneck = -1 }, "adapter.bottleneck"},
		{func(c *Config) { c.ReductionFactor = 16 }, "set only one"},
		{func(c *Config) { c.Bottleneck, c.ReductionFactor = 0, 5 }, "adapter.reduction_factor"},
		{func(c *Config) { c.Bottleneck = 800 }, "exceeds"},
		{func(c *Config) { c.NonLinearity = "tanh" }, "adapter.non_linearity"},
		{func(c *Config) { c.Init = "random" }, "adapter.init"},
		{func(c *Config) { c.Placement = "pfeiffer" }, "adapter.placement"},
		{func(c *Config) { c.Layers = []int{0, 12} }, "adapter.layers"},
		{func(c *Config) { c.Layers = []int{1, 1} }, "twice"},
		{func(c *Config) { c.TopLayers = 13 }, "adapter.top_layers"},
		{func(c *Config) { c.TopLayers, c.Layers = 2, []int{1} }, "set only one"},
	}
	for i, tc := range cases {
		c := Default()
		tc.mod(&c)
		_, err := c.Resolve(768, 12)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("case %d: %v", i, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("case %d: error %v, want one containing %q", i, err, tc.want)
		}
	}
	c := Default()
	c.Bottleneck, c.ReductionFactor = 0, 16
	c.TopLayers = 3
	c.Placement = PlaceFFN
	r, err := c.Resolve(768, 12)
	if err != nil {
		t.Fatal(err)
	}
	if r.M != 48 || !equalInts(r.Layers, []int{9, 10, 11}) || r.Attention || !r.FFN || r.PerLayer() != 1 {
		t.Errorf("resolved %+v", r)
	}
	c = Default()
	c.Layers = []int{5, 0}
	c.NonLinearity = "gelu"
	r, _ = c.Resolve(768, 12)
	if !equalInts(r.Layers, []int{0, 5}) || r.Act.String() != "gelu" {
		t.Errorf("resolved %+v", r)
	}
}
