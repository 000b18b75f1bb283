package main

import (
	"fmt"
	"io"
	"path/filepath"
	"regexp"

	"github.com/houlsby/adapters/interop/adapterhub"
	"github.com/houlsby/adapters/interop/onnx"
	"github.com/houlsby/adapters/trainer"
)

const exportHelp = `
Usage: train-gpu export --adapter FILE|DIR --model DIR --out PATH [--format hf|adapterhub|onnx] [--name NAME]

Writes a trained adapter (an adapter file, or an AdapterHub folder) in
another ecosystem's format; docs/interop.md has the details and the Python
lines that load each.

--format hf (default): a Hugging Face folder that
BertForSequenceClassification.from_pretrained and AutoTokenizer.from_pretrained
load: config.json (the base config.json plus architectures, num_labels,
id2label, label2id, problem_type), model.safetensors (the base weights with
the trained tensors in their place, "bert."-prefixed names, and
classifier.weight/bias) and the base folder's vocab.txt, tokenizer.json,
tokenizer_config.json and special_tokens_map.json when present. Runs with
strategy full write output.dir/hf-model this way themselves. Strategy
adapters cannot be exported so: plain BertForSequenceClassification has no
adapter layers.

--format adapterhub: the folder AdapterHub's save_adapter writes
(adapter_config.json, adapter.safetensors, head_config.json,
model_head.safetensors), named --name (default: the --out folder's name),
plus houlsby_side.safetensors with what AdapterHub cannot hold (the
LayerNorms trained with the adapter) and README.md. Strategies other than
adapters, and the mean head, are refused with the reason.

--format onnx: one ONNX model file (opset 17): backbone, adapters, trained
LayerNorms and head; inputs input_ids, attention_mask, token_type_ids
(int64 [batch, sequence]), output logits (float32 [batch, num_labels]).
Every strategy exports.

Folders are written to a temporary sibling and renamed into place (an
existing one is replaced); files are written atomically.
`

var nameChars = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

func runExport(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("export", exportHelp, stdout)
	adapterPath := fs.String("adapter", "", "the trained adapter: adapter.safetensors or best.safetensors of a run, or an AdapterHub folder")
	modelDir := fs.String("model", "", "the base model folder the adapter was trained on")
	out := fs.String("out", "", "the folder (hf, adapterhub) or file (onnx) to write")
	format := fs.String("format", "hf", "hf, adapterhub or onnx")
	name := fs.String("name", "", "adapterhub: the adapter's name (default: the --out folder's name)")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	if *adapterPath == "" || *modelDir == "" || *out == "" {
		fs.Usage()
		return errUsage
	}
	switch *format {
	case "hf", "adapterhub", "onnx":
	default:
		return fmt.Errorf("--format %q: want hf, adapterhub or onnx", *format)
	}
	ck, f, err := loadAdapter(*modelDir, *adapterPath)
	if err != nil {
		return err
	}
	switch *format {
	case "hf":
		err = trainer.ExportHF(*out, ck, f)
	case "adapterhub":
		n := *name
		if n == "" {
			n = nameChars.ReplaceAllString(filepath.Base(filepath.Clean(*out)), "_")
		}
		err = adapterhub.Export(*out, f, adapterhub.ExportOptions{Name: n, ModelName: filepath.Base(filepath.Clean(ck.Dir))})
	case "onnx":
		err = onnx.Export(*out, ck, f)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", *adapterPath, err)
	}
	fmt.Fprintf(stdout, "wrote %s (%s; strategy %s, head %s, %d labels)\n", *out, *format, f.Strategy.Name, f.Head.Kind, f.Head.NumLabels)
	return nil
}
