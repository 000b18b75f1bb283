package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
	if code != 0 || !strings.Contains(stdout, "strategy head, 2 labels") {
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
