package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/houlsby/adapters/serve"
)

const serveHelp = `
Usage: train-gpu serve --model DIR --adapters DIR [flags]

Serves every adapter file DIR/NAME.safetensors of --adapters as task NAME
over one frozen copy of the base model (--model), as a JSON HTTP API:

  POST /v1/predict  {"task": "spam", "inputs": ["a text", ["text a", "text b"]]}
                    -> {"task": "spam", "predictions": [{"label": "spam",
                        "score": 0.97, "probabilities": {"ham": 0.03, "spam": 0.97}}]}
                    (regression tasks answer "value" and "score")
  GET  /v1/tasks    tasks: labels, strategy, base fingerprint, the run's
                    metrics (from its log next to the file), memory
  POST /v1/reload   rescan the adapters folder (also on SIGHUP)
  GET  /healthz     liveness; GET /readyz readiness; GET /metrics Prometheus

Concurrent requests are batched (limits on rows, tokens and wait; rows of
similar length together), and rows of different tasks share one pass through
the backbone, each with its own adapters, LayerNorms and head. Tasks trained
with full, top_k or bitfit get a model instance of their own (GET /v1/tasks
shows what each costs). Files added, replaced or removed in the folder are
picked up while serving (fsnotify; a file is read once it is complete); an
invalid file is logged and refused, and the other tasks keep serving; a
removed task finishes its accepted requests first. A full queue answers 429
with Retry-After. SIGTERM or SIGINT: stop accepting, finish in-flight
requests, exit 0.

Listens on loopback unless --addr says otherwise; with --token-file (or the
environment variable HOULSBY_SERVE_TOKEN) the /v1/ endpoints require
"Authorization: Bearer TOKEN". A TOML file (-c) may hold these settings in a
[serve] section (keys as the flags, with underscores: max_batch_rows = 32);
flags override it. docs/cli.md and docs/deploy.md have examples.
`

// serveConfig is the [serve] section of a serve TOML file; the flags have
// the same names with dashes.
type serveConfig struct {
	Model          string       `toml:"model"`
	Adapters       string       `toml:"adapters"`
	Addr           string       `toml:"addr"`
	Device         string       `toml:"device"`
	GPU            int          `toml:"gpu"`
	MaxLength      int          `toml:"max_length"`
	MaxBatchRows   int          `toml:"max_batch_rows"`
	MaxBatchTokens int          `toml:"max_batch_tokens"`
	MaxWait        tomlDuration `toml:"max_wait"`
	MaxQueue       int          `toml:"max_queue"`
	MaxBodyBytes   int64        `toml:"max_body_bytes"`
	MaxInputs      int          `toml:"max_inputs"`
	MaxInflight    int          `toml:"max_inflight"`
	Timeout        tomlDuration `toml:"timeout"`
	TokenFile      string       `toml:"token_file"`
	ShutdownDelay  tomlDuration `toml:"shutdown_delay"`
	ShutdownWait   tomlDuration `toml:"shutdown_timeout"`
	LogJSON        bool         `toml:"log_json"`
	Settle         tomlDuration `toml:"settle"`
}

// tomlDuration is a duration written as a TOML string ("5ms", "30s").
type tomlDuration struct{ time.Duration }

// UnmarshalText parses a Go duration string.
func (d *tomlDuration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

func defaultServeConfig() serveConfig {
	return serveConfig{
		Addr: "127.0.0.1:8080", Device: "auto", MaxLength: 128, MaxBatchRows: 32, MaxBatchTokens: 4096,
		MaxWait: tomlDuration{2 * time.Millisecond}, MaxQueue: 2048, MaxBodyBytes: 1 << 20, MaxInputs: 256, MaxInflight: 1024,
		Timeout: tomlDuration{30 * time.Second}, ShutdownWait: tomlDuration{30 * time.Second},
		Settle: tomlDuration{250 * time.Millisecond},
	}
}

func runServe(args []string, stdout, stderr io.Writer) error {
	cfg, err := parseServe(args, stdout)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	return serveUntil(ctx, cfg, hup, stderr, nil)
}

// parseServe reads -c's [serve] section, then the flags over it.
func parseServe(args []string, stdout io.Writer) (serveConfig, error) {
	fs := newFlags("serve", serveHelp, stdout)
	def := defaultServeConfig()
	cfgPath := fs.String("c", "", "a TOML file with a [serve] section (flags override it)")
	model := fs.String("model", "", "the base model folder (required)")
	adapters := fs.String("adapters", "", "the folder of adapter files, NAME.safetensors (required)")
	addr := fs.String("addr", def.Addr, "listen address (loopback by default)")
	device := fs.String("device", def.Device, "auto, cpu or cuda")
	gpu := fs.Int("gpu", 0, "CUDA device ordinal")
	maxLen := fs.Int("max-length", def.MaxLength, "truncate inputs to this many tokens (as train-gpu predict --max-length)")
	rows := fs.Int("max-batch-rows", def.MaxBatchRows, "inputs per forward pass")
	tokens := fs.Int("max-batch-tokens", def.MaxBatchTokens, "padded tokens (rows x longest) per forward pass")
	wait := fs.Duration("max-wait", def.MaxWait.Duration, "how long a batch waits to fill")
	queue := fs.Int("max-queue", def.MaxQueue, "inputs waiting at most; beyond, 429")
	body := fs.Int64("max-body-bytes", def.MaxBodyBytes, "largest request body; beyond, 413")
	inputs := fs.Int("max-inputs", def.MaxInputs, "inputs per request at most")
	inflight := fs.Int("max-inflight", def.MaxInflight, "predict requests handled at once at most; beyond, 429 (bounds memory with --max-body-bytes)")
	timeout := fs.Duration("timeout", def.Timeout.Duration, "longest a predict request may take; then 504 (X-Timeout-Ms asks for less)")
	tokenFile := fs.String("token-file", "", "file holding the bearer token the /v1/ endpoints require")
	delay := fs.Duration("shutdown-delay", 0, "on SIGTERM, answer /readyz 503 this long before closing the listener (load balancers notice)")
	wait2 := fs.Duration("shutdown-timeout", def.ShutdownWait.Duration, "on SIGTERM, wait at most this long for in-flight requests")
	logJSON := fs.Bool("log-json", false, "log as JSON lines instead of text")
	settle := fs.Duration("settle", def.Settle.Duration, "read a changed adapter file once it has been quiet this long")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return serveConfig{}, err
	}
	cfg := def
	if *cfgPath != "" {
		var doc struct {
			Serve *serveConfig `toml:"serve"`
		}
		doc.Serve = &cfg
		md, err := toml.DecodeFile(*cfgPath, &doc)
		if err != nil {
			return cfg, fmt.Errorf("%s: %w", *cfgPath, err)
		}
		if und := md.Undecoded(); len(und) > 0 {
			return cfg, fmt.Errorf("%s: unknown key %s", *cfgPath, und[0])
		}
	}
	given := setFlags(fs)
	set := func(name string, apply func()) {
		if given[name] {
			apply()
		}
	}
	set("model", func() { cfg.Model = *model })
	set("adapters", func() { cfg.Adapters = *adapters })
	set("addr", func() { cfg.Addr = *addr })
	set("device", func() { cfg.Device = *device })
	set("gpu", func() { cfg.GPU = *gpu })
	set("max-length", func() { cfg.MaxLength = *maxLen })
	set("max-batch-rows", func() { cfg.MaxBatchRows = *rows })
	set("max-batch-tokens", func() { cfg.MaxBatchTokens = *tokens })
	set("max-wait", func() { cfg.MaxWait.Duration = *wait })
	set("max-queue", func() { cfg.MaxQueue = *queue })
	set("max-body-bytes", func() { cfg.MaxBodyBytes = *body })
	set("max-inputs", func() { cfg.MaxInputs = *inputs })
	set("max-inflight", func() { cfg.MaxInflight = *inflight })
	set("timeout", func() { cfg.Timeout.Duration = *timeout })
	set("token-file", func() { cfg.TokenFile = *tokenFile })
	set("shutdown-delay", func() { cfg.ShutdownDelay.Duration = *delay })
	set("shutdown-timeout", func() { cfg.ShutdownWait.Duration = *wait2 })
	set("log-json", func() { cfg.LogJSON = *logJSON })
	set("settle", func() { cfg.Settle.Duration = *settle })
	if cfg.Model == "" || cfg.Adapters == "" {
		fs.Usage()
		return cfg, errUsage
	}
	for _, c := range []struct {
		name string
		v    int64
	}{{"max-length", int64(cfg.MaxLength)}, {"max-batch-rows", int64(cfg.MaxBatchRows)}, {"max-batch-tokens", int64(cfg.MaxBatchTokens)},
		{"max-queue", int64(cfg.MaxQueue)}, {"max-body-bytes", cfg.MaxBodyBytes}, {"max-inputs", int64(cfg.MaxInputs)}, {"max-inflight", int64(cfg.MaxInflight)},
		{"max-wait", int64(cfg.MaxWait.Duration)}, {"timeout", int64(cfg.Timeout.Duration)}} {
		if c.v <= 0 {
			return cfg, fmt.Errorf("--%s: must be positive", c.name)
		}
	}
	return cfg, nil
}

// serveUntil runs the server until ctx ends, then shuts down gracefully:
// /readyz turns 503, after ShutdownDelay the listener closes, in-flight
// requests finish (up to ShutdownWait), the queue drains and the tasks are
// freed. hup rescans the adapters folder. listening, when set, gets the
// bound address (tests listen on port 0).
func serveUntil(ctx context.Context, cfg serveConfig, hup <-chan os.Signal, stderr io.Writer, listening func(addr string)) error {
	log := serveLogger(cfg, stderr)
	token, err := serveToken(cfg)
	if err != nil {
		return err
	}
	if st, err := os.Stat(cfg.Adapters); err != nil || !st.IsDir() {
		return fmt.Errorf("--adapters %s: not a folder", cfg.Adapters)
	}
	be, err := openDevice(cfg.Device, cfg.GPU, stderr)
	if err != nil {
		return err
	}
	metrics := serve.NewMetrics()
	p, err := serve.New(be, cfg.Model, serve.Options{
		MaxLength: cfg.MaxLength, MaxBatchRows: cfg.MaxBatchRows, MaxBatchTokens: cfg.MaxBatchTokens,
		MaxWait: cfg.MaxWait.Duration, MaxQueue: cfg.MaxQueue, Logger: log, OnBatch: metrics.ObserveBatch,
	})
	if err != nil {
		return err
	}
	metrics.Watch(p)
	w := serve.NewWatcher(p, cfg.Adapters, metrics, log)
	w.Settle = cfg.Settle.Duration
	srv := serve.NewServer(p, metrics, serve.ServerOptions{
		MaxBodyBytes: cfg.MaxBodyBytes, MaxInputs: cfg.MaxInputs, MaxInflight: cfg.MaxInflight, Timeout: cfg.Timeout.Duration, Token: token,
		Reload: w.Sync, Refused: w.Refused, Logger: log,
	})
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		_ = p.Close(context.Background())
		return fmt.Errorf("--addr: %w", err)
	}
	if host, _, _ := net.SplitHostPort(ln.Addr().String()); token == "" && !net.ParseIP(host).IsLoopback() {
		log.Warn("listening beyond loopback without a bearer token: anyone who reaches this address can use the API", "addr", ln.Addr().String())
	}
	rep := w.Sync()
	log.Info("serving", "addr", ln.Addr().String(), "model", cfg.Model, "fingerprint", p.Fingerprint(), "device", be.Name(),
		"tasks", len(p.Tasks()), "refused", len(rep.Refused))
	srv.SetReady(true)
	if listening != nil {
		listening(ln.Addr().String())
	}
	s := &serving{cfg: cfg, log: log, p: p, w: w, srv: srv}
	return s.run(ctx, ln, hup)
}

// serveLogger is the server's structured log on stderr: text, or JSON with
// --log-json.
func serveLogger(cfg serveConfig, stderr io.Writer) *slog.Logger {
	var h slog.Handler = slog.NewTextHandler(stderr, nil)
	if cfg.LogJSON {
		h = slog.NewJSONHandler(stderr, nil)
	}
	return slog.New(h)
}

// serveToken is the bearer token: --token-file's content, else
// $HOULSBY_SERVE_TOKEN, else "" (no token).
func serveToken(cfg serveConfig) (string, error) {
	if cfg.TokenFile == "" {
		return os.Getenv("HOULSBY_SERVE_TOKEN"), nil
	}
	b, err := os.ReadFile(cfg.TokenFile)
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return "", fmt.Errorf("--token-file %s: empty", cfg.TokenFile)
	}
	return token, nil
}

// serving is a started server: its predictor, the adapters folder's watcher
// and the HTTP handler.
type serving struct {
	cfg serveConfig
	log *slog.Logger
	p   *serve.Predictor
	w   *serve.Watcher
	srv *serve.Server
}

// run serves on ln until ctx ends or the HTTP server stops, reloading on
// hup, then shuts down.
func (s *serving) run(ctx context.Context, ln net.Listener, hup <-chan os.Signal) error {
	wctx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	watchDone := make(chan error, 1)
	go func() { watchDone <- s.w.Run(wctx) }()
	// Timeouts bound what a slow or stalled client can hold: the headers,
	// the whole request (the body is at most --max-body-bytes), and the
	// answer, which may take up to --timeout in the queue and the model.
	hs := &http.Server{Handler: s.srv, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
		WriteTimeout: s.cfg.Timeout.Duration + 30*time.Second, IdleTimeout: 2 * time.Minute}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()

	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-hup:
			r := s.w.Sync()
			s.log.Info("reloaded (SIGHUP)", "added", r.Added, "replaced", r.Replaced, "removed", r.Removed, "refused", len(r.Refused))
		case err := <-served:
			runErr = err
			break loop
		case err := <-watchDone:
			if err != nil {
				s.log.Error("the adapters folder watcher stopped; use POST /v1/reload or SIGHUP", "err", err)
			}
			watchDone = nil
		}
	}
	return s.shutdown(hs, stopWatch, runErr)
}

// shutdown turns /readyz to 503, waits ShutdownDelay, lets in-flight
// requests finish (up to ShutdownWait), stops the watcher and drains and
// frees the predictor.
func (s *serving) shutdown(hs *http.Server, stopWatch context.CancelFunc, runErr error) error {
	s.log.Info("shutting down: finishing in-flight requests")
	s.srv.SetReady(false)
	if s.cfg.ShutdownDelay.Duration > 0 {
		time.Sleep(s.cfg.ShutdownDelay.Duration)
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownWait.Duration)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		s.log.Error("in-flight requests did not finish in time", "err", err)
		runErr = errors.Join(runErr, err)
	}
	stopWatch()
	if err := s.p.Close(sctx); err != nil {
		runErr = errors.Join(runErr, err)
	}
	if errors.Is(runErr, http.ErrServerClosed) {
		runErr = nil
	}
	s.log.Info("stopped")
	return runErr
}
