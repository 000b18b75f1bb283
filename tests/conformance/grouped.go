package conformance

import (
	"fmt"

	"github.com/houlsby/adapters/backend"
	"github.com/houlsby/adapters/tests/ref64"
)

// The grouped (serving) ops: per-segment adapters and LayerNorm affine
// parameters over the rows of one batch, forward only.

// groupedSegs is the suite's segment table over sN = 37 rows with G = 3
// slots: an empty segment, two segments of one slot apart, a run without
// an adapter (slot -1, only where allowed), segments of 1 and 13 rows.
func groupedSegs(none bool) []int32 {
	noSlot := int32(-1)
	if !none {
		noSlot = 1
	}
	return []int32{
		0, 0, 1,
		0, 5, 2,
		5, 11, noSlot,
		11, 12, 0,
		12, 25, 2,
		25, 37, 1,
	}
}

func testGroupedAdapter(s *suite) {
	const N, C, M, G = sN, sC, sM, 3
	table := groupedSegs(true)
	S := len(table) / 3
	segs := s.ints(table, S, 3)
	for _, act := range []backend.Act{backend.ReLU, backend.GELU, backend.Swish} {
		name := act.String()
		inp, iv := s.tensor(s.adt, s.rnd(N*C, 1), N, C)
		// Weights in the activation dtype (as a served backbone stores
		// them): the three slots differ.
		wd, wdv := s.tensor(s.adt, s.rnd(G*M*C, 0.3), G, M, C)
		bd, bdv := s.tensor(s.adt, s.rnd(G*M, 0.5), G, M)
		wu, wuv := s.tensor(s.adt, s.rnd(G*C*M, 0.5), G, C, M)
		bu, buv := s.tensor(s.adt, s.rnd(G*C, 0.5), G, C)
		out, _ := s.tensor(s.adt, nans(N*C), N, C)
		s.must(backend.GroupedAdapterForward(s.be, out, inp, wd, bd, wu, bu, segs, N, C, M, G, S, act), "GroupedAdapterForward "+name)
		want := make([]float64, N*C)
		ref64.GroupedAdapterForward(want, iv, wdv, bdv, wuv, buv, table, N, C, M, act)
		got := s.get(out)
		s.check("out "+name, got, want, s.tol.Adapter)
		// Rows without an adapter are copied exactly.
		s.check("rows of slot -1 "+name, got[5*C:11*C], iv[5*C:11*C], Tol{})

		// Each segment equals the ungrouped adapter on its rows with its
		// slot's weights, bitwise where the backend is deterministic: a
		// task served in a mixed batch gets what it gets alone.
		for k := 0; k < S; k++ {
			r0, r1, g := int(table[3*k]), int(table[3*k+1]), int(table[3*k+2])
			if r1 == r0 || g < 0 {
				continue
			}
			n := r1 - r0
			v := func(t backend.Tensor, off, n int) backend.Tensor {
				x, err := s.be.View(t, off, n)
				s.must(err, "View")
				return x
			}
			one, _ := s.tensor(s.adt, nans(n*C), n, C)
			z, _ := s.tensor(s.adt, nans(n*M), n, M)
			s.must(backend.AdapterForward(s.be, one, z, v(inp, r0*C, n*C), v(wd, g*M*C, M*C), v(bd, g*M, M), v(wu, g*C*M, C*M), v(bu, g*C, C), n, C, M, act),
				fmt.Sprintf("AdapterForward segment %d", k))
			s.same(fmt.Sprintf("segment %d vs AdapterForward %s", k, name), got[r0*C:r1*C], s.get(one))
		}

		// In place: out is inp.
		inp2, _ := s.tensor(s.adt, f32s(iv), N, C)
		s.must(backend.GroupedAdapterForward(s.be, inp2, inp2, wd, bd, wu, bu, segs, N, C, M, G, S, act), "GroupedAdapterForward in place "+name)
		s.same("in place vs out of place "+name, s.get(inp2), got)
	}
	// Zero slots used, every row without an adapter: out = inp.
	none := s.ints([]int32{0, N, -1}, 1, 3)
	inp, iv := s.tensor(s.adt, s.rnd(N*C, 1), N, C)
	w, _ := s.tensor(s.adt, s.rnd(M*C, 1), 1, M, C)
	b, _ := s.tensor(s.adt, s.rnd(C, 1), 1, C)
	out, _ := s.tensor(s.adt, nans(N*C), N, C)
	s.must(backend.GroupedAdapterForward(s.be, out, inp, w, b, w, b, none, N, C, M, 1, 1, backend.ReLU), "GroupedAdapterForward all -1")
	s.check("all rows without adapter", s.get(out), iv, Tol{})
}

func testGroupedLayerNorm(s *suite) {
	const N, C, G, eps = sN, sC, 3, 1e-12
	table := groupedSegs(false)
	S := len(table) / 3
	segs := s.ints(table, S, 3)
	in := s.rnd(N*C, 2)
	for i := range in {
		in[i] += 1
	}
	inp, iv := s.tensor(s.adt, in, N, C)
	w, wv := s.tensor(s.adt, s.rnd(G*C, 1), G, C)
	b, bv := s.tensor(s.adt, s.rnd(G*C, 1), G, C)
	out, _ := s.tensor(s.adt, nans(N*C), N, C)
	s.must(backend.GroupedLayerNormForward(s.be, out, inp, w, b, segs, N, C, G, S, eps), "GroupedLayerNormForward")
	want := make([]float64, N*C)
	ref64.GroupedLayerNormForward(want, iv, wv, bv, table, N, C, float64(float32(eps)))
	got := s.get(out)
	s.check("out", got, want, s.tol.LayerNorm)
	// Bitwise LayerNormForward's rows with the slot's parameters.
	for k := 0; k < S; k++ {
		r0, r1, g := int(table[3*k]), int(table[3*k+1]), int(table[3*k+2])
		n := r1 - r0
		if n == 0 {
			continue
		}
		v := func(t backend.Tensor, off, n int) backend.Tensor {
			x, err := s.be.View(t, off, n)
			s.must(err, "View")
			return x
		}
		one, _ := s.tensor(s.adt, nans(n*C), n, C)
		mean, _ := s.tensor(backend.F32, nans(n), n)
		rstd, _ := s.tensor(backend.F32, nans(n), n)
		s.must(s.be.LayerNormForward(one, mean, rstd, v(inp, r0*C, n*C), v(w, g*C, C), v(b, g*C, C), n, C, eps), "LayerNormForward segment")
		s.same(fmt.Sprintf("segment %d vs LayerNormForward", k), got[r0*C:r1*C], s.get(one))
	}
	// In place.
	inp2, _ := s.tensor(s.adt, f32s(iv), N, C)
	s.must(backend.GroupedLayerNormForward(s.be, inp2, inp2, w, b, segs, N, C, G, S, eps), "GroupedLayerNormForward in place")
	s.same("in place vs out of place", s.get(inp2), got)
}

// groupedBadArguments are the grouped ops' cases of testBadArguments.
func groupedBadArguments(s *suite, f, p func(int) backend.Tensor, i func(...int32) backend.Tensor) []struct {
	name string
	call func() error
} {
	be := s.be
	ad := func(segs backend.Tensor, S, G int) error {
		// N = 4 rows of C = 2, M = 1.
		return backend.GroupedAdapterForward(be, f(8), f(8), f(2*G), f(G), f(2*G), f(2*G), segs, 4, 2, 1, G, S, backend.ReLU)
	}
	ln := func(segs backend.Tensor, S, G int) error {
		return backend.GroupedLayerNormForward(be, f(8), f(8), f(2*G), f(2*G), segs, 4, 2, G, S, 1e-5)
	}
	return []struct {
		name string
		call func() error
	}{
		{"GroupedAdapter float segs", func() error { return ad(f(3), 1, 1) }},
		{"GroupedAdapter short segs", func() error { return ad(i(0, 4), 1, 1) }},
		{"GroupedAdapter gap between segments", func() error { return ad(i(0, 1, 0, 2, 4, 0), 2, 1) }},
		{"GroupedAdapter segments short of N", func() error { return ad(i(0, 3, 0), 1, 1) }},
		{"GroupedAdapter segment past N", func() error { return ad(i(0, 5, 0), 1, 1) }},
		{"GroupedAdapter reversed segment", func() error { return ad(i(0, 3, 0, 3, 2, 0, 2, 4, 0), 3, 1) }},
		{"GroupedAdapter slot >= G", func() error { return ad(i(0, 4, 2), 1, 2) }},
		{"GroupedAdapter slot < -1", func() error { return ad(i(0, 4, -2), 1, 2) }},
		{"GroupedAdapter short wUp", func() error {
			return backend.GroupedAdapterForward(be, f(8), f(8), f(4), f(2), f(3), f(4), i(0, 4, 0), 4, 2, 1, 2, 1, backend.ReLU)
		}},
		{"GroupedAdapter unknown act", func() error {
			return backend.GroupedAdapterForward(be, f(8), f(8), f(2), f(1), f(2), f(2), i(0, 4, 0), 4, 2, 1, 1, 1, backend.Act(9))
		}},
		{"GroupedAdapter negative G", func() error {
			return backend.GroupedAdapterForward(be, f(8), f(8), f(2), f(1), f(2), f(2), i(0, 4, 0), 4, 2, 1, -1, 1, backend.ReLU)
		}},
		{"GroupedLayerNorm slot -1", func() error { return ln(i(0, 4, -1), 1, 1) }},
		{"GroupedLayerNorm slot >= G", func() error { return ln(i(0, 4, 1), 1, 1) }},
		{"GroupedLayerNorm segments short of N", func() error { return ln(i(0, 2, 0), 1, 1) }},
		{"GroupedLayerNorm short b", func() error {
			return backend.GroupedLayerNormForward(be, f(8), f(8), f(4), p(3), i(0, 4, 1), 4, 2, 2, 1, 1e-5)
		}},
		{"GroupedLayerNorm nil segs", func() error {
			return backend.GroupedLayerNormForward(be, f(8), f(8), f(2), f(2), nil, 4, 2, 1, 1, 1e-5)
		}},
	}
}

// f32s converts stored values back to float32 (exact: they came from a
// float32 or bf16 tensor).
func f32s(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}
