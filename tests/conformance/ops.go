package conformance

import (
	"fmt"
	"math"

	"github.com/houlsby/adapters/backend"
	"github.com/houlsby/adapters/tests/ref64"
)

func testMemory(s *suite) {
	be := s.be
	x, err := be.Alloc(backend.F32, 4, 5)
	s.must(err, "Alloc")
	if got := x.Shape(); len(got) != 2 || got[0] != 4 || got[1] != 5 || x.Len() != 20 || x.DType() != backend.F32 {
		s.t.Fatalf("Alloc(F32, 4, 5) gave shape %v len %d dtype %v", got, x.Len(), x.DType())
	}
	for i, v := range s.get(x) {
		if v != 0 {
			s.t.Fatalf("Alloc is not zeroed: [%d] = %v", i, v)
		}
	}
	v, err := be.View(x, 7, 2, 3)
	s.must(err, "View")
	s.must(be.Upload(v, []float32{1, 2, 3, 4, 5, 6}), "Upload(view)")
	got := s.get(x)
	for i := range got {
		want := 0.0
		if i >= 7 && i < 13 {
			want = float64(i - 6)
		}
		if got[i] != want {
			s.t.Fatalf("after uploading a view at offset 7, parent[%d] = %v, want %v", i, got[i], want)
		}
	}
	// Writing through the parent is visible in the view; Zero on the view
	// touches only the view.
	all := make([]float32, 20)
	for i := range all {
		all[i] = float32(100 + i)
	}
	s.must(be.Upload(x, all), "Upload")
	s.check("view of parent", s.get(v), []float64{107, 108, 109, 110, 111, 112}, Tol{})
	s.must(be.Zero(v), "Zero(view)")
	got = s.get(x)
	for i := range got {
		want := float64(100 + i)
		if i >= 7 && i < 13 {
			want = 0
		}
		if got[i] != want {
			s.t.Fatalf("after Zero(view), parent[%d] = %v, want %v", i, got[i], want)
		}
	}
	if _, err := be.View(x, 15, 2, 3); err == nil {
		s.t.Errorf("View past the end of a 20-element tensor returned no error")
	}
	be.Free(v) // a no-op for views: the parent stays usable
	s.must(be.Upload(x, all), "Upload after Free(view)")

	// Copy across dtypes and the I32 round trip.
	y, yv := s.tensor(s.adt, s.rnd(20, 2), 20)
	z, err := be.Alloc(backend.F32, 20)
	s.must(err, "Alloc")
	s.must(be.Copy(z, y), "Copy")
	s.check("Copy", s.get(z), yv, Tol{})
	ids := []int32{3, -1, 7, 1 << 30, 0}
	it := s.ints(ids, 5)
	back := make([]int32, 5)
	s.must(be.DownloadInt32(back, it), "DownloadInt32")
	for i := range ids {
		if back[i] != ids[i] {
			s.t.Fatalf("I32 round trip [%d]: %d, want %d", i, back[i], ids[i])
		}
	}
	iv, err := be.View(it, 2, 2)
	s.must(err, "View(I32)")
	s.must(be.DownloadInt32(back[:2], iv), "DownloadInt32(view)")
	if back[0] != 7 || back[1] != 1<<30 {
		s.t.Fatalf("I32 view holds %v, want [7 %d]", back[:2], 1<<30)
	}
	for _, tt := range []backend.Tensor{x, y, z, it} {
		be.Free(tt)
	}
}

func testGemm(s *suite) {
	const M, N, K = 13, 37, 45
	for _, ta := range []bool{false, true} {
		for _, tb := range []bool{false, true} {
			for _, beta := range []float32{0, 0.5} {
				name := fmt.Sprintf("tA=%v,tB=%v,beta=%v", ta, tb, beta)
				p := backend.MatMul{TransA: ta, TransB: tb, M: M, N: N, K: K, Alpha: 0.7, Beta: beta}
				a, av := s.tensor(s.adt, s.rnd(M*K, 1), M*K)
				b, bv := s.tensor(s.adt, s.rnd(K*N, 1), K*N)
				c0 := s.rnd(M*N, 1)
				if beta == 0 {
					c0 = nans(M * N) // beta = 0 must not read c
				}
				c, cv := s.tensor(s.adt, c0, M*N)
				s.must(s.be.Gemm(c, a, b, p), "Gemm "+name)
				ref64.Gemm(cv, av, bv, p)
				s.check(name, s.get(c), cv, s.tol.Gemm)
			}
		}
	}
	// A strided batch with padded leading dimensions (the layout of
	// per-head attention products): padding must be left untouched.
	for _, tr := range []bool{false, true} {
		const batch = 3
		lda, ldb, ldc := K+3, N+2, N+5
		ar, br := M, K
		if tr {
			ar, lda = K, M+3
			br, ldb = N, K+2
		}
		sa, sb, sc := ar*lda+4, br*ldb+1, M*ldc+3
		p := backend.MatMul{TransA: tr, TransB: tr, M: M, N: N, K: K, Alpha: -1.25, Beta: 0.25,
			LdA: lda, LdB: ldb, LdC: ldc, Batch: batch, StrideA: sa, StrideB: sb, StrideC: sc}
		a, av := s.tensor(s.adt, s.rnd(batch*sa, 1), batch*sa)
		b, bv := s.tensor(s.adt, s.rnd(batch*sb, 1), batch*sb)
		c, cv := s.tensor(s.adt, s.rnd(batch*sc, 1), batch*sc)
		s.must(s.be.Gemm(c, a, b, p), "strided Gemm")
		ref64.Gemm(cv, av, bv, p)
		s.check(fmt.Sprintf("strided batch trans=%v", tr), s.get(c), cv, s.tol.Gemm)
	}
	if s.tol.Deterministic {
		p := backend.MatMul{M: M, N: N, K: K, Alpha: 1}
		a, _ := s.tensor(s.adt, s.rnd(M*K, 1), M*K)
		b, _ := s.tensor(s.adt, s.rnd(K*N, 1), K*N)
		c, _ := s.tensor(s.adt, make([]float32, M*N), M*N)
		s.must(s.be.Gemm(c, a, b, p), "Gemm")
		first := s.get(c)
		s.must(s.be.Gemm(c, a, b, p), "Gemm")
		s.same("Gemm repeated", first, s.get(c))
	}
}

func testBias(s *suite) {
	x, xv := s.tensor(s.adt, s.rnd(sN*sC, 1), sN, sC)
	bias, bv := s.tensor(backend.F32, s.rnd(sC, 1), sC)
	s.must(s.be.AddBias(x, bias, sN, sC), "AddBias")
	ref64.AddBias(xv, bv, sN, sC)
	s.check("AddBias", s.get(x), xv, s.tol.Pointwise)

	dout, dv := s.tensor(s.adt, s.rnd(sN*sC, 1), sN, sC)
	db, dbv := s.tensor(backend.F32, s.rnd(sC, 1), sC) // += onto nonzero
	s.must(s.be.BiasGrad(db, dout, sN, sC), "BiasGrad")
	ref64.BiasGrad(dbv, dv, sN, sC)
	s.check("BiasGrad", s.get(db), dbv, s.tol.Reduce)
}

func testAddScale(s *suite) {
	const n = sN * sC
	a, av := s.tensor(s.adt, s.rnd(n, 1), n)
	b, bv := s.tensor(s.adt, s.rnd(n, 1), n)
	out, _ := s.tensor(s.adt, nans(n), n)
	s.must(s.be.Add(out, a, b, n), "Add")
	want := make([]float64, n)
	ref64.Add(want, av, bv, n)
	s.check("Add", s.get(out), want, s.tol.Pointwise)
	s.must(s.be.Add(a, a, b, n), "Add in place") // out aliases a
	s.check("Add in place", s.get(a), want, s.tol.Pointwise)
	s.must(s.be.Scale(b, -0.3, n), "Scale")
	ref64.Scale(bv, float64(float32(-0.3)), n)
	s.check("Scale", s.get(b), bv, s.tol.Pointwise)
	// n smaller than the tensor: the tail is left alone.
	s.must(s.be.Scale(b, 0, n-5), "Scale prefix")
	got := s.get(b)
	for i := range got {
		if i < n-5 && got[i] != 0 || i >= n-5 && got[i] != bv[i] && !(math.Abs(got[i]-bv[i]) <= s.tol.Pointwise.Atol+s.tol.Pointwise.Rtol*math.Abs(bv[i])) {
			s.t.Fatalf("Scale(b, 0, n-5)[%d] = %v", i, got[i])
		}
	}
}

func testSumSquares(s *suite) {
	const n = 10007
	x, xv := s.tensor(backend.F32, s.rnd(n, 1), n)
	out, _ := s.tensor(backend.F32, nans(1), 1)
	s.must(s.be.SumSquares(out, x, n), "SumSquares")
	first := s.get(out)
	s.check("SumSquares", first, []float64{ref64.SumSquares(xv, n)}, s.tol.Reduce)
	s.must(s.be.SumSquares(out, x, n), "SumSquares")
	s.same("SumSquares repeated", first, s.get(out))
}

func testLayerNorm(s *suite) {
	const N, C, eps = sN, sC, 1e-12 // BERT's layer_norm_eps
	in := s.rnd(N*C, 2)
	for i := range in {
		in[i] += 1 // a nonzero mean
	}
	inp, iv := s.tensor(s.adt, in, N, C)
	w, wv := s.tensor(backend.F32, s.rnd(C, 1), C)
	b, bv := s.tensor(backend.F32, s.rnd(C, 1), C)
	out, _ := s.tensor(s.adt, nans(N*C), N, C)
	mean, _ := s.tensor(backend.F32, nans(N), N)
	rstd, _ := s.tensor(backend.F32, nans(N), N)
	s.must(s.be.LayerNormForward(out, mean, rstd, inp, w, b, N, C, eps), "LayerNormForward")
	wo, wm, wr := make([]float64, N*C), make([]float64, N), make([]float64, N)
	ref64.LayerNormForward(wo, wm, wr, iv, wv, bv, N, C, float64(float32(eps)))
	s.check("out", s.get(out), wo, s.tol.LayerNorm)
	s.check("mean", s.get(mean), wm, s.tol.LayerNorm)
	s.check("rstd", s.get(rstd), wr, s.tol.LayerNorm)

	// Backward with the statistics the backend saved.
	mv, rv := s.get(mean), s.get(rstd)
	dout, gv := s.tensor(s.adt, s.rnd(N*C, 1), N, C)
	dinp, _ := s.tensor(s.adt, nans(N*C), N, C)
	dw0, db0 := s.rnd(C, 1), s.rnd(C, 1)
	dw, dwv := s.tensor(backend.F32, dw0, C)
	db, dbv := s.tensor(backend.F32, db0, C)
	s.must(s.be.LayerNormBackward(dinp, dw, db, dout, inp, w, mean, rstd, N, C), "LayerNormBackward")
	wd := make([]float64, N*C)
	ref64.LayerNormBackward(wd, dwv, dbv, gv, iv, wv, mv, rv, N, C)
	full := s.get(dinp)
	fdw, fdb := s.get(dw), s.get(db)
	s.check("dinp", full, wd, s.tol.LayerNorm)
	s.check("dw", fdw, dwv, s.tol.LayerNorm)
	s.check("db", fdb, dbv, s.tol.LayerNorm)

	// Frozen w and b: dinp unchanged.
	dinp2, _ := s.tensor(s.adt, nans(N*C), N, C)
	s.must(s.be.LayerNormBackward(dinp2, nil, nil, dout, inp, w, mean, rstd, N, C), "LayerNormBackward(frozen)")
	fr := s.get(dinp2)
	s.check("dinp (frozen w, b)", fr, wd, s.tol.LayerNorm)
	s.same("dinp (frozen w, b) vs full", fr, full)
	// No input gradient: parameter gradients unchanged; only db.
	dw2, _ := s.tensor(backend.F32, dw0, C)
	db2, _ := s.tensor(backend.F32, db0, C)
	s.must(s.be.LayerNormBackward(nil, dw2, db2, dout, inp, w, mean, rstd, N, C), "LayerNormBackward(no dinp)")
	s.same("dw (no dinp) vs full", s.get(dw2), fdw)
	s.same("db (no dinp) vs full", s.get(db2), fdb)
	db3, _ := s.tensor(backend.F32, db0, C)
	s.must(s.be.LayerNormBackward(nil, nil, db3, dout, inp, w, mean, rstd, N, C), "LayerNormBackward(db only)")
	s.check("db only", s.get(db3), dbv, s.tol.LayerNorm)
	s.same("db only vs full", s.get(db3), fdb)
	// Inputs are not modified.
	s.same("inp after backward", s.get(inp), iv)
}

func testAct(s *suite) {
	const n = sN * sC
	for _, act := range []backend.Act{backend.ReLU, backend.GELU, backend.Swish} {
		name := act.String()
		inp, iv := s.tensor(s.adt, s.rnd(n, 4), n)
		out, _ := s.tensor(s.adt, nans(n), n)
		s.must(s.be.ActForward(out, inp, n, act), "ActForward "+name)
		want := make([]float64, n)
		ref64.ActForward(want, iv, n, act)
		s.check("ActForward "+name, s.get(out), want, s.tol.Pointwise)
		dout, gv := s.tensor(s.adt, s.rnd(n, 1), n)
		dinp, _ := s.tensor(s.adt, nans(n), n)
		s.must(s.be.ActBackward(dinp, dout, inp, n, act), "ActBackward "+name)
		wantd := make([]float64, n)
		ref64.ActBackward(wantd, gv, iv, n, act)
		s.check("ActBackward "+name, s.get(dinp), wantd, s.tol.Pointwise)

		// The adapter fallback's pattern: F32 results from a saved input
		// of the activation dtype, the backward in place (dinp = dout).
		o32, _ := s.tensor(backend.F32, nans(n), n)
		s.must(s.be.ActForward(o32, inp, n, act), "ActForward into F32 "+name)
		s.check("ActForward into F32 "+name, s.get(o32), want, s.tol.Pointwise)
		d32, dv := s.tensor(backend.F32, s.rnd(n, 1), n)
		s.must(s.be.ActBackward(d32, d32, inp, n, act), "ActBackward in place "+name)
		ref64.ActBackward(wantd, dv, iv, n, act)
		s.check("ActBackward in place "+name, s.get(d32), wantd, s.tol.Pointwise)
	}
}

func testTanh(s *suite) {
	const n = sN * sC
	inp, iv := s.tensor(s.adt, s.rnd(n, 3), n)
	out, _ := s.tensor(s.adt, nans(n), n)
	s.must(s.be.TanhForward(out, inp, n), "TanhForward")
	want := make([]float64, n)
	ref64.TanhForward(want, iv, n)
	s.check("TanhForward", s.get(out), want, s.tol.Pointwise)
	ov := s.get(out)
	dout, gv := s.tensor(s.adt, s.rnd(n, 1), n)
	dinp, _ := s.tensor(s.adt, nans(n), n)
	s.must(s.be.TanhBackward(dinp, dout, out, n), "TanhBackward")
	ref64.TanhBackward(want, gv, ov, n)
	s.check("TanhBackward", s.get(dinp), want, s.tol.Pointwise)
}

func testDropout(s *suite) {
	const n = sN * sC
	for _, p := range []float32{0, 0.1, 0.5} {
		const seed = 0xdecaf
		inp, iv := s.tensor(s.adt, s.rnd(n, 1), n)
		out, _ := s.tensor(s.adt, nans(n), n)
		s.must(s.be.DropoutForward(out, inp, n, p, seed), "DropoutForward")
		want := make([]float64, n)
		ref64.DropoutForward(want, iv, n, p, seed)
		got := s.get(out)
		s.check(fmt.Sprintf("DropoutForward p=%v", p), got, want, s.tol.Pointwise)
		for i := range got {
			if (want[i] == 0) != (got[i] == 0) {
				s.t.Fatalf("p=%v: element %d kept/dropped differently from DropoutKeep", p, i)
			}
		}
		dinp, _ := s.tensor(s.adt, nans(n), n)
		s.must(s.be.DropoutBackward(dinp, inp, n, p, seed), "DropoutBackward")
		ref64.DropoutBackward(want, iv, n, p, seed)
		s.check(fmt.Sprintf("DropoutBackward p=%v", p), s.get(dinp), want, s.tol.Pointwise)
	}
}

// testMaskedSoftmax checks the softmax op the attention fallback is built
// from: F32 scores into probs of the activation dtype (and the same dtype),
// in place, exact zeros at masked keys and for a row whose keys are all
// masked, and the backward from probs as stored, in place too.
func testMaskedSoftmax(s *suite) {
	const B, R, T, scale = sB, 7, sT, 0.37
	maskv := seqMask(B, T)
	for t := 0; t < T; t++ {
		maskv[1*T+t] = 0 // batch element 1: every key is padding
	}
	mask := s.ints(maskv, B, T)
	const n = B * R * T
	want := make([]float64, n)
	for _, sdt := range []backend.DType{backend.F32, s.adt} {
		name := fmt.Sprintf("scores %v", sdt)
		scores, sv := s.tensor(sdt, s.rnd(n, 4), B, R, T)
		probs, _ := s.tensor(s.adt, nans(n), B, R, T)
		s.must(s.be.MaskedSoftmaxForward(probs, scores, mask, B, R, T, scale), "MaskedSoftmaxForward "+name)
		ref64.MaskedSoftmaxForward(want, sv, maskv, B, R, T, float64(float32(scale)))
		pv := s.get(probs)
		s.check("probs "+name, pv, want, s.tol.Attention)
		for i, v := range pv {
			if b, key := i/(R*T), i%T; maskv[b*T+key] == 0 && v != 0 {
				s.t.Fatalf("%s: probs[%d] of masked key %d in batch element %d is %v, want exactly 0", name, i, key, b, v)
			}
		}
	}
	// In place (F32): probs = scores.
	inPlace, iv := s.tensor(backend.F32, s.rnd(n, 4), n)
	s.must(s.be.MaskedSoftmaxForward(inPlace, inPlace, mask, B, R, T, scale), "MaskedSoftmaxForward in place")
	ref64.MaskedSoftmaxForward(want, iv, maskv, B, R, T, float64(float32(scale)))
	s.check("probs in place", s.get(inPlace), want, s.tol.Attention)

	// Backward from probs of the activation dtype, as stored.
	scores, _ := s.tensor(backend.F32, s.rnd(n, 4), n)
	probs, _ := s.tensor(s.adt, nans(n), n)
	s.must(s.be.MaskedSoftmaxForward(probs, scores, mask, B, R, T, scale), "MaskedSoftmaxForward")
	pv := s.get(probs)
	dprobs, gv := s.tensor(backend.F32, s.rnd(n, 1), n)
	dscores, _ := s.tensor(backend.F32, nans(n), n)
	s.must(s.be.MaskedSoftmaxBackward(dscores, dprobs, probs, B*R, T, scale), "MaskedSoftmaxBackward")
	wd := make([]float64, n)
	ref64.MaskedSoftmaxBackward(wd, gv, pv, B*R, T, float64(float32(scale)))
	first := s.get(dscores)
	s.check("dscores", first, wd, s.tol.Attention)
	s.must(s.be.MaskedSoftmaxBackward(dprobs, dprobs, probs, B*R, T, scale), "MaskedSoftmaxBackward in place")
	s.check("dscores in place", s.get(dprobs), wd, s.tol.Attention)
	s.same("dscores in place vs out of place", s.get(dprobs), first)
}

func testAttention(s *suite) {
	const B, T, NH, HS = sB, sT, sNH, sHS
	const C = NH * HS
	maskv := seqMask(B, T)
	mask := s.ints(maskv, B, T)
	for _, p := range []float32{0, 0.2} {
		const seed = 1234
		name := fmt.Sprintf("p=%v", p)
		qkv, qv := s.tensor(s.adt, s.rnd(B*T*3*C, 1.5), B, T, 3*C)
		out, _ := s.tensor(s.adt, nans(B*T*C), B, T, C)
		probs, _ := s.tensor(s.adt, nans(B*NH*T*T), B, NH, T, T)
		s.must(backend.AttentionForward(s.be, out, probs, qkv, mask, B, T, NH, HS, p, seed), "AttentionForward "+name)
		wo, wp := make([]float64, B*T*C), make([]float64, B*NH*T*T)
		ref64.AttentionForward(wo, wp, qv, maskv, B, T, NH, HS, p, seed)
		s.check("out "+name, s.get(out), wo, s.tol.Attention)
		pv := s.get(probs)
		s.check("probs "+name, pv, wp, s.tol.Attention)
		for i, v := range pv {
			b, key := i/(NH*T*T), i%T
			if maskv[b*T+key] == 0 && v != 0 {
				s.t.Fatalf("%s: probs[%d] of padded key %d in sequence %d is %v, want exactly 0", name, i, key, b, v)
			}
		}
		dout, gv := s.tensor(s.adt, s.rnd(B*T*C, 1), B, T, C)
		dqkv, _ := s.tensor(s.adt, nans(B*T*3*C), B, T, 3*C)
		s.must(backend.AttentionBackward(s.be, dqkv, dout, qkv, probs, mask, B, T, NH, HS, p, seed), "AttentionBackward "+name)
		wd := make([]float64, B*T*3*C)
		ref64.AttentionBackward(wd, gv, qv, pv, maskv, B, T, NH, HS, p, seed)
		first := s.get(dqkv)
		s.check("dqkv "+name, first, wd, s.tol.Attention)
		s.must(backend.AttentionBackward(s.be, dqkv, dout, qkv, probs, mask, B, T, NH, HS, p, seed), "AttentionBackward "+name)
		s.same("dqkv repeated "+name, first, s.get(dqkv))
	}
}

// testPackedAttention checks the optional backend.PackedAttention (skipped
// on backends without it): sequences of lengths 13, 1, 0, 9 and 6 packed
// back to back with maxT = 13, against the float64 reference (out, the
// log-sum-exp and dqkv, with and without dropout), against the padded
// attention of the same backend on the same batch (B = S, T = maxT, the key
// mask: equal on every real row, the dropout mask included), and repeated
// calls bitwise equal.
func testPackedAttention(s *suite) {
	pa, ok := s.be.(backend.PackedAttention)
	if !ok {
		s.t.Skipf("%s has no PackedAttention capability", s.be.Name())
	}
	lens := []int{13, 1, 0, 9, 6}
	const maxT, NH, HS = sT, sNH, sHS
	const C = NH * HS
	S := len(lens)
	starts := make([]int32, S+1)
	for i, l := range lens {
		starts[i+1] = starts[i] + int32(l)
	}
	N := int(starts[S])
	st := s.ints(starts, S+1)
	// The padded layout of the same rows, and its key mask.
	pad := func(v []float64, w int) []float32 {
		out := make([]float32, S*maxT*w)
		for q := 0; q < S; q++ {
			for i := 0; i < lens[q]; i++ {
				for k := 0; k < w; k++ {
					out[(q*maxT+i)*w+k] = float32(v[(int(starts[q])+i)*w+k])
				}
			}
		}
		return out
	}
	unpad := func(v []float64, w int) []float64 {
		var out []float64
		for q := 0; q < S; q++ {
			out = append(out, v[q*maxT*w:(q*maxT+lens[q])*w]...)
		}
		return out
	}
	maskv := make([]int32, S*maxT)
	for q := 0; q < S; q++ {
		for i := 0; i < lens[q]; i++ {
			maskv[q*maxT+i] = 1
		}
	}
	mask := s.ints(maskv, S, maxT)
	for _, p := range []float32{0, 0.2} {
		const seed = 4321
		name := fmt.Sprintf("p=%v", p)
		qkv, qv := s.tensor(s.adt, s.rnd(N*3*C, 1.5), N, 3*C)
		out, _ := s.tensor(s.adt, nans(N*C), N, C)
		lse, _ := s.tensor(backend.F32, nans(NH*N), NH, N)
		s.must(pa.PackedAttentionForward(out, lse, qkv, st, S, maxT, NH, HS, p, seed), "PackedAttentionForward "+name)
		wo, wl := make([]float64, N*C), make([]float64, NH*N)
		ref64.PackedAttentionForward(wo, wl, qv, starts, S, maxT, NH, HS, p, seed)
		ov := s.get(out)
		s.check("out "+name, ov, wo, s.tol.Attention)
		s.check("lse "+name, s.get(lse), wl, s.tol.Attention)

		dout, gv := s.tensor(s.adt, s.rnd(N*C, 1), N, C)
		dqkv, _ := s.tensor(s.adt, nans(N*3*C), N, 3*C)
		s.must(pa.PackedAttentionBackward(dqkv, dout, qkv, out, lse, st, S, maxT, NH, HS, p, seed), "PackedAttentionBackward "+name)
		wd := make([]float64, N*3*C)
		ref64.PackedAttentionBackward(wd, gv, qv, starts, S, maxT, NH, HS, p, seed)
		first := s.get(dqkv)
		s.check("dqkv "+name, first, wd, s.tol.Attention)
		s.must(pa.PackedAttentionBackward(dqkv, dout, qkv, out, lse, st, S, maxT, NH, HS, p, seed), "PackedAttentionBackward "+name)
		s.same("dqkv repeated "+name, first, s.get(dqkv))

		// The padded attention on the same batch.
		pq, _ := s.tensor(s.adt, pad(qv, 3*C), S, maxT, 3*C)
		po, _ := s.tensor(s.adt, nans(S*maxT*C), S, maxT, C)
		pp, _ := s.tensor(s.adt, nans(S*NH*maxT*maxT), S, NH, maxT, maxT)
		s.must(backend.AttentionForward(s.be, po, pp, pq, mask, S, maxT, NH, HS, p, seed), "AttentionForward (padded) "+name)
		s.check("out packed vs padded "+name, ov, unpad(s.get(po), C), s.tol.Attention)
		pg, _ := s.tensor(s.adt, pad(gv, C), S, maxT, C)
		pd, _ := s.tensor(s.adt, nans(S*maxT*3*C), S, maxT, 3*C)
		s.must(backend.AttentionBackward(s.be, pd, pg, pq, pp, mask, S, maxT, NH, HS, p, seed), "AttentionBackward (padded) "+name)
		s.check("dqkv packed vs padded "+name, first, unpad(s.get(pd), 3*C), s.tol.Attention)
	}
	// Malformed starts are errors.
	bad := s.ints([]int32{0, 14}, 2) // a sequence longer than maxT
	o, _ := s.tensor(s.adt, make([]float32, 14*C), 14, C)
	l, _ := s.tensor(backend.F32, make([]float32, NH*14), NH, 14)
	q, _ := s.tensor(s.adt, make([]float32, 14*3*C), 14, 3*C)
	if err := pa.PackedAttentionForward(o, l, q, bad, 1, maxT, NH, HS, 0, 0); err == nil {
		s.t.Errorf("PackedAttentionForward accepted a sequence of 14 rows with maxT = %d", maxT)
	}
	_ = s.be.Sync()
}

func testEmbedding(s *suite) {
	const V, N, C = sVV, sN, sC
	ids := make([]int32, N)
	for i := range ids {
		ids[i] = int32((i * 7) % 11) // repeated ids, not all rows used
	}
	ids[3], ids[N-1] = V-1, 0
	idt := s.ints(ids, N)
	table, tv := s.tensor(s.adt, s.rnd(V*C, 1), V, C)
	out, _ := s.tensor(s.adt, nans(N*C), N, C)
	s.must(s.be.EmbeddingForward(out, idt, table, N, C, false), "EmbeddingForward")
	want := make([]float64, N*C)
	ref64.EmbeddingForward(want, ids, tv, N, C, false)
	s.check("gather", s.get(out), want, s.tol.Pointwise)
	s.must(s.be.EmbeddingForward(out, idt, table, N, C, true), "EmbeddingForward(accumulate)")
	ref64.EmbeddingForward(want, ids, tv, N, C, true)
	s.check("gather accumulate", s.get(out), want, s.tol.Pointwise)

	dout, gv := s.tensor(s.adt, s.rnd(N*C, 1), N, C)
	dt, dtv := s.tensor(backend.F32, s.rnd(V*C, 1), V, C)
	s.must(s.be.EmbeddingBackward(dt, dout, idt, N, C), "EmbeddingBackward")
	ref64.EmbeddingBackward(dtv, gv, ids, N, C)
	first := s.get(dt)
	s.check("scatter-add", first, dtv, s.tol.Reduce)
	// Deterministic: the same scatter from zero twice.
	z1, _ := s.tensor(backend.F32, make([]float32, V*C), V, C)
	z2, _ := s.tensor(backend.F32, make([]float32, V*C), V, C)
	s.must(s.be.EmbeddingBackward(z1, dout, idt, N, C), "EmbeddingBackward")
	s.must(s.be.EmbeddingBackward(z2, dout, idt, N, C), "EmbeddingBackward")
	s.same("scatter-add repeated", s.get(z1), s.get(z2))
}

func testAdapter(s *suite) {
	const N, C, M = sN, sC, sM
	for _, act := range []backend.Act{backend.ReLU, backend.GELU, backend.Swish} {
		name := act.String()
		inp, iv := s.tensor(s.adt, s.rnd(N*C, 1), N, C)
		wd, wdv := s.tensor(backend.F32, s.rnd(M*C, 0.3), M, C)
		bd, bdv := s.tensor(backend.F32, s.rnd(M, 0.5), M)
		wu, wuv := s.tensor(backend.F32, s.rnd(C*M, 0.5), C, M)
		bu, buv := s.tensor(backend.F32, s.rnd(C, 0.5), C)
		out, _ := s.tensor(s.adt, nans(N*C), N, C)
		z, _ := s.tensor(s.adt, nans(N*M), N, M)
		s.must(backend.AdapterForward(s.be, out, z, inp, wd, bd, wu, bu, N, C, M, act), "AdapterForward "+name)
		wo, wz := make([]float64, N*C), make([]float64, N*M)
		ref64.AdapterForward(wo, wz, iv, wdv, bdv, wuv, buv, N, C, M, act)
		s.check("out "+name, s.get(out), wo, s.tol.Adapter)
		zv := s.get(z)
		s.check("z "+name, zv, wz, s.tol.Adapter)

		dout, gv := s.tensor(s.adt, s.rnd(N*C, 1), N, C)
		g0 := [4][]float32{s.rnd(M*C, 1), s.rnd(M, 1), s.rnd(C*M, 1), s.rnd(C, 1)}
		grads := func() (dwd, dbd, dwu, dbu backend.Tensor) {
			dwd, _ = s.tensor(backend.F32, g0[0], M, C)
			dbd, _ = s.tensor(backend.F32, g0[1], M)
			dwu, _ = s.tensor(backend.F32, g0[2], C, M)
			dbu, _ = s.tensor(backend.F32, g0[3], C)
			return
		}
		dwd, dbd, dwu, dbu := grads()
		dinp, _ := s.tensor(s.adt, nans(N*C), N, C)
		s.must(backend.AdapterBackward(s.be, dinp, dwd, dbd, dwu, dbu, dout, inp, z, wd, wu, N, C, M, act), "AdapterBackward "+name)
		w := [5][]float64{make([]float64, N*C)}
		for i, g := range g0 {
			w[i+1] = make([]float64, len(g))
			for j, v := range g {
				w[i+1][j] = float64(v)
			}
		}
		ref64.AdapterBackward(w[0], w[1], w[2], w[3], w[4], gv, iv, zv, wdv, wuv, N, C, M, act)
		full := [5][]float64{s.get(dinp), s.get(dwd), s.get(dbd), s.get(dwu), s.get(dbu)}
		names := [5]string{"dinp", "dWDown", "dBDown", "dWUp", "dBUp"}
		for i := range full {
			s.check(names[i]+" "+name, full[i], w[i], s.tol.Adapter)
		}

		// Frozen paths: every subset of nil parameter gradients (k < 16)
		// leaves the others and dinp as in the full call; k = 16 passes
		// every parameter gradient but no dinp.
		for k := 0; k <= 16; k++ {
			mask, noDinp := k, k == 16
			if noDinp {
				mask = 0
			}
			tag := fmt.Sprintf("%s frozen %04b dinp=%v", name, mask, !noDinp)
			dwd, dbd, dwu, dbu := grads()
			ts := [4]backend.Tensor{dwd, dbd, dwu, dbu}
			args := ts
			for i := range args {
				if mask&(1<<i) != 0 {
					args[i] = nil
				}
			}
			dinp2, _ := s.tensor(s.adt, nans(N*C), N, C)
			var di backend.Tensor = dinp2
			if noDinp {
				di = nil
			}
			s.must(backend.AdapterBackward(s.be, di, args[0], args[1], args[2], args[3], dout, inp, z, wd, wu, N, C, M, act), "AdapterBackward "+tag)
			if !noDinp {
				got := s.get(dinp2)
				s.checkq("dinp "+tag, got, w[0], s.tol.Adapter)
				s.same("dinp "+tag, got, full[0])
			}
			for i := range ts {
				got := s.get(ts[i])
				if args[i] == nil {
					for j, v := range got {
						if v != float64(g0[i][j]) {
							s.t.Fatalf("%s: %s[%d] changed although it was not passed", tag, names[i+1], j)
						}
					}
					continue
				}
				s.checkq(names[i+1]+" "+tag, got, w[i+1], s.tol.Adapter)
				s.same(names[i+1]+" "+tag, got, full[i+1])
			}
		}
		s.same("inp after backward", s.get(inp), iv)
	}
	// A fresh adapter (wUp = 0, bUp = 0) is the identity.
	inp, iv := s.tensor(s.adt, s.rnd(N*C, 1), N, C)
	wd, _ := s.tensor(backend.F32, s.rnd(M*C, 0.3), M, C)
	bd, _ := s.tensor(backend.F32, s.rnd(M, 0.5), M)
	wu, _ := s.tensor(backend.F32, make([]float32, C*M), C, M)
	bu, _ := s.tensor(backend.F32, make([]float32, C), C)
	out, _ := s.tensor(s.adt, nans(N*C), N, C)
	z, _ := s.tensor(s.adt, nans(N*M), N, M)
	s.must(backend.AdapterForward(s.be, out, z, inp, wd, bd, wu, bu, N, C, M, backend.ReLU), "AdapterForward identity")
	s.check("identity adapter", s.get(out), iv, Tol{})
}

func testCrossEntropy(s *suite) {
	const N, V = sN, sV
	labels := make([]int32, N)
	valid := 0
	for i := range labels {
		labels[i] = int32((i * 5) % V)
		if i%6 == 4 {
			labels[i] = -100 // ignored (the Hugging Face convention)
		} else if i%9 == 2 {
			labels[i] = -1
		} else {
			valid++
		}
	}
	scale := float32(1) / float32(valid)
	lt := s.ints(labels, N)
	logits, xv := s.tensor(s.adt, s.rnd(N*V, 4), N, V)
	loss, _ := s.tensor(backend.F32, nans(N), N)
	dl, _ := s.tensor(s.adt, nans(N*V), N, V)
	s.must(s.be.SoftmaxCrossEntropy(loss, dl, logits, lt, N, V, scale), "SoftmaxCrossEntropy")
	wl, wd := make([]float64, N), make([]float64, N*V)
	ref64.SoftmaxCrossEntropy(wl, wd, xv, labels, N, V, float64(scale))
	lv := s.get(loss)
	s.check("loss", lv, wl, s.tol.Loss)
	s.check("dlogits", s.get(dl), wd, s.tol.Loss)
	for i, y := range labels {
		if y < 0 && lv[i] != 0 {
			s.t.Errorf("ignored row %d has loss %v, want exactly 0", i, lv[i])
		}
	}
	loss2, _ := s.tensor(backend.F32, nans(N), N)
	s.must(s.be.SoftmaxCrossEntropy(loss2, nil, logits, lt, N, V, scale), "SoftmaxCrossEntropy(no dlogits)")
	s.same("loss without dlogits", s.get(loss2), lv)
	s.check("loss without dlogits", s.get(loss2), wl, s.tol.Loss)
}

func testMSE(s *suite) {
	const N = sN
	pred, pv := s.tensor(s.adt, s.rnd(N, 2), N)
	target, tv := s.tensor(backend.F32, s.rnd(N, 2), N)
	loss, _ := s.tensor(backend.F32, nans(N), N)
	dp, _ := s.tensor(s.adt, nans(N), N)
	const scale = 0.125
	s.must(s.be.MSE(loss, dp, pred, target, N, scale), "MSE")
	wl, wd := make([]float64, N), make([]float64, N)
	ref64.MSE(wl, wd, pv, tv, N, scale)
	s.check("loss", s.get(loss), wl, s.tol.Pointwise)
	s.check("dpred", s.get(dp), wd, s.tol.Pointwise)
	s.must(s.be.MSE(loss, nil, pred, target, N, scale), "MSE(no dpred)")
	s.check("loss without dpred", s.get(loss), wl, s.tol.Pointwise)
}

// testAdamW steps an arena of n elements with one call: decay ranges at odd
// boundaries (an empty range among them), a zero padding span outside
// every range that must stay exactly 0, and the tables nil and empty.
func testAdamW(s *suite) {
	const n = 1001
	h := backend.AdamW{LR: 1e-2, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01}
	// With LR·WD·|param| ≈ 1e-4 per step, ≫ the AdamW tolerance, an element
	// decayed by mistake (or not) fails the comparison.
	table := []int32{0, 3, 3, 3, 10, 257, 500, 501, 997, 1001}
	const padLo, padHi = 600, 650 // zeros, outside every range
	zeroPad := func(v []float32) []float32 {
		clear(v[padLo:padHi])
		return v
	}
	decay := s.ints(table, len(table))
	param, pv := s.tensor(backend.F32, zeroPad(s.rnd(n, 1)), n)
	grad, gv := s.tensor(backend.F32, zeroPad(s.rnd(n, 1)), n)
	m, mv := s.tensor(backend.F32, make([]float32, n), n)
	v, vv := s.tensor(backend.F32, make([]float32, n), n)
	for step := 1; step <= 3; step++ {
		h.Step = step
		s.must(s.be.AdamWStep(param, grad, m, v, decay, n, h), fmt.Sprintf("AdamWStep %d", step))
		ref64.AdamWStep(pv, gv, mv, vv, table, n, h)
		name := fmt.Sprintf("step %d", step)
		s.check("param "+name, s.get(param), pv, s.tol.AdamW)
		s.check("m "+name, s.get(m), mv, s.tol.AdamW)
		s.check("v "+name, s.get(v), vv, s.tol.AdamW)
		for _, x := range []backend.Tensor{param, m, v} {
			for i, e := range s.get(x)[padLo:padHi] {
				if e != 0 {
					s.t.Fatalf("%s: padding element %d became %v, want exactly 0", name, padLo+i, e)
				}
			}
		}
		// Continue both from the backend's state so errors do not compound.
		pv, mv, vv = s.get(param), s.get(m), s.get(v)
		s.must(s.be.Upload(grad, zeroPad(s.rnd(n, 1))), "Upload grad")
		gv = s.get(grad)
	}
	// No decay: a nil table and an empty one.
	empty := s.ints(nil, 0)
	for _, tc := range []struct {
		name  string
		decay backend.Tensor
	}{{"nil table", nil}, {"empty table", empty}} {
		h.Step = 4
		p2, pv2 := s.tensor(backend.F32, s.rnd(n, 1), n)
		m2, mv2 := s.tensor(backend.F32, s.rnd(n, 0.1), n)
		v2, vv2 := s.tensor(backend.F32, make([]float32, n), n)
		s.must(s.be.AdamWStep(p2, grad, m2, v2, tc.decay, n, h), "AdamWStep "+tc.name)
		ref64.AdamWStep(pv2, gv, mv2, vv2, nil, n, h)
		s.check("param "+tc.name, s.get(p2), pv2, s.tol.AdamW)
		s.check("m "+tc.name, s.get(m2), mv2, s.tol.AdamW)
		s.check("v "+tc.name, s.get(v2), vv2, s.tol.AdamW)
	}
}

// testBadArguments checks that invalid arguments give errors, not panics.
func testBadArguments(s *suite) {
	be := s.be
	f := func(n int) backend.Tensor { x, _ := s.tensor(s.adt, make([]float32, n), n); return x }
	p := func(n int) backend.Tensor { x, _ := s.tensor(backend.F32, make([]float32, n), n); return x }
	i := func(v ...int32) backend.Tensor { return s.ints(v, len(v)) }
	adamw := backend.AdamW{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1, Step: 1}
	cases := []struct {
		name string
		call func() error
	}{
		{"Alloc negative dim", func() error { _, err := be.Alloc(backend.F32, 3, -1); return err }},
		{"Upload wrong length", func() error { return be.Upload(f(4), make([]float32, 5)) }},
		{"Upload into I32", func() error { return be.Upload(i(1, 2), make([]float32, 2)) }},
		{"Gemm a too short", func() error {
			return be.Gemm(f(6), f(5), f(6), backend.MatMul{M: 2, N: 3, K: 3, Alpha: 1})
		}},
		{"Gemm nil c", func() error { return be.Gemm(nil, f(6), f(6), backend.MatMul{M: 2, N: 3, K: 2, Alpha: 1}) }},
		{"Gemm negative M", func() error { return be.Gemm(f(6), f(6), f(6), backend.MatMul{M: -2, N: 3, K: 2, Alpha: 1}) }},
		{"AddBias short bias", func() error { return be.AddBias(f(12), p(3), 3, 4) }},
		{"Add nil b", func() error { return be.Add(f(4), f(4), nil, 4) }},
		{"LayerNorm nil w", func() error { return be.LayerNormForward(f(6), p(2), p(2), f(6), nil, p(3), 2, 3, 1e-5) }},
		{"LayerNormBackward short dout", func() error {
			return be.LayerNormBackward(f(6), nil, nil, f(5), f(6), p(3), p(2), p(2), 2, 3)
		}},
		{"Dropout p = 1", func() error { return be.DropoutForward(f(4), f(4), 4, 1, 0) }},
		{"Attention float mask", func() error {
			return backend.AttentionForward(be, f(2*2*2), f(1*2*2*2), f(2*2*6), f(4), 1, 2, 2, 1, 0, 0)
		}},
		{"Attention short qkv", func() error {
			return backend.AttentionForward(be, f(8), f(8), f(11), i(1, 1), 1, 2, 2, 2, 0, 0)
		}},
		{"MaskedSoftmax float mask", func() error {
			return be.MaskedSoftmaxForward(f(6), p(6), f(3), 1, 2, 3, 1)
		}},
		{"MaskedSoftmax short scores", func() error {
			return be.MaskedSoftmaxForward(f(6), p(5), i(1, 1, 1), 1, 2, 3, 1)
		}},
		{"MaskedSoftmaxBackward short probs", func() error {
			return be.MaskedSoftmaxBackward(p(6), p(6), f(5), 2, 3, 1)
		}},
		{"Embedding id out of range", func() error { return be.EmbeddingForward(f(6), i(0, 3), f(9), 2, 3, false) }},
		{"Embedding negative id", func() error { return be.EmbeddingBackward(p(9), f(6), i(-1, 0), 2, 3) }},
		{"Act unknown act", func() error { return be.ActForward(f(4), f(4), 4, backend.Act(7)) }},
		{"ActBackward short inp", func() error { return be.ActBackward(f(4), f(4), f(3), 4, backend.GELU) }},
		{"Adapter unknown act", func() error {
			return backend.AdapterForward(be, f(4), f(2), f(4), p(2), p(1), p(2), p(2), 2, 2, 1, backend.Act(99))
		}},
		{"Adapter short wUp", func() error {
			return backend.AdapterForward(be, f(4), f(2), f(4), p(2), p(1), p(1), p(2), 2, 2, 1, backend.ReLU)
		}},
		{"CrossEntropy label >= V", func() error { return be.SoftmaxCrossEntropy(p(2), nil, f(6), i(0, 3), 2, 3, 1) }},
		{"CrossEntropy float labels", func() error { return be.SoftmaxCrossEntropy(p(2), nil, f(6), f(2), 2, 3, 1) }},
		{"MSE nil target", func() error { return be.MSE(p(2), nil, f(2), nil, 2, 1) }},
		{"AdamW step 0", func() error {
			return be.AdamWStep(p(2), p(2), p(2), p(2), nil, 2, backend.AdamW{LR: 1, Beta1: 0.9, Beta2: 0.9})
		}},
		{"AdamW I32 grad", func() error { return be.AdamWStep(p(2), i(1, 2), p(2), p(2), nil, 2, backend.AdamW{Step: 1}) }},
		{"AdamW float decay table", func() error { return be.AdamWStep(p(8), p(8), p(8), p(8), p(2), 8, adamw) }},
		{"AdamW odd decay table", func() error { return be.AdamWStep(p(8), p(8), p(8), p(8), i(0, 2, 4), 8, adamw) }},
		{"AdamW unsorted decay ranges", func() error { return be.AdamWStep(p(8), p(8), p(8), p(8), i(4, 6, 0, 2), 8, adamw) }},
		{"AdamW overlapping decay ranges", func() error { return be.AdamWStep(p(8), p(8), p(8), p(8), i(0, 5, 4, 6), 8, adamw) }},
		{"AdamW decay range past n", func() error { return be.AdamWStep(p(8), p(8), p(8), p(8), i(2, 9), 8, adamw) }},
		{"AdamW negative decay start", func() error { return be.AdamWStep(p(8), p(8), p(8), p(8), i(-1, 3), 8, adamw) }},
		{"AdamW reversed decay range", func() error { return be.AdamWStep(p(8), p(8), p(8), p(8), i(5, 3), 8, adamw) }},
	}
	cases = append(cases, groupedBadArguments(s, f, p, i)...)
	for _, c := range cases {
		func() {
			defer func() {
				if r := recover(); r != nil {
					s.t.Errorf("%s: panicked (%v); want an error", c.name, r)
				}
			}()
			err := c.call()
			if err == nil {
				s.t.Errorf("%s: no error", c.name)
				return
			}
			s.t.Logf("%s: %v", c.name, err)
			_ = be.Sync() // an asynchronous backend may report at Sync; clear it
		}()
	}
}

// testViews runs ops on views carved at odd offsets out of shared
// allocations, as a model does with one allocation per category
// (parameters, gradients, activations): every argument is a view, and the
// elements around each view must stay untouched.
func testViews(s *suite) {
	const N, C, M = sN, sC, sM
	// Parameters of an adapter and a LayerNorm in one F32 allocation, at
	// offsets that are not multiples of 4.
	sizes := []int{M * C, M, C * M, C, C, C}
	offs := make([]int, len(sizes))
	total := 3
	for i, n := range sizes {
		offs[i] = total
		total += n + 1 // a gap element between views
	}
	pv := s.rnd(total, 0.5)
	params, pref := s.tensor(backend.F32, pv, total)
	view := func(parent backend.Tensor, off int, shape ...int) backend.Tensor {
		v, err := s.be.View(parent, off, shape...)
		s.must(err, fmt.Sprintf("View(%d, %v)", off, shape))
		return v
	}
	wd, bd := view(params, offs[0], M, C), view(params, offs[1], M)
	wu, bu := view(params, offs[2], C, M), view(params, offs[3], C)
	lw, lb := view(params, offs[4], C), view(params, offs[5], C)
	sl := func(i int) []float64 { return pref[offs[i] : offs[i]+sizes[i]] }

	// Activations in one allocation of the activation dtype.
	aoff := []int{5, 5 + N*C + 2, 5 + 2*N*C + 4, 5 + 2*N*C + 4 + N*M + 3}
	atotal := aoff[3] + N*C + 1
	acts, _ := s.tensor(s.adt, s.rnd(atotal, 1), atotal)
	before := s.get(acts)
	inp := view(acts, aoff[0], N, C)
	out := view(acts, aoff[1], N, C)
	z := view(acts, aoff[2], N, M)
	ln := view(acts, aoff[3], N, C)
	stats, _ := s.tensor(backend.F32, make([]float32, 2*N+3), 2*N+3)
	mean, rstd := view(stats, 1, N), view(stats, N+2, N)

	s.must(backend.AdapterForward(s.be, out, z, inp, wd, bd, wu, bu, N, C, M, backend.GELU), "AdapterForward on views")
	s.must(s.be.LayerNormForward(ln, mean, rstd, out, lw, lb, N, C, 1e-12), "LayerNormForward on views")
	iv := before[aoff[0] : aoff[0]+N*C]
	wo, wz := make([]float64, N*C), make([]float64, N*M)
	ref64.AdapterForward(wo, wz, iv, sl(0), sl(1), sl(2), sl(3), N, C, M, backend.GELU)
	got := s.get(acts)
	s.check("adapter out (view)", got[aoff[1]:aoff[1]+N*C], wo, s.tol.Adapter)
	s.check("adapter z (view)", got[aoff[2]:aoff[2]+N*M], wz, s.tol.Adapter)
	lo, lm, lr := make([]float64, N*C), make([]float64, N), make([]float64, N)
	ref64.LayerNormForward(lo, lm, lr, got[aoff[1]:aoff[1]+N*C], sl(4), sl(5), N, C, float64(float32(1e-12)))
	s.check("layernorm out (view)", got[aoff[3]:aoff[3]+N*C], lo, s.tol.LayerNorm)
	// Nothing outside the views changed.
	covered := make([]bool, atotal)
	for i, n := range []int{N * C, N * C, N * M, N * C} {
		for j := aoff[i]; j < aoff[i]+n; j++ {
			covered[j] = true
		}
	}
	for j := range got {
		if !covered[j] && math.Float64bits(got[j]) != math.Float64bits(before[j]) {
			s.t.Fatalf("element %d of the activation allocation, outside every view, changed from %v to %v", j, before[j], got[j])
		}
	}
	st := s.get(stats)
	if st[0] != 0 || st[N+1] != 0 || st[2*N+2] != 0 {
		s.t.Fatalf("LayerNorm statistics spilled outside their views: %v %v %v", st[0], st[N+1], st[2*N+2])
	}

	// Gradients into views of one F32 allocation: += lands in place only.
	gtotal := total
	grads, gref := s.tensor(backend.F32, s.rnd(gtotal, 1), gtotal)
	dwd, dbd := view(grads, offs[0], M, C), view(grads, offs[1], M)
	dwu, dbu := view(grads, offs[2], C, M), view(grads, offs[3], C)
	dout, gv := s.tensor(s.adt, s.rnd(N*C, 1), N, C)
	dinp := view(acts, aoff[3], N, C) // reuse the LayerNorm output's place
	s.must(backend.AdapterBackward(s.be, dinp, dwd, dbd, dwu, dbu, dout, inp, z, wd, wu, N, C, M, backend.GELU), "AdapterBackward on views")
	want := clone(gref)
	gs := func(i int) []float64 { return want[offs[i] : offs[i]+sizes[i]] }
	wdinp := make([]float64, N*C)
	ref64.AdapterBackward(wdinp, gs(0), gs(1), gs(2), gs(3), gv, iv, got[aoff[2]:aoff[2]+N*M], sl(0), sl(2), N, C, M, backend.GELU)
	s.check("adapter grads (views of one allocation)", s.get(grads), want, s.tol.Adapter)
	s.check("adapter dinp (view)", s.get(acts)[aoff[3]:aoff[3]+N*C], wdinp, s.tol.Adapter)
}
