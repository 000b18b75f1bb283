package corpus

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/houlsby/adapters/internal/testassets"
)

func TestParseFortunes(t *testing.T) {
	qs, err := ParseFortunes("x", []byte("First  quote\n\t-- Someone\n%\n%\nSecond\r\nline\n%\n"))
	require.NoError(t, err)
	assert.Equal(t, []string{"First quote -- Someone", "Second line"}, qs)
	_, err = ParseFortunes("bad", []byte("ok\n%\n\xff\xfe\n"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "bad:3")
}

// A crafted package folder: one quotation twice in a topic (kept once),
// one in two topics (dropped), one too short; every split is disjoint.
func TestPrepareFortunesCrafted(t *testing.T) {
	in, out := t.TempDir(), t.TempDir()
	for i, topic := range FortuneTopics {
		var b strings.Builder
		for k := 0; k < 30; k++ {
			fmt.Fprintf(&b, "Quotation number %d about %s, with some words.\n%%\n", k, topic)
		}
		b.WriteString("Quotation NUMBER 0 about " + topic + ", with   some words.\n%\n") // a duplicate up to case and spaces
		b.WriteString("Shared by every topic, so it tells nothing.\n%\nshort\n%\n")
		require.NoError(t, os.WriteFile(filepath.Join(in, topic), []byte(b.String()), 0o644), i)
	}
	rep, err := PrepareFortunes(in, out)
	require.NoError(t, err)
	assert.Equal(t, 8*33, rep.Read)
	assert.Equal(t, 8*30, rep.Total())
	assert.Equal(t, 8, rep.Skipped["duplicates"])
	assert.Equal(t, 8, rep.Skipped["with conflicting labels"])
	assertDisjointFiles(t, out)
}

func TestParseAFINN(t *testing.T) {
	ents, err := ParseAFINN("w.csv", strings.NewReader("word,valence\nabandon,-2\n\"can't stand\",-3\n"))
	require.NoError(t, err)
	assert.Equal(t, []AFINNEntry{{"abandon", -2}, {"can't stand", -3}}, ents)
	for _, bad := range []string{"word,valence\nx,9\n", "w,v\nx,1\n", "word,valence\n,1\n", "word,valence\nx\n", "word,valence\n"} {
		_, err := ParseAFINN("w.csv", strings.NewReader(bad))
		assert.Error(t, err, "%q", bad)
	}
	_, err = ParseAFINN("w.csv", strings.NewReader("word,valence\ngood,2\nbad,x\n"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "w.csv:3")
}

// Inflections of a word share a split.
func TestPrepareAFINNFamilies(t *testing.T) {
	in, out := t.TempDir(), t.TempDir()
	var b strings.Builder
	b.WriteString("word,valence\n")
	for i := 0; i < 200; i++ {
		for _, suf := range []string{"", "s", "ed", "ing"} {
			fmt.Fprintf(&b, "w%03dx%s,%d\n", i, suf, i%11-5)
		}
	}
	require.NoError(t, os.WriteFile(filepath.Join(in, "words.csv"), []byte(b.String()), 0o644))
	rep, err := PrepareAFINN(in, out)
	require.NoError(t, err)
	assert.Equal(t, 800, rep.Total())
	where := map[string]string{}
	for _, s := range Splits {
		exs, err := ReadSplit(out, s)
		require.NoError(t, err)
		for _, e := range exs {
			fam := e.Text[:5]
			if w, ok := where[fam]; ok {
				assert.Equal(t, w, s, "family %s in two splits", fam)
			}
			where[fam] = s
			assert.IsType(t, 0.0, e.Label, "labels are JSON numbers")
		}
	}
}

const wnHeader = "  1 This software and database is being provided to you, the LICENSEE, by  \n"

func TestParseWordNetData(t *testing.T) {
	data := wnHeader + "00006024 03 n 01 heterotroph 0 001 @ 00004475 n 0000 | an organism that depends on complex organic substances for nutrition  \n" +
		"00177411 00 a 02 auspicious 0 beautiful(a) 0 000 | auguring favorable circumstances and good luck; \"an auspicious beginning\"  \n"
	syns, err := ParseWordNetData("data.x", "noun", []byte(data))
	require.NoError(t, err)
	require.Len(t, syns, 2)
	assert.Equal(t, Synset{ID: "noun/00006024", LexFile: 3, Words: []string{"heterotroph"}, Gloss: "an organism that depends on complex organic substances for nutrition"}, syns[0])
	assert.Equal(t, []string{"auspicious", "beautiful"}, syns[1].Words)
	assert.Equal(t, "auguring favorable circumstances and good luck", syns[1].Gloss)
	for _, bad := range []string{"00001 03 n 01 x 0 000 no gloss\n", "00001 03 n zz x 0 | g\n", "00001 03 n 05 x 0 | g\n"} {
		_, err := ParseWordNetData("data.x", "noun", []byte(wnHeader+bad))
		require.Error(t, err, "%q", bad)
		assert.Contains(t, err.Error(), "data.x:2")
	}
	assert.True(t, mentions("the act of abandoning a ship", "abandonment"))
	assert.False(t, mentions("a small dog", "cat"))
}

// A crafted WordNet: the pairs use monosemous words only, negatives come
// from the same split and lexicographer file, and no word or definition
// is in two splits.
func TestPrepareWordNetCrafted(t *testing.T) {
	in, out := t.TempDir(), t.TempDir()
	files := map[string]*strings.Builder{}
	for _, f := range wordNetFiles {
		files[f.file] = &strings.Builder{}
		files[f.file].WriteString(wnHeader)
	}
	n := files["data.noun"]
	for i := 0; i < 400; i++ {
		// Words are letters only: wq + the number spelled in letters.
		w := "wq" + strings.Map(func(r rune) rune { return 'a' + (r - '0') }, fmt.Sprintf("%04d", i))
		fmt.Fprintf(n, "%08d %02d n 01 %s 0 000 | definition number %s of group %d; \"an example\"\n", 1000+i, 5+i%3, w, strings.Repeat("x", i%7+1)+fmt.Sprint(i), i%3)
	}
	fmt.Fprintf(n, "%08d 04 n 01 polysemous 0 000 | first sense of it\n%08d 04 n 01 polysemous 0 000 | second sense of it\n", 9000, 9001)
	fmt.Fprintf(n, "%08d 04 n 01 Capital 0 000 | a proper name here\n", 9002)
	for name, b := range files {
		require.NoError(t, os.WriteFile(filepath.Join(in, name), []byte(b.String()), 0o644))
	}
	rep, err := PrepareWordNet(in, out)
	require.NoError(t, err)
	assert.Equal(t, 403, rep.Read)
	assert.Equal(t, 400, rep.Total())
	byID := map[string]Synset{}
	syns, err := ParseWordNetData("n", "noun", []byte(n.String()))
	require.NoError(t, err)
	for _, s := range syns {
		byID[s.ID] = s
	}
	matches := 0
	for _, s := range Splits {
		exs, err := ReadSplit(out, s)
		require.NoError(t, err)
		for _, e := range exs {
			own := byID[e.ID]
			assert.Equal(t, own.Words[0], e.Text)
			assert.NotContains(t, e.Pair, "example")
			if e.Label == "match" {
				matches++
				assert.Equal(t, own.Gloss, e.Pair)
			} else {
				assert.NotEqual(t, own.Gloss, e.Pair)
				// Same lexicographer file: the group number in the definition.
				assert.True(t, strings.HasSuffix(e.Pair, fmt.Sprintf("group %d", (own.LexFile-5))), "%s: %q", e.ID, e.Pair)
			}
		}
	}
	assert.InDelta(t, 200, matches, 40, "about half are matches")
	assertDisjointFiles(t, out)
}

func TestCheckDisjoint(t *testing.T) {
	err := checkDisjoint(map[string][]Example{"train": {{ID: "a", Text: "Hello  World"}}, "test": {{ID: "b", Text: "hello world"}}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "also occurs in train")
	assert.NoError(t, checkDisjoint(map[string][]Example{"train": {{ID: "a", Text: "x", Pair: "p"}}, "test": {{ID: "b", Text: "y", Pair: "q"}}}))
}

// assertDisjointFiles checks the written files: no text or pair text, up to
// case and white space, in two splits.
func assertDisjointFiles(t *testing.T, dir string) {
	t.Helper()
	splits := map[string][]Example{}
	for _, s := range Splits {
		exs, err := ReadSplit(dir, s)
		require.NoError(t, err)
		splits[s] = exs
	}
	assert.NoError(t, checkDisjoint(splits))
}

// The prepared real corpora of `make assets`: sizes as documented in each
// README, every class in every split, and no text in two splits.
func TestRealCorporaFiles(t *testing.T) {
	for _, c := range []struct {
		name       string
		min, max   int
		classes    int
		regression bool
	}{{"spamassassin", 5500, 6046, 2, false}, {"fortunes", 2500, 3300, 8, false}, {"afinn", 2400, 2477, 0, true}, {"wordnet", 9000, 10000, 2, false}} {
		t.Run(c.name, func(t *testing.T) {
			cp, ok := Lookup(c.name)
			require.True(t, ok)
			dir := testassets.Path(cp.Out)
			testassets.Require(t, "make assets", filepath.Join(dir, "test.jsonl"))
			splits := map[string][]Example{}
			total := 0
			for _, s := range Splits {
				exs, err := ReadSplit(dir, s)
				require.NoError(t, err)
				splits[s] = exs
				total += len(exs)
				labels := map[string]bool{}
				for _, e := range exs {
					labels[fmt.Sprint(e.Label)] = true
				}
				if !c.regression {
					assert.Len(t, labels, c.classes, "%s: labels %v", s, labels)
				}
			}
			assert.GreaterOrEqual(t, total, c.min)
			assert.LessOrEqual(t, total, c.max)
			assert.NoError(t, checkDisjoint(splits))
		})
	}
}

func FuzzParseFortunes(f *testing.F) {
	f.Add([]byte("a quote\n%\nanother\n\t-- someone\n%\n"))
	f.Add([]byte("%\n%\n\xff\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		qs, err := ParseFortunes("fuzz", data)
		if err != nil {
			return
		}
		for _, q := range qs {
			if q == "" || strings.Contains(q, "\n") {
				t.Fatalf("quotation %q", q)
			}
		}
	})
}

func FuzzParseAFINN(f *testing.F) {
	f.Add([]byte("word,valence\nabandon,-2\n"))
	f.Add([]byte("word,valence\n\"a,b\",5\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ents, err := ParseAFINN("fuzz", bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, e := range ents {
			if e.Word == "" || e.Valence < -5 || e.Valence > 5 {
				t.Fatalf("entry %+v", e)
			}
		}
	})
}

func FuzzParseWordNetData(f *testing.F) {
	f.Add([]byte(wnHeader + "00006024 03 n 01 heterotroph 0 001 @ 00004475 n 0000 | an organism  \n"))
	f.Add([]byte("00177411 00 a 02 auspicious 0 beautiful(a) 0 000 | good; \"x\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		syns, err := ParseWordNetData("fuzz", "noun", data)
		if err != nil {
			return
		}
		for _, s := range syns {
			if len(s.Words) == 0 || !strings.HasPrefix(s.ID, "noun/") {
				t.Fatalf("synset %+v", s)
			}
		}
	})
}
