package cpu

import (
	"math"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/require"
)

// sgemmRefF64 is the oracle of the float64-accumulating path: each C
// element's sum over p in increasing order in float64 (the products of
// float32 values are exact there), then alpha·sum and one fused
// multiply-add with beta·C in float64, rounded to float32 once: the
// contract of gemmKernelF64.fn. The kernels must give exactly these bits.
func sgemmRefF64(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
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
				s += float64(av) * float64(bv)
			}
			v := float64(alpha) * s
			if beta != 0 {
				v = math.FMA(float64(beta), float64(c[i*ldc+j]), v)
			}
			c[i*ldc+j] = float32(v)
		}
	}
}

// f64Kernels is every float64-accumulating kernel this CPU runs, each with
// its production blocks and with tiny ones (mc = 2·mr, nc = 2·nr) so small
// matrices cross every block boundary.
func f64Kernels() []*gemmKernelF64 {
	var out []*gemmKernelF64
	for _, k := range gemmKernelsF64 {
		tiny := *k
		tiny.name += "-tiny"
		tiny.mc, tiny.nc = 2*k.mr, 2*k.nr
		out = append(out, k, &tiny)
	}
	return out
}

// TestGemmF64BitExact: every float64 kernel, serial and split over
// workers, gives the oracle's bits on shapes with edge tiles in m and n,
// both transposes, padded leading dimensions (padding NaN must not leak),
// and the alpha/beta pairs of the float32 tests.
func TestGemmF64BitExact(t *testing.T) {
	rng := rand.New(rand.NewSource(11))
	shapes := [][3]int{{1, 1, 1}, {5, 7, 3}, {12, 16, 1}, {13, 17, 40}, {25, 33, 64}, {40, 9, 130}, {64, 200, 385}, {97, 50, 768}}
	if testing.Short() {
		shapes = shapes[:5]
	}
	for _, kern := range f64Kernels() {
		t.Logf("kernel %s (mr %d, nr %d, mc %d, nc %d)", kern.name, kern.mr, kern.nr, kern.mc, kern.nc)
		for _, s := range shapes {
			for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
				for _, ab := range alphaBetas {
					g := newGemmCase(rng, tr[0], tr[1], s[0], s[1], s[2], 3, ab[0], ab[1])
					want := append([]float32(nil), g.c0...)
					sgemmRefF64(g.transA, g.transB, g.m, g.n, g.k, g.alpha, g.a, g.lda, g.b, g.ldb, g.beta, want, g.ldc)
					for _, workers := range []int{1, 3} {
						got := runF64(kern, workers, g)
						for i := range want {
							if math.Float32bits(got[i]) != math.Float32bits(want[i]) && !(math.IsNaN(float64(got[i])) && math.IsNaN(float64(want[i]))) {
								t.Fatalf("%s %s workers %d: C[%d] = %g, oracle %g", kern.name, g, workers, i, got[i], want[i])
							}
						}
					}
				}
			}
		}
	}
}

// runF64 runs a case through the float64 driver with the given kernel and
// at most workers workers.
func runF64(kern *gemmKernelF64, workers int, g *gemmCase) []float32 {
	c := append([]float32(nil), g.c0...)
	sgemmBlockedF64(kern, workers, g.transA, g.transB, g.m, g.n, g.k, g.alpha, g.a, g.lda, g.b, g.ldb, g.beta, c, g.ldc)
	return c
}

// TestGemmF64Public: sgemmF64 and gemmAcc(true).serial (the entry points) match
// the oracle, beta == 0 does not read C (NaN there does not propagate), and
// k == 0 or alpha == 0 leaves beta·C.
func TestGemmF64Public(t *testing.T) {
	rng := rand.New(rand.NewSource(12))
	for _, s := range [][3]int{{300, 70, 384}, {33, 129, 1536}, {8, 8, 0}} {
		for _, ab := range [][2]float32{{1, 0}, {0.125, 1}, {0, 2}} {
			g := newGemmCase(rng, false, true, s[0], s[1], s[2], 0, ab[0], ab[1])
			if ab[1] == 0 {
				for i := range g.c0 {
					g.c0[i] = float32(math.NaN())
				}
			}
			want := append([]float32(nil), g.c0...)
			if g.k == 0 || g.alpha == 0 {
				scaleC(g.m, g.n, g.beta, want, g.ldc)
			} else {
				sgemmRefF64(g.transA, g.transB, g.m, g.n, g.k, g.alpha, g.a, g.lda, g.b, g.ldb, g.beta, want, g.ldc)
			}
			got := append([]float32(nil), g.c0...)
			sgemmF64(g.transA, g.transB, g.m, g.n, g.k, g.alpha, g.a, g.lda, g.b, g.ldb, g.beta, got, g.ldc)
			require.Equal(t, want, got, "%s", g)
			ws := getGemmWorkspace()
			got2 := append([]float32(nil), g.c0...)
			gemmAcc(true).serial(ws, g.transA, g.transB, g.m, g.n, g.k, g.alpha, g.a, g.lda, g.b, g.ldb, g.beta, got2, g.ldc)
			putGemmWorkspace(ws)
			require.Equal(t, want, got2, "%s serial", g)
		}
	}
}

// TestGemmF64MoreAccurate: on a long, cancelling sum the float64 path is
// within half a float32 ulp of the exact result (the one rounding), where
// the float32 path is not. This is the property the option is for.
func TestGemmF64MoreAccurate(t *testing.T) {
	const k = 3072
	rng := rand.New(rand.NewSource(13))
	a := make([]float32, k)
	b := make([]float32, k)
	var exact float64
	for p := range a {
		a[p] = 2*rng.Float32() - 1
		b[p] = 2*rng.Float32() - 1
		exact += float64(a[p]) * float64(b[p]) // error ~1e-13, far below float32's
	}
	var c32, c64 [1]float32
	sgemm(false, false, 1, 1, k, 1, a, k, b, 1, 0, c32[:], 1)
	sgemmF64(false, false, 1, 1, k, 1, a, k, b, 1, 0, c64[:], 1)
	require.Equal(t, float32(exact), c64[0], "float64 accumulation is the correctly rounded sum")
	t.Logf("k=%d dot product: exact %.10g, float64-accumulated %.10g, float32 %.10g (error %.3g)", k, exact, c64[0], c32[0], float64(c32[0])-exact)
	require.NotEqual(t, float32(exact), c32[0], "this case should show float32 accumulation's error; pick another seed if it does not")
}

// BenchmarkGemmF64 times the float64-accumulating path (beta = 0, all
// cores) on gemmBenchShapes as BenchmarkGemmF64/cpu/<shape> with the kernel
// sgemmF64 uses, and every SIMD float64 kernel this CPU has as
// BenchmarkGemmF64/kernel-<name>/<shape>; GFLOP/s as BenchmarkGemm reports
// it: run both in one invocation for the cost of the option side by side.
func BenchmarkGemmF64(b *testing.B) {
	for _, s := range gemmBenchShapes {
		b.Run("cpu/"+s.String(), func(b *testing.B) { benchGemmF64(b, bestGemmKernelF64, s) })
	}
	for _, k := range gemmKernelsF64 {
		if k == gemmGoKernelF64 {
			continue
		}
		for _, s := range gemmBenchShapes {
			b.Run("kernel-"+k.name+"/"+s.String(), func(b *testing.B) { benchGemmF64(b, k, s) })
		}
	}
}

func benchGemmF64(b *testing.B, kern *gemmKernelF64, s gemmBenchShape) {
	a, bm, c, lda, ldb := gemmBenchData(s)
	workers := gemmWorkers(kern.mr, kern.nr, s.m, s.n, s.k)
	call := func() {
		sgemmBlockedF64(kern, workers, s.transA, s.transB, s.m, s.n, s.k, 1, a, lda, bm, ldb, 0, c, s.n)
	}
	call() // warm-up: packing buffers, worker pool
	b.ResetTimer()
	cpu0 := processCPUSeconds()
	for i := 0; i < b.N; i++ {
		call()
	}
	b.StopTimer()
	reportGflops(b, 2*float64(s.m)*float64(s.n)*float64(s.k)*float64(b.N), processCPUSeconds()-cpu0, cpu0 >= 0)
}
