// Package tinybert writes small random BERT model folders (vocab.txt,
// config.json, model.safetensors) for tests that need a real checkpoint on
// disk but not a real model: training, resume, export and the CLI run on
// them in milliseconds.
package tinybert

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/houlsby/adapters/model"
	"github.com/houlsby/adapters/model/safetensors"
)

// Spec describes a folder.
type Spec struct {
	// Words are the lines of vocab.txt (the special tokens first).
	Words []string
	// ConfigJSON is config.json with one %d, replaced by len(Words).
	ConfigJSON string
	// WithPooler writes pooler.dense.{weight,bias}.
	WithPooler bool
	// Seed seeds the PCG generator of the weights, unless Rand is set.
	Seed [2]uint64
	// Rand, when set, draws the weights instead (a caller that goes on
	// drawing its data from the same generator passes it).
	Rand *rand.Rand
	// JitterLayerNorm draws LayerNorm weights from N(1, 0.1²) instead of
	// setting them to exactly 1.
	JitterLayerNorm bool
}

// Write writes s into dir and returns its config, failing t on an error.
func Write(t testing.TB, dir string, s Spec) model.Config {
	t.Helper()
	cfg, err := Create(dir, s)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Create writes s into dir and returns its config. Every weight is drawn
// from N(0, 0.2²), in model.ExpectedTensors order, so a Spec always gives
// the same bytes.
func Create(dir string, s Spec) (model.Config, error) {
	if err := os.WriteFile(filepath.Join(dir, "vocab.txt"), []byte(strings.Join(s.Words, "\n")+"\n"), 0o644); err != nil {
		return model.Config{}, err
	}
	cfgJSON := fmt.Sprintf(s.ConfigJSON, len(s.Words))
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfgJSON), 0o644); err != nil {
		return model.Config{}, err
	}
	cfg, err := model.ParseConfig("tiny", []byte(cfgJSON))
	if err != nil {
		return cfg, err
	}
	g := s.Rand
	if g == nil {
		g = rand.New(rand.NewPCG(s.Seed[0], s.Seed[1]))
	}
	var ts []safetensors.NamedTensor
	for _, spec := range model.ExpectedTensors(cfg, s.WithPooler) {
		d := make([]float32, spec.NumElements())
		for i := range d {
			d[i] = float32(g.NormFloat64() * 0.2)
			if strings.HasSuffix(spec.Name, "LayerNorm.weight") {
				if s.JitterLayerNorm {
					d[i] = float32(1 + 0.1*g.NormFloat64())
				} else {
					d[i] = 1
				}
			}
		}
		ts = append(ts, safetensors.F32Tensor(spec.Name, spec.Shape, d))
	}
	return cfg, safetensors.Write(filepath.Join(dir, "model.safetensors"), ts, nil)
}

// Sentiment is a 2-layer BERT (d = 16, 2 heads, 32 max positions) over a
// vocabulary of a few sentiment words, with a pooler: the folder the
// library's examples train on in milliseconds.
var Sentiment = Spec{
	Words: []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "movie", "film", "great", "awful",
		"the", "a", "plot", "acting", "was", "is", "very", "not"},
	ConfigJSON: `{"model_type": "bert", "hidden_act": "gelu", "hidden_size": 16, "num_hidden_layers": 2,
"num_attention_heads": 2, "intermediate_size": 32, "vocab_size": %d, "max_position_embeddings": 32, "type_vocab_size": 2,
"layer_norm_eps": 1e-12, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02}`,
	WithPooler: true, Seed: [2]uint64{1, 2},
}
