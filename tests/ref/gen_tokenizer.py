"""Goldens for model/tokenizer: Hugging Face BertTokenizerFast on real and crafted text.

Run by scripts/goldens.sh from the repository root, offline. Loads the
tokenizer from the local folder build/assets/all-MiniLM-L6-v2 and the texts
from build/assets/spam/*.jsonl (both made by `make assets`). Writes, into
tests/golden/tokenizer/:

  cases.jsonl.gz   one JSON object per line:
                   {"name", "config", "a", "b" (null for single texts),
                    "max_length" (0: no truncation), "ids", "type_ids", "mask"}
  batches.jsonl.gz {"name", "config", "a": [...], "b": [...] or null,
                    "max_length", "padding": "longest"|"max_length",
                    "ids": [[...]], "type_ids": [[...]], "mask": [[...]]}
  unicode.json     the normalizer and pre-tokenizer applied to every code
                   point (surrogates excluded) under the default config:
                   {"removed": [[lo, hi], ...], "cjk": [[lo, hi], ...],
                    "mapped": {"<cp>": "<output>"}, "punct": [[lo, hi], ...],
                    "space": [[lo, hi], ...]}
  meta.json        versions and counts

"config" names a tokenizer variant: "default" (as stored), "no_strip_accents"
(strip_accents=False), "cased" (do_lower_case=False) and "no_chinese"
(tokenize_chinese_chars=False), so the Go side checks every normalizer flag.
"""

import gzip
import json
import os
import sys
import unicodedata

import tokenizers
import transformers
from transformers import BertTokenizerFast

MODEL = "build/assets/all-MiniLM-L6-v2"
SPAM = "build/assets/spam"
OUT = "tests/golden/tokenizer"
MAX_LEN = 128

CONFIGS = {
    "default": {},
    "no_strip_accents": {"strip_accents": False},
    "cased": {"do_lower_case": False},
    "no_chinese": {"tokenize_chinese_chars": False},
}

CRAFTED = [
    "",
    " ",
    "\t\n\r ",
    "Hello, world!",
    "HELLO World",
    "unaffable",
    "Héllo café naïve résumé Ångström",
    "İstanbul ΟΔΟΣ straße ǅemal ﬁne",
    "e\u0301 a\u0300\u0301\u0302 combining marks \u0323\u0307 alone",
    "中文字符测试 日本語のテキスト 한국어 텍스트",
    "mixed中文and English漢字",
    "\U00020000\U0002A700\U0002B740\U0002B820\U0002CEB0 rare CJK ext",
    "emoji 😀 🥰 👍🏽 🇫🇷 ❤️ done",
    "control\x00chars\x01\x02\x7f\x1b[0m here\ufffd",
    "zero\u200bwidth\u200c\u200djoiner\ufeffbom\u2060wj",
    "soft\u00adhyphen and\u00a0nbsp and\u2003em\u3000ideographic",
    "vertical\x0btab form\x0cfeed nel\x85 line\u2028para\u2029end",
    "a" * 200,
    "x" * 100,
    "y" * 101,
    "ab" * 50 + " " + "é" * 100 + " " + "é" * 101,
    "!!!???...,,,;;;:::---___***",
    "«quotes» „German“ ‘single’ — dash – en … ellipsis ¿¡ ・ 、。",
    "(parens) [brackets] {braces} <angles> @at #hash $dollar %pct ^caret &amp ~tilde `tick` |pipe \\back /slash",
    "multiple    spaces\t\ttabs\n\nnewlines\r\n\r\ncrlf",
    "[CLS] [SEP] [MASK] [PAD] [UNK] inside text",
    "glued[SEP]special[MASK]tokens[unk]",
    "http://www.example.com/path?q=1&r=2#frag user@example.com",
    "$1,000,000.00 50% off!!! 3.14159 1e-10 0x1F",
    "don't can't won't it's y'all",
    "Ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３ ｶﾀｶﾅ",
    "ﬀ ﬃ ™ ℃ № ½ ² ① ㎏",
    "Ελληνικά Русский текст עברית العربية हिन्दी ไทย",
    "\U000f0000 private use \ue000\uf8ff",
    "\u0378 unassigned \U000e0001 tag \U000e007f",
    "\u0600\u0601 arabic number signs \u06dd \u070f \u08e2",
    "\u0345 ypogegrammeni \u0951\u0952 \u1ab0\u1dff",
    "word" + "\u0301" * 20,
    "zalgo" + "\u0301\u0316" * 20 + " over thirty marks",  # > 30 non-starters (stream-safe limit)
    "music \U0001D165\U0001D16D\U0001D165\U0001D167 Mc and Mn with ccc",
    "dives \U00011938 akuru \u0958 qa",  # post-Unicode-12 decomposition, a composition-excluded char
    "thisisaverylongwordwithoutanyspacesthatwillbesplitintomanywordpiecesbythetokenizer",
    "Subject: Re: [ILUG] WE'RE GONNA WIN!!!",
]

PAIRS = [
    ("", ""),
    ("short", ""),
    ("", "short"),
    ("Is this spam?", "Buy cheap meds now at www.example.com"),
    ("a " * 100, "b " * 100),
    ("a " * 200, "b " * 10),
    ("a " * 10, "b " * 200),
    ("a " * 63, "b " * 64),
    ("a " * 64, "b " * 63),
    ("a " * 125, "b"),
    ("a", "b " * 125),
    ("中文 " * 80, "English " * 80),
]


def load_spam():
    rows = []
    for split in ("train", "validation", "test"):
        with open(os.path.join(SPAM, split + ".jsonl"), encoding="utf-8") as f:
            rows.extend(json.loads(line) for line in f)
    return rows


def ranges(cps):
    out = []
    for c in sorted(cps):
        if out and out[-1][1] == c - 1:
            out[-1][1] = c
        else:
            out.append([c, c])
    return out


def unicode_table(tok):
    norm = tok.backend_tokenizer.normalizer
    pre = tok.backend_tokenizer.pre_tokenizer
    removed, cjk, punct, space, mapped = [], [], [], [], {}
    for c in range(0x110000):
        if 0xD800 <= c <= 0xDFFF:
            continue  # not encodable as UTF-8: no Python/Rust string holds them
        s = chr(c)
        o = norm.normalize_str(s)
        if o == "":
            removed.append(c)
        elif o == " " + s + " ":
            cjk.append(c)
        elif o != s:
            mapped[str(c)] = o
        # A punctuation character is split off as its own word; a white
        # space character splits words and disappears.
        words = [w for w, _ in pre.pre_tokenize_str("a" + s + "b")]
        if len(words) == 3:
            punct.append(c)
        elif words == ["a", "b"]:
            space.append(c)
    return {"removed": ranges(removed), "cjk": ranges(cjk), "mapped": mapped,
            "punct": ranges(punct), "space": ranges(space)}


def encode(tok, a, b, max_length):
    kw = {"truncation": "longest_first", "max_length": max_length} if max_length else {}
    if b is None:
        e = tok(a, **kw)
        return e["input_ids"], e["token_type_ids"], e["attention_mask"]
    # Pairs go through the batch call: transformers' single call
    # tokenizer(a, "") tests `if text_pair` and silently encodes a single
    # text when the second one is empty, while the batch call (what a
    # training loop uses) and the Rust tokenizer encode [CLS] a [SEP] [SEP].
    e = tok([a], [b], **kw)
    return e["input_ids"][0], e["token_type_ids"][0], e["attention_mask"][0]


def main():
    os.makedirs(OUT, exist_ok=True)
    toks = {name: BertTokenizerFast.from_pretrained(MODEL, **kw) for name, kw in CONFIGS.items()}
    tok = toks["default"]
    rows = load_spam()
    texts = [r["text"] for r in rows]
    if len(texts) < 5000:
        sys.exit("gen_tokenizer: want >= 5000 texts in %s, found %d" % (SPAM, len(texts)))

    cases = []

    def add(name, config, a, b, max_length):
        ids, tt, mask = encode(toks[config], a, b, max_length)
        cases.append({"name": name, "config": config, "a": a, "b": b, "max_length": max_length,
                      "ids": ids, "type_ids": tt, "mask": mask})

    # Real texts: every prepared SpamAssassin text, whole (all of its words
    # go through WordPiece) and truncated at 128; subject/body pairs at 128
    # (mostly one side truncated) and neighbouring texts as pairs at 128
    # (both sides truncated).
    for i, r in enumerate(rows):
        add("spam/%s/full" % r["id"], "default", r["text"], None, 0)
        add("spam/%s/trunc" % r["id"], "default", r["text"], None, MAX_LEN)
        subject, _, body = r["text"].partition("\n")
        add("spam/%s/subject-body" % r["id"], "default", subject, body, MAX_LEN)
        if i % 5 == 0:
            add("spam/%s/next-pair" % r["id"], "default", r["text"], texts[(i + 1) % len(texts)], MAX_LEN)
    # The other normalizer configurations on a slice of the real texts.
    for config in CONFIGS:
        if config == "default":
            continue
        for r in rows[:300]:
            add("spam/%s/%s" % (r["id"], config), config, r["text"], None, MAX_LEN)
    # Crafted texts under every configuration, whole and truncated short.
    for config in CONFIGS:
        for j, t in enumerate(CRAFTED):
            add("crafted/%d/%s" % (j, config), config, t, None, 0)
            add("crafted/%d/%s/trunc8" % (j, config), config, t, None, 8)
        for j, (a, b) in enumerate(PAIRS):
            for ml in (0, 3, 4, 5, 16, 17, MAX_LEN):
                add("pair/%d/%s/%d" % (j, config, ml), config, a, b, ml)
    # Every crafted text paired with the next one.
    for j in range(len(CRAFTED)):
        add("crafted-pair/%d" % j, "default", CRAFTED[j], CRAFTED[(j + 1) % len(CRAFTED)], 32)

    batches = []

    def add_batch(name, a, b, max_length, padding):
        kw = {"padding": padding}
        if max_length:
            kw.update(truncation="longest_first", max_length=max_length)
        e = tok(a, b, **kw) if b is not None else tok(a, **kw)
        batches.append({"name": name, "config": "default", "a": a, "b": b, "max_length": max_length,
                        "padding": padding, "ids": e["input_ids"], "type_ids": e["token_type_ids"],
                        "mask": e["attention_mask"]})

    add_batch("crafted/longest", CRAFTED, None, 0, "longest")
    add_batch("crafted/longest/64", CRAFTED, None, 64, "longest")
    add_batch("crafted/max_length/64", CRAFTED, None, 64, "max_length")
    add_batch("spam/max_length/128", texts[:64], None, MAX_LEN, "max_length")
    add_batch("spam/pairs/longest/128", texts[:32], texts[32:64], MAX_LEN, "longest")
    add_batch("short/longest", ["a", "b c d", "", "e f"], None, 0, "longest")

    with gzip.open(os.path.join(OUT, "cases.jsonl.gz"), "wt", encoding="utf-8", compresslevel=6) as f:
        for c in cases:
            f.write(json.dumps(c, ensure_ascii=False) + "\n")
    with gzip.open(os.path.join(OUT, "batches.jsonl.gz"), "wt", encoding="utf-8", compresslevel=6) as f:
        for c in batches:
            f.write(json.dumps(c, ensure_ascii=False) + "\n")
    with open(os.path.join(OUT, "unicode.json"), "w", encoding="utf-8") as f:
        json.dump(unicode_table(tok), f, ensure_ascii=True)
    meta = {
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "python_unicodedata": unicodedata.unidata_version,
        "model": MODEL,
        "texts": len(texts),
        "cases": len(cases),
        "batches": len(batches),
    }
    with open(os.path.join(OUT, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print("gen_tokenizer: %d cases, %d batches from %d real texts -> %s" % (len(cases), len(batches), len(texts), OUT))


if __name__ == "__main__":
    main()
