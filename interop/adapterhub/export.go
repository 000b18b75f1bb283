package adapterhub

import (
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strings"

	"github.com/houlsby/adapters/adapter"
	"github.com/houlsby/adapters/internal/atomicfile"
	"github.com/houlsby/adapters/model"
	"github.com/houlsby/adapters/model/safetensors"
)

// ExportOptions name the exported adapter.
type ExportOptions struct {
	// Name is the adapter's (and its head's) name in AdapterHub: letters,
	// digits, '_' and '-' (it becomes part of module and tensor names).
	Name string
	// ModelName is recorded as the base model's name (AdapterHub writes the
	// name or path the model was loaded from); empty: "bert".
	ModelName string
}

// CanExport says why f cannot be written as an AdapterHub adapter (nil when
// it can). AdapterHub holds bottleneck adapters and a prediction head; a
// strategy that trains backbone weights, and a head AdapterHub has no
// equivalent of, are refused rather than dropped.
func CanExport(f *adapter.File) error {
	if !f.Strategy.UsesAdapters() || f.Adapter == nil {
		return fmt.Errorf("strategy %q trains backbone tensors, which an AdapterHub adapter cannot hold (it holds bottleneck adapters and a head); use --format hf or --format onnx", f.Strategy.Name)
	}
	if f.Head.Kind == adapter.HeadMean {
		return fmt.Errorf("head %q (mean pooling) has no AdapterHub equivalent: AdapterHub's classification head reads the [CLS] token or the pooler; use --format onnx, or train with model.head = pooler, cls or cls_dense", f.Head.Kind)
	}
	return nil
}

// Export writes f as an AdapterHub folder dir (see the package comment),
// replacing dir whole (atomicfile.WriteDir). Trained LayerNorms go into the
// side file; f's description goes into the side file's metadata.
func Export(dir string, f *adapter.File, o ExportOptions) error {
	if err := CanExport(f); err != nil {
		return fmt.Errorf("adapterhub export: %w", err)
	}
	if !validName(o.Name) {
		return fmt.Errorf("adapterhub export: name %q: want 1-100 letters, digits, '_' or '-' (it becomes part of AdapterHub's module names)", o.Name)
	}
	if o.ModelName == "" {
		o.ModelName = "bert"
	}
	if err := f.Check("adapterhub export"); err != nil {
		return err
	}
	p, r, err := f.Plan().Resolve()
	if err != nil {
		return fmt.Errorf("adapterhub export: %w", err)
	}
	d, L := f.Base.HiddenSize, f.Base.NumHiddenLayers
	bn, err := bnFor(f.Adapter, r, d, L)
	if err != nil {
		return fmt.Errorf("adapterhub export: %w", err)
	}
	meta := folderConfig{HiddenSize: d, ModelClass: "BertAdapterModel", ModelName: o.ModelName, ModelType: "bert", Name: o.Name, Version: Version}
	adapterTensors, headTensors, sideTensors := splitTensors(f, o.Name, p.Strategy.CreatedPooler)
	headCfg := headFor(f, p.Strategy.CreatedPooler)
	if len(sideTensors) > 0 {
		meta.SideNote = SideFile + " holds the base model's LayerNorms trained with this adapter; apply it (README.md) or the outputs differ"
	}
	adapterJSON, err := configJSON(meta, bn)
	if err != nil {
		return err
	}
	meta.SideNote = ""
	headJSON, err := configJSON(meta, headCfg)
	if err != nil {
		return err
	}
	sideMeta, err := f.Metadata()
	if err != nil {
		return fmt.Errorf("adapterhub export: %w", err)
	}
	sideMeta["adapterhub_name"] = o.Name
	err = atomicfile.WriteDir(dir, func(tmp string) error {
		for _, w := range []struct {
			name string
			data []byte
		}{{ConfigFile, adapterJSON}, {HeadConfigFile, headJSON}, {ReadmeFile, readme(f, o.Name, len(sideTensors) > 0)}} {
			if err := atomicfile.WriteFile(filepath.Join(tmp, w.name), w.data, 0o644); err != nil {
				return err
			}
		}
		for _, w := range []struct {
			name string
			ts   []safetensors.NamedTensor
			meta map[string]string
		}{{WeightsFile, adapterTensors, nil}, {HeadWeightsFile, headTensors, nil}, {SideFile, sideTensors, sideMeta}} {
			if err := safetensors.Write(filepath.Join(tmp, w.name), w.ts, w.meta); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("adapterhub export %s: %w", dir, err)
	}
	return nil
}

// bnFor is the BnConfig dict of our adapter config: DoubleSeqBnConfig's
// fields with the placement, size, nonlinearity and layers of r.
func bnFor(c *adapter.Config, r *model.AdapterOptions, d, numLayers int) (map[string]any, error) {
	bn := bnDefaults()
	bn["mh_adapter"], bn["output_adapter"] = r.Attention, r.FFN
	act := strings.ToLower(c.NonLinearity)
	if act == "" {
		act = "relu"
	}
	bn["non_linearity"] = act
	// AdapterHub stores a reduction factor and computes m = int(d // rf).
	// d/m in float64 can land just above the exact quotient (16 // 3.2 is 4
	// in Python): step down to the largest factor that gives m back.
	var rf float64
	if c.ReductionFactor > 0 {
		rf = float64(c.ReductionFactor)
		bn["reduction_factor"] = c.ReductionFactor
	} else {
		rf = float64(d) / float64(r.M)
		for i := 0; i < 64 && downSample(d, rf) != r.M; i++ {
			rf = math.Nextafter(rf, 0)
		}
		bn["reduction_factor"] = pyFloat(rf)
	}
	if m := downSample(d, rf); m != r.M {
		return nil, fmt.Errorf("bottleneck %d: no reduction factor near %g gives it back as int(%d // factor) (got %d)", r.M, float64(d)/float64(r.M), d, m)
	}
	in := map[int]bool{}
	for _, l := range r.Layers {
		in[l] = true
	}
	leave := []int{}
	for l := 0; l < numLayers; l++ {
		if !in[l] {
			leave = append(leave, l)
		}
	}
	bn["leave_out"] = leave
	return bn, nil
}

// headFor is the ClassificationHead config (adapters 1.3.0, heads/base.py)
// that computes f's head: BERT's pooler head on a checkpoint pooler is a
// 1-layer head on the pooler output; a created pooler and cls_dense are
// 2-layer heads (dense + tanh on [CLS]); cls is a 1-layer head on [CLS].
func headFor(f *adapter.File, createdPooler bool) map[string]any {
	layers, usePooler := 1, false
	switch f.Head.Kind {
	case adapter.HeadPooler:
		if createdPooler {
			layers = 2
		} else {
			usePooler = true
		}
	case adapter.HeadCLSDense:
		layers = 2
	}
	var label2id any
	if len(f.Labels) > 0 {
		m := map[string]int{}
		for i, l := range f.Labels {
			m[l] = i
		}
		label2id = m
	}
	return map[string]any{
		"activation_function": "tanh", "bias": true, "dropout_prob": nil, "head_type": "classification",
		"label2id": label2id, "layers": layers, "num_labels": f.Head.NumLabels, "use_pooler": usePooler,
	}
}

// splitTensors sorts f's tensors into AdapterHub's adapter weights, its
// head weights, and the side file (the trained LayerNorms).
func splitTensors(f *adapter.File, name string, createdPooler bool) (ad, head, side []safetensors.NamedTensor) {
	denseIdx, clsIdx := 1, 1
	if f.Head.Kind == adapter.HeadCLSDense || (f.Head.Kind == adapter.HeadPooler && createdPooler) {
		clsIdx = 4 // Dropout, Linear, Tanh, Dropout, Linear
	}
	for _, t := range f.Tensors {
		n := t.Name
		switch {
		case model.IsAdapter(n):
			l := model.LayerOf(n)
			ffn := strings.HasPrefix(n, model.AdapterPrefix(l, true))
			suffix := strings.TrimPrefix(strings.TrimPrefix(n, model.AdapterPrefix(l, true)), model.AdapterPrefix(l, false))
			ad = append(ad, safetensors.F32Tensor(adapterHubName(name, l, ffn, suffix), t.Shape, t.Data))
		case model.IsClassifier(n):
			head = append(head, safetensors.F32Tensor(headHubName(name, clsIdx, strings.TrimPrefix(n, "classifier.")), t.Shape, t.Data))
		case model.IsHeadDense(n):
			head = append(head, safetensors.F32Tensor(headHubName(name, denseIdx, strings.TrimPrefix(n, "head.dense.")), t.Shape, t.Data))
		case model.IsPooler(n): // a created pooler (CanExport: only adapters runs)
			head = append(head, safetensors.F32Tensor(headHubName(name, denseIdx, strings.TrimPrefix(n, "pooler.dense.")), t.Shape, t.Data))
		default: // LayerNorms
			side = append(side, safetensors.F32Tensor(n, t.Shape, t.Data))
		}
	}
	for _, ts := range [][]safetensors.NamedTensor{ad, head, side} {
		sort.Slice(ts, func(i, j int) bool { return ts[i].Name < ts[j].Name })
	}
	return ad, head, side
}

// configJSON writes a folder config as AdapterHub does (indent 2, sorted
// keys: json.Marshal sorts map keys).
func configJSON(meta folderConfig, cfg map[string]any) ([]byte, error) {
	m := map[string]any{
		"config": cfg, "hidden_size": meta.HiddenSize, "model_class": meta.ModelClass, "model_name": meta.ModelName,
		"model_type": meta.ModelType, "name": meta.Name, "version": meta.Version,
	}
	if meta.SideNote != "" {
		m["houlsby_side_file"] = meta.SideNote
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("adapterhub export: %w", err)
	}
	return b, nil
}

// readme explains the folder to someone who finds it without the docs.
func readme(f *adapter.File, name string, lnSide bool) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# AdapterHub adapter %q (written by train-gpu export --format adapterhub)\n\n", name)
	fmt.Fprintf(&b, "Load with the `adapters` library (1.3.0 layout):\n\n```python\n")
	fmt.Fprintf(&b, "from adapters import BertAdapterModel\nmodel = BertAdapterModel.from_pretrained(BASE_MODEL)\n")
	fmt.Fprintf(&b, "name = model.load_adapter(FOLDER, use_safetensors=True)  # adapter and head %q\nmodel.set_active_adapters(name)\n", name)
	if lnSide {
		fmt.Fprintf(&b, "\n# This adapter was trained with the base model's LayerNorms (Houlsby et al.);\n")
		fmt.Fprintf(&b, "# AdapterHub cannot hold them, so they are in %s. Apply them:\n", SideFile)
		fmt.Fprintf(&b, "from safetensors.torch import load_file\n")
		fmt.Fprintf(&b, "missing, unexpected = model.base_model.load_state_dict(load_file(FOLDER + \"/%s\"), strict=False)\n", SideFile)
		fmt.Fprintf(&b, "assert not unexpected, unexpected\n")
	}
	fmt.Fprintf(&b, "model.eval()\n```\n\n")
	fmt.Fprintf(&b, "%s also records train-gpu's description of the adapter (strategy %s, head %s, %d labels, base model %s) in its metadata; train-gpu reads the folder back exactly.\n",
		SideFile, f.Strategy.Name, f.Head.Kind, f.Head.NumLabels, f.BaseFingerprint)
	return []byte(b.String())
}
