package emu

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

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
	d := New()
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
						gpu.Int(sA), gpu.Int(sB), gpu.Int(sC), gpu.F(alpha), gpu.F(beta))
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
	d := New()
	a, b := []float32{1, 2}, []float32{3, 4}
	c := []float32{float32(math.NaN())}
	pa, pb, pc := upload(t, d, a, false), upload(t, d, b, false), upload(t, d, c, false)
	for _, k := range []string{"gemm_f32_fff", "gemm_wmma_fff"} {
		block := gpu.Dim3{X: 16, Y: 16, Z: 1}
		if k == "gemm_wmma_fff" {
			block = gpu.Dim3{X: 128, Y: 1, Z: 1}
		}
		launch(t, d, k, gpu.Dim3{X: 1, Y: 1, Z: 1}, block, 0, gpu.Ptr(pc), gpu.Ptr(pa), gpu.Ptr(pb),
			gpu.Int(1), gpu.Int(1), gpu.Int(2), 0, 0, gpu.Int(2), gpu.Int(1), gpu.Int(1), 0, 0, 0, gpu.F(1), gpu.F(0))
		if got := download(t, d, pc, 1)[0]; got != 11 {
			t.Errorf("%s: C = %v, want 11", k, got)
		}
	}
}
