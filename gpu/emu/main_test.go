package emu

import (
	"fmt"
	"os"
	"testing"
)

// TestMain skips the whole package, loudly, when the emulator is not built
// (CGO_ENABLED=0): its tests need the kernels compiled by cgo.
func TestMain(m *testing.M) {
	if !cgoEnabled {
		fmt.Println("SKIPPED: gpu/emu tests need cgo and a C++17 compiler (CGO_ENABLED=1); the kernels were not compiled")
		os.Exit(0)
	}
	os.Exit(m.Run())
}
