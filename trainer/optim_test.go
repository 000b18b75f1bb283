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

func TestClipGradients(t *testing.T) {
	be := cpu.New()
	ps := []Param{{Name: "a.weight", Grad: upload(t, be, []float32{3, 0})}, {Name: "b.bias", Grad: upload(t, be, []float32{4})}}
	norm, err := ClipGradients(be, ps, 10)
	if err != nil || norm != 5 {
		t.Fatalf("norm %v %v", norm, err)
	}
	if g := downloadT(t, be, ps[1].Grad); g[0] != 4 {
		t.Errorf("unclipped gradient changed: %v", g)
	}
	norm, _ = ClipGradients(be, ps, 1)
	a, b := downloadT(t, be, ps[0].Grad), downloadT(t, be, ps[1].Grad)
	// Scale 1/(5+1e-6); float32 rounding of the scaled values: 1e-6 relative.
	if norm != 5 || math.Abs(float64(a[0])-3/(5+1e-6)) > 1e-6 || math.Abs(float64(b[0])-4/(5+1e-6)) > 1e-6 {
		t.Errorf("clipped to %v %v", a, b)
	}
	// The one-vector form agrees: √(3² + 4² + 12²) = 13.
	if n, err := VectorNorm(be, upload(t, be, []float32{3, 4, 12}), 3); err != nil || n != 13 {
		t.Errorf("VectorNorm = %v %v", n, err)
	}
	ps[0].Grad = upload(t, be, []float32{float32(math.Inf(1))})
	if n, _ := GlobalNorm(be, ps); !math.IsInf(n, 1) {
		t.Errorf("inf gradient gave norm %v", n)
	}
}

// Two AdamW steps against the update rule written out in float64.
func TestAdamWUpdate(t *testing.T) {
	be := cpu.New()
	w0 := []float32{0.5, -1}
	g := []float32{0.1, -0.2}
	ps := []Param{{Name: "x.weight", T: upload(t, be, w0), Grad: upload(t, be, g)}, {Name: "x.bias", T: upload(t, be, w0), Grad: upload(t, be, g)}}
	o, err := NewAdamW(be, ps, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	lrs := []float64{1e-2, 5e-3}
	for _, lr := range lrs {
		if err := o.Update(be, lr); err != nil {
			t.Fatal(err)
		}
	}
	for pi, wd := range []float64{0.1, 0} {
		got := downloadT(t, be, ps[pi].T)
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
			if math.Abs(float64(got[i])-w) > 1e-6 {
				t.Errorf("%s[%d] = %v, want %v", ps[pi].Name, i, got[i], w)
			}
		}
	}
	if o.Step != 2 {
		t.Errorf("step %d", o.Step)
	}
}
