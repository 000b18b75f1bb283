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
	return b.gemm(op, ct, at, bt, p.TransA, p.TransB, p.M, p.N, p.K, lda, ldb, ldc, batch, p.StrideA, p.StrideB, p.StrideC, p.Alpha, p.Beta, gemmEpilogue{})
}

// gemmEpilogue is what gemm.cu's kernels do to each element of C before
// storing it (GemmEpi): add bias[col] (nil: none), then dropout with
// probability p (0: none) over the flat index row·ldc + col.
type gemmEpilogue struct {
	bias *Tensor
	p    float32
	seed uint64
}

// gemm launches the GEMM kernel for checked arguments (also used by the
// adapter's weight gradients and LinearForward's epilogue).
func (b *Backend) gemm(op string, c, a, bm *Tensor, transA, transB bool, M, N, K, lda, ldb, ldc, batch, sA, sB, sC int, alpha, beta float32, epi gemmEpilogue) error {
	fam, block := kGemmF32, Dim3{X: 16, Y: 16, Z: 1}
	if a.dt == backend.BF16 || bm.dt == backend.BF16 {
		fam, block = kGemmWMMA, b1(128)
	}
	kernel := fam.of(a, bm, c)
	grid := Dim3{X: uint32((N + 63) / 64), Y: uint32((M + 63) / 64), Z: uint32(batch)}
	if grid.Y > 65535 {
		return fmt.Errorf("%s: M = %d needs more than 65535 row tiles", op, M)
	}
	biasBF16 := epi.bias != nil && epi.bias.dt == backend.BF16
	return b.launch(op, kernel, grid, block, 0, ptr(c), ptr(a), ptr(bm), Int(M), Int(N), Int(K),
		i64(transA), i64(transB), Int(lda), Int(ldb), Int(ldc), Int(sA), Int(sB), Int(sC), F(alpha), F(beta),
		ptr(epi.bias), i64(biasBF16), F(epi.p), epi.seed)
}

// LinearForward is a dense layer in one launch (backend.FusedLinear): y
// (N, out) = dropout(x (N, in)·wᵀ + bias) with w (out, in) and bias (out,
// nil for none), the bias add and the dropout in the GEMM's epilogue. x, w,
// y and bias are each F32 or BF16 (the kernel is chosen as Gemm chooses
// it); a BF16 y is rounded once, after the dropout, where the core ops
// would round after each of the three steps. y must not overlap x, w or
// bias.
func (b *Backend) LinearForward(y, x, w, bias backend.Tensor, N, out, in int, p float32, seed uint64) error {
	const op = "gpu.LinearForward"
	if err := sizes(op, "N,out,in", N, out, in); err != nil {
		return err
	}
	if err := checkP(op, p); err != nil {
		return err
	}
	no, err := mulOK(op, N, out)
	if err != nil {
		return err
	}
	ni, err := mulOK(op, N, in)
	if err != nil {
		return err
	}
	oi, err := mulOK(op, out, in)
	if err != nil {
		return err
	}
	yt, err := weight(op, "y", y, no)
	if err != nil {
		return err
	}
	xt, err := weight(op, "x", x, ni)
	if err != nil {
		return err
	}
	wt, err := weight(op, "w", w, oi)
	if err != nil {
		return err
	}
	var bt *Tensor
	if !isNil(bias) {
		if bt, err = weight(op, "bias", bias, out); err != nil {
			return err
		}
	}
	if overlaps(yt, no, xt, ni) || overlaps(yt, no, wt, oi) || overlaps(yt, no, bt, out) {
		return fmt.Errorf("%s: y overlaps x, w or bias", op)
	}
	if no == 0 {
		return nil
	}
	return b.gemm(op, yt, xt, wt, false, true, N, out, in, in, in, out, 1, 0, 0, 0, 1, 0, gemmEpilogue{bias: bt, p: p, seed: seed})
}
