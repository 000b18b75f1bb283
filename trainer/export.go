package trainer

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/houlsby/adapters/adapter"
	"github.com/houlsby/adapters/internal/atomicfile"
	"github.com/houlsby/adapters/model"
	"github.com/houlsby/adapters/model/safetensors"
)

// HFModelDirName is the folder in output.dir that a run with strategy full
// writes: a complete Hugging Face BertForSequenceClassification model.
const HFModelDirName = "hf-model"

// hfCopiedFiles are the tokenizer files copied from the base model folder
// into an exported folder when present (AutoTokenizer reads them).
var hfCopiedFiles = []string{"vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}

// CanExportHF reports why f cannot be written as a plain Hugging Face
// BertForSequenceClassification (nil when it can): the adapters strategy
// inserts layers that class does not have, and only the "pooler" head is
// BertForSequenceClassification's (pooler, dropout, classifier).
func CanExportHF(f *adapter.File) error {
	if f.Strategy.UsesAdapters() || f.Adapter != nil {
		return fmt.Errorf("export: strategy %q inserts bottleneck adapters, which BertForSequenceClassification cannot represent; only the strategies without adapters (full, head, layernorm, top_k, bitfit) export to a Hugging Face folder", f.Strategy.Name)
	}
	if f.Head.Kind != adapter.HeadPooler {
		return fmt.Errorf("export: head %q is not BertForSequenceClassification's (only %q is)", f.Head.Kind, adapter.HeadPooler)
	}
	return nil
}

// ExportHF writes dir as a Hugging Face model folder that
// BertForSequenceClassification.from_pretrained loads: config.json (the base
// model's config.json with architectures, num_labels, id2label, label2id and
// problem_type set), model.safetensors (the base tensors of ck with f's
// trained tensors in their place, under "bert."-prefixed names, plus
// classifier.weight / classifier.bias; F32, metadata format=pt) and the
// tokenizer files of the base folder that exist (hfCopiedFiles). The folder
// is built in a temporary sibling and renamed into place, so dir is either
// the old folder or the complete new one; an existing dir is replaced.
func ExportHF(dir string, ck *model.Checkpoint, f *adapter.File) error {
	if err := CanExportHF(f); err != nil {
		return err
	}
	if err := ck.EnsureTensors(); err != nil {
		return err
	}
	if f.BaseFingerprint != "" && f.BaseFingerprint != ck.Fingerprint {
		return fmt.Errorf("export: the trained tensors were made for base model %s, not %s (%s)", f.BaseFingerprint, ck.Fingerprint, ck.Dir)
	}
	cfgOut, err := hfConfig(ck, f)
	if err != nil {
		return err
	}
	ts, err := hfTensors(ck, f)
	if err != nil {
		return err
	}
	return writeHFFolder(dir, ck.Dir, cfgOut, ts)
}

// hfConfig is the exported config.json: the base model's with the task's
// architecture, labels and problem type.
func hfConfig(ck *model.Checkpoint, f *adapter.File) ([]byte, error) {
	cfgPath := filepath.Join(ck.Dir, model.ConfigFile)
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		return nil, fmt.Errorf("export: base config: %w", err)
	}
	// A generic map keeps every key of the base config (transformers keeps
	// unknown keys too), so the exported model differs only in what we set.
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("export: %s: %w", cfgPath, err)
	}
	V := f.Head.NumLabels
	id2label, label2id := map[string]string{}, map[string]int{}
	for i := 0; i < V; i++ {
		name := "LABEL_" + strconv.Itoa(i) // transformers' default names
		if i < len(f.Labels) {
			name = f.Labels[i]
		}
		id2label[strconv.Itoa(i)] = name
		label2id[name] = i
	}
	cfg["architectures"] = []string{"BertForSequenceClassification"}
	cfg["num_labels"] = V
	cfg["id2label"] = id2label
	cfg["label2id"] = label2id
	cfg["problem_type"] = "single_label_classification"
	if V == 1 {
		cfg["problem_type"] = "regression"
	}
	cfgOut, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("export: config.json: %w", err)
	}

	return cfgOut, nil
}

// hfTensors is the exported model.safetensors' content: the base tensors
// with the trained ones in their place ("bert."-prefixed) and the
// classifier.
func hfTensors(ck *model.Checkpoint, f *adapter.File) ([]safetensors.NamedTensor, error) {
	V := f.Head.NumLabels
	// Tensors: the base, overridden by the trained ones (which carry the
	// classifier and, for a base without a pooler, the created pooler).
	trained := map[string]adapter.Tensor{}
	for _, t := range f.Tensors {
		trained[t.Name] = t
	}
	withPooler := ck.HasPooler
	if _, ok := trained[model.NamePoolerWeight]; ok {
		withPooler = true
	}
	var ts []safetensors.NamedTensor
	used := 0
	for _, s := range model.ExpectedTensors(ck.Config, withPooler) {
		var shape []int
		var data []float32
		if t, ok := trained[s.Name]; ok {
			shape, data = t.Shape, t.Data
			used++
		} else if h, ok := ck.Tensors[s.Name]; ok {
			shape, data = h.Shape, h.Data
		} else {
			return nil, fmt.Errorf("export: neither the base %s nor the trained tensors hold %s", ck.Dir, s.Name)
		}
		if fmt.Sprint(shape) != fmt.Sprint(s.Shape) || len(data) != s.NumElements() {
			return nil, fmt.Errorf("export: %s has shape %v (%d values), want %v", s.Name, shape, len(data), s.Shape)
		}
		ts = append(ts, safetensors.F32Tensor("bert."+s.Name, s.Shape, data))
	}
	C := ck.Config.HiddenSize
	for _, c := range []struct {
		name  string
		shape []int
		n     int
	}{{model.NameClassifierWeight, []int{V, C}, V * C}, {model.NameClassifierBias, []int{V}, V}} {
		t, ok := trained[c.name]
		if !ok {
			return nil, fmt.Errorf("export: the trained tensors lack %s", c.name)
		}
		if fmt.Sprint(t.Shape) != fmt.Sprint(c.shape) || len(t.Data) != c.n {
			return nil, fmt.Errorf("export: %s has shape %v, want %v", c.name, t.Shape, c.shape)
		}
		ts = append(ts, safetensors.F32Tensor(c.name, c.shape, t.Data))
		used++
	}
	if used != len(f.Tensors) {
		return nil, fmt.Errorf("export: %d of the %d trained tensors have no place in BertForSequenceClassification", len(f.Tensors)-used, len(f.Tensors))
	}

	return ts, nil
}

// writeHFFolder writes config.json, model.safetensors and the tokenizer
// files of the base folder baseDir into a temporary sibling of dir, then
// renames it into place.
func writeHFFolder(dir, baseDir string, cfgOut []byte, ts []safetensors.NamedTensor) error {
	err := atomicfile.WriteDir(dir, func(tmp string) error {
		if err := writeFileSync(filepath.Join(tmp, model.ConfigFile), append(cfgOut, '\n')); err != nil {
			return err
		}
		// transformers refuses safetensors whose metadata format is not pt/tf/flax/mlx.
		if err := safetensors.Write(filepath.Join(tmp, model.WeightsFile), ts, map[string]string{"format": "pt"}); err != nil {
			return err
		}
		for _, name := range hfCopiedFiles {
			if err := copyFileSync(filepath.Join(tmp, name), filepath.Join(baseDir, name)); err != nil {
				if os.IsNotExist(err) {
					continue
				}
				return fmt.Errorf("copying %s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// writeFileSync writes data to a new file at path and fsyncs it.
func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// copyFileSync copies src to a new file dst and fsyncs it; a missing src
// gives an error for which os.IsNotExist is true.
func copyFileSync(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
