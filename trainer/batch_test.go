package trainer

import (
	"reflect"
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRNGStateRoundTrip(t *testing.T) {
	g := NewRNG(7)
	g.Uint64()
	st := g.State()
	a := []uint64{g.Uint64(), g.Uint64(), uint64(g.IntN(1000))}
	h := NewRNG(99)
	if err := h.Restore(st); err != nil {
		t.Fatal(err)
	}
	b := []uint64{h.Uint64(), h.Uint64(), uint64(h.IntN(1000))}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("%v vs %v", a, b)
	}
	if NewRNG(7).Uint64() == NewRNG(8).Uint64() {
		t.Error("seeds 7 and 8 give the same first draw")
	}
	if err := h.Restore([]byte("junk")); err == nil {
		t.Error("junk state accepted")
	}
}

func TestEpochOrder(t *testing.T) {
	n := 1000
	lengths := make([]int, n)
	g := NewRNG(1)
	for i := range lengths {
		lengths[i] = 3 + g.IntN(120)
	}
	a := EpochOrder(42, 0, lengths, 8)
	if !reflect.DeepEqual(a, EpochOrder(42, 0, lengths, 8)) {
		t.Fatal("not deterministic")
	}
	if reflect.DeepEqual(a, EpochOrder(42, 1, lengths, 8)) || reflect.DeepEqual(a, EpochOrder(43, 0, lengths, 8)) {
		t.Error("epoch or seed does not change the order")
	}
	// Every example exactly once; ceil(1000/8) = 125 batches.
	var all []int
	padded, unsorted := 0, 0
	for _, b := range a {
		if len(b) > 8 || len(b) == 0 {
			t.Fatalf("batch of %d", len(b))
		}
		mx := 0
		for _, i := range b {
			mx = max(mx, lengths[i])
		}
		for _, i := range b {
			padded += mx - lengths[i]
		}
		all = append(all, b...)
	}
	sort.Ints(all)
	for i := range all {
		if all[i] != i {
			t.Fatalf("example %d missing or repeated", i)
		}
	}
	if len(a) != 125 {
		t.Errorf("%d batches", len(a))
	}
	// Bucketing must cut padding well below a random order's.
	for lo := 0; lo < n; lo += 8 { // file order, unbucketed
		b := make([]int, 0, 8)
		for i := lo; i < min(lo+8, n); i++ {
			b = append(b, i)
		}
		mx := 0
		for _, i := range b {
			mx = max(mx, lengths[i])
		}
		for _, i := range b {
			unsorted += mx - lengths[i]
		}
	}
	if padded*5 > unsorted {
		t.Errorf("bucketed padding %d vs %d unbucketed", padded, unsorted)
	}
}

func TestMakeBatch(t *testing.T) {
	enc := []Encoded{{IDs: []int32{101, 7, 102}, TypeIDs: []int32{0, 0, 0}}, {IDs: []int32{101, 102}, TypeIDs: []int32{0, 0}}, {IDs: []int32{101, 5, 102, 6, 102}, TypeIDs: []int32{0, 0, 0, 1, 1}}}
	ds := &Dataset{Examples: []Example{{Label: 1}, {Label: 0}, {Label: 1, Target: 2.5}}}
	b := MakeBatch(enc, ds, []int{2, 1}, 0)
	if b.B != 2 || b.T != 5 {
		t.Fatalf("B=%d T=%d", b.B, b.T)
	}
	want := []int32{101, 5, 102, 6, 102, 101, 102, 0, 0, 0}
	if !reflect.DeepEqual(b.IDs, want) || !reflect.DeepEqual(b.Mask, []int32{1, 1, 1, 1, 1, 1, 1, 0, 0, 0}) ||
		!reflect.DeepEqual(b.TypeIDs, []int32{0, 0, 0, 1, 1, 0, 0, 0, 0, 0}) || !reflect.DeepEqual(b.Labels, []int32{1, 0}) || b.Targets[0] != 2.5 {
		t.Errorf("%+v", b)
	}
}

// EvalOrder groups by length: every example once, batches in descending
// length, so a batch's padding is at most the gap to its next-longer
// neighbour and the total padding is below the bucketed training order's.
func TestEvalOrderGroupsByLength(t *testing.T) {
	g := NewRNG(3)
	lengths := make([]int, 203)
	for i := range lengths {
		lengths[i] = 3 + g.IntN(126)
	}
	seen := make([]bool, len(lengths))
	prevMin := 1 << 30
	for _, b := range EvalOrder(lengths, 16) {
		require.NotEmpty(t, b)
		require.LessOrEqual(t, len(b), 16)
		mx, mn := 0, 1<<30
		for _, i := range b {
			require.False(t, seen[i], "example %d twice", i)
			seen[i] = true
			mx, mn = max(mx, lengths[i]), min(mn, lengths[i])
		}
		assert.LessOrEqual(t, mx, prevMin, "batches are not in descending length")
		prevMin = mn
	}
	for i, ok := range seen {
		assert.True(t, ok, "example %d missing", i)
	}
}
