//! Experiments as a researcher runs them: `nerlab experiment run` on the issue's minimal file,
//! killed with SIGKILL part-way, run again (only what is missing is trained, the interrupted run is
//! resumed), a third time (nothing is trained); the report's means and standard deviations equal a
//! hand computation from the runs' report.json files; two runners started together train every
//! point exactly once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{nerlab, stderr, stdout};

fn experiment(dir: &Path, name: &str, seeds: &str) -> PathBuf {
    let out = dir.join("runs");
    let baseline = r#"baseline = { "model.head" = "softmax" }"#;
    let text = common::tiny_grid(name, &out.display().to_string(), 3, seeds, baseline);
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn fresh_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nerlab-exp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `(trained, resumed, already done, left to another process)` from a runner's summary line.
fn summary(out: &str) -> (usize, usize, usize, usize) {
    let line = out
        .lines()
        .find(|l| l.contains(" trained, "))
        .unwrap_or_else(|| panic!("{out}"));
    let n = |what: &str| -> usize {
        let before = line.split(what).next().unwrap();
        before
            .rsplit([' ', ':'])
            .find(|w| !w.is_empty())
            .unwrap()
            .parse()
            .unwrap()
    };
    (
        n(" trained"),
        n(" resumed"),
        n(" already done"),
        n(" left to another"),
    )
}

/// `nerlab experiment run FILE` on one thread per run, to completion.
fn run(file: &Path) -> std::process::Output {
    spawn_run(file).wait_with_output().unwrap()
}

/// `nerlab experiment run FILE` on one thread per run, started in the background.
fn spawn_run(file: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_nerlab"))
        .args([
            "experiment",
            "run",
            file.to_str().unwrap(),
            "--quiet",
            "--threads",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Each point's run folder and dev micro F1, from `nerlab experiment status --json`.
fn points(file: &Path) -> Vec<serde_json::Value> {
    let o = nerlab(&["experiment", "status", file.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap()
}

/// SIGTERM (what `kill`, systemd and Slurm's end of time send) stops `experiment run` as Ctrl-C
/// does: the running point checkpoints and its run reads `stopped` (the point `interrupted`), the
/// points not started stay planned, and the next run resumes it.
#[test]
fn sigterm_stops_an_experiment_resumably() {
    let dir = fresh_dir("sigterm");
    let out = dir.join("runs");
    // Long runs (30 epochs), so the signal lands inside one.
    let text = common::tiny_grid("long-heads", &out.display().to_string(), 30, "[1]", "");
    let file = dir.join("long-heads.toml");
    std::fs::write(&file, text).unwrap();
    let mut child = spawn_run(&file);
    let start = Instant::now();
    let running = loop {
        let p = points(&file).into_iter().find(|p| {
            p["state"] == "running"
                && Path::new(p["dir"].as_str().unwrap())
                    .join("checkpoint.json")
                    .exists()
        });
        if let Some(p) = p {
            break p;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the runner ended too soon"
        );
        assert!(start.elapsed() < Duration::from_secs(600), "no run started");
        std::thread::sleep(Duration::from_millis(50));
    };
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let o = child.wait_with_output().unwrap();
    assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"));
    assert_eq!(summary(&stdout(&o)).0, 0, "{}", stdout(&o));
    let run_dir = Path::new(running["dir"].as_str().unwrap());
    let status: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("status.json")).unwrap())
            .unwrap();
    assert_eq!(status["state"], "stopped");
    let states: Vec<String> = points(&file)
        .iter()
        .map(|p| p["state"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(states, ["interrupted", "planned"]);
    let o = run(&file);
    assert!(o.status.success(), "{}", stderr(&o));
    let (trained, resumed, _, busy) = summary(&stdout(&o));
    assert_eq!((trained, resumed, busy), (1, 1, 0), "{}", stdout(&o));
    assert!(points(&file).iter().all(|p| p["state"] == "done"));
}

#[test]
fn a_killed_experiment_finishes_only_what_is_missing_and_reports_by_hand_numbers() {
    let dir = fresh_dir("kill");
    let file = experiment(&dir, "demo-heads", "[1, 2]");
    let plan = nerlab(&["experiment", "plan", file.to_str().unwrap()]);
    assert!(stdout(&plan).contains("4 runs"), "{}", stdout(&plan));
    // Kill the runner once the first run is done and the second is under way.
    let mut child = spawn_run(&file);
    let start = Instant::now();
    loop {
        let states: Vec<String> = points(&file)
            .iter()
            .map(|p| p["state"].as_str().unwrap().to_string())
            .collect();
        if states.iter().any(|s| s == "done") && states.iter().any(|s| s == "running") {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the runner ended before it was killed"
        );
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "no progress: {states:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let states: Vec<String> = points(&file)
        .iter()
        .map(|p| p["state"].to_string())
        .collect();
    assert!(
        states.contains(&"\"interrupted\"".to_string()),
        "{states:?}"
    );
    let o = run(&file);
    assert!(o.status.success(), "{}", stderr(&o));
    let (trained, resumed, done, busy) = summary(&stdout(&o));
    assert_eq!((resumed, busy), (1, 0), "{}", stdout(&o));
    assert!(done >= 1 && trained + resumed + done == 4, "{}", stdout(&o));
    // A third run trains nothing.
    let o = run(&file);
    assert_eq!(summary(&stdout(&o)), (0, 0, 4, 0), "{}", stdout(&o));
    // The report equals a hand computation from the runs' report.json files.
    let o = nerlab(&["experiment", "report", file.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let mut by_head: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for p in points(&file) {
        let report: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(Path::new(p["dir"].as_str().unwrap()).join("report.json"))
                .unwrap(),
        )
        .unwrap();
        by_head
            .entry(p["axes"]["model.head"].as_str().unwrap().to_string())
            .or_default()
            .push(report["dev"]["micro"]["f1"].as_f64().unwrap());
    }
    let groups = r["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    // The baseline's table cell, made by hand: mean ± sd (n) [95 % t interval].
    let mut softmax_cell = String::new();
    for g in groups {
        let v = &by_head[g["model.head"].as_str().unwrap()];
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt();
        assert_eq!(g["n"], 2);
        assert!((g["mean"].as_f64().unwrap() - mean).abs() < 1e-12, "{g}");
        assert!((g["sd"].as_f64().unwrap() - sd).abs() < 1e-12, "{g}");
        // scipy.stats.t.ppf(0.975, 1) = 12.7062...
        let half = 12.706_204_736 * sd / 2f64.sqrt();
        let ci = g["ci95"].as_array().unwrap();
        assert!(
            (ci[0].as_f64().unwrap() - (mean - half)).abs() < 1e-6,
            "{g}"
        );
        assert!(
            (ci[1].as_f64().unwrap() - (mean + half)).abs() < 1e-6,
            "{g}"
        );
        if g["model.head"] == "softmax" {
            softmax_cell = format!(
                "| softmax | {mean:.4} ± {sd:.4} (2) [{:.4}, {:.4}] |",
                ci[0].as_f64().unwrap(),
                ci[1].as_f64().unwrap()
            );
        }
    }
    // The CRF compared with the softmax baseline by Almost Stochastic Order over the seeds.
    let crf = groups.iter().find(|g| g["model.head"] == "crf").unwrap();
    let softmax = groups
        .iter()
        .find(|g| g["model.head"] == "softmax")
        .unwrap();
    assert!(softmax["aso_vs_baseline"].is_null());
    let eps = nerlab::metrics::aso::epsilon_min(
        &by_head["crf"],
        &by_head["softmax"],
        0.95,
        1,
        1000,
        0xA50,
    )
    .unwrap();
    assert_eq!(crf["aso_vs_baseline"].as_f64(), Some(eps));
    let out = dir.join("runs");
    for f in ["results.json", "results.csv", "report.md"] {
        assert!(out.join(f).exists(), "{f}");
    }
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(!softmax_cell.is_empty());
    assert!(
        md.contains("| crf |") && md.contains("Seeds per cell: 2") && md.contains(&softmax_cell),
        "{softmax_cell}\n{md}"
    );
    // Another baseline from the command line: the softmax now compared with the CRF, printed
    // only, the written report keeping the file's baseline.
    let f = file.to_str().unwrap();
    let o = nerlab(&["experiment", "report", f, "--baseline", "model.head=crf"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("Compared with the baseline (model.head = crf)"),
        "{}",
        stdout(&o)
    );
    let o = nerlab(&[
        "experiment",
        "report",
        f,
        "--baseline",
        "model.head=crf",
        "--json",
    ]);
    let r: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let groups = r["groups"].as_array().unwrap();
    let of = |head: &str| groups.iter().find(|g| g["model.head"] == head).unwrap();
    assert!(of("crf")["aso_vs_baseline"].is_null());
    let eps = nerlab::metrics::aso::epsilon_min(
        &by_head["softmax"],
        &by_head["crf"],
        0.95,
        1,
        1000,
        0xA50,
    )
    .unwrap();
    assert_eq!(of("softmax")["aso_vs_baseline"].as_f64(), Some(eps));
    assert_eq!(std::fs::read_to_string(out.join("report.md")).unwrap(), md);
    let o = nerlab(&["experiment", "report", f, "--baseline", "model.head=lstm"]);
    assert!(
        !o.status.success()
            && stderr(&o).contains("--baseline model.head=lstm")
            && stderr(&o).contains("model.head takes"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn two_runners_started_together_train_every_point_once() {
    let dir = fresh_dir("two");
    let file = experiment(&dir, "together", "[1, 2]");
    let (a, b) = (spawn_run(&file), spawn_run(&file));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success(), "{}", stderr(&a));
    assert!(b.status.success(), "{}", stderr(&b));
    let (sa, sb) = (summary(&stdout(&a)), summary(&stdout(&b)));
    assert_eq!(sa.0 + sb.0, 4, "each point trained once: {sa:?} {sb:?}");
    assert_eq!(sa.1 + sb.1, 0, "nothing resumed: {sa:?} {sb:?}");
    for p in points(&file) {
        assert_eq!(p["state"], "done", "{p}");
        // One training's log: the evaluation at each of the 3 epochs, once.
        let metrics =
            std::fs::read_to_string(Path::new(p["dir"].as_str().unwrap()).join("metrics.jsonl"))
                .unwrap();
        assert_eq!(metrics.matches("\"kind\":\"eval\"").count(), 3, "{metrics}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An experiment with a stage `src` (one small run per entry of `sources`, a TOML list of
/// corpus lists) whose every run each seed fine-tunes on 2 examples per type.
fn staged(dir: &Path, name: &str, sources: &str, seeds: &str) -> PathBuf {
    let text = format!(
        r#"name = "{name}"
out = "{}"
[stages.src.base]
data.dev = "builtin:demo/dev"
model.source = "char"
train.epochs = 1
model.char.hidden = 32
model.char.layers = 1
model.char.heads = 2
model.char.intermediate = 64
[stages.src.grid]
"data.train" = {sources}
[base]
init_from = "stage:src"
data.train = ["builtin:demo/train"]
data.dev = "builtin:demo/dev"
data.k_shot = 2
model.source = "char"
train.epochs = 1
[grid]
seed = {seeds}
"#,
        dir.join("runs").display()
    );
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, text).unwrap();
    file
}

/// `nerlab experiment run FILE --jobs N`, one thread a run, to completion.
fn run_jobs(file: &Path, jobs: usize) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_nerlab"))
        .args(["experiment", "run", file.to_str().unwrap(), "--quiet"])
        .args(["--jobs", &jobs.to_string(), "--threads", "1"])
        .output()
        .unwrap()
}

/// A stage trains each source once; main points start from their source's run and wait for it
/// (two jobs at once); a source that fails fails its dependants with the reason, and the others
/// still finish.
#[test]
fn main_points_wait_for_their_stage_run_and_a_failed_source_fails_only_its_own() {
    let dir = fresh_dir("stages");
    // A corpus whose only tag is not a BIO tag: training on it fails after planning.
    let bad = dir.join("bad.conll");
    std::fs::write(&bad, "서울 X-LOC\n\n부산 X-LOC\n\n").unwrap();
    let sources = format!(r#"[["builtin:demo/train"], ["{}"]]"#, bad.display());
    let file = staged(&dir, "staged", &sources, "[1, 2]");
    let o = run_jobs(&file, 2);
    assert!(
        !o.status.success(),
        "a source failed, so the run must say so"
    );
    let err = stderr(&o);
    let pts = points(&file);
    assert_eq!(pts.len(), 2 + 2 * 2);
    let state = |i: usize| pts[i]["state"].as_str().unwrap().to_string();
    let source = |p: &serde_json::Value| p["axes"]["src.data.train"].as_str().unwrap().to_string();
    assert_eq!(state(0), "done");
    assert_eq!(state(1), "failed");
    for p in &pts[2..] {
        let from_bad = source(p).contains("bad.conll");
        let want = if from_bad { "planned" } else { "done" };
        assert_eq!(p["state"], want, "{p}\n{err}");
    }
    assert_eq!(
        err.matches(", which is failed").count(),
        2,
        "each dependant of the failed source says why:\n{err}"
    );
    // A done main point fine-tuned its source's run.
    let done = pts[2..].iter().find(|p| p["state"] == "done").unwrap();
    let run =
        nerlab::train::run_dir::RunDir::open(Path::new(done["dir"].as_str().unwrap())).unwrap();
    let cfg = run.config().unwrap();
    assert_eq!(
        cfg.init_from.as_deref(),
        Some(pts[0]["dir"].as_str().unwrap())
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// One source and more jobs than sources: the jobs left over must wait for the source a sibling
/// job has just taken, not find its folder not yet written and fail its dependants.
#[test]
fn spare_jobs_wait_for_a_source_another_job_has_just_taken() {
    let dir = fresh_dir("spare-jobs");
    let file = staged(
        &dir,
        "one-source",
        r#"[["builtin:demo/train"]]"#,
        "[1, 2, 3]",
    );
    let o = run_jobs(&file, 3);
    assert!(o.status.success(), "{}", stderr(&o));
    let pts = points(&file);
    assert_eq!(pts.len(), 4);
    assert!(pts.iter().all(|p| p["state"] == "done"), "{pts:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A point's run folder name (from `status --json`): what its packed file is named after.
fn name(p: &serde_json::Value) -> String {
    Path::new(p["dir"].as_str().unwrap())
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// `nerlab experiment pack|unpack FILE --json`, into and from `results/<name>/` beside FILE.
fn pack(verb: &str, file: &Path) -> serde_json::Value {
    let o = nerlab(&["experiment", verb, file.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{verb}: {}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap()
}

/// Runs packed as they end (`run --pack`), their folders deleted (a new machine) and unpacked
/// again: the report is the same to the last digit (the paired bootstrap re-scores the rebuilt
/// dev predictions, which are byte for byte the originals), `run` trains nothing, and a packed
/// file no model went into stays small. A dev corpus other than the one a run was scored on is
/// refused by name.
#[test]
fn packed_runs_unpack_into_the_same_report_on_a_new_machine() {
    let dir = fresh_dir("pack");
    let file = experiment(&dir, "packed", "[1]");
    let o = Command::new(env!("CARGO_BIN_EXE_nerlab"))
        .args(["experiment", "run", file.to_str().unwrap(), "--quiet"])
        .args(["--threads", "1", "--pack"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let packs = dir.join("results").join("packed");
    assert_eq!(
        std::fs::read_dir(&packs).unwrap().count(),
        2,
        "{}",
        stderr(&o)
    );
    let report = |file: &Path| -> serde_json::Value {
        let o = nerlab(&["experiment", "report", file.to_str().unwrap(), "--json"]);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_str(&stdout(&o)).unwrap()
    };
    let before = report(&file);
    assert!(
        before["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["paired_bootstrap"].is_object()),
        "the paired test reads the predictions: {before}"
    );
    assert!(
        before["groups"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["aso"].is_null()),
        "one seed a side: no ASO, which would compare two numbers: {before}"
    );
    let preds: Vec<(PathBuf, Vec<u8>)> = points(&file)
        .iter()
        .map(|p| {
            let f = Path::new(p["dir"].as_str().unwrap()).join("dev-predictions.tsv");
            let bytes = std::fs::read(&f).unwrap();
            (f, bytes)
        })
        .collect();
    // `pack` finds what `run --pack` wrote already there.
    let packed = pack("pack", &file);
    assert_eq!(packed["unchanged"], 2, "{packed}");
    assert!(packed["bytes"].as_u64().unwrap() < 40_000, "{packed}");

    std::fs::remove_dir_all(dir.join("runs")).unwrap();
    assert!(points(&file).iter().all(|p| p["state"] == "planned"));
    // A start killed before it wrote its configuration left an empty folder: it holds no run,
    // and the packed run takes its place.
    let first = points(&file)[0]["dir"].as_str().unwrap().to_string();
    std::fs::create_dir_all(&first).unwrap();
    let unpacked = pack("unpack", &file);
    assert_eq!(
        unpacked["written"].as_array().unwrap().len(),
        2,
        "{unpacked}"
    );
    assert!(points(&file).iter().all(|p| p["state"] == "done"));
    for (f, bytes) in &preds {
        assert_eq!(&std::fs::read(f).unwrap(), bytes, "{}", f.display());
    }
    let o = run(&file);
    assert_eq!(summary(&stdout(&o)), (0, 0, 2, 0), "{}", stdout(&o));
    let after = report(&file);
    assert_eq!(before["groups"], after["groups"]);
    // A second unpack keeps the folders it finds.
    assert_eq!(pack("unpack", &file)["kept"], 2);

    // The same runs over another dev corpus: the packed predictions do not fit it.
    std::fs::remove_dir_all(dir.join("runs")).unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    let other = dir.join("other-dev.toml");
    let dev = dir.join("dev.tsv");
    std::fs::write(&dev, "서울 B-LOC\n에 O\n\n").unwrap();
    std::fs::write(
        &other,
        text.replace(
            "data.dev = \"builtin:demo/dev\"",
            &format!("data.dev = \"{}\"", dev.display()),
        ),
    )
    .unwrap();
    // Their names (identities) differ with the corpus: pack the runs under the new names, as if
    // they had been scored on it.
    for (p, q) in points(&file).iter().zip(points(&other)) {
        let gz = std::fs::read(packs.join(format!("{}.json.gz", name(p)))).unwrap();
        let mut json = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut json)
            .unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
        v["run"] = name(&q).into();
        v["dev"]["source"] = dev.display().to_string().into();
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut e, v.to_string().as_bytes()).unwrap();
        std::fs::write(
            dir.join(format!("{}.json.gz", name(&q))),
            e.finish().unwrap(),
        )
        .unwrap();
    }
    let o = nerlab(&[
        "experiment",
        "unpack",
        other.to_str().unwrap(),
        "--dir",
        dir.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("is not the one this run was scored on"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A stage run keeps its model only in its folder, so it is unpacked only when every point that
/// starts from it is packed too; otherwise it is left for `run` to train again, with its model,
/// and the missing point then starts from it.
#[test]
fn a_stage_run_is_unpacked_only_when_every_point_it_feeds_is_packed() {
    let dir = fresh_dir("pack-stage");
    let file = staged(
        &dir,
        "packed-stage",
        r#"[["builtin:demo/train"]]"#,
        "[1, 2]",
    );
    let o = run_jobs(&file, 1);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(pack("pack", &file)["written"].as_array().unwrap().len(), 3);
    std::fs::remove_dir_all(dir.join("runs")).unwrap();
    let pts = points(&file);
    // The second main point's packed file is lost.
    std::fs::remove_file(
        dir.join("results/packed-stage")
            .join(format!("{}.json.gz", name(&pts[2]))),
    )
    .unwrap();
    let u = pack("unpack", &file);
    assert_eq!(u["written"].as_array().unwrap().len(), 1, "{u}");
    assert_eq!(u["stages_to_train"][0], name(&pts[0]), "{u}");
    let states: Vec<String> = points(&file)
        .iter()
        .map(|p| p["state"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(states, ["planned", "done", "planned"]);
    // The done point alone: done already, whatever state its stage run is in.
    let o = nerlab(&[
        "experiment",
        "run",
        file.to_str().unwrap(),
        "--quiet",
        "--point",
        "1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(summary(&stdout(&o)), (0, 0, 1, 0), "{}", stdout(&o));
    let o = run_jobs(&file, 1);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(summary(&stdout(&o)), (2, 0, 1, 0), "{}", stdout(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every run packed and unpacked, stage run included (it keeps no model then); then the file
/// grows by a seed. The new point cannot start from a stage run without a model: it fails saying
/// so and what to do, the done points count as done, and once the stage folder is moved aside
/// `run` trains it again and then the new point.
#[test]
fn a_point_added_after_unpacking_says_its_stage_run_has_no_model() {
    let dir = fresh_dir("pack-grown");
    let sources = r#"[["builtin:demo/train"]]"#;
    let file = staged(&dir, "grown", sources, "[1, 2]");
    let o = run_jobs(&file, 1);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(pack("pack", &file)["written"].as_array().unwrap().len(), 3);
    std::fs::remove_dir_all(dir.join("runs")).unwrap();
    assert_eq!(
        pack("unpack", &file)["written"].as_array().unwrap().len(),
        3
    );
    let file = staged(&dir, "grown", sources, "[1, 2, 3]");
    let o = run_jobs(&file, 1);
    assert!(!o.status.success(), "the new point cannot train");
    let stage = points(&file)[0]["dir"].as_str().unwrap().to_string();
    assert!(
        stderr(&o).contains(&format!(
            "it starts from {stage}, which is done but holds no model"
        )),
        "{}",
        stderr(&o)
    );
    assert_eq!(summary(&stdout(&o)), (0, 0, 3, 0), "{}", stdout(&o));
    std::fs::rename(&stage, format!("{stage}.aside")).unwrap();
    let o = run_jobs(&file, 1);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(summary(&stdout(&o)), (2, 0, 2, 0), "{}", stdout(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A done run that cannot be packed (here its dev predictions no longer match the dev corpus)
/// does not stop the others from being packed, and `pack` names it and fails.
#[test]
fn pack_names_a_run_it_cannot_pack_and_packs_the_others() {
    let dir = fresh_dir("pack-bad");
    let file = experiment(&dir, "bad-pack", "[1]");
    let o = run_jobs(&file, 1);
    assert!(o.status.success(), "{}", stderr(&o));
    let pts = points(&file);
    let broken = Path::new(pts[0]["dir"].as_str().unwrap());
    let run = nerlab::train::run_dir::RunDir::open(broken).unwrap();
    std::fs::write(run.dev_predictions().unwrap(), "엉뚱한 O\n\n").unwrap();
    let o = nerlab(&["experiment", "pack", file.to_str().unwrap(), "--json"]);
    assert!(!o.status.success(), "a run was not packed");
    let err = stderr(&o);
    assert!(
        err.contains(&format!("not packed: {}: ", name(&pts[0]))),
        "{err}"
    );
    let done: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        done["written"].as_array().unwrap().len(),
        pts.len() - 1,
        "{done}"
    );
    assert_eq!(done["failed"][0][0], name(&pts[0]), "{done}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--start-within` starts no run once its minutes are up (here at once): every point stays
/// planned, and the summary counts them stopped, for the next `run` to train.
#[test]
fn no_run_starts_after_the_start_within_deadline() {
    let dir = fresh_dir("deadline");
    let file = experiment(&dir, "deadline", "[1]");
    let o = Command::new(env!("CARGO_BIN_EXE_nerlab"))
        .args(["experiment", "run", file.to_str().unwrap(), "--quiet"])
        .args(["--threads", "1", "--start-within", "0"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(
            "0 trained, 0 resumed, 0 already done, 0 left to another process, 0 failed, 2 stopped"
        ),
        "{}",
        stdout(&o)
    );
    assert!(points(&file).iter().all(|p| p["state"] == "planned"));
    std::fs::remove_dir_all(&dir).unwrap();
}
