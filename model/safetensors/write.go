package safetensors

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"sort"
	"strconv"
	"unicode/utf8"

	"github.com/houlsby/adapters/internal/atomicfile"
)

// Write stores tensors and metadata at path atomically: the file is written
// to a temporary file in the same directory, fsynced, renamed over path, and
// the directory is fsynced, so a crash leaves either the old file or the
// complete new one. Tensors are laid out sorted by name (deterministic bytes
// for the same input); metadata keys are sorted; the header is padded with
// spaces to a multiple of 8 bytes, as the reference writer does. An empty
// metadata map writes no "__metadata__" entry.
func Write(path string, tensors []NamedTensor, metadata map[string]string) error {
	sorted, header, err := prepare(tensors, metadata)
	if err != nil {
		return fmt.Errorf("safetensors: write %s: %w", path, err)
	}
	// A tensor file is an ordinary document: 0644.
	err = atomicfile.Write(path, 0o644, func(w io.Writer) error { return encode(w, sorted, header) })
	if err != nil {
		return fmt.Errorf("safetensors: write %s: %w", path, err)
	}
	return nil
}

// Marshal returns the bytes Write would store.
func Marshal(tensors []NamedTensor, metadata map[string]string) ([]byte, error) {
	sorted, header, err := prepare(tensors, metadata)
	if err != nil {
		return nil, fmt.Errorf("safetensors: marshal: %w", err)
	}
	var b bytes.Buffer
	if err := encode(&b, sorted, header); err != nil {
		return nil, fmt.Errorf("safetensors: marshal: %w", err)
	}
	return b.Bytes(), nil
}

func encode(w io.Writer, tensors []NamedTensor, header []byte) error {
	var n [headerLenSize]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(header)))
	if _, err := w.Write(n[:]); err != nil {
		return err
	}
	if _, err := w.Write(header); err != nil {
		return err
	}
	for _, t := range tensors {
		if _, err := w.Write(t.Data); err != nil {
			return err
		}
	}
	return nil
}

// prepare validates the tensors, sorts them by name and builds the padded
// header in the reference's JSON layout (serde_json compact form:
// {"__metadata__":{...},"name":{"dtype":..,"shape":[..],"data_offsets":[b,e]},...}).
func prepare(tensors []NamedTensor, metadata map[string]string) ([]NamedTensor, []byte, error) {
	sorted := append([]NamedTensor(nil), tensors...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	var h []byte
	h = append(h, '{')
	first := true
	if len(metadata) > 0 {
		keys := make([]string, 0, len(metadata))
		for k, v := range metadata {
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				return nil, nil, fmt.Errorf("field __metadata__[%q]: not valid UTF-8: %w", k, ErrInvalidMetadata)
			}
			keys = append(keys, k)
		}
		sort.Strings(keys)
		h = appendJSONString(h, metadataKey)
		h = append(h, ':', '{')
		for i, k := range keys {
			if i > 0 {
				h = append(h, ',')
			}
			h = appendJSONString(h, k)
			h = append(h, ':')
			h = appendJSONString(h, metadata[k])
		}
		h = append(h, '}')
		first = false
	}
	var offset uint64
	for i, t := range sorted {
		where := fmt.Sprintf("tensor %q", t.Name)
		if i > 0 && sorted[i-1].Name == t.Name {
			return nil, nil, fmt.Errorf("%s: name given twice: %w", where, ErrInvalidTensor)
		}
		if t.Name == metadataKey {
			return nil, nil, fmt.Errorf("%s: name is reserved for metadata: %w", where, ErrInvalidTensor)
		}
		if !utf8.ValidString(t.Name) {
			return nil, nil, fmt.Errorf("%s: name is not valid UTF-8: %w", where, ErrInvalidTensor)
		}
		if !t.DType.Known() {
			return nil, nil, fmt.Errorf("%s: dtype %q: %w", where, string(t.DType), ErrUnknownDType)
		}
		nel := uint64(1)
		for _, d := range t.Shape {
			if d < 0 {
				return nil, nil, fmt.Errorf("%s: shape %v has a negative dimension: %w", where, t.Shape, ErrInvalidTensor)
			}
			hi, lo := bits.Mul64(nel, uint64(d))
			if hi != 0 {
				return nil, nil, fmt.Errorf("%s: shape %v: %w", where, t.Shape, ErrOverflow)
			}
			nel = lo
		}
		hi, nbits := bits.Mul64(nel, dtypeBits[t.DType])
		if hi != 0 {
			return nil, nil, fmt.Errorf("%s: shape %v: %w", where, t.Shape, ErrOverflow)
		}
		if nbits%8 != 0 {
			return nil, nil, fmt.Errorf("%s: shape %v of %s is %d bits: %w", where, t.Shape, t.DType, nbits, ErrMisalignedSlice)
		}
		if uint64(len(t.Data)) != nbits/8 {
			return nil, nil, fmt.Errorf("%s: %d data bytes, but dtype %s and shape %v need %d: %w", where, len(t.Data), t.DType, t.Shape, nbits/8, ErrInvalidTensor)
		}
		if !first {
			h = append(h, ',')
		}
		first = false
		h = appendJSONString(h, t.Name)
		h = append(h, `:{"dtype":`...)
		h = appendJSONString(h, string(t.DType))
		h = append(h, `,"shape":[`...)
		for j, d := range t.Shape {
			if j > 0 {
				h = append(h, ',')
			}
			h = strconv.AppendInt(h, int64(d), 10)
		}
		h = append(h, `],"data_offsets":[`...)
		h = strconv.AppendUint(h, offset, 10)
		h = append(h, ',')
		offset += nbits / 8
		h = strconv.AppendUint(h, offset, 10)
		h = append(h, ']', '}')
	}
	h = append(h, '}')
	for len(h)%headerLenSize != 0 {
		h = append(h, ' ')
	}
	if len(h) > MaxHeaderSize {
		return nil, nil, fmt.Errorf("header of %d bytes: %w", len(h), ErrHeaderTooLarge)
	}
	return sorted, h, nil
}

// appendJSONString appends s as a JSON string escaped the way serde_json
// does: only '"', '\\' and control characters below 0x20 are escaped, with
// the short forms \b \t \n \f \r and \u00xx (lower-case hex) otherwise.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			b = append(b, '\\', '"')
		case c == '\\':
			b = append(b, '\\', '\\')
		case c == '\b':
			b = append(b, '\\', 'b')
		case c == '\t':
			b = append(b, '\\', 't')
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\f':
			b = append(b, '\\', 'f')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
