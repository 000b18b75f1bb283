package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/houlsby/adapters/internal/tinybert"
	"github.com/houlsby/adapters/model"
	"github.com/houlsby/adapters/model/safetensors"
)

// writeTinyModel writes a random 2-layer BERT (d = 16) and a toy sentiment
// task, so train, eval and predict run end to end in well under a second.
func writeTinyModel(t *testing.T, dir string) {
	t.Helper()
	words := []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "movie", "great", "awful", "the", "plot", "was", "very"}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	g := rand.New(rand.NewPCG(3, 4))
	tinybert.Write(t, dir, tinybert.Spec{Words: words, ConfigJSON: `{"model_type":"bert","hidden_act":"gelu","hidden_size":16,"num_hidden_layers":2,"num_attention_heads":2,
"intermediate_size":32,"vocab_size":%d,"max_position_embeddings":32,"type_vocab_size":2,"layer_norm_eps":1e-12}`, WithPooler: true, Rand: g})
	for _, split := range []struct {
		name string
		n    int
	}{{"train", 48}, {"val", 16}} {
		var b strings.Builder
		for i := 0; i < split.n; i++ {
			label, w := "pos", []string{"good", "great"}[g.IntN(2)]
			if g.IntN(2) == 0 {
				label, w = "neg", []string{"bad", "awful"}[g.IntN(2)]
			}
			js, _ := json.Marshal(map[string]string{"text": "the movie was very " + w, "label": label})
			b.Write(append(js, '\n'))
		}
		must(os.WriteFile(filepath.Join(dir, split.name+".jsonl"), []byte(b.String()), 0o644))
	}
}

// writeRunFile writes dir/run.toml: adapters (m = 4) on the tiny model and
// data of writeTinyModel, 2 epochs of batch 8 on the CPU, output in out.
func writeRunFile(t *testing.T, dir, out string) string {
	t.Helper()
	cfg := filepath.Join(dir, "run.toml")
	toml := fmt.Sprintf(`[model]
dir = %q
max_length = 16
[data]
train = %q
validation = %q
[adapter]
bottleneck = 4
[train]
epochs = 2
batch_size = 8
[output]
dir = %q
[device]
kind = "cpu"
`, dir, filepath.Join(dir, "train.jsonl"), filepath.Join(dir, "val.jsonl"), out)
	require.NoError(t, os.WriteFile(cfg, []byte(toml), 0o644))
	return cfg
}

func TestTrainEvalPredict(t *testing.T) {
	dir := t.TempDir()
	writeTinyModel(t, dir)
	out := filepath.Join(dir, "run")
	cfg := writeRunFile(t, dir, out)
	code, stdout, stderr := runCLI("train", "-c", cfg)
	if code != 0 {
		t.Fatalf("train: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "trained 12 steps") || !strings.Contains(stdout, "validation: loss") {
		t.Errorf("train output:\n%s", stdout)
	}
	for _, f := range []string{"adapter.safetensors", "best.safetensors", "checkpoint.safetensors", "config.toml", "log.jsonl"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("missing %s", f)
		}
	}
	code, stdout, stderr = runCLI("eval", "-c", cfg, "--device", "cpu")
	if code != 0 || !strings.Contains(stdout, "accuracy") || !strings.Contains(stdout, "(n=16)") {
		t.Errorf("eval: exit %d\n%s\n%s", code, stdout, stderr)
	}
	pred := filepath.Join(dir, "pred.jsonl")
	code, _, stderr = runCLI("predict", "--adapter", filepath.Join(out, "adapter.safetensors"), "--model", dir, "--input", filepath.Join(dir, "val.jsonl"),
		"--output", pred, "--device", "cpu", "--max-length", "16")
	if code != 0 {
		t.Fatalf("predict: exit %d: %s", code, stderr)
	}
	raw, _ := os.ReadFile(pred)
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(lines) != 16 {
		t.Fatalf("%d predictions", len(lines))
	}
	var rec struct {
		Prediction    string             `json:"prediction"`
		Probabilities map[string]float64 `json:"probabilities"`
		Line          int                `json:"line"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	if (rec.Prediction != "pos" && rec.Prediction != "neg") || rec.Line != 1 || len(rec.Probabilities) != 2 {
		t.Errorf("prediction record %s", lines[0])
	}
	// Another base model is refused.
	other := t.TempDir()
	writeTinyModel(t, other)
	os.Remove(filepath.Join(other, "model.safetensors"))
	cj, _ := os.ReadFile(filepath.Join(other, "config.json"))
	cfgM, _ := model.ParseConfig("x", cj)
	var ts []safetensors.NamedTensor
	for _, s := range model.ExpectedTensors(cfgM, true) {
		ts = append(ts, safetensors.F32Tensor(s.Name, s.Shape, make([]float32, s.NumElements())))
	}
	if err := safetensors.Write(filepath.Join(other, "model.safetensors"), ts, nil); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCLI("eval", "--adapter", filepath.Join(out, "adapter.safetensors"), "--model", other, "--data", filepath.Join(dir, "val.jsonl"), "--device", "cpu")
	if code == 0 || !strings.Contains(stderr, "made for base model") {
		t.Errorf("other base: exit %d: %s", code, stderr)
	}
}

// Full fine-tuning with the mean head, as a new user tried it: the run
// warns at once that hf-model/ cannot be written, trains, evaluates the test
// set, writes its files, and exits 0.
func TestTrainFullMeanHeadExitsZero(t *testing.T) {
	dir := t.TempDir()
	writeTinyModel(t, dir)
	out := filepath.Join(dir, "run")
	code, stdout, stderr := runCLI("train", "-c", writeRunFile(t, dir, out), "--strategy", "full", "--set", "model.head=mean",
		"--set", "data.test="+filepath.Join(dir, "val.jsonl"), "--max-steps", "4")
	require.Equal(t, 0, code, "train: %s\n%s", stdout, stderr)
	assert.Contains(t, stdout, "test:")
	assert.Contains(t, stdout, "warning: hf-model/ will not be written")
	assert.Contains(t, stderr, `"event":"warning"`)
	for _, f := range []string{"adapter.safetensors", "test_predictions.jsonl", "checkpoint.safetensors"} {
		assert.FileExists(t, filepath.Join(out, f))
	}
	assert.NoDirExists(t, filepath.Join(out, "hf-model"))
}

// `eval --data x.tsv` reads TSV by the extension (it used to read any file
// as JSON Lines unless --format said otherwise), and a two-class task prints
// its binary F1 and the per-class table.
func TestEvalFormatFromExtension(t *testing.T) {
	dir := t.TempDir()
	writeTinyModel(t, dir)
	out := filepath.Join(dir, "run")
	code, stdout, stderr := runCLI("train", "-c", writeRunFile(t, dir, out), "--max-steps", "2")
	require.Equal(t, 0, code, "train: %s\n%s", stdout, stderr)
	tsv := filepath.Join(dir, "val.tsv")
	require.NoError(t, os.WriteFile(tsv, []byte("text\tlabel\nthe movie was very good\tpos\nthe movie was very bad\tneg\n"), 0o644))
	code, stdout, stderr = runCLI("eval", "--adapter", filepath.Join(out, "adapter.safetensors"), "--model", dir, "--data", tsv, "--device", "cpu", "--max-length", "16")
	require.Equal(t, 0, code, "eval: %s\n%s", stdout, stderr)
	assert.Contains(t, stdout, "(n=2)")
	assert.Contains(t, stdout, "  f1 ")
	assert.Contains(t, stdout, "confusion matrix")
	txt := filepath.Join(dir, "val.txt")
	require.NoError(t, os.WriteFile(txt, []byte("the movie was very good\n"), 0o644))
	code, _, stderr = runCLI("eval", "--adapter", filepath.Join(out, "adapter.safetensors"), "--model", dir, "--data", txt, "--device", "cpu")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "extension")
}
