package cpu

import "github.com/houlsby/adapters/backend"

// MaskedSoftmaxForward sets, for every row r of scores (B, R, T),
// probs[b, r, :] = softmax(scale·scores[b, r, :]) over the keys t with
// mask[b, t] != 0; masked keys get 0 and a row without an unmasked key all
// zeros. It is the softmax of the fused attention (softmaxMasked) applied
// to scale·scores, row by row. probs may alias scores.
func (be *Backend) MaskedSoftmaxForward(probs, scores, mask backend.Tensor, B, R, T int, scale float32) error {
	const op = "cpu.MaskedSoftmaxForward"
	if err := nonneg(op, "B,R,T", B, R, T); err != nil {
		return err
	}
	n, err := mul(op, B, R, T)
	if err != nil {
		return err
	}
	bt, err := mul(op, B, T)
	if err != nil {
		return err
	}
	pv, err := f32(op, "probs", probs, n)
	if err != nil {
		return err
	}
	sv, err := f32(op, "scores", scores, n)
	if err != nil {
		return err
	}
	mk, err := i32(op, "mask", mask, bt)
	if err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	be.sm = smTask{probs: pv, scores: sv, mask: mk, R: R, T: T, scale: scale}
	parallelRange(B*R, grainRows, &be.sm)
	be.sm = smTask{}
	return nil
}

// MaskedSoftmaxBackward sets dscores = scale·probs ⊙ (dprobs - Σ_t
// probs·dprobs) over N rows of length T (the row sum in float32, in 16
// lanes: dotVec). dscores may alias dprobs.
func (be *Backend) MaskedSoftmaxBackward(dscores, dprobs, probs backend.Tensor, N, T int, scale float32) error {
	const op = "cpu.MaskedSoftmaxBackward"
	if err := nonneg(op, "N,T", N, T); err != nil {
		return err
	}
	n, err := mul(op, N, T)
	if err != nil {
		return err
	}
	dv, err := f32(op, "dscores", dscores, n)
	if err != nil {
		return err
	}
	gv, err := f32(op, "dprobs", dprobs, n)
	if err != nil {
		return err
	}
	pv, err := f32(op, "probs", probs, n)
	if err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	be.sm = smTask{back: true, probs: pv, scores: dv, dprobs: gv, T: T, scale: scale}
	parallelRange(N, grainRows, &be.sm)
	be.sm = smTask{}
	return nil
}

// smTask is the masked softmax over rows [lo, hi): forward (scores →
// probs, R rows per mask row) or, with back, backward (scores holds
// dscores).
type smTask struct {
	back                  bool
	probs, scores, dprobs []float32
	mask                  []int32
	R, T                  int
	scale                 float32
}

func (t *smTask) run(_, lo, hi int) {
	T := t.T
	for r := lo; r < hi; r++ {
		p := t.probs[r*T : r*T+T]
		if t.back {
			ds, dp := t.scores[r*T:r*T+T], t.dprobs[r*T:r*T+T]
			softmaxGradVec(vec, ds, dp, p, dotVec(vec, p, dp), t.scale)
			continue
		}
		copy(p, t.scores[r*T:r*T+T])
		scaleVec(vec, p, t.scale)
		b := r / t.R
		softmaxMasked(vec, p, t.mask[b*T:b*T+T], 1, T)
	}
}
