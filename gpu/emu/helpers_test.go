package emu

// Helpers of the emulator's own tests (emu_test.go): device buffers from
// host slices and back, and launches that fail the test.

import (
	"encoding/binary"
	"math"
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

// upload allocates a device buffer holding v as float32.
func upload(t testing.TB, d *Device, v []float32) gpu.DevicePtr {
	t.Helper()
	b := f32Bytes(v)
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

func launch(t testing.TB, d *Device, k string, grid, block gpu.Dim3, shared int, args ...uint64) {
	t.Helper()
	if err := d.Launch(k, grid, block, shared, args...); err != nil {
		t.Fatal(err)
	}
}
