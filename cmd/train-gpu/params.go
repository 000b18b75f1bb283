package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/houlsby/adapters/adapter"
	"github.com/houlsby/adapters/model"
	"github.com/houlsby/adapters/model/safetensors"
)

const paramsHelp = `
Usage: train-gpu params MODEL_DIR|config.json [flags]

Prints the parameter accounting of a BERT model with bottleneck adapters:
for each bottleneck size m the adapter parameters (2·d·m + d + m per
adapter), what trains under the strategy (adapters, LayerNorms, head) and
the trained share of the pretrained model. With a strategy other than
"adapters" it prints one row.

MODEL_DIR is a Hugging Face folder (config.json, and model.safetensors to
see whether the checkpoint has a pooler); a bare config.json is assumed to
come with a pooler (use --no-pooler otherwise).
`

// baseOf extracts the shape essentials of a model config.
func baseOf(c model.Config) adapter.Base { return adapter.BaseOf(c) }

// modelShape reads config.json from path (a folder or the file itself) and
// finds out whether the checkpoint has a pooler. how says where that came
// from.
func modelShape(path string, noPooler bool) (cfg model.Config, hasPooler bool, how string, err error) {
	st, err := os.Stat(path)
	if err != nil {
		return cfg, false, "", err
	}
	dir, cfgPath := path, filepath.Join(path, model.ConfigFile)
	if !st.IsDir() {
		dir, cfgPath = "", path
	}
	if cfg, err = model.LoadConfig(cfgPath); err != nil {
		return cfg, false, "", err
	}
	if noPooler {
		return cfg, false, "--no-pooler", nil
	}
	if dir == "" {
		return cfg, true, "assumed (bare config.json; --no-pooler if absent)", nil
	}
	if f, err := safetensors.Open(filepath.Join(dir, model.WeightsFile)); err == nil {
		defer f.Close()
		for _, n := range f.Names() {
			if model.CanonicalTensorName(n) == model.NamePoolerWeight {
				return cfg, true, "found in " + model.WeightsFile, nil
			}
		}
		return cfg, false, "absent from " + model.WeightsFile, nil
	}
	if raw, err := os.ReadFile(filepath.Join(dir, model.WeightsIndexFile)); err == nil {
		var idx struct {
			WeightMap map[string]string `json:"weight_map"`
		}
		if err := json.Unmarshal(raw, &idx); err != nil {
			return cfg, false, "", fmt.Errorf("%s: %w", model.WeightsIndexFile, err)
		}
		for n := range idx.WeightMap {
			if model.CanonicalTensorName(n) == model.NamePoolerWeight {
				return cfg, true, "found in " + model.WeightsIndexFile, nil
			}
		}
		return cfg, false, "absent from " + model.WeightsIndexFile, nil
	}
	return cfg, true, "assumed (no weights file found)", nil
}

// group formats n with thousands separators.
func group(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func runParams(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("params", paramsHelp, stdout)
	strategy := fs.String("strategy", "adapters", "training strategy: "+strings.Join(adapter.Strategies, ", "))
	labels := fs.Int("labels", 2, "number of labels of the classification head (1 = regression)")
	head := fs.String("head", adapter.HeadPooler, "head kind: pooler, cls, mean or cls_dense")
	topK := fs.Int("top-k", 1, "layers trained by --strategy top_k")
	trainLN := fs.Bool("train-layernorm", true, "adapters strategy: also train every LayerNorm")
	placement := fs.String("placement", adapter.PlaceHoulsby, "adapter placement: houlsby, ffn or attention")
	sizes := fs.String("bottlenecks", "8,16,32,64,128,256", "comma-separated bottleneck sizes m for the sweep")
	noPooler := fs.Bool("no-pooler", false, "treat the checkpoint as having no pooler (the pooler head then creates and trains one)")
	pos, err := parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	cfg, hasPooler, how, err := modelShape(pos[0], *noPooler)
	if err != nil {
		return err
	}
	b := baseOf(cfg)
	var ms []int
	for _, s := range strings.Split(*sizes, ",") {
		m, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || m < 1 {
			return fmt.Errorf("--bottlenecks: %q is not a positive integer", s)
		}
		ms = append(ms, m)
	}
	st := adapter.Strategy{Name: *strategy, TopK: *topK, TrainLayerNorm: *trainLN}
	if !st.UsesAdapters() {
		ms = ms[:1] // one row: the bottleneck does not matter
	}
	plan := func(m int) adapter.Plan {
		a := adapter.Default()
		a.Bottleneck = m
		a.Placement = *placement
		return adapter.Plan{Base: b, HasPooler: hasPooler, Adapter: a, Strategy: st, Head: adapter.Head{Kind: *head, NumLabels: *labels}}
	}
	c0, err := adapter.Count(plan(ms[0]))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "model:     %s\n", pos[0])
	fmt.Fprintf(stdout, "shape:     d=%d, %d layers, %d heads, intermediate %d, vocab %d\n", b.HiddenSize, b.NumHiddenLayers, b.NumAttentionHeads, b.IntermediateSize, b.VocabSize)
	fmt.Fprintf(stdout, "pooler:    %v (%s)\n", hasPooler, how)
	fmt.Fprintf(stdout, "backbone:  %s pretrained parameters loaded (LayerNorms %s)\n", group(c0.Backbone), group(c0.LayerNorms))
	fmt.Fprintf(stdout, "strategy:  %s", st.Name)
	switch st.Name {
	case adapter.StratAdapters:
		fmt.Fprintf(stdout, " (placement %s, LayerNorms trained: %v)", *placement, *trainLN)
	case adapter.StratTopK:
		fmt.Fprintf(stdout, " (top %d layers)", *topK)
	}
	fmt.Fprintf(stdout, "\nhead:      %s, %d label(s)\n\n", *head, *labels)
	return printParamsTable(stdout, st, ms, plan)
}

// printParamsTable prints one row of parameter counts per bottleneck size m
// (one row for strategies without adapters) and the notes on the columns.
func printParamsTable(stdout io.Writer, st adapter.Strategy, ms []int, plan func(m int) adapter.Plan) error {
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	if st.UsesAdapters() {
		fmt.Fprintln(tw, "m\tper adapter\tadapters\tadapter params\tw/o b_down\tLayerNorms\thead\ttrained\ttrained share\t")
	} else {
		fmt.Fprintln(tw, "LayerNorms\thead\ttrained\ttrained share\t")
	}
	for _, m := range ms {
		c, err := adapter.Count(plan(m))
		if err != nil {
			return err
		}
		share := fmt.Sprintf("%.3f%%", 100*c.TrainedShare())
		if st.UsesAdapters() {
			// w/o b_down: the adapters' weights and up-projection biases
			// only, 2·d·m + d each: the convention of the figures usually
			// quoted for BERT-base (m = 64 → 2,377,728), which leave out
			// the m down-projection biases per adapter.
			noDown := c.Adapters - int64(c.NumAdapters)*int64(c.M)
			fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t\n", c.M, group(c.PerAdapter), c.NumAdapters, group(c.Adapters),
				group(noDown), group(c.TrainedLayerNorms), group(c.Head), group(c.Trained), share)
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", group(c.TrainedLayerNorms), group(c.Head), group(c.Trained), share)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\ntrained share = trained / backbone parameters; per adapter = 2·d·m + d + m (AdapterHub's count).\n")
	if st.UsesAdapters() {
		fmt.Fprintf(stdout, "w/o b_down = adapters·(2·d·m + d): the often-quoted figures, which leave out the m down-projection biases.\n")
	}
	return nil
}
