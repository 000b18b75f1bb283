package sweep

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/houlsby/adapters/adapter"
	"github.com/houlsby/adapters/backend"
	"github.com/houlsby/adapters/internal/atomicfile"
	"github.com/houlsby/adapters/model"
	"github.com/houlsby/adapters/model/tokenizer"
	"github.com/houlsby/adapters/trainer"
)

// AblationTable is the layer ablation of one adapter file (Houlsby et al.,
// 2019, section 3.6 and figure 6): the metric with the adapters of every
// span of layers first..last removed.
type AblationTable struct {
	// Adapter and Data are the files evaluated; N the examples.
	Adapter string `json:"adapter"`
	Data    string `json:"data"`
	N       int    `json:"n"`
	// Metric is the metric of Score; Higher tells whether higher is better.
	Metric string `json:"metric"`
	Higher bool   `json:"higher_better"`
	// Layers is the encoder depth; Baseline the metric with every adapter.
	Layers   int     `json:"layers"`
	Baseline float64 `json:"baseline"`
	// Score[first][last] (first <= last) is the metric with the adapters of
	// layers first..last skipped; entries with first > last are null.
	Score [][]*float64 `json:"score"`
}

// At returns the score of the span first..last.
func (t *AblationTable) At(first, last int) float64 { return *t.Score[first][last] }

// AblateOptions are the evaluation settings of Ablate.
type AblateOptions struct {
	MaxLength, BatchSize int
	// Metric is the metric to tabulate (trainer.Metrics, not loss-free for
	// regression: pearson, spearman or loss).
	Metric string
}

// Ablate evaluates the adapters file f on ds with the adapters of every
// span of layers i..j removed. Removing an adapter means skipping it: an
// adapter computes h + W_up·f(W_down·h + b_down) + b_up, so with W_up and
// b_up zero it is exactly the identity, and the rest of the model (its
// LayerNorms, the head) is left as trained.
func Ablate(be backend.Backend, ck *model.Checkpoint, f *adapter.File, ds *trainer.Dataset, o AblateOptions) (*AblationTable, error) {
	if !f.Strategy.UsesAdapters() {
		return nil, fmt.Errorf("ablate: the file's strategy is %s; only adapters can be removed", f.Strategy.Name)
	}
	higher, err := metricDirection(o.Metric)
	if err != nil {
		return nil, fmt.Errorf("ablate: metric %w", err)
	}
	tok, err := tokenizer.Load(ck.Dir)
	if err != nil {
		return nil, err
	}
	m, err := trainer.NewModel(be, ck, f, o.BatchSize, o.MaxLength, 0)
	if err != nil {
		return nil, err
	}
	defer m.Free()
	enc := trainer.Tokenize(tok, ds, o.MaxLength)
	pos := -1
	if len(f.Labels) == 2 {
		pos = 1
	}
	score := func() (float64, error) {
		_, sc, err := trainer.Evaluate(m, tok, enc, ds, o.BatchSize, pos)
		if err != nil {
			return 0, err
		}
		if sc == nil {
			return 0, fmt.Errorf("ablate: %s has examples without a label", ds.Path)
		}
		v, _ := sc.Get(o.Metric)
		return v, nil
	}
	L := ck.Config.NumHiddenLayers
	t := &AblationTable{N: len(ds.Examples), Data: ds.Path, Metric: o.Metric, Higher: higher, Layers: L, Score: make([][]*float64, L)}
	if t.Baseline, err = score(); err != nil {
		return nil, err
	}
	for i := 0; i < L; i++ {
		t.Score[i] = make([]*float64, L)
		for j := i; j < L; j++ {
			if err := setSpan(m, f, i, j, true); err != nil {
				return nil, err
			}
			v, err := score()
			if err != nil {
				return nil, err
			}
			t.Score[i][j] = &v
			if err := setSpan(m, f, i, j, false); err != nil {
				return nil, err
			}
		}
	}
	return t, nil
}

// setSpan zeroes (remove) or restores the up-projections of the adapters in
// layers first..last.
func setSpan(m *model.Model, f *adapter.File, first, last int, remove bool) error {
	be := m.Backend()
	for _, ts := range f.Tensors {
		l := model.LayerOf(ts.Name)
		if !model.IsAdapter(ts.Name) || l < first || l > last ||
			!(strings.HasSuffix(ts.Name, model.AdapterUpWeight) || strings.HasSuffix(ts.Name, model.AdapterUpBias)) {
			continue
		}
		data := ts.Data
		if remove {
			data = make([]float32, len(ts.Data))
		}
		p := m.Param(ts.Name)
		if p == nil {
			return fmt.Errorf("ablate: the model has no tensor %s", ts.Name)
		}
		if err := be.Upload(p.T, data); err != nil {
			return fmt.Errorf("ablate: %s: %w", ts.Name, err)
		}
	}
	return nil
}

// Ablation file names, in the ablation folder of a task (or ablate --out).
const (
	AblationJSON = "ablation.json"
	AblationTSV  = "ablation.tsv"
)

// WriteAblation writes the table as ablation.json and ablation.tsv (first,
// last, metric, change from the baseline) into dir, atomically.
func WriteAblation(dir string, t *AblationTable) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("ablate: %w", err)
	}
	js, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return fmt.Errorf("ablate: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, AblationJSON), append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("ablate: %w", err)
	}
	return atomicfile.Write(filepath.Join(dir, AblationTSV), 0o644, func(w io.Writer) error { return t.WriteTSV(w) })
}

// WriteTSV writes one row per span: first and last layer removed, the
// metric, and its change from the baseline.
func (t *AblationTable) WriteTSV(w io.Writer) error {
	if _, err := fmt.Fprintf(w, "first_layer\tlast_layer\t%s\tchange\n", t.Metric); err != nil {
		return err
	}
	if _, err := fmt.Fprintf(w, "none\tnone\t%.4f\t0\n", t.Baseline); err != nil {
		return err
	}
	for i := 0; i < t.Layers; i++ {
		for j := i; j < t.Layers; j++ {
			v := t.At(i, j)
			if _, err := fmt.Fprintf(w, "%d\t%d\t%.4f\t%+.4f\n", i, j, v, v-t.Baseline); err != nil {
				return err
			}
		}
	}
	return nil
}

// ReadAblation reads ablation.json from dir and checks its shape.
func ReadAblation(dir string) (*AblationTable, error) {
	path := filepath.Join(dir, AblationJSON)
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ablate: %w", err)
	}
	return ParseAblation(path, raw)
}

// ParseAblation decodes an ablation table; errors name where and what.
func ParseAblation(where string, raw []byte) (*AblationTable, error) {
	var t AblationTable
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, fmt.Errorf("ablate: %s: %w", where, err)
	}
	if t.Layers < 1 || t.Layers > 1024 || len(t.Score) != t.Layers {
		return nil, fmt.Errorf("ablate: %s: %d layers and %d score rows", where, t.Layers, len(t.Score))
	}
	for i, row := range t.Score {
		if len(row) != t.Layers {
			return nil, fmt.Errorf("ablate: %s: score row %d has %d entries, want %d", where, i, len(row), t.Layers)
		}
		for j := i; j < t.Layers; j++ {
			if row[j] == nil || math.IsNaN(*row[j]) {
				return nil, fmt.Errorf("ablate: %s: score[%d][%d] missing", where, i, j)
			}
		}
	}
	return &t, nil
}

// runAblation is the ablate job of a task: the ablation setting's run with
// the first seed at the chosen learning rate, on the validation (or test)
// set of the task, with the task's metric.
func (p *Plan) runAblation(j Job, env Env) error {
	dir := p.AblationDir(j.Task)
	if _, err := os.Stat(filepath.Join(dir, AblationJSON)); err == nil {
		return nil
	}
	c, err := p.RunConfig(j.Task, j.Setting, j.LR, j.Seed)
	if err != nil {
		return err
	}
	adapterPath := filepath.Join(c.Output.Dir, trainer.AdapterFileName)
	ck, err := model.LoadCheckpoint(c.Model.Dir)
	if err != nil {
		return err
	}
	f, err := adapter.Load(adapterPath, ck.Fingerprint)
	if err != nil {
		return fmt.Errorf("ablate %s: %w", j.Task, err)
	}
	ds, err := p.ablationData(c)
	if err != nil {
		return err
	}
	metric, err := p.TaskMetric(j.Task)
	if err != nil {
		return err
	}
	be, err := env.OpenDevice(c.Device.Kind, c.Device.Ordinal)
	if err != nil {
		return err
	}
	t, err := Ablate(be, ck, f, ds, AblateOptions{MaxLength: c.Model.MaxLength, BatchSize: c.Train.BatchSize, Metric: metric})
	if err != nil {
		return fmt.Errorf("ablate %s: %w", j.Task, err)
	}
	t.Adapter = adapterPath
	return WriteAblation(dir, t)
}

// ablationData loads the split the ablation evaluates, with the same
// sampling and labels as the run.
func (p *Plan) ablationData(c *trainer.Config) (*trainer.Dataset, error) {
	sp, err := trainer.LoadSplits(c)
	if err != nil {
		return nil, err
	}
	ds := sp.Validation
	if p.Ablation.Split == "test" {
		ds = sp.Test
	}
	if ds == nil {
		return nil, fmt.Errorf("ablate: the task has no %s set", p.ablationSplit())
	}
	return ds, nil
}

func (p *Plan) ablationSplit() string {
	if p.Ablation.Split == "" {
		return "validation"
	}
	return p.Ablation.Split
}
