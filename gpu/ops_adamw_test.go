package gpu

import (
	"testing"

	"github.com/houlsby/adapters/backend"
)

// TestAdamWDecayTableReadOnce: AdamWStep reads a decay table back to check
// it once, not per step, and again only after the backend wrote its memory
// (UploadInt32, Zero, Free and a new Alloc at the same address); a table
// made malformed by such a write is caught.
func TestAdamWDecayTableReadOnce(t *testing.T) {
	b, f := newTestBackend(t)
	const n = 8
	p, g, m, v := mustAlloc(t, b, backend.F32, n), mustAlloc(t, b, backend.F32, n), mustAlloc(t, b, backend.F32, n), mustAlloc(t, b, backend.F32, n)
	h := backend.AdamW{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1, Step: 1}
	table := mustAlloc(t, b, backend.I32, 4)
	upload := func(v ...int32) {
		t.Helper()
		if err := b.UploadInt32(table, v); err != nil {
			t.Fatal(err)
		}
	}
	step := func(n int) error { return b.AdamWStep(p, g, m, v, table, n, h) }
	reads := func(want int, what string) {
		t.Helper()
		if f.dtoh != want {
			t.Fatalf("%s: %d reads back, want %d", what, f.dtoh, want)
		}
	}
	upload(0, 2, 5, 8)
	for i := 0; i < 3; i++ {
		if err := step(n); err != nil {
			t.Fatal(err)
		}
	}
	reads(1, "three steps with one table")
	if err := step(7); err == nil { // the last range ends at 8
		t.Error("n = 7 with a range ending at 8: no error")
	}
	reads(1, "a smaller n")
	upload(5, 8, 0, 2) // unsorted
	if err := step(n); err == nil {
		t.Error("unsorted ranges after a new upload: no error")
	}
	upload(0, 2, 5, 8)
	if err := step(n); err != nil {
		t.Fatal(err)
	}
	reads(3, "after two uploads")
	if err := b.Zero(table); err != nil { // [0, 0) twice: valid
		t.Fatal(err)
	}
	if err := step(n); err != nil {
		t.Fatal(err)
	}
	reads(4, "after Zero")
	// A view of the table shares its memory: writing the parent forgets
	// the view's check too.
	view, err := b.View(table, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	upload(0, 2, 5, 8)
	if err := b.AdamWStep(p, g, m, v, view, n, h); err != nil {
		t.Fatal(err)
	}
	upload(0, 2, 9, 8)
	if err := b.AdamWStep(p, g, m, v, view, n, h); err == nil {
		t.Error("a view's range rewritten to [9, 8): no error")
	}
	// Free, then a new table from the pool at the same address.
	ptr := table.Ptr
	b.Free(table)
	table = mustAlloc(t, b, backend.I32, 4)
	if table.Ptr != ptr {
		t.Fatalf("the pool did not reuse the block (%#x, then %#x); the test needs it", uint64(ptr), uint64(table.Ptr))
	}
	upload(3, 1, 5, 8)
	if err := step(n); err == nil {
		t.Error("a reversed range in a reallocated table: no error")
	}
	if err := b.AdamWStep(p, g, m, v, mustAlloc(t, b, backend.I32, 3), n, h); err == nil {
		t.Error("a decay table of odd length: no error")
	}
}
