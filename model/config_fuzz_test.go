package model

import (
	"os"
	"testing"
)

// FuzzParseConfig: config.json comes with a downloaded checkpoint, so its
// parser must never panic, and a config it accepts must satisfy what the
// encoder relies on.
func FuzzParseConfig(f *testing.F) {
	if b, err := os.ReadFile("../build/assets/all-MiniLM-L6-v2/config.json"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"model_type": "bert", "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32, "vocab_size": 20}`))
	f.Add([]byte(`{"hidden_size": 7, "num_attention_heads": 2}`))
	f.Add([]byte(`{"hidden_size": -8}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig("fuzz/config.json", data)
		if err != nil {
			return
		}
		if c.HiddenSize <= 0 || c.NumAttentionHeads <= 0 || c.HiddenSize%c.NumAttentionHeads != 0 ||
			c.NumHiddenLayers <= 0 || c.IntermediateSize <= 0 || c.VocabSize <= 0 ||
			c.MaxPositionEmbeddings <= 0 || c.TypeVocabSize <= 0 {
			t.Fatalf("accepted an unusable config: %+v", c)
		}
	})
}
