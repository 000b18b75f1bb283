package serve_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	cpu "github.com/houlsby/adapters/cpu_fallback"
	"github.com/houlsby/adapters/serve"
)

// api is a Server over a tiny model with tasks loaded from a folder.
type api struct {
	tb  *tiny
	p   *serve.Predictor
	w   *serve.Watcher
	dir string
	srv *httptest.Server
}

func newAPI(t *testing.T, popts serve.Options, sopts serve.ServerOptions) *api {
	t.Helper()
	tb := newTiny(t)
	if popts.MaxLength == 0 {
		popts.MaxLength = 16
	}
	m := serve.NewMetrics()
	popts.OnBatch = m.ObserveBatch
	p, err := serve.NewFromCheckpoint(cpu.New(), tb.ck, tb.tok, popts)
	require.NoError(t, err)
	m.Watch(p)
	dir := t.TempDir()
	w := serve.NewWatcher(p, dir, m, nil)
	w.Settle = 20 * time.Millisecond
	sopts.Reload, sopts.Refused = w.Sync, w.Refused
	s := serve.NewServer(p, m, sopts)
	s.SetReady(true)
	srv := httptest.NewServer(s)
	t.Cleanup(func() {
		srv.Close()
		_ = p.Close(context.Background())
	})
	return &api{tb: tb, p: p, w: w, dir: dir, srv: srv}
}

type apiErr struct {
	Error struct {
		Status  int    `json:"status"`
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"error"`
}

type predictResp struct {
	Task        string             `json:"task"`
	Predictions []serve.Prediction `json:"predictions"`
}

// do sends a request and returns the status, the body and the response.
func (a *api) do(t *testing.T, method, path, body string, hdr ...string) (int, []byte, *http.Response) {
	t.Helper()
	req, err := http.NewRequest(method, a.srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b, resp
}

func TestHTTPPredictAndTasks(t *testing.T) {
	a := newAPI(t, serve.Options{}, serve.ServerOptions{})
	save(t, a.dir, "sent", a.tb.file(t, taskKinds["adapters"], []string{"neg", "pos"}, 1))
	save(t, a.dir, "pairs", a.tb.file(t, taskKinds["layernorm"], []string{"no", "yes"}, 2))
	rep := a.w.Sync()
	require.ElementsMatch(t, []string{"sent", "pairs"}, rep.Added)

	code, body, resp := a.do(t, "POST", "/v1/predict", `{"task": "sent", "inputs": ["a good movie", "awful"]}`)
	require.Equal(t, 200, code, string(body))
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var pr predictResp
	require.NoError(t, json.Unmarshal(body, &pr))
	require.Equal(t, "sent", pr.Task)
	require.Len(t, pr.Predictions, 2)
	for _, p := range pr.Predictions {
		assert.Contains(t, []string{"neg", "pos"}, p.Label)
		assert.InDelta(t, 1, p.Probabilities["neg"]+p.Probabilities["pos"], 1e-12)
		assert.Equal(t, p.Probabilities[p.Label], p.Score)
	}
	code, body, _ = a.do(t, "POST", "/v1/predict", `{"task": "pairs", "inputs": [["a movie", "a film"], "good"]}`)
	require.Equal(t, 200, code, string(body))

	code, body, _ = a.do(t, "GET", "/v1/tasks", "")
	require.Equal(t, 200, code)
	var tasks struct {
		Tasks           []serve.TaskInfo `json:"tasks"`
		BaseFingerprint string           `json:"base_fingerprint"`
		BackboneBytes   int64            `json:"backbone_bytes"`
	}
	require.NoError(t, json.Unmarshal(body, &tasks))
	require.Len(t, tasks.Tasks, 2)
	assert.Equal(t, "pairs", tasks.Tasks[0].Name)
	assert.Equal(t, "layernorm", tasks.Tasks[0].Strategy)
	assert.Equal(t, a.p.Fingerprint(), tasks.Tasks[1].BaseFingerprint)
	assert.Positive(t, tasks.Tasks[1].MemoryBytes)
	assert.Equal(t, a.p.Fingerprint(), tasks.BaseFingerprint)

	for _, path := range []string{"/healthz", "/readyz"} {
		code, _, _ = a.do(t, "GET", path, "")
		assert.Equal(t, 200, code, path)
	}
	code, body, _ = a.do(t, "GET", "/metrics", "")
	require.Equal(t, 200, code)
	for _, want := range []string{`houlsby_serve_requests_total{code="200",task="sent"} 1`, "houlsby_serve_batch_rows_bucket",
		"houlsby_serve_batch_tokens_bucket", "houlsby_serve_queue_rows 0", "houlsby_serve_tasks_loaded 2",
		`houlsby_serve_request_duration_seconds_count{task="pairs"} 1`, `houlsby_serve_task_loads_total{result="added"} 2`} {
		assert.Contains(t, string(body), want)
	}
}

// TestHTTPClientErrors: every client error is a 4xx JSON answer that
// names the field at fault, and none reaches the model.
func TestHTTPClientErrors(t *testing.T) {
	a := newAPI(t, serve.Options{}, serve.ServerOptions{MaxInputs: 3, MaxBodyBytes: 2048})
	save(t, a.dir, "sent", a.tb.file(t, taskKinds["head"], []string{"neg", "pos"}, 1))
	a.w.Sync()
	for _, c := range []struct {
		name, method, path, body string
		hdr                      []string
		status                   int
		field                    string
	}{
		{"malformed JSON", "POST", "/v1/predict", `{"task": "sent", "inputs": [`, nil, 400, ""},
		{"not an object", "POST", "/v1/predict", `["sent"]`, nil, 400, ""},
		{"null body", "POST", "/v1/predict", `null`, nil, 400, ""},
		{"empty body", "POST", "/v1/predict", ``, nil, 400, ""},
		{"trailing data", "POST", "/v1/predict", `{"task": "sent", "inputs": ["a"]} {}`, nil, 400, ""},
		{"task missing", "POST", "/v1/predict", `{"inputs": ["a"]}`, nil, 400, "task"},
		{"task a number", "POST", "/v1/predict", `{"task": 3, "inputs": ["a"]}`, nil, 400, "task"},
		{"task empty", "POST", "/v1/predict", `{"task": "", "inputs": ["a"]}`, nil, 400, "task"},
		{"inputs missing", "POST", "/v1/predict", `{"task": "sent"}`, nil, 400, "inputs"},
		{"inputs a string", "POST", "/v1/predict", `{"task": "sent", "inputs": "a text"}`, nil, 400, "inputs"},
		{"inputs null", "POST", "/v1/predict", `{"task": "sent", "inputs": null}`, nil, 400, "inputs"},
		{"inputs empty", "POST", "/v1/predict", `{"task": "sent", "inputs": []}`, nil, 400, "inputs"},
		{"input a number", "POST", "/v1/predict", `{"task": "sent", "inputs": ["a", 7]}`, nil, 400, "inputs[1]"},
		{"input empty", "POST", "/v1/predict", `{"task": "sent", "inputs": [""]}`, nil, 400, "inputs[0]"},
		{"pair of three", "POST", "/v1/predict", `{"task": "sent", "inputs": [["a", "b", "c"]]}`, nil, 400, "inputs[0]"},
		{"pair with a number", "POST", "/v1/predict", `{"task": "sent", "inputs": [["a", 1]]}`, nil, 400, "inputs[0][1]"},
		{"pair with an empty text", "POST", "/v1/predict", `{"task": "sent", "inputs": [["", "b"]]}`, nil, 400, "inputs[0][0]"},
		{"too many inputs", "POST", "/v1/predict", `{"task": "sent", "inputs": ["a", "b", "c", "d"]}`, nil, 400, "inputs"},
		{"unknown field", "POST", "/v1/predict", `{"task": "sent", "inputs": ["a"], "top_k": 3}`, nil, 400, "top_k"},
		{"invalid UTF-8 in a text", "POST", "/v1/predict", "{\"task\": \"sent\", \"inputs\": [\"a \xff b\"]}", nil, 400, "inputs"},
		{"invalid UTF-8 in the task", "POST", "/v1/predict", "{\"task\": \"s\xc3\", \"inputs\": [\"a\"]}", nil, 400, "task"},
		{"lone surrogate escape", "POST", "/v1/predict", `{"task": "sent", "inputs": ["a \ud800 b"]}`, nil, 400, "inputs[0]"},
		{"reversed surrogates", "POST", "/v1/predict", `{"task": "sent", "inputs": ["ok", "\udc00\ud800"]}`, nil, 400, "inputs[1]"},
		{"unknown task", "POST", "/v1/predict", `{"task": "nope", "inputs": ["a"]}`, nil, 404, "task"},
		{"body too large", "POST", "/v1/predict", `{"task": "sent", "inputs": ["` + strings.Repeat("x", 3000) + `"]}`, nil, 413, ""},
		{"bad timeout header", "POST", "/v1/predict", `{"task": "sent", "inputs": ["a"]}`, []string{"X-Timeout-Ms", "soon"}, 400, "X-Timeout-Ms"},
		{"GET predict", "GET", "/v1/predict", ``, nil, 405, ""},
		{"POST tasks", "POST", "/v1/tasks", ``, nil, 405, ""},
		{"unknown path", "GET", "/v2/predict", ``, nil, 404, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, body, resp := a.do(t, c.method, c.path, c.body, c.hdr...)
			require.Equal(t, c.status, code, string(body))
			assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			var e apiErr
			require.NoError(t, json.Unmarshal(body, &e), string(body))
			assert.Equal(t, c.status, e.Error.Status)
			assert.Equal(t, c.field, e.Error.Field, e.Error.Message)
			assert.NotEmpty(t, e.Error.Message)
		})
	}
	// A valid surrogate pair and a literal U+FFFD are fine.
	code, body, _ := a.do(t, "POST", "/v1/predict", `{"task": "sent", "inputs": ["\ud83d\ude00 good", "\ufffd", "`+"\uFFFD"+`"]}`)
	assert.Equal(t, 200, code, string(body))
}

func TestHTTPBearerToken(t *testing.T) {
	a := newAPI(t, serve.Options{}, serve.ServerOptions{Token: "s3cret"})
	save(t, a.dir, "sent", a.tb.file(t, taskKinds["head"], []string{"neg", "pos"}, 1))
	a.w.Sync()
	req := `{"task": "sent", "inputs": ["good"]}`
	for _, hdr := range [][]string{nil, {"Authorization", "Bearer wrong"}, {"Authorization", "s3cret"}, {"Authorization", "Basic s3cret"}} {
		code, body, resp := a.do(t, "POST", "/v1/predict", req, hdr...)
		require.Equal(t, 401, code, "%v: %s", hdr, body)
		assert.Contains(t, resp.Header.Get("WWW-Authenticate"), "Bearer")
		var e apiErr
		require.NoError(t, json.Unmarshal(body, &e))
		assert.Equal(t, "Authorization", e.Error.Field)
		code, _, _ = a.do(t, "GET", "/v1/tasks", "", hdr...)
		assert.Equal(t, 401, code)
	}
	code, body, _ := a.do(t, "POST", "/v1/predict", req, "Authorization", "Bearer s3cret")
	assert.Equal(t, 200, code, string(body))
	code, _, _ = a.do(t, "POST", "/v1/predict", req, "Authorization", "bearer s3cret")
	assert.Equal(t, 200, code, "the scheme is case-insensitive")
	for _, open := range []string{"/healthz", "/readyz", "/metrics"} {
		code, _, _ = a.do(t, "GET", open, "")
		assert.Equal(t, 200, code, open)
	}
}

// TestHTTPQueueFullAndCancel: a full queue answers 429 with Retry-After
// (never a backlog), and a client that goes away or whose deadline passes
// leaves the queue.
func TestHTTPQueueFullAndCancel(t *testing.T) {
	// Batches wait up to a minute to fill 64 rows: queued rows stay queued.
	a := newAPI(t, serve.Options{MaxQueue: 3, MaxWait: time.Minute, MaxBatchRows: 64, MaxBatchTokens: 64 * 16}, serve.ServerOptions{})
	save(t, a.dir, "sent", a.tb.file(t, taskKinds["adapters"], []string{"neg", "pos"}, 1))
	a.w.Sync()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "POST", a.srv.URL+"/v1/predict", strings.NewReader(`{"task": "sent", "inputs": ["good", "bad"]}`))
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			done <- resp.StatusCode
			return
		}
		done <- -1
	}()
	require.Eventually(t, func() bool { return a.p.QueueLen() == 2 }, 5*time.Second, 5*time.Millisecond)

	code, body, resp := a.do(t, "POST", "/v1/predict", `{"task": "sent", "inputs": ["good", "bad"]}`)
	require.Equal(t, 429, code, string(body))
	assert.Equal(t, "1", resp.Header.Get("Retry-After"))
	var e apiErr
	require.NoError(t, json.Unmarshal(body, &e))
	assert.Equal(t, 429, e.Error.Status)
	assert.Equal(t, 2, a.p.QueueLen(), "a refused request adds nothing")

	cancel() // the client disconnects
	assert.Equal(t, -1, <-done)
	require.Eventually(t, func() bool { return a.p.QueueLen() == 0 }, 5*time.Second, 5*time.Millisecond, "the cancelled rows left the queue")

	// A deadline: 504 and the rows leave the queue.
	start := time.Now()
	code, body, _ = a.do(t, "POST", "/v1/predict", `{"task": "sent", "inputs": ["good"]}`, "X-Timeout-Ms", "100")
	require.Equal(t, 504, code, string(body))
	assert.Less(t, time.Since(start), 10*time.Second)
	require.Eventually(t, func() bool { return a.p.QueueLen() == 0 }, 5*time.Second, 5*time.Millisecond)

	// The drained task can be removed at once: nothing of it is left.
	rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer rcancel()
	require.NoError(t, a.p.Remove(rctx, "sent"))
	code, _, _ = a.do(t, "GET", "/metrics", "")
	require.Equal(t, 200, code)
}

func TestHTTPReloadEndpoint(t *testing.T) {
	a := newAPI(t, serve.Options{}, serve.ServerOptions{})
	code, body, _ := a.do(t, "POST", "/v1/reload", "")
	require.Equal(t, 200, code, string(body))
	save(t, a.dir, "x", a.tb.file(t, taskKinds["head"], []string{"neg", "pos"}, 1))
	code, body, _ = a.do(t, "POST", "/v1/reload", "")
	require.Equal(t, 200, code)
	var rep serve.Report
	require.NoError(t, json.Unmarshal(body, &rep))
	assert.Equal(t, []string{"x"}, rep.Added)
	code, _, _ = a.do(t, "POST", "/v1/predict", `{"task": "x", "inputs": ["good"]}`)
	assert.Equal(t, 200, code)
}

func TestHTTPNotReady(t *testing.T) {
	a := newAPI(t, serve.Options{}, serve.ServerOptions{})
	h := a.srv.Config.Handler.(*serve.Server)
	h.SetReady(false)
	code, body, _ := a.do(t, "GET", "/readyz", "")
	assert.Equal(t, 503, code, string(body))
	code, _, _ = a.do(t, "GET", "/healthz", "")
	assert.Equal(t, 200, code)
}

// TestHTTPMaxInflight: beyond MaxInflight requests in flight, a request is
// answered 429 before its body is read.
func TestHTTPMaxInflight(t *testing.T) {
	a := newAPI(t, serve.Options{MaxWait: time.Minute, MaxBatchRows: 64, MaxBatchTokens: 64 * 16}, serve.ServerOptions{MaxInflight: 1})
	save(t, a.dir, "sent", a.tb.file(t, taskKinds["head"], []string{"neg", "pos"}, 1))
	a.w.Sync()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "POST", a.srv.URL+"/v1/predict", strings.NewReader(`{"task": "sent", "inputs": ["good"]}`))
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	require.Eventually(t, func() bool { return a.p.QueueLen() == 1 }, 5*time.Second, 5*time.Millisecond)
	code, body, resp := a.do(t, "POST", "/v1/predict", `{"task": "sent", "inputs": ["bad"]}`)
	require.Equal(t, 429, code, string(body))
	assert.Equal(t, "1", resp.Header.Get("Retry-After"))
	assert.Contains(t, string(body), "in flight")
}
