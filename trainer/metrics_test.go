package trainer

import (
	"math"
	"testing"
)

// Tolerance for hand-computed values written with 1e-12 precision or as
// exact fractions; the metrics are a few float64 operations.
const metricTol = 1e-12

func near(t *testing.T, name string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > metricTol {
		t.Errorf("%s = %.15g, want %.15g", name, got, want)
	}
}

// The hand-computed values below were also checked with scikit-learn
// (accuracy_score, f1_score, matthews_corrcoef) and scipy.stats (pearsonr,
// spearmanr) from .venv-ref: they agree to the last printed digit.
func TestClassificationMetrics(t *testing.T) {
	// gold 1 1 1 0 0 0 1 0, pred 1 0 1 0 1 0 1 1:
	// TP = 3, FN = 1, FP = 2, TN = 2.
	gold := []int{1, 1, 1, 0, 0, 0, 1, 0}
	pred := []int{1, 0, 1, 0, 1, 0, 1, 1}
	near(t, "accuracy", Accuracy(pred, gold), 5.0/8)
	near(t, "F1(pos=1)", F1(pred, gold, 1), 6.0/9) // 2·3/(2·3+2+1)
	near(t, "F1(pos=0)", F1(pred, gold, 0), 4.0/7) // TP0 = 2, FP0 = 1, FN0 = 2
	near(t, "macro F1", MacroF1(pred, gold, 2), (6.0/9+4.0/7)/2)
	// (3·2 − 2·1)/√(5·4·3·4) = 4/√240.
	near(t, "MCC", MCC(pred, gold, 2), 4/math.Sqrt(240))
	near(t, "MCC constant", MCC([]int{1, 1, 1}, []int{0, 1, 1}, 2), 0)
	near(t, "MCC perfect", MCC([]int{0, 1, 2}, []int{0, 1, 2}, 3), 1)
	// Three classes: gold 0 0 1 1 2 2, pred 0 1 1 1 2 0.
	// c = 4, s = 6, t = (2,2,2), p = (2,3,1), Σt·p = 12, Σp² = 14, Σt² = 12:
	// (4·6 − 12)/√((36−14)(36−12)) = 12/√528.
	near(t, "MCC 3-class", MCC([]int{0, 1, 1, 1, 2, 0}, []int{0, 0, 1, 1, 2, 2}, 3), 12/math.Sqrt(528))
	near(t, "F1 undefined", F1([]int{0, 0}, []int{0, 0}, 1), 0)
}

func TestCorrelations(t *testing.T) {
	x := []float64{1, 2, 3, 4}
	y := []float64{2, 4, 5, 9}
	// means 2.5 and 5; dy = (-3,-1,0,4): Sxy = 11, Sxx = 5, Syy = 26.
	near(t, "pearson", Pearson(x, y), 11/math.Sqrt(5*26))
	// Ties: ranks of (1, 2, 2, 3) are (1, 2.5, 2.5, 4).
	r := Ranks([]float64{10, 20, 20, 30})
	if r[0] != 1 || r[1] != 2.5 || r[2] != 2.5 || r[3] != 4 {
		t.Errorf("ranks %v", r)
	}
	// Spearman of (1,2,3,4) and (1,3,3,2): ranks (1,2,3,4) and (1,3.5,3.5,2):
	// d = (-1.5,-.5,.5,1.5), e = (-1.5,1,1,-.5):
	// Sxy = 2.25-0.5+0.5-0.75 = 1.5; Sxx = 5; Syy = 2.25+1+1+0.25 = 4.5.
	near(t, "spearman ties", Spearman([]float64{1, 2, 3, 4}, []float64{1, 3, 3, 2}), 1.5/math.Sqrt(5*4.5))
	near(t, "spearman monotone", Spearman([]float64{1, 2, 3}, []float64{1, 10, 100}), 1)
	near(t, "pearson constant", Pearson([]float64{1, 1}, []float64{1, 2}), 0)
}
