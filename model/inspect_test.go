package model

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/houlsby/adapters/internal/testassets"
	"github.com/houlsby/adapters/model/safetensors"
)

// TestInspectMiniLM prints the real model and checks the counts. Expected
// numbers, by hand from the config (V=30522, P=512, TV=2, C=384, I=1536):
// embeddings (V+P+TV)*C + 2C = 11,918,592; attention 4(C*C+C) = 591,360;
// FFN 2*C*I + I + C = 1,181,568; LayerNorms 4C = 1,536; per layer 1,774,464;
// 6 layers 10,646,784; pooler C*C+C = 147,840; total 22,713,216.
func TestInspectMiniLM(t *testing.T) {
	dir := testassets.ModelDir()
	testassets.Require(t, "make assets", filepath.Join(dir, WeightsFile))
	var b strings.Builder
	if err := Inspect(&b, dir); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"11,918,592", "591,360", "1,181,568", "1,536", "1,774,464", "10,646,784", "147,840", "22,713,216",
		"hidden_size                   384", "num_attention_heads           12 (head size 32)",
		"tensors (103):", PoolerPresentNote, "ignored task-head tensors: none",
		"encoder.layer.5.intermediate.dense.weight", "[1536 384]",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out, "position_ids") {
		t.Error("position_ids buffer listed as a tensor")
	}
	if testing.Verbose() {
		t.Log("\n" + out)
	}
}

// TestInspectNoPooler: a checkpoint without pooler and with a task head says
// what happens to the pooler and lists the ignored tensors.
func TestInspectNoPooler(t *testing.T) {
	cfg := ckTinyConfig(t)
	ts := append(ckTinyTensors(cfg, false, safetensors.BF16, func(s string) string { return "bert." + s }),
		safetensors.F32Tensor("classifier.weight", []int{2, 8}, make([]float32, 16)))
	dir := ckWriteModel(t, ckTinyConfigJSON, ts)
	var b strings.Builder
	if err := Inspect(&b, dir); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	c := CountParams(cfg, false)
	for _, want := range []string{PoolerAbsentNote, "ignored task-head tensors (1): classifier.weight", "BF16",
		"bert.encoder.layer.1.output.LayerNorm.bias", fmtThousands(c.Total())} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if c.Pooler != 0 || c.Layers != 2 || c.LayerAttention != 4*(8*8+8) {
		t.Errorf("counts %+v", c)
	}
	if err := Inspect(&b, t.TempDir()); err == nil {
		t.Error("Inspect of an empty folder succeeded")
	}
}

func TestFmtThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 22713216: "22,713,216", -1234567: "-1,234,567"} {
		if got := fmtThousands(n); got != want {
			t.Errorf("%d -> %s", n, got)
		}
	}
}
