// Package backend is the contract between the model code and the compute
// backends (the pure-Go CPU backend in cpu_fallback/ and the CUDA backend in
// gpu/). It is deliberately small: memory, copies, sync, and the coarse ops a
// post-LN BERT encoder with bottleneck adapters needs, forward and backward.
//
// The contract has a core and optional capabilities:
//   - Backend is the core every backend implements: memory and copies,
//     GEMM, bias, add/scale, sum of squares, LayerNorm, the pointwise
//     nonlinearities (ActForward/ActBackward, tanh), dropout, the masked
//     softmax, embeddings, losses and AdamW;
//   - FusedAdapter and FusedAttention are fused kernels a backend may add,
//     discovered by interface assertion. Callers never assert them: they
//     call AdapterForward, AdapterBackward, AttentionForward and
//     AttentionBackward (generic.go), which use the capability when the
//     backend has it and otherwise (or when it answers ErrNotFused) compose
//     core ops. The composition is written once, here, and both paths have
//     the same semantics, dropout mask included;
//   - GroupedAdapter and GroupedLayerNorm apply per-segment parameters to
//     the rows of one batch (serving many tasks in one forward pass; forward
//     only), reached through GroupedAdapterForward and
//     GroupedLayerNormForward (grouped.go), which compose AdapterForward and
//     LayerNormForward over views of each segment when a backend lacks them.
//
// A new backend proves itself by running the conformance suite
// (tests/conformance, package conformance) in its tests:
//
//	conformance.Run(t, func() backend.Backend { return mybackend.New() }, conformance.Float32())
//
// which checks every core op against the float64 references of tests/ref64
// (each backward there is checked by finite differences), and runs the
// adapter and attention tests twice: through the backend's capabilities and
// through the generic compositions over its core ops alone
// (conformance.CoreOnly hides the capabilities). Compile-time assertions
// next to the type state what it implements, e.g.
//
//	var _ backend.Backend = (*Backend)(nil)
//	var _ backend.FusedAdapter = (*Backend)(nil)
//
// Dimension letters used throughout:
//
//	B  batch size            T  sequence length        C  hidden size (d)
//	NH attention heads       HS head size (C/NH)       M  adapter bottleneck (m)
//	N  rows (usually B*T)    V  classes / vocabulary
//
// Layouts are row-major. Linear weights use the Hugging Face layout
// (out_features, in_features), so a linear layer is Y = X·Wᵀ + b.
//
// Gradient rule (stated once, here, for every op):
//   - parameter gradients ACCUMULATE (+=), so one buffer can collect a
//     gradient over several uses and micro-batches;
//   - activation (input) gradients OVERWRITE (=); the model adds residual
//     branches explicitly with Add;
//   - a nil parameter-gradient argument means "frozen": the backend must not
//     compute it (no weight-gradient GEMM) and must not touch any buffer for it;
//   - a nil input-gradient argument means "nothing below needs it": skip it.
package backend

import (
	"errors"
	"fmt"
)

// DType is the element type of a tensor.
type DType int

// Element types. The CPU backend stores everything but I32 as float32; the
// GPU backend stores BF16 natively.
const (
	F32 DType = iota
	BF16
	F16
	I32
)

// Size is the size of one element in bytes.
func (d DType) Size() int {
	switch d {
	case F32, I32:
		return 4
	case BF16, F16:
		return 2
	}
	panic(fmt.Sprintf("backend: unknown dtype %d", int(d)))
}

func (d DType) String() string {
	switch d {
	case F32:
		return "F32"
	case BF16:
		return "BF16"
	case F16:
		return "F16"
	case I32:
		return "I32"
	}
	return fmt.Sprintf("DType(%d)", int(d))
}

// Tensor is a backend-owned buffer with a shape. Views (see Backend.View)
// share memory with their parent and must not outlive it.
type Tensor interface {
	Shape() []int
	DType() DType
	// Len is the number of elements (the product of the shape).
	Len() int
}

// Act names a pointwise nonlinearity: the adapter's (ReLU, GELU or Swish)
// and BERT's feed-forward GELU.
type Act int

// Nonlinearities. GELU is the exact erf form (as BERT's FFN); ReLU'(0) = 0,
// as in PyTorch.
const (
	ReLU Act = iota
	GELU
	Swish
)

// Valid reports whether a is one of ReLU, GELU and Swish.
func (a Act) Valid() bool { return a == ReLU || a == GELU || a == Swish }

func (a Act) String() string {
	switch a {
	case ReLU:
		return "relu"
	case GELU:
		return "gelu"
	case Swish:
		return "swish"
	}
	return fmt.Sprintf("Act(%d)", int(a))
}

// ParseAct maps a config name to an Act.
func ParseAct(s string) (Act, error) {
	switch s {
	case "relu", "":
		return ReLU, nil
	case "gelu":
		return GELU, nil
	case "swish", "silu":
		return Swish, nil
	}
	return 0, fmt.Errorf("unknown nonlinearity %q (want relu, gelu or swish)", s)
}

// MatMul describes C = Alpha·op(A)·op(B) + Beta·C, op(X) = X or Xᵀ, for
// Batch independent problems (Batch <= 1 means one). op(A) is M×K, op(B) is
// K×N, C is M×N, all row-major. Ld* are leading dimensions (elements between
// rows as stored); 0 means tightly packed. Stride* are the element distances
// between consecutive problems of a batch.
type MatMul struct {
	TransA, TransB            bool
	M, N, K                   int
	Alpha, Beta               float32
	LdA, LdB, LdC             int
	Batch                     int
	StrideA, StrideB, StrideC int
}

// GemmLayout is a MatMul's storage with the defaults filled in: the number
// of problems, the leading dimensions, and how many elements each operand
// must hold. Backends validate a MatMul once through Layout, so the rules
// are the same for all of them.
type GemmLayout struct {
	Batch               int
	LdA, LdB, LdC       int
	SpanA, SpanB, SpanC int
}

// Layout checks p (sizes, strides and leading dimensions non-negative,
// leading dimensions at least the stored row length, batch outputs not
// overlapping) and returns its storage; op prefixes the error.
func (p MatMul) Layout(op string) (GemmLayout, error) {
	vals := [...]int{p.M, p.N, p.K, p.StrideA, p.StrideB, p.StrideC, p.LdA, p.LdB, p.LdC}
	names := [...]string{"M", "N", "K", "StrideA", "StrideB", "StrideC", "LdA", "LdB", "LdC"}
	for i, v := range vals {
		if v < 0 {
			return GemmLayout{}, fmt.Errorf("%s: %s = %d is negative", op, names[i], v)
		}
	}
	l := GemmLayout{Batch: max(p.Batch, 1), LdA: p.LdA, LdB: p.LdB, LdC: p.LdC}
	// Stored shapes: a is M×K (K×M transposed), b is K×N (N×K transposed).
	ar, ac := p.M, p.K
	if p.TransA {
		ar, ac = p.K, p.M
	}
	br, bc := p.K, p.N
	if p.TransB {
		br, bc = p.N, p.K
	}
	if l.LdA == 0 {
		l.LdA = ac
	}
	if l.LdB == 0 {
		l.LdB = bc
	}
	if l.LdC == 0 {
		l.LdC = p.N
	}
	if l.LdA < ac || l.LdB < bc || l.LdC < p.N {
		return GemmLayout{}, fmt.Errorf("%s: leading dimensions (%d, %d, %d) are smaller than the rows (%d, %d, %d)", op, l.LdA, l.LdB, l.LdC, ac, bc, p.N)
	}
	if need := p.M*l.LdC - (l.LdC - p.N); l.Batch > 1 && p.M > 0 && p.N > 0 && p.StrideC < need {
		return GemmLayout{}, fmt.Errorf("%s: StrideC = %d makes the %d outputs of the batch overlap (need >= %d)", op, p.StrideC, l.Batch, need)
	}
	l.SpanA = span(ar, ac, l.LdA, l.Batch, p.StrideA)
	l.SpanB = span(br, bc, l.LdB, l.Batch, p.StrideB)
	l.SpanC = span(p.M, p.N, l.LdC, l.Batch, p.StrideC)
	return l, nil
}

// span returns the elements a (possibly transposed, strided, batched)
// operand touches: the last problem's last row's last element + 1.
func span(rows, cols, ld, batch, stride int) int {
	if rows == 0 || cols == 0 || batch == 0 {
		return 0
	}
	return (batch-1)*stride + (rows-1)*ld + cols
}

// AdamW holds the hyper-parameters of one decoupled-weight-decay Adam step
// (Loshchilov & Hutter). Step counts from 1 and drives bias correction.
// WeightDecay applies only to the elements the step's decay table lists
// (Backend.AdamWStep).
type AdamW struct {
	LR, Beta1, Beta2, Eps, WeightDecay float32
	Step                               int
}

// Backend is the core of the contract: what every backend implements.
// Every method returns an error for bad arguments (shape or dtype mismatch,
// nil required tensor) instead of panicking; asynchronous backends may
// report a device fault at the next Sync. The fused adapter and attention
// are optional capabilities on top of it (FusedAdapter, FusedAttention),
// reached through the package functions AdapterForward, AdapterBackward,
// AttentionForward and AttentionBackward.
type Backend interface {
	// Name identifies the backend ("cpu", "cuda:0 NVIDIA H100 ...").
	Name() string
	// FrozenDType is the element type the backend wants for frozen weights
	// and activations (F32 on the CPU, BF16 on the GPU by default).
	FrozenDType() DType

	// Alloc returns a zeroed tensor.
	Alloc(dt DType, shape ...int) (Tensor, error)
	// View returns a tensor aliasing t's elements [offset, offset+prod(shape)).
	View(t Tensor, offset int, shape ...int) (Tensor, error)
	// Free releases t (a no-op for views).
	Free(t Tensor)
	// Upload copies host floats into t, converting to t's dtype
	// (round-to-nearest-even for BF16/F16). The host slice must hold exactly
	// t.Len() elements; Upload, Download and Copy never convert between I32
	// and floating-point tensors (that is an error).
	Upload(t Tensor, src []float32) error
	// UploadInt32 copies host ints into an I32 tensor.
	UploadInt32(t Tensor, src []int32) error
	// Download copies t into dst, converting to float32.
	Download(dst []float32, t Tensor) error
	// DownloadInt32 copies an I32 tensor to the host.
	DownloadInt32(dst []int32, t Tensor) error
	// Copy copies src into dst (same length; dtypes may differ).
	Copy(dst, src Tensor) error
	// Zero sets every element of t to 0.
	Zero(t Tensor) error
	// Sync waits for all queued work and reports any deferred error.
	Sync() error

	// Gemm computes c = alpha·op(a)·op(b) + beta·c as described by p.
	Gemm(c, a, b Tensor, p MatMul) error
	// AddBias adds bias (C) to every row of x (N, C) in place.
	AddBias(x, bias Tensor, N, C int) error
	// BiasGrad accumulates the column sums of dout (N, C) into dbias (C).
	BiasGrad(dbias, dout Tensor, N, C int) error
	// Add sets out = a + b elementwise over n elements (out may alias a or b).
	Add(out, a, b Tensor, n int) error
	// Scale multiplies n elements of x by alpha in place.
	Scale(x Tensor, alpha float32, n int) error
	// SumSquares sets out[0] = Σ x[i]² over n elements (fp32 accumulation),
	// the reduction behind gradient-norm clipping.
	SumSquares(out, x Tensor, n int) error

	// LayerNormForward: out = (inp-mean)·rstd·w + b over rows of inp (N, C);
	// saves mean and rstd (N) for the backward pass.
	LayerNormForward(out, mean, rstd, inp, w, b Tensor, N, C int, eps float32) error
	// LayerNormBackward: dinp (=), dw and db (+=; nil when frozen).
	LayerNormBackward(dinp, dw, db, dout, inp, w, mean, rstd Tensor, N, C int) error

	// ActForward: out = act(inp) over n elements (GELU is x·Φ(x), the
	// exact erf form). out may alias inp.
	ActForward(out, inp Tensor, n int, act Act) error
	// ActBackward: dinp = dout·act'(inp), from the forward's input. dinp
	// may alias dout.
	ActBackward(dinp, dout, inp Tensor, n int, act Act) error
	// TanhForward and TanhBackward serve the BERT pooler. The backward uses
	// the forward output: dinp = dout·(1-out²).
	TanhForward(out, inp Tensor, n int) error
	TanhBackward(dinp, dout, out Tensor, n int) error

	// Dropout: out = inp·keep/(1-p), keep drawn by DropoutKeep(seed, i, p).
	// p = 0 copies. Backward recomputes the same mask from the seed. out
	// may alias inp (dinp may alias dout).
	DropoutForward(out, inp Tensor, n int, p float32, seed uint64) error
	DropoutBackward(dinp, dout Tensor, n int, p float32, seed uint64) error

	// MaskedSoftmaxForward: for every row r of scores (B, R, T) (R rows per
	// batch element b), probs[b, r, :] = softmax(scale·scores[b, r, :]) over
	// the keys t with mask[b, t] != 0 (mask (B, T) I32, as in attention).
	// Masked keys get probability exactly 0, and a row whose keys are all
	// masked gets all zeros, never NaN. probs may alias scores.
	MaskedSoftmaxForward(probs, scores, mask Tensor, B, R, T int, scale float32) error
	// MaskedSoftmaxBackward: over N rows of length T, dscores (=) =
	// scale·probs ⊙ (dprobs - Σ_t probs·dprobs), the gradient of
	// MaskedSoftmaxForward (masked keys have probs 0 and get 0). dscores may
	// alias dprobs.
	MaskedSoftmaxBackward(dscores, dprobs, probs Tensor, N, T int, scale float32) error

	// EmbeddingForward gathers rows of table (V, C) by ids (N) into out (N, C);
	// with accumulate it adds to out instead (word + position + type).
	EmbeddingForward(out, ids, table Tensor, N, C int, accumulate bool) error
	// EmbeddingBackward scatter-adds dout (N, C) into dtable (V, C) (+=),
	// deterministically.
	EmbeddingBackward(dtable, dout, ids Tensor, N, C int) error

	// SoftmaxCrossEntropy over logits (N, V) and labels (N, I32): loss (N)
	// gets each row's loss; dlogits (=, may be nil) gets
	// scale·(softmax - onehot). Rows whose label is negative are ignored
	// (zero loss, zero gradient).
	SoftmaxCrossEntropy(loss, dlogits, logits, labels Tensor, N, V int, scale float32) error
	// MSE over pred and target (N): loss (N) = (pred-target)²,
	// dpred (=, may be nil) = scale·2·(pred-target).
	MSE(loss, dpred, pred, target Tensor, N int, scale float32) error

	// AdamWStep updates n elements of param from grad with moments m and v
	// (all F32, parallel layouts), so one call can update every trainable
	// tensor of an arena. decay is an I32 table of pairs [start, end),
	// ascending, non-overlapping (end <= next start), within [0, n); the
	// elements in those ranges get the decoupled weight decay
	// param -= LR·WeightDecay·param, all others none. nil (or an empty
	// table) means no element decays; a malformed table is an error.
	// Elements outside every range whose param, grad, m and v are all 0
	// stay 0 (padding between tensors).
	AdamWStep(param, grad, m, v, decay Tensor, n int, h AdamW) error
}

// FusedAdapter is the optional capability of a fused Houlsby bottleneck. Do
// not call it directly: the package functions AdapterForward and
// AdapterBackward use it when a backend has it (and it takes the sizes) and
// otherwise compose core ops, with the same semantics (see them for the
// arguments).
type FusedAdapter interface {
	AdapterForward(out, z, inp, wDown, bDown, wUp, bUp Tensor, N, C, M int, act Act) error
	AdapterBackward(dinp, dWDown, dBDown, dWUp, dBUp, dout, inp, z, wDown, wUp Tensor, N, C, M int, act Act) error
}

// FusedAttention is the optional capability of fused multi-head
// self-attention, reached through the package functions AttentionForward
// and AttentionBackward (see them for the arguments).
type FusedAttention interface {
	AttentionForward(out, probs, qkv, mask Tensor, B, T, NH, HS int, p float32, seed uint64) error
	AttentionBackward(dqkv, dout, qkv, probs, mask Tensor, B, T, NH, HS int, p float32, seed uint64) error
}

// PackedAttention is the optional capability of multi-head self-attention
// over sequences packed back to back without padding, computed in tiles
// with an online softmax so that no T×T score matrix is ever stored: the
// forward saves one log-sum-exp per head and query row, and the backward
// recomputes the probabilities from it. A model packs its batches (runs
// every GEMM, LayerNorm and pointwise op on real tokens only) when the
// backend has this capability, and keeps the padded layout otherwise.
//
// Sequence s occupies rows [starts[s], starts[s+1]) of qkv (N, 3C) and out
// (N, C), with starts (S+1) I32, starts[0] = 0, starts[S] = N, and every
// sequence at most maxT rows long; Q, K and V of head h are columns
// h·HS..(h+1)·HS of each third of qkv, as for FusedAttention. lse (NH, N)
// F32 receives, for head h and query row r, log Σ_j exp(q_r·k_j/√HS) over
// the row's sequence. Dropout on the probabilities keeps element (s, h, i,
// j) (query i, key j, positions within sequence s) when DropoutKeep(seed,
// ((s·NH+h)·maxT+i)·maxT+j, p): the flat index the padded layout
// (B = S, T = maxT) gives the same element, so packed and padded runs of one
// batch draw the same attention-dropout mask.
type PackedAttention interface {
	PackedAttentionForward(out, lse, qkv, starts Tensor, S, maxT, NH, HS int, p float32, seed uint64) error
	// PackedAttentionBackward sets dqkv (N, 3C) (=) from dout (N, C), given
	// the forward's qkv, out and lse. dqkv must not alias qkv.
	PackedAttentionBackward(dqkv, dout, qkv, out, lse, starts Tensor, S, maxT, NH, HS int, p float32, seed uint64) error
}

// GroupedAdapter is the optional capability of Houlsby adapters applied per
// segment of rows, forward only: the rows of one batch belong to different
// tasks, and each task has its own adapter. It serves inference (there is no
// backward; training runs one task per batch). Do not call it directly: the
// package function GroupedAdapterForward uses it when a backend has it and
// otherwise composes AdapterForward over views of each segment (see it for
// the arguments).
type GroupedAdapter interface {
	GroupedAdapterForward(out, inp, wDown, bDown, wUp, bUp, segs Tensor, N, C, M, G, S int, act Act) error
}

// GroupedLayerNorm is the optional capability of a LayerNorm whose affine
// parameters are chosen per segment of rows, forward only (Houlsby training
// tunes the LayerNorms, so tasks that share a backbone differ there too).
// Reached through GroupedLayerNormForward.
type GroupedLayerNorm interface {
	GroupedLayerNormForward(out, inp, w, b, segs Tensor, N, C, G, S int, eps float32) error
}

// CheckSegments validates a segment table read back to the host: S rows
// (start, end, slot) that cover the N rows of a batch in order (start of the
// first 0, each start the previous end, end of the last N; empty segments
// are allowed), each slot in [0, G), or -1 where allowNone. It returns the
// longest segment's row count. op prefixes the error.
func CheckSegments(op string, table []int32, N, G int, allowNone bool) (maxRows int, err error) {
	if len(table)%3 != 0 {
		return 0, fmt.Errorf("%s: the segment table has %d entries, want (start, end, slot) triples", op, len(table))
	}
	S := len(table) / 3
	if S == 0 {
		if N != 0 {
			return 0, fmt.Errorf("%s: no segments for %d rows", op, N)
		}
		return 0, nil
	}
	prev := 0
	for s := 0; s < S; s++ {
		start, end, slot := int(table[3*s]), int(table[3*s+1]), int(table[3*s+2])
		switch {
		case start != prev:
			return 0, fmt.Errorf("%s: segment %d starts at row %d, want %d (segments cover the rows in order)", op, s, start, prev)
		case end < start || end > N:
			return 0, fmt.Errorf("%s: segment %d = rows [%d, %d) is not within [%d, %d]", op, s, start, end, start, N)
		case slot >= G || slot < -1 || (slot == -1 && !allowNone):
			lo := 0
			if allowNone {
				lo = -1
			}
			return 0, fmt.Errorf("%s: segment %d has slot %d, want %d..%d", op, s, slot, lo, G-1)
		}
		maxRows = max(maxRows, end-start)
		prev = end
	}
	if prev != N {
		return 0, fmt.Errorf("%s: the segments end at row %d, want N = %d", op, prev, N)
	}
	return maxRows, nil
}

// ErrNotFused is returned by a capability method (FusedAdapter,
// FusedAttention, GroupedAdapter) for valid arguments it does not handle, such as sizes
// beyond its kernels' limits; the package functions then run the
// composition of core ops instead. A method returning it must not have
// written anything, and must not return it for invalid arguments.
var ErrNotFused = errors.New("backend: no fused kernel for these arguments")

// ErrNoCUDA is returned when the CUDA backend is requested from a binary
// built without the cuda tag.
var ErrNoCUDA = errors.New("this binary was built without CUDA support (rebuild with -tags cuda)")

// splitmix64 is Steele et al.'s SplitMix64 finaliser: a stateless,
// counter-based hash, so every backend draws the same dropout mask for the
// same (seed, index) in any order, and backward passes recompute it.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// DropoutKeep reports whether element i survives dropout with probability p
// under seed. It compares the top 24 bits of the hash with p·2²⁴, which a
// CUDA kernel reproduces exactly with 64-bit integer arithmetic.
func DropoutKeep(seed uint64, i int, p float32) bool {
	if p <= 0 {
		return true
	}
	h := splitmix64(seed ^ splitmix64(uint64(i)))
	return uint32(h>>40) >= uint32(p*(1<<24))
}

// CheckDecayRanges validates an AdamWStep decay table read back to the host:
// an even number of entries, pairs [start, end) with 0 <= start <= end <= n
// and each start at or after the previous end. op prefixes the error.
func CheckDecayRanges(op string, table []int32, n int) error {
	if len(table)%2 != 0 {
		return fmt.Errorf("%s: the decay table has %d entries, want pairs (an even number)", op, len(table))
	}
	prev := 0
	for k := 0; k < len(table); k += 2 {
		s, e := int(table[k]), int(table[k+1])
		switch {
		case s < 0 || e > n || s > e:
			return fmt.Errorf("%s: decay range %d = [%d, %d) is not within [0, %d)", op, k/2, s, e, n)
		case s < prev:
			return fmt.Errorf("%s: decay range %d = [%d, %d) starts before the previous one ends (%d): ranges must be ascending and not overlap", op, k/2, s, e, prev)
		}
		prev = e
	}
	return nil
}
