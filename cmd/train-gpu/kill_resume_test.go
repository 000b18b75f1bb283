//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/houlsby/adapters/adapter"
	"github.com/houlsby/adapters/internal/tinybert"
	"github.com/houlsby/adapters/trainer"
)

// mainEnv, when set to "1", makes the test binary run train-gpu's main with
// its arguments instead of the tests, so a test can run the real program as
// a subprocess (and SIGKILL it) without a separate go build.
const mainEnv = "TRAIN_GPU_TEST_RUN_MAIN"

// TestMain runs main when mainEnv asks for it, and the tests otherwise.
func TestMain(m *testing.M) {
	if os.Getenv(mainEnv) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// trainGPU returns a command running train-gpu args in this test binary.
func trainGPU(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), mainEnv+"=1")
	return cmd
}

// writeKillResumeRun writes a random 2-layer BERT (d = 32), a toy task with
// sentences of 3 to 30 words, and a run file with steps total optimizer
// steps, a checkpoint every ckEvery steps and an evaluation every 25 steps.
// It returns the run file's path.
func writeKillResumeRun(t *testing.T, dir, out string, steps, ckEvery int) string {
	t.Helper()
	words := []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "movie", "great", "awful", "the", "plot", "was", "very", "a", "film", "acting", "is", "not"}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	g := rand.New(rand.NewPCG(7, 8))
	tinybert.Write(t, dir, tinybert.Spec{Words: words, ConfigJSON: `{"model_type":"bert","hidden_act":"gelu","hidden_size":32,"num_hidden_layers":2,"num_attention_heads":4,
"intermediate_size":64,"vocab_size":%d,"max_position_embeddings":64,"type_vocab_size":2,"layer_norm_eps":1e-12}`, WithPooler: true, Rand: g})
	filler := words[10:]
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
			var text []string
			for k := 0; k < 2+g.IntN(29); k++ {
				text = append(text, filler[g.IntN(len(filler))])
			}
			text = append(text, w)
			js, _ := json.Marshal(map[string]string{"text": strings.Join(text, " "), "label": label})
			b.Write(append(js, '\n'))
		}
		must(os.WriteFile(filepath.Join(dir, split.name+".jsonl"), []byte(b.String()), 0o644))
	}
	run := filepath.Join(dir, "run.toml")
	toml := fmt.Sprintf(`[model]
dir = %q
max_length = 32
[data]
train = %q
validation = %q
[adapter]
bottleneck = 8
[train]
max_steps = %d
batch_size = 8
checkpoint_every = %d
eval_every = 25
log_every = 5
[output]
dir = %q
[device]
kind = "cpu"
`, dir, filepath.Join(dir, "train.jsonl"), filepath.Join(dir, "val.jsonl"), steps, ckEvery, out)
	must(os.WriteFile(run, []byte(toml), 0o644))
	return run
}

// A train-gpu process killed with SIGKILL after its first checkpoint and
// resumed with --resume ends with an adapter file byte-identical to an
// uninterrupted run's (docs/design.md: deterministic on the CPU, also across a kill).
func TestKillResumeBitwise(t *testing.T) {
	if testing.Short() {
		t.Skip("runs train-gpu three times as a subprocess (a few seconds); skipped with -short")
	}
	const steps, ckEvery = 400, 10
	dir := t.TempDir()
	outA, outB := filepath.Join(dir, "uninterrupted"), filepath.Join(dir, "killed")
	runA := writeKillResumeRun(t, dir, outA, steps, ckEvery)
	runB := filepath.Join(dir, "run-killed.toml")
	raw, err := os.ReadFile(runA)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(runB, bytes.Replace(raw, []byte(fmt.Sprintf("%q", outA)), []byte(fmt.Sprintf("%q", outB)), 1), 0o644); err != nil {
		t.Fatal(err)
	}

	// The run to kill: start it, wait for its first checkpoint, SIGKILL.
	ckPath := filepath.Join(outB, trainer.CheckpointFileName)
	victim := trainGPU(t, "train", "-c", runB)
	var vOut, vErr bytes.Buffer
	victim.Stdout, victim.Stderr = &vOut, &vErr
	start := time.Now()
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- victim.Wait() }()
	deadline := time.After(60 * time.Second)
	var waitErr error
poll:
	for {
		select {
		case waitErr = <-exited:
			t.Fatalf("train-gpu exited (%v) before it could be killed; stdout:\n%s\nstderr:\n%s", waitErr, vOut.String(), vErr.String())
		case <-deadline:
			victim.Process.Kill()
			t.Fatalf("no checkpoint after 60 s; stderr:\n%s", vErr.String())
		case <-time.After(2 * time.Millisecond):
			if _, err := os.Stat(ckPath); err == nil {
				if err := victim.Process.Kill(); err != nil {
					t.Fatalf("kill: %v", err)
				}
				waitErr = <-exited
				break poll
			}
		}
	}
	t.Logf("killed after %v", time.Since(start).Round(time.Millisecond))
	var ee *exec.ExitError
	if !errors.As(waitErr, &ee) {
		t.Fatalf("killed run: wait returned %v, want an exit error", waitErr)
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("killed run ended with %v, not by SIGKILL", ee)
	}
	ck, err := trainer.LoadCheckpoint(ckPath, "")
	if err != nil {
		t.Fatalf("checkpoint left by the killed run: %v", err)
	}
	killedAt := ck.State.Step
	if killedAt < ckEvery || killedAt >= steps || killedAt%ckEvery != 0 {
		t.Fatalf("checkpoint at step %d: want a multiple of %d below %d (killed mid-way)", killedAt, ckEvery, steps)
	}
	if _, err := os.Stat(filepath.Join(outB, trainer.AdapterFileName)); err == nil {
		t.Fatalf("the killed run wrote its final %s: it was not killed mid-way", trainer.AdapterFileName)
	}
	t.Logf("checkpoint of the killed run at step %d of %d", killedAt, steps)

	// Resume it to the end.
	resumed := trainGPU(t, "train", "-c", runB, "--resume")
	if outb, err := resumed.CombinedOutput(); err != nil {
		t.Fatalf("--resume: %v\n%s", err, outb)
	} else if !strings.Contains(string(outb), fmt.Sprintf("trained %d steps", steps)) {
		t.Errorf("--resume output:\n%s", outb)
	}
	logB, err := os.ReadFile(filepath.Join(outB, trainer.LogFileName))
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf(`{"batch":%d,"epoch":%d,"event":"resume","step":%d}`, ck.State.Batch, ck.State.Epoch, killedAt); !bytes.Contains(logB, []byte(want)) {
		t.Errorf("log.jsonl has no %s", want)
	}

	// The uninterrupted run.
	if outb, err := trainGPU(t, "train", "-c", runA).CombinedOutput(); err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, outb)
	}
	t.Logf("all three runs took %v", time.Since(start).Round(time.Millisecond))

	for _, name := range []string{trainer.AdapterFileName, trainer.BestFileName} {
		a, err := os.ReadFile(filepath.Join(outA, name))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(outB, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s: the killed-and-resumed run's file (%d bytes) differs from the uninterrupted run's (%d bytes)", name, len(b), len(a))
		}
	}
	// Training went on after the resume: the final tensors are not the
	// checkpoint's (else equal files would prove nothing about resuming).
	fin, err := adapter.Load(filepath.Join(outB, trainer.AdapterFileName), "")
	if err != nil {
		t.Fatal(err)
	}
	moved := 0
	for _, ft := range fin.Tensors {
		for _, ct := range ck.Adapter.Tensors {
			if ct.Name == ft.Name && fmt.Sprint(ct.Data) != fmt.Sprint(ft.Data) {
				moved++
			}
		}
	}
	if moved == 0 {
		t.Errorf("no tensor changed between the checkpoint at step %d and the end", killedAt)
	}
}
