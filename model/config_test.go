package model

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/houlsby/adapters/internal/testassets"
)

// TestLoadConfigMiniLM reads the real all-MiniLM-L6-v2 config.json.
func TestLoadConfigMiniLM(t *testing.T) {
	path := filepath.Join(testassets.ModelDir(), ConfigFile)
	testassets.Require(t, "make assets", path)
	c, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.HiddenSize != 384 || c.NumHiddenLayers != 6 || c.NumAttentionHeads != 12 || c.HeadSize() != 32 ||
		c.IntermediateSize != 1536 || c.VocabSize != 30522 || c.MaxPositionEmbeddings != 512 ||
		c.TypeVocabSize != 2 || c.LayerNormEps != 1e-12 || c.HiddenAct != "gelu" ||
		len(c.Architectures) != 1 || c.Architectures[0] != "BertModel" {
		t.Fatalf("unexpected config %+v", c)
	}
}

// TestParseConfigDefaults: absent keys take BertConfig's defaults, unknown
// keys are ignored, labels are read in index order.
func TestParseConfigDefaults(t *testing.T) {
	c, err := ParseConfig("c.json", []byte(`{"model_type":"bert","hidden_size":64,"num_attention_heads":4,"use_cache":true,
		"id2label":{"1":"spam","0":"ham"},"label2id":{"ham":0,"spam":1},"classifier_dropout":null}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.NumHiddenLayers != 12 || c.IntermediateSize != 3072 || c.PositionEmbeddingType != "absolute" || c.ClassifierDropout != nil {
		t.Errorf("defaults not applied: %+v", c)
	}
	labels, err := c.Labels()
	if err != nil || strings.Join(labels, ",") != "ham,spam" {
		t.Errorf("labels %v, %v", labels, err)
	}
}

// TestParseConfigRejects: each invalid config gives an error naming the file
// and the field.
func TestParseConfigRejects(t *testing.T) {
	cases := []struct{ json, field string }{
		{`{"model_type":"roberta"}`, "model_type"},
		{`{"model_type":""}`, "model_type"},
		{`{"model_type":"bert","hidden_size":100,"num_attention_heads":12}`, "hidden_size"},
		{`{"model_type":"bert","hidden_act":"gelu_new"}`, "hidden_act"},
		{`{"model_type":"bert","hidden_act":"relu"}`, "hidden_act"},
		{`{"model_type":"bert","position_embedding_type":"relative_key"}`, "position_embedding_type"},
		{`{"model_type":"bert","num_hidden_layers":0}`, "num_hidden_layers"},
		{`{"model_type":"bert","vocab_size":-3}`, "vocab_size"},
		{`{"model_type":"bert","hidden_dropout_prob":1.5}`, "hidden_dropout_prob"},
		{`{"model_type":"bert","layer_norm_eps":0}`, "layer_norm_eps"},
		{`{"model_type":"bert","pad_token_id":30522}`, "pad_token_id"},
		{`{"model_type":"bert","hidden_size":"384"}`, "hidden_size"},
		{`{"model_type":"bert","id2label":{"0":"a","2":"b"}}`, "id2label"},
		{`{"model_type":"bert","id2label":{"0":"a","1":"b"},"label2id":{"a":1,"b":0}}`, "label2id"},
		{`{"model_type":"bert","classifier_dropout":2}`, "classifier_dropout"},
	}
	for _, c := range cases {
		_, err := ParseConfig("bad/config.json", []byte(c.json))
		if err == nil {
			t.Errorf("%s: accepted", c.json)
			continue
		}
		if !strings.Contains(err.Error(), "bad/config.json") || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: error %q does not name the file and field %s", c.json, err, c.field)
		}
	}
	if _, err := ParseConfig("x.json", []byte(`{`)); err == nil || !strings.Contains(err.Error(), "x.json") {
		t.Errorf("broken JSON: %v", err)
	}
	dir := t.TempDir()
	if _, err := LoadConfig(filepath.Join(dir, "none.json")); err == nil || !strings.Contains(err.Error(), "none.json") {
		t.Errorf("missing file: %v", err)
	}
	p := filepath.Join(dir, "config.json")
	os.WriteFile(p, []byte(`{"model_type":"bert","hidden_act":"gelu_new"}`), 0o644)
	if _, err := LoadConfig(p); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "gelu") {
		t.Errorf("LoadConfig: %v", err)
	}
}
