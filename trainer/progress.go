package trainer

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
)

// isTerminal reports whether w is a character device (a TTY).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progress writes log records: always as JSON lines to the run's log file,
// and to Options.Progress as a bar (TTY) or JSON lines.
type progress struct {
	file io.Writer
	out  io.Writer
	tty  bool
}

func (p *progress) record(rec map[string]any, bar string) {
	js, _ := json.Marshal(rec)
	if p.file != nil {
		fmt.Fprintf(p.file, "%s\n", js)
	}
	if p.out == nil {
		return
	}
	if p.tty && bar != "" {
		fmt.Fprintf(p.out, "\r%s\x1b[K", bar)
		return
	}
	if p.tty {
		fmt.Fprintln(p.out)
	}
	fmt.Fprintf(p.out, "%s\n", js)
}

// progressBar is the one-line terminal progress of a run: steps, a bar,
// loss, learning rate, speed, elapsed time and the estimated time left.
func progressBar(step, total int, loss, lr, exPerS, elapsed, eta float64) string {
	const width = 30
	n := min(width, width*step/max(1, total))
	return fmt.Sprintf("step %d/%d [%s%s] loss %.4f lr %.2e %.1f ex/s %s elapsed, %s left", step, total,
		strings.Repeat("=", n), strings.Repeat(" ", width-n), loss, lr, exPerS, clock(elapsed), clock(eta))
}

// clock formats seconds as h:mm:ss (or m:ss under an hour).
func clock(sec float64) string {
	if math.IsNaN(sec) || math.IsInf(sec, 0) || sec < 0 {
		return "?"
	}
	s := int(sec + 0.5)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}
