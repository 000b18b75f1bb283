package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/houlsby/adapters/plots"
	"github.com/houlsby/adapters/trainer"
)

const plotHelp = `
Usage: train-gpu plot RUN_DIR [--out FILE.png]

Draws a run's curves from RUN_DIR/log.jsonl as one PNG of three panels
against the optimizer step: the training loss of the logged steps with the
validation loss, the learning rate, and every validation metric. A resumed
run's repeated steps count once (the later record). Default output:
RUN_DIR/training.png.
`

func runPlot(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("plot", plotHelp, stdout)
	out := fs.String("out", "", "the PNG to write (default RUN_DIR/training.png)")
	pos, err := parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	dir := pos[0]
	path := filepath.Join(dir, trainer.LogFileName)
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	log, err := plots.ParseRunLog(path, f)
	if err != nil {
		return err
	}
	charts, err := log.Charts(runTitle(dir))
	if err != nil {
		return err
	}
	if *out == "" {
		*out = filepath.Join(dir, "training.png")
	}
	if err := plots.Panels(*out, charts); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d logged steps, %d evaluations -> %s\n", len(log.Steps), len(log.EvalSteps), *out)
	return nil
}

// runTitle names a run by the last three elements of its folder
// (task/setting/run in a sweep).
func runTitle(dir string) string {
	parts := strings.Split(filepath.ToSlash(filepath.Clean(dir)), "/")
	if len(parts) > 3 {
		parts = parts[len(parts)-3:]
	}
	return strings.Join(parts, "/")
}
