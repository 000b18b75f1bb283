package cpu

import (
	"math/rand/v2"
	"testing"

	"github.com/houlsby/adapters/backend"
)

// TestNoPanicOnBadArguments calls every op many times with random small
// sizes (some negative), tensors of random lengths and dtypes (some nil or
// freed), random ids, labels and probabilities. Any outcome but a panic is
// accepted: errors are the contract's answer to bad arguments, and when the
// arguments happen to be valid the op simply runs.
func TestNoPanicOnBadArguments(t *testing.T) {
	be := New()
	r := rand.New(rand.NewPCG(7, 7))
	size := func() int { return r.IntN(8) - 1 }
	ten := func() backend.Tensor {
		switch r.IntN(10) {
		case 0:
			return nil
		case 1:
			x, _ := be.Alloc(backend.F32, 3)
			be.Free(x)
			return x
		case 2, 3:
			x, _ := be.Alloc(backend.I32, r.IntN(60))
			for i, d := 0, x.(*Tensor).Ints; i < len(d); i++ {
				d[i] = int32(r.IntN(12) - 2)
			}
			return x
		}
		x, _ := be.Alloc(backend.F32, r.IntN(200))
		for i, d := 0, x.(*Tensor).Data; i < len(d); i++ {
			d[i] = float32(r.NormFloat64())
		}
		return x
	}
	prob := func() float32 { return []float32{-0.5, 0, 0.3, 1, 2}[r.IntN(5)] }
	act := func() backend.Act { return backend.Act(r.IntN(4)) }
	calls := []func() error{
		func() error {
			return be.Gemm(ten(), ten(), ten(), backend.MatMul{TransA: r.IntN(2) == 0, TransB: r.IntN(2) == 0,
				M: size(), N: size(), K: size(), Alpha: 1, Beta: 0.5, LdA: size(), LdB: size(), LdC: size(),
				Batch: size(), StrideA: size() * 3, StrideB: size() * 3, StrideC: size() * 3})
		},
		func() error { return be.AddBias(ten(), ten(), size(), size()) },
		func() error { return be.BiasGrad(ten(), ten(), size(), size()) },
		func() error { return be.Add(ten(), ten(), ten(), size()) },
		func() error { return be.Scale(ten(), 2, size()) },
		func() error { return be.SumSquares(ten(), ten(), size()*20) },
		func() error {
			return be.LayerNormForward(ten(), ten(), ten(), ten(), ten(), ten(), size(), size(), 1e-5)
		},
		func() error {
			return be.LayerNormBackward(ten(), ten(), ten(), ten(), ten(), ten(), ten(), ten(), size(), size())
		},
		func() error { return be.ActForward(ten(), ten(), size(), act()) },
		func() error { return be.ActBackward(ten(), ten(), ten(), size(), act()) },
		func() error { return be.MaskedSoftmaxForward(ten(), ten(), ten(), size(), size(), size(), 0.5) },
		func() error { return be.MaskedSoftmaxBackward(ten(), ten(), ten(), size(), size(), 0.5) },
		func() error { return be.TanhForward(ten(), ten(), size()) },
		func() error { return be.TanhBackward(ten(), ten(), ten(), size()) },
		func() error { return be.DropoutForward(ten(), ten(), size(), prob(), 1) },
		func() error { return be.DropoutBackward(ten(), ten(), size(), prob(), 1) },
		func() error {
			return be.AttentionForward(ten(), ten(), ten(), ten(), size(), size(), size(), size(), prob(), 1)
		},
		func() error {
			return be.AttentionBackward(ten(), ten(), ten(), ten(), ten(), size(), size(), size(), size(), prob(), 1)
		},
		func() error { return be.EmbeddingForward(ten(), ten(), ten(), size(), size(), r.IntN(2) == 0) },
		func() error { return be.EmbeddingBackward(ten(), ten(), ten(), size(), size()) },
		func() error {
			return be.AdapterForward(ten(), ten(), ten(), ten(), ten(), ten(), ten(), size(), size(), size(), act())
		},
		func() error {
			return be.AdapterBackward(ten(), ten(), ten(), ten(), ten(), ten(), ten(), ten(), ten(), ten(), size(), size(), size(), act())
		},
		func() error { return be.SoftmaxCrossEntropy(ten(), ten(), ten(), ten(), size(), size(), 1) },
		func() error { return be.MSE(ten(), ten(), ten(), ten(), size(), 1) },
		func() error {
			return be.AdamWStep(ten(), ten(), ten(), ten(), ten(), size(), backend.AdamW{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, Step: size()})
		},
		func() error { _, err := be.View(ten(), size(), size(), size()); return err },
		func() error { return be.Copy(ten(), ten()) },
		func() error { return be.Upload(ten(), make([]float32, r.IntN(50))) },
		func() error { return be.DownloadInt32(make([]int32, r.IntN(50)), ten()) },
	}
	const iterations = 400
	errs := 0
	for i := 0; i < iterations; i++ {
		for j, call := range calls {
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("call %d (iteration %d) panicked: %v", j, i, p)
					}
				}()
				if err := call(); err != nil {
					errs++
				}
			}()
		}
	}
	t.Logf("%d calls, %d returned errors", iterations*len(calls), errs)
	if errs == 0 {
		t.Fatal("no call returned an error; the random arguments are not exercising validation")
	}
}
