package sweep

import (
	"fmt"
	"math"
	"path/filepath"
	"sort"

	"github.com/houlsby/adapters/plots"
)

// figure is a drawn PNG of the report and its caption.
type figure struct{ file, caption string }

// family groups settings for the plots: one colour and marker each.
type family struct {
	name  string
	style int
}

// familyOf classifies a run by its strategy and options.
func familyOf(r *Result) family {
	switch r.Strategy {
	case "full":
		return family{"full fine-tuning", 0}
	case "head":
		return family{"head only", 1}
	case "layernorm":
		return family{"LayerNorm only", 2}
	case "bitfit":
		return family{"BitFit (biases)", 3}
	case "top_k":
		return family{"top-k layers", 4}
	case "adapters":
		ln, _ := r.Settings["train_layernorm"].(bool)
		switch r.Settings["placement"] {
		case "ffn":
			return family{"adapters after FFN only", 7}
		case "attention":
			return family{"adapters after attention only", 8}
		}
		if ln {
			return family{"adapters + LayerNorm", 5}
		}
		return family{"adapters, LayerNorm frozen", 6}
	}
	return family{r.Strategy, 9}
}

// pointLabel is the short label of a point within its family.
func pointLabel(r *Result) string {
	if k, ok := r.Settings["top_k"].(float64); ok {
		return fmt.Sprintf("k=%d", int(k))
	}
	if k, ok := r.Settings["top_k"].(int); ok {
		return fmt.Sprintf("k=%d", k)
	}
	if m := num(r.Settings["bottleneck"]); m > 0 {
		return fmt.Sprintf("m=%d", int(m))
	}
	return ""
}

// num reads a number of a Settings map (float64 from JSON, int in memory).
func num(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case int:
		return float64(x)
	}
	return 0
}

// drawFigures draws every task's figures into dir.
func (p *Plan) drawFigures(rs *Results, dir string) (map[string][]figure, error) {
	out := map[string][]figure{}
	for _, t := range p.Tasks {
		m, err := p.TaskMetric(t.Name)
		if err != nil {
			return nil, err
		}
		cells := p.Cells(rs, t.Name)
		for _, draw := range []func(string, string, []Cell, *Results, string) (*figure, error){p.paramsFigure, p.bottleneckFigure, p.lrFigure, p.ablationFigure} {
			f, err := draw(t.Name, m, cells, rs, dir)
			if err != nil {
				return nil, err
			}
			if f != nil {
				out[t.Name] = append(out[t.Name], *f)
			}
		}
	}
	return out, nil
}

// paramsFigure: test metric against trained parameters, one series per
// family, error bars over seeds.
func (p *Plan) paramsFigure(task, m string, cells []Cell, _ *Results, dir string) (*figure, error) {
	byFam := map[string]*plots.Series{}
	var order []string
	for _, c := range cells {
		s := stat(c.Runs, metricOf("test", m))
		if s.N == 0 {
			continue
		}
		r := c.Runs[0]
		f := familyOf(r)
		se := byFam[f.name]
		if se == nil {
			se = &plots.Series{Name: f.name, Style: f.style, Points: true}
			byFam[f.name] = se
			order = append(order, f.name)
		}
		se.X = append(se.X, float64(r.TrainedParams))
		se.Y = append(se.Y, s.Mean)
		se.YErr = append(se.YErr, zeroNaN(s.Std))
		se.Labels = append(se.Labels, pointLabel(r))
	}
	if len(order) == 0 {
		return nil, nil
	}
	ch := plots.Chart{Title: fmt.Sprintf("%s: test %s against trained parameters", task, m), XLabel: "trained parameters (log scale)",
		YLabel: fmt.Sprintf("test %s (mean ± std over seeds)", m), LogX: true}
	for _, name := range order {
		se := byFam[name]
		sortSeries(se)
		se.Line = len(se.X) > 1
		if !hasLabels(se.Labels) {
			se.Labels = nil
		}
		ch.Series = append(ch.Series, *se)
	}
	file := task + "-params.png"
	if err := ch.SavePNG(filepath.Join(dir, file)); err != nil {
		return nil, err
	}
	return &figure{file, fmt.Sprintf("%s: test %s (mean ± std over seeds, at each setting's chosen learning rate) against the number of trained parameters, log scale; m = adapter bottleneck, k = layers trained", task, m)}, nil
}

// bottleneckFigure: test metric against the adapter size m.
func (p *Plan) bottleneckFigure(task, m string, cells []Cell, _ *Results, dir string) (*figure, error) {
	byFam := map[string]*plots.Series{}
	var order []string
	for _, c := range cells {
		s := stat(c.Runs, metricOf("test", m))
		if s.N == 0 || c.Runs[0].Strategy != "adapters" || num(c.Runs[0].Settings["bottleneck"]) <= 0 {
			continue
		}
		f := familyOf(c.Runs[0])
		se := byFam[f.name]
		if se == nil {
			se = &plots.Series{Name: f.name, Style: f.style, Points: true}
			byFam[f.name] = se
			order = append(order, f.name)
		}
		se.X = append(se.X, num(c.Runs[0].Settings["bottleneck"]))
		se.Y = append(se.Y, s.Mean)
		se.YErr = append(se.YErr, zeroNaN(s.Std))
	}
	if len(order) == 0 {
		return nil, nil
	}
	ch := plots.Chart{Title: fmt.Sprintf("%s: test %s against the adapter bottleneck m", task, m), XLabel: "bottleneck m (log scale)",
		YLabel: fmt.Sprintf("test %s (mean ± std)", m), Log2X: true}
	for _, name := range order {
		se := byFam[name]
		sortSeries(se)
		se.Line = len(se.X) > 1
		ch.Series = append(ch.Series, *se)
	}
	file := task + "-bottleneck.png"
	if err := ch.SavePNG(filepath.Join(dir, file)); err != nil {
		return nil, err
	}
	return &figure{file, fmt.Sprintf("%s: test %s against the bottleneck size m of the adapters, with and without LayerNorm training (and the single-placement variants)", task, m)}, nil
}

// lrFigure: validation metric against the learning rate of every searched
// setting (robustness to the learning rate).
func (p *Plan) lrFigure(task, m string, _ []Cell, rs *Results, dir string) (*figure, error) {
	ch := plots.Chart{Title: fmt.Sprintf("%s: validation %s against the learning rate", task, m), XLabel: "peak learning rate (log scale)",
		YLabel: fmt.Sprintf("validation %s (seed %d)", m, p.Sweep.Seeds[0]), LogX: true, Overlap: true}
	ticks := map[float64]bool{}
	for _, st := range p.Settings {
		if !st.Searched() {
			continue
		}
		se := plots.Series{Name: st.LabelOf(), Line: true, Points: true}
		for _, lr := range st.LRs {
			r := rs.Get(task, st.Name, lr, p.Sweep.Seeds[0])
			if r == nil {
				continue
			}
			v, ok := r.Validation[m]
			if !ok || math.IsNaN(v) {
				continue
			}
			se.Style = familyOf(r).style
			se.X, se.Y = append(se.X, lr), append(se.Y, v)
			ticks[lr] = true
		}
		if len(se.X) > 0 {
			sortSeries(&se)
			ch.Series = append(ch.Series, se)
		}
	}
	if len(ch.Series) == 0 {
		return nil, nil
	}
	for lr := range ticks {
		ch.XTicks = append(ch.XTicks, lr)
	}
	sort.Float64s(ch.XTicks)
	file := task + "-lr.png"
	if err := ch.SavePNG(filepath.Join(dir, file)); err != nil {
		return nil, err
	}
	return &figure{file, fmt.Sprintf("%s: validation %s of every learning rate searched, per setting (first seed): how robust each strategy is to the learning rate", task, m)}, nil
}

// ablationFigure: the task's layer-ablation heat map, when it ran.
func (p *Plan) ablationFigure(task, _ string, _ []Cell, _ *Results, dir string) (*figure, error) {
	if p.Ablation.Setting == "" {
		return nil, nil
	}
	t, err := ReadAblation(p.AblationDir(task))
	if err != nil {
		return nil, nil // not run yet: the report says nothing about it
	}
	file := task + "-ablation.png"
	if err := AblationHeat(t, task, p.ablationSplit()).SavePNG(filepath.Join(dir, file)); err != nil {
		return nil, err
	}
	st, _ := p.Setting(p.Ablation.Setting)
	return &figure{file, fmt.Sprintf("%s: %s %s of the trained \"%s\" run (first seed, chosen learning rate) with the adapters of layers first..last removed; with all adapters: %.4f", task, p.ablationSplit(), t.Metric, st.LabelOf(), t.Baseline)}, nil
}

// AblationHeat is the heat map of an ablation table: x the first layer
// removed, y the last, colour and annotation the metric.
func AblationHeat(t *AblationTable, name, split string) plots.Heat {
	z := make([][]float64, t.Layers)
	for last := range z {
		z[last] = make([]float64, t.Layers)
		for first := range z[last] {
			z[last][first] = math.NaN()
			if first <= last {
				z[last][first] = t.At(first, last)
			}
		}
	}
	return plots.Heat{Title: fmt.Sprintf("%s: adapters of layers first..last removed (all kept: %.4f)", name, t.Baseline),
		XLabel: "first layer removed", YLabel: "last layer removed", Z: z, ColorLabel: split + " " + t.Metric, Format: "%.4f"}
}

func zeroNaN(v float64) float64 {
	if math.IsNaN(v) {
		return 0
	}
	return v
}

func hasLabels(ls []string) bool {
	for _, l := range ls {
		if l != "" {
			return true
		}
	}
	return false
}

// sortSeries orders a series' points by x.
func sortSeries(s *plots.Series) {
	idx := make([]int, len(s.X))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return s.X[idx[a]] < s.X[idx[b]] })
	perm := func(v []float64) []float64 {
		if v == nil {
			return nil
		}
		out := make([]float64, len(v))
		for i, j := range idx {
			out[i] = v[j]
		}
		return out
	}
	s.X, s.Y, s.YErr = perm(s.X), perm(s.Y), perm(s.YErr)
	if s.Labels != nil {
		ls := make([]string, len(s.Labels))
		for i, j := range idx {
			ls[i] = s.Labels[j]
		}
		s.Labels = ls
	}
}
