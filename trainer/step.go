package trainer

import (
	"fmt"
	"math"

	"github.com/houlsby/adapters/backend"
	"github.com/houlsby/adapters/model"
)

// Learner is a model and the AdamW state of its trainable tensors: what one
// training step changes. Every caller that trains or times training steps
// through Learner.Step: the training loop (Train), `train-gpu bench`, and
// the reference-parity tests.
type Learner struct {
	Model *model.Model
	Opt   *AdamW

	be      backend.Backend
	normOut backend.Tensor // (1) F32: the gradient norm's reduction
}

// NewLearner allocates the optimizer state for m's trainable tensors
// (weight decay weightDecay, see DecayFor).
func NewLearner(m *model.Model, weightDecay float64) (*Learner, error) {
	be := m.Backend()
	opt, err := NewAdamWFor(m, weightDecay)
	if err != nil {
		return nil, err
	}
	out, err := be.Alloc(backend.F32, 1)
	if err != nil {
		opt.Free()
		return nil, fmt.Errorf("gradient norm scratch: %w", err)
	}
	return &Learner{Model: m, Opt: opt, be: be, normOut: out}, nil
}

// Free releases the optimizer state (not the model).
func (l *Learner) Free() {
	l.Opt.Free()
	l.be.Free(l.normOut)
}

// StepOptions are the settings of one training step.
type StepOptions struct {
	// LR is the learning rate of this step's update.
	LR float64
	// ClipNorm is the largest global gradient norm (clipping as
	// torch.nn.utils.clip_grad_norm_); <= 0 disables clipping.
	ClipNorm float64
	// Dropout turns the model's dropout on; Seed draws its masks.
	Dropout bool
	Seed    uint64
	// Cached, when not nil, holds each sequence's values at the model's
	// cache point (model.Model.ForwardFrom): the frozen layers below it are
	// not run again.
	Cached [][]float32
}

// StepResult is what one step measured.
type StepResult struct {
	// Loss is the batch's mean loss.
	Loss float32
	// GradNorm is the global gradient norm before clipping.
	GradNorm float64
	// NonFinite is true when the loss or the gradient norm is NaN or Inf:
	// the step then changed no weight and no optimizer state.
	NonFinite bool
}

// Step is one training step on batch b: gradients (zeroed, then forward,
// loss and backward), the global gradient norm, clipping to o.ClipNorm, and
// one AdamW update at o.LR over every trainable tensor. A non-finite loss or
// norm skips the update (StepResult.NonFinite); what to do then (count it or
// abort) is the caller's policy.
func (l *Learner) Step(b *model.Batch, o StepOptions) (StepResult, error) {
	loss, err := l.gradients(b, o.Cached, o.Dropout, o.Seed)
	if err != nil {
		return StepResult{}, err
	}
	r := StepResult{Loss: loss}
	_, grads, n := l.Model.TrainArena()
	if grads == nil {
		return r, fmt.Errorf("trainer: nothing trains") // the head always does: a model bug
	}
	if r.GradNorm, err = GradNorm(l.be, l.normOut, grads, n); err != nil {
		return r, err
	}
	if !finite(float64(loss)) || !finite(r.GradNorm) {
		r.NonFinite = true
		return r, nil
	}
	if s := ClipScale(r.GradNorm, o.ClipNorm); s < 1 {
		if err := l.be.Scale(grads, float32(s), n); err != nil {
			return r, fmt.Errorf("clipping gradients: %w", err)
		}
	}
	return r, l.Opt.Update(o.LR)
}

// Gradients zeroes the gradients and runs the forward pass (dropout on when
// dropout, masks from seed), the loss and the backward pass on b; it returns
// the loss. Step calls it; tests that replace gradients before an update
// (teacher forcing) call it and Opt.Update themselves.
func (l *Learner) Gradients(b *model.Batch, dropout bool, seed uint64) (float32, error) {
	return l.gradients(b, nil, dropout, seed)
}

// gradients is Gradients, from cached values at the cache point when
// cached is not nil.
func (l *Learner) gradients(b *model.Batch, cached [][]float32, dropout bool, seed uint64) (float32, error) {
	if err := l.Model.ZeroGrads(); err != nil {
		return 0, err
	}
	var loss float32
	var err error
	if cached != nil {
		loss, _, err = l.Model.ForwardFrom(b, cached, dropout, seed)
	} else {
		loss, _, err = l.Model.Forward(b, dropout, seed)
	}
	if err != nil {
		return 0, err
	}
	if err := l.Model.Backward(); err != nil {
		return 0, err
	}
	return loss, nil
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
