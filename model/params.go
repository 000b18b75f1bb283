package model

import (
	"fmt"

	"github.com/houlsby/adapters/backend"
)

// Param is one named tensor of a Model, under its Hugging Face name (without
// the "bert." prefix), so checkpoints and adapter files use HF naming.
//
// T is a view into one of the model's two parameter arenas: the frozen arena
// (Backend.FrozenDType) or the trainable arena (F32). Grad is a view into the
// gradient arena (F32) and is nil when the tensor is frozen: frozen tensors
// have no gradient buffer at all.
type Param struct {
	// Name is the Hugging Face name, e.g. "encoder.layer.3.attention.self.query.weight".
	Name string
	// T holds the values, Shape-shaped (Hugging Face layout (out, in) for linears).
	T backend.Tensor
	// Grad accumulates the gradient (F32, same shape); nil when frozen.
	Grad backend.Tensor
	// Offset is where T starts in the trainable arena and Grad in the
	// gradient arena (the same place: see TrainArena); -1 when frozen.
	Offset int
	// Shape is the tensor's shape.
	Shape []int
	// Trainable reports whether the optimizer updates this tensor.
	Trainable bool

	// layer and stage place the tensor in the network for the "no backward
	// below the lowest trainable tensor" rule (see stage constants).
	layer, stage int
}

// Len is the number of elements of p.
func (p *Param) Len() int { return prod(p.Shape) }

// Stages of one encoder layer, bottom to top. Backward through the lowest
// layer that holds a trainable tensor stops at the stage of that tensor.
const (
	stageQKV       = iota // attention.self.{query,key,value}
	stageAttnOut          // attention.output.dense
	stageAdapter1         // attention.output.adapter
	stageLN1              // attention.output.LayerNorm
	stageInter            // intermediate.dense
	stageOut              // output.dense
	stageAdapter2         // output.adapter
	stageLN2              // output.LayerNorm
	stagePooler    = 0    // pooler.dense, in pseudo-layer L
	stageHead      = 1    // classifier, in pseudo-layer L
	layerEmbedding = -1   // the embeddings' pseudo-layer
)

// paramSpec is one tensor to create: its name, shape, where it sits, and where
// its initial values come from (checkpoint data or an initialiser).
type paramSpec struct {
	name         string
	shape        []int
	layer, stage int
	data         []float32 // initial values (len prod(shape))
	trainable    bool
}

// paramGroup is a run of tensors stored contiguously in one arena (the fused
// Q/K/V weight (3C, C) and bias (3C) of a layer; otherwise a single tensor).
// The group lives in the trainable (F32) arena if any member is trainable,
// so a frozen member of a partly trainable group is stored in F32.
type paramGroup struct {
	specs     []*paramSpec
	trainable bool // any member trainable

	// Filled by allocate.
	t      backend.Tensor // the whole group, shape (Σ rows, ...) or (Σ len)
	grad   backend.Tensor // the whole group's gradient when every member trains, else nil
	params []*Param
}

func (g *paramGroup) len() int {
	n := 0
	for _, s := range g.specs {
		n += prod(s.shape)
	}
	return n
}

// arenaAlign rounds every carved offset up to a multiple of this many
// elements (256 bytes in F32), so each tensor starts aligned for vector loads
// on either backend.
const arenaAlign = 64

func alignUp(n int) int { return (n + arenaAlign - 1) / arenaAlign * arenaAlign }

// allocateParams allocates the frozen, trainable and gradient arenas (one
// allocation each) for groups, carves them into views, uploads the initial
// values and returns the registry in group order.
func (m *Model) allocateParams(groups []*paramGroup) error {
	b := m.b
	var frozenN, trainN int
	for _, g := range groups {
		g.trainable = false
		for _, s := range g.specs {
			g.trainable = g.trainable || s.trainable
		}
		if g.trainable {
			trainN += alignUp(g.len())
		} else {
			frozenN += alignUp(g.len())
		}
	}
	alloc := func(dt backend.DType, n int, what string) (backend.Tensor, error) {
		if n == 0 {
			return nil, nil
		}
		t, err := b.Alloc(dt, n)
		if err != nil {
			return nil, fmt.Errorf("model: allocating the %s arena (%d elements of %v): %w", what, n, dt, err)
		}
		m.arenas = append(m.arenas, t)
		return t, nil
	}
	frozen, err := alloc(b.FrozenDType(), frozenN, "frozen parameter")
	if err != nil {
		return err
	}
	train, err := alloc(backend.F32, trainN, "trainable parameter")
	if err != nil {
		return err
	}
	// The gradient arena mirrors the trainable arena element for element,
	// so optimizers treat (parameters, gradients, their own state) as
	// parallel vectors. Only the frozen member of a partly trainable group
	// (possible with a custom Options.Trainable, never with the strategies)
	// gets an unused, always-zero gradient region.
	grads, err := alloc(backend.F32, trainN, "gradient")
	if err != nil {
		return err
	}
	m.frozenArena, m.trainArena, m.gradArena = frozen, train, grads
	m.trainLen = trainN

	var fOff, tOff int
	for _, g := range groups {
		arena, off := frozen, &fOff
		if g.trainable {
			arena, off = train, &tOff
		}
		start := *off
		if g.t, err = b.View(arena, start, groupShape(g)...); err != nil {
			return fmt.Errorf("model: carving %s: %w", g.specs[0].name, err)
		}
		allTrain := g.trainable
		pos := start
		for _, s := range g.specs {
			n := prod(s.shape)
			p := &Param{Name: s.name, Shape: s.shape, Trainable: s.trainable, Offset: -1, layer: s.layer, stage: s.stage}
			if p.T, err = b.View(arena, pos, s.shape...); err != nil {
				return fmt.Errorf("model: carving %s: %w", s.name, err)
			}
			if err := b.Upload(p.T, s.data); err != nil {
				return fmt.Errorf("model: uploading %s: %w", s.name, err)
			}
			s.data = nil // let the host copy go
			if s.trainable {
				if p.Grad, err = b.View(grads, pos, s.shape...); err != nil {
					return fmt.Errorf("model: carving the gradient of %s: %w", s.name, err)
				}
				p.Offset = pos
			} else {
				allTrain = false
			}
			pos += n
			g.params = append(g.params, p)
			m.params = append(m.params, p)
		}
		if allTrain {
			if g.grad, err = b.View(grads, start, groupShape(g)...); err != nil {
				return fmt.Errorf("model: carving the gradient of %s: %w", g.specs[0].name, err)
			}
		}
		*off = alignUp(pos)
	}
	m.byName = make(map[string]*Param, len(m.params))
	for _, p := range m.params {
		m.byName[p.Name] = p
	}
	return nil
}

// groupShape is the shape of a group's storage: members stacked along the
// first dimension (they share the trailing dimensions).
func groupShape(g *paramGroup) []int {
	s := append([]int(nil), g.specs[0].shape...)
	for _, o := range g.specs[1:] {
		s[0] += o.shape[0]
	}
	return s
}

func prod(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// Params returns the parameter registry in a fixed order: embeddings, then
// each layer (q, k, v, attention output, its adapter, LayerNorm, intermediate,
// output, its adapter, LayerNorm), then pooler and classifier.
func (m *Model) Params() []*Param { return m.params }

// Param returns the parameter called name, or nil.
func (m *Model) Param(name string) *Param { return m.byName[name] }

// TrainableParams returns the trainable subset of Params, in the same order.
func (m *Model) TrainableParams() []*Param {
	var out []*Param
	for _, p := range m.params {
		if p.Trainable {
			out = append(out, p)
		}
	}
	return out
}

// NumParams counts elements: all of them and the trainable ones.
func (m *Model) NumParams() (total, trainable int) {
	for _, p := range m.params {
		total += p.Len()
		if p.Trainable {
			trainable += p.Len()
		}
	}
	return total, trainable
}

// ZeroGrads clears every gradient buffer (one Zero over the gradient arena).
func (m *Model) ZeroGrads() error {
	if m.gradArena == nil {
		return nil
	}
	if err := m.b.Zero(m.gradArena); err != nil {
		return fmt.Errorf("model: zeroing gradients: %w", err)
	}
	return nil
}

// TrainArena returns the model's two parallel F32 arenas: params holds
// every trainable tensor (Param.T is a view at Param.Offset) and grads their
// gradients (Param.Grad, at the same offset); n is their length. Padding
// between tensors is zero in both and stays zero, so optimizers, gradient
// norms and clipping can treat each arena as one vector. Both are nil when
// nothing trains.
func (m *Model) TrainArena() (params, grads backend.Tensor, n int) {
	return m.trainArena, m.gradArena, m.trainLen
}

// checkpointTensor returns the checkpoint tensor name with the given shape.
func checkpointTensor(ck *Checkpoint, name string, shape ...int) ([]float32, error) {
	t, ok := ck.Tensors[name]
	if !ok {
		return nil, fmt.Errorf("model: checkpoint has no tensor %q", name)
	}
	if !sameShape(t.Shape, shape) {
		return nil, fmt.Errorf("model: checkpoint tensor %q has shape %v, want %v", name, t.Shape, shape)
	}
	if len(t.Data) != prod(shape) {
		return nil, fmt.Errorf("model: checkpoint tensor %q has %d values, want %d", name, len(t.Data), prod(shape))
	}
	return t.Data, nil
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
