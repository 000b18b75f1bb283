package kernellist

import (
	"bytes"
	"os"
	"regexp"
	"slices"
	"testing"
)

// TestGeneratedFileIsCurrent: gpu/emu/kernel_list.h is what Render gives,
// i.e. `go generate ./gpu/emu` has run since gpu/kernels.go last changed.
func TestGeneratedFileIsCurrent(t *testing.T) {
	got, err := os.ReadFile("../../kernel_list.h")
	if err != nil {
		t.Fatal(err)
	}
	if want := Render(); !bytes.Equal(got, want) {
		t.Fatalf("gpu/emu/kernel_list.h is stale: run `go generate ./gpu/emu`\n--- want\n%s--- have\n%s", want, got)
	}
}

// TestSelfTestKernelsAreDefined: SelfTest lists exactly the kernels
// kernels/emu/selftest.cuh defines.
func TestSelfTestKernelsAreDefined(t *testing.T) {
	src, err := os.ReadFile("../../../../kernels/emu/selftest.cuh")
	if err != nil {
		t.Fatal(err)
	}
	var defined []string
	for _, m := range regexp.MustCompile(`extern "C" __global__ void (\w+)\s*\(`).FindAllSubmatch(src, -1) {
		defined = append(defined, string(m[1]))
	}
	want := slices.Clone(SelfTest)
	slices.Sort(defined)
	slices.Sort(want)
	if !slices.Equal(defined, want) {
		t.Errorf("selftest.cuh defines %v; SelfTest lists %v", defined, want)
	}
}
