// Package adapter holds everything about Houlsby bottleneck adapters that
// does not compute: the adapter configuration and its placement, the
// training strategies (which tensors of a BERT encoder train), parameter
// accounting, and the adapter file format.
//
// An adapter on a hidden state h (d wide) is
//
//	out = h + W_up·f(W_down·h + b_down) + b_up,   W_down (m, d), W_up (d, m)
//
// so it holds 2·d·m + d + m parameters (Houlsby et al., 2019, section 2.1;
// AdapterHub's DoubleSeqBnConfig gives the same count, see count_test.go).
//
// Tensor names follow Hugging Face BERT without the "bert." prefix, e.g.
// "encoder.layer.3.attention.output.adapter.down.weight" (see names.go).
package adapter

import (
	"fmt"
	"sort"

	"github.com/houlsby/adapters/backend"
	"github.com/houlsby/adapters/model"
)

// Placement values of Config.Placement.
const (
	// PlaceHoulsby puts one adapter after the attention output projection and
	// one after the feed-forward output projection of every adapted layer.
	PlaceHoulsby = "houlsby"
	// PlaceFFN puts one adapter after the feed-forward block only (Pfeiffer).
	PlaceFFN = "ffn"
	// PlaceAttention puts one adapter after the attention block only.
	PlaceAttention = "attention"
)

// Init values of Config.Init.
const (
	// InitZero starts W_up and b_up at zero: a fresh adapter is the identity.
	InitZero = model.InitZero
	// InitNearIdentity draws W_up from a truncated normal with std 1e-3 as
	// the original Houlsby code does, so the adapter is close to identity.
	InitNearIdentity = model.InitNearIdentity
	// InitBERT draws W_down and W_up from N(0, 0.02²), biases 0: AdapterHub's
	// default (init_weights = "bert").
	InitBERT = model.InitBERT
)

// Config is the adapter configuration, the [adapter] section of a run's TOML
// file. It is also stored (as JSON) in every adapter file.
type Config struct {
	// Preset names the setup this config was made from (see Presets):
	// "paper" or "adapterhub-houlsby"; empty when the keys were set one by
	// one. It is informational once the config is resolved: the preset's
	// values are in the fields below.
	Preset string `toml:"preset,omitempty" json:"preset,omitempty"`
	// Bottleneck is m, the adapter's inner width. Exactly one of Bottleneck
	// and ReductionFactor must be set.
	Bottleneck int `toml:"bottleneck" json:"bottleneck,omitempty"`
	// ReductionFactor gives m = d / ReductionFactor (d must divide evenly).
	ReductionFactor int `toml:"reduction_factor" json:"reduction_factor,omitempty"`
	// NonLinearity is f: relu (default), gelu or swish.
	NonLinearity string `toml:"non_linearity" json:"non_linearity"`
	// Init is zero (default), near_identity or bert.
	Init string `toml:"init" json:"init"`
	// Placement is houlsby (default), ffn or attention.
	Placement string `toml:"placement" json:"placement"`
	// Layers lists the 0-based layers that get adapters; empty means all
	// (unless TopLayers is set).
	Layers []int `toml:"layers" json:"layers,omitempty"`
	// TopLayers, when > 0, puts adapters in the top TopLayers layers only.
	// It cannot be combined with Layers.
	TopLayers int `toml:"top_layers" json:"top_layers,omitempty"`
	// TrainLayerNorm trains every LayerNorm of the encoder alongside the
	// adapters, as Houlsby et al. do (default true).
	TrainLayerNorm bool `toml:"train_layernorm" json:"train_layernorm"`
}

// Default returns the Houlsby configuration with m = 64: ReLU, zero init,
// two adapters per layer in every layer, LayerNorms trained.
func Default() Config {
	return Config{
		Bottleneck:     64,
		NonLinearity:   "relu",
		Init:           InitZero,
		Placement:      PlaceHoulsby,
		TrainLayerNorm: true,
	}
}

// Resolve validates c against a model with hidden size d and numLayers
// layers and returns the encoder's adapter options (Layers listed
// explicitly, Seed 0: the caller sets it). Errors name the offending field
// as it is spelled in the TOML file ("adapter.bottleneck", ...).
func (c Config) Resolve(d, numLayers int) (model.AdapterOptions, error) {
	var r model.AdapterOptions
	if d <= 0 || numLayers <= 0 {
		return r, fmt.Errorf("adapter: model has hidden size %d and %d layers", d, numLayers)
	}
	switch {
	case c.Bottleneck < 0:
		return r, fmt.Errorf("adapter.bottleneck = %d: must be positive", c.Bottleneck)
	case c.ReductionFactor < 0:
		return r, fmt.Errorf("adapter.reduction_factor = %d: must be positive", c.ReductionFactor)
	case c.Bottleneck > 0 && c.ReductionFactor > 0:
		return r, fmt.Errorf("adapter.bottleneck = %d and adapter.reduction_factor = %d: set only one", c.Bottleneck, c.ReductionFactor)
	case c.Bottleneck > 0:
		r.M = c.Bottleneck
	case c.ReductionFactor > 0:
		if d%c.ReductionFactor != 0 {
			return r, fmt.Errorf("adapter.reduction_factor = %d does not divide the hidden size %d", c.ReductionFactor, d)
		}
		r.M = d / c.ReductionFactor
	default:
		return r, fmt.Errorf("adapter.bottleneck: not set (set bottleneck or reduction_factor)")
	}
	if r.M > d {
		return r, fmt.Errorf("adapter.bottleneck = %d exceeds the hidden size %d", r.M, d)
	}
	act, err := backend.ParseAct(c.NonLinearity)
	if err != nil {
		return r, fmt.Errorf("adapter.non_linearity: %w", err)
	}
	r.Act = act
	switch c.Init {
	case "", InitZero:
		r.Init = model.InitZero
	case InitNearIdentity:
		r.Init = model.InitNearIdentity
	case InitBERT:
		r.Init = model.InitBERT
	default:
		return r, fmt.Errorf("adapter.init = %q: want %q, %q or %q", c.Init, InitZero, InitNearIdentity, InitBERT)
	}
	switch c.Placement {
	case "", PlaceHoulsby:
		r.Attention, r.FFN = true, true
	case PlaceFFN:
		r.FFN = true
	case PlaceAttention:
		r.Attention = true
	default:
		return r, fmt.Errorf("adapter.placement = %q: want houlsby, ffn or attention", c.Placement)
	}
	switch {
	case c.TopLayers < 0:
		return r, fmt.Errorf("adapter.top_layers = %d: must be positive", c.TopLayers)
	case c.TopLayers > 0 && len(c.Layers) > 0:
		return r, fmt.Errorf("adapter.top_layers and adapter.layers: set only one")
	case c.TopLayers > numLayers:
		return r, fmt.Errorf("adapter.top_layers = %d: the model has only %d layers", c.TopLayers, numLayers)
	case c.TopLayers > 0:
		for l := numLayers - c.TopLayers; l < numLayers; l++ {
			r.Layers = append(r.Layers, l)
		}
	case len(c.Layers) > 0:
		seen := map[int]bool{}
		for _, l := range c.Layers {
			if l < 0 || l >= numLayers {
				return r, fmt.Errorf("adapter.layers: layer %d out of range [0, %d)", l, numLayers)
			}
			if seen[l] {
				return r, fmt.Errorf("adapter.layers: layer %d listed twice", l)
			}
			seen[l] = true
			r.Layers = append(r.Layers, l)
		}
		sort.Ints(r.Layers)
	default:
		for l := 0; l < numLayers; l++ {
			r.Layers = append(r.Layers, l)
		}
	}
	return r, nil
}

// PerAdapter is the parameter count of one adapter: W_down (m·d), b_down (m),
// W_up (d·m), b_up (d).
func PerAdapter(d, m int) int64 { return 2*int64(d)*int64(m) + int64(d) + int64(m) }
