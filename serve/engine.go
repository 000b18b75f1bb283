package serve

import (
	"fmt"

	"github.com/houlsby/adapters/model"
)

// engine runs batches: the shared backbone (sharedEngine, rows of several
// tasks per pass) or one task's own model (instanceEngine).
type engine interface {
	// forward returns each row's logits (views valid until the next call).
	forward(b *batch) ([][]float32, error)
	// remove frees the task's parameters (the caller holds engMu, and no
	// input of t is queued or running).
	remove(t *task)
}

// instanceEngine is a task with a model of its own: full fine-tuning,
// top-k layers and BitFit change the backbone's weights or biases, so
// their rows cannot share a backbone pass with other tasks'.
type instanceEngine struct {
	m   *model.Model
	pad int32
}

func (e *instanceEngine) forward(b *batch) ([][]float32, error) {
	mb := b.padded(e.pad)
	_, logits, err := e.m.Forward(mb, false, 0)
	if err != nil {
		return nil, fmt.Errorf("task %s: %w", b.rows[0].req.task.name, err)
	}
	V := e.m.NumLabels()
	out := make([][]float32, len(b.rows))
	for i := range out {
		out[i] = logits[i*V : (i+1)*V]
	}
	return out, nil
}

func (e *instanceEngine) remove(t *task) {
	if e.m != nil {
		e.m.Free()
		e.m = nil
	}
}
