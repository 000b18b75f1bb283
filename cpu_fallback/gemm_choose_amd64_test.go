//go:build amd64 && !purego

package cpu

import "testing"

// TestChooseGemmKernelAVX512OptIn: the untested-on-hardware AVX-512 kernel is
// never picked by default, only on request.
func TestChooseGemmKernelAVX512OptIn(t *testing.T) {
	ks := []*gemmKernel{gemmGoKernel, gemmAVX2Kernel, gemmAVX512Kernel}
	if k := chooseGemmKernel(ks, false); k != gemmAVX2Kernel {
		t.Errorf("default choice %s, want avx2", k.name)
	}
	if k := chooseGemmKernel(ks, true); k != gemmAVX512Kernel {
		t.Errorf("opt-in choice %s, want the AVX-512 kernel", k.name)
	}
	if k := chooseGemmKernel(ks[:1], false); k != gemmGoKernel {
		t.Errorf("Go-only choice %s, want go", k.name)
	}
}
