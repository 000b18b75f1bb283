package gpu

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// The peaks of DeviceInfo reproduce the datasheet figures from the
// attributes the driver reports for those cards.
func TestDeviceInfoPeaks(t *testing.T) {
	// H100 SXM5: 132 SMs; HBM3 at 2619 MHz over 5120 bits; the datasheet's
	// 989.4 dense bf16 TFLOP/s is at 1830 MHz.
	h100 := DeviceInfo{Major: 9, Minor: 0, SMs: 132, ClockKHz: 1830000, MemClockKHz: 2619000, BusWidthBits: 5120, DriverVersion: 12040}
	assert.InDelta(t, 3.352e12, h100.PeakBandwidth(), 1e9)
	f, ok := h100.PeakTensorFLOPS()
	assert.True(t, ok)
	assert.InDelta(t, 989.4e12, f, 0.1e12)
	assert.Equal(t, "12.4", h100.Driver())
	assert.Contains(t, h100.Peaks(), "memory 3.35 TB/s (2 · 2619000 kHz · 5120 bit / 8)")
	assert.Contains(t, h100.Peaks(), "bf16 tensor cores 989.4 TFLOP/s (132 SMs · 4096 FLOP/clock · 1830000 kHz)")
	// A100 SXM4 40GB: 108 SMs at 1410 MHz (312 TFLOP/s), HBM2 at 1215 MHz
	// over 5120 bits (1555 GB/s).
	a100 := DeviceInfo{Major: 8, Minor: 0, SMs: 108, ClockKHz: 1410000, MemClockKHz: 1215000, BusWidthBits: 5120, DriverVersion: 13000}
	f, _ = a100.PeakTensorFLOPS()
	assert.InDelta(t, 312e12, f, 1e12)
	assert.InDelta(t, 1.555e12, a100.PeakBandwidth(), 1e9)
	assert.Equal(t, "13.0", a100.Driver())
	// No rate known for other architectures: no tensor-core roofline.
	ada := DeviceInfo{Major: 8, Minor: 9, SMs: 128, ClockKHz: 2520000}
	_, ok = ada.PeakTensorFLOPS()
	assert.False(t, ok)
	assert.Contains(t, ada.Peaks(), "no per-SM rate known for sm_89")
}
