package cpu

import (
	"runtime"
	"sync"
)

// maxWorkers is the most chunks parallelFor splits work into; per-worker
// scratch is sized by it.
func maxWorkers() int { return runtime.GOMAXPROCS(0) }

// parallelFor splits [0, n) into contiguous chunks of at least grain items and
// runs fn on them on up to GOMAXPROCS goroutines. Each index is handled by
// exactly one call, and chunk boundaries depend only on n, grain and the
// worker count, so results that are reduced per chunk in index order are
// deterministic.
func parallelFor(n, grain int, fn func(lo, hi int)) {
	parallelForW(n, grain, func(_, lo, hi int) { fn(lo, hi) })
}

// parallelForW is parallelFor that also passes the chunk's index w, with
// 0 <= w < maxWorkers(), so fn can use per-worker scratch. No two concurrent
// calls of fn get the same w.
func parallelForW(n, grain int, fn func(w, lo, hi int)) {
	if n <= 0 {
		return
	}
	if grain < 1 {
		grain = 1
	}
	w := maxWorkers()
	if maxw := (n + grain - 1) / grain; w > maxw {
		w = maxw
	}
	if w <= 1 {
		fn(0, 0, n)
		return
	}
	var wg sync.WaitGroup
	chunk := (n + w - 1) / w
	i := 1
	for lo := chunk; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func(i, lo, hi int) {
			defer wg.Done()
			fn(i, lo, hi)
		}(i, lo, hi)
		i++
	}
	fn(0, 0, min(chunk, n))
	wg.Wait()
}
