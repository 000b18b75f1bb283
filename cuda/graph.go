//go:build cuda

package cuda

// CUDA Graphs for gpu.Options.Graphs (gpu/graph.go): a sequence of stream
// operations captured once (stream capture), instantiated, and launched
// again with patched kernel arguments.
//
// gorgonia.org/cu v0.9.6 has graph construction but neither stream capture
// nor instantiation nor graph launch, so this file calls the driver itself.
// It resolves the entry points at run time with dlsym from the libcuda.so.1
// the process already has loaded, by their exact (versioned) symbol names,
// so a driver that lacks one makes GraphAPI report which instead of the
// program failing to start. The names are those of the CUDA 11.x ABI that
// the structures here come from (cuda.h of the toolkit the build uses):
// CUDA_KERNEL_NODE_PARAMS is the v1 layout, which cuGraphKernelNodeGetParams
// and cuGraphExecKernelNodeSetParams (without _v2) take; newer drivers
// still export them for programs built against older toolkits.
// scripts/cuda-check.sh checks each name against the installed libcuda.so.1.
//
// Compiled and vetted in CI; never run on a GPU (docs/gpu-status.md).

/*
#cgo LDFLAGS: -ldl
#include <cuda.h>
#include <dlfcn.h>
#include <string.h>

typedef CUresult (*graph_begin_t)(CUstream, CUstreamCaptureMode);
typedef CUresult (*graph_end_t)(CUstream, CUgraph*);
typedef CUresult (*graph_inst_t)(CUgraphExec*, CUgraph, unsigned long long);
typedef CUresult (*graph_launch_t)(CUgraphExec, CUstream);
typedef CUresult (*graph_exec_destroy_t)(CUgraphExec);
typedef CUresult (*graph_destroy_t)(CUgraph);
typedef CUresult (*graph_roots_t)(CUgraph, CUgraphNode*, size_t*);
typedef CUresult (*graph_deps_t)(CUgraphNode, CUgraphNode*, size_t*);
typedef CUresult (*graph_type_t)(CUgraphNode, CUgraphNodeType*);
typedef CUresult (*graph_kget_t)(CUgraphNode, CUDA_KERNEL_NODE_PARAMS*);
typedef CUresult (*graph_kset_t)(CUgraphExec, CUgraphNode, const CUDA_KERNEL_NODE_PARAMS*);

static struct {
	graph_begin_t begin;
	graph_end_t end;
	graph_inst_t inst;
	graph_launch_t launch;
	graph_exec_destroy_t exec_destroy;
	graph_destroy_t destroy;
	graph_roots_t roots;
	graph_deps_t deps;
	graph_type_t type;
	graph_kget_t kget;
	graph_kset_t kset;
} graph_api;

// graph_api_load resolves the entry points once; NULL on success, else
// the symbol (or library) that is missing.
static const char* graph_api_load(void) {
	static int done;
	static const char* missing;
	if (done) return missing;
	done = 1;
	void* h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
	if (!h) h = dlopen("libcuda.so.1", RTLD_NOW);
	if (!h) return missing = "libcuda.so.1";
#define GRAPH_SYM(field, name) \
	if (!(graph_api.field = (void*)dlsym(h, name))) return missing = name;
	GRAPH_SYM(begin, "cuStreamBeginCapture_v2")
	GRAPH_SYM(end, "cuStreamEndCapture")
	GRAPH_SYM(inst, "cuGraphInstantiateWithFlags")
	GRAPH_SYM(launch, "cuGraphLaunch")
	GRAPH_SYM(exec_destroy, "cuGraphExecDestroy")
	GRAPH_SYM(destroy, "cuGraphDestroy")
	GRAPH_SYM(roots, "cuGraphGetRootNodes")
	GRAPH_SYM(deps, "cuGraphNodeGetDependentNodes")
	GRAPH_SYM(type, "cuGraphNodeGetType")
	GRAPH_SYM(kget, "cuGraphKernelNodeGetParams")
	GRAPH_SYM(kset, "cuGraphExecKernelNodeSetParams")
#undef GRAPH_SYM
	return missing = NULL;
}

// Thread-local capture: only this thread's unsafe calls would invalidate
// it, and the capturing thread issues nothing but the captured operations.
static CUresult graph_begin(void* s) { return graph_api.begin((CUstream)s, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL); }
static CUresult graph_end(void* s, CUgraph* g) { return graph_api.end((CUstream)s, g); }
static CUresult graph_inst(CUgraphExec* e, CUgraph g) { return graph_api.inst(e, g, 0); }
static CUresult graph_launch(CUgraphExec e, void* s) { return graph_api.launch(e, (CUstream)s); }
static CUresult graph_exec_destroy(CUgraphExec e) { return graph_api.exec_destroy(e); }
static CUresult graph_destroy(CUgraph g) { return graph_api.destroy(g); }

// graph_chain puts the nodes of a single-stream capture in issue order:
// such a graph is a chain (one root, each node one dependent but the last).
// On success *got == want; a graph of another shape sets *got to the node
// where it stops being that chain and returns CUDA_ERROR_INVALID_VALUE.
static CUresult graph_chain(CUgraph g, CUgraphNode* nodes, int* types, size_t want, size_t* got) {
	size_t n = 0;
	*got = 0;
	CUresult r = graph_api.roots(g, NULL, &n);
	if (r != CUDA_SUCCESS) return r;
	if (n != 1 || want == 0) return CUDA_ERROR_INVALID_VALUE;
	r = graph_api.roots(g, nodes, &n);
	if (r != CUDA_SUCCESS) return r;
	for (size_t i = 0; i < want; i++) {
		CUgraphNodeType t;
		r = graph_api.type(nodes[i], &t);
		if (r != CUDA_SUCCESS) return r;
		types[i] = (int)t;
		*got = i + 1;
		size_t k = 0;
		r = graph_api.deps(nodes[i], NULL, &k);
		if (r != CUDA_SUCCESS) return r;
		if (i + 1 == want) return k == 0 ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
		if (k != 1) return CUDA_ERROR_INVALID_VALUE;
		r = graph_api.deps(nodes[i], &nodes[i + 1], &k);
		if (r != CUDA_SUCCESS) return r;
	}
	return CUDA_SUCCESS;
}

// graph_error_name names a CUresult (cuGetErrorName, linked as every other
// driver call of the binary is).
static const char* graph_error_name(CUresult r) {
	const char* s = NULL;
	if (cuGetErrorName(r, &s) != CUDA_SUCCESS || s == NULL) return "an unknown CUresult";
	return s;
}

static CUresult graph_kernel_params(CUgraphNode node, CUDA_KERNEL_NODE_PARAMS* p) {
	memset(p, 0, sizeof(*p));
	return graph_api.kget(node, p);
}

// graph_set_args sets the instantiated node's kernel arguments to vals
// (n 8-byte values; the driver copies them during the call), keeping the
// function, grid, block and shared memory of base.
static CUresult graph_set_args(CUgraphExec e, CUgraphNode node, const CUDA_KERNEL_NODE_PARAMS* base,
                               unsigned long long* vals, int n) {
	void* ptrs[64];
	if (n > 64) return CUDA_ERROR_INVALID_VALUE;
	for (int i = 0; i < n; i++) ptrs[i] = &vals[i];
	CUDA_KERNEL_NODE_PARAMS p = *base;
	p.kernelParams = ptrs;
	p.extra = NULL;
	return graph_api.kset(e, node, &p);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"

	"gorgonia.org/cu"
)

// driverError is a CUresult as an error.
func driverError(r C.CUresult) error {
	return fmt.Errorf("%s (CUresult %d)", C.GoString(C.graph_error_name(r)), int(r))
}

// Kinds of GraphOp (the same values as gpu.OpKind).
const (
	OpLaunch  = 0
	OpMemset0 = 1
	OpDtoD    = 2
)

// GraphOp is one stream operation to capture (gpu.GraphOp over plain
// types): a launch (Kernel, Grid, Block, Shared, Args), a zeroing (Dst,
// Bytes) or a device-to-device copy (Dst, Src, Bytes).
type GraphOp struct {
	Kind        int
	Kernel      string
	Grid, Block Dim3
	Shared      int
	Args        []uint64
	Dst, Src    uint64
	Bytes       int
}

// GraphAPI returns nil when the driver has every entry point graphs need,
// else an error naming the first one missing.
func GraphAPI() error {
	if m := C.graph_api_load(); m != nil {
		return fmt.Errorf("CUDA Graphs are unavailable: the driver's library lacks %s", C.GoString(m))
	}
	return nil
}

// Graph is a captured and instantiated sequence of stream operations.
type Graph struct {
	d     *Device
	graph C.CUgraph
	exec  C.CUgraphExec
	nodes []C.CUgraphNode
	// params holds, per launch operation, its node's captured parameters
	// (function, grid, block, shared memory); nargs its argument count.
	params    []C.CUDA_KERNEL_NODE_PARAMS
	nargs     []int
	kernel    []bool
	destroyed bool
	// Patches SetArgs queued for the next Launch, which applies them in
	// the same hand-off to the locked thread as the launch itself: node
	// patch[k] gets vals[off[k]:off[k+1]].
	patch []int
	off   []int
	vals  []uint64
}

// NewGraph captures ops on the device's stream into a graph and
// instantiates it, without running the operations.
func (d *Device) NewGraph(ops []GraphOp) (*Graph, error) {
	if err := GraphAPI(); err != nil {
		return nil, err
	}
	if len(ops) == 0 {
		return nil, errors.New("cuda.NewGraph: no operations")
	}
	for _, op := range ops {
		if op.Kind == OpLaunch && len(op.Args) > MaxArgs {
			return nil, fmt.Errorf("cuda.NewGraph: %s has %d arguments, at most %d", op.Kernel, len(op.Args), MaxArgs)
		}
	}
	g := &Graph{d: d, nodes: make([]C.CUgraphNode, len(ops)), params: make([]C.CUDA_KERNEL_NODE_PARAMS, len(ops)),
		nargs: make([]int, len(ops)), kernel: make([]bool, len(ops))}
	err := d.do(func() error { return g.capture(ops) })
	if err != nil {
		return nil, fmt.Errorf("cuda.NewGraph of %d operations: %w", len(ops), err)
	}
	return g, nil
}

// capture runs on the locked thread.
func (g *Graph) capture(ops []GraphOp) error {
	d := g.d
	stream := unsafe.Pointer(d.stream.C())
	if r := C.graph_begin(stream); r != C.CUDA_SUCCESS {
		return fmt.Errorf("cuStreamBeginCapture: %w", driverError(r))
	}
	var issueErr error
	for i := range ops {
		if issueErr = d.issueOnThread(&ops[i]); issueErr != nil {
			issueErr = fmt.Errorf("capturing operation %d (%s): %w", i, ops[i].Kernel, issueErr)
			break
		}
	}
	// End the capture in every case: the stream is unusable until then.
	if r := C.graph_end(stream, &g.graph); r != C.CUDA_SUCCESS {
		return errors.Join(issueErr, fmt.Errorf("cuStreamEndCapture: %w", driverError(r)))
	}
	if issueErr != nil {
		C.graph_destroy(g.graph)
		return issueErr
	}
	types := make([]C.int, len(ops))
	var got C.size_t
	if r := C.graph_chain(g.graph, &g.nodes[0], &types[0], C.size_t(len(ops)), &got); r != C.CUDA_SUCCESS {
		C.graph_destroy(g.graph)
		return fmt.Errorf("the captured graph is not the chain of %d operations issued (it is up to node %d): %w", len(ops), int(got), driverError(r))
	}
	for i := range ops {
		want := map[int]C.int{OpLaunch: C.CU_GRAPH_NODE_TYPE_KERNEL, OpMemset0: C.CU_GRAPH_NODE_TYPE_MEMSET, OpDtoD: C.CU_GRAPH_NODE_TYPE_MEMCPY}[ops[i].Kind]
		if types[i] != want {
			C.graph_destroy(g.graph)
			return fmt.Errorf("captured node %d has type %d, operation %d (%s) wants %d", i, int(types[i]), i, ops[i].Kernel, int(want))
		}
		if ops[i].Kind != OpLaunch {
			continue
		}
		if r := C.graph_kernel_params(g.nodes[i], &g.params[i]); r != C.CUDA_SUCCESS {
			C.graph_destroy(g.graph)
			return fmt.Errorf("cuGraphKernelNodeGetParams of node %d: %w", i, driverError(r))
		}
		g.nargs[i], g.kernel[i] = len(ops[i].Args), true
	}
	if r := C.graph_inst(&g.exec, g.graph); r != C.CUDA_SUCCESS {
		C.graph_destroy(g.graph)
		return fmt.Errorf("cuGraphInstantiateWithFlags: %w", driverError(r))
	}
	return nil
}

// issueOnThread issues one operation on the stream (on the locked thread,
// with th.mu held by do, so the launch slot is free to use).
func (d *Device) issueOnThread(op *GraphOp) error {
	switch op.Kind {
	case OpLaunch:
		d.lName, d.lGrid, d.lBlock, d.lShared, d.lArgc = op.Kernel, op.Grid, op.Block, op.Shared, len(op.Args)
		copy(d.args[:], op.Args)
		return d.launchOnThread()
	case OpMemset0:
		return cu.MemsetD8Async(cu.DevicePtr(op.Dst), 0, int64(op.Bytes), d.stream)
	case OpDtoD:
		return cu.MemcpyDtoDAsync(cu.DevicePtr(op.Dst), cu.DevicePtr(op.Src), int64(op.Bytes), d.stream)
	}
	return fmt.Errorf("operation kind %d", op.Kind)
}

// SetArgs replaces the arguments of launch operation i for the following
// launches: the next Launch applies it (cuGraphExecKernelNodeSetParams on
// the instantiated graph) before it launches, and reports its error.
func (g *Graph) SetArgs(i int, args []uint64) error {
	if g.destroyed || i < 0 || i >= len(g.nodes) || !g.kernel[i] || len(args) != g.nargs[i] {
		return fmt.Errorf("cuda: Graph.SetArgs(%d) with %d arguments does not fit the graph", i, len(args))
	}
	if len(g.off) == 0 {
		g.off = append(g.off, 0)
	}
	g.patch = append(g.patch, i)
	g.vals = append(g.vals, args...)
	g.off = append(g.off, len(g.vals))
	return nil
}

// Launch applies the queued SetArgs patches and runs the graph on the
// device's stream, in one call on the locked thread.
func (g *Graph) Launch() error {
	if g.destroyed {
		return errors.New("cuda: Graph.Launch after Destroy")
	}
	defer func() { g.patch, g.off, g.vals = g.patch[:0], g.off[:0], g.vals[:0] }()
	return g.d.do(func() error {
		for k, i := range g.patch {
			var vals *C.ulonglong
			if n := g.off[k+1] - g.off[k]; n > 0 {
				vals = (*C.ulonglong)(unsafe.Pointer(&g.vals[g.off[k]]))
			}
			if r := C.graph_set_args(g.exec, g.nodes[i], &g.params[i], vals, C.int(g.off[k+1]-g.off[k])); r != C.CUDA_SUCCESS {
				return fmt.Errorf("cuGraphExecKernelNodeSetParams of operation %d: %w", i, driverError(r))
			}
		}
		if r := C.graph_launch(g.exec, unsafe.Pointer(g.d.stream.C())); r != C.CUDA_SUCCESS {
			return fmt.Errorf("cuGraphLaunch: %w", driverError(r))
		}
		return nil
	})
}

// Destroy releases the executable graph and the graph (after the stream's
// queued work, so a launched graph is not destroyed while it runs).
func (g *Graph) Destroy() error {
	if g.destroyed {
		return nil
	}
	g.destroyed = true
	return g.d.do(func() error {
		if err := g.d.stream.Synchronize(); err != nil {
			return err
		}
		if r := C.graph_exec_destroy(g.exec); r != C.CUDA_SUCCESS {
			return fmt.Errorf("cuGraphExecDestroy: %w", driverError(r))
		}
		if r := C.graph_destroy(g.graph); r != C.CUDA_SUCCESS {
			return fmt.Errorf("cuGraphDestroy: %w", driverError(r))
		}
		return nil
	})
}
