package serve

import (
	"fmt"

	"github.com/houlsby/adapters/model"
)

// sharedEngine runs the tasks that share the frozen backbone (adapters,
// LayerNorm only, head only) in mixed batches through model.Multi.
type sharedEngine struct {
	m   *model.Multi
	pad int32
}

// addShared serves t on the shared backbone, creating it with the first
// such task.
func (p *Predictor) addShared(t *task) error {
	spec, err := taskSpec(t)
	if err != nil {
		return err
	}
	if p.shared == nil {
		m, err := model.NewMulti(p.be, p.ck, model.MultiOptions{MaxBatch: p.opts.MaxBatchRows, MaxSeq: p.opts.MaxLength})
		if err != nil {
			return err
		}
		p.shared = &sharedEngine{m: m, pad: p.tok.PadID()}
	}
	id, err := p.shared.m.AddTask(spec)
	if err != nil {
		return err
	}
	t.id, t.eng = id, p.shared
	t.info.MemoryBytes = p.shared.m.TaskBytes(id)
	return nil
}

// taskSpec is what model.Multi needs of t's adapter file.
func taskSpec(t *task) (model.TaskSpec, error) {
	f := t.file
	plan, opts, err := f.Plan().Resolve()
	if err != nil {
		return model.TaskSpec{}, err
	}
	if plan.Strategy.UsesAdapters() && opts == nil {
		return model.TaskSpec{}, fmt.Errorf("strategy adapters without an adapter config")
	}
	spec := model.TaskSpec{Adapter: opts, Head: f.Head.Options(), Tensors: map[string][]float32{}}
	for _, x := range f.Tensors {
		spec.Tensors[x.Name] = x.Data
	}
	return spec, nil
}

func (e *sharedEngine) forward(b *batch) ([][]float32, error) {
	var runs []model.TaskRun
	for i, r := range b.rows {
		if i > 0 && r.req.task == b.rows[i-1].req.task {
			runs[len(runs)-1].Seqs++
			continue
		}
		runs = append(runs, model.TaskRun{Task: r.req.task.id, Seqs: 1})
	}
	return e.m.Forward(b.padded(e.pad), runs)
}

// remove frees t's slots. After Close has freed the backbone (a replaced
// version retired late) there is nothing left to free: RemoveTask's error
// then says so and is of no consequence.
func (e *sharedEngine) remove(t *task) { _ = e.m.RemoveTask(t.id) }
