package cpu

import "github.com/houlsby/adapters/backend"

// LayerNormForward sets out = (inp-mean)·rstd·w + b over the rows of inp
// (N, C) and saves mean and rstd (N). Row statistics accumulate in float64
// (16 lanes, lnStats): it costs nothing measurable next to the memory
// traffic and keeps the variance of rows with a large mean accurate. The
// rows run through the vector kernels (vecmath.go).
func (be *Backend) LayerNormForward(out, mean, rstd, inp, w, b backend.Tensor, N, C int, eps float32) error {
	const op = "cpu.LayerNormForward"
	if err := nonneg(op, "N,C", N, C); err != nil {
		return err
	}
	nc, err := mul(op, N, C)
	if err != nil {
		return err
	}
	ov, err := f32(op, "out", out, nc)
	if err != nil {
		return err
	}
	mv, err := f32(op, "mean", mean, N)
	if err != nil {
		return err
	}
	rv, err := f32(op, "rstd", rstd, N)
	if err != nil {
		return err
	}
	iv, err := f32(op, "inp", inp, nc)
	if err != nil {
		return err
	}
	wv, err := f32(op, "w", w, C)
	if err != nil {
		return err
	}
	bv, err := f32(op, "b", b, C)
	if err != nil {
		return err
	}
	if C == 0 {
		return nil
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	be.ln = lnTask{out: ov, mean: mv, rstd: rv, inp: iv, w: wv, b: bv, C: C, eps: eps}
	parallelRange(N, grainRows, &be.ln)
	be.ln = lnTask{}
	return nil
}

// LayerNormBackward sets dinp (=) and accumulates dw and db (+=; nil when
// frozen) from dout (N, C) and the forward's inp, w, mean and rstd.
//
//	x̂ = (inp-mean)·rstd, g = dout·w
//	dinp = rstd·(g - mean(g) - x̂·mean(g·x̂)),  dw += Σ dout·x̂,  db += Σ dout
func (be *Backend) LayerNormBackward(dinp, dw, db, dout, inp, w, mean, rstd backend.Tensor, N, C int) error {
	const op = "cpu.LayerNormBackward"
	if err := nonneg(op, "N,C", N, C); err != nil {
		return err
	}
	nc, err := mul(op, N, C)
	if err != nil {
		return err
	}
	div, err := optF32(op, "dinp", dinp, nc)
	if err != nil {
		return err
	}
	dwv, err := optF32(op, "dw", dw, C)
	if err != nil {
		return err
	}
	dbv, err := optF32(op, "db", db, C)
	if err != nil {
		return err
	}
	gv, err := f32(op, "dout", dout, nc)
	if err != nil {
		return err
	}
	iv, err := f32(op, "inp", inp, nc)
	if err != nil {
		return err
	}
	wv, err := f32(op, "w", w, C)
	if err != nil {
		return err
	}
	mv, err := f32(op, "mean", mean, N)
	if err != nil {
		return err
	}
	rv, err := f32(op, "rstd", rstd, N)
	if err != nil {
		return err
	}
	if C == 0 {
		return nil
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	be.ln = lnTask{dinp: div, dw: dwv, db: dbv, dout: gv, inp: iv, w: wv, mean: mv, rstd: rv, N: N, C: C}
	// Parameter gradients first (dinp may alias dout): column blocks, rows
	// in order, so the sums do not depend on the core count.
	if dwv != nil || dbv != nil {
		be.ln.params = true
		parallelRange((C+colBlock-1)/colBlock, 1, &be.ln)
		be.ln.params = false
	}
	if div != nil {
		be.ln.back = true
		parallelRange(N, grainRows, &be.ln)
	}
	be.ln = lnTask{}
	return nil
}

// GroupedLayerNormForward is LayerNormForward with the affine parameters of
// each row's segment's slot, from w and b (G, C) (backend.GroupedLayerNormForward):
// the same arithmetic per row, so each row's result is bitwise
// LayerNormForward's with its slot's parameters. out may alias inp.
func (be *Backend) GroupedLayerNormForward(out, inp, w, b, segs backend.Tensor, N, C, G, S int, eps float32) error {
	const op = "cpu.GroupedLayerNormForward"
	nc, gc, err := backend.GroupedLayerNormSizes(op, N, C, G, S)
	if err != nil {
		return err
	}
	ov, err := f32(op, "out", out, nc)
	if err != nil {
		return err
	}
	iv, err := f32(op, "inp", inp, nc)
	if err != nil {
		return err
	}
	wv, err := f32(op, "w", w, gc)
	if err != nil {
		return err
	}
	bv, err := f32(op, "b", b, gc)
	if err != nil {
		return err
	}
	table, err := i32(op, "segs", segs, 3*S)
	if err != nil {
		return err
	}
	if _, err := backend.CheckSegments(op, table, N, G, false); err != nil {
		return err
	}
	if nc == 0 {
		return nil
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	stats := be.buf(scrA, 2*N)
	be.ln = lnTask{out: ov, mean: stats[:N], rstd: stats[N:], inp: iv, C: C, eps: eps, segs: table, wAll: wv, bAll: bv}
	parallelRange(N, grainRows, &be.ln)
	be.ln = lnTask{}
	return nil
}

// lnTask is LayerNorm's parallel work: forward rows, backward rows (back)
// or parameter-gradient column blocks (params).
type lnTask struct {
	back, params               bool
	out, mean, rstd, inp, w, b []float32
	dinp, dw, db, dout         []float32
	N, C                       int
	eps                        float32
	// Grouped forward: the segment table (start, end, slot) and the
	// stacked affine parameters (G, C); w and b are then chosen per row.
	segs       []int32
	wAll, bAll []float32
}

func (t *lnTask) run(_, lo, hi int) {
	switch {
	case t.params:
		t.paramGrads(lo, hi)
	case t.back:
		t.backward(lo, hi)
	default:
		t.forward(lo, hi)
	}
}

func (t *lnTask) forward(lo, hi int) {
	C := t.C
	for n := lo; n < hi; n++ {
		x := t.inp[n*C : n*C+C]
		m, r := lnStats(vec, x, t.eps)
		var w, b []float32
		if t.segs != nil {
			g := segmentSlot(t.segs, n)
			w, b = t.wAll[g*C:g*C+C], t.bAll[g*C:g*C+C]
		} else {
			w, b = t.w[:C], t.b[:C]
		}
		lnApplyVec(vec, t.out[n*C:n*C+C], x, w, b, m, r)
		t.mean[n], t.rstd[n] = m, r
	}
}

func (t *lnTask) paramGrads(lo, hi int) {
	C := t.C
	var aw, ab [colBlock]float32
	for blk := lo; blk < hi; blk++ {
		c0 := blk * colBlock
		c1 := min(c0+colBlock, C)
		sw, sb := aw[:c1-c0], ab[:c1-c0]
		clear(sw)
		clear(sb)
		for n := 0; n < t.N; n++ {
			lnParamRowVec(vec, sw, sb, t.dout[n*C+c0:n*C+c1], t.inp[n*C+c0:n*C+c1], t.mean[n], t.rstd[n])
		}
		if t.dw != nil {
			addVec(vec, t.dw[c0:c1], t.dw[c0:c1], sw)
		}
		if t.db != nil {
			addVec(vec, t.db[c0:c1], t.db[c0:c1], sb)
		}
	}
}

func (t *lnTask) backward(lo, hi int) {
	C := t.C
	w := t.w[:C]
	for n := lo; n < hi; n++ {
		m, r := t.mean[n], t.rstd[n]
		g := t.dout[n*C : n*C+C]
		x := t.inp[n*C : n*C+C]
		sg, sgx := lnGradSums(vec, g, x, w, m, r)
		sg /= float32(C)
		sgx /= float32(C)
		lnGradRowVec(vec, t.dinp[n*C:n*C+C], g, x, w, m, r, sg, sgx)
	}
}

// segmentSlot returns the slot of row n in a checked segment table (the
// segment whose [start, end) holds n), by bisection over the ends.
func segmentSlot(segs []int32, n int) int {
	lo, hi := 0, len(segs)/3-1
	for lo < hi {
		mid := (lo + hi) / 2
		if int(segs[3*mid+1]) > n {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return int(segs[3*lo+2])
}
