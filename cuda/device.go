//go:build cuda

// Package cuda is a thin, safe layer over gorgonia.org/cu (the CUDA driver
// API) for the gpu backend: one context, one stream, the embedded PTX
// (kernels/ptx) loaded once, kernel launches with 8-byte arguments, and
// event timing.
//
// A CUDA context is current per OS thread, so a Device owns one goroutine
// locked to its OS thread (runtime.LockOSThread) that makes the context
// current once and then executes every driver call, sent to it over a
// channel. Callers may be any goroutine; calls are serialised. Every call
// returns its own error at once (the driver's synchronous error); faults of
// queued kernels surface at the next Sync or DtoH, as in CUDA itself.
//
// The package does not import gpu (gpu imports it to build gpu.Open), so
// its Device has the methods of gpu.Device over plain types: pointers are
// uint64 and Dim3 converts to and from gpu.Dim3.
//
// Note: gorgonia.org/cu calls cuInit in its package init and exits the
// process when that fails, so a cuda-tagged binary needs the NVIDIA driver
// (libcuda.so.1 and a GPU) to start at all.
package cuda

import (
	"fmt"
	"strings"
	"time"
	"unsafe"

	"gorgonia.org/cu"

	"github.com/houlsby/adapters/kernels/ptx"
)

// Dim3 is a grid or block shape (same layout as gpu.Dim3).
type Dim3 struct{ X, Y, Z uint32 }

// MaxArgs is the most kernel arguments Launch accepts (every kernel in
// kernels/*.cu takes fewer; the limit keeps the argument buffers fixed).
const MaxArgs = 32

// MinComputeCapability is the oldest GPU the embedded PTX runs on:
// scripts/ptx.sh compiles for compute_80 (A100), which the driver JIT-compiles
// for any newer GPU (H100 is 9.0) but cannot run on older ones.
var MinComputeCapability = [2]int{8, 0}

// Device is one GPU with its own context, stream and loaded kernels.
type Device struct {
	ordinal  int
	name     string
	cc       [2]int
	totalMem int64
	props    Props

	// th runs every driver call; its mutex also guards the launch slot.
	th *thread

	// Owned by the locked thread.
	dev     cu.Device
	ctx     cu.CUContext
	stream  cu.Stream
	start   cu.Event
	stop    cu.Event
	modules []cu.Module
	files   []string
	fns     map[string]cu.Function

	// The launch slot: Launch fills it under th.mu and sends launchFn
	// (bound once) so that a launch allocates nothing.
	launchFn       func() error
	lName          string
	lGrid, lBlock  Dim3
	lShared, lArgc int
	args           [MaxArgs]uint64
	argp           [MaxArgs]unsafe.Pointer
}

// Open creates a context on GPU ordinal (0-based), a stream and two timing
// events, and loads every embedded PTX file. Close releases them.
func Open(ordinal int) (*Device, error) {
	n, err := cu.NumDevices()
	if err != nil {
		return nil, fmt.Errorf("cuda.Open: counting devices: %w", err)
	}
	if ordinal < 0 || ordinal >= n {
		return nil, fmt.Errorf("cuda.Open: no GPU %d (the driver sees %d)", ordinal, n)
	}
	d := &Device{ordinal: ordinal, fns: make(map[string]cu.Function)}
	d.launchFn = d.launchOnThread
	for i := range d.argp {
		d.argp[i] = unsafe.Pointer(&d.args[i])
	}
	if d.th, err = startThread(d.setup, d.teardown); err != nil {
		return nil, fmt.Errorf("cuda.Open(%d): %w", ordinal, err)
	}
	return d, nil
}

func (d *Device) setup() error {
	var err error
	if d.dev, err = cu.GetDevice(d.ordinal); err != nil {
		return fmt.Errorf("getting the device: %w", err)
	}
	if d.name, err = d.dev.Name(); err != nil {
		return fmt.Errorf("reading the device name: %w", err)
	}
	if d.cc[0], err = d.dev.Attribute(cu.ComputeCapabilityMajor); err != nil {
		return fmt.Errorf("reading the compute capability: %w", err)
	}
	if d.cc[1], err = d.dev.Attribute(cu.ComputeCapabilityMinor); err != nil {
		return fmt.Errorf("reading the compute capability: %w", err)
	}
	if d.cc[0] < MinComputeCapability[0] || (d.cc[0] == MinComputeCapability[0] && d.cc[1] < MinComputeCapability[1]) {
		return fmt.Errorf("%s has compute capability %d.%d; the kernels are built for %d.%d and newer",
			d.name, d.cc[0], d.cc[1], MinComputeCapability[0], MinComputeCapability[1])
	}
	if d.totalMem, err = d.dev.TotalMem(); err != nil {
		return fmt.Errorf("reading the memory size: %w", err)
	}
	if err := d.readProps(); err != nil {
		return err
	}
	// cuCtxCreate makes the new context current on this (locked) thread.
	if d.ctx, err = d.dev.MakeContext(cu.SchedAuto); err != nil {
		return fmt.Errorf("creating a context: %w", err)
	}
	// A non-blocking stream: no implicit ordering with the legacy default
	// stream, which this package never uses (every copy, memset and launch
	// goes to d.stream).
	if d.stream, err = cu.MakeStream(cu.NonBlocking); err != nil {
		return fmt.Errorf("creating a stream: %w", err)
	}
	if d.start, err = cu.MakeEvent(cu.DefaultEvent); err != nil {
		return fmt.Errorf("creating an event: %w", err)
	}
	if d.stop, err = cu.MakeEvent(cu.DefaultEvent); err != nil {
		return fmt.Errorf("creating an event: %w", err)
	}
	files := ptx.Files()
	if len(files) == 0 {
		return fmt.Errorf("no PTX is embedded in this binary: run `make ptx` (needs nvcc) before `go build -tags cuda`")
	}
	for _, f := range files {
		log := make([]byte, 16<<10)
		m, err := cu.LoadDataEx(f.PTX, &cu.JITErrorLogBuffer{Buffer: log})
		if err != nil {
			msg := strings.TrimRight(string(log), "\x00")
			return fmt.Errorf("loading kernels/ptx/%s: %w: %s", f.Name, err, strings.TrimSpace(msg))
		}
		d.modules = append(d.modules, m)
		d.files = append(d.files, f.Name)
	}
	return nil
}

// teardown releases whatever setup created (in reverse), ignoring errors:
// the context's destruction frees everything in it anyway.
func (d *Device) teardown() {
	if d.ctx == (cu.CUContext{}) {
		return
	}
	_ = d.stream.Synchronize()
	for _, m := range d.modules {
		_ = m.Unload()
	}
	if d.stop != (cu.Event{}) {
		_ = cu.DestroyEvent(&d.stop)
	}
	if d.start != (cu.Event{}) {
		_ = cu.DestroyEvent(&d.start)
	}
	if d.stream != (cu.Stream{}) {
		_ = d.stream.Destroy()
	}
	_ = d.ctx.Destroy()
}

// do runs f on the locked thread and returns its error.
func (d *Device) do(f func() error) error {
	if err := d.th.do(f); err != nil {
		if err == errClosed {
			return fmt.Errorf("cuda: device %d is closed", d.ordinal)
		}
		return err
	}
	return nil
}

// Close waits for queued work and destroys the context (all device memory
// of the context is freed with it). Calls after Close return an error.
func (d *Device) Close() error {
	if err := d.th.close(func() error { return d.stream.Synchronize() }); err != nil {
		return fmt.Errorf("cuda.Close: %w", err)
	}
	return nil
}

// Name describes the device, e.g. "cuda:0 NVIDIA H100 80GB HBM3 (sm_90, 79.1 GiB)".
func (d *Device) Name() string {
	return fmt.Sprintf("cuda:%d %s (sm_%d%d, %.1f GiB)", d.ordinal, d.name, d.cc[0], d.cc[1], float64(d.totalMem)/(1<<30))
}

// Props are the device attributes the benchmarks' rooflines and the probe
// report (cuDeviceGetAttribute, cuDriverGetVersion).
type Props struct {
	Name          string // e.g. "NVIDIA H200"
	Major, Minor  int    // compute capability
	SMs           int    // CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT
	ClockKHz      int    // CU_DEVICE_ATTRIBUTE_CLOCK_RATE: the peak SM clock
	MemClockKHz   int    // CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE: the peak memory clock
	BusWidthBits  int    // CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH
	TotalMem      int64  // bytes
	DriverVersion int    // cuDriverGetVersion: 1000·major + 10·minor, e.g. 13000
	PTXFiles      int    // PTX files loaded
}

// Props returns the device's attributes, read once at Open.
func (d *Device) Props() Props {
	p := d.props
	p.PTXFiles = len(d.files)
	return p
}

// readProps reads the attributes of Props (on the locked thread, in setup).
func (d *Device) readProps() error {
	p := Props{Name: d.name, Major: d.cc[0], Minor: d.cc[1], TotalMem: d.totalMem, DriverVersion: cu.Version()}
	for _, a := range []struct {
		attr cu.DeviceAttribute
		dst  *int
		what string
	}{
		{cu.MultiprocessorCount, &p.SMs, "multiprocessor count"},
		{cu.ClockRate, &p.ClockKHz, "clock rate"},
		{cu.MemoryClockRate, &p.MemClockKHz, "memory clock rate"},
		{cu.GlobalMemoryBusWidth, &p.BusWidthBits, "memory bus width"},
	} {
		v, err := d.dev.Attribute(a.attr)
		if err != nil {
			return fmt.Errorf("reading the %s: %w", a.what, err)
		}
		*a.dst = v
	}
	d.props = p
	return nil
}

// ComputeCapability returns the major and minor compute capability.
func (d *Device) ComputeCapability() (major, minor int) { return d.cc[0], d.cc[1] }

// PTXFiles lists the loaded PTX files.
func (d *Device) PTXFiles() []string { return append([]string(nil), d.files...) }

// MemInfo returns the free and total device memory in bytes.
func (d *Device) MemInfo() (free, total int64, err error) {
	err = d.do(func() error {
		var e error
		free, total, e = cu.MemInfo()
		return e
	})
	if err != nil {
		err = fmt.Errorf("cuda: MemInfo: %w", err)
	}
	return free, total, err
}

// Alloc returns zeroed device memory of the given size (the zeroing is
// queued on the stream, so it is ordered before any later use).
func (d *Device) Alloc(bytes int) (uint64, error) {
	if bytes <= 0 {
		return 0, fmt.Errorf("cuda: Alloc of %d bytes", bytes)
	}
	var p cu.DevicePtr
	err := d.do(func() error {
		var e error
		if p, e = cu.MemAlloc(int64(bytes)); e != nil {
			return e
		}
		if e = cu.MemsetD8Async(p, 0, int64(bytes), d.stream); e != nil {
			_ = cu.MemFree(p)
			return e
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("cuda: Alloc of %d bytes on %s: %w", bytes, d.name, err)
	}
	return uint64(p), nil
}

// Free releases memory from Alloc. cuMemFree waits for work that may use it.
func (d *Device) Free(p uint64) error {
	if err := d.do(func() error { return cu.MemFree(cu.DevicePtr(p)) }); err != nil {
		return fmt.Errorf("cuda: Free(%#x): %w", p, err)
	}
	return nil
}

// HtoD copies src to dst, ordered on the stream. From pageable host memory
// the driver returns once src has been copied to its staging buffer, so src
// may be reused as soon as HtoD returns.
func (d *Device) HtoD(dst uint64, src []byte) error {
	if len(src) == 0 {
		return nil
	}
	err := d.do(func() error {
		return cu.MemcpyHtoDAsync(cu.DevicePtr(dst), unsafe.Pointer(&src[0]), int64(len(src)), d.stream)
	})
	if err != nil {
		return fmt.Errorf("cuda: HtoD of %d bytes to %#x: %w", len(src), dst, err)
	}
	return nil
}

// DtoH copies src into dst after all queued work, and waits for it.
func (d *Device) DtoH(dst []byte, src uint64) error {
	if len(dst) == 0 {
		return nil
	}
	err := d.do(func() error {
		if e := cu.MemcpyDtoHAsync(unsafe.Pointer(&dst[0]), cu.DevicePtr(src), int64(len(dst)), d.stream); e != nil {
			return e
		}
		return d.stream.Synchronize()
	})
	if err != nil {
		return fmt.Errorf("cuda: DtoH of %d bytes from %#x: %w", len(dst), src, err)
	}
	return nil
}

// DtoD queues a device-to-device copy.
func (d *Device) DtoD(dst, src uint64, bytes int) error {
	if bytes == 0 {
		return nil
	}
	err := d.do(func() error {
		return cu.MemcpyDtoDAsync(cu.DevicePtr(dst), cu.DevicePtr(src), int64(bytes), d.stream)
	})
	if err != nil {
		return fmt.Errorf("cuda: DtoD of %d bytes %#x→%#x: %w", bytes, src, dst, err)
	}
	return nil
}

// Memset0 queues zeroing bytes at dst.
func (d *Device) Memset0(dst uint64, bytes int) error {
	if bytes == 0 {
		return nil
	}
	if err := d.do(func() error { return cu.MemsetD8Async(cu.DevicePtr(dst), 0, int64(bytes), d.stream) }); err != nil {
		return fmt.Errorf("cuda: Memset0 of %d bytes at %#x: %w", bytes, dst, err)
	}
	return nil
}

// Launch queues kernel (an extern "C" name in the embedded PTX) on the
// stream. Each argument is passed as its own 8-byte slot, so kernels take
// pointers, long long and double. The function is looked up once and cached.
func (d *Device) Launch(kernel string, grid, block Dim3, sharedBytes int, args ...uint64) error {
	if len(args) > MaxArgs {
		return fmt.Errorf("cuda: Launch %s: %d arguments, at most %d", kernel, len(args), MaxArgs)
	}
	if grid.X == 0 || grid.Y == 0 || grid.Z == 0 || block.X == 0 || block.Y == 0 || block.Z == 0 {
		return fmt.Errorf("cuda: Launch %s: empty grid %v or block %v", kernel, grid, block)
	}
	if sharedBytes < 0 {
		return fmt.Errorf("cuda: Launch %s: %d bytes of shared memory", kernel, sharedBytes)
	}
	d.th.mu.Lock()
	defer d.th.mu.Unlock()
	d.lName, d.lGrid, d.lBlock, d.lShared, d.lArgc = kernel, grid, block, sharedBytes, len(args)
	copy(d.args[:], args)
	if err := d.th.doLocked(d.launchFn); err != nil {
		if err == errClosed {
			return fmt.Errorf("cuda: Launch %s: device %d is closed", kernel, d.ordinal)
		}
		return fmt.Errorf("cuda: Launch %s grid %v block %v shared %d: %w", kernel, grid, block, sharedBytes, err)
	}
	return nil
}

// launchOnThread runs on the locked thread with the launch slot filled.
func (d *Device) launchOnThread() error {
	fn, err := d.function(d.lName)
	if err != nil {
		return err
	}
	g, b := d.lGrid, d.lBlock
	return fn.Launch(int(g.X), int(g.Y), int(g.Z), int(b.X), int(b.Y), int(b.Z), d.lShared, d.stream, d.argp[:d.lArgc])
}

// function finds kernel name in the loaded modules (on the locked thread).
func (d *Device) function(name string) (cu.Function, error) {
	if fn, ok := d.fns[name]; ok {
		return fn, nil
	}
	for _, m := range d.modules {
		if fn, err := m.Function(name); err == nil {
			d.fns[name] = fn
			return fn, nil
		}
	}
	return cu.Function{}, fmt.Errorf("kernel %q is in none of the embedded PTX files %v", name, d.files)
}

// Sync waits for all queued work and reports a deferred fault.
func (d *Device) Sync() error {
	if err := d.do(func() error { return d.stream.Synchronize() }); err != nil {
		return fmt.Errorf("cuda: Sync: %w", err)
	}
	return nil
}

// StartTimer records the start event on the stream.
func (d *Device) StartTimer() error {
	if err := d.do(func() error { return d.start.Record(d.stream) }); err != nil {
		return fmt.Errorf("cuda: StartTimer: %w", err)
	}
	return nil
}

// StopTimer records the stop event, waits for it and returns the GPU time
// between the two events (the work queued in between).
func (d *Device) StopTimer() (time.Duration, error) {
	var ms float64
	err := d.do(func() error {
		if e := d.stop.Record(d.stream); e != nil {
			return e
		}
		if e := d.stop.Synchronize(); e != nil {
			return e
		}
		var e error
		ms, e = d.start.Elapsed(d.stop)
		return e
	})
	if err != nil {
		return 0, fmt.Errorf("cuda: StopTimer: %w", err)
	}
	return time.Duration(ms * float64(time.Millisecond)), nil
}
