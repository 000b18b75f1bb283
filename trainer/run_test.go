package trainer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/houlsby/adapters/adapter"
	cpu "github.com/houlsby/adapters/cpu_fallback"
	"github.com/houlsby/adapters/internal/tinybert"
	"github.com/houlsby/adapters/model"
)

// tinyModel writes a random 2-layer BERT (d = 16, 2 heads) with a
// vocabulary of a few words into dir; training on it takes milliseconds.
func tinyModel(t *testing.T, dir string, withPooler bool) {
	t.Helper()
	spec := tinybert.Sentiment
	spec.WithPooler = withPooler
	tinybert.Write(t, dir, spec)
}

// tinyData writes a sentiment toy task: "good/great" vs "bad/awful".
func tinyData(t *testing.T, path string, n int, seed uint64) {
	t.Helper()
	g := rand.New(rand.NewPCG(seed, 9))
	pos, neg := []string{"good", "great"}, []string{"bad", "awful"}
	filler := []string{"the", "movie", "film", "plot", "acting", "was", "is", "very", "a"}
	var b bytes.Buffer
	for i := 0; i < n; i++ {
		label, words := "pos", pos
		if g.IntN(2) == 0 {
			label, words = "neg", neg
		}
		var w []string
		for k := 0; k < 2+g.IntN(8); k++ {
			w = append(w, filler[g.IntN(len(filler))])
		}
		at := g.IntN(len(w) + 1)
		w = append(w[:at], append([]string{words[g.IntN(2)]}, w[at:]...)...)
		js, _ := json.Marshal(map[string]string{"text": strings.Join(w, " "), "label": label})
		b.Write(append(js, '\n'))
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func tinyRun(t *testing.T, out string, extra ...string) *Config {
	t.Helper()
	dir := t.TempDir()
	tinyModel(t, dir, true)
	tinyData(t, filepath.Join(dir, "train.jsonl"), 96, 1)
	tinyData(t, filepath.Join(dir, "val.jsonl"), 40, 2)
	ov := []string{"model.dir=" + dir, "model.max_length=16", "data.train=" + filepath.Join(dir, "train.jsonl"),
		"data.validation=" + filepath.Join(dir, "val.jsonl"), "output.dir=" + out, "adapter.bottleneck=4",
		"train.batch_size=8", "train.epochs=2", "train.log_every=1", "device.kind=cpu"}
	c, err := LoadConfig("", append(ov, extra...))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func train(t *testing.T, c *Config, o Options) (*Result, error) {
	t.Helper()
	s, err := Open(c)
	if err != nil {
		t.Fatal(err)
	}
	return Train(s, cpu.New(), o)
}

// A kill (StopAfter) after a checkpoint and --resume give the very same
// adapter file, byte for byte, as an uninterrupted run.
func TestResumeBitwise(t *testing.T) {
	extra := []string{"train.max_steps=14", "train.checkpoint_every=4", "train.eval_every=5"}
	a := filepath.Join(t.TempDir(), "a")
	if _, err := train(t, tinyRun(t, a, extra...), Options{}); err != nil {
		t.Fatal(err)
	}
	b := filepath.Join(t.TempDir(), "b")
	cb := tinyRun(t, b, extra...)
	if _, err := train(t, cb, Options{StopAfter: 7}); !IsStopped(err) {
		t.Fatalf("StopAfter: %v", err)
	}
	ck, err := LoadCheckpoint(filepath.Join(b, CheckpointFileName), "")
	if err != nil {
		t.Fatal(err)
	}
	if ck.State.Step != 5 { // checkpoints at 4 and at the eval at 5; steps 6, 7 are lost
		t.Errorf("checkpoint at step %d, want 5", ck.State.Step)
	}
	res, err := train(t, cb, Options{Resume: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps != 14 {
		t.Errorf("%d steps", res.Steps)
	}
	fa, _ := adapter.Load(filepath.Join(a, AdapterFileName), "")
	fb, _ := adapter.Load(filepath.Join(b, AdapterFileName), "")
	if fa == nil || fb == nil || len(fa.Tensors) != len(fb.Tensors) {
		t.Fatal("adapter files missing")
	}
	for i := range fa.Tensors {
		for j := range fa.Tensors[i].Data {
			if fa.Tensors[i].Data[j] != fb.Tensors[i].Data[j] {
				t.Fatalf("%s[%d]: %v (uninterrupted) vs %v (resumed)", fa.Tensors[i].Name, j, fa.Tensors[i].Data[j], fb.Tensors[i].Data[j])
			}
		}
	}
	// Resuming with another configuration is refused.
	cb.Train.LR = 0.5
	if _, err := train(t, cb, Options{Resume: true}); err == nil || !strings.Contains(err.Error(), "another configuration") {
		t.Errorf("resume with another config: %v", err)
	}
}

// Training the adapters on the toy task lowers the validation loss and
// writes a loadable adapter file holding exactly the trained tensors.
func TestTrainLearns(t *testing.T) {
	out := t.TempDir()
	c := tinyRun(t, out, "train.epochs=6", "train.lr=3e-3", "train.dropout=false")
	s, err := Open(c)
	if err != nil {
		t.Fatal(err)
	}
	be := cpu.New()
	m0, err := NewModel(be, s.Ckpt, s.AdapterFile(), 8, 16, c.Train.Seed)
	if err != nil {
		t.Fatal(err)
	}
	_, before, err := Evaluate(m0, s.Tok, s.EncVal, s.Splits.Validation, 8, 1)
	m0.Free()
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	res, err := Train(s, be, Options{Progress: &log})
	if err != nil {
		t.Fatal(err)
	}
	// 96 examples / 8 = 12 steps per epoch.
	if res.Steps != 72 || res.Final == nil {
		t.Fatalf("%+v", res)
	}
	t.Logf("validation loss %.4f -> %.4f, accuracy %.3f -> %.3f", before.Loss, res.Final.Loss, before.Accuracy, res.Final.Accuracy)
	if !(res.Final.Loss < before.Loss) {
		t.Errorf("validation loss did not drop: %.4f -> %.4f", before.Loss, res.Final.Loss)
	}
	f, err := adapter.Load(res.AdapterPath, s.Ckpt.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	if f.Strategy.Name != "adapters" || strings.Join(f.Labels, ",") != "neg,pos" {
		t.Errorf("adapter file: %+v", f)
	}
	if !strings.Contains(log.String(), `"event":"eval"`) || !strings.Contains(log.String(), `"event":"train"`) {
		t.Errorf("progress log:\n%s", log.String())
	}
	// The saved adapter reproduces the final validation scores.
	m1, err := NewModel(be, s.Ckpt, f, 8, 16, 999)
	if err != nil {
		t.Fatal(err)
	}
	defer m1.Free()
	_, again, err := Evaluate(m1, s.Tok, s.EncVal, s.Splits.Validation, 8, 1)
	if err != nil {
		t.Fatal(err)
	}
	if again.Loss != res.Final.Loss || again.Accuracy != res.Final.Accuracy {
		t.Errorf("reloaded adapter: loss %v acc %v, training ended at %v %v", again.Loss, again.Accuracy, res.Final.Loss, res.Final.Accuracy)
	}
}

// For every strategy and head kind the encoder's trainable tensors are
// exactly the ones the strategy predicts (NewModel checks name by name),
// with the checkpoint's pooler and with a created one.
func TestStrategiesMatchModel(t *testing.T) {
	be := cpu.New()
	for _, head := range []string{adapter.HeadPooler, adapter.HeadCLS, adapter.HeadMean} {
		for _, withPooler := range []bool{true, false} {
			strategiesMatchModel(t, be, head, withPooler)
		}
	}
}

func strategiesMatchModel(t *testing.T, be *cpu.Backend, head string, withPooler bool) {
	{
		dir := t.TempDir()
		tinyModel(t, dir, withPooler)
		ck, err := model.LoadCheckpoint(dir)
		if err != nil {
			t.Fatal(err)
		}
		a := adapter.Default()
		a.Bottleneck = 4
		for _, st := range []adapter.Strategy{
			{Name: "adapters", TrainLayerNorm: true}, {Name: "adapters"}, {Name: "full"}, {Name: "head"},
			{Name: "layernorm"}, {Name: "top_k", TopK: 1}, {Name: "bitfit"},
		} {
			f := &adapter.File{Strategy: st, Head: adapter.Head{Kind: head, NumLabels: 3}, Labels: []string{"a", "b", "c"},
				BaseFingerprint: ck.Fingerprint, Base: adapter.BaseOf(ck.Config), BaseHasPooler: ck.HasPooler}
			if st.UsesAdapters() {
				f.Adapter = &a
			}
			m, err := NewModel(be, ck, f, 2, 8, 1)
			if err != nil {
				t.Errorf("%s head %s (ln %v, pooler %v): %v", st.Name, head, st.TrainLayerNorm, withPooler, err)
				continue
			}
			exp, _ := f.Expected()
			if len(exp) == 0 || len(m.TrainableParams()) != len(exp) {
				t.Errorf("%s head %s: %d trainable expected, model has %d", st.Name, head, len(exp), len(m.TrainableParams()))
			}
			m.Free()
		}
	}
}

// A non-finite loss (an MSE target of 1e30 overflows float32) is skipped
// and counted, or aborts the run, as train.on_nonfinite says.
func TestNonFinite(t *testing.T) {
	dir := t.TempDir()
	tinyModel(t, dir, true)
	var b strings.Builder
	for i := 0; i < 16; i++ {
		target := fmt.Sprint(float64(i % 5))
		if i == 3 {
			target = "1e30"
		}
		fmt.Fprintf(&b, `{"text": "good movie %d", "label": %s}`+"\n", i, target)
	}
	data := filepath.Join(dir, "reg.jsonl")
	if err := os.WriteFile(data, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"skip", "abort"} {
		c, err := LoadConfig("", []string{"model.dir=" + dir, "model.max_length=16", "data.train=" + data, "data.task=regression",
			"output.dir=" + filepath.Join(t.TempDir(), mode), "adapter.bottleneck=4", "train.batch_size=4", "train.epochs=1",
			"train.on_nonfinite=" + mode, "device.kind=cpu"})
		if err != nil {
			t.Fatal(err)
		}
		res, err := train(t, c, Options{})
		switch mode {
		case "skip":
			if err != nil {
				t.Fatal(err)
			}
			// One batch of 4 holds the 1e30 row: 3 of 4 steps update.
			if res.NonFinite != 1 || res.Steps != 3 {
				t.Errorf("skip: %d non-finite, %d steps", res.NonFinite, res.Steps)
			}
			f, err := adapter.Load(res.AdapterPath, "")
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range f.Tensors {
				for _, v := range x.Data {
					if v != v || v > 1e30 || v < -1e30 {
						t.Fatalf("%s holds %v", x.Name, v)
					}
				}
			}
		case "abort":
			if err == nil || !strings.Contains(err.Error(), "non-finite") {
				t.Errorf("abort: %v", err)
			}
		}
	}
}

// Early stopping: with a learning rate too small to change accuracy, the
// first evaluation sets the best and the next one (patience 1) stops.
func TestEarlyStopping(t *testing.T) {
	out := t.TempDir()
	c := tinyRun(t, out, "train.lr=1e-12", "train.eval_every=2", "train.early_stopping_patience=1", "train.epochs=3")
	res, err := train(t, c, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps != 4 || res.BestStep != 2 {
		t.Errorf("stopped after %d steps, best at %d; want 4 and 2", res.Steps, res.BestStep)
	}
	if _, err := os.Stat(filepath.Join(out, BestFileName)); err != nil {
		t.Error(err)
	}
}

// Test rows without labels get predictions in test_predictions.jsonl.
func TestTestPredictions(t *testing.T) {
	out := t.TempDir()
	dir := t.TempDir()
	test := filepath.Join(dir, "test.jsonl")
	if err := os.WriteFile(test, []byte("{\"text\": \"good movie\"}\n\n{\"text\": \"awful plot\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := tinyRun(t, out, "train.max_steps=2", "data.test="+test)
	res, err := train(t, c, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Test != nil {
		t.Error("unlabelled test set was scored")
	}
	raw, err := os.ReadFile(filepath.Join(out, PredictionsName))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], `"line":3`) || !(strings.Contains(lines[0], `"prediction":"pos"`) || strings.Contains(lines[0], `"prediction":"neg"`)) {
		t.Errorf("predictions:\n%s", raw)
	}
}

// The "mean" and "cls" heads train through the loop, and an eval of the
// saved file reproduces the final scores (so the head kind travels in the
// adapter file and reaches the model).
func TestPoolingHeadsTrain(t *testing.T) {
	for _, head := range []string{adapter.HeadCLS, adapter.HeadMean} {
		c := tinyRun(t, t.TempDir(), "model.head="+head, "train.epochs=4", "train.lr=3e-3", "train.dropout=false")
		s, err := Open(c)
		if err != nil {
			t.Fatal(err)
		}
		be := cpu.New()
		res, err := Train(s, be, Options{Progress: io.Discard})
		if err != nil {
			t.Fatalf("%s: %v", head, err)
		}
		f, err := adapter.Load(res.AdapterPath, s.Ckpt.Fingerprint)
		if err != nil {
			t.Fatal(err)
		}
		if f.Head.Kind != head {
			t.Errorf("adapter file head %q, want %q", f.Head.Kind, head)
		}
		for _, ts := range f.Tensors {
			if strings.HasPrefix(ts.Name, "pooler.") {
				t.Errorf("%s head: file holds %s", head, ts.Name)
			}
		}
		m, err := NewModel(be, s.Ckpt, f, 8, 16, 7)
		if err != nil {
			t.Fatal(err)
		}
		_, again, err := Evaluate(m, s.Tok, s.EncVal, s.Splits.Validation, 8, 1)
		m.Free()
		if err != nil {
			t.Fatal(err)
		}
		if again.Loss != res.Final.Loss {
			t.Errorf("%s head: reloaded loss %v, training ended at %v", head, again.Loss, res.Final.Loss)
		}
		t.Logf("%s head: validation accuracy %.3f loss %.4f", head, res.Final.Accuracy, res.Final.Loss)
	}
}

// A finished run is never lost to an optional output: full fine-tuning with
// the mean head (which BertForSequenceClassification cannot represent) warns
// before its first step, skips hf-model/, and still writes the adapter file
// and the test evaluation; an export that fails at the end (the base
// model's config.json gone) is a warning too.
func TestOptionalOutputsNeverFailARun(t *testing.T) {
	for _, tc := range []struct {
		name, head string
		breakBase  bool
		warning    string
	}{
		{"mean head", adapter.HeadMean, false, "will not be written"},
		{"export fails", adapter.HeadPooler, true, "was not written"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			c := tinyRun(t, out, "strategy.name=full", "model.head="+tc.head, "train.max_steps=3")
			c.Data.Test = c.Data.Validation
			s, err := Open(c)
			require.NoError(t, err)
			if tc.breakBase {
				require.NoError(t, os.Remove(filepath.Join(c.Model.Dir, model.ConfigFile)))
			}
			var progress bytes.Buffer
			res, err := Train(s, cpu.New(), Options{Progress: &progress})
			require.NoError(t, err)
			require.NotNil(t, res.Test, "the test set was not evaluated")
			assert.Equal(t, 3, res.Steps)
			assert.FileExists(t, filepath.Join(out, AdapterFileName))
			assert.FileExists(t, filepath.Join(out, PredictionsName))
			assert.Empty(t, res.HFModelPath)
			assert.NoDirExists(t, filepath.Join(out, HFModelDirName))
			require.Len(t, res.Warnings, 1)
			assert.Contains(t, res.Warnings[0], tc.warning)
			assert.Contains(t, progress.String(), `"event":"warning"`)
			if !tc.breakBase {
				// The warning comes before the first step.
				assert.Less(t, strings.Index(progress.String(), `"event":"warning"`), strings.Index(progress.String(), `"event":"train"`))
			}
		})
	}
}

// train.cache_frozen gives the very same adapter file as recomputing the
// frozen layers (with their dropout off in both runs), for adapters in the
// top layer and for the head alone, from memory and from the scratch file;
// later epochs take their batches from the cache.
func TestCacheFrozenIsExact(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra []string
	}{
		{"top-adapters", []string{"adapter.top_layers=1", "adapter.train_layernorm=false"}},
		{"head", []string{"strategy.name=head"}},
		{"top-adapters-disk", []string{"adapter.top_layers=1", "adapter.train_layernorm=false", "train.cache_memory_mb=0", "train.cache_disk_mb=1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			common := append([]string{"train.frozen_dropout=false", "train.epochs=3"}, tc.extra...)
			a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
			_, err := train(t, tinyRun(t, a, common...), Options{})
			require.NoError(t, err)
			_, err = train(t, tinyRun(t, b, append(common, "train.cache_frozen=true")...), Options{})
			require.NoError(t, err)
			fa, err := os.ReadFile(filepath.Join(a, AdapterFileName))
			require.NoError(t, err)
			fb, err := os.ReadFile(filepath.Join(b, AdapterFileName))
			require.NoError(t, err)
			require.Equal(t, fa, fb, "cached and recomputed runs differ")
			log, err := os.ReadFile(filepath.Join(b, LogFileName))
			require.NoError(t, err)
			// 96 examples in batches of 8 = 12 per epoch: epochs 2 and 3 from the cache.
			assert.Contains(t, string(log), `"train_batches_cached":24`)
			assert.Contains(t, string(log), `"train_batches_computed":12`)
			assert.NoFileExists(t, filepath.Join(b, "frozen-train.cache"), "the scratch file is removed")
		})
	}
	// Caching with dropout in the frozen layers is refused at once.
	_, err := LoadConfig("", []string{"model.dir=x", "data.train=x.jsonl", "train.cache_frozen=true"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "train.frozen_dropout")
}
