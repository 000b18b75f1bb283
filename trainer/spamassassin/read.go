package spamassassin

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// Labels are the class names in label-id order (ham = 0, spam = 1).
var Labels = []string{"ham", "spam"}

// Read loads one split ("train", "validation" or "test") written by Prepare
// from dir. Every line must hold an id, a text and a known label; errors name
// the file and line.
func Read(dir, split string) ([]Example, error) {
	path := filepath.Join(dir, split+".jsonl")
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("spamassassin: %w", err)
	}
	defer f.Close()
	var out []Example
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	line := 0
	for sc.Scan() {
		line++
		var e Example
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("spamassassin: %s line %d: %w", path, line, err)
		}
		if e.ID == "" || (e.Label != "ham" && e.Label != "spam") {
			return nil, fmt.Errorf("spamassassin: %s line %d: id %q, label %q (want a non-empty id and ham or spam)", path, line, e.ID, e.Label)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("spamassassin: %s line %d: %w", path, line+1, err)
	}
	return out, nil
}

// LabelID maps "ham" to 0 and "spam" to 1; it returns -1 for anything else.
func LabelID(label string) int {
	for i, l := range Labels {
		if l == label {
			return i
		}
	}
	return -1
}
