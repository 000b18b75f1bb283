package cpu

import (
	"runtime"
	"sync"
)

// parallelFor splits [0, n) into contiguous chunks of at least grain items and
// runs fn on them on up to GOMAXPROCS goroutines. Each index is handled by
// exactly one call, and chunk boundaries depend only on n, grain and the
// worker count, so results that are reduced per chunk in index order are
// deterministic.
func parallelFor(n, grain int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	if grain < 1 {
		grain = 1
	}
	w := runtime.GOMAXPROCS(0)
	if maxw := (n + grain - 1) / grain; w > maxw {
		w = maxw
	}
	if w <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	chunk := (n + w - 1) / w
	for lo := chunk; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			fn(lo, hi)
		}(lo, hi)
	}
	fn(0, min(chunk, n))
	wg.Wait()
}
