package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/houlsby/adapters/internal/atomicfile"
	"github.com/houlsby/adapters/serve"
)

const loadgenHelp = `
Usage: train-gpu loadgen --url http://127.0.0.1:8080 --data FILE.jsonl [flags]

Sends predict requests to a train-gpu serve on this machine (loopback only)
from --clients concurrent clients, each sending its next request when the
last is answered, for --duration or until --requests have been sent,
whichever comes first; then waits for the requests in flight. Traffic is
mixed over the tasks of --tasks (default: every loaded task), each request
for one task drawn at random, or single-task with one name. Inputs are the
texts of --data (JSON Lines, field --text-field), --inputs per request.

With --churn-dir (the server's adapters folder) it also changes the folder
while it runs, every --churn-every: it rewrites one served task's file
(atomically, so the task is replaced under load), and adds and then removes
a copy of it under a new name. Requests go only to the tasks of --tasks,
which stay served throughout, so every error counts.

Prints throughput (requests and inputs per second), latency percentiles
(p50, p95, p99, max), the count of each status code, and every error
(grouped by message); --json writes the same as JSON. Exit status 1 when
any request failed or was dropped (sent but never answered).
`

// loadReport is what loadgen measured.
type loadReport struct {
	URL         string             `json:"url"`
	Tasks       []string           `json:"tasks"`
	Clients     int                `json:"clients"`
	InputsPer   int                `json:"inputs_per_request"`
	Seconds     float64            `json:"seconds"`
	Sent        int                `json:"sent"`
	Answered    int                `json:"answered"`
	OK          int                `json:"ok"`
	Dropped     int                `json:"dropped"`
	Codes       map[string]int     `json:"codes"`
	Errors      map[string]int     `json:"errors,omitempty"`
	RequestsPS  float64            `json:"requests_per_s"`
	InputsPS    float64            `json:"inputs_per_s"`
	LatencyMs   map[string]float64 `json:"latency_ms"`
	Churn       map[string]int     `json:"churn,omitempty"`
	ChurnErrors []string           `json:"churn_errors,omitempty"`
}

func runLoadgen(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("loadgen", loadgenHelp, stdout)
	base := fs.String("url", "http://127.0.0.1:8080", "the server (loopback addresses only)")
	data := fs.String("data", "", "JSON Lines file of input texts (required)")
	field := fs.String("text-field", "text", "field of --data holding the text")
	tasksFlag := fs.String("tasks", "", "comma-separated tasks to send to (default: all loaded)")
	clients := fs.Int("clients", 8, "concurrent clients")
	duration := fs.Duration("duration", 30*time.Second, "how long to send (at most 1h)")
	maxReq := fs.Int("requests", 0, "stop after this many requests (0: only --duration bounds)")
	per := fs.Int("inputs", 1, "inputs per request")
	seed := fs.Uint64("seed", 1, "random seed (task and text choice)")
	tokenFile := fs.String("token-file", "", "bearer token file (or HOULSBY_SERVE_TOKEN)")
	churnDir := fs.String("churn-dir", "", "the server's adapters folder: replace, add and remove files while running")
	churnEvery := fs.Duration("churn-every", 2*time.Second, "interval of the --churn-dir changes")
	jsonOut := fs.String("json", "", "also write the report as JSON here")
	timeout := fs.Duration("timeout", 60*time.Second, "per-request client timeout")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	if *data == "" {
		fs.Usage()
		return errUsage
	}
	if *clients < 1 || *per < 1 || *duration <= 0 || *duration > time.Hour || *maxReq < 0 {
		return fmt.Errorf("--clients, --inputs and --duration must be positive, --duration at most 1h")
	}
	u, err := url.Parse(*base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("--url %q: want http://host:port", *base)
	}
	if !loopback(u.Hostname()) {
		return fmt.Errorf("--url %s: loadgen only sends to loopback addresses (127.0.0.0/8, ::1, localhost)", *base)
	}
	token := os.Getenv("HOULSBY_SERVE_TOKEN")
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return fmt.Errorf("--token-file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	texts, err := readTexts(*data, *field)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: *timeout, Transport: &http.Transport{MaxIdleConnsPerHost: *clients + 4}}
	lg := &loadgen{base: strings.TrimRight(*base, "/"), token: token, client: client}
	tasks, err := lg.pickTasks(*tasksFlag)
	if err != nil {
		return err
	}
	rep := lg.run(tasks, texts, *clients, *per, *duration, *maxReq, *seed, *churnDir, *churnEvery)
	printLoadReport(stdout, rep)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := atomicfile.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("--json: %w", err)
		}
	}
	if rep.OK != rep.Sent || rep.Dropped > 0 || len(rep.ChurnErrors) > 0 {
		return fmt.Errorf("%d of %d requests failed or were dropped, %d churn errors", rep.Sent-rep.OK, rep.Sent, len(rep.ChurnErrors))
	}
	return nil
}

// loopback reports whether host names this machine.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// readTexts reads the text field of every line of a JSON Lines file.
func readTexts(path, field string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--data: %w", err)
	}
	var out []string
	for i, line := range bytes.Split(b, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, i+1, err)
		}
		if s, ok := rec[field].(string); ok && s != "" {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no texts in field %q", path, field)
	}
	return out, nil
}

type loadgen struct {
	base, token string
	client      *http.Client
}

func (lg *loadgen) request(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, lg.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if lg.token != "" {
		req.Header.Set("Authorization", "Bearer "+lg.token)
	}
	return lg.client.Do(req)
}

// pickTasks returns the tasks of flag, or every loaded task; each must be loaded.
func (lg *loadgen) pickTasks(flag string) ([]string, error) {
	resp, err := lg.request(context.Background(), "GET", "/v1/tasks", nil)
	if err != nil {
		return nil, fmt.Errorf("GET /v1/tasks: %w", err)
	}
	defer resp.Body.Close()
	var list struct {
		Tasks []serve.TaskInfo `json:"tasks"`
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("GET /v1/tasks: %s: %s", resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, fmt.Errorf("GET /v1/tasks: %w", err)
	}
	loaded := map[string]bool{}
	var all []string
	for _, t := range list.Tasks {
		loaded[t.Name] = true
		all = append(all, t.Name)
	}
	if flag == "" {
		if len(all) == 0 {
			return nil, errors.New("the server has no tasks loaded")
		}
		return all, nil
	}
	var out []string
	for _, name := range strings.Split(flag, ",") {
		if name = strings.TrimSpace(name); !loaded[name] {
			return nil, fmt.Errorf("--tasks: %q is not loaded (loaded: %v)", name, all)
		}
		out = append(out, name)
	}
	return out, nil
}

// run sends the load and measures it.
func (lg *loadgen) run(tasks, texts []string, clients, per int, dur time.Duration, maxReq int, seed uint64, churnDir string, churnEvery time.Duration) *loadReport {
	rep := &loadReport{URL: lg.base, Tasks: tasks, Clients: clients, InputsPer: per, Codes: map[string]int{}, Errors: map[string]int{}}
	var mu sync.Mutex
	var lat []time.Duration
	ctx, stop := context.WithTimeout(context.Background(), dur)
	defer stop()
	var sent sync.WaitGroup
	issued := 0
	take := func() bool { // one more request within --requests?
		mu.Lock()
		defer mu.Unlock()
		if maxReq > 0 && issued >= maxReq {
			return false
		}
		issued++
		return true
	}
	churnDone := make(chan struct{})
	if churnDir != "" {
		go func() {
			defer close(churnDone)
			rep.Churn, rep.ChurnErrors = churn(ctx, churnDir, tasks, churnEvery)
		}()
	} else {
		close(churnDone)
	}
	start := time.Now()
	for c := 0; c < clients; c++ {
		sent.Add(1)
		go func(c int) {
			defer sent.Done()
			r := rand.New(rand.NewPCG(seed, uint64(c)))
			for ctx.Err() == nil && take() {
				task := tasks[r.IntN(len(tasks))]
				in := make([]string, per)
				for i := range in {
					in[i] = texts[r.IntN(len(texts))]
				}
				code, msg, d := lg.predict(task, in)
				mu.Lock()
				rep.record(code, msg)
				if msg == "" {
					lat = append(lat, d)
				}
				mu.Unlock()
			}
		}(c)
	}
	sent.Wait()
	rep.Seconds = time.Since(start).Seconds()
	stop()
	<-churnDone
	rep.RequestsPS = float64(rep.OK) / rep.Seconds
	rep.InputsPS = float64(rep.OK*per) / rep.Seconds
	rep.LatencyMs = percentiles(lat)
	if len(rep.Errors) == 0 {
		rep.Errors = nil
	}
	return rep
}

// predict sends one request and says how it went: the status code (0: no
// answer), an error message ("" when the answer is a good 200) and the time
// it took. Requests already sent finish even after the load's duration: they
// run under their own context.
func (lg *loadgen) predict(task string, in []string) (code int, msg string, d time.Duration) {
	body, _ := json.Marshal(map[string]any{"task": task, "inputs": in})
	t0 := time.Now()
	resp, err := lg.request(context.Background(), "POST", "/v1/predict", body)
	d = time.Since(t0)
	if err != nil {
		return 0, "no answer: " + err.Error(), d
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	code = resp.StatusCode
	if code != http.StatusOK {
		return code, fmt.Sprintf("%d %s", code, strings.TrimSpace(string(b))), d
	}
	if err := checkAnswer(b, task, len(in)); err != nil {
		return code, "200 with a bad body: " + err.Error(), d
	}
	return code, "", d
}

// record counts one request's outcome (the caller holds the lock).
func (rep *loadReport) record(code int, msg string) {
	rep.Sent++
	if code != 0 {
		rep.Answered++
		rep.Codes[fmt.Sprint(code)]++
	} else {
		rep.Dropped++
	}
	if msg == "" {
		rep.OK++
	} else {
		rep.Errors[msg]++
	}
}

// percentiles gives p50, p95, p99 and max of the latencies in milliseconds
// (nearest rank), or an empty map when there are none. It sorts lat.
func percentiles(lat []time.Duration) map[string]float64 {
	out := map[string]float64{}
	if len(lat) == 0 {
		return out
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) float64 {
		i := int(p*float64(len(lat))+0.5) - 1
		return float64(lat[max(0, min(i, len(lat)-1))].Microseconds()) / 1000
	}
	for name, p := range map[string]float64{"p50": 0.50, "p95": 0.95, "p99": 0.99, "max": 1} {
		out[name] = q(p)
	}
	return out
}

// checkAnswer checks a 200 body: the task and one prediction per input.
func checkAnswer(body []byte, task string, n int) error {
	var a struct {
		Task        string             `json:"task"`
		Predictions []serve.Prediction `json:"predictions"`
	}
	if err := json.Unmarshal(body, &a); err != nil {
		return err
	}
	if a.Task != task || len(a.Predictions) != n {
		return fmt.Errorf("task %q with %d predictions, want %q with %d", a.Task, len(a.Predictions), task, n)
	}
	return nil
}

// churn changes the adapters folder until ctx ends: in turn it rewrites a
// served task's file (atomically, the same content: the server replaces
// the task under load), adds a copy under a new name, and removes the copy
// it added last.
func churn(ctx context.Context, dir string, tasks []string, every time.Duration) (map[string]int, []string) {
	counts := map[string]int{}
	var errs []string
	tick := time.NewTicker(every)
	defer tick.Stop()
	var added []string
	for step := 0; ; step++ {
		select {
		case <-ctx.Done():
			for _, a := range added {
				_ = os.Remove(a)
			}
			return counts, errs
		case <-tick.C:
		}
		src := filepath.Join(dir, tasks[step%len(tasks)]+".safetensors")
		raw, err := os.ReadFile(src)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		switch step % 3 {
		case 0:
			err = atomicfile.WriteFile(src, raw, 0o644)
			counts["replaced"]++
		case 1:
			p := filepath.Join(dir, fmt.Sprintf("churn-%d.safetensors", step))
			err = atomicfile.WriteFile(p, raw, 0o644)
			added = append(added, p)
			counts["added"]++
		case 2:
			if len(added) > 0 {
				err = os.Remove(added[0])
				added = added[1:]
				counts["removed"]++
			}
		}
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
}

func printLoadReport(w io.Writer, r *loadReport) {
	fmt.Fprintf(w, "loadgen: %s, %d clients, %d input(s) per request, tasks %v\n", r.URL, r.Clients, r.InputsPer, r.Tasks)
	fmt.Fprintf(w, "  %.1f s: %d sent, %d answered, %d ok, %d dropped (never answered)\n", r.Seconds, r.Sent, r.Answered, r.OK, r.Dropped)
	fmt.Fprintf(w, "  throughput: %.2f requests/s, %.2f inputs/s\n", r.RequestsPS, r.InputsPS)
	if len(r.LatencyMs) > 0 {
		fmt.Fprintf(w, "  latency (ok requests): p50 %.1f ms, p95 %.1f ms, p99 %.1f ms, max %.1f ms\n",
			r.LatencyMs["p50"], r.LatencyMs["p95"], r.LatencyMs["p99"], r.LatencyMs["max"])
	}
	fmt.Fprintf(w, "  status codes: %v\n", r.Codes)
	if len(r.Churn) > 0 {
		fmt.Fprintf(w, "  adapters folder changes: %v\n", r.Churn)
	}
	for _, e := range r.ChurnErrors {
		fmt.Fprintf(w, "  churn error: %s\n", e)
	}
	msgs := sortedKeys(r.Errors)
	for _, m := range msgs {
		fmt.Fprintf(w, "  error x%d: %s\n", r.Errors[m], m)
	}
	if len(msgs) == 0 {
		fmt.Fprintln(w, "  errors: none")
	}
}
