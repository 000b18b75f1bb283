package trainer

import (
	"fmt"
	"math"

	"github.com/houlsby/adapters/backend"
	"github.com/houlsby/adapters/model"
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
// for biases and LayerNorm parameters (model.NoDecay), wd otherwise.
func DecayFor(name string, wd float64) float64 {
	if model.NoDecay(name) {
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

// GradNorm is √Σg² over the first n elements of the gradient arena grads
// (fp32 reduction on the backend, one download). A NaN or Inf gradient gives
// a non-finite norm, which is how a step detects them; out is a one-element
// F32 scratch tensor.
func GradNorm(be backend.Backend, out, grads backend.Tensor, n int) (float64, error) {
	if err := be.SumSquares(out, grads, n); err != nil {
		return 0, fmt.Errorf("gradient norm: %w", err)
	}
	var host [1]float32
	if err := be.Download(host[:], out); err != nil {
		return 0, fmt.Errorf("gradient norm: %w", err)
	}
	return math.Sqrt(float64(host[0])), nil
}

// Slot is one trainable tensor's place in the parameter arena (and, at the
// same offset, in the gradient and moment arenas).
type Slot struct {
	Name   string
	Offset int
	Shape  []int
}

// Len is the number of elements of the tensor.
func (s Slot) Len() int {
	n := 1
	for _, d := range s.Shape {
		n *= d
	}
	return n
}

// SlotsOf lists the trainable tensors of m with their arena offsets.
func SlotsOf(m *model.Model) []Slot {
	var out []Slot
	for _, p := range m.TrainableParams() {
		out = append(out, Slot{Name: p.Name, Offset: p.Offset, Shape: p.Shape})
	}
	return out
}

// AdamW is the optimizer state of a parameter arena: the moments m and v,
// one F32 allocation each, parallel to the parameter and gradient arenas,
// and the step count. One Update is one backend call over the whole arena.
type AdamW struct {
	Beta1, Beta2, Eps, WeightDecay float64
	// Step is the number of updates taken; the next update uses Step+1 for
	// bias correction.
	Step int
	// Slots are the tensors in the arena, in arena order.
	Slots []Slot
	// M and V are the moment arenas (n elements each).
	M, V backend.Tensor

	be            backend.Backend
	params, grads backend.Tensor
	n             int
	decay         backend.Tensor // I32 [start, end) pairs of the tensors that decay
}

// NewAdamW allocates zeroed moments for the n-element arenas params and
// grads, whose tensors slots lists. Betas and eps are torch.optim.AdamW's
// defaults (0.9, 0.999, 1e-8); weight decay applies to the tensors
// DecayFor gives a non-zero rate.
func NewAdamW(be backend.Backend, params, grads backend.Tensor, n int, slots []Slot, weightDecay float64) (*AdamW, error) {
	o := &AdamW{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: weightDecay, Slots: slots, be: be, params: params, grads: grads, n: n}
	if n == 0 {
		return o, nil
	}
	var err error
	if o.M, err = be.Alloc(backend.F32, n); err != nil {
		return nil, fmt.Errorf("adamw: first moments (%d elements): %w", n, err)
	}
	if o.V, err = be.Alloc(backend.F32, n); err != nil {
		o.Free()
		return nil, fmt.Errorf("adamw: second moments (%d elements): %w", n, err)
	}
	// Decaying tensors as [start, end) pairs, neighbours merged.
	var pairs []int32
	for _, s := range slots {
		if s.Offset < 0 || s.Offset+s.Len() > n {
			o.Free()
			return nil, fmt.Errorf("adamw: tensor %s at [%d, %d) lies outside the %d-element arena", s.Name, s.Offset, s.Offset+s.Len(), n)
		}
		if DecayFor(s.Name, 1) == 0 {
			continue
		}
		start, end := int32(s.Offset), int32(s.Offset+s.Len())
		if k := len(pairs); k > 0 && pairs[k-1] == start {
			pairs[k-1] = end
			continue
		}
		pairs = append(pairs, start, end)
	}
	if len(pairs) > 0 {
		if o.decay, err = be.Alloc(backend.I32, len(pairs)); err != nil {
			o.Free()
			return nil, fmt.Errorf("adamw: decay table: %w", err)
		}
		if err := be.UploadInt32(o.decay, pairs); err != nil {
			o.Free()
			return nil, fmt.Errorf("adamw: decay table: %w", err)
		}
	}
	return o, nil
}

// NewAdamWFor is NewAdamW over the trainable arenas of m.
func NewAdamWFor(m *model.Model, weightDecay float64) (*AdamW, error) {
	params, grads, n := m.TrainArena()
	return NewAdamW(m.Backend(), params, grads, n, SlotsOf(m), weightDecay)
}

// Update takes one AdamW step with learning rate lr over the whole arena.
func (o *AdamW) Update(lr float64) error {
	o.Step++
	if o.n == 0 {
		return nil
	}
	h := backend.AdamW{LR: float32(lr), Beta1: float32(o.Beta1), Beta2: float32(o.Beta2), Eps: float32(o.Eps),
		WeightDecay: float32(o.WeightDecay), Step: o.Step}
	if err := o.be.AdamWStep(o.params, o.grads, o.M, o.V, o.decay, o.n, h); err != nil {
		return fmt.Errorf("adamw step: %w", err)
	}
	return nil
}

// Moments returns views of the moments of the tensor in slot i.
func (o *AdamW) Moments(i int) (m, v backend.Tensor, err error) {
	s := o.Slots[i]
	if m, err = o.be.View(o.M, s.Offset, s.Shape...); err != nil {
		return nil, nil, err
	}
	if v, err = o.be.View(o.V, s.Offset, s.Shape...); err != nil {
		return nil, nil, err
	}
	return m, v, nil
}

// Free releases the moments.
func (o *AdamW) Free() {
	for _, t := range []backend.Tensor{o.M, o.V, o.decay} {
		if t != nil {
			o.be.Free(t)
		}
	}
	o.M, o.V, o.decay = nil, nil, nil
}
