// Package tokenizer is a BERT WordPiece tokenizer that produces exactly the
// ids of Hugging Face's BertTokenizerFast (the Rust `tokenizers` pipeline:
// added-token splitting, BertNormalizer, BertPreTokenizer, WordPiece,
// BERT post-processing, longest_first truncation, right padding).
//
// Pipeline for one text:
//
//  1. Special tokens ([CLS], [SEP], [PAD], [UNK], [MASK], ...) are found
//     verbatim in the raw text (leftmost, longest) and kept as single ids; the
//     text between them goes through steps 2-4.
//  2. Normalize (flags from tokenizer.json): clean text (drop U+0000, U+FFFD and
//     control/format/private-use characters except \t \n \r; map white space
//     to ' '), put spaces around CJK ideographs, strip accents (NFD, then drop
//     nonspacing marks), lowercase (full Unicode mapping, so U+0130 becomes
//     "i\u0307").
//  3. Pre-tokenize: split on white space; every punctuation character (ASCII
//     33-47, 58-64, 91-96, 123-126 and Unicode P*) is a word of its own.
//  4. WordPiece: greedy longest match from the left, continuation pieces
//     carry the "##" prefix; a word with no segmentation, or longer than
//     max_input_chars_per_word characters, becomes [UNK].
//
// Then [CLS] A [SEP] (type 0) or [CLS] A [SEP] B [SEP] (B and its [SEP] type 1),
// truncation and padding (Options).
//
// Input is Go strings; invalid UTF-8 bytes are read as U+FFFD and therefore
// dropped by the clean-text step (HF cannot receive invalid UTF-8 at all).
//
// Parity with the reference is measured, not assumed: tokenizer_parity_test.go
// compares ids, type ids and attention masks with goldens written by
// tests/ref/gen_tokenizer.py, and every code point through the normalizer.
package tokenizer

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"
)

// Config holds the normalizer flags and WordPiece settings of a tokenizer.
// Field meanings follow tokenizer.json (normalizer and model sections).
type Config struct {
	CleanText          bool // normalizer.clean_text
	HandleChineseChars bool // normalizer.handle_chinese_chars
	StripAccents       bool // normalizer.strip_accents (null in the JSON means: same as Lowercase)
	Lowercase          bool // normalizer.lowercase

	UnkToken                string // model.unk_token, "[UNK]"
	ContinuingSubwordPrefix string // model.continuing_subword_prefix, "##"
	MaxInputCharsPerWord    int    // model.max_input_chars_per_word, 100

	ClsToken string // first token of every encoding, "[CLS]"
	SepToken string // end of each sequence, "[SEP]"
	PadToken string // padding, "[PAD]"

	// SpecialTokens are matched verbatim in the raw text before
	// normalization and map to their own id (tokenizer.json added_tokens
	// with normalized=false). They must be in the vocabulary.
	SpecialTokens []string
}

// DefaultConfig is the configuration of an uncased BERT checkpoint such as
// bert-base-uncased or all-MiniLM-L6-v2.
func DefaultConfig() Config {
	return Config{
		CleanText:               true,
		HandleChineseChars:      true,
		StripAccents:            true,
		Lowercase:               true,
		UnkToken:                "[UNK]",
		ContinuingSubwordPrefix: "##",
		MaxInputCharsPerWord:    100,
		ClsToken:                "[CLS]",
		SepToken:                "[SEP]",
		PadToken:                "[PAD]",
		SpecialTokens:           []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"},
	}
}

// Tokenizer maps text to WordPiece ids. It is safe for concurrent use.
type Tokenizer struct {
	cfg   Config
	vocab []string         // id -> token
	ids   map[string]int32 // token -> id, every token
	cont  map[string]int32 // continuation piece without its prefix -> id of prefix+piece

	maxWordBytes int // longest token in bytes: no longer match exists
	maxContBytes int // longest continuation piece (without prefix) in bytes

	unk, cls, sep, pad int32

	specials  []special // sorted by length, longest first
	firstByte [256]bool // first bytes of the special tokens
}

type special struct {
	text string
	id   int32
}

// New builds a tokenizer from a vocabulary (index = id) and a configuration.
func New(vocab []string, cfg Config) (*Tokenizer, error) {
	if len(vocab) == 0 {
		return nil, fmt.Errorf("tokenizer: empty vocabulary")
	}
	if cfg.MaxInputCharsPerWord <= 0 {
		return nil, fmt.Errorf("tokenizer: MaxInputCharsPerWord = %d, want > 0", cfg.MaxInputCharsPerWord)
	}
	if cfg.ContinuingSubwordPrefix == "" {
		return nil, fmt.Errorf("tokenizer: empty ContinuingSubwordPrefix")
	}
	t := &Tokenizer{
		cfg:   cfg,
		vocab: append([]string(nil), vocab...),
		ids:   make(map[string]int32, len(vocab)),
		cont:  make(map[string]int32, len(vocab)/4),
	}
	t.cfg.SpecialTokens = append([]string(nil), cfg.SpecialTokens...)
	for i, tok := range vocab {
		// A duplicate keeps its last id, as Hugging Face's vocab loader does.
		t.ids[tok] = int32(i)
	}
	for tok, id := range t.ids {
		if len(tok) > t.maxWordBytes {
			t.maxWordBytes = len(tok)
		}
		if p, ok := strings.CutPrefix(tok, cfg.ContinuingSubwordPrefix); ok && p != "" {
			t.cont[p] = id
			if len(p) > t.maxContBytes {
				t.maxContBytes = len(p)
			}
		}
	}
	var err error
	lookup := func(field, tok string) int32 {
		id, ok := t.ids[tok]
		if !ok && err == nil {
			err = fmt.Errorf("tokenizer: %s %q is not in the vocabulary", field, tok)
		}
		return id
	}
	t.unk = lookup("UnkToken", cfg.UnkToken)
	t.cls = lookup("ClsToken", cfg.ClsToken)
	t.sep = lookup("SepToken", cfg.SepToken)
	t.pad = lookup("PadToken", cfg.PadToken)
	for _, s := range cfg.SpecialTokens {
		if s == "" {
			return nil, fmt.Errorf("tokenizer: empty special token")
		}
		t.specials = append(t.specials, special{s, lookup("special token", s)})
		t.firstByte[s[0]] = true
	}
	if err != nil {
		return nil, err
	}
	sort.SliceStable(t.specials, func(i, j int) bool { return len(t.specials[i].text) > len(t.specials[j].text) })
	return t, nil
}

// Config returns the tokenizer's configuration.
func (t *Tokenizer) Config() Config {
	c := t.cfg
	c.SpecialTokens = append([]string(nil), c.SpecialTokens...)
	return c
}

// Vocab returns a copy of the vocabulary, index = id.
func (t *Tokenizer) Vocab() []string { return append([]string(nil), t.vocab...) }

// VocabSize is the number of ids.
func (t *Tokenizer) VocabSize() int { return len(t.vocab) }

// TokenID returns the id of a vocabulary token.
func (t *Tokenizer) TokenID(tok string) (int32, bool) {
	id, ok := t.ids[tok]
	return id, ok
}

// Token returns the token of an id; it panics on an id outside the vocabulary.
func (t *Tokenizer) Token(id int32) string {
	if id < 0 || int(id) >= len(t.vocab) {
		panic(fmt.Sprintf("tokenizer: id %d outside vocabulary of %d", id, len(t.vocab)))
	}
	return t.vocab[id]
}

// UnkID is the id of the unknown token ([UNK]).
func (t *Tokenizer) UnkID() int32 { return t.unk }

// ClsID is the id of the classification token ([CLS]) that starts every encoding.
func (t *Tokenizer) ClsID() int32 { return t.cls }

// SepID is the id of the separator token ([SEP]) that ends each sequence.
func (t *Tokenizer) SepID() int32 { return t.sep }

// PadID is the id of the padding token ([PAD]).
func (t *Tokenizer) PadID() int32 { return t.pad }

// Load reads a Hugging Face tokenizer folder: vocab.txt and tokenizer.json
// when both exist (the flags and special tokens come from tokenizer.json, and
// the two vocabularies must agree), else vocab.txt with the flags of
// tokenizer_config.json (or DefaultConfig when that is absent too).
func Load(dir string) (*Tokenizer, error) {
	vocabPath := filepath.Join(dir, "vocab.txt")
	jsonPath := filepath.Join(dir, "tokenizer.json")
	_, errJSON := os.Stat(jsonPath)
	_, errVocab := os.Stat(vocabPath)
	switch {
	case errJSON == nil:
		vocab, cfg, err := readTokenizerJSON(jsonPath)
		if err != nil {
			return nil, err
		}
		if errVocab == nil {
			txt, err := ReadVocab(vocabPath)
			if err != nil {
				return nil, err
			}
			if err := sameVocab(txt, vocab); err != nil {
				return nil, fmt.Errorf("tokenizer: %s and %s disagree: %w", vocabPath, jsonPath, err)
			}
		}
		return New(vocab, cfg)
	case errVocab == nil:
		vocab, err := ReadVocab(vocabPath)
		if err != nil {
			return nil, err
		}
		cfg := DefaultConfig()
		if err := readTokenizerConfig(filepath.Join(dir, "tokenizer_config.json"), &cfg); err != nil {
			return nil, err
		}
		return New(vocab, cfg)
	}
	return nil, fmt.Errorf("tokenizer: neither %s nor %s exists", jsonPath, vocabPath)
}

// ReadVocab reads a vocab.txt: one token per line, the line index is the id.
func ReadVocab(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	defer f.Close()
	var vocab []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// bufio.ScanLines drops "\n" and a trailing "\r".
		vocab = append(vocab, sc.Text())
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("tokenizer: read %s line %d: %w", path, len(vocab)+1, err)
	}
	if len(vocab) == 0 {
		return nil, fmt.Errorf("tokenizer: %s is empty", path)
	}
	return vocab, nil
}

func sameVocab(txt, js []string) error {
	if len(txt) != len(js) {
		return fmt.Errorf("%d tokens vs %d", len(txt), len(js))
	}
	for i := range txt {
		if txt[i] != js[i] {
			return fmt.Errorf("id %d is %q vs %q", i, txt[i], js[i])
		}
	}
	return nil
}

// tokenizerJSON is the subset of tokenizer.json this package understands.
type tokenizerJSON struct {
	AddedTokens []struct {
		ID         int32  `json:"id"`
		Content    string `json:"content"`
		SingleWord bool   `json:"single_word"`
		LStrip     bool   `json:"lstrip"`
		RStrip     bool   `json:"rstrip"`
		Normalized bool   `json:"normalized"`
		Special    bool   `json:"special"`
	} `json:"added_tokens"`
	Normalizer *struct {
		Type               string `json:"type"`
		CleanText          bool   `json:"clean_text"`
		HandleChineseChars bool   `json:"handle_chinese_chars"`
		StripAccents       *bool  `json:"strip_accents"`
		Lowercase          bool   `json:"lowercase"`
	} `json:"normalizer"`
	PreTokenizer *struct {
		Type string `json:"type"`
	} `json:"pre_tokenizer"`
	PostProcessor *struct {
		Type          string          `json:"type"`
		Single        json.RawMessage `json:"single"`
		Pair          json.RawMessage `json:"pair"`
		Cls           []any           `json:"cls"` // BertProcessing: ["[CLS]", 101]
		Sep           []any           `json:"sep"`
		SpecialTokens map[string]struct {
			IDs []int32 `json:"ids"`
		} `json:"special_tokens"`
	} `json:"post_processor"`
	Padding *struct {
		PadToken string `json:"pad_token"`
	} `json:"padding"`
	Model struct {
		Type                    string           `json:"type"`
		UnkToken                string           `json:"unk_token"`
		ContinuingSubwordPrefix string           `json:"continuing_subword_prefix"`
		MaxInputCharsPerWord    int              `json:"max_input_chars_per_word"`
		Vocab                   map[string]int32 `json:"vocab"`
	} `json:"model"`
}

// bertSingle and bertPair are the TemplateProcessing templates of BERT,
// compared after re-encoding so that whitespace does not matter.
const (
	bertSingle = `[{"SpecialToken":{"id":"[CLS]","type_id":0}},{"Sequence":{"id":"A","type_id":0}},{"SpecialToken":{"id":"[SEP]","type_id":0}}]`
	bertPair   = `[{"SpecialToken":{"id":"[CLS]","type_id":0}},{"Sequence":{"id":"A","type_id":0}},{"SpecialToken":{"id":"[SEP]","type_id":0}},{"Sequence":{"id":"B","type_id":1}},{"SpecialToken":{"id":"[SEP]","type_id":1}}]`
)

func readTokenizerJSON(path string) ([]string, Config, error) {
	cfg := DefaultConfig()
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, cfg, fmt.Errorf("tokenizer: %w", err)
	}
	var tj tokenizerJSON
	if err := json.Unmarshal(b, &tj); err != nil {
		return nil, cfg, fmt.Errorf("tokenizer: parse %s: %w", path, err)
	}
	bad := func(field, format string, a ...any) error {
		return fmt.Errorf("tokenizer: %s: %s: %s (only BERT WordPiece tokenizers are supported)", path, field, fmt.Sprintf(format, a...))
	}
	m := tj.Model
	if m.Type != "WordPiece" {
		return nil, cfg, bad("model.type", "%q", m.Type)
	}
	if len(m.Vocab) == 0 {
		return nil, cfg, bad("model.vocab", "empty")
	}
	vocab := make([]string, len(m.Vocab))
	seen := make([]bool, len(m.Vocab))
	for tok, id := range m.Vocab {
		if id < 0 || int(id) >= len(vocab) || seen[id] {
			return nil, cfg, bad("model.vocab", "ids are not 0..%d without gaps (token %q has id %d)", len(vocab)-1, tok, id)
		}
		vocab[id], seen[id] = tok, true
	}
	cfg.UnkToken = m.UnkToken
	cfg.ContinuingSubwordPrefix = m.ContinuingSubwordPrefix
	cfg.MaxInputCharsPerWord = m.MaxInputCharsPerWord

	n := tj.Normalizer
	if n == nil || n.Type != "BertNormalizer" {
		typ := "null"
		if n != nil {
			typ = n.Type
		}
		return nil, cfg, bad("normalizer.type", "%s", typ)
	}
	cfg.CleanText, cfg.HandleChineseChars, cfg.Lowercase = n.CleanText, n.HandleChineseChars, n.Lowercase
	cfg.StripAccents = n.Lowercase // strip_accents: null follows lowercase
	if n.StripAccents != nil {
		cfg.StripAccents = *n.StripAccents
	}
	if tj.PreTokenizer == nil || tj.PreTokenizer.Type != "BertPreTokenizer" {
		return nil, cfg, bad("pre_tokenizer.type", "%+v", tj.PreTokenizer)
	}

	cfg.SpecialTokens = nil
	for _, a := range tj.AddedTokens {
		if a.Normalized || a.SingleWord || a.LStrip || a.RStrip {
			return nil, cfg, bad("added_tokens", "%q has normalized/single_word/lstrip/rstrip set", a.Content)
		}
		if int(a.ID) >= len(vocab) || vocab[a.ID] != a.Content {
			return nil, cfg, bad("added_tokens", "%q has id %d outside or different from model.vocab", a.Content, a.ID)
		}
		cfg.SpecialTokens = append(cfg.SpecialTokens, a.Content)
	}

	p := tj.PostProcessor
	if p == nil {
		return nil, cfg, bad("post_processor", "null")
	}
	switch p.Type {
	case "TemplateProcessing":
		if !sameJSON(p.Single, bertSingle) || !sameJSON(p.Pair, bertPair) {
			return nil, cfg, bad("post_processor", "template is not [CLS] A [SEP] / [CLS] A [SEP] B:1 [SEP]:1")
		}
		for _, name := range []string{"[CLS]", "[SEP]"} {
			st, ok := p.SpecialTokens[name]
			if !ok || len(st.IDs) != 1 || int(st.IDs[0]) >= len(vocab) || vocab[st.IDs[0]] != name {
				return nil, cfg, bad("post_processor.special_tokens", "%s missing or with an id that is not its vocabulary id", name)
			}
		}
		cfg.ClsToken, cfg.SepToken = "[CLS]", "[SEP]"
	case "BertProcessing":
		cls, ok1 := firstString(p.Cls)
		sep, ok2 := firstString(p.Sep)
		if !ok1 || !ok2 {
			return nil, cfg, bad("post_processor", "cls/sep not [token, id]")
		}
		cfg.ClsToken, cfg.SepToken = cls, sep
	default:
		return nil, cfg, bad("post_processor.type", "%q", p.Type)
	}
	if tj.Padding != nil && tj.Padding.PadToken != "" {
		cfg.PadToken = tj.Padding.PadToken
	}
	return vocab, cfg, nil
}

func firstString(a []any) (string, bool) {
	if len(a) != 2 {
		return "", false
	}
	s, ok := a[0].(string)
	return s, ok
}

func sameJSON(raw json.RawMessage, want string) bool {
	var a, b any
	if json.Unmarshal(raw, &a) != nil || json.Unmarshal([]byte(want), &b) != nil {
		return false
	}
	ra, _ := json.Marshal(a)
	rb, _ := json.Marshal(b)
	return string(ra) == string(rb)
}

// readTokenizerConfig applies the flags of a slow-tokenizer
// tokenizer_config.json to cfg; a missing file leaves cfg unchanged.
func readTokenizerConfig(path string, cfg *Config) error {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("tokenizer: %w", err)
	}
	var tc struct {
		DoLowerCase          *bool   `json:"do_lower_case"`
		StripAccents         *bool   `json:"strip_accents"`
		TokenizeChineseChars *bool   `json:"tokenize_chinese_chars"`
		UnkToken             *string `json:"unk_token"`
		ClsToken             *string `json:"cls_token"`
		SepToken             *string `json:"sep_token"`
		PadToken             *string `json:"pad_token"`
		MaskToken            *string `json:"mask_token"`
	}
	if err := json.Unmarshal(b, &tc); err != nil {
		return fmt.Errorf("tokenizer: parse %s: %w", path, err)
	}
	if tc.DoLowerCase != nil {
		cfg.Lowercase = *tc.DoLowerCase
	}
	cfg.StripAccents = cfg.Lowercase
	if tc.StripAccents != nil {
		cfg.StripAccents = *tc.StripAccents
	}
	if tc.TokenizeChineseChars != nil {
		cfg.HandleChineseChars = *tc.TokenizeChineseChars
	}
	set := func(dst *string, src *string) {
		if src != nil && *src != "" {
			*dst = *src
		}
	}
	set(&cfg.UnkToken, tc.UnkToken)
	set(&cfg.ClsToken, tc.ClsToken)
	set(&cfg.SepToken, tc.SepToken)
	set(&cfg.PadToken, tc.PadToken)
	mask := "[MASK]"
	set(&mask, tc.MaskToken)
	cfg.SpecialTokens = []string{cfg.PadToken, cfg.UnkToken, cfg.ClsToken, cfg.SepToken, mask}
	return nil
}

// runeCountAbove reports whether b holds more than n runes, without counting
// past n+1.
func runeCountAbove(b []byte, n int) bool {
	if len(b) <= n {
		return false // at least one byte per rune
	}
	c := 0
	for i := 0; i < len(b); {
		if b[i] < utf8.RuneSelf {
			i++
		} else {
			_, size := utf8.DecodeRune(b[i:])
			i += size
		}
		c++
		if c > n {
			return true
		}
	}
	return false
}
