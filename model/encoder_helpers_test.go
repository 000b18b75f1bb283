package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/houlsby/adapters/backend"
)

// tinyConfig is a small random encoder for gradient checks: 2 layers, C=16,
// 2 heads, F=32, vocabulary 20, 8 positions.
func tinyConfig() Config {
	c := DefaultConfig()
	c.HiddenSize, c.NumHiddenLayers, c.NumAttentionHeads, c.IntermediateSize = 16, 2, 2, 32
	c.VocabSize, c.MaxPositionEmbeddings, c.TypeVocabSize = 20, 8, 2
	return c
}

// randomCheckpoint fills every tensor of a BERT checkpoint for cfg with
// random values: weights U(-a, a) with a = 1/sqrt(fan-in)·1.5 (large enough
// that every nonlinearity is exercised away from its linear regime), biases
// U(-0.1, 0.1), LayerNorm weights 1+U(-0.2, 0.2), embeddings U(-1, 1).
func randomCheckpoint(cfg Config, withPooler bool, seed uint64) *Checkpoint {
	r := rand.New(rand.NewPCG(seed, 7))
	ck := &Checkpoint{Config: cfg, Tensors: map[string]HostTensor{}, HasPooler: withPooler}
	uni := func(n int, lo, hi float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(lo + (hi-lo)*r.Float64())
		}
		return v
	}
	put := func(name string, data []float32, shape ...int) {
		ck.Tensors[name] = HostTensor{Shape: shape, Data: data}
	}
	C, F := cfg.HiddenSize, cfg.IntermediateSize
	lin := func(name string, out, in int) {
		a := 1.5 / sqrtf(in)
		put(name+".weight", uni(out*in, -a, a), out, in)
		put(name+".bias", uni(out, -0.1, 0.1), out)
	}
	ln := func(name string) {
		put(name+".weight", uni(C, 0.8, 1.2), C)
		put(name+".bias", uni(C, -0.1, 0.1), C)
	}
	put("embeddings.word_embeddings.weight", uni(cfg.VocabSize*C, -1, 1), cfg.VocabSize, C)
	put("embeddings.position_embeddings.weight", uni(cfg.MaxPositionEmbeddings*C, -1, 1), cfg.MaxPositionEmbeddings, C)
	put("embeddings.token_type_embeddings.weight", uni(cfg.TypeVocabSize*C, -1, 1), cfg.TypeVocabSize, C)
	ln("embeddings.LayerNorm")
	for l := 0; l < cfg.NumHiddenLayers; l++ {
		p := fmt.Sprintf("encoder.layer.%d.", l)
		lin(p+"attention.self.query", C, C)
		lin(p+"attention.self.key", C, C)
		lin(p+"attention.self.value", C, C)
		lin(p+"attention.output.dense", C, C)
		ln(p + "attention.output.LayerNorm")
		lin(p+"intermediate.dense", F, C)
		lin(p+"output.dense", C, F)
		ln(p + "output.LayerNorm")
	}
	if withPooler {
		lin("pooler.dense", C, C)
	}
	return ck
}

func sqrtf(n int) float64 { return math.Sqrt(float64(n)) }

// tinyBatch is B=2, T=5 with the second sequence padded after 3 tokens,
// mixed segment ids, and labels for 3 classes (or regression targets).
func tinyBatch(regression bool) *Batch {
	bt := &Batch{
		B: 2, T: 5,
		IDs:     []int32{2, 7, 11, 3, 19, 2, 5, 17, 0, 0},
		TypeIDs: []int32{0, 0, 0, 1, 1, 0, 1, 1, 0, 0},
		Mask:    []int32{1, 1, 1, 1, 1, 1, 1, 1, 0, 0},
	}
	if regression {
		bt.Targets = []float32{0.7, -1.3}
	} else {
		bt.Labels = []int32{2, 0}
	}
	return bt
}

// randomizeTrainable overwrites every trainable tensor (and every adapter
// tensor) with random values, so that zero-initialised adapters and heads
// carry gradient everywhere in a gradient check.
func randomizeTrainable(t *testing.T, m *Model, seed uint64) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 11))
	for _, p := range m.Params() {
		if !p.Trainable && !isAdapterName(p.Name) {
			continue
		}
		if !isAdapterName(p.Name) && p.layer < m.L {
			continue // backbone values from the random checkpoint are fine
		}
		v := make([]float32, p.Len())
		a := 1.5 / sqrtf(p.Shape[len(p.Shape)-1])
		for i := range v {
			v[i] = float32(a * (2*r.Float64() - 1))
		}
		if err := m.b.Upload(p.T, v); err != nil {
			t.Fatal(err)
		}
	}
}

func isAdapterName(n string) bool {
	for i := 0; i+9 <= len(n); i++ {
		if n[i:i+9] == ".adapter." {
			return true
		}
	}
	return false
}

// allTrainable trains everything.
func allTrainable(string) bool { return true }

// adapterOpts are adapters in both positions of every layer.
func adapterOpts(act backend.Act) *AdapterOptions {
	return &AdapterOptions{M: 4, Act: act, Attention: true, FFN: true, Seed: 3}
}
