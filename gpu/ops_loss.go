package gpu

import (
	"fmt"
	"math"

	"github.com/houlsby/adapters/backend"
)

// SoftmaxCrossEntropy over logits (N, V) and labels (N, I32): loss (N) gets
// each row's loss; dlogits (=, may be nil) gets scale·(softmax - onehot).
// Rows with a negative label are ignored (zero loss and gradient); a label
// >= V is an error (checking costs reading the labels back, see
// checkIndices).
func (b *Backend) SoftmaxCrossEntropy(loss, dlogits, logits, labels backend.Tensor, N, V int, scale float32) error {
	const op = "gpu.SoftmaxCrossEntropy"
	if err := sizes(op, "N,V", N, V); err != nil {
		return err
	}
	nv, err := mulOK(op, N, V)
	if err != nil {
		return err
	}
	lt, err := f32(op, "loss", loss, N)
	if err != nil {
		return err
	}
	dt, err := optActiv(op, "dlogits", dlogits, nv)
	if err != nil {
		return err
	}
	xt, err := activ(op, "logits", logits, nv)
	if err != nil {
		return err
	}
	if err := sameDType(op, "dlogits and logits", dt, xt); err != nil {
		return err
	}
	yt, err := i32(op, "labels", labels, N)
	if err != nil {
		return err
	}
	if N == 0 {
		return nil
	}
	if err := b.checkIndices(op, "labels", yt, N, V, true); err != nil {
		return err
	}
	if N > math.MaxInt32 {
		return fmt.Errorf("%s: N = %d rows exceed the grid", op, N)
	}
	return b.launch(op, kSoftmaxXent.of(xt), Dim3{X: uint32(N), Y: 1, Z: 1}, b1(256), 0,
		ptr(lt), ptr(dt), ptr(xt), ptr(yt), Int(N), Int(V), F(scale))
}

// MSE over pred and target (N): loss = (pred-target)², dpred (=, may be
// nil) = scale·2·(pred-target). dpred and pred share one dtype; target may
// be F32 or BF16 independently.
func (b *Backend) MSE(loss, dpred, pred, target backend.Tensor, N int, scale float32) error {
	const op = "gpu.MSE"
	if err := sizes(op, "N", N); err != nil {
		return err
	}
	lt, err := f32(op, "loss", loss, N)
	if err != nil {
		return err
	}
	dt, err := optActiv(op, "dpred", dpred, N)
	if err != nil {
		return err
	}
	pt, err := activ(op, "pred", pred, N)
	if err != nil {
		return err
	}
	tt, err := activ(op, "target", target, N)
	if err != nil {
		return err
	}
	if err := sameDType(op, "dpred and pred", dt, pt); err != nil {
		return err
	}
	if N == 0 {
		return nil
	}
	return b.launch(op, kMSE.of(pt, tt), grid1D(N), b1(block1D), 0, ptr(lt), ptr(dt), ptr(pt), ptr(tt), Int(N), F(scale))
}
