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

// Write writes s into dir and returns its config. Every weight is drawn
// from N(0, 0.2²), in model.ExpectedTensors order, so a Spec always gives
// the same bytes.
func Write(t testing.TB, dir string, s Spec) model.Config {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "vocab.txt"), []byte(strings.Join(s.Words, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgJSON := fmt.Sprintf(s.ConfigJSON, len(s.Words))
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfgJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := model.ParseConfig("tiny", []byte(cfgJSON))
	if err != nil {
		t.Fatal(err)
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
	if err := safetensors.Write(filepath.Join(dir, "model.safetensors"), ts, nil); err != nil {
		t.Fatal(err)
	}
	return cfg
}
