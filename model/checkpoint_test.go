package model

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/houlsby/adapters/internal/testassets"
	"github.com/houlsby/adapters/model/safetensors"
)

// ckTinyConfigJSON is a small but complete BERT config.json (C=8, L=2, NH=2,
// I=12, V=30, P=16, TV=2).
const ckTinyConfigJSON = `{"architectures":["BertModel"],"model_type":"bert","hidden_size":8,
"num_hidden_layers":2,"num_attention_heads":2,"intermediate_size":12,"vocab_size":30,
"max_position_embeddings":16,"type_vocab_size":2,"hidden_act":"gelu","layer_norm_eps":1e-12}`

func ckTinyConfig(t *testing.T) Config {
	c, err := ParseConfig("tiny", []byte(ckTinyConfigJSON))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// ckTinyValues gives tensor k deterministic values that are multiples of 1/8
// in [-1, 1], so they are exact in F16 and BF16 as well as F32.
func ckTinyValues(k, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32((i*7+k*3)%17)*0.125 - 1
	}
	return v
}

// ckEncodeAs stores float32 values (exact in the target dtype) as dtype bytes.
func ckEncodeAs(dtype safetensors.DType, v []float32) []byte {
	switch dtype {
	case safetensors.F32:
		b := make([]byte, 4*len(v))
		safetensors.EncodeF32(b, v)
		return b
	case safetensors.BF16:
		b := make([]byte, 2*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint16(b[2*i:], uint16(math.Float32bits(x)>>16))
		}
		return b
	case safetensors.F16:
		b := make([]byte, 2*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint16(b[2*i:], ckF32ToF16Exact(x))
		}
		return b
	}
	panic("ckEncodeAs: " + string(dtype))
}

// ckF32ToF16Exact converts a float32 that is a normal (or zero) half exactly.
func ckF32ToF16Exact(x float32) uint16 {
	b := math.Float32bits(x)
	sign := uint16(b>>16) & 0x8000
	if b&0x7fffffff == 0 {
		return sign
	}
	exp := int(b>>23&0xff) - 127 + 15
	if exp <= 0 || exp >= 31 || b&0x1fff != 0 {
		panic("ckF32ToF16Exact: not exact")
	}
	return sign | uint16(exp)<<10 | uint16(b>>13&0x3ff)
}

// ckTinyTensors is the full tensor set of the tiny config, keys mapped through
// rename, stored as dtype.
func ckTinyTensors(cfg Config, pooler bool, dtype safetensors.DType, rename func(string) string) []safetensors.NamedTensor {
	var out []safetensors.NamedTensor
	for k, s := range ExpectedTensors(cfg, pooler) {
		out = append(out, safetensors.NamedTensor{Name: rename(s.Name), DType: dtype, Shape: s.Shape, Data: ckEncodeAs(dtype, ckTinyValues(k, s.NumElements()))})
	}
	return out
}

func ckKeepName(s string) string { return s }

// ckWriteModel writes config.json and model.safetensors into a fresh folder.
func ckWriteModel(t *testing.T, cfgJSON string, ts []safetensors.NamedTensor) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte(cfgJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := safetensors.Write(filepath.Join(dir, WeightsFile), ts, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	return dir
}

var ckHex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// TestLoadCheckpointTiny loads a plain F32 checkpoint and checks every value.
func TestLoadCheckpointTiny(t *testing.T) {
	cfg := ckTinyConfig(t)
	dir := ckWriteModel(t, ckTinyConfigJSON, ckTinyTensors(cfg, true, safetensors.F32, ckKeepName))
	ck, err := LoadCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !ck.HasPooler || !ckHex64.MatchString(ck.Fingerprint) || len(ck.Ignored) != 0 || ck.Dir != dir ||
		ck.VocabPath() != filepath.Join(dir, "vocab.txt") || ck.TokenizerPath() != filepath.Join(dir, "tokenizer.json") {
		t.Fatalf("checkpoint %+v", ck)
	}
	specs := ExpectedTensors(cfg, true)
	if len(ck.Tensors) != len(specs) {
		t.Fatalf("%d tensors, want %d", len(ck.Tensors), len(specs))
	}
	total := 0
	for k, s := range specs {
		got := ck.Tensors[s.Name]
		want := ckTinyValues(k, s.NumElements())
		if !ckptEqualShape(got.Shape, s.Shape) || len(got.Data) != len(want) {
			t.Fatalf("%s: shape %v, %d values", s.Name, got.Shape, len(got.Data))
		}
		for i := range want {
			if got.Data[i] != want[i] {
				t.Fatalf("%s[%d] = %v, want %v", s.Name, i, got.Data[i], want[i])
			}
		}
		total += len(want)
	}
	if ck.NumParams() != total {
		t.Errorf("NumParams %d, want %d", ck.NumParams(), total)
	}
}

// TestCheckpointFingerprint: the fingerprint ignores storage details (prefix,
// legacy names, extra buffers and task heads, dtype of exactly representable
// weights, sharding) and changes with any weight, the config, or the pooler.
func TestCheckpointFingerprint(t *testing.T) {
	cfg := ckTinyConfig(t)
	load := func(dir string) *Checkpoint {
		t.Helper()
		ck, err := LoadCheckpoint(dir)
		if err != nil {
			t.Fatal(err)
		}
		return ck
	}
	base := load(ckWriteModel(t, ckTinyConfigJSON, ckTinyTensors(cfg, true, safetensors.F32, ckKeepName)))

	// Task-model naming: bert. prefix, gamma/beta, position_ids, heads.
	legacy := ckTinyTensors(cfg, true, safetensors.F32, func(s string) string {
		s = strings.Replace(s, "LayerNorm.weight", "LayerNorm.gamma", 1)
		return "bert." + strings.Replace(s, "LayerNorm.bias", "LayerNorm.beta", 1)
	})
	legacy = append(legacy,
		safetensors.NamedTensor{Name: "bert.embeddings.position_ids", DType: safetensors.I64, Shape: []int{1, 2}, Data: make([]byte, 16)},
		safetensors.F32Tensor("classifier.weight", []int{2, 8}, make([]float32, 16)),
		safetensors.F32Tensor("classifier.bias", []int{2}, []float32{1, 2}),
		safetensors.F32Tensor("cls.predictions.bias", []int{30}, make([]float32, 30)))
	ck := load(ckWriteModel(t, ckTinyConfigJSON, legacy))
	if ck.Fingerprint != base.Fingerprint {
		t.Error("bert./gamma/beta naming changed the fingerprint")
	}
	if strings.Join(ck.Ignored, ",") != "classifier.bias,classifier.weight,cls.predictions.bias" {
		t.Errorf("Ignored %v", ck.Ignored)
	}
	if src := ck.Sources[NameEmbeddingsLNWeight]; src.Key != "bert.embeddings.LayerNorm.gamma" || src.DType != safetensors.F32 {
		t.Errorf("source %+v", src)
	}
	for _, dt := range []safetensors.DType{safetensors.F16, safetensors.BF16} {
		ck := load(ckWriteModel(t, ckTinyConfigJSON, ckTinyTensors(cfg, true, dt, ckKeepName)))
		if ck.Fingerprint != base.Fingerprint {
			t.Errorf("%s storage of the same values changed the fingerprint", dt)
		}
		if ck.Sources[NamePoolerWeight].DType != dt {
			t.Errorf("source dtype %s, want %s", ck.Sources[NamePoolerWeight].DType, dt)
		}
	}
	sharded := ckWriteSharded(t, ckTinyTensors(cfg, true, safetensors.F32, ckKeepName))
	ck = load(sharded)
	if ck.Fingerprint != base.Fingerprint || len(ck.Files) != 2 {
		t.Errorf("sharding: files %v, fingerprint equal %v", ck.Files, ck.Fingerprint == base.Fingerprint)
	}

	changed := ckTinyTensors(cfg, true, safetensors.F32, ckKeepName)
	changed[7].Data[0] ^= 1 // one bit of one weight
	if load(ckWriteModel(t, ckTinyConfigJSON, changed)).Fingerprint == base.Fingerprint {
		t.Error("changing one weight bit kept the fingerprint")
	}
	eps := strings.Replace(ckTinyConfigJSON, "1e-12", "1e-5", 1)
	if load(ckWriteModel(t, eps, ckTinyTensors(cfg, true, safetensors.F32, ckKeepName))).Fingerprint == base.Fingerprint {
		t.Error("changing layer_norm_eps kept the fingerprint")
	}
	nop := load(ckWriteModel(t, ckTinyConfigJSON, ckTinyTensors(cfg, false, safetensors.F32, ckKeepName)))
	if nop.HasPooler || nop.Fingerprint == base.Fingerprint || len(nop.Tensors) != len(base.Tensors)-2 {
		t.Errorf("no pooler: HasPooler %v, %d tensors, same fingerprint %v", nop.HasPooler, len(nop.Tensors), nop.Fingerprint == base.Fingerprint)
	}
}

// ckWriteSharded writes ts into two shards with an index, like transformers'
// save_pretrained(max_shard_size=...).
func ckWriteSharded(t *testing.T, ts []safetensors.NamedTensor) string {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, ConfigFile), []byte(ckTinyConfigJSON), 0o644)
	half := len(ts) / 2
	wm := map[string]string{}
	for i, part := range [][]safetensors.NamedTensor{ts[:half], ts[half:]} {
		name := []string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}[i]
		if err := safetensors.Write(filepath.Join(dir, name), part, nil); err != nil {
			t.Fatal(err)
		}
		for _, nt := range part {
			wm[nt.Name] = name
		}
	}
	ckWriteIndex(t, dir, wm)
	return dir
}

func ckWriteIndex(t *testing.T, dir string, wm map[string]string) {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"total_size": 1}, "weight_map": wm})
	if err := os.WriteFile(filepath.Join(dir, WeightsIndexFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestLoadCheckpointRejects: each broken checkpoint is refused with an error
// naming the tensor (or field) and the file.
func TestLoadCheckpointRejects(t *testing.T) {
	cfg := ckTinyConfig(t)
	good := func() []safetensors.NamedTensor { return ckTinyTensors(cfg, true, safetensors.F32, ckKeepName) }
	drop := func(name string) []safetensors.NamedTensor {
		var out []safetensors.NamedTensor
		for _, nt := range good() {
			if nt.Name != name {
				out = append(out, nt)
			}
		}
		return out
	}
	cases := []struct {
		name string
		dir  func() string
		says []string
	}{
		{"missing tensor", func() string {
			return ckWriteModel(t, ckTinyConfigJSON, drop("encoder.layer.1.output.dense.bias"))
		}, []string{`"encoder.layer.1.output.dense.bias"`, "missing", WeightsFile}},
		{"half a pooler", func() string { return ckWriteModel(t, ckTinyConfigJSON, drop(NamePoolerBias)) }, []string{`"pooler.dense.bias"`, "missing"}},
		{"unexpected tensor", func() string {
			return ckWriteModel(t, ckTinyConfigJSON, append(good(), safetensors.F32Tensor("encoder.layer.2.output.dense.bias", []int{8}, make([]float32, 8))))
		}, []string{`"encoder.layer.2.output.dense.bias"`, "unexpected", WeightsFile}},
		{"misshapen", func() string {
			ts := good()
			ts[15].Shape = []int{ts[15].Shape[1], ts[15].Shape[0]} // a transposed weight
			return ckWriteModel(t, ckTinyConfigJSON, ts)
		}, []string{`"encoder.layer.0.intermediate.dense.weight"`, "shape", WeightsFile}},
		{"duplicate via prefix", func() string {
			return ckWriteModel(t, ckTinyConfigJSON, append(good(), safetensors.F32Tensor("bert.pooler.dense.bias", []int{8}, make([]float32, 8))))
		}, []string{`"pooler.dense.bias"`, `"bert.pooler.dense.bias"`, WeightsFile}},
		{"integer weights", func() string {
			ts := good()
			ts[3].DType = safetensors.I32
			return ckWriteModel(t, ckTinyConfigJSON, ts)
		}, []string{`"embeddings.LayerNorm.weight"`, "I32", WeightsFile}},
		{"wrong config", func() string {
			return ckWriteModel(t, strings.Replace(ckTinyConfigJSON, `"gelu"`, `"gelu_new"`, 1), good())
		}, []string{"hidden_act", ConfigFile}},
		{"config says more layers", func() string {
			return ckWriteModel(t, strings.Replace(ckTinyConfigJSON, `"num_hidden_layers":2`, `"num_hidden_layers":3`, 1), good())
		}, []string{`"encoder.layer.2.`, "missing"}},
		{"no weights", func() string {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, ConfigFile), []byte(ckTinyConfigJSON), 0o644)
			return dir
		}, []string{WeightsFile, WeightsIndexFile}},
		{"pytorch weights only", func() string {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, ConfigFile), []byte(ckTinyConfigJSON), 0o644)
			os.WriteFile(filepath.Join(dir, "pytorch_model.bin"), []byte("x"), 0o644)
			return dir
		}, []string{"pytorch_model.bin", "only safetensors"}},
		{"corrupt weights", func() string {
			dir := ckWriteModel(t, ckTinyConfigJSON, good())
			p := filepath.Join(dir, WeightsFile)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)-1], 0o644)
			return dir
		}, []string{WeightsFile, "truncated"}},
		{"index names a missing tensor", func() string {
			dir := ckWriteSharded(t, good())
			b, _ := os.ReadFile(filepath.Join(dir, WeightsIndexFile))
			var idx struct {
				WeightMap map[string]string `json:"weight_map"`
			}
			json.Unmarshal(b, &idx)
			idx.WeightMap["encoder.layer.0.extra"] = "model-00001-of-00002.safetensors"
			ckWriteIndex(t, dir, idx.WeightMap)
			return dir
		}, []string{`"encoder.layer.0.extra"`, WeightsIndexFile, "model-00001-of-00002.safetensors"}},
		{"shard tensor not in index", func() string {
			dir := ckWriteSharded(t, good())
			b, _ := os.ReadFile(filepath.Join(dir, WeightsIndexFile))
			var idx struct {
				WeightMap map[string]string `json:"weight_map"`
			}
			json.Unmarshal(b, &idx)
			delete(idx.WeightMap, NameWordEmbeddings)
			ckWriteIndex(t, dir, idx.WeightMap)
			return dir
		}, []string{`"embeddings.word_embeddings.weight"`, "not listed", "model-00001-of-00002.safetensors"}},
		{"shard outside the folder", func() string {
			dir := ckWriteSharded(t, good())
			ckWriteIndex(t, dir, map[string]string{NameWordEmbeddings: "../model.safetensors"})
			return dir
		}, []string{"weight_map", `"embeddings.word_embeddings.weight"`, "../model.safetensors"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ck, err := LoadCheckpoint(c.dir())
			if err == nil {
				t.Fatalf("accepted: %d tensors", len(ck.Tensors))
			}
			for _, s := range c.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}

// TestLoadCheckpointMiniLM loads the real all-MiniLM-L6-v2 folder: 6 layers,
// a pooler, 22,713,216 parameters (the count Hugging Face reports for this
// BertModel, and the closed form of TestExpectedTensors with V=30522, P=512,
// TV=2, C=384, I=1536, L=6), and a fingerprint that is the same on reload.
func TestLoadCheckpointMiniLM(t *testing.T) {
	dir := testassets.ModelDir()
	testassets.Require(t, "make assets", filepath.Join(dir, WeightsFile), filepath.Join(dir, ConfigFile))
	ck, err := LoadCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !ck.HasPooler || ck.NumParams() != 22713216 || len(ck.Ignored) != 0 || len(ck.Tensors) != 6*16+5+2 {
		t.Fatalf("HasPooler %v, %d params, ignored %v, %d tensors", ck.HasPooler, ck.NumParams(), ck.Ignored, len(ck.Tensors))
	}
	f, err := safetensors.Open(filepath.Join(dir, WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	raw, err := f.ReadFloat32("encoder.layer.5.output.dense.weight")
	if err != nil {
		t.Fatal(err)
	}
	got := ck.Tensors["encoder.layer.5.output.dense.weight"]
	if len(got.Data) != len(raw) || got.Data[12345] != raw[12345] || got.Shape[0] != 384 || got.Shape[1] != 1536 {
		t.Fatal("loaded tensor differs from the file")
	}
	ck2, err := LoadCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ck2.Fingerprint != ck.Fingerprint || !ckHex64.MatchString(ck.Fingerprint) {
		t.Fatalf("fingerprint %q then %q", ck.Fingerprint, ck2.Fingerprint)
	}
	t.Logf("all-MiniLM-L6-v2 fingerprint %s", ck.Fingerprint)
}

// TestCheckpointReleaseReload: Release drops the host tensors (NumParams
// still answers), model.New reloads them from the folder with the same
// fingerprint, and a folder whose weights changed meanwhile is refused.
func TestCheckpointReleaseReload(t *testing.T) {
	cfg := ckTinyConfig(t)
	dir := ckWriteModel(t, ckTinyConfigJSON, ckTinyTensors(cfg, true, safetensors.F32, ckKeepName))
	ck, err := LoadCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	want, n := ck.Tensors, ck.NumParams()
	ck.Release()
	if ck.Tensors != nil || ck.NumParams() != n {
		t.Fatalf("after Release: %d tensors, NumParams %d (want nil, %d)", len(ck.Tensors), ck.NumParams(), n)
	}
	m, err := New(&backend64{}, ck, Options{MaxBatch: 1, MaxSeq: 4, Head: HeadOptions{Kind: HeadClassification, NumLabels: 2}})
	if err != nil {
		t.Fatal(err)
	}
	m.Free()
	if len(ck.Tensors) != len(want) {
		t.Fatalf("New reloaded %d tensors, want %d", len(ck.Tensors), len(want))
	}
	for name, w := range want {
		if g := ck.Tensors[name]; !slices.Equal(g.Data, w.Data) || !slices.Equal(g.Shape, w.Shape) {
			t.Fatalf("%s differs after the reload", name)
		}
	}
	ck.Release()
	ck.Release() // twice is harmless
	// Other weights in the same folder: the reload must notice.
	raw, err := os.ReadFile(filepath.Join(dir, WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-1] ^= 0x40 // the last weight's top byte
	if err := os.WriteFile(filepath.Join(dir, WeightsFile), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ck.EnsureTensors(); err == nil || !strings.Contains(err.Error(), "changed since it was loaded") {
		t.Fatalf("a changed folder reloaded: %v", err)
	}
	// A checkpoint built in memory (no folder) keeps its tensors.
	mem := &Checkpoint{Config: cfg, Tensors: want}
	mem.Release()
	if mem.Tensors == nil {
		t.Error("Release dropped the tensors of a checkpoint it cannot reload")
	}
}
