//go:build linux

package cuda

// Tests of the locked-thread executor. They need no GPU and no cuda tag.

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// spins are the two modes of the executor: sleeping at once (few Ps) and
// spinning first.
var spins = []time.Duration{0, spinFor}

func TestThreadRunsEverythingOnOneOSThread(t *testing.T) {
	for _, spin := range spins {
		t.Run(fmt.Sprint("spin=", spin), func(t *testing.T) { testOneOSThread(t, spin) })
	}
}

func testOneOSThread(t *testing.T, spin time.Duration) {
	var setupTID, teardownTID int
	th, err := startThreadSpin(
		func() error { setupTID = syscall.Gettid(); return nil },
		func() { teardownTID = syscall.Gettid() }, spin)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[int]int{}
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				err := th.do(func() error {
					mu.Lock()
					seen[syscall.Gettid()]++
					mu.Unlock()
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := th.close(nil); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen[setupTID] != 16*200 || teardownTID != setupTID {
		t.Fatalf("calls ran on threads %v; setup on %d, teardown on %d", seen, setupTID, teardownTID)
	}
	if setupTID == syscall.Gettid() {
		t.Fatal("the executor ran on the test's own thread")
	}
}

func TestThreadErrorsAndPanics(t *testing.T) {
	for _, spin := range spins {
		t.Run(fmt.Sprint("spin=", spin), func(t *testing.T) { testErrorsAndPanics(t, spin) })
	}
}

func testErrorsAndPanics(t *testing.T, spin time.Duration) {
	boom := errors.New("boom")
	if _, err := startThreadSpin(func() error { return boom }, func() {}, spin); !errors.Is(err, boom) {
		t.Fatalf("failing setup: %v", err)
	}
	torn := false
	th, err := startThreadSpin(func() error { return nil }, func() { torn = true }, spin)
	if err != nil {
		t.Fatal(err)
	}
	if err := th.do(func() error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("do returned %v, want boom", err)
	}
	func() {
		defer func() {
			if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "kaboom") {
				t.Fatalf("recovered %v, want the panic of f", r)
			}
		}()
		_ = th.do(func() error { panic("kaboom") })
	}()
	// The executor survives a panic in f.
	n := 0
	if err := th.do(func() error { n++; return nil }); err != nil || n != 1 {
		t.Fatalf("after a panic: %v, n=%d", err, n)
	}
	if err := th.close(func() error { return boom }); !errors.Is(err, boom) || !torn {
		t.Fatalf("close: %v, teardown ran: %v", err, torn)
	}
	if err := th.close(nil); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if err := th.do(func() error { return nil }); err != errClosed {
		t.Fatalf("do after close: %v", err)
	}
}

// TestThreadSleepsAndWakes lets the worker fall asleep between calls (the
// gaps are longer than any spin) and checks that calls still complete and
// return their own results.
func TestThreadSleepsAndWakes(t *testing.T) {
	for _, spin := range spins {
		th, err := startThreadSpin(func() error { return nil }, func() {}, spin)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 20; i++ {
			time.Sleep(200 * time.Microsecond)
			want := fmt.Errorf("call %d", i)
			var slow time.Duration
			if i%2 == 1 {
				slow = 100 * time.Microsecond // longer than the caller's spin
			}
			if err := th.do(func() error { time.Sleep(slow); return want }); err != want {
				t.Fatalf("spin %v call %d returned %v", spin, i, err)
			}
		}
		if err := th.close(nil); err != nil {
			t.Fatal(err)
		}
	}
}

// BenchmarkThreadRoundTrip is the host cost that the locked-thread design
// adds to every driver call (Launch included): one empty call there and back,
// spinning (as on a machine with at least spinMinProcs Ps) or sleeping.
func BenchmarkThreadRoundTrip(b *testing.B) {
	for _, spin := range spins {
		b.Run(fmt.Sprint("spin=", spin), func(b *testing.B) { benchRoundTrip(b, spin) })
	}
}

func benchRoundTrip(b *testing.B, spin time.Duration) {
	th, err := startThreadSpin(func() error { return nil }, func() {}, spin)
	if err != nil {
		b.Fatal(err)
	}
	defer th.close(nil)
	nop := func() error { return nil }
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := th.do(nop); err != nil {
			b.Fatal(err)
		}
	}
}
