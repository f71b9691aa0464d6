#!/usr/bin/env python3
"""Token-classification fixtures, made with Hugging Face transformers (PyTorch): tiny randomly
initialized checkpoints in transformers' own layout, and what transformers computes with them.

Writes under tests/fixtures/:
  models/tiny-bert-ner/      BertForTokenClassification, dslim/bert-base-NER's nine labels in its
                             order, model.safetensors; the WordPiece tokenizer of models/tiny-electra
  models/tiny-electra-ner/   ElectraForTokenClassification (embedding_size 32 < hidden_size 64), KLUE's
                             six types in BIOES with O last (25 labels), weights only as pytorch_model.bin
  models/tiny-xlmr-ner/      XLMRobertaForTokenClassification, seven outputs under transformers' default
                             names LABEL_0..LABEL_6; the Unigram tokenizer of models/tiny-xlmr
  models/tiny-xlmr-ner.labels.toml  the label map for those default names
  parity/<name>.safetensors  input_ids, attention_mask (int64, (4, n)) and logits (float32, (4, n, C))
                             for two English and two Korean sentences in one right-padded batch
  parity/<name>.json         sentences (word lists), word_ids (-1 at special tokens and padding),
                             labels (id2label in id order), first_subword (the label of the argmax
                             logits at each word's first subword: token classification with
                             aggregation "first" on pre-split words)

Each folder holds tokenizer.json (rewritten without indentation) and tokenizer_config.json
(tok.save_pretrained), so AutoTokenizer.from_pretrained(dir) works on it; run() loads it that way. LayerNorm parameters and biases get randn * 0.1 and
the classifier weight is scaled by CLASSIFIER_SCALE so that the argmax label varies between tokens.

The calls: tok(words, is_split_into_words=True) per sentence, padded by hand with the tokenizer's pad
id; AutoModelForTokenClassification.from_pretrained(dir, attn_implementation="eager").eval(), then
model(input_ids=..., attention_mask=...).logits in float32 under torch.no_grad().

Run from the repository root (after scripts/make_model_fixtures.py, whose tokenizers these reuse):
  ~/.cache/nerlab-py/bin/pip install torch transformers safetensors
  ~/.cache/nerlab-py/bin/python scripts/make_token_classification_fixtures.py
"""
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import (AutoModelForTokenClassification, AutoTokenizer, BertConfig,
                          BertForTokenClassification, ElectraConfig, ElectraForTokenClassification,
                          PreTrainedTokenizerFast, XLMRobertaConfig, XLMRobertaForTokenClassification)

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures"
KEEP = ("config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json",
        "tokenizer_config.json", "special_tokens_map.json")
CLASSIFIER_SCALE = 20.0

ENGLISH = [["Seoul", "is", "the", "capital", "of", "South", "Korea", "."],
           ["Samsung", "Electronics", "announced", "new", "phones", "in", "Suwon", "on", "Monday", "."]]
KOREAN = [["삼성전자", "이재용", "회장이", "서울에서", "기자회견을", "열었다", "."],
          ["경찰은", "박씨의", "딸(32)과", "김모(33)씨", "등", "16명을", "입건했다", "."]]

BERT_NER = ["O", "B-MISC", "I-MISC", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
KLUE_BIOES = [f"{p}-{ty}" for ty in ["DT", "LC", "OG", "PS", "QT", "TI"] for p in "BIES"] + ["O"]
XLMR_LABELS_TOML = """# The label map for tiny-xlmr-ner, whose config.json names its outputs LABEL_0..LABEL_6.
[labels]
LABEL_0 = "O"
LABEL_1 = "B-PER"
LABEL_2 = "I-PER"
LABEL_3 = "B-LOC"
LABEL_4 = "I-LOC"
LABEL_5 = "B-ORG"
LABEL_6 = "I-ORG"
"""

WORDPIECE = dict(unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]",
                 mask_token="[MASK]")
UNIGRAM = dict(bos_token="<s>", eos_token="</s>", cls_token="<s>", sep_token="</s>", unk_token="<unk>",
               pad_token="<pad>", mask_token="<mask>")


def labelled(labels):
    return dict(id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)})


def perturb(m):
    with torch.no_grad():  # non-trivial LayerNorm parameters and biases, and a classifier that varies
        for name, p in m.named_parameters():
            if "LayerNorm" in name or "layer_norm" in name or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)
        m.classifier.weight.mul_(CLASSIFIER_SCALE)


def encode(tok, sentences, pad_id):
    encs = [tok(words, is_split_into_words=True) for words in sentences]
    n = max(len(e["input_ids"]) for e in encs)
    ids = torch.tensor([e["input_ids"] + [pad_id] * (n - len(e["input_ids"])) for e in encs])
    mask = torch.tensor([[1] * len(e["input_ids"]) + [0] * (n - len(e["input_ids"])) for e in encs])
    word_ids = [[-1 if w is None else w for w in e.word_ids()] + [-1] * (n - len(e["input_ids"])) for e in encs]
    return ids, mask, word_ids


def run(d, name, sentences, pad_id):
    tok = AutoTokenizer.from_pretrained(d)
    assert tok.pad_token_id == pad_id, (name, tok.pad_token_id)
    m = AutoModelForTokenClassification.from_pretrained(d, attn_implementation="eager").eval()
    ids, mask, word_ids = encode(tok, sentences, pad_id)
    with torch.no_grad():
        logits = m(input_ids=ids, attention_mask=mask).logits.float().contiguous()
    labels = [m.config.id2label[i] for i in range(m.config.num_labels)]
    first = []
    for b, words in enumerate(sentences):
        starts = [word_ids[b].index(w) for w in range(len(words))]  # raises if a word has no subword
        first.append([labels[int(logits[b, t].argmax())] for t in starts])
    (FIX / "parity").mkdir(parents=True, exist_ok=True)
    save_file({"input_ids": ids.to(torch.int64), "attention_mask": mask.to(torch.int64), "logits": logits},
              str(FIX / "parity" / f"{name}.safetensors"))
    out = {"sentences": sentences, "word_ids": word_ids, "labels": labels, "first_subword": first}
    (FIX / "parity" / f"{name}.json").write_text(json.dumps(out, ensure_ascii=False) + "\n", encoding="utf-8")
    distinct = sorted({l for s in first for l in s})
    print(f"{name}: batch {tuple(ids.shape)}, {len(labels)} labels, first-subword predictions {distinct}",
          file=sys.stderr)
    assert len(distinct) >= 3, f"{name}: too few distinct labels; raise CLASSIFIER_SCALE"


def save(m, tok, d, safetensors=True):
    d.mkdir(parents=True, exist_ok=True)
    for f in d.iterdir():
        f.unlink()
    m.save_pretrained(d)
    if not safetensors:  # transformers 5 has no safe_serialization=False: pickle the same state dict
        torch.save(m.state_dict(), d / "pytorch_model.bin")
        (d / "model.safetensors").unlink()
    tok.save_pretrained(d)
    t = json.loads((d / "tokenizer.json").read_text(encoding="utf-8"))  # compact: it is committed
    (d / "tokenizer.json").write_text(json.dumps(t, ensure_ascii=False), encoding="utf-8")


def main():
    torch.manual_seed(0)
    sentences = ENGLISH + KOREAN
    wordpiece = FIX / "models" / "tiny-electra" / "tokenizer.json"
    unigram = FIX / "models" / "tiny-xlmr" / "tokenizer.json"

    # BERT with dslim/bert-base-NER's labels.
    d = FIX / "models" / "tiny-bert-ner"
    cfg = BertConfig(vocab_size=2000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=128, max_position_embeddings=64, hidden_act="gelu", **labelled(BERT_NER))
    m = BertForTokenClassification(cfg).eval()
    perturb(m)
    save(m, PreTrainedTokenizerFast(tokenizer_file=str(wordpiece), **WORDPIECE), d)
    run(d, "tiny-bert-ner", sentences, pad_id=0)

    # ELECTRA (with an embedding projection) with KLUE's labels in BIOES, O last, as pytorch_model.bin.
    d = FIX / "models" / "tiny-electra-ner"
    cfg = ElectraConfig(vocab_size=2000, embedding_size=32, hidden_size=64, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=128, max_position_embeddings=64,
                        hidden_act="gelu", **labelled(KLUE_BIOES))
    m = ElectraForTokenClassification(cfg).eval()
    perturb(m)
    save(m, PreTrainedTokenizerFast(tokenizer_file=str(wordpiece), **WORDPIECE), d, safetensors=False)
    run(d, "tiny-electra-ner", sentences, pad_id=0)

    # XLM-R with transformers' default label names, and a label map beside it.
    d = FIX / "models" / "tiny-xlmr-ner"
    cfg = XLMRobertaConfig(vocab_size=3001, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=128, max_position_embeddings=66, type_vocab_size=1,
                           pad_token_id=1, bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5, num_labels=7)
    m = XLMRobertaForTokenClassification(cfg).eval()
    perturb(m)
    save(m, PreTrainedTokenizerFast(tokenizer_file=str(unigram), **UNIGRAM), d)
    (FIX / "models" / "tiny-xlmr-ner.labels.toml").write_text(XLMR_LABELS_TOML, encoding="utf-8")
    run(d, "tiny-xlmr-ner", sentences, pad_id=1)

    for name in ("tiny-bert-ner", "tiny-electra-ner", "tiny-xlmr-ner"):
        for f in (FIX / "models" / name).iterdir():
            if f.name not in KEEP:
                f.unlink()


if __name__ == "__main__":
    main()
