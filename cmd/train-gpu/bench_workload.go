package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/houlsby/adapters/internal/atomicfile"
	"github.com/houlsby/adapters/model"
	"github.com/houlsby/adapters/model/tokenizer"
	"github.com/houlsby/adapters/trainer"
)

// workload is the ordered batches one repetition runs.
type workload struct {
	// name says where the ids came from ("random" or the --data path).
	name    string
	batches []*model.Batch
	// tokens counts padded positions (B·T summed), realTokens the real ones.
	tokens, realTokens int
	// defaultWarmup is the number of warm-up steps when --warmup is -1.
	defaultWarmup int
}

// benchWorkload builds the workload of o: random ids, or the batches of
// --data.
func benchWorkload(o benchOptions, ck *model.Checkpoint) (*workload, error) {
	var w *workload
	if o.data == "" {
		b := benchBatch(o.batch, o.seqLen, ck.Config.VocabSize)
		w = &workload{name: "random", defaultWarmup: 2}
		for i := 0; i < o.steps; i++ {
			w.batches = append(w.batches, b)
		}
	} else {
		var err error
		if w, err = dataWorkload(o, ck.Dir); err != nil {
			return nil, err
		}
	}
	for _, b := range w.batches {
		w.tokens += b.B * b.T
		for _, v := range b.Mask {
			w.realTokens += int(v)
		}
	}
	return w, nil
}

// dataWorkload reads the first o.batches·o.batch texts of o.data, tokenizes
// them with the model's tokenizer (truncated at o.seqLen) and cuts them into
// batches in file order, each padded to its longest row. Labels alternate
// 0, 1: they do not change the cost of a step.
func dataWorkload(o benchOptions, modelDir string) (*workload, error) {
	tok, err := tokenizer.Load(modelDir)
	if err != nil {
		return nil, err
	}
	ds, err := trainer.ReadFile(o.data, trainer.Layout{Format: "jsonl", TextField: o.textField,
		TextColumn: -1, TextPairColumn: -1, LabelColumn: -1, Max: o.batches * o.batch})
	if err != nil {
		return nil, fmt.Errorf("--data: %w", err)
	}
	if len(ds.Examples) == 0 {
		return nil, fmt.Errorf("--data %s: no texts in field %q", o.data, o.textField)
	}
	enc := trainer.Tokenize(tok, ds, o.seqLen)
	w := &workload{name: o.data}
	// Batches in file order, as a shuffled training epoch composes them:
	// each padded to its own longest text, with the corpus's real mix of
	// lengths (not grouped by length, as evaluation does).
	for lo := 0; lo < len(enc); lo += o.batch {
		idx := make([]int, 0, o.batch)
		for i := lo; i < min(lo+o.batch, len(enc)); i++ {
			idx = append(idx, i)
		}
		b := trainer.MakeBatch(enc, nil, idx, tok.PadID())
		for r := range b.Labels {
			b.Labels[r] = int32(r % 2)
		}
		w.batches = append(w.batches, b.ForModel(false))
	}
	w.defaultWarmup = len(w.batches)
	return w, nil
}

// benchBatch is a batch of random token ids (above the special tokens of
// BERT's vocabulary, or in the upper half of a tiny test vocabulary) without
// padding, and random binary labels.
func benchBatch(B, T, vocab int) *model.Batch {
	g := trainer.NewRNG(1)
	lo := min(1000, vocab/2)
	b := &model.Batch{B: B, T: T, IDs: make([]int32, B*T), Mask: make([]int32, B*T), Labels: make([]int32, B)}
	for i := range b.IDs {
		b.IDs[i], b.Mask[i] = int32(lo+g.IntN(vocab-lo)), 1
	}
	for i := range b.Labels {
		b.Labels[i] = int32(g.IntN(2))
	}
	return b
}

// steps returns n batches of the workload, cycling through it.
func (w *workload) steps(n int) []*model.Batch {
	out := make([]*model.Batch, n)
	for i := range out {
		out[i] = w.batches[i%len(w.batches)]
	}
	return out
}

// dumpedBatch is one batch as --dump-batches writes it: rows without their
// padding, so a reader pads each batch to its longest row itself.
type dumpedBatch struct {
	IDs    [][]int32 `json:"ids"`
	Labels []int32   `json:"labels"`
}

// dump writes the workload's batches to path as JSON.
func (w *workload) dump(path string) error {
	out := struct {
		Source     string        `json:"source"`
		Tokens     int           `json:"tokens"`
		RealTokens int           `json:"real_tokens"`
		Batches    []dumpedBatch `json:"batches"`
	}{Source: w.name, Tokens: w.tokens, RealTokens: w.realTokens}
	for _, b := range w.batches {
		d := dumpedBatch{Labels: b.Labels}
		for r := 0; r < b.B; r++ {
			row := b.IDs[r*b.T : (r+1)*b.T]
			n := 0
			for _, v := range b.Mask[r*b.T : (r+1)*b.T] {
				n += int(v)
			}
			d.IDs = append(d.IDs, row[:n])
		}
		out.Batches = append(out.Batches, d)
	}
	js, err := json.Marshal(out)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(path, append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("--dump-batches: %w", err)
	}
	return nil
}

// benchRep is one timed repetition.
type benchRep struct {
	Wall, CPU float64
}

// benchReport prints what bench measured, as text or JSON Lines.
type benchReport struct {
	w    io.Writer
	json bool
}

func (r *benchReport) line(v map[string]any) {
	js, _ := json.Marshal(v) // maps of numbers and strings always marshal
	fmt.Fprintf(r.w, "%s\n", js)
}

func (r *benchReport) setup(o benchOptions, device string, w *workload, trainable int64) {
	if !r.json {
		fmt.Fprintf(r.w, "bench: %s, B=%d T<=%d, device %s, workload %s (%d batches, %d real of %d tokens), %s\n",
			o.strategy, o.batch, o.seqLen, device, w.name, len(w.batches), w.realTokens, w.tokens, goInfo())
		return
	}
	r.line(map[string]any{"event": "setup", "model": o.modelDir, "device": device, "strategy": o.strategy, "bottleneck": o.m,
		"batch_size": o.batch, "seq_len": o.seqLen, "workload": w.name, "batches": len(w.batches), "tokens": w.tokens,
		"real_tokens": w.realTokens, "trainable_params": trainable, "go": goInfo()})
}

func (r *benchReport) ready(md benchMode) {
	if r.json {
		r.line(map[string]any{"event": "ready", "mode": md.name})
	}
}

func (r *benchReport) rep(md benchMode, i int, rep benchRep, w *workload) {
	if r.json {
		r.line(map[string]any{"event": "rep", "mode": md.name, "rep": i, "wall_s": rep.Wall, "cpu_s": rep.CPU,
			"steps": len(w.batches), "tokens": w.tokens, "real_tokens": w.realTokens})
	}
}

// summary prints the median repetition (with min and max) per step and as
// throughput.
func (r *benchReport) summary(md benchMode, reps []benchRep, w *workload) {
	walls := make([]float64, len(reps))
	for i, x := range reps {
		walls[i] = x.Wall
	}
	sort.Float64s(walls)
	med := walls[len(walls)/2]
	if len(walls)%2 == 0 {
		med = (walls[len(walls)/2-1] + walls[len(walls)/2]) / 2
	}
	steps, rows := len(w.batches), 0
	for _, b := range w.batches {
		rows += b.B
	}
	if r.json {
		r.line(map[string]any{"event": "summary", "mode": md.name, "reps": len(reps), "median_s": med, "min_s": walls[0],
			"max_s": walls[len(walls)-1], "real_tokens_per_s": float64(w.realTokens) / med, "examples_per_s": float64(rows) / med})
		return
	}
	fmt.Fprintf(r.w, "%-38s %8.1f ms/step  %8.1f examples/s  %9.0f tokens/s  (median of %d, %.3f-%.3f s a pass)\n",
		md.label, 1000*med/float64(steps), float64(rows)/med, float64(w.realTokens)/med, len(reps), walls[0], walls[len(walls)-1])
}

// nowSeconds is a monotonic clock reading in seconds.
func nowSeconds() float64 { return float64(time.Since(clockBase)) / 1e9 }

var clockBase = time.Now()
