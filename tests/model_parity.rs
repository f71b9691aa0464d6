//! The encoder against Hugging Face transformers: last hidden state, MLM logits and attention
//! probabilities agree to within 1e-4 in f32 at every real token (fixtures from `scripts/make_model_fixtures.py`, which
//! quotes the transformers calls), and the tokenizer gives transformers' ids.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, IndexOp, Tensor};
use nerlab::model::{TextTokenizer, load_pretrained};

const TOL: f32 = 1e-4;

const ENGLISH: [&str; 2] = [
    "Seoul is the capital of South Korea.",
    "Samsung Electronics announced new phones in Suwon on Monday.",
];
const MIXED: [&str; 2] = [
    "Lee Jae-yong visited Seoul.",
    "삼성전자 이재용 회장이 서울에서 기자회견을 열었다.",
];
const KOREAN: [&str; 2] = [
    "삼성전자 이재용 회장이 서울에서 기자회견을 열었다.",
    "경찰은 또 성매매 알선 자금을 관리한 박씨의 딸(32)과 성매매 여성 김모(33)씨 등 16명을 같은 혐의로 불구속 입건했다.",
];

/// The largest difference at real tokens: `real` (broadcast over the difference) is 1 at real
/// tokens and 0 at padding. Padding positions have no defined value: transformers computes them
/// from the padding embedding, nerlab skips them (packed batches) and returns zeros.
fn max_abs_diff(a: &Tensor, b: &Tensor, real: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .unwrap()
        .broadcast_mul(real)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// The int8 path's bound on [`min_cosine`] against transformers.
const MIN_COSINE: f32 = 0.99;

/// The least cosine similarity between `a`'s and `b`'s `(batch, seq, hidden)` rows at real tokens
/// (`mask` `(batch, seq)`, 1 at real tokens).
fn min_cosine(a: &Tensor, b: &Tensor, mask: &Tensor) -> f32 {
    let dot = (a * b).unwrap().sum(2).unwrap();
    let norm = |t: &Tensor| t.sqr().unwrap().sum(2).unwrap().sqrt().unwrap();
    let cos = (dot / (norm(a) * norm(b)).unwrap()).unwrap();
    let cos: Vec<Vec<f32>> = cos.to_vec2().unwrap();
    let mask: Vec<Vec<f32>> = mask.to_vec2().unwrap();
    cos.iter()
        .flatten()
        .zip(mask.iter().flatten())
        .filter(|&(_, &m)| m > 0.5)
        .map(|(&c, _)| c)
        .fold(f32::INFINITY, f32::min)
}

/// Loads `dir`, runs the fixture's batch through it and compares everything the fixture holds.
fn check(dir: &Path, fixture: &str, texts: &[&str]) {
    let model = load_pretrained(dir, DType::F32, &Device::Cpu, 0).expect("model loads");
    let want: HashMap<String, Tensor> = candle_core::safetensors::load(
        common::fixture(&format!("parity/{fixture}.safetensors")),
        &Device::Cpu,
    )
    .unwrap();
    let ids = want["input_ids"].to_dtype(DType::U32).unwrap();
    let mask = want["attention_mask"].to_dtype(DType::F32).unwrap();

    // The tokenizer gives transformers' ids, special tokens included.
    let TextTokenizer::Hf(tok) = &model.tokenizer else {
        panic!("HF tokenizer expected")
    };
    let rows: Vec<Vec<u32>> = ids.to_vec2().unwrap();
    let lens: Vec<f32> = mask.sum(1).unwrap().to_vec1().unwrap();
    for ((text, row), len) in texts.iter().zip(&rows).zip(lens) {
        let got = tok.encode_text(text).unwrap().ids;
        assert_eq!(got, row[..len as usize], "{fixture}: token ids of {text:?}");
    }

    let out = model
        .encoder
        .forward_full(&ids, &mask, false, true)
        .unwrap();
    let (b, s) = mask.dims2().unwrap();
    let per_token = mask.reshape((b, s, 1)).unwrap();
    let per_query = mask.reshape((b, 1, s, 1)).unwrap();
    let d_hidden = max_abs_diff(&out.hidden, &want["hidden"], &per_token);
    assert!(
        d_hidden < TOL,
        "{fixture}: last hidden state differs by {d_hidden}"
    );
    let d_attn = max_abs_diff(&out.attentions[1], &want["attention_layer1"], &per_query);
    assert!(
        d_attn < TOL,
        "{fixture}: layer-1 attention differs by {d_attn}"
    );
    // Inference without attention takes the packed path (one QKV product, attention per
    // sentence over its own tokens), unfrozen (a trainer's evaluation) and frozen (the tagger).
    let mut frozen = model.encoder.clone();
    frozen.freeze().unwrap();
    for (encoder, what) in [(&model.encoder, "unfrozen"), (&frozen, "frozen")] {
        let quick = encoder.forward_full(&ids, &mask, false, false).unwrap();
        let d = max_abs_diff(&quick.hidden, &want["hidden"], &per_token);
        assert!(
            d < TOL,
            "{fixture}: last hidden state of the packed inference path ({what}) differs by {d}"
        );
    }
    // Opt-in int8 inference: each real token's hidden state keeps its direction (cosine
    // similarity to transformers' at least MIN_COSINE); only a frozen encoder is quantized.
    assert!(model.encoder.clone().quantize_int8().is_err());
    let mut int8 = frozen.clone();
    int8.quantize_int8().unwrap();
    let got = int8.forward_full(&ids, &mask, false, false).unwrap().hidden;
    let cos = min_cosine(&got, &want["hidden"], &mask);
    let d_int8 = max_abs_diff(&got, &want["hidden"], &per_token);
    assert!(
        d_int8 > 10.0 * TOL,
        "{fixture}: the int8 path gave f32's answer ({d_int8}): was it taken?"
    );
    assert!(
        cos > MIN_COSINE,
        "{fixture}: int8 hidden states point elsewhere (cosine {cos})"
    );
    let mut d_logits = None;
    if let Some(logits_want) = want.get("logits") {
        let logits = model.mlm.logits(&out.hidden, &model.encoder).unwrap();
        let logits = match want.get("logits_cols") {
            Some(cols) => logits
                .index_select(&cols.to_dtype(DType::U32).unwrap(), 2)
                .unwrap(),
            None => logits,
        };
        let d = max_abs_diff(&logits, logits_want, &per_token);
        assert!(d < TOL, "{fixture}: MLM logits differ by {d}");
        assert!(
            model.mlm.pretrained,
            "{fixture}: the MLM head should load from the checkpoint"
        );
        d_logits = Some(d);
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "{fixture}: max abs diff hidden {d_hidden:.2e}, attention {d_attn:.2e}, MLM logits {}; \
         int8 least cosine {cos:.5}, max abs diff {d_int8:.2e}",
        d_logits.map_or("-".to_string(), |d| format!("{d:.2e}"))
    );
}

#[test]
fn splade_tiny_bert_matches_transformers() {
    let Some(dir) = common::shared_model("splade-tiny-bert-mlm") else {
        return;
    };
    check(&dir, "splade-tiny", &ENGLISH);
}

#[test]
fn electra_with_embedding_projection_matches_transformers() {
    check(
        &common::fixture("models/tiny-electra"),
        "tiny-electra",
        &ENGLISH,
    );
}

#[test]
fn xlm_roberta_matches_transformers() {
    check(&common::fixture("models/tiny-xlmr"), "tiny-xlmr", &MIXED);
}

#[test]
fn multilingual_e5_small_on_korean_matches_transformers() {
    let Some(dir) = common::obtained_model("multilingual-e5-small") else {
        return;
    };
    check(&dir, "e5-small-ko", &KOREAN);
}

#[test]
fn missing_tensor_is_named() {
    let dir = common::TempDir::new("missing-tensor");
    let src = common::fixture("models/tiny-electra");
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(src.join(f), dir.path(f)).unwrap();
    }
    let mut tensors =
        candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    tensors.remove("electra.encoder.layer.1.output.LayerNorm.weight");
    candle_core::safetensors::save(&tensors, dir.path("model.safetensors")).unwrap();
    let err = format!(
        "{:#}",
        load_pretrained(&dir.0, DType::F32, &Device::Cpu, 0).unwrap_err()
    );
    assert!(
        err.contains("missing tensor encoder.layer.1.output.LayerNorm.weight"),
        "{err}"
    );
}

#[test]
fn absent_mlm_head_is_fresh_and_tied() {
    // An ELECTRA discriminator (no generator head): the MLM head is initialized and its decoder is
    // the word-embedding matrix itself.
    let dir = common::TempDir::new("no-mlm");
    let src = common::fixture("models/tiny-electra");
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(src.join(f), dir.path(f)).unwrap();
    }
    let mut tensors =
        candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    tensors.retain(|k, _| !k.starts_with("generator_"));
    candle_core::safetensors::save(&tensors, dir.path("model.safetensors")).unwrap();
    let model = load_pretrained(&dir.0, DType::F32, &Device::Cpu, 0).unwrap();
    assert!(!model.mlm.pretrained);
    let fresh = model.params.initialized();
    assert!(
        fresh.iter().all(|n| n.starts_with("cls.predictions.")),
        "{fresh:?}"
    );
    assert!(fresh.contains(&"cls.predictions.transform.dense.weight".to_string()));
    assert!(
        !fresh.iter().any(|n| n.contains("decoder")),
        "decoder must be tied, not new: {fresh:?}"
    );
    let ids = Tensor::new(&[[101u32, 1000, 102]], &Device::Cpu).unwrap();
    let mask = Tensor::ones((1, 3), DType::F32, &Device::Cpu).unwrap();
    let h = model.encoder.forward_t(&ids, &mask, false).unwrap();
    let logits = model.mlm.logits(&h, &model.encoder).unwrap();
    assert_eq!(logits.dims(), &[1, 3, 2000]);
    assert!(
        logits
            .i((0, 0))
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .all(|x| x.is_finite())
    );
}

#[test]
fn pytorch_model_bin_loads_like_safetensors() {
    let dir = common::TempDir::new("pytorch-bin");
    let src = common::fixture("models/tiny-electra");
    for f in ["config.json", "tokenizer.json", "pytorch_model.bin"] {
        std::fs::copy(src.join(f), dir.path(f)).unwrap();
    }
    check(&dir.0, "tiny-electra", &ENGLISH);
}
