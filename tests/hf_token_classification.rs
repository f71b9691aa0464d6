//! Hugging Face token-classification checkpoints in and out (docs/MODELS.md): tiny random BERT,
//! ELECTRA and XLM-R token classifiers made by transformers (`scripts/make_token_classification_fixtures.py`)
//! give transformers' logits (within 1e-4) and its first-sub-word tags in nerlab; wrong inputs
//! fail with errors that say what is wrong; a run fine-tuned from such a checkpoint keeps its
//! classifier rows for the labels it shares, and exports to a folder with exactly the keys,
//! shapes and config fields transformers' own checkpoint has, which nerlab opens again to the
//! same tags.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use common::{fixture, nerlab, stderr, stdout};
use nerlab::data::label_map::LabelMap;
use nerlab::model::hf;

const TOL: f32 = 1e-4;

/// What the fixture script recorded for a checkpoint.
struct Fixture {
    sentences: Vec<Vec<String>>,
    /// Per token: the word it belongs to (-1: special or padding).
    word_ids: Vec<Vec<i64>>,
    labels: Vec<String>,
    first_subword: Vec<Vec<String>>,
    tensors: HashMap<String, Tensor>,
}

fn load_fixture(name: &str) -> Fixture {
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture(&format!("parity/{name}.json"))).unwrap(),
    )
    .unwrap();
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    let lists = |key: &str| -> Vec<Vec<String>> {
        meta[key].as_array().unwrap().iter().map(strings).collect()
    };
    Fixture {
        sentences: lists("sentences"),
        word_ids: meta["word_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                s.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_i64().unwrap())
                    .collect()
            })
            .collect(),
        labels: strings(&meta["labels"]),
        first_subword: lists("first_subword"),
        tensors: candle_core::safetensors::load(
            fixture(&format!("parity/{name}.safetensors")),
            &Device::Cpu,
        )
        .unwrap(),
    }
}

fn model_dir(name: &str) -> PathBuf {
    fixture(&format!("models/{name}"))
}

fn xlmr_map() -> LabelMap {
    LabelMap::from_file(&fixture("models/tiny-xlmr-ner.labels.toml")).unwrap()
}

/// Opens a fixture checkpoint and checks it against transformers: the ids of every word, the
/// class scores at each word's first sub-word, and the tags.
fn check(name: &str, map: &LabelMap) {
    let fx = load_fixture(name);
    let (model, mapped) = hf::open(&model_dir(name), map, None, DType::F32, &Device::Cpu)
        .unwrap_or_else(|e| panic!("{name}: {e:#}"));
    let order = hf::output_order(&mapped.tags).unwrap();
    let logits: Vec<Vec<Vec<f32>>> = fx.tensors["logits"].to_vec3().unwrap();
    let ids: Vec<Vec<i64>> = fx.tensors["input_ids"].to_vec2().unwrap();
    let (tagged, ours) = model
        .tag_with_logits(&fx.sentences, 8, model.align)
        .unwrap();
    let mut worst = 0f32;
    for (s, words) in fx.sentences.iter().enumerate() {
        // The same sub-words as transformers' is_split_into_words=True.
        let (alignment, _) = model.encode(0, words, None).unwrap();
        let theirs: Vec<u32> = ids[s]
            .iter()
            .zip(&fx.word_ids[s])
            .filter(|(_, w)| **w >= 0)
            .map(|(&id, _)| id as u32)
            .collect();
        assert_eq!(alignment.ids, theirs, "{name}: sentence {s}'s sub-words");
        for (w, _) in words.iter().enumerate() {
            let first = fx.word_ids[s].iter().position(|&x| x == w as i64).unwrap();
            let row = ours[s][w]
                .as_ref()
                .expect("every word has a first sub-word");
            for (class, &out) in order.iter().enumerate() {
                worst = worst.max((row[class] - logits[s][first][out]).abs());
            }
        }
        let want: Vec<String> = map
            .resolve(&fx.first_subword[s], None)
            .unwrap()
            .tags
            .into_iter()
            .collect();
        assert_eq!(tagged[s].tags, want, "{name}: sentence {s}'s tags");
    }
    eprintln!("{name}: max |logit difference| {worst:.2e}");
    assert!(worst < TOL, "{name}: logits differ by {worst}");
    // The fixture's predictions are not degenerate (the test would pass on a constant model).
    let distinct: std::collections::BTreeSet<&String> = fx.first_subword.iter().flatten().collect();
    assert!(distinct.len() >= 3, "{name}: {distinct:?}");
    assert_eq!(fx.labels.len(), model.labels.len());
}

#[test]
fn bert_electra_and_xlmr_token_classifiers_give_transformers_logits_and_tags() {
    check("tiny-bert-ner", &LabelMap::default());
    // pytorch_model.bin, BIOES labels with O last.
    check("tiny-electra-ner", &LabelMap::default());
    // LABEL_0..LABEL_6, named by a map file.
    check("tiny-xlmr-ner", &xlmr_map());
}

#[test]
fn eval_and_tag_open_a_checkpoint_and_match_its_labels_to_the_corpus() {
    let dir = model_dir("tiny-bert-ner");
    // CoNLL-style outputs on KLUE's types: MISC has no KLUE type, and the error lists both sets.
    let o = nerlab(&[
        "eval",
        "--model",
        dir.to_str().unwrap(),
        "--data",
        "builtin:demo/dev",
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("no mapping for B-MISC, I-MISC"), "{err}");
    assert!(
        err.contains("model labels:  O B-MISC I-MISC B-PER"),
        "{err}"
    );
    assert!(err.contains("corpus labels: B-DT"), "{err}");
    assert!(err.contains("--map-label MISC=O"), "{err}");

    let work = common::TempDir::new("hf-eval");
    let emissions = work.path("emissions.jsonl");
    let o = nerlab(&[
        "eval",
        "--model",
        dir.to_str().unwrap(),
        "--data",
        "builtin:demo/dev",
        "--map-label",
        "MISC=O",
        "--json",
        "--emissions",
        emissions.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("types matched to the corpus: LOC -> LC, ORG -> OG, PER -> PS"),
        "{}",
        stderr(&o)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let predicted: u64 = report["per_type"]
        .as_object()
        .unwrap()
        .values()
        .map(|t| t["predicted"].as_u64().unwrap())
        .sum();
    assert!(predicted > 0, "the mapped types are predicted: {report}");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&emissions)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines[0]["labels"],
        serde_json::json!([
            "O", "O", "O", "B-PS", "I-PS", "B-OG", "I-OG", "B-LC", "I-LC"
        ])
    );
    assert_eq!(
        lines.len(),
        1 + report["sentences"].as_u64().unwrap() as usize
    );

    // Tagging free text keeps the checkpoint's own types.
    let o = nerlab(&["tag", "--model", dir.to_str().unwrap(), "Seoul is in Korea"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let line: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(line["text"], "Seoul is in Korea");
    for span in line["spans"].as_array().unwrap() {
        let ty = span["type"].as_str().unwrap();
        assert!(["PER", "LOC", "ORG", "MISC"].contains(&ty), "{ty}");
    }
}

/// A copy of tiny-bert-ner with `edit` applied to its config.json.
fn broken_copy(
    work: &common::TempDir,
    name: &str,
    edit: impl Fn(&mut serde_json::Value),
) -> PathBuf {
    let src = model_dir("tiny-bert-ner");
    let dst = work.path(name);
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dst.join("config.json")).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(dst.join("config.json"), config.to_string()).unwrap();
    dst
}

fn open_error(dir: &Path, map: &LabelMap) -> String {
    format!(
        "{:#}",
        hf::open(dir, map, None, DType::F32, &Device::Cpu).unwrap_err()
    )
}

#[test]
fn wrong_checkpoints_fail_with_errors_that_say_what_is_wrong() {
    let work = common::TempDir::new("hf-wrong");
    let no_labels = broken_copy(&work, "no-id2label", |c| {
        c.as_object_mut().unwrap().remove("id2label");
    });
    let err = open_error(&no_labels, &LabelMap::default());
    assert!(err.contains("config.json: no id2label"), "{err}");

    let unknown = broken_copy(&work, "distilbert", |c| {
        c["architectures"] = serde_json::json!(["DistilBertForTokenClassification"]);
    });
    let err = open_error(&unknown, &LabelMap::default());
    assert!(
        err.contains("architecture DistilBertForTokenClassification is not supported")
            && err.contains("BertForTokenClassification, ElectraForTokenClassification"),
        "{err}"
    );

    let encoder = broken_copy(&work, "encoder-only", |c| {
        c["architectures"] = serde_json::json!(["BertModel"]);
    });
    let err = open_error(&encoder, &LabelMap::default());
    assert!(
        err.contains("not a token-classification checkpoint"),
        "{err}"
    );
    // Through the command line, the same message.
    let o = nerlab(&["tag", "--model", encoder.to_str().unwrap(), "x"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not a token-classification checkpoint"));

    let vocab = broken_copy(&work, "wrong-tokenizer", |_| {});
    std::fs::copy(
        fixture("models/tiny-xlmr/tokenizer.json"),
        vocab.join("tokenizer.json"),
    )
    .unwrap();
    std::fs::remove_file(vocab.join("tokenizer_config.json")).ok();
    let err = open_error(&vocab, &LabelMap::default());
    assert!(
        err.contains("the tokenizer does not fit the model")
            && err.contains(
                "the tokenizer has 3001 tokens but the model's embedding matrix only 2000"
            ),
        "{err}"
    );

    let err = open_error(&model_dir("tiny-xlmr-ner"), &LabelMap::default());
    assert!(
        err.contains(
            "no mapping for LABEL_0, LABEL_1, LABEL_2, LABEL_3, LABEL_4, LABEL_5, LABEL_6"
        ) && err.contains("--label-map FILE"),
        "{err}"
    );

    let rows = broken_copy(&work, "rows", |c| {
        c["id2label"] = serde_json::json!({"0": "O", "1": "B-PER", "2": "I-PER"});
    });
    let err = open_error(&rows, &LabelMap::default());
    assert!(
        err.contains("id2label names 3 outputs but classifier.weight has shape [9, 64]"),
        "{err}"
    );
}

#[test]
fn a_run_from_a_checkpoint_keeps_its_shared_classifier_rows() {
    use nerlab::model::align::AlignMode;
    use nerlab::model::backbone::Backbone;
    use nerlab::model::ner::{ModelSpec, NerModel};
    let dir = model_dir("tiny-bert-ner");
    let labels: Vec<String> = [
        "O", "B-LC", "I-LC", "B-OG", "I-OG", "B-PS", "I-PS", "B-QT", "I-QT",
    ]
    .map(String::from)
    .to_vec();
    let backbone = Backbone::pretrained(&dir, DType::F32, &Device::Cpu, 1).unwrap();
    let model = NerModel::new(backbone, ModelSpec::default(), labels, AlignMode::Words).unwrap();
    let (w, b, theirs) = hf::classifier_for_training(&dir, &LabelMap::default(), &model.labels)
        .expect_err("MISC cannot be matched to this data")
        .to_string()
        .contains("MISC")
        .then(|| {
            let mut map = LabelMap::default();
            map.add_pair("MISC=O").unwrap();
            hf::classifier_for_training(&dir, &map, &model.labels).unwrap()
        })
        .unwrap();
    let kept = model.keep_classifier_rows(&w, &b, &theirs).unwrap();
    assert_eq!(kept, ["O", "B-LC", "I-LC", "B-OG", "I-OG", "B-PS", "I-PS"]);
    let tensors = model.params().tensors();
    let ours: Vec<Vec<f32>> = tensors["ner.proj.weight"].to_vec2().unwrap();
    let ckpt: Vec<Vec<f32>> = w.to_vec2().unwrap();
    // B-PS is the checkpoint's B-PER (output 3), B-OG its B-ORG (5), B-LC its B-LOC (7), O its 0.
    assert_eq!(ours[5], ckpt[3]);
    assert_eq!(ours[3], ckpt[5]);
    assert_eq!(ours[1], ckpt[7]);
    assert_eq!(ours[0], ckpt[0]);
    assert_ne!(ours[7], ckpt[1], "B-QT is new");
}

#[test]
fn an_exported_run_has_what_transformers_needs_and_opens_to_the_same_tags() {
    let work = common::TempDir::new("hf-export");
    let out = work.path("runs");
    let config = work.write(
        "run.toml",
        format!(
            "seed = 3\nthreads = 1\n[data]\ntrain = [\"builtin:demo/train\"]\ndev = \"builtin:demo/dev\"\n\
             [train]\nepochs = 1\nbatch_size = 16\nlr = 0.001\nmax_steps = 6\n\
             [model]\nsource = {:?}\nhead = \"softmax\"\n[model.label_map]\nMISC = \"O\"\n",
            model_dir("tiny-bert-ner").to_str().unwrap()
        )
        .as_bytes(),
    );
    let o = nerlab(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--name",
        "from-ckpt",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        format!("{}{}", stdout(&o), stderr(&o)).contains("its classifier is kept for"),
        "the log says what became of the checkpoint's head: {}",
        stderr(&o)
    );
    let run = out.join("from-ckpt");
    let export = work.path("export");
    let o = nerlab(&[
        "export",
        "--run",
        run.to_str().unwrap(),
        "--out",
        export.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));

    // Keys and shapes: exactly those of transformers' own BertForTokenClassification, but the
    // classifier's rows (this run's labels).
    let load = |p: &Path| -> BTreeMap<String, Vec<usize>> {
        candle_core::safetensors::load(p, &Device::Cpu)
            .unwrap()
            .into_iter()
            .map(|(k, t)| (k, t.dims().to_vec()))
            .collect()
    };
    let ours = load(&export.join("model.safetensors"));
    let theirs = load(&model_dir("tiny-bert-ner").join("model.safetensors"));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(export.join("config.json")).unwrap())
            .unwrap();
    let n = config["id2label"].as_object().unwrap().len();
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>()
    );
    for (k, shape) in &theirs {
        let want = match k.as_str() {
            "classifier.weight" => vec![n, shape[1]],
            "classifier.bias" => vec![n],
            _ => shape.clone(),
        };
        assert_eq!(ours[k], want, "{k}");
    }
    // config.json: the class, the labels both ways, and every field transformers' config has
    // that shapes the model.
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(model_dir("tiny-bert-ner").join("config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        config["architectures"],
        serde_json::json!(["BertForTokenClassification"])
    );
    assert_eq!(config["model_type"], "bert");
    for field in [
        "vocab_size",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "hidden_act",
        "max_position_embeddings",
        "type_vocab_size",
        "layer_norm_eps",
    ] {
        assert_eq!(config[field], reference[field], "{field}");
    }
    for (id, label) in config["id2label"].as_object().unwrap() {
        assert_eq!(config["label2id"][label.as_str().unwrap()].to_string(), *id);
    }
    assert_eq!(config["id2label"]["0"], "O");
    for f in ["tokenizer.json", "tokenizer_config.json", "README.md"] {
        assert!(export.join(f).exists(), "{f}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(export.join("model.safetensors"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o044, 0o044, "others can read the weights: {mode:o}");
    }
    let card = std::fs::read_to_string(export.join("README.md")).unwrap();
    assert!(
        card.contains("builtin:demo/train") && card.contains("micro F1"),
        "{card}"
    );
    assert!(
        card.contains("transformers alone gives nerlab's tags"),
        "{card}"
    );

    // Opened again as a checkpoint, the export tags as the run does.
    let sentences: Vec<Vec<String>> = [
        "삼성전자 이재용 회장이 서울에서 기자회견을 열었다",
        "Seoul is in Korea",
    ]
    .iter()
    .map(|s| s.split(' ').map(String::from).collect())
    .collect();
    let run_model = nerlab::infer::load_model(&run).unwrap();
    let (exported, _) = hf::open(
        &export,
        &LabelMap::default(),
        None,
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    let a = run_model
        .tag_as(&sentences, 8, nerlab::model::align::AlignMode::Words)
        .unwrap();
    let b = exported
        .tag_as(&sentences, 8, nerlab::model::align::AlignMode::Words)
        .unwrap();
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.tags, y.tags);
    }
}

#[test]
fn crf_and_bilstm_heads_export_their_extra_weights_in_pytorch_layout() {
    use nerlab::model::align::AlignMode;
    use nerlab::model::backbone::Backbone;
    use nerlab::model::ner::{HeadKind, ModelSpec, NerModel};
    let work = common::TempDir::new("hf-export-heads");
    let labels: Vec<String> = ["O", "B-PS", "I-PS"].map(String::from).to_vec();
    for head in [HeadKind::Crf, HeadKind::BilstmCrf] {
        let backbone =
            Backbone::pretrained(&model_dir("tiny-bert-ner"), DType::F32, &Device::Cpu, 1).unwrap();
        let spec = ModelSpec {
            head,
            lstm_hidden: 8,
            ..ModelSpec::default()
        };
        let model = NerModel::new(backbone, spec, labels.clone(), AlignMode::Words).unwrap();
        let out = work.path(&format!("{head:?}"));
        let e = hf::export(&model, &out).unwrap();
        assert!(!e.transformers_alone);
        let crf =
            candle_core::safetensors::load(out.join("crf.safetensors"), &Device::Cpu).unwrap();
        let t: Vec<Vec<f32>> = crf["transitions"].to_vec2().unwrap();
        // O -> I-PS is forbidden in IOB2: folded in at -10000 so pytorch-crf decodes the same.
        assert!(t[0][2] < -9000.0 && t[1][2] > -1.0, "{t:?}");
        let start: Vec<f32> = crf["start_transitions"].to_vec1().unwrap();
        assert!(start[2] < -9000.0);
        assert_eq!(crf["end_transitions"].dims(), [3]);
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap())
                .unwrap();
        if head == HeadKind::BilstmCrf {
            let h =
                candle_core::safetensors::load(out.join("head.safetensors"), &Device::Cpu).unwrap();
            let mut keys: Vec<&String> = h.keys().collect();
            keys.sort();
            assert_eq!(
                keys,
                [
                    "classifier.bias",
                    "classifier.weight",
                    "lstm.bias_hh_l0",
                    "lstm.bias_hh_l0_reverse",
                    "lstm.bias_ih_l0",
                    "lstm.bias_ih_l0_reverse",
                    "lstm.weight_hh_l0",
                    "lstm.weight_hh_l0_reverse",
                    "lstm.weight_ih_l0",
                    "lstm.weight_ih_l0_reverse"
                ]
            );
            assert_eq!(h["lstm.weight_ih_l0"].dims(), [32, 64]);
            assert_eq!(h["classifier.weight"].dims(), [3, 16]);
            assert_eq!(config["architectures"], serde_json::json!(["BertModel"]));
        } else {
            assert_eq!(
                config["architectures"],
                serde_json::json!(["BertForTokenClassification"])
            );
        }
    }
}

#[test]
fn a_checkpoint_opens_from_the_hub_cache_offline() {
    use nerlab::data::hub::{RepoRef, seed_cache};
    let work = common::TempDir::new("hf-hub-ner");
    let cache = work.path("hf/hub");
    let src = model_dir("tiny-bert-ner");
    let files: Vec<(String, PathBuf)> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), e.path())
        })
        .collect();
    let refs: Vec<(&str, &Path)> = files
        .iter()
        .map(|(n, p)| (n.as_str(), p.as_path()))
        .collect();
    seed_cache(&cache, &RepoRef::model("nerlab/tiny-bert-ner"), &refs).unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_nerlab"))
        .env("HF_HOME", work.path("hf"))
        .args([
            "tag",
            "--offline",
            "--model",
            "hf:nerlab/tiny-bert-ner",
            "Seoul is in Korea",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let direct = nerlab(&["tag", "--model", src.to_str().unwrap(), "Seoul is in Korea"]);
    assert_eq!(stdout(&o), stdout(&direct));
    // A repository the cache lacks, offline: the error names it.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_nerlab"))
        .env("HF_HOME", work.path("hf"))
        .args(["tag", "--offline", "--model", "hf:nerlab/absent", "x"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("nerlab/absent"), "{}", stderr(&o));
}

/// transformers' pipeline aggregations over a word's sub-words, computed here from the fixture's
/// logits at every sub-word: `average` (mean softmax, then argmax) and `max` (the sub-word with
/// the highest score gives the class). Returns (words of several sub-words, how many of them
/// `average` reads otherwise than `first`).
fn check_aggregation(name: &str, map: &LabelMap) -> (usize, usize) {
    use nerlab::model::ner::Aggregation;
    let fx = load_fixture(name);
    let (mut model, mapped) =
        hf::open(&model_dir(name), map, None, DType::F32, &Device::Cpu).unwrap();
    let logits: Vec<Vec<Vec<f32>>> = fx.tensors["logits"].to_vec3().unwrap();
    let softmax = |r: &[f32]| -> Vec<f32> {
        let m = r.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f32> = r.iter().map(|x| (x - m).exp()).collect();
        let z: f32 = e.iter().sum();
        e.into_iter().map(|x| x / z).collect()
    };
    let argmax = |p: &[f32]| {
        p.iter().enumerate().fold(
            (0, f32::NEG_INFINITY),
            |b, (i, &x)| if x > b.1 { (i, x) } else { b },
        )
    };
    let (mut multi, mut differs) = (0, 0);
    for how in [Aggregation::Average, Aggregation::Max] {
        model.set_aggregation(how).unwrap();
        let tagged = model.tag(&fx.sentences, 8).unwrap();
        for (s, words) in fx.sentences.iter().enumerate() {
            for w in 0..words.len() {
                let rows: Vec<Vec<f32>> = fx.word_ids[s]
                    .iter()
                    .enumerate()
                    .filter(|(_, x)| **x == w as i64)
                    .map(|(t, _)| softmax(&logits[s][t]))
                    .collect();
                let out = match how {
                    Aggregation::Average => {
                        let mean: Vec<f32> = (0..rows[0].len())
                            .map(|c| rows.iter().map(|r| r[c]).sum::<f32>() / rows.len() as f32)
                            .collect();
                        argmax(&mean).0
                    }
                    _ => {
                        rows.iter()
                            .map(|r| argmax(r))
                            .fold((0, f32::NEG_INFINITY), |b, x| if x.1 > b.1 { x } else { b })
                            .0
                    }
                };
                assert_eq!(
                    tagged[s].tags[w], mapped.tags[out],
                    "{name} {how:?}: sentence {s} word {w}"
                );
                if how == Aggregation::Average && rows.len() > 1 {
                    multi += 1;
                    differs += usize::from(out != argmax(&rows[0]).0);
                }
            }
        }
    }
    eprintln!("{name}: {multi} words of several sub-words, {differs} read otherwise by average");
    (multi, differs)
}

#[test]
fn average_and_max_aggregations_read_every_sub_word_as_transformers_pipeline_does() {
    use nerlab::model::ner::Aggregation;
    let (m1, d1) = check_aggregation("tiny-bert-ner", &LabelMap::default());
    let (m2, d2) = check_aggregation("tiny-xlmr-ner", &xlmr_map());
    assert!(m1 + m2 >= 5, "the fixtures have words of several sub-words");
    assert!(
        d1 + d2 >= 1,
        "some word is read otherwise than at its first sub-word"
    );
    // A CRF decodes one path over the words: no aggregation there.
    let backbone = nerlab::model::backbone::Backbone::pretrained(
        &model_dir("tiny-bert-ner"),
        DType::F32,
        &Device::Cpu,
        1,
    )
    .unwrap();
    let spec = nerlab::model::ner::ModelSpec {
        head: nerlab::model::ner::HeadKind::Crf,
        ..Default::default()
    };
    let mut crf = nerlab::model::ner::NerModel::new(
        backbone,
        spec,
        vec!["O".into(), "B-PER".into(), "I-PER".into()],
        nerlab::model::align::AlignMode::Words,
    )
    .unwrap();
    let err = crf
        .set_aggregation(Aggregation::Average)
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs a softmax head"), "{err}");
}
