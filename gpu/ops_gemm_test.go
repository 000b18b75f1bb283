package gpu_test

// Tests of the GEMM kernels (every variant, transpose case, leading
// dimension, batch stride, alpha/beta) and of the Gemm launcher at the
// model's shapes, on the kernel emulator.

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/houlsby/adapters/backend"
	"github.com/houlsby/adapters/gpu"
)

// refGemm is the float64 reference of one batched problem set.
func refGemm(c, a, b []float32, transA, transB bool, M, N, K, lda, ldb, ldc, batch, sA, sB, sC int, alpha, beta float32) {
	for z := 0; z < batch; z++ {
		for i := 0; i < M; i++ {
			for j := 0; j < N; j++ {
				var s float64
				for k := 0; k < K; k++ {
					var x, y float32
					if transA {
						x = a[z*sA+k*lda+i]
					} else {
						x = a[z*sA+i*lda+k]
					}
					if transB {
						y = b[z*sB+j*ldb+k]
					} else {
						y = b[z*sB+k*ldb+j]
					}
					s += float64(x) * float64(y)
				}
				p := &c[z*sC+i*ldc+j]
				v := float64(alpha) * s
				if beta != 0 {
					v += float64(beta) * float64(*p)
				}
				*p = float32(v)
			}
		}
	}
}

// TestGemmKernels runs every GEMM kernel over every transpose case, padded
// leading dimensions, a strided batch and alpha/beta, on sizes that are not
// multiples of the 64x64 tiles or the 16/32 K steps.
func TestGemmKernels(t *testing.T) {
	d := emuDevice(t)
	r := rand.New(rand.NewSource(1))
	const M, N, K, batch = 70, 45, 37, 2
	for _, kind := range []string{"f32", "wmma"} {
		for _, ops := range []string{"ff", "fb", "bf", "bb"} {
			for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
				name := fmt.Sprintf("gemm_%s_%s/tA=%v,tB=%v", kind, ops, tr[0], tr[1])
				t.Run(name, func(t *testing.T) {
					ar, ac := M, K
					if tr[0] {
						ar, ac = K, M
					}
					br, bc := K, N
					if tr[1] {
						br, bc = N, K
					}
					lda, ldb, ldc := ac+3, bc+1, N+2
					sA, sB, sC := ar*lda+5, br*ldb, M*ldc+7
					a, b := randVec(r, batch*sA), randVec(r, batch*sB)
					c := randVec(r, batch*sC)
					aBF, bBF := ops[0] == 'b', ops[1] == 'b'
					// The reference sees what the kernel sees: bf16 storage
					// rounds; the WMMA kernel also rounds float operands.
					ra, rb := append([]float32(nil), a...), append([]float32(nil), b...)
					for i := range ra {
						if aBF || kind == "wmma" {
							ra[i] = bf16Round(ra[i])
						}
					}
					for i := range rb {
						if bBF || kind == "wmma" {
							rb[i] = bf16Round(rb[i])
						}
					}
					want := append([]float32(nil), c...)
					alpha, beta := float32(0.75), float32(-0.5)
					refGemm(want, ra, rb, tr[0], tr[1], M, N, K, lda, ldb, ldc, batch, sA, sB, sC, alpha, beta)
					pa, pb, pc := upload(t, d, a, aBF), upload(t, d, b, bBF), upload(t, d, c, false)
					block := gpu.Dim3{X: 16, Y: 16, Z: 1}
					if kind == "wmma" {
						block = gpu.Dim3{X: 128, Y: 1, Z: 1}
					}
					b2i := func(x bool) int {
						if x {
							return 1
						}
						return 0
					}
					launch(t, d, "gemm_"+kind+"_"+ops+"f", gpu.Dim3{X: cdiv(N, 64), Y: cdiv(M, 64), Z: batch}, block, 0,
						gpu.Ptr(pc), gpu.Ptr(pa), gpu.Ptr(pb), gpu.Int(M), gpu.Int(N), gpu.Int(K),
						gpu.Int(b2i(tr[0])), gpu.Int(b2i(tr[1])), gpu.Int(lda), gpu.Int(ldb), gpu.Int(ldc),
						gpu.Int(sA), gpu.Int(sB), gpu.Int(sC), gpu.F(alpha), gpu.F(beta), 0, 0, 0, 0) // no epilogue
					got := download(t, d, pc, len(c))
					// Operands are exact (pre-rounded) in the reference, so
					// only fp32 accumulation error remains: K=37 terms of
					// size ~1 give |err| <~ K·2^-24·Σ|ab| ~ 1e-5; 1e-4 leaves
					// room. Elements outside the M×N windows (padding) must
					// be untouched, which the same comparison checks.
					closeTo(t, "C", got, want, 1e-4, 1e-4)
				})
			}
		}
	}
}

// TestGemmBetaZeroIgnoresNaN: beta == 0 must overwrite C even if it holds NaN.
func TestGemmBetaZeroIgnoresNaN(t *testing.T) {
	d := emuDevice(t)
	a, b := []float32{1, 2}, []float32{3, 4}
	c := []float32{float32(math.NaN())}
	pa, pb, pc := upload(t, d, a, false), upload(t, d, b, false), upload(t, d, c, false)
	for _, k := range []string{"gemm_f32_fff", "gemm_wmma_fff"} {
		block := gpu.Dim3{X: 16, Y: 16, Z: 1}
		if k == "gemm_wmma_fff" {
			block = gpu.Dim3{X: 128, Y: 1, Z: 1}
		}
		launch(t, d, k, gpu.Dim3{X: 1, Y: 1, Z: 1}, block, 0, gpu.Ptr(pc), gpu.Ptr(pa), gpu.Ptr(pb),
			gpu.Int(1), gpu.Int(1), gpu.Int(2), 0, 0, gpu.Int(2), gpu.Int(1), gpu.Int(1), 0, 0, 0, gpu.F(1), gpu.F(0), 0, 0, 0, 0)
		if got := download(t, d, pc, 1)[0]; got != 11 {
			t.Errorf("%s: C = %v, want 11", k, got)
		}
	}
}

// TestGemmRandomShapes: random sizes from 1 to 140 (across tile edges),
// transposes, padded leading dimensions, batches and storage types (A, B
// and C each float or bf16), through the Backend's Gemm (so the launcher's
// kernel choice is covered), against a float64 reference on the stored
// values.
func TestGemmRandomShapes(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	be, err := gpu.New(emuDevice(t), gpu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	dts := []backend.DType{backend.F32, backend.BF16}
	for it := 0; it < 40; it++ {
		M, N, K := 1+r.Intn(140), 1+r.Intn(140), 1+r.Intn(140)
		p := backend.MatMul{TransA: r.Intn(2) == 1, TransB: r.Intn(2) == 1, M: M, N: N, K: K,
			Alpha: float32(r.NormFloat64()), Beta: []float32{0, 1, -0.5}[r.Intn(3)], Batch: 1 + r.Intn(3)}
		ar, ac, br, bc := M, K, K, N
		if p.TransA {
			ar, ac = K, M
		}
		if p.TransB {
			br, bc = N, K
		}
		p.LdA, p.LdB, p.LdC = ac+r.Intn(3), bc+r.Intn(3), N+r.Intn(3)
		p.StrideA, p.StrideB, p.StrideC = ar*p.LdA+r.Intn(4), br*p.LdB+r.Intn(4), M*p.LdC+r.Intn(4)
		ta, tb, tc := dts[r.Intn(2)], dts[r.Intn(2)], dts[r.Intn(2)]
		mk := func(dt backend.DType, n int) (backend.Tensor, []float32) {
			x, err := be.Alloc(dt, n)
			if err != nil {
				t.Fatal(err)
			}
			if err := be.Upload(x, randVec(r, n)); err != nil {
				t.Fatal(err)
			}
			v := make([]float32, n)
			if err := be.Download(v, x); err != nil {
				t.Fatal(err)
			}
			return x, v
		}
		a, av := mk(ta, p.Batch*p.StrideA)
		b, bv := mk(tb, p.Batch*p.StrideB)
		c, cv := mk(tc, p.Batch*p.StrideC)
		if err := be.Gemm(c, a, b, p); err != nil {
			t.Fatal(err)
		}
		got := make([]float32, c.Len())
		if err := be.Download(got, c); err != nil {
			t.Fatal(err)
		}
		// The tensor-core kernel (any bf16 operand) rounds a float operand
		// to bf16 first; the reference does the same.
		wmma := ta == backend.BF16 || tb == backend.BF16
		if wmma {
			for i := range av {
				av[i] = bf16Round(av[i])
			}
			for i := range bv {
				bv[i] = bf16Round(bv[i])
			}
		}
		want := append([]float32(nil), cv...)
		refGemm(want, av, bv, p.TransA, p.TransB, M, N, K, p.LdA, p.LdB, p.LdC, p.Batch, p.StrideA, p.StrideB, p.StrideC, p.Alpha, p.Beta)
		// fp32 accumulation of K <= 140 O(1) terms (≤ 140·2^-24·Σ|ab| ≈ 1e-4
		// for |alpha| ≲ 3) plus, for a bf16 C, its final rounding (2^-8
		// relative, ×2 for the reference's own float32 rounding).
		rtol := 1e-4
		if tc == backend.BF16 {
			rtol = 2.0 / 256
		}
		closeTo(t, fmt.Sprintf("case %d %+v %v/%v/%v", it, p, ta, tb, tc), got, want, 1e-3, rtol)
	}
}

// TestGemmModelShapes: the encoder's projections, Y = X·Wᵀ (+ the backward's
// dX = dY·W and dW += dYᵀ·X), with K = 384, on both kernels.
func TestGemmModelShapes(t *testing.T) {
	const N, C, F = 67, 384, 150 // rows, in, out
	for _, tc := range []struct {
		name   string
		xd, wd backend.DType
	}{{"f32", backend.F32, backend.F32}, {"f32x-bf16w", backend.F32, backend.BF16}, {"bf16", backend.BF16, backend.BF16}} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDuo(t)
			x := d.tensor(tc.xd, N*C, 1, nil)
			w := d.tensor(tc.wd, F*C, 1, nil)
			y := d.tensor(tc.xd, N*F, 0, make([]float32, N*F))
			d.both("Gemm", func(be backend.Backend, s func(*pair) backend.Tensor) error {
				return be.Gemm(s(y), s(x), s(w), backend.MatMul{TransB: true, M: N, N: F, K: C, Alpha: 1})
			})
			// Tolerance: with an F32 operand next to a BF16 one, the tensor
			// cores round the F32 one to bf16: each product is off by <= u
			// relative, |Δy| <= u·Σ_k|x_k||w_k| (computed exactly below);
			// bf16 y adds its own rounding (rtol); fp32 order differences
			// add K·2^-24·Σ|x||w|.
			yg, yc := make([]float32, N*F), make([]float32, N*F)
			if err := d.g.Download(yg, y.g); err != nil {
				t.Fatal(err)
			}
			if err := d.c.Download(yc, y.c); err != nil {
				t.Fatal(err)
			}
			rounds := tc.xd != tc.wd
			for i := 0; i < N; i++ {
				for j := 0; j < F; j++ {
					var sabs float64
					for k := 0; k < C; k++ {
						sabs += math.Abs(float64(x.host[i*C+k]) * float64(w.host[j*C+k]))
					}
					tol := C * 0x1p-24 * sabs
					if rounds {
						tol += bf16u * sabs
					}
					if tc.xd == backend.BF16 {
						tol += 2 * bf16u * math.Abs(float64(yc[i*F+j]))
					}
					if diff := math.Abs(float64(yg[i*F+j] - yc[i*F+j])); diff > tol {
						t.Fatalf("y[%d,%d] = %v, cpu %v, |diff| %g > %g", i, j, yg[i*F+j], yc[i*F+j], diff, tol)
					}
				}
			}
		})
	}
}
