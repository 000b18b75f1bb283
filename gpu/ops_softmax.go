package gpu

import (
	"fmt"
	"math"

	"github.com/houlsby/adapters/backend"
)

// smRows is the number of rows (one warp each) per block of
// kernels/softmax.cu.
const smRows = 8

// smGrid covers rows rows with smRows-row blocks.
func smGrid(op string, rows int) (Dim3, error) {
	g := (rows + smRows - 1) / smRows
	if g > math.MaxInt32 {
		return Dim3{}, fmt.Errorf("%s: %d rows exceed the grid", op, rows)
	}
	return Dim3{X: uint32(g), Y: 1, Z: 1}, nil
}

// MaskedSoftmaxForward sets probs[b, r, :] = softmax(scale·scores[b, r, :])
// over the unmasked keys of mask[b, :], for scores and probs (B, R, T)
// (kernel masked_softmax_fwd_<probs>_<scores>, each F32 or BF16). probs may
// alias scores exactly (same dtype), not partly.
func (b *Backend) MaskedSoftmaxForward(probs, scores, mask backend.Tensor, B, R, T int, scale float32) error {
	const op = "gpu.MaskedSoftmaxForward"
	if err := sizes(op, "B,R,T", B, R, T); err != nil {
		return err
	}
	n, err := mulOK(op, B, R, T)
	if err != nil {
		return err
	}
	pt, err := activ(op, "probs", probs, n)
	if err != nil {
		return err
	}
	st, err := activ(op, "scores", scores, n)
	if err != nil {
		return err
	}
	mt, err := i32(op, "mask", mask, B*T)
	if err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	if overlaps(pt, n, st, n) && (pt.Ptr != st.Ptr || pt.dt != st.dt) {
		return fmt.Errorf("%s: probs partly overlaps scores (it may only alias it exactly)", op)
	}
	grid, err := smGrid(op, B*R)
	if err != nil {
		return err
	}
	return b.launch(op, kSoftmaxFwd.of(pt, st), grid, b1(32*smRows), 0,
		ptr(pt), ptr(st), ptr(mt), Int(B), Int(R), Int(T), F(scale))
}

// MaskedSoftmaxBackward sets dscores = scale·probs ⊙ (dprobs - Σ probs·dprobs)
// over N rows of length T (kernel masked_softmax_bwd_<dscores>_<probs>).
// dscores and dprobs share one dtype, probs may have the other; dscores may
// alias dprobs exactly, not partly.
func (b *Backend) MaskedSoftmaxBackward(dscores, dprobs, probs backend.Tensor, N, T int, scale float32) error {
	const op = "gpu.MaskedSoftmaxBackward"
	if err := sizes(op, "N,T", N, T); err != nil {
		return err
	}
	n, err := mulOK(op, N, T)
	if err != nil {
		return err
	}
	dt, err := activ(op, "dscores", dscores, n)
	if err != nil {
		return err
	}
	gt, err := activ(op, "dprobs", dprobs, n)
	if err != nil {
		return err
	}
	if err := sameDType(op, "dscores and dprobs", dt, gt); err != nil {
		return err
	}
	pt, err := activ(op, "probs", probs, n)
	if err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	if overlaps(dt, n, gt, n) && dt.Ptr != gt.Ptr {
		return fmt.Errorf("%s: dscores partly overlaps dprobs (it may only alias it exactly)", op)
	}
	if overlaps(dt, n, pt, n) {
		return fmt.Errorf("%s: dscores must not overlap probs", op)
	}
	grid, err := smGrid(op, N)
	if err != nil {
		return err
	}
	return b.launch(op, kSoftmaxBwd.of(dt, pt), grid, b1(32*smRows), 0,
		ptr(dt), ptr(gt), ptr(pt), Int(N), Int(T), F(scale))
}
