package cpu

import (
	"runtime"
	"sync"
)

// ranger is a unit of parallel work over an index range: run handles
// [lo, hi) as chunk w. Ops implement it on task structs kept in the Backend,
// so handing one to the worker pool allocates nothing.
type ranger interface {
	run(w, lo, hi int)
}

// rangeFunc adapts a function to ranger (a func value is pointer-shaped, so
// the conversion does not allocate; a capturing closure still does, once,
// when it is created).
type rangeFunc func(lo, hi int)

func (f rangeFunc) run(_, lo, hi int) { f(lo, hi) }

// maxWorkers is the most chunks parallelFor splits work into; per-worker
// scratch is sized by it.
func maxWorkers() int { return runtime.GOMAXPROCS(0) }

// parallelFor splits [0, n) into contiguous chunks of at least grain items and
// runs fn on them on up to GOMAXPROCS goroutines. Each index is handled by
// exactly one call, and chunk boundaries depend only on n, grain and the
// worker count, so results that are reduced per chunk in index order are
// deterministic.
func parallelFor(n, grain int, fn func(lo, hi int)) {
	parallelRange(n, grain, rangeFunc(fn))
}

// pool is the set of long-lived workers behind parallelRange. One parallel
// region runs at a time; a region started while another runs (a nested call,
// or a second Backend on another goroutine) runs its chunks inline, in
// order, with the same boundaries, so results do not change.
var pool struct {
	once  sync.Once
	busy  sync.Mutex
	parts chan part
	wg    sync.WaitGroup
}

type part struct {
	r         ranger
	w, lo, hi int
}

func startPool() {
	pool.once.Do(func() {
		nw := max(runtime.GOMAXPROCS(0), runtime.NumCPU()) - 1
		nw = max(nw, 1)
		pool.parts = make(chan part, nw)
		for i := 0; i < nw; i++ {
			go func() {
				for p := range pool.parts {
					p.r.run(p.w, p.lo, p.hi)
					pool.wg.Done()
				}
			}()
		}
	})
}

// chunks returns the number of chunks and their length for n items of at
// least grain each on up to workers workers.
func chunks(n, grain, workers int) (w, chunk int) {
	grain = max(grain, 1)
	w = min(workers, (n+grain-1)/grain)
	w = max(w, 1)
	chunk = (n + w - 1) / w
	return (n + chunk - 1) / chunk, chunk
}

// parallelRange runs r over [0, n) in chunks as parallelFor does, passing
// each chunk's index w (0 <= w < maxWorkers(), distinct among concurrent
// calls) so r can use per-worker scratch. It does not allocate.
func parallelRange(n, grain int, r ranger) {
	parallelRangeW(n, grain, maxWorkers(), r)
}

// parallelRangeW is parallelRange on at most workers chunks, for callers
// that sized per-worker scratch for workers (0 <= w < workers).
func parallelRangeW(n, grain, workers int, r ranger) {
	if n <= 0 {
		return
	}
	w, chunk := chunks(n, grain, max(workers, 1))
	if w <= 1 {
		r.run(0, 0, n)
		return
	}
	if !pool.busy.TryLock() {
		for i := 0; i < w; i++ {
			r.run(i, i*chunk, min(i*chunk+chunk, n))
		}
		return
	}
	startPool()
	pool.wg.Add(w - 1)
	for i := 1; i < w; i++ {
		pool.parts <- part{r: r, w: i, lo: i * chunk, hi: min(i*chunk+chunk, n)}
	}
	r.run(0, 0, chunk)
	pool.wg.Wait()
	pool.busy.Unlock()
}
