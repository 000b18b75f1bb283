// Command bundle-assets writes the test assets of the GPU verification
// bundle (scripts/gpu-bundle.sh): a slice of a real BERT checkpoint small
// enough to carry, a few hundred real data rows, and the run file of the
// bundle's 200-step training comparison.
//
//	go run ./scripts/bundle-assets -model build/assets/all-MiniLM-L6-v2 \
//	    -data build/assets/spam -out build/gpu-bundle/assets
//
// The slice keeps the first -layers encoder layers of the model with their
// real weights, stored in bf16 (what the GPU stores frozen weights in; the
// CPU widens them exactly), the pooler, and only the rows of the word
// embeddings whose tokens occur in the shipped rows, with vocab.txt cut to
// the same tokens in their original order. WordPiece is greedy longest
// match, so a vocabulary holding every piece of a text's tokenization
// tokenizes that text exactly as the full one does; the tool checks this
// for every shipped row and refuses to write a slice that disagrees.
package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/houlsby/adapters/gpu"
	"github.com/houlsby/adapters/internal/atomicfile"
	"github.com/houlsby/adapters/model"
	"github.com/houlsby/adapters/model/safetensors"
	"github.com/houlsby/adapters/model/tokenizer"
)

// options are the command's flags.
type options struct {
	modelDir, dataDir, out string
	layers, train, val     int
	maxChars               int
}

func main() {
	var o options
	flag.StringVar(&o.modelDir, "model", "build/assets/all-MiniLM-L6-v2", "the full model folder")
	flag.StringVar(&o.dataDir, "data", "build/assets/spam", "folder with train.jsonl and validation.jsonl ({text, label} rows)")
	flag.StringVar(&o.out, "out", "", "output folder (required)")
	flag.IntVar(&o.layers, "layers", 2, "encoder layers to keep")
	flag.IntVar(&o.train, "train", 400, "training rows to ship")
	flag.IntVar(&o.val, "val", 96, "validation rows to ship")
	flag.IntVar(&o.maxChars, "max-chars", 400, "truncate each text to at most this many bytes (at a word boundary)")
	flag.Parse()
	if o.out == "" {
		fmt.Fprintln(os.Stderr, "bundle-assets: -out is required")
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintf(os.Stderr, "bundle-assets: %v\n", err)
		os.Exit(1)
	}
}

// row is one data row as shipped.
type row struct {
	Text  string `json:"text"`
	Label string `json:"label"`
}

func run(o options) error {
	full, err := tokenizer.Load(o.modelDir)
	if err != nil {
		return err
	}
	splits := map[string][]row{}
	var texts []string
	for _, s := range []struct {
		name string
		n    int
	}{{"train", o.train}, {"validation", o.val}} {
		rows, err := readRows(filepath.Join(o.dataDir, s.name+".jsonl"), s.n, o.maxChars)
		if err != nil {
			return err
		}
		splits[s.name] = rows
		for _, r := range rows {
			texts = append(texts, r.Text)
		}
	}
	vocab, keep := subsetVocab(full, texts)
	slice, err := tokenizer.New(vocab, full.Config())
	if err != nil {
		return fmt.Errorf("the sliced vocabulary: %w", err)
	}
	for i, t := range texts {
		if a, b := full.Tokenize(t), slice.Tokenize(t); !slices.Equal(a, b) {
			return fmt.Errorf("text %d tokenizes differently with the sliced vocabulary (%d vs %d tokens): not writing the slice", i, len(a), len(b))
		}
	}
	ck, err := model.LoadCheckpoint(o.modelDir)
	if err != nil {
		return err
	}
	if o.layers < 1 || o.layers > ck.Config.NumHiddenLayers {
		return fmt.Errorf("-layers %d: the model has %d", o.layers, ck.Config.NumHiddenLayers)
	}
	dir := filepath.Join(o.out, "minilm-slice")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := writeSlice(dir, o, ck, keep, vocab); err != nil {
		return err
	}
	data := filepath.Join(o.out, "spam")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return err
	}
	for name, rows := range splits {
		if err := writeRows(filepath.Join(data, name+".jsonl"), rows); err != nil {
			return err
		}
	}
	fmt.Printf("bundle-assets: %s (%d layers, %d of %d tokens), %d training and %d validation rows in %s\n",
		dir, o.layers, len(vocab), full.VocabSize(), len(splits["train"]), len(splits["validation"]), data)
	return nil
}

// readRows reads n rows spread evenly over a JSON Lines file (its rows are
// grouped by source, so the first n would be one class), truncating texts.
func readRows(path string, n, maxChars int) ([]row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var all []row
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for line := 1; sc.Scan(); line++ {
		var r row
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		all = append(all, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(all) < n {
		return nil, fmt.Errorf("%s has %d rows, want %d", path, len(all), n)
	}
	out := make([]row, n)
	for i := range out {
		r := all[i*len(all)/n]
		r.Text = truncate(r.Text, maxChars)
		out[i] = r
	}
	return out, nil
}

// truncate cuts s to at most max bytes, at the last space before the limit
// when there is one, and never inside a UTF-8 sequence.
func truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	if sp := strings.LastIndexByte(s[:cut], ' '); sp > max/2 {
		cut = sp
	}
	return s[:cut]
}

// subsetVocab returns the full vocabulary's tokens that the texts use, plus
// the special tokens, in their original order, and their original ids.
func subsetVocab(full *tokenizer.Tokenizer, texts []string) ([]string, []int32) {
	used := map[string]bool{"[PAD]": true, "[UNK]": true, "[CLS]": true, "[SEP]": true, "[MASK]": true}
	for _, t := range texts {
		for _, tok := range full.Tokenize(t) {
			used[tok] = true
		}
	}
	var vocab []string
	var keep []int32
	for id, tok := range full.Vocab() {
		if used[tok] {
			vocab = append(vocab, tok)
			keep = append(keep, int32(id))
		}
	}
	return vocab, keep
}

// writeSlice writes config.json, model.safetensors (bf16), vocab.txt and
// tokenizer_config.json of the slice into dir.
func writeSlice(dir string, o options, ck *model.Checkpoint, keep []int32, vocab []string) error {
	cfg := ck.Config
	cfg.NumHiddenLayers, cfg.VocabSize = o.layers, len(vocab)
	var tensors []safetensors.NamedTensor
	for _, spec := range model.ExpectedTensors(cfg, ck.HasPooler) {
		src, ok := ck.Tensors[spec.Name]
		if !ok {
			return fmt.Errorf("%s has no tensor %s", o.modelDir, spec.Name)
		}
		data := src.Data
		if spec.Name == model.NameWordEmbeddings {
			C := cfg.HiddenSize
			data = make([]float32, 0, len(keep)*C)
			for _, id := range keep {
				data = append(data, src.Data[int(id)*C:int(id+1)*C]...)
			}
		}
		if len(data) != spec.NumElements() {
			return fmt.Errorf("tensor %s: %d values for shape %v", spec.Name, len(data), spec.Shape)
		}
		b := make([]byte, 2*len(data))
		for i, v := range data {
			binary.LittleEndian.PutUint16(b[2*i:], gpu.F32ToBF16(v))
		}
		tensors = append(tensors, safetensors.NamedTensor{Name: spec.Name, DType: safetensors.BF16, Shape: spec.Shape, Data: b})
	}
	meta := map[string]string{"slice_of": filepath.Base(o.modelDir), "note": fmt.Sprintf("first %d layers, %d tokens, weights rounded to bf16 (scripts/bundle-assets)", o.layers, len(vocab))}
	if err := safetensors.Write(filepath.Join(dir, model.WeightsFile), tensors, meta); err != nil {
		return err
	}
	raw, err := os.ReadFile(filepath.Join(o.modelDir, model.ConfigFile))
	if err != nil {
		return err
	}
	var js map[string]any
	if err := json.Unmarshal(raw, &js); err != nil {
		return fmt.Errorf("%s: %w", model.ConfigFile, err)
	}
	js["num_hidden_layers"], js["vocab_size"] = o.layers, len(vocab)
	js["_slice"] = meta["note"]
	cj, err := json.MarshalIndent(js, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, model.ConfigFile), append(cj, '\n'), 0o644); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "vocab.txt"), []byte(strings.Join(vocab, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	tc, err := os.ReadFile(filepath.Join(o.modelDir, "tokenizer_config.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil // the defaults (BERT's) apply
	}
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, "tokenizer_config.json"), tc, 0o644)
}

// writeRows writes rows as JSON Lines.
func writeRows(path string, rows []row) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	for _, r := range rows {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return atomicfile.WriteFile(path, b.Bytes(), 0o644)
}
