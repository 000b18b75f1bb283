package trainer

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/houlsby/adapters/adapter"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "run.toml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const minimal = `
[model]
dir = "m"
[data]
train = "t.jsonl"
`

func TestConfigDefaults(t *testing.T) {
	c, err := LoadConfig(writeConfig(t, minimal), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Strategy.Name != "adapters" || c.Adapter.Bottleneck != 64 || !c.TrainLayerNorm() || c.PeakLR() != 1e-3 ||
		c.MetricForBest() != "accuracy" || c.Device.Kind != "auto" || c.Model.MaxLength != 128 || !c.Train.Dropout {
		t.Errorf("defaults: %+v", c)
	}
	c, _ = LoadConfig(writeConfig(t, minimal+"[strategy]\nname = \"full\"\n"), nil)
	if c.PeakLR() != 2e-5 {
		t.Errorf("full default lr %v", c.PeakLR())
	}
}

func TestConfigUnknownKeys(t *testing.T) {
	for _, tc := range []struct{ text, key string }{
		{minimal + "[train]\nlearning_rate = 1e-3\n", "train.learning_rate"},
		{minimal + "[adapter]\nbotleneck = 8\n", "adapter.botleneck"},
		{minimal + "[extra]\nx = 1\n", "extra"},
	} {
		_, err := LoadConfig(writeConfig(t, tc.text), nil)
		if err == nil || !strings.Contains(err.Error(), "unknown key") || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%q: %v", tc.key, err)
		}
	}
	if _, err := LoadConfig(writeConfig(t, minimal), []string{"train.epoch=2"}); err == nil || !strings.Contains(err.Error(), "train.epoch") {
		t.Errorf("unknown override: %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	for _, tc := range []struct{ override, want string }{
		{"train.batch_size=0", "train.batch_size"},
		{"train.lr=-1", "train.lr"},
		{"train.warmup_ratio=1", "train.warmup_ratio"},
		{"train.on_nonfinite=ignore", "train.on_nonfinite"},
		{"train.metric_for_best=pearson", "does not fit"},
		{"train.metric_for_best=bleu", "train.metric_for_best"},
		{"strategy.name=lora", "strategy.name"},
		{"strategy.name=top_k", "strategy.top_k"},
		{"data.format=xml", "data.format"},
		{"data.labels=[\"a\",\"a\"]", "data.labels"},
		{"data.positive_label=x", "data.positive_label"},
		{"data.header=false", "data.header"},
		{"device.kind=tpu", "device.kind"},
		{"device.accumulate=float16", "device.accumulate"},
		{"device.accumulate=float64", "CPU backend"},
		{"model.head=avg", "model.head"},
		{"model.max_length=2", "model.max_length"},
		{"data.preset=cola2", "data.preset"},
		{"data.task=ranking", "data.task"},
	} {
		ov := []string{tc.override}
		switch tc.want {
		case "data.positive_label":
			ov = append(ov, `data.labels=["a","b"]`)
		case "data.header":
			ov = append(ov, "data.format=tsv")
		case "CPU backend":
			ov = append(ov, "device.kind=cuda")
		}
		_, err := LoadConfig(writeConfig(t, minimal), ov)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", tc.override, err)
		}
	}
	if _, err := LoadConfig(writeConfig(t, "[data]\ntrain = \"x\"\n"), nil); err == nil || !strings.Contains(err.Error(), "model.dir") {
		t.Errorf("missing model.dir: %v", err)
	}
}

func TestConfigOverrides(t *testing.T) {
	c, err := LoadConfig(writeConfig(t, minimal), []string{
		"train.lr=3e-4", "data.train=other.jsonl", "strategy.train_layernorm=false", "adapter.layers=[0, 2]",
		"output.dir = runs/x", "data.labels=[\"ham\",\"spam\"]", "train.seed=7",
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Train.LR != 3e-4 || c.Data.Train != "other.jsonl" || c.TrainLayerNorm() || len(c.Adapter.Layers) != 2 ||
		c.Output.Dir != "runs/x" || c.Data.Labels[1] != "spam" || c.Train.Seed != 7 {
		t.Errorf("%+v", c)
	}
	if _, err := LoadConfig(writeConfig(t, minimal), []string{"noequals"}); err == nil {
		t.Error("bad override accepted")
	}
	// The encoded config reads back to the same values.
	text, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	d, err := LoadConfig(writeConfig(t, string(text)), nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if d.Train.LR != c.Train.LR || d.Data.Train != c.Data.Train || d.TrainLayerNorm() != c.TrainLayerNorm() {
		t.Errorf("encode round trip: %+v", d)
	}
}

// The shipped examples load and validate.
func TestExampleConfigs(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "examples", "*.toml"))
	if len(files) == 0 {
		t.Fatal("no examples/*.toml")
	}
	for _, f := range files {
		if _, err := LoadConfig(f, nil); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// Every key of the run file is documented in examples/spam.toml and
// docs/cli.md.
func TestEveryKeyDocumented(t *testing.T) {
	ex, err1 := os.ReadFile(filepath.Join("..", "examples", "spam.toml"))
	doc, err2 := os.ReadFile(filepath.Join("..", "docs", "cli.md"))
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	sections := reflect.TypeOf(Config{})
	for i := 0; i < sections.NumField(); i++ {
		sec := sections.Field(i)
		if !sec.IsExported() {
			continue
		}
		name := sec.Tag.Get("toml")
		for j := 0; j < sec.Type.NumField(); j++ {
			key, _, _ := strings.Cut(sec.Type.Field(j).Tag.Get("toml"), ",")
			if key == "" || key == "-" {
				continue
			}
			if !regexp.MustCompile(`(?m)^#? ?` + regexp.QuoteMeta(key) + ` = `).Match(ex) {
				t.Errorf("examples/spam.toml does not show %s.%s", name, key)
			}
			if !strings.Contains(string(doc), name+"."+key) {
				t.Errorf("docs/cli.md does not document %s.%s", name, key)
			}
		}
	}
}

// adapter.preset sets every key it fixes; keys the file or an override set
// to the same value are fine, to another value an error naming each; the
// layers keys stay the file's; the effective config re-loads unchanged.
func TestAdapterPreset(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "run.toml")
		require.NoError(t, os.WriteFile(p, []byte("[model]\ndir = \"m\"\n[data]\ntrain = \"t.jsonl\"\n"+body), 0o644))
		return p
	}
	c, err := LoadConfig(write("[adapter]\npreset = \"adapterhub-houlsby\"\nlayers = [4, 5]\n"), nil)
	require.NoError(t, err)
	want := adapter.Config{Preset: "adapterhub-houlsby", ReductionFactor: 16, NonLinearity: "swish", Init: adapter.InitBERT,
		Placement: adapter.PlaceHoulsby, Layers: []int{4, 5}}
	assert.Equal(t, want, c.Adapter)
	assert.Equal(t, adapter.HeadCLSDense, c.Model.Head)
	assert.False(t, c.TrainLayerNorm())

	// The effective config (config.toml of a run) loads to the same.
	text, err := c.Encode()
	require.NoError(t, err)
	p2 := filepath.Join(dir, "effective.toml")
	require.NoError(t, os.WriteFile(p2, text, 0o644))
	c2, err := LoadConfig(p2, nil)
	require.NoError(t, err)
	text2, err := c2.Encode()
	require.NoError(t, err)
	assert.Equal(t, string(text), string(text2))

	// As an override, on a file that spells out the paper's keys: refused,
	// naming each conflicting key.
	_, err = LoadConfig(filepath.Join("..", "examples", "spam.toml"), []string{"adapter.preset=adapterhub-houlsby"})
	require.Error(t, err)
	for _, k := range []string{"adapter.bottleneck = 64", "adapter.non_linearity = relu", "adapter.init = zero", "adapter.train_layernorm = true", "model.head = pooler"} {
		assert.Contains(t, err.Error(), k)
	}
	// Same values as the preset: accepted.
	_, err = LoadConfig(write("[adapter]\npreset = \"adapterhub-houlsby\"\nnon_linearity = \"swish\"\n[strategy]\ntrain_layernorm = false\n"), nil)
	assert.NoError(t, err)
	_, err = LoadConfig(write("[adapter]\npreset = \"adapterhub-houlsby\"\n[strategy]\ntrain_layernorm = true\n"), nil)
	assert.ErrorContains(t, err, "strategy.train_layernorm = true")
	_, err = LoadConfig(write("[adapter]\npreset = \"adapterhub-houlsby\"\n[strategy]\nname = \"full\"\n"), nil)
	assert.ErrorContains(t, err, `needs strategy.name = "adapters"`)
	_, err = LoadConfig(write("[adapter]\npreset = \"lora\"\n"), nil)
	assert.ErrorContains(t, err, `adapter.preset = "lora": want one of paper, adapterhub-houlsby`)

	// "paper" is the default made explicit.
	c, err = LoadConfig(write("[adapter]\npreset = \"paper\"\n"), nil)
	require.NoError(t, err)
	d := adapter.Default()
	d.Preset = adapter.PresetPaper
	assert.Equal(t, d, c.Adapter)
	assert.Equal(t, adapter.HeadPooler, c.Model.Head)
}
