package model

import (
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/houlsby/adapters/backend"
	cpu "github.com/houlsby/adapters/cpu_fallback"
)

func classification(n int) HeadOptions { return HeadOptions{Kind: HeadClassification, NumLabels: n} }

func newTiny(t *testing.T, b backend.Backend, ck *Checkpoint, o Options) *Model {
	t.Helper()
	if o.MaxBatch == 0 {
		o.MaxBatch, o.MaxSeq = 3, 6
	}
	if o.Head.Kind == "" {
		o.Head = classification(3)
	}
	m, err := New(b, ck, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Free)
	return m
}

func download(t *testing.T, b backend.Backend, x backend.Tensor) []float32 {
	t.Helper()
	v := make([]float32, x.Len())
	if err := b.Download(v, x); err != nil {
		t.Fatal(err)
	}
	return v
}

func hiddenHost(t *testing.T, m *Model) []float32 {
	t.Helper()
	h, err := m.Hidden()
	if err != nil {
		t.Fatal(err)
	}
	return download(t, m.b, h)
}

// TestFrozenTensorsHaveNoGradient: only trainable tensors get a gradient
// buffer, and the gradient arena holds exactly the trainable elements (plus
// alignment padding).
func TestFrozenTensorsHaveNoGradient(t *testing.T) {
	ck := randomCheckpoint(tinyConfig(), false, 1)
	m := newTiny(t, cpu.New(), ck, Options{Adapter: adapterOpts(backend.ReLU),
		Trainable: func(n string) bool { return strings.Contains(n, ".adapter.") || strings.Contains(n, "LayerNorm") }})
	nTrain, nFrozen, elems := 0, 0, 0
	for _, p := range m.Params() {
		switch {
		case p.Trainable && p.Grad == nil:
			t.Errorf("trainable %s has no gradient buffer", p.Name)
		case p.Trainable && !sameShape(p.Grad.Shape(), p.Shape):
			t.Errorf("%s: gradient shape %v, want %v", p.Name, p.Grad.Shape(), p.Shape)
		case !p.Trainable && p.Grad != nil:
			t.Errorf("frozen %s has a gradient buffer", p.Name)
		}
		if p.Trainable {
			nTrain++
			elems += p.Len()
			if p.T.DType() != backend.F32 {
				t.Errorf("trainable %s stored as %v, want F32", p.Name, p.T.DType())
			}
		} else {
			nFrozen++
			if p.T.DType() != m.b.FrozenDType() {
				t.Errorf("frozen %s stored as %v, want %v", p.Name, p.T.DType(), m.b.FrozenDType())
			}
		}
		if !sameShape(p.T.Shape(), p.Shape) {
			t.Errorf("%s: tensor shape %v, want %v", p.Name, p.T.Shape(), p.Shape)
		}
	}
	// 2 layers × 2 adapters × 4 tensors, 5 LayerNorms × 2, created pooler 2, classifier 2.
	if nTrain != 16+10+2+2 {
		t.Errorf("%d trainable tensors, want 30", nTrain)
	}
	pa, ga, gl := m.TrainArena()
	if gl < elems || gl >= elems+nTrain*arenaAlign || pa.Len() != gl || ga.Len() != gl {
		t.Errorf("trainable arenas hold %d (%d, %d) elements for %d trainable ones", gl, pa.Len(), ga.Len(), elems)
	}
	for _, p := range m.Params() {
		if p.Trainable != (p.Offset >= 0) {
			t.Errorf("%s: trainable %v but offset %d", p.Name, p.Trainable, p.Offset)
		}
	}
	total, trainable := m.NumParams()
	if trainable != elems || total <= trainable {
		t.Errorf("NumParams = %d, %d; want trainable %d", total, trainable, elems)
	}
	// Nothing trainable: no gradient arena at all.
	ck2 := randomCheckpoint(tinyConfig(), true, 2)
	m2 := newTiny(t, cpu.New(), ck2, Options{Trainable: func(string) bool { return false }})
	for _, p := range m2.Params() {
		if p.Grad != nil && p.layer < m2.L {
			t.Errorf("%s has a gradient with nothing in the encoder trainable", p.Name)
		}
	}
}

// TestAdapterIdentityAtInit: zero-initialised adapters (W_up = b_up = 0)
// leave the hidden state and logits bitwise unchanged; near-identity ones
// change them slightly.
func TestAdapterIdentityAtInit(t *testing.T) {
	ck := randomCheckpoint(tinyConfig(), true, 3)
	be := cpu.New()
	bt := tinyBatch(false)
	base := newTiny(t, be, ck, Options{Seed: 9})
	_, l0, err := base.Forward(bt, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	logits0 := append([]float32(nil), l0...)
	h0 := hiddenHost(t, base)
	for _, act := range []backend.Act{backend.ReLU, backend.GELU, backend.Swish} {
		m := newTiny(t, be, ck, Options{Seed: 9, Adapter: adapterOpts(act)})
		_, l1, err := m.Forward(bt, false, 0)
		if err != nil {
			t.Fatal(err)
		}
		h1 := hiddenHost(t, m)
		for i := range h0 {
			if math.Float32bits(h0[i]) != math.Float32bits(h1[i]) {
				t.Fatalf("%v adapters at init: hidden[%d] = %v, without adapters %v", act, i, h1[i], h0[i])
			}
		}
		for i := range logits0 {
			if math.Float32bits(logits0[i]) != math.Float32bits(l1[i]) {
				t.Fatalf("%v adapters at init: logit %d = %v, without adapters %v", act, i, l1[i], logits0[i])
			}
		}
		// W_down is not zero (else W_up could never learn).
		if ss := sumSquares(t, m, m.Param(AdapterPrefix(0, false)+"down.weight")); ss == 0 {
			t.Errorf("%v: adapter down.weight initialised to zero", act)
		}
	}
	o := adapterOpts(backend.ReLU)
	o.Init = InitNearIdentity
	m := newTiny(t, be, ck, Options{Seed: 9, Adapter: o})
	if _, _, err := m.Forward(bt, false, 0); err != nil {
		t.Fatal(err)
	}
	h2 := hiddenHost(t, m)
	diff := 0.0
	for i := range h0 {
		diff = math.Max(diff, math.Abs(float64(h2[i]-h0[i])))
	}
	// std 1e-3 weights: the adapter adds O(1e-3·1e-3·C·M) ≈ 1e-4 before LayerNorm.
	if diff == 0 || diff > 1e-2 {
		t.Errorf("near-identity adapters moved the hidden state by %g, want in (0, 1e-2]", diff)
	}
}

func sumSquares(t *testing.T, m *Model, p *Param) float64 {
	t.Helper()
	var s float64
	for _, x := range download(t, m.b, p.T) {
		s += float64(x) * float64(x)
	}
	return s
}

// recorder wraps a backend and records which tensors receive parameter
// gradients and how often each op runs.
type recorder struct {
	backend.Backend
	paramGrads map[backend.Tensor]bool
	calls      map[string]int
}

func newRecorder(b backend.Backend) *recorder {
	return &recorder{Backend: b, paramGrads: map[backend.Tensor]bool{}, calls: map[string]int{}}
}

func (r *recorder) reset() { clear(r.paramGrads); clear(r.calls) }

func (r *recorder) grad(ts ...backend.Tensor) {
	for _, t := range ts {
		if t != nil {
			r.paramGrads[t] = true
		}
	}
}

func (r *recorder) Gemm(c, a, b backend.Tensor, p backend.MatMul) error {
	r.calls["Gemm"]++
	if p.Beta != 0 { // accumulation: a weight gradient
		r.grad(c)
	}
	return r.Backend.Gemm(c, a, b, p)
}

func (r *recorder) BiasGrad(db, dout backend.Tensor, N, C int) error {
	r.calls["BiasGrad"]++
	r.grad(db)
	return r.Backend.BiasGrad(db, dout, N, C)
}

func (r *recorder) LayerNormBackward(dinp, dw, db, dout, inp, w, mean, rstd backend.Tensor, N, C int) error {
	r.calls["LayerNormBackward"]++
	r.grad(dw, db)
	return r.Backend.LayerNormBackward(dinp, dw, db, dout, inp, w, mean, rstd, N, C)
}

func (r *recorder) EmbeddingBackward(dt, dout, ids backend.Tensor, N, C int) error {
	r.calls["EmbeddingBackward"]++
	r.grad(dt)
	return r.Backend.EmbeddingBackward(dt, dout, ids, N, C)
}

// The recorder passes the fused capabilities of the backend it wraps
// through (backend.FusedAdapter, backend.FusedAttention), so the model
// makes the same calls as on the bare backend.

func (r *recorder) AdapterForward(out, z, inp, wd, bd, wu, bu backend.Tensor, N, C, M int, act backend.Act) error {
	return backend.AdapterForward(r.Backend, out, z, inp, wd, bd, wu, bu, N, C, M, act)
}

func (r *recorder) AdapterBackward(dinp, dWd, dBd, dWu, dBu, dout, inp, z, wd, wu backend.Tensor, N, C, M int, act backend.Act) error {
	r.calls["AdapterBackward"]++
	r.grad(dWd, dBd, dWu, dBu)
	return backend.AdapterBackward(r.Backend, dinp, dWd, dBd, dWu, dBu, dout, inp, z, wd, wu, N, C, M, act)
}

func (r *recorder) AttentionForward(out, probs, qkv, mask backend.Tensor, B, T, NH, HS int, p float32, seed uint64) error {
	return backend.AttentionForward(r.Backend, out, probs, qkv, mask, B, T, NH, HS, p, seed)
}

func (r *recorder) AttentionBackward(dqkv, dout, qkv, probs, mask backend.Tensor, B, T, NH, HS int, p float32, seed uint64) error {
	r.calls["AttentionBackward"]++
	return backend.AttentionBackward(r.Backend, dqkv, dout, qkv, probs, mask, B, T, NH, HS, p, seed)
}

func (r *recorder) ActBackward(dinp, dout, inp backend.Tensor, n int, act backend.Act) error {
	r.calls["ActBackward"]++
	return r.Backend.ActBackward(dinp, dout, inp, n, act)
}

// TestBackwardWritesOnlyTrainableGradients: with adapters (+ LayerNorms and
// head) trainable, every parameter-gradient write of Backward lands in a
// trainable tensor's gradient buffer, every such buffer gets written and
// ends nonzero, and no frozen weight changes.
func TestBackwardWritesOnlyTrainableGradients(t *testing.T) {
	for _, tc := range []struct {
		name      string
		trainable func(string) bool
	}{
		{"adapters", func(n string) bool { return strings.Contains(n, ".adapter.") }},
		{"adapters+LayerNorm", func(n string) bool { return strings.Contains(n, ".adapter.") || strings.Contains(n, "LayerNorm") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder(cpu.New())
			ck := randomCheckpoint(tinyConfig(), true, 4)
			m := newTiny(t, rec, ck, Options{Adapter: adapterOpts(backend.GELU), Trainable: tc.trainable})
			randomizeTrainable(t, m, 5)
			allowed := map[backend.Tensor]string{}
			before := map[string][]float32{}
			for _, p := range m.Params() {
				if p.Trainable {
					allowed[p.Grad] = p.Name
				} else {
					before[p.Name] = download(t, rec, p.T)
				}
			}
			if _, _, err := m.Forward(tinyBatch(false), true, 1); err != nil {
				t.Fatal(err)
			}
			rec.reset()
			if err := m.Backward(); err != nil {
				t.Fatal(err)
			}
			for g := range rec.paramGrads {
				if _, ok := allowed[g]; !ok {
					t.Errorf("Backward accumulated into %v, which is no trainable tensor's gradient", g.Shape())
				}
			}
			for g, name := range allowed {
				if !rec.paramGrads[g] {
					t.Errorf("Backward never wrote the gradient of trainable %s", name)
				}
				var ss float64
				for _, x := range download(t, rec, g) {
					ss += float64(x) * float64(x)
				}
				if ss == 0 {
					t.Errorf("gradient of %s is zero", name)
				}
			}
			for _, p := range m.Params() {
				if p.Trainable {
					continue
				}
				now := download(t, rec, p.T)
				for i := range now {
					if math.Float32bits(now[i]) != math.Float32bits(before[p.Name][i]) {
						t.Fatalf("frozen %s changed during forward/backward", p.Name)
					}
				}
			}
			if rec.calls["EmbeddingBackward"] != 0 {
				t.Errorf("EmbeddingBackward ran %d times with frozen embeddings", rec.calls["EmbeddingBackward"])
			}
			if !m.anyTrainable || rec.calls["AdapterBackward"] != 4 {
				t.Errorf("AdapterBackward ran %d times, want 4", rec.calls["AdapterBackward"])
			}
		})
	}
}

// TestBackwardStopsAtLowestTrainable: with only layer 1's FFN adapter (and
// the head) trainable, backward touches layer 1's output LayerNorm and
// adapter only: no attention, GELU or embedding backward anywhere.
func TestBackwardStopsAtLowestTrainable(t *testing.T) {
	rec := newRecorder(cpu.New())
	ck := randomCheckpoint(tinyConfig(), true, 6)
	m := newTiny(t, rec, ck, Options{Adapter: &AdapterOptions{M: 4, Act: backend.ReLU, FFN: true, Layers: []int{1}}})
	if m.lowestLayer != 1 || m.lowestStage != stageAdapter2 {
		t.Fatalf("lowest trainable at layer %d stage %d, want 1 %d", m.lowestLayer, m.lowestStage, stageAdapter2)
	}
	// Only layer 1 keeps activations; layer 0 uses the shared set.
	if m.acts[0] == m.acts[1] {
		t.Error("layer 1 shares its activations with layer 0 but runs backward")
	}
	if _, _, err := m.Forward(tinyBatch(false), true, 1); err != nil {
		t.Fatal(err)
	}
	rec.reset()
	if err := m.Backward(); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"AttentionBackward": 0, "ActBackward": 0, "EmbeddingBackward": 0, "LayerNormBackward": 1, "AdapterBackward": 1}
	for op, n := range want {
		if rec.calls[op] != n {
			t.Errorf("%s ran %d times, want %d", op, rec.calls[op], n)
		}
	}
	// Head: classifier dW (accumulating) and dx, then the frozen pooler's
	// dx into the [CLS] rows of d hidden: 3 GEMMs in all.
	if rec.calls["Gemm"] != 3 {
		t.Errorf("Backward ran %d GEMMs, want 3", rec.calls["Gemm"])
	}
	// Nothing trainable in the encoder or head below the classifier: no
	// activation set per layer.
	m2 := newTiny(t, cpu.New(), randomCheckpoint(tinyConfig(), true, 7), Options{})
	if m2.acts[0] != m2.acts[1] {
		t.Error("feature extraction keeps a separate activation set per layer")
	}
}

// TestCPUMatchesFloat64: the float32 CPU backend and the float64 reference
// agree on the hidden state, loss and every gradient of the whole model
// (all tensors trainable, dropout on).
//
// Tolerance |cpu-ref| <= 1e-4 + 1e-3·|ref|: float32 rounding (ε = 6e-8)
// accumulated over sums of up to 32 terms per dot product and 2 layers,
// amplified by LayerNorm's 1/σ, gives relative errors ~1e-5 on these O(1)
// values; 1e-3 relative leaves room for cancellation in gradient entries
// that are sums of terms of both signs.
func TestCPUMatchesFloat64(t *testing.T) {
	// Padded with dropout (the float64 backend draws the same masks), and
	// packed (the CPU's own layout) without: hidden-state dropout masks of
	// the two layouts are drawn over different element indices. Hidden
	// states are compared on real tokens (packed, padding rows are 0).
	for _, tc := range []struct {
		name      string
		noPacking bool
		train     bool
	}{{"padded", true, true}, {"packed", false, false}} {
		t.Run(tc.name, func(t *testing.T) {
			ck := randomCheckpoint(tinyConfig(), true, 8)
			opts := Options{Adapter: adapterOpts(backend.GELU), Trainable: allTrainable, Head: classification(3)}
			m64 := newTiny(t, &backend64{}, ck, opts)
			opts.NoPacking = tc.noPacking
			mc := newTiny(t, cpu.New(), ck, opts)
			require.Equal(t, !tc.noPacking, mc.Packed())
			randomizeTrainable(t, mc, 9)
			randomizeTrainable(t, m64, 9)
			bt := tinyBatch(false)
			var hid [2][]float32
			var loss [2]float32
			for i, m := range []*Model{mc, m64} {
				l, _, err := m.Forward(bt, tc.train, 42)
				require.NoError(t, err)
				loss[i] = l
				hid[i] = hiddenHost(t, m)
				require.NoError(t, m.Backward())
			}
			close := func(a, r float32) bool { return math.Abs(float64(a-r)) <= 1e-4+1e-3*math.Abs(float64(r)) }
			if !close(loss[0], loss[1]) {
				t.Errorf("loss: cpu %v, float64 %v", loss[0], loss[1])
			}
			C := mc.C
			for i := range hid[0] {
				if bt.Mask[i/C] == 1 && !close(hid[0][i], hid[1][i]) {
					t.Fatalf("hidden[%d]: cpu %v, float64 %v", i, hid[0][i], hid[1][i])
				}
			}
			worst := 0.0
			for i, p := range mc.Params() {
				g := download(t, mc.b, p.Grad)
				r := download(t, m64.b, m64.Params()[i].Grad)
				for j := range g {
					if !close(g[j], r[j]) {
						t.Fatalf("%s grad[%d]: cpu %v, float64 %v", p.Name, j, g[j], r[j])
					}
					worst = math.Max(worst, math.Abs(float64(g[j]-r[j])))
				}
			}
			t.Logf("loss cpu %v vs float64 %v; worst gradient difference %.3g", loss[0], loss[1], worst)
		})
	}
}

// TestGradientsAccumulate: a second Backward adds the same gradient again
// (parameter gradients +=), and ZeroGrads clears them.
func TestGradientsAccumulate(t *testing.T) {
	m := newTiny(t, &backend64{}, randomCheckpoint(tinyConfig(), true, 10), Options{Adapter: adapterOpts(backend.ReLU), Trainable: allTrainable})
	randomizeTrainable(t, m, 11)
	if _, _, err := m.Forward(tinyBatch(false), true, 3); err != nil {
		t.Fatal(err)
	}
	if err := m.Backward(); err != nil {
		t.Fatal(err)
	}
	g1 := append([]float64(nil), f(m.gradArena)...)
	if err := m.Backward(); err != nil {
		t.Fatal(err)
	}
	nz := 0
	for i, x := range f(m.gradArena) {
		// Not bitwise 2a: a gradient summed over several terms (an embedding
		// row used twice) is accumulated term by term into the old value, so
		// the second pass rounds differently; float64 rounding is ~1e-16.
		if math.Abs(x-2*g1[i]) > 1e-13*math.Abs(x) {
			t.Fatalf("gradient element %d: %v after two backwards, %v after one", i, x, g1[i])
		}
		if x != 0 {
			nz++
		}
	}
	if nz == 0 {
		t.Fatal("all gradients are zero")
	}
	if err := m.ZeroGrads(); err != nil {
		t.Fatal(err)
	}
	for i, x := range f(m.gradArena) {
		if x != 0 {
			t.Fatalf("gradient element %d = %v after ZeroGrads", i, x)
		}
	}
}

// TestDropoutSeeds: training forwards are reproducible for a seed, differ
// between seeds, and evaluation ignores the seed.
func TestDropoutSeeds(t *testing.T) {
	m := newTiny(t, cpu.New(), randomCheckpoint(tinyConfig(), true, 12), Options{Adapter: adapterOpts(backend.ReLU)})
	bt := tinyBatch(false)
	loss := func(train bool, seed uint64) float32 {
		l, _, err := m.Forward(bt, train, seed)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	a, b, c := loss(true, 1), loss(true, 1), loss(true, 2)
	if a != b {
		t.Errorf("same dropout seed, different losses %v and %v", a, b)
	}
	if a == c {
		t.Errorf("different dropout seeds, same loss %v", a)
	}
	if e1, e2 := loss(false, 1), loss(false, 2); e1 != e2 {
		t.Errorf("evaluation depends on the seed: %v vs %v", e1, e2)
	}
}

// TestNoAllocationsPerStep: after a warm-up step, Forward + Backward of the
// same batch shape allocate nothing on the CPU backend.
func TestNoAllocationsPerStep(t *testing.T) {
	m := newTiny(t, cpu.New(), randomCheckpoint(tinyConfig(), true, 13), Options{Adapter: adapterOpts(backend.GELU),
		Trainable: func(n string) bool { return strings.Contains(n, ".adapter.") || strings.Contains(n, "LayerNorm") }})
	bt := tinyBatch(false)
	step := func() {
		if _, _, err := m.Forward(bt, true, 5); err != nil {
			t.Fatal(err)
		}
		if err := m.Backward(); err != nil {
			t.Fatal(err)
		}
	}
	step()
	if n := testing.AllocsPerRun(10, step); n != 0 {
		t.Errorf("%v allocations per training step after warm-up, want 0", n)
	}
	if n := testing.AllocsPerRun(10, func() {
		if _, _, err := m.Forward(bt, false, 0); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("%v allocations per evaluation step after warm-up, want 0", n)
	}
}

// TestNewAndForwardErrors: bad checkpoints, options and batches are errors
// that name the problem.
func TestNewAndForwardErrors(t *testing.T) {
	be := cpu.New()
	ck := randomCheckpoint(tinyConfig(), true, 14)
	missing := randomCheckpoint(tinyConfig(), true, 14)
	delete(missing.Tensors, "encoder.layer.1.intermediate.dense.bias")
	badShape := randomCheckpoint(tinyConfig(), true, 14)
	badShape.Tensors["encoder.layer.0.attention.self.key.weight"] = HostTensor{Shape: []int{16, 15}, Data: make([]float32, 240)}
	for _, tc := range []struct {
		name string
		ck   *Checkpoint
		o    Options
		want string
	}{
		{"missing tensor", missing, Options{Head: classification(2)}, "encoder.layer.1.intermediate.dense.bias"},
		{"bad shape", badShape, Options{Head: classification(2)}, "encoder.layer.0.attention.self.key.weight"},
		{"head kind", ck, Options{Head: HeadOptions{Kind: "ranking"}}, "ranking"},
		{"one label", ck, Options{Head: classification(1)}, "NumLabels"},
		{"adapter M", ck, Options{Head: classification(2), Adapter: &AdapterOptions{M: 0, FFN: true}}, "bottleneck"},
		{"adapter layer", ck, Options{Head: classification(2), Adapter: &AdapterOptions{M: 2, FFN: true, Layers: []int{2}}}, "layer 2"},
		{"adapter init", ck, Options{Head: classification(2), Adapter: &AdapterOptions{M: 2, FFN: true, Init: "xavier"}}, "xavier"},
		{"max seq", ck, Options{Head: classification(2), MaxBatch: 1, MaxSeq: 9}, "MaxSeq"},
	} {
		_, err := New(be, tc.ck, tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New error %v, want one naming %q", tc.name, err, tc.want)
		}
	}
	m := newTiny(t, be, ck, Options{})
	if err := m.Backward(); err == nil {
		t.Error("Backward before Forward succeeded")
	}
	good := tinyBatch(false)
	mut := func(f func(b *Batch)) *Batch {
		b := *good
		b.IDs = append([]int32(nil), good.IDs...)
		b.Mask = append([]int32(nil), good.Mask...)
		f(&b)
		return &b
	}
	for _, tc := range []struct {
		name string
		bt   *Batch
		want string
	}{
		{"id out of range", mut(func(b *Batch) { b.IDs[3] = 20 }), "token id 20"},
		{"batch too large", mut(func(b *Batch) { b.B = 4 }), "MaxBatch"},
		{"ids length", mut(func(b *Batch) { b.IDs = b.IDs[:9] }), "9 ids"},
		{"label range", mut(func(b *Batch) { b.Labels = []int32{3, 0} }), "label 3"},
		{"mask value", mut(func(b *Batch) { b.Mask[0] = 2 }), "mask value 2"},
		{"targets on classifier", mut(func(b *Batch) { b.Labels, b.Targets = nil, []float32{1, 2} }), "regression targets"},
	} {
		_, _, err := m.Forward(tc.bt, false, 0)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Forward error %v, want one naming %q", tc.name, err, tc.want)
		}
	}
	if _, _, err := m.Forward(mut(func(b *Batch) { b.Labels = nil }), false, 0); err != nil {
		t.Fatal(err)
	}
	if err := m.Backward(); err == nil || !strings.Contains(err.Error(), "without labels") {
		t.Errorf("Backward after an unlabelled Forward: %v", err)
	}
}

// TestPoolingValues: "cls" pools the [CLS] row and "mean" the masked mean of
// the last hidden state (checked in float64 against a host computation over
// a batch with padding), and neither has pooler tensors.
func TestPoolingValues(t *testing.T) {
	for _, pooling := range []string{PoolingCLS, PoolingMean} {
		m := newTiny(t, &backend64{}, randomCheckpoint(tinyConfig(), true, 15),
			Options{Head: HeadOptions{Kind: HeadClassification, NumLabels: 3, Pooling: pooling}})
		if m.Param("pooler.dense.weight") != nil || m.Param("pooler.dense.bias") != nil {
			t.Errorf("%s: registry has pooler tensors", pooling)
		}
		bt := tinyBatch(false)
		if _, _, err := m.Forward(bt, false, 0); err != nil {
			t.Fatal(err)
		}
		h := f(m.acts[m.L-1].out)
		got := f(m.headAct.pooled)
		C, T := m.C, bt.T
		for b := 0; b < bt.B; b++ {
			for c := 0; c < C; c++ {
				var want float64
				if pooling == PoolingCLS {
					want = h[(b*T)*C+c]
				} else {
					n := 0
					for tk := 0; tk < T; tk++ {
						if bt.Mask[b*T+tk] == 1 {
							want += h[(b*T+tk)*C+c]
							n++
						}
					}
					want /= float64(n)
				}
				// The weights 1/n reach the backend as float32 (Upload takes
				// []float32): relative error ≤ 2⁻²⁴ ≈ 6e-8 per weight.
				if math.Abs(got[b*C+c]-want) > 2e-7*math.Max(math.Abs(want), 1) {
					t.Fatalf("%s pooling [%d,%d] = %v, want %v", pooling, b, c, got[b*C+c], want)
				}
			}
		}
	}
}
