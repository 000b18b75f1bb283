package cpu

import (
	"fmt"
	"math"
	"math/rand"
	"runtime"
	"strings"
	"testing"
)

// Tests for sgemm: every kernel this CPU can run (the plain Go one always),
// with the production cache blocks and with tiny blocks that put every block
// boundary inside small matrices, against the sgemmRef triple loop.

// eps32 is the float32 machine epsilon, 2^-23.
const eps32 = 1.0 / (1 << 23)

// gemmCase is one sgemm problem with its storage.
type gemmCase struct {
	transA, transB bool
	m, n, k        int
	lda, ldb, ldc  int
	alpha, beta    float32
	a, b, c0       []float32
}

// newGemmCase builds random A, B, C with leading dimensions padded by pad
// (so lda > stored columns when pad > 0); padding holds NaN, which must never
// reach a result.
func newGemmCase(rng *rand.Rand, transA, transB bool, m, n, k, pad int, alpha, beta float32) *gemmCase {
	g := &gemmCase{transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, beta: beta}
	aRows, aCols := m, k
	if transA {
		aRows, aCols = k, m
	}
	bRows, bCols := k, n
	if transB {
		bRows, bCols = n, k
	}
	g.lda, g.ldb, g.ldc = aCols+pad, bCols+pad, n+pad
	g.a = randPadded(rng, aRows, aCols, g.lda)
	g.b = randPadded(rng, bRows, bCols, g.ldb)
	g.c0 = randPadded(rng, m, n, g.ldc)
	return g
}

// randPadded returns a rows×cols matrix with leading dimension ld, values
// uniform in [-1, 1), padding NaN.
func randPadded(rng *rand.Rand, rows, cols, ld int) []float32 {
	s := make([]float32, rows*ld)
	for i := range s {
		if i%ld < cols {
			s[i] = 2*rng.Float32() - 1
		} else {
			s[i] = float32(math.NaN())
		}
	}
	return s
}

// absProducts returns S = |op(A)|·|op(B)| (m×n, leading dimension n), the
// scale of each C element's rounding error. Computed in float32 by the
// reference loop: all terms are non-negative, so S itself is within a
// relative k·u of exact, negligible next to the tolerance it feeds.
func (g *gemmCase) absProducts() []float32 {
	abs := func(s []float32) []float32 {
		o := make([]float32, len(s))
		for i, v := range s {
			o[i] = float32(math.Abs(float64(v)))
		}
		return o
	}
	s := make([]float32, g.m*g.n)
	sgemmRef(g.transA, g.transB, g.m, g.n, g.k, 1, abs(g.a), g.lda, abs(g.b), g.ldb, 0, s, g.n)
	return s
}

// checkAgainstRef compares got (an m×n result with leading dimension ldc)
// with the reference, element by element. Tolerance: each of the two
// float32 computations differs from the exact result by at most
// γ(k+2)·(|alpha|·Σ_p|a_ip||b_pj| + |beta|·|c_ij|), γ(n) = n·u/(1-n·u) with
// u = 2^-24 (Higham, Accuracy and Stability of Numerical Algorithms, §3.1:
// k products and sums, plus the alpha and beta roundings), whatever the
// summation order or FMA use. Two such results differ by at most twice that,
// which (k+2)·eps32 = (k+2)·2u bounds for every k used here. It returns a
// description of the first mismatch, or "" when all match. Padding of C
// (columns n..ldc-1) must be untouched.
func (g *gemmCase) checkAgainstRef(got, ref []float32) string {
	s := g.absProducts()
	for i := 0; i < g.m; i++ {
		for j := 0; j < g.ldc; j++ {
			x, r := got[i*g.ldc+j], ref[i*g.ldc+j]
			if j >= g.n {
				if !math.IsNaN(float64(x)) {
					return fmt.Sprintf("padding C[%d,%d] overwritten with %g", i, j, x)
				}
				continue
			}
			bound := float64(g.k+2) * eps32 * (math.Abs(float64(g.alpha))*float64(s[i*g.n+j]) + math.Abs(float64(g.beta)*float64(g.c0[i*g.ldc+j])))
			d := math.Abs(float64(x) - float64(r))
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) || d > bound {
				return fmt.Sprintf("C[%d,%d] = %g, ref %g, |diff| %g > bound %g", i, j, x, r, d, bound)
			}
		}
	}
	return ""
}

// run computes the case with sgemmBlocked and the given kernel and workers.
func (g *gemmCase) run(kern *gemmKernel, workers int) []float32 {
	c := append([]float32(nil), g.c0...)
	checkGemmArgs(g.transA, g.transB, g.m, g.n, g.k, g.a, g.lda, g.b, g.ldb, c, g.ldc)
	sgemmBlocked(kern, workers, g.transA, g.transB, g.m, g.n, g.k, g.alpha, g.a, g.lda, g.b, g.ldb, g.beta, c, g.ldc)
	return c
}

func (g *gemmCase) ref() []float32 {
	c := append([]float32(nil), g.c0...)
	sgemmRef(g.transA, g.transB, g.m, g.n, g.k, g.alpha, g.a, g.lda, g.b, g.ldb, g.beta, c, g.ldc)
	return c
}

func (g *gemmCase) String() string {
	return fmt.Sprintf("%dx%dx%d_t%s%s_ld%d,%d,%d_a%g_b%g", g.m, g.n, g.k, tf(g.transA), tf(g.transB), g.lda, g.ldb, g.ldc, g.alpha, g.beta)
}

func tf(b bool) string {
	if b {
		return "T"
	}
	return "N"
}

// testKernels returns every kernel this CPU runs, each with its production
// blocks and with tiny blocks (mc=2·mr, kc=5, nc=2·nr) so that small
// matrices cross every mc, kc and nc boundary.
func testKernels() []*gemmKernel {
	var ks []*gemmKernel
	for _, k := range gemmKernels {
		small := *k
		small.name += "/smallblocks"
		small.mc, small.kc, small.nc = 2*k.mr, 5, 2*k.nr
		ks = append(ks, k, &small)
	}
	return ks
}

// alphaBetas are the (alpha, beta) pairs cycled through the cases: the
// BLAS fast paths (beta 0 and 1, alpha 1) and general values.
var alphaBetas = [][2]float32{{1, 0}, {1, 1}, {0.5, -2}, {-1.5, 0}, {2, 0.25}}

func TestGemmKernelsSmallShapes(t *testing.T) {
	sizes := []int{0, 1, 5, 6, 7, 16, 17, 33}
	ks := []int{0, 1, 7, 33}
	rng := rand.New(rand.NewSource(1))
	for _, kern := range testKernels() {
		t.Run(kern.name, func(t *testing.T) {
			idx := 0
			for _, m := range sizes {
				for _, n := range sizes {
					for _, k := range ks {
						for tc := 0; tc < 4; tc++ {
							ab := alphaBetas[idx%len(alphaBetas)]
							pad := idx % 3
							idx++
							g := newGemmCase(rng, tc&1 != 0, tc&2 != 0, m, n, k, pad, ab[0], ab[1])
							ref := g.ref()
							for _, w := range []int{1, 2, 3} {
								if msg := g.checkAgainstRef(g.run(kern, w), ref); msg != "" {
									t.Fatalf("%v workers=%d: %s", g, w, msg)
								}
							}
						}
					}
				}
			}
		})
	}
}

func TestGemmKernelsLargeShapes(t *testing.T) {
	// Not multiples of any block (mc 128/144, kc 192/256, nc 4096, mr 4/6/12,
	// nr 4/16/32), several k blocks, and the model's skinny adapter shapes.
	shapes := [][3]int{{145, 257, 300}, {300, 100, 513}, {64, 200, 700}, {200, 64, 97}, {13, 300, 260}, {289, 47, 385}}
	if testing.Short() {
		shapes = shapes[:2]
	}
	rng := rand.New(rand.NewSource(2))
	for _, kern := range gemmKernels {
		t.Run(kern.name, func(t *testing.T) {
			idx := 0
			for _, s := range shapes {
				for tc := 0; tc < 4; tc++ {
					ab := alphaBetas[idx%len(alphaBetas)]
					idx++
					g := newGemmCase(rng, tc&1 != 0, tc&2 != 0, s[0], s[1], s[2], 3, ab[0], ab[1])
					ref := g.ref()
					if msg := g.checkAgainstRef(g.run(kern, 2), ref); msg != "" {
						t.Fatalf("%v: %s", g, msg)
					}
				}
			}
		})
	}
}

// TestGemmNextBlockNC crosses the production nc=4096 boundary once.
func TestGemmNextBlockNC(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode: 4100-wide case skipped")
	}
	rng := rand.New(rand.NewSource(3))
	g := newGemmCase(rng, false, true, 7, 4100, 20, 1, 1, 0.5)
	ref := g.ref()
	if msg := g.checkAgainstRef(g.run(bestGemmKernel, 2), ref); msg != "" {
		t.Fatalf("%v: %s", g, msg)
	}
}

// TestGemmChecker makes sure the comparison used above can fail: a result
// off by far less than one unit of the inputs' scale must be reported.
func TestGemmChecker(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	g := newGemmCase(rng, false, false, 9, 11, 50, 1, 1, 0)
	ref := g.ref()
	got := g.run(bestGemmKernel, 1)
	if msg := g.checkAgainstRef(got, ref); msg != "" {
		t.Fatalf("unperturbed result rejected: %s", msg)
	}
	got[3*g.ldc+4] += 1e-3
	if msg := g.checkAgainstRef(got, ref); msg == "" {
		t.Fatal("a 1e-3 error in C[3,4] was not detected")
	}
	got[3*g.ldc+4] -= 1e-3
	got[2*g.ldc+g.n] = 0 // padding
	if msg := g.checkAgainstRef(got, ref); msg == "" {
		t.Fatal("a write into C's padding was not detected")
	}
}

// TestGemmAlignment runs every kernel with A, B and C starting at element
// offsets 0..7 (every 4-byte alignment within 32 bytes).
func TestGemmAlignment(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	const m, n, k = 23, 37, 19
	for _, kern := range gemmKernels {
		for off := 0; off < 8; off++ {
			for tc := 0; tc < 4; tc++ {
				g := newGemmCase(rng, tc&1 != 0, tc&2 != 0, m, n, k, 0, 1.25, 0.5)
				ref := g.ref()
				shift := func(s []float32) []float32 {
					o := make([]float32, off+len(s))
					copy(o[off:], s)
					return o[off:]
				}
				g.a, g.b, g.c0 = shift(g.a), shift(g.b), shift(g.c0)
				if msg := g.checkAgainstRef(g.run(kern, 2), ref); msg != "" {
					t.Fatalf("%s offset %d %v: %s", kern.name, off, g, msg)
				}
			}
		}
	}
}

// TestGemmBetaZeroNaN: with beta == 0, C is not read, so NaN and Inf in C
// must vanish; with alpha == 0, A and B are not read.
func TestGemmBetaZeroNaN(t *testing.T) {
	rng := rand.New(rand.NewSource(6))
	nan := float32(math.NaN())
	for _, kern := range testKernels() {
		for _, negZero := range []bool{false, true} {
			g := newGemmCase(rng, false, true, 13, 35, 9, 0, 1, 0)
			if negZero {
				g.beta = float32(math.Copysign(0, -1))
			}
			for i := range g.c0 {
				g.c0[i] = nan
				if i%2 == 1 {
					g.c0[i] = float32(math.Inf(1))
				}
			}
			got := g.run(kern, 2)
			for i, v := range got {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					t.Fatalf("%s beta=%g: C[%d] = %g, C was read", kern.name, g.beta, i, v)
				}
			}
		}
		// alpha == 0: C = beta·C, A and B (all NaN) untouched.
		g := newGemmCase(rng, true, false, 8, 19, 5, 0, 0, 0.5)
		for i := range g.a {
			g.a[i] = nan
		}
		got := g.run(kern, 2)
		for i := range got {
			if got[i] != 0.5*g.c0[i] {
				t.Fatalf("%s alpha=0: C[%d] = %g, want %g", kern.name, i, got[i], 0.5*g.c0[i])
			}
		}
	}
}

// TestGemmDeterministic: results are bitwise identical whatever the number
// of workers or GOMAXPROCS, and from one run to the next.
func TestGemmDeterministic(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	// 150×70 splits m; 20×200 splits n, and there the unpacked-A choice
	// (n per worker <= 8 panels) flips with the worker count.
	for _, kern := range gemmKernels {
		for tc := 0; tc < 8; tc++ {
			m, n := 150, 70
			if tc >= 4 {
				m, n = 20, 200
			}
			g := newGemmCase(rng, tc&1 != 0, tc&2 != 0, m, n, 600, 1, 1, 0.5)
			want := g.run(kern, 1)
			for _, w := range []int{2, 3, 5, 2} {
				got := g.run(kern, w)
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) && !math.IsNaN(float64(want[i])) {
						t.Fatalf("%s %v: workers=%d C[%d]=%x, workers=1 gave %x", kern.name, g, w, i, math.Float32bits(got[i]), math.Float32bits(want[i]))
					}
				}
			}
		}
	}
	// Through the public entry point under GOMAXPROCS 1 and 2.
	g := newGemmCase(rng, false, true, 300, 200, 100, 0, 1, 0)
	outs := make([][]float32, 0, 2)
	for _, procs := range []int{1, 2} {
		old := runtime.GOMAXPROCS(procs)
		c := append([]float32(nil), g.c0...)
		sgemm(g.transA, g.transB, g.m, g.n, g.k, g.alpha, g.a, g.lda, g.b, g.ldb, g.beta, c, g.ldc)
		runtime.GOMAXPROCS(old)
		outs = append(outs, c)
	}
	for i := range outs[0] {
		if math.Float32bits(outs[0][i]) != math.Float32bits(outs[1][i]) {
			t.Fatalf("sgemm: GOMAXPROCS 1 and 2 differ at C[%d]: %g vs %g", i, outs[0][i], outs[1][i])
		}
	}
}

// TestGemmPublicMatchesRef checks the entry point the backend calls.
func TestGemmPublicMatchesRef(t *testing.T) {
	rng := rand.New(rand.NewSource(8))
	for tc := 0; tc < 4; tc++ {
		g := newGemmCase(rng, tc&1 != 0, tc&2 != 0, 130, 90, 270, 2, 0.75, 1)
		ref := g.ref()
		c := append([]float32(nil), g.c0...)
		sgemm(g.transA, g.transB, g.m, g.n, g.k, g.alpha, g.a, g.lda, g.b, g.ldb, g.beta, c, g.ldc)
		if msg := g.checkAgainstRef(c, ref); msg != "" {
			t.Fatalf("%v (kernel %s): %s", g, bestGemmKernel.name, msg)
		}
	}
}

// TestGemmNoAllocs: after a warm-up call, sgemm allocates nothing, also when
// it splits the work over workers.
func TestGemmNoAllocs(t *testing.T) {
	rng := rand.New(rand.NewSource(9))
	g := newGemmCase(rng, false, true, 256, 256, 256, 0, 1, 0)
	c := append([]float32(nil), g.c0...)
	call := func() {
		sgemm(g.transA, g.transB, g.m, g.n, g.k, g.alpha, g.a, g.lda, g.b, g.ldb, g.beta, c, g.ldc)
	}
	call()
	if allocs := testing.AllocsPerRun(20, call); allocs != 0 {
		t.Fatalf("sgemm allocates %v times per call after warm-up (workers=%d)", allocs, gemmWorkers(bestGemmKernel.mr, bestGemmKernel.nr, 256, 256, 256))
	}
}

// TestGemmBadArgsPanic: impossible sizes are programmer bugs and panic with
// the package prefix instead of letting a kernel read out of bounds.
func TestGemmBadArgsPanic(t *testing.T) {
	cases := []struct {
		name string
		call func()
	}{
		{"short a", func() {
			sgemm(false, false, 4, 4, 4, 1, make([]float32, 15), 4, make([]float32, 16), 4, 0, make([]float32, 16), 4)
		}},
		{"short c", func() {
			sgemm(false, true, 4, 4, 4, 1, make([]float32, 16), 4, make([]float32, 16), 4, 0, make([]float32, 15), 4)
		}},
		{"small ldb", func() {
			sgemm(false, false, 4, 4, 4, 1, make([]float32, 16), 4, make([]float32, 16), 3, 0, make([]float32, 16), 4)
		}},
		{"negative", func() { sgemm(false, false, -1, 4, 4, 1, nil, 4, nil, 4, 0, nil, 4) }},
	}
	for _, tc := range cases {
		func() {
			defer func() {
				r := recover()
				if s, ok := r.(string); !ok || !strings.HasPrefix(s, "cpu: sgemm") {
					t.Errorf("%s: recovered %v, want a \"cpu: sgemm\" panic", tc.name, r)
				}
			}()
			tc.call()
		}()
	}
}
