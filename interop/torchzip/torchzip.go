// Package torchzip reads a state dict of float tensors from a file that
// torch.save wrote in its zip format (PyTorch >= 1.6), such as AdapterHub's
// pytorch_adapter.bin and pytorch_model_head.bin, without running Python
// and without trusting the file.
//
// A torch.save file is a zip archive holding <prefix>/data.pkl, a Python
// pickle, and <prefix>/data/<key>, the raw bytes of each storage. Unpickling
// an arbitrary pickle runs arbitrary code, so this package does not
// unpickle: it interprets only the opcodes and the handful of globals a
// state dict of tensors needs (collections.OrderedDict,
// torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter and the
// float storage classes) and refuses anything else with an error naming the
// opcode or global and where it is. Tensors come back as float32 (float16,
// bfloat16 and float64 storages are converted).
package torchzip

import (
	"archive/zip"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
)

// DType is the element type of a storage.
type DType int

// Storage element types.
const (
	F32 DType = iota
	F16
	BF16
	F64
)

// Size is the element size in bytes.
func (d DType) Size() int {
	switch d {
	case F16, BF16:
		return 2
	case F64:
		return 8
	}
	return 4
}

// Tensor is one tensor of a state dict, as float32 in row-major order.
type Tensor struct {
	Shape []int
	Data  []float32
}

// StateDict is the content of a file: tensors by name, and the names in the
// file's order.
type StateDict struct {
	Names   []string
	Tensors map[string]*Tensor
}

// maxPickle bounds data.pkl (a state dict's pickle is a few hundred bytes
// per tensor).
const maxPickle = 64 << 20

// ReadFile reads the state dict in path. Errors name the file.
func ReadFile(p string) (*StateDict, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	sd, err := Read(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return sd, nil
}

// Read reads the state dict from a torch.save zip archive of size bytes.
func Read(r io.ReaderAt, size int64) (*StateDict, error) {
	var magic [2]byte
	if _, err := r.ReadAt(magic[:], 0); err != nil || magic != [2]byte{'P', 'K'} {
		return nil, fmt.Errorf("not a zip archive: only torch.save's zip format (PyTorch >= 1.6) is read, not the legacy format or a bare pickle")
	}
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fmt.Errorf("zip archive: %w", err)
	}
	files := map[string]*zip.File{}
	var pkl []string
	for _, f := range zr.File {
		files[f.Name] = f
		if path.Base(f.Name) == "data.pkl" && strings.Count(f.Name, "/") == 1 {
			pkl = append(pkl, f.Name)
		}
	}
	if len(pkl) != 1 {
		return nil, fmt.Errorf("zip archive has %d <prefix>/data.pkl entries, want 1 (not a torch.save file)", len(pkl))
	}
	prefix := path.Dir(pkl[0])
	if bo, ok := files[prefix+"/byteorder"]; ok {
		b, err := readEntry(bo, 16, size)
		if err != nil {
			return nil, err
		}
		if s := strings.TrimSpace(string(b)); s != "little" {
			return nil, fmt.Errorf("%s: byte order %q; only little-endian files are read", bo.Name, s)
		}
	}
	raw, err := readEntry(files[pkl[0]], maxPickle, size)
	if err != nil {
		return nil, err
	}
	load := func(key string, dtype DType, numel int64) ([]float32, error) {
		name := prefix + "/data/" + key
		f, ok := files[name]
		if !ok {
			return nil, fmt.Errorf("storage %s: no entry %s in the archive", key, name)
		}
		want := numel * int64(dtype.Size())
		if f.UncompressedSize64 != uint64(want) {
			return nil, fmt.Errorf("storage %s: entry %s holds %d bytes, %d elements of %d bytes need %d", key, name, f.UncompressedSize64, numel, dtype.Size(), want)
		}
		b, err := readEntry(f, want, size)
		if err != nil {
			return nil, err
		}
		return decode(b, dtype, numel), nil
	}
	v, err := unpickle(raw, load)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", pkl[0], err)
	}
	return stateDict(v)
}

// readEntry reads a whole entry of at most limit bytes. A stored entry
// cannot be larger than the archive; a compressed one is read through a
// limit, so a lying header cannot make it allocate more than limit.
func readEntry(f *zip.File, limit, archive int64) ([]byte, error) {
	n := f.UncompressedSize64
	if n > uint64(limit) || (f.Method == zip.Store && n > uint64(archive)) {
		return nil, fmt.Errorf("entry %s: %d bytes (at most %d are read)", f.Name, n, limit)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("entry %s: %w", f.Name, err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, io.LimitReader(rc, int64(n)+1)); err != nil {
		return nil, fmt.Errorf("entry %s: %w", f.Name, err)
	}
	if uint64(buf.Len()) != n {
		return nil, fmt.Errorf("entry %s: %d bytes, its header says %d", f.Name, buf.Len(), n)
	}
	return buf.Bytes(), nil
}

// stateDict checks that the pickle's value is a dict from names to tensors.
func stateDict(v any) (*StateDict, error) {
	d, ok := v.(*dictT)
	if !ok {
		return nil, fmt.Errorf("the pickle holds %s, not a state dict (a dict of tensors)", typeName(v))
	}
	sd := &StateDict{Tensors: map[string]*Tensor{}}
	var bad []string
	for _, k := range d.keys {
		name, ok := k.(string)
		t, isTensor := d.vals[k].(*Tensor)
		if !ok || !isTensor {
			bad = append(bad, fmt.Sprintf("%v (%s)", k, typeName(d.vals[k])))
			continue
		}
		sd.Names = append(sd.Names, name)
		sd.Tensors[name] = t
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return nil, fmt.Errorf("not a state dict of tensors: %d entr(ies) are not a name and a tensor: %s", len(bad), strings.Join(bad[:min(5, len(bad))], ", "))
	}
	return sd, nil
}
