//! nerlab's scores against the reference implementations, to within 1e-9, on seeded perturbations
//! of KLUE-NER dev and WikiANN-ko dev (boundary shifts, type swaps, missed and spurious spans,
//! `I-` after `O`). The expected numbers come from seqeval 1.2.2, scikit-learn 1.9.1 and nervaluate
//! 1.2.1, produced by `scripts/make_reference_scores.py` (its docstring quotes every call).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use nerlab::data::{self, Corpus, ReadOptions, SpanMode};
use nerlab::metrics::semeval::SemEvalCounts;
use nerlab::metrics::{Prf, ScoreOptions, ScoreReport, score};
use serde_json::Value;

const TOL: f64 = 1e-9;

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/reference_scores.json")).expect("fixture parses")
}

fn close(what: &str, got: f64, want: &Value) {
    let want = want
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: fixture value {want} is not a number"));
    assert!(
        (got - want).abs() <= TOL,
        "{what}: nerlab {got} vs reference {want}"
    );
}

fn check_prf(what: &str, got: Prf, want: &Value) {
    close(
        &format!("{what} precision"),
        got.precision,
        &want["precision"],
    );
    close(&format!("{what} recall"), got.recall, &want["recall"]);
    close(&format!("{what} f1"), got.f1, &want["f1"]);
}

/// The case's gold corpus, relative to `../shared/data`.
fn corpus_of(case: &Value) -> &str {
    case["corpus"].as_str().expect("the case names its corpus")
}

/// The gold corpus at `path` and the case's predicted tags (gold with the edits applied).
fn load_case(case: &Value, path: &Path) -> (Corpus, Vec<Vec<String>>) {
    let corpus = data::read(path, &ReadOptions::default()).expect("corpus reads");
    let table: Vec<&str> = case["tags"]
        .as_array()
        .expect("the case's tag table")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mut pred: Vec<Vec<String>> = corpus.sentences.iter().map(|s| s.tags.clone()).collect();
    for edit in case["edits"].as_array().expect("the case's edits") {
        let e: Vec<usize> = edit
            .as_array()
            .expect("an edit is [sentence, token, tag]")
            .iter()
            .filter_map(Value::as_u64)
            .map(|x| x as usize)
            .collect();
        pred[e[0]][e[1]] = table[e[2]].to_string();
    }
    (corpus, pred)
}

fn report(corpus: &Corpus, pred: &[Vec<String>], mode: SpanMode) -> ScoreReport {
    let gold_view = corpus.view();
    let pred_view = corpus.view_of(pred.iter().map(Vec::as_slice));
    let opts = ScoreOptions {
        mode,
        scheme: corpus.scheme,
        char_level: corpus.format.char_level(),
        bootstrap_iterations: 0,
        ..ScoreOptions::default()
    };
    score(&gold_view.tags, &pred_view.tags, None, &opts).expect("scores")
}

fn check_entity(name: &str, r: &ScoreReport, want: &Value) {
    check_prf(&format!("{name} micro"), r.micro, &want["micro"]);
    check_prf(&format!("{name} macro"), r.macro_avg, &want["macro"]);
    check_prf(&format!("{name} weighted"), r.weighted, &want["weighted"]);
    let want_types = want["per_type"].as_object().expect("per_type");
    let got_types: Vec<&String> = r.per_type.keys().collect();
    let ref_types: Vec<&String> = want_types.keys().collect();
    assert_eq!(got_types, ref_types, "{name}: entity types");
    for (ty, w) in want_types {
        let g = &r.per_type[ty];
        let prf = Prf {
            precision: g.precision,
            recall: g.recall,
            f1: g.f1,
        };
        check_prf(&format!("{name} {ty}"), prf, w);
        assert_eq!(
            Some(g.support as u64),
            w["support"].as_u64(),
            "{name} {ty} support"
        );
    }
}

fn check_semeval_counts(what: &str, got: &SemEvalCounts, want: &Value) {
    for (key, value) in [
        ("correct", got.correct),
        ("incorrect", got.incorrect),
        ("partial", got.partial),
        ("missed", got.missed),
        ("spurious", got.spurious),
    ] {
        assert_eq!(Some(value as u64), want[key].as_u64(), "{what} {key}");
    }
    close(
        &format!("{what} precision"),
        got.precision,
        &want["precision"],
    );
    close(&format!("{what} recall"), got.recall, &want["recall"]);
    close(&format!("{what} f1"), got.f1, &want["f1"]);
}

#[test]
fn scores_equal_seqeval_sklearn_and_nervaluate() {
    let fixture = fixture();
    let cases = fixture["cases"].as_array().expect("cases");
    let corpora: Vec<&str> = cases.iter().map(corpus_of).collect();
    let Some(paths) = common::shared_data_all(&corpora) else {
        return;
    };
    let mut checked = 0;
    for (case, path) in cases.iter().zip(&paths) {
        let name = case["name"].as_str().unwrap_or("?");
        let (corpus, pred) = load_case(case, path);
        let edits = case["edits"].as_array().map_or(0, Vec::len);
        assert!(
            edits > 1000,
            "{name}: the perturbation should touch many tags"
        );

        let strict = report(&corpus, &pred, SpanMode::Strict);
        check_entity(&format!("{name} strict"), &strict, &case["strict"]);
        let lenient = report(&corpus, &pred, SpanMode::Conlleval);
        check_entity(&format!("{name} conlleval"), &lenient, &case["conlleval"]);
        assert_ne!(
            strict.micro, lenient.micro,
            "{name}: invalid sequences must make the modes differ"
        );

        let sem = &case["semeval"];
        let overall = &strict.semeval.overall;
        for (scenario, got) in [
            ("strict", &overall.strict),
            ("exact", &overall.exact),
            ("partial", &overall.partial),
            ("ent_type", &overall.ent_type),
        ] {
            check_semeval_counts(
                &format!("{name} semeval {scenario}"),
                got,
                &sem["overall"][scenario],
            );
        }
        let want_types = sem["per_type"].as_object().expect("semeval per_type");
        assert_eq!(
            strict.semeval.per_type.len(),
            want_types.len(),
            "{name}: semeval types"
        );
        for (ty, w) in want_types {
            let g = &strict.semeval.per_type[ty];
            for (scenario, got) in [
                ("strict", &g.strict),
                ("exact", &g.exact),
                ("partial", &g.partial),
                ("ent_type", &g.ent_type),
            ] {
                check_semeval_counts(
                    &format!("{name} semeval {ty} {scenario}"),
                    got,
                    &w[scenario],
                );
            }
        }

        if let Some(want) = case.get("char") {
            let c = strict.char.as_ref().expect("KLUE gets character F1");
            close(
                &format!("{name} char with O"),
                c.macro_f1_with_o,
                &want["macro_f1_with_o"],
            );
            close(
                &format!("{name} char without O"),
                c.macro_f1_without_o,
                &want["macro_f1_without_o"],
            );
        }
        checked += 1;
    }
    // A light and a heavy perturbation of KLUE-NER dev and of WikiANN-ko dev, every one compared.
    assert_eq!(checked, 4, "reference cases checked");
}

#[test]
fn cli_json_equals_reference() {
    let fixture = fixture();
    let case = &fixture["cases"][1]; // klue-heavy
    let Some(path) = common::shared_data(corpus_of(case)) else {
        return;
    };
    let (corpus, pred) = load_case(case, &path);
    let dir = common::TempDir::new("cli-json");
    let pred_path = dir.path("pred.tsv");
    data::write(&corpus.with_tags(pred), &pred_path).expect("write predictions");
    for (mode, key) in [("strict", "strict"), ("conlleval", "conlleval")] {
        let out = Command::new(env!("CARGO_BIN_EXE_nerlab"))
            .args(["score", "--gold"])
            .arg(&corpus.path)
            .arg("--pred")
            .arg(&pred_path)
            .args(["--mode", mode, "--json"])
            .output()
            .expect("nerlab runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: Value = serde_json::from_slice(&out.stdout).expect("JSON output");
        assert_eq!(json["mode"], mode);
        assert_eq!(json["sentences"], 5000);
        for avg in ["micro", "macro"] {
            for m in ["precision", "recall", "f1"] {
                let got = json[avg][m].as_f64().expect("number");
                close(&format!("cli {mode} {avg} {m}"), got, &case[key][avg][m]);
            }
        }
        for (ty, w) in case[key]["per_type"].as_object().expect("types") {
            close(
                &format!("cli {mode} {ty} f1"),
                json["per_type"][ty]["f1"].as_f64().expect("f1"),
                &w["f1"],
            );
            assert_eq!(json["per_type"][ty]["support"], w["support"]);
        }
        for v in ["macro_f1_with_o", "macro_f1_without_o"] {
            close(
                &format!("cli char {v}"),
                json["char"][v].as_f64().expect("char"),
                &case["char"][v],
            );
        }
        assert_eq!(
            json["semeval"]["strict"]["correct"],
            case["semeval"]["overall"]["strict"]["correct"]
        );
        assert!(json["confusion"]["span"]["counts"].is_array());
        assert!(json["errors"]["counts"]["boundary"].as_u64().unwrap_or(0) > 0);
    }
}
