package cpu

// Dimension letters (see package backend): B batch, T sequence length,
// C hidden size, NH heads, HS head size, M adapter bottleneck, N rows, V
// classes or vocabulary.
//
// Gradient rule (package backend): parameter gradients accumulate (+=),
// input gradients overwrite (=), a nil parameter gradient means frozen (no
// work, no buffer touched), a nil input gradient means skip it.

import (
	"github.com/houlsby/adapters/backend"
)

// Grain sizes: the fewest items a goroutine gets, so that spawning it costs
// less than the work (about 10-50 µs of work per chunk).
const (
	grainElems = 16384 // pointwise ops, elements
	grainRows  = 8     // row ops over C ~ 384..1024, rows
)

// Gemm computes c = alpha·op(a)·op(b) + beta·c for every problem of the
// batch described by p (see backend.MatMul).
func (be *Backend) Gemm(c, a, b backend.Tensor, p backend.MatMul) error {
	const op = "cpu.Gemm"
	l, err := p.Layout(op)
	if err != nil {
		return err
	}
	batch, lda, ldb, ldc := l.Batch, l.LdA, l.LdB, l.LdC
	av, err := f32(op, "a", a, l.SpanA)
	if err != nil {
		return err
	}
	bv, err := f32(op, "b", b, l.SpanB)
	if err != nil {
		return err
	}
	cv, err := f32(op, "c", c, l.SpanC)
	if err != nil {
		return err
	}
	if p.M == 0 || p.N == 0 {
		return nil
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	be.gb = gemmBatchTask{acc: be.acc, p: p, lda: lda, ldb: ldb, ldc: ldc, a: av, b: bv, c: cv}
	if batch > 1 && 2*p.M*p.N*p.K < smallGemmFlops {
		// Many small problems: one per worker, each sgemm single-threaded
		// by its own size rule. Problems are independent, so the results
		// are the same as in order.
		parallelRange(batch, 1, &be.gb)
	} else {
		be.gb.run(0, 0, batch)
	}
	be.gb = gemmBatchTask{}
	return nil
}

// smallGemmFlops is the size (2·M·N·K) under which one problem of a batch is
// not worth splitting across cores (~2²¹ flops, 10-50 µs of one core), so the
// batch is split instead.
const smallGemmFlops = 1 << 21

// gemmBatchTask runs problems [lo, hi) of a batched Gemm.
type gemmBatchTask struct {
	acc           gemmAcc
	p             backend.MatMul
	lda, ldb, ldc int
	a, b, c       []float32
}

func (t *gemmBatchTask) run(_, lo, hi int) {
	p := &t.p
	for i := lo; i < hi; i++ {
		ao, bo, co := i*p.StrideA, i*p.StrideB, i*p.StrideC
		if p.K == 0 {
			// op(a)·op(b) is zero: c = beta·c (beta = 0 does not read c).
			for r := 0; r < p.M; r++ {
				row := t.c[co+r*t.ldc : co+r*t.ldc+p.N]
				for j := range row {
					if p.Beta == 0 {
						row[j] = 0
					} else {
						row[j] *= p.Beta
					}
				}
			}
			continue
		}
		t.acc.gemm(p.TransA, p.TransB, p.M, p.N, p.K, p.Alpha, t.a[ao:], t.lda, t.b[bo:], t.ldb, p.Beta, t.c[co:], t.ldc)
	}
}

// AddBias adds bias (C) to every row of x (N, C) in place.
func (be *Backend) AddBias(x, bias backend.Tensor, N, C int) error {
	const op = "cpu.AddBias"
	if err := nonneg(op, "N,C", N, C); err != nil {
		return err
	}
	nc, err := mul(op, N, C)
	if err != nil {
		return err
	}
	xv, err := f32(op, "x", x, nc)
	if err != nil {
		return err
	}
	bv, err := f32(op, "bias", bias, C)
	if err != nil {
		return err
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	be.addBiasRows(xv, bv, N, C)
	return nil
}

// addBiasRows adds bias (C) to every row of x (N, C). Callers hold be.mu.
func (be *Backend) addBiasRows(x, bias []float32, N, C int) {
	be.row = rowTask{kind: rowAddBias, o: x, a: bias, C: C}
	parallelRange(N, grainRows, &be.row)
	be.row = rowTask{}
}

// BiasGrad accumulates the column sums of dout (N, C) into dbias (C).
func (be *Backend) BiasGrad(dbias, dout backend.Tensor, N, C int) error {
	const op = "cpu.BiasGrad"
	if err := nonneg(op, "N,C", N, C); err != nil {
		return err
	}
	nc, err := mul(op, N, C)
	if err != nil {
		return err
	}
	dv, err := f32(op, "dout", dout, nc)
	if err != nil {
		return err
	}
	bv, err := f32(op, "dbias", dbias, C)
	if err != nil {
		return err
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	be.colSumsAdd(bv, dv, N, C)
	return nil
}

// colSumsAdd adds the column sums of x (N, C) to dst (C) (see colSumTask).
// Callers hold be.mu.
func (be *Backend) colSumsAdd(dst, x []float32, N, C int) {
	if C == 0 {
		return
	}
	be.cs = colSumTask{dst: dst, x: x, N: N, C: C}
	parallelRange((C+colBlock-1)/colBlock, 1, &be.cs)
	be.cs = colSumTask{}
}

// runEW runs the elementwise task be.ew over n elements and clears it.
// Callers hold be.mu.
func (be *Backend) runEW(n, grain int) {
	parallelRange(n, grain, &be.ew)
	be.ew = ewTask{}
}

// Add sets out = a + b over n elements (out may alias a or b).
func (be *Backend) Add(out, a, b backend.Tensor, n int) error {
	const op = "cpu.Add"
	if err := nonneg(op, "n", n); err != nil {
		return err
	}
	ov, err := f32(op, "out", out, n)
	if err != nil {
		return err
	}
	av, err := f32(op, "a", a, n)
	if err != nil {
		return err
	}
	bv, err := f32(op, "b", b, n)
	if err != nil {
		return err
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	be.ew = ewTask{kind: ewAdd, o: ov, a: av, b: bv}
	be.runEW(n, grainElems)
	return nil
}

// Scale multiplies n elements of x by alpha in place.
func (be *Backend) Scale(x backend.Tensor, alpha float32, n int) error {
	const op = "cpu.Scale"
	if err := nonneg(op, "n", n); err != nil {
		return err
	}
	xv, err := f32(op, "x", x, n)
	if err != nil {
		return err
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	be.ew = ewTask{kind: ewScale, o: xv, alpha: alpha}
	be.runEW(n, grainElems)
	return nil
}

// sumBlock is the block length of SumSquares' pairwise-style reduction:
// float32 partial sums of fixed blocks, then a float32 sum of the partials in
// block order. Fixed blocks make the result independent of the core count;
// the error grows like 2^-24·(sumBlock + n/sumBlock) instead of 2^-24·n.
const sumBlock = 1024

// SumSquares sets out[0] = Σ x[i]² over n elements with float32
// accumulation.
func (be *Backend) SumSquares(out, x backend.Tensor, n int) error {
	const op = "cpu.SumSquares"
	if err := nonneg(op, "n", n); err != nil {
		return err
	}
	ov, err := f32(op, "out", out, 1)
	if err != nil {
		return err
	}
	xv, err := f32(op, "x", x, n)
	if err != nil {
		return err
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	nb := (n + sumBlock - 1) / sumBlock
	part := be.buf(scrA, nb)
	be.ss = sumSqTask{part: part, x: xv}
	parallelRange(nb, 16, &be.ss)
	be.ss = sumSqTask{}
	var s float32
	for _, v := range part {
		s += v
	}
	ov[0] = s
	return nil
}

// ActForward sets out = act(inp) over n elements (GELU is the exact erf
// form). out may alias inp.
func (be *Backend) ActForward(out, inp backend.Tensor, n int, act backend.Act) error {
	const op = "cpu.ActForward"
	if err := checkAct(op, act); err != nil {
		return err
	}
	return be.pointwise(op, ewTask{kind: ewAct, act: act}, out, inp, n, grainElems/4)
}

// ActBackward sets dinp = dout·act'(inp) from the forward's input
// (ReLU'(0) = 0). dinp may alias dout.
func (be *Backend) ActBackward(dinp, dout, inp backend.Tensor, n int, act backend.Act) error {
	const op = "cpu.ActBackward"
	if err := checkAct(op, act); err != nil {
		return err
	}
	return be.pointwiseBackward(op, ewTask{kind: ewActBack, act: act}, dinp, dout, "inp", inp, n, grainElems/4)
}

// TanhForward sets out = tanh(inp) over n elements.
func (be *Backend) TanhForward(out, inp backend.Tensor, n int) error {
	return be.pointwise("cpu.TanhForward", ewTask{kind: ewTanh}, out, inp, n, grainElems/4)
}

// TanhBackward sets dinp = dout·(1-out²) from the forward output.
func (be *Backend) TanhBackward(dinp, dout, out backend.Tensor, n int) error {
	return be.pointwiseBackward("cpu.TanhBackward", ewTask{kind: ewTanhBack}, dinp, dout, "out", out, n, grainElems)
}

// pointwise validates out and inp (n elements each) and runs the
// elementwise task t with o = out, a = inp.
func (be *Backend) pointwise(op string, t ewTask, out, inp backend.Tensor, n, grain int) error {
	if err := nonneg(op, "n", n); err != nil {
		return err
	}
	ov, err := f32(op, "out", out, n)
	if err != nil {
		return err
	}
	iv, err := f32(op, "inp", inp, n)
	if err != nil {
		return err
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	t.o, t.a = ov, iv
	be.ew = t
	be.runEW(n, grain)
	return nil
}

// pointwiseBackward validates dinp, dout and the saved tensor x (named
// xName in errors) and runs the task t with o = dinp, a = x, b = dout.
func (be *Backend) pointwiseBackward(op string, t ewTask, dinp, dout backend.Tensor, xName string, x backend.Tensor, n, grain int) error {
	if err := nonneg(op, "n", n); err != nil {
		return err
	}
	dv, err := f32(op, "dinp", dinp, n)
	if err != nil {
		return err
	}
	gv, err := f32(op, "dout", dout, n)
	if err != nil {
		return err
	}
	xv, err := f32(op, xName, x, n)
	if err != nil {
		return err
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	t.o, t.a, t.b = dv, xv, gv
	be.ew = t
	be.runEW(n, grain)
	return nil
}

// dropoutApply sets dst[i] = src[i]·keep(base+i)/(1-p); with p == 0 it
// copies. keep is backend.DropoutKeep, inlined: the same SplitMix64 hash and
// the same float32 threshold p·2²⁴ (TestDropoutKeepInlined checks them
// equal), without a call and a threshold conversion per element.
func dropoutApply(dst, src []float32, base int, p float32, seed uint64) {
	if p <= 0 {
		copy(dst, src)
		return
	}
	s := 1 / (1 - p)
	thr := uint32(p * (1 << 24))
	src = src[:len(dst)]
	// The assembly does whole blocks of 16 (AVX512DQ), the loop the rest;
	// both compute the same integer hash, so the split does not matter.
	done := dropoutKernel(dst, src, base, seed, thr, s)
	for i := done; i < len(src); i++ {
		v := src[i]
		if uint32(splitmix64(seed^splitmix64(uint64(base+i)))>>40) >= thr {
			dst[i] = v * s
		} else {
			dst[i] = 0
		}
	}
}

// dropoutApplyPair is dropoutApply on two arrays under the same mask (one
// hash per element): dst = src·keep/(1-p) and dst2 = src2·keep/(1-p), for
// an attention backward's dropped-out probabilities and the gradient
// through them. p > 0.
func dropoutApplyPair(dst, src, dst2, src2 []float32, base int, p float32, seed uint64) {
	s := 1 / (1 - p)
	thr := uint32(p * (1 << 24))
	n := len(dst)
	src, dst2, src2 = src[:n], dst2[:n], src2[:n]
	done := dropoutPairKernel(dst, src, dst2, src2, base, seed, thr, s)
	for i := done; i < n; i++ {
		v, v2 := src[i], src2[i]
		if uint32(splitmix64(seed^splitmix64(uint64(base+i)))>>40) >= thr {
			dst[i], dst2[i] = v*s, v2*s
		} else {
			dst[i], dst2[i] = 0, 0
		}
	}
}

// splitmix64 is backend's counter hash (Steele et al.'s SplitMix64
// finaliser), copied so that it inlines into dropoutApply.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// DropoutForward sets out = inp·keep/(1-p) with keep from
// backend.DropoutKeep(seed, i, p); p = 0 copies.
func (be *Backend) DropoutForward(out, inp backend.Tensor, n int, p float32, seed uint64) error {
	const op = "cpu.DropoutForward"
	if err := nonneg(op, "n", n); err != nil {
		return err
	}
	if err := checkP(op, p); err != nil {
		return err
	}
	ov, err := f32(op, "out", out, n)
	if err != nil {
		return err
	}
	iv, err := f32(op, "inp", inp, n)
	if err != nil {
		return err
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	be.ew = ewTask{kind: ewDropout, o: ov, a: iv, p: p, seed: seed}
	be.runEW(n, grainElems)
	return nil
}

// DropoutBackward sets dinp = dout·keep/(1-p), recomputing the forward's
// mask from the seed.
func (be *Backend) DropoutBackward(dinp, dout backend.Tensor, n int, p float32, seed uint64) error {
	const op = "cpu.DropoutBackward"
	if err := nonneg(op, "n", n); err != nil {
		return err
	}
	if err := checkP(op, p); err != nil {
		return err
	}
	dv, err := f32(op, "dinp", dinp, n)
	if err != nil {
		return err
	}
	gv, err := f32(op, "dout", dout, n)
	if err != nil {
		return err
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	be.ew = ewTask{kind: ewDropout, o: dv, a: gv, p: p, seed: seed}
	be.runEW(n, grainElems)
	return nil
}
