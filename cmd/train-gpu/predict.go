package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/houlsby/adapters/internal/atomicfile"
	"github.com/houlsby/adapters/trainer"
)

const predictHelp = `
Usage: train-gpu predict --adapter FILE --model DIR [--input FILE.jsonl] [--output FILE]

Predicts with an adapter file. Input is a file (--input; JSON Lines, or
TSV/CSV with a header row, see --format; fields by --text-field and
--text-pair-field; a label field is not needed) or, without --input, one
text per line on stdin. Output is one JSON object per input on stdout (or
--output): "text" (and "text_pair"), "line" (the input line, with --input),
"prediction" (the label; the value for regression), "probabilities"
(label -> probability) and "logits" (the head's outputs, in label order:
what an exported model gives, see docs/interop.md).
`

func runPredict(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("predict", predictHelp, stdout)
	adapterPath := fs.String("adapter", "", "the adapter file, or an AdapterHub folder (required)")
	modelDir := fs.String("model", "", "the base model folder (required)")
	input := fs.String("input", "", "input file (--format); empty: one text per line on stdin")
	output := fs.String("output", "", "output file; empty: stdout")
	df := addDataFlags(fs)
	batch := fs.Int("batch-size", 64, "examples per forward pass")
	maxLen := fs.Int("max-length", 128, "truncate inputs to this many tokens")
	device := fs.String("device", "auto", "auto, cpu or cuda")
	ordinal := fs.Int("gpu", 0, "CUDA device ordinal")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	if *adapterPath == "" || *modelDir == "" {
		fs.Usage()
		return errUsage
	}
	if *batch < 1 {
		return fmt.Errorf("--batch-size %d: must be positive", *batch)
	}
	ck, f, err := loadAdapter(*modelDir, *adapterPath)
	if err != nil {
		return err
	}
	ds, err := readPredictInput(*input, df.layout(false))
	if err != nil {
		return err
	}
	if *output != "" {
		if _, err := os.Stat(filepath.Dir(*output)); err != nil {
			return fmt.Errorf("--output: %w", err)
		}
	}
	be, err := openDevice(*device, *ordinal, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "adapter %s (%s, %d labels), %d inputs, device %s\n", *adapterPath, f.Strategy.Name, f.Head.NumLabels, len(ds.Examples), be.Name())
	preds, _, err := predictAll(be, ck, f, ds, *batch, *maxLen)
	if err != nil {
		return err
	}
	if *output == "" {
		return writePredictions(stdout, ds, preds, f.Labels, *input != "")
	}
	var buf bytes.Buffer
	if err := writePredictions(&buf, ds, preds, f.Labels, *input != ""); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(*output, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("--output: %w", err)
	}
	return nil
}

// readPredictInput reads the inputs to predict: the file path in layout l,
// or, when path is empty, one text per non-empty line of stdin. Labels are
// never read: predict does not score.
func readPredictInput(path string, l trainer.Layout) (*trainer.Dataset, error) {
	if path != "" {
		ds, err := trainer.ReadFile(path, l)
		if err != nil {
			return nil, err
		}
		for i := range ds.Examples {
			ds.Examples[i].RawLabel = ""
		}
		return ds, nil
	}
	ds := &trainer.Dataset{Path: "stdin"}
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	for line := 1; sc.Scan(); line++ {
		if t := strings.TrimSpace(sc.Text()); t != "" {
			ds.Examples = append(ds.Examples, trainer.Example{Text: t, Line: line, Label: -1})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("stdin: %w", err)
	}
	return ds, nil
}

// writePredictions writes one JSON object per input: the text (and pair),
// its line in the input file (withLine), the prediction, the logits and,
// for classification, the probabilities.
func writePredictions(w io.Writer, ds *trainer.Dataset, preds *trainer.Predictions, labels []string, withLine bool) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for i, ex := range ds.Examples {
		rec := map[string]any{"text": ex.Text}
		if ex.Pair != "" {
			rec["text_pair"] = ex.Pair
		}
		if withLine {
			rec["line"] = ex.Line
		}
		rec["logits"] = preds.Logits[i]
		if len(labels) == 0 {
			rec["prediction"] = preds.Value[i]
		} else {
			rec["prediction"] = labels[preds.Class[i]]
			rec["probabilities"] = softmax(preds.Logits[i], labels)
		}
		if err := enc.Encode(rec); err != nil {
			return err
		}
	}
	return nil
}

// softmax maps logits to label -> probability.
func softmax(logits []float32, labels []string) map[string]float64 {
	mx := math.Inf(-1)
	for _, v := range logits {
		mx = math.Max(mx, float64(v))
	}
	sum := 0.0
	ps := make([]float64, len(logits))
	for i, v := range logits {
		ps[i] = math.Exp(float64(v) - mx)
		sum += ps[i]
	}
	out := map[string]float64{}
	for i, l := range labels {
		out[l] = ps[i] / sum
	}
	return out
}
