package serve_test

import (
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/houlsby/adapters/serve"
)

func TestDecodePredictRequest(t *testing.T) {
	r, err := serve.DecodePredictRequest([]byte(`{"inputs": ["a", ["b", "c"], "\u00e9\ud83d\ude00"], "task": "spam"}`), 8)
	require.NoError(t, err)
	assert.Equal(t, "spam", r.Task)
	assert.Equal(t, []serve.Input{{Text: "a"}, {Text: "b", Pair: "c"}, {Text: "é😀"}}, r.Inputs)
	_, err = serve.DecodePredictRequest([]byte(`{"task": "x", "inputs": ["\ud800\u0041"]}`), 8)
	var fe *serve.FieldError
	require.True(t, errors.As(err, &fe), "%v", err)
	assert.Equal(t, "inputs[0]", fe.Field)
}

// FuzzDecodePredictRequest: no body crashes the decoder, and whatever it
// accepts is a well-formed request: a non-empty task, 1..max inputs, every
// text non-empty valid UTF-8 (so the tokenizer and the JSON answer never
// see a substituted or broken string). Run by scripts/fuzz.sh.
func FuzzDecodePredictRequest(f *testing.F) {
	for _, s := range []string{
		`{"task": "spam", "inputs": ["a text", ["text a", "text b"]]}`,
		`{"task": "spam", "inputs": []}`,
		`{"task": 1, "inputs": "x"}`,
		`{"task": "t", "inputs": ["\ud83d\ude00", "\ufffd", "\\ud800"]}`,
		`{"task": "t", "inputs": ["\ud800"]}`,
		"{\"task\": \"t\", \"inputs\": [\"\xff\"]}",
		`{"task": "t", "inputs": [["a"], ["a", "b", "c"]], "x": null}`,
		`null`, `[]`, `{}`, `{"task": "t", "inputs": [1e999]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := serve.DecodePredictRequest(body, 4)
		if err != nil {
			var fe *serve.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FieldError", err)
			}
			if r != nil {
				t.Fatal("a request and an error")
			}
			return
		}
		if r.Task == "" || !utf8.ValidString(r.Task) {
			t.Fatalf("accepted task %q", r.Task)
		}
		if len(r.Inputs) == 0 || len(r.Inputs) > 4 {
			t.Fatalf("accepted %d inputs", len(r.Inputs))
		}
		for i, in := range r.Inputs {
			if in.Text == "" || !utf8.ValidString(in.Text) || !utf8.ValidString(in.Pair) {
				t.Fatalf("accepted input %d %+v", i, in)
			}
			if !utf8.Valid(body) {
				t.Fatalf("accepted a body that is not UTF-8")
			}
		}
	})
}
