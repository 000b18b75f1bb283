package gpu_test

// Op tests of the launchers in ops_loss.go on the kernel emulator against the
// CPU backend, at the model's real sizes and dtype mixes (helpers in
// emu_helpers_test.go).

import (
	"testing"

	"github.com/houlsby/adapters/backend"
)

// TestCrossEntropyInPlace: dlogits may alias logits (the loss must use the
// logits read before they are overwritten).
func TestCrossEntropyInPlace(t *testing.T) {
	d := newDuo(t)
	const N, V = 5, 300
	logits := d.tensor(backend.F32, N*V, 2, nil)
	ref := d.tensor(backend.F32, N*V, 2, logits.host)
	labels := d.ints([]int32{0, 299, -1, 17, 150})
	loss := d.tensor(backend.F32, N, 0, make([]float32, N))
	lossRef := d.tensor(backend.F32, N, 0, make([]float32, N))
	// Twice on the gpu (the emulator alternates its thread order between
	// blocks, so each row runs once in each order); both must match.
	if err := d.g.SoftmaxCrossEntropy(loss.g, logits.g, logits.g, labels.g, N, V, 1); err != nil {
		t.Fatal(err)
	}
	if err := d.g.SoftmaxCrossEntropy(lossRef.g, ref.g, ref.g, labels.g, N, V, 1); err != nil {
		t.Fatal(err)
	}
	second := &pair{g: lossRef.g, c: lossRef.c}
	secondD := &pair{g: ref.g, c: ref.c}
	if err := d.c.SoftmaxCrossEntropy(lossRef.c, ref.c, logits.c, labels.c, N, V, 1); err != nil {
		t.Fatal(err)
	}
	loss.c, logits.c = lossRef.c, ref.c
	// fp32 log-sum-exp of 300 terms vs the CPU's float64: ~1e-6 relative.
	d.compare("loss (in place)", loss, 1e-5, 1e-5)
	d.compare("dlogits (in place)", logits, 1e-6, 1e-4)
	d.compare("loss (in place, second run)", second, 1e-5, 1e-5)
	d.compare("dlogits (in place, second run)", secondD, 1e-6, 1e-4)
}
