package gpu

import (
	"fmt"

	"github.com/houlsby/adapters/backend"
)

// Gemm computes c = alpha·op(a)·op(b) + beta·c for every problem of the
// batch described by p (see backend.MatMul). a, b and c are each F32 or
// BF16. Two F32 operands run the fp32 tiled kernel (gemm_f32_*); any BF16
// operand runs the tensor-core kernel (gemm_wmma_*, bf16 inputs with fp32
// accumulation), which rounds an F32 operand to bf16 on the fly. A BF16 c
// is rounded once, after alpha and beta.
func (b *Backend) Gemm(c, a, bm backend.Tensor, p backend.MatMul) error {
	const op = "gpu.Gemm"
	l, err := p.Layout(op)
	if err != nil {
		return err
	}
	batch, lda, ldb, ldc := l.Batch, l.LdA, l.LdB, l.LdC
	if batch > 65535 {
		return fmt.Errorf("%s: Batch = %d exceeds the grid's 65535", op, batch)
	}
	at, err := weight(op, "a", a, l.SpanA)
	if err != nil {
		return err
	}
	bt, err := weight(op, "b", bm, l.SpanB)
	if err != nil {
		return err
	}
	ct, err := weight(op, "c", c, l.SpanC)
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
	fam, block := kGemmF32, Dim3{X: 16, Y: 16, Z: 1}
	if a.dt == backend.BF16 || bm.dt == backend.BF16 {
		fam, block = kGemmWMMA, b1(128)
	}
	kernel := fam.of(a, bm, c)
	grid := Dim3{X: uint32((N + 63) / 64), Y: uint32((M + 63) / 64), Z: uint32(batch)}
	if grid.Y > 65535 {
		return fmt.Errorf("%s: M = %d needs more than 65535 row tiles", op, M)
	}
	return b.launch(op, kernel, grid, block, 0, ptr(c), ptr(a), ptr(bm), Int(M), Int(N), Int(K),
		i64(transA), i64(transB), Int(lda), Int(ldb), Int(ldc), Int(sA), Int(sB), Int(sC), F(alpha), F(beta))
}
