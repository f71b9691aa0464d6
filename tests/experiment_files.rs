//! The four papers' experiment files in `experiments/` (docs/RESULTS.md) plan as their headers
//! say, from the repository root where their `../shared/data` paths are read.

mod common;

use common::{nerlab, stderr, stdout};

/// `nerlab experiment plan experiments/<name> --json`, run from the repository root (the
/// working directory of integration tests).
fn plan(name: &str) -> Vec<serde_json::Value> {
    let file = format!("experiments/{name}");
    let out = nerlab(&["experiment", "plan", &file, "--json"]);
    assert!(out.status.success(), "{name}: {}", stderr(&out));
    serde_json::from_str(&stdout(&out)).expect("plan --json prints JSON")
}

fn count(points: &[serde_json::Value], axis: &str, value: &str) -> usize {
    points
        .iter()
        .filter(|p| p["axes"][axis].as_str() == Some(value))
        .count()
}

#[test]
fn the_four_experiment_files_plan_as_their_headers_say() {
    // The files name the corpora as ../shared/data/..., relative to the repository root.
    let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    if !shared.join("wikiann/xtreme-panx/train-ko.tsv").exists()
        || !shared.join("klue-ner/klue-ner-v1.1_dev.tsv").exists()
    {
        common::skip(&format!(
            "{} does not hold the shared corpora the files name",
            shared.display()
        ));
        return;
    }
    // MANER: 10 languages x 4 arms x 3 seeds; the four extra languages scored on 100 sentences.
    let maner = plan("maner.toml");
    assert_eq!(maner.len(), 120);
    for lang in ["gu", "jv", "my", "pa", "qu", "yo", "kk", "sw", "te", "bn"] {
        assert_eq!(count(&maner, "language", lang), 12, "{lang}");
    }
    assert_eq!(count(&maner, "variant", "word-mask"), 30);

    // Transfer: 20 source runs (10 languages x 2 methods), then 2 methods x 10 sources x 5 K x
    // 3 seeds, each from the source run of its own method.
    let transfer = plan("transfer-ko.toml");
    assert_eq!(transfer.len(), 20 + 300);
    assert_eq!(count(&transfer, "source.language", "fa"), 2 + 30);
    let main: Vec<&serde_json::Value> = transfer
        .iter()
        .filter(|p| p["axes"].get("data.k_shot").is_some())
        .collect();
    assert_eq!(main.len(), 300);
    assert!(
        main.iter()
            .all(|p| p["axes"].get("source.model.prompt").is_none())
    );

    // Polyglot: one stage run per seed, then 3 targets x 3 arms x 3 seeds.
    let polyglot = plan("polyglot.toml");
    assert_eq!(polyglot.len(), 3 + 27);
    assert_eq!(count(&polyglot, "variant", "polyglot-ft"), 9);

    // The ablation: 6 variants x 2 encoders x 3 seeds.
    let ablation = plan("ablation-klue.toml");
    assert_eq!(ablation.len(), 36);
    assert_eq!(count(&ablation, "encoder", "char"), 18);
}
