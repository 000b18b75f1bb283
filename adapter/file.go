package adapter

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"

	"github.com/houlsby/adapters/model"
	"github.com/houlsby/adapters/model/safetensors"
)

// The adapter file is a safetensors file holding exactly the trained tensors
// (F32, Hugging Face names) and, in __metadata__, everything needed to
// rebuild the model around them. Metadata keys:
//
//	format                  "houlsby-adapter"
//	format_version          "1"
//	adapter_config          Config as JSON ("null" when the strategy has no adapters)
//	strategy                Strategy as JSON (name, top_k, train_layernorm)
//	head                    Head as JSON (kind, num_labels)
//	label_map               JSON array: label index -> label string ([] for regression)
//	base_model_fingerprint  the base checkpoint's fingerprint (model.Checkpoint.Fingerprint)
//	base_model_config       Base as JSON (hidden size, layers, ...)
//	base_has_pooler         "true" or "false"
const (
	// FormatName is the value of the "format" metadata key.
	FormatName = "houlsby-adapter"
	// FormatVersion is the newest format version this code reads and the one
	// it writes.
	FormatVersion = 1
)

// Tensor is one trained tensor in host memory.
type Tensor struct {
	Name  string
	Shape []int
	Data  []float32
}

// File is the content of an adapter file.
type File struct {
	// Adapter is the adapter config; nil when the strategy has no adapters.
	Adapter *Config
	// Strategy is the training strategy (NumLayers and CreatedPooler are
	// recomputed from Base and BaseHasPooler on load).
	Strategy Strategy
	// Head is the task head.
	Head Head
	// Labels maps class index to label string; empty for regression.
	Labels []string
	// BaseFingerprint identifies the base checkpoint the adapter belongs to.
	BaseFingerprint string
	// Base is the base model's shape; BaseHasPooler whether its checkpoint
	// has a pooler.
	Base          Base
	BaseHasPooler bool
	// Tensors are exactly the tensors the strategy trains.
	Tensors []Tensor
}

// NewFile describes, without tensors, what training on the base checkpoint
// ck keeps: strategy st, the adapter config a (kept only when st inserts
// adapters; its TrainLayerNorm follows st), head h and the class names
// (nil for regression).
func NewFile(ck *model.Checkpoint, st Strategy, a *Config, h Head, labels []string) *File {
	f := &File{Strategy: st, Head: h, Labels: labels, BaseFingerprint: ck.Fingerprint, Base: BaseOf(ck.Config), BaseHasPooler: ck.HasPooler}
	if st.UsesAdapters() && a != nil {
		c := *a
		c.TrainLayerNorm = st.TrainLayerNorm
		f.Adapter = &c
	}
	return f
}

// Plan rebuilds the Plan the file describes.
func (f *File) Plan() Plan {
	p := Plan{Base: f.Base, HasPooler: f.BaseHasPooler, Strategy: f.Strategy, Head: f.Head}
	if f.Adapter != nil {
		p.Adapter = *f.Adapter
	}
	return p
}

// Expected lists the tensors an adapter file for f's plan must hold: those
// the strategy trains, in Tensors order.
func (f *File) Expected() ([]model.TensorSpec, error) {
	p := f.Plan()
	if p.Strategy.UsesAdapters() && f.Adapter == nil {
		return nil, fmt.Errorf("strategy %q needs an adapter config", p.Strategy.Name)
	}
	specs, st, err := p.Tensors()
	if err != nil {
		return nil, err
	}
	var out []model.TensorSpec
	for _, s := range specs {
		if st.Trainable(s.Name) {
			out = append(out, s)
		}
	}
	return out, nil
}

// checkTensors compares the tensors against Expected; where names the file.
func (f *File) checkTensors(where string) error {
	exp, err := f.Expected()
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	want := map[string][]int{}
	for _, s := range exp {
		want[s.Name] = s.Shape
	}
	have := map[string]bool{}
	var unexpected []string
	for _, t := range f.Tensors {
		if have[t.Name] {
			return fmt.Errorf("%s: tensor %s appears twice", where, t.Name)
		}
		have[t.Name] = true
		shape, ok := want[t.Name]
		if !ok {
			unexpected = append(unexpected, t.Name)
			continue
		}
		if !equalShape(shape, t.Shape) {
			return fmt.Errorf("%s: tensor %s has shape %v, the config implies %v", where, t.Name, t.Shape, shape)
		}
		if n := shapeLen(t.Shape); n != len(t.Data) {
			return fmt.Errorf("%s: tensor %s has %d values for shape %v", where, t.Name, len(t.Data), t.Shape)
		}
	}
	var missing []string
	for _, s := range exp {
		if !have[s.Name] {
			missing = append(missing, s.Name)
		}
	}
	if len(unexpected) > 0 {
		sort.Strings(unexpected)
		return fmt.Errorf("%s: %d unexpected tensor(s) for strategy %q: %s", where, len(unexpected), f.Strategy.Name, listSome(unexpected))
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s: %d missing tensor(s) for strategy %q: %s", where, len(missing), f.Strategy.Name, listSome(missing))
	}
	return nil
}

func listSome(names []string) string {
	const max = 5
	if len(names) <= max {
		return fmt.Sprint(names)
	}
	return fmt.Sprintf("%v and %d more", names[:max], len(names)-max)
}

func shapeLen(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

func equalShape(a, b []int) bool {
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

func (f *File) checkLabels(where string) error {
	if f.Head.NumLabels == 1 && len(f.Labels) == 0 {
		return nil // regression
	}
	if len(f.Labels) != f.Head.NumLabels {
		return fmt.Errorf("%s: label_map has %d labels, head has %d outputs", where, len(f.Labels), f.Head.NumLabels)
	}
	seen := map[string]bool{}
	for _, l := range f.Labels {
		if seen[l] {
			return fmt.Errorf("%s: label %q appears twice in label_map", where, l)
		}
		seen[l] = true
	}
	return nil
}

// Save writes f to path atomically (temporary file, fsync, rename). It
// refuses a File whose tensors are not exactly those its strategy trains.
func Save(path string, f *File) error {
	if f.BaseFingerprint == "" {
		return fmt.Errorf("adapter file %s: empty base model fingerprint", path)
	}
	if err := f.checkTensors("adapter file " + path); err != nil {
		return err
	}
	if err := f.checkLabels("adapter file " + path); err != nil {
		return err
	}
	meta, err := f.Metadata()
	if err != nil {
		return fmt.Errorf("adapter file %s: %w", path, err)
	}
	ts := make([]safetensors.NamedTensor, len(f.Tensors))
	for i, t := range f.Tensors {
		ts[i] = safetensors.F32Tensor(t.Name, t.Shape, t.Data)
	}
	if err := safetensors.Write(path, ts, meta); err != nil {
		return fmt.Errorf("adapter file: %w", err)
	}
	return nil
}

// Metadata returns the __metadata__ map describing f (everything but the
// tensors). Checkpoints embed it too.
func (f *File) Metadata() (map[string]string, error) {
	js := func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	}
	labels := f.Labels
	if labels == nil {
		labels = []string{}
	}
	meta := map[string]string{
		"format":                 FormatName,
		"format_version":         strconv.Itoa(FormatVersion),
		"base_model_fingerprint": f.BaseFingerprint,
		"base_has_pooler":        strconv.FormatBool(f.BaseHasPooler),
	}
	for key, v := range map[string]any{
		"adapter_config": f.Adapter, "strategy": f.Strategy, "head": f.Head,
		"label_map": labels, "base_model_config": f.Base,
	} {
		s, err := js(v)
		if err != nil {
			return nil, fmt.Errorf("encoding %s: %w", key, err)
		}
		meta[key] = s
	}
	return meta, nil
}

// Load reads an adapter file. When expectFingerprint is not empty, a file
// made for another base model is refused. Files of a newer format version,
// other formats, and files whose tensors are not exactly those their
// strategy trains are refused too; every error names the file.
func Load(path, expectFingerprint string) (*File, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return nil, fmt.Errorf("adapter file %s is a folder: an AdapterHub folder loads with interop.LoadAdapter (train-gpu's --adapter takes both)", path)
	}
	sf, err := safetensors.Open(path)
	if err != nil {
		return nil, fmt.Errorf("adapter file: %w", err)
	}
	defer sf.Close()
	where := "adapter file " + path
	f, err := FromMetadata(where, sf.Metadata(), expectFingerprint)
	if err != nil {
		return nil, err
	}
	for _, name := range sf.Names() {
		info, _ := sf.Info(name)
		if info.DType != safetensors.F32 {
			return nil, fmt.Errorf("%s: tensor %s is %s, want F32", where, name, info.DType)
		}
		data, err := sf.ReadFloat32(name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		f.Tensors = append(f.Tensors, Tensor{Name: name, Shape: append([]int(nil), info.Shape...), Data: data})
	}
	if err := f.Check(where); err != nil {
		return nil, err
	}
	// Order tensors as the model lists them.
	exp, _ := f.Expected()
	pos := map[string]int{}
	for i, s := range exp {
		pos[s.Name] = i
	}
	sort.Slice(f.Tensors, func(i, j int) bool { return pos[f.Tensors[i].Name] < pos[f.Tensors[j].Name] })
	return f, nil
}

// FromMetadata decodes an adapter file's metadata (see Metadata) into a File
// without tensors. where names the file in errors. When expectFingerprint is
// not empty, metadata for another base model is refused.
func FromMetadata(where string, meta map[string]string, expectFingerprint string) (*File, error) {
	if got := meta["format"]; got != FormatName {
		return nil, fmt.Errorf("%s: metadata format = %q, want %q (not an adapter file)", where, got, FormatName)
	}
	v, err := strconv.Atoi(meta["format_version"])
	if err != nil || v < 1 {
		return nil, fmt.Errorf("%s: bad format_version %q", where, meta["format_version"])
	}
	if v > FormatVersion {
		return nil, fmt.Errorf("%s: format version %d is newer than this program reads (%d); upgrade train-gpu", where, v, FormatVersion)
	}
	f := &File{BaseFingerprint: meta["base_model_fingerprint"]}
	if expectFingerprint != "" && f.BaseFingerprint != expectFingerprint {
		return nil, fmt.Errorf("%s: made for base model %q, but the loaded base model is %q; use the base model the adapter was trained on", where, f.BaseFingerprint, expectFingerprint)
	}
	switch meta["base_has_pooler"] {
	case "true":
		f.BaseHasPooler = true
	case "false":
	default:
		return nil, fmt.Errorf("%s: metadata base_has_pooler = %q, want true or false", where, meta["base_has_pooler"])
	}
	for _, d := range []struct {
		key string
		dst any
	}{
		{"adapter_config", &f.Adapter}, {"strategy", &f.Strategy}, {"head", &f.Head},
		{"label_map", &f.Labels}, {"base_model_config", &f.Base},
	} {
		s, ok := meta[d.key]
		if !ok {
			return nil, fmt.Errorf("%s: metadata %s missing", where, d.key)
		}
		if err := json.Unmarshal([]byte(s), d.dst); err != nil {
			return nil, fmt.Errorf("%s: metadata %s: %w", where, d.key, err)
		}
	}
	return f, nil
}

// Check verifies the label map against the head and that the tensors are
// exactly those the strategy trains, with the right shapes.
func (f *File) Check(where string) error {
	if err := f.checkLabels(where); err != nil {
		return err
	}
	return f.checkTensors(where)
}
