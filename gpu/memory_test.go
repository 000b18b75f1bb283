package gpu

import (
	"fmt"
	"strings"
	"testing"

	"github.com/houlsby/adapters/backend"
)

func TestAllocIsZeroedEvenWhenReused(t *testing.T) {
	b, f := newTestBackend(t)
	x := mustAlloc(t, b, backend.F32, 100)
	if err := b.Upload(x, ones(100)); err != nil {
		t.Fatal(err)
	}
	p := x.Ptr
	b.Free(x)
	y := mustAlloc(t, b, backend.F32, 90) // same size class (512 bytes)
	if y.Ptr != p {
		t.Fatalf("pool did not reuse the block: %#x, then %#x", uint64(p), uint64(y.Ptr))
	}
	if f.allocs != 1 {
		t.Fatalf("device allocs = %d, want 1", f.allocs)
	}
	got := make([]float32, 90)
	if err := b.Download(got, y); err != nil {
		t.Fatal(err)
	}
	for i, v := range got {
		if v != 0 {
			t.Fatalf("reused block element %d = %v, want 0", i, v)
		}
	}
}

func ones(n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = 1
	}
	return s
}

func TestFreeViewsAndUseAfterFree(t *testing.T) {
	b, f := newTestBackend(t)
	x := mustAlloc(t, b, backend.F32, 2, 8)
	src := make([]float32, 16)
	for i := range src {
		src[i] = float32(i)
	}
	if err := b.Upload(x, src); err != nil {
		t.Fatal(err)
	}
	v, err := b.View(x, 8, 2, 4)
	if err != nil {
		t.Fatal(err)
	}
	if v.(*Tensor).Ptr != x.Ptr+32 {
		t.Fatalf("view pointer %#x, want base+32", uint64(v.(*Tensor).Ptr))
	}
	got := make([]float32, 8)
	if err := b.Download(got, v); err != nil {
		t.Fatal(err)
	}
	if got[0] != 8 || got[7] != 15 {
		t.Fatalf("view contents %v", got)
	}
	vv, err := b.View(v, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	got = got[:3]
	if err := b.Download(got, vv); err != nil || got[0] != 10 {
		t.Fatalf("view of a view: %v %v", got, err)
	}
	for _, c := range [][2]int{{-1, 2}, {15, 2}, {17, 0}} {
		if _, err := b.View(x, c[0], c[1]); err == nil {
			t.Errorf("View(offset %d, %d elements) of 16 succeeded", c[0], c[1])
		}
	}
	b.Free(v) // no-op for views
	if b.PoolStats().LiveBytes == 0 {
		t.Fatal("freeing a view freed its parent")
	}
	b.Free(x)
	b.Free(x) // double free: no-op
	if err := b.Upload(x, src); err == nil || !strings.Contains(err.Error(), "freed") {
		t.Fatalf("Upload after Free: %v", err)
	}
	if _, err := b.View(x, 0, 1); err == nil {
		t.Fatal("View of a freed tensor succeeded")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if len(f.mem) != 0 {
		t.Fatalf("Close left %d device allocations", len(f.mem))
	}
}

func TestFreeForeignPanics(t *testing.T) {
	b, _ := newTestBackend(t)
	other, _ := newTestBackend(t)
	x := mustAlloc(t, other, backend.F32, 4)
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "did not allocate") {
			t.Fatalf("recovered %v", r)
		}
	}()
	b.Free(x)
}

func TestZeroLengthTensors(t *testing.T) {
	b, f := newTestBackend(t)
	x := mustAlloc(t, b, backend.BF16, 0, 7)
	if x.Len() != 0 || f.allocs != 0 {
		t.Fatalf("len %d, device allocs %d", x.Len(), f.allocs)
	}
	if err := b.Upload(x, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Download(nil, x); err != nil {
		t.Fatal(err)
	}
	if err := b.Zero(x); err != nil {
		t.Fatal(err)
	}
	b.Free(x)
}
