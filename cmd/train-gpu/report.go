package main

import (
	"fmt"
	"io"

	"github.com/houlsby/adapters/sweep"
)

const reportHelp = `
Usage: train-gpu report -c sweep.toml [--quick] [--out DIR] [--doc FILE]

Merges the results of a sweep that exist (every result.json under the
sweep's folder, including runs copied in from other machines; results of an
older configuration are left out) into results.jsonl, and writes report.md
with, per task, each setting's trained parameters and share, the chosen
learning rate, mean and standard deviation over seeds of the validation and
test metrics, time and memory, the learning-rate search, and the plots
(PNG): metric against trained parameters, against the bottleneck size,
against the learning rate, and the layer-ablation heat map. With --doc the
same report replaces the block between this mode's markers in FILE (e.g.
docs/results.md), which is otherwise left as it is.
`

func runReport(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("report", reportHelp, stdout)
	cfg := fs.String("c", "", "the sweep file (required)")
	quick := fs.Bool("quick", false, "the sweep's --quick variant")
	out := fs.String("out", "", "the report folder (default: the sweep's OUT/report)")
	runs := fs.String("runs", "", "the runs folder, instead of the file's sweep.out (or quick.out)")
	doc := fs.String("doc", "", "a Markdown file whose generated block to replace (or append)")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	if *cfg == "" {
		fs.Usage()
		return errUsage
	}
	p, err := sweep.Load(*cfg, *quick)
	if err != nil {
		return err
	}
	if *runs != "" {
		p.Sweep.Out = *runs
	}
	return writeReport(stdout, p, *out, *doc)
}

// writeReport writes the report of p into dir (default OUT/report) and,
// with doc, into that file's block.
func writeReport(stdout io.Writer, p *sweep.Plan, dir, doc string) error {
	if dir == "" {
		dir = p.ReportDir()
	}
	n, err := p.Report(sweep.ReportOptions{Dir: dir, Doc: doc})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "report: %d results -> %s/%s", n, dir, sweep.ReportFileName)
	if doc != "" {
		fmt.Fprintf(stdout, " and %s", doc)
	}
	fmt.Fprintln(stdout)
	return nil
}
