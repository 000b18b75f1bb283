// Package cpu is the pure-Go, float32 backend (no cgo). It implements
// backend.Backend on all cores and is the reference every other backend is
// checked against.
package cpu
