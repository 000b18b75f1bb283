package main

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/houlsby/adapters/sweep"
	"github.com/houlsby/adapters/trainer"
)

const ablateHelp = `
Usage: train-gpu ablate --adapter FILE --model DIR --data FILE [flags]
       train-gpu ablate -c run.toml [--adapter FILE] [--split validation|test]

Evaluates a trained adapters file with the adapters of every span of layers
i..j removed (Houlsby et al., 2019, section 3.6): removing an adapter means
skipping it, which is exact, because an adapter computes
h + W_up·f(W_down·h + b_down) + b_up and so is the identity with W_up and
b_up zero; everything else stays as trained. Prints the table (rows: first
layer removed, columns: last layer) and writes ablation.json, ablation.tsv
(one row per span with the change from the baseline) and ablation.png (the
heat map) into --out. With -c the model, data layout, files and metric come
from the run file and the adapter defaults to output.dir/adapter.safetensors.
`

func runAblate(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("ablate", ablateHelp, stdout)
	cfgPath := fs.String("c", "", "a TOML run file to take the model, data, metric and adapter from")
	split := fs.String("split", "validation", "with -c: validation or test")
	adapterPath := fs.String("adapter", "", "the adapters file")
	modelDir := fs.String("model", "", "the base model folder")
	dataPath := fs.String("data", "", "the labelled dataset")
	df := addDataFlags(fs)
	metric := fs.String("metric", "", "the metric to tabulate (default: accuracy, pearson for regression, or -c's metric_for_best)")
	out := fs.String("out", "", "the output folder (default: the adapter file's folder/ablation)")
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
		if err := fillFromConfig(cfg, fs, *split, modelDir, adapterPath, dataPath, metric, maxLen); err != nil {
			return err
		}
	}
	if *dataPath == "" || *batch < 1 {
		fs.Usage()
		return errUsage
	}
	ck, f, err := loadAdapter(*modelDir, *adapterPath)
	if err != nil {
		return err
	}
	ds, err := readLabelled(*dataPath, layout, f.Labels)
	if err != nil {
		return err
	}
	if *metric == "" {
		*metric = map[bool]string{true: "pearson", false: "accuracy"}[len(f.Labels) == 0]
	}
	be, err := openDevice(*device, *ordinal, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "ablating %s on %s (%d examples, %s, device %s)\n", *adapterPath, *dataPath, len(ds.Examples), *metric, be.Name())
	t, err := sweep.Ablate(be, ck, f, ds, sweep.AblateOptions{MaxLength: *maxLen, BatchSize: *batch, Metric: *metric})
	if err != nil {
		return err
	}
	t.Adapter = *adapterPath
	return writeAblation(stdout, t, *out)
}

// fillFromConfig takes ablate's flags that were not given from a run file.
func fillFromConfig(cfg *trainer.Config, fs *flag.FlagSet, split string, modelDir, adapterPath, dataPath, metric *string, maxLen *int) error {
	given := setFlags(fs)
	if !given["max-length"] {
		*maxLen = cfg.Model.MaxLength
	}
	if *modelDir == "" {
		*modelDir = cfg.Model.Dir
	}
	if *adapterPath == "" {
		*adapterPath = filepath.Join(cfg.Output.Dir, trainer.AdapterFileName)
	}
	if *metric == "" {
		*metric = cfg.MetricForBest()
	}
	if *dataPath == "" {
		switch split {
		case "validation":
			*dataPath = cfg.Data.Validation
		case "test":
			*dataPath = cfg.Data.Test
		default:
			return fmt.Errorf("--split %q: want validation or test", split)
		}
	}
	return nil
}

// readLabelled reads a labelled dataset and encodes its labels with the
// adapter's label names (none: regression).
func readLabelled(path string, layout trainer.Layout, names []string) (*trainer.Dataset, error) {
	ds, err := trainer.ReadFile(path, layout)
	if err != nil {
		return nil, err
	}
	var labels *trainer.Labels
	if len(names) > 0 {
		labels = trainer.NewLabels(names)
	}
	if err := ds.Encode(labels, false); err != nil {
		return nil, err
	}
	return ds, nil
}

// writeAblation prints the table and writes its files and heat map.
func writeAblation(stdout io.Writer, t *sweep.AblationTable, out string) error {
	if out == "" {
		out = filepath.Join(filepath.Dir(t.Adapter), "ablation")
	}
	fmt.Fprintf(stdout, "%s with every adapter: %.4f\n%s with the adapters of layers first..last removed (rows first, columns last):\n", t.Metric, t.Baseline, t.Metric)
	fmt.Fprintf(stdout, "first\\last")
	for j := 0; j < t.Layers; j++ {
		fmt.Fprintf(stdout, " %7d", j)
	}
	fmt.Fprintln(stdout)
	for i := 0; i < t.Layers; i++ {
		fmt.Fprintf(stdout, "%10d", i)
		for j := 0; j < t.Layers; j++ {
			if j < i {
				fmt.Fprintf(stdout, " %7s", "")
				continue
			}
			fmt.Fprintf(stdout, " %7.4f", t.At(i, j))
		}
		fmt.Fprintln(stdout)
	}
	if err := sweep.WriteAblation(out, t); err != nil {
		return err
	}
	png := filepath.Join(out, "ablation.png")
	if err := sweep.AblationHeat(t, filepath.Base(filepath.Dir(t.Adapter)), "evaluation").SavePNG(png); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s, %s, %s\n", filepath.Join(out, sweep.AblationJSON), filepath.Join(out, sweep.AblationTSV), png)
	return nil
}
