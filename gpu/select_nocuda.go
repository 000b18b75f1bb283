//go:build !cuda

package gpu

import (
	"fmt"

	"github.com/houlsby/adapters/backend"
)

// CUDABuild is true in binaries built with the cuda tag.
const CUDABuild = false

// Probe would open GPU ordinal and describe it; without the cuda tag it
// returns an error wrapping backend.ErrNoCUDA.
func Probe(ordinal int) (DeviceInfo, error) {
	return DeviceInfo{}, fmt.Errorf("gpu.Probe(%d): %w", ordinal, backend.ErrNoCUDA)
}

// Open would return the CUDA backend on GPU ordinal; this binary was built
// without the cuda tag, so it returns an error wrapping backend.ErrNoCUDA.
func Open(ordinal int) (backend.Backend, error) {
	return nil, fmt.Errorf("gpu.Open(%d): %w", ordinal, backend.ErrNoCUDA)
}

// OpenBackend is Open returning the concrete *Backend; without the cuda tag
// it returns an error wrapping backend.ErrNoCUDA.
func OpenBackend(ordinal int, opts Options) (*Backend, error) {
	return nil, fmt.Errorf("gpu.Open(%d): %w", ordinal, backend.ErrNoCUDA)
}
