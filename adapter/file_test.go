package adapter

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/houlsby/adapters/model/safetensors"
)

// tinyFile returns a valid File for a 2-layer, d = 8 model with m = 4
// Houlsby adapters, LayerNorms trained, a created pooler and 3 labels.
func tinyFile(t testing.TB) *File {
	t.Helper()
	a := Default()
	a.Bottleneck = 4
	f := &File{
		Adapter:         &a,
		Strategy:        Strategy{Name: StratAdapters, TrainLayerNorm: true},
		Head:            Head{Kind: HeadPooler, NumLabels: 3},
		Labels:          []string{"neg", "neu", "pos"},
		BaseFingerprint: "sha256:abc",
		Base:            Base{HiddenSize: 8, NumHiddenLayers: 2, NumAttentionHeads: 2, IntermediateSize: 16, VocabSize: 10, MaxPositionEmbeddings: 12, TypeVocabSize: 2},
		BaseHasPooler:   false,
	}
	exp, err := f.Expected()
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range exp {
		d := make([]float32, s.NumElements())
		for j := range d {
			d[j] = float32(i) + float32(j)/1000
		}
		f.Tensors = append(f.Tensors, Tensor{Name: s.Name, Shape: s.Shape, Data: d})
	}
	return f
}

func TestFileRoundTrip(t *testing.T) {
	f := tinyFile(t)
	// 2 layers x 2 adapters x 4 tensors + 5 LayerNorms x 2 + pooler 2 + classifier 2.
	if len(f.Tensors) != 16+10+4 {
		t.Fatalf("%d tensors", len(f.Tensors))
	}
	path := filepath.Join(t.TempDir(), "a.safetensors")
	if err := Save(path, f); err != nil {
		t.Fatal(err)
	}
	g, err := Load(path, "sha256:abc")
	if err != nil {
		t.Fatal(err)
	}
	if g.Adapter == nil || len(g.Adapter.Layers) != 0 || g.Adapter.Bottleneck != 4 || g.Strategy.Name != StratAdapters ||
		!g.Strategy.TrainLayerNorm || g.Head != f.Head || strings.Join(g.Labels, ",") != "neg,neu,pos" || g.Base != f.Base || g.BaseHasPooler {
		t.Errorf("metadata did not round-trip: %+v", g)
	}
	if len(g.Tensors) != len(f.Tensors) {
		t.Fatalf("%d tensors back", len(g.Tensors))
	}
	for i := range f.Tensors {
		a, b := f.Tensors[i], g.Tensors[i]
		if a.Name != b.Name || !equalShape(a.Shape, b.Shape) {
			t.Fatalf("tensor %d: %s%v vs %s%v", i, a.Name, a.Shape, b.Name, b.Shape)
		}
		for j := range a.Data {
			if a.Data[j] != b.Data[j] {
				t.Fatalf("%s[%d]: %v vs %v", a.Name, j, a.Data[j], b.Data[j])
			}
		}
	}
	// No fingerprint check when none is expected.
	if _, err := Load(path, ""); err != nil {
		t.Error(err)
	}
	// Only the file itself is left in the directory (atomic write cleans up).
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Errorf("%d entries in the output directory", len(ents))
	}
}

func TestFileRefusesOtherBase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.safetensors")
	if err := Save(path, tinyFile(t)); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path, "sha256:def")
	if err == nil || !strings.Contains(err.Error(), "made for base model") || !strings.Contains(err.Error(), path) {
		t.Errorf("got %v", err)
	}
}

// writeRaw writes f's tensors with altered metadata, bypassing Save's checks.
func writeRaw(t *testing.T, f *File, edit func(map[string]string)) string {
	t.Helper()
	meta, err := f.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(meta)
	}
	var ts []safetensors.NamedTensor
	for _, x := range f.Tensors {
		ts = append(ts, safetensors.F32Tensor(x.Name, x.Shape, x.Data))
	}
	path := filepath.Join(t.TempDir(), "raw.safetensors")
	if err := safetensors.Write(path, ts, meta); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestFileRefusesBadFiles(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(f *File)
		meta func(map[string]string)
		want string
	}{
		{"missing tensor", func(f *File) { f.Tensors = f.Tensors[1:] }, nil, "missing tensor"},
		{"unexpected tensor", func(f *File) {
			f.Tensors = append(f.Tensors, Tensor{Name: "encoder.layer.0.output.dense.weight", Shape: []int{8, 16}, Data: make([]float32, 128)})
		}, nil, "unexpected tensor(s) for strategy \"adapters\": [encoder.layer.0.output.dense.weight]"},
		{"wrong shape", func(f *File) { f.Tensors[0].Shape = []int{8, 4}; f.Tensors[0].Data = make([]float32, 32) }, nil, "has shape"},
		{"newer version", nil, func(m map[string]string) { m["format_version"] = "2" }, "format version 2 is newer"},
		{"bad version", nil, func(m map[string]string) { m["format_version"] = "one" }, "bad format_version"},
		{"other format", nil, func(m map[string]string) { m["format"] = "pt" }, "not an adapter file"},
		{"no strategy", nil, func(m map[string]string) { delete(m, "strategy") }, "metadata strategy missing"},
		{"labels vs head", nil, func(m map[string]string) { m["label_map"] = `["a","b"]` }, "label_map has 2 labels"},
		{"layernorm switch", nil, func(m map[string]string) { m["strategy"] = `{"name":"adapters","train_layernorm":false}` }, "unexpected tensor"},
	} {
		f := tinyFile(t)
		if tc.mod != nil {
			tc.mod(f)
		}
		path := writeRaw(t, f, tc.meta)
		_, err := Load(path, "sha256:abc")
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: got %v, want an error naming the file and containing %q", tc.name, err, tc.want)
		}
		if tc.mod != nil {
			if err := Save(filepath.Join(t.TempDir(), "x.safetensors"), f); err == nil {
				t.Errorf("%s: Save accepted it", tc.name)
			}
		}
	}
}

// Head-only files have no adapter config and hold just the head.
func TestFileHeadOnly(t *testing.T) {
	f := tinyFile(t)
	f.Adapter = nil
	f.Strategy = Strategy{Name: StratHead}
	f.BaseHasPooler = true
	f.Head = Head{Kind: HeadCLS, NumLabels: 1}
	f.Labels = nil
	f.Tensors = []Tensor{{Name: "classifier.weight", Shape: []int{1, 8}, Data: make([]float32, 8)}, {Name: "classifier.bias", Shape: []int{1}, Data: []float32{0.5}}}
	path := filepath.Join(t.TempDir(), "h.safetensors")
	if err := Save(path, f); err != nil {
		t.Fatal(err)
	}
	g, err := Load(path, "sha256:abc")
	if err != nil {
		t.Fatal(err)
	}
	if g.Adapter != nil || len(g.Tensors) != 2 || g.Tensors[1].Data[0] != 0.5 {
		t.Errorf("%+v", g)
	}
}
