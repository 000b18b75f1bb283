package serve

import (
	"github.com/houlsby/adapters/model"
	"github.com/houlsby/adapters/trainer"
)

// addShared serves t on the shared backbone. (Temporary: a model of its
// own until model.Multi lands.)
func (p *Predictor) addShared(t *task) error {
	m, err := newInstance(p, t)
	if err != nil {
		return err
	}
	t.inst, t.eng = m, &instanceEngine{m: m, pad: p.tok.PadID()}
	t.info.MemoryBytes = m.Bytes()
	return nil
}

type sharedEngine struct{ m interface{ BackboneBytes() int64; Free() } }

func (e *sharedEngine) forward(b *batch) ([][]float32, error) { return nil, nil }
func (e *sharedEngine) remove(t *task)                      {}

func newInstance(p *Predictor, t *task) (*model.Model, error) {
	return trainer.NewModel(p.be, p.ck, t.file, p.opts.MaxBatchRows, p.opts.MaxLength, 0)
}
