package cpu

import (
	"fmt"
	"math"

	"github.com/houlsby/adapters/backend"
)

// Packed attention (backend.PackedAttention): sequences packed back to back
// without padding, computed in tiles with an online softmax (Milakov &
// Gimelshein 2018, "Online normalizer calculation for softmax"; the tiling
// and the backward that recomputes the probabilities from the saved
// log-sum-exp are FlashAttention's, Dao et al. 2022, and FlashAttention-2's
// loop order, Dao 2023). No T×T matrix is stored: each worker holds one
// tile of at most attnBqBwd×attnBk scores.
//
// For one sequence of L rows and one head, per query block Q_i (≤ attnBqFwd
// or attnBqBwd rows) and key tile K_j, V_j (≤ attnBk rows):
//
//	forward:  S = Q_i·K_jᵀ/√HS;  m' = max(m, rowmax S);  E = exp(S - m')
//	          l = l·exp(m - m') + rowsum E;  O = O·exp(m - m') + dropout(E)·V_j
//	          finally out_i = O / l,  lse_i = m + log l
//	backward: D_i = rowsum(dout_i ∘ out_i)  (= Σ_j P̃·dP̃, also with dropout)
//	          P = exp(S - lse_i);  P̃ = dropout(P);  dP̃ = dout_i·V_jᵀ
//	          dV_j += P̃ᵀ·dout_i;  dS = P ∘ (dropout(dP̃) - D_i)
//	          dQ_i += dS·K_j/√HS;  dK_j += dSᵀ·Q_i/√HS
//
// The products are gemmAcc.serial calls on the worker's own packing
// workspace; the rows go through the vector kernels (maxVec, expSubSumVec,
// dotVec, softmaxGradVec) and dropoutApply. Each (sequence, head) pair is
// done by one worker in a fixed order, and the tile sizes are constants, so
// the result does not depend on the number of workers.

// Tile sizes. Query blocks are multiples of both micro-kernels' mr (6 and
// 12), so the score GEMMs have no edge tiles in m; attnBk = 128 keys covers
// a whole BERT-length (T <= 128) sequence in one tile, so the online
// rescaling only runs for longer sequences, and is a multiple of both nr
// (16, 32). The backward uses taller query blocks: its dK and dV products
// sum over the block's rows (k = the block height), and with 48 rows the
// backward with dropout took 1.2x the time of 96 rows and 1.4x that of 128
// (-cpu 1, S=8 x T=128, 12 heads of 32, on Zen 5); 96, not 128, so that no
// worker holds a whole head's T×T at BERT's T = 128. The forward measured
// the same with 48, 96 and 128. A tile of scores is at most 96·128·4 B =
// 48 KiB per worker.
const (
	attnBqFwd = 48
	attnBqBwd = 96
	attnBk    = 128
)

// packedGeom is a validated packed-attention call.
type packedGeom struct {
	S, maxT, NH, HS, C, N int
	starts                []int32
}

// packedSizes validates the sizes and starts (starts[0] = 0, non-decreasing,
// every sequence at most maxT rows) and returns the geometry.
func packedSizes(op string, starts backend.Tensor, S, maxT, NH, HS int, p float32) (packedGeom, error) {
	g := packedGeom{S: S, maxT: maxT, NH: NH, HS: HS}
	if err := nonneg(op, "S,maxT,NH,HS", S, maxT, NH, HS); err != nil {
		return g, err
	}
	if err := checkP(op, p); err != nil {
		return g, err
	}
	// The dropout index ((s·NH+h)·maxT+i)·maxT+j must not overflow.
	if _, err := mul(op, S, NH, maxT, maxT); err != nil {
		return g, err
	}
	st, err := i32(op, "starts", starts, S+1)
	if err != nil {
		return g, err
	}
	if st[0] != 0 {
		return g, fmt.Errorf("%s: starts[0] = %d, want 0", op, st[0])
	}
	for s := 0; s < S; s++ {
		if l := int(st[s+1]) - int(st[s]); l < 0 || l > maxT {
			return g, fmt.Errorf("%s: sequence %d has %d rows (starts %d..%d), want 0..maxT = %d", op, s, l, st[s], st[s+1], maxT)
		}
	}
	g.starts, g.N, g.C = st, int(st[S]), NH*HS
	if _, err := mul(op, g.N, 3, NH, HS); err != nil {
		return g, err
	}
	return g, nil
}

// PackedAttentionForward computes attention over the packed sequences of
// qkv (N, 3C), writing out (N, C) and the log-sum-exp lse (NH, N); see
// backend.PackedAttention and the comment at the top of this file.
func (be *Backend) PackedAttentionForward(out, lse, qkv, starts backend.Tensor, S, maxT, NH, HS int, p float32, seed uint64) error {
	const op = "cpu.PackedAttentionForward"
	g, err := packedSizes(op, starts, S, maxT, NH, HS, p)
	if err != nil {
		return err
	}
	ov, err := f32(op, "out", out, g.N*g.C)
	if err != nil {
		return err
	}
	lv, err := f32(op, "lse", lse, NH*g.N)
	if err != nil {
		return err
	}
	qv, err := f32(op, "qkv", qkv, g.N*3*g.C)
	if err != nil {
		return err
	}
	if g.N*g.C == 0 {
		return nil
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	be.pattn = packedTask{acc: be.acc, g: g, out: ov, lse: lv, qkv: qv, p: p, seed: seed}
	be.runPacked()
	return nil
}

// PackedAttentionBackward sets dqkv (N, 3C) (=) from dout (N, C) and the
// forward's qkv, out and lse, recomputing the probabilities tile by tile.
// dqkv must not alias qkv.
func (be *Backend) PackedAttentionBackward(dqkv, dout, qkv, out, lse, starts backend.Tensor, S, maxT, NH, HS int, p float32, seed uint64) error {
	const op = "cpu.PackedAttentionBackward"
	g, err := packedSizes(op, starts, S, maxT, NH, HS, p)
	if err != nil {
		return err
	}
	dv, err := f32(op, "dqkv", dqkv, g.N*3*g.C)
	if err != nil {
		return err
	}
	gv, err := f32(op, "dout", dout, g.N*g.C)
	if err != nil {
		return err
	}
	qv, err := f32(op, "qkv", qkv, g.N*3*g.C)
	if err != nil {
		return err
	}
	ov, err := f32(op, "out", out, g.N*g.C)
	if err != nil {
		return err
	}
	lv, err := f32(op, "lse", lse, NH*g.N)
	if err != nil {
		return err
	}
	if g.N*g.C == 0 {
		return nil
	}
	if &dv[0] == &qv[0] {
		return fmt.Errorf("%s: dqkv must not alias qkv", op)
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	be.pattn = packedTask{acc: be.acc, g: g, back: true, dqkv: dv, dout: gv, out: ov, lse: lv, qkv: qv, p: p, seed: seed}
	be.runPacked()
	return nil
}

// runPacked runs be.pattn over all (sequence, head) pairs, split among the
// workers into contiguous ranges of about equal cost (Σ L² plus a per-row
// term), and clears it. Callers hold be.mu.
func (be *Backend) runPacked() {
	t := &be.pattn
	t.bq, t.bk = attnBqFwd, attnBk
	if t.back {
		t.bq = attnBqBwd
	}
	if be.packTiles != [2]int{} {
		t.bq, t.bk = be.packTiles[0], be.packTiles[1]
	}
	nw := maxWorkers()
	t.prep(be, nw)
	parallelRangeW(nw, 1, nw, t)
	be.pattn = packedTask{}
}

// packedTask is the packed attention's parallel work. Worker w handles the
// (sequence, head) items [cut[w], cut[w+1]) with its own scratch slice and
// packing workspace.
type packedTask struct {
	acc                       gemmAcc
	g                         packedGeom
	back                      bool
	out, lse, qkv, dqkv, dout []float32
	p                         float32
	seed                      uint64
	bq, bk                    int // tile sizes (attnBq*, attnBk; tests use small ones)
	scale, negInf             float32
	scratch                   []float32
	per                       int // scratch floats per worker
	// Offsets in a worker's scratch: the score tile, the dropped-out
	// probabilities, dP/dS, the output accumulator, and the row vectors
	// m, l (forward) and D (backward).
	sTile, pTile, dTile, oTile, mOff, lOff, dOff int
	ws                                           []*gemmWorkspace
	cut                                          []int
}

// prep sizes the scratch and workspaces for nw workers and computes the
// work split.
func (t *packedTask) prep(be *Backend, nw int) {
	g := &t.g
	bq, bk := t.bq, t.bk
	t.scale = float32(1 / math.Sqrt(float64(g.HS)))
	t.negInf = math.Float32frombits(negInfF32bits)
	// Worker scratch: scores/probabilities, dropped-out probabilities,
	// dP/dS (backward) or the output accumulator (forward), and three
	// row vectors.
	t.sTile = 0
	t.pTile = bq * bk
	t.dTile = 2 * bq * bk
	t.oTile = 3 * bq * bk
	t.mOff = t.oTile + bq*g.HS
	t.lOff = t.mOff + bq
	t.dOff = t.lOff + bq
	t.per = t.dOff + bq
	t.scratch = be.buf(scrA, nw*t.per)
	for len(be.attnWS) < nw {
		be.attnWS = append(be.attnWS, new(gemmWorkspace))
	}
	t.ws = be.attnWS[:nw]
	if cap(be.attnCut) < nw+1 {
		be.attnCut = make([]int, nw+1)
	}
	t.cut = be.attnCut[:nw+1]
	packedSplit(t.cut, g.starts, g.S, g.NH)
}

// packedSplit sets cut[w], w = 0..len(cut)-1, so that the (sequence, head)
// items [cut[w], cut[w+1]) of worker w cost about the same: a head of a
// sequence of L rows costs about L² (products and exps) plus 64·L (the
// per-row work). The split changes only who computes an item, never how.
func packedSplit(cut []int, starts []int32, S, NH int) {
	nw := len(cut) - 1
	cost := func(s int) int64 {
		L := int64(starts[s+1] - starts[s])
		return L*L + 64*L
	}
	var total int64
	for s := 0; s < S; s++ {
		total += int64(NH) * cost(s)
	}
	items := S * NH
	var acc int64
	w := 1
	for it := 0; it < items && w < nw; it++ {
		acc += cost(it / NH)
		for w < nw && acc*int64(nw) >= total*int64(w) {
			cut[w] = it + 1
			w++
		}
	}
	for ; w < nw; w++ {
		cut[w] = items
	}
	cut[0], cut[nw] = 0, items
}

func (t *packedTask) run(_, lo, hi int) {
	for w := lo; w < hi; w++ {
		sc := t.scratch[w*t.per : (w+1)*t.per]
		for it := t.cut[w]; it < t.cut[w+1]; it++ {
			if t.back {
				t.backward(t.ws[w], sc, it/t.g.NH, it%t.g.NH)
			} else {
				t.forward(t.ws[w], sc, it/t.g.NH, it%t.g.NH)
			}
		}
	}
}

// forward computes head h of sequence s.
func (t *packedTask) forward(ws *gemmWorkspace, sc []float32, s, h int) {
	g := &t.g
	C, C3, HS := g.C, 3*g.C, g.HS
	r0, L := int(g.starts[s]), int(g.starts[s+1]-g.starts[s])
	if L == 0 {
		return
	}
	q := t.qkv[r0*C3+h*HS:]
	k := t.qkv[r0*C3+C+h*HS:]
	v := t.qkv[r0*C3+2*C+h*HS:]
	o := t.out[r0*C+h*HS:]
	lse := t.lse[h*g.N+r0:]
	m, l := sc[t.mOff:t.mOff+t.bq], sc[t.lOff:t.lOff+t.bq]
	oacc := sc[t.oTile : t.oTile+t.bq*HS]
	base := (s*g.NH + h) * g.maxT * g.maxT
	for i0 := 0; i0 < L; i0 += t.bq {
		nq := min(t.bq, L-i0)
		for j0 := 0; j0 < L; j0 += t.bk {
			nk := min(t.bk, L-j0)
			S := sc[t.sTile : t.sTile+nq*nk]
			t.acc.serial(ws, false, true, nq, nk, HS, t.scale, q[i0*C3:], C3, k[j0*C3:], C3, 0, S, nk)
			for r := 0; r < nq; r++ {
				row := S[r*nk : r*nk+nk]
				mNew := maxVec(vec, row, t.negInf)
				if j0 > 0 {
					mNew = max(mNew, m[r])
				}
				sum := expSubSumVec(vec, row, mNew)
				if j0 == 0 {
					l[r] = sum
				} else {
					// Rescale what the earlier key tiles summed.
					corr := exp32(m[r] - mNew)
					l[r] = float32(l[r]*corr) + sum
					scaleVec(vec, oacc[r*HS:r*HS+HS], corr)
				}
				m[r] = mNew
				if t.p > 0 {
					dropoutApply(row, row, base+(i0+r)*g.maxT+j0, t.p, t.seed)
				}
			}
			beta := float32(1)
			if j0 == 0 {
				beta = 0
			}
			t.acc.serial(ws, false, false, nq, HS, nk, 1, S, nk, v[j0*C3:], C3, beta, oacc, HS)
		}
		for r := 0; r < nq; r++ {
			orow := o[(i0+r)*C : (i0+r)*C+HS]
			copy(orow, oacc[r*HS:r*HS+HS])
			scaleVec(vec, orow, 1/l[r])
			lse[i0+r] = m[r] + float32(math.Log(float64(l[r])))
		}
	}
}

// backward computes the gradient of head h of sequence s.
func (t *packedTask) backward(ws *gemmWorkspace, sc []float32, s, h int) {
	g := &t.g
	C, C3, HS := g.C, 3*g.C, g.HS
	r0, L := int(g.starts[s]), int(g.starts[s+1]-g.starts[s])
	if L == 0 {
		return
	}
	off := r0*C3 + h*HS
	q, k, v := t.qkv[off:], t.qkv[off+C:], t.qkv[off+2*C:]
	dq, dk, dv := t.dqkv[off:], t.dqkv[off+C:], t.dqkv[off+2*C:]
	gout := t.dout[r0*C+h*HS:]
	o := t.out[r0*C+h*HS:]
	lse := t.lse[h*g.N+r0:]
	D := sc[t.dOff : t.dOff+t.bq]
	base := (s*g.NH + h) * g.maxT * g.maxT
	for i0 := 0; i0 < L; i0 += t.bq {
		nq := min(t.bq, L-i0)
		for r := 0; r < nq; r++ {
			D[r] = dotVec(vec, gout[(i0+r)*C:(i0+r)*C+HS], o[(i0+r)*C:(i0+r)*C+HS])
		}
		betaKV := float32(1)
		if i0 == 0 {
			betaKV = 0
		}
		for j0 := 0; j0 < L; j0 += t.bk {
			nk := min(t.bk, L-j0)
			P := sc[t.sTile : t.sTile+nq*nk]
			dP := sc[t.dTile : t.dTile+nq*nk]
			t.acc.serial(ws, false, true, nq, nk, HS, t.scale, q[i0*C3:], C3, k[j0*C3:], C3, 0, P, nk)
			for r := 0; r < nq; r++ {
				expSubSumVec(vec, P[r*nk:r*nk+nk], lse[i0+r])
			}
			// dP̃ = dout_i·V_jᵀ.
			t.acc.serial(ws, false, true, nq, nk, HS, 1, gout[i0*C:], C, v[j0*C3:], C3, 0, dP, nk)
			Pd := P
			if t.p > 0 {
				Pd = sc[t.pTile : t.pTile+nq*nk]
				for r := 0; r < nq; r++ {
					dropoutApplyPair(Pd[r*nk:r*nk+nk], P[r*nk:r*nk+nk], dP[r*nk:r*nk+nk], dP[r*nk:r*nk+nk],
						base+(i0+r)*g.maxT+j0, t.p, t.seed)
				}
			}
			// dV_j += P̃ᵀ·dout_i.
			t.acc.serial(ws, true, false, nk, HS, nq, 1, Pd, nk, gout[i0*C:], C, betaKV, dv[j0*C3:], C3)
			// dS = P ∘ (dP - D), in place of dP.
			for r := 0; r < nq; r++ {
				softmaxGradVec(vec, dP[r*nk:r*nk+nk], dP[r*nk:r*nk+nk], P[r*nk:r*nk+nk], D[r], 1)
			}
			betaQ := float32(1)
			if j0 == 0 {
				betaQ = 0
			}
			t.acc.serial(ws, false, false, nq, HS, nk, t.scale, dP, nk, k[j0*C3:], C3, betaQ, dq[i0*C3:], C3)
			t.acc.serial(ws, true, false, nk, HS, nq, t.scale, dP, nk, q[i0*C3:], C3, betaKV, dk[j0*C3:], C3)
		}
	}
}
