package cuda

// The locked-thread executor behind Device. It has no CUDA in it (and no
// build tag), so its mechanics are tested and benchmarked on any machine.

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// errClosed is returned by calls after close.
var errClosed = errors.New("closed")

// thread runs functions, one at a time, on one goroutine locked to its OS
// thread for its whole life: what a CUDA context needs, since a context is
// current per OS thread. Calls may come from any goroutine.
//
// A call hands its function over through an atomic state word instead of a
// channel when it can: handing work to a goroutine locked to another OS
// thread through a channel costs two futex wake-ups per round trip (about
// 10 µs on an idle machine, far more on a loaded one), more than the
// cuLaunchKernel it wraps. So both sides spin for up to t.spin before they
// sleep on a channel: while a training step issues launches back to back the
// round trip stays in shared memory. With fewer than spinMinProcs Ps the
// spinning would steal the CPU from the other side, and t.spin is 0.
type thread struct {
	mu     sync.Mutex // serialises calls; guards closed
	closed bool

	st    atomic.Int32 // one of the st* states
	f     func() error // the posted call (nil: stop)
	err   error        // its result
	wake  chan struct{}
	reply chan struct{}
	done  chan struct{}
	spin  time.Duration
}

// States of thread.st. Only one call is in flight (t.mu), so a call sees
// stIdle or stWorkerAsleep when it posts.
const (
	stIdle         = iota // no call; the worker is awake (spinning)
	stWorkerAsleep        // no call; the worker sleeps on wake
	stPosted              // a call is posted or running
	stCallerAsleep        // a call is running and its caller sleeps on reply
	stDone                // the result is ready for the spinning caller
)

// spinFor is how long each side spins before sleeping: longer than a
// driver call and than the host's work between two launches, short enough
// that an idle device costs little CPU.
const (
	spinFor      = 30 * time.Microsecond
	spinMinProcs = 4
)

// panicked carries a panic from the locked thread back to the caller.
type panicked struct{ v any }

func (p panicked) Error() string { return fmt.Sprintf("panic on the locked thread: %v", p.v) }

// startThread starts the locked goroutine and runs setup on it. If setup
// fails, teardown runs at once (it must cope with a partial setup) and the
// error is returned; otherwise teardown runs at close. The goroutine never
// unlocks its thread, so the thread exits with it and whatever was bound to
// the thread (the CUDA context) is never seen by another goroutine.
func startThread(setup func() error, teardown func()) (*thread, error) {
	spin := time.Duration(0)
	if runtime.GOMAXPROCS(0) >= spinMinProcs {
		spin = spinFor
	}
	return startThreadSpin(setup, teardown, spin)
}

// startThreadSpin is startThread with a chosen spin time (tests use both).
func startThreadSpin(setup func() error, teardown func(), spin time.Duration) (*thread, error) {
	t := &thread{
		wake:  make(chan struct{}, 1),
		reply: make(chan struct{}, 1),
		done:  make(chan struct{}),
		spin:  spin,
	}
	ready := make(chan error)
	go func() {
		runtime.LockOSThread()
		defer close(t.done)
		if err := run(setup); err != nil {
			teardown()
			ready <- err
			return
		}
		ready <- nil
		t.serve()
		teardown()
	}()
	if err := <-ready; err != nil {
		<-t.done
		if p, ok := err.(panicked); ok {
			panic(p.v)
		}
		return nil, err
	}
	return t, nil
}

// serve runs posted calls until the stop call (nil f).
func (t *thread) serve() {
	for {
		t.waitPosted()
		f := t.f
		if f == nil {
			return
		}
		t.err = run(f)
		if !t.st.CompareAndSwap(stPosted, stDone) {
			// The caller went to sleep (stCallerAsleep): wake it. The
			// channel orders t.err before the caller's read.
			t.st.Store(stIdle)
			t.reply <- struct{}{}
		}
	}
}

// waitPosted returns once a call is posted, spinning up to t.spin after the
// last activity, then sleeping on t.wake.
func (t *thread) waitPosted() {
	start := time.Now()
	for i := 0; ; i++ {
		switch t.st.Load() {
		case stPosted, stCallerAsleep:
			// A posted call whose caller may already sleep, before this
			// thread has even seen it.
			return
		case stIdle:
			if t.spin == 0 || (i&63 == 63 && time.Since(start) > t.spin) {
				if t.st.CompareAndSwap(stIdle, stWorkerAsleep) {
					<-t.wake // the poster set stPosted before sending
					return
				}
			}
		default:
			// stDone: the previous caller has not yet taken its result.
			runtime.Gosched()
		}
	}
}

// run calls f, turning a panic into a panicked error that do re-panics.
func run(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = panicked{r}
		}
	}()
	return f()
}

// post hands f to the worker (t.mu held).
func (t *thread) post(f func() error) {
	t.f = f
	for {
		if t.st.CompareAndSwap(stIdle, stPosted) {
			return // the worker is spinning and will see it
		}
		if t.st.CompareAndSwap(stWorkerAsleep, stPosted) {
			t.wake <- struct{}{}
			return
		}
	}
}

// do runs f on the locked thread and returns its error; a panic in f is
// re-raised in the caller.
func (t *thread) do(f func() error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.doLocked(f)
}

// doLocked is do for a caller that holds t.mu.
func (t *thread) doLocked(f func() error) error {
	if t.closed {
		return errClosed
	}
	t.post(f)
	err := t.await()
	if p, ok := err.(panicked); ok {
		panic(p.v)
	}
	return err
}

// await waits for the posted call's result, spinning up to t.spin.
func (t *thread) await() error {
	start := time.Now()
	for i := 0; ; i++ {
		if t.st.Load() == stDone {
			err := t.err
			t.f, t.err = nil, nil
			t.st.Store(stIdle)
			return err
		}
		if t.spin == 0 || (i&63 == 63 && time.Since(start) > t.spin) {
			if t.st.CompareAndSwap(stPosted, stCallerAsleep) {
				<-t.reply // the worker set stIdle before sending
				err := t.err
				t.f, t.err = nil, nil
				return err
			}
		}
	}
}

// close runs last (if not nil) on the thread, then stops it after its
// teardown. Calls after close return errClosed; a second close returns nil.
func (t *thread) close(last func() error) (err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	// Runs before the Unlock, also when last panics.
	defer func() {
		t.closed = true
		t.post(nil)
		<-t.done
	}()
	if last != nil {
		err = t.doLocked(last)
	}
	return err
}
