package main

import (
	"fmt"
	"io"

	"github.com/houlsby/adapters/trainer"
)

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
