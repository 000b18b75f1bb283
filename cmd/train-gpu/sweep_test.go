//go:build unix

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/houlsby/adapters/internal/testassets"
	"github.com/houlsby/adapters/sweep"
)

// writeTinySweep writes a sweep over the tiny sentiment task of
// writeTinyModel: head and adapters m = 4 searched over two rates, m = 2
// taking the adapters' rate, two seeds, the ablation of m = 4.
func writeTinySweep(t *testing.T, dir string) string {
	t.Helper()
	writeTinyModel(t, dir)
	run := writeRunFile(t, dir, filepath.Join(dir, "unused"))
	text := fmt.Sprintf(`[sweep]
out = %q
seeds = [1, 2]
set = ["train.epochs=1", "data.test=%s"]
prune = true
[[task]]
name = "toy"
config = %q
[[setting]]
name = "head"
set = ["strategy.name=head"]
lrs = [1e-2, 1e-1]
[[setting]]
name = "m4"
set = ["strategy.name=adapters", "adapter.bottleneck=4"]
lrs = [1e-3, 1e-2]
[[setting]]
name = "m2"
set = ["strategy.name=adapters", "adapter.bottleneck=2"]
lr_from = "m4"
[ablation]
setting = "m4"
`, filepath.Join(dir, "runs"), filepath.Join(dir, "val.jsonl"), run)
	path := filepath.Join(dir, "sweep.toml")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
	return path
}

// The scheduler path: the array sizes from --count, every index of every
// phase as its own train-gpu process (what a Kubernetes Indexed Job or a
// Slurm array task runs), then report; --list then shows every job done.
func TestSweepSchedulerIndices(t *testing.T) {
	dir := t.TempDir()
	cfg := writeTinySweep(t, dir)
	for _, phase := range sweep.Phases {
		code, out, errOut := runCLI("sweep", "-c", cfg, "--count", "--phase", phase)
		require.Equal(t, 0, code, errOut)
		n, err := strconv.Atoi(strings.TrimSpace(out))
		require.NoError(t, err)
		require.Equal(t, map[string]int{"lr": 4, "seed": 4, "ablate": 1}[phase], n, phase)
		for i := 0; i < n; i++ {
			cmd := trainGPU(t, "sweep", "-c", cfg, "--phase", phase, "--index", strconv.Itoa(i))
			outb, err := cmd.CombinedOutput()
			require.NoError(t, err, "%s %d: %s", phase, i, outb)
			assert.Contains(t, string(outb), "done")
		}
	}
	code, out, errOut := runCLI("sweep", "-c", cfg, "--list")
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, 9, strings.Count(out, "\tdone\n"), out)
	code, out, errOut = runCLI("report", "-c", cfg)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "report: 8 results")
	for _, f := range []string{"report.md", "results.jsonl", "toy-params.png", "toy-lr.png", "toy-bottleneck.png", "toy-ablation.png"} {
		assert.FileExists(t, filepath.Join(dir, "runs", "report", f))
	}
	// An index out of range and a seed job before its search say why.
	code, _, errOut = runCLI("sweep", "-c", cfg, "--phase", "lr", "--index", "4")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "phase lr has 4 jobs")
	code, _, errOut = runCLI("sweep", "-c", cfg, "--phase", "seed", "--index", "0", "--out", filepath.Join(dir, "empty"))
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "not chosen yet")
}

// ablate and plot on a trained run of the tiny model.
func TestAblateAndPlotCommands(t *testing.T) {
	dir := t.TempDir()
	writeTinyModel(t, dir)
	out := filepath.Join(dir, "run")
	cfg := writeRunFile(t, dir, out)
	code, stdout, stderr := runCLI("train", "-c", cfg)
	require.Equal(t, 0, code, "%s\n%s", stdout, stderr)
	code, stdout, stderr = runCLI("ablate", "-c", cfg, "--device", "cpu")
	require.Equal(t, 0, code, "%s\n%s", stdout, stderr)
	assert.Contains(t, stdout, "first\\last")
	for _, f := range []string{"ablation.json", "ablation.tsv", "ablation.png"} {
		assert.FileExists(t, filepath.Join(out, "ablation", f))
	}
	code, stdout, stderr = runCLI("plot", out)
	require.Equal(t, 0, code, "%s\n%s", stdout, stderr)
	assert.FileExists(t, filepath.Join(out, "training.png"))
	code, _, stderr = runCLI("plot", dir)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "log.jsonl")
	code, _, stderr = runCLI("ablate", "-c", cfg, "--device", "cpu", "--metric", "bleu")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "bleu")
}

// The --quick grid of examples/sweep/sweep.toml on the real model and the
// four real corpora: every job in its own process, the report with its 16
// plots, then a second run that redoes nothing. This is the CI check that
// the pipeline works end to end (about 1.5-3 minutes on 2 cores).
func TestSweepQuickReal(t *testing.T) {
	var need []string
	for _, d := range []string{"spam", "fortunes", "afinn", "wordnet"} {
		need = append(need, filepath.Join(testassets.Path("build", "assets", d), "test.jsonl"))
	}
	testassets.Require(t, "make assets", append(need, filepath.Join(testassets.ModelDir(), "model.safetensors"))...)
	wd, _ := os.Getwd()
	require.NoError(t, os.Chdir(testassets.Root()))
	t.Cleanup(func() { os.Chdir(wd) })
	t.Setenv(mainEnv, "1") // the job processes are this test binary running main
	out := t.TempDir()
	code, stdout, stderr := runCLI("sweep", "-c", "examples/sweep/sweep.toml", "--quick", "--out", out)
	require.Equal(t, 0, code, "%s\n%s", stdout, stderr)
	assert.Contains(t, stdout, "[48/48] ablate:wordnet/adapters-m64: done")
	assert.Contains(t, stdout, "left")
	raw, err := os.ReadFile(filepath.Join(out, "results.jsonl"))
	require.NoError(t, err)
	assert.Equal(t, 44, strings.Count(string(raw), "\n"))
	md, err := os.ReadFile(filepath.Join(out, "report", "report.md"))
	require.NoError(t, err)
	assert.Contains(t, string(md), "Quick sweep")
	for _, task := range []string{"spam", "fortunes", "afinn", "wordnet"} {
		for _, kind := range []string{"params", "bottleneck", "lr", "ablation"} {
			f := task + "-" + kind + ".png"
			assert.FileExists(t, filepath.Join(out, "report", f))
			assert.Contains(t, string(md), "("+f+")")
		}
	}
	code, stdout, stderr = runCLI("sweep", "-c", "examples/sweep/sweep.toml", "--quick", "--out", out, "--no-report")
	require.Equal(t, 0, code, "%s\n%s", stdout, stderr)
	assert.Contains(t, stdout, "48 of 48 jobs were done before")
}
