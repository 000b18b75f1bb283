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
	if M == 0 {
		be.row = rowTask{kind: rowAddRowBias, o: ov, a: buv, x: iv, C: C}
		parallelRange(N, grainRows, &be.row)
		be.row = rowTask{}
		return nil
	}
	// z = inp·wDownᵀ + bDown; h = act(z).
	sgemm(false, true, N, M, C, 1, iv, C, wdv, C, 0, zv, M)
	hv := be.buf(scrA, nm)
	be.row = rowTask{kind: rowBiasAct, o: zv, a: bdv, x: hv, C: M, act: act}
	parallelRange(N, grainRows, &be.row)
	// out = inp + bUp + h·wUpᵀ (out may alias inp: z is already computed).
	be.row = rowTask{kind: rowAddRowBias, o: ov, a: buv, x: iv, C: C}
	parallelRange(N, grainRows, &be.row)
	be.row = rowTask{}
	sgemm(false, true, N, C, M, 1, hv, M, wuv, M, 1, ov, C)
	return nil
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
		sgemm(true, false, C, M, N, 1, gv, C, hv, M, 1, dwuv, M)
	}
	needDz := M > 0 && (div != nil || dwdv != nil || dbdv != nil)
	var dz []float32
	if needDz {
		dz = be.buf(scrB, nm)
		sgemm(false, false, N, M, C, 1, gv, C, wuv, M, 0, dz, M)
		be.ew = ewTask{kind: ewActBack, o: dz, a: zv, b: dz, act: act}
		be.runEW(nm, grainElems/4)
		if dbdv != nil {
			be.colSumsAdd(dbdv, dz, N, M)
		}
		if dwdv != nil {
			sgemm(true, false, M, C, N, 1, dz, M, iv, C, 1, dwdv, C)
		}
	}
	if div != nil {
		copy(div, gv)
		if M > 0 {
			sgemm(false, false, N, C, M, 1, dz, M, wdv, C, 1, div, C)
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
