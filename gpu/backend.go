package gpu

// The Backend type and its lifetime: options, construction, Close and Sync.
// The rest of backend.Backend is spread by concern:
//   - memory.go: tensors (Alloc, View, Free, Zero) over the caching pool;
//   - pool.go: the caching allocator over the Device;
//   - convert.go: host↔device copies and dtype conversion (Upload,
//     Download, Copy and the bf16/f16 roundings);
//   - ops_*.go: the launchers of the ops, one file per kernel family
//     (kernels/*.cu), and ops_common.go their shared argument checks.
//
// The Backend is not safe for concurrent use: one goroutine drives it (the
// training loop), as one CUDA stream orders its work.

import (
	"fmt"
	"io"

	"github.com/houlsby/adapters/backend"
)

// Options configures New.
type Options struct {
	// BF16 selects bf16 storage for frozen weights and activations (the
	// GPU's default through Open); false keeps them in F32, which is slower
	// but numerically closest to the CPU backend.
	BF16 bool
	// Graphs replays recurring sequences of kernels as CUDA Graphs
	// (graph.go); the device must be a GraphDevice. Results are those of
	// direct launches; launch errors surface at the next host copy or Sync.
	Graphs bool
}

// Backend is the CUDA backend: backend.Backend over a Device (the real GPU,
// package cuda, or the kernel emulator, package gpu/emu).
type Backend struct {
	// dev is what the launchers use: base itself, or in graph mode the
	// recorder (rec) over it.
	dev  Device
	base Device
	rec  *graphRecorder
	opts Options
	pool pool
	// closeDev is set when the Backend owns dev (Open made it) and Close
	// must close it too.
	closeDev bool
	// host is the staging buffer of Upload/Download/Copy, grown on demand
	// and kept, so the steady-state training step allocates no host memory.
	host []byte
	// hostF is the float32 staging buffer of Copy between dtypes.
	hostF []float32
	// hostI holds indices read back by checkIndices.
	hostI []int32
	// decayChecked holds the AdamWStep decay tables already read back and
	// found well-formed, with their largest range end (see checkDecay).
	decayChecked map[decayKey]int
	// segChecked holds the grouped ops' segment tables already read back
	// (see segTable), as host copies.
	segChecked map[decayKey][]int32
	// known records the I32 memory UploadInt32 wrote (known.go).
	known []knownInts
}

// New returns a Backend over dev. The caller keeps ownership of dev: Close
// frees the Backend's device memory but does not close dev.
func New(dev Device, opts Options) (*Backend, error) {
	if dev == nil {
		return nil, fmt.Errorf("gpu.New: nil Device")
	}
	b := &Backend{dev: dev, base: dev, opts: opts}
	if opts.Graphs {
		gd, ok := dev.(GraphDevice)
		if !ok {
			return nil, fmt.Errorf("gpu.New: Options.Graphs needs a GraphDevice (cuda's, or gpu.ReplayGraphs); %s is a %T", dev.Name(), dev)
		}
		b.rec = newGraphRecorder(gd)
		b.dev = b.rec
	}
	b.pool.init()
	return b, nil
}

// GraphStats reports what graph mode did (zero without Options.Graphs).
func (b *Backend) GraphStats() GraphStats {
	if b.rec == nil {
		return GraphStats{}
	}
	return b.rec.stats
}

// Name identifies the backend by its device, e.g. "cuda:0 NVIDIA H100 80GB HBM3".
func (b *Backend) Name() string { return b.dev.Name() }

// FrozenDType is BF16 with Options.BF16, else F32.
func (b *Backend) FrozenDType() backend.DType {
	if b.opts.BF16 {
		return backend.BF16
	}
	return backend.F32
}

// Device returns the device the backend issues its work to (for benchmarks
// and tools that need the device's extra abilities, such as event timing);
// in graph mode that is the recorder, which has none of them.
func (b *Backend) Device() Device { return b.dev }

// Close waits for queued work, then frees every device allocation of the
// backend, live tensors included (using one afterwards is a bug), and closes
// the device when the backend owns it (Open). The backend is unusable after.
func (b *Backend) Close() error {
	err := b.dev.Sync()
	if ferr := b.pool.releaseAll(b.dev); ferr != nil && err == nil {
		err = ferr
	}
	if b.rec != nil {
		if gerr := b.rec.close(); gerr != nil && err == nil {
			err = gerr
		}
	}
	if c, ok := b.base.(io.Closer); ok && b.closeDev {
		if cerr := c.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("gpu.Close: %w", err)
	}
	return nil
}

// Sync waits for all queued work and reports a deferred device fault.
func (b *Backend) Sync() error {
	if err := b.dev.Sync(); err != nil {
		return fmt.Errorf("gpu.Sync on %s: %w", b.dev.Name(), err)
	}
	return nil
}
