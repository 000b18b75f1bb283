package trainer

import (
	"fmt"
	"math"

	"github.com/houlsby/adapters/adapter"
	"github.com/houlsby/adapters/backend"
)

// Schedule is linear warmup to Peak over Warmup steps, then linear decay to
// 0 at Total steps: transformers' get_linear_schedule_with_warmup.
type Schedule struct {
	Peak          float64
	Warmup, Total int
}

// NewSchedule derives the warmup length from a ratio of total steps
// (rounded up, as transformers' TrainingArguments.get_warmup_steps).
func NewSchedule(peak float64, total int, warmupRatio float64) Schedule {
	return Schedule{Peak: peak, Total: total, Warmup: int(math.Ceil(float64(total) * warmupRatio))}
}

// LR is the learning rate of the optimizer step taken after step completed
// steps (step counts from 0), exactly transformers' lr_lambda: step/warmup
// during warmup, then (total-step)/(total-warmup), never below 0. Like
// PyTorch, the very first step therefore uses LR 0 when Warmup > 0.
func (s Schedule) LR(step int) float64 {
	if step < s.Warmup {
		return s.Peak * float64(step) / float64(max(1, s.Warmup))
	}
	return s.Peak * math.Max(0, float64(s.Total-step)/float64(max(1, s.Total-s.Warmup)))
}

// DecayFor is the weight decay AdamW applies to the tensor called name: 0
// for biases and LayerNorm parameters (adapter.NoDecay), wd otherwise.
func DecayFor(name string, wd float64) float64 {
	if adapter.NoDecay(name) {
		return 0
	}
	return wd
}

// ClipScale is the factor torch.nn.utils.clip_grad_norm_ multiplies every
// gradient by: maxNorm/(norm+1e-6) when that is below 1, else 1 (the 1e-6
// is PyTorch's). maxNorm <= 0 disables clipping.
func ClipScale(norm, maxNorm float64) float64 {
	if maxNorm <= 0 {
		return 1
	}
	c := maxNorm / (norm + 1e-6)
	if c < 1 {
		return c
	}
	return 1
}

// Param is one trainable tensor as the optimizer sees it.
type Param struct {
	Name    string
	T, Grad backend.Tensor
}

// GlobalNorm is √Σ‖g‖² over the gradients, the per-tensor sums taken on the
// backend (fp32) and added on the host in float64. A NaN or Inf gradient
// gives a non-finite norm, which is how the loop detects them.
func GlobalNorm(be backend.Backend, params []Param) (float64, error) {
	out, err := be.Alloc(backend.F32, 1)
	if err != nil {
		return 0, err
	}
	defer be.Free(out)
	host := make([]float32, 1)
	total := 0.0
	for _, p := range params {
		if err := be.SumSquares(out, p.Grad, p.Grad.Len()); err != nil {
			return 0, fmt.Errorf("gradient norm of %s: %w", p.Name, err)
		}
		if err := be.Download(host, out); err != nil {
			return 0, err
		}
		total += float64(host[0])
	}
	return math.Sqrt(total), nil
}

// VectorNorm is √Σx² over the first n elements of x (e.g. a model's whole
// gradient arena, where the padding between tensors is zero): one reduction
// and one download instead of one per tensor.
func VectorNorm(be backend.Backend, x backend.Tensor, n int) (float64, error) {
	out, err := be.Alloc(backend.F32, 1)
	if err != nil {
		return 0, err
	}
	defer be.Free(out)
	if err := be.SumSquares(out, x, n); err != nil {
		return 0, fmt.Errorf("gradient norm: %w", err)
	}
	host := make([]float32, 1)
	if err := be.Download(host, out); err != nil {
		return 0, err
	}
	return math.Sqrt(float64(host[0])), nil
}

// ClipGradients scales every gradient so the global norm is at most
// maxNorm. It returns the norm before clipping.
func ClipGradients(be backend.Backend, params []Param, maxNorm float64) (float64, error) {
	norm, err := GlobalNorm(be, params)
	if err != nil {
		return 0, err
	}
	if s := ClipScale(norm, maxNorm); s < 1 {
		for _, p := range params {
			if err := be.Scale(p.Grad, float32(s), p.Grad.Len()); err != nil {
				return 0, fmt.Errorf("clipping %s: %w", p.Name, err)
			}
		}
	}
	return norm, nil
}

// AdamW holds the optimizer state of the trainable tensors: the moments m
// and v (F32, one pair per Param, in Params order) and the step count.
type AdamW struct {
	Beta1, Beta2, Eps, WeightDecay float64
	// Step is the number of updates taken; the next update uses Step+1 for
	// bias correction.
	Step   int
	Params []Param
	M, V   []backend.Tensor
	// decay holds, per decayed parameter, its AdamWStep decay table: one
	// range [0, n) over the whole tensor (made on first use).
	decay []backend.Tensor
}

// NewAdamW allocates zeroed moments for params. Betas and eps are
// torch.optim.AdamW's defaults (0.9, 0.999, 1e-8).
func NewAdamW(be backend.Backend, params []Param, weightDecay float64) (*AdamW, error) {
	o := &AdamW{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: weightDecay, Params: params}
	for _, p := range params {
		m, err := be.Alloc(backend.F32, p.T.Shape()...)
		if err != nil {
			return nil, fmt.Errorf("adamw state of %s: %w", p.Name, err)
		}
		v, err := be.Alloc(backend.F32, p.T.Shape()...)
		if err != nil {
			return nil, fmt.Errorf("adamw state of %s: %w", p.Name, err)
		}
		o.M, o.V = append(o.M, m), append(o.V, v)
	}
	return o, nil
}

// Update takes one AdamW step with learning rate lr on every parameter
// (weight decay per DecayFor).
func (o *AdamW) Update(be backend.Backend, lr float64) error {
	o.Step++
	for i, p := range o.Params {
		h := backend.AdamW{LR: float32(lr), Beta1: float32(o.Beta1), Beta2: float32(o.Beta2), Eps: float32(o.Eps),
			WeightDecay: float32(DecayFor(p.Name, o.WeightDecay)), Step: o.Step}
		var decay backend.Tensor
		if h.WeightDecay != 0 {
			var err error
			if decay, err = o.decayTable(be, i); err != nil {
				return fmt.Errorf("adamw step on %s: %w", p.Name, err)
			}
		}
		if err := be.AdamWStep(p.T, p.Grad, o.M[i], o.V[i], decay, p.T.Len(), h); err != nil {
			return fmt.Errorf("adamw step on %s: %w", p.Name, err)
		}
	}
	return nil
}

// decayTable returns parameter i's decay table [0, n), uploading it on
// first use.
func (o *AdamW) decayTable(be backend.Backend, i int) (backend.Tensor, error) {
	if len(o.decay) != len(o.Params) {
		o.decay = make([]backend.Tensor, len(o.Params))
	}
	if o.decay[i] == nil {
		t, err := be.Alloc(backend.I32, 2)
		if err != nil {
			return nil, err
		}
		if err := be.UploadInt32(t, []int32{0, int32(o.Params[i].T.Len())}); err != nil {
			be.Free(t)
			return nil, err
		}
		o.decay[i] = t
	}
	return o.decay[i], nil
}

// Free releases the moments.
func (o *AdamW) Free(be backend.Backend) {
	for i := range o.M {
		be.Free(o.M[i])
		be.Free(o.V[i])
	}
	for _, t := range o.decay {
		if t != nil {
			be.Free(t)
		}
	}
	o.M, o.V, o.decay = nil, nil, nil
}
