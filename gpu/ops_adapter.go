package gpu

import (
	"fmt"

	"github.com/houlsby/adapters/backend"
)

// Geometry of kernels/adapter.cu's fused kernels: the bottleneck rows of a
// block live in shared memory, (adRows, adMaxM) floats; for wider
// bottlenecks the launchers answer backend.ErrNotFused and backend's
// composition of core ops runs instead.
const (
	adMaxM = 256
	adRows = 8
)

func adapterArgs(op string, N, C, M int, act backend.Act) (nc, nm, cm int, err error) {
	if err = sizes(op, "N,C,M", N, C, M); err != nil {
		return
	}
	if !act.Valid() {
		return 0, 0, 0, fmt.Errorf("%s: unknown activation %v", op, act)
	}
	if nc, err = mulOK(op, N, C); err != nil {
		return
	}
	if nm, err = mulOK(op, N, M); err != nil {
		return
	}
	cm, err = mulOK(op, C, M)
	return
}

// AdapterForward is the fused Houlsby bottleneck on inp (N, C) in one
// kernel: z = inp·wDownᵀ + bDown (N, M, saved), out = inp + act(z)·wUpᵀ +
// bUp. out, z and inp share one dtype and the four adapter tensors another
// (each F32 or BF16); out may alias inp (the same elements, or not at all).
// The fused kernel holds the bottleneck rows in shared memory: for M > 256
// it returns backend.ErrNotFused (after checking the arguments).
func (b *Backend) AdapterForward(out, z, inp, wDown, bDown, wUp, bUp backend.Tensor, N, C, M int, act backend.Act) error {
	const op = "gpu.AdapterForward"
	nc, nm, cm, err := adapterArgs(op, N, C, M, act)
	if err != nil {
		return err
	}
	ot, err := activ(op, "out", out, nc)
	if err != nil {
		return err
	}
	zt, err := activ(op, "z", z, nm)
	if err != nil {
		return err
	}
	it, err := activ(op, "inp", inp, nc)
	if err != nil {
		return err
	}
	if err := sameDType(op, "out, z and inp", ot, zt, it); err != nil {
		return err
	}
	wdt, err := weight(op, "wDown", wDown, cm)
	if err != nil {
		return err
	}
	bdt, err := weight(op, "bDown", bDown, M)
	if err != nil {
		return err
	}
	wut, err := weight(op, "wUp", wUp, cm)
	if err != nil {
		return err
	}
	but, err := weight(op, "bUp", bUp, C)
	if err != nil {
		return err
	}
	if err := sameDType(op, "wDown, bDown, wUp and bUp", wdt, bdt, wut, but); err != nil {
		return err
	}
	if nc == 0 {
		return nil
	}
	if ot.Ptr != it.Ptr && overlaps(ot, nc, it, nc) {
		return fmt.Errorf("%s: out partly overlaps inp (it may only alias it exactly)", op)
	}
	if M > adMaxM {
		return fmt.Errorf("%s: M = %d > %d: %w", op, M, adMaxM, backend.ErrNotFused)
	}
	return b.launch(op, kAdapterFwd.of(it, wdt), Dim3{X: uint32((N + adRows - 1) / adRows), Y: 1, Z: 1}, b1(256), 0,
		ptr(ot), ptr(zt), ptr(it), ptr(wdt), ptr(bdt), ptr(wut), ptr(but), Int(N), Int(C), Int(M), Int(int(act)))
}

// AdapterBackward: dinp (=) = dout + (dout·wUp ⊙ act'(z))·wDown; dWDown,
// dBDown, dWUp, dBUp (+=, F32), each nil when frozen. One fused kernel
// computes dz = (dout·wUp) ⊙ act'(z), a = act(z) (only when dWUp is
// trained) and dinp; the weight gradients are then accumulated by the GEMM
// and bias-grad kernels (deterministic). dz and a live in pool scratch. When
// dinp aliases dout (exactly), dinp is computed by a second launch after the
// weight gradients have read dout. For M > 256 it returns
// backend.ErrNotFused (after checking the arguments), before writing.
func (b *Backend) AdapterBackward(dinp, dWDown, dBDown, dWUp, dBUp, dout, inp, z, wDown, wUp backend.Tensor, N, C, M int, act backend.Act) (err error) {
	const op = "gpu.AdapterBackward"
	nc, nm, cm, err := adapterArgs(op, N, C, M, act)
	if err != nil {
		return err
	}
	dit, err := optActiv(op, "dinp", dinp, nc)
	if err != nil {
		return err
	}
	dwdt, err := optF32(op, "dWDown", dWDown, cm)
	if err != nil {
		return err
	}
	dbdt, err := optF32(op, "dBDown", dBDown, M)
	if err != nil {
		return err
	}
	dwut, err := optF32(op, "dWUp", dWUp, cm)
	if err != nil {
		return err
	}
	dbut, err := optF32(op, "dBUp", dBUp, C)
	if err != nil {
		return err
	}
	gt, err := activ(op, "dout", dout, nc)
	if err != nil {
		return err
	}
	it, err := activ(op, "inp", inp, nc)
	if err != nil {
		return err
	}
	zt, err := activ(op, "z", z, nm)
	if err != nil {
		return err
	}
	if err := sameDType(op, "dinp, dout, inp and z", dit, gt, it, zt); err != nil {
		return err
	}
	wdt, err := weight(op, "wDown", wDown, cm)
	if err != nil {
		return err
	}
	wut, err := weight(op, "wUp", wUp, cm)
	if err != nil {
		return err
	}
	if err := sameDType(op, "wDown and wUp", wdt, wut); err != nil {
		return err
	}
	if nc == 0 {
		return nil
	}
	aliased := overlaps(dit, nc, gt, nc)
	if aliased && dit.Ptr != gt.Ptr {
		return fmt.Errorf("%s: dinp partly overlaps dout (it may only alias it exactly)", op)
	}
	if M > adMaxM {
		return fmt.Errorf("%s: M = %d > %d: %w", op, M, adMaxM, backend.ErrNotFused)
	}
	if dit == nil && dwdt == nil && dbdt == nil && dwut == nil {
		if dbut != nil {
			return b.biasGrad(op, dbut, gt, N, C)
		}
		return nil
	}
	// Scratch: dz (N, M) always, a (N, M) for dWUp; the kernel writes
	// both completely, so they are not zeroed.
	dz, err := b.scratch(op, "dz", backend.F32, nm)
	if err != nil {
		return err
	}
	defer b.Free(dz)
	var a *Tensor
	if dwut != nil {
		if a, err = b.scratch(op, "a", backend.F32, nm); err != nil {
			return err
		}
		defer b.Free(a)
	}
	first := dit
	if aliased {
		first = nil
	}
	grid := Dim3{X: uint32((N + adRows - 1) / adRows), Y: 1, Z: 1}
	kernel := kAdapterBwd.of(gt, wdt)
	if err := b.launch(op, kernel, grid, b1(256), 0, ptr(first), ptr(dz), ptr(a), ptr(gt), ptr(zt), ptr(wdt), ptr(wut),
		Int(N), Int(C), Int(M), Int(int(act))); err != nil {
		return err
	}
	if M > 0 {
		if dwut != nil { // dWUp (C, M) += doutᵀ (C, N) · a (N, M)
			if err := b.gemm(op, dwut, gt, a, true, false, C, M, N, C, M, M, 1, 0, 0, 0, 1, 1, gemmEpilogue{}); err != nil {
				return err
			}
		}
		if dwdt != nil { // dWDown (M, C) += dzᵀ (M, N) · inp (N, C)
			if err := b.gemm(op, dwdt, dz, it, true, false, M, C, N, M, C, C, 1, 0, 0, 0, 1, 1, gemmEpilogue{}); err != nil {
				return err
			}
		}
	}
	// The bias gradients, dBUp += Σ dout and dBDown += Σ dz, in one launch
	// when both train (dout is intact: an aliased dinp is written last).
	switch {
	case dbut != nil && dbdt != nil && M > 0:
		if err := b.launch(op, kBiasGrad2.of(gt), Dim3{X: uint32((C+31)/32 + (M+31)/32), Y: 1, Z: 1}, Dim3{X: 32, Y: 8, Z: 1}, 0,
			ptr(dbut), ptr(gt), Int(C), ptr(dbdt), ptr(dz), Int(M), Int(N)); err != nil {
			return err
		}
	case dbut != nil:
		if err := b.biasGrad(op, dbut, gt, N, C); err != nil {
			return err
		}
	case dbdt != nil && M > 0:
		if err := b.biasGrad(op, dbdt, dz, N, M); err != nil {
			return err
		}
	}
	if dit == nil || first != nil {
		return nil
	}
	// dinp aliases dout: now that the weight gradients have read it.
	return b.launch(op, kernel, grid, b1(256), 0, ptr(dit), ptr(dz), 0, ptr(gt), ptr(zt), ptr(wdt), ptr(wut),
		Int(N), Int(C), Int(M), Int(int(act)))
}
