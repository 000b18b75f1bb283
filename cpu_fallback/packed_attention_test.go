package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/houlsby/adapters/backend"
	"github.com/houlsby/adapters/tests/ref64"
)

// packedCase is one packed batch: sequence lengths, maxT and head sizes,
// with random qkv and dout.
type packedCase struct {
	lens          []int
	maxT, NH, HS  int
	starts        []int32
	N, C          int
	qkv, dout     []float32
	be            *Backend
	tQKV, tStarts backend.Tensor
}

func newPackedCase(t testing.TB, be *Backend, r *rand.Rand, lens []int, maxT, NH, HS int) *packedCase {
	c := &packedCase{lens: lens, maxT: maxT, NH: NH, HS: HS, be: be, C: NH * HS}
	c.starts = make([]int32, len(lens)+1)
	for s, l := range lens {
		c.starts[s+1] = c.starts[s] + int32(l)
	}
	c.N = int(c.starts[len(lens)])
	c.qkv = make([]float32, c.N*3*c.C)
	for i := range c.qkv {
		c.qkv[i] = float32(r.NormFloat64())
	}
	c.dout = make([]float32, c.N*c.C)
	for i := range c.dout {
		c.dout[i] = float32(r.NormFloat64())
	}
	c.tQKV = c.upload(t, c.qkv, c.N, 3*c.C)
	st, err := be.Alloc(backend.I32, len(c.starts))
	if err != nil {
		t.Fatal(err)
	}
	copy(st.(*Tensor).Ints, c.starts)
	c.tStarts = st
	return c
}

func (c *packedCase) upload(t testing.TB, v []float32, shape ...int) backend.Tensor {
	x, err := c.be.Alloc(backend.F32, shape...)
	if err != nil {
		t.Fatal(err)
	}
	copy(x.(*Tensor).Data, v)
	return x
}

// run returns out, lse and dqkv of the packed attention.
func (c *packedCase) run(t testing.TB, p float32, seed uint64) (out, lse, dqkv []float32) {
	S := len(c.lens)
	o, l, d := c.upload(t, nil, c.N, c.C), c.upload(t, nil, c.NH, c.N), c.upload(t, nil, c.N, 3*c.C)
	if err := c.be.PackedAttentionForward(o, l, c.tQKV, c.tStarts, S, c.maxT, c.NH, c.HS, p, seed); err != nil {
		t.Fatal(err)
	}
	g := c.upload(t, c.dout, c.N, c.C)
	if err := c.be.PackedAttentionBackward(d, g, c.tQKV, o, l, c.tStarts, S, c.maxT, c.NH, c.HS, p, seed); err != nil {
		t.Fatal(err)
	}
	return o.(*Tensor).Data, l.(*Tensor).Data, d.(*Tensor).Data
}

func f64s(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// closeTo checks |got-want| <= tol·(1+|want|) element by element.
func closeTo(t *testing.T, name string, got []float32, want []float64, tol float64) {
	t.Helper()
	worst := 0.0
	for i := range want {
		d := math.Abs(float64(got[i])-want[i]) / (1 + math.Abs(want[i]))
		if !(d <= tol) {
			t.Fatalf("%s[%d] = %v, want %v (|diff|/(1+|want|) = %.3g > %g)", name, i, got[i], want[i], d, tol)
		}
		worst = max(worst, d)
	}
	t.Logf("%s: %d values, worst %.2g", name, len(want), worst)
}

// TestPackedAttentionTiles checks the packed attention against the float64
// reference with the production tiles and with tiny ones (so that short
// sequences span several query blocks and key tiles and the online
// rescaling runs), with and without dropout, including an empty sequence,
// a sequence of one row and maxT larger than every sequence.
func TestPackedAttentionTiles(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	lens := []int{13, 0, 1, 9, 17, 4}
	const maxT, NH, HS = 19, 3, 5
	for _, tiles := range [][2]int{{}, {5, 7}, {1, 1}, {6, 16}, {48, 3}} {
		for _, p := range []float32{0, 0.2} {
			t.Run(fmt.Sprintf("tiles=%v/p=%v", tiles, p), func(t *testing.T) {
				be := New()
				be.packTiles = tiles
				c := newPackedCase(t, be, r, lens, maxT, NH, HS)
				out, lse, dqkv := c.run(t, p, 77)
				S := len(lens)
				wo, wl, wd := make([]float64, c.N*c.C), make([]float64, NH*c.N), make([]float64, c.N*3*c.C)
				q64 := f64s(c.qkv)
				ref64.PackedAttentionForward(wo, wl, q64, c.starts, S, maxT, NH, HS, p, 77)
				ref64.PackedAttentionBackward(wd, f64s(c.dout), q64, c.starts, S, maxT, NH, HS, p, 77)
				// Attention tolerance of the conformance suite (softmax over
				// <= 17 keys, K <= 17 products).
				closeTo(t, "out", out, wo, 1e-5)
				closeTo(t, "lse", lse, wl, 1e-5)
				closeTo(t, "dqkv", dqkv, wd, 1e-5)
			})
		}
	}
}

// TestPackedMatchesPadded: on the same batch, the packed attention and the
// padded fused attention (AttentionForward/Backward on B = S, T = maxT with
// the key mask) agree to float32 tolerance on every real row, forward and
// backward, with dropout too (the masks are the same elements: a different
// mask would change outputs by O(1)). Sequences up to 300 rows cross the
// production key tile (128).
func TestPackedMatchesPadded(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, sh := range []struct {
		lens         []int
		maxT, NH, HS int
	}{
		{[]int{37, 5, 20, 1, 37}, 37, 4, 8},
		{[]int{128, 77, 128, 3}, 128, 2, 32},
		{[]int{300, 129, 0, 257}, 300, 2, 16},
	} {
		for _, p := range []float32{0, 0.1} {
			t.Run(fmt.Sprintf("maxT=%d/p=%v", sh.maxT, p), func(t *testing.T) {
				be := New()
				c := newPackedCase(t, be, r, sh.lens, sh.maxT, sh.NH, sh.HS)
				out, _, dqkv := c.run(t, p, 5)
				S, T, C := len(sh.lens), sh.maxT, c.C
				// The padded layout of the same rows.
				pq, pg := make([]float32, S*T*3*C), make([]float32, S*T*C)
				mask := make([]int32, S*T)
				for s := 0; s < S; s++ {
					r0 := int(c.starts[s])
					for i := 0; i < sh.lens[s]; i++ {
						copy(pq[(s*T+i)*3*C:(s*T+i+1)*3*C], c.qkv[(r0+i)*3*C:(r0+i+1)*3*C])
						copy(pg[(s*T+i)*C:(s*T+i+1)*C], c.dout[(r0+i)*C:(r0+i+1)*C])
						mask[s*T+i] = 1
					}
				}
				tq, tg := c.upload(t, pq, S*T, 3*C), c.upload(t, pg, S*T, C)
				to, tp, td := c.upload(t, nil, S*T, C), c.upload(t, nil, S, sh.NH, T, T), c.upload(t, nil, S*T, 3*C)
				tm, _ := be.Alloc(backend.I32, S, T)
				copy(tm.(*Tensor).Ints, mask)
				if err := be.AttentionForward(to, tp, tq, tm, S, T, sh.NH, sh.HS, p, 5); err != nil {
					t.Fatal(err)
				}
				if err := be.AttentionBackward(td, tg, tq, tp, tm, S, T, sh.NH, sh.HS, p, 5); err != nil {
					t.Fatal(err)
				}
				po, pd := to.(*Tensor).Data, td.(*Tensor).Data
				var wo, wd []float64
				for s := 0; s < S; s++ {
					for i := 0; i < sh.lens[s]; i++ {
						wo = append(wo, f64s(po[(s*T+i)*C:(s*T+i+1)*C])...)
						wd = append(wd, f64s(pd[(s*T+i)*3*C:(s*T+i+1)*3*C])...)
					}
				}
				// Both are float32 computations of the same values: the
				// softmax over <= 300 keys and products with K <= 300.
				closeTo(t, "out packed vs padded", out, wo, 2e-5)
				closeTo(t, "dqkv packed vs padded", dqkv, wd, 2e-5)
			})
		}
	}
}

// TestPackedDeterministic: bitwise-identical results under GOMAXPROCS 1, 2,
// 3 and 5 (different work splits) and on repeated calls.
func TestPackedDeterministic(t *testing.T) {
	var ref [3][]float32
	for _, procs := range []int{1, 2, 3, 5, 2} {
		old := runtime.GOMAXPROCS(procs)
		r := rand.New(rand.NewPCG(8, 8))
		c := newPackedCase(t, New(), r, []int{70, 3, 140, 33, 1, 90}, 140, 3, 16)
		out, lse, dqkv := c.run(t, 0.1, 3)
		runtime.GOMAXPROCS(old)
		got := [3][]float32{out, lse, dqkv}
		if ref[0] == nil {
			ref = got
			continue
		}
		for k := range ref {
			for i := range ref[k] {
				if math.Float32bits(ref[k][i]) != math.Float32bits(got[k][i]) {
					t.Fatalf("GOMAXPROCS=%d: result %d differs at %d: %v vs %v", procs, k, i, got[k][i], ref[k][i])
				}
			}
		}
	}
}

// TestPackedSplit: the cost split gives every item to exactly one worker,
// in order, for any number of workers.
func TestPackedSplit(t *testing.T) {
	starts := []int32{0, 128, 130, 258, 300, 300, 301}
	for _, nw := range []int{1, 2, 3, 7, 40} {
		for _, NH := range []int{1, 12} {
			cut := make([]int, nw+1)
			packedSplit(cut, starts, 6, NH)
			if cut[0] != 0 || cut[nw] != 6*NH {
				t.Fatalf("nw=%d NH=%d: cut %v", nw, NH, cut)
			}
			for w := 0; w < nw; w++ {
				if cut[w] > cut[w+1] {
					t.Fatalf("nw=%d NH=%d: cut %v not ascending", nw, NH, cut)
				}
			}
		}
	}
}

// TestPackedBadArguments: malformed starts are errors, not panics.
func TestPackedBadArguments(t *testing.T) {
	be := New()
	f := func(n int) backend.Tensor { x, _ := be.Alloc(backend.F32, n); return x }
	st := func(v ...int32) backend.Tensor {
		x, _ := be.Alloc(backend.I32, len(v))
		copy(x.(*Tensor).Ints, v)
		return x
	}
	for name, call := range map[string]func() error{
		"starts[0] != 0":    func() error { return be.PackedAttentionForward(f(8), f(8), f(24), st(1, 4), 1, 4, 1, 2, 0, 0) },
		"descending starts": func() error { return be.PackedAttentionForward(f(8), f(8), f(24), st(0, 3, 2), 2, 4, 1, 2, 0, 0) },
		"longer than maxT":  func() error { return be.PackedAttentionForward(f(8), f(8), f(24), st(0, 4), 1, 3, 1, 2, 0, 0) },
		"short starts":      func() error { return be.PackedAttentionForward(f(8), f(8), f(24), st(0), 1, 4, 1, 2, 0, 0) },
		"float starts":      func() error { return be.PackedAttentionForward(f(8), f(8), f(24), f(2), 1, 4, 1, 2, 0, 0) },
		"short qkv":         func() error { return be.PackedAttentionForward(f(8), f(8), f(23), st(0, 4), 1, 4, 1, 2, 0, 0) },
		"short lse":         func() error { return be.PackedAttentionForward(f(8), f(3), f(24), st(0, 4), 1, 4, 1, 2, 0, 0) },
		"p = 1":             func() error { return be.PackedAttentionForward(f(8), f(8), f(24), st(0, 4), 1, 4, 1, 2, 1, 0) },
		"negative NH":       func() error { return be.PackedAttentionForward(f(8), f(8), f(24), st(0, 4), 1, 4, -1, 2, 0, 0) },
		"backward short out": func() error {
			return be.PackedAttentionBackward(f(24), f(8), f(24), f(7), f(4), st(0, 4), 1, 4, 1, 2, 0, 0)
		},
	} {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s: panicked: %v", name, r)
				}
			}()
			if err := call(); err == nil {
				t.Errorf("%s: no error", name)
			}
		}()
	}
	q := f(24)
	if err := be.PackedAttentionBackward(q, f(8), q, f(8), f(4), st(0, 4), 1, 4, 1, 2, 0, 0); err == nil {
		t.Errorf("dqkv aliasing qkv: no error")
	}
}
