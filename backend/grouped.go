package backend

// The grouped ops serve many tasks from one frozen backbone in one forward
// pass: the rows of a batch are cut into segments (one per task, or per run
// of a task's rows), and the adapter and the LayerNorm's affine parameters
// are chosen per segment from a stack of G parameter slots. Forward only:
// serving never trains.
//
// The segment table segs is an I32 tensor of S rows (start, end, slot):
// segment s is rows [start, end) and uses slot `slot` of the stacked
// parameters. The segments cover the N rows in order (CheckSegments); empty
// segments are allowed. The table lives on the device like the attention
// mask, so a model uploads it once per batch and every layer reuses it.

import (
	"errors"
	"fmt"
)

// GroupedAdapterForward applies, to each segment s of inp (N, C), the
// Houlsby adapter of its slot g:
//
//	out[r] = inp[r] + act(inp[r]·wDown[g]ᵀ + bDown[g])·wUp[g]ᵀ + bUp[g]
//
// with the G slots stacked as wDown (G, M, C), bDown (G, M), wUp (G, C, M)
// and bUp (G, C); slot -1 means no adapter (out[r] = inp[r]). Every slot
// of one call has the same bottleneck M and nonlinearity act (a caller with
// several keeps one stack per (M, act)). out may alias inp (exactly: the
// same tensor), which leaves the rows of slot -1 untouched. The result of
// each segment equals AdapterForward on that segment's rows with its slot's
// weights; no pre-activation is saved (there is no backward).
func GroupedAdapterForward(be Backend, out, inp, wDown, bDown, wUp, bUp, segs Tensor, N, C, M, G, S int, act Act) error {
	if f, ok := be.(GroupedAdapter); ok {
		if err := f.GroupedAdapterForward(out, inp, wDown, bDown, wUp, bUp, segs, N, C, M, G, S, act); !errors.Is(err, ErrNotFused) {
			return err
		}
	}
	return groupedAdapterForward(be, out, inp, wDown, bDown, wUp, bUp, segs, N, C, M, G, S, act)
}

// GroupedLayerNormForward is LayerNormForward over the rows of inp (N, C)
// with the affine parameters of each row's segment's slot g:
//
//	out[r] = (inp[r]-mean_r)·rstd_r·w[g] + b[g]
//
// w and b (G, C); every slot must be in [0, G). The statistics are not
// saved (there is no backward). out may alias inp. Each row's result equals
// LayerNormForward's with its slot's w and b.
func GroupedLayerNormForward(be Backend, out, inp, w, b, segs Tensor, N, C, G, S int, eps float32) error {
	if f, ok := be.(GroupedLayerNorm); ok {
		if err := f.GroupedLayerNormForward(out, inp, w, b, segs, N, C, G, S, eps); !errors.Is(err, ErrNotFused) {
			return err
		}
	}
	return groupedLayerNormForward(be, out, inp, w, b, segs, N, C, G, S, eps)
}

// GroupedAdapterSizes validates the sizes of a grouped adapter call and
// returns the element counts of inp/out (N·C), wDown/wUp (G·M·C), bDown
// (G·M) and bUp (G·C); op prefixes the error. Backends share it so that the
// rules are the same everywhere.
func GroupedAdapterSizes(op string, N, C, M, G, S int, act Act) (nc, gmc, gm, gc int, err error) {
	if !act.Valid() {
		return 0, 0, 0, 0, fmt.Errorf("%s: unknown activation %v", op, act)
	}
	if _, err = count(op, "N,C,M,G,S", N, C, M, G, S); err != nil {
		return
	}
	if nc, err = count(op, "N,C", N, C); err != nil {
		return
	}
	if gmc, err = count(op, "G,M,C", G, M, C); err != nil {
		return
	}
	if gm, err = count(op, "G,M", G, M); err != nil {
		return
	}
	gc, err = count(op, "G,C", G, C)
	return
}

// GroupedLayerNormSizes validates a grouped LayerNorm call's sizes and
// returns N·C and G·C.
func GroupedLayerNormSizes(op string, N, C, G, S int) (nc, gc int, err error) {
	if _, err = count(op, "N,C,G,S", N, C, G, S); err != nil {
		return
	}
	if nc, err = count(op, "N,C", N, C); err != nil {
		return
	}
	gc, err = count(op, "G,C", G, C)
	return
}

// readSegments downloads and checks the segment table (S, 3).
func readSegments(be Backend, op string, segs Tensor, N, G, S int, allowNone bool) ([]int32, int, error) {
	if isNil(segs) {
		return nil, 0, fmt.Errorf("%s: segs is nil", op)
	}
	if err := isInt32(op, "segs", segs); err != nil {
		return nil, 0, err
	}
	if segs.Len() < 3*S {
		return nil, 0, fmt.Errorf("%s: segs has %d elements, need 3·S = %d", op, segs.Len(), 3*S)
	}
	v, err := be.View(segs, 0, 3*S)
	if err != nil {
		return nil, 0, wrap(op, err)
	}
	table := make([]int32, 3*S)
	if err := be.DownloadInt32(table, v); err != nil {
		return nil, 0, wrap(op, err)
	}
	maxRows, err := CheckSegments(op, table, N, G, allowNone)
	return table, maxRows, err
}

// groupedAdapterForward composes the grouped adapter from AdapterForward
// on views: per segment, the rows of out and inp and the slot's weights,
// with a scratch pre-activation of the longest segment's size. Rows of slot
// -1 are copied (a no-op when out is inp).
func groupedAdapterForward(be Backend, out, inp, wDown, bDown, wUp, bUp, segs Tensor, N, C, M, G, S int, act Act) error {
	const op = "backend.GroupedAdapterForward"
	nc, gmc, gm, gc, err := GroupedAdapterSizes(op, N, C, M, G, S, act)
	if err != nil {
		return err
	}
	if err := needAll(op, []arg{{"out", out, nc, false}, {"inp", inp, nc, false}, {"wDown", wDown, gmc, false},
		{"bDown", bDown, gm, false}, {"wUp", wUp, gmc, false}, {"bUp", bUp, gc, false}}); err != nil {
		return err
	}
	table, maxRows, err := readSegments(be, op, segs, N, G, S, true)
	if err != nil {
		return err
	}
	if nc == 0 {
		return nil
	}
	var z Tensor
	if maxRows*M > 0 {
		if z, err = scratch(be, op, "z", inp.DType(), maxRows*M); err != nil {
			return err
		}
		defer be.Free(z)
	}
	same := out == inp
	for s := 0; s < S; s++ {
		r0, r1, g := int(table[3*s]), int(table[3*s+1]), int(table[3*s+2])
		n := r1 - r0
		if n == 0 || (g < 0 && same) {
			continue
		}
		vs, err := views(be, []view{{inp, r0 * C, n * C}, {out, r0 * C, n * C}})
		if err != nil {
			return wrap(op, err)
		}
		vi, vo := vs[0], vs[1]
		if same {
			vo = vi // the same tensor: AdapterForward's exact alias
		}
		if g < 0 {
			if err := be.Copy(vo, vi); err != nil {
				return wrap(op, err)
			}
			continue
		}
		ws, err := views(be, []view{{wDown, g * M * C, M * C}, {bDown, g * M, M}, {wUp, g * C * M, C * M}, {bUp, g * C, C}})
		if err != nil {
			return wrap(op, err)
		}
		zs := z
		if z != nil {
			if zs, err = be.View(z, 0, n*M); err != nil {
				return wrap(op, err)
			}
		}
		if err := AdapterForward(be, vo, zs, vi, ws[0], ws[1], ws[2], ws[3], n, C, M, act); err != nil {
			return wrap(op, fmt.Errorf("segment %d (rows %d..%d, slot %d): %w", s, r0, r1, g, err))
		}
	}
	return nil
}

// groupedLayerNormForward composes the grouped LayerNorm from
// LayerNormForward on views, one call per segment, with scratch statistics.
func groupedLayerNormForward(be Backend, out, inp, w, b, segs Tensor, N, C, G, S int, eps float32) error {
	const op = "backend.GroupedLayerNormForward"
	nc, gc, err := GroupedLayerNormSizes(op, N, C, G, S)
	if err != nil {
		return err
	}
	if err := needAll(op, []arg{{"out", out, nc, false}, {"inp", inp, nc, false}, {"w", w, gc, false}, {"b", b, gc, false}}); err != nil {
		return err
	}
	table, maxRows, err := readSegments(be, op, segs, N, G, S, false)
	if err != nil {
		return err
	}
	if nc == 0 {
		return nil
	}
	stats, err := scratch(be, op, "mean and rstd", F32, 2*maxRows)
	if err != nil {
		return err
	}
	defer be.Free(stats)
	same := out == inp
	for s := 0; s < S; s++ {
		r0, r1, g := int(table[3*s]), int(table[3*s+1]), int(table[3*s+2])
		n := r1 - r0
		if n == 0 {
			continue
		}
		vs, err := views(be, []view{{inp, r0 * C, n * C}, {out, r0 * C, n * C}, {w, g * C, C}, {b, g * C, C},
			{stats, 0, n}, {stats, maxRows, n}})
		if err != nil {
			return wrap(op, err)
		}
		if same {
			vs[1] = vs[0]
		}
		if err := be.LayerNormForward(vs[1], vs[4], vs[5], vs[0], vs[2], vs[3], n, C, eps); err != nil {
			return wrap(op, fmt.Errorf("segment %d (rows %d..%d, slot %d): %w", s, r0, r1, g, err))
		}
	}
	return nil
}

// view is a range of a tensor: n elements from off.
type view struct {
	t      Tensor
	off, n int
}

// views returns be.View of each range.
func views(be Backend, vs []view) ([]Tensor, error) {
	out := make([]Tensor, len(vs))
	for i, v := range vs {
		t, err := be.View(v.t, v.off, v.n)
		if err != nil {
			return nil, err
		}
		out[i] = t
	}
	return out, nil
}
