//go:build amd64 && !purego

package cpu

import (
	"math"
	"math/rand"
	"testing"

	"golang.org/x/sys/cpu"
)

// TestChooseGemmKernelAVX512OptIn: chooseGemmKernel takes the AVX-512
// kernel only when allowed.
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

// TestGemmKernelRule states the rule of gemmKernelFor on this machine: the
// AVX-512 kernel for every shape on AMD family 0x1A (where it was measured
// faster), AVX2 on other AVX-512 CPUs unless HOULSBY_GEMM_AVX512=1, and the
// SIMD kernels sharing one k-block wherever AVX-512 exists.
func TestGemmKernelRule(t *testing.T) {
	vendor, family, model := cpuid()
	t.Logf("CPU: %s family %#x model %#x, AVX2 %v, AVX-512F %v; kernels %d; chosen %s",
		vendor, family, model, cpu.X86.HasAVX2, cpu.X86.HasAVX512F, len(gemmKernels), bestGemmKernel.name)
	shapes := [][3]int{{4096, 384, 384}, {4096, 64, 768}, {64, 768, 4096}, {48, 128, 32}, {1, 1, 1}}
	want := bestGemmKernel
	if cpu.X86.HasAVX512F && avx512Measured() && want != gemmAVX512Kernel {
		t.Errorf("AVX-512 measured faster on this family, but the default kernel is %s", want.name)
	}
	for _, s := range shapes {
		for _, ta := range []bool{false, true} {
			if k := gemmKernelFor(ta, s[0], s[1], s[2]); k != want {
				t.Errorf("gemmKernelFor(%v, %v) = %s, want %s", ta, s, k.name, want.name)
			}
		}
	}
	if cpu.X86.HasAVX512F && gemmAVX2Kernel.kc != gemmAVX512Kernel.kc {
		t.Errorf("AVX2 kc %d != AVX-512 kc %d: the kernels would round differently", gemmAVX2Kernel.kc, gemmAVX512Kernel.kc)
	}
	if avx512Measured() != (vendor == "AuthenticAMD" && family == 0x1a) {
		t.Errorf("avx512Measured() = %v for %s family %#x", avx512Measured(), vendor, family)
	}
}

// TestGemmKernelsBitwiseEqual: the SIMD kernels give bitwise the same C on
// every transpose case, alpha/beta pair, edge tile and direct-A or packed-A
// path, and the attention's tile shapes, so the choice between them changes
// speed only. Each is also within the reference tolerance (the other tests).
func TestGemmKernelsBitwiseEqual(t *testing.T) {
	var simd []*gemmKernel
	for _, k := range gemmKernels {
		if k != gemmGoKernel {
			simd = append(simd, k)
		}
	}
	if len(simd) < 2 {
		t.Skip("fewer than two SIMD kernels on this CPU")
	}
	shapes := [][3]int{{1, 1, 1}, {7, 5, 3}, {13, 33, 17}, {48, 128, 32}, {48, 32, 128}, {128, 32, 48},
		{145, 257, 300}, {300, 100, 1600}, {97, 64, 768}, {200, 64, 97}, {64, 200, 2000}, {37, 300, 769}}
	// Betas that are not powers of two, whose products with C round: an
	// edge tile must round them exactly as the kernels do.
	abs := append([][2]float32{{0.7, 1.3}, {1, 0.3}}, alphaBetas...)
	rng := rand.New(rand.NewSource(11))
	idx := 0
	for _, s := range shapes {
		for tc := 0; tc < 4; tc++ {
			ab := abs[idx%len(abs)]
			idx++
			g := newGemmCase(rng, tc&1 != 0, tc&2 != 0, s[0], s[1], s[2], idx%3, ab[0], ab[1])
			want := g.run(simd[0], 2)
			for _, k := range simd[1:] {
				for _, w := range []int{1, 3} {
					got := g.run(k, w)
					for i := range want {
						if math.Float32bits(got[i]) != math.Float32bits(want[i]) && !(got[i] != got[i] && want[i] != want[i]) {
							t.Fatalf("%v: %s (%d workers) gives %v at %d, %s gives %v", g, k.name, w, got[i], i, simd[0].name, want[i])
						}
					}
				}
			}
		}
	}
}

// TestPackKernelsMatchGo: the assembly packing routines (transpose8AVX via
// packBTRows8, copyRows12/16/32) give the Go routines' panels for every kc
// 1..40, both panel widths and padded leading dimensions at every offset.
func TestPackKernelsMatchGo(t *testing.T) {
	rng := rand.New(rand.NewSource(12))
	src := make([]float32, 40*64)
	for i := range src {
		src[i] = rng.Float32()
	}
	for kc := 1; kc <= 40; kc++ {
		for off := 0; off < 8; off++ {
			ld := kc + off + 3
			for _, nr := range []int{16, 32} {
				want, got := make([]float32, kc*nr), make([]float32, kc*nr)
				packBTRows8Go(want, nr, src, off, ld, kc)
				packBTRows8(got, nr, src, off, ld, kc)
				for i := range want {
					if want[i] != got[i] {
						t.Fatalf("packBTRows8 kc=%d off=%d nr=%d: element %d = %v, want %v", kc, off, nr, i, got[i], want[i])
					}
				}
			}
			ld = 32 + off
			for _, c := range []struct {
				w      int
				asm, g func(dst, src []float32, ld, kc int)
			}{{12, copyRows12, copyRows12Go}, {16, copyRows16, copyRows16Go}, {32, copyRows32, copyRows32Go}} {
				want, got := make([]float32, kc*c.w), make([]float32, kc*c.w)
				c.g(want, src[off:], ld, kc)
				c.asm(got, src[off:], ld, kc)
				for i := range want {
					if want[i] != got[i] {
						t.Fatalf("copyRows%d kc=%d off=%d: element %d = %v, want %v", c.w, kc, off, i, got[i], want[i])
					}
				}
			}
		}
	}
}
