// Package ref64 holds plain float64 reference implementations of every op of
// the backend contract (package backend), forward and backward, written as
// direct loops over the defining formulas and independent of any backend.
// They are the oracle of the conformance suite (tests/conformance), and each
// backward is itself checked against central finite differences of its
// forward (ref64_test.go).
//
// Conventions follow package backend: row-major layouts, Hugging Face linear
// weights (out, in), and the gradient rule (parameter gradients +=, input
// gradients =, nil means skip). Dimension letters: B batch, T sequence, C
// hidden, NH heads, HS head size, M bottleneck, N rows, V classes.
package ref64

import (
	"fmt"
	"math"

	"github.com/houlsby/adapters/backend"
)

// Gemm computes c = alpha·op(a)·op(b) + beta·c for every problem of the batch
// described by p (leading dimensions 0 mean tightly packed). With beta == 0,
// c is not read.
func Gemm(c, a, b []float64, p backend.MatMul) {
	batch := max(p.Batch, 1)
	lda, ldb, ldc := p.LdA, p.LdB, p.LdC
	if lda == 0 {
		lda = p.K
		if p.TransA {
			lda = p.M
		}
	}
	if ldb == 0 {
		ldb = p.N
		if p.TransB {
			ldb = p.K
		}
	}
	if ldc == 0 {
		ldc = p.N
	}
	// opA(i, k) and opB(k, j) read the stored operands.
	for q := 0; q < batch; q++ {
		A, Bm, Cm := a[q*p.StrideA:], b[q*p.StrideB:], c[q*p.StrideC:]
		opA := func(i, k int) float64 {
			if p.TransA {
				return A[k*lda+i]
			}
			return A[i*lda+k]
		}
		opB := func(k, j int) float64 {
			if p.TransB {
				return Bm[j*ldb+k]
			}
			return Bm[k*ldb+j]
		}
		for i := 0; i < p.M; i++ {
			for j := 0; j < p.N; j++ {
				var s float64
				for k := 0; k < p.K; k++ {
					s += opA(i, k) * opB(k, j)
				}
				r := float64(p.Alpha) * s
				if p.Beta != 0 {
					r += float64(p.Beta) * Cm[i*ldc+j]
				}
				Cm[i*ldc+j] = r
			}
		}
	}
}

// AddBias adds bias (C) to every row of x (N, C).
func AddBias(x, bias []float64, N, C int) {
	for n := 0; n < N; n++ {
		for c := 0; c < C; c++ {
			x[n*C+c] += bias[c]
		}
	}
}

// BiasGrad accumulates the column sums of dout (N, C) into dbias (C).
func BiasGrad(dbias, dout []float64, N, C int) {
	for c := 0; c < C; c++ {
		var s float64
		for n := 0; n < N; n++ {
			s += dout[n*C+c]
		}
		dbias[c] += s
	}
}

// Add sets out = a + b over n elements.
func Add(out, a, b []float64, n int) {
	for i := 0; i < n; i++ {
		out[i] = a[i] + b[i]
	}
}

// Scale multiplies n elements of x by alpha.
func Scale(x []float64, alpha float64, n int) {
	for i := 0; i < n; i++ {
		x[i] *= alpha
	}
}

// SumSquares returns Σ x[i]² over n elements.
func SumSquares(x []float64, n int) float64 {
	var s float64
	for _, v := range x[:n] {
		s += v * v
	}
	return s
}

// LayerNormForward sets out = (inp-mean)/√(var+eps)·w + b per row of inp
// (N, C) (biased variance, as torch.nn.LayerNorm) and saves mean and
// rstd = 1/√(var+eps).
func LayerNormForward(out, mean, rstd, inp, w, b []float64, N, C int, eps float64) {
	for n := 0; n < N; n++ {
		x := inp[n*C : n*C+C]
		var m float64
		for _, v := range x {
			m += v
		}
		m /= float64(C)
		var vr float64
		for _, v := range x {
			vr += (v - m) * (v - m)
		}
		vr /= float64(C)
		r := 1 / math.Sqrt(vr+eps)
		for c := 0; c < C; c++ {
			out[n*C+c] = (x[c]-m)*r*w[c] + b[c]
		}
		mean[n], rstd[n] = m, r
	}
}

// LayerNormBackward sets dinp (=, nil skips) and accumulates dw and db (+=,
// nil skips). With x̂ = (x-mean)·rstd and g = dout·w, the Jacobian of
// x̂ with respect to x gives
//
//	dinp_c = rstd·(g_c - (1/C)Σ_k g_k - x̂_c·(1/C)Σ_k g_k·x̂_k).
func LayerNormBackward(dinp, dw, db, dout, inp, w, mean, rstd []float64, N, C int) {
	for n := 0; n < N; n++ {
		xh := make([]float64, C)
		for c := 0; c < C; c++ {
			xh[c] = (inp[n*C+c] - mean[n]) * rstd[n]
		}
		for c := 0; c < C; c++ {
			if dw != nil {
				dw[c] += dout[n*C+c] * xh[c]
			}
			if db != nil {
				db[c] += dout[n*C+c]
			}
		}
		if dinp == nil {
			continue
		}
		var sg, sgx float64
		for c := 0; c < C; c++ {
			g := dout[n*C+c] * w[c]
			sg += g
			sgx += g * xh[c]
		}
		for c := 0; c < C; c++ {
			g := dout[n*C+c] * w[c]
			dinp[n*C+c] = rstd[n] * (g - sg/float64(C) - xh[c]*sgx/float64(C))
		}
	}
}

// Gelu is the exact GELU x·Φ(x), Φ the standard normal CDF.
func Gelu(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) }

// GeluGrad is GELU'(x) = Φ(x) + x·φ(x).
func GeluGrad(x float64) float64 {
	return 0.5*(1+math.Erf(x/math.Sqrt2)) + x*math.Exp(-x*x/2)/math.Sqrt(2*math.Pi)
}

// TanhForward sets out = tanh(inp).
func TanhForward(out, inp []float64, n int) {
	for i := 0; i < n; i++ {
		out[i] = math.Tanh(inp[i])
	}
}

// TanhBackward sets dinp = dout·(1-out²) from the forward output.
func TanhBackward(dinp, dout, out []float64, n int) {
	for i := 0; i < n; i++ {
		dinp[i] = dout[i] * (1 - out[i]*out[i])
	}
}

// DropoutForward sets out = inp·keep/(1-p), keep = backend.DropoutKeep.
func DropoutForward(out, inp []float64, n int, p float32, seed uint64) {
	for i := 0; i < n; i++ {
		out[i] = inp[i] * dropScale(seed, i, p)
	}
}

// DropoutBackward sets dinp = dout·keep/(1-p) (the same linear map).
func DropoutBackward(dinp, dout []float64, n int, p float32, seed uint64) {
	DropoutForward(dinp, dout, n, p, seed)
}

// dropScale is keep(i)/(1-p): 0 for a dropped element.
func dropScale(seed uint64, i int, p float32) float64 {
	if !backend.DropoutKeep(seed, i, p) {
		return 0
	}
	return 1 / (1 - float64(p))
}

// MaskedSoftmaxForward sets, for every row r of scores (B, R, T),
// probs[b,r,t] = exp(scale·scores[b,r,t]) / Σ_u exp(scale·scores[b,r,u]),
// the sum over the keys u with mask[b,u] != 0; masked keys get 0, and a row
// with no unmasked key is all zeros.
func MaskedSoftmaxForward(probs, scores []float64, mask []int32, B, R, T int, scale float64) {
	for b := 0; b < B; b++ {
		for r := 0; r < R; r++ {
			row := (b*R + r) * T
			mx := math.Inf(-1)
			for t := 0; t < T; t++ {
				if mask[b*T+t] != 0 {
					mx = math.Max(mx, scale*scores[row+t])
				}
			}
			var z float64
			e := make([]float64, T)
			for t := 0; t < T; t++ {
				if mask[b*T+t] != 0 {
					e[t] = math.Exp(scale*scores[row+t] - mx)
					z += e[t]
				}
			}
			for t := 0; t < T; t++ {
				probs[row+t] = 0
				if z > 0 {
					probs[row+t] = e[t] / z
				}
			}
		}
	}
}

// MaskedSoftmaxBackward sets dscores (=) over N rows of length T from the
// forward's probs: with P = probs and S = scale·scores, the softmax Jacobian
// ∂P_t/∂S_u = P_t·(δ_tu - P_u) gives ∂L/∂S_u = P_u·(dP_u - Σ_t P_t·dP_t),
// and ∂S/∂scores = scale. Masked keys have P = 0 and get 0.
func MaskedSoftmaxBackward(dscores, dprobs, probs []float64, N, T int, scale float64) {
	for n := 0; n < N; n++ {
		row := n * T
		var dot float64
		for t := 0; t < T; t++ {
			dot += probs[row+t] * dprobs[row+t]
		}
		for t := 0; t < T; t++ {
			dscores[row+t] = scale * probs[row+t] * (dprobs[row+t] - dot)
		}
	}
}

// AttentionForward computes multi-head self-attention over qkv (B, T, 3C)
// (Q, K, V side by side; head h uses columns h·HS..(h+1)·HS of each third)
// with key mask (B, T) (0 = padding, excluded from the softmax), writing out
// (B, T, C) and probs (B, NH, T, T) before dropout. A query with no unmasked
// key gets zero probabilities. Dropout drops probs element (flat index i)
// when !DropoutKeep(seed, i, p).
func AttentionForward(out, probs, qkv []float64, mask []int32, B, T, NH, HS int, p float32, seed uint64) {
	C := NH * HS
	at := func(b, t, part, h, d int) float64 { return qkv[(b*T+t)*3*C+part*C+h*HS+d] }
	for b := 0; b < B; b++ {
		for h := 0; h < NH; h++ {
			for t := 0; t < T; t++ {
				base := ((b*NH+h)*T + t) * T
				score := make([]float64, T)
				mx := math.Inf(-1)
				for s := 0; s < T; s++ {
					if mask[b*T+s] == 0 {
						continue
					}
					var dot float64
					for d := 0; d < HS; d++ {
						dot += at(b, t, 0, h, d) * at(b, s, 1, h, d)
					}
					score[s] = dot / math.Sqrt(float64(HS))
					mx = math.Max(mx, score[s])
				}
				var z float64
				for s := 0; s < T; s++ {
					probs[base+s] = 0
					if mask[b*T+s] != 0 {
						probs[base+s] = math.Exp(score[s] - mx)
						z += probs[base+s]
					}
				}
				for s := 0; s < T && z > 0; s++ {
					probs[base+s] /= z
				}
				for d := 0; d < HS; d++ {
					var o float64
					for s := 0; s < T; s++ {
						o += probs[base+s] * dropScale(seed, base+s, p) * at(b, s, 2, h, d)
					}
					out[(b*T+t)*C+h*HS+d] = o
				}
			}
		}
	}
}

// AttentionBackward sets dqkv (B, T, 3C) (=) from dout (B, T, C). With
// P the probabilities, D the dropout scale and S the scaled scores:
//
//	∂L/∂V[s] = Σ_t P[t,s]D[t,s]·dout[t]
//	∂L/∂P[t,s] = D[t,s]·(dout[t]·V[s])
//	∂L/∂S[t,s] = P[t,s]·(∂L/∂P[t,s] - Σ_u P[t,u]·∂L/∂P[t,u])  (softmax Jacobian)
//	∂L/∂Q[t] = Σ_s ∂L/∂S[t,s]·K[s]/√HS,  ∂L/∂K[s] = Σ_t ∂L/∂S[t,s]·Q[t]/√HS
func AttentionBackward(dqkv, dout, qkv, probs []float64, mask []int32, B, T, NH, HS int, p float32, seed uint64) {
	C := NH * HS
	idx := func(b, t, part, h, d int) int { return (b*T+t)*3*C + part*C + h*HS + d }
	for i := range dqkv[:B*T*3*C] {
		dqkv[i] = 0
	}
	sc := 1 / math.Sqrt(float64(HS))
	for b := 0; b < B; b++ {
		for h := 0; h < NH; h++ {
			for t := 0; t < T; t++ {
				base := ((b*NH+h)*T + t) * T
				dP := make([]float64, T)
				for s := 0; s < T; s++ {
					D := dropScale(seed, base+s, p)
					var dot float64
					for d := 0; d < HS; d++ {
						g := dout[(b*T+t)*C+h*HS+d]
						dot += g * qkv[idx(b, s, 2, h, d)]
						dqkv[idx(b, s, 2, h, d)] += probs[base+s] * D * g
					}
					dP[s] = D * dot
				}
				var sum float64
				for s := 0; s < T; s++ {
					sum += probs[base+s] * dP[s]
				}
				for s := 0; s < T; s++ {
					dS := probs[base+s] * (dP[s] - sum)
					for d := 0; d < HS; d++ {
						dqkv[idx(b, t, 0, h, d)] += dS * qkv[idx(b, s, 1, h, d)] * sc
						dqkv[idx(b, s, 1, h, d)] += dS * qkv[idx(b, t, 0, h, d)] * sc
					}
				}
			}
		}
	}
	_ = mask // masked keys have P = 0, so they get no gradient through S
}

// PackedAttentionForward is multi-head self-attention over S sequences
// packed back to back without padding (backend.PackedAttention): sequence s
// is rows [starts[s], starts[s+1]) of qkv (N, 3C) and out (N, C), and attends
// to its own rows only. lse (NH, N) gets, for head h and query row r,
// log Σ_j exp(q_r·k_j/√HS) over r's sequence. Dropout on the probabilities
// keeps element (s, h, i, j) (query i, key j, positions within sequence s)
// when backend.DropoutKeep(seed, ((s·NH+h)·maxT+i)·maxT+j, p): the flat
// index of the same element in the padded layout (B = S, T = maxT).
func PackedAttentionForward(out, lse, qkv []float64, starts []int32, S, maxT, NH, HS int, p float32, seed uint64) {
	C := NH * HS
	N := int(starts[S])
	at := func(r, part, h, d int) float64 { return qkv[r*3*C+part*C+h*HS+d] }
	for s := 0; s < S; s++ {
		r0, L := int(starts[s]), int(starts[s+1]-starts[s])
		for h := 0; h < NH; h++ {
			for i := 0; i < L; i++ {
				score := make([]float64, L)
				mx := math.Inf(-1)
				for j := 0; j < L; j++ {
					var dot float64
					for d := 0; d < HS; d++ {
						dot += at(r0+i, 0, h, d) * at(r0+j, 1, h, d)
					}
					score[j] = dot / math.Sqrt(float64(HS))
					mx = math.Max(mx, score[j])
				}
				var z float64
				for j := range score {
					z += math.Exp(score[j] - mx)
				}
				lse[h*N+r0+i] = mx + math.Log(z)
				base := ((s*NH+h)*maxT + i) * maxT
				for d := 0; d < HS; d++ {
					var o float64
					for j := 0; j < L; j++ {
						o += math.Exp(score[j]-mx) / z * dropScale(seed, base+j, p) * at(r0+j, 2, h, d)
					}
					out[(r0+i)*C+h*HS+d] = o
				}
			}
		}
	}
}

// PackedAttentionBackward sets dqkv (N, 3C) (=) from dout (N, C) for
// PackedAttentionForward, by the formulas of AttentionBackward applied to
// each sequence with its probabilities recomputed.
func PackedAttentionBackward(dqkv, dout, qkv []float64, starts []int32, S, maxT, NH, HS int, p float32, seed uint64) {
	C := NH * HS
	N := int(starts[S])
	idx := func(r, part, h, d int) int { return r*3*C + part*C + h*HS + d }
	for i := range dqkv[:N*3*C] {
		dqkv[i] = 0
	}
	sc := 1 / math.Sqrt(float64(HS))
	for s := 0; s < S; s++ {
		r0, L := int(starts[s]), int(starts[s+1]-starts[s])
		for h := 0; h < NH; h++ {
			for i := 0; i < L; i++ {
				P := make([]float64, L)
				mx := math.Inf(-1)
				for j := 0; j < L; j++ {
					var dot float64
					for d := 0; d < HS; d++ {
						dot += qkv[idx(r0+i, 0, h, d)] * qkv[idx(r0+j, 1, h, d)]
					}
					P[j] = dot * sc
					mx = math.Max(mx, P[j])
				}
				var z float64
				for j := range P {
					P[j] = math.Exp(P[j] - mx)
					z += P[j]
				}
				base := ((s*NH+h)*maxT + i) * maxT
				dP := make([]float64, L)
				for j := 0; j < L; j++ {
					P[j] /= z
					D := dropScale(seed, base+j, p)
					var dot float64
					for d := 0; d < HS; d++ {
						g := dout[(r0+i)*C+h*HS+d]
						dot += g * qkv[idx(r0+j, 2, h, d)]
						dqkv[idx(r0+j, 2, h, d)] += P[j] * D * g
					}
					dP[j] = D * dot
				}
				var sum float64
				for j := 0; j < L; j++ {
					sum += P[j] * dP[j]
				}
				for j := 0; j < L; j++ {
					dS := P[j] * (dP[j] - sum)
					for d := 0; d < HS; d++ {
						dqkv[idx(r0+i, 0, h, d)] += dS * qkv[idx(r0+j, 1, h, d)] * sc
						dqkv[idx(r0+j, 1, h, d)] += dS * qkv[idx(r0+i, 0, h, d)] * sc
					}
				}
			}
		}
	}
}

// EmbeddingForward gathers rows of table (V, C) by ids (N) into out (N, C),
// adding to out when accumulate is set.
func EmbeddingForward(out []float64, ids []int32, table []float64, N, C int, accumulate bool) {
	for n := 0; n < N; n++ {
		for c := 0; c < C; c++ {
			v := table[int(ids[n])*C+c]
			if accumulate {
				out[n*C+c] += v
			} else {
				out[n*C+c] = v
			}
		}
	}
}

// EmbeddingBackward scatter-adds dout (N, C) into dtable (V, C).
func EmbeddingBackward(dtable, dout []float64, ids []int32, N, C int) {
	for n := 0; n < N; n++ {
		for c := 0; c < C; c++ {
			dtable[int(ids[n])*C+c] += dout[n*C+c]
		}
	}
}

// Act applies the nonlinearity act (backend.Act) to z.
func Act(act backend.Act, z float64) float64 {
	switch act {
	case backend.ReLU:
		return math.Max(z, 0)
	case backend.GELU:
		return Gelu(z)
	case backend.Swish:
		return z / (1 + math.Exp(-z))
	}
	panic(fmt.Sprintf("ref64: unknown activation %v", act))
}

// ActGrad is the derivative of Act (ReLU'(0) = 0, as in PyTorch).
func ActGrad(act backend.Act, z float64) float64 {
	switch act {
	case backend.ReLU:
		if z > 0 {
			return 1
		}
		return 0
	case backend.GELU:
		return GeluGrad(z)
	case backend.Swish:
		s := 1 / (1 + math.Exp(-z))
		return s * (1 + z*(1-s))
	}
	panic(fmt.Sprintf("ref64: unknown activation %v", act))
}

// ActForward sets out = act(inp) over n elements.
func ActForward(out, inp []float64, n int, act backend.Act) {
	for i := 0; i < n; i++ {
		out[i] = Act(act, inp[i])
	}
}

// ActBackward sets dinp = dout·act'(inp) from the forward's input.
func ActBackward(dinp, dout, inp []float64, n int, act backend.Act) {
	for i := 0; i < n; i++ {
		dinp[i] = dout[i] * ActGrad(act, inp[i])
	}
}

// AdapterForward is the Houlsby bottleneck on inp (N, C):
// z = inp·wDownᵀ + bDown (N, M), out = inp + act(z)·wUpᵀ + bUp (N, C), with
// wDown (M, C), bDown (M), wUp (C, M), bUp (C).
func AdapterForward(out, z, inp, wDown, bDown, wUp, bUp []float64, N, C, M int, act backend.Act) {
	for n := 0; n < N; n++ {
		for m := 0; m < M; m++ {
			s := bDown[m]
			for c := 0; c < C; c++ {
				s += inp[n*C+c] * wDown[m*C+c]
			}
			z[n*M+m] = s
		}
		for c := 0; c < C; c++ {
			s := inp[n*C+c] + bUp[c]
			for m := 0; m < M; m++ {
				s += Act(act, z[n*M+m]) * wUp[c*M+m]
			}
			out[n*C+c] = s
		}
	}
}

// AdapterBackward sets dinp (=) and accumulates dWDown, dBDown, dWUp, dBUp
// (+=); any of them may be nil (skipped). By the chain rule through
// z → act → up-projection and the identity branch:
//
//	dz[n,m] = act'(z[n,m])·Σ_c dout[n,c]·wUp[c,m]
//	dinp[n,c] = dout[n,c] + Σ_m dz[n,m]·wDown[m,c]
func AdapterBackward(dinp, dWDown, dBDown, dWUp, dBUp, dout, inp, z, wDown, wUp []float64, N, C, M int, act backend.Act) {
	for n := 0; n < N; n++ {
		dz := make([]float64, M)
		for m := 0; m < M; m++ {
			var s float64
			for c := 0; c < C; c++ {
				s += dout[n*C+c] * wUp[c*M+m]
				if dWUp != nil {
					dWUp[c*M+m] += dout[n*C+c] * Act(act, z[n*M+m])
				}
			}
			dz[m] = s * ActGrad(act, z[n*M+m])
			if dBDown != nil {
				dBDown[m] += dz[m]
			}
			if dWDown != nil {
				for c := 0; c < C; c++ {
					dWDown[m*C+c] += dz[m] * inp[n*C+c]
				}
			}
		}
		for c := 0; c < C; c++ {
			if dBUp != nil {
				dBUp[c] += dout[n*C+c]
			}
			if dinp != nil {
				s := dout[n*C+c]
				for m := 0; m < M; m++ {
					s += dz[m] * wDown[m*C+c]
				}
				dinp[n*C+c] = s
			}
		}
	}
}

// SoftmaxCrossEntropy sets loss[n] = logsumexp(logits[n]) - logits[n][label]
// and dlogits (=, nil skips) = scale·(softmax - onehot); rows with a negative
// label get zero loss and zero gradient.
func SoftmaxCrossEntropy(loss, dlogits, logits []float64, labels []int32, N, V int, scale float64) {
	for n := 0; n < N; n++ {
		x := logits[n*V : n*V+V]
		y := int(labels[n])
		if y < 0 {
			loss[n] = 0
			for v := 0; v < V && dlogits != nil; v++ {
				dlogits[n*V+v] = 0
			}
			continue
		}
		mx := math.Inf(-1)
		for _, v := range x {
			mx = math.Max(mx, v)
		}
		var s float64
		for _, v := range x {
			s += math.Exp(v - mx)
		}
		lse := mx + math.Log(s)
		loss[n] = lse - x[y]
		for v := 0; v < V && dlogits != nil; v++ {
			g := math.Exp(x[v] - lse)
			if v == y {
				g--
			}
			dlogits[n*V+v] = scale * g
		}
	}
}

// MSE sets loss = (pred-target)² and dpred (=, nil skips) =
// scale·2·(pred-target).
func MSE(loss, dpred, pred, target []float64, N int, scale float64) {
	for i := 0; i < N; i++ {
		d := pred[i] - target[i]
		loss[i] = d * d
		if dpred != nil {
			dpred[i] = scale * 2 * d
		}
	}
}

// AdamWStep is one torch.optim.AdamW step (decoupled weight decay) on n
// elements: m, v moments, Step from 1. Only the elements in the ranges
// [decay[2k], decay[2k+1]) decay (with h.WeightDecay); nil decays none.
func AdamWStep(param, grad, m, v []float64, decay []int32, n int, h backend.AdamW) {
	b1, b2 := float64(h.Beta1), float64(h.Beta2)
	bc1 := 1 - math.Pow(b1, float64(h.Step))
	bc2 := 1 - math.Pow(b2, float64(h.Step))
	wd := make([]float64, n)
	for k := 0; k+1 < len(decay); k += 2 {
		for i := decay[k]; i < decay[k+1]; i++ {
			wd[i] = float64(h.WeightDecay)
		}
	}
	for i := 0; i < n; i++ {
		m[i] = b1*m[i] + (1-b1)*grad[i]
		v[i] = b2*v[i] + (1-b2)*grad[i]*grad[i]
		mhat := m[i] / bc1
		vhat := v[i] / bc2
		param[i] -= float64(h.LR) * (wd[i]*param[i] + mhat/(math.Sqrt(vhat)+float64(h.Eps)))
	}
}

// GroupedAdapterForward applies to every row r of inp (N, C) the adapter of
// its segment's slot g, from the segment table segs (S rows of start, end,
// slot; see backend.GroupedAdapterForward): out[r] = inp[r] +
// act(inp[r]·wDown[g]ᵀ + bDown[g])·wUp[g]ᵀ + bUp[g], with wDown (G, M, C),
// bDown (G, M), wUp (G, C, M), bUp (G, C); slot -1 copies the row. Forward
// only: the grouped ops serve inference.
func GroupedAdapterForward(out, inp, wDown, bDown, wUp, bUp []float64, segs []int32, N, C, M int, act backend.Act) {
	z := make([]float64, M)
	for s := 0; s+2 < len(segs); s += 3 {
		g := int(segs[s+2])
		for r := int(segs[s]); r < int(segs[s+1]); r++ {
			x, o := inp[r*C:r*C+C], out[r*C:r*C+C]
			if g < 0 {
				copy(o, x)
				continue
			}
			for m := 0; m < M; m++ {
				acc := bDown[g*M+m]
				for c := 0; c < C; c++ {
					acc += x[c] * wDown[(g*M+m)*C+c]
				}
				z[m] = Act(act, acc)
			}
			for c := 0; c < C; c++ {
				acc := x[c] + bUp[g*C+c]
				for m := 0; m < M; m++ {
					acc += z[m] * wUp[(g*C+c)*M+m]
				}
				o[c] = acc
			}
		}
	}
}

// GroupedLayerNormForward is LayerNormForward with, for every row, the
// affine parameters w[g], b[g] (G, C) of its segment's slot g (segs as for
// GroupedAdapterForward; every slot >= 0).
func GroupedLayerNormForward(out, inp, w, b []float64, segs []int32, N, C int, eps float64) {
	mean, rstd := make([]float64, 1), make([]float64, 1)
	for s := 0; s+2 < len(segs); s += 3 {
		g := int(segs[s+2])
		for r := int(segs[s]); r < int(segs[s+1]); r++ {
			LayerNormForward(out[r*C:r*C+C], mean, rstd, inp[r*C:r*C+C], w[g*C:g*C+C], b[g*C:g*C+C], 1, C, eps)
		}
	}
}
