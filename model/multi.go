package model

import (
	"fmt"
	"slices"
	"strings"

	"github.com/houlsby/adapters/backend"
)

// Multi serves many tasks from one frozen backbone in one forward pass. Each
// task brings only what training changed without touching the backbone's
// weight matrices and biases: Houlsby adapters (any bottleneck, placement
// and nonlinearity), LayerNorm parameters, a pooler of its own (when the
// checkpoint has none) and its classifier. A batch's sequences are grouped
// by task (TaskRun), and every row goes through its own task's adapters,
// LayerNorms and head, through the backend's grouped ops
// (backend.GroupedAdapterForward, backend.GroupedLayerNormForward), while
// the backbone's GEMMs, attention and nonlinearities run once over the
// whole batch. Forward only: Multi serves, it does not train.
//
// The backbone is a Model without adapters (so the encoder code is the
// same as for a single task: Multi attaches to it through taskSites, which
// replaces the adapter and LayerNorm of every site), in the padded or the
// packed layout as Model.Packed decides. Per-task tensors are stacked:
// adapters with the same (M, nonlinearity) share one stack of slots per
// site, and every LayerNorm site has one stack of (w, b) slots whose slot 0
// holds the backbone's values (for tasks that kept them). Tasks come and go
// (AddTask, RemoveTask); slots are reused and stacks grow by doubling.
//
// A row's result equals, up to the float32 rounding of a different batch
// composition, what the task's own Model (New with its strategy) computes
// for it; on the CPU backend, where the grouped ops repeat the ungrouped
// arithmetic per segment, it is usually bit for bit the same. Per-task
// tensors are stored in F32 (as a trained model stores them).
//
// Multi is not safe for concurrent use.
type Multi struct {
	bb         *Model
	b          backend.Backend
	L, C       int
	maxB, maxT int
	cfg        Config

	tasks map[int]*multiTask
	next  int

	stacks []*adapterStack
	ln     *slotStack // the 2L+1 LayerNorm sites (site 0: embeddings, 1+2l+i: layer l)
	lnHost []float32  // the backbone's LayerNorm values, (2L+1, 2, C)
	pooler *dense     // the checkpoint's pooler (nil without one), FrozenDType

	// Per-forward buffers.
	segArena backend.Tensor // I32: the batch's segment tables, back to back
	segCap   int
	gath     backend.Tensor // (maxB, C) [CLS] rows or cls/mean vectors
	pre      backend.Tensor // (maxB, C) pooler dense output
	pooled   backend.Tensor // (maxB, C) classifier input
	poolW    backend.Tensor // F32 pooling weights: (maxB, maxT) padded, (maxB, maxB·maxT) packed
	logits   backend.Tensor // (maxB·maxK), FrozenDType as Model's logits
	maxK     int
	own      []backend.Tensor // every allocation of Multi's own

	// The current batch (set by Forward for the taskSites calls).
	cur struct {
		S       int
		lnTable backend.Tensor   // nil: every row uses the backbone's LayerNorms
		ad      []adapterTablesT // per stack: tables per site (nil: no row of it)
	}
	host struct {
		poolW  []float32
		logits []float32
	}
}

// adapterTablesT is one stack's segment table per site (l, i); nil where no
// row of the batch has an adapter of that stack there.
type adapterTablesT [][2]backend.Tensor

// MultiOptions sizes a Multi (as Options does a Model).
type MultiOptions struct {
	// MaxBatch and MaxSeq size the activation buffers (defaults 32 and 128).
	MaxBatch, MaxSeq int
	// NoPacking keeps the padded layout on a backend with
	// backend.PackedAttention.
	NoPacking bool
}

// TaskSpec is one task on a shared backbone.
type TaskSpec struct {
	// Adapter places the task's adapters; nil when it has none.
	Adapter *AdapterOptions
	// Head is its head (kind, labels, pooling).
	Head HeadOptions
	// Tensors holds its trained tensors by name: adapter tensors (exactly
	// those Adapter places), any LayerNorm parameters (the others keep the
	// backbone's), a pooler of its own (both tensors, or none: the
	// checkpoint's is used) and the classifier (required).
	Tensors map[string][]float32
}

// TaskRun is a run of consecutive sequences of one task in a batch.
type TaskRun struct {
	Task int // an id from AddTask
	Seqs int // number of sequences
}

// multiTask is a task's place in the stacks and its head.
type multiTask struct {
	numLabels int
	pooling   string
	stack     *adapterStack // nil: no adapters
	aslot     int
	sites     [][2]bool // (l, i) has an adapter
	lnSlot    int       // 0: the backbone's LayerNorms
	head      dense
	pooler    *dense // its own pooler; nil: the checkpoint's
	bytes     int64
	allocs    []backend.Tensor
}

// slotStack holds, in one F32 allocation, per site the G-slot stacks of a
// few parts: site k is a block of G·per elements in which part j (of
// parts[j] elements per slot) is (G, parts[j]), contiguous, as the grouped
// ops take it: [part 0 of slots 0..G-1][part 1 of slots 0..G-1]...
type slotStack struct {
	sites, per, G int
	parts         []int
	arena         backend.Tensor
	used          []bool
}

// partOff is the offset of part j within a site block of s (G slots).
func (s *slotStack) partOff(j, G int) int {
	off := 0
	for _, n := range s.parts[:j] {
		off += G * n
	}
	return off
}

// adapterStack holds the adapters of one (M, act): per site (l, i) the
// slots of wDown (M, C), bDown (M), wUp (C, M), bUp (C), in that order.
type adapterStack struct {
	M   int
	act backend.Act
	s   *slotStack
}

// NewMulti builds the shared backbone of ck on b.
func NewMulti(b backend.Backend, ck *Checkpoint, opts MultiOptions) (*Multi, error) {
	if b == nil || ck == nil {
		panic("model: NewMulti needs a backend and a checkpoint")
	}
	// The backbone's own head is a stand-in (cls pooling, two classes):
	// Multi computes every task's head itself.
	bb, err := New(b, ck, Options{MaxBatch: opts.MaxBatch, MaxSeq: opts.MaxSeq, NoPacking: opts.NoPacking,
		Trainable: func(string) bool { return false },
		Head:      HeadOptions{Kind: HeadClassification, NumLabels: 2, Pooling: PoolingCLS}})
	if err != nil {
		return nil, err
	}
	mt := &Multi{bb: bb, b: b, L: bb.L, C: bb.C, maxB: bb.maxB, maxT: bb.maxT, cfg: ck.Config, tasks: map[int]*multiTask{}, next: 1}
	bb.tasks = mt
	if err := mt.init(ck); err != nil {
		mt.Free()
		return nil, err
	}
	return mt, nil
}

func (mt *Multi) init(ck *Checkpoint) error {
	C, L := mt.C, mt.L
	// The backbone's LayerNorms, slot 0 of every LayerNorm site.
	mt.lnHost = make([]float32, (2*L+1)*2*C)
	for site := 0; site < 2*L+1; site++ {
		w, b := lnNames(site, L)
		for k, name := range []string{w, b} {
			data, err := checkpointTensor(ck, name, C)
			if err != nil {
				return err
			}
			copy(mt.lnHost[(site*2+k)*C:], data)
		}
	}
	ln, err := mt.newStack(2*L+1, []int{C, C}, 4)
	if err != nil {
		return err
	}
	mt.ln = ln
	ln.used[0] = true
	if err := mt.upload(ln, 0, func(site int) []float32 { return mt.lnHost[site*2*C : (site+1)*2*C] }); err != nil {
		return err
	}
	if ck.HasPooler {
		w, err := checkpointTensor(ck, NamePoolerWeight, C, C)
		if err != nil {
			return err
		}
		bias, err := checkpointTensor(ck, NamePoolerBias, C)
		if err != nil {
			return err
		}
		d, err := mt.denseOf(mt.b.FrozenDType(), w, bias, C, C, &mt.own)
		if err != nil {
			return err
		}
		mt.pooler = &d
	}
	B := mt.maxB
	dt := mt.b.FrozenDType()
	for _, a := range []struct {
		dst *backend.Tensor
		dt  backend.DType
		n   int
	}{{&mt.gath, dt, B * C}, {&mt.pre, dt, B * C}, {&mt.pooled, dt, B * C}, {&mt.poolW, backend.F32, mt.poolWLen()}} {
		if *a.dst, err = mt.alloc(a.dt, a.n, &mt.own); err != nil {
			return err
		}
	}
	mt.host.poolW = make([]float32, mt.poolWLen())
	return nil
}

// poolWLen is the pooling weights' size: (B, T) padded, (B, N ≤ B·T) packed.
func (mt *Multi) poolWLen() int {
	if mt.bb.packed {
		return mt.maxB * mt.maxB * mt.maxT
	}
	return mt.maxB * mt.maxT
}

// lnNames are the weight and bias names of LayerNorm site s (0: embeddings,
// 1+2l+i: layer l's after attention (i = 0) or after the FFN (i = 1)).
func lnNames(s, L int) (string, string) {
	if s == 0 {
		return NameEmbeddingsLNWeight, NameEmbeddingsLNBias
	}
	l, i := (s-1)/2, (s-1)%2
	if i == 0 {
		return LayerTensorName(l, SuffixAttnLNWeight), LayerTensorName(l, SuffixAttnLNBias)
	}
	return LayerTensorName(l, SuffixOutputLNWeight), LayerTensorName(l, SuffixOutputLNBias)
}

// Backbone returns the shared backbone model (for its configuration,
// Packed and the like; its Forward is not Multi's).
func (mt *Multi) Backbone() *Model { return mt.bb }

// Free releases every buffer; the Multi must not be used afterwards.
func (mt *Multi) Free() {
	for _, t := range mt.tasks {
		mt.freeTask(t)
	}
	mt.tasks = map[int]*multiTask{}
	for _, t := range mt.own {
		mt.b.Free(t)
	}
	mt.own = nil
	for _, s := range append(mt.stackList(), mt.ln) {
		if s != nil && s.arena != nil {
			mt.b.Free(s.arena)
			s.arena = nil
		}
	}
	if mt.segArena != nil {
		mt.b.Free(mt.segArena)
		mt.segArena = nil
	}
	if mt.logits != nil {
		mt.b.Free(mt.logits)
		mt.logits = nil
	}
	mt.bb.Free()
}

func (mt *Multi) stackList() []*slotStack {
	var out []*slotStack
	for _, s := range mt.stacks {
		out = append(out, s.s)
	}
	return out
}

// BackboneBytes is the memory shared by every task: the backbone model, the
// checkpoint's pooler, the LayerNorm slot of the backbone, the stacks'
// unused slots and the forward buffers.
func (mt *Multi) BackboneBytes() int64 {
	n := mt.bb.Bytes()
	for _, t := range mt.own {
		n += bytesOf(t)
	}
	for _, s := range append(mt.stackList(), mt.ln) {
		n += bytesOf(s.arena)
	}
	n += bytesOf(mt.segArena) + bytesOf(mt.logits)
	for _, t := range mt.tasks {
		n -= t.bytes - t.ownBytes()
	}
	return n
}

// TaskBytes is the memory task id adds: its slots and its head.
func (mt *Multi) TaskBytes(id int) int64 {
	if t := mt.tasks[id]; t != nil {
		return t.bytes
	}
	return 0
}

func (t *multiTask) ownBytes() int64 {
	var n int64
	for _, a := range t.allocs {
		n += bytesOf(a)
	}
	return n
}

func bytesOf(t backend.Tensor) int64 {
	if t == nil {
		return 0
	}
	return int64(t.Len()) * int64(t.DType().Size())
}

func (mt *Multi) alloc(dt backend.DType, n int, into *[]backend.Tensor) (backend.Tensor, error) {
	t, err := mt.b.Alloc(dt, max(n, 1))
	if err != nil {
		return nil, fmt.Errorf("model: multi-task buffer of %d elements: %w", n, err)
	}
	*into = append(*into, t)
	return t, nil
}

// denseOf uploads a linear layer (out, in) in dtype dt.
func (mt *Multi) denseOf(dt backend.DType, w, bias []float32, out, in int, into *[]backend.Tensor) (dense, error) {
	wt, err := mt.alloc(dt, out*in, into)
	if err != nil {
		return dense{}, err
	}
	bt, err := mt.alloc(dt, out, into)
	if err != nil {
		return dense{}, err
	}
	if err := mt.b.Upload(wt, w); err != nil {
		return dense{}, fmt.Errorf("model: uploading a head: %w", err)
	}
	if err := mt.b.Upload(bt, bias); err != nil {
		return dense{}, fmt.Errorf("model: uploading a head: %w", err)
	}
	return dense{W: wt, B: bt}, nil
}

// newStack allocates a slot stack of G slots.
func (mt *Multi) newStack(sites int, parts []int, G int) (*slotStack, error) {
	per := 0
	for _, n := range parts {
		per += n
	}
	t, err := mt.b.Alloc(backend.F32, sites*G*per)
	if err != nil {
		return nil, fmt.Errorf("model: allocating %d task slots: %w", G, err)
	}
	return &slotStack{sites: sites, per: per, G: G, parts: parts, arena: t, used: make([]bool, G)}, nil
}

// part returns part j of site k of s: (G, parts[j]) for the grouped ops.
func (mt *Multi) part(s *slotStack, k, j int) (backend.Tensor, error) {
	return mt.b.View(s.arena, k*s.G*s.per+s.partOff(j, s.G), s.G*s.parts[j])
}

// slotPart returns part j of slot g at site k.
func (mt *Multi) slotPart(s *slotStack, k, j, g int) (backend.Tensor, error) {
	return mt.b.View(s.arena, k*s.G*s.per+s.partOff(j, s.G)+g*s.parts[j], s.parts[j])
}

// upload writes slot g of every site from data(site): per elements, the
// parts one after the other.
func (mt *Multi) upload(s *slotStack, g int, data func(site int) []float32) error {
	for k := 0; k < s.sites; k++ {
		d := data(k)
		off := 0
		for j, n := range s.parts {
			v, err := mt.slotPart(s, k, j, g)
			if err != nil {
				return err
			}
			if err := mt.b.Upload(v, d[off:off+n]); err != nil {
				return fmt.Errorf("model: uploading task slot: %w", err)
			}
			off += n
		}
	}
	return nil
}

// takeSlot returns a free slot of s, doubling s when it is full (the
// slots in use are copied to their new places).
func (mt *Multi) takeSlot(s *slotStack) (int, error) {
	if g := slices.Index(s.used, false); g >= 0 {
		s.used[g] = true
		return g, nil
	}
	G := 2 * s.G
	t, err := mt.b.Alloc(backend.F32, s.sites*G*s.per)
	if err != nil {
		return 0, fmt.Errorf("model: growing task slots to %d: %w", G, err)
	}
	for k := 0; k < s.sites; k++ {
		for j, n := range s.parts {
			src, err := mt.b.View(s.arena, k*s.G*s.per+s.partOff(j, s.G), s.G*n)
			if err != nil {
				return 0, err
			}
			dst, err := mt.b.View(t, k*G*s.per+s.partOff(j, G), s.G*n)
			if err != nil {
				return 0, err
			}
			if err := mt.b.Copy(dst, src); err != nil {
				return 0, fmt.Errorf("model: growing task slots: %w", err)
			}
		}
	}
	mt.b.Free(s.arena)
	g := s.G
	s.arena, s.G = t, G
	s.used = append(s.used, make([]bool, G-g)...)
	s.used[g] = true
	return g, nil
}

// AddTask uploads a task's tensors and returns its id for TaskRun. A
// tensor that is not an adapter (of spec.Adapter's placement), a
// LayerNorm, a pooler or the classifier is refused: such a task changes the
// backbone and needs a Model of its own.
func (mt *Multi) AddTask(spec TaskSpec) (int, error) {
	C, L := mt.C, mt.L
	t := &multiTask{pooling: spec.Head.Pooling, numLabels: spec.Head.NumLabels}
	if t.pooling == "" {
		t.pooling = PoolingPooler
	}
	switch spec.Head.Kind {
	case HeadClassification:
		if t.numLabels < 2 {
			return 0, fmt.Errorf("model: classification head needs NumLabels >= 2, got %d", t.numLabels)
		}
	case HeadRegression:
		t.numLabels = 1
	default:
		return 0, fmt.Errorf("model: unknown head kind %q", spec.Head.Kind)
	}
	if t.pooling != PoolingPooler && t.pooling != PoolingCLS && t.pooling != PoolingMean {
		return 0, fmt.Errorf("model: unknown pooling %q", t.pooling)
	}
	if spec.Adapter != nil {
		if err := spec.Adapter.validate(L); err != nil {
			return 0, err
		}
	}
	// Every tensor must be one a shared-backbone task may bring, in the
	// shape the model lists for it.
	head := spec.Head
	head.Pooling = t.pooling
	shapes := map[string][]int{}
	for _, s := range Tensors(mt.cfg, true, spec.Adapter, &head) {
		if IsAdapter(s.Name) || IsLayerNorm(s.Name) || IsPooler(s.Name) || IsClassifier(s.Name) {
			shapes[s.Name] = s.Shape
		}
	}
	var lnGiven, poolerGiven int
	for name, data := range spec.Tensors {
		shape, ok := shapes[name]
		if !ok {
			return 0, fmt.Errorf("model: tensor %s: a task on a shared backbone brings only adapters, LayerNorms, a pooler and a classifier (this one needs a model of its own)", name)
		}
		if len(data) != prod(shape) {
			return 0, fmt.Errorf("model: tensor %s has %d values, want %v", name, len(data), shape)
		}
		if IsLayerNorm(name) {
			lnGiven++
		}
		if IsPooler(name) {
			poolerGiven++
		}
	}
	for _, name := range []string{NameClassifierWeight, NameClassifierBias} {
		if spec.Tensors[name] == nil {
			return 0, fmt.Errorf("model: task has no %s", name)
		}
	}
	switch {
	case poolerGiven == 1:
		return 0, fmt.Errorf("model: task has one of the two pooler tensors")
	case poolerGiven == 2 && t.pooling != PoolingPooler:
		return 0, fmt.Errorf("model: task brings a pooler but pools with %q", t.pooling)
	case poolerGiven == 0 && t.pooling == PoolingPooler && mt.pooler == nil:
		return 0, fmt.Errorf("model: task pools with the pooler, but the checkpoint has none and the task brings none")
	}
	if err := mt.placeAdapters(t, spec); err != nil {
		mt.freeTask(t)
		return 0, err
	}
	if lnGiven > 0 {
		g, err := mt.takeSlot(mt.ln)
		if err != nil {
			mt.freeTask(t)
			return 0, err
		}
		t.lnSlot = g
		vals := make([]float32, 2*C)
		err = mt.upload(mt.ln, g, func(site int) []float32 {
			w, b := lnNames(site, L)
			copy(vals, mt.lnHost[site*2*C:(site+1)*2*C])
			for k, name := range []string{w, b} {
				if d := spec.Tensors[name]; d != nil {
					copy(vals[k*C:], d)
				}
			}
			return vals
		})
		if err != nil {
			mt.freeTask(t)
			return 0, err
		}
		t.bytes += int64(mt.ln.sites * mt.ln.per * 4)
	}
	var err error
	K := t.numLabels
	if t.head, err = mt.denseOf(backend.F32, spec.Tensors[NameClassifierWeight], spec.Tensors[NameClassifierBias], K, C, &t.allocs); err != nil {
		mt.freeTask(t)
		return 0, err
	}
	if poolerGiven == 2 {
		d, err := mt.denseOf(backend.F32, spec.Tensors[NamePoolerWeight], spec.Tensors[NamePoolerBias], C, C, &t.allocs)
		if err != nil {
			mt.freeTask(t)
			return 0, err
		}
		t.pooler = &d
	}
	t.bytes += t.ownBytes()
	if K > mt.maxK {
		if err := mt.growLogits(K); err != nil {
			mt.freeTask(t)
			return 0, err
		}
	}
	id := mt.next
	mt.next++
	mt.tasks[id] = t
	return id, nil
}

// placeAdapters takes a slot in the task's (M, act) stack and uploads its
// adapters.
func (mt *Multi) placeAdapters(t *multiTask, spec TaskSpec) error {
	a := spec.Adapter
	if a == nil {
		return nil
	}
	C, L, M := mt.C, mt.L, a.M
	t.sites = make([][2]bool, L)
	for l := 0; l < L; l++ {
		t.sites[l] = [2]bool{a.Attention && a.inLayer(l), a.FFN && a.inLayer(l)}
	}
	var st *adapterStack
	for _, s := range mt.stacks {
		if s.M == M && s.act == a.Act {
			st = s
		}
	}
	if st == nil {
		s, err := mt.newStack(2*L, []int{M * C, M, C * M, C}, 2)
		if err != nil {
			return err
		}
		st = &adapterStack{M: M, act: a.Act, s: s}
		mt.stacks = append(mt.stacks, st)
	}
	g, err := mt.takeSlot(st.s)
	if err != nil {
		return err
	}
	t.stack, t.aslot = st, g
	per := st.s.per
	vals := make([]float32, per)
	var missing []string
	err = mt.upload(st.s, g, func(k int) []float32 {
		clear(vals)
		l, i := k/2, k%2
		if !t.sites[l][i] {
			return vals
		}
		pre := AdapterPrefix(l, i == 1)
		off := 0
		for _, part := range []struct {
			name string
			n    int
		}{{AdapterDownWeight, M * C}, {AdapterDownBias, M}, {AdapterUpWeight, C * M}, {AdapterUpBias, C}} {
			d := spec.Tensors[pre+part.name]
			if d == nil {
				missing = append(missing, pre+part.name)
			}
			copy(vals[off:off+part.n], d)
			off += part.n
		}
		return vals
	})
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return fmt.Errorf("model: task lacks %d adapter tensor(s): %s", len(missing), strings.Join(missing[:min(len(missing), 3)], ", "))
	}
	for l := range t.sites {
		for i := range t.sites[l] {
			if t.sites[l][i] {
				t.bytes += int64(per * 4)
			}
		}
	}
	return nil
}

// growLogits makes the logits buffer hold maxB rows of K outputs.
func (mt *Multi) growLogits(K int) error {
	// The activation dtype, as Model keeps its logits.
	t, err := mt.b.Alloc(mt.b.FrozenDType(), mt.maxB*K)
	if err != nil {
		return fmt.Errorf("model: logits buffer: %w", err)
	}
	if mt.logits != nil {
		mt.b.Free(mt.logits)
	}
	mt.logits, mt.maxK = t, K
	mt.host.logits = make([]float32, mt.maxB*K)
	return nil
}

// RemoveTask frees task id's slots and head.
func (mt *Multi) RemoveTask(id int) error {
	t := mt.tasks[id]
	if t == nil {
		return fmt.Errorf("model: no task %d", id)
	}
	delete(mt.tasks, id)
	mt.freeTask(t)
	return nil
}

func (mt *Multi) freeTask(t *multiTask) {
	if t.stack != nil {
		t.stack.s.used[t.aslot] = false
		t.stack = nil
	}
	if t.lnSlot > 0 {
		mt.ln.used[t.lnSlot] = false
		t.lnSlot = 0
	}
	for _, a := range t.allocs {
		mt.b.Free(a)
	}
	t.allocs = nil
}

// Forward runs a batch whose sequences are grouped by task (runs, in
// order, covering bt.B sequences) and returns each sequence's logits
// (NumLabels of its task), slices of a buffer valid until the next Forward.
// bt carries no labels: Multi does not compute losses.
func (mt *Multi) Forward(bt *Batch, runs []TaskRun) ([][]float32, error) {
	if bt.Labels != nil || bt.Targets != nil {
		return nil, fmt.Errorf("model: Multi.Forward takes no labels or targets")
	}
	n := 0
	for k, r := range runs {
		if mt.tasks[r.Task] == nil {
			return nil, fmt.Errorf("model: run %d: no task %d", k, r.Task)
		}
		if r.Seqs < 1 {
			return nil, fmt.Errorf("model: run %d has %d sequences", k, r.Seqs)
		}
		n += r.Seqs
	}
	if n != bt.B {
		return nil, fmt.Errorf("model: runs cover %d sequences, the batch has %d", n, bt.B)
	}
	if bt.B > mt.maxB || bt.T > mt.maxT || bt.B < 1 || len(bt.Mask) != bt.B*bt.T {
		return nil, fmt.Errorf("model: batch %dx%d outside 1..%d x 1..%d", bt.B, bt.T, mt.maxB, mt.maxT)
	}
	rows := mt.rowStarts(bt)
	if err := mt.tables(runs, rows); err != nil {
		return nil, err
	}
	if _, _, err := mt.bb.forward(bt, false, 0, nil); err != nil {
		return nil, err
	}
	return mt.heads(bt, runs, rows)
}

// rowStarts returns the first activation row of every sequence and, last,
// the row count: T per sequence padded, its real tokens packed.
func (mt *Multi) rowStarts(bt *Batch) []int {
	out := make([]int, bt.B+1)
	for s := 0; s < bt.B; s++ {
		n := bt.T
		if mt.bb.packed {
			n = 0
			for _, v := range bt.Mask[s*bt.T : (s+1)*bt.T] {
				n += int(v)
			}
		}
		out[s+1] = out[s] + n
	}
	return out
}

// tables builds and uploads the batch's segment tables: one segment per
// run; the LayerNorm table (slot per task) and, per adapter stack and site,
// the adapter table (the task's slot, -1 for rows of other stacks or
// without an adapter there). Identical tables are uploaded once.
func (mt *Multi) tables(runs []TaskRun, rows []int) error {
	S := len(runs)
	mt.cur.S = S
	var host []int32
	index := map[string]int{} // table content -> offset in host
	add := func(slot func(t *multiTask) int) int {
		var tab []int32
		seq := 0
		for _, r := range runs {
			tab = append(tab, int32(rows[seq]), int32(rows[seq+r.Seqs]), int32(slot(mt.tasks[r.Task])))
			seq += r.Seqs
		}
		key := fmt.Sprint(tab)
		if off, ok := index[key]; ok {
			return off
		}
		off := len(host)
		index[key] = off
		host = append(host, tab...)
		return off
	}
	lnOff, anyLN := -1, false
	for _, r := range runs {
		anyLN = anyLN || mt.tasks[r.Task].lnSlot != 0
	}
	if anyLN {
		lnOff = add(func(t *multiTask) int { return t.lnSlot })
	}
	adOff := make([][][2]int, len(mt.stacks))
	for k, st := range mt.stacks {
		adOff[k] = make([][2]int, mt.L)
		for l := 0; l < mt.L; l++ {
			for i := 0; i < 2; i++ {
				used := false
				for _, r := range runs {
					t := mt.tasks[r.Task]
					used = used || (t.stack == st && t.sites[l][i])
				}
				adOff[k][l][i] = -1
				if used {
					adOff[k][l][i] = add(func(t *multiTask) int {
						if t.stack == st && t.sites[l][i] {
							return t.aslot
						}
						return -1
					})
				}
			}
		}
	}
	if len(host) > mt.segCap {
		if mt.segArena != nil {
			mt.b.Free(mt.segArena)
		}
		t, err := mt.b.Alloc(backend.I32, 2*len(host))
		if err != nil {
			return fmt.Errorf("model: segment tables: %w", err)
		}
		mt.segArena, mt.segCap = t, 2*len(host)
	}
	if len(host) > 0 {
		v, err := mt.b.View(mt.segArena, 0, len(host))
		if err != nil {
			return err
		}
		if err := mt.b.UploadInt32(v, host); err != nil {
			return fmt.Errorf("model: uploading segment tables: %w", err)
		}
	}
	view := func(off int) (backend.Tensor, error) {
		if off < 0 {
			return nil, nil
		}
		return mt.b.View(mt.segArena, off, S, 3)
	}
	var err error
	if mt.cur.lnTable, err = view(lnOff); err != nil {
		return err
	}
	mt.cur.ad = make([]adapterTablesT, len(mt.stacks))
	for k := range mt.stacks {
		mt.cur.ad[k] = make(adapterTablesT, mt.L)
		for l := 0; l < mt.L; l++ {
			for i := 0; i < 2; i++ {
				if mt.cur.ad[k][l][i], err = view(adOff[k][l][i]); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// taskSites replaces the per-task parts of the backbone's forward pass.
type taskSites interface {
	// adapter sets out = each row's task's adapter of site (l, i) applied
	// to h (out = h for rows without one); N rows.
	adapter(l, i int, out, h backend.Tensor, N int) error
	// layerNorm normalises inp into out with each row's task's parameters
	// of LayerNorm site (l, i) (l = layerEmbedding: the embeddings').
	// mean and rstd (N) are scratch for the statistics.
	layerNorm(l, i int, out, mean, rstd, inp backend.Tensor, N int) error
}

// layerNormForward runs the LayerNorm of site (l, i): the model's own, or
// the tasks' (Multi).
func (m *Model) layerNormForward(l, i int, out, mean, rstd, inp backend.Tensor, n layerNorm, N int) error {
	if m.tasks != nil {
		return m.tasks.layerNorm(l, i, out, mean, rstd, inp, N)
	}
	return m.b.LayerNormForward(out, mean, rstd, inp, n.W, n.B, N, m.C, m.eps)
}

func (mt *Multi) adapter(l, i int, out, h backend.Tensor, N int) error {
	C := mt.C
	first := true
	for k, st := range mt.stacks {
		tab := mt.cur.ad[k][l][i]
		if tab == nil {
			continue
		}
		var ws [4]backend.Tensor
		for j := range ws {
			v, err := mt.part(st.s, 2*l+i, j)
			if err != nil {
				return err
			}
			ws[j] = v
		}
		M, G := st.M, st.s.G
		// The first stack writes every row (rows of others are copied),
		// the next ones work in place on their own rows.
		in := h
		if !first {
			in = out
		}
		if err := backend.GroupedAdapterForward(mt.b, out, in, ws[0], ws[1], ws[2], ws[3], tab, N, C, M, G, mt.cur.S, st.act); err != nil {
			return err
		}
		first = false
	}
	if first {
		return mt.b.Copy(mt.prefix(out, N*C), mt.prefix(h, N*C))
	}
	return nil
}

func (mt *Multi) prefix(t backend.Tensor, n int) backend.Tensor {
	v, err := mt.b.View(t, 0, n)
	if err != nil {
		panic("model: Multi.prefix: " + err.Error())
	}
	return v
}

func (mt *Multi) layerNorm(l, i int, out, mean, rstd, inp backend.Tensor, N int) error {
	site := 0
	if l != layerEmbedding {
		site = 1 + 2*l + i
	}
	var wb [2]backend.Tensor
	for j := range wb {
		var err error
		if mt.cur.lnTable == nil {
			wb[j], err = mt.slotPart(mt.ln, site, j, 0)
		} else {
			wb[j], err = mt.part(mt.ln, site, j)
		}
		if err != nil {
			return err
		}
	}
	if mt.cur.lnTable == nil {
		// Every row keeps the backbone's LayerNorm: the plain op, slot 0.
		return mt.b.LayerNormForward(out, mean, rstd, inp, wb[0], wb[1], N, mt.C, mt.bb.eps)
	}
	return backend.GroupedLayerNormForward(mt.b, out, inp, wb[0], wb[1], mt.cur.lnTable, N, mt.C, mt.ln.G, mt.cur.S, mt.bb.eps)
}

// heads computes every run's pooling and classifier, as Model's head does
// for the run's sequences alone, and returns the logits per sequence.
func (mt *Multi) heads(bt *Batch, runs []TaskRun, rows []int) ([][]float32, error) {
	b, bb, C, B, T := mt.b, mt.bb, mt.C, bt.B, bt.T
	hidden := bb.acts[mt.L-1].out
	N := rows[B]
	rest := func(t backend.Tensor, off int) (backend.Tensor, error) { return b.View(t, off, t.Len()-off) }
	seqTask := make([]*multiTask, 0, B)
	for _, r := range runs {
		for k := 0; k < r.Seqs; k++ {
			seqTask = append(seqTask, mt.tasks[r.Task])
		}
	}
	// Pooling weights. Packed: one (B, N) matrix for every sequence (one-hot
	// at [CLS] for the pooler and cls, 1/len over the sequence for mean),
	// one GEMM into gath, as Model.poolPacked. Padded: (B, T) rows for the
	// cls and mean sequences, as Model.poolPadded.
	if bb.packed {
		w := mt.host.poolW[:B*N]
		clear(w)
		for s, t := range seqTask {
			r0, r1 := rows[s], rows[s+1]
			if t.pooling != PoolingMean {
				w[s*N+r0] = 1
				continue
			}
			for r := r0; r < r1; r++ {
				w[s*N+r] = 1 / float32(r1-r0)
			}
		}
		pw, err := b.View(mt.poolW, 0, B, N)
		if err != nil {
			return nil, err
		}
		if err := b.Upload(pw, w); err != nil {
			return nil, wrap(err, "uploading pooling weights")
		}
		if err := b.Gemm(mt.gath, pw, hidden, backend.MatMul{M: B, N: C, K: N, Alpha: 1}); err != nil {
			return nil, wrap(err, "gathering the pooled rows")
		}
	} else {
		w := mt.host.poolW[:B*T]
		clear(w)
		weighted := false
		for s, t := range seqTask {
			switch t.pooling {
			case PoolingCLS:
				w[s*T], weighted = 1, true
			case PoolingMean:
				weighted = true
				n := 0
				for _, v := range bt.Mask[s*T : (s+1)*T] {
					n += int(v)
				}
				for k := 0; k < T && n > 0; k++ {
					w[s*T+k] = float32(bt.Mask[s*T+k]) / float32(n)
				}
			}
		}
		if weighted {
			pw, err := b.View(mt.poolW, 0, B*T)
			if err != nil {
				return nil, err
			}
			if err := b.Upload(pw, w); err != nil {
				return nil, wrap(err, "uploading pooling weights")
			}
		}
	}
	seq, off := 0, 0
	for k, r := range runs {
		t := mt.tasks[r.Task]
		s0, n := seq, r.Seqs
		seq += n
		pooled, err := b.View(mt.pooled, s0*C, n*C)
		if err != nil {
			return nil, err
		}
		in := pooled
		switch {
		case t.pooling == PoolingPooler:
			p := mt.pooler
			if t.pooler != nil {
				p = t.pooler
			}
			// Packed: the gathered [CLS] rows; padded: each sequence's
			// first row in place (row stride T·C), as Model's pooler reads.
			src, off, ld := mt.gath, s0*C, C
			if !bb.packed {
				src, off, ld = hidden, s0*T*C, T*C
			}
			x, err := rest(src, off)
			if err != nil {
				return nil, err
			}
			pre, err := b.View(mt.pre, s0*C, n*C)
			if err != nil {
				return nil, err
			}
			if err := b.Gemm(pre, x, p.W, backend.MatMul{TransB: true, M: n, N: C, K: C, Alpha: 1, LdA: ld}); err != nil {
				return nil, wrap(err, "run %d pooler.dense", k)
			}
			if err := b.AddBias(pre, p.B, n, C); err != nil {
				return nil, wrap(err, "run %d pooler.dense bias", k)
			}
			if err := b.TanhForward(pooled, pre, n*C); err != nil {
				return nil, wrap(err, "run %d pooler tanh", k)
			}
		case bb.packed:
			if in, err = b.View(mt.gath, s0*C, n*C); err != nil {
				return nil, err
			}
		default:
			pw, err := rest(mt.poolW, s0*T)
			if err != nil {
				return nil, err
			}
			hv, err := rest(hidden, s0*T*C)
			if err != nil {
				return nil, err
			}
			if err := b.Gemm(pooled, pw, hv, backend.MatMul{M: 1, N: C, K: T, Alpha: 1, Batch: n, StrideA: T, StrideB: T * C, StrideC: C}); err != nil {
				return nil, wrap(err, "run %d %s pooling", k, t.pooling)
			}
		}
		K := t.numLabels
		lv, err := b.View(mt.logits, off, n*K)
		if err != nil {
			return nil, err
		}
		if err := b.Gemm(lv, in, t.head.W, backend.MatMul{TransB: true, M: n, N: K, K: C, Alpha: 1}); err != nil {
			return nil, wrap(err, "run %d classifier", k)
		}
		if err := b.AddBias(lv, t.head.B, n, K); err != nil {
			return nil, wrap(err, "run %d classifier bias", k)
		}
		off += n * K
	}
	host := mt.host.logits[:off]
	lv, err := b.View(mt.logits, 0, off)
	if err != nil {
		return nil, err
	}
	if err := b.Download(host, lv); err != nil {
		return nil, wrap(err, "downloading logits")
	}
	out := make([][]float32, B)
	off = 0
	for s, t := range seqTask {
		out[s] = host[off : off+t.numLabels : off+t.numLabels]
		off += t.numLabels
	}
	return out, nil
}
