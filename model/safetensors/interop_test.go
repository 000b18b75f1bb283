package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/houlsby/adapters/internal/testassets"
)

// goldenDir holds files written by tests/ref/gen_safetensors.py.
func goldenDir() string { return filepath.Join(testassets.GoldenDir(), "safetensors") }

// TestReferenceWriterByteIdentical: for single-dtype tensors the reference
// writer's layout (sorted by dtype alignment, then name) is sorted by name, so
// re-encoding its file with our writer must give the very same bytes
// (header JSON, padding, data).
func TestReferenceWriterByteIdentical(t *testing.T) {
	path := filepath.Join(goldenDir(), "py_f32.safetensors")
	testassets.Require(t, "make goldens", path)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Parse(path, raw)
	if err != nil {
		t.Fatal(err)
	}
	var ts []NamedTensor
	for _, n := range f.Names() {
		info, data, err := f.Tensor(n)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, NamedTensor{Name: n, DType: info.DType, Shape: info.Shape, Data: data})
	}
	if len(ts) != 4 {
		t.Fatalf("%d tensors, want 4", len(ts))
	}
	ours, err := Marshal(ts, f.Metadata())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ours, raw) {
		t.Fatalf("our encoding differs from the reference writer's:\nours: %q\nref:  %q", ours[:min(len(ours), 300)], raw[:min(len(raw), 300)])
	}
}

type goldenDesc struct {
	Version  string            `json:"safetensors_version"`
	Metadata map[string]string `json:"metadata"`
	Tensors  map[string]struct {
		DType  string    `json:"dtype"`
		Shape  []int     `json:"shape"`
		Values []float64 `json:"values"`
	} `json:"tensors"`
}

// TestReadReferenceFile reads a mixed-dtype file written by the reference and
// compares every value with the JSON dump written next to it. All values are
// exact in their dtype and in float64, so the comparison is exact.
func TestReadReferenceFile(t *testing.T) {
	path := filepath.Join(goldenDir(), "py_mixed.safetensors")
	jpath := filepath.Join(goldenDir(), "py_mixed.json")
	testassets.Require(t, "make goldens", path, jpath)
	var want goldenDesc
	jb, err := os.ReadFile(jpath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(jb, &want); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if len(f.Names()) != len(want.Tensors) || len(want.Tensors) != 8 {
		t.Fatalf("tensors %v, want %d", f.Names(), len(want.Tensors))
	}
	for k, v := range want.Metadata {
		if f.Metadata()[k] != v {
			t.Errorf("metadata %q = %q, want %q", k, f.Metadata()[k], v)
		}
	}
	for name, w := range want.Tensors {
		info, data, err := f.Tensor(name)
		if err != nil {
			t.Fatal(err)
		}
		if string(info.DType) != w.DType || !equalInts(info.Shape, w.Shape) {
			t.Errorf("%s: %s %v, want %s %v", name, info.DType, info.Shape, w.DType, w.Shape)
			continue
		}
		got := decodeAny(t, info.DType, data)
		if len(got) != len(w.Values) {
			t.Fatalf("%s: %d values, want %d", name, len(got), len(w.Values))
		}
		for i := range got {
			if got[i] != w.Values[i] || math.Signbit(got[i]) != math.Signbit(w.Values[i]) {
				t.Errorf("%s[%d] = %v, want %v", name, i, got[i], w.Values[i])
			}
		}
	}
}

// decodeAny converts raw bytes of the dtypes in the golden file to float64.
func decodeAny(t *testing.T, d DType, data []byte) []float64 {
	var out []float64
	switch d {
	case F32, F16, BF16:
		n := len(data) * 8 / d.BitSize()
		f := make([]float32, n)
		map[DType]func([]float32, []byte){F32: DecodeF32, F16: DecodeF16, BF16: DecodeBF16}[d](f, data)
		for _, v := range f {
			out = append(out, float64(v))
		}
	case I64:
		for i := 0; i < len(data); i += 8 {
			out = append(out, float64(int64(binary.LittleEndian.Uint64(data[i:]))))
		}
	case U8, BOOL:
		for _, b := range data {
			out = append(out, float64(b))
		}
	default:
		t.Fatalf("no decoder for %s", d)
	}
	return out
}

// TestPythonReadsOurFile writes a file with our writer and loads it with the
// reference Python package (safetensors.torch), which must accept it and see
// the same names, dtypes, shapes, values and metadata.
func TestPythonReadsOurFile(t *testing.T) {
	py := testassets.Path(".venv-ref", "bin", "python")
	testassets.Require(t, "make ref-env", py)
	vals := []float32{0.5, -1.75, 3, 1e-3, 65504, -0}
	bf := make([]byte, 2*len(vals))
	f16 := make([]byte, 2*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint16(bf[2*i:], uint16(math.Float32bits(v)>>16)) // truncation: what we check is Python's decoding of our bits
	}
	for i, h := range []uint16{0x3800, 0xbf00, 0x4200, 0x0001, 0x7bff, 0x8000} {
		binary.LittleEndian.PutUint16(f16[2*i:], h)
	}
	ts := []NamedTensor{
		F32Tensor("w.f32", []int{3, 2}, vals),
		{Name: "w.bf16", DType: BF16, Shape: []int{2, 3}, Data: bf},
		{Name: "w.f16", DType: F16, Shape: []int{6}, Data: f16},
		{Name: "ids", DType: I64, Shape: []int{2}, Data: []byte{7, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
		{Name: "empty", DType: F32, Shape: []int{0, 4}},
	}
	md := map[string]string{"format": "pt", "adapter": `{"m": 64}`, "ctl": "tab\there \x01"}
	path := filepath.Join(t.TempDir(), "ours.safetensors")
	if err := Write(path, ts, md); err != nil {
		t.Fatal(err)
	}
	script := `
import json, sys, torch
from safetensors import safe_open
out = {"tensors": {}}
with safe_open(sys.argv[1], framework="pt") as f:
    out["metadata"] = f.metadata()
    for k in f.keys():
        v = f.get_tensor(k)
        out["tensors"][k] = {"dtype": str(v.dtype), "shape": list(v.shape),
                             "values": v.to(torch.float64).flatten().tolist()}
print(json.dumps(out))
`
	cmd := exec.Command(py, "-c", script, path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	outb, err := cmd.Output()
	if err != nil {
		t.Fatalf("python rejected our file: %v\n%s", err, stderr.String())
	}
	var got struct {
		Metadata map[string]string
		Tensors  map[string]struct {
			DType  string
			Shape  []int
			Values []float64
		}
	}
	if err := json.Unmarshal(outb, &got); err != nil {
		t.Fatalf("%v: %s", err, outb)
	}
	if len(got.Metadata) != len(md) {
		t.Errorf("python metadata %q, want %q", got.Metadata, md)
	}
	for k, v := range md {
		if got.Metadata[k] != v {
			t.Errorf("python metadata[%q] = %q, want %q", k, got.Metadata[k], v)
		}
	}
	torchName := map[DType]string{F32: "torch.float32", BF16: "torch.bfloat16", F16: "torch.float16", I64: "torch.int64"}
	if len(got.Tensors) != len(ts) {
		t.Fatalf("python sees %d tensors, want %d", len(got.Tensors), len(ts))
	}
	for _, nt := range ts {
		g, ok := got.Tensors[nt.Name]
		if !ok {
			t.Errorf("python misses %s", nt.Name)
			continue
		}
		if g.DType != torchName[nt.DType] || !equalInts(g.Shape, nt.Shape) {
			t.Errorf("%s: python sees %s %v, want %s %v", nt.Name, g.DType, g.Shape, torchName[nt.DType], nt.Shape)
		}
		want := decodeAny(t, nt.DType, nt.Data)
		if len(want) != len(g.Values) {
			t.Fatalf("%s: python has %d values, want %d", nt.Name, len(g.Values), len(want))
		}
		for i := range want {
			if want[i] != g.Values[i] { // exact: every dtype widens exactly to float64
				t.Errorf("%s[%d]: python %v, ours %v", nt.Name, i, g.Values[i], want[i])
			}
		}
	}
}

// TestRealCheckpointRoundTrip opens the real all-MiniLM-L6-v2 weights (mmap),
// checks their header, rewrites every tensor with our writer, and checks the
// rewritten file holds the same bytes; it also checks the read fallback
// (Parse on a heap copy) agrees with the mapping.
func TestRealCheckpointRoundTrip(t *testing.T) {
	path := filepath.Join(testassets.ModelDir(), "model.safetensors")
	testassets.Require(t, "make assets", path)
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// 6 layers x 16 tensors + 5 embedding tensors + position_ids + 2 pooler.
	if f.Len() != 6*16+5+1+2 {
		t.Fatalf("%d tensors, want 104", f.Len())
	}
	if f.Metadata()["format"] != "pt" {
		t.Errorf("metadata %q", f.Metadata())
	}
	info, ok := f.Info("embeddings.word_embeddings.weight")
	if !ok || info.DType != F32 || !equalInts(info.Shape, []int{30522, 384}) {
		t.Fatalf("word embeddings: %+v", info)
	}
	var ts []NamedTensor
	for _, n := range f.Names() {
		info, data, err := f.Tensor(n)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, NamedTensor{Name: n, DType: info.DType, Shape: info.Shape, Data: data})
	}
	out := filepath.Join(t.TempDir(), "copy.safetensors")
	if err := Write(out, ts, f.Metadata()); err != nil {
		t.Fatal(err)
	}
	g, err := Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h, err := Parse(path, raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, nt := range ts {
		for _, other := range []*File{g, h} {
			info, data, err := other.Tensor(nt.Name)
			if err != nil {
				t.Fatal(err)
			}
			if info.DType != nt.DType || !equalInts(info.Shape, nt.Shape) || !bytes.Equal(data, nt.Data) {
				t.Fatalf("%s differs in %s", nt.Name, other.Path())
			}
		}
	}
	w, err := f.ReadFloat32("embeddings.LayerNorm.weight")
	if err != nil || len(w) != 384 {
		t.Fatalf("ReadFloat32: %v, %d values", err, len(w))
	}
}

// strictOnly names the crafted files of rejectCases that the reference
// implementation accepts and we reject on purpose (see the package comment):
// a repeated tensor name or metadata key, which serde's maps resolve by
// keeping the last, and unknown tensor fields, which serde ignores. (A
// repeated "__metadata__" or tensor field the reference rejects as well.)
var strictOnly = map[string]bool{
	"duplicate tensor":       true,
	"duplicate metadata key": true,
	"unknown field":          true,
}

// TestReferenceAgreesOnCraftedFiles opens every crafted file of rejectCases
// and acceptCases with the reference Python package: it must reject what we
// reject (except the strictOnly cases, which it must accept, so that list
// stays true) and accept what we accept.
func TestReferenceAgreesOnCraftedFiles(t *testing.T) {
	py := testassets.Path(".venv-ref", "bin", "python")
	testassets.Require(t, "make ref-env", py)
	dir := t.TempDir()
	want := map[string]bool{} // file -> reference should accept
	var args []string
	for i, c := range rejectCases() {
		p := filepath.Join(dir, "reject"+strconv.Itoa(i))
		os.WriteFile(p, c.buf, 0o644)
		want[p] = strictOnly[c.name]
		args = append(args, p)
	}
	for i, c := range acceptCases() {
		p := filepath.Join(dir, "accept"+strconv.Itoa(i))
		os.WriteFile(p, c.buf, 0o644)
		want[p] = true
		args = append(args, p)
	}
	script := `
import json, sys
from safetensors import safe_open
out = {}
for p in sys.argv[1:]:
    try:
        with safe_open(p, framework="numpy") as f:
            f.keys(); f.metadata()
        out[p] = "ok"
    except Exception as e:
        out[p] = type(e).__name__ + ": " + str(e)
print(json.dumps(out))
`
	cmd := exec.Command(py, append([]string{"-c", script}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	outb, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, stderr.String())
	}
	var got map[string]string
	if err := json.Unmarshal(outb, &got); err != nil {
		t.Fatalf("%v: %s", err, outb)
	}
	names := map[string]string{}
	for i, c := range rejectCases() {
		names[filepath.Join(dir, "reject"+strconv.Itoa(i))] = "reject case " + c.name
	}
	for i, c := range acceptCases() {
		names[filepath.Join(dir, "accept"+strconv.Itoa(i))] = "accept case " + c.name
	}
	for _, p := range args {
		if accepted := got[p] == "ok"; accepted != want[p] {
			t.Errorf("%s: reference says %q, expected accept=%v", names[p], got[p], want[p])
		}
	}
}
