package main

import (
	"io"

	"github.com/houlsby/adapters/model"
)

const inspectHelp = `
Usage: train-gpu inspect MODEL_DIR

Loads the Hugging Face model folder MODEL_DIR (config.json and
model.safetensors or a sharded index; every tensor is checked) and prints its
config, parameter counts by group, what happens to the pooler, ignored
task-head tensors, the base-model fingerprint adapter files record, and the
tensor list.
`

func runInspect(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("inspect", inspectHelp, stdout)
	pos, err := parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	return model.Inspect(stdout, pos[0])
}
