package adapter

import (
	"fmt"
	"strings"
)

// Preset names, the values of adapter.preset in a run's TOML file.
const (
	// PresetPaper is this project's default, faithful to Houlsby et al.
	// (2019) and their released code: m = 64, ReLU, W_up = b_up = 0 (the
	// adapter starts as the identity), two adapters per layer, every
	// LayerNorm trained with the adapters, BERT's pooler head.
	PresetPaper = "paper"
	// PresetAdapterHubHoulsby is AdapterHub's Houlsby configuration as
	// `adapters` 1.3.0 builds it: DoubleSeqBnConfig (reduction factor 16,
	// swish, init_weights "bert": W_down and W_up ~ N(0, 0.02²)), the base
	// model's LayerNorms frozen (train_adapter trains the adapter and the
	// head only), and add_classification_head's default head (HeadCLSDense:
	// dense + tanh on [CLS], then the classifier).
	PresetAdapterHubHoulsby = "adapterhub-houlsby"
)

// PresetNames lists the presets in the order the documentation shows them.
var PresetNames = []string{PresetPaper, PresetAdapterHubHoulsby}

// Preset is a named, complete adapter setup: the adapter configuration and
// the head kind it trains with. Training with it uses the strategy
// Strategy() returns.
type Preset struct {
	Name    string
	Adapter Config
	Head    string
}

// Strategy is the training strategy of p: adapters, with the LayerNorms
// trained as p.Adapter says.
func (p Preset) Strategy() Strategy {
	return Strategy{Name: StratAdapters, TrainLayerNorm: p.Adapter.TrainLayerNorm}
}

// LookupPreset returns the preset called name. Errors name the TOML key.
func LookupPreset(name string) (Preset, error) {
	switch name {
	case PresetPaper:
		c := Default()
		c.Preset = PresetPaper
		return Preset{Name: name, Adapter: c, Head: HeadPooler}, nil
	case PresetAdapterHubHoulsby:
		return Preset{Name: name, Head: HeadCLSDense, Adapter: Config{
			Preset:          PresetAdapterHubHoulsby,
			ReductionFactor: 16,
			NonLinearity:    "swish",
			Init:            InitBERT,
			Placement:       PlaceHoulsby,
			TrainLayerNorm:  false,
		}}, nil
	}
	return Preset{}, fmt.Errorf("adapter.preset = %q: want one of %s", name, strings.Join(PresetNames, ", "))
}
