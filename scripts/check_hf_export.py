#!/usr/bin/env python3
"""Checks a `nerlab export --format hf` folder with Hugging Face transformers alone: does
AutoModelForTokenClassification give nerlab's tags and logits?

  nerlab eval --model RUN --data CORPUS --emissions nerlab.jsonl
  nerlab export --run RUN --out EXPORT_DIR
  ~/.cache/nerlab-py/bin/python scripts/check_hf_export.py EXPORT_DIR --nerlab nerlab.jsonl \
      [--out result.json] [--batch 64] [--threads 2] [--strict]

nerlab.jsonl is what `nerlab eval --emissions` writes: a first line {"labels": [...]} (the class
order, which must be the export's id2label order), then one line per sentence, {"tokens": [words],
"tags": [one per word], "logits": [[one float per class] or null, one row per word]}: nerlab's tags
and its logits at each word's first subword. (--words WORDS.jsonl, one JSON list of words per line,
overrides the tokens.)

Each sentence is tokenized with is_split_into_words=True, truncation=False (batches sorted by
length, right-padded with the pad id, with an attention mask) and run in float32; a word's row is
the logits at its first subword (word_ids()), its tag id2label[argmax]. With crf.safetensors
(pytorch-crf's start_transitions, end_transitions, transitions[from, to]) the tags are instead
the Viterbi path over the sentence's rows, computed as torchcrf.CRF._viterbi_decode does. Words
with no subword have no row: they are reported and left out (of the CRF's sequence too).
Exit status 1 when a tag differs, the largest absolute logit difference exceeds 1e-4, or the
files do not match. A BiLSTM head (head.safetensors) is not checked: exit 0, or 1 with --strict.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file
from transformers import AutoModelForTokenClassification, AutoTokenizer

TOLERANCE = 1e-4


def viterbi(em, start, end, trans):
    """torchcrf.CRF._viterbi_decode for one unmasked sequence: em (words, C), float32."""
    score = start + em[0]
    history = []
    for t in range(1, len(em)):
        nxt = score[:, None] + trans + em[t][None, :]  # (from, to)
        history.append(nxt.argmax(axis=0))
        score = nxt.max(axis=0)
    best = [int((score + end).argmax())]
    for idx in reversed(history):
        best.append(int(idx[best[-1]]))
    return best[::-1]


def finish(summary, out, ok):
    summary["pass"] = ok
    if out:
        Path(out).write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("export_dir")
    ap.add_argument("--words")
    ap.add_argument("--nerlab", required=True)
    ap.add_argument("--out")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--strict", action="store_true", help="exit 1 when the folder cannot be checked")
    args = ap.parse_args()
    d = Path(args.export_dir)
    torch.set_num_threads(args.threads)
    read = lambda p: [json.loads(l) for l in open(p, encoding="utf-8") if l.strip()]
    nerlab = read(args.nerlab)
    header = nerlab.pop(0)["labels"] if nerlab and "labels" in nerlab[0] else None
    sentences = read(args.words) if args.words else [line["tokens"] for line in nerlab]
    summary = {"export": str(d), "sentences": len(sentences), "nerlab_sentences": len(nerlab)}
    if (d / "head.safetensors").exists():
        print("BiLSTM head: not checked by this script")
        summary["checked"] = False
        return finish(summary, args.out, not args.strict)
    if len(sentences) != len(nerlab):
        print(f"{args.words} has {len(sentences)} sentences, {args.nerlab} {len(nerlab)}")
        return finish(summary, args.out, False)

    tok = AutoTokenizer.from_pretrained(d)
    model = AutoModelForTokenClassification.from_pretrained(d).float().eval()
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    if header is not None and header != labels:
        print(f"nerlab's class order {header} is not the export's id2label {labels}")
        return finish(summary, args.out, False)
    crf = load_file(str(d / "crf.safetensors")) if (d / "crf.safetensors").exists() else None
    encs = [tok(words, is_split_into_words=True, truncation=False) for words in sentences]
    firsts = []  # per sentence, per word: the position of its first subword, or None
    for words, e in zip(sentences, encs):
        f = [None] * len(words)
        for t, w in enumerate(e.word_ids()):
            if w is not None and f[w] is None:
                f[w] = t
        firsts.append(f)
    too_long = [i for i, e in enumerate(encs) if len(e["input_ids"]) > tok.model_max_length]
    if too_long:  # no truncation: nerlab would have split these
        print(f"{len(too_long)} sentences exceed the tokenizer's model_max_length: {too_long[:10]}")
        return finish(summary | {"too_long": too_long}, args.out, False)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    rows = [None] * len(sentences)
    order = sorted(range(len(encs)), key=lambda i: len(encs[i]["input_ids"]))
    with torch.no_grad():
        for s in range(0, len(order), args.batch):
            idx = order[s:s + args.batch]
            n = max(len(encs[i]["input_ids"]) for i in idx)
            ids = torch.tensor([encs[i]["input_ids"] + [pad] * (n - len(encs[i]["input_ids"])) for i in idx])
            mask = torch.tensor([[1] * len(encs[i]["input_ids"]) + [0] * (n - len(encs[i]["input_ids"])) for i in idx])
            logits = model(input_ids=ids, attention_mask=mask).logits.float().numpy()
            for r, i in enumerate(idx):
                rows[i] = logits[r, [t for t in firsts[i] if t is not None]]

    words_n, max_diff, agree_argmax, agree_crf = 0, 0.0, 0, 0
    diffs, no_subword, mismatched = [], [], []
    for i, (words, ref) in enumerate(zip(sentences, nerlab)):
        if len(ref["tags"]) != len(words) or len(ref["logits"]) != len(words) \
                or any(r is not None and len(r) != len(labels) for r in ref["logits"]) \
                or any((r is None) != (t is None) for r, t in zip(ref["logits"], firsts[i])):
            mismatched.append(i)
            continue
        ref_logits = np.asarray([r if r is not None else [np.nan] * len(labels) for r in ref["logits"]],
                                dtype=np.float64).reshape(len(words), len(labels))
        words_n += len(words)
        keep = [j for j, t in enumerate(firsts[i]) if t is not None]
        no_subword += [{"sentence": i, "word": j, "text": words[j]} for j, t in enumerate(firsts[i]) if t is None]
        if not keep:
            continue
        em = rows[i]
        max_diff = max(max_diff, float(np.abs(em - ref_logits[keep]).max()))
        argmax = [labels[k] for k in em.argmax(axis=1)]
        decoded = None
        if crf is not None:
            decoded = [labels[k] for k in viterbi(em, crf["start_transitions"], crf["end_transitions"], crf["transitions"])]
        ours = decoded if decoded is not None else argmax
        for k, j in enumerate(keep):
            agree_argmax += argmax[k] == ref["tags"][j]
            agree_crf += decoded is not None and decoded[k] == ref["tags"][j]
            if ours[k] != ref["tags"][j]:
                diffs.append({"sentence": i, "word": j, "text": words[j], "nerlab": ref["tags"][j], "transformers": ours[k]})

    compared = words_n - len(no_subword)
    summary.update({
        "words": words_n, "labels": labels, "decoder": "crf (Viterbi)" if crf is not None else "argmax",
        "mismatched_sentences": mismatched, "tag_differences": len(diffs), "examples": diffs[:10],
        "argmax_agreement": agree_argmax, "crf_agreement": agree_crf if crf is not None else None,
        "compared_words": compared, "max_abs_logit_diff": max_diff, "tolerance": TOLERANCE,
        "words_without_subword": len(no_subword), "no_subword_examples": no_subword[:10],
    })
    print(f"{d}: {len(sentences)} sentences, {words_n} words, {len(labels)} labels, tags by {summary['decoder']}")
    if mismatched:
        print(f"  {len(mismatched)} sentences whose nerlab tags or logits do not fit the words/labels: {mismatched[:10]}")
    print(f"  argmax tags agree with nerlab on {agree_argmax}/{compared} words")
    if crf is not None:
        print(f"  CRF tags agree with nerlab on {agree_crf}/{compared} words")
    print(f"  max |logit difference| {max_diff:.3g} (tolerance {TOLERANCE:g})")
    if no_subword:
        print(f"  {len(no_subword)} words have no subword (left out), first: {no_subword[:3]}")
    for x in diffs[:10]:
        print(f"  differs: sentence {x['sentence']} word {x['word']} {x['text']!r}: nerlab {x['nerlab']}, transformers {x['transformers']}")
    ok = not diffs and not mismatched and max_diff <= TOLERANCE
    print("  PASS" if ok else "  FAIL")
    return finish(summary, args.out, ok)


if __name__ == "__main__":
    sys.exit(main())
