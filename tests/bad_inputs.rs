//! The bad-input catalogue's rows that are not pinned elsewhere (docs/RELIABILITY.md lists every
//! row with its test): each input is given to the `nerlab` binary as a user would, and the test
//! checks both what nerlab says and what it does (a clear error naming the file, never a panic,
//! never a silent wrong result; or a documented repair).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{TempDir, fixture, nerlab, stderr, stdout};

/// Runs nerlab, which must fail without panicking; returns its standard error.
fn fails(args: &[&str]) -> String {
    let o = nerlab(args);
    let err = stderr(&o);
    assert!(!o.status.success(), "expected a failure: {args:?}\n{err}");
    assert!(!err.contains("panicked"), "a panic: {err}");
    err
}

/// Runs nerlab, which must succeed; returns (stdout, stderr).
fn succeeds(args: &[&str]) -> (String, String) {
    let o = nerlab(args);
    let err = stderr(&o);
    assert!(o.status.success(), "{args:?} failed:\n{err}");
    (stdout(&o), err)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A copy of the tiny BERT token classifier (labels O, B/I- of MISC, PER, ORG, LOC) to break.
fn model_copy(dir: &TempDir, name: &str) -> PathBuf {
    let to = dir.path(name);
    std::fs::create_dir_all(&to).unwrap();
    for f in std::fs::read_dir(fixture("models/tiny-bert-ner"))
        .unwrap()
        .flatten()
    {
        std::fs::copy(f.path(), to.join(f.file_name())).unwrap();
    }
    to
}

/// A WikiANN corpus with every type of the tiny classifier, after `lead` (one sentence).
fn corpus_with_every_type(lead: &str) -> String {
    format!("{lead}\nKim\tB-PER\nLee\tB-ORG\nx\tB-MISC\nSeoul\tB-LOC\n\n")
}

// ---- corpora ----

#[test]
fn a_nul_byte_is_refused_with_its_line_and_column() {
    let dir = TempDir::new("bad-nul");
    let f = dir.write("nul.tsv", b"Seoul\tB-LOC\nis\0\tO\n\nKim\tB-PER\n");
    let err = fails(&["stats", s(&f)]);
    assert!(
        err.contains(&format!(
            "{}:2: a NUL byte at byte 3 of the line; a corpus is text, so the file is binary or \
             damaged",
            f.display()
        )),
        "{err}"
    );
}

/// A line of a million characters is one token: it reads, and a model tags it (WordPiece reads a
/// word of over 100 characters as one `[UNK]`, as transformers does).
#[test]
fn a_megabyte_line_is_one_token_and_is_tagged() {
    let dir = TempDir::new("bad-long-line");
    let lead = format!("{}\tB-LOC\nb\tO\n", "a".repeat(1 << 20));
    let f = dir.write("long.tsv", corpus_with_every_type(&lead).as_bytes());
    let (out, _) = succeeds(&["stats", s(&f)]);
    assert!(out.contains("tokens     6"), "{out}");
    let model = fixture("models/tiny-bert-ner");
    let predictions = dir.path("pred.tsv");
    let (out, _) = succeeds(&[
        "eval",
        "--model",
        s(&model),
        "--data",
        s(&f),
        "--predictions",
        s(&predictions),
    ]);
    assert!(out.contains("2 sentences, 6 tokens"), "{out}");
    let written = std::fs::read_to_string(&predictions).unwrap();
    assert_eq!(written.lines().filter(|l| !l.is_empty()).count(), 6);
}

/// A sentence of 100,000 tokens reads whole, and is tagged in windows, said once.
#[test]
fn a_sentence_of_100000_tokens_reads_and_is_tagged_in_windows() {
    let dir = TempDir::new("bad-long-sentence");
    let types = ["PER", "ORG", "LOC", "MISC"];
    let mut text = String::new();
    for i in 0..100_000 {
        let tag = if i % 7 == 0 {
            format!("B-{}", types[i % 4])
        } else {
            "O".into()
        };
        text += &format!("w{i}\t{tag}\n");
    }
    let f = dir.write("long.tsv", format!("{text}\n").as_bytes());
    let (out, _) = succeeds(&["stats", s(&f)]);
    assert!(out.contains("tokens     100,000"), "{out}");
    let model = fixture("models/tiny-bert-ner");
    let predictions = dir.path("pred.tsv");
    let (_, err) = succeeds(&[
        "eval",
        "--model",
        s(&model),
        "--data",
        s(&f),
        "--predictions",
        s(&predictions),
    ]);
    assert_eq!(
        err.matches("longer than the model's 64 positions").count(),
        1,
        "{err}"
    );
    // Every token has its prediction: the windows cover the sentence.
    let written = std::fs::read_to_string(&predictions).unwrap();
    assert_eq!(written.lines().filter(|l| !l.is_empty()).count(), 100_000);
}

/// Training on a corpus with no entity at all is refused: it would learn to say `O` and report an
/// F1 of 0 that looks like a result.
#[test]
fn a_training_corpus_with_no_entity_is_refused() {
    let dir = TempDir::new("bad-all-o");
    let f = dir.write("allo.tsv", b"a\tO\nb\tO\n\nc\tO\n\n");
    let err = fails(&[
        "train",
        "--quiet",
        "--train",
        s(&f),
        "--out",
        s(&dir.path("runs")),
        "--epochs",
        "1",
    ]);
    assert!(
        err.contains(&format!(
            "{}: no entity in the training data (every tag is O)",
            f.display()
        )),
        "{err}"
    );
}

/// A dev corpus with a type the training data lacks: said at the start, since each of its
/// entities can only be missed.
#[test]
fn a_dev_type_the_training_data_lacks_is_said() {
    let dir = TempDir::new("bad-dev-type");
    let dev = dir.write(
        "dev.tsv",
        "## 1\t<서울:CITY>에 <김:PS>\n서\tB-CITY\n울\tI-CITY\n에\tO\n \tO\n김\tB-PS\n\n".as_bytes(),
    );
    let config = dir.write("run.toml", run_config().as_bytes());
    let (_, err) = succeeds(&[
        "train",
        "--quiet",
        "--config",
        s(&config),
        "--dev",
        s(&dev),
        "--out",
        s(&dir.path("runs")),
    ]);
    assert!(
        err.contains(&format!(
            "{}: the dev corpus has types the training data lacks (CITY); the model cannot predict \
             them, so each of their entities counts as missed",
            dev.display()
        )),
        "{err}"
    );
}

/// Training corpora in different schemes (one IOB2, one BIOES) train together: each is read in
/// its own scheme and the model learns IOB2 labels.
#[test]
fn corpora_in_different_schemes_train_together() {
    let dir = TempDir::new("bad-schemes");
    let iob2 = dir.write(
        "iob2.tsv",
        b"Kim\tB-PER\nLee\tI-PER\nin\tO\nSeoul\tB-LOC\n\nPark\tB-PER\nwent\tO\n\n",
    );
    let bioes = dir.write(
        "bioes.tsv",
        b"New\tB-LOC\nYork\tE-LOC\nis\tO\nbig\tO\n\nKim\tS-PER\nsaid\tO\n\n",
    );
    let config = dir.write("run.toml", run_config().as_bytes());
    succeeds(&[
        "train",
        "--quiet",
        "--config",
        s(&config),
        "--train",
        s(&iob2),
        "--train",
        s(&bioes),
        "--dev",
        s(&iob2),
        "--out",
        s(&dir.path("runs")),
        "--name",
        "r",
    ]);
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path("runs/r/best/nerlab-model.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        meta["labels"],
        serde_json::json!(["O", "B-LOC", "I-LOC", "B-PER", "I-PER"])
    );
}

// ---- configurations ----

#[test]
fn a_misspelt_preset_gets_the_nearest_name() {
    let err = fails(&["train", "--preset", "klue-koelectr"]);
    assert!(
        err.contains("unknown preset \"klue-koelectr\"; did you mean klue-koelectra?"),
        "{err}"
    );
    let err = fails(&["train", "--preset", "zzz"]);
    assert!(
        err.contains("unknown preset \"zzz\": the presets are demo, "),
        "{err}"
    );
}

/// A small run: one epoch of a 16-wide character model, a checkpoint every 4 steps.
fn run_config() -> String {
    common::demo_char_run(3, 16, 1, 0.003, 4)
}

/// Trains the small run `name` under `dir/runs`, `extra` flags added; its folder.
fn train_small(dir: &TempDir, name: &str, extra: &[&str]) -> PathBuf {
    let config = dir.write("run.toml", run_config().as_bytes());
    let out = dir.path("runs");
    let mut args = vec![
        "train",
        "--quiet",
        "--config",
        s(&config),
        "--out",
        s(&out),
        "--name",
        name,
    ];
    args.extend_from_slice(extra);
    succeeds(&args);
    out.join(name)
}

fn set_state(run: &Path, state: &str) {
    let p = run.join("status.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    v["state"] = state.into();
    std::fs::write(&p, v.to_string()).unwrap();
}

/// `--resume` with `--epochs` lengthens the run (the schedule runs to the new end); fewer epochs
/// than it was set to, or a flag that changes what it trains, are refused.
#[test]
fn resume_applies_more_epochs_and_refuses_fewer() {
    let dir = TempDir::new("bad-resume-epochs");
    let run = train_small(&dir, "r", &[]);
    let err = fails(&["train", "--resume", s(&run), "--epochs", "0"]);
    assert!(
        err.contains("--epochs 0 with --resume: the run was set to 1 epochs; a resume may lengthen a run, never shorten it"),
        "{err}"
    );
    let (_, err) = succeeds(&["train", "--quiet", "--resume", s(&run), "--epochs", "2"]);
    assert!(
        err.contains("--epochs 2: the run goes on to 2 epochs (it was set to 1)"),
        "{err}"
    );
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(config.contains("epochs = 2"), "{config}");
    let status: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("status.json")).unwrap()).unwrap();
    assert_eq!(status["state"], "finished");
    assert_eq!(status["step"], status["total_steps"]);
    let err = fails(&["train", "--resume", s(&run), "--batch-size", "4"]);
    assert!(err.contains("cannot be used with '--batch-size"), "{err}");
}

// ---- model folders ----

/// Breaks a copy of the tiny classifier with `break_it`; `nerlab tag` on it must fail with the
/// message `expected` gives for the copy's folder.
fn a_broken_model_says(
    name: &str,
    break_it: impl FnOnce(&Path),
    expected: impl FnOnce(&Path) -> String,
) {
    let dir = TempDir::new(name);
    let m = model_copy(&dir, "m");
    break_it(&m);
    let err = fails(&["tag", "--model", s(&m), "Seoul"]);
    let want = expected(&m);
    assert!(err.contains(&want), "expected {want:?} in:\n{err}");
}

#[test]
fn a_truncated_safetensors_file_is_named_as_cut_short() {
    a_broken_model_says(
        "bad-truncated-weights",
        |m| {
            let w = m.join("model.safetensors");
            let bytes = std::fs::read(&w).unwrap();
            std::fs::write(&w, &bytes[..20_000]).unwrap();
        },
        |m| {
            format!(
                "reading {} (20000 bytes): the file is cut short or damaged",
                m.join("model.safetensors").display()
            )
        },
    );
}

#[test]
fn a_bin_that_is_not_a_state_dict_is_named() {
    a_broken_model_says(
        "bad-bin",
        |m| {
            std::fs::remove_file(m.join("model.safetensors")).unwrap();
            std::fs::write(m.join("pytorch_model.bin"), b"not a pickle").unwrap();
        },
        |m| {
            format!(
                "reading {}: not a PyTorch state dict as torch.save writes it",
                m.join("pytorch_model.bin").display()
            )
        },
    );
}

#[test]
fn an_unknown_model_type_is_named_with_the_supported_ones() {
    a_broken_model_says(
        "bad-model-type",
        |m| {
            let c = std::fs::read_to_string(m.join("config.json")).unwrap();
            let c = c.replace("\"model_type\": \"bert\"", "\"model_type\": \"mamba\"");
            std::fs::write(m.join("config.json"), c).unwrap();
        },
        |m| {
            format!(
                "{}: model_type \"mamba\" is not supported (bert, electra, roberta, xlm-roberta)",
                m.join("config.json").display()
            )
        },
    );
}

#[test]
fn a_folder_without_config_json_is_no_model() {
    a_broken_model_says(
        "bad-no-config",
        |m| std::fs::remove_file(m.join("config.json")).unwrap(),
        |m| {
            format!(
                "{}: no trained model here (expected a run directory with best/, a nerlab model \
                 folder, or a Hugging Face token-classification checkpoint with config.json)",
                m.display()
            )
        },
    );
}

#[test]
fn a_config_json_that_is_not_json_is_named() {
    a_broken_model_says(
        "bad-config-json",
        |m| std::fs::write(m.join("config.json"), "{").unwrap(),
        |m| {
            format!(
                "{}: not a model config: EOF while parsing an object",
                m.join("config.json").display()
            )
        },
    );
}

#[test]
fn a_model_without_a_tokenizer_is_named() {
    a_broken_model_says(
        "bad-no-tokenizer",
        |m| std::fs::remove_file(m.join("tokenizer.json")).unwrap(),
        |m| format!("{}: no tokenizer.json or vocab.txt", m.display()),
    );
}

// ---- run folders ----

/// A run whose `best/` was deleted: its latest checkpoint is offered instead, and opens.
#[test]
fn a_run_without_best_points_at_its_checkpoint() {
    let dir = TempDir::new("bad-no-best");
    let run = train_small(&dir, "r", &[]);
    for e in std::fs::read_dir(&run).unwrap().flatten() {
        if e.file_name().to_string_lossy().starts_with("best") {
            let p = e.path();
            if p.is_symlink() || p.is_file() {
                std::fs::remove_file(p).unwrap();
            } else {
                std::fs::remove_dir_all(p).unwrap();
            }
        }
    }
    let err = fails(&["eval", "--model", s(&run), "--data", "builtin:demo/dev"]);
    let ck = std::fs::read_dir(&run)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("checkpoint-"))
        .unwrap()
        .path();
    assert!(
        err.contains(&format!(
            "{}: this run has no best model (best/ was deleted, or the run never reached an \
             evaluation); its latest checkpoint is a model too: --model {}",
            run.display(),
            ck.display()
        )),
        "{err}"
    );
    succeeds(&["eval", "--model", s(&ck), "--data", "builtin:demo/dev"]);
}

/// A run folder copied from another machine: its model evaluates here; resuming it without its
/// corpora names the missing one and says why it may be missing.
#[test]
fn a_run_from_another_machine_evaluates_and_names_its_missing_corpora() {
    let dir = TempDir::new("bad-other-machine");
    let run = train_small(&dir, "r", &[]);
    set_state(&run, "interrupted");
    let c = std::fs::read_to_string(run.join("config.toml")).unwrap();
    std::fs::write(
        run.join("config.toml"),
        c.replace("builtin:demo/train", "/home/kim/corpora/train.tsv"),
    )
    .unwrap();
    succeeds(&["eval", "--model", s(&run), "--data", "builtin:demo/dev"]);
    let err = fails(&["train", "--quiet", "--resume", s(&run)]);
    assert!(
        err.contains(
            "loading /home/kim/corpora/train.tsv (a run copied from another machine needs its \
             corpora at the same paths, or its config.toml changed to where they are): \
             /home/kim/corpora/train.tsv: no such file or folder"
        ),
        "{err}"
    );
}

/// `--keep-checkpoints 3` keeps three; when the newest is damaged (its weights cut short), a
/// resume says so and continues from the one before it, to the same end as an uninterrupted run.
#[test]
fn a_damaged_checkpoint_is_passed_over_for_the_previous_one() {
    let dir = TempDir::new("bad-damaged-checkpoint");
    let whole = train_small(&dir, "whole", &["--keep-checkpoints", "3"]);
    let run = train_small(&dir, "cut", &["--keep-checkpoints", "3"]);
    let mut cks: Vec<PathBuf> = std::fs::read_dir(&run)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("checkpoint-")
        })
        .collect();
    cks.sort();
    assert_eq!(cks.len(), 3, "{cks:?}");
    // Step back to the middle one as if the run had stopped there, with the newest damaged: the
    // pointer names the newest, whose weights are cut short.
    let newest = cks[2].clone();
    let w = newest.join("model.safetensors");
    let bytes = std::fs::read(&w).unwrap();
    std::fs::write(&w, &bytes[..bytes.len() / 3]).unwrap();
    std::fs::remove_file(run.join("report.json")).unwrap();
    set_state(&run, "interrupted");
    let (_, err) = succeeds(&["train", "--quiet", "--resume", s(&run)]);
    assert!(
        err.contains(&format!(
            "checkpoint {} cannot be read (reading {}",
            newest.display(),
            w.display()
        )) && err.contains(&format!("resuming from {} instead", cks[1].display())),
        "{err}"
    );
    let report = |r: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(r.join("report.json")).unwrap()).unwrap()
    };
    assert_eq!(report(&run)["dev"], report(&whole)["dev"]);
}

// ---- resources ----

/// A disk too full for the next checkpoint (`NERLAB_FREE_BYTES` stands in for the file system):
/// the run stops before writing, says where and how much, and its last good checkpoint stays,
/// from which it resumes once there is space.
#[test]
fn a_full_disk_stops_the_run_before_a_save_and_keeps_the_last_checkpoint() {
    let dir = TempDir::new("bad-disk-full");
    let run = train_small(&dir, "r", &[]);
    let pointer = std::fs::read_to_string(run.join("checkpoint.json")).unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_nerlab"))
        .args(["train", "--quiet", "--resume", s(&run), "--epochs", "2"])
        .env("NERLAB_FREE_BYTES", "1000")
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "not enough free space in {} to save a checkpoint: it needs about",
            run.display()
        )) && err.contains("1 kB are free (free some space, or keep fewer checkpoints"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(run.join("checkpoint.json")).unwrap(),
        pointer,
        "the last good checkpoint stays current"
    );
    let status: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("status.json")).unwrap()).unwrap();
    assert_eq!(status["state"], "failed");
    succeeds(&["train", "--quiet", "--resume", s(&run)]);
    let status: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("status.json")).unwrap()).unwrap();
    assert_eq!(status["state"], "finished");
    assert_eq!(status["step"], status["total_steps"]);
}
