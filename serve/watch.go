package serve

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watcher keeps a Predictor's tasks in step with a folder of adapter files:
// every NAME.safetensors in it is served as task NAME. Files that appear or
// change are loaded (a task of that name is replaced), files that go away
// are removed (their in-flight requests drain first). A file that cannot be
// served (truncated, made for another base model, of an unknown format
// version) is logged and refused, and changes nothing: every other task,
// and the previous version of its own task, keep serving.
//
// A file is read only after it has been quiet for Settle (no write events),
// and its size and modification time must be the same before and after the
// read; a file copied in place is therefore read once it is complete, and a
// read that catches it half-written fails to parse and is retried when the
// next event arrives. Writers that rename a finished file into the folder
// (adapter.Save does) are never seen half-written at all. Hidden files
// (".name...", such as adapter.Save's temporary files) are ignored.
type Watcher struct {
	p   *Predictor
	dir string
	m   *Metrics
	log *slog.Logger
	// Settle is how long a file must be quiet before it is read (default
	// 250ms).
	Settle time.Duration

	syncMu  sync.Mutex // one sync at a time (events, Sync from the API or SIGHUP)
	mu      sync.Mutex
	loaded  map[string]fileStamp // what each served task was loaded from
	refused map[string]refusal   // files that failed, by task name
}

// fileStamp identifies a version of a file.
type fileStamp struct {
	size int64
	mod  time.Time
}

type refusal struct {
	stamp fileStamp
	err   string
}

// Report says what a Sync changed.
type Report struct {
	Added    []string          `json:"added,omitempty"`
	Replaced []string          `json:"replaced,omitempty"`
	Removed  []string          `json:"removed,omitempty"`
	Refused  map[string]string `json:"refused,omitempty"`
}

// NewWatcher returns a Watcher of dir for p; m may be nil.
func NewWatcher(p *Predictor, dir string, m *Metrics, log *slog.Logger) *Watcher {
	if log == nil {
		log = p.log
	}
	return &Watcher{p: p, dir: dir, m: m, log: log, Settle: 250 * time.Millisecond,
		loaded: map[string]fileStamp{}, refused: map[string]refusal{}}
}

// TaskName is the task a file in the folder serves ("" for files that are
// not adapter files or are hidden).
func TaskName(file string) string {
	base := filepath.Base(file)
	if strings.HasPrefix(base, ".") || filepath.Ext(base) != ".safetensors" {
		return ""
	}
	return strings.TrimSuffix(base, ".safetensors")
}

// Refused lists the files that were refused, by task name, with the reason.
func (w *Watcher) Refused() map[string]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]string{}
	for k, v := range w.refused {
		out[k] = v.err
	}
	return out
}

// Sync rescans the folder: loads new and changed files, removes tasks whose
// file is gone (without waiting for their drain). It is what the reload
// endpoint and SIGHUP run.
func (w *Watcher) Sync() Report {
	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	var rep Report
	entries, err := os.ReadDir(w.dir)
	if err != nil {
		w.log.Error("reading the adapters folder", "dir", w.dir, "err", err)
		rep.Refused = map[string]string{w.dir: err.Error()}
		return rep
	}
	present := map[string]bool{}
	var names []string
	for _, e := range entries {
		if name := TaskName(e.Name()); name != "" && !e.IsDir() {
			present[name] = true
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		w.syncOne(name, &rep)
	}
	w.mu.Lock()
	var gone []string
	for name := range w.loaded {
		if !present[name] {
			gone = append(gone, name)
		}
	}
	for name := range w.refused {
		if !present[name] {
			delete(w.refused, name)
		}
	}
	w.mu.Unlock()
	sort.Strings(gone)
	for _, name := range gone {
		w.removeTask(name, &rep)
	}
	return rep
}

// syncOne loads the file of task name when it is new or has changed since
// it was loaded (or refused), or removes the task when the file is gone.
func (w *Watcher) syncOne(name string, rep *Report) {
	path := filepath.Join(w.dir, name+".safetensors")
	st, err := os.Stat(path)
	if err != nil {
		w.mu.Lock()
		_, served := w.loaded[name]
		delete(w.refused, name)
		w.mu.Unlock()
		if served && os.IsNotExist(err) {
			w.removeTask(name, rep)
		}
		return
	}
	stamp := fileStamp{st.Size(), st.ModTime()}
	w.mu.Lock()
	old, served := w.loaded[name]
	bad, wasRefused := w.refused[name]
	w.mu.Unlock()
	if (served && old == stamp) || (wasRefused && bad.stamp == stamp) {
		return // nothing new
	}
	err = w.p.AddFile(name, path)
	if err == nil {
		// The file must not have changed while it was read: otherwise the
		// next event reads it again.
		if st2, err2 := os.Stat(path); err2 != nil || st2.Size() != stamp.size || !st2.ModTime().Equal(stamp.mod) {
			stamp = fileStamp{} // forces a reload on the next sync
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.refused[name] = refusal{stamp, err.Error()}
		if rep.Refused == nil {
			rep.Refused = map[string]string{}
		}
		rep.Refused[name] = err.Error()
		w.m.load("refused")
		w.log.Error("adapter file refused; the tasks keep serving as before", "task", name, "file", path, "err", err)
		return
	}
	delete(w.refused, name)
	w.loaded[name] = stamp
	if served {
		rep.Replaced = append(rep.Replaced, name)
		w.m.load("replaced")
	} else {
		rep.Added = append(rep.Added, name)
		w.m.load("added")
	}
}

// removeTask stops serving name; its requests drain in the background.
func (w *Watcher) removeTask(name string, rep *Report) {
	w.mu.Lock()
	delete(w.loaded, name)
	w.mu.Unlock()
	rep.Removed = append(rep.Removed, name)
	w.m.load("removed")
	go func() {
		if err := w.p.Remove(context.Background(), name); err != nil {
			w.log.Warn("removing task", "task", name, "err", err)
		}
	}()
}

// Run watches the folder until ctx ends: it syncs once, then handles
// fsnotify events, each task's file once it has been quiet for Settle.
func (w *Watcher) Run(ctx context.Context) error {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching %s: %w", w.dir, err)
	}
	defer fw.Close()
	if err := fw.Add(w.dir); err != nil {
		return fmt.Errorf("watching %s: %w", w.dir, err)
	}
	w.Sync()
	due := map[string]time.Time{} // task name -> when to sync it
	tick := time.NewTicker(max(w.Settle/5, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fw.Events:
			if !ok {
				return nil
			}
			if name := TaskName(ev.Name); name != "" {
				due[name] = time.Now().Add(w.Settle)
			}
		case err, ok := <-fw.Errors:
			if !ok {
				return nil
			}
			// An overflowed event queue loses events: rescan everything.
			w.log.Warn("watching the adapters folder; rescanning", "err", err)
			w.Sync()
		case now := <-tick.C:
			for name, at := range due {
				if now.Before(at) {
					continue
				}
				delete(due, name)
				var rep Report
				w.syncMu.Lock()
				w.syncOne(name, &rep)
				w.syncMu.Unlock()
			}
		}
	}
}
