package trainer

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Three classes: gold 0 0 1 1 2 2, pred 0 1 1 1 2 0 (the MCC example of
// TestClassificationMetrics). Class 0: TP 1, predicted 2, gold 2; class 1:
// TP 2, predicted 3, gold 2; class 2: TP 1, predicted 1, gold 2.
func TestPerClassAndConfusion(t *testing.T) {
	gold := []int{0, 0, 1, 1, 2, 2}
	pred := []int{0, 1, 1, 1, 2, 0}
	s := ClassificationScores(pred, gold, 3, 1, 0.5)
	assert.False(t, s.Binary, "a 3-class task has no binary F1")
	assert.Zero(t, s.F1)
	assert.Equal(t, [][]int{{1, 1, 0}, {0, 2, 0}, {1, 0, 1}}, s.Confusion)
	want := []ClassScore{
		{Precision: 0.5, Recall: 0.5, F1: 0.5, Support: 2, Predicted: 2},
		{Precision: 2.0 / 3, Recall: 1, F1: 0.8, Support: 2, Predicted: 3},
		{Precision: 1, Recall: 0.5, F1: 2.0 / 3, Support: 2, Predicted: 1},
	}
	require.Len(t, s.PerClass, 3)
	for i, w := range want {
		got := s.PerClass[i]
		assert.InDelta(t, w.Precision, got.Precision, metricTol, "class %d precision", i)
		assert.InDelta(t, w.Recall, got.Recall, metricTol, "class %d recall", i)
		assert.InDelta(t, w.F1, got.F1, metricTol, "class %d f1", i)
		assert.Equal(t, w.Support, got.Support)
		assert.Equal(t, w.Predicted, got.Predicted)
	}
	// Macro F1 is the mean of the per-class F1.
	assert.InDelta(t, (0.5+0.8+2.0/3)/3, s.MacroF1, metricTol)
	sum := s.Summary(false)
	assert.NotContains(t, sum, "f1")
	assert.Contains(t, sum, "macro_f1")

	b := ClassificationScores([]int{1, 0}, []int{1, 1}, 2, 1, 0)
	assert.True(t, b.Binary)
	assert.InDelta(t, 2.0/3, b.F1, metricTol)
	assert.Contains(t, b.Summary(false), "f1")
	// A class never predicted has precision 0, not NaN.
	assert.Zero(t, b.PerClass[0].Recall)
	assert.Zero(t, b.PerClass[0].Precision)
}

// A diverged run's NaN loss is written as null, not an encoding error.
func TestScoresJSONNonFinite(t *testing.T) {
	js, err := json.Marshal(Scores{Loss: math.NaN(), Accuracy: 0.5, N: 2})
	require.NoError(t, err)
	assert.Contains(t, string(js), `"loss":null`)
	assert.Contains(t, string(js), `"accuracy":0.5`)
}

func TestPositiveIndexAndCheckMetrics(t *testing.T) {
	c := Default()
	two, three := NewLabels([]string{"a", "b"}), NewLabels([]string{"a", "b", "c"})
	assert.Equal(t, 1, PositiveIndex(&c, two))
	assert.Equal(t, -1, PositiveIndex(&c, three))
	assert.Equal(t, -1, PositiveIndex(&c, nil))
	c.Data.PositiveLabel = "a"
	assert.Equal(t, 0, PositiveIndex(&c, two))
	err := CheckMetrics(&c, three)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "data.positive_label")
	c.Data.PositiveLabel = ""
	c.Train.MetricForBest = "f1"
	err = CheckMetrics(&c, three)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "macro_f1")
	assert.NoError(t, CheckMetrics(&c, two))
}

func TestFormatFromExtension(t *testing.T) {
	for path, want := range map[string]string{"a/b.jsonl": "jsonl", "x.TSV": "tsv", "y.csv": "csv", "z.ndjson": "jsonl"} {
		got, ok := FormatOf(path)
		assert.True(t, ok, path)
		assert.Equal(t, want, got, path)
	}
	_, ok := FormatOf("data.txt")
	assert.False(t, ok)

	dir := t.TempDir()
	tsv := filepath.Join(dir, "val.tsv")
	require.NoError(t, os.WriteFile(tsv, []byte("text\tlabel\ngood film\tpos\nbad film\tneg\n"), 0o644))
	ds, err := ReadFile(tsv, Layout{TextField: "text", LabelField: "label", TextColumn: -1, TextPairColumn: -1, LabelColumn: -1, Header: true})
	require.NoError(t, err)
	assert.Len(t, ds.Examples, 2)
	assert.Equal(t, "pos", ds.Examples[0].RawLabel)

	_, err = LoadConfig("", []string{"model.dir=m", "data.train=" + filepath.Join(dir, "train.txt")})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "data.train")
	assert.Contains(t, err.Error(), ".jsonl, .tsv, .csv")
	_, err = LoadConfig("", []string{"model.dir=m", "data.train=train.txt", "data.format=tsv"})
	assert.NoError(t, err, "an explicit data.format needs no extension")
}

// A three-class run logs macro F1 but no binary F1, and writes the
// per-class scores and confusion matrices to metrics.json.
func TestMultiClassRunMetrics(t *testing.T) {
	out := t.TempDir()
	c := tinyRun(t, out, "train.epochs=1")
	dir := filepath.Dir(c.Data.Train)
	for _, f := range []string{c.Data.Train, c.Data.Validation} {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		// Every fifth example becomes a third class, "meh".
		lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
		for i := range lines {
			if i%5 == 0 {
				lines[i] = strings.Replace(strings.Replace(lines[i], `"pos"`, `"meh"`, 1), `"neg"`, `"meh"`, 1)
			}
		}
		require.NoError(t, os.WriteFile(f, []byte(strings.Join(lines, "\n")+"\n"), 0o644))
	}
	c.Data.Test = filepath.Join(dir, "val.jsonl")
	res, err := train(t, c, Options{})
	require.NoError(t, err)
	assert.False(t, res.Final.Binary)
	assert.Positive(t, res.TrainSeconds)
	assert.Positive(t, res.Tokens)
	log, err := os.ReadFile(filepath.Join(out, LogFileName))
	require.NoError(t, err)
	for _, line := range strings.Split(strings.TrimSpace(string(log)), "\n") {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec))
		if rec["event"] == "eval" || rec["event"] == "test" {
			assert.NotContains(t, rec, "f1", line)
			assert.Contains(t, rec, "macro_f1", line)
		}
	}
	raw, err := os.ReadFile(filepath.Join(out, MetricsFileName))
	require.NoError(t, err)
	var m struct {
		Labels     []string
		Validation *Scores
		Test       *Scores
	}
	require.NoError(t, json.Unmarshal(raw, &m))
	assert.Equal(t, []string{"meh", "neg", "pos"}, m.Labels)
	require.NotNil(t, m.Test)
	assert.Len(t, m.Test.Confusion, 3)
	assert.Len(t, m.Validation.PerClass, 3)
	total := 0
	for _, row := range m.Test.Confusion {
		for _, n := range row {
			total += n
		}
	}
	assert.Equal(t, 40, total)

	c2 := tinyRun(t, t.TempDir(), "train.metric_for_best=f1")
	c2.Data = c.Data
	_, err = train(t, c2, Options{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "train.metric_for_best")
}
