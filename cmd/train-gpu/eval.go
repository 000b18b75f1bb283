package main

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/houlsby/adapters/trainer"
)

const evalHelp = `
Usage: train-gpu eval --adapter FILE --model DIR --data FILE [flags]
       train-gpu eval -c run.toml [--adapter FILE] [--split validation|test]

Evaluates an adapter file on a labelled dataset and prints the metrics
(accuracy, macro F1, MCC, and the binary F1 of the second label for a
two-class task; Pearson and Spearman for regression), then, for
classification, every class's precision, recall and F1 and the confusion
matrix. The data format is --format, or else the file's extension. The base
model must be the one the adapter was trained on (checked by fingerprint).
With -c the model folder, data layout and files come from the run file and
the adapter defaults to output.dir/adapter.safetensors.
`

func runEval(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("eval", evalHelp, stdout)
	cfgPath := fs.String("c", "", "a TOML run file to take the model, data layout and files from")
	split := fs.String("split", "validation", "with -c: the split to evaluate, validation or test")
	adapterPath := fs.String("adapter", "", "the adapter file, or an AdapterHub folder")
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
	if labels != nil {
		writePerClass(stdout, scores, labels.Names)
	}
	return nil
}
