package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWriteReplacesAndCleansUp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.txt")
	if err := WriteFile(p, []byte("one"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "two" {
		t.Fatalf("content %q, %v", b, err)
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("perm %v, want 0600", st.Mode().Perm())
	}
	// A failing fill leaves the old file and no temporary behind.
	boom := errors.New("boom")
	err = Write(p, 0o644, func(w io.Writer) error {
		w.Write([]byte("partial"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("error %v, want boom", err)
	}
	b, _ = os.ReadFile(p)
	if string(b) != "two" {
		t.Errorf("failed write changed the file to %q", b)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("%d entries left in the directory, want 1", len(ents))
	}
}

func TestWriteMissingDir(t *testing.T) {
	if err := WriteFile(filepath.Join(t.TempDir(), "no", "f"), nil, 0o644); err == nil {
		t.Fatal("no error for a missing directory")
	}
}

// WriteDir creates a folder, replaces an existing one whole, and on a
// failing fill leaves the old folder and no temporary one behind.
func TestWriteDir(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "out")
	write := func(name, body string, fail error) error {
		return WriteDir(dir, func(tmp string) error {
			if err := os.WriteFile(filepath.Join(tmp, name), []byte(body), 0o644); err != nil {
				return err
			}
			return fail
		})
	}
	require.NoError(t, write("a.txt", "one", nil))
	require.NoError(t, write("b.txt", "two", nil))
	_, err := os.Stat(filepath.Join(dir, "a.txt"))
	assert.True(t, os.IsNotExist(err), "the old folder's files are gone")
	require.ErrorContains(t, write("c.txt", "three", errors.New("boom")), "boom")
	b, err := os.ReadFile(filepath.Join(dir, "b.txt"))
	require.NoError(t, err)
	assert.Equal(t, "two", string(b))
	entries, err := os.ReadDir(parent)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary folder left")
}
