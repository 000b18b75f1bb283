//go:build !cuda

package gpu

import (
	"fmt"

	"github.com/houlsby/adapters/backend"
)

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
