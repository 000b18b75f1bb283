"""Check an ONNX model written by `train-gpu export --format onnx`
(interop/onnx) with ONNX's checker and ONNX Runtime.

Usage:
  check_onnx.py MODEL.onnx batches INPUT.json OUT.json
  check_onnx.py MODEL.onnx texts INPUT.jsonl TOKENIZER_DIR MAX_LENGTH OUT.json

`batches`: INPUT.json is a list of {"input_ids", "attention_mask",
"token_type_ids"} (each a B x T list of ints), the token ids the Go test fed
its own model. `texts`: INPUT.jsonl has a "text" per line; the texts are
tokenized with BertTokenizerFast from TOKENIZER_DIR (truncation at
MAX_LENGTH, padding to the longest of each batch of 64), as a user of the
exported model would.

Runs onnx.checker.check_model(full_check=True) (which also runs shape
inference), then ONNX Runtime's CPU provider, and writes {"logits": [one
list per example, in input order], "checker": "ok", "onnx": version,
"onnxruntime": version} to OUT.json. The comparison with our logits is the
Go test's. Exits non-zero when the checker refuses the model.
"""
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402

NAMES = ("input_ids", "attention_mask", "token_type_ids")


def batches_from_texts(path, tok_dir, max_len):
    from transformers import BertTokenizerFast

    tok = BertTokenizerFast.from_pretrained(tok_dir)
    with open(path, encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f if line.strip()]
    for i in range(0, len(texts), 64):
        enc = tok(texts[i:i + 64], max_length=max_len, truncation=True, padding="longest", return_tensors="np")
        yield {k: enc[k] for k in NAMES}


def main():
    if len(sys.argv) < 5:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    model, mode = sys.argv[1], sys.argv[2]
    onnx.checker.check_model(model, full_check=True)
    if mode == "batches":
        with open(sys.argv[3]) as f:
            batches = json.load(f)
        out_path = sys.argv[4]
    elif mode == "texts":
        batches = batches_from_texts(sys.argv[3], sys.argv[4], int(sys.argv[5]))
        out_path = sys.argv[6]
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == list(NAMES), [i.name for i in sess.get_inputs()]
    assert [o.name for o in sess.get_outputs()] == ["logits"], [o.name for o in sess.get_outputs()]
    logits = []
    for b in batches:
        feed = {k: np.asarray(b[k], dtype=np.int64) for k in NAMES}
        logits.extend(sess.run(["logits"], feed)[0].astype(np.float64).tolist())
    with open(out_path, "w") as f:
        json.dump({"logits": logits, "checker": "ok", "onnx": onnx.__version__, "onnxruntime": ort.__version__}, f)
    print(f"checker ok; {len(logits)} examples")


if __name__ == "__main__":
    main()
