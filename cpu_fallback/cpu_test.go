package cpu

import (
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"github.com/houlsby/adapters/backend"
)

func TestRounding(t *testing.T) {
	cases := []struct {
		dt      backend.DType
		in, out float32
	}{
		{backend.BF16, 1, 1},
		{backend.BF16, 1 + 1.0/256, 1},                      // tie, rounds to even (1)
		{backend.BF16, 1 + 3.0/256, 1 + 4.0/256},            // tie, rounds to even (1+2⁻⁶)
		{backend.BF16, 1 + 1.0/256 + 1.0/4096, 1 + 1.0/128}, // above the tie
		{backend.BF16, -3.14159265, -3.140625},
		{backend.F16, 1 + 1.0/2048, 1}, // tie, to even
		{backend.F16, 1 + 3.0/2048, 1 + 2.0/1024},
		{backend.F16, 65504, 65504},                // largest finite
		{backend.F16, 65520, float32(math.Inf(1))}, // rounds past it
		{backend.F16, -1e6, float32(math.Inf(-1))},
		{backend.F16, 0x1p-24, 0x1p-24},     // smallest subnormal
		{backend.F16, 0x1p-26, 0},           // below half of it
		{backend.F16, 3 * 0x1p-25, 0x1p-23}, // 1.5 subnormal steps, tie to even (2 steps)
	}
	be := New()
	for _, c := range cases {
		x, err := be.Alloc(c.dt, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := be.Upload(x, []float32{c.in}); err != nil {
			t.Fatal(err)
		}
		got := make([]float32, 1)
		if err := be.Download(got, x); err != nil {
			t.Fatal(err)
		}
		if got[0] != c.out {
			t.Errorf("%v: Upload(%v) stores %v, want %v", c.dt, c.in, got[0], c.out)
		}
	}
	if v := roundBF16(float32(math.NaN())); v == v {
		t.Errorf("roundBF16(NaN) = %v", v)
	}
	// Copy from F32 into BF16 rounds too.
	src, _ := be.Alloc(backend.F32, 2)
	dst, _ := be.Alloc(backend.BF16, 2)
	_ = be.Upload(src, []float32{1 + 1.0/256 + 1.0/4096, 2})
	if err := be.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if d := dst.(*Tensor).Data; d[0] != 1+1.0/128 || d[1] != 2 {
		t.Errorf("Copy F32→BF16 gave %v", d)
	}
}

func TestParallelRangeCoversOnce(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 7, 64, 1000, 4097} {
		for _, grain := range []int{0, 1, 3, 100} {
			hits := make([]int32, n)
			var mu sync.Mutex
			parallelFor(n, grain, func(lo, hi int) {
				mu.Lock()
				defer mu.Unlock()
				for i := lo; i < hi; i++ {
					hits[i]++
				}
			})
			for i, h := range hits {
				if h != 1 {
					t.Fatalf("n=%d grain=%d: index %d run %d times", n, grain, i, h)
				}
			}
		}
	}
	// A nested region runs inline with the same chunks (no deadlock).
	var total, inner, calls int64
	var mu sync.Mutex
	parallelFor(8, 1, func(lo, hi int) {
		parallelFor(100, 1, func(a, b int) {
			mu.Lock()
			inner += int64(b - a)
			mu.Unlock()
		})
		mu.Lock()
		total += int64(hi - lo)
		calls++
		mu.Unlock()
	})
	if total != 8 || inner != 100*calls {
		t.Fatalf("nested parallelFor covered %d outer and %d inner items in %d outer chunks, want 8 and %d", total, inner, calls, 100*calls)
	}
}

// opSequence is a representative training step of one adapter layer on the
// backend: embedding, attention with dropout, adapter, LayerNorm, GELU,
// loss, backward through all of them, and an AdamW step. It returns the
// tensors whose contents depend on every reduction.
type opSequence struct {
	be                                       *Backend
	B, T, NH, HS, C, M, N, V                 int
	ids, mask, labels                        backend.Tensor
	table, qkv, out, probs, z, ad, ln        backend.Tensor
	mean, rstd, w, b, wd, bd, wu, bu         backend.Tensor
	h, logits, loss, dlogits, dh, dq, dadapt backend.Tensor
	dwd, dbd, dwu, dbu, dw, db, dtable, m, v backend.Tensor
	ss, wcls, decay                          backend.Tensor
	starts, pout, lse, pdq                   backend.Tensor
}

func newOpSequence(t testing.TB, B, T, NH, HS, M int) *opSequence {
	be := New()
	C := NH * HS
	N := B * T
	s := &opSequence{be: be, B: B, T: T, NH: NH, HS: HS, C: C, M: M, N: N, V: 3}
	r := rand.New(rand.NewPCG(1, 2))
	alloc := func(dt backend.DType, scale float64, shape ...int) backend.Tensor {
		x, err := be.Alloc(dt, shape...)
		if err != nil {
			t.Fatal(err)
		}
		if dt == backend.F32 && scale > 0 {
			d := x.(*Tensor).Data
			for i := range d {
				d[i] = float32((2*r.Float64() - 1) * scale)
			}
		}
		return x
	}
	s.ids, s.mask, s.labels = alloc(backend.I32, 0, N), alloc(backend.I32, 0, B, T), alloc(backend.I32, 0, N)
	for i := 0; i < N; i++ {
		s.ids.(*Tensor).Ints[i] = int32(i * 7 % 50)
		s.labels.(*Tensor).Ints[i] = int32(i%4) - 1
	}
	for b := 0; b < B; b++ {
		for i := 0; i < T-b%T; i++ {
			s.mask.(*Tensor).Ints[b*T+i] = 1
		}
	}
	s.table = alloc(backend.F32, 1, 50, 3*C)
	s.qkv, s.out, s.probs = alloc(backend.F32, 0, N, 3*C), alloc(backend.F32, 0, N, C), alloc(backend.F32, 0, B, NH, T, T)
	s.z, s.ad, s.ln = alloc(backend.F32, 0, N, M), alloc(backend.F32, 0, N, C), alloc(backend.F32, 0, N, C)
	s.mean, s.rstd = alloc(backend.F32, 0, N), alloc(backend.F32, 0, N)
	s.w, s.b = alloc(backend.F32, 1, C), alloc(backend.F32, 1, C)
	s.wd, s.bd, s.wu, s.bu = alloc(backend.F32, 0.2, M, C), alloc(backend.F32, 0.2, M), alloc(backend.F32, 0.2, C, M), alloc(backend.F32, 0.2, C)
	s.h, s.logits, s.loss, s.dlogits = alloc(backend.F32, 0, N, C), alloc(backend.F32, 0, N, s.V), alloc(backend.F32, 0, N), alloc(backend.F32, 0, N, s.V)
	s.wcls = alloc(backend.F32, 0.3, s.V, C)
	s.dh, s.dq, s.dadapt = alloc(backend.F32, 0, N, C), alloc(backend.F32, 0, N, 3*C), alloc(backend.F32, 0, N, C)
	s.dwd, s.dbd, s.dwu, s.dbu = alloc(backend.F32, 0, M, C), alloc(backend.F32, 0, M), alloc(backend.F32, 0, C, M), alloc(backend.F32, 0, C)
	s.dw, s.db, s.dtable = alloc(backend.F32, 0, C), alloc(backend.F32, 0, C), alloc(backend.F32, 0, 50, 3*C)
	s.m, s.v, s.ss = alloc(backend.F32, 0, M, C), alloc(backend.F32, 0, M, C), alloc(backend.F32, 0, 1)
	s.decay = alloc(backend.I32, 0, 4) // rows 1 and 3..M-1 of wd decay
	copy(s.decay.(*Tensor).Ints, []int32{int32(C), int32(2 * C), int32(3 * C), int32(M * C)})
	// Packed attention over the mask's real lengths (T - b mod T).
	s.starts = alloc(backend.I32, 0, B+1)
	for b := 0; b < B; b++ {
		s.starts.(*Tensor).Ints[b+1] = s.starts.(*Tensor).Ints[b] + int32(T-b%T)
	}
	s.pout, s.lse, s.pdq = alloc(backend.F32, 0, N, C), alloc(backend.F32, 0, NH, N), alloc(backend.F32, 0, N, 3*C)
	return s
}

// step runs the sequence once; any error fails the test.
func (s *opSequence) step(t testing.TB) {
	be, N, C, M := s.be, s.N, s.C, s.M
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(be.EmbeddingForward(s.qkv, s.ids, s.table, N, 3*C, false))
	// A strided batch (head 0's scores of every sequence), overwritten below.
	must(be.Gemm(s.probs, s.qkv, s.qkv, backend.MatMul{TransB: true, M: s.T, N: s.T, K: s.HS, Alpha: 1,
		LdA: 3 * C, LdB: 3 * C, Batch: s.B, StrideA: s.T * 3 * C, StrideB: s.T * 3 * C, StrideC: s.NH * s.T * s.T}))
	must(be.AttentionForward(s.out, s.probs, s.qkv, s.mask, s.B, s.T, s.NH, s.HS, 0.1, 7))
	must(be.AdapterForward(s.ad, s.z, s.out, s.wd, s.bd, s.wu, s.bu, N, C, M, backend.GELU))
	must(be.LayerNormForward(s.ln, s.mean, s.rstd, s.ad, s.w, s.b, N, C, 1e-12))
	must(be.ActForward(s.h, s.ln, N*C, backend.GELU))
	must(be.DropoutForward(s.h, s.h, N*C, 0.1, 9))
	must(be.Gemm(s.logits, s.h, s.wcls, backend.MatMul{TransB: true, M: N, N: s.V, K: C, Alpha: 1}))
	must(be.SoftmaxCrossEntropy(s.loss, s.dlogits, s.logits, s.labels, N, s.V, 1/float32(N)))
	must(be.Gemm(s.dh, s.dlogits, s.wcls, backend.MatMul{M: N, N: C, K: s.V, Alpha: 1}))
	must(be.DropoutBackward(s.dh, s.dh, N*C, 0.1, 9))
	must(be.ActBackward(s.dh, s.dh, s.ln, N*C, backend.GELU))
	must(be.LayerNormBackward(s.dadapt, s.dw, s.db, s.dh, s.ad, s.w, s.mean, s.rstd, N, C))
	must(be.AdapterBackward(s.dh, s.dwd, s.dbd, s.dwu, s.dbu, s.dadapt, s.out, s.z, s.wd, s.wu, N, C, M, backend.GELU))
	must(be.AttentionBackward(s.dq, s.dh, s.qkv, s.probs, s.mask, s.B, s.T, s.NH, s.HS, 0.1, 7))
	must(be.PackedAttentionForward(s.pout, s.lse, s.qkv, s.starts, s.B, s.T, s.NH, s.HS, 0.1, 7))
	must(be.PackedAttentionBackward(s.pdq, s.dh, s.qkv, s.pout, s.lse, s.starts, s.B, s.T, s.NH, s.HS, 0.1, 7))
	must(be.EmbeddingBackward(s.dtable, s.dq, s.ids, N, 3*C))
	must(be.BiasGrad(s.dbu, s.dh, N, C))
	must(be.Add(s.dh, s.dh, s.dadapt, N*C))
	must(be.Scale(s.dh, 0.5, N*C))
	must(be.SumSquares(s.ss, s.dwd, M*C))
	must(be.AdamWStep(s.wd, s.dwd, s.m, s.v, s.decay, M*C, backend.AdamW{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01, Step: 1}))
	must(be.TanhForward(s.out, s.ad, N*C))
	must(be.TanhBackward(s.dadapt, s.dh, s.out, N*C))
}

func (s *opSequence) results() [][]float32 {
	var out [][]float32
	for _, x := range []backend.Tensor{s.loss, s.dq, s.dtable, s.dwd, s.dbd, s.dwu, s.dbu, s.dw, s.db, s.ss, s.wd, s.dadapt, s.dh, s.pout, s.lse, s.pdq} {
		out = append(out, append([]float32(nil), x.(*Tensor).Data...))
	}
	return out
}

// TestDeterministicAcrossProcs runs the op sequence under GOMAXPROCS 1, 2
// and 3 (chunkings differ) twice each and demands bitwise-identical results:
// every reduction's order is fixed by the sizes alone.
func TestDeterministicAcrossProcs(t *testing.T) {
	var ref [][]float32
	for _, procs := range []int{1, 2, 3, 1, 2} {
		old := runtime.GOMAXPROCS(procs)
		s := newOpSequence(t, 3, 17, 3, 8, 5)
		s.step(t)
		s.step(t)
		got := s.results()
		runtime.GOMAXPROCS(old)
		if ref == nil {
			ref = got
			continue
		}
		for i := range ref {
			for j := range ref[i] {
				if math.Float32bits(ref[i][j]) != math.Float32bits(got[i][j]) {
					t.Fatalf("GOMAXPROCS=%d: result %d differs at %d: %v vs %v", procs, i, j, got[i][j], ref[i][j])
				}
			}
		}
	}
}

// TestConcurrentBackends runs two backends at once (one gets the worker
// pool, the other runs its regions inline) and checks both against a
// serial run.
func TestConcurrentBackends(t *testing.T) {
	s := newOpSequence(t, 2, 11, 2, 4, 3)
	s.step(t)
	want := s.results()
	var wg sync.WaitGroup
	got := make([][][]float32, 4)
	for g := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := newOpSequence(t, 2, 11, 2, 4, 3)
			s.step(t)
			got[g] = s.results()
		}()
	}
	wg.Wait()
	for g := range got {
		for i := range want {
			for j := range want[i] {
				if math.Float32bits(want[i][j]) != math.Float32bits(got[g][i][j]) {
					t.Fatalf("goroutine %d: result %d differs at %d", g, i, j)
				}
			}
		}
	}
}

// TestNoAllocsAfterWarmup: after one warm-up step (scratch grown, pools
// started) a whole op sequence allocates nothing.
func TestNoAllocsAfterWarmup(t *testing.T) {
	s := newOpSequence(t, 2, 33, 4, 8, 8)
	s.step(t)
	if allocs := testing.AllocsPerRun(5, func() { s.step(t) }); allocs != 0 {
		t.Fatalf("op sequence allocates %v times per step after warm-up, want 0", allocs)
	}
}

// TestAdamWArenaMatchesPerTensorCalls: one AdamWStep over an arena of
// tensors (with zero padding between them, decay on some) gives bitwise the
// result of the per-tensor loop that AdamWStep ran before decay tables
// existed, called on each tensor with WeightDecay = wd or 0; the padding
// stays 0. Sizes span several parallel chunks (grainElems), and ranges
// start and end inside chunks.
func TestAdamWArenaMatchesPerTensorCalls(t *testing.T) {
	sizes := []int{37, 20000, 5, 40001, 1}
	decays := []bool{true, false, true, true, false}
	const gap = 3
	n := 0
	offs := make([]int, len(sizes))
	var table []int32
	for i, sz := range sizes {
		offs[i] = n
		if decays[i] {
			table = append(table, int32(n), int32(n+sz))
		}
		n += sz + gap
	}
	r := rand.New(rand.NewPCG(5, 6))
	vals := func(scale float64) []float32 {
		v := make([]float32, n)
		for i, sz := range sizes {
			for j := offs[i]; j < offs[i]+sz; j++ {
				v[j] = float32((2*r.Float64() - 1) * scale)
			}
		}
		return v
	}
	be := New()
	tensor := func(v []float32) *Tensor {
		x, err := be.Alloc(backend.F32, len(v))
		if err != nil {
			t.Fatal(err)
		}
		copy(x.(*Tensor).Data, v)
		return x.(*Tensor)
	}
	p0, m0, v0 := vals(1), vals(0.1), vals(0.01)
	for i := range v0 {
		v0[i] *= v0[i] // second moments are non-negative
	}
	param, m, v := tensor(p0), tensor(m0), tensor(v0)
	dt, err := be.Alloc(backend.I32, len(table))
	if err != nil {
		t.Fatal(err)
	}
	copy(dt.(*Tensor).Ints, table)
	ref := [3][]float32{append([]float32(nil), p0...), append([]float32(nil), m0...), append([]float32(nil), v0...)}
	for step := 1; step <= 3; step++ {
		g := vals(1)
		h := backend.AdamW{LR: 1e-2, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.05, Step: step}
		if err := be.AdamWStep(param, tensor(g), m, v, dt, n, h); err != nil {
			t.Fatal(err)
		}
		bc1 := float32(1 - math.Pow(float64(h.Beta1), float64(step)))
		bc2 := float32(1 - math.Pow(float64(h.Beta2), float64(step)))
		for i, sz := range sizes {
			hi := h
			if !decays[i] {
				hi.WeightDecay = 0
			}
			lo := offs[i]
			oldAdamW(ref[0][lo:lo+sz], g[lo:lo+sz], ref[1][lo:lo+sz], ref[2][lo:lo+sz], hi, bc1, bc2)
		}
		for k, got := range [3][]float32{param.Data, m.Data, v.Data} {
			for j := range got {
				if math.Float32bits(got[j]) != math.Float32bits(ref[k][j]) {
					t.Fatalf("step %d: array %d element %d = %v, per-tensor call gives %v", step, k, j, got[j], ref[k][j])
				}
			}
		}
	}
	for i, sz := range sizes {
		for j := offs[i] + sz; j < offs[i]+sz+gap; j++ {
			if param.Data[j] != 0 || m.Data[j] != 0 || v.Data[j] != 0 {
				t.Fatalf("padding element %d changed", j)
			}
		}
	}
}

// oldAdamW is AdamWStep's element loop as it was before decay tables (one
// tensor, h.WeightDecay for every element), kept as the bitwise reference.
func oldAdamW(o, g, m, v []float32, h backend.AdamW, bc1, bc2 float32) {
	for i := range o {
		mi := h.Beta1*m[i] + (1-h.Beta1)*g[i]
		vi := h.Beta2*v[i] + (1-h.Beta2)*g[i]*g[i]
		m[i], v[i] = mi, vi
		mhat := mi / bc1
		vhat := vi / bc2
		o[i] -= h.LR * (h.WeightDecay*o[i] + mhat/(float32(math.Sqrt(float64(vhat)))+h.Eps))
	}
}

// TestDropoutKeepInlined: dropoutApply keeps exactly the elements
// backend.DropoutKeep keeps, for several seeds and probabilities (including
// ones whose threshold p·2²⁴ is not an integer).
func TestDropoutKeepInlined(t *testing.T) {
	const n = 50000
	src := make([]float32, n)
	for i := range src {
		src[i] = 1
	}
	dst := make([]float32, n)
	for _, seed := range []uint64{0, 1, 42, 0xdeadbeefcafef00d} {
		for _, p := range []float32{1e-7, 0.1, 1.0 / 3, 0.5, 0.9, 0.999999} {
			base := int(seed % 1000)
			dropoutApply(dst, src, base, p, seed)
			kept := 0
			for i, v := range dst {
				if (v != 0) != backend.DropoutKeep(seed, base+i, p) {
					t.Fatalf("seed %d p %v: element %d kept=%v, DropoutKeep says %v", seed, p, base+i, v != 0, !(v != 0))
				}
				if v != 0 {
					kept++
				}
			}
			// The kept fraction is 1-p within 5 binomial standard deviations.
			sd := math.Sqrt(float64(n) * float64(p) * float64(1-p))
			if d := math.Abs(float64(kept) - float64(n)*float64(1-p)); d > 5*sd+1 {
				t.Errorf("seed %d p %v: kept %d of %d", seed, p, kept, n)
			}
		}
	}
}

// TestAttentionFullyMaskedSequence: a sequence whose keys are all padding
// (never produced by BERT batching, whose [CLS] is real) gets zero
// probabilities, a zero output and a zero gradient instead of NaN, and the
// other sequences are unaffected.
func TestAttentionFullyMaskedSequence(t *testing.T) {
	const B, T, NH, HS = 2, 5, 2, 3
	C := NH * HS
	be := New()
	r := rand.New(rand.NewPCG(3, 3))
	mk := func(dt backend.DType, n int) backend.Tensor {
		x, err := be.Alloc(dt, n)
		if err != nil {
			t.Fatal(err)
		}
		if dt == backend.F32 {
			for i := range x.(*Tensor).Data {
				x.(*Tensor).Data[i] = float32(r.NormFloat64())
			}
		}
		return x
	}
	qkv, out, probs := mk(backend.F32, B*T*3*C), mk(backend.F32, B*T*C), mk(backend.F32, B*NH*T*T)
	dout, dqkv := mk(backend.F32, B*T*C), mk(backend.F32, B*T*3*C)
	mask := mk(backend.I32, B*T)
	copy(mask.(*Tensor).Ints, []int32{1, 1, 1, 0, 0, 0, 0, 0, 0, 0}) // sequence 1 all padding
	if err := be.AttentionForward(out, probs, qkv, mask, B, T, NH, HS, 0.2, 5); err != nil {
		t.Fatal(err)
	}
	if err := be.AttentionBackward(dqkv, dout, qkv, probs, mask, B, T, NH, HS, 0.2, 5); err != nil {
		t.Fatal(err)
	}
	check := func(name string, v []float32, zeroFrom int) {
		for i, x := range v {
			if x != x || math.IsInf(float64(x), 0) {
				t.Fatalf("%s[%d] = %v", name, i, x)
			}
			if i >= zeroFrom && x != 0 {
				t.Fatalf("%s[%d] = %v in the fully padded sequence, want 0", name, i, x)
			}
		}
	}
	check("probs", probs.(*Tensor).Data, NH*T*T)
	check("out", out.(*Tensor).Data, T*C)
	check("dqkv", dqkv.(*Tensor).Data, T*3*C)
	// Sequence 0's probability rows still sum to 1 over its 3 real keys.
	for row := 0; row < NH*T; row++ {
		var s float64
		for k := 0; k < T; k++ {
			s += float64(probs.(*Tensor).Data[row*T+k])
		}
		if math.Abs(s-1) > 1e-6 { // T = 5 float32 terms
			t.Fatalf("row %d of sequence 0 sums to %v", row, s)
		}
	}
}
