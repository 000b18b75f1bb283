package cpu

import (
	"fmt"
	"math"
	"strings"

	"github.com/houlsby/adapters/backend"
)

// asTensor converts a backend.Tensor into *Tensor, rejecting nil, foreign and
// freed tensors.
func asTensor(op, name string, t backend.Tensor) (*Tensor, error) {
	if t == nil {
		return nil, fmt.Errorf("%s: %s is nil", op, name)
	}
	ct, ok := t.(*Tensor)
	if !ok {
		return nil, fmt.Errorf("%s: %s is a %T, not a *cpu.Tensor", op, name, t)
	}
	if ct == nil {
		return nil, fmt.Errorf("%s: %s is a nil *cpu.Tensor", op, name)
	}
	if ct.Data == nil && ct.Ints == nil && ct.n > 0 {
		return nil, fmt.Errorf("%s: %s has been freed", op, name)
	}
	return ct, nil
}

// f32 returns the first n floats of the required floating-point tensor t.
func f32(op, name string, t backend.Tensor, n int) ([]float32, error) {
	ct, err := asTensor(op, name, t)
	if err != nil {
		return nil, err
	}
	if !isFloat(ct.dt) {
		return nil, fmt.Errorf("%s: %s has dtype %v, want a floating-point dtype", op, name, ct.dt)
	}
	if n < 0 {
		return nil, fmt.Errorf("%s: negative size %d for %s", op, n, name)
	}
	if len(ct.Data) < n {
		return nil, fmt.Errorf("%s: %s has %d elements, need %d", op, name, len(ct.Data), n)
	}
	return ct.Data[:n:n], nil
}

// optF32 is f32 for an optional argument: a nil t gives a nil slice.
func optF32(op, name string, t backend.Tensor, n int) ([]float32, error) {
	if t == nil {
		return nil, nil
	}
	if ct, ok := t.(*Tensor); ok && ct == nil {
		return nil, nil
	}
	return f32(op, name, t, n)
}

// i32 returns the first n ints of the required I32 tensor t.
func i32(op, name string, t backend.Tensor, n int) ([]int32, error) {
	ct, err := asTensor(op, name, t)
	if err != nil {
		return nil, err
	}
	if ct.dt != backend.I32 {
		return nil, fmt.Errorf("%s: %s has dtype %v, want I32", op, name, ct.dt)
	}
	if n < 0 {
		return nil, fmt.Errorf("%s: negative size %d for %s", op, n, name)
	}
	if len(ct.Ints) < n {
		return nil, fmt.Errorf("%s: %s has %d elements, need %d", op, name, len(ct.Ints), n)
	}
	return ct.Ints[:n:n], nil
}

// nonneg returns an error unless every size is >= 0 (zero sizes are legal
// no-ops). names lists the sizes' names, comma-separated, in order.
func nonneg(op, names string, vals ...int) error {
	for i, v := range vals {
		if v < 0 {
			return negativeSize(op, names, i, v)
		}
	}
	return nil
}

// negativeSize is nonneg's error, out of line so that vals does not escape.
func negativeSize(op, names string, i, v int) error {
	name := strings.Split(names, ",")
	n := "size"
	if i < len(name) {
		n = strings.TrimSpace(name[i])
	}
	return fmt.Errorf("%s: %s = %d is negative", op, n, v)
}

// mul multiplies sizes, reporting overflow as an error.
func mul(op string, vals ...int) (int, error) {
	p := 1
	for _, v := range vals {
		if v != 0 && p > math.MaxInt32*64/v {
			return 0, fmt.Errorf("%s: a product of sizes exceeds %d elements", op, math.MaxInt32*64)
		}
		p *= v
	}
	return p, nil
}

// checkP validates a dropout probability.
func checkP(op string, p float32) error {
	if !(p >= 0 && p < 1) {
		return fmt.Errorf("%s: dropout probability %v is outside [0, 1)", op, p)
	}
	return nil
}
