package cpu

// Dimension letters (see package backend): B batch, T sequence length,
// C hidden size, NH heads, HS head size, M adapter bottleneck, N rows, V
// classes or vocabulary.
//
// Gradient rule (package backend): parameter gradients accumulate (+=),
// input gradients overwrite (=), a nil parameter gradient means frozen (no
// work, no buffer touched), a nil input gradient means skip it.

import (
	"fmt"
	"math"

	"github.com/houlsby/adapters/backend"
)

// Grain sizes: the fewest items a goroutine gets, so that spawning it costs
// less than the work (about 10-50 µs of work per chunk).
const (
	grainElems = 16384 // pointwise ops, elements
	grainRows  = 8     // row ops over C ~ 384..1024, rows
	colBlock   = 64    // column block for column reductions (one cache line run of 256 B)
)

// span returns the elements a (possibly transposed, strided, batched)
// operand touches: the last problem's last row's last element + 1.
func span(rows, cols, ld, batch, stride int) int {
	if rows == 0 || cols == 0 || batch == 0 {
		return 0
	}
	return (batch-1)*stride + (rows-1)*ld + cols
}

// Gemm computes c = alpha·op(a)·op(b) + beta·c for every problem of the
// batch described by p (see backend.MatMul).
func (be *Backend) Gemm(c, a, b backend.Tensor, p backend.MatMul) error {
	const op = "cpu.Gemm"
	if err := nonneg(op, "M,N,K,Batch,StrideA,StrideB,StrideC,LdA,LdB,LdC", p.M, p.N, p.K, p.Batch, p.StrideA, p.StrideB, p.StrideC, p.LdA, p.LdB, p.LdC); err != nil {
		return err
	}
	batch := max(p.Batch, 1)
	// Stored shapes: a is M×K (K×M transposed), b is K×N (N×K transposed).
	ar, ac := p.M, p.K
	if p.TransA {
		ar, ac = p.K, p.M
	}
	br, bc := p.K, p.N
	if p.TransB {
		br, bc = p.N, p.K
	}
	lda, ldb, ldc := p.LdA, p.LdB, p.LdC
	if lda == 0 {
		lda = ac
	}
	if ldb == 0 {
		ldb = bc
	}
	if ldc == 0 {
		ldc = p.N
	}
	if lda < ac || ldb < bc || ldc < p.N {
		return fmt.Errorf("%s: leading dimensions (%d, %d, %d) are smaller than the rows (%d, %d, %d)", op, lda, ldb, ldc, ac, bc, p.N)
	}
	if batch > 1 && p.StrideC < p.M*ldc-(ldc-p.N) && p.M > 0 && p.N > 0 {
		return fmt.Errorf("%s: StrideC = %d makes the %d outputs of the batch overlap (need >= %d)", op, p.StrideC, batch, p.M*ldc-(ldc-p.N))
	}
	av, err := f32(op, "a", a, span(ar, ac, lda, batch, p.StrideA))
	if err != nil {
		return err
	}
	bv, err := f32(op, "b", b, span(br, bc, ldb, batch, p.StrideB))
	if err != nil {
		return err
	}
	cv, err := f32(op, "c", c, span(p.M, p.N, ldc, batch, p.StrideC))
	if err != nil {
		return err
	}
	if p.M == 0 || p.N == 0 {
		return nil
	}
	for i := 0; i < batch; i++ {
		ao, bo, co := i*p.StrideA, i*p.StrideB, i*p.StrideC
		if p.K == 0 {
			// op(a)·op(b) is zero: c = beta·c.
			for r := 0; r < p.M; r++ {
				row := cv[co+r*ldc : co+r*ldc+p.N]
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
		sgemm(p.TransA, p.TransB, p.M, p.N, p.K, p.Alpha, av[ao:], lda, bv[bo:], ldb, p.Beta, cv[co:], ldc)
	}
	return nil
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
	addBiasRows(xv, bv, N, C)
	return nil
}

func addBiasRows(x, bias []float32, N, C int) {
	parallelFor(N, grainRows, func(lo, hi int) {
		for n := lo; n < hi; n++ {
			row := x[n*C : n*C+C]
			for j, bj := range bias[:C] {
				row[j] += bj
			}
		}
	})
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
	colSumsAdd(bv, dv, N, C)
	return nil
}

// colSumsAdd adds the column sums of x (N, C) to dst (C). Each column is
// summed over rows in order 0..N-1 by one goroutine, so the result does not
// depend on the number of cores.
func colSumsAdd(dst, x []float32, N, C int) {
	nb := (C + colBlock - 1) / colBlock
	parallelFor(nb, 1, func(lo, hi int) {
		var acc [colBlock]float32
		for blk := lo; blk < hi; blk++ {
			c0 := blk * colBlock
			c1 := min(c0+colBlock, C)
			a := acc[:c1-c0]
			clear(a)
			for n := 0; n < N; n++ {
				row := x[n*C+c0 : n*C+c1]
				for j, v := range row {
					a[j] += v
				}
			}
			for j, v := range a {
				dst[c0+j] += v
			}
		}
	})
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
	parallelFor(n, grainElems, func(lo, hi int) {
		o, x, y := ov[lo:hi], av[lo:hi], bv[lo:hi]
		for i := range o {
			o[i] = x[i] + y[i]
		}
	})
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
	parallelFor(n, grainElems, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			xv[i] *= alpha
		}
	})
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
	parallelFor(nb, 16, func(lo, hi int) {
		for blk := lo; blk < hi; blk++ {
			var s float32
			for _, v := range xv[blk*sumBlock : min(blk*sumBlock+sumBlock, n)] {
				s += v * v
			}
			part[blk] = s
		}
	})
	var s float32
	for _, v := range part {
		s += v
	}
	ov[0] = s
	return nil
}

// gelu is the exact GELU x·Φ(x) = x/2·(1+erf(x/√2)), in float64 and rounded.
func gelu(x float32) float32 {
	xd := float64(x)
	return float32(0.5 * xd * (1 + math.Erf(xd*math.Sqrt2/2)))
}

// geluGrad is d/dx x·Φ(x) = Φ(x) + x·φ(x).
func geluGrad(x float32) float32 {
	xd := float64(x)
	cdf := 0.5 * (1 + math.Erf(xd*math.Sqrt2/2))
	pdf := math.Exp(-0.5*xd*xd) / math.Sqrt(2*math.Pi)
	return float32(cdf + xd*pdf)
}

// GeluForward sets out = x·Φ(x) (exact erf GELU) over n elements.
func (be *Backend) GeluForward(out, inp backend.Tensor, n int) error {
	const op = "cpu.GeluForward"
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
	parallelFor(n, grainElems/4, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			ov[i] = gelu(iv[i])
		}
	})
	return nil
}

// GeluBackward sets dinp = dout·GELU'(inp).
func (be *Backend) GeluBackward(dinp, dout, inp backend.Tensor, n int) error {
	const op = "cpu.GeluBackward"
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
	iv, err := f32(op, "inp", inp, n)
	if err != nil {
		return err
	}
	parallelFor(n, grainElems/4, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			dv[i] = gv[i] * geluGrad(iv[i])
		}
	})
	return nil
}

// TanhForward sets out = tanh(inp) over n elements.
func (be *Backend) TanhForward(out, inp backend.Tensor, n int) error {
	const op = "cpu.TanhForward"
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
	parallelFor(n, grainElems/4, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			ov[i] = float32(math.Tanh(float64(iv[i])))
		}
	})
	return nil
}

// TanhBackward sets dinp = dout·(1-out²) from the forward output.
func (be *Backend) TanhBackward(dinp, dout, out backend.Tensor, n int) error {
	const op = "cpu.TanhBackward"
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
	ov, err := f32(op, "out", out, n)
	if err != nil {
		return err
	}
	parallelFor(n, grainElems, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			y := ov[i]
			dv[i] = gv[i] * (1 - y*y)
		}
	})
	return nil
}

// dropoutApply sets dst[i] = src[i]·keep(i)/(1-p) for the global indices
// base+i; with p == 0 it copies.
func dropoutApply(dst, src []float32, base int, p float32, seed uint64) {
	if p == 0 {
		copy(dst, src)
		return
	}
	s := 1 / (1 - p)
	for i, v := range src {
		if backend.DropoutKeep(seed, base+i, p) {
			dst[i] = v * s
		} else {
			dst[i] = 0
		}
	}
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
	parallelFor(n, grainElems, func(lo, hi int) {
		dropoutApply(ov[lo:hi], iv[lo:hi], lo, p, seed)
	})
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
	parallelFor(n, grainElems, func(lo, hi int) {
		dropoutApply(dv[lo:hi], gv[lo:hi], lo, p, seed)
	})
	return nil
}
