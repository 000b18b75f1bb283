package gpu

import (
	"fmt"
	"strings"

	"github.com/houlsby/adapters/backend"
)

// AddBias adds bias (C) to every row of x (N, C) in place.
func (b *Backend) AddBias(x, bias backend.Tensor, N, C int) error {
	const op = "gpu.AddBias"
	if err := sizes(op, "N,C", N, C); err != nil {
		return err
	}
	nc, err := mulOK(op, N, C)
	if err != nil {
		return err
	}
	xt, err := activ(op, "x", x, nc)
	if err != nil {
		return err
	}
	bt, err := weight(op, "bias", bias, C)
	if err != nil {
		return err
	}
	if nc == 0 {
		return nil
	}
	return b.launch(op, kBiasAdd.of(xt, bt), grid1D(nc), b1(block1D), 0, ptr(xt), ptr(bt), Int(N), Int(C))
}

// BiasGrad accumulates the column sums of dout (N, C) into dbias (C),
// deterministically (fixed summation order).
func (b *Backend) BiasGrad(dbias, dout backend.Tensor, N, C int) error {
	const op = "gpu.BiasGrad"
	if err := sizes(op, "N,C", N, C); err != nil {
		return err
	}
	nc, err := mulOK(op, N, C)
	if err != nil {
		return err
	}
	dbt, err := f32(op, "dbias", dbias, C)
	if err != nil {
		return err
	}
	gt, err := activ(op, "dout", dout, nc)
	if err != nil {
		return err
	}
	return b.biasGrad(op, dbt, gt, N, C)
}

func (b *Backend) biasGrad(op string, dbias, dout *Tensor, N, C int) error {
	if C == 0 {
		return nil
	}
	return b.launch(op, kBiasGrad.of(dout), Dim3{X: uint32((C + 31) / 32), Y: 1, Z: 1}, Dim3{X: 32, Y: 8, Z: 1}, 0,
		ptr(dbias), ptr(dout), Int(N), Int(C))
}

// Add sets out = a + b over n elements (out may alias a or b).
func (b *Backend) Add(out, a, bt backend.Tensor, n int) error {
	const op = "gpu.Add"
	if err := sizes(op, "n", n); err != nil {
		return err
	}
	ot, err := activ(op, "out", out, n)
	if err != nil {
		return err
	}
	at, err := activ(op, "a", a, n)
	if err != nil {
		return err
	}
	btt, err := activ(op, "b", bt, n)
	if err != nil {
		return err
	}
	if err := sameDType(op, "out, a and b", ot, at, btt); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	return b.launch(op, kAdd.of(ot), grid1D(n), b1(block1D), 0, ptr(ot), ptr(at), ptr(btt), Int(n))
}

// Scale multiplies n elements of x by alpha in place.
func (b *Backend) Scale(x backend.Tensor, alpha float32, n int) error {
	const op = "gpu.Scale"
	if err := sizes(op, "n", n); err != nil {
		return err
	}
	xt, err := activ(op, "x", x, n)
	if err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	return b.launch(op, kScale.of(xt), grid1D(n), b1(block1D), 0, ptr(xt), F(alpha), Int(n))
}

// sumsqChunk is the elements per block of the two-stage SumSquares; below
// it one block does everything.
const sumsqChunk = 1 << 14

// SumSquares sets out[0] = Σ x[i]² (x F32 or BF16) with fp32 accumulation,
// deterministically: up to sumsqChunk elements in one block, beyond that
// ceil(n/sumsqChunk) blocks (at most 1024) write partial sums that one block
// adds in order.
func (b *Backend) SumSquares(out, x backend.Tensor, n int) error {
	const op = "gpu.SumSquares"
	if err := sizes(op, "n", n); err != nil {
		return err
	}
	ot, err := f32(op, "out", out, 1)
	if err != nil {
		return err
	}
	xt, err := weight(op, "x", x, n)
	if err != nil {
		return err
	}
	blocks := min((n+sumsqChunk-1)/sumsqChunk, 1024)
	if blocks <= 1 {
		return b.launch(op, kSumSq.of(xt), Dim3{X: 1, Y: 1, Z: 1}, b1(256), 0, ptr(ot), ptr(xt), Int(n))
	}
	chunk := (n + blocks - 1) / blocks
	part, err := b.scratch(op, "partial sums", backend.F32, blocks) // sumsq_partial writes every block's sum
	if err != nil {
		return err
	}
	defer b.Free(part)
	if err := b.launch(op, kSumSqPartial.of(xt), Dim3{X: uint32(blocks), Y: 1, Z: 1}, b1(256), 0,
		ptr(part), ptr(xt), Int(n), Int(chunk)); err != nil {
		return err
	}
	return b.launch(op, kSumF32.of(), Dim3{X: 1, Y: 1, Z: 1}, b1(256), 0, ptr(ot), ptr(part), Int(blocks))
}

// pointwise launches k (out, in1[, in2], n) over tensors of one dtype.
func (b *Backend) pointwise(op string, k *kernelFamily, n int, names []string, ts ...backend.Tensor) error {
	if err := sizes(op, "n", n); err != nil {
		return err
	}
	args := make([]uint64, 0, len(ts)+1)
	gs := make([]*Tensor, len(ts))
	for i, t := range ts {
		g, err := activ(op, names[i], t, n)
		if err != nil {
			return err
		}
		gs[i] = g
		args = append(args, ptr(g))
	}
	if err := sameDType(op, strings.Join(names, ", "), gs...); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	return b.launch(op, k.of(gs[0]), grid1D(n), b1(block1D), 0, append(args, Int(n))...)
}

// ActForward sets out = act(inp) over n elements (kernel act_fwd_<out>_<inp>).
// out and inp are each F32 or BF16; out may alias inp (exactly, same dtype).
func (b *Backend) ActForward(out, inp backend.Tensor, n int, act backend.Act) error {
	const op = "gpu.ActForward"
	if err := actArgs(op, n, act); err != nil {
		return err
	}
	ot, err := activ(op, "out", out, n)
	if err != nil {
		return err
	}
	it, err := activ(op, "inp", inp, n)
	if err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	if err := exactAlias(op, "out", ot, "inp", it, n); err != nil {
		return err
	}
	return b.act(op, kActFwd, ot, nil, it, n, act)
}

// ActBackward sets dinp = dout·act'(inp) (kernel act_bwd_<dinp>_<inp>).
// dinp and dout share one dtype, inp may have the other; dinp may alias
// dout.
func (b *Backend) ActBackward(dinp, dout, inp backend.Tensor, n int, act backend.Act) error {
	const op = "gpu.ActBackward"
	if err := actArgs(op, n, act); err != nil {
		return err
	}
	dt, err := activ(op, "dinp", dinp, n)
	if err != nil {
		return err
	}
	gt, err := activ(op, "dout", dout, n)
	if err != nil {
		return err
	}
	if err := sameDType(op, "dinp and dout", dt, gt); err != nil {
		return err
	}
	it, err := activ(op, "inp", inp, n)
	if err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	if err := exactAlias(op, "dinp", dt, "dout", gt, n); err != nil {
		return err
	}
	if err := exactAlias(op, "dinp", dt, "inp", it, n); err != nil {
		return err
	}
	return b.act(op, kActBwd, dt, gt, it, n, act)
}

// exactAlias returns an error when the first n elements of a and b overlap
// without being the same elements of the same dtype: an elementwise kernel
// may write in place, not onto a shifted or differently sized copy.
func exactAlias(op, aName string, a *Tensor, bName string, b *Tensor, n int) error {
	if overlaps(a, n, b, n) && (a.Ptr != b.Ptr || a.dt != b.dt) {
		return fmt.Errorf("%s: %s partly overlaps %s (it may only alias it exactly)", op, aName, bName)
	}
	return nil
}

// actArgs checks the size and nonlinearity of ActForward/ActBackward.
func actArgs(op string, n int, act backend.Act) error {
	if err := sizes(op, "n", n); err != nil {
		return err
	}
	if !act.Valid() {
		return fmt.Errorf("%s: unknown activation %v", op, act)
	}
	return nil
}

// act launches act_fwd (g nil: out, inp) or act_bwd (dinp, dout, inp).
func (b *Backend) act(op string, k *kernelFamily, o, g, inp *Tensor, n int, act backend.Act) error {
	args := []uint64{ptr(o)}
	if g != nil {
		args = append(args, ptr(g))
	}
	args = append(args, ptr(inp), Int(n), Int(int(act)))
	return b.launch(op, k.of(o, inp), grid1D(n), b1(block1D), 0, args...)
}

// TanhForward sets out = tanh(inp).
func (b *Backend) TanhForward(out, inp backend.Tensor, n int) error {
	return b.pointwise("gpu.TanhForward", kTanhFwd, n, []string{"out", "inp"}, out, inp)
}

// TanhBackward sets dinp = dout·(1-out²) from the forward output.
func (b *Backend) TanhBackward(dinp, dout, out backend.Tensor, n int) error {
	return b.pointwise("gpu.TanhBackward", kTanhBwd, n, []string{"dinp", "dout", "out"}, dinp, dout, out)
}

// dropout launches dropout_{fwd,bwd}_<x>.
func (b *Backend) dropout(op string, k *kernelFamily, out, inp backend.Tensor, names [2]string, n int, p float32, seed uint64) error {
	if err := sizes(op, "n", n); err != nil {
		return err
	}
	if err := checkP(op, p); err != nil {
		return err
	}
	ot, err := activ(op, names[0], out, n)
	if err != nil {
		return err
	}
	it, err := activ(op, names[1], inp, n)
	if err != nil {
		return err
	}
	if err := sameDType(op, names[0]+" and "+names[1], ot, it); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	return b.launch(op, k.of(ot), grid1D(n), b1(block1D), 0, ptr(ot), ptr(it), Int(n), F(p), seed)
}

// DropoutForward sets out = inp·keep/(1-p), keep from
// backend.DropoutKeep(seed, i, p) (bit-exact); p = 0 copies.
func (b *Backend) DropoutForward(out, inp backend.Tensor, n int, p float32, seed uint64) error {
	return b.dropout("gpu.DropoutForward", kDropoutFwd, out, inp, [2]string{"out", "inp"}, n, p, seed)
}

// DropoutBackward sets dinp = dout·keep/(1-p), recomputing the mask.
func (b *Backend) DropoutBackward(dinp, dout backend.Tensor, n int, p float32, seed uint64) error {
	return b.dropout("gpu.DropoutBackward", kDropoutBwd, dinp, dout, [2]string{"dinp", "dout"}, n, p, seed)
}

// Convert copies n elements of src into dst on the device, converting
// between F32 and BF16 (round to nearest even); it is the device-side
// alternative to Copy's host round trip.
func (b *Backend) Convert(dst, src backend.Tensor, n int) error {
	const op = "gpu.Convert"
	if err := sizes(op, "n", n); err != nil {
		return err
	}
	d, err := weight(op, "dst", dst, n)
	if err != nil {
		return err
	}
	s, err := weight(op, "src", src, n)
	if err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	switch {
	case d.dt == s.dt:
		if err := b.dev.DtoD(d.Ptr, s.Ptr, n*d.dt.Size()); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		return nil
	case d.dt == backend.BF16:
		return b.launch(op, kToBF16.of(), grid1D(n), b1(block1D), 0, ptr(d), ptr(s), Int(n))
	default:
		return b.launch(op, kToF32.of(), grid1D(n), b1(block1D), 0, ptr(d), ptr(s), Int(n))
	}
}
