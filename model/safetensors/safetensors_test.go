package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// rejectCase is a crafted bad file, the sentinel its error must wrap and
// substrings (besides the file name) its message must contain.
type rejectCase struct {
	name string
	buf  []byte
	want error
	says []string
}

// rejectCases are crafted files that break one rule each.
func rejectCases() []rejectCase {
	f32 := func(name string, b, e int) string {
		return `"` + name + `":{"dtype":"F32","shape":[1],"data_offsets":[` + strconv.Itoa(b) + `,` + strconv.Itoa(e) + `]}`
	}
	hugeHeader := make([]byte, 8)
	binary.LittleEndian.PutUint64(hugeHeader, MaxHeaderSize+1)
	return []rejectCase{
		{"short file", []byte{1, 2, 3}, ErrHeaderTooSmall, nil},
		{"header over 100MB", hugeHeader, ErrHeaderTooLarge, []string{"100000001"}},
		{"header past EOF", rawFile(`{}`, nil)[:9], ErrInvalidHeaderLength, nil},
		{"not utf-8", rawFile("{\"\xff\":1}", nil), ErrInvalidHeader, []string{"UTF-8"}},
		{"not json", rawFile(`{"a":`, nil), ErrInvalidHeader, nil},
		{"not an object", rawFile(`[]`, nil), ErrInvalidHeader, nil},
		{"trailing garbage in header", rawFile(`{} x`, nil), ErrInvalidHeader, []string{"after the JSON"}},
		{"duplicate tensor", rawFile(`{`+f32("w", 0, 4)+`,`+f32("w", 0, 4)+`}`, make([]byte, 4)), ErrDuplicateKey, []string{`"w"`}},
		{"duplicate field", rawFile(`{"w":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), ErrDuplicateKey, []string{`tensor "w"`, `"dtype"`}},
		{"duplicate metadata key", rawFile(`{"__metadata__":{"k":"a","k":"b"}}`, nil), ErrDuplicateKey, []string{"__metadata__", `"k"`}},
		{"duplicate metadata", rawFile(`{"__metadata__":{},"__metadata__":{}}`, nil), ErrDuplicateKey, []string{"__metadata__"}},
		{"unknown dtype", rawFile(`{"w":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}`, make([]byte, 16)), ErrUnknownDType, []string{`tensor "w"`, "dtype", "F128"}},
		{"missing field", rawFile(`{"w":{"dtype":"F32","shape":[1]}}`, make([]byte, 4)), ErrInvalidHeader, []string{`tensor "w"`, "data_offsets"}},
		{"unknown field", rawFile(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}`, make([]byte, 4)), ErrInvalidHeader, []string{`tensor "w"`, `"x"`}},
		{"negative dim", rawFile(`{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, make([]byte, 4)), ErrInvalidHeader, []string{`tensor "w"`, "shape"}},
		{"fractional dim", rawFile(`{"w":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}`, make([]byte, 4)), ErrInvalidHeader, []string{`tensor "w"`, "shape"}},
		{"three offsets", rawFile(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}`, make([]byte, 4)), ErrInvalidHeader, []string{`tensor "w"`, "data_offsets"}},
		{"not starting at 0", rawFile(`{`+f32("w", 4, 8)+`}`, make([]byte, 8)), ErrInvalidOffset, []string{`tensor "w"`, "data_offsets"}},
		{"gap", rawFile(`{`+f32("a", 0, 4)+`,`+f32("b", 8, 12)+`}`, make([]byte, 12)), ErrInvalidOffset, []string{`tensor "b"`, "gap or overlap"}},
		{"overlap", rawFile(`{`+f32("a", 0, 4)+`,`+f32("b", 2, 6)+`}`, make([]byte, 6)), ErrInvalidOffset, []string{`tensor "b"`}},
		{"end before begin", rawFile(`{`+f32("a", 0, 4)+`,"b":{"dtype":"F32","shape":[0],"data_offsets":[4,2]}}`, make([]byte, 4)), ErrInvalidOffset, []string{`tensor "b"`, "end before begin"}},
		{"size mismatch", rawFile(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, make([]byte, 4)), ErrTensorInvalidInfo, []string{`tensor "w"`, "need 8"}},
		{"shape overflow", rawFile(`{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}`, make([]byte, 4)), ErrOverflow, []string{`tensor "w"`, "shape"}},
		{"bit overflow", rawFile(`{"w":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,4]}}`, make([]byte, 4)), ErrOverflow, []string{`tensor "w"`}},
		{"misaligned F4", rawFile(`{"w":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}`, make([]byte, 2)), ErrMisalignedSlice, []string{`tensor "w"`, "12 bits"}},
		{"offset beyond file", rawFile(`{`+f32("w", 0, 4)+`}`, make([]byte, 2)), ErrIncompleteBuffer, []string{"truncated"}},
		{"trailing data", rawFile(`{`+f32("w", 0, 4)+`}`, make([]byte, 9)), ErrIncompleteBuffer, []string{"5 trailing"}},
		{"metadata not string", rawFile(`{"__metadata__":{"k":1}}`, nil), ErrInvalidMetadata, []string{`__metadata__["k"]`}},
		{"metadata not object", rawFile(`{"__metadata__":"x"}`, nil), ErrInvalidMetadata, nil},
		{"metadata nested", rawFile(`{"__metadata__":{"k":{"a":"b"}}}`, nil), ErrInvalidMetadata, nil},
	}
}

// TestParseRejects checks every validation rule with a crafted bad file: the
// error wraps the right sentinel and names the file and the offending tensor
// or field.
func TestParseRejects(t *testing.T) {
	cases := rejectCases()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := Parse("crafted.safetensors", c.buf)
			if err == nil {
				t.Fatalf("accepted a bad file; tensors %v", f.Names())
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("error %q does not wrap %q", err, c.want)
			}
			msg := err.Error()
			for _, s := range append([]string{"crafted.safetensors"}, c.says...) {
				if !strings.Contains(msg, s) {
					t.Errorf("error %q does not mention %q", msg, s)
				}
			}
		})
	}
}

// acceptCase is a valid corner-case file and its tensor names, sorted.
type acceptCase struct {
	name  string
	buf   []byte
	names []string
}

// acceptCases are valid files at the edges of the rules.
func acceptCases() []acceptCase {
	return []acceptCase{
		{"empty", rawFile(`{}`, nil), nil},
		{"padded", rawFile("  {}  \n\t", nil), nil},
		{"null metadata", rawFile(`{"__metadata__":null}`, nil), nil},
		{"out of order", rawFile(`{"b":{"dtype":"I32","shape":[1],"data_offsets":[4,8]},"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}`, make([]byte, 8)), []string{"a", "b"}},
		{"zero size and scalar", rawFile(`{"z":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]},"s":{"dtype":"F64","shape":[],"data_offsets":[0,8]}}`, make([]byte, 8)), []string{"s", "z"}},
		{"F4 pair", rawFile(`{"w":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}}`, []byte{0x21}), []string{"w"}},
	}
}

// TestParseAccepts covers valid corner cases the reference accepts: empty
// file, tensors listed out of offset order, zero-size tensors, scalars,
// sub-byte dtypes, null metadata, whitespace padding.
func TestParseAccepts(t *testing.T) {
	cases := acceptCases()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := Parse("ok.safetensors", c.buf)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(f.Names(), ",") != strings.Join(c.names, ",") {
				t.Fatalf("names %v, want %v", f.Names(), c.names)
			}
		})
	}
}

// TestRoundTrip writes tensors of several dtypes with Write, reads them back
// with Open, and checks bytes, shapes, metadata, the converted values, and
// that the header is space-padded to 8 bytes.
func TestRoundTrip(t *testing.T) {
	vals := []float32{1, -2.5, 3.25, float32(math.Inf(1)), 0, -0.0078125}
	bf := make([]byte, 2*len(vals))
	for i, v := range vals { // these values are exact in bfloat16
		binary.LittleEndian.PutUint16(bf[2*i:], uint16(math.Float32bits(v)>>16))
	}
	// F16 bit patterns: 1.0, -2.0, 65504 (max), 2^-24 (smallest subnormal), -inf, 0.5
	f16bits := []uint16{0x3c00, 0xc000, 0x7bff, 0x0001, 0xfc00, 0x3800}
	f16want := []float32{1, -2, 65504, float32(math.Ldexp(1, -24)), float32(math.Inf(-1)), 0.5}
	f16 := make([]byte, 2*len(f16bits))
	for i, b := range f16bits {
		binary.LittleEndian.PutUint16(f16[2*i:], b)
	}
	in := []NamedTensor{
		F32Tensor("w.f32", []int{2, 3}, vals),
		{Name: "w.bf16", DType: BF16, Shape: []int{3, 2}, Data: bf},
		{Name: "w.f16", DType: F16, Shape: []int{6}, Data: f16},
		{Name: "ids", DType: I64, Shape: []int{1, 2}, Data: []byte{1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0}},
		{Name: "empty", DType: F32, Shape: []int{0}, Data: nil},
	}
	md := map[string]string{"format": "pt", "note": "quote \" backslash \\ newline \n ü"}
	path := filepath.Join(t.TempDir(), "rt.safetensors")
	if err := Write(path, in, md); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := strings.Join(f.Names(), ","); got != "empty,ids,w.bf16,w.f16,w.f32" {
		t.Fatalf("names %s", got)
	}
	for _, nt := range in {
		info, data, err := f.Tensor(nt.Name)
		if err != nil {
			t.Fatal(err)
		}
		if info.DType != nt.DType || !equalInts(info.Shape, nt.Shape) || !bytes.Equal(data, nt.Data) {
			t.Errorf("tensor %s: got %s %v, want %s %v (bytes equal %v)", nt.Name, info.DType, info.Shape, nt.DType, nt.Shape, bytes.Equal(data, nt.Data))
		}
	}
	for name, want := range map[string][]float32{"w.f32": vals, "w.bf16": vals, "w.f16": f16want} {
		got, err := f.ReadFloat32(name)
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) { // exact: widening conversions
				t.Errorf("%s[%d] = %v, want %v", name, i, got[i], want[i])
			}
		}
	}
	if _, err := f.ReadFloat32("ids"); !errors.Is(err, ErrDType) || !strings.Contains(err.Error(), `"ids"`) {
		t.Errorf("ReadFloat32 on I64: %v", err)
	}
	if _, _, err := f.Tensor("nope"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), path) {
		t.Errorf("missing tensor: %v", err)
	}
	if got := f.Metadata(); len(got) != 2 || got["note"] != md["note"] || got["format"] != "pt" {
		t.Errorf("metadata %q", got)
	}
	raw, _ := os.ReadFile(path)
	n := binary.LittleEndian.Uint64(raw)
	if n%8 != 0 || raw[8+n-1] != ' ' && raw[8+n-1] != '}' {
		t.Errorf("header length %d not padded with spaces to 8", n)
	}
	// Determinism: the same tensors in another order give the same bytes.
	rev := []NamedTensor{in[4], in[3], in[2], in[1], in[0]}
	b2, err := Marshal(rev, md)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, b2) {
		t.Error("Marshal of reordered tensors differs from Write")
	}
	// No temporary file is left behind.
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries after Write, want 1", len(ents))
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestWriteRejects checks the writer refuses inconsistent input, names the
// tensor and the file, and leaves no file behind.
func TestWriteRejects(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		ts   []NamedTensor
		want error
	}{
		{"short data", []NamedTensor{{Name: "a", DType: F32, Shape: []int{2}, Data: make([]byte, 4)}}, ErrInvalidTensor},
		{"duplicate", []NamedTensor{F32Tensor("a", []int{1}, []float32{1}), F32Tensor("a", []int{1}, []float32{1})}, ErrInvalidTensor},
		{"reserved name", []NamedTensor{F32Tensor("__metadata__", []int{1}, []float32{1})}, ErrInvalidTensor},
		{"unknown dtype", []NamedTensor{{Name: "a", DType: "F17", Shape: []int{1}, Data: make([]byte, 4)}}, ErrUnknownDType},
		{"negative dim", []NamedTensor{{Name: "a", DType: F32, Shape: []int{-1}}}, ErrInvalidTensor},
		{"misaligned", []NamedTensor{{Name: "a", DType: F4, Shape: []int{1}}}, ErrMisalignedSlice},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, "bad.safetensors")
			err := Write(path, c.ts, nil)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), `tensor "`) {
				t.Fatalf("got %v, want %v naming the file and tensor", err, c.want)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Fatalf("failed Write left %d files", len(ents))
			}
		})
	}
}

// TestWriteReplacesAtomically checks an existing file is replaced whole.
func TestWriteReplacesAtomically(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.safetensors")
	if err := Write(path, []NamedTensor{F32Tensor("a", []int{1000}, make([]float32, 1000))}, nil); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, []NamedTensor{F32Tensor("b", []int{1}, []float32{7})}, nil); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v, err := f.ReadFloat32("b")
	if err != nil || len(v) != 1 || v[0] != 7 || f.Len() != 1 {
		t.Fatalf("replaced file: %v %v, %d tensors", v, err, f.Len())
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", st.Mode().Perm())
	}
}

// TestF16AllValues checks F16ToFloat32 on every finite half against the
// defining formula (-1)^s * 2^(e-15) * (1 + m/1024), or 2^-14 * m/1024 for
// subnormals. All such values are exact in float64 and float32.
func TestF16AllValues(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		s, e, m := h>>15, (h>>10)&0x1f, h&0x3ff
		got := F16ToFloat32(uint16(h))
		var want float64
		switch {
		case e == 0x1f:
			if m == 0 && !math.IsInf(float64(got), 1-2*s) || m != 0 && !math.IsNaN(float64(got)) {
				t.Fatalf("%#04x -> %v", h, got)
			}
			continue
		case e == 0:
			want = math.Ldexp(float64(m)/1024, -14)
		default:
			want = math.Ldexp(1+float64(m)/1024, e-15)
		}
		if s == 1 {
			want = -want
		}
		if float64(got) != want || math.Signbit(float64(got)) != (s == 1) {
			t.Fatalf("%#04x -> %v, want %v", h, got, want)
		}
	}
}

// TestOpenErrors: a missing file and an empty file (which cannot be mapped
// and takes the read fallback) give errors naming the path.
func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.safetensors")
	if _, err := Open(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: %v", err)
	}
	empty := filepath.Join(dir, "empty.safetensors")
	os.WriteFile(empty, nil, 0o644)
	if _, err := Open(empty); !errors.Is(err, ErrHeaderTooSmall) || !strings.Contains(err.Error(), empty) {
		t.Errorf("empty file: %v", err)
	}
	f, err := Open(filepath.Join(dir, "..", filepath.Base(dir), "empty.safetensors"))
	if err == nil {
		f.Close()
		t.Error("opened an empty file")
	}
}
