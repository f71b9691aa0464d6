//! Runs survive crashes: `kill -9` in the middle of an epoch, then `nerlab train --resume`, ends
//! with exactly the `report.json` of an uninterrupted run with the same seed; a NaN loss stops a run
//! with a clear message and keeps the last good checkpoint. On the character model and the built-in
//! demo corpus, with one thread (so floating-point work is ordered the same in every run), and with
//! FGM and R-Drop on, whose embedding perturbation must be undone exactly.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CONFIG: &str = r#"
seed = 11
threads = 1
[data]
train = ["builtin:demo/train"]
dev = "builtin:demo/dev"
[model]
source = "char"
head = "crf"
[model.char]
hidden = 32
layers = 1
heads = 2
intermediate = 64
max_positions = 256
dropout = 0.1
[train]
epochs = 3
batch_size = 16
lr = 0.003
warmup_ratio = 0.1
checkpoint_every = 5
log_every = 1
fgm_epsilon = 1.0
rdrop_alpha = 1.0
"#;

fn nerlab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nerlab"))
}

fn train(config: &Path, out: &Path, name: &str) -> std::process::Child {
    nerlab()
        .args(["train", "--quiet", "--config"])
        .arg(config)
        .arg("--out")
        .arg(out)
        .args(["--name", name])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nerlab starts")
}

fn checkpoint_step(run: &Path) -> Option<usize> {
    let text = std::fs::read_to_string(run.join("checkpoint.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    // `checkpoint-<step>` or, for a step saved again, `checkpoint-<step>.<n>`.
    let name = v["dir"].as_str()?.strip_prefix("checkpoint-")?;
    name.split('.').next()?.parse().ok()
}

/// Starts run `name` and returns it, still training, once a checkpoint at or after `step` exists;
/// with its folder.
fn train_until(
    config: &Path,
    out: &Path,
    name: &str,
    step: usize,
) -> (std::process::Child, PathBuf) {
    let mut child = train(config, out, name);
    let run = out.join(name);
    let start = Instant::now();
    while checkpoint_step(&run).is_none_or(|s| s < step) {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no checkpoint at step {step}"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, run)
}

/// Starts run `name` and kills it with SIGKILL once a checkpoint at or after `step` exists;
/// the run folder and the step of its last checkpoint.
fn train_and_kill(config: &Path, out: &Path, name: &str, step: usize) -> (PathBuf, usize) {
    let (mut child, run) = train_until(config, out, name, step);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let killed_at = checkpoint_step(&run).unwrap();
    (run, killed_at)
}

/// Trains run `whole` to its end without interruption: the reference a resumed run must equal.
fn train_whole(config: &Path, out: &Path) -> PathBuf {
    let whole = train(config, out, "whole").wait_with_output().unwrap();
    assert!(
        whole.status.success(),
        "{}",
        String::from_utf8_lossy(&whole.stderr)
    );
    out.join("whole")
}

/// `nerlab train --resume`: its log, which must say it continued from `step`.
fn resume(run: &Path, step: usize) {
    let resumed = nerlab()
        .args(["train", "--quiet", "--resume"])
        .arg(run)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{log}");
    assert!(
        log.contains(&format!("resumed at step {step}")),
        "it must continue, not restart: {log}"
    );
}

fn report(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).unwrap()).unwrap()
}

#[test]
fn kill_nine_then_resume_equals_an_uninterrupted_run() {
    let dir = common::TempDir::new("resume");
    let config = dir.write("run.toml", CONFIG.as_bytes());
    let out: PathBuf = dir.path("runs");

    let whole = train_whole(&config, &out);

    // The demo's 374 training sentences make 24 batches an epoch: kill after the checkpoint at
    // step 30 (inside the second epoch), before the run ends.
    let (run, killed_at) = train_and_kill(&config, &out, "killed", 30);
    assert!(
        !killed_at.is_multiple_of(24),
        "the checkpoint should be mid-epoch (step {killed_at})"
    );
    assert!(!run.join("report.json").exists());
    let status: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("status.json")).unwrap()).unwrap();
    assert_eq!(
        status["state"], "running",
        "a killed run still looks running"
    );

    resume(&run, killed_at);
    assert_eq!(
        report(&run),
        report(&whole),
        "resumed and uninterrupted runs must end the same"
    );
    // The metrics log has each step once.
    let steps: Vec<u64> = std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["kind"] == "train")
        .filter_map(|v| v["step"].as_u64())
        .collect();
    assert_eq!(steps, (1..=steps.len() as u64).collect::<Vec<_>>());
}

#[test]
fn nan_loss_fails_clearly_and_keeps_the_last_good_checkpoint() {
    let dir = common::TempDir::new("nan");
    let config = dir.write(
        "run.toml",
        format!("{CONFIG}inject_nan_at_step = 13\n").as_bytes(),
    );
    let out = dir.path("runs");
    let o = train(&config, &out, "nan").wait_with_output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("the loss became NaN at step 13"), "{err}");
    assert!(err.contains("the last good checkpoint is"), "{err}");
    let run = out.join("nan");
    assert_eq!(
        checkpoint_step(&run),
        Some(10),
        "the checkpoint before the NaN step stays"
    );
    let status: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("status.json")).unwrap()).unwrap();
    assert_eq!(status["state"], "failed");
    assert!(status["message"].as_str().unwrap().contains("NaN"));
}

#[test]
fn a_two_stage_run_killed_in_its_second_stage_resumes_to_the_same_end() {
    let dir = common::TempDir::new("resume-stages");
    // Stage 1: two epochs of the demo (48 steps); stage 2: two more with a fresh optimizer.
    let text = format!(
        "{}[finetune]\ntrain = [\"builtin:demo/train\"]\nepochs = 2\nlr = 0.002\n",
        CONFIG.replace("epochs = 3", "epochs = 2")
    );
    let config = dir.write("run.toml", text.as_bytes());
    let out: PathBuf = dir.path("runs");
    let whole = train_whole(&config, &out);
    let (run, killed_at) = train_and_kill(&config, &out, "killed", 60);
    assert!(killed_at > 48, "killed in stage 2 (step {killed_at})");
    resume(&run, killed_at);
    assert_eq!(
        report(&run),
        report(&whole),
        "resumed and uninterrupted two-stage runs must end the same"
    );
    assert!(run.join("stage1-best").join("nerlab-model.json").exists());
}

/// SIGTERM (what Slurm, systemd and `kill` send) stops a run as Ctrl-C does: it checkpoints where
/// it is and exits resumable, and the resumed run ends as an uninterrupted one.
#[test]
fn sigterm_checkpoints_and_the_resumed_run_equals_an_uninterrupted_one() {
    let dir = common::TempDir::new("sigterm");
    let config = dir.write("run.toml", CONFIG.as_bytes());
    let out: PathBuf = dir.path("runs");
    let whole = train_whole(&config, &out);

    let (child, run) = train_until(&config, &out, "termed", 30);
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let ended = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&ended.stderr);
    assert!(ended.status.success(), "a stopped run exits cleanly: {log}");
    let status: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("status.json")).unwrap()).unwrap();
    assert_eq!(status["state"], "stopped", "{log}");
    assert!(!run.join("report.json").exists(), "stopped before its end");
    let at = checkpoint_step(&run).unwrap();
    assert_eq!(
        status["step"].as_u64(),
        Some(at as u64),
        "the checkpoint is where it stopped"
    );
    resume(&run, at);
    assert_eq!(report(&run), report(&whole));
}

/// What a `kill -9` in the middle of writing a checkpoint leaves: the next checkpoint's folder half
/// written (beside it, under `.tmp-`) or complete but not yet made current. Resuming must take the
/// last checkpoint made current and end as an uninterrupted run.
#[test]
fn a_checkpoint_cut_off_while_written_is_passed_over_on_resume() {
    let dir = common::TempDir::new("cut-checkpoint");
    let config = dir.write("run.toml", CONFIG.as_bytes());
    let out: PathBuf = dir.path("runs");
    let whole = train_whole(&config, &out);

    let (run, killed_at) = train_and_kill(&config, &out, "cut", 30);
    // The checkpoint being written when the process died: its files, truncated, in the folder
    // being filled, and a later one renamed into place before the pointer moved to it.
    let current = run.join(format!("checkpoint-{killed_at:07}"));
    for next in [
        run.join(format!(".tmp-checkpoint-{:07}", killed_at + 5)),
        run.join(format!("checkpoint-{:07}", killed_at + 10)),
    ] {
        std::fs::create_dir_all(&next).unwrap();
        for f in std::fs::read_dir(&current).unwrap().flatten() {
            let bytes = std::fs::read(f.path()).unwrap();
            std::fs::write(next.join(f.file_name()), &bytes[..bytes.len() / 2]).unwrap();
        }
    }
    resume(&run, killed_at);
    assert_eq!(report(&run), report(&whole));
}

/// A pretrained model's tokenizer goes into every checkpoint and best model from memory, not by
/// copying from the folder the model was loaded from: a finished run lengthened with `--resume
/// --max-steps` loads its last checkpoint, which is deleted once a newer one is published (one
/// checkpoint kept), and every checkpoint and best model after it must still carry the
/// tokenizer, or the run cannot be resumed or tagged with again.
#[test]
fn a_lengthened_pretrained_run_keeps_its_tokenizer_in_every_later_checkpoint() {
    let dir = common::TempDir::new("resume-tokenizer");
    let model = common::fixture("models/tiny-xlmr");
    let config = dir.write(
        "run.toml",
        format!(
            "seed = 5\nthreads = 1\n[data]\ntrain = [\"builtin:demo/train\"]\n\
             dev = \"builtin:demo/dev[:20]\"\n[model]\nsource = {:?}\nhead = \"softmax\"\n\
             [train]\nepochs = 3\nbatch_size = 16\nlr = 0.001\nmax_steps = 4\n\
             checkpoint_every = 2\neval_every = 2\n",
            model.to_str().unwrap()
        )
        .as_bytes(),
    );
    let out = dir.path("runs");
    let first = train(&config, &out, "lengthened")
        .wait_with_output()
        .unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let run = out.join("lengthened");
    assert_eq!(checkpoint_step(&run), Some(4));
    let longer = nerlab()
        .args(["train", "--quiet", "--resume"])
        .arg(&run)
        .args(["--max-steps", "10"])
        .output()
        .unwrap();
    assert!(
        longer.status.success(),
        "{}",
        String::from_utf8_lossy(&longer.stderr)
    );
    assert_eq!(checkpoint_step(&run), Some(10));
    assert!(run.join("report.json").exists());
    let mut models = 0;
    for entry in std::fs::read_dir(&run).unwrap() {
        let path = entry.unwrap().path();
        if path.join("model.safetensors").exists() {
            models += 1;
            assert!(
                path.join("tokenizer.json").exists(),
                "{} has no tokenizer.json",
                path.display()
            );
        }
    }
    assert!(models >= 2, "a checkpoint and a best model at least");
    // And the run tags, from its best model.
    let tagged = nerlab()
        .args(["tag", "--model"])
        .arg(&run)
        .arg("서울에 간다")
        .output()
        .unwrap();
    assert!(
        tagged.status.success(),
        "{}",
        String::from_utf8_lossy(&tagged.stderr)
    );
}

/// A corpus edited between a run's start and its resume is refused by name, with both counts:
/// the rest of the run would otherwise train on other sentences without a word. Put back, the
/// run resumes.
#[test]
fn a_corpus_changed_before_a_resume_is_refused_by_name() {
    let dir = common::TempDir::new("resume-data");
    let demo = nerlab::train::sources::builtin("demo/train").unwrap();
    let corpus = dir.path("train.tsv");
    let text = nerlab::data::to_text(&demo);
    std::fs::write(&corpus, &text).unwrap();
    let config = dir.write(
        "run.toml",
        format!(
            "seed = 5\nthreads = 1\n[data]\ntrain = [{:?}]\ndev = \"builtin:demo/dev[:20]\"\n\
             [model]\nsource = \"char\"\n[model.char]\nhidden = 32\nlayers = 1\nheads = 2\n\
             intermediate = 64\n[train]\nepochs = 3\nbatch_size = 16\nmax_steps = 4\n\
             checkpoint_every = 2\n",
            corpus.to_str().unwrap()
        )
        .as_bytes(),
    );
    let out = dir.path("runs");
    let first = train(&config, &out, "data").wait_with_output().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let run = out.join("data");
    // One sentence fewer.
    let cut = text.split_once("\n\n").unwrap().1;
    std::fs::write(&corpus, cut).unwrap();
    let longer = || {
        nerlab()
            .args(["train", "--quiet", "--resume"])
            .arg(&run)
            .args(["--max-steps", "6"])
            .output()
            .unwrap()
    };
    let o = longer();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("its data changed since it started")
            && err.contains(&format!("train {}", corpus.display()))
            && err.contains(&format!("{} sentences, ", demo.len()))
            && err.contains(&format!("{} sentences, ", demo.len() - 1)),
        "{err}"
    );
    std::fs::write(&corpus, &text).unwrap();
    let o = longer();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(checkpoint_step(&run), Some(6));
}
