package gpu_test

// Op tests of the launchers in ops_elementwise.go on the kernel emulator against the
// CPU backend, at the model's real sizes and dtype mixes (helpers in
// emu_helpers_test.go).

import (
	"encoding/binary"
	"math"
	"math/rand"
	"testing"

	"github.com/houlsby/adapters/backend"
	"github.com/houlsby/adapters/gpu"
)

// TestDropoutMaskBitExact: the kernel's keep mask equals
// backend.DropoutKeep for every index, several seeds and rates, and kept
// values are scaled by exactly float32(1/(1-p)).
func TestDropoutMaskBitExact(t *testing.T) {
	d := newDuo(t)
	const n = 40000
	ones := make([]float32, n)
	for i := range ones {
		ones[i] = 1
	}
	in := d.tensor(backend.F32, n, 0, ones)
	out := d.tensor(backend.F32, n, 0, make([]float32, n))
	got := make([]float32, n)
	for _, seed := range []uint64{0, 1, 0xdeadbeefcafebabe, math.MaxUint64} {
		for _, p := range []float32{1e-6, 0.1, 0.5, 0.9, 0.999} {
			if err := d.g.DropoutForward(out.g, in.g, n, p, seed); err != nil {
				t.Fatal(err)
			}
			if err := d.g.Download(got, out.g); err != nil {
				t.Fatal(err)
			}
			s := 1 / (1 - p)
			bad := 0
			for i, v := range got {
				want := float32(0)
				if backend.DropoutKeep(seed, i, p) {
					want = s
				}
				if v != want {
					bad++
				}
			}
			if bad > 0 {
				t.Errorf("seed %#x p %v: %d of %d elements differ from backend.DropoutKeep", seed, p, bad, n)
			}
		}
	}
}

// TestConvertBitExact: the device conversion f32 -> bf16 equals
// gpu.F32ToBF16 bit for bit (ties to even, NaN, Inf, overflow, subnormals),
// and bf16 -> f32 is exact.
func TestConvertBitExact(t *testing.T) {
	d := newDuo(t)
	special := []uint32{0, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001, 0xffbfffff,
		0x3f808000, 0x3f818000, 0x3f80ffff, 0x7f7fffff, 0xff7fffff, 0x00000001, 0x00018000, 0x007fffff, 0x7f7f8000}
	r := rand.New(rand.NewSource(3))
	vals := make([]float32, 0, len(special)+5000)
	for _, u := range special {
		vals = append(vals, math.Float32frombits(u))
	}
	for i := 0; i < 5000; i++ {
		vals = append(vals, math.Float32frombits(r.Uint32()))
	}
	n := len(vals)
	src := d.tensor(backend.F32, n, 0, vals)
	dst, err := d.g.Alloc(backend.BF16, n)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.g.Convert(dst, src.g, n); err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 2*n)
	if err := d.dv.DtoH(raw, dst.(*gpu.Tensor).Ptr); err != nil {
		t.Fatal(err)
	}
	for i, v := range vals {
		got := binary.LittleEndian.Uint16(raw[2*i:])
		if want := gpu.F32ToBF16(v); got != want {
			t.Errorf("f32 %#08x -> bf16 %#04x, want %#04x", math.Float32bits(v), got, want)
		}
	}
	back, _ := d.g.Alloc(backend.F32, n)
	if err := d.g.Convert(back, dst, n); err != nil {
		t.Fatal(err)
	}
	fb := make([]float32, n)
	if err := d.g.Download(fb, back); err != nil {
		t.Fatal(err)
	}
	for i := range fb {
		want := gpu.BF16ToF32(binary.LittleEndian.Uint16(raw[2*i:]))
		if math.Float32bits(fb[i]) != math.Float32bits(want) && !(math.IsNaN(float64(want)) && math.IsNaN(float64(fb[i]))) {
			t.Errorf("bf16 %#04x -> f32 %v, want %v", binary.LittleEndian.Uint16(raw[2*i:]), fb[i], want)
		}
	}
}

// TestSumSquaresSizes covers the one-block and the two-stage paths (the
// switch is at 2^14 elements) against a float64 sum, and checks that
// repeated calls agree bitwise (fixed reduction order).
func TestSumSquaresSizes(t *testing.T) {
	d := newDuo(t)
	for _, n := range []int{0, 1, 255, 257, 1 << 14, 1<<14 + 1, 3<<14 + 5, 1 << 20} {
		x := d.tensor(backend.F32, max(n, 1), 1, nil)
		out := d.tensor(backend.F32, 1, 0, []float32{42})
		var want float64
		for _, v := range x.host[:n] {
			want += float64(v) * float64(v)
		}
		var got [2]float32
		for k := range got {
			if err := d.g.SumSquares(out.g, x.g, n); err != nil {
				t.Fatal(err)
			}
			v := make([]float32, 1)
			if err := d.g.Download(v, out.g); err != nil {
				t.Fatal(err)
			}
			got[k] = v[0]
		}
		// fp32 partial sums of <= 2^14/256 = 64 terms per thread, then
		// tree and block sums: relative error ~ (64 + log2 n)·2^-24 ≈ 5e-6;
		// 1e-5 relative bounds it.
		if math.Abs(float64(got[0])-want) > 1e-5*want {
			t.Errorf("n=%d: %v, want %v", n, got[0], want)
		}
		if got[0] != got[1] {
			t.Errorf("n=%d: two calls gave %v and %v", n, got[0], got[1])
		}
	}
}
