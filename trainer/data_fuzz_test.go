package trainer

import (
	"bytes"
	"testing"
	"unicode/utf8"
)

// FuzzRead: dataset files are user input. Reading one in any format must
// return an error or examples, never panic; every accepted example has a
// non-empty, valid UTF-8 text and a label, and a line number inside the file.
func FuzzRead(f *testing.F) {
	f.Add(uint8(0), []byte("{\"text\": \"good movie\", \"label\": \"pos\"}\n{\"text\": \"bad\", \"label\": \"neg\"}\n"))
	f.Add(uint8(1), []byte("text\tlabel\ngood movie\tpos\nbad\tneg\n"))
	f.Add(uint8(2), []byte("text,label\n\"good, movie\",pos\n\"multi\nline\",neg\n"))
	f.Add(uint8(0), []byte("{\"text\": \"\\ud800\", \"label\": 1}\n"))
	f.Add(uint8(1), []byte("text\tlabel\n\xff\tpos\n"))
	f.Add(uint8(2), []byte("text,label\n\"unterminated,pos\n"))
	formats := []string{"jsonl", "tsv", "csv"}
	f.Fuzz(func(t *testing.T, format uint8, data []byte) {
		for _, skip := range []bool{false, true} {
			l := Layout{Format: formats[int(format)%len(formats)], Header: true, TextField: "text", LabelField: "label",
				TextColumn: -1, TextPairColumn: -1, LabelColumn: -1, RequireLabel: true, SkipBadRows: skip}
			ds, err := Read("fuzz.data", bytes.NewReader(data), l)
			if err != nil {
				continue
			}
			lines := bytes.Count(data, []byte("\n")) + 1
			for _, ex := range ds.Examples {
				if ex.Text == "" || !utf8.ValidString(ex.Text) || !utf8.ValidString(ex.Pair) || ex.RawLabel == "" {
					t.Fatalf("accepted a bad example %+v (format %s)", ex, l.Format)
				}
				if ex.Line < 1 || ex.Line > lines {
					t.Fatalf("example line %d outside the file's %d lines", ex.Line, lines)
				}
			}
		}
	})
}
