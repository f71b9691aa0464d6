//! The `nerlab` binary as a user runs it: help with no arguments, stats, sample and score, and
//! errors that name the file and line.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::{TempDir, nerlab, stderr, stdout};
use nerlab::data::{self, ReadOptions};

#[test]
fn help_lists_every_command() {
    let o = nerlab(&["--help"]);
    assert!(o.status.success());
    let out = stdout(&o);
    for cmd in [
        "stats", "score", "sample", "train", "eval", "tag", "runs", "bench", "gui",
    ] {
        assert!(out.contains(cmd), "help lists {cmd}: {out}");
    }
}

#[test]
fn the_workbench_without_a_display_fails_with_a_clear_message() {
    let o = Command::new(env!("CARGO_BIN_EXE_nerlab"))
        .args(["gui", "--fresh", "--runs", "/nonexistent-nerlab-runs"])
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("could not open the workbench window"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn stats_table_and_json() {
    let Some(path) = common::shared_data("klue-ner/klue-ner-v1.1_dev.tsv") else {
        return;
    };
    let path = path.to_string_lossy().into_owned();
    let o = nerlab(&["stats", &path]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("sentences  5,000"), "{out}");
    assert!(out.contains("entities   14,255 (strict IOB2)"), "{out}");
    assert!(out.contains("  PS       4,418"), "{out}");
    let o = nerlab(&["stats", &path, "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(json["entities"], 14255);
    assert_eq!(json["per_type"]["QT"], 3150);
    assert_eq!(json["per_type"]["LC"], 1648);
    assert_eq!(json["repairs"]["tags"], 2);
}

#[test]
fn errors_name_file_and_line() {
    let dir = TempDir::new("cli-errors");
    let bad = dir.write("bad.tsv", b"Seoul\tB-LOC\nis\tO\nBusan\tB_LOC\n");
    let o = nerlab(&["stats", &bad.to_string_lossy()]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("bad.tsv:3: unknown tag \"B_LOC\""), "{err}");
    let o = nerlab(&["stats", &dir.0.to_string_lossy()]);
    assert!(stderr(&o).contains("is a directory"), "{}", stderr(&o));
}

#[test]
fn score_human_table() {
    let dir = TempDir::new("cli-score");
    let gold = dir.write(
        "gold.tsv",
        b"Kim\tB-PER\nin\tO\nSeoul\tB-LOC\n\nLee\tB-PER\nwent\tO\n",
    );
    let pred = dir.write(
        "pred.tsv",
        b"Kim\tB-PER\nin\tO\nSeoul\tB-ORG\n\nLee\tO\nwent\tB-LOC\n",
    );
    let o = nerlab(&[
        "score",
        "--gold",
        &gold.to_string_lossy(),
        "--pred",
        &pred.to_string_lossy(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with("mode strict (iob2), 2 sentences, 5 tokens"),
        "{out}"
    );
    // One of two predictions right and one of three gold entities found.
    let row = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(name))
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    assert_eq!(
        row("micro"),
        ["micro", "0.3333", "0.3333", "0.3333", "3", "3"],
        "{out}"
    );
    assert_eq!(
        row("PER"),
        ["PER", "1.0000", "0.5000", "0.6667", "2", "1"],
        "{out}"
    );
    assert!(out.contains("SemEval-2013"), "{out}");
    let mismatch = dir.write(
        "short.tsv",
        b"Kim\tB-PER\nin\tO\nBusan\tB-LOC\n\nLee\tB-PER\nwent\tO\n",
    );
    let o = nerlab(&[
        "score",
        "--gold",
        &gold.to_string_lossy(),
        "--pred",
        &mismatch.to_string_lossy(),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("short.tsv:3: prediction token \"Busan\" differs"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn sample_k_shot_is_deterministic_and_in_the_corpus_format() {
    let Some(path) = common::shared_data("wikiann/xtreme-panx/train-ko.tsv") else {
        return;
    };
    let dir = TempDir::new("cli-sample");
    let (a, b, c) = (dir.path("a.tsv"), dir.path("b.tsv"), dir.path("c.tsv"));
    let p = path.to_string_lossy();
    for (out, seed) in [(&a, "1"), (&b, "1"), (&c, "2")] {
        let o = nerlab(&[
            "sample",
            &p,
            "--k",
            "5",
            "--seed",
            seed,
            "-o",
            &out.to_string_lossy(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stdout(&o).contains("5-shot"), "{}", stdout(&o));
    }
    let read = |p| std::fs::read(p).unwrap();
    assert_eq!(read(&a), read(&b));
    assert_ne!(read(&a), read(&c));
    let sample = data::read(&a, &ReadOptions::default()).unwrap();
    assert_eq!(sample.format, data::Format::Wikiann);
    let s =
        nerlab::data::sample::k_shot(&data::read(&path, &ReadOptions::default()).unwrap(), 5, 1);
    assert!(s.mentions.values().all(|&n| n >= 5));
    assert_eq!(sample.len(), s.indices.len());

    let o = nerlab(&[
        "sample",
        &p,
        "--max-sentences",
        "100",
        "--seed",
        "3",
        "-o",
        &c.to_string_lossy(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(data::read(&c, &ReadOptions::default()).unwrap().len(), 100);
}

#[test]
fn encode_prints_tokens_hidden_states_and_attention() {
    let Some(dir) = common::shared_model("splade-tiny-bert-mlm") else {
        return;
    };
    let o = nerlab(&[
        "encode",
        "--model",
        &dir.to_string_lossy(),
        "--layer",
        "1",
        "--json",
        "Seoul is the capital of South Korea.",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let ids: Vec<u64> = json["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    // transformers: tokenizer("Seoul is the capital of South Korea.")["input_ids"]
    assert_eq!(
        ids,
        [101, 10884, 2003, 1996, 3007, 1997, 2148, 4420, 1012, 102]
    );
    assert_eq!(json["tokens"][1], "seoul");
    assert_eq!(json["offsets"][1], serde_json::json!([0, 5]));
    let hidden = json["hidden"].as_array().unwrap();
    assert_eq!(
        (hidden.len(), hidden[0].as_array().unwrap().len()),
        (10, 128)
    );
    // transformers' last hidden state, first values of token 0 (see make_model_fixtures.py).
    assert!((hidden[0][0].as_f64().unwrap() - -0.6368).abs() < 1e-3);
    let attention = json["attention"].as_array().unwrap();
    assert_eq!(attention.len(), 2, "heads");
    for row in attention[0].as_array().unwrap() {
        let sum: f64 = row
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .sum();
        assert!((sum - 1.0).abs() < 1e-5);
    }
    let o = nerlab(&[
        "encode",
        "--model",
        &dir.to_string_lossy(),
        "--layer",
        "5",
        "x",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--layer 5: the model has layers 0..2"),
        "{}",
        stderr(&o)
    );
}

/// The evaluation after the last step (max_steps inside an eval interval) is logged with the epoch
/// the run reached, not the reset counter of a finished stage.
#[test]
fn the_final_evaluation_records_the_epoch_reached() {
    let dir = TempDir::new("cli-final-eval");
    let out = dir.path("runs");
    let o = nerlab(&[
        "train",
        "--quiet",
        "--preset",
        "demo",
        "--max-steps",
        "3",
        "--eval-every",
        "100",
        "--threads",
        "1",
        "--out",
        &out.to_string_lossy(),
        "--name",
        "r",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let metrics = std::fs::read_to_string(out.join("r/metrics.jsonl")).unwrap();
    let evals: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "eval")
        .collect();
    assert_eq!(evals.len(), 1, "{metrics}");
    let epoch = evals[0]["epoch"].as_f64().unwrap();
    assert!(epoch > 0.0 && epoch <= 1.0, "epoch {epoch}: {metrics}");
}

/// `bench --no-dropout` trains deterministically with dropout really off (the first step's loss
/// differs from a run with dropout), reports every step's loss, and dumps the head's initial
/// weights for bench/reference.py.
#[test]
fn bench_without_dropout_reports_losses_and_dumps_the_head() {
    let Some(model) = common::obtained_model("splade-tiny-bert-mlm") else {
        return;
    };
    let Some(data) = common::shared_data("wikiann/xtreme-panx/dev-en.tsv") else {
        return;
    };
    let dir = TempDir::new("cli-bench-trajectory");
    let work = dir.path("work.json");
    let run = |extra: &[&str]| -> Vec<f64> {
        let mut args = vec![
            "bench",
            "--model",
            model.to_str().unwrap(),
            "--task",
            "train",
            "--data",
            data.to_str().unwrap(),
            "--steps",
            "3",
            "--threads",
            "1",
            "--json",
        ];
        args.extend_from_slice(extra);
        let o = nerlab(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        v["losses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let w = work.to_str().unwrap();
    let a = run(&["--no-dropout", "--dump-batches", w]);
    assert_eq!(a.len(), 5, "two warm-up steps and three timed ones");
    assert_eq!(a, run(&["--no-dropout"]));
    assert_ne!(a[0], run(&[])[0], "dropout changes the first loss");
    let dump: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&work).unwrap()).unwrap();
    assert_eq!(dump["dropout"], false);
    let labels = dump["num_labels"].as_u64().unwrap();
    assert_eq!(
        dump["head"]["proj.weight"]["shape"],
        serde_json::json!([labels, 128])
    );
    assert_eq!(
        dump["head"]["proj.weight"]["data"]
            .as_array()
            .unwrap()
            .len() as u64,
        labels * 128
    );
}
