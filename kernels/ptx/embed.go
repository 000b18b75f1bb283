//go:build cuda

package ptx

import (
	"embed"
	"io/fs"
	"sort"
	"strings"
)

// all is this folder. The pattern is `*` rather than `*.ptx` so that a cuda
// build without PTX (nvcc missing, `make ptx` not run) still compiles and
// cuda.Open reports the missing PTX at run time instead of the build failing
// with "pattern *.ptx: no matching files found".
//
//go:embed *
var all embed.FS

// File is one compiled kernel family.
type File struct {
	Name string // e.g. "adapter.ptx"
	PTX  string
}

// Files returns the embedded PTX files sorted by name (none when `make ptx`
// has not run).
func Files() []File {
	entries, err := fs.ReadDir(all, ".")
	if err != nil {
		panic("ptx: reading the embedded folder: " + err.Error())
	}
	var out []File
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".ptx") {
			continue
		}
		b, err := all.ReadFile(e.Name())
		if err != nil {
			panic("ptx: reading embedded " + e.Name() + ": " + err.Error())
		}
		out = append(out, File{Name: e.Name(), PTX: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
