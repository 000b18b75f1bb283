// Package trainer holds what training an adapter needs besides the model:
// the TOML run configuration, datasets (TSV, CSV, JSON Lines, GLUE presets),
// label vocabularies, length-bucketed batching with a serialisable RNG,
// metrics, the learning-rate schedule, AdamW parameter groups, gradient
// clipping, and checkpoint files.
package trainer

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/houlsby/adapters/adapter"
)

// Config is a training run's configuration, read from a TOML file. Every
// key is documented in examples/spam.toml and docs/cli.md. Relative paths
// are relative to the working directory.
type Config struct {
	Model    ModelConfig    `toml:"model"`
	Data     DataConfig     `toml:"data"`
	Adapter  adapter.Config `toml:"adapter"`
	Strategy StrategyConfig `toml:"strategy"`
	Train    TrainConfig    `toml:"train"`
	Output   OutputConfig   `toml:"output"`
	Device   DeviceConfig   `toml:"device"`

	// defined records the keys ("section.key") the run file and the
	// overrides set explicitly, so a preset can tell a key it must not
	// contradict from one left at its default.
	defined map[string]bool
}

// ModelConfig is the [model] section.
type ModelConfig struct {
	// Dir is the Hugging Face model folder (config.json, model.safetensors,
	// vocab.txt).
	Dir string `toml:"dir"`
	// MaxLength is the longest token sequence (including [CLS] and [SEP]);
	// longer inputs are truncated.
	MaxLength int `toml:"max_length"`
	// Head is the task head kind: "pooler" (BERT's tanh pooler on [CLS],
	// then a linear classifier), "cls" (the [CLS] hidden state) or "mean"
	// (the masked mean of the last hidden states, as sentence-transformers
	// pool), each followed by a linear classifier.
	Head string `toml:"head"`
}

// DataConfig is the [data] section.
type DataConfig struct {
	// Preset is a GLUE task (see Presets); it sets format, header, fields,
	// labels, task and metric, which the keys below may still override.
	Preset string `toml:"preset"`
	// Dir, with a preset, is the task's GLUE folder; train and validation
	// default to the preset's file names inside it.
	Dir string `toml:"dir"`
	// Format is tsv, csv or jsonl; empty means each file's extension decides
	// (.jsonl, .tsv, .csv; see FormatOf).
	Format string `toml:"format"`
	// Train, Validation and Test are the data files (validation and test
	// are optional).
	Train      string `toml:"train"`
	Validation string `toml:"validation"`
	Test       string `toml:"test"`
	// Header tells whether TSV/CSV files start with a header row (default
	// true). Header-less files need the *_column keys.
	Header *bool `toml:"header"`
	// TextField, TextPairField and LabelField name the fields (JSON keys or
	// header columns). TextPairField is empty for single-sentence tasks.
	TextField     string `toml:"text_field"`
	TextPairField string `toml:"text_pair_field"`
	LabelField    string `toml:"label_field"`
	// TextColumn, TextPairColumn and LabelColumn are 0-based column indices
	// for header-less TSV/CSV; they take precedence over the field names.
	TextColumn     *int `toml:"text_column"`
	TextPairColumn *int `toml:"text_pair_column"`
	LabelColumn    *int `toml:"label_column"`
	// Labels fixes the label vocabulary and its order; empty means the
	// sorted distinct labels of the training file.
	Labels []string `toml:"labels"`
	// Task is classification or regression.
	Task string `toml:"task"`
	// PositiveLabel is the label binary F1 treats as positive (default: the
	// second label, e.g. "1" or "spam").
	PositiveLabel string `toml:"positive_label"`
	// SkipBadRows skips and counts malformed rows instead of failing.
	SkipBadRows bool `toml:"skip_bad_rows"`
	// MaxTrainExamples and MaxEvalExamples cap how many examples are used
	// (0 = all): a random sample fixed by data.sample_seed (default
	// train.seed), kept in file order.
	MaxTrainExamples int `toml:"max_train_examples"`
	MaxEvalExamples  int `toml:"max_eval_examples"`
	// SampleSeed, when set, draws those samples instead of train.seed, so
	// runs that differ only in train.seed (a sweep's seeds) train and
	// evaluate on the same examples.
	SampleSeed *uint64 `toml:"sample_seed"`
}

// StrategyConfig is the [strategy] section.
type StrategyConfig struct {
	// Name is adapters, full, head, layernorm, top_k or bitfit.
	Name string `toml:"name"`
	// TopK is the number of top layers the top_k strategy trains.
	TopK int `toml:"top_k"`
	// TrainLayerNorm, when set, overrides adapter.train_layernorm.
	TrainLayerNorm *bool `toml:"train_layernorm"`
}

// TrainConfig is the [train] section.
type TrainConfig struct {
	// Epochs is the number of passes over the training data.
	Epochs int `toml:"epochs"`
	// MaxSteps, when > 0, stops after that many optimizer steps and sets
	// the schedule's length.
	MaxSteps int `toml:"max_steps"`
	// BatchSize is the number of examples per optimizer step.
	BatchSize int `toml:"batch_size"`
	// LR is the peak learning rate; 0 picks 1e-3 for adapters, head,
	// layernorm and bitfit and 2e-5 for full and top_k (Houlsby et al.
	// sweep 1e-4..1e-3 for adapters; Devlin et al. 2e-5..5e-5 for full).
	LR float64 `toml:"lr"`
	// WeightDecay is AdamW's decoupled decay (not applied to biases and
	// LayerNorms).
	WeightDecay float64 `toml:"weight_decay"`
	// WarmupRatio is the share of steps with linear warmup.
	WarmupRatio float64 `toml:"warmup_ratio"`
	// ClipNorm clips the global gradient norm (0 = off).
	ClipNorm float64 `toml:"clip_norm"`
	// Dropout turns the model's dropout on during training.
	Dropout bool `toml:"dropout"`
	// Seed drives initialisation, shuffling and dropout.
	Seed uint64 `toml:"seed"`
	// EvalEvery evaluates (and checkpoints) every N steps; 0 = every epoch.
	EvalEvery int `toml:"eval_every"`
	// CheckpointEvery writes a resumable checkpoint every N steps besides
	// the one at every evaluation; 0 = at evaluations only.
	CheckpointEvery int `toml:"checkpoint_every"`
	// EarlyStoppingPatience stops after N evaluations without improvement
	// (0 = never).
	EarlyStoppingPatience int `toml:"early_stopping_patience"`
	// MetricForBest picks the best checkpoint: accuracy, f1, macro_f1, mcc,
	// pearson, spearman or loss; empty = the task's default.
	MetricForBest string `toml:"metric_for_best"`
	// OnNonFinite is skip (drop the step, count it) or abort.
	OnNonFinite string `toml:"on_nonfinite"`
	// LogEvery prints progress every N steps.
	LogEvery int `toml:"log_every"`
	// FrozenDropout keeps dropout on in the embeddings and the layers below
	// the lowest trainable tensor (default true, as BERT trains); false turns
	// it off there, which CacheFrozen needs.
	FrozenDropout bool `toml:"frozen_dropout"`
	// CacheFrozen computes the frozen layers below the lowest trainable
	// tensor once per example and reuses their output in later epochs and
	// evaluations (needs frozen_dropout = false or dropout = false); results
	// are identical to recomputing them.
	CacheFrozen bool `toml:"cache_frozen"`
	// CacheMemoryMB and CacheDiskMB bound the cache: examples beyond the
	// memory budget go to a scratch file in output.dir within the disk
	// budget (0: none), the rest are recomputed.
	CacheMemoryMB int `toml:"cache_memory_mb"`
	CacheDiskMB   int `toml:"cache_disk_mb"`
	// RecomputeFFN (default true): layers whose FFN weights are frozen
	// keep no FFN activations for the backward and recompute the GELU input
	// there (model.Options.KeepFFNActivations): identical results, less
	// memory, a little more time. false keeps them.
	RecomputeFFN bool `toml:"recompute_ffn"`
}

// OutputConfig is the [output] section.
type OutputConfig struct {
	// Dir receives adapter.safetensors, best/ and checkpoint files.
	Dir string `toml:"dir"`
}

// DeviceConfig is the [device] section.
type DeviceConfig struct {
	// Kind is auto (CUDA when built in and a GPU is present, else CPU), cpu
	// or cuda.
	Kind string `toml:"kind"`
	// Ordinal is the CUDA device number.
	Ordinal int `toml:"ordinal"`
	// Accumulate is how matrix products sum their terms: float32 (the
	// default, fastest) or float64 (CPU only: every product summed in
	// float64 and rounded to float32 once, for results as close to exact
	// arithmetic as float32 storage allows; docs/numerics.md).
	Accumulate string `toml:"accumulate"`
}

// Accumulation values of DeviceConfig.Accumulate.
const (
	AccumulateF32 = "float32"
	AccumulateF64 = "float64"
)

// Default returns the configuration every file starts from.
func Default() Config {
	return Config{
		Model:    ModelConfig{MaxLength: 128, Head: adapter.HeadPooler},
		Data:     DataConfig{TextField: "text", LabelField: "label", Task: TaskClassification},
		Adapter:  adapter.Default(),
		Strategy: StrategyConfig{Name: adapter.StratAdapters},
		Train: TrainConfig{
			Epochs: 3, BatchSize: 32, WeightDecay: 0.01, WarmupRatio: 0.1, ClipNorm: 1.0,
			Dropout: true, Seed: 42, OnNonFinite: "skip", LogEvery: 10,
			FrozenDropout: true, CacheMemoryMB: 2048, RecomputeFFN: true,
		},
		Output: OutputConfig{Dir: "runs/default"},
		Device: DeviceConfig{Kind: "auto", Accumulate: AccumulateF32},
	}
}

// Task kinds.
const (
	TaskClassification = "classification"
	TaskRegression     = "regression"
)

// Metrics names accepted by train.metric_for_best.
var Metrics = []string{"accuracy", "f1", "macro_f1", "mcc", "pearson", "spearman", "loss"}

// LoadConfig reads a TOML run configuration over Default, applies the
// overrides (each "section.key=value", value in TOML syntax, bare words
// taken as strings), applies a preset, and validates. Unknown keys are
// errors naming the key.
func LoadConfig(path string, overrides []string) (*Config, error) {
	c := Default()
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if err := decodeStrict(path, string(raw), &c); err != nil {
			return nil, err
		}
	}
	for _, o := range overrides {
		if err := c.Set(o); err != nil {
			return nil, err
		}
	}
	if err := c.applyPreset(); err != nil {
		return nil, err
	}
	if err := c.applyAdapterPreset(); err != nil {
		if path != "" {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := c.Validate(); err != nil {
		if path != "" {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
		return nil, fmt.Errorf("config: %w", err)
	}
	return &c, nil
}

func decodeStrict(where, text string, c *Config) error {
	md, err := toml.Decode(text, c)
	if err != nil {
		return fmt.Errorf("config %s: %w", where, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		sort.Strings(keys)
		return fmt.Errorf("config %s: unknown key %s (see docs/cli.md for the keys)", where, strings.Join(keys, ", "))
	}
	if c.defined == nil {
		c.defined = map[string]bool{}
	}
	for _, k := range md.Keys() {
		c.defined[k.String()] = true
	}
	return nil
}

// applyAdapterPreset sets the keys adapter.preset fixes (the adapter's
// shape, nonlinearity, initialisation, placement, LayerNorm training and
// model.head). A key the run file or an override sets explicitly to another
// value is an error naming both: a preset is taken whole or not at all,
// never silently mixed with a file's own choices (examples/spam.toml, for
// one, spells out the paper's values).
func (c *Config) applyAdapterPreset() error {
	if c.Adapter.Preset == "" {
		return nil
	}
	p, err := adapter.LookupPreset(c.Adapter.Preset)
	if err != nil {
		return err
	}
	if c.Strategy.Name != adapter.StratAdapters {
		return fmt.Errorf("adapter.preset = %q needs strategy.name = %q, not %q", p.Name, adapter.StratAdapters, c.Strategy.Name)
	}
	a := &c.Adapter
	fixed := []struct {
		key       string
		have, set any
	}{
		{"adapter.bottleneck", a.Bottleneck, p.Adapter.Bottleneck},
		{"adapter.reduction_factor", a.ReductionFactor, p.Adapter.ReductionFactor},
		{"adapter.non_linearity", a.NonLinearity, p.Adapter.NonLinearity},
		{"adapter.init", a.Init, p.Adapter.Init},
		{"adapter.placement", a.Placement, p.Adapter.Placement},
		{"adapter.train_layernorm", a.TrainLayerNorm, p.Adapter.TrainLayerNorm},
		{"model.head", c.Model.Head, p.Head},
	}
	if c.Strategy.TrainLayerNorm != nil {
		fixed = append(fixed, struct {
			key       string
			have, set any
		}{"strategy.train_layernorm", *c.Strategy.TrainLayerNorm, p.Adapter.TrainLayerNorm})
	}
	var conflicts []string
	for _, f := range fixed {
		if c.defined[f.key] && f.have != f.set {
			conflicts = append(conflicts, fmt.Sprintf("%s = %v (the preset has %v)", f.key, f.have, f.set))
		}
	}
	if len(conflicts) > 0 {
		return fmt.Errorf("adapter.preset = %q fixes keys the file or the overrides set otherwise: %s; remove them or the preset",
			p.Name, strings.Join(conflicts, "; "))
	}
	layers, top := a.Layers, a.TopLayers
	*a = p.Adapter
	a.Layers, a.TopLayers = layers, top
	c.Model.Head = p.Head
	return nil
}

// Set applies one "section.key=value" override, e.g. "train.lr=3e-4" or
// "data.train=build/x.jsonl". The value is TOML; a bare word that is not
// valid TOML is taken as a string.
func (c *Config) Set(kv string) error {
	key, val, ok := strings.Cut(kv, "=")
	key = strings.TrimSpace(key)
	sec, name, ok2 := strings.Cut(key, ".")
	if !ok || !ok2 || sec == "" || name == "" || strings.Contains(name, ".") {
		return fmt.Errorf("override %q: want section.key=value", kv)
	}
	val = strings.TrimSpace(val)
	doc := func(v string) string { return "[" + sec + "]\n" + name + " = " + v + "\n" }
	var probe map[string]any
	if _, err := toml.Decode(doc(val), &probe); err != nil {
		val = strconv.Quote(val)
	}
	if err := decodeStrict("override "+kv, doc(val), c); err != nil {
		return err
	}
	return nil
}

func (c *Config) applyPreset() error {
	if c.Data.Preset == "" {
		return nil
	}
	p, ok := Presets[strings.ToLower(c.Data.Preset)]
	if !ok {
		return fmt.Errorf("data.preset = %q: want one of %s", c.Data.Preset, strings.Join(PresetNames(), ", "))
	}
	d := &c.Data
	d.Format = "tsv"
	if d.Header == nil {
		h := p.Header
		d.Header = &h
	}
	if p.TextColumn >= 0 && d.TextColumn == nil {
		v := p.TextColumn
		d.TextColumn = &v
	}
	if p.LabelColumn >= 0 && d.LabelColumn == nil {
		v := p.LabelColumn
		d.LabelColumn = &v
	}
	def := Default().Data
	if d.TextField == def.TextField {
		d.TextField = p.TextField
	}
	if d.TextPairField == "" {
		d.TextPairField = p.TextPairField
	}
	if d.LabelField == def.LabelField {
		d.LabelField = p.LabelField
	}
	if len(d.Labels) == 0 {
		d.Labels = p.Labels
	}
	if p.Regression {
		d.Task = TaskRegression
	}
	if d.PositiveLabel == "" {
		d.PositiveLabel = p.PositiveLabel
	}
	if c.Train.MetricForBest == "" {
		c.Train.MetricForBest = p.Metric
	}
	if d.Dir != "" {
		join := func(dst *string, f string) {
			if *dst == "" && f != "" {
				*dst = strings.TrimRight(d.Dir, "/") + "/" + f
			}
		}
		join(&d.Train, p.Train)
		join(&d.Validation, p.Validation)
	}
	return nil
}

// TrainLayerNorm is the effective LayerNorm switch of the adapters strategy.
func (c *Config) TrainLayerNorm() bool {
	if c.Strategy.TrainLayerNorm != nil {
		return *c.Strategy.TrainLayerNorm
	}
	return c.Adapter.TrainLayerNorm
}

// AdapterStrategy returns the adapter.Strategy the config selects
// (NumLayers and CreatedPooler are filled in from the model later).
func (c *Config) AdapterStrategy() adapter.Strategy {
	return adapter.Strategy{Name: c.Strategy.Name, TopK: c.Strategy.TopK, TrainLayerNorm: c.TrainLayerNorm()}
}

// PeakLR is train.lr, or the strategy's default when it is 0.
func (c *Config) PeakLR() float64 {
	if c.Train.LR > 0 {
		return c.Train.LR
	}
	if c.Strategy.Name == adapter.StratFull || c.Strategy.Name == adapter.StratTopK {
		return 2e-5
	}
	return 1e-3
}

// MetricForBest is train.metric_for_best or the task's default (accuracy
// for classification, pearson for regression).
func (c *Config) MetricForBest() string {
	if c.Train.MetricForBest != "" {
		return c.Train.MetricForBest
	}
	if c.Data.Task == TaskRegression {
		return "pearson"
	}
	return "accuracy"
}

// FileFormat is the format of the data file at path: data.format when set,
// else the one its extension names (FormatOf).
func (c *Config) FileFormat(path string) (string, error) {
	if c.Data.Format != "" {
		return c.Data.Format, nil
	}
	f, ok := FormatOf(path)
	if !ok {
		return "", fmt.Errorf("%q: data.format is not set and the extension is none of .jsonl, .tsv, .csv", path)
	}
	return f, nil
}

// SampleSeed is the seed of the max_train_examples/max_eval_examples
// samples: data.sample_seed, else train.seed.
func (c *Config) SampleSeed() uint64 {
	if c.Data.SampleSeed != nil {
		return *c.Data.SampleSeed
	}
	return c.Train.Seed
}

// HeaderRow is data.header with its default (true).
func (c *Config) HeaderRow() bool { return c.Data.Header == nil || *c.Data.Header }

// Validate checks every field that can be checked without reading the model
// or the data; errors name the TOML key.
func (c *Config) Validate() error {
	for _, check := range []func() error{c.validateModel, c.validateData, c.validateTask, c.AdapterStrategy().Validate, c.validateTrain, c.validateOutput} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

// validateModel checks the [model] section.
func (c *Config) validateModel() error {
	if c.Model.Dir == "" {
		return fmt.Errorf("model.dir: not set (the Hugging Face model folder)")
	}
	if c.Model.MaxLength < 3 {
		return fmt.Errorf("model.max_length = %d: need at least 3 ([CLS] x [SEP])", c.Model.MaxLength)
	}
	if err := (adapter.Head{Kind: c.Model.Head, NumLabels: 1}).Validate(); err != nil {
		return fmt.Errorf("model.head: %w", err)
	}
	return nil
}

// validateData checks the files, format and fields of [data].
func (c *Config) validateData() error {
	d := c.Data
	switch d.Format {
	case "", "tsv", "csv", "jsonl":
	default:
		return fmt.Errorf("data.format = %q: want tsv, csv or jsonl (or leave it empty to go by the file extensions)", d.Format)
	}
	if d.Train == "" {
		return fmt.Errorf("data.train: not set")
	}
	formats := map[string]bool{}
	for _, f := range []struct{ key, path string }{{"data.train", d.Train}, {"data.validation", d.Validation}, {"data.test", d.Test}} {
		if f.path == "" {
			continue
		}
		format, err := c.FileFormat(f.path)
		if err != nil {
			return fmt.Errorf("%s: %w", f.key, err)
		}
		formats[format] = true
	}
	if formats["jsonl"] && (d.TextColumn != nil || d.TextPairColumn != nil || d.LabelColumn != nil) {
		return fmt.Errorf("data.text_column/label_column: only for tsv and csv")
	}
	if !c.HeaderRow() && (d.TextColumn == nil || d.LabelColumn == nil) && (formats["tsv"] || formats["csv"]) {
		return fmt.Errorf("data.header = false needs data.text_column and data.label_column")
	}
	for _, col := range []struct {
		key string
		v   *int
	}{{"data.text_column", d.TextColumn}, {"data.text_pair_column", d.TextPairColumn}, {"data.label_column", d.LabelColumn}} {
		if col.v != nil && *col.v < 0 {
			return fmt.Errorf("%s = %d: must be >= 0", col.key, *col.v)
		}
	}
	if d.TextColumn == nil && d.TextField == "" {
		return fmt.Errorf("data.text_field: empty")
	}
	if d.LabelColumn == nil && d.LabelField == "" {
		return fmt.Errorf("data.label_field: empty")
	}
	return nil
}

// validateTask checks the task, labels and sampling keys of [data].
func (c *Config) validateTask() error {
	d := c.Data
	switch d.Task {
	case TaskClassification:
		seen := map[string]bool{}
		for _, l := range d.Labels {
			if seen[l] {
				return fmt.Errorf("data.labels: %q listed twice", l)
			}
			seen[l] = true
		}
		if len(d.Labels) == 1 {
			return fmt.Errorf("data.labels: a classifier needs at least 2 labels")
		}
		if d.PositiveLabel != "" && len(d.Labels) > 0 && !seen[d.PositiveLabel] {
			return fmt.Errorf("data.positive_label = %q is not in data.labels", d.PositiveLabel)
		}
	case TaskRegression:
		if len(d.Labels) > 0 {
			return fmt.Errorf("data.labels: not used for regression")
		}
	default:
		return fmt.Errorf("data.task = %q: want classification or regression", d.Task)
	}
	if d.MaxTrainExamples < 0 || d.MaxEvalExamples < 0 {
		return fmt.Errorf("data.max_train_examples/max_eval_examples: must be >= 0")
	}
	return nil
}

// validateTrain checks the [train] section.
func (c *Config) validateTrain() error {
	d := c.Data
	t := c.Train
	switch {
	case t.Epochs < 1 && t.MaxSteps < 1:
		return fmt.Errorf("train.epochs = %d and train.max_steps = %d: need one of them positive", t.Epochs, t.MaxSteps)
	case t.MaxSteps < 0:
		return fmt.Errorf("train.max_steps = %d: must be >= 0", t.MaxSteps)
	case t.BatchSize < 1:
		return fmt.Errorf("train.batch_size = %d: must be positive", t.BatchSize)
	case t.LR < 0 || math.IsNaN(t.LR) || math.IsInf(t.LR, 0):
		return fmt.Errorf("train.lr = %v: must be a positive number (0 = strategy default)", t.LR)
	case t.WeightDecay < 0:
		return fmt.Errorf("train.weight_decay = %v: must be >= 0", t.WeightDecay)
	case t.WarmupRatio < 0 || t.WarmupRatio >= 1:
		return fmt.Errorf("train.warmup_ratio = %v: want 0 <= r < 1", t.WarmupRatio)
	case t.ClipNorm < 0:
		return fmt.Errorf("train.clip_norm = %v: must be >= 0 (0 = off)", t.ClipNorm)
	case t.EvalEvery < 0:
		return fmt.Errorf("train.eval_every = %d: must be >= 0", t.EvalEvery)
	case t.CheckpointEvery < 0:
		return fmt.Errorf("train.checkpoint_every = %d: must be >= 0", t.CheckpointEvery)
	case t.EarlyStoppingPatience < 0:
		return fmt.Errorf("train.early_stopping_patience = %d: must be >= 0", t.EarlyStoppingPatience)
	case t.LogEvery < 1:
		return fmt.Errorf("train.log_every = %d: must be positive", t.LogEvery)
	case t.CacheMemoryMB < 0 || t.CacheDiskMB < 0:
		return fmt.Errorf("train.cache_memory_mb = %d, train.cache_disk_mb = %d: must be >= 0", t.CacheMemoryMB, t.CacheDiskMB)
	case t.CacheFrozen && t.Dropout && t.FrozenDropout:
		return fmt.Errorf("train.cache_frozen = true needs train.frozen_dropout = false (or train.dropout = false): cached outputs must not depend on dropout")
	}
	switch t.OnNonFinite {
	case "skip", "abort":
	default:
		return fmt.Errorf("train.on_nonfinite = %q: want skip or abort", t.OnNonFinite)
	}
	if m := t.MetricForBest; m != "" {
		ok := false
		for _, x := range Metrics {
			ok = ok || x == m
		}
		if !ok {
			return fmt.Errorf("train.metric_for_best = %q: want one of %v", m, Metrics)
		}
		reg := m == "pearson" || m == "spearman"
		if m != "loss" && reg != (d.Task == TaskRegression) {
			return fmt.Errorf("train.metric_for_best = %q does not fit data.task = %q", m, d.Task)
		}
	}
	return nil
}

// validateOutput checks [output] and [device].
func (c *Config) validateOutput() error {
	if c.Output.Dir == "" {
		return fmt.Errorf("output.dir: not set")
	}
	switch c.Device.Kind {
	case "auto", "cpu", "cuda":
	default:
		return fmt.Errorf("device.kind = %q: want auto, cpu or cuda", c.Device.Kind)
	}
	if c.Device.Ordinal < 0 {
		return fmt.Errorf("device.ordinal = %d: must be >= 0", c.Device.Ordinal)
	}
	switch c.Device.Accumulate {
	case AccumulateF32:
	case AccumulateF64:
		if c.Device.Kind == "cuda" {
			return fmt.Errorf("device.accumulate = %q: only the CPU backend accumulates in float64 (the CUDA kernels sum in float32); set device.kind = \"cpu\" or \"auto\"", c.Device.Accumulate)
		}
	default:
		return fmt.Errorf("device.accumulate = %q: want float32 or float64", c.Device.Accumulate)
	}
	return nil
}

// Encode writes c as TOML (the effective config saved next to a run).
func (c *Config) Encode() ([]byte, error) {
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(c); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
