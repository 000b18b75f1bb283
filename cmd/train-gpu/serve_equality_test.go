package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/houlsby/adapters/internal/testassets"
)

// serveTasks are the equality test's three tasks, trained from
// examples/serve/spam-quick.toml as scripts/serve-adapters.sh does.
var serveTasks = []struct {
	name, strategy string
	seed           int
}{{"spam-adapters", "adapters", 1}, {"spam-layernorm", "layernorm", 2}, {"spam-head", "head", 3}}

// serveEqMaxLen is the equality test's truncation length: 64 by default
// (CI time), HOULSBY_SERVE_EQ_MAXLEN=128 for the full length.
func serveEqMaxLen(t *testing.T) int {
	if s := os.Getenv("HOULSBY_SERVE_EQ_MAXLEN"); s != "" {
		n, err := strconv.Atoi(s)
		require.NoError(t, err, "HOULSBY_SERVE_EQ_MAXLEN")
		return n
	}
	return 64
}

// serveAdapters returns a folder with the three tasks' adapter files: the
// one HOULSBY_SERVE_ADAPTERS names (filled by scripts/serve-adapters.sh),
// or one trained now the same way (a few steps each).
func serveAdapters(t *testing.T, maxLen int) string {
	if dir := os.Getenv("HOULSBY_SERVE_ADAPTERS"); dir != "" {
		for _, task := range serveTasks {
			require.FileExists(t, filepath.Join(dir, task.name+".safetensors"), "HOULSBY_SERVE_ADAPTERS")
		}
		return dir
	}
	dir := t.TempDir()
	for _, task := range serveTasks {
		out := filepath.Join(dir, "runs", task.name)
		code, stdout, stderr := runCLI("train", "-c", testassets.Path("examples", "serve", "spam-quick.toml"),
			"--model", testassets.ModelDir(), "--set", "data.train="+filepath.Join(testassets.SpamDir(), "train.jsonl"),
			"--strategy", task.strategy, "--seed", strconv.Itoa(task.seed), "--output", out, "--set", "model.max_length="+strconv.Itoa(maxLen))
		require.Equal(t, 0, code, "training %s: %s\n%s", task.name, stdout, stderr)
		copyFile(t, filepath.Join(out, "adapter.safetensors"), filepath.Join(dir, task.name+".safetensors"))
		copyFile(t, filepath.Join(out, "log.jsonl"), filepath.Join(dir, task.name+".log.jsonl"))
	}
	return dir
}

// spamTexts returns the first n texts of the prepared SpamAssassin files
// (validation, test, then train).
func spamTexts(t *testing.T, n int) []string {
	var out []string
	for _, split := range []string{"validation", "test", "train"} {
		f, err := os.Open(filepath.Join(testassets.SpamDir(), split+".jsonl"))
		require.NoError(t, err)
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() && len(out) < n {
			var rec struct{ Text string }
			require.NoError(t, json.Unmarshal(sc.Bytes(), &rec))
			out = append(out, rec.Text)
		}
		f.Close()
	}
	require.Len(t, out, n)
	return out
}

type predicted struct {
	Label string             `json:"label"`
	Probs map[string]float64 `json:"probabilities"`
}

// TestServeMatchesPredict: 2,000 real texts, split over three tasks that
// share the backbone (adapters m = 64 with LayerNorms, LayerNorms only,
// head only), sent concurrently so that batches mix the tasks, get from
// train-gpu serve the labels `train-gpu predict` gives for each task alone,
// and probabilities within 1e-6.
func TestServeMatchesPredict(t *testing.T) {
	testassets.Require(t, "make assets", testassets.ModelDir(), filepath.Join(testassets.SpamDir(), "train.jsonl"))
	if testing.Short() {
		t.Skip("SKIPPED in -short: trains three adapters and predicts 2,000 texts twice (about a minute)")
	}
	start := time.Now()
	maxLen := serveEqMaxLen(t)
	adapters := serveAdapters(t, maxLen)
	t.Logf("adapters ready after %v", time.Since(start).Round(time.Millisecond))
	texts := spamTexts(t, 2000)

	// train-gpu predict, each task alone on its texts (text i goes to task i mod 3).
	alone := make([]predicted, len(texts))
	work := t.TempDir()
	for k, task := range serveTasks {
		var in bytes.Buffer
		var idx []int
		for i := k; i < len(texts); i += len(serveTasks) {
			js, _ := json.Marshal(map[string]string{"text": texts[i]})
			in.Write(append(js, '\n'))
			idx = append(idx, i)
		}
		inPath, outPath := filepath.Join(work, task.name+".jsonl"), filepath.Join(work, task.name+".out.jsonl")
		require.NoError(t, os.WriteFile(inPath, in.Bytes(), 0o644))
		code, _, stderr := runCLI("predict", "--adapter", filepath.Join(adapters, task.name+".safetensors"), "--model", testassets.ModelDir(),
			"--input", inPath, "--output", outPath, "--max-length", strconv.Itoa(maxLen), "--device", "cpu")
		require.Equal(t, 0, code, stderr)
		raw, err := os.ReadFile(outPath)
		require.NoError(t, err)
		lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
		require.Len(t, lines, len(idx))
		for j, line := range lines {
			var rec struct {
				Prediction    string             `json:"prediction"`
				Probabilities map[string]float64 `json:"probabilities"`
			}
			require.NoError(t, json.Unmarshal([]byte(line), &rec))
			alone[idx[j]] = predicted{rec.Prediction, rec.Probabilities}
		}
	}
	t.Logf("predict done after %v", time.Since(start).Round(time.Millisecond))

	// train-gpu serve with all three, concurrent requests of 1 to 6 texts
	// of one task each, in a shuffled order.
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	cfg := defaultServeConfig()
	cfg.Model, cfg.Adapters, cfg.Addr, cfg.Device, cfg.MaxLength = testassets.ModelDir(), adapters, "127.0.0.1:0", "cpu", maxLen
	cfg.MaxBatchTokens = cfg.MaxBatchRows * maxLen
	cfg.MaxWait.Duration = 5 * time.Millisecond
	var logBuf syncBuffer
	go func() { done <- serveUntil(ctx, cfg, nil, &logBuf, func(a string) { addr <- a }) }()
	url := "http://" + <-addr
	type request struct {
		task int
		idx  []int
	}
	var reqs []request
	r := rand.New(rand.NewPCG(7, 7))
	for k := range serveTasks {
		var idx []int
		for i := k; i < len(texts); i += len(serveTasks) {
			idx = append(idx, i)
		}
		for len(idx) > 0 {
			n := min(1+r.IntN(6), len(idx))
			reqs = append(reqs, request{k, idx[:n]})
			idx = idx[n:]
		}
	}
	r.Shuffle(len(reqs), func(i, j int) { reqs[i], reqs[j] = reqs[j], reqs[i] })
	served := make([]predicted, len(texts))
	next := make(chan request)
	var wg sync.WaitGroup
	errs := make(chan error, len(reqs))
	for c := 0; c < 12; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for rq := range next {
				in := make([]string, len(rq.idx))
				for j, i := range rq.idx {
					in[j] = texts[i]
				}
				body, _ := json.Marshal(map[string]any{"task": serveTasks[rq.task].name, "inputs": in})
				resp, err := http.Post(url+"/v1/predict", "application/json", bytes.NewReader(body))
				if err != nil {
					errs <- err
					continue
				}
				var ans struct {
					Predictions []predicted `json:"predictions"`
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || json.Unmarshal(b, &ans) != nil || len(ans.Predictions) != len(rq.idx) {
					errs <- fmt.Errorf("%d %s", resp.StatusCode, b)
					continue
				}
				for j, i := range rq.idx {
					served[i] = ans.Predictions[j]
				}
			}
		}()
	}
	for _, rq := range reqs {
		next <- rq
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("serve done after %v", time.Since(start).Round(time.Millisecond))

	worst, labelsDiffer := 0.0, 0
	for i := range texts {
		a, s := alone[i], served[i]
		if a.Label != s.Label {
			labelsDiffer++
			t.Errorf("text %d (%s): served %s, predict %s", i, serveTasks[i%3].name, s.Label, a.Label)
		}
		for l, p := range a.Probs {
			d := math.Abs(p - s.Probs[l])
			worst = math.Max(worst, d)
			if d > 1e-6 {
				t.Errorf("text %d (%s): p(%s) served %.9f, predict %.9f", i, serveTasks[i%3].name, l, s.Probs[l], p)
			}
		}
	}
	t.Logf("%d texts, %d requests, max length %d: %d labels differ, largest probability difference %.3g",
		len(texts), len(reqs), maxLen, labelsDiffer, worst)
	// The batches did mix the tasks: the mean tasks per batch is above 1.
	resp, err := http.Get(url + "/metrics")
	require.NoError(t, err)
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	sum, count := metricValue(t, m, "houlsby_serve_batch_tasks_sum"), metricValue(t, m, "houlsby_serve_batch_tasks_count")
	t.Logf("%v forward passes, %.2f tasks per pass on average", count, sum/count)
	assert.Greater(t, sum, count, "no batch mixed tasks")
	cancel()
	require.NoError(t, <-done, logBuf.String())
}

func metricValue(t *testing.T, text []byte, name string) float64 {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(text)
	require.NotNil(t, m, "metric %s", name)
	v, err := strconv.ParseFloat(string(m[1]), 64)
	require.NoError(t, err)
	return v
}

// syncBuffer is a bytes.Buffer safe for the server's log goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
