package model

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/houlsby/adapters/model/safetensors"
)

// Files of a Hugging Face model folder.
const (
	ConfigFile            = "config.json"
	WeightsFile           = "model.safetensors"
	WeightsIndexFile      = "model.safetensors.index.json"
	VocabFile             = "vocab.txt"
	TokenizerFile         = "tokenizer.json"
	positionIDsBufferName = "embeddings.position_ids" // a non-parameter buffer; ignored
)

// taskHeadPrefixes are canonical-name prefixes of task heads that BERT task
// models put next to the encoder (BertForPreTraining: cls.*;
// BertFor{Sequence,Token}Classification / MultipleChoice: classifier.*;
// BertForQuestionAnswering: qa_outputs.*). They are skipped and reported.
var taskHeadPrefixes = []string{"cls.", "classifier.", "qa_outputs."}

// HostTensor is a float32 tensor in host memory, row-major.
type HostTensor struct {
	Shape []int
	Data  []float32
}

// TensorSource says where a loaded tensor came from.
type TensorSource struct {
	File  string            // base name of the safetensors file
	Key   string            // the key in that file (may carry "bert." or "gamma")
	DType safetensors.DType // the stored dtype (converted to float32 on load)
	Shape []int             // the stored shape
}

// Checkpoint is a pretrained BERT encoder loaded into host memory.
type Checkpoint struct {
	// Dir is the model folder; vocab.txt and tokenizer.json live there
	// (VocabPath, TokenizerPath).
	Dir    string
	Config Config
	// Tensors holds every encoder tensor under its canonical name (see
	// ExpectedTensors), converted to float32.
	Tensors map[string]HostTensor
	// HasPooler is false when the checkpoint has no pooler.dense tensors.
	HasPooler bool
	// Fingerprint identifies the base model for adapter files: the sha256
	// (hex) of, in order, a version line, the config essentials (model_type,
	// vocab/hidden/layers/heads/intermediate sizes, hidden_act, max positions,
	// type vocab, layer_norm_eps), and for every loaded tensor in
	// ExpectedTensors order its canonical name, its shape, and its values as
	// little-endian float32 bytes AFTER conversion to float32. So it does not
	// depend on the storage dtype of an exactly representable weight, on
	// sharding, on "bert."/gamma naming, on tensor order in the file, on
	// ignored task heads or on __metadata__; it changes with any weight bit.
	Fingerprint string
	// Ignored lists the file keys of task-head tensors that were skipped
	// (cls.*, classifier.*, qa_outputs.*), sorted.
	Ignored []string
	// Files lists the safetensors files read, base names in read order.
	Files []string
	// Sources maps each canonical name in Tensors to where it was read from.
	Sources map[string]TensorSource

	released  bool // Release dropped Tensors; EnsureTensors reads them again
	numParams int  // NumParams at Release
}

// Release drops the host copy of the tensors (Tensors becomes nil) once a
// model holds them, so their memory can return to the system: the base
// model's size again, on top of the model's own copy, for nothing.
// EnsureTensors, which model.New and the exporters call, reads them again
// from Dir. A checkpoint not loaded from a folder keeps its tensors.
func (c *Checkpoint) Release() {
	if c.Dir == "" || c.Tensors == nil {
		return
	}
	c.numParams = c.NumParams()
	c.Tensors, c.released = nil, true
}

// EnsureTensors reloads the tensors after Release from Dir, and fails if
// the folder no longer holds the same weights (fingerprint). Without a
// Release it does nothing.
func (c *Checkpoint) EnsureTensors() error {
	if !c.released {
		return nil
	}
	again, err := LoadCheckpoint(c.Dir)
	if err != nil {
		return fmt.Errorf("model: reloading the base model's released tensors: %w", err)
	}
	if again.Fingerprint != c.Fingerprint {
		return fmt.Errorf("model: %s changed since it was loaded: fingerprint %s, was %s", c.Dir, again.Fingerprint, c.Fingerprint)
	}
	c.Tensors, c.released = again.Tensors, false
	return nil
}

// VocabPath is the WordPiece vocabulary file of the model folder.
func (c *Checkpoint) VocabPath() string { return filepath.Join(c.Dir, VocabFile) }

// TokenizerPath is the tokenizers JSON file of the model folder.
func (c *Checkpoint) TokenizerPath() string { return filepath.Join(c.Dir, TokenizerFile) }

// NumParams is the number of loaded encoder parameters (pooler included when
// present).
func (c *Checkpoint) NumParams() int {
	if c.released {
		return c.numParams
	}
	n := 0
	for _, t := range c.Tensors {
		n += len(t.Data)
	}
	return n
}

// LoadCheckpoint loads a Hugging Face BERT folder: config.json, and the
// weights from model.safetensors or, when that is absent, from the shards
// listed in model.safetensors.index.json. Keys are mapped to canonical names
// (CanonicalTensorName); embeddings.position_ids is ignored; task heads are
// skipped and listed in Ignored; F32, F16 and BF16 are accepted. Every
// tensor's shape is checked against ExpectedTensors; a missing, unexpected,
// duplicated or misshapen tensor is an error naming the tensor and the file.
// The pooler is optional (both pooler.dense tensors or neither).
func LoadCheckpoint(dir string) (*Checkpoint, error) {
	cfg, err := LoadConfig(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, err
	}
	files, index, err := checkpointFiles(dir)
	if err != nil {
		return nil, err
	}
	ck := &Checkpoint{
		Dir:     dir,
		Config:  cfg,
		Tensors: map[string]HostTensor{},
		Sources: map[string]TensorSource{},
	}
	expected := map[string][]int{}
	for _, s := range ExpectedTensors(cfg, true) {
		expected[s.Name] = s.Shape
	}
	for _, file := range files {
		if err := ck.loadFile(filepath.Join(dir, file), file, index, expected); err != nil {
			return nil, err
		}
		ck.Files = append(ck.Files, file)
	}
	if index != nil {
		keys := make([]string, 0, len(index))
		for k := range index {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if !index[k].found {
				return nil, fmt.Errorf("model: %s: tensor %q is mapped to shard %s, which does not hold it", filepath.Join(dir, WeightsIndexFile), k, index[k].shard)
			}
		}
	}
	where := strings.Join(ck.Files, ", ")
	_, hasW := ck.Tensors[NamePoolerWeight]
	_, hasB := ck.Tensors[NamePoolerBias]
	if hasW != hasB {
		missing := NamePoolerBias
		if !hasW {
			missing = NamePoolerWeight
		}
		return nil, fmt.Errorf("model: %s: tensor %q is missing (a pooler needs both pooler.dense tensors) in %s", dir, missing, where)
	}
	ck.HasPooler = hasW
	for _, s := range ExpectedTensors(cfg, ck.HasPooler) {
		if _, ok := ck.Tensors[s.Name]; !ok {
			return nil, fmt.Errorf("model: %s: tensor %q %v is missing from %s", dir, s.Name, s.Shape, where)
		}
	}
	sort.Strings(ck.Ignored)
	ck.Fingerprint = fingerprint(cfg, ck.Tensors, ExpectedTensors(cfg, ck.HasPooler))
	return ck, nil
}

// shardEntry is one weight_map entry of a sharded checkpoint.
type shardEntry struct {
	shard string
	found bool
}

// checkpointFiles picks the weight files of dir: model.safetensors, or the
// shards of model.safetensors.index.json (then index maps each key to its
// shard).
func checkpointFiles(dir string) ([]string, map[string]*shardEntry, error) {
	single := filepath.Join(dir, WeightsFile)
	if _, err := os.Stat(single); err == nil {
		return []string{WeightsFile}, nil, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("model: %w", err)
	}
	ipath := filepath.Join(dir, WeightsIndexFile)
	b, err := os.ReadFile(ipath)
	if errors.Is(err, fs.ErrNotExist) {
		for _, other := range []string{"pytorch_model.bin", "tf_model.h5", "model.ckpt.index", "flax_model.msgpack"} {
			if _, err := os.Stat(filepath.Join(dir, other)); err == nil {
				return nil, nil, fmt.Errorf("model: %s: found %s, but only safetensors weights are supported (%s or %s); convert them with the safetensors library", dir, other, WeightsFile, WeightsIndexFile)
			}
		}
		return nil, nil, fmt.Errorf("model: %s: no %s or %s", dir, WeightsFile, WeightsIndexFile)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("model: %w", err)
	}
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, nil, fmt.Errorf("model: %s: %w", ipath, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, nil, fmt.Errorf("model: %s: field weight_map is empty or absent", ipath)
	}
	index := map[string]*shardEntry{}
	seen := map[string]bool{}
	var files []string
	for key, shard := range idx.WeightMap {
		if shard != filepath.Base(shard) || shard == "." || shard == ".." || !strings.HasSuffix(shard, ".safetensors") {
			return nil, nil, fmt.Errorf("model: %s: field weight_map[%q]: %q is not a .safetensors file name in the model folder", ipath, key, shard)
		}
		index[key] = &shardEntry{shard: shard}
		if !seen[shard] {
			seen[shard] = true
			files = append(files, shard)
		}
	}
	sort.Strings(files)
	return files, index, nil
}

// isTaskHead reports whether a canonical name belongs to a task head.
func isTaskHead(name string) bool {
	for _, p := range taskHeadPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// loadFile reads every tensor of one safetensors file into ck.
func (ck *Checkpoint) loadFile(path, base string, index map[string]*shardEntry, expected map[string][]int) error {
	f, err := safetensors.Open(path)
	if err != nil {
		return fmt.Errorf("model: %w", err)
	}
	defer f.Close()
	for _, key := range f.Names() {
		if index != nil {
			e, ok := index[key]
			if !ok {
				return fmt.Errorf("model: %s: tensor %q is not listed in %s", path, key, WeightsIndexFile)
			}
			if e.shard != base {
				return fmt.Errorf("model: %s: tensor %q is also here, but %s maps it to %s", path, key, WeightsIndexFile, e.shard)
			}
			e.found = true
		}
		name := CanonicalTensorName(key)
		if name == positionIDsBufferName {
			continue
		}
		if isTaskHead(name) {
			ck.Ignored = append(ck.Ignored, key)
			continue
		}
		shape, ok := expected[name]
		if !ok {
			return fmt.Errorf("model: %s: unexpected tensor %q (not part of a BERT encoder with this config, nor a known task head)", path, key)
		}
		if prev, dup := ck.Sources[name]; dup {
			return fmt.Errorf("model: %s: tensor %q is the same tensor as %q in %s (both map to %q)", path, key, prev.Key, prev.File, name)
		}
		info, _ := f.Info(key)
		if !ckptEqualShape(info.Shape, shape) {
			return fmt.Errorf("model: %s: tensor %q has shape %v, want %v for this config", path, key, info.Shape, shape)
		}
		switch info.DType {
		case safetensors.F32, safetensors.F16, safetensors.BF16:
		default:
			return fmt.Errorf("model: %s: tensor %q has dtype %s (only F32, F16, BF16 are accepted)", path, key, info.DType)
		}
		data, err := f.ReadFloat32(key)
		if err != nil {
			return fmt.Errorf("model: %w", err)
		}
		ck.Tensors[name] = HostTensor{Shape: append([]int(nil), shape...), Data: data}
		ck.Sources[name] = TensorSource{File: base, Key: key, DType: info.DType, Shape: info.Shape}
	}
	return nil
}

func ckptEqualShape(a, b []int) bool {
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

// fingerprintVersion starts the hashed stream; bump it if the recipe changes.
const fingerprintVersion = "houlsby-adapters bert-fingerprint v1\n"

// fingerprint implements the recipe documented on Checkpoint.Fingerprint.
func fingerprint(cfg Config, tensors map[string]HostTensor, specs []TensorSpec) string {
	h := sha256.New()
	fmt.Fprint(h, fingerprintVersion)
	fmt.Fprintf(h, "model_type=%s vocab_size=%d hidden_size=%d num_hidden_layers=%d num_attention_heads=%d intermediate_size=%d hidden_act=%s max_position_embeddings=%d type_vocab_size=%d layer_norm_eps=%016x\n",
		cfg.ModelType, cfg.VocabSize, cfg.HiddenSize, cfg.NumHiddenLayers, cfg.NumAttentionHeads,
		cfg.IntermediateSize, cfg.HiddenAct, cfg.MaxPositionEmbeddings, cfg.TypeVocabSize,
		math.Float64bits(cfg.LayerNormEps))
	buf := make([]byte, 1<<16)
	for _, s := range specs {
		t := tensors[s.Name]
		fmt.Fprintf(h, "%s %v %d\n", s.Name, t.Shape, len(t.Data))
		hashFloats(h, buf, t.Data)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// hashFloats writes data as little-endian float32 bytes through buf.
func hashFloats(h hash.Hash, buf []byte, data []float32) {
	for len(data) > 0 {
		n := min(len(data), len(buf)/4)
		for i, v := range data[:n] {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
		}
		h.Write(buf[:4*n])
		data = data[n:]
	}
}
