package gpu

import (
	"fmt"

	"github.com/houlsby/adapters/backend"
)

// span returns the elements an operand touches: the last problem's last
// row's last element + 1.
func span(rows, cols, ld, batch, stride int) int {
	if rows == 0 || cols == 0 || batch == 0 {
		return 0
	}
	return (batch-1)*stride + (rows-1)*ld + cols
}

// Gemm computes c = alpha·op(a)·op(b) + beta·c for every problem of the
// batch described by p (see backend.MatMul). a, b and c are each F32 or
// BF16. Two F32 operands run the fp32 tiled kernel (gemm_f32_*); any BF16
// operand runs the tensor-core kernel (gemm_wmma_*, bf16 inputs with fp32
// accumulation), which rounds an F32 operand to bf16 on the fly. A BF16 c
// is rounded once, after alpha and beta.
func (b *Backend) Gemm(c, a, bm backend.Tensor, p backend.MatMul) error {
	const op = "gpu.Gemm"
	if err := sizes(op, "M,N,K,Batch,StrideA,StrideB,StrideC,LdA,LdB,LdC", p.M, p.N, p.K, p.Batch, p.StrideA, p.StrideB, p.StrideC, p.LdA, p.LdB, p.LdC); err != nil {
		return err
	}
	batch := max(p.Batch, 1)
	if batch > 65535 {
		return fmt.Errorf("%s: Batch = %d exceeds the grid's 65535", op, batch)
	}
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
	if batch > 1 && p.M > 0 && p.N > 0 && p.StrideC < p.M*ldc-(ldc-p.N) {
		return fmt.Errorf("%s: StrideC = %d makes the %d outputs of the batch overlap (need >= %d)", op, p.StrideC, batch, p.M*ldc-(ldc-p.N))
	}
	at, err := weight(op, "a", a, span(ar, ac, lda, batch, p.StrideA))
	if err != nil {
		return err
	}
	bt, err := weight(op, "b", bm, span(br, bc, ldb, batch, p.StrideB))
	if err != nil {
		return err
	}
	ct, err := weight(op, "c", c, span(p.M, p.N, ldc, batch, p.StrideC))
	if err != nil {
		return err
	}
	if p.M == 0 || p.N == 0 {
		return nil
	}
	return b.gemm(op, ct, at, bt, p.TransA, p.TransB, p.M, p.N, p.K, lda, ldb, ldc, batch, p.StrideA, p.StrideB, p.StrideC, p.Alpha, p.Beta)
}

// gemm launches the GEMM kernel for checked arguments (also used by the
// adapter's weight gradients).
func (b *Backend) gemm(op string, c, a, bm *Tensor, transA, transB bool, M, N, K, lda, ldb, ldc, batch, sA, sB, sC int, alpha, beta float32) error {
	code := func(t *Tensor) string {
		if t.dt == backend.BF16 {
			return "b"
		}
		return "f"
	}
	kernel, block := "gemm_f32_", Dim3{X: 16, Y: 16, Z: 1}
	if a.dt == backend.BF16 || bm.dt == backend.BF16 {
		kernel, block = "gemm_wmma_", b1(128)
	}
	kernel += code(a) + code(bm) + code(c)
	grid := Dim3{X: uint32((N + 63) / 64), Y: uint32((M + 63) / 64), Z: uint32(batch)}
	if grid.Y > 65535 {
		return fmt.Errorf("%s: M = %d needs more than 65535 row tiles", op, M)
	}
	return b.launch(op, kernel, grid, block, 0, ptr(c), ptr(a), ptr(bm), Int(M), Int(N), Int(K),
		i64(transA), i64(transB), Int(lda), Int(ldb), Int(ldc), Int(sA), Int(sB), Int(sC), F(alpha), F(beta))
}
