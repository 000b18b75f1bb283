//go:build cuda

package gpu

import (
	"fmt"
	"os"
	"time"

	"github.com/houlsby/adapters/backend"
	"github.com/houlsby/adapters/cuda"
)

// CUDABuild is true in binaries built with the cuda tag.
const CUDABuild = true

// Probe opens GPU ordinal (context, stream, every PTX module loaded), reads
// its attributes and closes it again: the cheap check `train-gpu probe`
// runs before a CUDA build is trusted with a job.
func Probe(ordinal int) (DeviceInfo, error) {
	d, err := cuda.Open(ordinal)
	if err != nil {
		return DeviceInfo{}, fmt.Errorf("gpu.Probe: %w", err)
	}
	info := CUDADevice(d).Info(ordinal)
	if err := d.Close(); err != nil {
		return info, fmt.Errorf("gpu.Probe: %w", err)
	}
	return info, nil
}

// Open returns the CUDA backend on GPU ordinal (0-based) with bf16 frozen
// weights and activations, or the options the environment sets
// (OptionsFromEnv). Close it (it implements io.Closer) to release the GPU's
// context.
func Open(ordinal int) (backend.Backend, error) {
	opts, err := OptionsFromEnv(os.Getenv)
	if err != nil {
		return nil, fmt.Errorf("gpu.Open: %w", err)
	}
	b, err := OpenBackend(ordinal, opts)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// OpenBackend is Open returning the concrete *Backend with chosen options.
func OpenBackend(ordinal int, opts Options) (*Backend, error) {
	if opts.Graphs {
		if err := cuda.GraphAPI(); err != nil {
			return nil, fmt.Errorf("gpu.Open with %s=1: %w", EnvGraphs, err)
		}
	}
	d, err := cuda.Open(ordinal)
	if err != nil {
		return nil, fmt.Errorf("gpu.Open: %w", err)
	}
	b, err := New(CUDADevice(d), opts)
	if err != nil {
		_ = d.Close()
		return nil, fmt.Errorf("gpu.Open: %w", err)
	}
	b.closeDev = true
	return b, nil
}

// CUDADevice adapts a cuda.Device to the Device interface. (Package cuda
// cannot implement Device itself: it would have to import gpu, which imports
// it for Open.) The result also has Close, StartTimer and StopTimer.
func CUDADevice(d *cuda.Device) *CUDA { return &CUDA{D: d} }

// CUDA is a cuda.Device seen as a Device.
type CUDA struct{ D *cuda.Device }

// Name implements Device.
func (c *CUDA) Name() string { return c.D.Name() }

// Alloc implements Device.
func (c *CUDA) Alloc(bytes int) (DevicePtr, error) {
	p, err := c.D.Alloc(bytes)
	return DevicePtr(p), err
}

// Free implements Device.
func (c *CUDA) Free(p DevicePtr) error { return c.D.Free(uint64(p)) }

// HtoD implements Device.
func (c *CUDA) HtoD(dst DevicePtr, src []byte) error { return c.D.HtoD(uint64(dst), src) }

// DtoH implements Device.
func (c *CUDA) DtoH(dst []byte, src DevicePtr) error { return c.D.DtoH(dst, uint64(src)) }

// DtoD implements Device.
func (c *CUDA) DtoD(dst, src DevicePtr, bytes int) error {
	return c.D.DtoD(uint64(dst), uint64(src), bytes)
}

// Memset0 implements Device.
func (c *CUDA) Memset0(dst DevicePtr, bytes int) error { return c.D.Memset0(uint64(dst), bytes) }

// Launch implements Device.
func (c *CUDA) Launch(kernel string, grid, block Dim3, sharedBytes int, args ...uint64) error {
	return c.D.Launch(kernel, cuda.Dim3(grid), cuda.Dim3(block), sharedBytes, args...)
}

// Sync implements Device.
func (c *CUDA) Sync() error { return c.D.Sync() }

// Close closes the device (its context and all its memory).
func (c *CUDA) Close() error { return c.D.Close() }

// Info returns the device's attributes as a DeviceInfo.
func (c *CUDA) Info(ordinal int) DeviceInfo {
	p := c.D.Props()
	return DeviceInfo{Ordinal: ordinal, Name: p.Name, Description: c.D.Name(), Major: p.Major, Minor: p.Minor,
		SMs: p.SMs, ClockKHz: p.ClockKHz, MemClockKHz: p.MemClockKHz, BusWidthBits: p.BusWidthBits,
		TotalMem: p.TotalMem, DriverVersion: p.DriverVersion, PTXFiles: p.PTXFiles}
}

// StartTimer records the start event on the device's stream.
func (c *CUDA) StartTimer() error { return c.D.StartTimer() }

// StopTimer returns the GPU time since StartTimer.
func (c *CUDA) StopTimer() (time.Duration, error) { return c.D.StopTimer() }

// NewGraph implements GraphDevice: CUDA Graphs through stream capture
// (package cuda).
func (c *CUDA) NewGraph(ops []GraphOp) (Graph, error) {
	cops := make([]cuda.GraphOp, len(ops))
	for i, op := range ops {
		cops[i] = cuda.GraphOp{Kind: int(op.Kind), Kernel: op.Kernel, Grid: cuda.Dim3(op.Grid), Block: cuda.Dim3(op.Block),
			Shared: op.Shared, Args: op.Args, Dst: uint64(op.Dst), Src: uint64(op.Src), Bytes: op.Bytes}
	}
	g, err := c.D.NewGraph(cops)
	if err != nil {
		return nil, err
	}
	return g, nil
}

var (
	_ Device      = (*CUDA)(nil)
	_ GraphDevice = (*CUDA)(nil)
)

// The kinds of cuda.GraphOp are those of OpKind (a mismatch does not compile).
var (
	_ = [1]int{}[OpLaunch-cuda.OpLaunch]
	_ = [1]int{}[OpMemset0-cuda.OpMemset0]
	_ = [1]int{}[OpDtoD-cuda.OpDtoD]
)
