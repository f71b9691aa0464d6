#!/usr/bin/env python3
"""Reference scores for tests/reference_scores.rs, made once with the reference implementations.

Perturbs the gold tags of KLUE-NER dev and WikiANN-ko dev with a seeded RNG (boundary shifts, type
swaps, missed and spurious spans, invalid `I-` after `O`), then scores each perturbation with:

  seqeval 1.2.2       precision_recall_fscore_support(gold, pred, average=None|micro|macro|weighted)
                      in the default (conlleval) mode, and with mode="strict", scheme=IOB2
  scikit-learn 1.9.1  f1_score(gold_chars, pred_chars, labels=L, average="macro", zero_division=True)
                      with and without "O" in L (KLUE's character F1; KLUE dev only)
  nervaluate 1.2.1    Evaluator(gold, pred, tags=<every type>, loader="list").evaluate()

KLUE is scored on its non-space characters, as KLUE's own scorer does (and as nerlab's scoring view
does). Only the edits are stored (sentence, token index in the file, new tag), never the corpus.

Run (from the repository root; writes tests/fixtures/reference_scores.json):
  python3 -m venv ~/.cache/nerlab-py
  ~/.cache/nerlab-py/bin/pip install seqeval==1.2.2 nervaluate==1.2.1 scikit-learn==1.9.1
  ~/.cache/nerlab-py/bin/python scripts/make_reference_scores.py ../shared/data
"""
import json
import random
import sys
from importlib.metadata import version
from pathlib import Path

from nervaluate import Evaluator
from seqeval.metrics.sequence_labeling import get_entities
from seqeval.metrics.sequence_labeling import precision_recall_fscore_support as prfs_default
from seqeval.metrics.v1 import precision_recall_fscore_support as prfs_strict
from seqeval.metrics.v1 import unique_labels
from seqeval.scheme import IOB2
from sklearn.metrics import f1_score


def read_columns(path, klue):
    """Sentences as (tokens, tags) lists; KLUE comment lines skipped."""
    sents, toks, tags = [], [], []
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if klue and line.startswith("##"):
            continue
        if line == "" or (not klue and not line.strip()):
            if toks:
                sents.append((toks, tags))
                toks, tags = [], []
            continue
        tok, tag = line.split("\t")
        toks.append(tok)
        tags.append(tag)
    if toks:
        sents.append((toks, tags))
    return sents


def spans(tags):
    """Strict IOB2 spans (start, end exclusive, type) of a valid gold sequence."""
    out, i = [], 0
    while i < len(tags):
        if tags[i].startswith("B-"):
            ty, j = tags[i][2:], i + 1
            while j < len(tags) and tags[j] == "I-" + ty:
                j += 1
            out.append((i, j, ty))
            i = j
        else:
            i += 1
    return out


def perturb(tags, types, rng, rates):
    """A perturbed copy of one sentence's tags (the scoring view)."""
    pred = list(tags)
    n = len(tags)
    for start, end, ty in spans(tags):
        r = rng.random()
        acc = 0.0
        for kind, p in rates.items():
            acc += p
            if r < acc:
                break
        else:
            continue
        if kind == "type":
            new = rng.choice([t for t in types if t != ty])
            pred[start] = "B-" + new
            for k in range(start + 1, end):
                pred[k] = "I-" + new
        elif kind == "missed":
            for k in range(start, end):
                pred[k] = "O"
        elif kind == "boundary":
            move = rng.choice(["grow_end", "shrink_end", "grow_start", "shrink_start"])
            if move == "grow_end" and end < n and tags[end] == "O":
                pred[end] = "I-" + ty
            elif move == "shrink_end" and end - start > 1:
                pred[end - 1] = "O"
            elif move == "grow_start" and start > 0 and tags[start - 1] == "O":
                pred[start - 1] = "B-" + ty
                pred[start] = "I-" + ty
            elif move == "shrink_start" and end - start > 1:
                pred[start] = "O"
                pred[start + 1] = "B-" + ty
        elif kind == "invalid":
            pred[start] = "I-" + ty  # I- after O (or after another entity)
    # Spurious spans and stray I- tags on O tokens.
    for k in range(n):
        if pred[k] == "O" and tags[k] == "O":
            x = rng.random()
            if x < rates["spurious"]:
                ty = rng.choice(types)
                pred[k] = "B-" + ty
                if k + 1 < n and tags[k + 1] == "O" and rng.random() < 0.5:
                    pred[k + 1] = "I-" + ty
            elif x < rates["spurious"] + rates["stray"]:
                pred[k] = "I-" + rng.choice(types)
    return pred


def seqeval_scores(gold, pred, strict):
    """What seqeval's f1_score/classification_report compute: in strict mode they call
    seqeval.metrics.v1.precision_recall_fscore_support(..., scheme=IOB2), otherwise
    seqeval.metrics.sequence_labeling.precision_recall_fscore_support."""
    if strict:
        names = unique_labels(gold, pred, IOB2)

        def prfs(average):
            return prfs_strict(gold, pred, average=average, zero_division=0, scheme=IOB2)
    else:
        names = sorted({t for t, _, _ in get_entities(gold)} | {t for t, _, _ in get_entities(pred)})

        def prfs(average):
            return prfs_default(gold, pred, average=average, zero_division=0)

    out = {
        "per_type": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(names, *prfs(None))
        }
    }
    for avg in ("micro", "macro", "weighted"):
        p, r, f, _ = prfs(avg)
        out[avg] = {"precision": float(p), "recall": float(r), "f1": float(f)}
    return out


def char_scores(gold, pred):
    g = [t for s in gold for t in s]
    p = [t for s in pred for t in s]
    types = {t[2:] for t in g + p if t != "O"}
    labels = sorted({"O"} | set(g) | set(p) | {f"B-{t}" for t in types} | {f"I-{t}" for t in types})
    with_o = f1_score(g, p, labels=labels, average="macro", zero_division=True)
    without_o = f1_score(g, p, labels=[l for l in labels if l != "O"], average="macro", zero_division=True)
    return {"macro_f1_with_o": float(with_o), "macro_f1_without_o": float(without_o)}


def semeval_scores(gold, pred):
    types = sorted({t[2:] for s in gold + pred for t in s if t != "O"})
    res = Evaluator(gold, pred, tags=types, loader="list").evaluate()
    keys = ("correct", "incorrect", "partial", "missed", "spurious", "precision", "recall", "f1")

    def dump(scenarios):
        return {name: {k: getattr(r, k) for k in keys} for name, r in scenarios.items()}

    return {
        "overall": dump(res["overall"]),
        "per_type": {ty: dump(sc) for ty, sc in res["entities"].items()},
    }


def case(name, rel, sents, klue, seed, rates):
    rng = random.Random(seed)
    # The scoring view: KLUE drops space characters.
    keep = [[i for i, tok in enumerate(toks) if not (klue and tok.strip() == "")] for toks, _ in sents]
    gold = [[tags[i] for i in k] for (_, tags), k in zip(sents, keep)]
    types = sorted({t[2:] for s in gold for t in s if t != "O"})
    pred = [perturb(g, types, rng, rates) for g in gold]
    tag_table = sorted({t for s in pred for t in s})
    edits = []
    for s, (g, p, k) in enumerate(zip(gold, pred, keep)):
        for v, (gt, pt) in enumerate(zip(g, p)):
            if gt != pt:
                edits.append([s, k[v], tag_table.index(pt)])
    out = {
        "name": name,
        "corpus": rel,
        "seed": seed,
        "rates": rates,
        "tags": tag_table,
        "edits": edits,
        "strict": seqeval_scores(gold, pred, strict=True),
        "conlleval": seqeval_scores(gold, pred, strict=False),
        "semeval": semeval_scores(gold, pred),
    }
    if klue:
        out["char"] = char_scores(gold, pred)
    print(f"{name}: {len(edits)} edited tags, strict micro F1 {out['strict']['micro']['f1']:.4f}", file=sys.stderr)
    return out


def main():
    shared = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data")
    corpora = [
        ("klue", "klue-ner/klue-ner-v1.1_dev.tsv", True),
        ("wikiann-ko", "wikiann/xtreme-panx/dev-ko.tsv", False),
    ]
    mixes = [
        ("light", 1, {"type": 0.04, "missed": 0.04, "boundary": 0.05, "invalid": 0.02, "spurious": 0.003, "stray": 0.002}),
        ("heavy", 2, {"type": 0.12, "missed": 0.10, "boundary": 0.15, "invalid": 0.08, "spurious": 0.02, "stray": 0.01}),
    ]
    cases = []
    for prefix, rel, klue in corpora:
        sents = read_columns(shared / rel, klue)
        for mix, seed, rates in mixes:
            cases.append(case(f"{prefix}-{mix}", rel, sents, klue, seed, rates))
    fixture = {
        "generator": "scripts/make_reference_scores.py",
        "versions": {p: version(p) for p in ("seqeval", "nervaluate", "scikit-learn", "numpy")},
        "cases": cases,
    }
    path = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "reference_scores.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(fixture, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"wrote {path} ({path.stat().st_size} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
