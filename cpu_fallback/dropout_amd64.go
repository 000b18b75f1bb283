//go:build amd64 && !purego

package cpu

import "golang.org/x/sys/cpu"

// dropoutSIMD reports whether dropoutApply runs dropoutAVX512 (AVX512DQ
// provides the 64-bit multiply the hash needs; AVX2 has none, and emulating
// it costs about what the scalar loop does).
var dropoutSIMD = cpu.X86.HasAVX512F && cpu.X86.HasAVX512DQ

// dropoutKernel runs dropoutAVX512 on the first n&^15 elements and returns
// how many it did.
func dropoutKernel(dst, src []float32, base int, seed uint64, thr uint32, s float32) int {
	n := len(dst) &^ 15
	if !dropoutSIMD || n == 0 {
		return 0
	}
	_ = src[n-1]
	dropoutAVX512(&dst[0], &src[0], n, base, seed, thr, s)
	return n
}

// dropoutAVX512 sets dst[i] = src[i]·s when splitmix64(seed ^
// splitmix64(base+i)) >> 40 >= thr, else 0, for i < n (a positive multiple
// of 16).
//
//go:noescape
func dropoutAVX512(dst, src *float32, n int, base int, seed uint64, thr uint32, s float32)

// dropoutPairKernel is dropoutKernel on two arrays under one mask.
func dropoutPairKernel(dst, src, dst2, src2 []float32, base int, seed uint64, thr uint32, s float32) int {
	n := len(dst) &^ 15
	if !dropoutSIMD || n == 0 {
		return 0
	}
	_, _, _ = src[n-1], dst2[n-1], src2[n-1]
	dropoutPairAVX512(&dst[0], &src[0], &dst2[0], &src2[0], n, base, seed, thr, s)
	return n
}

// dropoutPairAVX512 is dropoutAVX512 on two arrays with one hash per
// element.
//
//go:noescape
func dropoutPairAVX512(dst, src, dst2, src2 *float32, n int, base int, seed uint64, thr uint32, s float32)
