package gpu_test

import (
	"math"
	"math/rand"
	"testing"

	cpu "github.com/houlsby/adapters/cpu_fallback"

	"github.com/houlsby/adapters/backend"
	"github.com/houlsby/adapters/gpu"
	"github.com/houlsby/adapters/internal/testassets"
	"github.com/houlsby/adapters/model"
)

// TestModelMatchesCPU runs one training step (forward with dropout, loss,
// backward) of the real all-MiniLM-L6-v2 encoder with Houlsby adapters on
// the gpu backend over the emulator, and compares the loss and every
// trainable gradient with the CPU backend. It checks the launchers and
// kernels under the model's real call pattern (views, strided [CLS] rows,
// fused QKV, dropout seeds, frozen-means-free) in float32 and bf16 modes.
func TestModelMatchesCPU(t *testing.T) {
	if testing.Short() {
		t.Skip("a full encoder step in the emulator takes several seconds; skipped with -short")
	}
	dir := testassets.ModelDir()
	testassets.Require(t, "make assets", dir)
	ck, err := model.LoadCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	modelMatchesCPU(t, ck, func(t *testing.T) gpu.Device { return emuDevice(t) })
}

// modelMatchesCPU runs the comparison of TestModelMatchesCPU for checkpoint
// ck on the devices newDev returns (the emulator here, the GPU in
// model_cuda_test.go).
func modelMatchesCPU(t *testing.T, ck *model.Checkpoint, newDev func(t *testing.T) gpu.Device) {
	opts := model.Options{
		MaxBatch: 2, MaxSeq: 12,
		Adapter: &model.AdapterOptions{M: 32, Act: backend.GELU, Attention: true, FFN: true, Init: "near_identity", Seed: 5},
		Head:    model.HeadOptions{Kind: model.HeadClassification, NumLabels: 2},
		Seed:    3,
	}
	r := rand.New(rand.NewSource(11))
	const B, T = 2, 12
	bt := &model.Batch{B: B, T: T, IDs: make([]int32, B*T), Mask: make([]int32, B*T), Labels: []int32{0, 1}}
	for i := range bt.IDs {
		if i%T < 9 || i < T { // the second sequence has 3 padding tokens
			bt.IDs[i] = int32(1000 + r.Intn(min(20000, ck.Config.VocabSize-1000)))
			bt.Mask[i] = 1
		}
	}
	bt.IDs[0], bt.IDs[T] = 101, 101 // [CLS]

	step := func(be backend.Backend) (float32, map[string][]float32) {
		m, err := model.New(be, ck, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Free()
		loss, _, err := m.Forward(bt, true, 42)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Backward(); err != nil {
			t.Fatal(err)
		}
		grads := map[string][]float32{}
		for _, p := range m.Params() {
			if p.Grad == nil {
				continue
			}
			g := make([]float32, p.Grad.Len())
			if err := be.Download(g, p.Grad); err != nil {
				t.Fatal(err)
			}
			grads[p.Name] = g
		}
		return loss, grads
	}
	wantLoss, want := step(cpu.New())
	if len(want) == 0 {
		t.Fatal("no trainable gradients")
	}
	for _, tc := range []struct {
		name       string
		bf16       bool
		lossRel    float64
		atol, rtol float64
	}{
		// float32: both backends compute in fp32 in different orders
		// (GEMMs of K <= 1536, LayerNorm rows of 384, 6 layers); the model's
		// own CPU-vs-float64 test finds ~1e-6 relative differences, so
		// 1e-4 relative on the loss and 1e-5 + 1e-3·|g| on gradients leave
		// wide margins while catching any indexing error (which is O(|g|)).
		{"f32", false, 1e-4, 1e-5, 1e-3},
		// bf16 storage: every activation is rounded to 8 bits (u = 2^-8)
		// and the frozen GEMMs round their F32 operand too; through 6
		// layers the relative error of hidden states grows to a few u.
		// The bound here (5% relative on the loss, gradients within
		// 0.1·max|g| of the tensor + 10%) is what mixed-precision training
		// tolerates, not a tight bound; it still fails for a wrong sign,
		// index or missing term.
		{"bf16", true, 0.05, 0, 0.1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := gpu.New(newDev(t), gpu.Options{BF16: tc.bf16})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			loss, got := step(g)
			t.Logf("loss gpu %v, cpu %v", loss, wantLoss)
			if math.Abs(float64(loss-wantLoss)) > tc.lossRel*math.Abs(float64(wantLoss)) {
				t.Errorf("loss %v, cpu %v", loss, wantLoss)
			}
			worst, worstName := 0.0, ""
			for name, w := range want {
				gv := got[name]
				if len(gv) != len(w) {
					t.Fatalf("%s: %d gradient values, cpu %d", name, len(gv), len(w))
				}
				var maxAbs float64
				for _, v := range w {
					maxAbs = math.Max(maxAbs, math.Abs(float64(v)))
				}
				atol := tc.atol
				if tc.bf16 {
					atol = 0.1 * maxAbs
				}
				for i := range w {
					d := math.Abs(float64(gv[i] - w[i]))
					if d > atol+tc.rtol*math.Abs(float64(w[i])) {
						t.Fatalf("%s grad[%d] = %v, cpu %v (|diff| %g)", name, i, gv[i], w[i], d)
					}
					if maxAbs > 0 && d/maxAbs > worst {
						worst, worstName = d/maxAbs, name
					}
				}
			}
			t.Logf("%d gradient tensors; worst |diff|/max|g| = %.3g (%s)", len(want), worst, worstName)
		})
	}
}
