package gpu

// CUDA Graphs (Options.Graphs): the training step's kernels replayed as
// graphs instead of launched one by one.
//
// A launch through the driver costs the host microseconds (the locked
// thread's hand-off, gorgonia.org/cu's argument copies, the driver's own
// work) and leaves the GPU idle between small kernels; a graph launch
// submits a whole recorded sequence at once. A training step is not one
// sequence: it reads the loss and the gradient norm back to the host, and
// those reads end a segment. So the backend records segments: in graph
// mode its Device is a graphRecorder, which queues every stream operation
// (kernel launch, zeroing, device-to-device copy) instead of issuing it,
// and at the first call that must reach the device (a host copy, Sync,
// Alloc, Free) flushes the queue:
//
//   - a short segment (fewer than minGraphOps operations) is issued as
//     before, one operation at a time;
//   - a segment whose structure (kernels, grids, blocks, shared memory,
//     argument counts; the zeroings' and copies' addresses and sizes) is
//     new is issued directly and remembered;
//   - the second time that structure comes, the device captures it into an
//     executable graph (GraphDevice.NewGraph) and launches that;
//   - from then on the graph is launched again, after SetArgs has patched
//     the launches whose arguments changed (dropout seeds, the AdamW step's
//     learning rate and bias corrections; the buffers stay the same once
//     the memory pool is in its steady state).
//
// Every operation runs in the order it was queued, on the same stream, so
// the results are those of the direct launches, bit for bit (the emulator
// test TestGraphsMatchDirect checks it). What changes is when a launch
// error is seen: at the flush (the next host copy or Sync), as a fault of
// a queued kernel is in CUDA itself.

import (
	"errors"
	"fmt"
	"slices"
)

// GraphDevice is a Device that can capture stream operations into a graph
// and replay it: the real GPU (package cuda, CUDA Graphs through stream
// capture) or ReplayGraphs over any Device (the emulator).
type GraphDevice interface {
	Device
	// NewGraph captures ops, in order, into a graph, without running them.
	NewGraph(ops []GraphOp) (Graph, error)
}

// Graph is a captured sequence of stream operations.
type Graph interface {
	// SetArgs replaces the arguments of operation i (a launch; the same
	// number of arguments) for the following launches of the graph. An
	// implementation may apply it at the next Launch and report a failure
	// there (package cuda does: one hand-off to its thread per launch).
	SetArgs(i int, args []uint64) error
	// Launch runs the graph on the device's stream.
	Launch() error
	// Destroy releases the graph.
	Destroy() error
}

// OpKind is the kind of a stream operation.
type OpKind uint8

// Stream operations a graph holds.
const (
	OpLaunch OpKind = iota
	OpMemset0
	OpDtoD
)

// GraphOp is one stream operation. For OpLaunch, Kernel, Grid, Block,
// Shared and Args; for OpMemset0, Dst and Bytes; for OpDtoD, Dst, Src and
// Bytes.
type GraphOp struct {
	Kind        OpKind
	Kernel      string
	Grid, Block Dim3
	Shared      int
	Args        []uint64
	Dst, Src    DevicePtr
	Bytes       int
}

// issue runs op on d directly.
func (op *GraphOp) issue(d Device) error {
	switch op.Kind {
	case OpLaunch:
		return d.Launch(op.Kernel, op.Grid, op.Block, op.Shared, op.Args...)
	case OpMemset0:
		return d.Memset0(op.Dst, op.Bytes)
	case OpDtoD:
		return d.DtoD(op.Dst, op.Src, op.Bytes)
	}
	return fmt.Errorf("gpu: stream operation of kind %d", op.Kind)
}

// sameShape reports whether op and o have the same structure: everything
// but a launch's argument values.
func (op *GraphOp) sameShape(o *GraphOp) bool {
	return op.Kind == o.Kind && op.Kernel == o.Kernel && op.Grid == o.Grid && op.Block == o.Block &&
		op.Shared == o.Shared && len(op.Args) == len(o.Args) && op.Dst == o.Dst && op.Src == o.Src && op.Bytes == o.Bytes
}

// Tuning of the recorder.
const (
	minGraphOps = 8  // shorter segments are issued directly
	maxGraphs   = 32 // graphs kept (per backend); the least recently used goes
)

// GraphStats counts what the recorder did.
type GraphStats struct {
	Segments     int // flushed segments of at least minGraphOps operations
	Captured     int // graphs captured
	Replays      int // graph launches (the first launch after a capture included)
	PatchedOps   int // launches whose arguments SetArgs changed before a replay
	DirectOps    int // operations issued one by one (short or first-seen segments)
	Evicted      int // graphs destroyed to keep at most maxGraphs
	GraphOpsRun  int // operations run inside graphs
	LastSegments int // size of the last flushed segment
}

// graphEntry is one segment structure and, from its second occurrence on,
// its graph.
type graphEntry struct {
	ops   []GraphOp // the structure, and the arguments the graph holds now
	graph Graph
	used  int // the recorder's clock at the last use, for eviction
}

// graphRecorder is the Backend's Device in graph mode (see the top of the
// file). It is used by one goroutine, as the Backend is.
type graphRecorder struct {
	dev     GraphDevice
	pending []GraphOp
	args    []uint64 // storage of the pending launches' arguments
	hash    uint64   // FNV-1a of the pending operations' structure
	entries map[uint64][]*graphEntry
	clock   int
	stats   GraphStats
}

func newGraphRecorder(dev GraphDevice) *graphRecorder {
	return &graphRecorder{dev: dev, entries: map[uint64][]*graphEntry{}, hash: fnvOffset}
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func (r *graphRecorder) mix(v uint64) {
	for i := 0; i < 8; i++ {
		r.hash ^= v & 0xff
		r.hash *= fnvPrime
		v >>= 8
	}
}

func (r *graphRecorder) mixString(s string) {
	for i := 0; i < len(s); i++ {
		r.hash ^= uint64(s[i])
		r.hash *= fnvPrime
	}
	r.mix(uint64(len(s)))
}

func (r *graphRecorder) queue(op GraphOp) {
	r.mix(uint64(op.Kind))
	r.mixString(op.Kernel)
	for _, d := range []Dim3{op.Grid, op.Block} {
		r.mix(uint64(d.X) | uint64(d.Y)<<21 | uint64(d.Z)<<42)
	}
	r.mix(uint64(op.Shared))
	r.mix(uint64(len(op.Args)))
	r.mix(uint64(op.Dst))
	r.mix(uint64(op.Src))
	r.mix(uint64(op.Bytes))
	r.pending = append(r.pending, op)
}

// Name implements Device.
func (r *graphRecorder) Name() string { return r.dev.Name() }

// Launch queues a kernel launch. Its arguments are copied into r.args (the
// caller may reuse its slice); an earlier launch's slice stays valid when
// append moves r.args, as the old array keeps its values, and r.args is
// only reused after the flush.
func (r *graphRecorder) Launch(kernel string, grid, block Dim3, sharedBytes int, args ...uint64) error {
	start := len(r.args)
	r.args = append(r.args, args...)
	r.queue(GraphOp{Kind: OpLaunch, Kernel: kernel, Grid: grid, Block: block, Shared: sharedBytes,
		Args: r.args[start:len(r.args):len(r.args)]})
	return nil
}

// Memset0 queues a zeroing.
func (r *graphRecorder) Memset0(dst DevicePtr, bytes int) error {
	if bytes == 0 {
		return nil
	}
	r.queue(GraphOp{Kind: OpMemset0, Dst: dst, Bytes: bytes})
	return nil
}

// DtoD queues a device-to-device copy.
func (r *graphRecorder) DtoD(dst, src DevicePtr, bytes int) error {
	if bytes == 0 {
		return nil
	}
	r.queue(GraphOp{Kind: OpDtoD, Dst: dst, Src: src, Bytes: bytes})
	return nil
}

// Alloc implements Device (after the queued operations).
func (r *graphRecorder) Alloc(bytes int) (DevicePtr, error) {
	if err := r.flush(); err != nil {
		return 0, err
	}
	return r.dev.Alloc(bytes)
}

// Free implements Device (after the queued operations).
func (r *graphRecorder) Free(p DevicePtr) error {
	if err := r.flush(); err != nil {
		return err
	}
	return r.dev.Free(p)
}

// HtoD implements Device (after the queued operations, which may read the
// memory it overwrites).
func (r *graphRecorder) HtoD(dst DevicePtr, src []byte) error {
	if err := r.flush(); err != nil {
		return err
	}
	return r.dev.HtoD(dst, src)
}

// DtoH implements Device (after the queued operations).
func (r *graphRecorder) DtoH(dst []byte, src DevicePtr) error {
	if err := r.flush(); err != nil {
		return err
	}
	return r.dev.DtoH(dst, src)
}

// Sync implements Device (after the queued operations).
func (r *graphRecorder) Sync() error {
	if err := r.flush(); err != nil {
		return err
	}
	return r.dev.Sync()
}

// flush runs the queued operations: directly, or as a graph (see the top of
// the file). The queue is empty afterwards, also after an error.
func (r *graphRecorder) flush() error {
	if len(r.pending) == 0 {
		return nil
	}
	ops, hash := r.pending, r.hash
	defer func() {
		r.pending, r.args, r.hash = r.pending[:0], r.args[:0], fnvOffset
	}()
	r.stats.LastSegments = len(ops)
	if len(ops) < minGraphOps {
		return r.direct(ops)
	}
	r.stats.Segments++
	r.clock++
	e := r.lookup(hash, ops)
	if e == nil {
		// First time: run it directly and remember the structure.
		r.entries[hash] = append(r.entries[hash], &graphEntry{ops: cloneOps(ops), used: r.clock})
		return r.direct(ops)
	}
	e.used = r.clock
	if e.graph == nil {
		g, err := r.dev.NewGraph(ops)
		if err != nil {
			return fmt.Errorf("gpu: capturing a graph of %d operations: %w", len(ops), err)
		}
		e.graph, e.ops = g, cloneOps(ops)
		r.stats.Captured++
		r.evict()
	} else {
		for i := range ops {
			if ops[i].Kind != OpLaunch || slices.Equal(ops[i].Args, e.ops[i].Args) {
				continue
			}
			if err := e.graph.SetArgs(i, ops[i].Args); err != nil {
				return fmt.Errorf("gpu: graph operation %d (%s): new arguments: %w", i, ops[i].Kernel, err)
			}
			copy(e.ops[i].Args, ops[i].Args)
			r.stats.PatchedOps++
		}
	}
	if err := e.graph.Launch(); err != nil {
		// The graph's state is unknown: forget it (the structure is
		// captured anew the next time it comes).
		_ = e.graph.Destroy()
		r.entries[hash] = slices.DeleteFunc(r.entries[hash], func(x *graphEntry) bool { return x == e })
		return fmt.Errorf("gpu: launching a graph of %d operations (%s ... %s): %w", len(ops), ops[0].Kernel, ops[len(ops)-1].Kernel, err)
	}
	r.stats.Replays++
	r.stats.GraphOpsRun += len(ops)
	return nil
}

// direct issues ops one by one and stops at the first error.
func (r *graphRecorder) direct(ops []GraphOp) error {
	for i := range ops {
		r.stats.DirectOps++
		if err := ops[i].issue(r.dev); err != nil {
			what := ops[i].Kernel
			if what == "" {
				what = [...]string{"launch", "zeroing", "device copy"}[ops[i].Kind]
			}
			return fmt.Errorf("gpu: queued operation %d of %d (%s): %w", i, len(ops), what, err)
		}
	}
	return nil
}

// lookup finds the entry of the structure of ops.
func (r *graphRecorder) lookup(hash uint64, ops []GraphOp) *graphEntry {
	for _, e := range r.entries[hash] {
		if len(e.ops) != len(ops) {
			continue
		}
		same := true
		for i := range ops {
			if !ops[i].sameShape(&e.ops[i]) {
				same = false
				break
			}
		}
		if same {
			return e
		}
	}
	return nil
}

// evict destroys the least recently used graphs beyond maxGraphs.
func (r *graphRecorder) evict() {
	for {
		n := 0
		var oldest *graphEntry
		var oldestKey uint64
		for k, es := range r.entries {
			for _, e := range es {
				if e.graph == nil {
					continue
				}
				n++
				if oldest == nil || e.used < oldest.used {
					oldest, oldestKey = e, k
				}
			}
		}
		if n <= maxGraphs {
			return
		}
		_ = oldest.graph.Destroy()
		r.entries[oldestKey] = slices.DeleteFunc(r.entries[oldestKey], func(e *graphEntry) bool { return e == oldest })
		r.stats.Evicted++
	}
}

// close destroys every graph (after running what is queued).
func (r *graphRecorder) close() error {
	err := r.flush()
	for k, es := range r.entries {
		for _, e := range es {
			if e.graph != nil {
				err = errors.Join(err, e.graph.Destroy())
			}
		}
		delete(r.entries, k)
	}
	return err
}

func cloneOps(ops []GraphOp) []GraphOp {
	out := make([]GraphOp, len(ops))
	for i, op := range ops {
		out[i] = op
		out[i].Args = slices.Clone(op.Args)
	}
	return out
}

// ReplayGraphs gives any Device graphs by recording and replaying: a graph
// is its operations, SetArgs replaces a launch's stored arguments, and a
// launch of the graph issues them one by one on the device. The emulator's
// tests run Options.Graphs through it: what the recorder captures, patches
// and replays then really computes the results.
func ReplayGraphs(d Device) GraphDevice { return replayDevice{d} }

type replayDevice struct{ Device }

func (d replayDevice) NewGraph(ops []GraphOp) (Graph, error) {
	return &replayGraph{d: d.Device, ops: cloneOps(ops)}, nil
}

type replayGraph struct {
	d         Device
	ops       []GraphOp
	destroyed bool
}

func (g *replayGraph) SetArgs(i int, args []uint64) error {
	if g.destroyed || i < 0 || i >= len(g.ops) || g.ops[i].Kind != OpLaunch || len(args) != len(g.ops[i].Args) {
		return fmt.Errorf("gpu: replay graph: SetArgs(%d) with %d arguments does not fit the graph", i, len(args))
	}
	copy(g.ops[i].Args, args)
	return nil
}

func (g *replayGraph) Launch() error {
	if g.destroyed {
		return errors.New("gpu: replay graph: launched after Destroy")
	}
	for i := range g.ops {
		if err := g.ops[i].issue(g.d); err != nil {
			return fmt.Errorf("operation %d (%s): %w", i, g.ops[i].Kernel, err)
		}
	}
	return nil
}

func (g *replayGraph) Destroy() error {
	g.destroyed = true
	return nil
}
