package sweep

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/houlsby/adapters/adapter"
	"github.com/houlsby/adapters/backend"
	cpu "github.com/houlsby/adapters/cpu_fallback"
	"github.com/houlsby/adapters/internal/tinybert"
	"github.com/houlsby/adapters/model"
	"github.com/houlsby/adapters/trainer"
)

// tinyTask writes the tiny sentiment BERT (2 layers, d = 16) and a toy
// task into dir and returns its run file: "good/great" vs "bad/awful".
func tinyTask(t *testing.T, dir string) string {
	t.Helper()
	tinybert.Write(t, dir, tinybert.Sentiment)
	g := rand.New(rand.NewPCG(7, 8))
	for _, split := range []struct {
		name string
		n    int
	}{{"train", 48}, {"validation", 24}, {"test", 24}} {
		var b strings.Builder
		for i := 0; i < split.n; i++ {
			label, w := "pos", []string{"good", "great"}[g.IntN(2)]
			if g.IntN(2) == 0 {
				label, w = "neg", []string{"bad", "awful"}[g.IntN(2)]
			}
			js, _ := json.Marshal(map[string]string{"text": "the movie was very " + w, "label": label})
			b.Write(append(js, '\n'))
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, split.name+".jsonl"), []byte(b.String()), 0o644))
	}
	run := fmt.Sprintf(`[model]
dir = %q
max_length = 16
head = "mean"
[data]
train = %q
validation = %q
test = %q
labels = ["neg", "pos"]
sample_seed = 1
[train]
epochs = 1
batch_size = 8
metric_for_best = "f1"
checkpoint_every = 0
[device]
kind = "cpu"
`, dir, filepath.Join(dir, "train.jsonl"), filepath.Join(dir, "validation.jsonl"), filepath.Join(dir, "test.jsonl"))
	path := filepath.Join(dir, "task.toml")
	require.NoError(t, os.WriteFile(path, []byte(run), 0o644))
	return path
}

// tinySweep writes a sweep file over the tiny task: head and adapters m=4
// searched over two rates, m=2 taking the adapters' rate, two seeds, the
// ablation of m=4.
func tinySweep(t *testing.T, dir string, extra string) string {
	t.Helper()
	task := tinyTask(t, dir)
	text := fmt.Sprintf(`[sweep]
out = %q
seeds = [1, 2]
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
label = "adapters m=2"
set = ["strategy.name=adapters", "adapter.bottleneck=2"]
lr_from = "m4"
[ablation]
setting = "m4"
[quick]
out = %q
seeds = [5]
settings = ["m4"]
max_lrs = 1
%s`, filepath.Join(dir, "runs"), task, filepath.Join(dir, "quick"), extra)
	path := filepath.Join(dir, "sweep.toml")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
	return path
}

func cpuEnv() Env {
	return Env{OpenDevice: func(string, int) (backend.Backend, error) { return cpu.New(), nil }}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	good := tinySweep(t, dir, "")
	_, err := Load(good, false)
	require.NoError(t, err)
	raw, _ := os.ReadFile(good)
	for _, c := range []struct{ edit, want string }{
		{"lr_from = \"m4\"", "no such setting"},
		{"[sweep]\nfrobnicate = 1", "unknown key sweep.frobnicate"},
		{"name = \"m2\"", "listed twice"},
		{"lrs = [1e-3, 1e-2]", "lrs: empty"},
		{"seeds = [1, 2]", "seed 1 listed twice"},
	} {
		text := string(raw)
		switch c.want {
		case "no such setting":
			text = strings.Replace(text, "lr_from = \"m4\"", "lr_from = \"m5\"", 1)
		case "unknown key sweep.frobnicate":
			text = strings.Replace(text, "[sweep]", c.edit, 1)
		case "listed twice":
			text = strings.Replace(text, "name = \"m4\"", "name = \"m2\"", 1)
		case "lrs: empty":
			text = strings.Replace(text, c.edit, "", 1)
		case "seed 1 listed twice":
			text = strings.Replace(text, c.edit, "seeds = [1, 1]", 1)
		}
		path := filepath.Join(dir, "bad.toml")
		require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
		_, err := Load(path, false)
		require.Error(t, err, c.want)
		assert.Contains(t, err.Error(), c.want)
		assert.Contains(t, err.Error(), "bad.toml")
	}
}

func TestJobs(t *testing.T) {
	p, err := Load(tinySweep(t, t.TempDir(), ""), false)
	require.NoError(t, err)
	lr, seed, abl := p.PhaseJobs(PhaseLR), p.PhaseJobs(PhaseSeed), p.PhaseJobs(PhaseAblate)
	// lr: 2 searched settings x 2 rates; seed: head and m4 seed 2, m2 seeds 1 and 2.
	assert.Len(t, lr, 4)
	assert.Len(t, seed, 4)
	assert.Len(t, abl, 1)
	assert.Equal(t, "lr:toy/head/lr=0.01/seed=1", lr[0].Key())
	assert.Equal(t, "seed:toy/m2/seed=1", seed[2].Key())
	assert.Equal(t, "ablate:toy/m4", abl[0].Key())
	assert.Len(t, p.AllJobs(), 9)
	j, ok := p.FindJob("seed:toy/m2/seed=2")
	require.True(t, ok)
	assert.Equal(t, "m2", j.Setting)

	q, err := Load(p.Path, true)
	require.NoError(t, err)
	assert.Len(t, q.PhaseJobs(PhaseLR), 1)
	assert.Empty(t, q.PhaseJobs(PhaseSeed), "one seed: the search ran it")
	assert.Equal(t, "quick", q.Mode())
}

// The chosen rate is the best validation metric of the probe's search
// (lower for loss), ties to the first listed; it waits for missing runs.
func TestChosenLR(t *testing.T) {
	p, err := Load(tinySweep(t, t.TempDir(), ""), false)
	require.NoError(t, err)
	rs := &Results{byKey: map[string]*Result{}}
	put := func(setting string, lr, f1 float64) {
		rs.byKey[RunKey("toy", setting, lr, 1)] = &Result{Validation: map[string]float64{"f1": f1, "loss": 1 - f1}}
	}
	_, ok, missing := p.ChosenLR(rs, "toy", "m2")
	assert.False(t, ok)
	assert.Len(t, missing, 2)
	put("m4", 1e-3, 0.5)
	_, err = p.Resolve(Job{Phase: PhaseSeed, Task: "toy", Setting: "m2", Seed: 2}, rs)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "lr=0.01")
	put("m4", 1e-2, 0.7)
	lr, ok, _ := p.ChosenLR(rs, "toy", "m2")
	assert.True(t, ok)
	assert.Equal(t, 1e-2, lr)
	put("m4", 1e-2, 0.5)
	lr, _, _ = p.ChosenLR(rs, "toy", "m4")
	assert.Equal(t, 1e-3, lr, "a tie goes to the rate listed first")
	p.metrics["toy"] = "loss"
	put("m4", 1e-2, 0.6)
	lr, _, _ = p.ChosenLR(rs, "toy", "m4")
	assert.Equal(t, 1e-2, lr, "loss: lower is better")
}

func TestStat(t *testing.T) {
	s := stat([]*Result{{Test: map[string]float64{"f1": 1}}, {Test: map[string]float64{"f1": 3}}, {Test: map[string]float64{}}}, metricOf("test", "f1"))
	assert.Equal(t, 2, s.N)
	assert.InDelta(t, 2, s.Mean, 1e-12)
	assert.InDelta(t, math.Sqrt2, s.Std, 1e-12) // sample std of {1, 3}
	assert.Equal(t, "2.0000 ± 1.4142", s.String())
	assert.Equal(t, "–", stat(nil, metricOf("test", "f1")).String())
}

// The whole sweep of the tiny task in this process: every job runs, the
// results and the report appear, a second pass does nothing, and a changed
// setting reruns only its runs.
func TestDriverRunsResumesAndReports(t *testing.T) {
	dir := t.TempDir()
	p, err := Load(tinySweep(t, dir, ""), false)
	require.NoError(t, err)
	var out strings.Builder
	ran := 0
	d := &Driver{Plan: p, Out: &out, Exec: func(key string) error {
		ran++
		j, ok := p.FindJob(key)
		require.True(t, ok, key)
		_, _, err := p.RunJob(j, cpuEnv())
		return err
	}}
	sum, err := d.Run()
	require.NoError(t, err, out.String())
	assert.Equal(t, 9, sum.Ran, out.String())
	assert.Equal(t, 0, sum.Failed)
	assert.Contains(t, out.String(), "[9/9] ablate:toy/m4: done")
	assert.Contains(t, out.String(), "left")
	rs, err := p.LoadResults()
	require.NoError(t, err)
	assert.Equal(t, 8, rs.Len())
	r := rs.All()[0]
	assert.Positive(t, r.TrainedParams)
	assert.Positive(t, r.WallSeconds)
	assert.Positive(t, r.PeakRSSBytes)
	assert.NotEmpty(t, r.Commit)
	assert.Contains(t, r.Validation, "f1")
	// Pruned: no checkpoints; the ablated setting keeps its adapter file.
	lr4, _, _ := p.ChosenLR(rs, "toy", "m4")
	assert.NoFileExists(t, filepath.Join(p.RunDir("toy", "m4", lr4, 1), trainer.CheckpointFileName))
	assert.FileExists(t, filepath.Join(p.RunDir("toy", "m4", lr4, 1), trainer.AdapterFileName))
	assert.NoFileExists(t, filepath.Join(p.RunDir("toy", "head", 1e-2, 1), trainer.AdapterFileName))
	abl, err := ReadAblation(p.AblationDir("toy"))
	require.NoError(t, err)
	assert.Equal(t, 2, abl.Layers)

	ran = 0
	sum, err = d.Run()
	require.NoError(t, err)
	assert.Equal(t, 0, ran)
	assert.Equal(t, 9, sum.Done)

	n, err := p.Report(ReportOptions{Dir: filepath.Join(dir, "report")})
	require.NoError(t, err)
	assert.Equal(t, 8, n)
	for _, f := range []string{ReportFileName, ResultsFileName, "toy-params.png", "toy-bottleneck.png", "toy-lr.png", "toy-ablation.png"} {
		assert.FileExists(t, filepath.Join(dir, "report", f))
	}
	md, _ := os.ReadFile(filepath.Join(dir, "report", ReportFileName))
	assert.Contains(t, string(md), "| adapters m=2 |")
	assert.Contains(t, string(md), "![toy-params.png](toy-params.png)")

	// Another rate for m4 changes the search: m4 and m2 rerun what they must.
	raw, _ := os.ReadFile(p.Path)
	require.NoError(t, os.WriteFile(p.Path, []byte(strings.Replace(string(raw), `"adapter.bottleneck=2"]`, `"adapter.bottleneck=2", "train.epochs=2"]`, 1)), 0o644))
	p2, err := Load(p.Path, false)
	require.NoError(t, err)
	rs2, err := p2.LoadResults()
	require.NoError(t, err)
	assert.Equal(t, 6, rs2.Len())
	assert.Equal(t, 2, rs2.Stale)
}

// Removing an adapter is exactly the identity: the ablation's score of a
// span equals evaluating the file with that span's up-projections zeroed,
// and zeroing them all over layers 0..L-1 differs from the baseline.
func TestAblateMatchesZeroedFile(t *testing.T) {
	dir := t.TempDir()
	task := tinyTask(t, dir)
	c, err := trainer.LoadConfig(task, []string{"output.dir=" + filepath.Join(dir, "run"), "adapter.bottleneck=4", "train.epochs=3", "train.lr=1e-2"})
	require.NoError(t, err)
	sess, err := trainer.Open(c)
	require.NoError(t, err)
	res, err := trainer.Train(sess, cpu.New(), trainer.Options{})
	require.NoError(t, err)
	ck, err := model.LoadCheckpoint(c.Model.Dir)
	require.NoError(t, err)
	f, err := adapter.Load(res.AdapterPath, ck.Fingerprint)
	require.NoError(t, err)
	ds := sess.Splits.Validation
	tab, err := Ablate(cpu.New(), ck, f, ds, AblateOptions{MaxLength: 16, BatchSize: 8, Metric: "loss"})
	require.NoError(t, err)
	g := *f
	g.Tensors = nil
	for _, ts := range f.Tensors {
		if model.IsAdapter(ts.Name) && model.LayerOf(ts.Name) == 1 && strings.Contains(ts.Name, ".up.") {
			ts.Data = make([]float32, len(ts.Data))
		}
		g.Tensors = append(g.Tensors, ts)
	}
	m, err := trainer.NewModel(cpu.New(), ck, &g, 8, 16, 0)
	require.NoError(t, err)
	defer m.Free()
	_, sc, err := trainer.Evaluate(m, sess.Tok, sess.EncVal, ds, 8, 1)
	require.NoError(t, err)
	assert.InDelta(t, sc.Loss, tab.At(1, 1), 1e-6)
	assert.NotEqual(t, tab.Baseline, tab.At(0, 1), "removing trained adapters changes the loss")

	var tsv strings.Builder
	require.NoError(t, tab.WriteTSV(&tsv))
	assert.Equal(t, 5, strings.Count(tsv.String(), "\n"), "header, baseline, 3 spans")
	out := t.TempDir()
	require.NoError(t, WriteAblation(out, tab))
	back, err := ReadAblation(out)
	require.NoError(t, err)
	assert.InDelta(t, tab.At(0, 1), back.At(0, 1), 1e-12)
}

func TestUpdateDoc(t *testing.T) {
	p, err := Load(tinySweep(t, t.TempDir(), ""), true)
	require.NoError(t, err)
	doc := filepath.Join(t.TempDir(), "results.md")
	require.NoError(t, os.WriteFile(doc, []byte("# Results\n\nhand-written\n"), 0o644))
	require.NoError(t, p.updateDoc(doc, "first"))
	require.NoError(t, p.updateDoc(doc, "second"))
	raw, _ := os.ReadFile(doc)
	text := string(raw)
	assert.Contains(t, text, "hand-written")
	assert.Contains(t, text, "second")
	assert.NotContains(t, text, "first")
	assert.Equal(t, 1, strings.Count(text, "BEGIN sweep report (quick)"))
	begin, _ := p.markers()
	require.NoError(t, os.WriteFile(doc, []byte(begin+"\n"), 0o644))
	assert.Error(t, p.updateDoc(doc, "x"), "one marker only")
}

func TestResultsJSONL(t *testing.T) {
	r := &Result{Key: "t/s/lr=0.001/seed=1", Task: "t", Setting: "s", LR: 1e-3, Seed: 1, ConfigHash: "ab", Validation: map[string]float64{"f1": 0.5}}
	rs := &Results{byKey: map[string]*Result{r.Key: r}}
	path := filepath.Join(t.TempDir(), ResultsFileName)
	require.NoError(t, rs.WriteJSONL(path))
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	back, err := ReadJSONL(path, f)
	require.NoError(t, err)
	require.Len(t, back, 1)
	assert.Equal(t, r.Validation, back[0].Validation)
	_, err = ParseResult("x:3", []byte(`{"key":"k","task":"t","setting":"s","config_hash":"h","wall_s":-1}`))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "x:3")
	_, err = ParseResult("x:4", []byte(`{"key":"k","task":"t","setting":"s","config_hash":"h","bogus":1}`))
	assert.Error(t, err)
}

func FuzzParseResult(f *testing.F) {
	f.Add([]byte(`{"key":"t/s/lr=0.001/seed=1","task":"t","setting":"s","config_hash":"ab","validation":{"f1":0.5},"lr":0.001}`))
	f.Add([]byte(`{"key":"k","task":"t","setting":"s","config_hash":"h","wall_s":1e400}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseResult("fuzz", data)
		if err != nil {
			return
		}
		if r.Key == "" || r.LR < 0 || math.IsNaN(r.WallSeconds) {
			t.Fatalf("accepted %+v", r)
		}
	})
}

func FuzzParseAblation(f *testing.F) {
	f.Add([]byte(`{"metric":"f1","layers":2,"baseline":0.5,"score":[[0.4,0.3],[null,0.2]]}`))
	f.Add([]byte(`{"layers":1,"score":[[null]]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tab, err := ParseAblation("fuzz", data)
		if err != nil {
			return
		}
		for i := 0; i < tab.Layers; i++ {
			for j := i; j < tab.Layers; j++ {
				_ = tab.At(i, j) // must not panic
			}
		}
	})
}

// The shipped grid: the job counts docs/sweep.md gives, and every run's
// configuration loads (no assets needed).
func TestExampleSweepFile(t *testing.T) {
	wd, _ := os.Getwd()
	require.NoError(t, os.Chdir(filepath.Join("..")))
	t.Cleanup(func() { os.Chdir(wd) })
	p, err := Load(filepath.Join("examples", "sweep", "sweep.toml"), false)
	require.NoError(t, err)
	assert.Len(t, p.Settings, 17)
	assert.Len(t, p.PhaseJobs(PhaseLR), 72)
	assert.Len(t, p.PhaseJobs(PhaseSeed), 180)
	assert.Len(t, p.PhaseJobs(PhaseAblate), 4)
	for _, j := range p.AllJobs() {
		lr := j.LR
		if lr == 0 {
			lr = 1e-3
		}
		c, err := p.RunConfig(j.Task, j.Setting, lr, j.Seed)
		require.NoError(t, err, j.Key())
		assert.Equal(t, "mean", c.Model.Head)
	}
	metrics := map[string]string{}
	for _, task := range p.Tasks {
		metrics[task.Name], err = p.TaskMetric(task.Name)
		require.NoError(t, err)
	}
	assert.Equal(t, map[string]string{"spam": "f1", "fortunes": "macro_f1", "afinn": "pearson", "wordnet": "accuracy"}, metrics)
	q, err := Load(p.Path, true)
	require.NoError(t, err)
	assert.Len(t, q.AllJobs(), 48)
	assert.Equal(t, "runs/sweep-quick", q.Sweep.Out)
}
