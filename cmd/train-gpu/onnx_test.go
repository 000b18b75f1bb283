package main

import (
	"bufio"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/houlsby/adapters/internal/testassets"
)

// TestONNXMatchesPredict: `train-gpu export --format onnx` of an adapter
// trained with the demo's configuration (examples/spam.toml: m = 64, ReLU,
// LayerNorms, pooler head; 40 steps, the go-paper run of
// tests/ref/gen_adapterhub.py) gives, under ONNX Runtime on 500 real texts
// tokenized by BertTokenizerFast, the logits `train-gpu predict` writes for
// the same texts; ONNX's checker accepts the file (tests/ref/check_onnx.py
// with the reference venv). Skipped loudly without the assets, the goldens
// or the venv.
//
// Tolerance: the criterion, 1e-4. Both sides are float32 with
// different kernels (our GEMM, ONNX Runtime's MLAS); hidden states of the
// two implementations agree within ~5e-6 (tests/encoder_parity_test.go), so
// the logits, a tanh pooler and a 2 x 384 classifier on top, land within
// ~1e-6; a wrong weight, transpose or mask shifts them by 1e-2 or more.
func TestONNXMatchesPredict(t *testing.T) {
	py := testassets.Path(".venv-ref", "bin", "python")
	script := testassets.Path("tests", "ref", "check_onnx.py")
	golden := testassets.Path("tests", "golden", "adapterhub")
	adapterFile := filepath.Join(golden, "go-paper", "adapter.safetensors")
	texts := filepath.Join(golden, "texts.jsonl")
	testassets.Require(t, "make ref-env assets goldens", py, script, testassets.ModelDir(), adapterFile, texts)
	dir := t.TempDir()
	onnxPath := filepath.Join(dir, "spam.onnx")
	code, stdout, stderr := runCLI("export", "--format", "onnx", "--adapter", adapterFile, "--model", testassets.ModelDir(), "--out", onnxPath)
	require.Equal(t, 0, code, stderr)
	t.Log(stdout)
	preds := filepath.Join(dir, "predictions.jsonl")
	code, _, stderr = runCLI("predict", "--adapter", adapterFile, "--model", testassets.ModelDir(), "--input", texts, "--output", preds, "--device", "cpu")
	require.Equal(t, 0, code, stderr)
	out := filepath.Join(dir, "ort.json")
	res, err := exec.Command(py, script, onnxPath, "texts", texts, testassets.ModelDir(), "128", out).CombinedOutput()
	require.NoError(t, err, "%s", res)
	var ort struct {
		Logits  [][]float64 `json:"logits"`
		Checker string      `json:"checker"`
	}
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &ort))
	assert.Equal(t, "ok", ort.Checker)

	f, err := os.Open(preds)
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	worst, n := 0.0, 0
	for ; sc.Scan(); n++ {
		var rec struct {
			Logits []float64 `json:"logits"`
		}
		require.NoError(t, json.Unmarshal(sc.Bytes(), &rec))
		require.Less(t, n, len(ort.Logits))
		require.Len(t, ort.Logits[n], len(rec.Logits))
		for k := range rec.Logits {
			worst = math.Max(worst, math.Abs(rec.Logits[k]-ort.Logits[n][k]))
		}
	}
	require.NoError(t, sc.Err())
	require.Equal(t, len(ort.Logits), n)
	require.Equal(t, 500, n)
	t.Logf("max |onnxruntime - train-gpu predict| over %d texts: %.3g (tol 1e-4)", n, worst)
	assert.Less(t, worst, 1e-4)
}
