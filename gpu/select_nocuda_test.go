//go:build !cuda

package gpu

import (
	"errors"
	"strings"
	"testing"

	"github.com/houlsby/adapters/backend"
)

func TestOpenWithoutCUDA(t *testing.T) {
	b, err := Open(0)
	if b != nil || !errors.Is(err, backend.ErrNoCUDA) || !strings.Contains(err.Error(), "-tags cuda") {
		t.Fatalf("Open without the cuda tag: %v, %v", b, err)
	}
	if _, err := OpenBackend(0, Options{}); !errors.Is(err, backend.ErrNoCUDA) {
		t.Fatalf("OpenBackend without the cuda tag: %v", err)
	}
}
