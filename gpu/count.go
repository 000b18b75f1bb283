package gpu

// DeviceCounts are the calls a CountingDevice saw.
type DeviceCounts struct {
	Launches, HtoD, DtoH, DtoD, Memset0, Sync, Alloc, Free int
	// Kernels counts launches by kernel name.
	Kernels map[string]int
}

// Sub returns c - o, field by field (kernels with no launches in between
// are left out).
func (c DeviceCounts) Sub(o DeviceCounts) DeviceCounts {
	d := DeviceCounts{Launches: c.Launches - o.Launches, HtoD: c.HtoD - o.HtoD, DtoH: c.DtoH - o.DtoH, DtoD: c.DtoD - o.DtoD,
		Memset0: c.Memset0 - o.Memset0, Sync: c.Sync - o.Sync, Alloc: c.Alloc - o.Alloc, Free: c.Free - o.Free, Kernels: map[string]int{}}
	for k, n := range c.Kernels {
		if n -= o.Kernels[k]; n != 0 {
			d.Kernels[k] = n
		}
	}
	return d
}

// Clone returns a copy that later calls do not change.
func (c DeviceCounts) Clone() DeviceCounts {
	d := c
	d.Kernels = make(map[string]int, len(c.Kernels))
	for k, n := range c.Kernels {
		d.Kernels[k] = n
	}
	return d
}

// CountingDevice is a Device that counts the calls it passes on: the launch
// and synchronisation counts of a training step (docs/gpu-status.md,
// "Launch overhead") come from one wrapped around the emulator or a fake.
// DtoH counts as a synchronisation point of its own (it waits for the
// queued work), not in Sync.
type CountingDevice struct {
	Device
	Counts DeviceCounts
}

// NewCountingDevice wraps d.
func NewCountingDevice(d Device) *CountingDevice {
	return &CountingDevice{Device: d, Counts: DeviceCounts{Kernels: map[string]int{}}}
}

// Alloc implements Device.
func (c *CountingDevice) Alloc(bytes int) (DevicePtr, error) {
	c.Counts.Alloc++
	return c.Device.Alloc(bytes)
}

// Free implements Device.
func (c *CountingDevice) Free(p DevicePtr) error {
	c.Counts.Free++
	return c.Device.Free(p)
}

// HtoD implements Device.
func (c *CountingDevice) HtoD(dst DevicePtr, src []byte) error {
	c.Counts.HtoD++
	return c.Device.HtoD(dst, src)
}

// DtoH implements Device.
func (c *CountingDevice) DtoH(dst []byte, src DevicePtr) error {
	c.Counts.DtoH++
	return c.Device.DtoH(dst, src)
}

// DtoD implements Device.
func (c *CountingDevice) DtoD(dst, src DevicePtr, bytes int) error {
	c.Counts.DtoD++
	return c.Device.DtoD(dst, src, bytes)
}

// Memset0 implements Device.
func (c *CountingDevice) Memset0(dst DevicePtr, bytes int) error {
	c.Counts.Memset0++
	return c.Device.Memset0(dst, bytes)
}

// Launch implements Device.
func (c *CountingDevice) Launch(kernel string, grid, block Dim3, sharedBytes int, args ...uint64) error {
	c.Counts.Launches++
	c.Counts.Kernels[kernel]++
	return c.Device.Launch(kernel, grid, block, sharedBytes, args...)
}

// Sync implements Device.
func (c *CountingDevice) Sync() error {
	c.Counts.Sync++
	return c.Device.Sync()
}
