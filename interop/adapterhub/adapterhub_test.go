package adapterhub

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/houlsby/adapters/adapter"
	"github.com/houlsby/adapters/internal/tinybert"
	"github.com/houlsby/adapters/model"
	"github.com/houlsby/adapters/model/safetensors"
)

// tinyCheckpoint writes and loads a 2-layer BERT (d = 16) with or without a
// pooler.
func tinyCheckpoint(t *testing.T, pooler bool) *model.Checkpoint {
	t.Helper()
	dir := t.TempDir()
	s := tinybert.Sentiment
	s.WithPooler = pooler
	tinybert.Write(t, dir, s)
	ck, err := model.LoadCheckpoint(dir)
	require.NoError(t, err)
	return ck
}

// trainedFile is a File for ck with every expected tensor filled with
// random values (a stand-in for a trained adapter).
func trainedFile(t *testing.T, ck *model.Checkpoint, st adapter.Strategy, c adapter.Config, h adapter.Head, labels []string) *adapter.File {
	t.Helper()
	f := adapter.NewFile(ck, st, &c, h, labels)
	exp, err := f.Expected()
	require.NoError(t, err)
	r := rand.New(rand.NewPCG(7, uint64(len(exp))))
	for _, s := range exp {
		v := make([]float32, s.NumElements())
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
		f.Tensors = append(f.Tensors, adapter.Tensor{Name: s.Name, Shape: s.Shape, Data: v})
	}
	require.NoError(t, f.Check("test"))
	return f
}

func roundTrip(t *testing.T, ck *model.Checkpoint, f *adapter.File) (*adapter.File, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ah")
	require.NoError(t, Export(dir, f, ExportOptions{Name: "spam", ModelName: "tiny"}))
	require.True(t, IsFolder(dir))
	g, err := Load(dir, ck)
	require.NoError(t, err)
	return g, dir
}

var adapters = adapter.Strategy{Name: adapter.StratAdapters}

// Export then Load gives back the same File, for every head AdapterHub can
// hold, every placement, a subset of layers, a reduction factor or a
// bottleneck, trained or frozen LayerNorms, regression.
func TestRoundTrip(t *testing.T) {
	withLN := adapter.Strategy{Name: adapter.StratAdapters, TrainLayerNorm: true}
	ah, err := adapter.LookupPreset(adapter.PresetAdapterHubHoulsby)
	require.NoError(t, err)
	labels := []string{"ham", "spam"}
	paper := adapter.Default()
	paper.Bottleneck = 8 // d = 16
	for _, tc := range []struct {
		name   string
		pooler bool
		st     adapter.Strategy
		c      adapter.Config
		h      adapter.Head
		labels []string
	}{
		{"paper (LayerNorms, pooler head)", true, withLN, paper, adapter.Head{Kind: adapter.HeadPooler, NumLabels: 2}, labels},
		{"adapterhub-houlsby preset", true, ah.Strategy(), ah.Adapter, adapter.Head{Kind: ah.Head, NumLabels: 2}, labels},
		{"created pooler", false, withLN, adapter.Config{Bottleneck: 5, NonLinearity: "gelu", Placement: adapter.PlaceFFN, Layers: []int{1}}, adapter.Head{Kind: adapter.HeadPooler, NumLabels: 3}, []string{"a", "b", "c"}},
		{"cls head, attention only, regression", true, adapters, adapter.Config{ReductionFactor: 4, NonLinearity: "relu", Placement: adapter.PlaceAttention, Init: adapter.InitNearIdentity}, adapter.Head{Kind: adapter.HeadCLS, NumLabels: 1}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ck := tinyCheckpoint(t, tc.pooler)
			f := trainedFile(t, ck, tc.st, tc.c, tc.h, tc.labels)
			g, dir := roundTrip(t, ck, f)
			assert.Equal(t, f.Adapter, g.Adapter)
			assert.Equal(t, f.Strategy, g.Strategy)
			assert.Equal(t, f.Head, g.Head)
			assert.Equal(t, len(f.Labels), len(g.Labels))
			if len(f.Labels) > 0 {
				assert.Equal(t, f.Labels, g.Labels)
			}
			assert.Equal(t, f.Tensors, g.Tensors)

			// AdapterHub's own files alone (the side file removed): the
			// same adapter and head computation, LayerNorms frozen.
			require.NoError(t, os.Remove(filepath.Join(dir, SideFile)))
			h, err := Load(dir, ck)
			require.NoError(t, err)
			assert.False(t, h.Strategy.TrainLayerNorm)
			var hubOnly []adapter.Tensor
			for _, x := range f.Tensors {
				if !model.IsLayerNorm(x.Name) {
					hubOnly = append(hubOnly, x)
				}
			}
			if tc.h.Kind == adapter.HeadPooler && !tc.pooler {
				// The created pooler travels as the 2-layer head's dense.
				assert.Equal(t, adapter.HeadCLSDense, h.Head.Kind)
				for i := range hubOnly {
					hubOnly[i].Name = strings.Replace(hubOnly[i].Name, "pooler.dense.", "head.dense.", 1)
				}
			} else {
				assert.Equal(t, f.Head.Kind, h.Head.Kind)
			}
			assert.ElementsMatch(t, hubOnly, h.Tensors)
		})
	}
}

// The files are laid out as adapters 1.3.0's save_adapter writes them.
func TestExportLayout(t *testing.T) {
	ck := tinyCheckpoint(t, true)
	paper := adapter.Default()
	paper.Bottleneck = 8
	f := trainedFile(t, ck, adapter.Strategy{Name: adapter.StratAdapters, TrainLayerNorm: true}, paper,
		adapter.Head{Kind: adapter.HeadPooler, NumLabels: 2}, []string{"ham", "spam"})
	dir := filepath.Join(t.TempDir(), "ah")
	require.NoError(t, Export(dir, f, ExportOptions{Name: "spam"}))
	var cfg map[string]any
	b, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &cfg))
	assert.Equal(t, "spam", cfg["name"])
	assert.Equal(t, Version, cfg["version"])
	assert.Contains(t, cfg["houlsby_side_file"], SideFile)
	bn := cfg["config"].(map[string]any)
	assert.Len(t, bn, len(bnDefaults()))
	assert.Equal(t, "relu", bn["non_linearity"])
	assert.Equal(t, 2.0, bn["reduction_factor"], "m = d / factor = 16 / 2")
	assert.Equal(t, []any{}, bn["leave_out"])
	var head map[string]any
	b, err = os.ReadFile(filepath.Join(dir, HeadConfigFile))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &head))
	hc := head["config"].(map[string]any)
	assert.Equal(t, true, hc["use_pooler"])
	assert.Equal(t, 1.0, hc["layers"])
	assert.Equal(t, map[string]any{"ham": 0.0, "spam": 1.0}, hc["label2id"])
	names := func(file string) []string {
		sf, err := safetensors.Open(filepath.Join(dir, file))
		require.NoError(t, err)
		defer sf.Close()
		return sf.Names()
	}
	assert.Contains(t, names(WeightsFile), "bert.encoder.layer.1.output.adapters.spam.adapter_down.0.weight")
	assert.Len(t, names(WeightsFile), 2*2*4)
	assert.ElementsMatch(t, []string{"heads.spam.1.weight", "heads.spam.1.bias"}, names(HeadWeightsFile))
	assert.Len(t, names(SideFile), 2*(1+2*2), "every LayerNorm")
	readme, err := os.ReadFile(filepath.Join(dir, ReadmeFile))
	require.NoError(t, err)
	assert.Contains(t, string(readme), "load_state_dict")
}

// What AdapterHub cannot hold is refused with the reason, never dropped.
func TestExportRefuses(t *testing.T) {
	ck := tinyCheckpoint(t, true)
	c := adapter.Config{Bottleneck: 4, NonLinearity: "relu"}
	dir := filepath.Join(t.TempDir(), "ah")
	mean := trainedFile(t, ck, adapters, c, adapter.Head{Kind: adapter.HeadMean, NumLabels: 2}, []string{"a", "b"})
	assert.ErrorContains(t, Export(dir, mean, ExportOptions{Name: "x"}), "mean pooling) has no AdapterHub equivalent")
	full := trainedFile(t, ck, adapter.Strategy{Name: adapter.StratFull}, c, adapter.Head{Kind: adapter.HeadPooler, NumLabels: 2}, []string{"a", "b"})
	assert.ErrorContains(t, Export(dir, full, ExportOptions{Name: "x"}), "cannot hold")
	ok := trainedFile(t, ck, adapters, c, adapter.Head{Kind: adapter.HeadCLS, NumLabels: 2}, []string{"a", "b"})
	assert.ErrorContains(t, Export(dir, ok, ExportOptions{Name: "my.adapter"}), "name \"my.adapter\"")
	odd := trainedFile(t, ck, adapters, adapter.Config{Bottleneck: 6, NonLinearity: "relu"}, adapter.Head{Kind: adapter.HeadCLS, NumLabels: 2}, []string{"a", "b"})
	require.NoError(t, Export(dir, odd, ExportOptions{Name: "x"}), "16 / 6 is a float factor whose floor division gives 6 back")
	odd5 := trainedFile(t, ck, adapters, adapter.Config{Bottleneck: 5, NonLinearity: "relu"}, adapter.Head{Kind: adapter.HeadCLS, NumLabels: 2}, []string{"a", "b"})
	require.NoError(t, Export(dir, odd5, ExportOptions{Name: "x"}), "16 // 3.2 is 4 in Python: the factor steps down to one that gives 5")
	g, err := Load(dir, ck)
	require.NoError(t, err)
	assert.Equal(t, 5, g.Adapter.Bottleneck)
}

// Load refuses AdapterHub configurations model.Model does not compute, a
// folder without a head, and a side file for another base model, naming the
// file and the key.
func TestLoadRefuses(t *testing.T) {
	ck := tinyCheckpoint(t, true)
	f := trainedFile(t, ck, adapters, adapter.Config{Bottleneck: 4, NonLinearity: "swish"}, adapter.Head{Kind: adapter.HeadCLSDense, NumLabels: 2}, []string{"a", "b"})
	src := filepath.Join(t.TempDir(), "ah")
	require.NoError(t, Export(src, f, ExportOptions{Name: "x"}))
	edit := func(t *testing.T, file string, change func(m map[string]any)) string {
		dir := filepath.Join(t.TempDir(), "copy")
		require.NoError(t, os.CopyFS(dir, os.DirFS(src)))
		if file == "" {
			return dir
		}
		b, err := os.ReadFile(filepath.Join(dir, file))
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(b, &m))
		change(m)
		b, err = json.Marshal(m)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, file), b, 0o644))
		return dir
	}
	bn := func(k string, v any) func(map[string]any) {
		return func(m map[string]any) { m["config"].(map[string]any)[k] = v }
	}
	for _, tc := range []struct {
		name, file string
		change     func(map[string]any)
		want       string
	}{
		{"ln_after", ConfigFile, bn("ln_after", true), "config.ln_after = true: only false is read"},
		{"parallel", ConfigFile, bn("is_parallel", true), "config.is_parallel"},
		{"Pfeiffer placement", ConfigFile, bn("original_ln_before", true), "config.original_ln_before"},
		{"scaling", ConfigFile, bn("scaling", 2.0), "config.scaling = 2"},
		{"activation", ConfigFile, bn("non_linearity", "tanh"), `non_linearity = "tanh"`},
		{"LoRA", ConfigFile, bn("architecture", "lora"), `architecture "lora"`},
		{"unknown key", ConfigFile, bn("new_feature", 1), "config.new_feature: unknown key"},
		{"per-layer factors", ConfigFile, bn("reduction_factor", map[string]any{"0": 4, "1": 8}), "per-layer factors differ"},
		{"all left out", ConfigFile, bn("leave_out", []int{0, 1}), "lists every layer"},
		{"other model", ConfigFile, func(m map[string]any) { m["model_type"] = "roberta" }, `model_type "roberta"`},
		{"other width", ConfigFile, func(m map[string]any) { m["hidden_size"] = 768 }, "hidden_size 768"},
		{"tagging head", HeadConfigFile, bn("head_type", "tagging"), `head_type "tagging"`},
		{"3-layer head", HeadConfigFile, bn("layers", 3), "layers = 3"},
		{"relu head", HeadConfigFile, bn("activation_function", "relu"), "only tanh"},
		{"head on pooler and dense", HeadConfigFile, bn("use_pooler", true), "no dense layer after the pooler"},
		{"other head name", HeadConfigFile, func(m map[string]any) { m["name"] = "y" }, `head "y", but the adapter is "x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(edit(t, tc.file, tc.change), ck)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), tc.file)
		})
	}
	t.Run("no head", func(t *testing.T) {
		dir := edit(t, "", nil)
		require.NoError(t, os.Remove(filepath.Join(dir, HeadConfigFile)))
		_, err := Load(dir, ck)
		assert.ErrorContains(t, err, "no prediction head")
	})
	t.Run("unexpected tensor", func(t *testing.T) {
		dir := edit(t, "", nil)
		require.NoError(t, os.Remove(filepath.Join(dir, SideFile)))
		cfg := filepath.Join(dir, ConfigFile)
		b, _ := os.ReadFile(cfg)
		require.NoError(t, os.WriteFile(cfg, []byte(strings.Replace(string(b), `"leave_out": []`, `"leave_out": [1]`, 1)), 0o644))
		_, err := Load(dir, ck)
		assert.ErrorContains(t, err, "unexpected tensor")
	})
	t.Run("side file of another base model", func(t *testing.T) {
		other := tinyCheckpoint(t, true)
		other.Fingerprint = "sha256:other"
		_, err := Load(edit(t, "", nil), other)
		assert.ErrorContains(t, err, "made for base model")
		assert.ErrorContains(t, err, SideFile)
	})
}

// FuzzParseConfigs feeds adapter_config.json and head_config.json contents
// to the parsers Load uses: any input gives a config or an error, never a
// panic.
func FuzzParseConfigs(f *testing.F) {
	f.Add([]byte(`{"config":{"mh_adapter":true,"output_adapter":true,"reduction_factor":16,"non_linearity":"swish","leave_out":[1]},"name":"x","hidden_size":16}`),
		[]byte(`{"config":{"head_type":"classification","num_labels":2,"layers":2,"activation_function":"tanh","label2id":{"a":0,"b":1},"use_pooler":false},"name":"x"}`))
	f.Add([]byte(`{"config":{"reduction_factor":{"0":2,"default":2},"mh_adapter":false,"output_adapter":true,"non_linearity":"relu"},"name":"y"}`),
		[]byte(`{"config":{"head_type":"classification","num_labels":1,"layers":1},"name":"y"}`))
	f.Fuzz(func(t *testing.T, ac, hc []byte) {
		if fc, err := parseFolderConfig("a", ac); err == nil {
			if bn, err := parseBn("a", fc.Config, 16, 2); err == nil {
				c := configFromBn(bn, 16, 2)
				if _, err := c.Resolve(16, 2); err != nil && c.ReductionFactor == 0 && c.Bottleneck <= 16 {
					t.Fatalf("parsed %+v into %+v, which does not resolve: %v", bn, c, err)
				}
			}
		}
		if fc, err := parseFolderConfig("h", hc); err == nil {
			if h, labels, err := parseHead("h", fc.Config); err == nil && h.NumLabels > 1 && len(labels) != h.NumLabels {
				t.Fatalf("%d labels for %d outputs", len(labels), h.NumLabels)
			}
		}
	})
}
