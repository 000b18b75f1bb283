package trainer

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/houlsby/adapters/internal/atomicfile"
	"github.com/houlsby/adapters/model"
	"github.com/houlsby/adapters/model/tokenizer"
)

// ForModel is b as the model takes it: regression batches carry Targets,
// classification batches Labels.
func (b *Batch) ForModel(regression bool) *model.Batch {
	mb := &model.Batch{IDs: b.IDs, TypeIDs: b.TypeIDs, Mask: b.Mask, B: b.B, T: b.T}
	if regression {
		mb.Targets = b.Targets
	} else {
		mb.Labels = b.Labels
	}
	return mb
}

// Predictions of one pass over a dataset: per example the class (or the
// regression value) and the logits.
type Predictions struct {
	Class  []int
	Value  []float64
	Logits [][]float32
}

// Evaluate runs m over enc (with ds's labels when labelled) in batches of
// batchSize grouped by length (EvalOrder), without dropout. It returns the predictions, and the scores
// when every example has a label (loss is the mean per-example loss).
func Evaluate(m *model.Model, tok *tokenizer.Tokenizer, enc []Encoded, ds *Dataset, batchSize, pos int) (*Predictions, *Scores, error) {
	return evaluate(m, tok, enc, ds, batchSize, pos, nil)
}

// evaluate is Evaluate, taking the frozen layers' outputs from cache (and
// filling it) when cache is not nil.
func evaluate(m *model.Model, tok *tokenizer.Tokenizer, enc []Encoded, ds *Dataset, batchSize, pos int, cache *frozenCache) (*Predictions, *Scores, error) {
	V := m.NumLabels()
	regression := V == 1
	labelled := true
	for _, ex := range ds.Examples {
		if ex.RawLabel == "" {
			labelled = false
			break
		}
	}
	n := len(enc)
	p := &Predictions{Logits: make([][]float32, n)}
	if regression {
		p.Value = make([]float64, n)
	} else {
		p.Class = make([]int, n)
	}
	lengths := make([]int, n)
	for i, e := range enc {
		lengths[i] = len(e.IDs)
	}
	lossSum := 0.0
	for _, idx := range EvalOrder(lengths, batchSize) {
		b := MakeBatch(enc, ds, idx, tok.PadID())
		mb := b.ForModel(regression)
		if !labelled {
			mb.Labels, mb.Targets = nil, nil
		}
		loss, logits, err := forwardCached(m, mb, idx, cache)
		if err != nil {
			return nil, nil, err
		}
		lossSum += float64(loss) * float64(b.B)
		for r, i := range idx {
			row := append([]float32(nil), logits[r*V:(r+1)*V]...)
			p.Logits[i] = row
			if regression {
				p.Value[i] = float64(row[0])
				continue
			}
			best := 0
			for k := range row {
				if row[k] > row[best] {
					best = k
				}
			}
			p.Class[i] = best
		}
	}
	if !labelled {
		return p, nil, nil
	}
	loss := lossSum / float64(len(enc))
	var s Scores
	if regression {
		gold := make([]float64, len(ds.Examples))
		for i, ex := range ds.Examples {
			gold[i] = float64(ex.Target)
		}
		s = RegressionScores(p.Value, gold, loss)
	} else {
		gold := make([]int, len(ds.Examples))
		for i, ex := range ds.Examples {
			gold[i] = ex.Label
		}
		s = ClassificationScores(p.Class, gold, V, pos, loss)
	}
	return p, &s, nil
}

// forwardCached runs an evaluation forward pass of the examples idx, from
// cache when it holds them all, and stores their frozen-layer outputs in it
// otherwise.
func forwardCached(m *model.Model, mb *model.Batch, idx []int, cache *frozenCache) (float32, []float32, error) {
	if cache == nil {
		return m.Forward(mb, false, 0)
	}
	cached, err := cache.batch(idx)
	if err != nil {
		return 0, nil, err
	}
	if cached != nil {
		return m.ForwardFrom(mb, cached, false, 0)
	}
	loss, logits, err := m.Forward(mb, false, 0)
	if err != nil {
		return 0, nil, err
	}
	return loss, logits, cache.store(m, idx)
}

// PositiveIndex is the class binary F1 counts as positive in a two-class
// task: data.positive_label, else class 1; -1 for regression and for tasks
// with more than two classes, where binary F1 is not defined.
func PositiveIndex(c *Config, labels *Labels) int {
	if labels == nil || labels.Len() != 2 {
		return -1
	}
	if c.Data.PositiveLabel != "" {
		if i, ok := labels.Index(c.Data.PositiveLabel); ok {
			return i
		}
		return -1
	}
	return 1
}

// CheckMetrics checks the keys that only make sense for a two-class task
// against the run's labels: binary F1 (train.metric_for_best = "f1") and
// data.positive_label need exactly two classes.
func CheckMetrics(c *Config, labels *Labels) error {
	n := 0
	if labels != nil {
		n = labels.Len()
	}
	if n == 2 {
		return nil
	}
	if c.MetricForBest() == "f1" {
		return fmt.Errorf("train.metric_for_best = \"f1\": binary F1 needs a two-class task, this one has %s (use macro_f1)", classCount(n))
	}
	if c.Data.PositiveLabel != "" {
		return fmt.Errorf("data.positive_label = %q: binary F1 needs a two-class task, this one has %s", c.Data.PositiveLabel, classCount(n))
	}
	return nil
}

func classCount(n int) string {
	if n == 0 {
		return "a regression target"
	}
	return fmt.Sprintf("%d classes", n)
}

// writePredictions writes one JSON object per test example (its line in the
// test file, the predicted label or value) atomically: a temporary file in
// the same folder, fsync, rename.
func writePredictions(path string, ds *Dataset, p *Predictions, labels *Labels) error {
	var b strings.Builder
	for i, ex := range ds.Examples {
		rec := map[string]any{"line": ex.Line}
		if labels == nil {
			rec["prediction"] = p.Value[i]
		} else {
			rec["prediction"] = labels.Names[p.Class[i]]
		}
		js, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		b.Write(js)
		b.WriteByte('\n')
	}
	if err := atomicfile.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("predictions: %w", err)
	}
	return nil
}
