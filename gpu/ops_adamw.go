package gpu

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/houlsby/adapters/backend"
)

// AdamWStep updates n elements of param from grad with moments m and v (all
// F32) in one launch of adamw_f32, with the formula and float32 bias
// corrections of cpu.AdamWStep (torch.optim.AdamW); the elements inside the
// ranges of the I32 decay table get h.WeightDecay, the others none.
//
// The kernel cannot report a malformed table, so the launcher checks it on
// the host: it reads the table back the first time it sees it (a small
// device-to-host copy that waits for the queued work) and remembers the
// result by the table's device address and length until the backend next
// writes that memory (UploadInt32, Copy, Zero, Free, or a new Alloc over
// it). A training step that passes the same table every step reads it back
// once, not per step.
func (b *Backend) AdamWStep(param, grad, m, v, decay backend.Tensor, n int, h backend.AdamW) error {
	const op = "gpu.AdamWStep"
	if err := sizes(op, "n", n); err != nil {
		return err
	}
	if h.Step < 1 {
		return fmt.Errorf("%s: Step = %d, want >= 1 (it counts from 1)", op, h.Step)
	}
	if !(h.Beta1 >= 0 && h.Beta1 < 1 && h.Beta2 >= 0 && h.Beta2 < 1) {
		return fmt.Errorf("%s: betas (%v, %v) must lie in [0, 1)", op, h.Beta1, h.Beta2)
	}
	pt, err := f32(op, "param", param, n)
	if err != nil {
		return err
	}
	gt, err := f32(op, "grad", grad, n)
	if err != nil {
		return err
	}
	mt, err := f32(op, "m", m, n)
	if err != nil {
		return err
	}
	vt, err := f32(op, "v", v, n)
	if err != nil {
		return err
	}
	var dt *Tensor
	if !isNil(decay) {
		if dt, err = i32(op, "decay", decay, 0); err != nil {
			return err
		}
		if err := b.checkDecay(op, dt, n); err != nil {
			return err
		}
	}
	if n == 0 {
		return nil
	}
	npairs := 0
	if dt != nil {
		npairs = dt.n / 2
	}
	bc1 := float32(1 - math.Pow(float64(h.Beta1), float64(h.Step)))
	bc2 := float32(1 - math.Pow(float64(h.Beta2), float64(h.Step)))
	return b.launch(op, kAdamW.of(), grid1D(n), b1(block1D), 0, ptr(pt), ptr(gt), ptr(mt), ptr(vt), ptr(dt), Int(npairs), Int(n),
		F(h.LR), F(h.Beta1), F(h.Beta2), F(h.Eps), F(h.WeightDecay), F(bc1), F(bc2))
}

// decayKey identifies a checked table (the AdamW decay table, a grouped
// op's segment table) by its device memory and length.
type decayKey struct {
	ptr DevicePtr
	n   int
}

// checkDecay validates the decay table t for an arena of n elements (see
// AdamWStep for when it reads t back).
func (b *Backend) checkDecay(op string, t *Tensor, n int) error {
	if t.n%2 != 0 {
		return fmt.Errorf("%s: the decay table has %d entries, want pairs (an even number)", op, t.n)
	}
	if t.n == 0 {
		return nil
	}
	key := decayKey{t.Ptr, t.n}
	maxEnd, ok := b.decayChecked[key]
	if !ok {
		buf := b.stage(4 * t.n)
		if err := b.dev.DtoH(buf, t.Ptr); err != nil {
			return fmt.Errorf("%s: reading the decay table back to check it: %w", op, err)
		}
		table := make([]int32, t.n)
		for i := range table {
			table[i] = int32(binary.LittleEndian.Uint32(buf[4*i:]))
		}
		// Ordering is checked against the largest n; the bound n itself
		// is checked below for every call.
		if err := backend.CheckDecayRanges(op, table, math.MaxInt32); err != nil {
			return err
		}
		maxEnd = int(table[t.n-1])
		if b.decayChecked == nil {
			b.decayChecked = map[decayKey]int{}
		}
		b.decayChecked[key] = maxEnd
	}
	if maxEnd > n {
		return fmt.Errorf("%s: the decay table's last range ends at %d, past n = %d", op, maxEnd, n)
	}
	return nil
}

// wrote forgets the checked decay and segment tables and the recorded I32
// values (known.go) overlapping device bytes [p, p+bytes): the backend is
// about to write them.
func (b *Backend) wrote(p DevicePtr, bytes int) {
	b.forgetInts(p, bytes)
	for k := range b.decayChecked {
		if k.ptr < p+DevicePtr(bytes) && p < k.ptr+DevicePtr(4*k.n) {
			delete(b.decayChecked, k)
		}
	}
	for k := range b.segChecked {
		if k.ptr < p+DevicePtr(bytes) && p < k.ptr+DevicePtr(4*k.n) {
			delete(b.segChecked, k)
		}
	}
}
