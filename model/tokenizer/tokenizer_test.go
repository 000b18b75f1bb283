package tokenizer

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/houlsby/adapters/internal/testassets"
)

// Unit tests on a tiny vocabulary; they need no assets. Parity with the
// reference on the real vocabulary is in tokenizer_parity_test.go.

var tinyVocab = []string{
	"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", // 0-4
	"un", "##aff", "##able", "hello", "world", // 5-9
	",", "!", "a", "##a", "ab", // 10-14
	"##b", "b", "cafe", "中", "i", // 15-19
	"##\u0307", "\u0307", "x", "[", "]", // 20-24
}

func tiny(t testing.TB, edit func(*Config)) *Tokenizer {
	t.Helper()
	cfg := DefaultConfig()
	if edit != nil {
		edit(&cfg)
	}
	tok, err := New(tinyVocab, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestTokenize(t *testing.T) {
	tok := tiny(t, nil)
	cases := []struct {
		in   string
		want []string
	}{
		{"unaffable", []string{"un", "##aff", "##able"}},
		{"Hello, WORLD!", []string{"hello", ",", "world", "!"}},
		{"unaffablex", []string{"[UNK]"}}, // no segmentation for the tail: whole word is [UNK]
		{"aab", []string{"a", "##a", "##b"}},
		{"ab", []string{"ab"}}, // longest match first
		{"Café", []string{"cafe"}},
		{"a中b", []string{"a", "中", "b"}},           // CJK ideographs become words
		{"a\x00b\u200bc\ufffd", []string{"[UNK]"}}, // controls, format chars and U+FFFD vanish: "abc"
		{"a\tb\nab\r\u3000a", []string{"a", "b", "ab", "a"}},
		{"hello[SEP]world[mask]", []string{"hello", "[SEP]", "world", "[", "[UNK]", "]"}},
		{"[CLS][MASK]", []string{"[CLS]", "[MASK]"}},
		{"", nil},
		{" \t ", nil},
		{strings.Repeat("a", 100), append([]string{"a"}, slices.Repeat([]string{"##a"}, 99)...)},
		{strings.Repeat("a", 101), []string{"[UNK]"}}, // max_input_chars_per_word = 100
		{"İ", []string{"i"}},               // NFD gives I + U+0307, the mark is stripped
		{"bad\xffutf8", []string{"[UNK]"}}, // invalid byte read as U+FFFD and dropped
	}
	for _, c := range cases {
		if got := tok.Tokenize(c.in); !slices.Equal(got, c.want) {
			t.Errorf("Tokenize(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestNormalizerFlags(t *testing.T) {
	// Lowercase without accent stripping: U+0130 lowercases to "i\u0307"
	// (Rust char::to_lowercase), which WordPiece sees as i + ##\u0307.
	noStrip := tiny(t, func(c *Config) { c.StripAccents = false })
	if got := noStrip.Tokenize("İ"); !slices.Equal(got, []string{"i", "##\u0307"}) {
		t.Errorf("no strip_accents: Tokenize(İ) = %q", got)
	}
	if got := noStrip.Tokenize("Café"); !slices.Equal(got, []string{"[UNK]"}) {
		t.Errorf("no strip_accents: Tokenize(Café) = %q, want [UNK]", got)
	}
	cased := tiny(t, func(c *Config) { c.Lowercase, c.StripAccents = false, false })
	if got := cased.Tokenize("Hello hello"); !slices.Equal(got, []string{"[UNK]", "hello"}) {
		t.Errorf("cased: %q", got)
	}
	noCJK := tiny(t, func(c *Config) { c.HandleChineseChars = false })
	if got := noCJK.Tokenize("a中b"); !slices.Equal(got, []string{"[UNK]"}) {
		t.Errorf("no chinese chars: %q", got)
	}
	noClean := tiny(t, func(c *Config) { c.CleanText = false })
	if got := noClean.Tokenize("a\x00b"); !slices.Equal(got, []string{"[UNK]"}) {
		t.Errorf("no clean_text: %q", got)
	}
}

// TestTruncatePair is the table of Hugging Face tokenizers'
// truncate_encodings_longest_first test (max_length 7; lengths 0, 2, 4, 8).
func TestTruncatePair(t *testing.T) {
	cases := [][4]int{
		{0, 0, 0, 0}, {0, 2, 0, 2}, {0, 4, 0, 4}, {0, 8, 0, 7},
		{2, 0, 2, 0}, {2, 2, 2, 2}, {2, 4, 2, 4}, {2, 8, 2, 5},
		{4, 0, 4, 0}, {4, 2, 4, 2}, {4, 4, 3, 4}, {4, 8, 3, 4},
		{8, 0, 7, 0}, {8, 2, 5, 2}, {8, 4, 4, 3}, {8, 8, 3, 4},
	}
	for _, c := range cases {
		n1, n2 := truncatePair(c[0], c[1], 7)
		if n1 != c[2] || n2 != c[3] {
			t.Errorf("truncatePair(%d, %d, 7) = %d, %d; want %d, %d", c[0], c[1], n1, n2, c[2], c[3])
		}
	}
	for _, c := range [][2]int{{5, 9}, {9, 5}, {0, 3}} {
		if n1, n2 := truncatePair(c[0], c[1], 0); n1 != 0 || n2 != 0 {
			t.Errorf("truncatePair(%d, %d, 0) = %d, %d; want 0, 0", c[0], c[1], n1, n2)
		}
	}
}

func TestEncodeLayout(t *testing.T) {
	tok := tiny(t, nil)
	e := tok.EncodePair("hello a", "world", Options{})
	want := Encoding{
		IDs:           []int32{2, 8, 12, 3, 9, 3},
		TypeIDs:       []int32{0, 0, 0, 0, 1, 1},
		AttentionMask: []int32{1, 1, 1, 1, 1, 1},
	}
	if !slices.Equal(e.IDs, want.IDs) || !slices.Equal(e.TypeIDs, want.TypeIDs) || !slices.Equal(e.AttentionMask, want.AttentionMask) {
		t.Errorf("EncodePair = %+v, want %+v", e, want)
	}
	e = tok.Encode("a a a a a", Options{MaxLength: 4, Pad: PadMaxLength})
	if !slices.Equal(e.IDs, []int32{2, 12, 12, 3}) || !slices.Equal(e.AttentionMask, []int32{1, 1, 1, 1}) {
		t.Errorf("truncated single = %+v", e)
	}
	e = tok.Encode("a", Options{MaxLength: 6, Pad: PadMaxLength})
	if !slices.Equal(e.IDs, []int32{2, 12, 3, 0, 0, 0}) || !slices.Equal(e.AttentionMask, []int32{1, 1, 1, 0, 0, 0}) ||
		!slices.Equal(e.TypeIDs, []int32{0, 0, 0, 0, 0, 0}) {
		t.Errorf("padded single = %+v", e)
	}
	// An empty second text still gets its [SEP] (as the Rust tokenizer and
	// transformers' batch call do).
	e = tok.EncodePair("a", "", Options{})
	if !slices.Equal(e.IDs, []int32{2, 12, 3, 3}) || !slices.Equal(e.TypeIDs, []int32{0, 0, 0, 1}) {
		t.Errorf("pair with empty second = %+v", e)
	}
}

func TestEncodeBatchAndStack(t *testing.T) {
	tok := tiny(t, nil)
	encs, err := tok.EncodeBatch([]string{"a", "hello world !", ""}, nil, Options{Pad: PadLongest})
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range encs {
		if e.Len() != 5 {
			t.Errorf("encoding %d has length %d, want 5 (longest)", i, e.Len())
		}
	}
	bt, err := Stack(encs)
	if err != nil {
		t.Fatal(err)
	}
	wantIDs := []int32{2, 12, 3, 0, 0, 2, 8, 9, 11, 3, 2, 3, 0, 0, 0}
	wantMask := []int32{1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0}
	if bt.B != 3 || bt.T != 5 || !slices.Equal(bt.IDs, wantIDs) || !slices.Equal(bt.AttentionMask, wantMask) {
		t.Errorf("Stack = %+v", bt)
	}
	unpadded, _ := tok.EncodeBatch([]string{"a", "a a"}, nil, Options{})
	if _, err := Stack(unpadded); err == nil {
		t.Error("Stack of unequal lengths: want an error")
	}
	if _, err := tok.EncodeBatch([]string{"a"}, []string{"b", "c"}, Options{}); err == nil {
		t.Error("EncodeBatch with mismatched pairs: want an error")
	}
	for _, o := range []Options{{MaxLength: 1}, {MaxLength: -1}, {Pad: PadMaxLength}, {Pad: 7}} {
		if _, err := tok.EncodeBatch([]string{"a"}, nil, o); err == nil {
			t.Errorf("options %+v: want an error", o)
		}
	}
	if _, err := tok.EncodeBatch([]string{"a"}, []string{"b"}, Options{MaxLength: 2}); err == nil {
		t.Error("pair with MaxLength 2 (< 3 special tokens): want an error")
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New(nil, DefaultConfig()); err == nil {
		t.Error("empty vocabulary: want an error")
	}
	cfg := DefaultConfig()
	cfg.UnkToken = "<unk>"
	if _, err := New(tinyVocab, cfg); err == nil || !strings.Contains(err.Error(), "UnkToken") {
		t.Errorf("missing unk token: err = %v", err)
	}
}

func TestLoadRejectsOtherTokenizers(t *testing.T) {
	dir := t.TempDir()
	tj := map[string]any{
		"normalizer":    map[string]any{"type": "NFC"},
		"pre_tokenizer": map[string]any{"type": "BertPreTokenizer"},
		"model":         map[string]any{"type": "WordPiece", "vocab": map[string]int{"[UNK]": 0}},
	}
	b, _ := json.Marshal(tj)
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(dir)
	if err == nil || !strings.Contains(err.Error(), "normalizer.type") {
		t.Errorf("Load with an NFC normalizer: err = %v, want one naming normalizer.type", err)
	}
	if _, err := Load(t.TempDir()); err == nil {
		t.Error("Load of an empty folder: want an error")
	}
}

func TestLoadVocabTxtOnly(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "vocab.txt"), []byte(strings.Join(tinyVocab, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(`{"do_lower_case": false}`), 0o644); err != nil {
		t.Fatal(err)
	}
	tok, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if c := tok.Config(); c.Lowercase || c.StripAccents || tok.VocabSize() != len(tinyVocab) {
		t.Errorf("config %+v, vocab %d", c, tok.VocabSize())
	}
}

// TestLoadRealModel checks the flags read from all-MiniLM-L6-v2's
// tokenizer.json and that vocab.txt agrees with it.
func TestLoadRealModel(t *testing.T) {
	testassets.Require(t, "make assets", filepath.Join(testassets.ModelDir(), "tokenizer.json"))
	tok, err := Load(testassets.ModelDir())
	if err != nil {
		t.Fatal(err)
	}
	c := tok.Config()
	if tok.VocabSize() != 30522 || !c.Lowercase || !c.StripAccents || !c.CleanText || !c.HandleChineseChars ||
		c.MaxInputCharsPerWord != 100 || tok.ClsID() != 101 || tok.SepID() != 102 || tok.PadID() != 0 || tok.UnkID() != 100 {
		t.Errorf("config %+v, vocab %d, ids cls %d sep %d pad %d unk %d", c, tok.VocabSize(), tok.ClsID(), tok.SepID(), tok.PadID(), tok.UnkID())
	}
	// transformers' documented example for bert-base-uncased's vocabulary,
	// which all-MiniLM-L6-v2 shares.
	if got := tok.Tokenize("Hello, my dog is cute"); !slices.Equal(got, []string{"hello", ",", "my", "dog", "is", "cute"}) {
		t.Errorf("Tokenize = %q", got)
	}
}

// TestAppendIDsNoAllocs: the steady-state path allocates nothing beyond the
// caller's output slice (buffers come from a sync.Pool, map lookups by
// []byte do not copy).
func TestAppendIDsNoAllocs(t *testing.T) {
	tok := tiny(t, nil)
	text := "Hello, WORLD! unaffable Café a中b " + strings.Repeat("aab ", 20)
	dst := make([]int32, 0, 256)
	tok.AppendIDs(dst, text) // warm the pool
	allocs := testing.AllocsPerRun(100, func() { tok.AppendIDs(dst[:0], text) })
	if allocs > 0 {
		t.Errorf("AppendIDs allocates %.1f times per call, want 0", allocs)
	}
}

func loadSpamTexts(b testing.TB) []string {
	path := filepath.Join(testassets.SpamDir(), "train.jsonl")
	testassets.Require(b, "make assets", testassets.ModelDir(), path)
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var texts []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() && len(texts) < 1000 {
		var r struct{ Text string }
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			b.Fatal(err)
		}
		texts = append(texts, r.Text)
	}
	return texts
}

// BenchmarkEncode encodes the first 1,000 SpamAssassin training texts
// (subject + body, up to 4,000 characters each) and reports tokens/s.
func BenchmarkEncode(b *testing.B) {
	texts := loadSpamTexts(b)
	tok, err := Load(testassets.ModelDir())
	if err != nil {
		b.Fatal(err)
	}
	nbytes := 0
	for _, s := range texts {
		nbytes += len(s)
	}
	for _, bc := range []struct {
		name string
		opt  Options
	}{{"cpu/full", Options{}}, {"cpu/max128", Options{MaxLength: 128}}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(nbytes))
			tokens := 0
			for i := 0; i < b.N; i++ {
				for _, s := range texts {
					tokens += tok.Encode(s, bc.opt).Len()
				}
			}
			b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}

// FuzzEncode checks invariants on arbitrary input (invalid UTF-8 included):
// no panic, equal slice lengths, the [CLS]/[SEP] layout, the length bound of
// truncation, and that truncating a single text keeps a prefix of the
// untruncated ids.
func FuzzEncode(f *testing.F) {
	for _, s := range []string{"", "Hello, world!", "a中b\u0301\x00\xff", "[SEP][CLS]x", strings.Repeat("ab", 80), "İ\U00011938\u1e9e"} {
		f.Add(s, "second", 5)
	}
	tok := tiny(f, nil)
	f.Fuzz(func(t *testing.T, a, b string, maxLen int) {
		maxLen = 3 + (maxLen&0xff)%60
		full := tok.Encode(a, Options{})
		e := tok.Encode(a, Options{MaxLength: maxLen})
		if e.Len() > maxLen || len(e.TypeIDs) != e.Len() || len(e.AttentionMask) != e.Len() {
			t.Fatalf("Encode(%q, max %d): %d ids, %d types, %d mask", a, maxLen, e.Len(), len(e.TypeIDs), len(e.AttentionMask))
		}
		if e.IDs[0] != tok.ClsID() || e.IDs[e.Len()-1] != tok.SepID() {
			t.Fatalf("Encode(%q): no [CLS] ... [SEP]: %v", a, e.IDs)
		}
		if n := e.Len() - 1; !slices.Equal(e.IDs[:n], full.IDs[:n]) {
			t.Fatalf("Encode(%q, max %d) = %v is not a prefix of %v", a, maxLen, e.IDs, full.IDs)
		}
		p := tok.EncodePair(a, b, Options{MaxLength: maxLen, Pad: PadMaxLength})
		if p.Len() != maxLen {
			t.Fatalf("EncodePair(%q, %q, max %d): length %d", a, b, maxLen, p.Len())
		}
		seps := 0
		for i, id := range p.IDs {
			if id == tok.SepID() && p.AttentionMask[i] == 1 {
				seps++
			}
		}
		if seps < 2 {
			t.Fatalf("EncodePair(%q, %q): %d [SEP], want >= 2: %v", a, b, seps, p.IDs)
		}
	})
}

// Token and TokenID are inverse lookups over the vocabulary.
func TestTokenLookup(t *testing.T) {
	tok := tiny(t, nil)
	for id, w := range tinyVocab {
		got, ok := tok.TokenID(w)
		if !ok || got != int32(id) || tok.Token(got) != w {
			t.Errorf("%q: TokenID = %d, %v; Token(%d) = %q", w, got, ok, got, tok.Token(got))
		}
	}
	if _, ok := tok.TokenID("absent"); ok {
		t.Error("TokenID found a word that is not in the vocabulary")
	}
}
