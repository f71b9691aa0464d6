//! A PyTorch encoder + BiLSTM + CRF state dict in the korean_ner project's layout
//! (`scripts/make_torch_crf_fixture.py`: a tiny random ELECTRA, `nn.LSTM(bidirectional=True)`,
//! `nn.Linear`, `torchcrf.CRF`): nerlab's emissions equal PyTorch's within 1e-4 and its decoded
//! paths equal `crf.decode` exactly; a key that is missing, extra, misplaced or of the wrong
//! shape is an error naming it; another layout is a small TOML file; an imported copy keeps every
//! part for fine-tuning.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use common::{fixture, nerlab, stderr, stdout};
use nerlab::model::align::{AlignMode, CharUnits};
use nerlab::model::ner::{HeadKind, InitHead, NerModel};
use nerlab::model::torch_ner::{KeyLayout, TorchSpec, open, read_labels};

const TOL: f32 = 1e-4;

fn folder() -> PathBuf {
    fixture("models/tiny-korean-ner")
}

fn spec(labels: Vec<String>, layout: KeyLayout, constrained: bool) -> TorchSpec {
    TorchSpec {
        encoder: folder(),
        labels,
        layout,
        char_units: CharUnits::Characters,
        constrained,
    }
}

fn klue() -> Vec<String> {
    read_labels("klue").unwrap()
}

struct Fixture {
    chars: Vec<Vec<String>>,
    labels: Vec<String>,
    decoded: Vec<Vec<String>>,
    emissions: Vec<Vec<Vec<f32>>>,
}

fn load_fixture() -> Fixture {
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("parity/tiny-korean-ner.json")).unwrap(),
    )
    .unwrap();
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    let lists =
        |k: &str| -> Vec<Vec<String>> { meta[k].as_array().unwrap().iter().map(strings).collect() };
    let t =
        candle_core::safetensors::load(fixture("parity/tiny-korean-ner.safetensors"), &Device::Cpu)
            .unwrap();
    Fixture {
        chars: lists("chars"),
        labels: strings(&meta["labels"]),
        decoded: lists("decoded"),
        emissions: t["emissions"].to_vec3().unwrap(),
    }
}

/// Emissions and decoded paths of `model` on the fixture's sentences against PyTorch's.
fn compare(model: &NerModel, fx: &Fixture) -> (f32, usize) {
    let order = nerlab::model::hf::output_order(&fx.labels).unwrap();
    let (tagged, logits) = model
        .tag_with_logits(&fx.chars, 8, AlignMode::Words)
        .unwrap();
    let mut worst = 0f32;
    let mut differing = 0;
    for (s, chars) in fx.chars.iter().enumerate() {
        assert_eq!(logits[s].len(), chars.len());
        for (row, theirs) in logits[s].iter().zip(&fx.emissions[s]) {
            let row = row.as_ref().expect("every character is a unit");
            for (class, &out) in order.iter().enumerate() {
                worst = worst.max((row[class] - theirs[out]).abs());
            }
        }
        differing += tagged[s]
            .tags
            .iter()
            .zip(&fx.decoded[s])
            .filter(|(a, b)| a != b)
            .count();
    }
    (worst, differing)
}

#[test]
fn emissions_and_crf_paths_equal_pytorch() {
    let fx = load_fixture();
    assert_eq!(fx.labels, klue(), "the built-in list is korean_ner's order");
    let model = open(
        &folder().join("model.pt"),
        &spec(klue(), KeyLayout::default(), false),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(model.spec.head, HeadKind::BilstmCrf);
    assert_eq!(model.spec.lstm_hidden, 16);
    let (worst, differing) = compare(&model, &fx);
    eprintln!("tiny-korean-ner: max |emission difference| {worst:.2e}");
    assert!(worst < TOL, "emissions differ by {worst}");
    assert_eq!(differing, 0, "decoded paths equal torchcrf's CRF.decode");

    // nerlab's IOB2 constraints are a switch: with them no path has O -> I-X, and these random
    // transitions make it differ from pytorch-crf's.
    let constrained = open(
        &folder().join("model.pt"),
        &spec(klue(), KeyLayout::default(), true),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    let (_, differing) = compare(&constrained, &fx);
    assert!(differing > 0);
    for t in constrained.tag(&fx.chars, 8).unwrap() {
        let (fixed, counts) = nerlab::data::scheme::repair(&t.tags, nerlab::data::Scheme::Iob2);
        assert!(counts.is_empty(), "{:?} -> {fixed:?}", t.tags);
    }
}

/// The fixture's state dict as safetensors, edited.
fn edited(
    work: &common::TempDir,
    name: &str,
    edit: impl Fn(&mut HashMap<String, Tensor>),
) -> PathBuf {
    let mut t: HashMap<String, Tensor> = candle_core::pickle::read_all(folder().join("model.pt"))
        .unwrap()
        .into_iter()
        .collect();
    edit(&mut t);
    let p = work.path(&format!("{name}.safetensors"));
    candle_core::safetensors::save(&t, &p).unwrap();
    p
}

fn open_err(weights: &Path, spec: &TorchSpec) -> String {
    format!(
        "{:#}",
        open(weights, spec, DType::F32, &Device::Cpu).unwrap_err()
    )
}

#[test]
fn a_wrong_key_or_shape_is_named_and_another_layout_is_a_toml_file() {
    let work = common::TempDir::new("torch-keys");
    let default = spec(klue(), KeyLayout::default(), false);
    let missing = edited(&work, "missing", |t| {
        t.remove("lstm.bias_hh_l0_reverse");
    });
    let err = open_err(&missing, &default);
    assert!(
        err.contains("missing key lstm.bias_hh_l0_reverse (expected shape [64])"),
        "{err}"
    );

    let extra = edited(&work, "extra", |t| {
        let w = t["lstm.weight_ih_l0"].clone();
        t.insert("lstm.weight_ih_l1".into(), w);
    });
    let err = open_err(&extra, &default);
    assert!(err.contains("unexpected key lstm.weight_ih_l1"), "{err}");

    let labels12 = spec(klue()[..12].to_vec(), KeyLayout::default(), false);
    let err = open_err(&folder().join("model.pt"), &labels12);
    assert!(
        err.contains("classifier.weight has shape [13, 32], but [12, 32] fits this model"),
        "{err}"
    );

    let encoder_extra = edited(&work, "encoder-extra", |t| {
        let w = t["electra.embeddings.LayerNorm.weight"].clone();
        t.insert("electra.embeddings.extra.weight".into(), w);
    });
    let err = open_err(&encoder_extra, &default);
    assert!(
        err.contains("unexpected key electra.embeddings.extra.weight"),
        "{err}"
    );

    // bert./rnn./fc. names: an error naming the key, then a layout file.
    let renamed = edited(&work, "renamed", |t| {
        let keys: Vec<String> = t.keys().cloned().collect();
        for k in keys {
            let new = k
                .replacen("electra.", "bert.", 1)
                .replacen("lstm.", "rnn.", 1)
                .replacen("classifier.", "fc.", 1);
            let v = t.remove(&k).unwrap();
            t.insert(new, v);
        }
    });
    let err = open_err(&renamed, &default);
    assert!(
        err.contains("unexpected key") && err.contains("under none of the layout's prefixes"),
        "{err}"
    );
    let layout_file = work.write(
        "layout.toml",
        b"encoder = \"bert.\"\nlstm = \"rnn.\"\nclassifier = \"fc.\"\n",
    );
    let layout = KeyLayout::from_file(&layout_file).unwrap();
    assert_eq!(
        layout.crf, "crf.",
        "keys a file leaves out keep korean_ner's names"
    );
    let model = open(
        &renamed,
        &spec(klue(), layout, false),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    let (worst, differing) = compare(&model, &load_fixture());
    assert!(worst < TOL && differing == 0);
}

#[test]
fn the_command_line_opens_it_and_an_imported_copy_keeps_every_part() {
    let work = common::TempDir::new("torch-cli");
    let pt = folder().join("model.pt");
    // Beside the file: config.json, tokenizer.json, labels.txt; so no flag is needed.
    let o = nerlab(&[
        "tag",
        "--model",
        pt.to_str().unwrap(),
        "삼성전자 이재용 회장",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let line: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(line["text"], "삼성전자 이재용 회장");
    // Without labels it says what to give.
    let lone = work.path("lone");
    std::fs::create_dir_all(&lone).unwrap();
    std::fs::copy(&pt, lone.join("model.pt")).unwrap();
    let o = nerlab(&[
        "tag",
        "--model",
        lone.join("model.pt").to_str().unwrap(),
        "x",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--encoder"), "{}", stderr(&o));
    let o = nerlab(&[
        "tag",
        "--model",
        lone.join("model.pt").to_str().unwrap(),
        "--encoder",
        folder().to_str().unwrap(),
        "x",
    ]);
    assert!(stderr(&o).contains("--labels klue"), "{}", stderr(&o));

    let eval = |model: &str| {
        let o = nerlab(&[
            "eval",
            "--model",
            model,
            "--data",
            "builtin:demo/dev",
            "--json",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let mut r: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        r.as_object_mut().unwrap().remove("bootstrap");
        r
    };
    let direct = eval(pt.to_str().unwrap());
    let imported = work.path("imported");
    let o = nerlab(&[
        "import",
        "--model",
        pt.to_str().unwrap(),
        "--out",
        imported.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        eval(imported.to_str().unwrap()),
        direct,
        "the import scores the same"
    );

    // A run started from the import with init_head = keep has every tensor of it.
    let saved = nerlab::infer::load_model(&imported).unwrap();
    let spec = saved.spec.clone();
    assert_eq!(spec.char_units, CharUnits::Characters);
    assert!(!spec.constrained);
    let start = NerModel::init_from(
        &imported,
        spec,
        saved.labels.clone(),
        AlignMode::Words,
        InitHead::Keep,
        DType::F32,
        &Device::Cpu,
        1,
    )
    .unwrap();
    let (a, b) = (saved.params().tensors(), start.params().tensors());
    assert_eq!(
        a.keys().collect::<std::collections::BTreeSet<_>>(),
        b.keys().collect::<std::collections::BTreeSet<_>>()
    );
    for (k, t) in &a {
        let d = (t - &b[k])
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap();
        assert_eq!(d.to_scalar::<f32>().unwrap(), 0.0, "{k}");
    }
}
