package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// Character classes of the Hugging Face BertNormalizer and BertPreTokenizer
// (tokenizers/src/normalizers/bert.rs, pre_tokenizers/bert.rs). The Unicode
// categories come from the Rust crate unicode_categories 0.1.1, which holds
// Unicode 9.0 data, not from Go's unicode package (Unicode 15.0): see
// hftables.go and internal/gentables. NFD comes from the crate
// unicode-normalization-alignments 0.1.12, also Unicode 9.0 (hfnorm.go).
// White space (Rust char::is_whitespace) and lowercasing (Rust core) follow
// current Unicode, as Go does, plus the few case pairs Go 1.26 lacks. Every class is checked against the reference
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

// Hangul syllable decomposition constants (Unicode 3.12, "Conjoining Jamo
// Behavior").
const (
	hangulSBase  = 0xAC00
	hangulLBase  = 0x1100
	hangulVBase  = 0x1161
	hangulTBase  = 0x11A7
	hangulTCount = 28
	hangulNCount = 588 // VCount * TCount
	hangulSCount = 11172
)

// cccRune is a character with its canonical combining class.
type cccRune struct {
	r   rune
	ccc uint8
}

// appendNFD appends the canonical decomposition (NFD) of b exactly as the
// reference computes it: the Rust crate unicode-normalization-alignments
// 0.1.12 with its Unicode 9.0 tables (hfnorm.go). Go's
// golang.org/x/text/unicode/norm follows Unicode 15.0 and would decompose and
// reorder characters encoded since 9.0 (for example U+11938) that the
// reference leaves alone. Like the crate, it decomposes each character fully
// and stably sorts each run of non-starters by combining class; it does not
// insert U+034F after 30 non-starters (x/text's stream-safe form does).
func appendNFD(dst, b []byte, pend *[]cccRune) []byte {
	p := (*pend)[:0]
	emit := func(r rune) {
		c := hfCCC[r]
		if c == 0 {
			if len(p) > 0 {
				dst = flushSorted(dst, p)
				p = p[:0]
			}
			dst = utf8.AppendRune(dst, r)
			return
		}
		p = append(p, cccRune{r, c})
	}
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		i += size
		switch {
		case r < 0xC0: // no canonical decomposition below U+00C0, combining class 0
			if len(p) > 0 {
				dst = flushSorted(dst, p)
				p = p[:0]
			}
			dst = utf8.AppendRune(dst, r)
		case r >= hangulSBase && r < hangulSBase+hangulSCount:
			s := r - hangulSBase
			emit(hangulLBase + s/hangulNCount)
			emit(hangulVBase + (s%hangulNCount)/hangulTCount)
			if t := s % hangulTCount; t > 0 {
				emit(hangulTBase + t)
			}
		default:
			if d, ok := hfDecomp[r]; ok {
				for _, c := range d {
					emit(c)
				}
			} else {
				emit(r)
			}
		}
	}
	if len(p) > 0 {
		dst = flushSorted(dst, p)
	}
	*pend = p[:0]
	return dst
}

// flushSorted stably sorts a run of non-starters by combining class
// (insertion sort: runs are short) and appends it.
func flushSorted(dst []byte, p []cccRune) []byte {
	for i := 1; i < len(p); i++ {
		for j := i; j > 0 && p[j-1].ccc > p[j].ccc; j-- {
			p[j-1], p[j] = p[j], p[j-1]
		}
	}
	for _, c := range p {
		dst = utf8.AppendRune(dst, c.r)
	}
	return dst
}

// scratch holds the reusable buffers of one encoding call.
type scratch struct {
	norm []byte    // normalized text
	run  []byte    // one non-ASCII run after cleaning
	nfd  []byte    // its NFD form
	ids  []int32   // content ids of the current sequence
	ids2 []int32   // content ids of the second sequence of a pair
	pend []cccRune // pending non-starters of appendNFD
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
		sc.nfd = appendNFD(sc.nfd[:0], run, &sc.pend)
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
