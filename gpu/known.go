package gpu

// The backend's host-side record of I32 device memory it uploaded, so the
// launchers that must reject bad indices (embedding ids, class labels) can
// check them without reading them back: a read-back is a device-to-host
// copy that waits for all queued work, three of them per forward pass, and
// each would also end a CUDA Graph segment (graph.go).
//
// The record of a range is dropped whenever the backend writes memory that
// overlaps it (wrote: UploadInt32, Copy, Zero, Alloc, Free). No kernel of
// kernels/*.cu writes I32 memory (ids, masks, labels and decay tables are
// inputs only), so the record stays exact between those writes.

// knownInts is one uploaded I32 range and its values.
type knownInts struct {
	ptr  DevicePtr
	vals []int32
}

// maxKnown bounds the records (a training step uploads about six ranges).
const maxKnown = 64

// rememberInts records that [p, p+4·len(vals)) now holds vals.
func (b *Backend) rememberInts(p DevicePtr, vals []int32) {
	for i := range b.known {
		if b.known[i].ptr == p {
			b.known[i].vals = append(b.known[i].vals[:0], vals...)
			return
		}
	}
	if len(b.known) >= maxKnown {
		b.known = append(b.known[:0], b.known[1:]...)
	}
	b.known = append(b.known, knownInts{ptr: p, vals: append([]int32(nil), vals...)})
}

// knownIntsAt returns the n values at p when one record covers them.
func (b *Backend) knownIntsAt(p DevicePtr, n int) ([]int32, bool) {
	for _, k := range b.known {
		if p >= k.ptr && (p-k.ptr)%4 == 0 {
			off := int(p-k.ptr) / 4
			if off+n <= len(k.vals) {
				return k.vals[off : off+n], true
			}
		}
	}
	return nil, false
}

// forgetInts drops the records overlapping [p, p+bytes).
func (b *Backend) forgetInts(p DevicePtr, bytes int) {
	out := b.known[:0]
	for _, k := range b.known {
		if k.ptr < p+DevicePtr(bytes) && p < k.ptr+DevicePtr(4*len(k.vals)) {
			continue
		}
		out = append(out, k)
	}
	b.known = out
}
