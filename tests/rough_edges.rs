//! What a new user hits in the first hour (issue 19), through the binary as they run it: a run
//! that fails before its first step records why and never shows as running; configuration type
//! errors name the file, the key and the place; the device has one spelling; `-` is standard
//! input for every text or corpus argument; files in UTF-16, CP949 or Latin-1 are named as such.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TempDir, nerlab, nerlab_with_stdin, stderr, utf16le};

#[test]
fn a_run_that_fails_before_its_first_step_is_listed_as_failed_with_its_reason() {
    let dir = TempDir::new("edges-ghost");
    let bad = dir.write("train.tsv", &utf16le("서울\tB-LC\n에서\tO\n"));
    let out = dir.path("runs");
    let o = nerlab(&[
        "train",
        "--quiet",
        "--train",
        &bad.to_string_lossy(),
        "--dev",
        "builtin:demo/dev",
        "--model",
        "char",
        "--out",
        &out.to_string_lossy(),
        "--name",
        "ghost",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("looks like UTF-16"), "{}", stderr(&o));
    // A folder that an older nerlab left with only config.toml.
    std::fs::create_dir_all(out.join("old")).unwrap();
    std::fs::copy(out.join("ghost/config.toml"), out.join("old/config.toml")).unwrap();
    let o = nerlab(&["runs", "--out", &out.to_string_lossy(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    let row = |name: &str| rows.iter().find(|r| r["name"] == name).unwrap().clone();
    assert_eq!(row("ghost")["state"], "failed");
    let message = row("ghost")["message"].as_str().unwrap().to_string();
    assert!(message.contains("looks like UTF-16"), "{message}");
    assert_eq!(row("old")["state"], "interrupted");
    let o = nerlab(&["runs", "--out", &out.to_string_lossy()]);
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(!table.contains("running"), "{table}");
    // The run folder's config spells the device as the flags and the docs do.
    let config = std::fs::read_to_string(out.join("ghost/config.toml")).unwrap();
    assert!(config.contains("device = \"cpu\""), "{config}");
}

#[test]
fn a_type_error_in_a_configuration_names_the_file_the_key_and_the_place() {
    let dir = TempDir::new("edges-config");
    let config = dir.write("run.toml", b"seed = 1\n\n[train]\nepochs = \"three\"\n");
    let o = nerlab(&["train", "--config", &config.to_string_lossy()]);
    assert!(!o.status.success());
    let want = format!(
        "{}:4:10: train.epochs: expected a whole number (0 or more), found the string \"three\"",
        config.display()
    );
    assert!(stderr(&o).contains(&want), "{}", stderr(&o));
    // A configuration saved in UTF-16 says so.
    let config = dir.write("utf16.toml", &utf16le("seed = 1\n"));
    let o = nerlab(&["train", "--config", &config.to_string_lossy()]);
    assert!(stderr(&o).contains("looks like UTF-16"), "{}", stderr(&o));
}

#[test]
fn files_in_other_encodings_are_named_with_the_iconv_call_that_converts_them() {
    let dir = TempDir::new("edges-encodings");
    let cases: [(&str, Vec<u8>, &str); 3] = [
        (
            "utf16.tsv",
            utf16le("Seoul\tB-LOC\nis\tO\n"),
            "iconv -f UTF-16 -t UTF-8",
        ),
        // 서울 / 에서 in CP949.
        (
            "cp949.tsv",
            b"\xBC\xAD\xBF\xEF\tB-LC\n\xBF\xA1\xBC\xAD\tO\n".to_vec(),
            "iconv -f CP949 -t UTF-8",
        ),
        (
            "latin1.tsv",
            b"M\xFCller\tB-PER\nin\tO\nK\xF6ln\tB-LOC\n".to_vec(),
            "iconv -f LATIN1 -t UTF-8",
        ),
    ];
    for (name, bytes, iconv) in cases {
        let path = dir.write(name, &bytes);
        let o = nerlab(&["stats", &path.to_string_lossy()]);
        assert!(!o.status.success());
        let err = stderr(&o);
        assert!(err.contains(name) && err.contains(iconv), "{name}: {err}");
        assert!(!err.contains("invalid UTF-8 at byte"), "{name}: {err}");
    }
}

#[test]
fn a_dash_is_standard_input_for_text_and_corpus_arguments() {
    let corpus = b"Seoul\tB-LOC\nis\tO\n\nKim\tB-PER\nsaid\tO\n";
    let o = nerlab_with_stdin(&["stats", "-", "--json"], Some(corpus));
    assert!(o.status.success(), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["entities"], 2);
    let o = nerlab_with_stdin(
        &["sample", "-", "--max-sentences", "1", "-o", "-"],
        Some(corpus),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(text.lines().filter(|l| !l.is_empty()).count(), 2, "{text}");
    let o = nerlab(&["score", "--gold", "-", "--pred", "-"]);
    assert!(
        stderr(&o).contains("cannot both be standard input"),
        "{}",
        stderr(&o)
    );
    let Some(model) = common::shared_model("splade-tiny-bert-mlm") else {
        return;
    };
    let o = nerlab_with_stdin(
        &["encode", "--model", &model.to_string_lossy(), "--json", "-"],
        Some("Seoul is big.\nKorea\n".as_bytes()),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "one result per line of input");
    assert_eq!(lines[0]["tokens"][1], "seoul");
    assert_eq!(lines[1]["tokens"][1], "korea");
}

/// `--resume` continues a run exactly as it was configured: a flag that would change it (here a
/// learning rate of 5) is refused, not silently ignored.
#[test]
fn flags_that_would_change_a_resumed_run_are_refused() {
    let o = nerlab(&["train", "--resume", "runs/x", "--lr", "5"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("'--resume <RESUME>' cannot be used with '--lr <LR>'"),
        "{err}"
    );
}
