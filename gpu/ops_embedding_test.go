package gpu_test

// Op tests of the launchers in ops_embedding.go on the kernel emulator against the
// CPU backend, at the model's real sizes and dtype mixes (helpers in
// emu_helpers_test.go).

import (
	"testing"

	"github.com/houlsby/adapters/backend"
)

func TestEmbeddingAndLossRealSizes(t *testing.T) {
	d := newDuo(t)
	const V, C, N = 1000, 384, 50
	table := d.tensor(backend.BF16, V*C, 1, nil)
	ids := make([]int32, N)
	for i := range ids {
		ids[i] = int32((i * 37) % 23 * 41 % V) // repeats, so the scatter-add sums
	}
	idp := d.ints(ids)
	out := d.tensor(backend.F32, N*C, 1, nil)
	d.both("EmbeddingForward", func(be backend.Backend, s func(*pair) backend.Tensor) error {
		return be.EmbeddingForward(s(out), s(idp), s(table), N, C, true)
	})
	d.compare("gather (accumulate)", out, 0, 1e-7)
	dt := d.tensor(backend.F32, V*C, 0, make([]float32, V*C))
	dout := d.tensor(backend.F32, N*C, 1, nil)
	d.both("EmbeddingBackward", func(be backend.Backend, s func(*pair) backend.Tensor) error {
		return be.EmbeddingBackward(s(dt), s(dout), s(idp), N, C)
	})
	// Both sum the repeated rows in row order: identical.
	d.compare("scatter-add", dt, 0, 0)
	if err := d.g.EmbeddingForward(out.g, d.ints([]int32{0, V}).g, table.g, 2, C, false); err == nil {
		t.Errorf("EmbeddingForward with id = V: no error")
	}

	// Cross-entropy over a vocabulary-sized row (several block strides).
	const NV, VV = 3, 30522
	logits := d.tensor(backend.F32, NV*VV, 3, nil)
	labels := d.ints([]int32{5, -1, VV - 1})
	loss := d.tensor(backend.F32, NV, 0, make([]float32, NV))
	dl := d.tensor(backend.F32, NV*VV, 0, make([]float32, NV*VV))
	d.both("SoftmaxCrossEntropy", func(be backend.Backend, s func(*pair) backend.Tensor) error {
		return be.SoftmaxCrossEntropy(s(loss), s(dl), s(logits), s(labels), NV, VV, 0.5)
	})
	// log-sum-exp over 30522 terms: fp32 (gpu) vs float64 (cpu) sums,
	// |Δ| <= V·2^-24 relative to the sum -> 2e-3 relative in the worst case,
	// far less in practice; loss ~ 10.
	d.compare("loss", loss, 1e-3, 1e-4)
	d.compare("dlogits", dl, 1e-7, 1e-3)

	x := d.tensor(backend.BF16, 100003, 1, nil)
	ss := d.tensor(backend.F32, 1, 0, []float32{0})
	d.both("SumSquares", func(be backend.Backend, s func(*pair) backend.Tensor) error {
		return be.SumSquares(s(ss), s(x), 100003)
	})
	// 100003 positive terms in fp32, different orders: n·2^-24 ~ 6e-3 worst
	// case relative; a few 1e-5 in practice.
	d.compare("SumSquares", ss, 0, 1e-3)
}
