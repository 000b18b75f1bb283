package gpu

import (
	"math"
	"testing"

	"github.com/houlsby/adapters/backend"
)

func TestRoundTripF32AndI32(t *testing.T) {
	b, _ := newTestBackend(t)
	x := mustAlloc(t, b, backend.F32, 3, 5)
	src := make([]float32, 15)
	for i := range src {
		src[i] = float32(i)*1.37 - 7 + float32(math.Pi)*1e-6
	}
	src[3] = float32(math.Inf(-1))
	src[4] = float32(math.Copysign(0, -1))
	if err := b.Upload(x, src); err != nil {
		t.Fatal(err)
	}
	got := make([]float32, 15)
	if err := b.Download(got, x); err != nil {
		t.Fatal(err)
	}
	for i := range src {
		if math.Float32bits(got[i]) != math.Float32bits(src[i]) {
			t.Fatalf("F32 element %d: got %v want %v", i, got[i], src[i])
		}
	}
	ids := mustAlloc(t, b, backend.I32, 4)
	in := []int32{0, -1, math.MaxInt32, math.MinInt32}
	if err := b.UploadInt32(ids, in); err != nil {
		t.Fatal(err)
	}
	out := make([]int32, 4)
	if err := b.DownloadInt32(out, ids); err != nil {
		t.Fatal(err)
	}
	for i := range in {
		if in[i] != out[i] {
			t.Fatalf("I32 element %d: got %d want %d", i, out[i], in[i])
		}
	}
}

func TestCopyAndZero(t *testing.T) {
	b, f := newTestBackend(t)
	src := []float32{1, 1.00390625, 1.01171875, -3.1415927, 65504, 1e-30, float32(math.NaN()), 70000}
	a := mustAlloc(t, b, backend.F32, len(src))
	if err := b.Upload(a, src); err != nil {
		t.Fatal(err)
	}
	for _, dt := range []backend.DType{backend.F32, backend.BF16, backend.F16} {
		d := mustAlloc(t, b, dt, len(src))
		n0 := len(f.launches)
		if err := b.Copy(d, a); err != nil {
			t.Fatal(err)
		}
		got := make([]float32, len(src))
		if err := b.Download(got, d); err != nil {
			t.Fatal(err)
		}
		for i, x := range src {
			var want float32
			switch dt {
			case backend.F32:
				want = x
			case backend.BF16:
				want = BF16ToF32(F32ToBF16(x))
			case backend.F16:
				want = F16ToF32(F32ToF16(x))
			}
			if math.Float32bits(got[i]) != math.Float32bits(want) && !(isNaN32(got[i]) && isNaN32(want)) {
				t.Errorf("Copy F32→%v element %d: got %v want %v", dt, i, got[i], want)
			}
		}
		if l := f.launches[n0:]; dt == backend.BF16 && (len(l) != 1 || l[0] != "convert_f32_bf16") {
			t.Errorf("Copy F32→BF16 launched %v, want one convert_f32_bf16", l)
		} else if dt != backend.BF16 && len(l) != 0 {
			t.Errorf("Copy F32→%v launched %v (no kernel converts it)", dt, l)
		}
		// back to F32 (through the device for BF16, the host for F16)
		back := mustAlloc(t, b, backend.F32, len(src))
		if err := b.Copy(back, d); err != nil {
			t.Fatal(err)
		}
		got2 := make([]float32, len(src))
		if err := b.Download(got2, back); err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if math.Float32bits(got2[i]) != math.Float32bits(got[i]) && !(isNaN32(got[i]) && isNaN32(got2[i])) {
				t.Errorf("Copy %v→F32 element %d: got %v want %v", dt, i, got2[i], got[i])
			}
		}
		// and back, same dtype: device-to-device
		e := mustAlloc(t, b, dt, len(src))
		if err := b.Copy(e, d); err != nil {
			t.Fatal(err)
		}
		if err := b.Zero(d); err != nil {
			t.Fatal(err)
		}
		if err := b.Download(got, d); err != nil || got[0] != 0 || got[7] != 0 {
			t.Fatalf("after Zero: %v %v", got, err)
		}
		if err := b.Download(got, e); err != nil || got[0] != 1 {
			t.Fatalf("same-dtype copy: %v %v", got, err)
		}
	}
}

func isNaN32(x float32) bool { return x != x }

// TestBF16Rounding checks F32ToBF16 against the definition on every pair of
// adjacent positive finite bfloat16 values: their exact midpoint rounds to
// the even one, and the float32 neighbours of the midpoint round to the
// nearer one.
func TestBF16Rounding(t *testing.T) {
	for h := uint16(0); h < 0x7f80; h++ {
		lo, hi := BF16ToF32(h), BF16ToF32(h+1)
		if F32ToBF16(lo) != h || F32ToBF16(-lo) != h|0x8000 {
			t.Fatalf("bf16 %#04x does not round-trip", h)
		}
		if h == 0x7f7f {
			break // the next value is +Inf: checked below
		}
		mid := float32((float64(lo) + float64(hi)) / 2) // exact: 9 significant bits
		even := h
		if h&1 == 1 {
			even = h + 1
		}
		if got := F32ToBF16(mid); got != even {
			t.Fatalf("midpoint of %#04x and %#04x rounds to %#04x, want %#04x", h, h+1, got, even)
		}
		if got := F32ToBF16(math.Nextafter32(mid, 0)); got != h {
			t.Fatalf("just below the midpoint after %#04x: %#04x", h, got)
		}
		if got := F32ToBF16(math.Nextafter32(mid, float32(math.Inf(1)))); got != h+1 {
			t.Fatalf("just above the midpoint after %#04x: %#04x", h, got)
		}
	}
	if got := F32ToBF16(math.MaxFloat32); got != 0x7f80 {
		t.Errorf("MaxFloat32 → %#04x, want +Inf 0x7f80 (it is above the last midpoint)", got)
	}
	if got := F32ToBF16(float32(math.Inf(-1))); got != 0xff80 {
		t.Errorf("-Inf → %#04x", got)
	}
	// NaNs whose payload sits only in the low 16 bits, or all ones, stay NaN.
	for _, u := range []uint32{0x7f800001, 0x7fffffff, 0xff800001, 0x7fc00000, 0x7f80ffff} {
		h := F32ToBF16(math.Float32frombits(u))
		if !isNaN32(BF16ToF32(h)) || (h>>15) != uint16(u>>31) {
			t.Errorf("NaN %#08x → %#04x, not a NaN of the same sign", u, h)
		}
	}
}

// TestF16Rounding is TestBF16Rounding for IEEE binary16, subnormals and the
// overflow threshold included.
func TestF16Rounding(t *testing.T) {
	for h := uint16(0); h < 0x7c00; h++ {
		lo, hi := F16ToF32(h), F16ToF32(h+1)
		if F32ToF16(lo) != h || F32ToF16(-lo) != h|0x8000 {
			t.Fatalf("f16 %#04x (%v) does not round-trip: %#04x", h, lo, F32ToF16(lo))
		}
		if h == 0x7bff {
			break // the next value is +Inf: checked below
		}
		mid := float32((float64(lo) + float64(hi)) / 2) // exact: 12 significant bits
		even := h
		if h&1 == 1 {
			even = h + 1
		}
		if got := F32ToF16(mid); got != even {
			t.Fatalf("midpoint %v of %#04x and %#04x rounds to %#04x, want %#04x", mid, h, h+1, got, even)
		}
		if got := F32ToF16(math.Nextafter32(mid, 0)); got != h {
			t.Fatalf("just below the midpoint after %#04x: %#04x", h, got)
		}
		if got := F32ToF16(math.Nextafter32(mid, float32(math.Inf(1)))); got != h+1 {
			t.Fatalf("just above the midpoint after %#04x: %#04x", h, got)
		}
	}
	// 65520 is the midpoint between the largest half (65504) and 2^16: ties
	// to even round it up to +Inf, anything below stays finite.
	if got := F32ToF16(65520); got != 0x7c00 {
		t.Errorf("65520 → %#04x, want +Inf", got)
	}
	if got := F32ToF16(math.Nextafter32(65520, 0)); got != 0x7bff {
		t.Errorf("just below 65520 → %#04x, want 0x7bff", got)
	}
	if got := F32ToF16(1e-30); got != 0 {
		t.Errorf("1e-30 → %#04x, want +0", got)
	}
	if got := F32ToF16(0x1p-25); got != 0 {
		t.Errorf("2^-25 (half the smallest subnormal, a tie) → %#04x, want +0", got)
	}
	if got := F32ToF16(math.Nextafter32(0x1p-25, 1)); got != 1 {
		t.Errorf("just above 2^-25 → %#04x, want 0x0001", got)
	}
	for _, u := range []uint32{0x7f800001, 0x7fffffff, 0xff800001, 0x7fc00000} {
		h := F32ToF16(math.Float32frombits(u))
		if !isNaN32(F16ToF32(h)) || (h>>15) != uint16(u>>31) {
			t.Errorf("NaN %#08x → %#04x, not a NaN of the same sign", u, h)
		}
	}
	if F16ToF32(0x7c00) != float32(math.Inf(1)) || F16ToF32(0x8001) != -0x1p-24 {
		t.Error("F16ToF32 of Inf or of the smallest negative subnormal is wrong")
	}
}
