package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/houlsby/adapters/backend"
)

// AdapterOptions places Houlsby bottleneck adapters in the encoder.
//
// Placement (Houlsby et al., 2019, figure 2): one adapter on the output of
// the attention block's output projection, after its dropout, and one on the
// output of the feed-forward block's output projection, after its dropout,
// each BEFORE the residual add and LayerNorm:
//
//	h   = Dropout(Dense(x))
//	out = LayerNorm(x_residual + h + W_up·act(W_down·h + b_down) + b_up)
//
// which is where AdapterHub's `adapters` library puts them for its "houlsby"
// config (DoubleSeqBnConfig: original_ln_before=False, original_ln_after=True,
// residual_before_ln=True: the adapter sees the dropout output, adds it back
// itself, then the block's residual add and pretrained LayerNorm follow);
// tests/encoder_parity_test.go checks this against the library on real
// weights. Attention only or FFN only gives the other common variants
// (Pfeiffer is FFN only).
//
// Tensors per adapter, under HF-style names (i is the layer):
//
//	encoder.layer.i.attention.output.adapter.{down,up}.{weight,bias}
//	encoder.layer.i.output.adapter.{down,up}.{weight,bias}
//
// with down.weight (M, C), down.bias (M), up.weight (C, M), up.bias (C).
type AdapterOptions struct {
	// M is the bottleneck size (m in the paper).
	M int
	// Act is the nonlinearity between down and up projection (ReLU in the
	// paper's released code).
	Act backend.Act
	// Attention and FFN select the two insertion points.
	Attention, FFN bool
	// Layers lists the layers that get adapters; nil means every layer.
	Layers []int
	// Init is "zero" (default) or "near_identity"; see InitZero and
	// InitNearIdentity.
	Init string
	// Seed drives the initialiser (each tensor draws from its own stream
	// derived from Seed and the tensor's name, so adding a layer does not
	// change the others).
	Seed uint64
}

// Adapter initialisations.
//
// InitZero: W_down ~ N(0, 0.02²) truncated at ±2σ (BERT's initializer_range,
// the usual HF init for new linears), b_down = 0, and W_up = b_up = 0, so a
// fresh adapter adds exactly 0: the model's outputs are bitwise the
// pretrained ones (tested). W_down must not be zero too, or W_up would never
// get a gradient (dW_up = dout ⊙ act(z) with z = b_down = 0 and act(0) = 0).
//
// InitNearIdentity: W_down, W_up ~ N(0, (1e-3)²) truncated at ±2σ, biases 0,
// as in the paper's released code (google-research/adapter-bert,
// adapter_init_scale=1e-3 with a truncated-normal initializer); outputs are
// close to, not exactly, the pretrained ones.
//
// InitBERT: W_down, W_up ~ N(0, 0.02²) (not truncated), biases 0: AdapterHub's
// default for bottleneck adapters (init_weights="bert", Adapter.init_bert_weights
// in adapters 1.3.0's methods/modeling.py); outputs start away from the
// pretrained ones by the adapters' random output.
const (
	InitZero         = "zero"
	InitNearIdentity = "near_identity"
	InitBERT         = "bert"
)

// adapterInitStd is BERT's initializer_range, also used for pooler and head.
const adapterInitStd = 0.02

// nearIdentityStd is adapter-bert's adapter_init_scale.
const nearIdentityStd = 1e-3

// validate checks o against the encoder's depth.
func (o *AdapterOptions) validate(numLayers int) error {
	if o.M <= 0 {
		return fmt.Errorf("model: adapter bottleneck size M must be positive, got %d", o.M)
	}
	if !o.Attention && !o.FFN {
		return fmt.Errorf("model: adapter options select neither the attention nor the FFN position")
	}
	switch o.Init {
	case "", InitZero, InitNearIdentity, InitBERT:
	default:
		return fmt.Errorf("model: unknown adapter init %q (want %q, %q or %q)", o.Init, InitZero, InitNearIdentity, InitBERT)
	}
	switch o.Act {
	case backend.ReLU, backend.GELU, backend.Swish:
	default:
		return fmt.Errorf("model: unknown adapter nonlinearity %v", o.Act)
	}
	for _, l := range o.Layers {
		if l < 0 || l >= numLayers {
			return fmt.Errorf("model: adapter layer %d out of range [0, %d)", l, numLayers)
		}
	}
	return nil
}

// PerLayer is the number of adapters in one adapted layer (1 or 2).
func (o *AdapterOptions) PerLayer() int {
	n := 0
	if o.Attention {
		n++
	}
	if o.FFN {
		n++
	}
	return n
}

// NumLayers is the number of adapted layers of an encoder with numLayers
// layers.
func (o *AdapterOptions) NumLayers(numLayers int) int {
	if o.Layers == nil {
		return numLayers
	}
	return len(o.Layers)
}

// inLayer reports whether layer l gets adapters.
func (o *AdapterOptions) inLayer(l int) bool {
	if o.Layers == nil {
		return true
	}
	for _, x := range o.Layers {
		if x == l {
			return true
		}
	}
	return false
}

// adapterInit returns the initial values of the adapter tensor t (see
// InitZero and InitNearIdentity); each weight draws from its own stream
// (streamSeed of o.Seed and its name).
func adapterInit(o *AdapterOptions, t TensorSpec) []float32 {
	v := make([]float32, t.NumElements())
	seed := streamSeed(o.Seed, t.Name)
	switch {
	case (strings.HasSuffix(t.Name, AdapterDownWeight) || strings.HasSuffix(t.Name, AdapterUpWeight)) && o.Init == InitBERT:
		normal(v, adapterInitStd, seed)
	case strings.HasSuffix(t.Name, AdapterDownWeight) && o.Init == InitNearIdentity:
		truncNormal(v, nearIdentityStd, seed)
	case strings.HasSuffix(t.Name, AdapterDownWeight):
		truncNormal(v, adapterInitStd, seed)
	case strings.HasSuffix(t.Name, AdapterUpWeight) && o.Init == InitNearIdentity:
		truncNormal(v, nearIdentityStd, seed)
	}
	return v // biases, and W_up under InitZero, start at 0
}

// headInit returns the initial values of a created head tensor (a pooler the
// checkpoint lacks, the classifier): weights N(0, 0.02²) as HF's
// _init_weights for new linears, each from its own stream (streamSeed of seed
// and its name), biases 0.
func headInit(t TensorSpec, seed uint64) []float32 {
	v := make([]float32, t.NumElements())
	if !IsBias(t.Name) {
		normal(v, adapterInitStd, streamSeed(seed, t.Name))
	}
	return v
}

// streamSeed derives an independent RNG stream for one named tensor (FNV-1a
// of the name mixed with seed), so initial values do not depend on the order
// in which tensors are created.
func streamSeed(seed uint64, name string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(name); i++ {
		h ^= uint64(name[i])
		h *= 1099511628211
	}
	return mix64(seed ^ mix64(h))
}

// mix64 is the SplitMix64 finaliser (the same hash backend.DropoutKeep uses).
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// truncNormal fills v with N(0, std²) draws truncated at ±2σ by rejection (as
// tf.truncated_normal and torch.nn.init.trunc_normal_(a=-2σ, b=2σ)).
func truncNormal(v []float32, std float64, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 0x6a09e667f3bcc909))
	for i := range v {
		x := r.NormFloat64()
		for math.Abs(x) > 2 {
			x = r.NormFloat64()
		}
		v[i] = float32(x * std)
	}
}

// normal fills v with N(0, std²) draws (HF's _init_weights for new linears).
func normal(v []float32, std float64, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 0xbb67ae8584caa73b))
	for i := range v {
		v[i] = float32(r.NormFloat64() * std)
	}
}
