"""Check a folder written by `train-gpu` (trainer.ExportHF) with Hugging Face.

Usage: check_hf_export.py HF_DIR LOGITS_JSON

HF_DIR must load with BertForSequenceClassification.from_pretrained and
AutoTokenizer.from_pretrained, offline (run with HF_HUB_OFFLINE=1).
LOGITS_JSON is a list of {"text", "ids", "logits"} that our Go code computed
(token ids from our tokenizer, logits from our CPU encoder). For each text the
script tokenizes it alone (no padding), checks the ids are the same, runs the
model in eval mode (no dropout) in float32 and compares the logits.

Tolerance: |go - hf| <= 1e-5 + 1e-5*|hf|. Both sides compute in float32 (unit
roundoff 6e-8) with different summation orders and kernels (our blocked GEMM
and padded batch vs torch's per-text run); a tiny 2-layer d=32 model
accumulates O(100) roundings per logit, ~1e-6 worst case, so 1e-5 leaves a
10x margin while any wrong tensor name, transposition, q/k/v mix-up, missing
pooler or label order would be off by O(0.1). Prints OK and the max error.
"""
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
from transformers import AutoTokenizer, BertForSequenceClassification  # noqa: E402

ATOL = 1e-5
RTOL = 1e-5


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    hf_dir, logits_path = sys.argv[1], sys.argv[2]
    with open(logits_path) as f:
        recs = json.load(f)
    if not recs:
        sys.exit("check_hf_export: %s holds no texts" % logits_path)
    tok = AutoTokenizer.from_pretrained(hf_dir, local_files_only=True)
    model = BertForSequenceClassification.from_pretrained(
        hf_dir, local_files_only=True, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    cfg = model.config
    print("loaded %s: %d layers, d=%d, num_labels=%d, problem_type=%s, id2label=%s"
          % (hf_dir, cfg.num_hidden_layers, cfg.hidden_size, cfg.num_labels, cfg.problem_type, cfg.id2label))
    worst = 0.0
    failed = False
    for r in recs:
        enc = tok(r["text"], return_tensors="pt")
        ids = enc["input_ids"][0].tolist()
        if ids != r["ids"]:
            print("FAIL ids of %r: hf %s, go %s" % (r["text"], ids, r["ids"]))
            failed = True
            continue
        with torch.no_grad():
            logits = model(**enc).logits[0].tolist()
        if len(logits) != len(r["logits"]):
            print("FAIL %r: hf %d logits, go %d" % (r["text"], len(logits), len(r["logits"])))
            failed = True
            continue
        for h, g in zip(logits, r["logits"]):
            err = abs(h - g)
            worst = max(worst, err)
            if err > ATOL + RTOL * abs(h):
                failed = True
        print("%-45r hf %s go %s" % (r["text"], ["%.7f" % x for x in logits], ["%.7f" % x for x in r["logits"]]))
    print("max |go - hf| = %.3g over %d texts (tolerance %.0e + %.0e*|hf|)" % (worst, len(recs), ATOL, RTOL))
    if failed:
        print("FAIL")
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    main()
