//! Training really trains, through the trainer's own step (`TrainStep`: AdamW with row-sparse
//! catch-up, the encoder's backward): the character model and a pretrained tiny BERT
//! (splade-tiny-bert-mlm) each drive their loss down on a small corpus with every head, with MANER (mask, fresh token and
//! baseline 2) and with prompt label words. Also checks that a trained model saves, loads and tags
//! the same way.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use candle_core::{DType, Device};
use nerlab::model::align::{AlignMode, Marker};
use nerlab::model::backbone::{Backbone, CharModelSize};
use nerlab::model::ner::{HeadKind, ModelSpec, NerModel, bio_labels};
use nerlab::model::tokenize::CharVocab;
use nerlab::rng::SplitMix64;
use nerlab::train::step::{StepPlan, TrainStep};

const SENTENCES: [(&str, &str); 8] = [
    (
        "Barack Obama visited Paris on Monday",
        "B-PER I-PER O B-LOC O O",
    ),
    ("Samsung opened a factory in Suwon", "B-ORG O O O O B-LOC"),
    (
        "Lee Jae-yong met Tim Cook in Seoul",
        "B-PER I-PER O B-PER I-PER O B-LOC",
    ),
    (
        "The United Nations met in Geneva",
        "O B-ORG I-ORG O O B-LOC",
    ),
    ("Angela Merkel left Berlin", "B-PER I-PER O B-LOC"),
    ("Google hired engineers from Busan", "B-ORG O O O B-LOC"),
    ("Kim Yuna skated in Vancouver", "B-PER I-PER O O B-LOC"),
    (
        "Hyundai and Kia build cars in Ulsan",
        "B-ORG O B-ORG O O O B-LOC",
    ),
];

fn data() -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    SENTENCES
        .iter()
        .map(|(s, t)| {
            (
                s.split(' ').map(String::from).collect(),
                t.split(' ').map(String::from).collect(),
            )
        })
        .unzip()
}

fn char_backbone(seed: u64) -> Backbone {
    let vocab = CharVocab::build(SENTENCES.iter().map(|(s, _)| *s), 1);
    let size = CharModelSize {
        hidden: 32,
        layers: 1,
        heads: 2,
        intermediate: 64,
        max_positions: 128,
        dropout: 0.1,
    };
    Backbone::char(vocab, size, DType::F32, &Device::Cpu, seed).unwrap()
}

/// Trains on all sentences as one batch through nerlab's own training step (AdamW, no decay, no
/// clipping); returns the trained model and the eval-mode loss before and after.
fn train(
    model: NerModel,
    tokens: &[Vec<String>],
    tags: &[Vec<String>],
    steps: usize,
    lr: f64,
) -> (NerModel, f64, f64) {
    let mut examples = Vec::new();
    for (i, (t, g)) in tokens.iter().zip(tags).enumerate() {
        examples.extend(model.encode(i, t, Some(g)).unwrap().1);
    }
    let refs: Vec<_> = examples.iter().collect();
    let eval_loss = |model: &NerModel| {
        let batch = model.batch(&refs, None).unwrap();
        model
            .loss(&batch, false)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap() as f64
    };
    let before = eval_loss(&model);
    let mut step = TrainStep::new(model, 0.0).unwrap();
    let plan = StepPlan {
        lr,
        head_lr: lr,
        ..StepPlan::default()
    };
    let mut rng = SplitMix64::new(1);
    for k in 0..steps {
        step.step(std::slice::from_ref(&refs), Some(&mut rng), &plan, k + 1)
            .unwrap();
    }
    let model = step.into_model().unwrap();
    let after = eval_loss(&model);
    (model, before, after)
}

fn run(name: &str, model: NerModel, steps: usize, lr: f64) {
    let (tokens, tags) = data();
    let (_, before, after) = train(model, &tokens, &tags, steps, lr);
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{name}: loss {before:.4} -> {after:.4}");
    assert!(
        after.is_finite() && after < 0.3 * before,
        "{name}: loss {before} -> {after} did not go down enough"
    );
}

fn specs() -> Vec<(&'static str, ModelSpec)> {
    let mut v = vec![];
    for (name, head) in [
        ("softmax", HeadKind::Softmax),
        ("bilstm", HeadKind::Bilstm),
        ("crf", HeadKind::Crf),
        ("bilstm-crf", HeadKind::BilstmCrf),
    ] {
        v.push((
            name,
            ModelSpec {
                head,
                lstm_hidden: 32,
                ..ModelSpec::default()
            },
        ));
    }
    v.push((
        "maner-mask",
        ModelSpec {
            marker: Marker::Mask,
            ..ModelSpec::default()
        },
    ));
    v.push((
        "maner-fresh",
        ModelSpec {
            marker: Marker::Fresh,
            ..ModelSpec::default()
        },
    ));
    v.push((
        "maner-baseline2",
        ModelSpec {
            word_mask_prob: 0.15,
            ..ModelSpec::default()
        },
    ));
    v.push((
        "prompt",
        ModelSpec {
            prompt: true,
            ..ModelSpec::default()
        },
    ));
    v.push((
        "msd",
        ModelSpec {
            msd_samples: 4,
            head_dropout: 0.3,
            ..ModelSpec::default()
        },
    ));
    v
}

fn labels() -> Vec<String> {
    let (_, tags) = data();
    bio_labels(tags.iter().flatten().map(String::as_str))
}

#[test]
fn char_model_trains_with_every_head_and_method() {
    for (name, spec) in specs() {
        let model = NerModel::new(char_backbone(3), spec, labels(), AlignMode::Words).unwrap();
        run(&format!("char {name}"), model, 60, 3e-3);
    }
}

#[test]
fn tiny_bert_trains_with_every_head_and_method() {
    let Some(dir) = common::shared_model("splade-tiny-bert-mlm") else {
        return;
    };
    for (name, spec) in specs() {
        let backbone = Backbone::pretrained(&dir, DType::F32, &Device::Cpu, 5).unwrap();
        let model = NerModel::new(backbone, spec, labels(), AlignMode::Words).unwrap();
        run(&format!("tiny-bert {name}"), model, 40, 1e-3);
    }
}

#[test]
fn char_model_trains_on_klue_characters_with_a_crf() {
    let text = [
        "삼성전자 이재용 회장이 서울에 왔다",
        "경찰은 박씨를 불러 조사했다",
    ];
    let tags = [
        "B-OG I-OG I-OG I-OG O B-PS I-PS I-PS O O O O O B-LC I-LC O O O O",
        "O O O O B-PS O O O O O O O O O O",
    ];
    let tokens: Vec<Vec<String>> = text
        .iter()
        .map(|s| s.chars().map(String::from).collect())
        .collect();
    let tags: Vec<Vec<String>> = tags
        .iter()
        .map(|s| s.split(' ').map(String::from).collect())
        .collect();
    for (t, g) in tokens.iter().zip(&tags) {
        assert_eq!(t.len(), g.len());
    }
    let vocab = CharVocab::build(text.iter().copied(), 1);
    let size = CharModelSize {
        hidden: 32,
        layers: 1,
        heads: 2,
        intermediate: 64,
        max_positions: 128,
        dropout: 0.1,
    };
    let backbone = Backbone::char(vocab, size, DType::F32, &Device::Cpu, 1).unwrap();
    let labels = bio_labels(tags.iter().flatten().map(String::as_str));
    let model = NerModel::new(
        backbone,
        ModelSpec {
            head: HeadKind::Crf,
            ..ModelSpec::default()
        },
        labels,
        AlignMode::Chars,
    )
    .unwrap();
    let (model, before, after) = train(model, &tokens, &tags, 80, 3e-3);
    assert!(after < 0.3 * before, "{before} -> {after}");
    // Trained on these sentences, it tags them back, spaces included.
    let tagged = model.tag(&tokens, 8).unwrap();
    assert_eq!(tagged[0].tags, tags[0]);
    assert_eq!(tagged[1].tags, tags[1]);
}

#[test]
fn trained_model_saves_loads_and_tags_the_same() {
    let (tokens, tags) = data();
    let spec = ModelSpec {
        head: HeadKind::Crf,
        prompt: false,
        ..ModelSpec::default()
    };
    let model = NerModel::new(char_backbone(9), spec, labels(), AlignMode::Words).unwrap();
    let (model, _, _) = train(model, &tokens, &tags, 40, 3e-3);
    let before = model.tag(&tokens, 4).unwrap();
    let dir = common::TempDir::new("save-load");
    model.save(&dir.0).unwrap();
    let loaded = NerModel::load(&dir.0, DType::F32, &Device::Cpu).unwrap();
    assert_eq!(loaded.tag(&tokens, 4).unwrap(), before);
    // A prompt model with MANER's fresh token round-trips too (added rows and the MLM head).
    let spec = ModelSpec {
        prompt: true,
        marker: Marker::Fresh,
        ..ModelSpec::default()
    };
    let model = NerModel::new(char_backbone(2), spec, labels(), AlignMode::Words).unwrap();
    let dir2 = common::TempDir::new("save-load-prompt");
    model.save(&dir2.0).unwrap();
    let loaded = NerModel::load(&dir2.0, DType::F32, &Device::Cpu).unwrap();
    assert_eq!(
        loaded.tag(&tokens, 4).unwrap(),
        model.tag(&tokens, 4).unwrap()
    );
}

#[test]
fn sentences_longer_than_the_model_are_windowed() {
    // 16 positions: 14 content tokens per window; a 40-word sentence needs several windows.
    let vocab = CharVocab::build(["abc"].into_iter(), 1);
    let size = CharModelSize {
        hidden: 16,
        layers: 1,
        heads: 2,
        intermediate: 32,
        max_positions: 16,
        dropout: 0.0,
    };
    let backbone = Backbone::char(vocab, size, DType::F32, &Device::Cpu, 1).unwrap();
    let model = NerModel::new(backbone, ModelSpec::default(), labels(), AlignMode::Words).unwrap();
    let long: Vec<String> = (0..40)
        .map(|i| ["a", "b", "c"][i % 3].to_string())
        .collect();
    let (_, examples) = model.encode(0, &long, None).unwrap();
    assert!(examples.len() > 3, "{} windows", examples.len());
    assert!(examples.iter().all(|e| e.ids.len() <= 16));
    let tagged = model.tag(std::slice::from_ref(&long), 4).unwrap();
    assert_eq!(tagged[0].tags.len(), 40, "every token gets a prediction");
    assert!(tagged[0].confidence.iter().all(|c| (0.0..=1.0).contains(c)));
}
