package tokenizer

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/houlsby/adapters/internal/testassets"
)

// Parity with Hugging Face BertTokenizerFast, on goldens written by
// tests/ref/gen_tokenizer.py (`make goldens`). Everything is compared
// exactly: ids, type ids and attention masks are integers, so there is no
// tolerance.

func goldenDir() string { return filepath.Join(testassets.GoldenDir(), "tokenizer") }

// loadVariant loads all-MiniLM-L6-v2's tokenizer with the flags of one of the
// configurations gen_tokenizer.py uses (its CONFIGS dict).
func loadVariant(t testing.TB, name string) *Tokenizer {
	t.Helper()
	base, err := Load(testassets.ModelDir())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	cfg := base.Config()
	switch name {
	case "default":
		return base
	case "no_strip_accents":
		cfg.StripAccents = false
	case "cased": // do_lower_case=False; strip_accents stays None, so it follows lowercase
		cfg.Lowercase, cfg.StripAccents = false, false
	case "no_chinese":
		cfg.HandleChineseChars = false
	default:
		t.Fatalf("unknown tokenizer config %q in goldens", name)
	}
	tok, err := New(base.Vocab(), cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", name, err)
	}
	return tok
}

type goldenCase struct {
	Name      string  `json:"name"`
	Config    string  `json:"config"`
	A         string  `json:"a"`
	B         *string `json:"b"`
	MaxLength int     `json:"max_length"`
	IDs       []int32 `json:"ids"`
	TypeIDs   []int32 `json:"type_ids"`
	Mask      []int32 `json:"mask"`
}

func readGzipLines(t *testing.T, path string, each func(line []byte)) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		each(sc.Bytes())
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// firstDiff describes the first position where got and want differ.
func firstDiff(tok *Tokenizer, got, want []int32) string {
	n := min(len(got), len(want))
	for i := 0; i < n; i++ {
		if got[i] != want[i] {
			return fmt.Sprintf("position %d: got %d (%q), want %d (%q); lengths %d, %d",
				i, got[i], safeToken(tok, got[i]), want[i], safeToken(tok, want[i]), len(got), len(want))
		}
	}
	return fmt.Sprintf("lengths %d, want %d", len(got), len(want))
}

func safeToken(tok *Tokenizer, id int32) string {
	if id < 0 || int(id) >= tok.VocabSize() {
		return "?"
	}
	return tok.Token(id)
}

func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "..."
}

func TestParityCases(t *testing.T) {
	path := filepath.Join(goldenDir(), "cases.jsonl.gz")
	testassets.Require(t, "make goldens", testassets.ModelDir(), path)
	toks := map[string]*Tokenizer{}
	var total, bad, real int
	readGzipLines(t, path, func(line []byte) {
		var c goldenCase
		if err := json.Unmarshal(line, &c); err != nil {
			t.Fatalf("case %d: %v", total, err)
		}
		total++
		if strings.HasPrefix(c.Name, "spam/") {
			real++
		}
		tok := toks[c.Config]
		if tok == nil {
			tok = loadVariant(t, c.Config)
			toks[c.Config] = tok
		}
		opt := Options{MaxLength: c.MaxLength}
		var e Encoding
		if c.B != nil {
			e = tok.EncodePair(c.A, *c.B, opt)
		} else {
			e = tok.Encode(c.A, opt)
		}
		if slices.Equal(e.IDs, c.IDs) && slices.Equal(e.TypeIDs, c.TypeIDs) && slices.Equal(e.AttentionMask, c.Mask) {
			return
		}
		bad++
		if bad <= 20 {
			b := "<none>"
			if c.B != nil {
				b = strconv.Quote(clip(*c.B, 200))
			}
			t.Errorf("%s (config %s, max_length %d): ids %s\n  type ids equal %v, mask equal %v\n  a = %q\n  b = %s",
				c.Name, c.Config, c.MaxLength, firstDiff(tok, e.IDs, c.IDs),
				slices.Equal(e.TypeIDs, c.TypeIDs), slices.Equal(e.AttentionMask, c.Mask), clip(c.A, 200), b)
		}
	})
	// gen_tokenizer.py writes >= 3 cases for each of >= 5,000 real texts; a
	// much smaller file means the generator or the data changed.
	if real < 15000 {
		t.Errorf("only %d real-text cases in %s, want >= 15000", real, path)
	}
	t.Logf("%d cases (%d on real texts), %d mismatches", total, real, bad)
	if bad > 0 {
		t.Errorf("%d of %d cases differ from BertTokenizerFast", bad, total)
	}
}

func TestParityBatches(t *testing.T) {
	path := filepath.Join(goldenDir(), "batches.jsonl.gz")
	testassets.Require(t, "make goldens", testassets.ModelDir(), path)
	tok := loadVariant(t, "default")
	n := 0
	readGzipLines(t, path, func(line []byte) {
		var c struct {
			Name      string    `json:"name"`
			A         []string  `json:"a"`
			B         []string  `json:"b"`
			MaxLength int       `json:"max_length"`
			Padding   string    `json:"padding"`
			IDs       [][]int32 `json:"ids"`
			TypeIDs   [][]int32 `json:"type_ids"`
			Mask      [][]int32 `json:"mask"`
		}
		if err := json.Unmarshal(line, &c); err != nil {
			t.Fatal(err)
		}
		n++
		opt := Options{MaxLength: c.MaxLength, Pad: PadLongest}
		if c.Padding == "max_length" {
			opt.Pad = PadMaxLength
		}
		encs, err := tok.EncodeBatch(c.A, c.B, opt)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		if len(encs) != len(c.IDs) {
			t.Fatalf("%s: %d encodings, want %d", c.Name, len(encs), len(c.IDs))
		}
		for i, e := range encs {
			if !slices.Equal(e.IDs, c.IDs[i]) || !slices.Equal(e.TypeIDs, c.TypeIDs[i]) || !slices.Equal(e.AttentionMask, c.Mask[i]) {
				t.Errorf("%s[%d]: %s; text %q", c.Name, i, firstDiff(tok, e.IDs, c.IDs[i]), clip(c.A[i], 120))
			}
		}
		bt, err := Stack(encs)
		if err != nil {
			t.Fatalf("%s: Stack: %v", c.Name, err)
		}
		if bt.B != len(encs) || bt.T != len(c.IDs[0]) || !slices.Equal(bt.IDs, slices.Concat(c.IDs...)) {
			t.Errorf("%s: Stack gives B=%d T=%d or wrong ids", c.Name, bt.B, bt.T)
		}
	})
	if n < 5 {
		t.Errorf("only %d batches in %s", n, path)
	}
}

// TestUnicodeTable runs every code point through the normalizer and the
// pre-tokenizer's character classes and compares with the reference's
// output for that code point alone.
func TestUnicodeTable(t *testing.T) {
	path := filepath.Join(goldenDir(), "unicode.json")
	testassets.Require(t, "make goldens", testassets.ModelDir(), path)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var u struct {
		Removed [][2]rune         `json:"removed"`
		CJK     [][2]rune         `json:"cjk"`
		Mapped  map[string]string `json:"mapped"`
		Punct   [][2]rune         `json:"punct"`
		Space   [][2]rune         `json:"space"`
	}
	if err := json.Unmarshal(b, &u); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	set := func(rs [][2]rune) map[rune]bool {
		m := map[rune]bool{}
		for _, r := range rs {
			for c := r[0]; c <= r[1]; c++ {
				m[c] = true
			}
		}
		return m
	}
	removed, cjk, punct, space := set(u.Removed), set(u.CJK), set(u.Punct), set(u.Space)
	mapped := map[rune]string{}
	for k, v := range u.Mapped {
		c, err := strconv.Atoi(k)
		if err != nil {
			t.Fatalf("%s: mapped key %q", path, k)
		}
		mapped[rune(c)] = v
	}
	tok := loadVariant(t, "default")
	sc := new(scratch)
	var buf []byte
	var normBad, punctBad, spaceBad int
	for r := rune(0); r <= utf8.MaxRune; r++ {
		if r >= 0xD800 && r <= 0xDFFF {
			continue // surrogates are not valid in UTF-8
		}
		s := string(r)
		want := s
		switch {
		case removed[r]:
			want = ""
		case cjk[r]:
			want = " " + s + " "
		default:
			if m, ok := mapped[r]; ok {
				want = m
			}
		}
		buf = tok.appendNormalized(buf[:0], s, sc)
		if string(buf) != want {
			normBad++
			if normBad <= 30 {
				t.Errorf("normalize U+%04X %q = %q, want %q", r, s, buf, want)
			}
		}
		if isPunct(r) != punct[r] {
			punctBad++
			if punctBad <= 30 {
				t.Errorf("isPunct(U+%04X %q) = %v, want %v", r, s, isPunct(r), punct[r])
			}
		}
		if isWhitespace(r) != space[r] {
			spaceBad++
			if spaceBad <= 30 {
				t.Errorf("isWhitespace(U+%04X %q) = %v, want %v", r, s, isWhitespace(r), space[r])
			}
		}
	}
	if normBad+punctBad+spaceBad > 0 {
		t.Errorf("code points that differ: normalizer %d, punctuation %d, white space %d", normBad, punctBad, spaceBad)
	}
}
