package adapter

import (
	"fmt"

	"github.com/houlsby/adapters/model"
)

// Strategy names, the [strategy] name of a run's TOML file.
const (
	// StratAdapters trains the adapters (and the LayerNorms unless
	// TrainLayerNorm is false) plus the head.
	StratAdapters = "adapters"
	// StratFull trains every tensor.
	StratFull = "full"
	// StratHead trains the head only (feature extraction).
	StratHead = "head"
	// StratLayerNorm trains every LayerNorm plus the head.
	StratLayerNorm = "layernorm"
	// StratTopK trains the top TopK encoder layers, a pretrained pooler the
	// head uses, and the head.
	StratTopK = "top_k"
	// StratBitFit trains every bias (LayerNorm biases included; Ben Zaken et
	// al., 2021) plus the head.
	StratBitFit = "bitfit"
)

// Strategies lists the strategy names in the order --help shows them.
var Strategies = []string{StratAdapters, StratFull, StratHead, StratLayerNorm, StratTopK, StratBitFit}

// Strategy decides which tensors train. The head ("classifier.*", the
// "head.dense.*" of HeadCLSDense, and a "pooler.*" the checkpoint lacked,
// see CreatedPooler) always trains.
type Strategy struct {
	// Name is one of Strategies.
	Name string `toml:"name" json:"name"`
	// TopK is the number of top layers StratTopK trains.
	TopK int `toml:"top_k" json:"top_k,omitempty"`
	// TrainLayerNorm switches LayerNorm training for StratAdapters.
	TrainLayerNorm bool `toml:"train_layernorm" json:"train_layernorm"`
	// NumLayers is the encoder depth (needed by StratTopK); set by the
	// caller from the model config, never read from a file.
	NumLayers int `toml:"-" json:"-"`
	// CreatedPooler is true when the head uses a pooler the checkpoint did
	// not have: it is then freshly initialised and always trains.
	CreatedPooler bool `toml:"-" json:"-"`
}

// Validate checks the name and TopK against NumLayers. Errors name the TOML
// field.
func (s Strategy) Validate() error {
	switch s.Name {
	case StratAdapters, StratFull, StratHead, StratLayerNorm, StratBitFit:
		return nil
	case StratTopK:
		if s.TopK < 1 || (s.NumLayers > 0 && s.TopK > s.NumLayers) {
			return fmt.Errorf("strategy.top_k = %d: want 1..%d", s.TopK, s.NumLayers)
		}
		return nil
	}
	return fmt.Errorf("strategy.name = %q: want one of %v", s.Name, Strategies)
}

// UsesAdapters reports whether the strategy inserts adapters.
func (s Strategy) UsesAdapters() bool { return s.Name == StratAdapters }

// Trainable reports whether the tensor called name (a Hugging Face name
// without "bert.") trains under s. It is a pure function of the name, so the
// same predicate drives the encoder, the optimizer, accounting and the
// adapter file.
func (s Strategy) Trainable(name string) bool {
	if model.IsClassifier(name) || model.IsHeadDense(name) || (model.IsPooler(name) && s.CreatedPooler) {
		return true
	}
	switch s.Name {
	case StratFull:
		return true
	case StratHead:
		return false
	case StratAdapters:
		return model.IsAdapter(name) || (s.TrainLayerNorm && model.IsLayerNorm(name))
	case StratLayerNorm:
		return model.IsLayerNorm(name)
	case StratTopK:
		if model.IsPooler(name) {
			return s.TopK > 0
		}
		l := model.LayerOf(name)
		return l >= 0 && l >= s.NumLayers-s.TopK
	case StratBitFit:
		return model.IsBias(name)
	}
	panic(fmt.Sprintf("adapter: Trainable on unvalidated strategy %q", s.Name))
}
