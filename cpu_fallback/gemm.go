package cpu

import "fmt"

// sgemm computes C = alpha·op(A)·op(B) + beta·C for row-major float32
// matrices: op(A) is m×k, op(B) is k×n, C is m×n, with leading dimensions
// lda, ldb, ldc (elements between stored rows). When beta == 0, C is not read
// (NaNs in C do not propagate), as in reference BLAS. When alpha == 0 or
// k == 0, A and B are not read and C = beta·C.
//
// It runs the packed, cache-blocked path (gemm_blocked.go) with the
// micro-kernel gemmKernelFor picks for this CPU and shape (AVX-512 where it
// was measured faster, else AVX2+FMA, or plain Go) on all cores. Results are deterministic: every C element is
// reduced in an order fixed by (m, n, k) and the kernel alone, never by thread
// scheduling or GOMAXPROCS. sgemm does not allocate after warm-up.
//
// Bad sizes or slices too short for them are programmer bugs and panic.
func sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkGemmArgs(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	kern := gemmKernelFor(transA, m, n, k)
	sgemmBlocked(kern, gemmWorkers(kern.mr, kern.nr, m, n, k), transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// serial is the product (sgemm, or sgemmF64 when f64) on the calling
// goroutine with the caller's packing workspace, for the small products
// inside a parallel region (the packed attention's tiles), where splitting
// the product or taking a workspace from the shared free list would cost
// more than it saves. Same arithmetic as the parallel path, so the same
// bits.
func (f64 gemmAcc) serial(ws *gemmWorkspace, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkGemmArgs(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		scaleC(m, n, beta, c, ldc)
		return
	}
	if f64 {
		gemmSerialF64(bestGemmKernelF64, ws, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
	} else {
		gemmSerial(gemmKernelFor(transA, m, n, k), ws, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
	}
}

// sgemmRef is the straightforward triple loop, kept as the oracle for every
// optimised path.
func sgemmRef(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float32
			for p := 0; p < k; p++ {
				var av, bv float32
				if transA {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if transB {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				s += av * bv
			}
			if beta == 0 {
				c[i*ldc+j] = alpha * s
			} else {
				c[i*ldc+j] = alpha*s + beta*c[i*ldc+j]
			}
		}
	}
}

// checkGemmArgs panics when sizes are negative, a leading dimension is
// smaller than the stored row, or a slice is too short for its matrix. The
// assembly kernels index through raw pointers, so this check is what keeps
// them inside the slices.
func checkGemmArgs(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("cpu: sgemm: negative size m=%d n=%d k=%d", m, n, k))
	}
	// check verifies one stored matrix of rows×cols with leading dimension ld.
	check := func(name string, s []float32, rows, cols, ld int) {
		if rows == 0 || cols == 0 {
			return
		}
		if ld < cols {
			panic(fmt.Sprintf("cpu: sgemm: ld%s=%d < %d stored columns", name, ld, cols))
		}
		if need := (rows-1)*ld + cols; len(s) < need {
			panic(fmt.Sprintf("cpu: sgemm: len(%s)=%d < %d needed for %d×%d with ld=%d", name, len(s), need, rows, cols, ld))
		}
	}
	if transA {
		check("a", a, k, m, lda)
	} else {
		check("a", a, m, k, lda)
	}
	if transB {
		check("b", b, n, k, ldb)
	} else {
		check("b", b, k, n, ldb)
	}
	check("c", c, m, n, ldc)
}
