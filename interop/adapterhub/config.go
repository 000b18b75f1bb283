// Package adapterhub reads and writes the folder AdapterHub's `adapters`
// library (version 1.3.0, the layout of its loading.py and utils.py)
// writes with model.save_adapter(dir, name) on a model with a prediction
// head of the same name:
//
//	adapter_config.json     {"config": BnConfig as a dict, "hidden_size",
//	                         "model_class", "model_name", "model_type",
//	                         "name", "version"}
//	adapter.safetensors     the adapter weights (use_safetensors=True), or
//	pytorch_adapter.bin     the same as a torch.save zip (read only through
//	                        interop/torchzip's restricted unpickler)
//	head_config.json        {"config": the head's config, ...}
//	model_head.safetensors  the head weights, or pytorch_model_head.bin
//
// with AdapterHub's tensor names, e.g.
// "bert.encoder.layer.3.attention.output.adapters.NAME.adapter_down.0.weight"
// and "heads.NAME.1.weight". What AdapterHub cannot represent travels in a
// side file, houlsby_side.safetensors: the base model's LayerNorms trained
// with the adapter (as Houlsby et al. do) under this project's names, and,
// in its metadata, this project's description of the adapter (format,
// strategy, head, labels, base-model fingerprint), which Load checks and
// uses. docs/interop.md has the Python lines that apply the side file.
package adapterhub

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// File names in an AdapterHub folder (adapters 1.3.0, utils.py), and ours.
const (
	ConfigFile           = "adapter_config.json"
	WeightsFile          = "adapter.safetensors"
	TorchWeightsFile     = "pytorch_adapter.bin"
	HeadConfigFile       = "head_config.json"
	HeadWeightsFile      = "model_head.safetensors"
	TorchHeadWeightsFile = "pytorch_model_head.bin"
	// SideFile holds what AdapterHub cannot (see the package comment).
	SideFile = "houlsby_side.safetensors"
	// ReadmeFile says, in the folder itself, what the side file holds.
	ReadmeFile = "README.md"
)

// Version is the adapters version whose layout this package writes; it goes
// into the "version" field AdapterHub's loader reads.
const Version = "adapters.1.3.0"

// maxJSON bounds a config file (they are about 1 kB).
const maxJSON = 1 << 20

// folderConfig is adapter_config.json or head_config.json: the module's
// config and AdapterHub's meta fields.
type folderConfig struct {
	Config     map[string]json.RawMessage `json:"config"`
	HiddenSize int                        `json:"hidden_size"`
	ModelClass string                     `json:"model_class,omitempty"`
	ModelName  string                     `json:"model_name,omitempty"`
	ModelType  string                     `json:"model_type,omitempty"`
	Name       string                     `json:"name"`
	Version    string                     `json:"version,omitempty"`
	// SideNote, written only when a side file holds tensors, points a
	// reader of the folder at it (AdapterHub ignores unknown top-level keys).
	SideNote string `json:"houlsby_side_file,omitempty"`
}

// bnConfig is the part of a BnConfig (adapters 1.3.0,
// configuration/adapter_config.py) that decides the computation, resolved
// from adapter_config.json.
type bnConfig struct {
	MHAdapter, OutputAdapter bool
	ReductionFactor          float64 // one factor for every layer
	NonLinearity             string  // relu, gelu or swish
	LeaveOut                 []int
	InitWeights              string
}

// bnDefaults are BnConfig's fields with DoubleSeqBnConfig's values as
// save_adapter writes them (adapters 1.3.0), in its key order (sorted).
// Export writes these with the adapter's own values in their place.
func bnDefaults() map[string]any {
	return map[string]any{
		"adapter_residual_before_ln": false, "cross_adapter": false, "dropout": pyFloat(0),
		"factorized_phm_W": true, "factorized_phm_rule": false, "hypercomplex_nonlinearity": "glorot-uniform",
		"init_weights": "bert", "init_weights_seed": nil, "inv_adapter": nil, "inv_adapter_reduction_factor": nil,
		"is_parallel": false, "learn_phm": true, "leave_out": []int{}, "ln_after": false, "ln_before": false,
		"mh_adapter": true, "non_linearity": "swish", "original_ln_after": true, "original_ln_before": false,
		"output_adapter": true, "phm_bias": true, "phm_c_init": "normal", "phm_dim": 4, "phm_init_range": pyFloat(0.0001),
		"phm_layer": false, "phm_rank": 1, "reduction_factor": 16, "residual_before_ln": true, "scaling": pyFloat(1),
		"shared_W_phm": false, "shared_phm_rule": true, "stochastic_depth": pyFloat(0), "use_gating": false,
	}
}

// pyFloat is a float that JSON-encodes as Python's json does, with a
// decimal point ("1.0", not "1"): AdapterHub tells a float scaling factor
// from a string one with isinstance(x, float), and an integer 1 fails.
type pyFloat float64

// MarshalJSON writes f the way Python's json module does for finite floats.
func (f pyFloat) MarshalJSON() ([]byte, error) {
	s := strconv.FormatFloat(float64(f), 'g', -1, 64)
	if !strings.ContainsAny(s, ".eEn") { // n: NaN, Inf (refused by json anyway)
		s += ".0"
	}
	return []byte(s), nil
}

// bnRequired are the keys whose value must be exactly this (JSON) for the
// adapter to compute what model.Model computes: a sequential bottleneck on
// the sublayer output before the pretrained residual add and LayerNorm
// (original_ln_after, residual_before_ln; see model/adapters.go), no extra
// LayerNorms, no gating, scaling 1, plain linear layers.
var bnRequired = map[string]string{
	"original_ln_before": "false", "original_ln_after": "true", "residual_before_ln": "true",
	"ln_before": "false", "ln_after": "false", "is_parallel": "false", "use_gating": "false",
	"phm_layer": "false", "inv_adapter": "null", "stochastic_depth": "0",
}

// bnIgnored are keys that do not change the adapted model's outputs here:
// adapter dropout acts only in training; cross_adapter concerns decoders;
// adapter_residual_before_ln matters only with ln_after; the phm_* keys
// only with phm_layer; the init keys only for a fresh adapter.
var bnIgnored = map[string]bool{
	"dropout": true, "cross_adapter": true, "adapter_residual_before_ln": true, "inv_adapter_reduction_factor": true,
	"init_weights_seed": true, "factorized_phm_W": true, "factorized_phm_rule": true, "hypercomplex_nonlinearity": true,
	"learn_phm": true, "phm_bias": true, "phm_c_init": true, "phm_dim": true, "phm_init_range": true, "phm_rank": true,
	"shared_W_phm": true, "shared_phm_rule": true, "architecture": true,
}

// readFolderConfig reads adapter_config.json or head_config.json.
func readFolderConfig(path string) (*folderConfig, error) {
	b, err := readSmall(path)
	if err != nil {
		return nil, err
	}
	return parseFolderConfig(path, b)
}

// parseFolderConfig decodes a folder config; where names it in errors.
func parseFolderConfig(path string, b []byte) (*folderConfig, error) {
	var fc folderConfig
	if err := json.Unmarshal(b, &fc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if fc.Config == nil {
		return nil, fmt.Errorf("%s: no \"config\" object", path)
	}
	if fc.ModelType != "" && fc.ModelType != "bert" {
		return nil, fmt.Errorf("%s: model_type %q: only BERT encoders are read", path, fc.ModelType)
	}
	if !validName(fc.Name) {
		return nil, fmt.Errorf("%s: name %q: want letters, digits, '_' or '-'", path, fc.Name)
	}
	return &fc, nil
}

func readSmall(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Size() > maxJSON {
		return nil, fmt.Errorf("%s: %d bytes, more than a config file's %d", path, st.Size(), maxJSON)
	}
	return os.ReadFile(path)
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,100}$`)

// validName: AdapterHub names become torch ModuleDict keys (no '.') and
// parts of tensor names.
func validName(s string) bool { return nameRE.MatchString(s) }

// parseBn resolves an adapter_config.json "config" for a model with
// hidden size d and numLayers layers. where names the file in errors.
func parseBn(where string, raw map[string]json.RawMessage, d, numLayers int) (bnConfig, error) {
	var c bnConfig
	var keys []string
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	str := func(k string) string { return strings.TrimSpace(string(raw[k])) }
	for _, k := range keys {
		v := str(k)
		switch {
		case k == "architecture":
			if v != "null" && v != `"bottleneck"` {
				return c, fmt.Errorf("%s: architecture %s: only bottleneck adapters (BnConfig) are read", where, v)
			}
		case bnRequired[k] != "":
			if !jsonEqual(v, bnRequired[k]) {
				return c, fmt.Errorf("%s: config.%s = %s: only %s is read (it changes where or how the adapter computes, which model.Model does not represent)", where, k, v, bnRequired[k])
			}
		case k == "scaling":
			var f float64
			if json.Unmarshal(raw[k], &f) != nil || f != 1 {
				return c, fmt.Errorf("%s: config.scaling = %s: only 1.0 is read", where, v)
			}
		case k == "mh_adapter", k == "output_adapter":
			var b bool
			if err := json.Unmarshal(raw[k], &b); err != nil {
				return c, fmt.Errorf("%s: config.%s: %w", where, k, err)
			}
			if k == "mh_adapter" {
				c.MHAdapter = b
			} else {
				c.OutputAdapter = b
			}
		case k == "non_linearity":
			var s string
			if err := json.Unmarshal(raw[k], &s); err != nil {
				return c, fmt.Errorf("%s: config.non_linearity: %w", where, err)
			}
			// AdapterHub lower-cases it and asks transformers' get_activation:
			// "gelu" is the exact erf GELU, "swish" and "silu" are x·σ(x).
			switch s = strings.ToLower(s); s {
			case "relu", "gelu", "swish":
			case "silu":
				s = "swish"
			default:
				return c, fmt.Errorf("%s: config.non_linearity = %q: only relu, gelu (exact) and swish/silu are read", where, s)
			}
			c.NonLinearity = s
		case k == "reduction_factor":
			rf, err := reductionFactor(raw[k], numLayers)
			if err != nil {
				return c, fmt.Errorf("%s: config.reduction_factor: %w", where, err)
			}
			c.ReductionFactor = rf
		case k == "leave_out":
			if err := json.Unmarshal(raw[k], &c.LeaveOut); err != nil {
				return c, fmt.Errorf("%s: config.leave_out: %w", where, err)
			}
			for _, l := range c.LeaveOut {
				if l < 0 || l >= numLayers {
					return c, fmt.Errorf("%s: config.leave_out: layer %d out of range [0, %d)", where, l, numLayers)
				}
			}
		case k == "init_weights":
			_ = json.Unmarshal(raw[k], &c.InitWeights)
		case bnIgnored[k]:
		default:
			return c, fmt.Errorf("%s: config.%s: unknown key (written by a newer adapters version?); refusing rather than ignoring it", where, k)
		}
	}
	for _, k := range []string{"mh_adapter", "output_adapter", "non_linearity", "reduction_factor"} {
		if _, ok := raw[k]; !ok {
			return c, fmt.Errorf("%s: config.%s missing", where, k)
		}
	}
	if !c.MHAdapter && !c.OutputAdapter {
		return c, fmt.Errorf("%s: config has neither mh_adapter nor output_adapter", where)
	}
	left := map[int]bool{}
	for _, l := range c.LeaveOut {
		left[l] = true
	}
	if len(left) == numLayers {
		return c, fmt.Errorf("%s: config.leave_out lists every layer: the adapter has no modules", where)
	}
	return c, nil
}

// jsonEqual compares two JSON scalars by value (0 and 0.0 are equal).
func jsonEqual(a, b string) bool {
	if a == b {
		return true
	}
	fa, ea := strconv.ParseFloat(a, 64)
	fb, eb := strconv.ParseFloat(b, 64)
	return ea == nil && eb == nil && fa == fb
}

// reductionFactor reads a number, or a mapping from layer ids (and
// "default") to numbers that gives every layer the same factor.
func reductionFactor(raw json.RawMessage, numLayers int) (float64, error) {
	var f float64
	if json.Unmarshal(raw, &f) == nil {
		if !(f > 0) || math.IsInf(f, 0) {
			return 0, fmt.Errorf("%v: must be positive", f)
		}
		return f, nil
	}
	var m map[string]float64
	if err := json.Unmarshal(raw, &m); err != nil {
		return 0, fmt.Errorf("want a number or a mapping of numbers: %w", err)
	}
	f = 0
	for l := 0; l < numLayers; l++ {
		v, ok := m[strconv.Itoa(l)]
		if !ok {
			v, ok = m["default"]
		}
		if !ok {
			return 0, fmt.Errorf("no factor for layer %d and no default", l)
		}
		if f != 0 && v != f {
			return 0, fmt.Errorf("per-layer factors differ (%g, %g): model.Model has one bottleneck size", f, v)
		}
		f = v
	}
	if !(f > 0) {
		return 0, fmt.Errorf("%v: must be positive", f)
	}
	return f, nil
}

// downSample is AdapterHub's bottleneck size for hidden size d and
// reduction factor rf: int(d // rf) (methods/bottleneck.py), with Python's
// float floor division (CPython's float_floor_div: fmod, then a rounded
// quotient, then floor).
func downSample(d int, rf float64) int {
	x := float64(d)
	mod := math.Mod(x, rf)
	div := (x - mod) / rf
	if mod != 0 && (rf < 0) != (mod < 0) {
		div--
	}
	fl := math.Floor(div)
	if div-fl > 0.5 {
		fl++
	}
	if fl < 1 {
		return 1 // AdapterHub: "ensure that the down sample size is at least 1"
	}
	return int(fl)
}

// headConfig is head_config.json's "config" of a classification head
// (adapters 1.3.0, heads/base.py ClassificationHead).
type headConfig struct {
	HeadType           string         `json:"head_type"`
	NumLabels          int            `json:"num_labels"`
	Layers             int            `json:"layers"`
	ActivationFunction *string        `json:"activation_function"`
	Label2ID           map[string]int `json:"label2id"`
	UsePooler          bool           `json:"use_pooler"`
	Bias               *bool          `json:"bias"`
	DropoutProb        *float64       `json:"dropout_prob"`
}

// parseHead reads and checks a head config.
func parseHead(where string, raw map[string]json.RawMessage) (headConfig, []string, error) {
	var h headConfig
	b, _ := json.Marshal(raw)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return h, nil, fmt.Errorf("%s: config: %w (only classification heads are read)", where, err)
	}
	switch {
	case h.HeadType != "classification":
		return h, nil, fmt.Errorf("%s: head_type %q: only \"classification\" heads (sequence classification and regression) are read", where, h.HeadType)
	case h.NumLabels < 1:
		return h, nil, fmt.Errorf("%s: num_labels = %d", where, h.NumLabels)
	case h.Layers != 1 && h.Layers != 2:
		return h, nil, fmt.Errorf("%s: layers = %d: model.Model has heads of 1 layer (on [CLS] or the pooler) or 2 (dense + tanh on [CLS])", where, h.Layers)
	case h.Bias != nil && !*h.Bias:
		return h, nil, fmt.Errorf("%s: bias = false: the classifier of model.Model has a bias", where)
	case h.Layers == 2 && (h.ActivationFunction == nil || strings.ToLower(*h.ActivationFunction) != "tanh"):
		return h, nil, fmt.Errorf("%s: a 2-layer head with activation %v: only tanh is read", where, deref(h.ActivationFunction))
	case h.Layers == 2 && h.UsePooler:
		return h, nil, fmt.Errorf("%s: a 2-layer head on the pooler output (use_pooler = true): model.Model has no dense layer after the pooler", where)
	}
	var labels []string
	if h.NumLabels > 1 {
		labels = make([]string, h.NumLabels)
		for i := range labels {
			labels[i] = "LABEL_" + strconv.Itoa(i) // transformers' default names
		}
		seen := map[int]bool{}
		for name, id := range h.Label2ID {
			if id < 0 || id >= h.NumLabels || seen[id] {
				return h, nil, fmt.Errorf("%s: label2id %q -> %d: ids must be distinct in [0, %d)", where, name, id, h.NumLabels)
			}
			seen[id] = true
			labels[id] = name
		}
	}
	return h, labels, nil
}

func deref(s *string) string {
	if s == nil {
		return "null"
	}
	return strconv.Quote(*s)
}
