package gpu

import "fmt"

// DeviceInfo describes a GPU as the driver reports it: what `train-gpu
// probe` prints and what the benchmarks' rooflines are computed from. It is
// plain data, so builds without the cuda tag (the probe's parent, the
// verification scripts' tests) share the type.
type DeviceInfo struct {
	Ordinal       int    `json:"ordinal"`
	Name          string `json:"name"`        // e.g. "NVIDIA H200"
	Description   string `json:"description"` // Backend.Name(), e.g. "cuda:0 NVIDIA H200 (sm_90, 139.8 GiB)"
	Major         int    `json:"cc_major"`
	Minor         int    `json:"cc_minor"`
	SMs           int    `json:"sms"`
	ClockKHz      int    `json:"clock_khz"`     // peak SM clock
	MemClockKHz   int    `json:"mem_clock_khz"` // peak memory clock
	BusWidthBits  int    `json:"bus_width_bits"`
	TotalMem      int64  `json:"total_mem_bytes"`
	DriverVersion int    `json:"driver_version"` // 1000·major + 10·minor, e.g. 13000 for 13.0
	PTXFiles      int    `json:"ptx_files"`
}

// Driver is the driver's CUDA version as "major.minor".
func (i DeviceInfo) Driver() string {
	return fmt.Sprintf("%d.%d", i.DriverVersion/1000, i.DriverVersion%1000/10)
}

// PeakBandwidth is the memory bandwidth the attributes imply, in bytes/s:
// two transfers per memory clock (double data rate) over the bus width.
// For the H100 SXM5 this gives 2 · 2.619 GHz · 5120 bit / 8 = 3.35 TB/s,
// the figure of its datasheet.
func (i DeviceInfo) PeakBandwidth() float64 {
	return 2 * float64(i.MemClockKHz) * 1e3 * float64(i.BusWidthBits) / 8
}

// tensorFLOPPerClockPerSM is the dense bf16 tensor-core rate with fp32
// accumulation, in FLOP (an FMA is 2) per SM per clock, by compute
// capability:
//   - 8.0 (A100): 1024 dense FP16/BF16 FMA per clock per SM (NVIDIA A100
//     Tensor Core GPU Architecture whitepaper: 312 TFLOP/s over 108 SMs at
//     1410 MHz);
//   - 9.0 (H100, H200): twice the A100's rate per SM, clock for clock
//     (NVIDIA H100 Tensor Core GPU Architecture whitepaper: 989.4 TFLOP/s
//     dense BF16 over 132 SMs at 1830 MHz for the H100 SXM5).
//
// Other architectures have no entry: their benchmarks report no
// tensor-core roofline rather than a guessed one.
var tensorFLOPPerClockPerSM = map[[2]int]float64{
	{8, 0}: 2048,
	{9, 0}: 4096,
}

// PeakTensorFLOPS is the dense bf16 tensor-core peak in FLOP/s at the peak
// SM clock the driver reports (SMs · FLOP per SM per clock · clock), and
// false for an architecture without a known per-SM rate. Cards often run
// below their peak clock, so a fraction of this peak is a conservative one.
func (i DeviceInfo) PeakTensorFLOPS() (float64, bool) {
	r, ok := tensorFLOPPerClockPerSM[[2]int{i.Major, i.Minor}]
	if !ok {
		return 0, false
	}
	return float64(i.SMs) * r * float64(i.ClockKHz) * 1e3, true
}

// Peaks states the roofline figures in words, for benchmark logs.
func (i DeviceInfo) Peaks() string {
	bw := fmt.Sprintf("memory %.2f TB/s (2 · %d kHz · %d bit / 8)", i.PeakBandwidth()/1e12, i.MemClockKHz, i.BusWidthBits)
	f, ok := i.PeakTensorFLOPS()
	if !ok {
		return fmt.Sprintf("%s; tensor cores: no per-SM rate known for sm_%d%d", bw, i.Major, i.Minor)
	}
	return fmt.Sprintf("%s; bf16 tensor cores %.1f TFLOP/s (%d SMs · %.0f FLOP/clock · %d kHz)",
		bw, f/1e12, i.SMs, tensorFLOPPerClockPerSM[[2]int{i.Major, i.Minor}], i.ClockKHz)
}
