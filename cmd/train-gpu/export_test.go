package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/houlsby/adapters/model"
)

// train --strategy full writes hf-model/; export writes a folder for a
// head-only run and refuses an adapters run; missing flags are usage errors.
func TestExportCommand(t *testing.T) {
	dir := t.TempDir()
	writeTinyModel(t, dir)
	cfg := filepath.Join(dir, "run.toml")
	toml := fmt.Sprintf("[model]\ndir = %q\nmax_length = 16\n[data]\ntrain = %q\n[adapter]\nbottleneck = 4\n[train]\nmax_steps = 2\nbatch_size = 8\n[device]\nkind = \"cpu\"\n",
		dir, filepath.Join(dir, "train.jsonl"))
	if err := os.WriteFile(cfg, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	full := filepath.Join(dir, "full")
	code, stdout, stderr := runCLI("train", "-c", cfg, "--strategy", "full", "--output", full)
	if code != 0 || !strings.Contains(stdout, "hf-model: "+filepath.Join(full, "hf-model")) {
		t.Fatalf("train full: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if _, err := model.LoadCheckpoint(filepath.Join(full, "hf-model")); err != nil {
		t.Errorf("hf-model of the full run: %v", err)
	}
	head := filepath.Join(dir, "head")
	if code, stdout, stderr = runCLI("train", "-c", cfg, "--strategy", "head", "--output", head); code != 0 || strings.Contains(stdout, "hf-model") {
		t.Fatalf("train head: exit %d\n%s\n%s", code, stdout, stderr)
	}
	out := filepath.Join(dir, "exported")
	code, stdout, stderr = runCLI("export", "--adapter", filepath.Join(head, "adapter.safetensors"), "--model", dir, "--out", out)
	if code != 0 || !strings.Contains(stdout, "strategy head, head pooler, 2 labels") {
		t.Fatalf("export head: exit %d\n%s\n%s", code, stdout, stderr)
	}
	ck, err := model.LoadCheckpoint(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(ck.Ignored) != 2 {
		t.Errorf("classifier tensors: %v", ck.Ignored)
	}
	ad := filepath.Join(dir, "adapters")
	if code, _, stderr = runCLI("train", "-c", cfg, "--output", ad); code != 0 {
		t.Fatalf("train adapters: exit %d\n%s", code, stderr)
	}
	code, _, stderr = runCLI("export", "--adapter", filepath.Join(ad, "adapter.safetensors"), "--model", dir, "--out", filepath.Join(dir, "no"))
	if code != 1 || !strings.Contains(stderr, "cannot represent") {
		t.Errorf("export adapters: exit %d: %s", code, stderr)
	}
	if code, _, _ = runCLI("export", "--model", dir); code != 2 {
		t.Errorf("export without --adapter/--out: exit %d, want 2", code)
	}
}

// export --format adapterhub writes a folder that eval and predict take as
// --adapter and that gives the adapter file's predictions and logits
// exactly; --format onnx writes a model file; the mean head and a bad
// --format are refused.
func TestExportAdapterHubAndONNXCommand(t *testing.T) {
	dir := t.TempDir()
	writeTinyModel(t, dir)
	cfg := filepath.Join(dir, "run.toml")
	toml := fmt.Sprintf("[model]\ndir = %q\nmax_length = 16\n[data]\ntrain = %q\n[adapter]\nbottleneck = 4\n[train]\nmax_steps = 2\nbatch_size = 8\n[device]\nkind = \"cpu\"\n",
		dir, filepath.Join(dir, "train.jsonl"))
	require.NoError(t, os.WriteFile(cfg, []byte(toml), 0o644))
	run := filepath.Join(dir, "run")
	code, _, stderr := runCLI("train", "-c", cfg, "--output", run)
	require.Equal(t, 0, code, stderr)
	file := filepath.Join(run, "adapter.safetensors")
	ah := filepath.Join(dir, "ah", "spam-task")
	code, stdout, stderr := runCLI("export", "--format", "adapterhub", "--adapter", file, "--model", dir, "--out", ah)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "adapterhub; strategy adapters, head pooler, 2 labels")
	b, err := os.ReadFile(filepath.Join(ah, "adapter_config.json"))
	require.NoError(t, err)
	assert.Contains(t, string(b), `"name": "spam-task"`, "the name defaults to the folder's")

	predict := func(adapterPath string) string {
		out := filepath.Join(t.TempDir(), "p.jsonl")
		code, _, stderr := runCLI("predict", "--adapter", adapterPath, "--model", dir, "--input", filepath.Join(dir, "val.jsonl"), "--output", out, "--device", "cpu", "--max-length", "16")
		require.Equal(t, 0, code, stderr)
		b, err := os.ReadFile(out)
		require.NoError(t, err)
		return string(b)
	}
	fromFile := predict(file)
	assert.Contains(t, fromFile, `"logits":[`)
	assert.Equal(t, fromFile, predict(ah), "the AdapterHub folder predicts exactly as the file")
	code, stdout, stderr = runCLI("eval", "--adapter", ah, "--model", dir, "--data", filepath.Join(dir, "val.jsonl"), "--device", "cpu", "--max-length", "16")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "accuracy")

	onnxPath := filepath.Join(dir, "model.onnx")
	code, _, stderr = runCLI("export", "--format", "onnx", "--adapter", ah, "--model", dir, "--out", onnxPath)
	require.Equal(t, 0, code, stderr)
	st, err := os.Stat(onnxPath)
	require.NoError(t, err)
	assert.Greater(t, st.Size(), int64(10000))

	code, _, stderr = runCLI("export", "--format", "tflite", "--adapter", file, "--model", dir, "--out", filepath.Join(dir, "x"))
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, `--format "tflite"`)
	mean := filepath.Join(dir, "mean")
	code, _, stderr = runCLI("train", "-c", cfg, "--output", mean, "--set", "model.head=mean")
	require.Equal(t, 0, code, stderr)
	code, _, stderr = runCLI("export", "--format", "adapterhub", "--adapter", filepath.Join(mean, "adapter.safetensors"), "--model", dir, "--out", filepath.Join(dir, "no"))
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "has no AdapterHub equivalent")
}
