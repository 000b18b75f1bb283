package adapter

import (
	"sort"
	"testing"
)

// FuzzFromMetadata feeds adapter-file metadata (untrusted: it comes from a
// file a user downloads) with one value replaced by fuzz input. It must
// return an error or a File, never panic, and a File it accepts must
// describe itself again (Metadata) without error.
func FuzzFromMetadata(f *testing.F) {
	base, err := tinyFile(f).Metadata()
	if err != nil {
		f.Fatal(err)
	}
	keys := make([]string, 0, len(base))
	for k := range base {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		f.Add(uint8(i), base[k])
		f.Add(uint8(i), "")
		f.Add(uint8(i), "{}")
		f.Add(uint8(i), "null")
		f.Add(uint8(i), `{"bottleneck": -1}`)
	}
	f.Fuzz(func(t *testing.T, which uint8, value string) {
		meta := make(map[string]string, len(base))
		for k, v := range base {
			meta[k] = v
		}
		meta[keys[int(which)%len(keys)]] = value
		got, err := FromMetadata("fuzz.safetensors", meta, "")
		if err != nil {
			return
		}
		if _, err := got.Metadata(); err != nil {
			t.Fatalf("accepted metadata (%s = %q) does not describe itself again: %v", keys[int(which)%len(keys)], value, err)
		}
	})
}
