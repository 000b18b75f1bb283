package cpu

import "math"

// Float64 accumulation: the same products as sgemm (float32 in, float32
// out), with every C element's sum over k formed in float64 and rounded to
// float32 once.
//
// Why: a float32 GEMM rounds its running sum at every step, so an element's
// error grows with k (measured RMS 1.7e-7 relative on a MiniLM encoder's
// output, about PyTorch's 1.8e-7). Each product of two float32 values is
// exact in float64, so a float64 sum of them is off from the exact sum by
// about 1e-16 relative, and the one rounding to float32 dominates: the
// result is, element by element, within half a float32 ulp of the exact
// product of the stored inputs whenever the sum does not cancel. Where a
// training result hinges on such a sum (a gradient that is a near-cancelling
// sum of larger terms, below AdamW's epsilon, whose first step then moves
// the weight by up to the learning rate) this is what keeps float32 training
// as close to a float64 run as the arithmetic allows
// (docs/numerics.md, "Float64 accumulation").
//
// Layout: the driver is the blocked one of gemm_blocked.go without its k
// blocking (a k block boundary would round the partial sum to float32):
// B is packed in nr-wide float32 panels over all of k, A in mr-tall float64
// panels (converted while packing, so the micro-kernel's broadcasts are
// plain loads), and the micro-kernel converts B to float64 as it loads it.
// The epilogue forms alpha·sum + beta·C in float64 (alpha·sum rounded to
// float64, then one fused multiply-add with beta·C, exact products of
// float32 values) and rounds to float32 once, so a residual or gradient
// accumulated through beta = 1 is rounded once too. Edge tiles run the same
// kernel on a scratch copy of their part of C, so they get the same bits.
//
// Determinism: as for sgemm, each element's sum runs over p in increasing
// order inside one micro-kernel call, and workers split only m or n along
// whole tiles, so the bits depend on (m, n, k) and the kernel alone.

// gemmAcc is a Backend's choice of accumulation for its matrix products:
// false sums in float32 (sgemm, the default), true in float64 (sgemmF64).
// Every product of a backend goes through it, the attention's tiles too.
type gemmAcc bool

func (f64 gemmAcc) gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if f64 {
		sgemmF64(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
	} else {
		sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
	}
}

// gemmKernelF64 is a float64-accumulating micro-kernel with its blocking:
// mr×nr register tile, mc rows of A per packed block, nc columns of B per
// packed block (k is never split).
type gemmKernelF64 struct {
	name   string
	mr, nr int
	mc, nc int
	// fn computes c[i*ldc+j] = round32(fma64(beta, c[i*ldc+j], alpha·S))
	// with S = Σ_p a[p*mr+i]·b[p*nr+j] summed in float64 over p in
	// increasing order, for i < mr, j < nr, p < kc; when beta == 0 it
	// computes round32(alpha·S) and does not read c. a holds kc*mr float64
	// and b kc*nr float32 packed values; kc >= 1.
	fn func(kc int, a []float64, b, c []float32, ldc int, alpha, beta float32)
}

// gemmGoKernelF64 is the portable float64-accumulating kernel.
var gemmGoKernelF64 = &gemmKernelF64{
	name: "go-f64", mr: 4, nr: 4,
	// A block 64×k float64 (k = 3072: 1.5 MiB), B block 512×k float32
	// (6 MiB): L2 and L3 sized for the widest BERT products.
	mc: 64, nc: 512,
	fn: sgemmKernelGo4x4F64,
}

// sgemmF64 is sgemm with float64 accumulation (see the top of this file),
// on all cores.
func sgemmF64(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkGemmArgs(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	kern := bestGemmKernelF64
	sgemmBlockedF64(kern, gemmWorkers(kern.mr, kern.nr, m, n, k), transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// sgemmBlockedF64 is sgemmBlocked for a float64-accumulating kernel.
func sgemmBlockedF64(kern *gemmKernelF64, workers int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	runGemm(nil, kern, kern.mr, kern.nr, workers, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// gemmSerialF64 is the single-threaded loop nest: B blocks of nc columns
// over all of k, A blocks of mc rows over all of k, then the register
// tiles.
func gemmSerialF64(kern *gemmKernelF64, ws *gemmWorkspace, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	mr, nr := kern.mr, kern.nr
	ncMax := min(kern.nc, ceilDiv(n, nr)*nr)
	mcMax := min(kern.mc, ceilDiv(m, mr)*mr)
	bp := ws.buf(&ws.b, ncMax*k)
	if cap(ws.a64) < mcMax*k {
		ws.a64 = make([]float64, mcMax*k)
	}
	ap := ws.a64[:mcMax*k]
	tile := ws.tile[:mr*nr]
	for jc := 0; jc < n; jc += kern.nc {
		nc := min(kern.nc, n-jc)
		packB(bp, transB, b, ldb, 0, jc, k, nc, nr)
		for ic := 0; ic < m; ic += kern.mc {
			mc := min(kern.mc, m-ic)
			packA64(ap, transA, a, lda, ic, mc, k, mr)
			cb := c[ic*ldc+jc:]
			for jr := 0; jr < nc; jr += nr {
				nrEff := min(nr, nc-jr)
				bPanel := bp[jr*k : (jr+nr)*k]
				for ir := 0; ir < mc; ir += mr {
					mrEff := min(mr, mc-ir)
					aPanel := ap[ir*k : (ir+mr)*k]
					if mrEff == mr && nrEff == nr {
						kern.fn(k, aPanel, bPanel, cb[ir*ldc+jr:], ldc, alpha, beta)
						continue
					}
					// Edge tile: the kernel on a scratch copy of this
					// part of C (not read when beta == 0), copied back.
					if beta != 0 {
						for i := 0; i < mrEff; i++ {
							copy(tile[i*nr:i*nr+nrEff], cb[(ir+i)*ldc+jr:(ir+i)*ldc+jr+nrEff])
						}
					}
					kern.fn(k, aPanel, bPanel, tile, nr, alpha, beta)
					for i := 0; i < mrEff; i++ {
						copy(cb[(ir+i)*ldc+jr:(ir+i)*ldc+jr+nrEff], tile[i*nr:i*nr+nrEff])
					}
				}
			}
		}
	}
}

// packA64 copies op(A)[ic:ic+mc, 0:k] into mr-tall float64 panels,
// Ap[p*mr+r] = op(A)[ic+ir+r, p], zero-padding the last panel to mr rows.
func packA64(dst []float64, transA bool, a []float32, lda, ic, mc, k, mr int) {
	for ir := 0; ir < mc; ir += mr {
		rows := min(mr, mc-ir)
		panel := dst[ir*k : ir*k+k*mr]
		if transA {
			// op(A)[i, p] = a[p*lda+i]: a panel's rows are contiguous.
			for p := 0; p < k; p++ {
				src := a[p*lda+ic+ir : p*lda+ic+ir+rows]
				d := panel[p*mr : p*mr+mr]
				for r, v := range src {
					d[r] = float64(v)
				}
				clear(d[rows:])
			}
			continue
		}
		for r := 0; r < rows; r++ {
			src := a[(ic+ir+r)*lda : (ic+ir+r)*lda+k]
			for p, v := range src {
				panel[p*mr+r] = float64(v)
			}
		}
		for r := rows; r < mr; r++ {
			for p := 0; p < k; p++ {
				panel[p*mr+r] = 0
			}
		}
	}
}

// sgemmKernelGo4x4F64 is the portable 4×4 float64-accumulating kernel
// (contract: gemmKernelF64.fn).
func sgemmKernelGo4x4F64(kc int, a []float64, b, c []float32, ldc int, alpha, beta float32) {
	var c00, c01, c02, c03 float64
	var c10, c11, c12, c13 float64
	var c20, c21, c22, c23 float64
	var c30, c31, c32, c33 float64
	a = a[:kc*4]
	b = b[:kc*4]
	for p := 0; p < kc; p++ {
		ap := a[4*p : 4*p+4 : 4*p+4]
		bp := b[4*p : 4*p+4 : 4*p+4]
		a0, a1, a2, a3 := ap[0], ap[1], ap[2], ap[3]
		b0, b1, b2, b3 := float64(bp[0]), float64(bp[1]), float64(bp[2]), float64(bp[3])
		// Products of float32 values are exact in float64, so whether Go
		// fuses these into FMAs does not change the result.
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
		c30 += a3 * b0
		c31 += a3 * b1
		c32 += a3 * b2
		c33 += a3 * b3
	}
	acc := [16]float64{c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33}
	for i := 0; i < 4; i++ {
		row := c[i*ldc : i*ldc+4]
		t := acc[i*4 : i*4+4]
		for j := range row {
			v := float64(alpha) * t[j]
			if beta != 0 {
				v = math.FMA(float64(beta), float64(row[j]), v)
			}
			row[j] = float32(v)
		}
	}
}
