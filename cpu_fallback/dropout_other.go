//go:build !amd64 || purego

package cpu

// dropoutKernel: no SIMD dropout in this build; dropoutApply's loop does
// every element.
func dropoutKernel([]float32, []float32, int, uint64, uint32, float32) int { return 0 }

// dropoutPairKernel: no SIMD dropout in this build.
func dropoutPairKernel([]float32, []float32, []float32, []float32, int, uint64, uint32, float32) int {
	return 0
}
