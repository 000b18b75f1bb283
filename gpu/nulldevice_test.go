package gpu_test

import (
	"fmt"

	"github.com/houlsby/adapters/gpu"
)

// nullDevice is a Device whose memory is host memory and whose kernels do
// nothing: what remains of a training step on it is the Go side's host
// work (argument checks, launch geometry, the pool, the model's code), the
// part of the host time per step that does not depend on the driver.
// Copies are real, so the backend's read-backs (decay tables, indices) see
// what it wrote; results of kernels are whatever the memory held.
type nullDevice struct {
	mem  map[gpu.DevicePtr][]byte
	next gpu.DevicePtr
}

func newNullDevice() *nullDevice {
	return &nullDevice{mem: map[gpu.DevicePtr][]byte{}, next: 1 << 20}
}

func (d *nullDevice) Name() string { return "null:0" }

func (d *nullDevice) Alloc(n int) (gpu.DevicePtr, error) {
	if n <= 0 {
		return 0, fmt.Errorf("null: alloc of %d bytes", n)
	}
	p := d.next
	d.next += gpu.DevicePtr((n + 4095) / 4096 * 4096)
	d.mem[p] = make([]byte, n)
	return p, nil
}

func (d *nullDevice) Free(p gpu.DevicePtr) error {
	if _, ok := d.mem[p]; !ok {
		return fmt.Errorf("null: free of unknown pointer %#x", uint64(p))
	}
	delete(d.mem, p)
	return nil
}

// slice finds [p, p+n) inside one allocation.
func (d *nullDevice) slice(p gpu.DevicePtr, n int) ([]byte, error) {
	for base, b := range d.mem {
		if p >= base && int(p-base)+n <= len(b) {
			return b[p-base : int(p-base)+n], nil
		}
	}
	return nil, fmt.Errorf("null: illegal address [%#x, +%d)", uint64(p), n)
}

func (d *nullDevice) HtoD(dst gpu.DevicePtr, src []byte) error {
	b, err := d.slice(dst, len(src))
	if err == nil {
		copy(b, src)
	}
	return err
}

func (d *nullDevice) DtoH(dst []byte, src gpu.DevicePtr) error {
	b, err := d.slice(src, len(dst))
	if err == nil {
		copy(dst, b)
	}
	return err
}

func (d *nullDevice) DtoD(dst, src gpu.DevicePtr, n int) error {
	a, err := d.slice(dst, n)
	if err != nil {
		return err
	}
	b, err := d.slice(src, n)
	if err == nil {
		copy(a, b)
	}
	return err
}

func (d *nullDevice) Memset0(dst gpu.DevicePtr, n int) error {
	b, err := d.slice(dst, n)
	if err == nil {
		clear(b)
	}
	return err
}

func (d *nullDevice) Launch(kernel string, grid, block gpu.Dim3, shared int, args ...uint64) error {
	return nil
}

func (d *nullDevice) Sync() error { return nil }
