//go:build !cgo

package emu

import (
	"errors"

	"github.com/houlsby/adapters/gpu"
)

// Without cgo the emulator cannot compile the kernels; this stub keeps
// `go build ./...` and `go vet ./...` working, and its tests skip (see
// TestMain).

// ErrNoCgo is returned by every method of the stub Device.
var ErrNoCgo = errors.New("emu: the kernel emulator needs cgo and a C++17 compiler (build with CGO_ENABLED=1)")

const cgoEnabled = false

// Device is the stub emulated device.
type Device struct{}

var _ gpu.Device = (*Device)(nil)

// New returns the stub device.
func New() *Device { return &Device{} }

// Name describes the stub.
func (*Device) Name() string { return "emu (unavailable: built without cgo)" }

// Alloc fails: no emulator.
func (*Device) Alloc(int) (gpu.DevicePtr, error) { return 0, ErrNoCgo }

// Free fails: no emulator.
func (*Device) Free(gpu.DevicePtr) error { return ErrNoCgo }

// HtoD fails: no emulator.
func (*Device) HtoD(gpu.DevicePtr, []byte) error { return ErrNoCgo }

// DtoH fails: no emulator.
func (*Device) DtoH([]byte, gpu.DevicePtr) error { return ErrNoCgo }

// DtoD fails: no emulator.
func (*Device) DtoD(gpu.DevicePtr, gpu.DevicePtr, int) error { return ErrNoCgo }

// Memset0 fails: no emulator.
func (*Device) Memset0(gpu.DevicePtr, int) error { return ErrNoCgo }

// Launch fails: no emulator.
func (*Device) Launch(string, gpu.Dim3, gpu.Dim3, int, ...uint64) error { return ErrNoCgo }

// Sync fails: no emulator.
func (*Device) Sync() error { return ErrNoCgo }

// Kernels is empty without cgo.
func Kernels() []string { return nil }
