package plots

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
)

// RunLog is what a run's log.jsonl says over the optimizer steps: the
// training loss and learning rate of the logged steps, and every
// validation metric of every evaluation.
type RunLog struct {
	// Steps, Loss and LR are the "train" records, by step.
	Steps, Loss, LR []float64
	// EvalSteps are the steps of the "eval" records; Eval[name] holds each
	// metric (loss included) at those steps, NaN where a record lacks it.
	EvalSteps []float64
	Eval      map[string][]float64
}

// ParseRunLog reads log.jsonl (the trainer's JSON lines). After a resume
// the steps between the checkpoint and the kill are logged twice: the later
// record of a step wins. Malformed lines are errors naming the line; records
// of other events are ignored.
func ParseRunLog(name string, r io.Reader) (*RunLog, error) {
	type point struct{ loss, lr float64 }
	train := map[float64]point{}
	evals := map[float64]map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	line := 0
	for sc.Scan() {
		line++
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal(raw, &rec); err != nil {
			return nil, fmt.Errorf("run log %s:%d: %w", name, line, err)
		}
		step, ok := rec["step"].(float64)
		if rec["event"] != "train" && rec["event"] != "eval" {
			continue
		}
		if !ok || step < 0 || math.IsInf(step, 0) {
			return nil, fmt.Errorf("run log %s:%d: %v record without a step", name, line, rec["event"])
		}
		if rec["event"] == "train" {
			loss, ok1 := rec["loss"].(float64)
			lr, ok2 := rec["lr"].(float64)
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("run log %s:%d: train record without a numeric loss and lr", name, line)
			}
			train[step] = point{loss, lr}
			continue
		}
		m := map[string]float64{}
		for k, v := range rec {
			if f, ok := v.(float64); ok && k != "step" && k != "epoch" && !strings.HasSuffix(k, "_best") {
				m[k] = f
			}
		}
		evals[step] = m
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("run log %s:%d: %w", name, line+1, err)
	}
	out := &RunLog{Eval: map[string][]float64{}}
	for _, s := range sortedSteps(train) {
		out.Steps = append(out.Steps, s)
		out.Loss = append(out.Loss, train[s].loss)
		out.LR = append(out.LR, train[s].lr)
	}
	names := map[string]bool{}
	for _, m := range evals {
		for k := range m {
			names[k] = true
		}
	}
	out.EvalSteps = sortedSteps(evals)
	for k := range names {
		for _, s := range out.EvalSteps {
			v, ok := evals[s][k]
			if !ok {
				v = math.NaN()
			}
			out.Eval[k] = append(out.Eval[k], v)
		}
	}
	return out, nil
}

func sortedSteps[V any](m map[float64]V) []float64 {
	out := make([]float64, 0, len(m))
	for s := range m {
		out = append(out, s)
	}
	sort.Float64s(out)
	return out
}

// Charts are the run's three panels: loss (training and validation),
// learning rate, and the validation metrics, against the optimizer step.
func (l *RunLog) Charts(title string) ([]Chart, error) {
	if len(l.Steps) == 0 && len(l.EvalSteps) == 0 {
		return nil, fmt.Errorf("plots: %s: the log has no train or eval records", title)
	}
	loss := Chart{Title: title + ": loss", YLabel: "loss"}
	if len(l.Steps) > 0 {
		loss.Series = append(loss.Series, finiteSeries(Series{Name: "training (logged steps)", X: l.Steps, Y: l.Loss, Line: true}))
	}
	if v := l.Eval["loss"]; len(v) > 0 {
		loss.Series = append(loss.Series, finiteSeries(Series{Name: "validation", X: l.EvalSteps, Y: v, Line: true, Points: true, Style: 1}))
	}
	lr := Chart{Title: "learning rate of the logged steps (warmup, then linear decay)", YLabel: "learning rate"}
	if len(l.Steps) > 0 {
		lr.Series = append(lr.Series, finiteSeries(Series{Name: "learning rate", X: l.Steps, Y: l.LR, Line: true, Style: 2}))
	}
	metrics := Chart{Title: "validation metrics", XLabel: "optimizer step", YLabel: "metric"}
	var names []string
	for k := range l.Eval {
		if k != "loss" {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for i, k := range names {
		metrics.Series = append(metrics.Series, finiteSeries(Series{Name: k, X: l.EvalSteps, Y: l.Eval[k], Line: true, Points: true, Style: 3 + i}))
	}
	if len(l.EvalSteps) == 0 {
		metrics.Title = "validation metrics: none (the run has no validation set)"
	}
	last := 0.0
	for _, v := range append(append([]float64(nil), l.Steps...), l.EvalSteps...) {
		last = math.Max(last, v)
	}
	charts := []Chart{loss, lr, metrics}
	for i := range charts {
		charts[i].XMin, charts[i].XMax = 0, last
	}
	return charts, nil
}

// finiteSeries drops the points with a NaN or infinite y (a skipped metric,
// a diverged loss) so that the rest still draws.
func finiteSeries(s Series) Series {
	out := s
	out.X, out.Y = nil, nil
	for i := range s.X {
		if !bad(s.Y[i]) && !bad(s.X[i]) {
			out.X, out.Y = append(out.X, s.X[i]), append(out.Y, s.Y[i])
		}
	}
	return out
}
