package model

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// PoolerAbsentNote states what happens when a checkpoint has no pooler. It is
// the lead's decision: the classification head then creates a pooler (dense
// C×C + tanh over the [CLS] hidden state), freshly initialised, and TRAINS
// it as part of the head.
const PoolerAbsentNote = "no pooler: the classification head reads the [CLS] hidden state through a freshly initialised, trainable pooler (dense + tanh), trained as part of the head"

// PoolerPresentNote states what the checkpoint's pooler is used for.
const PoolerPresentNote = "pooler: loaded from the checkpoint (dense + tanh over the [CLS] hidden state), feeding the classification head"

// ParamCounts are parameter counts by group, as Inspect prints them.
type ParamCounts struct {
	Embeddings int // word, position, token-type embeddings and their LayerNorm
	// Per layer (every layer has the same counts):
	LayerAttention  int // query, key, value, attention output dense (weights and biases)
	LayerFFN        int // intermediate and output dense
	LayerLayerNorms int // the two LayerNorms (weights and biases)
	Layers          int // number of layers
	Pooler          int // 0 when absent
}

// Layer is the parameter count of one encoder layer.
func (p ParamCounts) Layer() int { return p.LayerAttention + p.LayerFFN + p.LayerLayerNorms }

// Encoder is the parameter count of all layers.
func (p ParamCounts) Encoder() int { return p.Layers * p.Layer() }

// Total is every parameter of the checkpoint.
func (p ParamCounts) Total() int { return p.Embeddings + p.Encoder() + p.Pooler }

// CountParams groups the parameters of a BERT with config cfg.
func CountParams(cfg Config, withPooler bool) ParamCounts {
	p := ParamCounts{Layers: cfg.NumHiddenLayers}
	for _, s := range ExpectedTensors(cfg, withPooler) {
		n := s.NumElements()
		switch s.Group() {
		case "embeddings":
			p.Embeddings += n
		case "pooler":
			p.Pooler += n
		case "attention", "ffn", "layernorm":
			if LayerOf(s.Name) != 0 {
				continue // layers are identical; count layer 0
			}
			switch s.Group() {
			case "attention":
				p.LayerAttention += n
			case "ffn":
				p.LayerFFN += n
			default:
				p.LayerLayerNorms += n
			}
		}
	}
	return p
}

// Inspect loads the model folder dir (LoadCheckpoint: every check applies)
// and prints its config, parameter counts by group, what happens to the
// pooler, the ignored task-head tensors, the fingerprint and the tensor list
// with stored dtypes and shapes.
func Inspect(w io.Writer, dir string) error {
	ck, err := LoadCheckpoint(dir)
	if err != nil {
		return err
	}
	c := ck.Config
	var b strings.Builder
	fmt.Fprintf(&b, "model folder: %s\n", ck.Dir)
	fmt.Fprintf(&b, "weights:      %s\n", strings.Join(ck.Files, ", "))
	fmt.Fprintf(&b, "fingerprint:  %s\n", ck.Fingerprint)
	fmt.Fprintf(&b, "\nconfig (%s):\n", ConfigFile)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	arch := strings.Join(c.Architectures, ", ")
	if arch == "" {
		arch = "-"
	}
	for _, kv := range [][2]string{
		{"model_type", c.ModelType},
		{"architectures", arch},
		{"vocab_size", strconv.Itoa(c.VocabSize)},
		{"hidden_size", strconv.Itoa(c.HiddenSize)},
		{"num_hidden_layers", strconv.Itoa(c.NumHiddenLayers)},
		{"num_attention_heads", fmt.Sprintf("%d (head size %d)", c.NumAttentionHeads, c.HeadSize())},
		{"intermediate_size", strconv.Itoa(c.IntermediateSize)},
		{"hidden_act", c.HiddenAct},
		{"max_position_embeddings", strconv.Itoa(c.MaxPositionEmbeddings)},
		{"type_vocab_size", strconv.Itoa(c.TypeVocabSize)},
		{"layer_norm_eps", strconv.FormatFloat(c.LayerNormEps, 'g', -1, 64)},
		{"hidden_dropout_prob", strconv.FormatFloat(c.HiddenDropoutProb, 'g', -1, 64)},
		{"attention_probs_dropout_prob", strconv.FormatFloat(c.AttentionProbsDropoutProb, 'g', -1, 64)},
		{"pad_token_id", strconv.Itoa(c.PadTokenID)},
		{"position_embedding_type", c.PositionEmbeddingType},
	} {
		fmt.Fprintf(tw, "  %s\t%s\n", kv[0], kv[1])
	}
	if labels, _ := c.Labels(); len(labels) > 0 {
		fmt.Fprintf(tw, "  id2label\t%s\n", strings.Join(labels, ", "))
	}
	tw.Flush()

	p := CountParams(c, ck.HasPooler)
	fmt.Fprintf(&b, "\nparameters:\n")
	for _, row := range []struct {
		label string
		n     int
	}{
		{"embeddings (word, position, token type, LayerNorm)", p.Embeddings},
		{"per layer: attention (Q, K, V, output dense)", p.LayerAttention},
		{"per layer: feed-forward (intermediate, output dense)", p.LayerFFN},
		{"per layer: LayerNorms (2)", p.LayerLayerNorms},
		{"per layer: total", p.Layer()},
		{fmt.Sprintf("encoder (%d layers)", p.Layers), p.Encoder()},
		{"pooler", p.Pooler},
		{"total", p.Total()},
	} {
		fmt.Fprintf(&b, "  %-54s %12s\n", row.label, fmtThousands(row.n))
	}
	if p.Total() != ck.NumParams() {
		// ExpectedTensors and LoadCheckpoint disagree: a bug here, not in the file.
		panic(fmt.Sprintf("model: Inspect: counted %d parameters, loaded %d", p.Total(), ck.NumParams()))
	}

	b.WriteString("\n")
	if ck.HasPooler {
		b.WriteString(PoolerPresentNote + "\n")
	} else {
		b.WriteString(PoolerAbsentNote + "\n")
	}
	if len(ck.Ignored) > 0 {
		fmt.Fprintf(&b, "ignored task-head tensors (%d): %s\n", len(ck.Ignored), strings.Join(ck.Ignored, ", "))
	} else {
		b.WriteString("ignored task-head tensors: none\n")
	}

	specs := ExpectedTensors(c, ck.HasPooler)
	fmt.Fprintf(&b, "\ntensors (%d):\n", len(specs))
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  name\tdtype\tshape\tparams\tstored as\n")
	for _, s := range specs {
		src := ck.Sources[s.Name]
		stored := ""
		if src.Key != s.Name {
			stored = src.Key
		}
		if len(ck.Files) > 1 {
			stored = strings.TrimSpace(stored + " in " + src.File)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%v\t%s\t%s\n", s.Name, src.DType, s.Shape, fmtThousands(s.NumElements()), stored)
	}
	tw.Flush()
	_, err = io.WriteString(w, b.String())
	if err != nil {
		return fmt.Errorf("model: inspect %s: %w", dir, err)
	}
	return nil
}

// fmtThousands formats n with thousands separators (22713216 -> 22,713,216).
func fmtThousands(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}
