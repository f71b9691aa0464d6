//! Scoring speed on KLUE-NER dev: `cargo bench --bench score`.
//!
//! Times what `nerlab score --gold G --pred P` does end to end (read both files, check tokens,
//! build the scoring views, every metric including 1,000 bootstrap resamples), and the metrics
//! alone, as medians of 7 runs. Target: the whole KLUE dev set under 1 second in a release build.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use nerlab::data::{self, ReadOptions, SpanMode};
use nerlab::metrics::{ScoreOptions, score};

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn main() {
    let gold_path = nerlab::shared_dir().join("data/klue-ner/klue-ner-v1.1_dev.tsv");
    if !gold_path.exists() {
        eprintln!(
            "nerlab-skip: bench score: {} is absent",
            gold_path.display()
        );
        return;
    }
    // Predictions: gold with every fifth entity-initial tag turned into a dangling I- and every
    // seventh sentence's tags cleared, written to a temporary file like a model's output.
    let gold = data::read(&gold_path, &ReadOptions::default()).expect("gold reads");
    let mut tags: Vec<Vec<String>> = gold.sentences.iter().map(|s| s.tags.clone()).collect();
    let mut n = 0;
    for (i, sentence) in tags.iter_mut().enumerate() {
        for tag in sentence.iter_mut() {
            if i % 7 == 0 {
                *tag = "O".into();
            } else if let Some(ty) = tag.strip_prefix("B-") {
                n += 1;
                if n % 5 == 0 {
                    *tag = format!("I-{ty}");
                }
            }
        }
    }
    let pred_path =
        std::env::temp_dir().join(format!("nerlab-bench-pred-{}.tsv", std::process::id()));
    data::write(&gold.with_tags(tags), &pred_path).expect("write predictions");

    let opts = ScoreOptions {
        mode: SpanMode::Strict,
        scheme: gold.scheme,
        char_level: true,
        ..ScoreOptions::default()
    };
    let end_to_end = |gold_path: &Path| {
        let start = Instant::now();
        let gold = data::read(gold_path, &ReadOptions::default()).expect("gold");
        let pred = data::read(&pred_path, &ReadOptions::with_format(gold.format)).expect("pred");
        gold.check_same_tokens(&pred).expect("same tokens");
        let g = gold.view();
        let p = gold.view_of(pred.sentences.iter().map(|s| s.tags.as_slice()));
        let r = score(&g.tags, &p.tags, None, &opts).expect("score");
        std::hint::black_box(r.micro.f1);
        start.elapsed()
    };
    let e2e = median((0..7).map(|_| end_to_end(&gold_path)).collect());

    let pred = data::read(&pred_path, &ReadOptions::with_format(gold.format)).expect("pred");
    let g = gold.view();
    let p = gold.view_of(pred.sentences.iter().map(|s| s.tags.as_slice()));
    let metrics = median(
        (0..7)
            .map(|_| {
                let start = Instant::now();
                std::hint::black_box(
                    score(&g.tags, &p.tags, None, &opts)
                        .expect("score")
                        .micro
                        .f1,
                );
                start.elapsed()
            })
            .collect(),
    );
    let _ = std::fs::remove_file(&pred_path);
    println!(
        "score KLUE-NER dev ({} sentences, {} characters)",
        gold.len(),
        gold.token_count()
    );
    println!(
        "  end to end (read gold + predictions, check, score): {:>8.1} ms",
        e2e.as_secs_f64() * 1e3
    );
    println!(
        "  metrics only (all of them, 1000 bootstrap resamples): {:>6.1} ms",
        metrics.as_secs_f64() * 1e3
    );
    println!(
        "{{\"end_to_end_ms\":{:.2},\"metrics_ms\":{:.2},\"target_ms\":1000}}",
        e2e.as_secs_f64() * 1e3,
        metrics.as_secs_f64() * 1e3
    );
}
