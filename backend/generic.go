package backend

// The adapter and attention as every caller reaches them: the backend's
// fused capability when it has one, otherwise (or when the capability
// answers ErrNotFused) the compositions of core ops below, written once for
// every backend. The compositions validate what they can before writing
// anything; the core ops they call validate dtypes and sizes again.

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
)

// AdapterForward is the Houlsby bottleneck on inp (N, C):
//
//	z   = inp·wDownᵀ + bDown        (N, M)  saved for the backward
//	out = inp + act(z)·wUpᵀ + bUp   (N, C)
//
// wDown (M, C), bDown (M), wUp (C, M), bUp (C). out may alias inp (exactly:
// the same tensor, not an overlapping view).
func AdapterForward(be Backend, out, z, inp, wDown, bDown, wUp, bUp Tensor, N, C, M int, act Act) error {
	if f, ok := be.(FusedAdapter); ok {
		if err := f.AdapterForward(out, z, inp, wDown, bDown, wUp, bUp, N, C, M, act); !errors.Is(err, ErrNotFused) {
			return err
		}
	}
	return adapterForward(be, out, z, inp, wDown, bDown, wUp, bUp, N, C, M, act)
}

// AdapterBackward computes, from dout (N, C) and the forward's inp and z,
//
//	dz     = (dout·wUp) ⊙ act'(z)       (N, M)
//	dinp   = dout + dz·wDown            (=)
//	dWUp  += doutᵀ·act(z),  dBUp  += Σ_n dout
//	dWDown += dzᵀ·inp,      dBDown += Σ_n dz
//
// Each parameter gradient is skipped when nil (frozen), dinp when nil.
// dinp may alias dout (exactly).
func AdapterBackward(be Backend, dinp, dWDown, dBDown, dWUp, dBUp, dout, inp, z, wDown, wUp Tensor, N, C, M int, act Act) error {
	if f, ok := be.(FusedAdapter); ok {
		if err := f.AdapterBackward(dinp, dWDown, dBDown, dWUp, dBUp, dout, inp, z, wDown, wUp, N, C, M, act); !errors.Is(err, ErrNotFused) {
			return err
		}
	}
	return adapterBackward(be, dinp, dWDown, dBDown, dWUp, dBUp, dout, inp, z, wDown, wUp, N, C, M, act)
}

// AttentionForward is multi-head scaled-dot-product self-attention. qkv
// (B, T, 3C) holds Q, K, V side by side (head h uses columns h·HS..(h+1)·HS
// of each third, C = NH·HS); mask (B, T) I32 is 1 for real tokens and 0 for
// padding (excluded from the softmax). out (B, T, C). probs (B, NH, T, T)
// saves the softmax (before dropout) for the backward. Dropout on the
// probabilities keeps element i of probs (flat index) when
// DropoutKeep(seed, i, p). A query whose keys are all padding gets all-zero
// probabilities (and a zero output and gradient), never NaN.
func AttentionForward(be Backend, out, probs, qkv, mask Tensor, B, T, NH, HS int, p float32, seed uint64) error {
	if f, ok := be.(FusedAttention); ok {
		if err := f.AttentionForward(out, probs, qkv, mask, B, T, NH, HS, p, seed); !errors.Is(err, ErrNotFused) {
			return err
		}
	}
	return attentionForward(be, out, probs, qkv, mask, B, T, NH, HS, p, seed)
}

// AttentionBackward sets dqkv (B, T, 3C) (=) from dout (B, T, C), the
// forward's qkv and probs, and the same p and seed. dqkv must not alias
// qkv, dout or probs.
func AttentionBackward(be Backend, dqkv, dout, qkv, probs, mask Tensor, B, T, NH, HS int, p float32, seed uint64) error {
	if f, ok := be.(FusedAttention); ok {
		if err := f.AttentionBackward(dqkv, dout, qkv, probs, mask, B, T, NH, HS, p, seed); !errors.Is(err, ErrNotFused) {
			return err
		}
	}
	return attentionBackward(be, dqkv, dout, qkv, probs, mask, B, T, NH, HS, p, seed)
}

// adapterForward composes the adapter forward from core ops: two GEMMs,
// two bias adds and ActForward into F32 scratch.
func adapterForward(be Backend, out, z, inp, wDown, bDown, wUp, bUp Tensor, N, C, M int, act Act) error {
	const op = "backend.AdapterForward"
	nc, nm, cm, err := adapterSizes(op, N, C, M, act)
	if err != nil {
		return err
	}
	if err := needAll(op, []arg{{"out", out, nc, false}, {"z", z, nm, false}, {"inp", inp, nc, false},
		{"wDown", wDown, cm, false}, {"bDown", bDown, M, false}, {"wUp", wUp, cm, false}, {"bUp", bUp, C, false}}); err != nil {
		return err
	}
	if nc == 0 {
		return nil
	}
	var a Tensor
	if M > 0 {
		// z = inp·wDownᵀ + bDown, a = act(z).
		if err := be.Gemm(z, inp, wDown, MatMul{TransB: true, M: N, N: M, K: C, Alpha: 1}); err != nil {
			return wrap(op, err)
		}
		if err := be.AddBias(z, bDown, N, M); err != nil {
			return wrap(op, err)
		}
		if a, err = scratch(be, op, "act(z)", F32, nm); err != nil {
			return err
		}
		defer be.Free(a)
		if err := be.ActForward(a, z, nm, act); err != nil {
			return wrap(op, err)
		}
	}
	// out = inp (a no-op when out is inp: z is already computed) + a·wUpᵀ + bUp.
	if err := copyPrefix(be, out, inp, nc); err != nil {
		return wrap(op, err)
	}
	if M > 0 {
		if err := be.Gemm(out, a, wUp, MatMul{TransB: true, M: N, N: C, K: M, Alpha: 1, Beta: 1}); err != nil {
			return wrap(op, err)
		}
	}
	return wrap(op, be.AddBias(out, bUp, N, C))
}

// adapterBackward composes the adapter backward from core ops. Every read
// of dout comes before dinp is written, so dinp may alias dout.
func adapterBackward(be Backend, dinp, dWDown, dBDown, dWUp, dBUp, dout, inp, z, wDown, wUp Tensor, N, C, M int, act Act) error {
	const op = "backend.AdapterBackward"
	nc, nm, cm, err := adapterSizes(op, N, C, M, act)
	if err != nil {
		return err
	}
	if err := needAll(op, []arg{{"dinp", dinp, nc, true}, {"dWDown", dWDown, cm, true}, {"dBDown", dBDown, M, true},
		{"dWUp", dWUp, cm, true}, {"dBUp", dBUp, C, true}, {"dout", dout, nc, false}, {"inp", inp, nc, false},
		{"z", z, nm, false}, {"wDown", wDown, cm, false}, {"wUp", wUp, cm, false}}); err != nil {
		return err
	}
	if nc == 0 {
		return nil
	}
	dinp, dWDown, dBDown, dWUp, dBUp = orNil(dinp), orNil(dWDown), orNil(dBDown), orNil(dWUp), orNil(dBUp)
	if dBUp != nil {
		if err := be.BiasGrad(dBUp, dout, N, C); err != nil {
			return wrap(op, err)
		}
	}
	var dz Tensor
	if M > 0 && dWUp != nil { // dWUp (C, M) += doutᵀ (C, N) · act(z) (N, M)
		a, err := scratch(be, op, "act(z)", F32, nm)
		if err != nil {
			return err
		}
		defer be.Free(a)
		if err := be.ActForward(a, z, nm, act); err != nil {
			return wrap(op, err)
		}
		if err := be.Gemm(dWUp, dout, a, MatMul{TransA: true, M: C, N: M, K: N, Alpha: 1, Beta: 1}); err != nil {
			return wrap(op, err)
		}
	}
	if M > 0 && (dinp != nil || dWDown != nil || dBDown != nil) {
		// dz = (dout·wUp) ⊙ act'(z).
		if dz, err = scratch(be, op, "dz", F32, nm); err != nil {
			return err
		}
		defer be.Free(dz)
		if err := be.Gemm(dz, dout, wUp, MatMul{M: N, N: M, K: C, Alpha: 1}); err != nil {
			return wrap(op, err)
		}
		if err := be.ActBackward(dz, dz, z, nm, act); err != nil {
			return wrap(op, err)
		}
		if dWDown != nil { // dWDown (M, C) += dzᵀ (M, N) · inp (N, C)
			if err := be.Gemm(dWDown, dz, inp, MatMul{TransA: true, M: M, N: C, K: N, Alpha: 1, Beta: 1}); err != nil {
				return wrap(op, err)
			}
		}
		if dBDown != nil {
			if err := be.BiasGrad(dBDown, dz, N, M); err != nil {
				return wrap(op, err)
			}
		}
	}
	if dinp == nil {
		return nil
	}
	// dinp = dout (a no-op when dinp is dout) + dz·wDown.
	if err := copyPrefix(be, dinp, dout, nc); err != nil {
		return wrap(op, err)
	}
	if M == 0 {
		return nil
	}
	return wrap(op, be.Gemm(dinp, dz, wDown, MatMul{M: N, N: C, K: M, Alpha: 1, Beta: 1}))
}

// attentionForward composes attention from core ops. Per head h, one
// strided GEMM batched over the B sequences computes the scores
// S = Q_h·K_hᵀ (F32 scratch, the layout of probs); MaskedSoftmaxForward
// turns scale·S into probs; DropoutForward over probs' flat indices gives
// P̃ (the fused kernels' mask); and per head out_h = P̃_h·V_h. Q, K, V and
// out are read and written in place through their leading dimensions.
func attentionForward(be Backend, out, probs, qkv, mask Tensor, B, T, NH, HS int, p float32, seed uint64) error {
	const op = "backend.AttentionForward"
	g, err := newAttnGeom(op, B, T, NH, HS, p)
	if err != nil {
		return err
	}
	if err := needAll(op, []arg{{"out", out, g.nOut, false}, {"probs", probs, g.nP, false},
		{"qkv", qkv, g.nQKV, false}, {"mask", mask, B * T, false}}); err != nil {
		return err
	}
	if err := isInt32(op, "mask", mask); err != nil {
		return err
	}
	if g.nOut == 0 {
		return nil
	}
	scores, err := scratch(be, op, "scores", F32, g.nP)
	if err != nil {
		return err
	}
	defer be.Free(scores)
	C, C3 := g.C, 3*g.C
	for h := 0; h < NH; h++ { // S_h = Q_h·K_hᵀ, for every sequence
		err := g.gemm(be, MatMul{TransB: true, M: T, N: T, K: HS, Alpha: 1, LdA: C3, LdB: C3, LdC: T,
			StrideA: T * C3, StrideB: T * C3, StrideC: NH * T * T},
			at{scores, h * T * T}, at{qkv, h * HS}, at{qkv, C + h*HS})
		if err != nil {
			return wrap(op, err)
		}
	}
	if err := be.MaskedSoftmaxForward(probs, scores, mask, B, NH*T, T, g.scale); err != nil {
		return wrap(op, err)
	}
	pd := probs
	if p > 0 {
		if pd, err = scratch(be, op, "dropped probs", probs.DType(), g.nP); err != nil {
			return err
		}
		defer be.Free(pd)
		if err := be.DropoutForward(pd, probs, g.nP, p, seed); err != nil {
			return wrap(op, err)
		}
	}
	for h := 0; h < NH; h++ { // out_h = P̃_h·V_h
		err := g.gemm(be, MatMul{M: T, N: HS, K: T, Alpha: 1, LdA: T, LdB: C3, LdC: C,
			StrideA: NH * T * T, StrideB: T * C3, StrideC: T * C},
			at{out, h * HS}, at{pd, h * T * T}, at{qkv, 2*C + h*HS})
		if err != nil {
			return wrap(op, err)
		}
	}
	return nil
}

// attentionBackward composes the attention backward from core ops, per
// head and batched over the sequences: dV = P̃ᵀ·dout, dP̃ = dout·Vᵀ (F32
// scratch), dP = DropoutBackward(dP̃), dS = MaskedSoftmaxBackward(dP, P)
// (the 1/√HS included), dQ = dS·K, dK = dSᵀ·Q.
func attentionBackward(be Backend, dqkv, dout, qkv, probs, mask Tensor, B, T, NH, HS int, p float32, seed uint64) error {
	const op = "backend.AttentionBackward"
	g, err := newAttnGeom(op, B, T, NH, HS, p)
	if err != nil {
		return err
	}
	if err := needAll(op, []arg{{"dqkv", dqkv, g.nQKV, false}, {"dout", dout, g.nOut, false},
		{"qkv", qkv, g.nQKV, false}, {"probs", probs, g.nP, false}, {"mask", mask, B * T, false}}); err != nil {
		return err
	}
	if err := isInt32(op, "mask", mask); err != nil {
		return err
	}
	if g.nOut == 0 {
		return nil
	}
	pd := probs
	if p > 0 {
		if pd, err = scratch(be, op, "dropped probs", probs.DType(), g.nP); err != nil {
			return err
		}
		defer be.Free(pd)
		if err := be.DropoutForward(pd, probs, g.nP, p, seed); err != nil {
			return wrap(op, err)
		}
	}
	ds, err := scratch(be, op, "dS", F32, g.nP)
	if err != nil {
		return err
	}
	defer be.Free(ds)
	C, C3 := g.C, 3*g.C
	for h := 0; h < NH; h++ {
		// dV_h = P̃_hᵀ·dout_h.
		err := g.gemm(be, MatMul{TransA: true, M: T, N: HS, K: T, Alpha: 1, LdA: T, LdB: C, LdC: C3,
			StrideA: NH * T * T, StrideB: T * C, StrideC: T * C3},
			at{dqkv, 2*C + h*HS}, at{pd, h * T * T}, at{dout, h * HS})
		if err != nil {
			return wrap(op, err)
		}
		// dP̃_h = dout_h·V_hᵀ.
		err = g.gemm(be, MatMul{TransB: true, M: T, N: T, K: HS, Alpha: 1, LdA: C, LdB: C3, LdC: T,
			StrideA: T * C, StrideB: T * C3, StrideC: NH * T * T},
			at{ds, h * T * T}, at{dout, h * HS}, at{qkv, 2*C + h*HS})
		if err != nil {
			return wrap(op, err)
		}
	}
	if p > 0 {
		if err := be.DropoutBackward(ds, ds, g.nP, p, seed); err != nil {
			return wrap(op, err)
		}
	}
	if err := be.MaskedSoftmaxBackward(ds, ds, probs, B*NH*T, T, g.scale); err != nil {
		return wrap(op, err)
	}
	for h := 0; h < NH; h++ {
		// dQ_h = dS_h·K_h, dK_h = dS_hᵀ·Q_h.
		err := g.gemm(be, MatMul{M: T, N: HS, K: T, Alpha: 1, LdA: T, LdB: C3, LdC: C3,
			StrideA: NH * T * T, StrideB: T * C3, StrideC: T * C3},
			at{dqkv, h * HS}, at{ds, h * T * T}, at{qkv, C + h*HS})
		if err != nil {
			return wrap(op, err)
		}
		err = g.gemm(be, MatMul{TransA: true, M: T, N: HS, K: T, Alpha: 1, LdA: T, LdB: C3, LdC: C3,
			StrideA: NH * T * T, StrideB: T * C3, StrideC: T * C3},
			at{dqkv, C + h*HS}, at{ds, h * T * T}, at{qkv, h * HS})
		if err != nil {
			return wrap(op, err)
		}
	}
	return nil
}

// attnGeom holds attention's derived sizes.
type attnGeom struct {
	B, C           int
	nOut, nQKV, nP int     // elements of out (B,T,C), qkv (B,T,3C), probs (B,NH,T,T)
	scale          float32 // 1/√HS, rounded as the CPU backend rounds it
}

func newAttnGeom(op string, B, T, NH, HS int, p float32) (attnGeom, error) {
	if !(p >= 0 && p < 1) {
		return attnGeom{}, fmt.Errorf("%s: dropout probability %v is outside [0, 1)", op, p)
	}
	g := attnGeom{B: B, C: NH * HS, scale: float32(1 / math.Sqrt(float64(HS)))}
	var err error
	if g.nOut, err = count(op, "B,T,NH,HS", B, T, NH, HS); err != nil {
		return g, err
	}
	if g.nQKV, err = count(op, "B,T,3·NH·HS", B, T, 3, NH, HS); err != nil {
		return g, err
	}
	g.nP, err = count(op, "B,NH,T,T", B, NH, T, T)
	return g, err
}

// at is a tensor and an element offset into it.
type at struct {
	t   Tensor
	off int
}

// gemm runs be.Gemm for one head on views of c, a and b starting at their
// offsets, batched over the B sequences (StrideA/B/C of p step from one
// sequence to the next).
func (g attnGeom) gemm(be Backend, p MatMul, c, a, b at) error {
	p.Batch = g.B
	var vs [3]Tensor
	for i, x := range [3]at{c, a, b} {
		v, err := be.View(x.t, x.off, x.t.Len()-x.off)
		if err != nil {
			return err
		}
		vs[i] = v
	}
	return be.Gemm(vs[0], vs[1], vs[2], p)
}

// adapterSizes validates the adapter's sizes and nonlinearity and returns
// N·C, N·M and C·M.
func adapterSizes(op string, N, C, M int, act Act) (nc, nm, cm int, err error) {
	if !act.Valid() {
		return 0, 0, 0, fmt.Errorf("%s: unknown activation %v", op, act)
	}
	if _, err = count(op, "N,C,M", N, C, M); err != nil {
		return 0, 0, 0, err
	}
	if nc, err = count(op, "N,C", N, C); err != nil {
		return 0, 0, 0, err
	}
	if nm, err = count(op, "N,M", N, M); err != nil {
		return 0, 0, 0, err
	}
	cm, err = count(op, "C,M", C, M)
	return nc, nm, cm, err
}

// count returns the product of dims, or an error naming a negative one (by
// the comma-separated names) or reporting overflow.
func count(op, names string, dims ...int) (int, error) {
	n := 1
	for i, d := range dims {
		if d < 0 {
			name := strings.Split(names, ",")
			return 0, fmt.Errorf("%s: %s = %d is negative", op, strings.TrimSpace(name[min(i, len(name)-1)]), d)
		}
		if d != 0 && n > math.MaxInt32*64/d {
			return 0, fmt.Errorf("%s: the product of (%s) = %v overflows", op, names, dims)
		}
		n *= d
	}
	return n, nil
}

// arg is one tensor argument that must hold at least n elements; an
// optional one may be nil.
type arg struct {
	name     string
	t        Tensor
	n        int
	optional bool
}

// needAll checks that every required tensor is present and that every
// present tensor holds enough elements.
func needAll(op string, args []arg) error {
	for _, a := range args {
		if isNil(a.t) {
			if a.optional {
				continue
			}
			return fmt.Errorf("%s: %s is nil", op, a.name)
		}
		if a.t.Len() < a.n {
			return fmt.Errorf("%s: %s has %d elements, need %d", op, a.name, a.t.Len(), a.n)
		}
	}
	return nil
}

// isInt32 checks an I32 argument's dtype.
func isInt32(op, name string, t Tensor) error {
	if t.DType() != I32 {
		return fmt.Errorf("%s: %s has dtype %v, want I32", op, name, t.DType())
	}
	return nil
}

// isNil reports whether t is nil or a typed nil pointer, both of which the
// backends read as "not given".
func isNil(t Tensor) bool {
	if t == nil {
		return true
	}
	v := reflect.ValueOf(t)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

// orNil turns a typed nil into a nil interface, so the checks below and the
// core ops see "not given" the same way.
func orNil(t Tensor) Tensor {
	if isNil(t) {
		return nil
	}
	return t
}

// scratch allocates n elements of dtype dt for the duration of a call.
func scratch(be Backend, op, what string, dt DType, n int) (Tensor, error) {
	t, err := be.Alloc(dt, n)
	if err != nil {
		return nil, fmt.Errorf("%s: scratch %s: %w", op, what, err)
	}
	return t, nil
}

// copyPrefix copies the first n elements of src into dst through views (the
// tensors may be longer than n); when dst is src it copies onto itself,
// which Copy leaves unchanged.
func copyPrefix(be Backend, dst, src Tensor, n int) error {
	d, err := be.View(dst, 0, n)
	if err != nil {
		return err
	}
	s, err := be.View(src, 0, n)
	if err != nil {
		return err
	}
	return be.Copy(d, s)
}

// wrap prefixes a core op's error with the composed op's name.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", op, err)
}
