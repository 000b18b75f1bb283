package cpu

import (
	"fmt"

	"github.com/houlsby/adapters/backend"
)

func checkAct(op string, act backend.Act) error {
	if act.Valid() {
		return nil
	}
	return fmt.Errorf("%s: unknown activation %v", op, act)
}

// AdapterForward is the fused Houlsby bottleneck on inp (N, C):
//
//	z   = inp·wDownᵀ + bDown        (N, M), saved for the backward
//	out = inp + act(z)·wUpᵀ + bUp   (N, C)
//
// out may alias inp.
func (be *Backend) AdapterForward(out, z, inp, wDown, bDown, wUp, bUp backend.Tensor, N, C, M int, act backend.Act) error {
	const op = "cpu.AdapterForward"
	nc, nm, cm, err := adapterSizes(op, N, C, M, act)
	if err != nil {
		return err
	}
	ov, err := f32(op, "out", out, nc)
	if err != nil {
		return err
	}
	zv, err := f32(op, "z", z, nm)
	if err != nil {
		return err
	}
	iv, err := f32(op, "inp", inp, nc)
	if err != nil {
		return err
	}
	wdv, err := f32(op, "wDown", wDown, cm)
	if err != nil {
		return err
	}
	bdv, err := f32(op, "bDown", bDown, M)
	if err != nil {
		return err
	}
	wuv, err := f32(op, "wUp", wUp, cm)
	if err != nil {
		return err
	}
	buv, err := f32(op, "bUp", bUp, C)
	if err != nil {
		return err
	}
	if nc == 0 {
		return nil
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	be.adapterForward(ov, zv, iv, wdv, bdv, wuv, buv, N, C, M, act)
	return nil
}

// adapterForward is AdapterForward's arithmetic on validated slices; the
// caller holds be.mu. It uses scratch slot scrA.
func (be *Backend) adapterForward(ov, zv, iv, wdv, bdv, wuv, buv []float32, N, C, M int, act backend.Act) {
	if M == 0 {
		be.row = rowTask{kind: rowAddRowBias, o: ov, a: buv, x: iv, C: C}
		parallelRange(N, grainRows, &be.row)
		be.row = rowTask{}
		return
	}
	// z = inp·wDownᵀ + bDown; h = act(z).
	be.acc.gemm(false, true, N, M, C, 1, iv, C, wdv, C, 0, zv, M)
	hv := be.buf(scrA, N*M)
	be.row = rowTask{kind: rowBiasAct, o: zv, a: bdv, x: hv, C: M, act: act}
	parallelRange(N, grainRows, &be.row)
	// out = inp + bUp + h·wUpᵀ (out may alias inp: z is already computed).
	be.row = rowTask{kind: rowAddRowBias, o: ov, a: buv, x: iv, C: C}
	parallelRange(N, grainRows, &be.row)
	be.row = rowTask{}
	be.acc.gemm(false, true, N, C, M, 1, hv, M, wuv, M, 1, ov, C)
}

// AdapterBackward computes, from dout (N, C) and the forward's inp and z:
//
//	dh = dout·wUp (N, M),  dz = dh ⊙ act'(z)
//	dWUp += doutᵀ·act(z),  dBUp += Σ dout,  dWDown += dzᵀ·inp,  dBDown += Σ dz
//	dinp = dout + dz·wDown  (=)
//
// Each parameter gradient is skipped when nil (frozen); dinp is skipped when
// nil. dinp may alias dout.
func (be *Backend) AdapterBackward(dinp, dWDown, dBDown, dWUp, dBUp, dout, inp, z, wDown, wUp backend.Tensor, N, C, M int, act backend.Act) error {
	const op = "cpu.AdapterBackward"
	nc, nm, cm, err := adapterSizes(op, N, C, M, act)
	if err != nil {
		return err
	}
	div, err := optF32(op, "dinp", dinp, nc)
	if err != nil {
		return err
	}
	dwdv, err := optF32(op, "dWDown", dWDown, cm)
	if err != nil {
		return err
	}
	dbdv, err := optF32(op, "dBDown", dBDown, M)
	if err != nil {
		return err
	}
	dwuv, err := optF32(op, "dWUp", dWUp, cm)
	if err != nil {
		return err
	}
	dbuv, err := optF32(op, "dBUp", dBUp, C)
	if err != nil {
		return err
	}
	gv, err := f32(op, "dout", dout, nc)
	if err != nil {
		return err
	}
	iv, err := f32(op, "inp", inp, nc)
	if err != nil {
		return err
	}
	zv, err := f32(op, "z", z, nm)
	if err != nil {
		return err
	}
	wdv, err := f32(op, "wDown", wDown, cm)
	if err != nil {
		return err
	}
	wuv, err := f32(op, "wUp", wUp, cm)
	if err != nil {
		return err
	}
	if nc == 0 {
		return nil
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	if dbuv != nil {
		be.colSumsAdd(dbuv, gv, N, C)
	}
	if M > 0 && dwuv != nil {
		hv := be.buf(scrA, nm)
		be.ew = ewTask{kind: ewAct, o: hv, a: zv, act: act}
		be.runEW(nm, grainElems/4)
		be.acc.gemm(true, false, C, M, N, 1, gv, C, hv, M, 1, dwuv, M)
	}
	needDz := M > 0 && (div != nil || dwdv != nil || dbdv != nil)
	var dz []float32
	if needDz {
		dz = be.buf(scrB, nm)
		be.acc.gemm(false, false, N, M, C, 1, gv, C, wuv, M, 0, dz, M)
		be.ew = ewTask{kind: ewActBack, o: dz, a: zv, b: dz, act: act}
		be.runEW(nm, grainElems/4)
		if dbdv != nil {
			be.colSumsAdd(dbdv, dz, N, M)
		}
		if dwdv != nil {
			be.acc.gemm(true, false, M, C, N, 1, dz, M, iv, C, 1, dwdv, C)
		}
	}
	if div != nil {
		copy(div, gv)
		if M > 0 {
			be.acc.gemm(false, false, N, C, M, 1, dz, M, wdv, C, 1, div, C)
		}
	}
	return nil
}

// adapterSizes checks the adapter's sizes and nonlinearity and returns the
// element counts N·C, N·M and C·M (overflow-checked).
func adapterSizes(op string, N, C, M int, act backend.Act) (nc, nm, cm int, err error) {
	if err = nonneg(op, "N,C,M", N, C, M); err != nil {
		return
	}
	if err = checkAct(op, act); err != nil {
		return
	}
	if nc, err = mul(op, N, C); err != nil {
		return
	}
	if nm, err = mul(op, N, M); err != nil {
		return
	}
	cm, err = mul(op, C, M)
	return
}

// GroupedAdapterForward applies to each segment of rows of inp (N, C) the
// adapter of its slot in the stacked wDown (G, M, C), bDown (G, M), wUp
// (G, C, M), bUp (G, C); slot -1 copies the rows (backend.GroupedAdapterForward).
// Each segment runs exactly AdapterForward's arithmetic on its rows, so a
// row's result is bitwise the one the ungrouped adapter gives it: a task
// served in a mixed batch matches the same task served alone.
func (be *Backend) GroupedAdapterForward(out, inp, wDown, bDown, wUp, bUp, segs backend.Tensor, N, C, M, G, S int, act backend.Act) error {
	const op = "cpu.GroupedAdapterForward"
	nc, gmc, gm, gc, err := backend.GroupedAdapterSizes(op, N, C, M, G, S, act)
	if err != nil {
		return err
	}
	ov, err := f32(op, "out", out, nc)
	if err != nil {
		return err
	}
	iv, err := f32(op, "inp", inp, nc)
	if err != nil {
		return err
	}
	wdv, err := f32(op, "wDown", wDown, gmc)
	if err != nil {
		return err
	}
	bdv, err := f32(op, "bDown", bDown, gm)
	if err != nil {
		return err
	}
	wuv, err := f32(op, "wUp", wUp, gmc)
	if err != nil {
		return err
	}
	buv, err := f32(op, "bUp", bUp, gc)
	if err != nil {
		return err
	}
	table, err := i32(op, "segs", segs, 3*S)
	if err != nil {
		return err
	}
	maxRows, err := backend.CheckSegments(op, table, N, G, true)
	if err != nil {
		return err
	}
	if nc == 0 {
		return nil
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	zv := be.buf(scrB, maxRows*M)
	for s := 0; s < S; s++ {
		r0, r1, g := int(table[3*s]), int(table[3*s+1]), int(table[3*s+2])
		n := r1 - r0
		o, x := ov[r0*C:r1*C], iv[r0*C:r1*C]
		switch {
		case n == 0:
		case g < 0:
			copy(o, x) // a no-op when out is inp
		default:
			be.adapterForward(o, zv[:n*M], x, wdv[g*M*C:(g+1)*M*C], bdv[g*M:(g+1)*M], wuv[g*C*M:(g+1)*C*M], buv[g*C:(g+1)*C], n, C, M, act)
		}
	}
	return nil
}
