#!/usr/bin/env python3
"""A "korean_ner"-style PyTorch checkpoint fixture: a tiny random ELECTRA encoder, a bidirectional LSTM,
a linear classifier and a pytorch-crf CRF in one nn.Module, saved as its raw state dict, and what
PyTorch computes with it.

Writes under tests/fixtures/:
  models/tiny-korean-ner/    model.pt (torch.save(model.state_dict()), torch's default zip format, tensors
                             only: electra.*, lstm.{weight,bias}_{ih,hh}_l0[_reverse], classifier.*,
                             crf.{start_transitions,end_transitions,transitions}); config.json (the
                             encoder's ElectraConfig.to_dict(), less the default id2label/label2id);
                             tokenizer.json (a byte copy of models/tiny-electra-ner's WordPiece
                             tokenizer); labels.txt (KLUE's 13 BIO labels in korean_ner's output order,
                             one per line)
  parity/tiny-korean-ner.safetensors  input_ids, attention_mask (int64, (4, n)), units (int64, (4, u):
                             the position of each character's first sub-word, -1 after the last) and
                             emissions (float32, (4, u, 13)) for four Korean sentences in one padded batch
  parity/tiny-korean-ner.json         sentences, chars (the non-space characters of each sentence, one
                             word each), labels, decoded (the label names of crf.decode's path over the
                             characters), argmax_differs (characters where that path differs from the
                             argmax of the emissions), crf_over

Tokens: one word per character, spaces dropped (seed 003's recipe, nerlab's char_units = "characters"):
each character is tokenized alone, tok(ch, add_special_tokens=False), and input_ids = [CLS] + every
character's pieces + [SEP], padded on the right with [PAD] (id 0). A character's first piece carries
its label. Emissions: the encoder's states at those first pieces, the BiLSTM over them (a packed
sequence, so each direction covers exactly the sentence's characters), the classifier; [CLS], [SEP]
and later pieces of a character take no part in the LSTM or the CRF, as in nerlab. Decoding:
crf.decode(emissions, mask) over the characters.

Weights: torch.manual_seed(0); ElectraModel's own initialization, then randn * 0.1 added to the encoder's
LayerNorm parameters and biases, the classifier weight scaled by CLASSIFIER_SCALE, and the CRF's start,
end and transition scores set to randn * CRF_SCALE, so that the Viterbi path differs from the per-token
argmax at some positions (asserted).

Run from the repository root (after scripts/make_token_classification_fixtures.py, whose tokenizer this
reuses):
  ~/.cache/nerlab-py/bin/pip install torch transformers safetensors pytorch-crf==0.7.2
  ~/.cache/nerlab-py/bin/python scripts/make_torch_crf_fixture.py
"""
import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn
from torchcrf import CRF
from transformers import ElectraConfig, ElectraModel, PreTrainedTokenizerFast

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures"
NAME = "tiny-korean-ner"
CLASSIFIER_SCALE = 10.0
CRF_SCALE = 1.0
LSTM_HIDDEN = 16
MIN_DIFFERS = 3

LABELS = ["B-DT", "I-DT", "B-LC", "I-LC", "B-OG", "I-OG", "B-PS", "I-PS", "B-QT", "I-QT", "B-TI", "I-TI", "O"]
SENTENCES = ["삼성전자 이재용 회장이 서울에서 기자회견을 열었다.",
             "경찰은 박씨의 딸(32)과 김모(33)씨 등 16명을 입건했다.",
             "2019년 3월 1일 오후 3시에 부산에서 만났다.",
             "KT는 10% 올랐다."]
CRF_OVER = "the characters (each one's first sub-word); [CLS], [SEP] and later pieces take no part"

WORDPIECE = dict(unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]",
                 mask_token="[MASK]")


class KoreanNer(nn.Module):  # the korean_ner project's layout
    def __init__(self, config, num_labels, lstm_hidden):
        super().__init__()
        self.electra = ElectraModel(config)
        self.lstm = nn.LSTM(config.hidden_size, lstm_hidden, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(0.1)
        self.classifier = nn.Linear(2 * lstm_hidden, num_labels)
        self.crf = CRF(num_labels, batch_first=True)

    def emissions(self, input_ids, attention_mask, units):
        h = self.electra(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        # the states at each character's first piece: (batch, characters, hidden)
        h = torch.gather(h, 1, units.clamp(min=0)[:, :, None].expand(-1, -1, h.shape[-1]))
        # pack so the backward LSTM starts at each sentence's own last character
        lengths = (units >= 0).sum(1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(h, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=h.shape[1])
        return self.classifier(self.dropout(out))


def perturb(m):
    with torch.no_grad():  # non-trivial LayerNorm parameters and biases, a classifier that varies, a real CRF
        for name, p in m.electra.named_parameters():
            if "LayerNorm" in name or "layer_norm" in name or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)
        m.classifier.weight.mul_(CLASSIFIER_SCALE)
        for p in (m.crf.start_transitions, m.crf.end_transitions, m.crf.transitions):
            p.copy_(torch.randn_like(p) * CRF_SCALE)


def encode(tok, sentences):
    unk, pad = tok.unk_token_id, tok.pad_token_id
    assert pad == 0, pad
    chars = [[c for c in s if c != " "] for s in sentences]
    rows, firsts = [], []
    for cs in chars:
        row, first = [tok.cls_token_id], []
        for c in cs:
            pieces = tok(c, add_special_tokens=False)["input_ids"]
            assert pieces, f"{c!r} has no piece"
            first.append(len(row))
            row += pieces
        rows.append(row + [tok.sep_token_id])
        firsts.append(first)
    n = max(len(r) for r in rows)
    u = max(len(f) for f in firsts)
    ids = torch.tensor([r + [pad] * (n - len(r)) for r in rows], dtype=torch.int64)
    mask = torch.tensor([[1] * len(r) + [0] * (n - len(r)) for r in rows], dtype=torch.int64)
    units = torch.tensor([f + [-1] * (u - len(f)) for f in firsts], dtype=torch.int64)
    return chars, ids, mask, units


def main():
    torch.manual_seed(0)
    wordpiece = FIX / "models" / "tiny-electra-ner" / "tokenizer.json"
    tok = PreTrainedTokenizerFast(tokenizer_file=str(wordpiece), **WORDPIECE)
    cfg = ElectraConfig(vocab_size=2000, embedding_size=32, hidden_size=64, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=128, max_position_embeddings=64,
                        hidden_act="gelu")
    cfg._attn_implementation = "eager"
    m = KoreanNer(cfg, len(LABELS), LSTM_HIDDEN).eval()
    perturb(m)

    d = FIX / "models" / NAME
    d.mkdir(parents=True, exist_ok=True)
    for f in d.iterdir():
        f.unlink()
    sd = m.state_dict()
    assert all(isinstance(v, torch.Tensor) for v in sd.values())
    torch.save(sd, d / "model.pt")
    # to_dict() fills in transformers' default id2label/label2id (LABEL_0, LABEL_1): not this model's labels
    cfg_dict = {k: v for k, v in cfg.to_dict().items() if k not in ("id2label", "label2id", "_attn_implementation")}
    assert cfg_dict["model_type"] == "electra", cfg_dict["model_type"]
    (d / "config.json").write_text(json.dumps(cfg_dict, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    shutil.copyfile(wordpiece, d / "tokenizer.json")
    (d / "labels.txt").write_text("".join(l + "\n" for l in LABELS), encoding="utf-8")

    chars, ids, mask, units = encode(tok, SENTENCES)
    umask = units >= 0
    with torch.no_grad():
        em = m.emissions(ids, mask, units).float().contiguous()
        paths = m.crf.decode(em, mask=umask)
    differs, unks = 0, 0
    decoded = []
    for b, path in enumerate(paths):
        n = int(umask[b].sum())
        assert len(path) == n, (b, len(path), n)
        argmax = em[b, :n].argmax(-1).tolist()
        diff = sum(p != a for p, a in zip(path, argmax))
        differs += diff
        unks += sum(int(ids[b, int(p)]) == tok.unk_token_id for p in units[b, :n])
        decoded.append([LABELS[i] for i in path])
        print(f"{NAME}: sentence {b}: {n} positions, CRF path differs from argmax at {diff}", file=sys.stderr)

    (FIX / "parity").mkdir(parents=True, exist_ok=True)
    save_file({"input_ids": ids, "attention_mask": mask, "units": units, "emissions": em},
              str(FIX / "parity" / f"{NAME}.safetensors"))
    out = {"sentences": SENTENCES, "chars": chars, "labels": LABELS, "decoded": decoded,
           "argmax_differs": differs, "crf_over": CRF_OVER}
    (FIX / "parity" / f"{NAME}.json").write_text(json.dumps(out, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{NAME}: keys " + ", ".join(f"{k} {tuple(v.shape)}" for k, v in sd.items()), file=sys.stderr)
    print(f"{NAME}: batch {tuple(ids.shape)}, {int(umask.sum())} characters ({unks} [UNK]), "
          f"CRF path differs from argmax at {differs}, labels on the path {sorted({l for s in decoded for l in s})}",
          file=sys.stderr)
    assert differs >= MIN_DIFFERS, f"CRF path too close to argmax ({differs}); raise CRF_SCALE"


if __name__ == "__main__":
    main()
