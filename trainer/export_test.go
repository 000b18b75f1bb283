package trainer

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/houlsby/adapters/adapter"
	cpu "github.com/houlsby/adapters/cpu_fallback"
	"github.com/houlsby/adapters/internal/testassets"
	"github.com/houlsby/adapters/internal/tinybert"
	"github.com/houlsby/adapters/model"
	"github.com/houlsby/adapters/model/safetensors"
)

// A run with strategy full writes hf-model/, which loads back through
// model.LoadCheckpoint with exactly the trained tensors (bert.-prefixed keys,
// the classifier listed as an ignored task head), the label maps in
// config.json and the tokenizer files of the base folder.
func TestExportHFRoundTrip(t *testing.T) {
	out := t.TempDir()
	c := tinyRun(t, out, "strategy.name=full", "train.max_steps=3", "train.lr=1e-2")
	s, err := Open(c)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Train(s, cpu.New(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.HFModelPath != filepath.Join(out, HFModelDirName) {
		t.Fatalf("HFModelPath %q", res.HFModelPath)
	}
	f, err := adapter.Load(res.AdapterPath, s.Ckpt.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	ck, err := model.LoadCheckpoint(res.HFModelPath)
	if err != nil {
		t.Fatal(err)
	}
	if !ck.HasPooler || strings.Join(ck.Ignored, ",") != "classifier.bias,classifier.weight" {
		t.Errorf("pooler %v, ignored %v", ck.HasPooler, ck.Ignored)
	}
	if src := ck.Sources[model.NameWordEmbeddings]; src.Key != "bert."+model.NameWordEmbeddings || src.DType != safetensors.F32 {
		t.Errorf("word embeddings stored as %+v", src)
	}
	// Every encoder tensor is the trained one, bit for bit, and training
	// moved it away from the base (else the comparison proves nothing).
	changed := 0
	for _, tt := range f.Tensors {
		if strings.HasPrefix(tt.Name, "classifier.") {
			continue
		}
		got, ok := ck.Tensors[tt.Name]
		if !ok {
			t.Fatalf("export lacks %s", tt.Name)
		}
		for i := range tt.Data {
			if got.Data[i] != tt.Data[i] {
				t.Fatalf("%s[%d] = %v, trained %v", tt.Name, i, got.Data[i], tt.Data[i])
			}
		}
		base := s.Ckpt.Tensors[tt.Name].Data
		for i := range base {
			if base[i] != tt.Data[i] {
				changed++
				break
			}
		}
	}
	if len(ck.Tensors) != len(f.Tensors)-2 || changed < len(ck.Tensors)/2 {
		t.Errorf("%d exported encoder tensors for %d trained; %d differ from the base", len(ck.Tensors), len(f.Tensors)-2, changed)
	}
	// The classifier as stored.
	st, err := safetensors.Open(filepath.Join(res.HFModelPath, model.WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if st.Metadata()["format"] != "pt" {
		t.Errorf("metadata %v", st.Metadata())
	}
	for _, tt := range f.Tensors {
		if !strings.HasPrefix(tt.Name, "classifier.") {
			continue
		}
		d, err := st.ReadFloat32(tt.Name)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(d) != fmt.Sprint(tt.Data) {
			t.Errorf("%s differs", tt.Name)
		}
	}
	raw, err := os.ReadFile(filepath.Join(res.HFModelPath, model.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Architectures []string          `json:"architectures"`
		NumLabels     int               `json:"num_labels"`
		ID2Label      map[string]string `json:"id2label"`
		Label2ID      map[string]int    `json:"label2id"`
		ProblemType   string            `json:"problem_type"`
		HiddenSize    int               `json:"hidden_size"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(cfg.Architectures) != "[BertForSequenceClassification]" || cfg.NumLabels != 2 || cfg.ID2Label["0"] != "neg" ||
		cfg.ID2Label["1"] != "pos" || cfg.Label2ID["pos"] != 1 || cfg.ProblemType != "single_label_classification" || cfg.HiddenSize != 16 {
		t.Errorf("config.json: %s", raw)
	}
	v0, _ := os.ReadFile(filepath.Join(c.Model.Dir, "vocab.txt"))
	v1, err := os.ReadFile(filepath.Join(res.HFModelPath, "vocab.txt"))
	if err != nil || string(v0) != string(v1) {
		t.Errorf("vocab.txt not copied: %v", err)
	}
	// No temporary folders are left behind.
	ents, _ := os.ReadDir(out)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "."+HFModelDirName) {
			t.Errorf("left over %s", e.Name())
		}
	}
	// Exporting again replaces the folder.
	if err := ExportHF(res.HFModelPath, s.Ckpt, f); err != nil {
		t.Fatal(err)
	}
	if _, err := model.LoadCheckpoint(res.HFModelPath); err != nil {
		t.Fatal(err)
	}
}

// Strategies with adapters are refused with a reason; other strategies
// export; a file from another base is refused.
func TestExportHFRefuses(t *testing.T) {
	out := t.TempDir()
	c := tinyRun(t, out, "train.max_steps=1")
	s, err := Open(c)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Train(s, cpu.New(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.HFModelPath != "" {
		t.Errorf("adapters run exported to %s", res.HFModelPath)
	}
	if _, err := os.Stat(filepath.Join(out, HFModelDirName)); err == nil {
		t.Errorf("adapters run wrote %s", HFModelDirName)
	}
	f, err := adapter.Load(res.AdapterPath, s.Ckpt.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "hf")
	if err := ExportHF(dir, s.Ckpt, f); err == nil || !strings.Contains(err.Error(), "cannot represent") {
		t.Errorf("adapters export: %v", err)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("refused export left %s", dir)
	}
	// Head only: the base encoder plus the trained classifier.
	c2 := tinyRun(t, t.TempDir(), "strategy.name=head", "train.max_steps=1")
	s2, err := Open(c2)
	if err != nil {
		t.Fatal(err)
	}
	res2, err := Train(s2, cpu.New(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	f2, err := adapter.Load(res2.AdapterPath, s2.Ckpt.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	if err := ExportHF(dir, s2.Ckpt, f2); err != nil {
		t.Fatal(err)
	}
	ck, err := model.LoadCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ck.Fingerprint != s2.Ckpt.Fingerprint {
		t.Errorf("head-only export changed the encoder")
	}
	// A regression head (one output): problem_type regression.
	reg := *f2
	reg.Head.NumLabels, reg.Labels = 1, nil
	reg.Tensors = nil
	for _, tt := range f2.Tensors {
		if strings.HasPrefix(tt.Name, "classifier.") {
			tt = adapter.Tensor{Name: tt.Name, Shape: append([]int{1}, tt.Shape[1:]...), Data: tt.Data[:len(tt.Data)/2]}
		}
		reg.Tensors = append(reg.Tensors, tt)
	}
	if err := ExportHF(dir, s2.Ckpt, &reg); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, model.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), `"problem_type": "regression"`) || !strings.Contains(string(raw), `"num_labels": 1`) ||
		!strings.Contains(string(raw), `"0": "LABEL_0"`) {
		t.Errorf("regression config.json: %s", raw)
	}
	f2.BaseFingerprint = "0123"
	if err := ExportHF(dir, s2.Ckpt, f2); err == nil || !strings.Contains(err.Error(), "made for base model") {
		t.Errorf("other base: %v", err)
	}
}

// writeHFTiny writes a random 2-layer BERT (d = 32, 4 heads) folder.
func writeHFTiny(t *testing.T, dir string) {
	t.Helper()
	tinybert.Write(t, dir, tinybert.Spec{
		Words: []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "movie", "film", "great", "awful", "the", "a", "plot", "acting", "was", "is", "very", "not", "##s", "##ing"},
		ConfigJSON: `{"model_type": "bert", "hidden_act": "gelu", "hidden_size": 32, "num_hidden_layers": 2,
"num_attention_heads": 4, "intermediate_size": 64, "vocab_size": %d, "max_position_embeddings": 64, "type_vocab_size": 2,
"layer_norm_eps": 1e-12, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02}`,
		WithPooler: true, Seed: [2]uint64{5, 6}, JitterLayerNorm: true,
	})
}

// The exported folder loads in Hugging Face transformers
// (BertForSequenceClassification and AutoTokenizer) and gives the logits our
// trained model gives: tests/ref/check_hf_export.py compares them. First a
// tiny random 2-layer d=32 model trained 2 steps with strategy full, then
// (when the asset is there) all-MiniLM-L6-v2, whose folder has every
// tokenizer file, trained 1 step.
func TestExportHFTransformers(t *testing.T) {
	py := testassets.Path(".venv-ref", "bin", "python")
	script := testassets.Path("tests", "ref", "check_hf_export.py")
	testassets.Require(t, "make ref-env", py, script)
	t.Run("tiny", func(t *testing.T) {
		dir := t.TempDir()
		writeHFTiny(t, dir)
		tinyData(t, filepath.Join(dir, "train.jsonl"), 16, 3)
		checkWithTransformers(t, py, script, dir, filepath.Join(dir, "train.jsonl"), 24, 2,
			[]string{"the movie was very good", "Bad acting!", "a film is not great, the plot was awful", "zebra movies", "good"})
	})
	t.Run("all-MiniLM-L6-v2", func(t *testing.T) {
		mdir := testassets.ModelDir()
		testassets.Require(t, "make assets", filepath.Join(mdir, "model.safetensors"))
		data := filepath.Join(t.TempDir(), "train.jsonl")
		tinyData(t, data, 8, 1)
		checkWithTransformers(t, py, script, mdir, data, 32, 1,
			[]string{"WIN a FREE cruise, click now!!!", "Meeting moved to 3pm; see the agenda attached.", "naïve café résumé — ünïcödé", "x"})
	})
}

// checkWithTransformers trains modelDir with strategy full for steps steps
// (batch 4) on data, computes our logits for texts from the saved
// adapter.safetensors, and runs the Python check on the exported hf-model.
func checkWithTransformers(t *testing.T, py, script, modelDir, data string, maxLen, steps int, texts []string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "run")
	c, err := LoadConfig("", []string{"model.dir=" + modelDir, fmt.Sprintf("model.max_length=%d", maxLen), "data.train=" + data,
		"output.dir=" + out, "strategy.name=full", "train.batch_size=4", fmt.Sprintf("train.max_steps=%d", steps), "train.lr=1e-2", "device.kind=cpu"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(c)
	if err != nil {
		t.Fatal(err)
	}
	be := cpu.New()
	res, err := Train(s, be, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Our logits, from the trained tensors as saved (adapter.safetensors
	// on the base folder), for texts of different lengths padded together
	// in one batch.
	f, err := adapter.Load(res.AdapterPath, s.Ckpt.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	ds := &Dataset{}
	for _, x := range texts {
		ds.Examples = append(ds.Examples, Example{Text: x})
	}
	enc := Tokenize(s.Tok, ds, c.Model.MaxLength)
	m, err := NewModel(be, s.Ckpt, f, len(texts), c.Model.MaxLength, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Free()
	preds, _, err := Evaluate(m, s.Tok, enc, ds, len(texts), -1)
	if err != nil {
		t.Fatal(err)
	}
	type rec struct {
		Text   string    `json:"text"`
		IDs    []int32   `json:"ids"`
		Logits []float32 `json:"logits"`
	}
	var recs []rec
	for i, x := range texts {
		recs = append(recs, rec{Text: x, IDs: enc[i].IDs, Logits: preds.Logits[i]})
	}
	js, _ := json.MarshalIndent(recs, "", " ")
	logitsPath := filepath.Join(filepath.Dir(out), "go_logits.json")
	if err := os.WriteFile(logitsPath, js, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, script, res.HFModelPath, logitsPath)
	cmd.Env = append(os.Environ(), "HF_HUB_OFFLINE=1", "TRANSFORMERS_OFFLINE=1", "TOKENIZERS_PARALLELISM=false")
	outb, err := cmd.CombinedOutput()
	t.Logf("check_hf_export.py:\n%s", outb)
	if err != nil {
		t.Fatalf("check_hf_export.py failed: %v", err)
	}
	if !strings.Contains(string(outb), "\nOK") {
		t.Fatalf("check_hf_export.py did not report OK")
	}
}
