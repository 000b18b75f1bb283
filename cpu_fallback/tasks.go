package cpu

import (
	"math"
	"sort"

	"github.com/houlsby/adapters/backend"
)

// Task structs: the per-op state of a parallel region. The Backend keeps one
// of each and fills it under its mutex, so ops hand the worker pool a
// pointer (no closure, no allocation). Each op clears its task afterwards so
// the Backend does not keep the caller's slices alive.

// ewKind selects the elementwise operation of an ewTask.
type ewKind int

const (
	ewAdd      ewKind = iota // o = a + b
	ewScale                  // o *= alpha
	ewTanh                   // o = tanh(a)
	ewTanhBack               // o = b·(1-a²)     (a = out, b = dout)
	ewDropout                // o = a·keep/(1-p), element index = base + i
	ewAct                    // o = act(a)
	ewActBack                // o = b·act'(a)    (a = inp, b = dout; o may alias b)
	ewAdamW                  // o = param, a = grad, b = m, c = v
)

// ewTask is every elementwise op over [0, n).
type ewTask struct {
	kind       ewKind
	o, a, b, c []float32
	alpha      float32
	p          float32
	seed       uint64
	act        backend.Act
	h          backend.AdamW
	bc1, bc2   float32 // AdamW bias corrections 1-β1ᵗ, 1-β2ᵗ
	ranges     []int32 // AdamW decay ranges, pairs [start, end), validated
}

func (t *ewTask) run(_, lo, hi int) {
	o := t.o[lo:hi]
	switch t.kind {
	case ewAdd:
		addVec(vec, o, t.a[lo:hi], t.b[lo:hi])
	case ewScale:
		for i := range o {
			o[i] *= t.alpha
		}
	case ewTanh:
		a := t.a[lo:hi]
		for i := range o {
			o[i] = float32(math.Tanh(float64(a[i])))
		}
	case ewTanhBack:
		a, b := t.a[lo:hi], t.b[lo:hi]
		for i := range o {
			o[i] = b[i] * (1 - a[i]*a[i])
		}
	case ewDropout:
		dropoutApply(o, t.a[lo:hi], lo, t.p, t.seed)
	case ewAct:
		actVec(vec, t.act, o, t.a[lo:hi])
	case ewActBack:
		actGradMulVec(vec, t.act, o, t.b[lo:hi], t.a[lo:hi])
	case ewAdamW:
		// Walk [lo, hi) in spans alternating between no decay and a decay
		// range; the first range ending after lo is found by bisection.
		r := t.ranges
		k := sort.Search(len(r)/2, func(k int) bool { return int(r[2*k+1]) > lo })
		at := lo
		for ; k < len(r)/2 && int(r[2*k]) < hi; k++ {
			s, e := max(int(r[2*k]), lo), min(int(r[2*k+1]), hi)
			t.adamw(at, s, 0)
			t.adamw(s, e, t.h.WeightDecay)
			at = e
		}
		t.adamw(at, hi, 0)
	}
}

// adamw runs the AdamW update on elements [lo, hi) with weight decay wd.
// The arithmetic is the same for every element, decayed or not (wd = 0
// multiplies param by 0 and adds it), so a tensor updated as part of an
// arena gets bitwise the result of a call on the tensor alone.
func (t *ewTask) adamw(lo, hi int, wd float32) {
	if lo >= hi {
		return
	}
	o, g, m, v := t.o[lo:hi], t.a[lo:hi], t.b[lo:hi], t.c[lo:hi]
	h := &t.h
	for i := range o {
		mi := h.Beta1*m[i] + (1-h.Beta1)*g[i]
		vi := h.Beta2*v[i] + (1-h.Beta2)*g[i]*g[i]
		m[i], v[i] = mi, vi
		mhat := mi / t.bc1
		vhat := vi / t.bc2
		o[i] -= h.LR * (wd*o[i] + mhat/(float32(math.Sqrt(float64(vhat)))+h.Eps))
	}
}

// colBlock is the column block of column reductions: 64 floats, 256 bytes,
// a few cache lines per row, small enough for the accumulators to stay in
// registers or L1.
const colBlock = 64

// colSumTask adds the column sums of x (N, C) to dst (C) over column blocks;
// each column is summed over rows 0..N-1 in order by one worker, so the
// result does not depend on the number of cores.
type colSumTask struct {
	dst, x []float32
	N, C   int
}

func (t *colSumTask) run(_, lo, hi int) {
	var acc [colBlock]float32
	for blk := lo; blk < hi; blk++ {
		c0 := blk * colBlock
		c1 := min(c0+colBlock, t.C)
		a := acc[:c1-c0]
		clear(a)
		for n := 0; n < t.N; n++ {
			addVec(vec, a, a, t.x[n*t.C+c0:n*t.C+c1])
		}
		for j, v := range a {
			t.dst[c0+j] += v
		}
	}
}

// rowTask is a row-wise op over rows [lo, hi) of (N, C) tensors.
type rowKind int

const (
	rowAddBias    rowKind = iota // o += a (a is the (C) bias)
	rowAddRowBias                // o = x + a   (out = inp + bUp)
	rowBiasAct                   // o += a; x = act(o)   (z += bDown; h = act(z))
)

type rowTask struct {
	kind rowKind
	o, a []float32
	x    []float32
	C    int
	act  backend.Act
}

func (t *rowTask) run(_, lo, hi int) {
	C := t.C
	for n := lo; n < hi; n++ {
		o := t.o[n*C : n*C+C]
		switch t.kind {
		case rowAddBias:
			addVec(vec, o, o, t.a[:C])
		case rowAddRowBias:
			addVec(vec, o, t.x[n*C:n*C+C], t.a[:C])
		case rowBiasAct:
			addVec(vec, o, o, t.a[:C])
			actVec(vec, t.act, t.x[n*C:n*C+C], o)
		}
	}
}

// sumSqTask computes float32 partial sums of squares of fixed blocks.
type sumSqTask struct {
	part, x []float32
}

func (t *sumSqTask) run(_, lo, hi int) {
	n := len(t.x)
	for blk := lo; blk < hi; blk++ {
		var s float32
		for _, v := range t.x[blk*sumBlock : min(blk*sumBlock+sumBlock, n)] {
			s += v * v
		}
		t.part[blk] = s
	}
}
