package gpu

// The caching device-memory pool behind Alloc and Free.

import (
	"fmt"
	"sort"
)

// PoolStats counts the pool's traffic (see Backend.PoolStats).
type PoolStats struct {
	// DeviceAllocs and DeviceFrees count calls to Device.Alloc and
	// Device.Free; in a steady-state training step both stay constant.
	DeviceAllocs, DeviceFrees int
	// Reuses counts allocations served from the free lists.
	Reuses int
	// LiveBytes is held by live tensors, CachedBytes by the free lists
	// (both in size-class bytes).
	LiveBytes, CachedBytes int
}

// PoolStats reports the memory pool's counters.
func (b *Backend) PoolStats() PoolStats { return b.pool.stats }

// ReleaseCached returns every cached (free) block to the device.
func (b *Backend) ReleaseCached() error {
	if err := b.pool.releaseCached(b.dev); err != nil {
		return fmt.Errorf("gpu.ReleaseCached: %w", err)
	}
	return nil
}

// Size classes: small blocks round up to a power of two (at least 512 bytes,
// twice the 256-byte alignment cudaMalloc guarantees, so views of them stay
// aligned for vector loads); blocks above 1 MiB round up to a multiple of
// 1 MiB, wasting at most 1 MiB per block instead of up to half of it.
const (
	poolMinClass   = 512
	poolLargeAlign = 1 << 20
)

// poolClass is the size class (the bytes actually allocated) for n bytes.
func poolClass(n int) int {
	if n <= poolMinClass {
		return poolMinClass
	}
	if n <= poolLargeAlign {
		c := poolMinClass
		for c < n {
			c <<= 1
		}
		return c
	}
	return (n + poolLargeAlign - 1) / poolLargeAlign * poolLargeAlign
}

// pool is a caching allocator with one free list per size class. Blocks are
// never split or merged: a training step allocates the same sizes every
// iteration, so after the first step every request is served from a list.
type pool struct {
	free  map[int][]DevicePtr // size class → free blocks
	live  map[DevicePtr]int   // live block → its size class
	stats PoolStats
}

func (p *pool) init() {
	p.free = make(map[int][]DevicePtr)
	p.live = make(map[DevicePtr]int)
}

// get returns a block of at least n bytes (contents undefined). When the
// device is out of memory it releases the cached blocks and tries once more.
func (p *pool) get(dev Device, n int) (DevicePtr, error) {
	c := poolClass(n)
	if l := p.free[c]; len(l) > 0 {
		ptr := l[len(l)-1]
		p.free[c] = l[:len(l)-1]
		p.live[ptr] = c
		p.stats.Reuses++
		p.stats.CachedBytes -= c
		p.stats.LiveBytes += c
		return ptr, nil
	}
	ptr, err := dev.Alloc(c)
	if err != nil && p.stats.CachedBytes > 0 {
		if rerr := p.releaseCached(dev); rerr != nil {
			return 0, fmt.Errorf("%w (and releasing the pool's cache failed: %v)", err, rerr)
		}
		ptr, err = dev.Alloc(c)
	}
	if err != nil {
		return 0, fmt.Errorf("device alloc of %d bytes (%d live, pool cache empty): %w", c, p.stats.LiveBytes, err)
	}
	p.stats.DeviceAllocs++
	p.live[ptr] = c
	p.stats.LiveBytes += c
	return ptr, nil
}

// put returns a live block to its free list; false if ptr is not live.
func (p *pool) put(ptr DevicePtr) bool {
	c, ok := p.live[ptr]
	if !ok {
		return false
	}
	delete(p.live, ptr)
	p.free[c] = append(p.free[c], ptr)
	p.stats.LiveBytes -= c
	p.stats.CachedBytes += c
	return true
}

// releaseCached frees every cached block on the device.
func (p *pool) releaseCached(dev Device) error {
	var first error
	for c, l := range p.free {
		for _, ptr := range l {
			if err := dev.Free(ptr); err != nil && first == nil {
				first = err
			}
			p.stats.DeviceFrees++
			p.stats.CachedBytes -= c
		}
		delete(p.free, c)
	}
	return first
}

// releaseAll frees every block, cached or live, in address order (so that a
// failure is reproducible).
func (p *pool) releaseAll(dev Device) error {
	first := p.releaseCached(dev)
	ptrs := make([]DevicePtr, 0, len(p.live))
	for ptr := range p.live {
		ptrs = append(ptrs, ptr)
	}
	sort.Slice(ptrs, func(i, j int) bool { return ptrs[i] < ptrs[j] })
	for _, ptr := range ptrs {
		if err := dev.Free(ptr); err != nil && first == nil {
			first = err
		}
		p.stats.DeviceFrees++
		p.stats.LiveBytes -= p.live[ptr]
		delete(p.live, ptr)
	}
	return first
}
