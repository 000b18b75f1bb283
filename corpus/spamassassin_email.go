package corpus

// The SpamAssassin email text (ParseEmail). Only the Subject header and the
// decoded body of each email are kept. Every other header is dropped on
// purpose: the Received, X-Spam-* and mailing-list headers identify the
// label almost perfectly and would make the task trivial.
//
// Text rules, in order:
//   - a leading mbox "From " line is removed, then the message is parsed with
//     net/mail;
//   - the Subject is RFC 2047-decoded (mime.WordDecoder);
//   - the body is decoded per Content-Transfer-Encoding (quoted-printable,
//     base64; anything else is taken as is);
//   - multipart bodies (recursively): the text/plain parts, joined by a
//     newline; when there are none, the text/html parts with tags stripped;
//     other parts (attachments, images) are ignored;
//   - a declared charset other than UTF-8/US-ASCII is converted to UTF-8
//     (golang.org/x/text/encoding/htmlindex, so latin-1 is read as
//     windows-1252 as browsers do); invalid UTF-8 left after that is replaced
//     with U+FFFD;
//   - whitespace runs collapse to one space, leading/trailing space trimmed;
//   - the body is cut to MaxBodyRunes runes; text = subject + "\n" + body.

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/encoding/htmlindex"
)

// MaxBodyRunes caps the body length, in runes, after decoding and whitespace
// collapsing. 4000 characters is far more than the 128-512 WordPiece tokens a
// BERT classifier reads, and it keeps the JSONL files small (a few spam mails
// carry hundreds of kilobytes of HTML).
const MaxBodyRunes = 4000

// maxParts bounds how many MIME parts (over all nesting levels) one message
// may have, so a hostile or broken message cannot make the parser loop long.
const maxParts = 256

// Email is the part of a message kept for classification.
type Email struct {
	Subject string // RFC 2047-decoded, whitespace collapsed
	Body    string // decoded text, whitespace collapsed, at most MaxBodyRunes runes
}

// Text is the classifier input: subject, a newline, body.
func (e Email) Text() string { return e.Subject + "\n" + e.Body }

// ParseEmail extracts the subject and the body text of a raw RFC 5322 message.
// It returns an error only when the header block cannot be parsed at all; a
// body that is partly broken (bad base64, a missing closing boundary) yields
// whatever text could be decoded.
func ParseEmail(raw []byte) (Email, error) {
	raw = stripMboxFrom(raw)
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return Email{}, fmt.Errorf("spamassassin: parse header: %w", err)
	}
	subject := decodeHeader(msg.Header.Get("Subject"))
	body, err := io.ReadAll(msg.Body)
	if err != nil {
		return Email{}, fmt.Errorf("spamassassin: read body: %w", err)
	}
	parts := 0
	plain, htmlText := extractText(textproto.MIMEHeader(msg.Header), body, &parts, 0)
	text := plain
	if strings.TrimSpace(text) == "" {
		text = htmlText
	}
	return Email{
		Subject: collapseSpace(subject),
		Body:    truncateRunes(collapseSpace(text), MaxBodyRunes),
	}, nil
}

// stripMboxFrom removes a leading mbox separator line ("From addr date"),
// which is not a header and which net/mail would reject.
func stripMboxFrom(raw []byte) []byte {
	if bytes.HasPrefix(raw, []byte("From ")) {
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			return raw[i+1:]
		}
		return nil
	}
	return raw
}

// wordDecoder decodes RFC 2047 encoded words in any charset htmlindex knows.
var wordDecoder = &mime.WordDecoder{CharsetReader: charsetReader}

func charsetReader(charset string, input io.Reader) (io.Reader, error) {
	enc, err := htmlindex.Get(charset)
	if err != nil {
		return nil, fmt.Errorf("spamassassin: unknown charset %q: %w", charset, err)
	}
	return enc.NewDecoder().Reader(input), nil
}

// decodeHeader decodes RFC 2047 words; undecodable words are kept raw, and
// raw 8-bit bytes are made valid UTF-8.
func decodeHeader(s string) string {
	if d, err := wordDecoder.DecodeHeader(s); err == nil {
		s = d
	}
	return toValidUTF8(s)
}

// extractText returns the text/plain and the (tag-stripped) text/html content
// of one MIME entity, recursing into multipart entities.
func extractText(h textproto.MIMEHeader, body []byte, parts *int, depth int) (plain, htmlText string) {
	*parts++
	if *parts > maxParts || depth > 16 {
		return "", ""
	}
	mediaType, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		// Missing or unparsable Content-Type: RFC 2045 default is text/plain.
		mediaType, params = "text/plain", map[string]string{}
	}
	if strings.HasPrefix(mediaType, "multipart/") {
		boundary := params["boundary"]
		if boundary == "" {
			return decodeCharset(decodeTransfer(h, body), params["charset"]), ""
		}
		var ps, hs []string
		mr := multipart.NewReader(bytes.NewReader(body), boundary)
		for {
			p, err := mr.NextRawPart()
			if err != nil {
				break // io.EOF, or a broken boundary: keep what was read
			}
			pb, _ := io.ReadAll(p) // a truncated part still yields its text
			pl, ht := extractText(p.Header, pb, parts, depth+1)
			if strings.TrimSpace(pl) != "" {
				ps = append(ps, pl)
			}
			if strings.TrimSpace(ht) != "" {
				hs = append(hs, ht)
			}
		}
		return strings.Join(ps, "\n"), strings.Join(hs, "\n")
	}
	if mediaType == "message/rfc822" {
		inner, err := ParseEmail(body)
		if err != nil {
			return "", ""
		}
		return inner.Text(), ""
	}
	if !strings.HasPrefix(mediaType, "text/") {
		return "", "" // attachment, image, ...
	}
	text := decodeCharset(decodeTransfer(h, body), params["charset"])
	if mediaType == "text/html" {
		return "", stripHTML(text)
	}
	if looksLikeHTML(text) {
		// Many spams send HTML labelled text/plain (or with no Content-Type);
		// the tags carry no wording, so strip them as for text/html.
		return stripHTML(text), ""
	}
	return text, ""
}

// decodeTransfer undoes the Content-Transfer-Encoding. Decoding errors keep
// the prefix decoded so far.
func decodeTransfer(h textproto.MIMEHeader, body []byte) []byte {
	switch strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))) {
	case "quoted-printable":
		out, _ := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body)))
		return out
	case "base64":
		clean := bytes.Map(func(r rune) rune {
			if r == '\r' || r == '\n' || r == ' ' || r == '\t' {
				return -1
			}
			return r
		}, body)
		if i := bytes.IndexByte(clean, '='); i >= 0 {
			clean = clean[:i] // padding; anything after it is junk
		}
		out := make([]byte, base64.RawStdEncoding.DecodedLen(len(clean)))
		n, _ := base64.RawStdEncoding.Decode(out, clean)
		return out[:n]
	}
	return body
}

// decodeCharset converts from the declared charset to UTF-8. Without a
// declaration, or for UTF-8/US-ASCII or an unknown name, the bytes are taken
// as UTF-8 with invalid sequences replaced.
func decodeCharset(b []byte, charset string) string {
	cs := strings.ToLower(strings.Trim(strings.TrimSpace(charset), `"'`))
	switch cs {
	case "", "utf-8", "utf8", "us-ascii", "ascii":
		return toValidUTF8(string(b))
	}
	enc, err := htmlindex.Get(cs)
	if err != nil {
		return toValidUTF8(string(b))
	}
	out, err := enc.NewDecoder().Bytes(b)
	if err != nil {
		return toValidUTF8(string(b))
	}
	return toValidUTF8(string(out))
}

func toValidUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

var (
	reScriptStyle = regexp.MustCompile(`(?is)<(script|style)\b.*?</(script|style)\s*>`)
	reComment     = regexp.MustCompile(`(?s)<!--.*?-->`)
	reTag         = regexp.MustCompile(`(?s)<[^>]*>`)
)

// stripHTML is a crude tag stripper: it drops scripts, styles, comments and
// tags (each replaced by a space) and unescapes entities. Good enough for
// classifier text; not an HTML parser.
func stripHTML(s string) string {
	s = reScriptStyle.ReplaceAllString(s, " ")
	s = reComment.ReplaceAllString(s, " ")
	s = reTag.ReplaceAllString(s, " ")
	return html.UnescapeString(s)
}

var reHTMLStart = regexp.MustCompile(`(?i)<(html|body|table|font|br|div|a\s+href)\b`)

// looksLikeHTML reports whether a text/plain body is really HTML: it holds an
// opening <html>, <body>, <table>, <font>, <br>, <div> or <a href> tag.
func looksLikeHTML(s string) bool { return reHTMLStart.MatchString(s) }

// collapseSpace replaces every run of Unicode white space with one ASCII
// space and trims both ends.
func collapseSpace(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range s {
		if unicode.IsSpace(r) {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	return b.String()
}

// truncateRunes cuts s to at most n runes.
func truncateRunes(s string, n int) string {
	if len(s) <= n { // bytes >= runes, so this is a cheap exact shortcut
		return s
	}
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos]
		}
		i++
	}
	return s
}
