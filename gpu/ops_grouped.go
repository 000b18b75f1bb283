package gpu

import (
	"encoding/binary"
	"fmt"

	"github.com/houlsby/adapters/backend"
)

// The grouped (serving) ops: per-segment adapter weights and LayerNorm
// affine parameters over the rows of one batch (backend.GroupedAdapter,
// backend.GroupedLayerNorm), forward only.
//
// The kernels cannot report a malformed segment table, and the adapter's
// grid needs the longest segment, so the launchers check the table on the
// host: from the backend's record of what UploadInt32 wrote (known.go), so
// a model that uploads its tables per batch costs no read-back at all;
// otherwise they read it back the first time they see it (a small
// device-to-host copy that waits for the queued work) and keep the host copy
// by the table's device address and length until the backend next writes
// that memory, as AdamWStep does with its decay table.

// segTable returns the checked host copy of the segment table t (S rows of
// start, end, slot) and the longest segment's row count.
func (b *Backend) segTable(op string, t backend.Tensor, N, G, S int, allowNone bool) ([]int32, int, error) {
	st, err := i32(op, "segs", t, 3*S)
	if err != nil {
		return nil, 0, err
	}
	key := decayKey{st.Ptr, 3 * S}
	table, ok := b.knownIntsAt(st.Ptr, 3*S)
	if !ok {
		table, ok = b.segChecked[key]
	}
	if !ok {
		buf := b.stage(4 * 3 * S)
		if len(buf) > 0 {
			if err := b.dev.DtoH(buf, st.Ptr); err != nil {
				return nil, 0, fmt.Errorf("%s: reading the segment table back to check it: %w", op, err)
			}
		}
		table = make([]int32, 3*S)
		for i := range table {
			table[i] = int32(binary.LittleEndian.Uint32(buf[4*i:]))
		}
		if b.segChecked == nil {
			b.segChecked = map[decayKey][]int32{}
		}
		b.segChecked[key] = table
	}
	maxRows, err := backend.CheckSegments(op, table, N, G, allowNone)
	return table, maxRows, err
}

// GroupedAdapterForward launches adapter_seg_fwd over the segments: grid
// (ceil(maxRows/8), S), each block 8 rows of one segment with its slot's
// weights (kernels/adapter.cu). out and inp share one dtype, the stacked
// weights another. For M > 256 it answers backend.ErrNotFused (after
// checking the arguments) and backend's composition runs AdapterForward per
// segment instead.
func (b *Backend) GroupedAdapterForward(out, inp, wDown, bDown, wUp, bUp, segs backend.Tensor, N, C, M, G, S int, act backend.Act) error {
	const op = "gpu.GroupedAdapterForward"
	nc, gmc, gm, gc, err := backend.GroupedAdapterSizes(op, N, C, M, G, S, act)
	if err != nil {
		return err
	}
	ot, err := activ(op, "out", out, nc)
	if err != nil {
		return err
	}
	it, err := activ(op, "inp", inp, nc)
	if err != nil {
		return err
	}
	if err := sameDType(op, "out and inp", ot, it); err != nil {
		return err
	}
	var ws [4]*Tensor
	for i, a := range []struct {
		name string
		t    backend.Tensor
		n    int
	}{{"wDown", wDown, gmc}, {"bDown", bDown, gm}, {"wUp", wUp, gmc}, {"bUp", bUp, gc}} {
		if ws[i], err = weight(op, a.name, a.t, a.n); err != nil {
			return err
		}
	}
	if err := sameDType(op, "wDown, bDown, wUp and bUp", ws[:]...); err != nil {
		return err
	}
	_, maxRows, err := b.segTable(op, segs, N, G, S, true)
	if err != nil {
		return err
	}
	if ot.Ptr != it.Ptr && overlaps(ot, nc, it, nc) {
		return fmt.Errorf("%s: out partly overlaps inp (it may only alias it exactly)", op)
	}
	if M > adMaxM {
		return fmt.Errorf("%s: M = %d > %d: %w", op, M, adMaxM, backend.ErrNotFused)
	}
	if S > 65535 {
		return fmt.Errorf("%s: S = %d segments exceed the grid's 65535 rows: %w", op, S, backend.ErrNotFused)
	}
	if nc == 0 || maxRows == 0 {
		return nil
	}
	st, _ := i32(op, "segs", segs, 3*S)
	grid := Dim3{X: uint32((maxRows + adRows - 1) / adRows), Y: uint32(S), Z: 1}
	return b.launch(op, kAdapterSeg.of(it, ws[0]), grid, b1(256), 0,
		ptr(ot), ptr(it), ptr(ws[0]), ptr(ws[1]), ptr(ws[2]), ptr(ws[3]), ptr(st), Int(C), Int(M), Int(int(act)))
}

// GroupedLayerNormForward launches layernorm_seg_fwd: one warp per row,
// which finds its segment's slot by bisection (kernels/layernorm.cu).
func (b *Backend) GroupedLayerNormForward(out, inp, w, bias, segs backend.Tensor, N, C, G, S int, eps float32) error {
	const op = "gpu.GroupedLayerNormForward"
	nc, gc, err := backend.GroupedLayerNormSizes(op, N, C, G, S)
	if err != nil {
		return err
	}
	ot, err := activ(op, "out", out, nc)
	if err != nil {
		return err
	}
	it, err := activ(op, "inp", inp, nc)
	if err != nil {
		return err
	}
	if err := sameDType(op, "out and inp", ot, it); err != nil {
		return err
	}
	wt, err := weight(op, "w", w, gc)
	if err != nil {
		return err
	}
	bt, err := weight(op, "b", bias, gc)
	if err != nil {
		return err
	}
	if err := sameDType(op, "w and b", wt, bt); err != nil {
		return err
	}
	if _, _, err := b.segTable(op, segs, N, G, S, false); err != nil {
		return err
	}
	if ot.Ptr != it.Ptr && overlaps(ot, nc, it, nc) {
		return fmt.Errorf("%s: out partly overlaps inp (it may only alias it exactly)", op)
	}
	if nc == 0 {
		return nil
	}
	st, _ := i32(op, "segs", segs, 3*S)
	return b.launch(op, kLNSegFwd.of(it, wt), Dim3{X: uint32((N + lnRows - 1) / lnRows), Y: 1, Z: 1}, b1(32*lnRows), 0,
		ptr(ot), ptr(it), ptr(wt), ptr(bt), ptr(st), Int(N), Int(C), Int(S), F(eps))
}
