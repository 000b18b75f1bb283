package gpu

import (
	"fmt"

	"github.com/houlsby/adapters/backend"
)

// Limits of kernels/attention.cu: shared memory holds a score row of up to
// attMaxT keys per warp and K/V tiles of up to attMaxHS columns.
const (
	attMaxT  = 512
	attMaxHS = 128
	attRows  = 8 // query (or key) rows per block, one warp each
)

// attnArgs validates the sizes common to both attention passes.
func attnArgs(op string, B, T, NH, HS int, p float32) (C int, err error) {
	if err := sizes(op, "B,T,NH,HS", B, T, NH, HS); err != nil {
		return 0, err
	}
	if err := checkP(op, p); err != nil {
		return 0, err
	}
	if _, err := mulOK(op, B, NH, T, T); err != nil {
		return 0, err
	}
	if _, err := mulOK(op, B, T, 3, NH, HS); err != nil {
		return 0, err
	}
	return NH * HS, nil
}

// attnFused returns backend.ErrNotFused (wrapped) when the sizes are
// beyond the fused kernels: shared memory holds a score row of at most
// attMaxT keys per warp and tiles of at most attMaxHS columns, and the grid
// has NH and B in its y and z dimensions (at most 65535 each).
func attnFused(op string, B, T, NH, HS int) error {
	if T > attMaxT || HS > attMaxHS || NH > 65535 || B > 65535 {
		return fmt.Errorf("%s: B = %d, T = %d, NH = %d, HS = %d beyond the fused kernels (T <= %d, HS <= %d, B and NH <= 65535): %w",
			op, B, T, NH, HS, attMaxT, attMaxHS, backend.ErrNotFused)
	}
	return nil
}

func attnGrid(B, T, NH int) Dim3 {
	return Dim3{X: uint32((T + attRows - 1) / attRows), Y: uint32(NH), Z: uint32(B)}
}

// AttentionForward: multi-head masked scaled-dot-product self-attention over
// qkv (B, T, 3C), mask (B, T) I32, into out (B, T, C) and probs
// (B, NH, T, T) (softmax before dropout). A query whose keys are all masked
// gets zero probabilities and a zero output. Beyond the kernels' limits (T
// <= 512, HS <= 128) it returns backend.ErrNotFused, writing nothing.
func (b *Backend) AttentionForward(out, probs, qkv, mask backend.Tensor, B, T, NH, HS int, p float32, seed uint64) error {
	const op = "gpu.AttentionForward"
	C, err := attnArgs(op, B, T, NH, HS, p)
	if err != nil {
		return err
	}
	ot, err := activ(op, "out", out, B*T*C)
	if err != nil {
		return err
	}
	pt, err := activ(op, "probs", probs, B*NH*T*T)
	if err != nil {
		return err
	}
	qt, err := activ(op, "qkv", qkv, B*T*3*C)
	if err != nil {
		return err
	}
	if err := sameDType(op, "out, probs and qkv", ot, pt, qt); err != nil {
		return err
	}
	mt, err := i32(op, "mask", mask, B*T)
	if err != nil {
		return err
	}
	if B*T*C == 0 {
		return nil
	}
	if err := attnFused(op, B, T, NH, HS); err != nil {
		return err
	}
	return b.launch(op, kAttnFwd.of(qt), attnGrid(B, T, NH), b1(32*attRows), 0,
		ptr(ot), ptr(pt), ptr(qt), ptr(mt), Int(B), Int(T), Int(NH), Int(HS), F(p), seed)
}

// AttentionBackward: dqkv (B, T, 3C) (=) from dout (B, T, C), the forward's
// qkv and probs and the same dropout seed, in three launches (D = rowsum(P ⊙
// dP), then dK and dV, then dQ; see kernels/attention.cu). dqkv must not
// alias qkv, dout or probs. Beyond the kernels' limits (those of the
// forward, and HS >= 2 with BF16) it returns backend.ErrNotFused, writing
// nothing.
func (b *Backend) AttentionBackward(dqkv, dout, qkv, probs, mask backend.Tensor, B, T, NH, HS int, p float32, seed uint64) error {
	const op = "gpu.AttentionBackward"
	C, err := attnArgs(op, B, T, NH, HS, p)
	if err != nil {
		return err
	}
	dt, err := activ(op, "dqkv", dqkv, B*T*3*C)
	if err != nil {
		return err
	}
	gt, err := activ(op, "dout", dout, B*T*C)
	if err != nil {
		return err
	}
	qt, err := activ(op, "qkv", qkv, B*T*3*C)
	if err != nil {
		return err
	}
	pt, err := activ(op, "probs", probs, B*NH*T*T)
	if err != nil {
		return err
	}
	if err := sameDType(op, "dqkv, dout, qkv and probs", dt, gt, qt, pt); err != nil {
		return err
	}
	if _, err := i32(op, "mask", mask, B*T); err != nil {
		return err
	}
	if B*T*C == 0 {
		return nil
	}
	n := B * T * 3 * C
	if overlaps(dt, n, qt, n) || overlaps(dt, n, gt, B*T*C) || overlaps(dt, n, pt, B*NH*T*T) {
		return fmt.Errorf("%s: dqkv must not alias qkv, dout or probs", op)
	}
	if err := attnFused(op, B, T, NH, HS); err != nil {
		return err
	}
	if dt.dt == backend.BF16 && HS < 2 {
		// D_i is parked in two bf16 elements of dQ between launches.
		return fmt.Errorf("%s: BF16 attention with HS = %d < 2: %w", op, HS, backend.ErrNotFused)
	}
	args := []uint64{ptr(dt), ptr(gt), ptr(qt), ptr(pt), Int(B), Int(T), Int(NH), Int(HS), F(p), seed}
	for _, k := range []*kernelFamily{kAttnBwdD, kAttnBwdDKV, kAttnBwdDQ} {
		if err := b.launch(op, k.of(dt), attnGrid(B, T, NH), b1(32*attRows), 0, args...); err != nil {
			return err
		}
	}
	return nil
}
