//! `best/` is rewritten whenever dev F1 improves while the workbench may be loading it: a reader
//! looping over it while a writer publishes model after model must load a whole model every
//! time, never half of one (and never fail for want of one once the first is there).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{DType, Device};
use nerlab::model::align::AlignMode;
use nerlab::model::backbone::{Backbone, CharModelSize};
use nerlab::model::ner::{ModelSpec, NerModel};
use nerlab::model::tokenize::CharVocab;
use nerlab::train::run_dir::RunDir;

/// A small model whose size (hidden 8 x k) tells which version a reader got.
fn model(k: usize) -> NerModel {
    let vocab = CharVocab::build(["서울 부산 대전"].into_iter(), 1);
    let size = CharModelSize {
        hidden: 8 * k,
        layers: 1,
        heads: 2,
        intermediate: 16 * k,
        max_positions: 64,
        dropout: 0.0,
    };
    let backbone = Backbone::char(vocab, size, DType::F32, &Device::Cpu, k as u64).unwrap();
    let labels = ["O", "B-LC", "I-LC"].map(String::from).to_vec();
    NerModel::new(backbone, ModelSpec::default(), labels, AlignMode::Chars).unwrap()
}

#[test]
fn a_reader_never_sees_half_a_best_model() {
    let dir = common::TempDir::new("best-model");
    let run = RunDir::create(&dir.0, "r").unwrap();
    let models: Vec<NerModel> = (1..=4).map(model).collect();
    run.publish_best(0, |d| models[0].save(d)).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (run, done) = (run.clone(), done.clone());
        std::thread::spawn(move || {
            let mut reads = 0;
            while !done.load(Ordering::Relaxed) || reads < 20 {
                let m = run
                    .read_best(|d| NerModel::load(d, DType::F32, &Device::Cpu))
                    .expect("a whole model every time");
                let hidden = m.backbone.encoder.config().hidden_size;
                assert!(hidden % 8 == 0 && (8..=32).contains(&hidden), "{hidden}");
                let tagged = m
                    .tag(&[vec!["서".to_string(), "울".to_string()]], 4)
                    .unwrap();
                assert_eq!(tagged[0].tags.len(), 2);
                reads += 1;
            }
            reads
        })
    };
    for step in 1..=60 {
        let m = &models[step % models.len()];
        run.publish_best(step, |d| m.save(d)).unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let reads = reader.join().expect("the reader never failed");
    assert!(reads >= 20, "{reads} reads");
    // What is left: `best` and at most one previous version.
    let versions = std::fs::read_dir(&run.path)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("best-"))
        .count();
    assert!(versions <= 2, "{versions} versions kept");
}
