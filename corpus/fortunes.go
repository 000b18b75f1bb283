package corpus

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"
)

// Fortunes is the topic of a quotation: 8 of the topic files of Debian's
// fortunes package (1:1.99.1-7.3, the fortune-mod cookie files), each a
// class. The package is fetched and unpacked without root by
// scripts/assets.sh (apt-get download or the Debian archive, then
// dpkg-deb -x). Only files that name a subject and hold at least 200
// quotations qualify; from those FortuneTopics are the eight subjects least
// likely to overlap (computers but not linux or perl; no miscellaneous,
// cookie, platitudes or zippy, which are not topics).
var Fortunes = Corpus{
	Name:    "fortunes",
	Summary: "topic of a quotation, 8 classes (Debian fortunes)",
	Source:  "Debian package fortunes 1:1.99.1-7.3",
	In:      "build/assets/fortunes-deb/usr/share/games/fortunes",
	Out:     "build/assets/fortunes",
	Prepare: PrepareFortunes,
}

// FortuneTopics are the cookie files used, each a class named after it.
var FortuneTopics = []string{"art", "computers", "drugs", "education", "law", "politics", "science", "work"}

const (
	// FortunesPerTopic caps each topic at the quotations with the smallest
	// hashes (of their NormKey), so the largest class (computers, 1,050
	// quotations in the package) is at most about twice the smallest
	// (education, 203).
	FortunesPerTopic = 400
	// FortuneMaxRunes cuts long quotations (song lyrics, stories); 1,000
	// characters is several times the 64-128 tokens a run reads.
	FortuneMaxRunes = 1000
	// fortuneMinRunes drops fragments too short to carry a topic.
	fortuneMinRunes = 10
)

// ParseFortunes splits a cookie file (strfile format: quotations separated
// by lines holding only "%") into quotations with white space collapsed.
// Empty quotations are dropped; invalid UTF-8 is an error naming the line.
func ParseFortunes(name string, data []byte) ([]string, error) {
	var out []string
	var cur []string
	flush := func() {
		if q := collapseSpace(strings.Join(cur, "\n")); q != "" {
			out = append(out, q)
		}
		cur = cur[:0]
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimRight(sc.Text(), "\r")
		if !utf8.ValidString(s) {
			return nil, fmt.Errorf("fortunes: %s:%d: not valid UTF-8", name, line)
		}
		if s == "%" {
			flush()
			continue
		}
		cur = append(cur, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("fortunes: %s:%d: %w", name, line+1, err)
	}
	flush()
	return out, nil
}

// PrepareFortunes reads FortuneTopics from inDir (the package's
// usr/share/games/fortunes) and writes the splits into outDir: duplicates
// (up to case and white space) kept once, quotations found in two topics
// dropped, each topic capped at FortunesPerTopic, then a 60/20/20 split by
// the hash of the quotation's NormKey (more evaluation data than 80/10/10,
// because the smallest topics have about 200 quotations).
func PrepareFortunes(inDir, outDir string) (*Report, error) {
	rep := newReport()
	var all []Example
	for _, topic := range FortuneTopics {
		path := filepath.Join(inDir, topic)
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("fortunes: %w", err)
		}
		qs, err := ParseFortunes(path, data)
		if err != nil {
			return nil, err
		}
		for i, q := range qs {
			rep.Read++
			if utf8.RuneCountInString(q) < fortuneMinRunes {
				rep.Skipped["shorter than 10 characters"]++
				continue
			}
			all = append(all, Example{ID: fmt.Sprintf("%s/%04d", topic, i+1), Text: truncateRunes(q, FortuneMaxRunes), Label: topic})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].ID < all[j].ID })
	all = capPerLabel(dedupe(all, rep), FortunesPerTopic, rep)
	splits := map[string][]Example{}
	for _, e := range all {
		s := hashSplit(NormKey(e.Text), 6, 2)
		splits[s] = append(splits[s], e)
	}
	return rep, Write(outDir, splits, rep, fortunesReadme)
}

// capPerLabel keeps at most n examples of each label: those whose NormKey
// hashes (salted, so the choice is independent of the split) are smallest.
// The result keeps exs's order.
func capPerLabel(exs []Example, n int, rep *Report) []Example {
	byLabel := map[string][]int{}
	for i, e := range exs {
		l := fmt.Sprint(e.Label)
		byLabel[l] = append(byLabel[l], i)
	}
	keep := make([]bool, len(exs))
	for _, idx := range byLabel {
		sort.Slice(idx, func(a, b int) bool {
			return hash64("cap\x00"+NormKey(exs[idx[a]].Text)) < hash64("cap\x00"+NormKey(exs[idx[b]].Text))
		})
		for k, i := range idx {
			keep[i] = k < n
		}
	}
	var out []Example
	for i, e := range exs {
		if keep[i] {
			out = append(out, e)
		} else {
			rep.Skipped[fmt.Sprintf("over the cap of %d per class", n)]++
		}
	}
	return out
}

func fortunesReadme(rep *Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Fortunes: the topic of a quotation\n\n")
	fmt.Fprintf(&b, "Written by `train-gpu data fortunes` (corpus/fortunes.go) from Debian's `fortunes`\n")
	fmt.Fprintf(&b, "package, 1:1.99.1-7.3 (usr/share/games/fortunes). One class per cookie file: %s.\n", strings.Join(FortuneTopics, ", "))
	fmt.Fprintf(&b, "Quotations are split on `%%` lines, white space collapsed (line breaks and the\n")
	fmt.Fprintf(&b, "attribution's indentation become single spaces), cut to %d characters; shorter\n", FortuneMaxRunes)
	fmt.Fprintf(&b, "than %d characters dropped. Duplicates up to case and white space are kept once and\n", fortuneMinRunes)
	fmt.Fprintf(&b, "dropped entirely when they occur in two topics. Each topic keeps at most %d quotations\n", FortunesPerTopic)
	fmt.Fprintf(&b, "(smallest FNV-1a 64 of \"cap\\0\" + the lower-cased text). Split: FNV-1a 64 of the\n")
	fmt.Fprintf(&b, "lower-cased, space-collapsed text mod 10: 0-5 train, 6-7 validation, 8-9 test.\n\n")
	b.WriteString(countTable(rep, FortuneTopics))
	fmt.Fprintf(&b, "\nQuotations read: %d. Written: %d. Skipped: %s.\n", rep.Read, rep.Total(), rep.SkipSummary())
	return b.String()
}
