package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/houlsby/adapters/corpus"
)

// dataHelp lists the corpora; the rules of each are in its file under
// corpus/ and in the README.md it writes next to the splits.
func dataHelp() string {
	var b strings.Builder
	b.WriteString(`
Usage: train-gpu data NAME [--in DIR] [--out DIR]

Prepares a real dataset from its package into train.jsonl, validation.jsonl
and test.jsonl ({"id","text"[,"text_pair"],"label"}) plus README.md (rules
and counts) in --out. Splits are fixed by a hash of content or id;
duplicates are removed and no text occurs in two splits. scripts/assets.sh
(make assets) downloads the packages and runs all four. NAME is one of:
`)
	for _, c := range corpus.All() {
		fmt.Fprintf(&b, "\n  %-13s %s\n                from %s\n                --in %s\n                --out %s\n", c.Name, c.Summary, c.Source, c.In, c.Out)
	}
	return b.String()
}

func runData(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("data", dataHelp(), stdout)
	in := fs.String("in", "", "the raw data folder (default: the corpus's, above)")
	out := fs.String("out", "", "the output folder (default: the corpus's, above)")
	pos, err := parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	c, ok := corpus.Lookup(pos[0])
	if !ok {
		return fmt.Errorf("unknown dataset %q (known: %s)", pos[0], strings.Join(corpus.Names(), ", "))
	}
	if *in == "" {
		*in = c.In
	}
	if *out == "" {
		*out = c.Out
	}
	rep, err := c.Prepare(*in, *out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %d items read, %d examples written to %s (%d malformed; skipped: %s)\n", c.Name, rep.Read, rep.Total(), *out, len(rep.Malformed), rep.SkipSummary())
	for _, s := range corpus.Splits {
		var parts []string
		for _, l := range sortedKeys(rep.Counts[s]) {
			parts = append(parts, l+" "+strconv.Itoa(rep.Counts[s][l]))
		}
		fmt.Fprintf(stdout, "  %-10s %s\n", s, strings.Join(parts, ", "))
	}
	return nil
}
