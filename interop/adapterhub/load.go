package adapterhub

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"

	"github.com/houlsby/adapters/adapter"
	"github.com/houlsby/adapters/interop/torchzip"
	"github.com/houlsby/adapters/model"
	"github.com/houlsby/adapters/model/safetensors"
)

// IsFolder reports whether path is a folder holding adapter_config.json.
func IsFolder(path string) bool {
	st, err := os.Stat(path)
	if err != nil || !st.IsDir() {
		return false
	}
	_, err = os.Stat(filepath.Join(path, ConfigFile))
	return err == nil
}

// Load reads the AdapterHub folder dir as an adapter for the base
// checkpoint ck: the adapter (adapter_config.json and its weights), its
// prediction head (head_config.json and its weights; required: an adapter
// without a head cannot classify), and the side file when present (its
// LayerNorms and its description, checked against ck's fingerprint and
// against the AdapterHub files). Without a side file the base model can be
// checked only by shape (AdapterHub records no fingerprint), and the
// adapter is taken to have trained with the LayerNorms frozen, as
// AdapterHub's train_adapter does. Every error names the file at fault.
func Load(dir string, ck *model.Checkpoint) (*adapter.File, error) {
	cfg := ck.Config
	d, L := cfg.HiddenSize, cfg.NumHiddenLayers
	where := filepath.Join(dir, ConfigFile)
	fc, err := readFolderConfig(where)
	if err != nil {
		return nil, err
	}
	if fc.HiddenSize != 0 && fc.HiddenSize != d {
		return nil, fmt.Errorf("%s: hidden_size %d, but the base model %s has %d", where, fc.HiddenSize, ck.Dir, d)
	}
	bn, err := parseBn(where, fc.Config, d, L)
	if err != nil {
		return nil, err
	}
	ac := configFromBn(bn, d, L)
	headWhere := filepath.Join(dir, HeadConfigFile)
	if _, err := os.Stat(headWhere); err != nil {
		return nil, fmt.Errorf("%s: no %s: the adapter has no prediction head to classify with (save it from a model with a head of the same name: model.save_adapter(dir, name) with with_head=True)", dir, HeadConfigFile)
	}
	hfc, err := readFolderConfig(headWhere)
	if err != nil {
		return nil, err
	}
	if hfc.Name != fc.Name {
		return nil, fmt.Errorf("%s: head %q, but the adapter is %q", headWhere, hfc.Name, fc.Name)
	}
	hc, labels, err := parseHead(headWhere, hfc.Config)
	if err != nil {
		return nil, err
	}
	f := &adapter.File{
		Adapter: &ac, Strategy: adapter.Strategy{Name: adapter.StratAdapters}, Labels: labels,
		BaseFingerprint: ck.Fingerprint, Base: adapter.BaseOf(cfg), BaseHasPooler: ck.HasPooler,
		Head: adapter.Head{Kind: adapter.HeadCLS, NumLabels: hc.NumLabels},
	}
	switch {
	case hc.Layers == 2:
		f.Head.Kind = adapter.HeadCLSDense
	case hc.UsePooler && !ck.HasPooler:
		return nil, fmt.Errorf("%s: the head reads the pooler output (use_pooler), but the base model %s has no pooler weights (AdapterHub would use a random one)", headWhere, ck.Dir)
	case hc.UsePooler:
		f.Head.Kind = adapter.HeadPooler
	}
	adTensors, err := readWeights(dir, WeightsFile, TorchWeightsFile)
	if err != nil {
		return nil, err
	}
	for _, key := range adTensors.names {
		name, err := ourAdapterName(key, fc.Name, L)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", adTensors.path, err)
		}
		t := adTensors.tensors[key]
		f.Tensors = append(f.Tensors, adapter.Tensor{Name: name, Shape: t.Shape, Data: t.Data})
	}
	headTensors, err := readWeights(dir, HeadWeightsFile, TorchHeadWeightsFile)
	if err != nil {
		return nil, err
	}
	headNames := map[string]string{headHubName(fc.Name, 1, "weight"): model.NameClassifierWeight, headHubName(fc.Name, 1, "bias"): model.NameClassifierBias}
	if hc.Layers == 2 {
		headNames = map[string]string{
			headHubName(fc.Name, 1, "weight"): model.NameHeadDenseWeight, headHubName(fc.Name, 1, "bias"): model.NameHeadDenseBias,
			headHubName(fc.Name, 4, "weight"): model.NameClassifierWeight, headHubName(fc.Name, 4, "bias"): model.NameClassifierBias,
		}
	}
	for _, key := range headTensors.names {
		name, ok := headNames[key]
		if !ok {
			return nil, fmt.Errorf("%s: tensor %s is not a weight of the %d-layer head %q", headTensors.path, key, hc.Layers, fc.Name)
		}
		t := headTensors.tensors[key]
		f.Tensors = append(f.Tensors, adapter.Tensor{Name: name, Shape: t.Shape, Data: t.Data})
	}
	if err := applySide(dir, ck, f); err != nil {
		return nil, err
	}
	if err := f.Check("adapterhub folder " + dir); err != nil {
		return nil, err
	}
	exp, _ := f.Expected()
	pos := map[string]int{}
	for i, s := range exp {
		pos[s.Name] = i
	}
	sort.Slice(f.Tensors, func(i, j int) bool { return pos[f.Tensors[i].Name] < pos[f.Tensors[j].Name] })
	return f, nil
}

// configFromBn is our adapter config for a BnConfig: the placement, the
// bottleneck (as a reduction factor when it divides d, as AdapterHub
// counts), the nonlinearity, the adapted layers, LayerNorms frozen, and the
// "bert" initialisation when the config says so (it matters only for a
// fresh adapter; others are recorded as zero).
func configFromBn(bn bnConfig, d, numLayers int) adapter.Config {
	c := adapter.Config{NonLinearity: bn.NonLinearity, Init: adapter.InitZero, Placement: adapter.PlaceHoulsby}
	switch {
	case !bn.MHAdapter:
		c.Placement = adapter.PlaceFFN
	case !bn.OutputAdapter:
		c.Placement = adapter.PlaceAttention
	}
	if bn.InitWeights == "bert" {
		c.Init = adapter.InitBERT
	}
	m := downSample(d, bn.ReductionFactor)
	if rf := bn.ReductionFactor; rf == math.Trunc(rf) && d%int(rf) == 0 && d/int(rf) == m {
		c.ReductionFactor = int(rf)
	} else {
		c.Bottleneck = m
	}
	if len(bn.LeaveOut) > 0 {
		out := map[int]bool{}
		for _, l := range bn.LeaveOut {
			out[l] = true
		}
		for l := 0; l < numLayers; l++ {
			if !out[l] {
				c.Layers = append(c.Layers, l)
			}
		}
		if c.Layers == nil {
			c.Layers = []int{} // every layer left out: Resolve refuses it below
		}
	}
	return c
}

// weights is one weights file's tensors.
type weights struct {
	path    string
	names   []string
	tensors map[string]*torchzip.Tensor
}

// readWeights reads the safetensors file, or else the torch.save file.
func readWeights(dir, safe, torch string) (*weights, error) {
	p := filepath.Join(dir, safe)
	if _, err := os.Stat(p); err == nil {
		sf, err := safetensors.Open(p)
		if err != nil {
			return nil, err
		}
		defer sf.Close()
		w := &weights{path: p, names: sf.Names(), tensors: map[string]*torchzip.Tensor{}}
		for _, n := range w.names {
			info, _ := sf.Info(n)
			data, err := sf.ReadFloat32(n)
			if err != nil {
				return nil, err
			}
			w.tensors[n] = &torchzip.Tensor{Shape: append([]int(nil), info.Shape...), Data: data}
		}
		return w, nil
	}
	p2 := filepath.Join(dir, torch)
	sd, err := torchzip.ReadFile(p2)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: neither %s nor %s", dir, safe, torch)
	}
	if err != nil {
		return nil, err
	}
	return &weights{path: p2, names: sd.Names, tensors: sd.Tensors}, nil
}

// applySide reads the side file, when present: its description must agree
// with what the AdapterHub files say (and its fingerprint with ck); then it
// replaces f's description (our exact config, strategy and head kind) and
// adds its tensors (the trained LayerNorms).
func applySide(dir string, ck *model.Checkpoint, f *adapter.File) error {
	p := filepath.Join(dir, SideFile)
	if _, err := os.Stat(p); err != nil {
		return nil
	}
	sf, err := safetensors.Open(p)
	if err != nil {
		return err
	}
	defer sf.Close()
	where := "adapterhub side file " + p
	side, err := adapter.FromMetadata(where, sf.Metadata(), ck.Fingerprint)
	if err != nil {
		return err
	}
	if side.Adapter == nil || !side.Strategy.UsesAdapters() {
		return fmt.Errorf("%s: describes strategy %q without adapters", where, side.Strategy.Name)
	}
	// The AdapterHub files are what AdapterHub (and anyone editing the
	// folder) uses: the side file must describe the same computation.
	_, rHub, err1 := f.Plan().Resolve()
	_, rSide, err2 := side.Plan().Resolve()
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	if rHub.M != rSide.M || rHub.Act != rSide.Act || rHub.Attention != rSide.Attention || rHub.FFN != rSide.FFN ||
		fmt.Sprint(rHub.Layers) != fmt.Sprint(rSide.Layers) {
		return fmt.Errorf("%s: describes adapters (m %d, %v, attention %v, ffn %v, layers %v) other than %s's (m %d, %v, attention %v, ffn %v, layers %v)",
			where, rSide.M, rSide.Act, rSide.Attention, rSide.FFN, rSide.Layers, ConfigFile, rHub.M, rHub.Act, rHub.Attention, rHub.FFN, rHub.Layers)
	}
	if side.Head.NumLabels != f.Head.NumLabels || fmt.Sprint(side.Labels) != fmt.Sprint(f.Labels) && len(side.Labels) > 0 {
		return fmt.Errorf("%s: head of %d labels %v, %s says %d labels %v", where, side.Head.NumLabels, side.Labels, HeadConfigFile, f.Head.NumLabels, f.Labels)
	}
	sameHead := side.Head.Kind == f.Head.Kind ||
		// Export writes BERT's pooler head over a created pooler as a
		// 2-layer head (the same computation); the side file restores it.
		side.Head.Kind == adapter.HeadPooler && !ck.HasPooler && f.Head.Kind == adapter.HeadCLSDense
	if !sameHead {
		return fmt.Errorf("%s: head %q, but %s describes a %q head", where, side.Head.Kind, HeadConfigFile, f.Head.Kind)
	}
	if side.Head.Kind != f.Head.Kind {
		for i, t := range f.Tensors {
			switch t.Name {
			case model.NameHeadDenseWeight:
				f.Tensors[i].Name = model.NamePoolerWeight
			case model.NameHeadDenseBias:
				f.Tensors[i].Name = model.NamePoolerBias
			}
		}
	}
	f.Adapter, f.Strategy, f.Head, f.Labels = side.Adapter, side.Strategy, side.Head, side.Labels
	for _, n := range sf.Names() {
		if !model.IsLayerNorm(n) {
			return fmt.Errorf("%s: tensor %s: the side file holds only LayerNorms", where, n)
		}
		info, _ := sf.Info(n)
		data, err := sf.ReadFloat32(n)
		if err != nil {
			return err
		}
		f.Tensors = append(f.Tensors, adapter.Tensor{Name: n, Shape: append([]int(nil), info.Shape...), Data: data})
	}
	return nil
}
