package trainer

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
)

// Accuracy is the share of pred equal to gold.
func Accuracy(pred, gold []int) float64 {
	checkLen(len(pred), len(gold))
	if len(gold) == 0 {
		return 0
	}
	n := 0
	for i := range gold {
		if pred[i] == gold[i] {
			n++
		}
	}
	return float64(n) / float64(len(gold))
}

func checkLen(a, b int) {
	if a != b {
		panic(fmt.Sprintf("trainer: metric over %d predictions and %d gold labels", a, b))
	}
}

// f1 of one class from its counts; 0 when undefined (no predicted and no
// gold positives), as scikit-learn's zero_division=0.
func f1(tp, fp, fn int) float64 {
	if 2*tp+fp+fn == 0 {
		return 0
	}
	return 2 * float64(tp) / float64(2*tp+fp+fn)
}

// F1 is the binary F1 score of class pos.
func F1(pred, gold []int, pos int) float64 {
	checkLen(len(pred), len(gold))
	tp, fp, fn := 0, 0, 0
	for i := range gold {
		switch {
		case pred[i] == pos && gold[i] == pos:
			tp++
		case pred[i] == pos:
			fp++
		case gold[i] == pos:
			fn++
		}
	}
	return f1(tp, fp, fn)
}

// MacroF1 is the unweighted mean of the per-class F1 over classes
// 0..numClasses-1.
func MacroF1(pred, gold []int, numClasses int) float64 {
	if numClasses == 0 {
		return 0
	}
	s := 0.0
	for c := 0; c < numClasses; c++ {
		s += F1(pred, gold, c)
	}
	return s / float64(numClasses)
}

// MCC is the Matthews correlation coefficient, in its multi-class form
// (Gorodkin, 2004; the formula of scikit-learn's matthews_corrcoef), which
// reduces to (TP·TN − FP·FN)/√((TP+FP)(TP+FN)(TN+FP)(TN+FN)) for two classes.
// It is 0 when undefined (a constant prediction or gold).
func MCC(pred, gold []int, numClasses int) float64 {
	checkLen(len(pred), len(gold))
	t := make([]float64, numClasses) // true occurrences per class
	p := make([]float64, numClasses) // predictions per class
	correct, n := 0.0, float64(len(gold))
	for i := range gold {
		t[gold[i]]++
		p[pred[i]]++
		if pred[i] == gold[i] {
			correct++
		}
	}
	var tp, pp, tt float64
	for k := 0; k < numClasses; k++ {
		tp += t[k] * p[k]
		pp += p[k] * p[k]
		tt += t[k] * t[k]
	}
	den := math.Sqrt((n*n - pp) * (n*n - tt))
	if den == 0 {
		return 0
	}
	return (correct*n - tp) / den
}

// Pearson is the Pearson correlation of x and y (0 when either is constant).
func Pearson(x, y []float64) float64 {
	checkLen(len(x), len(y))
	n := float64(len(x))
	if n == 0 {
		return 0
	}
	var mx, my float64
	for i := range x {
		mx += x[i]
		my += y[i]
	}
	mx /= n
	my /= n
	var sxy, sxx, syy float64
	for i := range x {
		dx, dy := x[i]-mx, y[i]-my
		sxy += dx * dy
		sxx += dx * dx
		syy += dy * dy
	}
	if sxx == 0 || syy == 0 {
		return 0
	}
	return sxy / math.Sqrt(sxx*syy)
}

// Ranks returns the 1-based ranks of x, ties getting the average of the
// ranks they span (scipy.stats.rankdata's "average").
func Ranks(x []float64) []float64 {
	idx := make([]int, len(x))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return x[idx[a]] < x[idx[b]] })
	r := make([]float64, len(x))
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && x[idx[j+1]] == x[idx[i]] {
			j++
		}
		avg := float64(i+j)/2 + 1
		for k := i; k <= j; k++ {
			r[idx[k]] = avg
		}
		i = j + 1
	}
	return r
}

// Spearman is the Spearman rank correlation: Pearson over average ranks.
func Spearman(x, y []float64) float64 { return Pearson(Ranks(x), Ranks(y)) }

// Scores are the evaluation metrics of one pass over a dataset. The JSON
// form is what metrics.json and the sweep's result lines hold.
type Scores struct {
	Loss     float64 `json:"loss"`
	Accuracy float64 `json:"accuracy"`
	// F1 is the binary F1 of the positive class; it is defined only for a
	// two-class task (Binary), and 0 otherwise.
	F1      float64 `json:"f1"`
	MacroF1 float64 `json:"macro_f1"`
	MCC     float64 `json:"mcc"`
	// Binary: the task has two classes and F1 is the F1 of the positive one.
	Binary   bool    `json:"binary"`
	Pearson  float64 `json:"pearson"`
	Spearman float64 `json:"spearman"`
	N        int     `json:"n"`
	// PerClass holds precision, recall and F1 of every class, in label
	// order (classification only).
	PerClass []ClassScore `json:"per_class,omitempty"`
	// Confusion[g][p] counts the examples of gold class g predicted as p.
	Confusion [][]int `json:"confusion,omitempty"`
}

// ClassScore is one class's one-vs-rest precision, recall and F1 (0 where
// undefined, as scikit-learn's zero_division=0), with its gold count
// (Support) and how often it was predicted.
type ClassScore struct {
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
	Support   int     `json:"support"`
	Predicted int     `json:"predicted"`
}

// Get returns the named metric (see Metrics) and whether higher is better.
func (s Scores) Get(name string) (v float64, higherBetter bool) {
	switch name {
	case "accuracy":
		return s.Accuracy, true
	case "f1":
		return s.F1, true
	case "macro_f1":
		return s.MacroF1, true
	case "mcc":
		return s.MCC, true
	case "pearson":
		return s.Pearson, true
	case "spearman":
		return s.Spearman, true
	case "loss":
		return s.Loss, false
	}
	panic(fmt.Sprintf("trainer: unknown metric %q", name))
}

// Confusion counts gold class g predicted as p in m[g][p].
func Confusion(pred, gold []int, numClasses int) [][]int {
	checkLen(len(pred), len(gold))
	m := make([][]int, numClasses)
	for i := range m {
		m[i] = make([]int, numClasses)
	}
	for i := range gold {
		m[gold[i]][pred[i]]++
	}
	return m
}

// PerClass computes every class's precision, recall and F1 from a
// confusion matrix.
func PerClass(conf [][]int) []ClassScore {
	out := make([]ClassScore, len(conf))
	for c := range conf {
		tp, gold, predicted := conf[c][c], 0, 0
		for k := range conf {
			gold += conf[c][k]
			predicted += conf[k][c]
		}
		cs := ClassScore{Support: gold, Predicted: predicted, F1: f1(tp, predicted-tp, gold-tp)}
		if predicted > 0 {
			cs.Precision = float64(tp) / float64(predicted)
		}
		if gold > 0 {
			cs.Recall = float64(tp) / float64(gold)
		}
		out[c] = cs
	}
	return out
}

// ClassificationScores computes every classification metric; pos is the
// positive class of binary F1, used only when numClasses is 2 (-1: F1 is
// left 0). Multi-class tasks get macro F1 and the per-class scores instead.
func ClassificationScores(pred, gold []int, numClasses, pos int, loss float64) Scores {
	conf := Confusion(pred, gold, numClasses)
	s := Scores{Loss: loss, N: len(gold), Accuracy: Accuracy(pred, gold), MacroF1: MacroF1(pred, gold, numClasses), MCC: MCC(pred, gold, numClasses),
		PerClass: PerClass(conf), Confusion: conf}
	if numClasses == 2 && pos >= 0 {
		s.F1, s.Binary = F1(pred, gold, pos), true
	}
	return s
}

// RegressionScores computes Pearson and Spearman correlations.
func RegressionScores(pred, gold []float64, loss float64) Scores {
	return Scores{Loss: loss, N: len(gold), Pearson: Pearson(pred, gold), Spearman: Spearman(pred, gold)}
}

// Summary is the scores as a flat map of the metrics that fit the task
// (f1 only for a two-class task), as the log's eval and test records and
// the sweep's result lines carry them.
func (s Scores) Summary(regression bool) map[string]float64 {
	if regression {
		return map[string]float64{"loss": s.Loss, "pearson": s.Pearson, "spearman": s.Spearman}
	}
	m := map[string]float64{"loss": s.Loss, "accuracy": s.Accuracy, "macro_f1": s.MacroF1, "mcc": s.MCC}
	if s.Binary {
		m["f1"] = s.F1
	}
	return m
}

// MarshalJSON writes the scores with non-finite values (a diverged run's
// loss) as null, which encoding/json would otherwise refuse.
func (s Scores) MarshalJSON() ([]byte, error) {
	type plain Scores
	p := plain(s)
	var nulls []string
	for _, f := range []struct {
		name string
		v    *float64
	}{{"loss", &p.Loss}, {"accuracy", &p.Accuracy}, {"f1", &p.F1}, {"macro_f1", &p.MacroF1}, {"mcc", &p.MCC}, {"pearson", &p.Pearson}, {"spearman", &p.Spearman}} {
		if math.IsNaN(*f.v) || math.IsInf(*f.v, 0) {
			*f.v = 0
			nulls = append(nulls, f.name)
		}
	}
	b, err := json.Marshal(p)
	if err != nil || len(nulls) == 0 {
		return b, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	for _, n := range nulls {
		m[n] = nil
	}
	return json.Marshal(m)
}
