//go:build cgo

// Package emu is a gpu.Device that runs the CUDA kernels of kernels/*.cu on
// the CPU. The kernels are compiled by cgo as C++17 against
// kernels/emu/cuda_emu.h (threads of a block are fibers, blocks run one after
// another, warp shuffles are real rendezvous of a warp's lanes), so the Go
// launchers of package gpu and the kernels' indexing, bounds, barriers and
// reductions are checked without a GPU. It is a test device: correct, not
// fast.
//
// Device memory is host memory from the C heap; a DevicePtr is its address.
// Every copy is checked against the live allocations, so a launcher that
// computes a wrong view or size gets an error instead of a corrupted heap.
// Kernels themselves are not bounds-checked.
package emu

/*
#cgo CXXFLAGS: -std=c++17 -O1 -I${SRCDIR}/../../kernels/emu -I${SRCDIR}/../../kernels -Wno-unused-function
#include <stdlib.h>
#include <string.h>
#include "runtime.h"
*/
import "C"

import (
	"fmt"
	"sort"
	"sync"
	"unsafe"

	"github.com/houlsby/adapters/gpu"
)

// Device is the emulated device. It is safe for concurrent use; launches
// and copies are serialised (launches process-wide, see launchMu).
type Device struct {
	mu     sync.Mutex
	allocs map[gpu.DevicePtr]block // by base address
}

// block is one live allocation.
type block struct {
	p     unsafe.Pointer // C heap memory
	bytes int
}

var _ gpu.Device = (*Device)(nil)

const cgoEnabled = true

// launchMu serialises kernel launches across all Devices.
var launchMu sync.Mutex

// New returns an emulated device.
func New() *Device { return &Device{allocs: map[gpu.DevicePtr]block{}} }

// Name describes the device.
func (*Device) Name() string { return "emu (kernels/*.cu on the CPU)" }

// align is the allocation alignment, as cudaMalloc's (at least 256 bytes).
const align = 256

// Alloc returns zeroed memory of the given size (at least one byte is
// allocated, so every pointer is distinct).
func (d *Device) Alloc(bytes int) (gpu.DevicePtr, error) {
	if bytes < 0 {
		return 0, fmt.Errorf("emu.Alloc: negative size %d", bytes)
	}
	n := (max(bytes, 1) + align - 1) / align * align
	p := C.aligned_alloc(align, C.size_t(n))
	if p == nil {
		return 0, fmt.Errorf("emu.Alloc: out of host memory for %d bytes", bytes)
	}
	C.memset(p, 0, C.size_t(n))
	d.mu.Lock()
	defer d.mu.Unlock()
	dp := gpu.DevicePtr(uintptr(p))
	d.allocs[dp] = block{p, bytes}
	return dp, nil
}

// Free releases memory from Alloc.
func (d *Device) Free(p gpu.DevicePtr) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	a, ok := d.allocs[p]
	if !ok {
		return fmt.Errorf("emu.Free: %#x is not a live allocation", uint64(p))
	}
	delete(d.allocs, p)
	C.free(a.p)
	return nil
}

// mem returns the host view of device bytes [p, p+bytes), or an error
// unless they lie inside one live allocation. The caller holds d.mu.
func (d *Device) mem(op string, p gpu.DevicePtr, bytes int) ([]byte, error) {
	if bytes < 0 {
		return nil, fmt.Errorf("emu.%s: negative size %d", op, bytes)
	}
	// A scan of the live allocations is fine at test sizes.
	bases := make([]gpu.DevicePtr, 0, len(d.allocs))
	for b := range d.allocs {
		bases = append(bases, b)
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	i := sort.Search(len(bases), func(i int) bool { return bases[i] > p }) - 1
	if i < 0 || p+gpu.DevicePtr(bytes) > bases[i]+gpu.DevicePtr(d.allocs[bases[i]].bytes) {
		return nil, fmt.Errorf("emu.%s: [%#x, +%d) is not inside a live allocation", op, uint64(p), bytes)
	}
	if bytes == 0 {
		return nil, nil
	}
	a := d.allocs[bases[i]]
	return unsafe.Slice((*byte)(unsafe.Add(a.p, int(p-bases[i]))), bytes), nil
}

// HtoD copies host bytes to the device.
func (d *Device) HtoD(dst gpu.DevicePtr, src []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	m, err := d.mem("HtoD", dst, len(src))
	if err != nil {
		return err
	}
	copy(m, src)
	return nil
}

// DtoH copies device bytes to the host.
func (d *Device) DtoH(dst []byte, src gpu.DevicePtr) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	m, err := d.mem("DtoH", src, len(dst))
	if err != nil {
		return err
	}
	copy(dst, m)
	return nil
}

// DtoD copies between device buffers (they may overlap, as with memmove).
func (d *Device) DtoD(dst, src gpu.DevicePtr, bytes int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	md, err := d.mem("DtoD", dst, bytes)
	if err != nil {
		return err
	}
	ms, err := d.mem("DtoD", src, bytes)
	if err != nil {
		return err
	}
	copy(md, ms)
	return nil
}

// Memset0 zeroes device bytes.
func (d *Device) Memset0(dst gpu.DevicePtr, bytes int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	m, err := d.mem("Memset0", dst, bytes)
	if err != nil {
		return err
	}
	clear(m)
	return nil
}

// maxThreads and maxDynShared are the limits of sm_80 and newer that the
// launchers must respect (1024 threads per block; 227 KiB of opt-in shared
// memory per block on H100, of which 48 KiB without opting in).
const (
	maxThreads   = 1024
	maxDynShared = 48 << 10
)

// Launch runs the kernel to completion (launches are synchronous here).
func (d *Device) Launch(kernel string, grid, block gpu.Dim3, sharedBytes int, args ...uint64) error {
	nt := uint64(block.X) * uint64(block.Y) * uint64(block.Z)
	switch {
	case nt == 0 || grid.X == 0 || grid.Y == 0 || grid.Z == 0:
		return fmt.Errorf("emu.Launch %s: empty grid %v or block %v", kernel, grid, block)
	case nt > maxThreads:
		return fmt.Errorf("emu.Launch %s: block %v has %d threads, more than %d", kernel, block, nt, maxThreads)
	case grid.Y > 65535 || grid.Z > 65535:
		return fmt.Errorf("emu.Launch %s: grid %v exceeds 65535 in y or z", kernel, grid)
	case sharedBytes < 0 || sharedBytes > maxDynShared:
		return fmt.Errorf("emu.Launch %s: %d bytes of dynamic shared memory (limit %d)", kernel, sharedBytes, maxDynShared)
	}
	// One launch at a time in the whole process, not per Device: the
	// kernels' __shared__ arrays are C++ statics and the fiber stacks a
	// shared pool, so two devices must not run kernels concurrently.
	launchMu.Lock()
	defer launchMu.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	name := C.CString(kernel)
	defer C.free(unsafe.Pointer(name))
	var cargs *C.ulonglong
	if len(args) > 0 {
		// C memory: the emulator keeps no pointer into Go memory.
		cargs = (*C.ulonglong)(C.malloc(C.size_t(8 * len(args))))
		defer C.free(unsafe.Pointer(cargs))
		copy(unsafe.Slice((*uint64)(unsafe.Pointer(cargs)), len(args)), args)
	}
	var errBuf [512]C.char
	rc := C.emu_launch(name, C.uint(grid.X), C.uint(grid.Y), C.uint(grid.Z), C.uint(block.X), C.uint(block.Y), C.uint(block.Z),
		C.longlong(sharedBytes), cargs, C.int(len(args)), &errBuf[0], C.int(len(errBuf)))
	if rc != 0 {
		return fmt.Errorf("emu.Launch: %s", C.GoString(&errBuf[0]))
	}
	return nil
}

// Sync returns nil: every launch has completed when Launch returns.
func (*Device) Sync() error { return nil }

// Kernels lists the kernels the emulator knows, in kernel_list.h order (generated from gpu.KernelNames).
func Kernels() []string {
	n := int(C.emu_kernel_count())
	out := make([]string, n)
	for i := range out {
		out[i] = C.GoString(C.emu_kernel_name(C.int(i)))
	}
	return out
}
