package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/houlsby/adapters/adapter"
	"github.com/houlsby/adapters/trainer"
)

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
log.jsonl, metrics.json (the final validation and test scores; for
classification also every class's precision, recall and F1 and the
confusion matrices), and test_predictions.jsonl when data.test is set. With strategy
full also hf-model/, a Hugging Face BertForSequenceClassification folder
(see train-gpu export).
`

// trainShortcuts are the flags that set one common key of the run file.
var trainShortcuts = []struct{ flag, key, help string }{
	{"model", "model.dir", "model folder (model.dir)"},
	{"strategy", "strategy.name", "strategy: " + strings.Join(adapter.Strategies, ", ") + " (strategy.name)"},
	{"bottleneck", "adapter.bottleneck", "adapter bottleneck m (adapter.bottleneck)"},
	{"epochs", "train.epochs", "epochs (train.epochs)"},
	{"max-steps", "train.max_steps", "stop after N optimizer steps (train.max_steps)"},
	{"batch-size", "train.batch_size", "batch size (train.batch_size)"},
	{"lr", "train.lr", "peak learning rate (train.lr)"},
	{"seed", "train.seed", "random seed (train.seed)"},
	{"max-train-examples", "data.max_train_examples", "use a seeded random sample of N training examples (data.max_train_examples)"},
	{"output", "output.dir", "output folder (output.dir)"},
	{"device", "device.kind", "auto, cpu or cuda (device.kind)"},
}

func runTrain(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("train", trainHelp, stdout)
	cfgPath := fs.String("c", "", "the TOML run file (required)")
	var sets multiFlag
	fs.Var(&sets, "set", "override one key: section.key=value (repeatable), e.g. --set train.lr=3e-4")
	values := make([]*string, len(trainShortcuts))
	for i, s := range trainShortcuts {
		values[i] = fs.String(s.flag, "", s.help)
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
	for i, s := range trainShortcuts {
		if given[s.flag] {
			overrides = append(overrides, s.key+"="+*values[i])
		}
	}
	cfg, err := trainer.LoadConfig(*cfgPath, overrides)
	if err != nil {
		return err
	}
	splits, err := printPlan(stdout, *cfgPath, cfg)
	if err != nil {
		return err
	}
	be, err := openDeviceAcc(cfg.Device.Kind, cfg.Device.Ordinal, cfg.Device.Accumulate, stderr)
	if err != nil {
		return err
	}
	if cfg.Device.Accumulate == trainer.AccumulateF64 {
		fmt.Fprintf(stdout, "device: %s (matrix products accumulate in float64)\n", be.Name())
	} else {
		fmt.Fprintf(stdout, "device: %s\n", be.Name())
	}
	if *resume {
		if _, err := os.Stat(filepath.Join(cfg.Output.Dir, trainer.CheckpointFileName)); err != nil {
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
	printResult(stdout, cfg, res, sess.Splits.Labels == nil)
	return nil
}

// printPlan loads the run's data and prints what the run will do: model,
// strategy and trained share, data sizes, labels.
func printPlan(stdout io.Writer, cfgPath string, cfg *trainer.Config) (*trainer.Splits, error) {
	mcfg, hasPooler, _, err := modelShape(cfg.Model.Dir, false)
	if err != nil {
		return nil, fmt.Errorf("model.dir: %w", err)
	}
	splits, err := trainer.LoadSplits(cfg)
	if err != nil {
		return nil, err
	}
	numLabels := 1
	if splits.Labels != nil {
		numLabels = splits.Labels.Len()
	}
	plan := adapter.Plan{Base: adapter.BaseOf(mcfg), HasPooler: hasPooler, Adapter: cfg.Adapter, Strategy: cfg.AdapterStrategy(),
		Head: adapter.Head{Kind: cfg.Model.Head, NumLabels: numLabels}}
	counts, err := adapter.Count(plan)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", cfgPath, err)
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
	return splits, nil
}

// printResult prints a finished run: steps, validation and test scores,
// the files written, and the warnings about optional outputs.
func printResult(stdout io.Writer, cfg *trainer.Config, res *trainer.Result, regression bool) {
	fmt.Fprintf(stdout, "trained %d steps", res.Steps)
	if res.NonFinite > 0 {
		fmt.Fprintf(stdout, " (%d non-finite steps skipped)", res.NonFinite)
	}
	fmt.Fprintln(stdout)
	if res.Final != nil {
		fmt.Fprintf(stdout, "validation: %s\n", formatScores(res.Final, regression))
		fmt.Fprintf(stdout, "best %s %.4f at step %d -> %s\n", res.BestMetric, res.Best, res.BestStep, filepath.Join(cfg.Output.Dir, trainer.BestFileName))
	}
	if res.Test != nil {
		fmt.Fprintf(stdout, "test:       %s\n", formatScores(res.Test, regression))
	}
	fmt.Fprintf(stdout, "adapter: %s\n", res.AdapterPath)
	fmt.Fprintf(stdout, "metrics: %s (per-class scores and confusion matrices for classification)\n", filepath.Join(cfg.Output.Dir, trainer.MetricsFileName))
	if res.HFModelPath != "" {
		fmt.Fprintf(stdout, "hf-model: %s\n", res.HFModelPath)
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(stdout, "warning: %s\n", w)
	}
}
