package serve_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/houlsby/adapters/adapter"
	cpu "github.com/houlsby/adapters/cpu_fallback"
	"github.com/houlsby/adapters/internal/tinybert"
	"github.com/houlsby/adapters/model"
	"github.com/houlsby/adapters/model/tokenizer"
	"github.com/houlsby/adapters/serve"
	"github.com/houlsby/adapters/trainer"
)

// trainTiny trains a task on four sentences of the tiny sentiment
// vocabulary and saves its adapter file: the stand-in for a real training
// run (train-gpu train).
func trainTiny(dir string, st adapter.Strategy, labels []string, gold []int, path string) {
	ck, err := model.LoadCheckpoint(dir)
	if err != nil {
		log.Fatal(err)
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		log.Fatal(err)
	}
	cfg := adapter.Default()
	cfg.Bottleneck = 4
	desc := adapter.NewFile(ck, st, &cfg, adapter.Head{Kind: adapter.HeadPooler, NumLabels: 2}, labels)
	m, err := trainer.NewModel(cpu.New(), ck, desc, 4, 16, 42)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Free()
	ds := &trainer.Dataset{}
	for i, s := range []string{"a very good movie", "the plot was awful", "great acting", "a bad film"} {
		ds.Examples = append(ds.Examples, trainer.Example{Text: s, RawLabel: labels[gold[i]], Label: gold[i]})
	}
	batch := trainer.MakeBatch(trainer.Tokenize(tok, ds, 16), ds, []int{0, 1, 2, 3}, tok.PadID()).ForModel(false)
	l, err := trainer.NewLearner(m, 0.01)
	if err != nil {
		log.Fatal(err)
	}
	defer l.Free()
	for step := 0; step < 40; step++ {
		if _, err := l.Step(batch, trainer.StepOptions{LR: 1e-2, ClipNorm: 1}); err != nil {
			log.Fatal(err)
		}
	}
	f, err := trainer.TrainedFile(m, desc)
	if err != nil {
		log.Fatal(err)
	}
	if err := adapter.Save(path, f); err != nil {
		log.Fatal(err)
	}
}

// One frozen backbone, two tasks: a Predictor loads the base model once,
// takes adapter files while it runs, and answers concurrent requests for
// either task; their inputs share forward passes (each row with its own
// task's adapters, LayerNorms and head).
func Example() {
	dir, err := os.MkdirTemp("", "houlsby-serve-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if _, err := tinybert.Create(dir, tinybert.Sentiment); err != nil {
		log.Fatal(err)
	}
	// Two trained tasks: sentiment (adapters with LayerNorms) and its
	// opposite, "sarcasm" (LayerNorms only).
	sentiment := filepath.Join(dir, "sentiment.safetensors")
	trainTiny(dir, adapter.Strategy{Name: adapter.StratAdapters, TrainLayerNorm: true}, []string{"neg", "pos"}, []int{1, 0, 1, 0}, sentiment)
	sarcasm := filepath.Join(dir, "sarcasm.safetensors")
	trainTiny(dir, adapter.Strategy{Name: adapter.StratLayerNorm}, []string{"sincere", "sarcastic"}, []int{0, 1, 0, 1}, sarcasm)

	p, err := serve.New(cpu.New(), dir, serve.Options{MaxLength: 16})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close(context.Background())
	if err := p.AddFile("sentiment", sentiment); err != nil {
		log.Fatal(err)
	}
	if err := p.AddFile("sarcasm", sarcasm); err != nil {
		log.Fatal(err)
	}
	for _, t := range p.Tasks() {
		fmt.Printf("task %s: %s, labels %v, shares the backbone: %v\n", t.Name, t.Strategy, t.Labels, t.SharesBackbone)
	}

	// Concurrent requests for both tasks.
	inputs := []serve.Input{{Text: "a very good movie"}, {Text: "the plot was awful"}}
	var wg sync.WaitGroup
	results := map[string][]serve.Prediction{}
	var mu sync.Mutex
	for _, task := range []string{"sentiment", "sarcasm"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			preds, err := p.Predict(context.Background(), task, inputs)
			if err != nil {
				log.Fatal(err)
			}
			mu.Lock()
			results[task] = preds
			mu.Unlock()
		}()
	}
	wg.Wait()
	for _, task := range []string{"sentiment", "sarcasm"} {
		for i, pr := range results[task] {
			fmt.Printf("%-9s %-20q -> %s (%.2f)\n", task, inputs[i].Text, pr.Label, pr.Score)
		}
	}

	// Tasks come and go while serving: requests already accepted finish.
	if err := p.Remove(context.Background(), "sarcasm"); err != nil {
		log.Fatal(err)
	}
	_, err = p.Predict(context.Background(), "sarcasm", inputs)
	fmt.Println("after removal:", err)
	// Output:
	// task sarcasm: layernorm, labels [sincere sarcastic], shares the backbone: true
	// task sentiment: adapters, labels [neg pos], shares the backbone: true
	// sentiment "a very good movie"  -> pos (1.00)
	// sentiment "the plot was awful" -> neg (1.00)
	// sarcasm   "a very good movie"  -> sincere (0.99)
	// sarcasm   "the plot was awful" -> sarcastic (1.00)
	// after removal: task "sarcasm": unknown task
}

// The HTTP API of train-gpu serve over a Predictor, with a folder of
// adapter files (NAME.safetensors serves task NAME) kept in step by a
// Watcher, and Prometheus metrics.
func ExampleServer() {
	dir, err := os.MkdirTemp("", "houlsby-serve-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if _, err := tinybert.Create(dir, tinybert.Sentiment); err != nil {
		log.Fatal(err)
	}
	adapters := filepath.Join(dir, "adapters")
	if err := os.Mkdir(adapters, 0o755); err != nil {
		log.Fatal(err)
	}
	trainTiny(dir, adapter.Strategy{Name: adapter.StratAdapters, TrainLayerNorm: true}, []string{"neg", "pos"}, []int{1, 0, 1, 0},
		filepath.Join(adapters, "sentiment.safetensors"))

	metrics := serve.NewMetrics()
	p, err := serve.New(cpu.New(), dir, serve.Options{MaxLength: 16, OnBatch: metrics.ObserveBatch})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close(context.Background())
	metrics.Watch(p)
	w := serve.NewWatcher(p, adapters, metrics, nil) // w.Run(ctx) also follows the folder with fsnotify
	fmt.Println("loaded:", w.Sync().Added)
	s := serve.NewServer(p, metrics, serve.ServerOptions{Reload: w.Sync, Refused: w.Refused})
	s.SetReady(true)
	srv := httptest.NewServer(s) // train-gpu serve listens on 127.0.0.1:8080
	defer srv.Close()

	resp, err := http.Post(srv.URL+"/v1/predict", "application/json",
		strings.NewReader(`{"task": "sentiment", "inputs": ["great acting", ["a bad film", "the plot"]]}`))
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var answer struct {
		Task        string             `json:"task"`
		Predictions []serve.Prediction `json:"predictions"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.Status, answer.Task, answer.Predictions[0].Label, answer.Predictions[1].Label)

	resp, err = http.Post(srv.URL+"/v1/predict", "application/json", strings.NewReader(`{"task": "sentiment", "inputs": []}`))
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Print(resp.Status, " ", string(body))
	// Output:
	// loaded: [sentiment]
	// 200 OK sentiment pos neg
	// 400 Bad Request {"error":{"status":400,"message":"inputs: empty","field":"inputs"}}
}
