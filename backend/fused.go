package backend

// Two more optional capabilities, for launch overhead: a dense layer (GEMM,
// bias add, dropout) and a residual add with the LayerNorm after it, each
// one op where the core needs two or three. A GPU backend then launches one
// kernel and passes over the memory once; a backend without them gets the
// compositions below, which are exactly the calls the model made before
// (so a CPU result does not change by a bit).

import (
	"errors"
	"fmt"
	"math"
)

// FusedLinear is a dense layer in one op; see LinearForward.
type FusedLinear interface {
	LinearForward(y, x, w, bias Tensor, N, out, in int, p float32, seed uint64) error
}

// FusedAddLayerNorm is a residual add and a LayerNorm in one op; see
// AddLayerNormForward.
type FusedAddLayerNorm interface {
	AddLayerNormForward(out, res, mean, rstd, a, b, w, bias Tensor, N, C int, eps float32) error
}

// LinearForward sets y (N, out) = dropout(x (N, in)·wᵀ + bias): w (out, in)
// in the Hugging Face layout, bias (out) or nil for none, and dropout with
// probability p (0: none) keeping element i of y (flat index) when
// DropoutKeep(seed, i, p), as DropoutForward over y would. y must not
// overlap x, w or bias.
func LinearForward(be Backend, y, x, w, bias Tensor, N, out, in int, p float32, seed uint64) error {
	const op = "backend.LinearForward"
	if !(p >= 0 && p < 1) {
		return fmt.Errorf("%s: dropout probability %v is outside [0, 1)", op, p)
	}
	if f, ok := be.(FusedLinear); ok {
		if err := f.LinearForward(y, x, w, bias, N, out, in, p, seed); !errors.Is(err, ErrNotFused) {
			return err
		}
	}
	if err := be.Gemm(y, x, w, MatMul{TransB: true, M: N, N: out, K: in, Alpha: 1}); err != nil {
		return wrap(op, err)
	}
	if !isNil(bias) {
		if err := be.AddBias(y, bias, N, out); err != nil {
			return wrap(op, err)
		}
	}
	if p != 0 {
		n, err := product(op, N, out)
		if err != nil {
			return err
		}
		if err := be.DropoutForward(y, y, n, p, seed); err != nil {
			return wrap(op, err)
		}
	}
	return nil
}

// AddLayerNormForward sets res = a + b over N·C elements (res may alias a or
// b exactly) and out = LayerNormForward of res as stored, with w and bias
// (C), saving mean and rstd (N). out must not overlap res, a or b.
func AddLayerNormForward(be Backend, out, res, mean, rstd, a, b, w, bias Tensor, N, C int, eps float32) error {
	const op = "backend.AddLayerNormForward"
	if f, ok := be.(FusedAddLayerNorm); ok {
		if err := f.AddLayerNormForward(out, res, mean, rstd, a, b, w, bias, N, C, eps); !errors.Is(err, ErrNotFused) {
			return err
		}
	}
	n, err := product(op, N, C)
	if err != nil {
		return err
	}
	if err := be.Add(res, a, b, n); err != nil {
		return wrap(op, err)
	}
	return wrap(op, be.LayerNormForward(out, mean, rstd, res, w, bias, N, C, eps))
}

// product returns a·b for sizes a, b >= 0, or an error when one is negative
// or the product overflows. (Not count: its variadic slice escapes through
// the error path, and these run in every training step, which the model
// keeps free of heap allocations.)
func product(op string, a, b int) (int, error) {
	if a < 0 || b < 0 || (a != 0 && b > math.MaxInt32*64/a) {
		return 0, fmt.Errorf("%s: sizes %d and %d are negative or their product overflows", op, a, b)
	}
	return a * b, nil
}
