package emu

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/houlsby/adapters/gpu"
	"github.com/houlsby/adapters/gpu/emu/internal/kernellist"
)

// Tests of the emulator itself, with the kernels of kernels/emu/selftest.cuh.

func TestShuffles(t *testing.T) {
	d := New()
	const n = 80 // two full warps and a partial one of 16 lanes
	out := upload(t, d, make([]float32, 4*n))
	launch(t, d, "emu_test_shfl", gpu.Dim3{X: 1, Y: 1, Z: 1}, gpu.Dim3{X: n, Y: 1, Z: 1}, 0, gpu.Ptr(out), gpu.Int(n))
	got := download(t, d, out, 4*n)
	for tid := 0; tid < n; tid++ {
		l, base := tid%32, tid-tid%32
		// A source lane outside the block (the partial last warp) returns
		// the caller's own value in the emulator; real hardware leaves it
		// undefined, so only lanes that exist are checked there.
		lanes := min(32, n-base)
		want := [4]int{base + (l*7+3)%32, base + l ^ 5, tid, tid}
		if l%16+3 < 16 {
			want[2] = tid + 3
		}
		if l%8 >= 2 {
			want[3] = tid - 2
		}
		for k := 0; k < 4; k++ {
			if want[k]-base >= lanes {
				continue
			}
			if got[4*tid+k] != float32(want[k]) {
				t.Errorf("thread %d shuffle %d: got %v, want %d", tid, k, got[4*tid+k], want[k])
			}
		}
	}
}

// TestMissingBarrierIsCaught: reversing through shared memory without
// __syncthreads must give a wrong answer in the emulator (its scheduling
// runs each thread to the next barrier), and the right one with it.
func TestMissingBarrierIsCaught(t *testing.T) {
	d := New()
	const n = 100
	for _, barrier := range []int{1, 0} {
		// New values each launch: __shared__ memory keeps its contents
		// between launches (as it may on hardware), so stale data from the
		// previous launch must not look right.
		in := make([]float32, n)
		for i := range in {
			in[i] = float32(i + 1 + 1000*barrier)
		}
		pin := upload(t, d, in)
		out := upload(t, d, make([]float32, n))
		launch(t, d, "emu_test_reverse", gpu.Dim3{X: 1, Y: 1, Z: 1}, gpu.Dim3{X: n, Y: 1, Z: 1}, 0,
			gpu.Ptr(out), gpu.Ptr(pin), gpu.Int(n), gpu.Int(barrier))
		got := download(t, d, out, n)
		wrong := 0
		for i := range got {
			if got[i] != in[n-1-i] {
				wrong++
			}
		}
		if barrier == 1 && wrong != 0 {
			t.Errorf("with __syncthreads: %d of %d wrong", wrong, n)
		}
		if barrier == 0 && wrong == 0 {
			t.Errorf("without __syncthreads the emulator still gave the right answer: the race went unnoticed")
		}
	}
}

func TestDeadlockIsReported(t *testing.T) {
	d := New()
	out := upload(t, d, make([]float32, 1))
	err := d.Launch("emu_test_deadlock", gpu.Dim3{X: 1, Y: 1, Z: 1}, gpu.Dim3{X: 64, Y: 1, Z: 1}, 0, gpu.Ptr(out))
	if err == nil || !strings.Contains(err.Error(), "deadlock") {
		t.Fatalf("got %v, want a deadlock error", err)
	}
	// The emulator must still work after abandoning the stuck fibers.
	TestShuffles(t)
}

func TestEarlyExitDoesNotHang(t *testing.T) {
	d := New()
	const n = 96
	in := make([]float32, n)
	for i := range in {
		in[i] = float32(i * i)
	}
	pin, out := upload(t, d, in), upload(t, d, make([]float32, n))
	launch(t, d, "emu_test_early_exit", gpu.Dim3{X: 1, Y: 1, Z: 1}, gpu.Dim3{X: n, Y: 1, Z: 1}, 0, gpu.Ptr(out), gpu.Ptr(pin))
	got := download(t, d, out, n)
	for i := 0; i < n; i += 2 {
		if want := in[i] + in[i+1]; got[i] != want {
			t.Errorf("out[%d] = %v, want %v", i, got[i], want)
		}
	}
}

func TestDynamicSharedMemory(t *testing.T) {
	d := New()
	const blocks, n = 3, 50
	in := make([]float32, blocks*n)
	for i := range in {
		in[i] = float32(i % 7)
	}
	pin, out := upload(t, d, in), upload(t, d, make([]float32, blocks*n))
	launch(t, d, "emu_test_dyn_shared", gpu.Dim3{X: blocks, Y: 1, Z: 1}, gpu.Dim3{X: n, Y: 1, Z: 1}, 4*n, gpu.Ptr(out), gpu.Ptr(pin))
	got := download(t, d, out, blocks*n)
	for b := 0; b < blocks; b++ {
		var want float32
		for _, v := range in[b*n : b*n+n] {
			want += v
		}
		for i := 0; i < n; i++ {
			if got[b*n+i] != want {
				t.Fatalf("block %d thread %d: sum %v, want %v", b, i, got[b*n+i], want)
			}
		}
	}
}

func TestGeometry(t *testing.T) {
	d := New()
	grid, block := gpu.Dim3{X: 3, Y: 2, Z: 2}, gpu.Dim3{X: 5, Y: 3, Z: 2}
	nb, nt := 12, 30
	out := upload(t, d, make([]float32, nb*nt))
	launch(t, d, "emu_test_geometry", grid, block, 0, gpu.Ptr(out))
	got := download(t, d, out, nb*nt)
	for b := 0; b < nb; b++ {
		for th := 0; th < nt; th++ {
			if want := float32(b*1000 + th); got[b*nt+th] != want {
				t.Fatalf("block %d thread %d wrote %v, want %v", b, th, got[b*nt+th], want)
			}
		}
	}
}

func TestLaunchErrors(t *testing.T) {
	d := New()
	out := upload(t, d, make([]float32, 1))
	for name, f := range map[string]func() error{
		"unknown kernel": func() error {
			return d.Launch("no_such_kernel", gpu.Dim3{X: 1, Y: 1, Z: 1}, gpu.Dim3{X: 1, Y: 1, Z: 1}, 0)
		},
		"wrong arity": func() error {
			return d.Launch("emu_test_geometry", gpu.Dim3{X: 1, Y: 1, Z: 1}, gpu.Dim3{X: 1, Y: 1, Z: 1}, 0)
		},
		"empty grid": func() error {
			return d.Launch("emu_test_geometry", gpu.Dim3{X: 0, Y: 1, Z: 1}, gpu.Dim3{X: 1, Y: 1, Z: 1}, 0, gpu.Ptr(out))
		},
		"1025 threads": func() error {
			return d.Launch("emu_test_geometry", gpu.Dim3{X: 1, Y: 1, Z: 1}, gpu.Dim3{X: 1025, Y: 1, Z: 1}, 0, gpu.Ptr(out))
		},
		"copy past end": func() error { return d.HtoD(out+2, make([]byte, 4)) },
		"double free": func() error {
			p, err := d.Alloc(8)
			if err != nil {
				return nil
			}
			if err := d.Free(p); err != nil {
				return nil
			}
			return d.Free(p)
		},
	} {
		if err := f(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestKernelTable: the emulator registers each kernel once, exactly the
// backend's (gpu.KernelNames) and its own self-test kernels, i.e. the
// compiled table is the generated kernel_list.h.
func TestKernelTable(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range Kernels() {
		if seen[k] {
			t.Errorf("kernel %s registered twice", k)
		}
		seen[k] = true
	}
	want := append(gpu.KernelNames(), kernellist.SelfTest...)
	for _, k := range want {
		if !seen[k] {
			t.Errorf("kernel %s is not registered", k)
		}
	}
	if len(seen) != len(want) {
		t.Errorf("%d kernels registered, want %d", len(seen), len(want))
	}
}

// TestConcurrentDevices: launches on different devices from different
// goroutines must not interfere (the kernels' __shared__ arrays and the
// fiber stacks are process-wide in the emulator).
func TestConcurrentDevices(t *testing.T) {
	const n, workers, rounds = 1000, 4, 50
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		go func(w int) {
			d := New()
			in := make([]float32, n)
			for i := range in {
				in[i] = float32(w*1000 + i)
			}
			pin, pout := upload(t, d, in), upload(t, d, make([]float32, n))
			for r := 0; r < rounds; r++ {
				if err := d.Launch("emu_test_reverse", gpu.Dim3{X: 1, Y: 1, Z: 1}, gpu.Dim3{X: n, Y: 1, Z: 1}, 0,
					gpu.Ptr(pout), gpu.Ptr(pin), gpu.Int(n), gpu.Int(1)); err != nil {
					errs <- err
					return
				}
				b := make([]byte, 4*n)
				if err := d.DtoH(b, pout); err != nil {
					errs <- err
					return
				}
				got := f32FromBytes(b)
				for i := range got {
					if got[i] != in[n-1-i] {
						errs <- fmt.Errorf("worker %d round %d: out[%d] = %v, want %v", w, r, i, got[i], in[n-1-i])
						return
					}
				}
			}
			errs <- nil
		}(w)
	}
	for w := 0; w < workers; w++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestAtomicAdd(t *testing.T) {
	d := New()
	const blocks, n = 3, 70
	out := upload(t, d, []float32{0.5})
	cnt := uploadI32(t, d, []int32{0})
	launch(t, d, "emu_test_atomic", gpu.Dim3{X: blocks, Y: 1, Z: 1}, gpu.Dim3{X: n, Y: 1, Z: 1}, 0, gpu.Ptr(out), gpu.Ptr(cnt))
	// Σ_{g=1}^{210} g = 22155, exact in float32.
	if got := download(t, d, out, 1)[0]; got != 0.5+22155 {
		t.Errorf("float atomicAdd: %v, want %v", got, 0.5+22155)
	}
	if got := int32(math.Float32bits(download(t, d, cnt, 1)[0])); got != 2*blocks*n {
		t.Errorf("int atomicAdd: %d, want %d", got, 2*blocks*n)
	}
}

// TestEveryKernelFileIsCompiled: each kernels/*.cu is reached through a
// src_<name>.h link that runtime.cc includes (the links are what make the
// Go build cache notice edits to the .cu files).
func TestEveryKernelFileIsCompiled(t *testing.T) {
	files, err := filepath.Glob("../../kernels/*.cu")
	if err != nil || len(files) == 0 {
		t.Fatalf("no kernels/*.cu found (%v)", err)
	}
	rt, err := os.ReadFile("runtime.cc")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".cu")
		link := "src_" + name + ".h"
		target, err := os.Readlink(link)
		if err != nil || filepath.Clean(target) != filepath.Clean(filepath.Join("../../kernels", name+".cu")) {
			t.Errorf("%s: want a symlink %s -> ../../kernels/%s.cu (got %q, %v)", f, link, name, target, err)
		}
		if !strings.Contains(string(rt), `#include "`+link+`"`) {
			t.Errorf("runtime.cc does not include %s", link)
		}
	}
}
