package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// PredictRequest is the body of POST /v1/predict:
//
//	{"task": "spam", "inputs": ["a text", ["text a", "text b"]]}
//
// Each input is a string, or an array of two strings (a text pair).
type PredictRequest struct {
	Task   string
	Inputs []Input
}

// FieldError is a client error that names the offending field of the
// request ("task", "inputs[3][1]", ...); the HTTP API answers it with 400.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

// DecodePredictRequest parses and validates a predict request body: exactly
// the fields task (a non-empty string) and inputs (1 to maxInputs entries,
// each a non-empty string or a pair of non-empty strings), every string
// valid UTF-8 (raw bytes and \u escapes: a lone surrogate is invalid, where
// encoding/json would silently substitute U+FFFD). Errors are *FieldError.
func DecodePredictRequest(body []byte, maxInputs int) (*PredictRequest, error) {
	if !utf8.Valid(body) {
		// Name the field that holds the bad bytes when the JSON parses.
		var probe struct {
			Task   json.RawMessage `json:"task"`
			Inputs json.RawMessage `json:"inputs"`
		}
		field := ""
		if json.Unmarshal(body, &probe) == nil {
			field = "inputs"
			if !utf8.Valid(probe.Task) {
				field = "task"
			}
		}
		return nil, &FieldError{field, "invalid UTF-8"}
	}
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&raw); err != nil {
		return nil, &FieldError{"", "malformed JSON: " + jsonMsg(err)}
	}
	if raw == nil {
		return nil, &FieldError{"", "the body must be a JSON object"}
	}
	if dec.More() {
		return nil, &FieldError{"", "malformed JSON: data after the object"}
	}
	var extra []string
	for k := range raw {
		if k != "task" && k != "inputs" {
			extra = append(extra, k)
		}
	}
	if len(extra) > 0 {
		return nil, &FieldError{extra[0], "unknown field (want task and inputs)"}
	}
	r := &PredictRequest{}
	tr, ok := raw["task"]
	if !ok {
		return nil, &FieldError{"task", "missing"}
	}
	task, err := decodeString(tr, "task")
	if err != nil {
		return nil, err
	}
	if task == "" {
		return nil, &FieldError{"task", "empty"}
	}
	r.Task = task
	ir, ok := raw["inputs"]
	if !ok {
		return nil, &FieldError{"inputs", "missing"}
	}
	var items []json.RawMessage
	if err := json.Unmarshal(ir, &items); err != nil || isNull(ir) {
		return nil, &FieldError{"inputs", "want an array of strings or [text, text_pair] arrays"}
	}
	if len(items) == 0 {
		return nil, &FieldError{"inputs", "empty"}
	}
	if len(items) > maxInputs {
		return nil, &FieldError{"inputs", fmt.Sprintf("%d inputs, at most %d per request", len(items), maxInputs)}
	}
	r.Inputs = make([]Input, len(items))
	for i, it := range items {
		field := fmt.Sprintf("inputs[%d]", i)
		it = bytes.TrimSpace(it)
		if len(it) > 0 && it[0] == '[' {
			var pair []json.RawMessage
			if err := json.Unmarshal(it, &pair); err != nil || len(pair) != 2 {
				return nil, &FieldError{field, "a pair must be an array of two strings"}
			}
			a, err := decodeText(pair[0], field+"[0]")
			if err != nil {
				return nil, err
			}
			b, err := decodeText(pair[1], field+"[1]")
			if err != nil {
				return nil, err
			}
			r.Inputs[i] = Input{Text: a, Pair: b}
			continue
		}
		s, err := decodeText(it, field)
		if err != nil {
			return nil, err
		}
		r.Inputs[i] = Input{Text: s}
	}
	return r, nil
}

// decodeText is decodeString for a text, which must not be empty.
func decodeText(raw json.RawMessage, field string) (string, error) {
	s, err := decodeString(raw, field)
	if err != nil {
		return "", err
	}
	if s == "" {
		return "", &FieldError{field, "empty text"}
	}
	return s, nil
}

// decodeString decodes a JSON string whose raw bytes are valid UTF-8,
// refusing escapes that encode no character (lone surrogates such as
// "\ud800", which encoding/json turns into U+FFFD).
func decodeString(raw json.RawMessage, field string) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '"' {
		return "", &FieldError{field, "want a string"}
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", &FieldError{field, "want a string"}
	}
	if !validEscapes(raw) {
		return "", &FieldError{field, "invalid UTF-8 (a \\u escape that is not a character: an unpaired surrogate)"}
	}
	return s, nil
}

// validEscapes reports whether every \u escape of the JSON string literal
// raw (already known to parse) encodes a character: a high surrogate
// (D800-DBFF) must be followed by an escaped low one (DC00-DFFF), and a low
// one may not stand alone (RFC 8259 section 8.2 leaves such strings'
// behaviour unpredictable; we refuse them).
func validEscapes(raw []byte) bool {
	hex4 := func(b []byte) (rune, bool) {
		if len(b) < 4 {
			return 0, false
		}
		var r rune
		for _, c := range b[:4] {
			switch {
			case c >= '0' && c <= '9':
				r = r<<4 | rune(c-'0')
			case c >= 'a' && c <= 'f':
				r = r<<4 | rune(c-'a'+10)
			case c >= 'A' && c <= 'F':
				r = r<<4 | rune(c-'A'+10)
			default:
				return 0, false
			}
		}
		return r, true
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		i++
		if i >= len(raw) || raw[i] != 'u' {
			continue // \", \\, \n, ...: one character escaped
		}
		r, ok := hex4(raw[i+1:])
		if !ok {
			return false
		}
		i += 4
		switch {
		case r >= 0xDC00 && r <= 0xDFFF:
			return false
		case r >= 0xD800 && r <= 0xDBFF:
			if i+6 >= len(raw) || raw[i+1] != '\\' || raw[i+2] != 'u' {
				return false
			}
			lo, ok := hex4(raw[i+3:])
			if !ok || lo < 0xDC00 || lo > 0xDFFF {
				return false
			}
			i += 6
		}
	}
	return true
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

// jsonMsg shortens encoding/json's errors to what a client needs.
func jsonMsg(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%v (at byte %d)", se, se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return "the body must be a JSON object"
	}
	return err.Error()
}
