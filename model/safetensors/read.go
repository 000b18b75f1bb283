package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"sort"
	"strconv"
	"unicode/utf8"
)

// File is a parsed safetensors file. Tensor bytes alias the file's memory
// (a read-only mapping on Linux, a heap copy elsewhere): they are valid until
// Close and must not be written to.
type File struct {
	path     string
	buf      []byte // the whole file
	dataOff  int    // start of the data section in buf (8 + header length)
	tensors  map[string]TensorInfo
	names    []string // sorted by name
	metadata map[string]string
	release  func() error // unmaps or drops buf; nil once closed
}

// Open reads and validates the safetensors file at path. On Linux the file is
// memory-mapped; elsewhere (or when mapping fails) it is read into memory.
// Call Close when done with the tensor bytes.
func Open(path string) (*File, error) {
	buf, release, err := mapFile(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %s: %w", path, err)
	}
	f, err := Parse(path, buf)
	if err != nil {
		if rerr := release(); rerr != nil {
			return nil, fmt.Errorf("%w (and releasing the mapping failed: %v)", err, rerr)
		}
		return nil, err
	}
	f.release = release
	return f, nil
}

// readWhole is the portable fallback of mapFile: read the whole file.
func readWhole(path string) ([]byte, func() error, error) {
	buf, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	return buf, func() error { return nil }, nil
}

// Parse validates buf, the complete contents of a safetensors file, and
// returns a File whose tensors alias buf. name is used in error messages only
// (usually the path). Close on the result is a no-op apart from dropping buf.
func Parse(name string, buf []byte) (*File, error) {
	bad := func(err error, format string, args ...any) error {
		return fmt.Errorf("safetensors: %s: %s: %w", name, fmt.Sprintf(format, args...), err)
	}
	if len(buf) < headerLenSize {
		return nil, bad(ErrHeaderTooSmall, "file is %d bytes", len(buf))
	}
	n := binary.LittleEndian.Uint64(buf[:headerLenSize])
	if n > MaxHeaderSize {
		return nil, bad(ErrHeaderTooLarge, "header length field says %d bytes", n)
	}
	// n <= 1e8, so 8+n cannot overflow.
	if stop := headerLenSize + n; stop > uint64(len(buf)) {
		return nil, bad(ErrInvalidHeaderLength, "header length field says %d bytes but only %d follow", n, len(buf)-headerLenSize)
	}
	header := buf[headerLenSize : headerLenSize+int(n)]
	if !utf8.Valid(header) {
		return nil, bad(ErrInvalidHeader, "header is not valid UTF-8")
	}
	tensors, metadata, err := parseHeader(header)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %s: %w", name, err)
	}

	// Validate offsets in offset order, as Metadata::validate does.
	names := make([]string, 0, len(tensors))
	for k := range tensors {
		names = append(names, k)
	}
	byOffset := append([]string(nil), names...)
	sort.Slice(byOffset, func(i, j int) bool {
		a, b := tensors[byOffset[i]], tensors[byOffset[j]]
		if a.begin != b.begin {
			return a.begin < b.begin
		}
		if a.end != b.end {
			return a.end < b.end
		}
		return byOffset[i] < byOffset[j]
	})
	var start uint64
	for _, k := range byOffset {
		t := tensors[k]
		if t.begin != start {
			return nil, bad(ErrInvalidOffset, "tensor %q: field data_offsets [%d, %d]: begins at %d, but the previous tensor ends at %d (gap or overlap)", k, t.begin, t.end, t.begin, start)
		}
		if t.end < t.begin {
			return nil, bad(ErrInvalidOffset, "tensor %q: field data_offsets [%d, %d]: end before begin", k, t.begin, t.end)
		}
		start = t.end
		nel := uint64(1)
		for _, d := range t.shape {
			hi, lo := bits.Mul64(nel, d)
			if hi != 0 {
				return nil, bad(ErrOverflow, "tensor %q: field shape %v: element count overflows 64 bits", k, t.shape)
			}
			nel = lo
		}
		hi, nbits := bits.Mul64(nel, dtypeBits[t.dtype])
		if hi != 0 {
			return nil, bad(ErrOverflow, "tensor %q: field shape %v with dtype %s: bit count overflows 64 bits", k, t.shape, t.dtype)
		}
		if nbits%8 != 0 {
			return nil, bad(ErrMisalignedSlice, "tensor %q: shape %v of dtype %s is %d bits", k, t.shape, t.dtype, nbits)
		}
		if t.end-t.begin != nbits/8 {
			return nil, bad(ErrTensorInvalidInfo, "tensor %q: field data_offsets [%d, %d] span %d bytes, but dtype %s and shape %v need %d", k, t.begin, t.end, t.end-t.begin, t.dtype, t.shape, nbits/8)
		}
	}
	dataLen := uint64(len(buf)) - headerLenSize - n
	if start != dataLen {
		if start > dataLen {
			return nil, bad(ErrIncompleteBuffer, "tensors need %d data bytes but the file has %d after the header (truncated?)", start, dataLen)
		}
		return nil, bad(ErrIncompleteBuffer, "tensors end at data byte %d but the file has %d after the header (%d trailing bytes)", start, dataLen, dataLen-start)
	}

	f := &File{
		path:     name,
		buf:      buf,
		dataOff:  headerLenSize + int(n),
		tensors:  make(map[string]TensorInfo, len(tensors)),
		metadata: metadata,
		release:  func() error { return nil },
	}
	for k, t := range tensors {
		shape := make([]int, len(t.shape))
		for i, d := range t.shape {
			if d > math.MaxInt {
				// Only reachable with a zero elsewhere in the shape.
				return nil, bad(ErrOverflow, "tensor %q: field shape %v: dimension does not fit an int", k, t.shape)
			}
			shape[i] = int(d)
		}
		// start == dataLen <= len(buf), so begin and end fit an int64.
		f.tensors[k] = TensorInfo{DType: t.dtype, Shape: shape, Begin: int64(t.begin), End: int64(t.end)}
	}
	sort.Strings(names)
	f.names = names
	return f, nil
}

// rawTensor is a header entry before validation of its offsets.
type rawTensor struct {
	dtype      DType
	shape      []uint64
	begin, end uint64
}

// headerDecoder walks the header JSON token by token, so that duplicate keys
// are seen (encoding/json's map decoding silently keeps the last).
type headerDecoder struct {
	dec *json.Decoder
}

func (h *headerDecoder) token(what string) (json.Token, error) {
	t, err := h.dec.Token()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("%s: %v: %w", what, err, ErrInvalidHeader)
	}
	return t, nil
}

func (h *headerDecoder) delim(what string, want json.Delim) error {
	t, err := h.token(what)
	if err != nil {
		return err
	}
	if d, ok := t.(json.Delim); !ok || d != want {
		return fmt.Errorf("%s: expected %q, found %s: %w", what, string(want), describeToken(t), ErrInvalidHeader)
	}
	return nil
}

func (h *headerDecoder) str(what string) (string, error) {
	t, err := h.token(what)
	if err != nil {
		return "", err
	}
	s, ok := t.(string)
	if !ok {
		return "", fmt.Errorf("%s: expected a string, found %s: %w", what, describeToken(t), ErrInvalidHeader)
	}
	return s, nil
}

func (h *headerDecoder) uint(what string) (uint64, error) {
	t, err := h.token(what)
	if err != nil {
		return 0, err
	}
	num, ok := t.(json.Number)
	if !ok {
		return 0, fmt.Errorf("%s: expected a non-negative integer, found %s: %w", what, describeToken(t), ErrInvalidHeader)
	}
	v, err := strconv.ParseUint(string(num), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: expected a non-negative integer below 2^64, found %s: %w", what, string(num), ErrInvalidHeader)
	}
	return v, nil
}

// uintArray reads a JSON array of non-negative integers.
func (h *headerDecoder) uintArray(what string) ([]uint64, error) {
	if err := h.delim(what, '['); err != nil {
		return nil, err
	}
	out := []uint64{}
	for h.dec.More() {
		v, err := h.uint(fmt.Sprintf("%s[%d]", what, len(out)))
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := h.delim(what, ']'); err != nil {
		return nil, err
	}
	return out, nil
}

func describeToken(t json.Token) string {
	switch v := t.(type) {
	case json.Delim:
		return fmt.Sprintf("%q", string(v))
	case string:
		return fmt.Sprintf("string %q", v)
	case json.Number:
		return "number " + string(v)
	case bool:
		return fmt.Sprintf("%v", v)
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v", t)
}

// parseHeader decodes the header JSON. Errors name the tensor and field.
func parseHeader(header []byte) (map[string]rawTensor, map[string]string, error) {
	h := &headerDecoder{dec: json.NewDecoder(bytes.NewReader(header))}
	h.dec.UseNumber()
	if err := h.delim("header", '{'); err != nil {
		return nil, nil, err
	}
	tensors := map[string]rawTensor{}
	var metadata map[string]string
	seen := map[string]bool{}
	for h.dec.More() {
		key, err := h.str("header key")
		if err != nil {
			return nil, nil, err
		}
		if seen[key] {
			return nil, nil, fmt.Errorf("key %q appears twice at the top level: %w", key, ErrDuplicateKey)
		}
		seen[key] = true
		if key == metadataKey {
			metadata, err = h.metadata()
			if err != nil {
				return nil, nil, err
			}
			continue
		}
		t, err := h.tensor(key)
		if err != nil {
			return nil, nil, err
		}
		tensors[key] = t
	}
	if err := h.delim("header", '}'); err != nil {
		return nil, nil, err
	}
	// serde_json accepts trailing whitespace only; the reference writer pads
	// with spaces to an 8-byte boundary.
	rest := header[h.dec.InputOffset():]
	for i, c := range rest {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return nil, nil, fmt.Errorf("header: non-whitespace byte %q at header offset %d after the JSON object: %w", c, int(h.dec.InputOffset())+i, ErrInvalidHeader)
		}
	}
	return tensors, metadata, nil
}

func (h *headerDecoder) metadata() (map[string]string, error) {
	t, err := h.token("field __metadata__")
	if err != nil {
		return nil, err
	}
	if t == nil {
		return nil, nil // "__metadata__": null is Option::None in the reference
	}
	if d, ok := t.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("field __metadata__: found %s instead of an object: %w", describeToken(t), ErrInvalidMetadata)
	}
	md := map[string]string{}
	for h.dec.More() {
		k, err := h.str("field __metadata__ key")
		if err != nil {
			return nil, err
		}
		if _, dup := md[k]; dup {
			return nil, fmt.Errorf("field __metadata__: key %q appears twice: %w", k, ErrDuplicateKey)
		}
		t, err := h.token(fmt.Sprintf("field __metadata__[%q]", k))
		if err != nil {
			return nil, err
		}
		v, ok := t.(string)
		if !ok {
			return nil, fmt.Errorf("field __metadata__[%q]: value is %s, not a string: %w", k, describeToken(t), ErrInvalidMetadata)
		}
		md[k] = v
	}
	if err := h.delim("field __metadata__", '}'); err != nil {
		return nil, err
	}
	return md, nil
}

func (h *headerDecoder) tensor(name string) (rawTensor, error) {
	where := fmt.Sprintf("tensor %q", name)
	var t rawTensor
	if err := h.delim(where, '{'); err != nil {
		return t, err
	}
	seen := map[string]bool{}
	for h.dec.More() {
		field, err := h.str(where + " field name")
		if err != nil {
			return t, err
		}
		if seen[field] {
			return t, fmt.Errorf("%s: field %q appears twice: %w", where, field, ErrDuplicateKey)
		}
		seen[field] = true
		fw := where + ": field " + field
		switch field {
		case "dtype":
			s, err := h.str(fw)
			if err != nil {
				return t, err
			}
			if !DType(s).Known() {
				return t, fmt.Errorf("%s: %q: %w", fw, s, ErrUnknownDType)
			}
			t.dtype = DType(s)
		case "shape":
			if t.shape, err = h.uintArray(fw); err != nil {
				return t, err
			}
		case "data_offsets":
			off, err := h.uintArray(fw)
			if err != nil {
				return t, err
			}
			if len(off) != 2 {
				return t, fmt.Errorf("%s: has %d numbers, want [begin, end]: %w", fw, len(off), ErrInvalidHeader)
			}
			t.begin, t.end = off[0], off[1]
		default:
			return t, fmt.Errorf("%s: unknown field %q (want dtype, shape, data_offsets): %w", where, field, ErrInvalidHeader)
		}
	}
	if err := h.delim(where, '}'); err != nil {
		return t, err
	}
	for _, f := range []string{"dtype", "shape", "data_offsets"} {
		if !seen[f] {
			return t, fmt.Errorf("%s: missing field %s: %w", where, f, ErrInvalidHeader)
		}
	}
	return t, nil
}

// Path is the name the file was opened or parsed with.
func (f *File) Path() string { return f.path }

// Names lists the tensor names, sorted.
func (f *File) Names() []string { return append([]string(nil), f.names...) }

// Len is the number of tensors.
func (f *File) Len() int { return len(f.names) }

// Info describes the named tensor.
func (f *File) Info(name string) (TensorInfo, bool) {
	t, ok := f.tensors[name]
	if ok {
		t.Shape = append([]int(nil), t.Shape...)
	}
	return t, ok
}

// Metadata returns a copy of the __metadata__ map (empty when absent).
func (f *File) Metadata() map[string]string {
	out := make(map[string]string, len(f.metadata))
	for k, v := range f.metadata {
		out[k] = v
	}
	return out
}

// Tensor returns the description and the raw little-endian bytes of the named
// tensor. The bytes alias the file and are valid until Close; do not modify.
func (f *File) Tensor(name string) (TensorInfo, []byte, error) {
	if f.buf == nil {
		panic("safetensors: Tensor called on a closed File")
	}
	t, ok := f.Info(name)
	if !ok {
		return TensorInfo{}, nil, fmt.Errorf("safetensors: %s: tensor %q: %w", f.path, name, ErrNotFound)
	}
	return t, f.buf[f.dataOff+int(t.Begin) : f.dataOff+int(t.End) : f.dataOff+int(t.End)], nil
}

// ReadFloat32 returns a fresh copy of the named tensor converted to float32.
// F32, F16 and BF16 are accepted (F16 and BF16 widen exactly); other dtypes
// are an error.
func (f *File) ReadFloat32(name string) ([]float32, error) {
	t, raw, err := f.Tensor(name)
	if err != nil {
		return nil, err
	}
	out := make([]float32, t.NumElements())
	switch t.DType {
	case F32:
		DecodeF32(out, raw)
	case F16:
		DecodeF16(out, raw)
	case BF16:
		DecodeBF16(out, raw)
	default:
		return nil, fmt.Errorf("safetensors: %s: tensor %q: dtype %s (only F32, F16, BF16 convert to float32): %w", f.path, name, t.DType, ErrDType)
	}
	return out, nil
}

// Close releases the file's memory. Tensor bytes obtained earlier become
// invalid. Close is idempotent.
func (f *File) Close() error {
	if f.release == nil {
		return nil
	}
	err := f.release()
	f.release = nil
	f.buf = nil
	if err != nil {
		return fmt.Errorf("safetensors: %s: close: %w", f.path, err)
	}
	return nil
}
