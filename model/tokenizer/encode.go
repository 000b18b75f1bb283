package tokenizer

import (
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"
)

// Padding selects how encodings are padded (on the right, with [PAD], type
// id 0 and attention mask 0).
type Padding int

// Padding modes; they mirror transformers' padding=False, "longest",
// "max_length".
const (
	NoPadding    Padding = iota // each encoding keeps its own length
	PadLongest                  // a batch is padded to its longest encoding
	PadMaxLength                // every encoding is padded to Options.MaxLength
)

// Options controls truncation and padding, as the transformers call
// tokenizer(a, b, truncation="longest_first", max_length=MaxLength, padding=...).
type Options struct {
	// MaxLength > 0 truncates (longest_first) so that an encoding, special
	// tokens included, has at most MaxLength tokens. 0: no truncation.
	MaxLength int
	// Pad is the padding mode. PadMaxLength needs MaxLength > 0.
	Pad Padding
}

func (o Options) check(pair bool) error {
	specials := 2
	if pair {
		specials = 3
	}
	if o.MaxLength < 0 || (o.MaxLength > 0 && o.MaxLength < specials) {
		return fmt.Errorf("tokenizer: MaxLength %d leaves no room for the %d special tokens", o.MaxLength, specials)
	}
	if o.Pad == PadMaxLength && o.MaxLength == 0 {
		return fmt.Errorf("tokenizer: PadMaxLength needs MaxLength > 0")
	}
	if o.Pad < NoPadding || o.Pad > PadMaxLength {
		return fmt.Errorf("tokenizer: unknown padding mode %d", int(o.Pad))
	}
	return nil
}

// Encoding is one encoded text or text pair; the three slices have the same
// length.
type Encoding struct {
	IDs           []int32 // token ids, [CLS] ... [SEP] (... [SEP]) [PAD]...
	TypeIDs       []int32 // 0 for the first sequence, 1 for the second
	AttentionMask []int32 // 1 for tokens, 0 for padding
}

// Len is the number of positions.
func (e Encoding) Len() int { return len(e.IDs) }

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// AppendIDs appends the WordPiece ids of text (no [CLS]/[SEP], no truncation)
// to dst. Special tokens written in the text map to their ids.
func (t *Tokenizer) AppendIDs(dst []int32, text string) []int32 {
	sc := scratchPool.Get().(*scratch)
	dst = t.appendIDs(dst, text, sc, -1)
	scratchPool.Put(sc)
	return dst
}

// Tokenize returns the WordPiece tokens of text (no [CLS]/[SEP]).
func (t *Tokenizer) Tokenize(text string) []string {
	ids := t.AppendIDs(nil, text)
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = t.vocab[id]
	}
	return out
}

// appendIDs splits text at special tokens and encodes the pieces between.
// With limit >= 0 it may stop once dst holds limit ids or more: the ids are
// produced left to right, so a prefix of the full result is exact.
func (t *Tokenizer) appendIDs(dst []int32, text string, sc *scratch, limit int) []int32 {
	if len(t.specials) == 0 {
		return t.appendPlainIDs(dst, text, sc, limit)
	}
	start := 0
	for i := 0; i < len(text); i++ {
		if !t.firstByte[text[i]] {
			continue
		}
		for _, s := range t.specials { // longest first: leftmost-longest match
			if strings.HasPrefix(text[i:], s.text) {
				dst = t.appendPlainIDs(dst, text[start:i], sc, limit)
				if limit >= 0 && len(dst) >= limit {
					return dst
				}
				dst = append(dst, s.id)
				i += len(s.text) - 1
				start = i + 1
				break
			}
		}
	}
	return t.appendPlainIDs(dst, text[start:], sc, limit)
}

// appendPlainIDs normalizes, pre-tokenizes and WordPiece-encodes text that
// holds no special token; limit as for appendIDs.
func (t *Tokenizer) appendPlainIDs(dst []int32, text string, sc *scratch, limit int) []int32 {
	if text == "" || (limit >= 0 && len(dst) >= limit) {
		return dst
	}
	sc.norm = t.appendNormalized(sc.norm[:0], text, sc)
	n := sc.norm
	word := -1 // start of the current word, -1 when between words
	for i := 0; i < len(n); {
		c := n[i]
		var space, punct bool
		size := 1
		if c < utf8.RuneSelf {
			space, punct = asciiSpace[c], asciiPunct[c]
		} else {
			var r rune
			r, size = utf8.DecodeRune(n[i:])
			space = isWhitespace(r)
			punct = !space && isPunct(r)
		}
		if space || punct {
			if word >= 0 {
				dst = t.appendWordPiece(dst, n[word:i])
				word = -1
			}
			if punct {
				dst = t.appendWordPiece(dst, n[i:i+size])
			}
			if limit >= 0 && len(dst) >= limit {
				return dst
			}
		} else if word < 0 {
			word = i
		}
		i += size
	}
	if word >= 0 {
		dst = t.appendWordPiece(dst, n[word:])
	}
	return dst
}

// appendWordPiece appends the WordPiece ids of one word: greedy longest
// match from the left; continuation pieces are looked up with the prefix.
// A word longer than MaxInputCharsPerWord characters, or one that cannot be
// segmented, is one [UNK].
func (t *Tokenizer) appendWordPiece(dst []int32, w []byte) []int32 {
	if runeCountAbove(w, t.cfg.MaxInputCharsPerWord) {
		return append(dst, t.unk)
	}
	mark := len(dst)
	for start := 0; start < len(w); {
		table, limit := t.ids, t.maxWordBytes
		if start > 0 {
			table, limit = t.cont, t.maxContBytes
		}
		end := len(w)
		if end-start > limit {
			// No token is longer than limit bytes; start at the last rune
			// boundary within reach (same result, fewer lookups).
			end = start + limit
			for end > start && !utf8.RuneStart(w[end]) {
				end--
			}
		}
		found := false
		for end > start {
			if id, ok := table[string(w[start:end])]; ok { // no allocation: map index by converted []byte
				dst = append(dst, id)
				found = true
				break
			}
			end--
			for end > start && !utf8.RuneStart(w[end]) {
				end--
			}
		}
		if !found {
			return append(dst[:mark], t.unk)
		}
		start = end
	}
	return dst
}

// truncatePair returns the lengths the two content sequences keep so that
// together they have at most max tokens: the rule of Hugging Face tokenizers
// (utils/truncation.rs, LongestFirst with a pair). With n1 <= n2: when only
// the longer one must shrink it keeps max-n1 (but never fewer than n1); when
// both must shrink, the shorter keeps max/2 and the longer max/2 + max%2.
func truncatePair(n1, n2, max int) (int, int) {
	if n1+n2 <= max {
		return n1, n2
	}
	swap := n1 > n2
	if swap {
		n1, n2 = n2, n1
	}
	if n1 > max {
		n2 = n1
	} else {
		n2 = maxInt(n1, max-n1)
	}
	if n1+n2 > max {
		n1 = max / 2
		n2 = n1 + max%2
	}
	if swap {
		n1, n2 = n2, n1
	}
	return n1, n2
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}

// Encode encodes one text as [CLS] text [SEP]. It panics on invalid options
// (a programmer error); EncodeBatch returns the error instead.
func (t *Tokenizer) Encode(text string, opt Options) Encoding {
	if err := opt.check(false); err != nil {
		panic(err.Error())
	}
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	return t.encode(text, "", false, opt, sc)
}

// EncodePair encodes a text pair as [CLS] a [SEP] b [SEP], with type id 1 for
// b and its [SEP]. It panics on invalid options.
func (t *Tokenizer) EncodePair(a, b string, opt Options) Encoding {
	if err := opt.check(true); err != nil {
		panic(err.Error())
	}
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	return t.encode(a, b, true, opt, sc)
}

func (t *Tokenizer) encode(a, b string, pair bool, opt Options, sc *scratch) Encoding {
	limit := -1
	if opt.MaxLength > 0 && !pair {
		limit = opt.MaxLength - 2 // longest_first keeps a prefix; stop early
	}
	sc.ids = t.appendIDs(sc.ids[:0], a, sc, limit)
	ids1, ids2 := sc.ids, []int32(nil)
	if pair {
		// Pair truncation depends on both full lengths: no early stop.
		sc.ids2 = t.appendIDs(sc.ids2[:0], b, sc, -1)
		ids2 = sc.ids2
	}
	if opt.MaxLength > 0 {
		if pair {
			n1, n2 := truncatePair(len(ids1), len(ids2), opt.MaxLength-3)
			ids1, ids2 = ids1[:n1], ids2[:n2]
		} else if len(ids1) > opt.MaxLength-2 {
			ids1 = ids1[:opt.MaxLength-2]
		}
	}
	n := len(ids1) + 2
	if pair {
		n += len(ids2) + 1
	}
	total := n
	if opt.Pad == PadMaxLength && opt.MaxLength > total {
		total = opt.MaxLength
	}
	// One allocation for the three slices.
	buf := make([]int32, 3*total)
	e := Encoding{IDs: buf[:total:total], TypeIDs: buf[total : 2*total : 2*total], AttentionMask: buf[2*total:]}
	e.IDs[0] = t.cls
	copy(e.IDs[1:], ids1)
	e.IDs[len(ids1)+1] = t.sep
	if pair {
		copy(e.IDs[len(ids1)+2:], ids2)
		e.IDs[n-1] = t.sep
		for i := len(ids1) + 2; i < n; i++ {
			e.TypeIDs[i] = 1
		}
	}
	for i := 0; i < n; i++ {
		e.AttentionMask[i] = 1
	}
	for i := n; i < total; i++ {
		e.IDs[i] = t.pad // type ids and mask stay 0
	}
	return e
}

// EncodeBatch encodes texts (b == nil) or text pairs (len(b) == len(a)) and
// pads them as opt says (PadLongest pads to the longest in the batch).
func (t *Tokenizer) EncodeBatch(a, b []string, opt Options) ([]Encoding, error) {
	pair := b != nil
	if err := opt.check(pair); err != nil {
		return nil, err
	}
	if pair && len(a) != len(b) {
		return nil, fmt.Errorf("tokenizer: EncodeBatch with %d first and %d second texts", len(a), len(b))
	}
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	out := make([]Encoding, len(a))
	longest := 0
	for i := range a {
		var second string
		if pair {
			second = b[i]
		}
		out[i] = t.encode(a[i], second, pair, opt, sc)
		longest = maxInt(longest, out[i].Len())
	}
	if opt.Pad == PadLongest {
		for i := range out {
			out[i] = t.padTo(out[i], longest)
		}
	}
	return out, nil
}

// padTo returns e padded on the right to n positions.
func (t *Tokenizer) padTo(e Encoding, n int) Encoding {
	if e.Len() >= n {
		return e
	}
	buf := make([]int32, 3*n)
	p := Encoding{IDs: buf[:n:n], TypeIDs: buf[n : 2*n : 2*n], AttentionMask: buf[2*n:]}
	copy(p.IDs, e.IDs)
	copy(p.TypeIDs, e.TypeIDs)
	copy(p.AttentionMask, e.AttentionMask)
	for i := e.Len(); i < n; i++ {
		p.IDs[i] = t.pad
	}
	return p
}

// Batch is a padded batch in the row-major (B, T) layout the model reads.
type Batch struct {
	B, T          int
	IDs           []int32 // (B, T)
	TypeIDs       []int32 // (B, T)
	AttentionMask []int32 // (B, T)
}

// Stack packs encodings of equal length (use PadLongest or PadMaxLength)
// into one Batch.
func Stack(encs []Encoding) (Batch, error) {
	if len(encs) == 0 {
		return Batch{}, fmt.Errorf("tokenizer: Stack of no encodings")
	}
	T := encs[0].Len()
	bt := Batch{B: len(encs), T: T}
	bt.IDs = make([]int32, 0, len(encs)*T)
	bt.TypeIDs = make([]int32, 0, len(encs)*T)
	bt.AttentionMask = make([]int32, 0, len(encs)*T)
	for i, e := range encs {
		if e.Len() != T {
			return Batch{}, fmt.Errorf("tokenizer: Stack: encoding %d has %d positions, encoding 0 has %d (pad the batch)", i, e.Len(), T)
		}
		bt.IDs = append(bt.IDs, e.IDs...)
		bt.TypeIDs = append(bt.TypeIDs, e.TypeIDs...)
		bt.AttentionMask = append(bt.AttentionMask, e.AttentionMask...)
	}
	return bt, nil
}
