package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	cpu "github.com/houlsby/adapters/cpu_fallback"
	"github.com/houlsby/adapters/internal/testassets"
)

func runCLI(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

// The BERT-base sweep. Expected adapter counts are 24·(2·768·m + 768 + m),
// confirmed with AdapterHub `adapters` 1.3.0 (see adapter/count_test.go).
// The 313,344 ... 9,455,616 leave out b_down (24·m each): the
// "w/o b_down" column must give exactly those.
func TestParamsBertBase(t *testing.T) {
	code, out, errOut := runCLI("params", filepath.Join("testdata", "bert-base-uncased-config.json"), "--train-layernorm=false")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := map[string]string{"8": "313,536", "16": "608,640", "32": "1,198,848", "64": "2,379,264", "128": "4,740,096", "256": "9,461,760"}
	wantNoDown := map[string]string{"8": "313,344", "16": "608,256", "32": "1,198,080", "64": "2,377,728", "128": "4,737,024", "256": "9,455,616"}
	rows := 0
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 9 {
			if w, ok := want[f[0]]; ok {
				rows++
				if f[3] != w {
					t.Errorf("m=%s: adapter params %s, want %s", f[0], f[3], w)
				}
				if f[4] != wantNoDown[f[0]] {
					t.Errorf("m=%s: adapter params w/o b_down %s, want %s", f[0], f[4], wantNoDown[f[0]])
				}
				if f[2] != "24" {
					t.Errorf("m=%s: %s adapters, want 24", f[0], f[2])
				}
			}
		}
	}
	if rows != 6 {
		t.Errorf("%d sweep rows in:\n%s", rows, out)
	}
	if !strings.Contains(out, "109,482,240") {
		t.Errorf("backbone count missing:\n%s", out)
	}
	// m = 64 with LayerNorms (the default): 2,379,264 + 38,400 + 1,538 =
	// 2,419,202 trained, 2.210% of 109,482,240.
	_, out, _ = runCLI("params", filepath.Join("testdata", "bert-base-uncased-config.json"), "--bottlenecks", "64")
	if !regexp.MustCompile(`64\s+99,136\s+24\s+2,379,264\s+2,377,728\s+38,400\s+1,538\s+2,419,202\s+2\.210%`).MatchString(out) {
		t.Errorf("m=64 row with LayerNorms:\n%s", out)
	}
	code, out, _ = runCLI("params", "--strategy", "top_k", "--top-k", "2", filepath.Join("testdata", "bert-base-uncased-config.json"))
	// Top 2 layers (2·7,087,872) + pooler (590,592) + classifier (1,538).
	if code != 0 || !strings.Contains(out, "14,767,874") {
		t.Errorf("top_k 2:\n%s", out)
	}
}

func TestParamsErrors(t *testing.T) {
	for _, args := range [][]string{
		{"params"},
		{"params", "testdata/nope.json"},
		{"params", "testdata/bert-base-uncased-config.json", "--strategy", "lora"},
		{"params", "testdata/bert-base-uncased-config.json", "--bottlenecks", "8,x"},
		{"params", "testdata/bert-base-uncased-config.json", "--bottlenecks", "1000"},
	} {
		if code, _, _ := runCLI(args...); code == 0 {
			t.Errorf("%v: exit 0", args)
		}
	}
}

// Every command has a --help that documents all its flags.
func TestHelp(t *testing.T) {
	code, out, _ := runCLI("help")
	if code != 0 {
		t.Fatal("help failed")
	}
	for _, c := range commands {
		if !strings.Contains(out, c.name) {
			t.Errorf("usage does not list %s", c.name)
		}
		code, out, _ := runCLI(c.name, "--help")
		if code != 0 || !strings.Contains(out, "Usage: train-gpu "+c.name) {
			t.Errorf("%s --help: exit %d\n%s", c.name, code, out)
		}
	}
	_, out, _ = runCLI("train", "--help")
	for _, f := range []string{"-c", "-set", "-resume", "-dry-run", "-epochs", "-lr", "-device", "-max-train-examples", "-output"} {
		if !strings.Contains(out, "  "+f) {
			t.Errorf("train --help lacks %s", f)
		}
	}
	if code, _, _ := runCLI("frobnicate"); code != 2 {
		t.Errorf("unknown command: exit %d", code)
	}
}

func spamConfig(t *testing.T) string {
	t.Helper()
	testassets.Require(t, "make assets", filepath.Join(testassets.ModelDir(), "config.json"), filepath.Join(testassets.SpamDir(), "train.jsonl"))
	// The example's paths are relative to the repository root.
	root := testassets.Root()
	wd, _ := os.Getwd()
	if err := os.Chdir(root); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chdir(wd) })
	return filepath.Join(root, "examples", "spam.toml")
}

func TestTrainDryRun(t *testing.T) {
	cfg := spamConfig(t)
	code, out, errOut := runCLI("train", "-c", cfg, "--dry-run", "--device", "cpu", "--max-train-examples", "300", "--set", "train.lr=3e-4")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, s := range []string{"12 adapters of m=64", "605,954 of 22,713,216", "train.jsonl: 300 examples", "labels: ham, spam", "device: cpu", "dry run"} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
	code, out, errOut = runCLI("train", "-c", cfg, "--dry-run", "--max-train-examples", "300", "--set", "device.accumulate=float64")
	if code != 0 || !strings.Contains(out, "device: cpu (matrix products accumulate in float64)") || !strings.Contains(errOut, "float64 accumulation") {
		t.Errorf("float64 accumulation: exit %d: %s\n%s", code, out, errOut)
	}
	code, _, errOut = runCLI("train", "-c", cfg, "--dry-run", "--device", "cuda", "--set", "device.accumulate=float64")
	if code != 1 || !strings.Contains(errOut, "device.accumulate") {
		t.Errorf("float64 accumulation on cuda: exit %d: %s", code, errOut)
	}
	code, _, errOut = runCLI("train", "-c", cfg, "--dry-run", "--set", "train.learning_rate=1")
	if code != 1 || !strings.Contains(errOut, "unknown key train.learning_rate") {
		t.Errorf("unknown key: exit %d: %s", code, errOut)
	}
	code, _, errOut = runCLI("train", "-c", cfg, "--dry-run", "--batch-size", "0")
	if code != 1 || !strings.Contains(errOut, "train.batch_size") {
		t.Errorf("bad batch size: exit %d: %s", code, errOut)
	}
}

// Without the cuda build tag, --device cuda is a clear error and auto falls
// back to the CPU saying why.
func TestDeviceSelection(t *testing.T) {
	if _, err := openDevice("cuda", 0, &bytes.Buffer{}); err == nil {
		t.Skip("a CUDA device opened; this test covers builds without CUDA")
	} else if !strings.Contains(err.Error(), "device cuda") {
		t.Errorf("cuda error: %v", err)
	}
	var log bytes.Buffer
	be, err := openDevice("auto", 0, &log)
	if err != nil || be.Name() == "" || !strings.Contains(log.String(), "using the CPU") {
		t.Errorf("auto: %v %q", err, log.String())
	}
	if _, err := openDevice("tpu", 0, &log); err == nil {
		t.Error("tpu accepted")
	}
}

// Float64 accumulation: the CPU backend with the option for cpu and auto
// (auto saying why), a clear error for cuda and for an unknown value.
func TestDeviceAccumulate(t *testing.T) {
	for _, kind := range []string{"cpu", "auto"} {
		var log bytes.Buffer
		be, err := openDeviceAcc(kind, 0, "float64", &log)
		require.NoError(t, err, kind)
		c, ok := be.(*cpu.Backend)
		require.True(t, ok, "%s: %T", kind, be)
		assert.True(t, c.AccumulatesF64(), kind)
		if kind == "auto" {
			assert.Contains(t, log.String(), "float64 accumulation")
		}
	}
	be, err := openDeviceAcc("cpu", 0, "float32", &bytes.Buffer{})
	require.NoError(t, err)
	assert.False(t, be.(*cpu.Backend).AccumulatesF64())
	_, err = openDeviceAcc("cuda", 0, "float64", &bytes.Buffer{})
	require.ErrorContains(t, err, "CPU-only")
	_, err = openDeviceAcc("cpu", 0, "float16", &bytes.Buffer{})
	require.ErrorContains(t, err, "float16")
}

func TestGroup(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 22713216: "22,713,216", -1234: "-1,234"} {
		if got := group(n); got != want {
			t.Errorf("group(%d) = %s", n, got)
		}
	}
}

// updateDocs rewrites docs/cli.md's help blocks from the commands' --help:
// go test ./cmd/train-gpu -run TestDocsMatchHelp -update
var updateDocs = flag.Bool("update", false, "rewrite the --help blocks of docs/cli.md")

// docs/cli.md carries every command's --help text verbatim: the first
// fenced block after its "### NAME" heading (and the overview's after the
// title). -update regenerates them.
func TestDocsMatchHelp(t *testing.T) {
	path := filepath.Join("..", "..", "docs", "cli.md")
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	doc := string(raw)
	if *updateDocs {
		_, usageOut, _ := runCLI("help")
		doc = replaceBlock(t, doc, "# train-gpu: command-line reference", usageOut)
		for _, c := range commands {
			_, out, _ := runCLI(c.name, "--help")
			doc = replaceBlock(t, doc, "### "+c.name+"\n", out)
		}
		require.NoError(t, os.WriteFile(path, []byte(doc), 0o644))
	}
	for _, c := range commands {
		_, out, _ := runCLI(c.name, "--help")
		assert.Contains(t, doc, strings.TrimRight(out, "\n"), "docs/cli.md lacks the current `train-gpu %s --help` text (go test ./cmd/train-gpu -run TestDocsMatchHelp -update)", c.name)
	}
}

// replaceBlock replaces the first fenced code block after heading in doc
// with text.
func replaceBlock(t *testing.T, doc, heading, text string) string {
	t.Helper()
	h := strings.Index(doc, heading)
	require.GreaterOrEqual(t, h, 0, "docs/cli.md has no %q", heading)
	open := strings.Index(doc[h:], "```\n")
	require.GreaterOrEqual(t, open, 0)
	start := h + open + len("```\n")
	end := strings.Index(doc[start:], "```")
	require.GreaterOrEqual(t, end, 0)
	return doc[:start] + strings.TrimRight(text, "\n") + "\n" + doc[start+end:]
}

func TestInspectAndData(t *testing.T) {
	if code, _, errOut := runCLI("data", "enron"); code != 1 || !strings.Contains(errOut, `unknown dataset "enron"`) {
		t.Errorf("data enron: exit %d %s", code, errOut)
	}
	if code, _, _ := runCLI("inspect"); code != 2 {
		t.Errorf("inspect without a folder: exit %d", code)
	}
	dir := testassets.ModelDir()
	testassets.Require(t, "make assets", filepath.Join(dir, "model.safetensors"))
	code, out, errOut := runCLI("inspect", dir)
	if code != 0 || !strings.Contains(out, "384") || !strings.Contains(strings.ToLower(out), "fingerprint") {
		t.Errorf("inspect: exit %d\n%s\n%s", code, out, errOut)
	}
}
