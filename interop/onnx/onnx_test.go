package onnx

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/houlsby/adapters/adapter"
	cpu "github.com/houlsby/adapters/cpu_fallback"
	"github.com/houlsby/adapters/internal/testassets"
	"github.com/houlsby/adapters/internal/tinybert"
	"github.com/houlsby/adapters/interop/onnx/onnxpb"
	"github.com/houlsby/adapters/model"
	"github.com/houlsby/adapters/trainer"
)

// A tiny random model (d = 16, 2 layers) with LayerNorm weights away from 1,
// so a LayerNorm taken from the wrong place shows.
func tinyCheckpoint(t *testing.T, pooler bool) *model.Checkpoint {
	t.Helper()
	dir := t.TempDir()
	s := tinybert.Sentiment
	s.WithPooler, s.JitterLayerNorm = pooler, true
	tinybert.Write(t, dir, s)
	ck, err := model.LoadCheckpoint(dir)
	require.NoError(t, err)
	return ck
}

// trained is a File with every trained tensor drawn at random (a stand-in
// for training: adapters far from the identity, LayerNorms off 1).
func trained(t *testing.T, ck *model.Checkpoint, st adapter.Strategy, c *adapter.Config, h adapter.Head) *adapter.File {
	t.Helper()
	var labels []string
	for i := 0; i < h.NumLabels && h.NumLabels > 1; i++ {
		labels = append(labels, string(rune('a'+i)))
	}
	f := adapter.NewFile(ck, st, c, h, labels)
	exp, err := f.Expected()
	require.NoError(t, err)
	r := rand.New(rand.NewPCG(3, uint64(len(exp))))
	for _, s := range exp {
		v := make([]float32, s.NumElements())
		for i := range v {
			v[i] = float32(0.3 * r.NormFloat64())
			if model.IsLayerNorm(s.Name) && !model.IsBias(s.Name) {
				v[i] += 1
			}
		}
		f.Tensors = append(f.Tensors, adapter.Tensor{Name: s.Name, Shape: s.Shape, Data: v})
	}
	return f
}

type onnxBatch struct {
	IDs   [][]int64 `json:"input_ids"`
	Mask  [][]int64 `json:"attention_mask"`
	Types [][]int64 `json:"token_type_ids"`
}

// batch is 3 sequences of 6, the second and third padded, mixed segments.
func batch() (*model.Batch, onnxBatch) {
	ids := []int32{2, 5, 7, 8, 9, 3, 2, 6, 14, 3, 0, 0, 2, 11, 3, 0, 0, 0}
	mask := []int32{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0}
	types := []int32{0, 0, 0, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0}
	var ob onnxBatch
	for r := 0; r < 3; r++ {
		row := func(v []int32) []int64 {
			out := make([]int64, 6)
			for i := range out {
				out[i] = int64(v[r*6+i])
			}
			return out
		}
		ob.IDs, ob.Mask, ob.Types = append(ob.IDs, row(ids)), append(ob.Mask, row(mask)), append(ob.Types, row(types))
	}
	return &model.Batch{IDs: ids, Mask: mask, TypeIDs: types, B: 3, T: 6}, ob
}

type exportCase struct {
	name   string
	pooler bool
	st     adapter.Strategy
	c      *adapter.Config
	h      adapter.Head
}

func exportCases() []exportCase {
	ah, _ := adapter.LookupPreset(adapter.PresetAdapterHubHoulsby)
	withLN := adapter.Strategy{Name: adapter.StratAdapters, TrainLayerNorm: true}
	return []exportCase{
		{"adapters+LayerNorms/relu/pooler", true, withLN, &adapter.Config{Bottleneck: 4, NonLinearity: "relu"}, adapter.Head{Kind: adapter.HeadPooler, NumLabels: 2}},
		{"adapterhub-houlsby/swish/cls_dense", true, ah.Strategy(), &ah.Adapter, adapter.Head{Kind: ah.Head, NumLabels: 3}},
		{"gelu/ffn/layer1/created-pooler", false, withLN, &adapter.Config{Bottleneck: 3, NonLinearity: "gelu", Placement: adapter.PlaceFFN, Layers: []int{1}}, adapter.Head{Kind: adapter.HeadPooler, NumLabels: 2}},
		{"full/mean/regression", true, adapter.Strategy{Name: adapter.StratFull}, nil, adapter.Head{Kind: adapter.HeadMean, NumLabels: 1}},
		{"bitfit/cls", true, adapter.Strategy{Name: adapter.StratBitFit}, nil, adapter.Head{Kind: adapter.HeadCLS, NumLabels: 2}},
		{"head-only/created-pooler", false, adapter.Strategy{Name: adapter.StratHead}, nil, adapter.Head{Kind: adapter.HeadPooler, NumLabels: 2}},
	}
}

// The graph declares the documented inputs, output and opset; every node
// reads values defined before it (inputs, initializers, earlier outputs), so
// the graph is topologically sorted as ONNX requires; the classifier's Add
// is the output.
func TestGraphShape(t *testing.T) {
	for _, tc := range exportCases() {
		t.Run(tc.name, func(t *testing.T) {
			ck := tinyCheckpoint(t, tc.pooler)
			m, err := Build(ck, trained(t, ck, tc.st, tc.c, tc.h))
			require.NoError(t, err)
			assert.EqualValues(t, IRVersion, m.GetIrVersion())
			require.Len(t, m.OpsetImport, 1)
			assert.EqualValues(t, Opset, m.OpsetImport[0].GetVersion())
			g := m.Graph
			var ins []string
			for _, in := range g.Input {
				ins = append(ins, in.GetName())
				assert.Equal(t, int32(onnxpb.TensorProto_INT64), in.GetType().GetTensorType().GetElemType())
			}
			assert.Equal(t, []string{InputIDs, AttentionMask, TokenTypeIDs}, ins)
			require.Len(t, g.Output, 1)
			assert.Equal(t, Logits, g.Output[0].GetName())
			dims := g.Output[0].GetType().GetTensorType().GetShape().GetDim()
			require.Len(t, dims, 2)
			assert.Equal(t, "batch", dims[0].GetDimParam())
			assert.EqualValues(t, tc.h.NumLabels, dims[1].GetDimValue())
			defined := map[string]bool{}
			for _, n := range ins {
				defined[n] = true
			}
			for _, in := range g.Initializer {
				assert.False(t, defined[in.GetName()], "initializer %s defined twice", in.GetName())
				defined[in.GetName()] = true
			}
			for _, n := range g.Node {
				for _, in := range n.Input {
					require.True(t, defined[in], "node %s reads %s before it is defined", n.GetName(), in)
				}
				for _, out := range n.Output {
					require.False(t, defined[out], "%s defined twice", out)
					defined[out] = true
				}
			}
			assert.Equal(t, Logits, g.Node[len(g.Node)-1].Output[0])
			b, err := proto.Marshal(m)
			require.NoError(t, err)
			var back onnxpb.ModelProto
			require.NoError(t, proto.Unmarshal(b, &back))
			assert.Equal(t, len(g.Node), len(back.Graph.Node))
		})
	}
}

// ONNX's checker accepts every export and ONNX Runtime gives the Go model's
// logits, for every head and strategy (tests/ref/check_onnx.py, run with
// the reference venv; skipped loudly without it).
//
// Tolerance 1e-5 (absolute; the logits are O(1)): both sides compute in
// float32 in different orders (our blocked GEMM, ORT's MLAS), a few hundred
// roundings of 6e-8 per logit in a 2-layer d = 16 model; measured worst
// 6.0e-7 over the six cases. A wrong tensor, transpose, mask or op is off
// by O(0.1).
func TestOnnxRuntimeMatchesModel(t *testing.T) {
	py := testassets.Path(".venv-ref", "bin", "python")
	script := testassets.Path("tests", "ref", "check_onnx.py")
	testassets.Require(t, "make ref-env", py, script)
	const tol = 1e-5
	worst := 0.0
	for _, tc := range exportCases() {
		t.Run(tc.name, func(t *testing.T) {
			ck := tinyCheckpoint(t, tc.pooler)
			f := trained(t, ck, tc.st, tc.c, tc.h)
			m, err := trainer.NewModel(cpu.New(), ck, f, 3, 6, 0)
			require.NoError(t, err)
			defer m.Free()
			bt, ob := batch()
			_, logits, err := m.Forward(bt, false, 0)
			require.NoError(t, err)
			dir := t.TempDir()
			path := filepath.Join(dir, "model.onnx")
			require.NoError(t, Export(path, ck, f))
			in, err := json.Marshal([]onnxBatch{ob})
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(dir, "in.json"), in, 0o644))
			out, err := exec.Command(py, script, path, "batches", filepath.Join(dir, "in.json"), filepath.Join(dir, "out.json")).CombinedOutput()
			require.NoError(t, err, "%s", out)
			var res struct {
				Logits [][]float64 `json:"logits"`
			}
			b, err := os.ReadFile(filepath.Join(dir, "out.json"))
			require.NoError(t, err)
			require.NoError(t, json.Unmarshal(b, &res))
			K := tc.h.NumLabels
			require.Len(t, res.Logits, 3)
			for r := range res.Logits {
				require.Len(t, res.Logits[r], K)
				for k := range res.Logits[r] {
					d := math.Abs(res.Logits[r][k] - float64(logits[r*K+k]))
					worst = math.Max(worst, d)
					assert.LessOrEqual(t, d, tol, "row %d logit %d: onnxruntime %v, go %v", r, k, res.Logits[r][k], logits[r*K+k])
				}
			}
		})
	}
	t.Logf("worst |onnxruntime - go| over every case: %.3g (tol %g)", worst, tol)
}

// A file made for another base model is refused.
func TestExportRefusesOtherBase(t *testing.T) {
	ck := tinyCheckpoint(t, true)
	f := trained(t, ck, adapter.Strategy{Name: adapter.StratHead}, nil, adapter.Head{Kind: adapter.HeadCLS, NumLabels: 2})
	f.BaseFingerprint = "sha256:other"
	assert.ErrorContains(t, Export(filepath.Join(t.TempDir(), "m.onnx"), ck, f), "made for base model sha256:other")
}
