//go:build linux

package safetensors

import (
	"os"
	"syscall"
)

// mapFile maps path read-only into memory. It falls back to reading the file
// when it is empty (a zero-length mapping is an error) or mmap fails (for
// example on a filesystem without mmap support).
func mapFile(path string) ([]byte, func() error, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	size := st.Size()
	if size <= 0 || !st.Mode().IsRegular() || size != int64(int(size)) {
		return readWhole(path)
	}
	buf, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return readWhole(path)
	}
	return buf, func() error { return syscall.Munmap(buf) }, nil
}
