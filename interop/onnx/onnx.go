// Package onnx writes an adapted BERT classifier (the backbone, the
// adapters, the trained LayerNorms and biases, and the head, as an adapter
// file describes them on its base checkpoint) as one ONNX model, built with
// the ONNX protobuf schema's Go types (package onnxpb) and
// google.golang.org/protobuf.
//
// The model (opset 17, IR version 8) takes three int64 inputs of shape
// [batch, sequence]: input_ids, attention_mask (1 for tokens, 0 for
// padding) and token_type_ids, and gives one float output, logits, of
// shape [batch, num_labels] (num_labels = 1 for regression): exactly what
// model.Model.Forward computes without dropout. Every strategy exports,
// with or without adapters.
package onnx

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/houlsby/adapters/adapter"
	"github.com/houlsby/adapters/backend"
	"github.com/houlsby/adapters/internal/atomicfile"
	"github.com/houlsby/adapters/interop/onnx/onnxpb"
	"github.com/houlsby/adapters/model"
)

// Opset and IRVersion of the written models. Opset 17 is the first with
// LayerNormalization; IR version 8 is the one opset 17 came with.
const (
	Opset     = 17
	IRVersion = 8
)

// Input and output names.
const (
	InputIDs      = "input_ids"
	AttentionMask = "attention_mask"
	TokenTypeIDs  = "token_type_ids"
	Logits        = "logits"
)

// Export writes the model f describes on the base checkpoint ck to path
// (atomically).
func Export(path string, ck *model.Checkpoint, f *adapter.File) error {
	m, err := Build(ck, f)
	if err != nil {
		return err
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return fmt.Errorf("onnx export: %w", err)
	}
	if err := atomicfile.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("onnx export: %w", err)
	}
	return nil
}

// Build returns the ONNX model f describes on ck.
func Build(ck *model.Checkpoint, f *adapter.File) (*onnxpb.ModelProto, error) {
	if err := ck.EnsureTensors(); err != nil {
		return nil, err
	}
	if f.BaseFingerprint != "" && f.BaseFingerprint != ck.Fingerprint {
		return nil, fmt.Errorf("onnx export: the adapter was made for base model %s, not %s (%s)", f.BaseFingerprint, ck.Fingerprint, ck.Dir)
	}
	if err := f.Check("onnx export"); err != nil {
		return nil, err
	}
	p, r, err := f.Plan().Resolve()
	if err != nil {
		return nil, fmt.Errorf("onnx export: %w", err)
	}
	b := &builder{ck: ck, cfg: ck.Config, r: r, head: p.Head, trained: map[string]adapter.Tensor{}, g: &onnxpb.GraphProto{Name: proto.String("houlsby_bert_classifier")}}
	for _, t := range f.Tensors {
		b.trained[t.Name] = t
	}
	if err := b.build(); err != nil {
		return nil, fmt.Errorf("onnx export: %w", err)
	}
	labels, _ := json.Marshal(f.Labels)
	meta := map[string]string{
		"labels": string(labels), "strategy": f.Strategy.Name, "head": f.Head.Kind,
		"base_model_fingerprint": ck.Fingerprint,
		"inputs":                 "input_ids, attention_mask, token_type_ids: int64 [batch, sequence]",
		"outputs":                "logits: float32 [batch, num_labels]",
	}
	var props []*onnxpb.StringStringEntryProto
	for _, k := range []string{"labels", "strategy", "head", "base_model_fingerprint", "inputs", "outputs"} {
		props = append(props, &onnxpb.StringStringEntryProto{Key: proto.String(k), Value: proto.String(meta[k])})
	}
	return &onnxpb.ModelProto{
		IrVersion:     proto.Int64(IRVersion),
		OpsetImport:   []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(Opset)}},
		ProducerName:  proto.String("train-gpu"),
		DocString:     proto.String("BERT with Houlsby bottleneck adapters and a classification head (train-gpu export --format onnx)"),
		Graph:         b.g,
		MetadataProps: props,
	}, nil
}

// builder assembles the graph.
type builder struct {
	ck      *model.Checkpoint
	cfg     model.Config
	r       *model.AdapterOptions // nil without adapters
	head    adapter.Head
	trained map[string]adapter.Tensor
	g       *onnxpb.GraphProto
	n       int
}

// value returns the tensor name's values: the trained ones, else the
// checkpoint's.
func (b *builder) value(name string) ([]int, []float32, error) {
	if t, ok := b.trained[name]; ok {
		return t.Shape, t.Data, nil
	}
	if t, ok := b.ck.Tensors[name]; ok {
		return t.Shape, t.Data, nil
	}
	return nil, nil, fmt.Errorf("neither the adapter nor the base %s holds %s", b.ck.Dir, name)
}

// fresh is a new intermediate value name.
func (b *builder) fresh(op string) string {
	b.n++
	return fmt.Sprintf("%s_%d", strings.ToLower(op), b.n)
}

// node adds op(inputs) with attributes and returns its output's name.
func (b *builder) node(op string, inputs []string, attrs ...*onnxpb.AttributeProto) string {
	out := b.fresh(op)
	b.g.Node = append(b.g.Node, &onnxpb.NodeProto{OpType: proto.String(op), Input: inputs, Output: []string{out}, Name: proto.String(out), Attribute: attrs})
	return out
}

func attrInt(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}

func attrInts(name string, v ...int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: v}
}

func attrFloat(name string, v float32) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_FLOAT.Enum(), F: proto.Float32(v)}
}

// initFloat adds a float32 initializer (raw little-endian data).
func (b *builder) initFloat(name string, shape []int, data []float32) string {
	raw := make([]byte, 4*len(data))
	for i, x := range data {
		u := math.Float32bits(x)
		raw[4*i], raw[4*i+1], raw[4*i+2], raw[4*i+3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
	}
	dims := make([]int64, len(shape))
	for i, d := range shape {
		dims[i] = int64(d)
	}
	b.g.Initializer = append(b.g.Initializer, &onnxpb.TensorProto{Name: proto.String(name), Dims: dims,
		DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), RawData: raw})
	return name
}

// initInt64 adds an int64 initializer.
func (b *builder) initInt64(name string, shape []int64, data ...int64) string {
	b.g.Initializer = append(b.g.Initializer, &onnxpb.TensorProto{Name: proto.String(name), Dims: shape,
		DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)), Int64Data: data})
	return name
}

// scalar adds a float32 scalar initializer.
func (b *builder) scalar(name string, v float32) string { return b.initFloat(name, nil, []float32{v}) }

// param adds the named tensor as an initializer, as stored.
func (b *builder) param(name string) (string, error) {
	shape, data, err := b.value(name)
	if err != nil {
		return "", err
	}
	return b.initFloat(name, shape, data), nil
}

// linear adds y = x·Wᵀ + b for the weight (out, in) and bias called
// prefix+"weight" and prefix+"bias": the weight is stored transposed
// (in, out), as "<weight>.T", so MatMul needs no Transpose node.
func (b *builder) linear(x, prefix string) (string, error) {
	shape, w, err := b.value(prefix + "weight")
	if err != nil {
		return "", err
	}
	if len(shape) != 2 {
		return "", fmt.Errorf("%sweight has shape %v, want 2 dimensions", prefix, shape)
	}
	out, in := shape[0], shape[1]
	wt := make([]float32, len(w))
	for o := 0; o < out; o++ {
		for i := 0; i < in; i++ {
			wt[i*out+o] = w[o*in+i]
		}
	}
	wName := b.initFloat(prefix+"weight.T", []int{in, out}, wt)
	bias, err := b.param(prefix + "bias")
	if err != nil {
		return "", err
	}
	return b.node("Add", []string{b.node("MatMul", []string{x, wName}), bias}), nil
}

// layerNorm adds LayerNormalization over the last axis with the named
// weight and bias (prefix+"weight", prefix+"bias").
func (b *builder) layerNorm(x, prefix string) (string, error) {
	w, err := b.param(prefix + "weight")
	if err != nil {
		return "", err
	}
	bias, err := b.param(prefix + "bias")
	if err != nil {
		return "", err
	}
	return b.node("LayerNormalization", []string{x, w, bias}, attrInt("axis", -1), attrFloat("epsilon", float32(b.cfg.LayerNormEps))), nil
}

// act adds an adapter nonlinearity or BERT's GELU (the exact erf form, as
// transformers' GELUActivation: 0.5·x·(1 + erf(x/√2))).
func (b *builder) act(x string, a backend.Act) string {
	switch a {
	case backend.ReLU:
		return b.node("Relu", []string{x})
	case backend.Swish:
		return b.node("Mul", []string{x, b.node("Sigmoid", []string{x})})
	}
	e := b.node("Erf", []string{b.node("Div", []string{x, "const.sqrt2"})})
	return b.node("Mul", []string{b.node("Mul", []string{x, b.node("Add", []string{e, "const.one"})}), "const.half"})
}

// adapter adds h + up(act(down(h))) for the adapter at prefix, or returns h
// when there is none.
func (b *builder) adapter(h string, l int, ffn bool) (string, error) {
	pre := model.AdapterPrefix(l, ffn)
	if _, ok := b.trained[pre+model.AdapterDownWeight]; !ok {
		return h, nil
	}
	down, err := b.linear(h, pre+"down.")
	if err != nil {
		return "", err
	}
	up, err := b.linear(b.act(down, b.r.Act), pre+"up.")
	if err != nil {
		return "", err
	}
	return b.node("Add", []string{h, up}), nil
}

func (b *builder) valueInfo(name string, elem onnxpb.TensorProto_DataType, dims ...any) *onnxpb.ValueInfoProto {
	var ds []*onnxpb.TensorShapeProto_Dimension
	for _, d := range dims {
		switch d := d.(type) {
		case string:
			ds = append(ds, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: d}})
		case int:
			ds = append(ds, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: int64(d)}})
		}
	}
	return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
		TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(elem)), Shape: &onnxpb.TensorShapeProto{Dim: ds}}}}}
}

// build adds the inputs, the encoder, the head and the output.
func (b *builder) build() error {
	c := b.cfg
	K := b.head.NumLabels
	for _, in := range []string{InputIDs, AttentionMask, TokenTypeIDs} {
		b.g.Input = append(b.g.Input, b.valueInfo(in, onnxpb.TensorProto_INT64, "batch", "sequence"))
	}
	b.g.Output = append(b.g.Output, b.valueInfo(Logits, onnxpb.TensorProto_FLOAT, "batch", K))
	b.scalar("const.sqrt2", float32(math.Sqrt2))
	b.scalar("const.one", 1)
	b.scalar("const.half", 0.5)
	b.scalar("const.scale", float32(1/math.Sqrt(float64(c.HiddenSize/c.NumAttentionHeads))))
	// The additive attention mask, as transformers builds it: 0 for
	// tokens, the lowest float32 for padding, shape (batch, 1, 1, sequence).
	b.scalar("const.lowest", -math.MaxFloat32)
	b.initInt64("const.axes12", []int64{2}, 1, 2)
	maskF := b.node("Cast", []string{AttentionMask}, attrInt("to", int64(onnxpb.TensorProto_FLOAT)))
	maskBias := b.node("Unsqueeze", []string{b.node("Mul", []string{b.node("Sub", []string{"const.one", maskF}), "const.lowest"}), "const.axes12"})

	x, err := b.embeddings()
	if err != nil {
		return err
	}
	for l := 0; l < c.NumHiddenLayers; l++ {
		if x, err = b.layer(x, maskBias, l); err != nil {
			return err
		}
	}
	pooled, err := b.pool(x, maskF)
	if err != nil {
		return err
	}
	if _, err := b.linear(pooled, "classifier."); err != nil {
		return err
	}
	// The classifier's bias Add is the last node: its output is the graph's.
	last := b.g.Node[len(b.g.Node)-1]
	last.Output[0], last.Name = Logits, proto.String(Logits)
	return nil
}

// embeddings adds LayerNorm(word[ids] + type[types] + position[0..T)),
// summed in transformers' order.
func (b *builder) embeddings() (string, error) {
	word, err := b.param(model.NameWordEmbeddings)
	if err != nil {
		return "", err
	}
	typ, err := b.param(model.NameTokenTypeEmbeddings)
	if err != nil {
		return "", err
	}
	pos, err := b.param(model.NamePositionEmbeddings)
	if err != nil {
		return "", err
	}
	b.initInt64("const.i0", nil, 0)
	b.initInt64("const.i1", nil, 1)
	seq := b.node("Gather", []string{b.node("Shape", []string{InputIDs}), "const.i1"}, attrInt("axis", 0))
	positions := b.node("Range", []string{"const.i0", seq, "const.i1"})
	sum := b.node("Add", []string{b.node("Gather", []string{word, InputIDs}, attrInt("axis", 0)), b.node("Gather", []string{typ, TokenTypeIDs}, attrInt("axis", 0))})
	sum = b.node("Add", []string{sum, b.node("Gather", []string{pos, positions}, attrInt("axis", 0))})
	return b.layerNorm(sum, "embeddings.LayerNorm.")
}

// layer adds encoder layer l: self-attention, its output projection,
// adapter, residual and LayerNorm; the feed-forward block, its adapter,
// residual and LayerNorm (model/layer.go's order).
func (b *builder) layer(x, maskBias string, l int) (string, error) {
	c := b.cfg
	NH, HS := c.NumAttentionHeads, c.HiddenSize/c.NumAttentionHeads
	if l == 0 {
		b.initInt64("const.heads_shape", []int64{4}, 0, 0, int64(NH), int64(HS))
		b.initInt64("const.hidden_shape", []int64{3}, 0, 0, int64(c.HiddenSize))
	}
	name := func(s string) string { return model.LayerTensorName(l, s) }
	heads := func(which string, perm ...int64) (string, error) {
		y, err := b.linear(x, name("attention.self."+which+"."))
		if err != nil {
			return "", err
		}
		return b.node("Transpose", []string{b.node("Reshape", []string{y, "const.heads_shape"})}, attrInts("perm", perm...)), nil
	}
	q, err := heads("query", 0, 2, 1, 3) // (B, NH, T, HS)
	if err != nil {
		return "", err
	}
	k, err := heads("key", 0, 2, 3, 1) // (B, NH, HS, T)
	if err != nil {
		return "", err
	}
	v, err := heads("value", 0, 2, 1, 3)
	if err != nil {
		return "", err
	}
	scores := b.node("Add", []string{b.node("Mul", []string{b.node("MatMul", []string{q, k}), "const.scale"}), maskBias})
	probs := b.node("Softmax", []string{scores}, attrInt("axis", -1))
	ctx := b.node("Transpose", []string{b.node("MatMul", []string{probs, v})}, attrInts("perm", 0, 2, 1, 3))
	ctx = b.node("Reshape", []string{ctx, "const.hidden_shape"})
	ao, err := b.linear(ctx, name("attention.output.dense."))
	if err != nil {
		return "", err
	}
	if ao, err = b.adapter(ao, l, false); err != nil {
		return "", err
	}
	h1, err := b.layerNorm(b.node("Add", []string{ao, x}), name("attention.output.LayerNorm."))
	if err != nil {
		return "", err
	}
	ff, err := b.linear(h1, name("intermediate.dense."))
	if err != nil {
		return "", err
	}
	fo, err := b.linear(b.act(ff, backend.GELU), name("output.dense."))
	if err != nil {
		return "", err
	}
	if fo, err = b.adapter(fo, l, true); err != nil {
		return "", err
	}
	return b.layerNorm(b.node("Add", []string{fo, h1}), name("output.LayerNorm."))
}

// pool adds the head's pooling: the [CLS] row, then BERT's pooler or the
// head's dense layer with tanh, or the masked mean.
func (b *builder) pool(hidden, maskF string) (string, error) {
	switch b.head.Kind {
	case adapter.HeadMean:
		b.initInt64("const.axis1", []int64{1}, 1)
		b.initInt64("const.axis2", []int64{1}, 2)
		m := b.node("Unsqueeze", []string{maskF, "const.axis2"}) // (B, T, 1)
		sum := b.node("ReduceSum", []string{b.node("Mul", []string{hidden, m}), "const.axis1"}, attrInt("keepdims", 0))
		n := b.node("ReduceSum", []string{m, "const.axis1"}, attrInt("keepdims", 0)) // (B, 1)
		return b.node("Div", []string{sum, n}), nil
	}
	cls := b.node("Gather", []string{hidden, "const.i0"}, attrInt("axis", 1)) // (B, C)
	switch b.head.Kind {
	case adapter.HeadPooler:
		y, err := b.linear(cls, "pooler.dense.")
		if err != nil {
			return "", err
		}
		return b.node("Tanh", []string{y}), nil
	case adapter.HeadCLSDense:
		y, err := b.linear(cls, "head.dense.")
		if err != nil {
			return "", err
		}
		return b.node("Tanh", []string{y}), nil
	}
	return cls, nil
}
