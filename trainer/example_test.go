package trainer_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/houlsby/adapters/adapter"
	cpu "github.com/houlsby/adapters/cpu_fallback"
	"github.com/houlsby/adapters/internal/tinybert"
	"github.com/houlsby/adapters/model"
	"github.com/houlsby/adapters/model/tokenizer"
	"github.com/houlsby/adapters/trainer"
)

// The library's main path: load a Hugging Face BERT folder, insert Houlsby
// adapters on the CPU backend, train them for a few steps, save the adapter
// file, load it again on the frozen base and predict.
func Example() {
	// A tiny random BERT folder stands in for a real checkpoint such as
	// all-MiniLM-L6-v2 (config.json, model.safetensors, vocab.txt).
	dir, err := os.MkdirTemp("", "houlsby-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if _, err := tinybert.Create(dir, tinybert.Sentiment); err != nil {
		log.Fatal(err)
	}

	// The frozen base and its tokenizer.
	ck, err := model.LoadCheckpoint(dir)
	if err != nil {
		log.Fatal(err)
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		log.Fatal(err)
	}

	// What to train: Houlsby adapters (m = 4) and the LayerNorms, plus a
	// two-class head on BERT's pooler.
	labels := []string{"neg", "pos"}
	cfg := adapter.Default()
	cfg.Bottleneck = 4
	strategy := adapter.Strategy{Name: adapter.StratAdapters, TrainLayerNorm: true}
	desc := adapter.NewFile(ck, strategy, &cfg, adapter.Head{Kind: adapter.HeadPooler, NumLabels: 2}, labels)

	// The model on the pure-Go backend, sized for batches of 4 × 16 tokens.
	be := cpu.New()
	m, err := trainer.NewModel(be, ck, desc, 4, 16, 42)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Free()
	total, trained := m.NumParams()
	fmt.Printf("training %d of %d parameters\n", trained, total)

	// A labelled batch, tokenized exactly as Hugging Face's BertTokenizer.
	ds := &trainer.Dataset{Examples: []trainer.Example{
		{Text: "a very good movie", RawLabel: "pos", Label: 1}, {Text: "the plot was awful", RawLabel: "neg", Label: 0},
		{Text: "great acting", RawLabel: "pos", Label: 1}, {Text: "a bad film", RawLabel: "neg", Label: 0},
	}}
	enc := trainer.Tokenize(tok, ds, 16)
	batch := trainer.MakeBatch(enc, ds, []int{0, 1, 2, 3}, tok.PadID()).ForModel(false)

	// Train: each Step is forward, loss, backward, gradient clipping and
	// one AdamW update of the trainable tensors only.
	l, err := trainer.NewLearner(m, 0.01)
	if err != nil {
		log.Fatal(err)
	}
	defer l.Free()
	var first, last float32
	for step := 0; step < 30; step++ {
		res, err := l.Step(batch, trainer.StepOptions{LR: 1e-2, ClipNorm: 1})
		if err != nil {
			log.Fatal(err)
		}
		if step == 0 {
			first = res.Loss
		}
		last = res.Loss
	}
	fmt.Println("loss went down:", last < first)

	// Save the adapter file: the trained tensors plus everything needed to
	// rebuild the model around them (config, labels, base fingerprint).
	path := filepath.Join(dir, "sentiment.safetensors")
	f, err := trainer.TrainedFile(m, desc)
	if err != nil {
		log.Fatal(err)
	}
	if err := adapter.Save(path, f); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("adapter file: %d tensors\n", len(f.Tensors))

	// Load it on the same base (the fingerprint is checked) and predict.
	loaded, err := adapter.Load(path, ck.Fingerprint)
	if err != nil {
		log.Fatal(err)
	}
	m2, err := trainer.NewModel(be, ck, loaded, 4, 16, 0)
	if err != nil {
		log.Fatal(err)
	}
	defer m2.Free()
	preds, scores, err := trainer.Evaluate(m2, tok, enc, ds, 4, 1)
	if err != nil {
		log.Fatal(err)
	}
	for i, ex := range ds.Examples {
		fmt.Printf("%-20q -> %s\n", ex.Text, loaded.Labels[preds.Class[i]])
	}
	fmt.Printf("accuracy %.2f\n", scores.Accuracy)
	// Output:
	// training 786 of 6226 parameters
	// loss went down: true
	// adapter file: 28 tensors
	// "a very good movie"  -> pos
	// "the plot was awful" -> neg
	// "great acting"       -> pos
	// "a bad film"         -> neg
	// accuracy 1.00
}
