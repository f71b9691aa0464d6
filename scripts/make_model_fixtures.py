#!/usr/bin/env python3
"""Parity fixtures for tests/model_parity.rs, made with Hugging Face transformers (PyTorch).

Writes under tests/fixtures/:
  models/tiny-electra/   a randomly initialized ElectraForMaskedLM with embedding_size 32 <
                         hidden_size 64 (so `embeddings_project` is exercised), WordPiece vocabulary
                         cut to 2,000 tokens of splade-tiny-bert-mlm's; also as pytorch_model.bin
  models/tiny-xlmr/      a randomly initialized XLMRobertaForMaskedLM, SentencePiece (Unigram)
                         vocabulary cut to 3,000 pieces of multilingual-e5-small's, plus <mask>
  parity/<name>.safetensors  for each model and batch: input_ids, attention_mask, transformers'
                         last hidden state, MLM logits (all columns, or 1,024 sampled columns for
                         large vocabularies: logits_cols holds which) and layer-1 attention probabilities
  parity/e5-small-ko.safetensors  multilingual-e5-small on Korean (only when the model is present)

The calls: AutoModelForMaskedLM / BertModel .from_pretrained(dir).eval(), then
model(input_ids, attention_mask, output_hidden_states=True, output_attentions=True) in float32,
with attn_implementation="eager" so attention probabilities are returned.

Run from the repository root:
  ~/.cache/nerlab-py/bin/pip install torch transformers safetensors
  ~/.cache/nerlab-py/bin/python scripts/make_model_fixtures.py ../shared/models ~/.cache/ner-models
"""
import copy
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import (AutoModelForMaskedLM, BertModel, ElectraConfig, ElectraForMaskedLM,
                          PreTrainedTokenizerFast, XLMRobertaConfig, XLMRobertaForMaskedLM)

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures"

ENGLISH = ["Seoul is the capital of South Korea.", "Samsung Electronics announced new phones in Suwon on Monday."]
MIXED = ["Lee Jae-yong visited Seoul.", "삼성전자 이재용 회장이 서울에서 기자회견을 열었다."]
KOREAN = ["삼성전자 이재용 회장이 서울에서 기자회견을 열었다.", "경찰은 또 성매매 알선 자금을 관리한 박씨의 딸(32)과 성매매 여성 김모(33)씨 등 16명을 같은 혐의로 불구속 입건했다."]


def cut_wordpiece(src, dst, keep):
    t = json.loads(Path(src).read_text(encoding="utf-8"))
    vocab = {tok: i for tok, i in t["model"]["vocab"].items() if i < keep}
    t["model"]["vocab"] = vocab
    t["padding"] = None
    t["truncation"] = None
    Path(dst).write_text(json.dumps(t, ensure_ascii=False), encoding="utf-8")


def cut_unigram(src, dst, keep):
    t = json.loads(Path(src).read_text(encoding="utf-8"))
    t["model"]["vocab"] = t["model"]["vocab"][:keep]
    mask = next(a for a in t["added_tokens"] if a["content"] == "<mask>")
    mask["id"] = keep
    t["added_tokens"] = [a for a in t["added_tokens"] if a["id"] <= keep]
    t["padding"] = None
    t["truncation"] = None
    Path(dst).write_text(json.dumps(t, ensure_ascii=False), encoding="utf-8")


def run(model, tok, texts, name, max_cols=None, pad_id=0):
    enc = [tok(t)["input_ids"] for t in texts]
    n = max(map(len, enc))
    ids = torch.tensor([e + [pad_id] * (n - len(e)) for e in enc])
    mask = torch.tensor([[1] * len(e) + [0] * (n - len(e)) for e in enc])
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True, output_attentions=True)
    tensors = {
        "input_ids": ids.to(torch.int64),
        "attention_mask": mask.to(torch.int64),
        "hidden": out.hidden_states[-1].float().contiguous(),
        "attention_layer1": out.attentions[1].float().contiguous(),
    }
    if hasattr(out, "logits"):
        logits = out.logits.float()
        if max_cols and logits.shape[-1] > max_cols:
            g = torch.Generator().manual_seed(7)
            cols = torch.randperm(logits.shape[-1], generator=g)[:max_cols].sort().values
            logits = logits[..., cols]
            tensors["logits_cols"] = cols.to(torch.int64)
        tensors["logits"] = logits.contiguous()
    (FIX / "parity").mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(FIX / "parity" / f"{name}.safetensors"))
    print(f"{name}: batch {tuple(ids.shape)}", file=sys.stderr)


def main():
    shared = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/models")
    cache = Path(sys.argv[2] if len(sys.argv) > 2 else Path.home() / ".cache/ner-models")
    torch.manual_seed(0)

    # splade-tiny-bert-mlm: the real pretrained BERT with an MLM head.
    splade = shared / "splade-tiny-bert-mlm"
    tok = PreTrainedTokenizerFast(tokenizer_file=str(splade / "tokenizer.json"))
    m = AutoModelForMaskedLM.from_pretrained(splade, attn_implementation="eager").eval()
    run(m, tok, ENGLISH, "splade-tiny", max_cols=1024)

    # A tiny ELECTRA with an embedding projection.
    d = FIX / "models" / "tiny-electra"
    d.mkdir(parents=True, exist_ok=True)
    cut_wordpiece(splade / "tokenizer.json", d / "tokenizer.json", 2000)
    cfg = ElectraConfig(vocab_size=2000, embedding_size=32, hidden_size=64, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=128, max_position_embeddings=64,
                        hidden_act="gelu", tie_word_embeddings=True)
    m = ElectraForMaskedLM(cfg).eval()
    with torch.no_grad():  # non-trivial LayerNorm parameters and biases, so parity tests see them
        for name, p in m.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)
    m.save_pretrained(d)
    m = ElectraForMaskedLM.from_pretrained(d, attn_implementation="eager").eval()
    # The same weights as a PyTorch pickle, to test loading pytorch_model.bin.
    torch.save(m.state_dict(), d / "pytorch_model.bin")
    tok = PreTrainedTokenizerFast(tokenizer_file=str(d / "tokenizer.json"), unk_token="[UNK]")
    run(m, tok, ENGLISH, "tiny-electra")

    # A tiny XLM-R (RoBERTa position ids, one token type).
    d = FIX / "models" / "tiny-xlmr"
    d.mkdir(parents=True, exist_ok=True)
    cut_unigram(cache / "multilingual-e5-small" / "tokenizer.json", d / "tokenizer.json", 3000)
    cfg = XLMRobertaConfig(vocab_size=3001, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=128, max_position_embeddings=66, type_vocab_size=1,
                           pad_token_id=1, bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5,
                           tie_word_embeddings=True)
    m = XLMRobertaForMaskedLM(cfg).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "LayerNorm" in name or "layer_norm" in name or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)
    m.save_pretrained(d)
    m = XLMRobertaForMaskedLM.from_pretrained(d, attn_implementation="eager").eval()
    tok = PreTrainedTokenizerFast(tokenizer_file=str(d / "tokenizer.json"))
    run(m, tok, MIXED, "tiny-xlmr", pad_id=1)

    # multilingual-e5-small on Korean, when obtain.sh has fetched it.
    e5 = cache / "multilingual-e5-small"
    if (e5 / "model.safetensors").exists():
        tok = PreTrainedTokenizerFast(tokenizer_file=str(e5 / "tokenizer.json"))
        m = BertModel.from_pretrained(e5, attn_implementation="eager", add_pooling_layer=False).eval()
        run(m, tok, KOREAN, "e5-small-ko", pad_id=1)
    else:
        print(f"skipped e5-small: {e5} is absent (run ../shared/models/obtain.sh)", file=sys.stderr)

    for d in (FIX / "models").iterdir():
        for f in d.iterdir():
            if f.name not in ("config.json", "model.safetensors", "tokenizer.json", "pytorch_model.bin"):
                f.unlink()


if __name__ == "__main__":
    main()
