//go:build !unix

package sweep

// processUsage is not measured on this platform: the result says 0.
func processUsage() (cpuSeconds float64, peakRSS int64) { return 0, 0 }
