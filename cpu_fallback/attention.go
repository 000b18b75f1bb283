package cpu

import (
	"fmt"
	"math"

	"github.com/houlsby/adapters/backend"
)

// attnSizes validates the attention sizes and returns C = NH·HS.
func attnSizes(op string, B, T, NH, HS int, p float32) (int, error) {
	if err := nonneg(op, "B,T,NH,HS", B, T, NH, HS); err != nil {
		return 0, err
	}
	if err := checkP(op, p); err != nil {
		return 0, err
	}
	if _, err := mul(op, B, NH, T, T); err != nil {
		return 0, err
	}
	if _, err := mul(op, B, T, 3, NH, HS); err != nil {
		return 0, err
	}
	return NH * HS, nil
}

// AttentionForward computes multi-head scaled-dot-product self-attention
// over qkv (B, T, 3C) with the key padding mask (B, T), writing out (B, T, C)
// and the softmax probabilities probs (B, NH, T, T), saved before dropout.
// A query whose keys are all padding gets all-zero probabilities (and a zero
// output) instead of NaN.
//
// Per (b, h): S = Q·Kᵀ/√HS (sgemm), masked keys -inf, row softmax into
// probs, P̃ = dropout(probs), out = P̃·V (sgemm). Q, K and V are read in
// place through the leading dimension 3C.
func (be *Backend) AttentionForward(out, probs, qkv, mask backend.Tensor, B, T, NH, HS int, p float32, seed uint64) error {
	const op = "cpu.AttentionForward"
	C, err := attnSizes(op, B, T, NH, HS, p)
	if err != nil {
		return err
	}
	ov, err := f32(op, "out", out, B*T*C)
	if err != nil {
		return err
	}
	pv, err := f32(op, "probs", probs, B*NH*T*T)
	if err != nil {
		return err
	}
	qv, err := f32(op, "qkv", qkv, B*T*3*C)
	if err != nil {
		return err
	}
	mk, err := i32(op, "mask", mask, B*T)
	if err != nil {
		return err
	}
	if B*T*C == 0 {
		return nil
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	nw := maxWorkers()
	var drop []float32
	if p > 0 {
		drop = be.buf(scrA, nw*T*T)
	}
	be.attn = attnTask{acc: be.acc, out: ov, probs: pv, qkv: qv, mask: mk, s1: drop,
		T: T, NH: NH, HS: HS, p: p, seed: seed}
	parallelRangeW(B*NH, 1, nw, &be.attn)
	be.attn = attnTask{}
	return nil
}

// softmaxMasked replaces each row of S (rows, T) by its softmax over the
// keys whose mask (T) is nonzero; masked keys get probability exactly 0,
// and a row with no unmasked key (or whose unmasked scores are all -Inf
// or NaN) becomes all zeros. Masked scores are set to -Inf, whose exp32 is
// +0, so the vector kernels run over whole rows: max, exp(s - max) with the
// sum in 16 lanes, and the scaling by 1/sum.
func softmaxMasked(k *vecImpl, S []float32, mask []int32, rows, T int) {
	mask = mask[:T]
	masked := 0
	for _, m := range mask {
		if m == 0 {
			masked++
		}
	}
	if masked == T {
		clear(S[:rows*T])
		return
	}
	negInf := math.Float32frombits(negInfF32bits)
	for t := 0; t < rows; t++ {
		row := S[t*T : t*T+T]
		if masked > 0 {
			for s, m := range mask {
				if m == 0 {
					row[s] = negInf
				}
			}
		}
		mx := maxVec(k, row, negInf)
		if mx == negInf {
			clear(row)
			continue
		}
		sum := expSubSumVec(k, row, mx)
		scaleVec(k, row, 1/sum)
	}
}

// AttentionBackward computes dqkv (B, T, 3C) (=) from dout (B, T, C), the
// forward's qkv and probs, and the same dropout seed. Per (b, h), with P̃ the
// dropped-out probabilities:
//
//	dV = P̃ᵀ·dout,  dP̃ = dout·Vᵀ,  dP = dP̃·keep/(1-p),
//	dS = P ⊙ (dP - rowsum(P ⊙ dP)),  dQ = dS·K/√HS,  dK = dSᵀ·Q/√HS.
func (be *Backend) AttentionBackward(dqkv, dout, qkv, probs, mask backend.Tensor, B, T, NH, HS int, p float32, seed uint64) error {
	const op = "cpu.AttentionBackward"
	C, err := attnSizes(op, B, T, NH, HS, p)
	if err != nil {
		return err
	}
	dv, err := f32(op, "dqkv", dqkv, B*T*3*C)
	if err != nil {
		return err
	}
	gv, err := f32(op, "dout", dout, B*T*C)
	if err != nil {
		return err
	}
	qv, err := f32(op, "qkv", qkv, B*T*3*C)
	if err != nil {
		return err
	}
	pv, err := f32(op, "probs", probs, B*NH*T*T)
	if err != nil {
		return err
	}
	if _, err := i32(op, "mask", mask, B*T); err != nil {
		return err
	}
	if B*T*C == 0 {
		return nil
	}
	if &dv[0] == &qv[0] {
		return fmt.Errorf("%s: dqkv must not alias qkv", op)
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	nw := maxWorkers()
	ws := nw * T * T
	all := be.buf(scrA, 2*ws)
	be.attn = attnTask{acc: be.acc, back: true, out: gv, probs: pv, qkv: qv, dqkv: dv, s1: all[:ws], s2: all[ws:],
		T: T, NH: NH, HS: HS, p: p, seed: seed}
	parallelRangeW(B*NH, 1, nw, &be.attn)
	be.attn = attnTask{}
	return nil
}

// attnTask is attention's parallel work over (b, h) pairs. s1 and s2 are
// per-worker T×T scratch (dropped-out probabilities, dS).
type attnTask struct {
	acc                   gemmAcc
	back                  bool
	out, probs, qkv, dqkv []float32 // back: out holds dout
	mask                  []int32
	s1, s2                []float32
	T, NH, HS             int
	p                     float32
	seed                  uint64
}

func (t *attnTask) run(w, lo, hi int) {
	if t.back {
		t.backward(w, lo, hi)
	} else {
		t.forward(w, lo, hi)
	}
}

func (t *attnTask) forward(w, lo, hi int) {
	T, NH, HS := t.T, t.NH, t.HS
	C := NH * HS
	C3 := 3 * C
	scale := float32(1 / math.Sqrt(float64(HS)))
	for bh := lo; bh < hi; bh++ {
		b, h := bh/NH, bh%NH
		off := b*T*C3 + h*HS
		q, k, v := t.qkv[off:], t.qkv[off+C:], t.qkv[off+2*C:]
		P := t.probs[bh*T*T : bh*T*T+T*T]
		t.acc.gemm(false, true, T, T, HS, scale, q, C3, k, C3, 0, P, T)
		softmaxMasked(vec, P, t.mask[b*T:b*T+T], T, T)
		pd := P
		if t.p > 0 {
			pd = t.s1[w*T*T : w*T*T+T*T]
			dropoutApply(pd, P, bh*T*T, t.p, t.seed)
		}
		t.acc.gemm(false, false, T, HS, T, 1, pd, T, v, C3, 0, t.out[b*T*C+h*HS:], C)
	}
}

func (t *attnTask) backward(w, lo, hi int) {
	T, NH, HS := t.T, t.NH, t.HS
	C := NH * HS
	C3 := 3 * C
	scale := float32(1 / math.Sqrt(float64(HS)))
	for bh := lo; bh < hi; bh++ {
		b, h := bh/NH, bh%NH
		off := b*T*C3 + h*HS
		q, k, v := t.qkv[off:], t.qkv[off+C:], t.qkv[off+2*C:]
		dq, dk, dv := t.dqkv[off:], t.dqkv[off+C:], t.dqkv[off+2*C:]
		g := t.out[b*T*C+h*HS:]
		P := t.probs[bh*T*T : bh*T*T+T*T]
		dS := t.s2[w*T*T : w*T*T+T*T]
		// dP̃ = dout·Vᵀ (T×T).
		t.acc.gemm(false, true, T, T, HS, 1, g, C, v, C3, 0, dS, T)
		pd := P
		if t.p > 0 {
			// P̃ = dropout(P) and dP = dP̃·keep/(1-p) under one hash.
			pd = t.s1[w*T*T : w*T*T+T*T]
			dropoutApplyPair(pd, P, dS, dS, bh*T*T, t.p, t.seed)
		}
		// dV = P̃ᵀ·dout (T×HS).
		t.acc.gemm(true, false, T, HS, T, 1, pd, T, g, C, 0, dv, C3)
		for i := 0; i < T; i++ {
			pr, dr := P[i*T:i*T+T], dS[i*T:i*T+T]
			softmaxGradVec(vec, dr, dr, pr, dotVec(vec, pr, dr), 1)
		}
		t.acc.gemm(false, false, T, HS, T, scale, dS, T, k, C3, 0, dq, C3)
		t.acc.gemm(true, false, T, HS, T, scale, dS, T, q, C3, 0, dk, C3)
	}
}
