package serve

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ServerOptions configures the HTTP API. Zero values take the defaults.
type ServerOptions struct {
	// MaxBodyBytes bounds a request body (default 1 MiB); larger bodies
	// get 413.
	MaxBodyBytes int64
	// MaxInputs bounds the inputs of one request (default 256).
	MaxInputs int
	// MaxInflight bounds the predict requests being handled at once
	// (default 1024): beyond it a request is answered 429 before its body
	// is read, so memory stays below about MaxInflight × MaxBodyBytes
	// whatever the number of connections.
	MaxInflight int
	// Timeout is the longest a predict request may take, queue included
	// (default 30s; 504 after it). A client may ask for less with the
	// header X-Timeout-Ms.
	Timeout time.Duration
	// Token, when not empty, is the bearer token the /v1/ endpoints
	// require (Authorization: Bearer <token>); /healthz, /readyz and
	// /metrics stay open for probes and scrapers.
	Token string
	// Reload, when set, is what POST /v1/reload runs (the adapters folder's
	// rescan, Watcher.Sync).
	Reload func() Report
	// Refused, when set, lists the adapter files the folder refused, for
	// GET /v1/tasks.
	Refused func() map[string]string
	// Logger logs server errors (default: discard).
	Logger *slog.Logger
}

// Server is the JSON HTTP API over a Predictor:
//
//	POST /v1/predict  {"task": "spam", "inputs": ["text", ["text a", "text b"]]}
//	                  -> {"task": "spam", "predictions": [{"label", "score", "probabilities"}]}
//	GET  /v1/tasks    the loaded tasks (TaskInfo), refused files, the backbone's memory
//	POST /v1/reload   rescan the adapters folder (ServerOptions.Reload)
//	GET  /healthz     the process is up
//	GET  /readyz      ready to serve (503 before the first load and while shutting down)
//	GET  /metrics     Prometheus metrics
//
// Every error is a JSON object {"error": {"status", "message", "field"}},
// with "field" naming the request field at fault where there is one.
type Server struct {
	p        *Predictor
	m        *Metrics
	opts     ServerOptions
	ready    atomic.Bool
	inflight atomic.Int64
	mux      *http.ServeMux
}

// NewServer returns the API over p, recording into m (which must be the
// Metrics whose ObserveBatch p reports to, if any).
func NewServer(p *Predictor, m *Metrics, opts ServerOptions) *Server {
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = 1 << 20
	}
	if opts.MaxInputs == 0 {
		opts.MaxInputs = 256
	}
	if opts.MaxInflight == 0 {
		opts.MaxInflight = 1024
	}
	if opts.Timeout == 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Server{p: p, m: m, opts: opts, mux: http.NewServeMux()}
	s.mux.HandleFunc("/v1/predict", s.auth(s.method(http.MethodPost, s.predict)))
	s.mux.HandleFunc("/v1/tasks", s.auth(s.method(http.MethodGet, s.tasks)))
	s.mux.HandleFunc("/v1/reload", s.auth(s.method(http.MethodPost, s.reload)))
	s.mux.HandleFunc("/healthz", s.method(http.MethodGet, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}))
	s.mux.HandleFunc("/readyz", s.method(http.MethodGet, s.readyz))
	s.mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "", "no such endpoint: "+r.URL.Path)
	})
	return s
}

// SetReady sets what /readyz answers: a server starts not ready; the caller
// sets it after the first load of the adapters folder and clears it when
// shutting down, so a load balancer stops sending before the listener closes.
func (s *Server) SetReady(ok bool) { s.ready.Store(ok) }

// ServeHTTP implements http.Handler. A panic in a handler is answered with
// 500 and logged; it never takes the process down.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.opts.Logger.Error("handler panic", "path", r.URL.Path, "panic", fmt.Sprint(v))
			writeError(w, http.StatusInternalServerError, "", "internal error")
		}
	}()
	s.mux.ServeHTTP(w, r)
}

func (s *Server) method(m string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != m {
			w.Header().Set("Allow", m)
			writeError(w, http.StatusMethodNotAllowed, "", fmt.Sprintf("%s %s: use %s", r.Method, r.URL.Path, m))
			return
		}
		h(w, r)
	}
}

func (s *Server) auth(h http.HandlerFunc) http.HandlerFunc {
	if s.opts.Token == "" {
		return h
	}
	want := []byte(s.opts.Token)
	return func(w http.ResponseWriter, r *http.Request) {
		got := []byte(bearer(r.Header.Get("Authorization")))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="houlsby"`)
			writeError(w, http.StatusUnauthorized, "Authorization", "missing or wrong bearer token")
			return
		}
		h(w, r)
	}
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if !s.ready.Load() {
		writeError(w, http.StatusServiceUnavailable, "", "not ready")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "tasks": len(s.p.Tasks())})
}

// predictResponse is the body of a successful POST /v1/predict.
type predictResponse struct {
	Task        string       `json:"task"`
	Predictions []Prediction `json:"predictions"`
}

func (s *Server) predict(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	s.m.inflight.Inc()
	defer s.m.inflight.Dec()
	task, code := "_none", 0
	defer func() { s.m.request(task, code, time.Since(start).Seconds()) }()
	fail := func(status int, field, msg string) {
		code = status
		writeError(w, status, field, msg)
	}
	if n := s.inflight.Add(1); n > int64(s.opts.MaxInflight) {
		s.inflight.Add(-1)
		w.Header().Set("Retry-After", "1")
		fail(http.StatusTooManyRequests, "", fmt.Sprintf("more than %d requests in flight; retry later", s.opts.MaxInflight))
		return
	}
	defer s.inflight.Add(-1)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			fail(http.StatusRequestEntityTooLarge, "", fmt.Sprintf("request body over %d bytes", s.opts.MaxBodyBytes))
			return
		}
		fail(http.StatusBadRequest, "", "reading the body: "+err.Error())
		return
	}
	req, err := DecodePredictRequest(body, s.opts.MaxInputs)
	if err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			fail(http.StatusBadRequest, fe.Field, fe.Error())
			return
		}
		fail(http.StatusBadRequest, "", err.Error())
		return
	}
	task = "_unknown"
	if _, ok := s.p.Task(req.Task); ok {
		task = req.Task // a bounded label: only loaded tasks' names
	}
	timeout := s.opts.Timeout
	if h := r.Header.Get("X-Timeout-Ms"); h != "" {
		ms, err := strconv.ParseInt(h, 10, 64)
		if err != nil || ms <= 0 {
			fail(http.StatusBadRequest, "X-Timeout-Ms", "want a positive number of milliseconds")
			return
		}
		timeout = min(timeout, time.Duration(ms)*time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	preds, err := s.p.Predict(ctx, req.Task, req.Inputs)
	switch {
	case err == nil:
		code = http.StatusOK
		writeJSON(w, code, predictResponse{Task: req.Task, Predictions: preds})
	case errors.Is(err, ErrUnknownTask):
		fail(http.StatusNotFound, "task", fmt.Sprintf("no task %q is loaded (GET /v1/tasks lists them)", req.Task))
	case errors.Is(err, ErrQueueFull):
		w.Header().Set("Retry-After", "1")
		fail(http.StatusTooManyRequests, "", "the queue is full; retry later")
	case errors.Is(err, ErrBadInput):
		fail(http.StatusBadRequest, "inputs", err.Error())
	case errors.Is(err, ErrClosed):
		fail(http.StatusServiceUnavailable, "", "shutting down")
	case errors.Is(err, context.DeadlineExceeded):
		fail(http.StatusGatewayTimeout, "", fmt.Sprintf("no answer within %v", timeout))
	case errors.Is(err, context.Canceled):
		code = 499 // the client went away (nginx's code); nobody reads this
		writeError(w, code, "", "request cancelled")
	default:
		s.opts.Logger.Error("predict failed", "task", req.Task, "err", err)
		fail(http.StatusInternalServerError, "", "prediction failed: "+err.Error())
	}
}

// tasksResponse is the body of GET /v1/tasks.
type tasksResponse struct {
	Tasks []TaskInfo `json:"tasks"`
	// Refused maps adapter files that were not loaded to the reason.
	Refused map[string]string `json:"refused,omitempty"`
	// BaseFingerprint is the served base model's.
	BaseFingerprint string `json:"base_fingerprint"`
	// BackboneBytes is the shared backbone's memory; the total is it plus
	// every task's MemoryBytes.
	BackboneBytes int64 `json:"backbone_bytes"`
	MaxLength     int   `json:"max_length"`
}

func (s *Server) tasks(w http.ResponseWriter, r *http.Request) {
	resp := tasksResponse{Tasks: s.p.Tasks(), BaseFingerprint: s.p.Fingerprint(), BackboneBytes: s.p.BackboneBytes(), MaxLength: s.p.MaxLength()}
	if s.opts.Refused != nil {
		resp.Refused = s.opts.Refused()
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) reload(w http.ResponseWriter, r *http.Request) {
	if s.opts.Reload == nil {
		writeError(w, http.StatusNotFound, "", "this server has no adapters folder to reload")
		return
	}
	writeJSON(w, http.StatusOK, s.opts.Reload())
}

// apiError is the body of every error answer.
type apiError struct {
	Error struct {
		Status  int    `json:"status"`
		Message string `json:"message"`
		Field   string `json:"field,omitempty"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, status int, field, msg string) {
	var e apiError
	e.Error.Status, e.Error.Message, e.Error.Field = status, msg, field
	writeJSON(w, status, e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the client may be gone; nothing to do about it
}

// bearer returns the token of an "Authorization: Bearer TOKEN" header value
// (the scheme is case-insensitive, RFC 9110 section 11.1).
func bearer(h string) string {
	const p = "Bearer "
	if len(h) > len(p) && strings.EqualFold(h[:len(p)], p) {
		return h[len(p):]
	}
	return ""
}
