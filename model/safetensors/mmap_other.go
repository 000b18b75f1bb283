//go:build !linux

package safetensors

// mapFile reads the whole file; memory mapping is only used on Linux.
func mapFile(path string) ([]byte, func() error, error) {
	return readWhole(path)
}
