package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// rawFile builds a file from a literal header and data section, so tests can
// craft headers the writer would never produce.
func rawFile(header string, data []byte) []byte {
	b := make([]byte, 8, 8+len(header)+len(data))
	binary.LittleEndian.PutUint64(b, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

// FuzzParse feeds arbitrary bytes to Parse. Parse must never panic; when it
// accepts a file, every tensor must be readable with the advertised size, and
// re-encoding the parsed contents with Marshal must parse back to the same
// tensors and metadata.
func FuzzParse(f *testing.F) {
	valid, err := Marshal([]NamedTensor{
		F32Tensor("a", []int{2, 2}, []float32{1, 2, 3, 4}),
		{Name: "b", DType: BF16, Shape: []int{3}, Data: []byte{1, 2, 3, 4, 5, 6}},
		{Name: "c", DType: I64, Shape: []int{}, Data: make([]byte, 8)},
		{Name: "z", DType: U8, Shape: []int{0, 5}, Data: nil},
	}, map[string]string{"format": "pt"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add(rawFile(`{}`, nil))
	f.Add(rawFile(`{"__metadata__":{"a":"b"}}`, nil))
	f.Add(rawFile(`{"t":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}}`, []byte{7}))
	f.Add(rawFile(`{"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)))
	f.Add(rawFile(`{"t":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8)))
	f.Add(rawFile(`{"t":{"dtype":"F32","shape":[18446744073709551615,2],"data_offsets":[0,4]}}`, make([]byte, 4)))
	f.Add(rawFile(`{"t":{"dtype":"X9","shape":[1],"data_offsets":[0,1]}}`, make([]byte, 1)))
	f.Add(rawFile(`{"__metadata__":{"a":1}}`, nil))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, buf []byte) {
		file, err := Parse("fuzz", buf)
		if err != nil {
			if file != nil {
				t.Fatal("Parse returned a File with an error")
			}
			return
		}
		var tensors []NamedTensor
		for _, name := range file.Names() {
			info, data, err := file.Tensor(name)
			if err != nil {
				t.Fatalf("listed tensor %q: %v", name, err)
			}
			if int64(len(data)) != info.End-info.Begin {
				t.Fatalf("tensor %q: %d bytes for offsets [%d,%d]", name, len(data), info.Begin, info.End)
			}
			if _, err := file.ReadFloat32(name); err != nil && !errors.Is(err, ErrDType) {
				t.Fatalf("tensor %q: ReadFloat32: %v", name, err)
			}
			tensors = append(tensors, NamedTensor{Name: name, DType: info.DType, Shape: info.Shape, Data: data})
		}
		again, err := Marshal(tensors, file.Metadata())
		if err != nil {
			t.Fatalf("re-encoding an accepted file: %v", err)
		}
		file2, err := Parse("fuzz-again", again)
		if err != nil {
			t.Fatalf("re-encoded file rejected: %v", err)
		}
		if len(file2.Names()) != len(tensors) || len(file2.Metadata()) != len(file.Metadata()) {
			t.Fatal("re-encoded file differs in tensor or metadata count")
		}
		for k, v := range file.Metadata() {
			if file2.Metadata()[k] != v {
				t.Fatalf("metadata %q changed in re-encoding", k)
			}
		}
		for _, nt := range tensors {
			info, data, err := file2.Tensor(nt.Name)
			if err != nil || info.DType != nt.DType || !bytes.Equal(data, nt.Data) || len(info.Shape) != len(nt.Shape) {
				t.Fatalf("tensor %q changed in re-encoding (err %v)", nt.Name, err)
			}
		}
	})
}
