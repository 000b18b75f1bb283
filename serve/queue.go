package serve

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/houlsby/adapters/model"
)

// The queue and the batching policy.
//
// Predict tokenizes its inputs and pushes one row per input. The batching
// goroutine (Predictor.loop) asks next() for a batch, which waits until the
// rows that can share a pass with the oldest row (those of the same engine:
// every task on the shared backbone, or one task with a model of its own)
// fill a batch (MaxBatchRows rows or MaxBatchTokens padded tokens), or the
// oldest row has waited MaxWait. It then takes the oldest row and the rows
// nearest to it in length (so little of the pass is padding), up to the
// limits, and orders them by task so each task's rows form one segment.
// The oldest row is always taken, so no row waits behind younger ones for
// more than the batches ahead of it.

// request is one Predict call.
type request struct {
	ctx   context.Context
	task  *task
	preds []Prediction
	left  atomic.Int64 // rows not yet finished
	done  chan struct{}

	mu  sync.Mutex
	err error
}

func (r *request) fail(err error) {
	r.mu.Lock()
	if r.err == nil {
		r.err = err
	}
	r.mu.Unlock()
}

func (r *request) failure() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// row is one input of a request.
type row struct {
	req        *request
	idx        int // position in the request
	ids, types []int32
	arrived    time.Time
}

// finish marks the row done (run, failed or dropped).
func (r *row) finish() {
	r.req.task.rows.Done()
	if r.req.left.Add(-1) == 0 {
		close(r.req.done)
	}
}

// batch is one forward pass: rows of one engine, ordered by task.
type batch struct {
	eng   engine
	rows  []*row
	T     int // the longest row
	tasks int // distinct task versions
}

// padded lays the rows out as a padded model batch (B, T).
func (b *batch) padded(pad int32) *model.Batch {
	B, T := len(b.rows), b.T
	mb := &model.Batch{B: B, T: T, IDs: make([]int32, B*T), TypeIDs: make([]int32, B*T), Mask: make([]int32, B*T)}
	for i, r := range b.rows {
		off := i * T
		for t := 0; t < T; t++ {
			if t < len(r.ids) {
				mb.IDs[off+t], mb.TypeIDs[off+t], mb.Mask[off+t] = r.ids[t], r.types[t], 1
			} else {
				mb.IDs[off+t] = pad
			}
		}
	}
	return mb
}

type queue struct {
	opts Options

	mu      sync.Mutex
	pending []*row // in arrival order
	closed  bool   // no more pushes; next drains what is left
	aborted bool   // next returns nil at once; pending rows fail
	wake    chan struct{}
	n       atomic.Int64 // len(pending), for QueueLen without the lock
}

func (q *queue) init(o Options) {
	q.opts = o
	q.wake = make(chan struct{}, 1)
}

func (q *queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *queue) len() int { return int(q.n.Load()) }

func (q *queue) isClosed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed
}

// push appends a request's rows, all or none.
func (q *queue) push(rows []*row) error {
	now := time.Now()
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	if len(q.pending)+len(rows) > q.opts.MaxQueue {
		return ErrQueueFull
	}
	for _, r := range rows {
		r.arrived = now
	}
	q.pending = append(q.pending, rows...)
	q.n.Store(int64(len(q.pending)))
	q.signal()
	return nil
}

// cancel removes r's queued rows (its caller has gone) and finishes them.
func (q *queue) cancel(r *request) {
	q.mu.Lock()
	var gone []*row
	kept := q.pending[:0]
	for _, x := range q.pending {
		if x.req == r {
			gone = append(gone, x)
		} else {
			kept = append(kept, x)
		}
	}
	clear(q.pending[len(kept):])
	q.pending = kept
	q.n.Store(int64(len(q.pending)))
	q.mu.Unlock()
	for _, x := range gone {
		x.finish()
	}
}

// close stops pushes; next still returns the pending rows' batches.
func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

// abort fails every pending row with ErrClosed and makes next return nil.
func (q *queue) abort() {
	q.mu.Lock()
	q.closed, q.aborted = true, true
	gone := q.pending
	q.pending = nil
	q.n.Store(0)
	q.mu.Unlock()
	for _, x := range gone {
		x.req.fail(ErrClosed)
		x.finish()
	}
	q.signal()
}

// next blocks until a batch is ready and returns it, or nil once the queue
// is closed and empty (or aborted).
func (q *queue) next() *batch {
	var timer *time.Timer
	for {
		q.mu.Lock()
		q.dropCancelled()
		if q.aborted || (q.closed && len(q.pending) == 0) {
			q.mu.Unlock()
			return nil
		}
		if len(q.pending) == 0 {
			q.mu.Unlock()
			<-q.wake
			continue
		}
		oldest := q.pending[0]
		eng := oldest.req.task.eng
		rows, tokens := 0, 0
		for _, r := range q.pending {
			if r.req.task.eng == eng {
				rows++
				tokens = max(tokens, len(r.ids))
			}
		}
		wait := q.opts.MaxWait - time.Since(oldest.arrived)
		full := rows >= q.opts.MaxBatchRows || rows*tokens >= q.opts.MaxBatchTokens
		if full || wait <= 0 || q.closed {
			b := q.take(eng)
			q.mu.Unlock()
			return b
		}
		q.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		select {
		case <-q.wake:
		case <-timer.C:
		}
	}
}

// dropCancelled finishes the pending rows whose request's context has
// ended (a caller that cancels also removes its rows itself; this catches
// the rows of a caller that has not yet noticed).
func (q *queue) dropCancelled() {
	kept := q.pending[:0]
	var gone []*row
	for _, r := range q.pending {
		if r.req.ctx.Err() != nil {
			gone = append(gone, r)
			continue
		}
		kept = append(kept, r)
	}
	if len(gone) == 0 {
		return
	}
	clear(q.pending[len(kept):])
	q.pending = kept
	q.n.Store(int64(len(q.pending)))
	for _, r := range gone {
		r.req.fail(r.req.ctx.Err())
		r.finish()
	}
}

// take removes and returns the next batch of engine eng's rows (the caller
// holds q.mu): the oldest row and, around it in length order, the rows that
// add the least padding, within the row and token limits.
func (q *queue) take(eng engine) *batch {
	var cand []int // indices into pending, of eng's rows
	for i, r := range q.pending {
		if r.req.task.eng == eng {
			cand = append(cand, i)
		}
	}
	ln := func(i int) int { return len(q.pending[i].ids) }
	sort.SliceStable(cand, func(a, b int) bool { return ln(cand[a]) < ln(cand[b]) })
	at := 0
	for k, i := range cand {
		if i == 0 {
			at = k
		}
	}
	lo, hi := at, at // window [lo, hi] of cand
	T := ln(cand[at])
	for hi-lo+1 < q.opts.MaxBatchRows {
		n := hi - lo + 1
		// Adding a shorter row pads it to T; adding a longer one pads
		// every row taken so far to its length.
		costL, costR := -1, -1
		if lo > 0 && (n+1)*T <= q.opts.MaxBatchTokens {
			costL = T - ln(cand[lo-1])
		}
		if hi+1 < len(cand) {
			if t := ln(cand[hi+1]); (n+1)*t <= q.opts.MaxBatchTokens {
				costR = (t - T) * n
			}
		}
		switch {
		case costL < 0 && costR < 0:
		case costR < 0 || (costL >= 0 && costL <= costR):
			lo--
			continue
		default:
			hi++
			T = ln(cand[hi])
			continue
		}
		break
	}
	chosen := map[int]bool{}
	for _, i := range cand[lo : hi+1] {
		chosen[i] = true
	}
	b := &batch{eng: eng, T: T}
	kept := q.pending[:0]
	for i, r := range q.pending {
		if chosen[i] {
			b.rows = append(b.rows, r)
		} else {
			kept = append(kept, r)
		}
	}
	clear(q.pending[len(kept):])
	q.pending = kept
	q.n.Store(int64(len(q.pending)))
	// One segment per task version, in order of first arrival.
	sort.SliceStable(b.rows, func(i, j int) bool { return b.rows[i].req.task.version < b.rows[j].req.task.version })
	for i, r := range b.rows {
		if i == 0 || r.req.task != b.rows[i-1].req.task {
			b.tasks++
		}
	}
	return b
}
