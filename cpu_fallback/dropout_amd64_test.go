//go:build amd64 && !purego

package cpu

import (
	"math/rand/v2"
	"testing"
)

// TestDropoutAVX512MatchesGo: dropoutApply with the AVX-512 kernel (and
// dropoutApplyPair, with and without it) gives bitwise the plain loop's
// result for every length 0..80, start offset
// 0..15, several index bases (including ones near 2³²) and probabilities.
func TestDropoutAVX512MatchesGo(t *testing.T) {
	if !dropoutSIMD {
		t.Skip("no AVX512DQ on this CPU")
	}
	r := rand.New(rand.NewPCG(9, 9))
	src := make([]float32, 96)
	for i := range src {
		src[i] = float32(r.NormFloat64())
	}
	want, got := make([]float32, 96), make([]float32, 96)
	for _, p := range []float32{0.1, 0.5, 1.0 / 3, 0.999} {
		for _, base := range []int{0, 7, 1 << 20, 1<<32 - 5, 1<<40 + 3} {
			for _, seed := range []uint64{0, 0xdeadbeefcafef00d} {
				for n := 0; n <= 80; n++ {
					for off := 0; off < 16; off++ {
						dropoutApply(got[off:off+n], src[off:off+n], base, p, seed)
						dropoutSIMD = false
						dropoutApply(want[off:off+n], src[off:off+n], base, p, seed)
						dropoutSIMD = true
						// The pair kernel: both outputs equal dropoutApply's.
						g1, g2 := make([]float32, n), make([]float32, n)
						dropoutApplyPair(g1, src[off:off+n], g2, src[off:off+n], base, p, seed)
						for i := range g1 {
							if !sameBits(g1[i], want[off+i]) || !sameBits(g2[i], want[off+i]) {
								t.Fatalf("pair p=%v base=%d n=%d off=%d: element %d = %v, %v; want %v", p, base, n, off, i, g1[i], g2[i], want[off+i])
							}
						}
						for i := off; i < off+n; i++ {
							if !sameBits(got[i], want[i]) {
								t.Fatalf("p=%v base=%d seed=%#x n=%d off=%d: element %d = %v, Go loop %v", p, base, seed, n, off, i-off, got[i], want[i])
							}
						}
					}
				}
			}
		}
	}
}
