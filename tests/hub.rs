//! The Hugging Face Hub code on local files: a cache laid out as hf-hub writes it, holding a model
//! (tiny ELECTRA), a vocab.txt-only model (as KoELECTRA ships), and parquet dataset splits shaped
//! like `unimelb-nlp/wikiann` and `klue/klue` (fixtures from `scripts/make_hub_fixtures.py`).
//! Everything runs offline; a missing file is a clear error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{DType, Device};
use nerlab::data::Format;
use nerlab::data::hub::{Hub, RepoRef, seed_cache};
use nerlab::model::HfTokenizer;
use nerlab::model::backbone::Backbone;
use nerlab::train::sources::{load_corpus, resolve_model};

/// A cache with the tiny ELECTRA as `nerlab/tiny-electra` and the two datasets.
fn cache(dir: &Path) -> PathBuf {
    let cache = dir.join("hub");
    let m = common::fixture("models/tiny-electra");
    seed_cache(
        &cache,
        &RepoRef::model("nerlab/tiny-electra"),
        &[
            ("config.json", &m.join("config.json")),
            ("model.safetensors", &m.join("model.safetensors")),
            ("tokenizer.json", &m.join("tokenizer.json")),
        ],
    )
    .unwrap();
    let h = common::fixture("hub");
    seed_cache(
        &cache,
        &RepoRef::dataset("unimelb-nlp/wikiann"),
        &[
            (
                "ko/train-00000-of-00001.parquet",
                &h.join("wikiann-ko-train.parquet"),
            ),
            (
                "ko/validation-00000-of-00001.parquet",
                &h.join("wikiann-ko-validation.parquet"),
            ),
        ],
    )
    .unwrap();
    seed_cache(
        &cache,
        &RepoRef::dataset("klue/klue"),
        &[
            (
                "ner/train-00000-of-00001.parquet",
                &h.join("klue-ner-train.parquet"),
            ),
            (
                "ner/validation-00000-of-00001.parquet",
                &h.join("klue-ner-validation.parquet"),
            ),
        ],
    )
    .unwrap();
    cache
}

#[test]
fn models_resolve_from_the_cache_offline() {
    let dir = common::TempDir::new("hub-model");
    let hub = Hub::with_cache(&cache(&dir.0), true);
    let model_dir = resolve_model("hf:nerlab/tiny-electra", &hub)
        .unwrap()
        .unwrap();
    let b = Backbone::pretrained(&model_dir, DType::F32, &Device::Cpu, 0).unwrap();
    assert_eq!(b.encoder.config().embedding_width(), 32);
    let err = resolve_model("hf:nerlab/absent", &hub)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nerlab/absent@main: config.json is not in the Hugging Face cache"),
        "{err}"
    );
}

#[test]
fn datasets_read_from_parquet_with_their_label_names() {
    let dir = common::TempDir::new("hub-data");
    let hub = Hub::with_cache(&cache(&dir.0), true);
    let wiki = load_corpus("wikiann:ko/train", None, &hub).unwrap();
    assert_eq!((wiki.len(), wiki.format), (6, Format::Wikiann));
    assert_eq!(wiki.sentences[0].tokens[0], "김하늘");
    assert_eq!(
        wiki.sentences[0].tags,
        ["B-PER", "O", "B-LOC", "O", "O", "O"]
    );
    assert_eq!(wiki.sentences[0].lang.as_deref(), Some("ko"));
    assert_eq!(load_corpus("wikiann:ko/dev", None, &hub).unwrap().len(), 3);
    let klue = load_corpus("klue-ner/train", None, &hub).unwrap();
    assert_eq!(
        klue.format,
        Format::Klue,
        "character rows make a KLUE corpus"
    );
    assert_eq!(
        klue.sentences[0].raw.as_deref(),
        Some("한빛전자가 3일 서울에서 발표했다")
    );
    assert_eq!(
        klue.types().into_iter().collect::<Vec<_>>(),
        ["DT", "LC", "OG", "PS", "QT", "TI"]
    );
    assert_eq!(klue.sentences[1].tags[..3], ["B-PS", "I-PS", "I-PS"]);
    let err = load_corpus("wikiann:ko/test", None, &hub)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "no parquet files for config \"ko\" split \"test\" (splits there: train, validation)"
        ),
        "{err}"
    );
}

#[test]
fn vocab_txt_tokenizer_equals_tokenizer_json() {
    let Some(splade) = common::shared_model("splade-tiny-bert-mlm") else {
        return;
    };
    // Write splade's WordPiece vocabulary as vocab.txt (one token per line, in id order).
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(splade.join("tokenizer.json")).unwrap())
            .unwrap();
    let mut vocab: Vec<(&String, u64)> = json["model"]["vocab"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k, v.as_u64().unwrap()))
        .collect();
    vocab.sort_by_key(|&(_, id)| id);
    let dir = common::TempDir::new("vocab-txt");
    let text: String = vocab.iter().map(|(t, _)| format!("{t}\n")).collect();
    dir.write("vocab.txt", text.as_bytes());
    dir.write("tokenizer_config.json", br#"{"do_lower_case": true}"#);
    let from_vocab = HfTokenizer::from_dir(&dir.0).unwrap();
    let from_json = HfTokenizer::from_file(&splade.join("tokenizer.json")).unwrap();
    for text in [
        "Seoul is the capital of South Korea.",
        "Hyundai's CEO met U.N. officials, didn't he?",
        "café naïve 東京",
    ] {
        assert_eq!(
            from_vocab.encode_text(text).unwrap(),
            from_json.encode_text(text).unwrap(),
            "{text}"
        );
    }
    assert_eq!(from_vocab.specials, from_json.specials);
}

#[test]
fn train_from_the_hub_offline_through_the_cli() {
    let dir = common::TempDir::new("hub-train");
    let cache = cache(&dir.0);
    let out = dir.path("runs");
    let o = Command::new(env!("CARGO_BIN_EXE_nerlab"))
        .env("HF_HOME", cache.parent().unwrap())
        .args([
            "train",
            "--quiet",
            "--offline",
            "--train",
            "wikiann:ko/train",
            "--dev",
            "wikiann:ko/dev",
        ])
        .args([
            "--model",
            "hf:nerlab/tiny-electra",
            "--epochs",
            "2",
            "--batch-size",
            "4",
            "--threads",
            "1",
            "--name",
            "hub",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("hub/report.json")).unwrap())
            .unwrap();
    assert_eq!(report["dev"]["sentences"], 3);
    // The saved model carries its own tokenizer and loads without the cache.
    assert!(out.join("hub/best/tokenizer.json").exists());
}
