// Package serve serves many tasks from one frozen BERT backbone: a
// Predictor loads the base model once, takes adapter files (added,
// replaced and removed while it runs), and answers Predict calls for any
// loaded task. Concurrent calls are gathered into batches, and rows of
// different tasks share one forward pass through the backbone: each row
// goes through its own task's adapters, LayerNorm parameters and head
// (model.Multi, over the backend's grouped ops). Tasks whose strategy
// changes the backbone's weights or biases (full, top_k, bitfit) are
// served too, each from a model instance of its own.
//
// The HTTP API of `train-gpu serve` (Server) and the folder watcher
// (Watcher) are built on the Predictor; docs/cli.md describes them.
package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"runtime/debug"
	"sort"
	"sync"
	"time"

	"github.com/houlsby/adapters/adapter"
	"github.com/houlsby/adapters/backend"
	"github.com/houlsby/adapters/model"
	"github.com/houlsby/adapters/model/tokenizer"
)

// Options configures a Predictor. Zero values take the defaults.
type Options struct {
	// MaxLength truncates every input to this many tokens, [CLS] and [SEP]
	// included (default 128; at least 3, at most the model's positions).
	// It must match what a task's predictions are compared with:
	// `train-gpu predict --max-length` truncates the same way.
	MaxLength int
	// MaxBatchRows is the most inputs in one forward pass (default 32).
	MaxBatchRows int
	// MaxBatchTokens bounds one forward pass's padded size, rows × the
	// longest row (default 4096 = 32 × 128).
	MaxBatchTokens int
	// MaxWait is how long the oldest waiting input may wait for others to
	// fill its batch before the batch runs anyway (default 2ms). A full
	// batch runs at once.
	MaxWait time.Duration
	// MaxQueue is the most inputs waiting to run (default 2048); Predict
	// refuses a request that would exceed it with ErrQueueFull.
	MaxQueue int
	// Logger receives task loads, refusals and removals (default: discard).
	Logger *slog.Logger
	// OnBatch, when set, is called after every forward pass (from the
	// batching goroutine; it must not block).
	OnBatch func(BatchStats)
}

// BatchStats describes one forward pass.
type BatchStats struct {
	Rows, Tokens, Tasks int // inputs, padded tokens (rows × longest) and distinct tasks
	Shared              bool
	Duration            time.Duration
	Err                 error
}

func (o *Options) defaults() {
	if o.MaxLength == 0 {
		o.MaxLength = 128
	}
	if o.MaxBatchRows == 0 {
		o.MaxBatchRows = 32
	}
	if o.MaxBatchTokens == 0 {
		o.MaxBatchTokens = 4096
	}
	if o.MaxWait == 0 {
		o.MaxWait = 2 * time.Millisecond
	}
	if o.MaxQueue == 0 {
		o.MaxQueue = 2048
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// Input is one text, or a text pair for pair tasks.
type Input struct {
	Text string `json:"text"`
	Pair string `json:"text_pair,omitempty"`
}

// Prediction is a task's answer for one input. For classification, Label
// is the most probable class, Score its probability and Probabilities
// every class's; for regression, Value (and Score) is the head's output.
type Prediction struct {
	Label         string             `json:"label,omitempty"`
	Score         float64            `json:"score"`
	Probabilities map[string]float64 `json:"probabilities,omitempty"`
	Value         *float64           `json:"value,omitempty"`
}

// Errors a caller can tell apart (errors.Is).
var (
	// ErrUnknownTask: no task of that name is loaded.
	ErrUnknownTask = errors.New("unknown task")
	// ErrQueueFull: the request would take the queue past Options.MaxQueue;
	// retry later.
	ErrQueueFull = errors.New("queue full")
	// ErrBadInput: an input is empty or too long for the queue's limits.
	ErrBadInput = errors.New("bad input")
	// ErrClosed: the Predictor is closed.
	ErrClosed = errors.New("predictor closed")
)

// Predictor serves predictions for a set of tasks over one base model. It
// is safe for concurrent use.
type Predictor struct {
	be   backend.Backend
	ck   *model.Checkpoint
	tok  *tokenizer.Tokenizer
	opts Options
	log  *slog.Logger

	mu    sync.RWMutex
	tasks map[string]*task // the version each name serves now

	// engMu serialises forward passes with changes to the engines (adding
	// a task's parameters, freeing a removed one's).
	engMu  sync.Mutex
	shared *sharedEngine // created with the first task that shares the backbone

	q    queue
	done chan struct{} // closed when the batching goroutine has exited
}

// New loads the base model folder dir (config.json, model.safetensors,
// vocab.txt) onto be and starts the batching goroutine. Close stops it.
func New(be backend.Backend, dir string, opts Options) (*Predictor, error) {
	ck, err := model.LoadCheckpoint(dir)
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		return nil, err
	}
	return NewFromCheckpoint(be, ck, tok, opts)
}

// NewFromCheckpoint is New with the checkpoint and tokenizer already loaded.
func NewFromCheckpoint(be backend.Backend, ck *model.Checkpoint, tok *tokenizer.Tokenizer, opts Options) (*Predictor, error) {
	opts.defaults()
	switch {
	case opts.MaxLength < 3 || opts.MaxLength > ck.Config.MaxPositionEmbeddings:
		return nil, fmt.Errorf("serve: max length %d outside 3..%d (the model's max_position_embeddings)", opts.MaxLength, ck.Config.MaxPositionEmbeddings)
	case opts.MaxBatchRows < 1:
		return nil, fmt.Errorf("serve: max batch rows %d: must be positive", opts.MaxBatchRows)
	case opts.MaxBatchTokens < opts.MaxLength:
		return nil, fmt.Errorf("serve: max batch tokens %d is below max length %d (a single input would not fit)", opts.MaxBatchTokens, opts.MaxLength)
	case opts.MaxWait < 0:
		return nil, fmt.Errorf("serve: max wait %v is negative", opts.MaxWait)
	case opts.MaxQueue < 1:
		return nil, fmt.Errorf("serve: max queue %d: must be positive", opts.MaxQueue)
	}
	p := &Predictor{be: be, ck: ck, tok: tok, opts: opts, log: opts.Logger, tasks: map[string]*task{}, done: make(chan struct{})}
	p.q.init(opts)
	go p.loop()
	return p, nil
}

// Fingerprint is the base model's fingerprint (model.Checkpoint.Fingerprint),
// which every adapter file must carry.
func (p *Predictor) Fingerprint() string { return p.ck.Fingerprint }

// MaxLength is the truncation length of inputs.
func (p *Predictor) MaxLength() int { return p.opts.MaxLength }

// QueueLen is the number of inputs waiting to run.
func (p *Predictor) QueueLen() int { return p.q.len() }

// AddFile loads the adapter file at path and serves it as task name,
// replacing the task of that name if there is one (see Add).
func (p *Predictor) AddFile(name, path string) error {
	f, err := adapter.Load(path, p.ck.Fingerprint)
	if err != nil {
		return err
	}
	return p.add(name, path, f)
}

// Add serves f (an adapter file for this base model) as task name. When a
// task of that name exists it is replaced: requests that arrive after Add
// returns use the new version; those already accepted finish on the old
// one, whose memory is freed once they have. A file that cannot be served
// (another base model, an inconsistent description) is refused with an
// error and changes nothing.
func (p *Predictor) Add(name string, f *adapter.File) error { return p.add(name, "", f) }

func (p *Predictor) add(name, path string, f *adapter.File) error {
	if name == "" {
		return fmt.Errorf("serve: empty task name")
	}
	t, err := p.newTask(name, path, f)
	if err != nil {
		return fmt.Errorf("task %s: %w", name, err)
	}
	p.mu.Lock()
	if p.q.isClosed() {
		p.mu.Unlock()
		p.release(t)
		return ErrClosed
	}
	old := p.tasks[name]
	p.tasks[name] = t
	p.mu.Unlock()
	if old != nil {
		p.log.Info("task replaced", "task", name, "path", path, "strategy", t.info.Strategy)
		go p.retire(old)
	} else {
		p.log.Info("task added", "task", name, "path", path, "strategy", t.info.Strategy, "shared", t.info.SharesBackbone)
	}
	return nil
}

// Remove stops serving task name: new requests for it fail with
// ErrUnknownTask at once, and Remove returns when the inputs already
// accepted for it have run (or ctx ends first: the task's memory is then
// freed later, when they have).
func (p *Predictor) Remove(ctx context.Context, name string) error {
	p.mu.Lock()
	t := p.tasks[name]
	delete(p.tasks, name)
	p.mu.Unlock()
	if t == nil {
		return fmt.Errorf("task %s: %w", name, ErrUnknownTask)
	}
	p.log.Info("task removed; draining", "task", name)
	done := make(chan struct{})
	go func() {
		p.retire(t)
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// retire waits until no input of t is queued or running, then frees t's
// parameters.
func (p *Predictor) retire(t *task) {
	t.rows.Wait()
	p.release(t)
	p.log.Info("task drained", "task", t.name, "version", t.version)
}

// release frees t's parameters in its engine.
func (p *Predictor) release(t *task) {
	p.engMu.Lock()
	defer p.engMu.Unlock()
	t.eng.remove(t)
}

// Tasks describes every loaded task, sorted by name.
func (p *Predictor) Tasks() []TaskInfo {
	p.mu.RLock()
	out := make([]TaskInfo, 0, len(p.tasks))
	for _, t := range p.tasks {
		out = append(out, t.info)
	}
	p.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Task describes the loaded task name.
func (p *Predictor) Task(name string) (TaskInfo, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	t := p.tasks[name]
	if t == nil {
		return TaskInfo{}, false
	}
	return t.info, true
}

// BackboneBytes is the memory of the shared frozen backbone (parameters and
// the activation buffers of its forward pass), 0 before a task shares it.
func (p *Predictor) BackboneBytes() int64 {
	p.engMu.Lock()
	defer p.engMu.Unlock()
	if p.shared == nil {
		return 0
	}
	return p.shared.m.BackboneBytes()
}

// Predict runs task on inputs and returns one prediction per input, in
// order. It waits for the inputs' batches; when ctx ends first, the inputs
// leave the queue and Predict returns ctx's error. Errors: ErrUnknownTask,
// ErrQueueFull, ErrBadInput (an empty text), ErrClosed, ctx.Err(), or the
// backend's error for a failed forward pass.
func (p *Predictor) Predict(ctx context.Context, taskName string, inputs []Input) ([]Prediction, error) {
	if len(inputs) == 0 {
		return nil, fmt.Errorf("%w: no inputs", ErrBadInput)
	}
	for i, in := range inputs {
		if in.Text == "" {
			return nil, fmt.Errorf("%w: input %d: empty text", ErrBadInput, i)
		}
	}
	if len(inputs) > p.opts.MaxQueue {
		return nil, fmt.Errorf("%w: %d inputs exceed the queue's %d", ErrBadInput, len(inputs), p.opts.MaxQueue)
	}
	p.mu.RLock()
	t := p.tasks[taskName]
	if t != nil {
		// Counted before the task can leave the map: Remove's drain waits
		// for these rows.
		t.rows.Add(len(inputs))
	}
	p.mu.RUnlock()
	if t == nil {
		return nil, fmt.Errorf("task %q: %w", taskName, ErrUnknownTask)
	}
	r := &request{ctx: ctx, task: t, preds: make([]Prediction, len(inputs)), done: make(chan struct{})}
	r.left.Store(int64(len(inputs)))
	rows := make([]*row, len(inputs))
	opt := tokenizer.Options{MaxLength: p.opts.MaxLength}
	for i, in := range inputs {
		var e tokenizer.Encoding
		if in.Pair != "" {
			e = p.tok.EncodePair(in.Text, in.Pair, opt)
		} else {
			e = p.tok.Encode(in.Text, opt)
		}
		rows[i] = &row{req: r, idx: i, ids: e.IDs, types: e.TypeIDs}
	}
	if err := p.q.push(rows); err != nil {
		t.rows.Add(-len(inputs))
		return nil, err
	}
	select {
	case <-r.done:
		if err := r.failure(); err != nil {
			return nil, err
		}
		return r.preds, nil
	case <-ctx.Done():
		// Take what is still queued out of the queue; rows already in a
		// running batch finish and are discarded.
		p.q.cancel(r)
		return nil, ctx.Err()
	}
}

// Close stops accepting work, waits for the queued inputs to run (or ctx to
// end: the rest then fail with ErrClosed) and frees every task. The
// backend itself stays the caller's.
func (p *Predictor) Close(ctx context.Context) error {
	p.mu.Lock()
	p.q.close()
	tasks := p.tasks
	p.tasks = map[string]*task{}
	p.mu.Unlock()
	var err error
	select {
	case <-p.done:
	case <-ctx.Done():
		p.q.abort()
		<-p.done
		err = ctx.Err()
	}
	for _, t := range tasks {
		p.release(t)
	}
	p.engMu.Lock()
	if p.shared != nil {
		p.shared.m.Free()
		p.shared = nil
	}
	p.engMu.Unlock()
	return err
}

// loop is the batching goroutine: it takes the next batch from the queue
// and runs it, until the queue is closed and empty.
func (p *Predictor) loop() {
	defer close(p.done)
	for {
		b := p.q.next()
		if b == nil {
			return
		}
		p.run(b)
	}
}

// run executes one batch on its engine and hands each row its prediction.
func (p *Predictor) run(b *batch) {
	start := time.Now()
	logits, err := p.forward(b)
	if p.opts.OnBatch != nil {
		p.opts.OnBatch(BatchStats{Rows: len(b.rows), Tokens: len(b.rows) * b.T, Tasks: b.tasks, Shared: b.eng == engine(p.shared),
			Duration: time.Since(start), Err: err})
	}
	for i, r := range b.rows {
		if err != nil {
			r.req.fail(err)
		} else {
			r.req.preds[r.idx] = r.req.task.predict(logits[i])
		}
		r.finish()
	}
}

// forward runs b's pass under engMu. A panic there is a bug, but it fails
// only this batch's requests (and is logged with its stack), instead of
// taking every task of the process down.
func (p *Predictor) forward(b *batch) (logits [][]float32, err error) {
	p.engMu.Lock()
	defer p.engMu.Unlock()
	defer func() {
		if v := recover(); v != nil {
			p.log.Error("forward pass panicked", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			logits, err = nil, fmt.Errorf("serve: internal error in the forward pass")
		}
	}()
	return b.eng.forward(b)
}

// predict turns one row's logits into a Prediction: a softmax in float64
// for classification (as `train-gpu predict` computes it, so the two agree
// to the last bits of the logits), the value for regression.
func (t *task) predict(logits []float32) Prediction {
	if t.regression {
		v := float64(logits[0])
		return Prediction{Score: v, Value: &v}
	}
	mx := math.Inf(-1)
	for _, v := range logits {
		mx = math.Max(mx, float64(v))
	}
	ps := make([]float64, len(logits))
	sum := 0.0
	for i, v := range logits {
		ps[i] = math.Exp(float64(v) - mx)
		sum += ps[i]
	}
	pr := Prediction{Probabilities: make(map[string]float64, len(ps))}
	best := 0
	for i := range ps {
		ps[i] /= sum
		pr.Probabilities[t.labels[i]] = ps[i]
		if logits[i] > logits[best] {
			best = i
		}
	}
	pr.Label, pr.Score = t.labels[best], ps[best]
	return pr
}
