package plots

import (
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// decode checks that path is a PNG of the figure size.
func decode(t *testing.T, path string, w, h int) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	assert.Equal(t, w, img.Bounds().Dx())
	assert.Equal(t, h, img.Bounds().Dy())
}

func TestChartHeatAndPanels(t *testing.T) {
	dir := t.TempDir()
	c := Chart{Title: "t", XLabel: "params", YLabel: "f1", LogX: true, Series: []Series{
		{Name: "a", X: []float64{10, 1000}, Y: []float64{0.5, 0.7}, YErr: []float64{0.1, 0}, Labels: []string{"m=1", "m=2"}, Line: true, Points: true},
		{Name: "b", X: []float64{50}, Y: []float64{0.6}, Style: 3},
	}}
	require.NoError(t, c.SavePNG(filepath.Join(dir, "c.png")))
	decode(t, filepath.Join(dir, "c.png"), 816, 432)

	bad := c
	bad.Series = []Series{{Name: "x", X: []float64{0}, Y: []float64{1}}}
	err := bad.SavePNG(filepath.Join(dir, "bad.png"))
	require.Error(t, err, "log scale and x = 0")
	assert.Contains(t, err.Error(), `series "x"`)

	h := Heat{Title: "h", Z: [][]float64{{1, math.NaN()}, {0.5, 0.25}}}
	require.NoError(t, h.SavePNG(filepath.Join(dir, "h.png")))
	decode(t, filepath.Join(dir, "h.png"), 816, 432)
	assert.Error(t, Heat{Z: [][]float64{{math.NaN()}}}.SavePNG(filepath.Join(dir, "x.png")))

	require.NoError(t, Panels(filepath.Join(dir, "p.png"), []Chart{c, {Title: "lr", Series: []Series{{X: []float64{1, 2}, Y: []float64{1, 0}, Line: true}}}}))
	decode(t, filepath.Join(dir, "p.png"), 816, 576)
}

func TestShortNumbers(t *testing.T) {
	for v, want := range map[float64]string{1500: "1.5k", 2e6: "2M", 22.7e6: "22.7M", 3e-5: "3e-5", 1e-4: "1e-4", 0.25: "0.25", 0.01: "0.01", 100: "100"} {
		assert.Equal(t, want, shortNumber(v), "%v", v)
	}
	ticks := decadeTicks{}.Ticks(700, 3e6)
	var labels []string
	for _, tk := range ticks {
		if tk.Label != "" {
			labels = append(labels, tk.Label)
		}
	}
	assert.Equal(t, []string{"1k", "10k", "100k", "1M"}, labels)
}

func TestParseRunLog(t *testing.T) {
	log := `{"event":"train","step":10,"loss":0.7,"lr":0.001}
{"event":"eval","step":10,"loss":0.6,"accuracy":0.8,"macro_f1":0.7,"accuracy_best":0.8}
{"event":"resume","step":10}
{"event":"train","step":10,"loss":0.65,"lr":0.001}
{"event":"nonfinite","step":11,"loss":"NaN"}
{"event":"train","step":20,"loss":0.5,"lr":0.0005}
{"event":"test","loss":0.5,"accuracy":0.9}
`
	l, err := ParseRunLog("log.jsonl", strings.NewReader(log))
	require.NoError(t, err)
	assert.Equal(t, []float64{10, 20}, l.Steps)
	assert.Equal(t, []float64{0.65, 0.5}, l.Loss, "the later record of a repeated step wins")
	assert.Equal(t, []float64{10}, l.EvalSteps)
	assert.Equal(t, []float64{0.8}, l.Eval["accuracy"])
	assert.NotContains(t, l.Eval, "accuracy_best")
	charts, err := l.Charts("run")
	require.NoError(t, err)
	assert.Len(t, charts, 3)
	require.NoError(t, Panels(filepath.Join(t.TempDir(), "run.png"), charts))

	_, err = ParseRunLog("log.jsonl", strings.NewReader("{\"event\":\"train\",\"step\":1,\"loss\":1,\"lr\":1}\nnot json\n"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "log.jsonl:2")
	_, err = ParseRunLog("log.jsonl", strings.NewReader(`{"event":"train","loss":1,"lr":1}`))
	assert.Error(t, err, "a train record without a step")
	empty, err := ParseRunLog("log.jsonl", strings.NewReader(""))
	require.NoError(t, err)
	_, err = empty.Charts("x")
	assert.Error(t, err)
}

func FuzzParseRunLog(f *testing.F) {
	f.Add([]byte(`{"event":"train","step":10,"loss":0.7,"lr":0.001}` + "\n" + `{"event":"eval","step":10,"loss":0.6,"f1":0.5}`))
	f.Add([]byte(`{"event":"eval","step":1e308,"x":-1e308}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := ParseRunLog("fuzz", strings.NewReader(string(data)))
		if err != nil {
			return
		}
		if len(l.Steps) != len(l.Loss) || len(l.Steps) != len(l.LR) {
			t.Fatalf("ragged log %+v", l)
		}
		for k, v := range l.Eval {
			if len(v) != len(l.EvalSteps) {
				t.Fatalf("metric %s has %d values for %d steps", k, len(v), len(l.EvalSteps))
			}
		}
	})
}
