package trainer

import (
	"math"
	"testing"

	"github.com/houlsby/adapters/backend"
	cpu "github.com/houlsby/adapters/cpu_fallback"
)

// The expected LRs are what transformers 4.57.6's
// get_linear_schedule_with_warmup(optimizer, 10, 100) gives at steps 0, 5,
// 10, 55 and 100 (checked in .venv-ref: 0, 5e-4, 1e-3, 5e-4, 0).
func TestScheduleLR(t *testing.T) {
	s := NewSchedule(1e-3, 100, 0.1) // warmup ceil(10) = 10
	if s.Warmup != 10 {
		t.Fatalf("warmup %d", s.Warmup)
	}
	for step, want := range map[int]float64{0: 0, 5: 5e-4, 10: 1e-3, 55: 5e-4, 100: 0, 120: 0} {
		if got := s.LR(step); math.Abs(got-want) > 1e-15 {
			t.Errorf("LR(%d) = %g, want %g", step, got, want)
		}
	}
	if NewSchedule(1, 7, 0.1).Warmup != 1 { // ceil(0.7)
		t.Error("warmup rounds up")
	}
	if s := NewSchedule(2, 4, 0); s.LR(0) != 2 || s.LR(2) != 1 {
		t.Errorf("no warmup: %v %v", s.LR(0), s.LR(2))
	}
}

func TestDecayGroups(t *testing.T) {
	for name, want := range map[string]float64{
		"encoder.layer.0.output.adapter.down.weight": 0.01, "encoder.layer.0.output.adapter.down.bias": 0,
		"embeddings.LayerNorm.weight": 0, "encoder.layer.3.attention.output.LayerNorm.weight": 0,
		"classifier.weight": 0.01, "classifier.bias": 0, "pooler.dense.weight": 0.01,
	} {
		if got := DecayFor(name, 0.01); got != want {
			t.Errorf("DecayFor(%s) = %v, want %v", name, got, want)
		}
	}
}

func upload(t *testing.T, be backend.Backend, v []float32) backend.Tensor {
	t.Helper()
	x, err := be.Alloc(backend.F32, len(v))
	if err != nil {
		t.Fatal(err)
	}
	if err := be.Upload(x, v); err != nil {
		t.Fatal(err)
	}
	return x
}

func downloadT(t *testing.T, be backend.Backend, x backend.Tensor) []float32 {
	t.Helper()
	out := make([]float32, x.Len())
	if err := be.Download(out, x); err != nil {
		t.Fatal(err)
	}
	return out
}

// GradNorm over an arena: √(3² + 4² + 12²) = 13; an Inf gives Inf.
func TestGradNorm(t *testing.T) {
	be := cpu.New()
	out := upload(t, be, []float32{0})
	if n, err := GradNorm(be, out, upload(t, be, []float32{3, 4, 12, 99}), 3); err != nil || n != 13 {
		t.Errorf("GradNorm = %v %v", n, err)
	}
	if n, _ := GradNorm(be, out, upload(t, be, []float32{1, float32(math.Inf(1))}), 2); !math.IsInf(n, 1) {
		t.Errorf("inf gradient gave norm %v", n)
	}
}

// Two AdamW steps over one arena holding a weight (decays) and a bias (does
// not) with padding between them, against the update rule written out in
// float64; the padding stays zero.
func TestAdamWUpdate(t *testing.T) {
	be := cpu.New()
	w0 := []float32{0.5, -1}
	g := []float32{0.1, -0.2}
	// Arena: x.weight at 0, padding at 2..3, x.bias at 4.
	params := upload(t, be, []float32{w0[0], w0[1], 0, 0, w0[0], w0[1]})
	grads := upload(t, be, []float32{g[0], g[1], 0, 0, g[0], g[1]})
	slots := []Slot{{Name: "x.weight", Offset: 0, Shape: []int{2}}, {Name: "x.bias", Offset: 4, Shape: []int{2}}}
	o, err := NewAdamW(be, params, grads, 6, slots, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Free()
	lrs := []float64{1e-2, 5e-3}
	for _, lr := range lrs {
		if err := o.Update(lr); err != nil {
			t.Fatal(err)
		}
	}
	got := downloadT(t, be, params)
	for pi, wd := range []float64{0.1, 0} {
		for i := range w0 {
			w, m, v := float64(w0[i]), 0.0, 0.0
			for s, lr := range lrs {
				gi := float64(g[i])
				m = 0.9*m + 0.1*gi
				v = 0.999*v + 0.001*gi*gi
				mh := m / (1 - math.Pow(0.9, float64(s+1)))
				vh := v / (1 - math.Pow(0.999, float64(s+1)))
				w -= lr * wd * w
				w -= lr * mh / (math.Sqrt(vh) + 1e-8)
			}
			// float32 storage of w, m, v over two steps: a few ulps of |w| ~ 1.
			if x := got[slots[pi].Offset+i]; math.Abs(float64(x)-w) > 1e-6 {
				t.Errorf("%s[%d] = %v, want %v", slots[pi].Name, i, x, w)
			}
		}
	}
	if got[2] != 0 || got[3] != 0 {
		t.Errorf("padding changed: %v", got[2:4])
	}
	if o.Step != 2 {
		t.Errorf("step %d", o.Step)
	}
}
