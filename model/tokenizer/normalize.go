package tokenizer

import (
	"bytes"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Character classes of the Hugging Face BertNormalizer and BertPreTokenizer
// (tokenizers/src/normalizers/bert.rs, pre_tokenizers/bert.rs). The Unicode
// categories come from the Rust crate unicode_categories 0.1.1, which holds
// Unicode 9.0 data, not from Go's unicode package (Unicode 15.0): see
// hftables.go and internal/gentables. White space (Rust char::is_whitespace),
// NFD (crate unicode-normalization) and lowercasing (Rust core) follow
// current Unicode, as Go does. Every class is checked against the reference
// on all 1,112,064 code points by TestUnicodeTable.

// isControl is bert.rs is_control: categories Cc, Cf, Co (Unicode 9.0)
// except the three ASCII white space controls.
func isControl(r rune) bool {
	switch r {
	case '\t', '\n', '\r':
		return false
	}
	if r < utf8.RuneSelf {
		return r < 0x20 || r == 0x7f
	}
	return unicode.Is(hfOther, r)
}

// isWhitespace is bert.rs is_whitespace: \t \n \r and Unicode White_Space
// (Rust char::is_whitespace).
func isWhitespace(r rune) bool {
	if r < utf8.RuneSelf {
		return asciiSpace[r]
	}
	return unicode.Is(unicode.White_Space, r)
}

// isChinese is bert.rs is_chinese_char: the CJK Unified Ideographs blocks
// listed by the original BERT code (tokenization.py _is_chinese_char).
func isChinese(r rune) bool {
	return (r >= 0x4E00 && r <= 0x9FFF) ||
		(r >= 0x3400 && r <= 0x4DBF) ||
		(r >= 0x20000 && r <= 0x2A6DF) ||
		(r >= 0x2A700 && r <= 0x2B73F) ||
		(r >= 0x2B740 && r <= 0x2B81F) ||
		(r >= 0x2B920 && r <= 0x2CEAF) ||
		(r >= 0xF900 && r <= 0xFAFF) ||
		(r >= 0x2F800 && r <= 0x2FA1F)
}

// isPunct is pre_tokenizers/bert.rs is_bert_punc: ASCII punctuation
// (33-47, 58-64, 91-96, 123-126) or a P* category (Unicode 9.0).
func isPunct(r rune) bool {
	if r < utf8.RuneSelf {
		return asciiPunct[r]
	}
	return unicode.Is(hfPunct, r)
}

var asciiSpace, asciiPunct [utf8.RuneSelf]bool

func init() {
	for _, c := range "\t\n\v\f\r " {
		asciiSpace[c] = true
	}
	for c := rune(0); c < utf8.RuneSelf; c++ {
		asciiPunct[c] = (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126)
	}
}

// appendLower appends Rust's char::to_lowercase(r): the Unicode simple
// lowercase mapping, except U+0130 (capital I with dot above), whose full
// lowercase mapping (SpecialCasing.txt, the only unconditional
// multi-character one) is "i\u0307". Rust's core follows a newer Unicode
// than Go 1.26 (15.0); lowerAfter15 adds the case pairs of the capitals
// encoded since.
func appendLower(dst []byte, r rune) []byte {
	if r < utf8.RuneSelf {
		if r >= 'A' && r <= 'Z' {
			r += 'a' - 'A'
		}
		return append(dst, byte(r))
	}
	if r == 0x130 {
		return append(dst, 'i', 0xcc, 0x87) // "i\u0307"
	}
	if l, ok := lowerAfter15(r); ok {
		return utf8.AppendRune(dst, l)
	}
	return utf8.AppendRune(dst, unicode.ToLower(r))
}

// lowerAfter15 is the lowercase mapping of the capitals encoded after
// Unicode 15.0 (UnicodeData.txt of Unicode 16.0 and 17.0, field 13):
// Cyrillic TJE, Latin additions in Latin Extended-D, Garay (16.0) and
// Beria Erfe (17.0). TestUnicodeTable checks these against the reference.
func lowerAfter15(r rune) (rune, bool) {
	switch {
	case r < 0x1C89:
		return 0, false
	case r == 0x1C89:
		return 0x1C8A, true
	case r >= 0xA7CB && r <= 0xA7DC:
		switch r {
		case 0xA7CB:
			return 0x0264, true
		case 0xA7DC:
			return 0x019B, true
		case 0xA7CC, 0xA7CE, 0xA7D2, 0xA7D4, 0xA7DA:
			return r + 1, true
		}
	case r >= 0x10D50 && r <= 0x10D65:
		return r + 0x20, true
	case r >= 0x16EA0 && r <= 0x16EB8:
		return r + 0x1B, true
	}
	return 0, false
}

// nfdKeep is the one character that Go's NFD (Unicode 15.0) decomposes and
// the reference's does not: Hugging Face's NFD comes from the crate
// unicode-normalization-alignments, whose tables predate Unicode 13.0, where
// U+11938 DIVES AKURU VOWEL SIGN O (canonically U+11935 U+11930) was
// encoded. Unknown to those tables, it is a starter, so NFD never reorders
// across it and splitting the text there is exact.
const nfdKeep = "\U00011938"

// appendNFD appends the NFD form of b as the reference computes it. It uses
// the scratch iterator, not norm.NFD.Append, which allocates a buffer per
// call.
func appendNFD(dst, b []byte, it *norm.Iter) []byte {
	for {
		i := bytes.Index(b, nfdKeepBytes)
		seg := b
		if i >= 0 {
			seg = b[:i]
		}
		if norm.NFD.QuickSpan(seg) == len(seg) {
			dst = append(dst, seg...) // already NFD: the common case
		} else {
			it.Init(norm.NFD, seg)
			for !it.Done() {
				dst = append(dst, it.Next()...)
			}
		}
		if i < 0 {
			return dst
		}
		dst = append(dst, nfdKeep...)
		b = b[i+len(nfdKeep):]
	}
}

var nfdKeepBytes = []byte(nfdKeep)

// scratch holds the reusable buffers of one encoding call.
type scratch struct {
	norm []byte  // normalized text
	run  []byte  // one non-ASCII run after cleaning
	nfd  []byte  // its NFD form
	ids  []int32 // content ids of the current sequence
	ids2 []int32 // content ids of the second sequence of a pair
	iter norm.Iter
}

// appendNormalized appends the BertNormalizer form of s to dst. ASCII bytes
// are handled inline; each maximal run of non-ASCII bytes goes through the
// full Unicode path. Cutting at ASCII bytes is exact: ASCII characters are
// NFD starters (canonical combining class 0) without decompositions, so no
// canonical reordering or decomposition crosses them.
func (t *Tokenizer) appendNormalized(dst []byte, s string, sc *scratch) []byte {
	cfg := &t.cfg
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			j := i + 1
			for j < len(s) && s[j] >= utf8.RuneSelf {
				j++
			}
			dst = t.appendNormalizedRun(dst, s[i:j], sc)
			i = j
			continue
		}
		i++
		switch {
		case cfg.CleanText && (c == 0 || isControl(rune(c))):
			// dropped
		case cfg.CleanText && asciiSpace[c]:
			dst = append(dst, ' ')
		case cfg.Lowercase && c >= 'A' && c <= 'Z':
			dst = append(dst, c+('a'-'A'))
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// appendNormalizedRun normalizes a run of non-ASCII characters.
func (t *Tokenizer) appendNormalizedRun(dst []byte, s string, sc *scratch) []byte {
	cfg := &t.cfg
	run := sc.run[:0]
	for _, r := range s {
		if cfg.CleanText {
			if r == utf8.RuneError || isControl(r) {
				continue // also drops invalid UTF-8, read as U+FFFD
			}
			if isWhitespace(r) {
				r = ' '
			}
		}
		if cfg.HandleChineseChars && isChinese(r) {
			run = append(run, ' ')
			run = utf8.AppendRune(run, r)
			run = append(run, ' ')
			continue
		}
		run = utf8.AppendRune(run, r)
	}
	sc.run = run
	if cfg.StripAccents {
		sc.nfd = appendNFD(sc.nfd[:0], run, &sc.iter)
		run = sc.nfd
	}
	for i := 0; i < len(run); {
		r, size := utf8.DecodeRune(run[i:])
		i += size
		if cfg.StripAccents && unicode.Is(hfMn, r) { // Mn of Unicode 9.0
			continue
		}
		if cfg.Lowercase {
			dst = appendLower(dst, r)
		} else {
			dst = utf8.AppendRune(dst, r)
		}
	}
	return dst
}
