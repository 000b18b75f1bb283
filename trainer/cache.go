package trainer

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"

	"github.com/houlsby/adapters/model"
)

// frozenCache keeps, for the examples of one split, the model's values at
// its cache point (model.Model.CachePoint): the output of the frozen layers
// below the lowest trainable tensor, computed once and reused in later
// epochs (train.cache_frozen). Values live in memory up to a budget, then
// in a scratch file up to a second budget; examples beyond both are simply
// recomputed. Values are stored exactly (float32), so a step from the cache
// is bitwise the step from scratch.
type frozenCache struct {
	mem      map[int][]float32
	memLeft  int64 // bytes
	file     *os.File
	path     string
	at       map[int][2]int64 // example → offset, floats in the file
	end      int64            // the file's length
	diskLeft int64            // bytes
	buf      []byte
	// Hits and Misses count lookups of whole batches.
	Hits, Misses int
}

// newFrozenCache makes a cache with memMB megabytes of memory and diskMB of
// scratch file at path (created on first use, removed by close).
func newFrozenCache(path string, memMB, diskMB int) *frozenCache {
	return &frozenCache{mem: map[int][]float32{}, memLeft: int64(memMB) << 20, path: path, at: map[int][2]int64{}, diskLeft: int64(diskMB) << 20}
}

// batch returns the cached values of the examples idx, or nil unless every
// one of them is cached.
func (c *frozenCache) batch(idx []int) ([][]float32, error) {
	out := make([][]float32, len(idx))
	for j, i := range idx {
		v, ok, err := c.get(i)
		if err != nil {
			return nil, err
		}
		if !ok {
			c.Misses++
			return nil, nil
		}
		out[j] = v
	}
	c.Hits++
	return out, nil
}

// get returns example i's values.
func (c *frozenCache) get(i int) ([]float32, bool, error) {
	if v, ok := c.mem[i]; ok {
		return v, true, nil
	}
	loc, ok := c.at[i]
	if !ok {
		return nil, false, nil
	}
	n := int(loc[1])
	if cap(c.buf) < 4*n {
		c.buf = make([]byte, 4*n)
	}
	b := c.buf[:4*n]
	if _, err := c.file.ReadAt(b, loc[0]); err != nil {
		return nil, false, fmt.Errorf("frozen-layer cache %s: %w", c.path, err)
	}
	v := make([]float32, n)
	for k := range v {
		v[k] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*k:]))
	}
	return v, true, nil
}

// put stores example i's values (a copy) if the budgets allow.
func (c *frozenCache) put(i int, v []float32) error {
	if _, ok := c.mem[i]; ok {
		return nil
	}
	if _, ok := c.at[i]; ok {
		return nil
	}
	size := int64(4 * len(v))
	if size <= c.memLeft {
		c.mem[i] = append([]float32(nil), v...)
		c.memLeft -= size
		return nil
	}
	if size > c.diskLeft {
		return nil
	}
	if c.file == nil {
		f, err := os.OpenFile(c.path, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o600)
		if err != nil {
			return fmt.Errorf("frozen-layer cache: %w", err)
		}
		c.file = f
	}
	b := make([]byte, size)
	for k, x := range v {
		binary.LittleEndian.PutUint32(b[4*k:], math.Float32bits(x))
	}
	if _, err := c.file.WriteAt(b, c.end); err != nil {
		return fmt.Errorf("frozen-layer cache %s: %w", c.path, err)
	}
	c.at[i] = [2]int64{c.end, int64(len(v))}
	c.end += size
	c.diskLeft -= size
	return nil
}

// store takes the values at the cache point of the last forward pass (of
// the examples idx) from m and keeps them.
func (c *frozenCache) store(m *model.Model, idx []int) error {
	vals := make([][]float32, len(idx))
	if err := m.CacheValues(vals); err != nil {
		return err
	}
	for j, i := range idx {
		if err := c.put(i, vals[j]); err != nil {
			return err
		}
	}
	return nil
}

// close removes the scratch file.
func (c *frozenCache) close() {
	if c.file != nil {
		c.file.Close()
		os.Remove(c.path)
		c.file = nil
	}
}
