package adapter

import (
	"fmt"

	"github.com/houlsby/adapters/model"
)

// Plan is everything that decides the adapted model's tensors and which of
// them train.
type Plan struct {
	// Base is the base model's shape.
	Base Base
	// HasPooler is true when the checkpoint holds "pooler.dense.*".
	HasPooler bool
	// Adapter is the adapter configuration; it is used only when the
	// strategy inserts adapters.
	Adapter Config
	// Strategy decides what trains; NumLayers and CreatedPooler are filled
	// in by Resolve.
	Strategy Strategy
	// Head is the task head.
	Head Head
}

// Resolved returns the plan with Strategy.NumLayers and
// Strategy.CreatedPooler set, the resolved adapter config (nil without
// adapters), after validating everything.
func (p Plan) Resolve() (Plan, *model.AdapterOptions, error) {
	if err := p.Base.Validate(); err != nil {
		return p, nil, err
	}
	if err := p.Head.Validate(); err != nil {
		return p, nil, err
	}
	p.Strategy.NumLayers = p.Base.NumHiddenLayers
	p.Strategy.CreatedPooler = p.Head.UsesPooler() && !p.HasPooler
	if err := p.Strategy.Validate(); err != nil {
		return p, nil, err
	}
	if !p.Strategy.UsesAdapters() {
		return p, nil, nil
	}
	r, err := p.Adapter.Resolve(p.Base.HiddenSize, p.Base.NumHiddenLayers)
	if err != nil {
		return p, nil, err
	}
	return p, &r, nil
}

// Tensors lists the adapted model's tensors (model.Tensors) after resolving
// the plan, and the resolved strategy that decides which of them train.
func (p Plan) Tensors() ([]model.TensorSpec, Strategy, error) {
	p, r, err := p.Resolve()
	if err != nil {
		return nil, p.Strategy, err
	}
	h := p.Head.Options()
	return model.Tensors(p.Base.Config(), p.HasPooler, r, &h), p.Strategy, nil
}

// Counts is the parameter accounting of a Plan.
type Counts struct {
	// M is the bottleneck width (0 without adapters); NumAdapters the number
	// of adapters; PerAdapter = 2·d·m + d + m.
	M, NumAdapters int
	PerAdapter     int64
	// Adapters is the number of adapter parameters (all of them train).
	Adapters int64
	// LayerNorms is the number of LayerNorm parameters in the backbone
	// (2·d each, 2 per layer + 1 after the embeddings); TrainedLayerNorms
	// those of them that train.
	LayerNorms, TrainedLayerNorms int64
	// Head is the number of head parameters: the classifier, plus a
	// pooler when the head uses one and it trains or was created.
	Head int64
	// Backbone is the number of pretrained parameters the model loads
	// (a pooler the head does not use is not loaded).
	Backbone int64
	// Total is Backbone + Adapters + the created part of the head.
	Total int64
	// Trained is the number of parameters that train.
	Trained int64
}

// TrainedShare is Trained / Backbone: the size of what a task must store
// relative to the pretrained model, the ratio Houlsby et al. report.
func (c Counts) TrainedShare() float64 {
	if c.Backbone == 0 {
		return 0
	}
	return float64(c.Trained) / float64(c.Backbone)
}

// Count does the parameter accounting for p.
func Count(p Plan) (Counts, error) {
	var c Counts
	specs, st, err := p.Tensors()
	if err != nil {
		return c, err
	}
	_, r, _ := p.Resolve()
	if r != nil {
		c.M = r.M
		c.NumAdapters = r.PerLayer() * len(r.Layers)
		c.PerAdapter = PerAdapter(p.Base.HiddenSize, r.M)
	}
	for _, t := range specs {
		n := int64(t.NumElements())
		trained := st.Trainable(t.Name)
		switch t.Category {
		case model.Backbone:
			c.Backbone += n
			if model.IsLayerNorm(t.Name) {
				c.LayerNorms += n
				if trained {
					c.TrainedLayerNorms += n
				}
			}
			if model.IsPooler(t.Name) && trained {
				c.Head += n
			}
		case model.AdapterTensor:
			c.Adapters += n
		case model.HeadTensor:
			c.Head += n
		}
		if t.Category != model.Backbone {
			c.Total += n
		}
		if trained {
			c.Trained += n
		}
	}
	c.Total += c.Backbone
	if c.Adapters != int64(c.NumAdapters)*c.PerAdapter {
		panic(fmt.Sprintf("adapter: counted %d adapter parameters, formula gives %d", c.Adapters, int64(c.NumAdapters)*c.PerAdapter))
	}
	return c, nil
}
