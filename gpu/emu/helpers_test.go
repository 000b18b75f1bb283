package emu

import (
	"encoding/binary"
	"math"
	"math/rand"
	"testing"

	"github.com/houlsby/adapters/gpu"
)

// Kernel-level test helpers: device buffers from host slices and back.

func f32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// bf16Round rounds to the nearest bf16 (ties to even), as the kernels do.
func bf16Round(x float32) float32 {
	return math.Float32frombits(uint32(bf16Bits(x)) << 16)
}

func bf16Bits(x float32) uint16 {
	u := math.Float32bits(x)
	if u&0x7fffffff > 0x7f800000 {
		return uint16(u>>16) | 0x40
	}
	u += 0x7fff + (u>>16)&1
	return uint16(u >> 16)
}

func bf16Bytes(v []float32) []byte {
	b := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(b[2*i:], bf16Bits(x))
	}
	return b
}

// upload allocates a device buffer holding v as float32 (bf16 false) or bf16.
func upload(t testing.TB, d *Device, v []float32, bf16 bool) gpu.DevicePtr {
	t.Helper()
	b := f32Bytes(v)
	if bf16 {
		b = bf16Bytes(v)
	}
	p, err := d.Alloc(len(b))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.HtoD(p, b); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Free(p) })
	return p
}

func uploadI32(t testing.TB, d *Device, v []int32) gpu.DevicePtr {
	t.Helper()
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(x))
	}
	p, err := d.Alloc(len(b))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.HtoD(p, b); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Free(p) })
	return p
}

func download(t testing.TB, d *Device, p gpu.DevicePtr, n int) []float32 {
	t.Helper()
	b := make([]byte, 4*n)
	if err := d.DtoH(b, p); err != nil {
		t.Fatal(err)
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

func f32FromBytes(b []byte) []float32 {
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

func downloadBF16(t testing.TB, d *Device, p gpu.DevicePtr, n int) []uint16 {
	t.Helper()
	b := make([]byte, 2*n)
	if err := d.DtoH(b, p); err != nil {
		t.Fatal(err)
	}
	v := make([]uint16, n)
	for i := range v {
		v[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return v
}

func randVec(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

func launch(t testing.TB, d *Device, k string, grid, block gpu.Dim3, shared int, args ...uint64) {
	t.Helper()
	if err := d.Launch(k, grid, block, shared, args...); err != nil {
		t.Fatal(err)
	}
}

func cdiv(a, b int) uint32 { return uint32((a + b - 1) / b) }

// closeTo reports the first index where |got-want| > atol + rtol·|want|.
func closeTo(t testing.TB, what string, got, want []float32, atol, rtol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	bad := 0
	for i := range got {
		g, w := float64(got[i]), float64(want[i])
		if !(math.Abs(g-w) <= atol+rtol*math.Abs(w)) {
			if bad < 5 {
				t.Errorf("%s[%d] = %v, want %v (atol %g, rtol %g)", what, i, g, w, atol, rtol)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d values out of tolerance", what, bad, len(got))
	}
}
