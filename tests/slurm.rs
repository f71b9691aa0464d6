//! `nerlab experiment submit --slurm` on a real Slurm: a single-node cluster on localhost
//! (tests/slurm/cluster.sh: munged, slurmctld, slurmd, MaxArraySize 5), a 4-run experiment
//! submitted as job arrays (returning at once), one task signalled as Slurm signals a task near
//! its time limit (`USR1` to the batch shell), which checkpoints and requeues itself and resumes;
//! the report must equal the same experiment run locally. Needs root and Debian's slurm-wlm and
//! munge, which `.ci/run` installs; skips (and CI then fails) without them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{TempDir, stderr, stdout};

const CLUSTER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/slurm/cluster.sh");

/// A running cluster, stopped when dropped (also when the test fails).
struct Cluster {
    dir: PathBuf,
    conf: String,
}

impl Cluster {
    fn start(dir: PathBuf) -> Self {
        let out = Command::new("bash")
            .args([CLUSTER, "start"])
            .arg(&dir)
            .env("SLURM_CI_NO_INSTALL", "1")
            .output()
            .unwrap();
        assert!(out.status.success(), "cluster.sh start:\n{}", stderr(&out));
        let conf = stdout(&out)
            .lines()
            .find_map(|l| l.strip_prefix("export SLURM_CONF="))
            .map(|v| v.trim_matches(['\'', '"']).to_string())
            .unwrap_or_else(|| panic!("no SLURM_CONF in {}", stdout(&out)));
        Self { dir, conf }
    }

    fn logs(&self) -> String {
        let out = Command::new("bash")
            .args([CLUSTER, "logs"])
            .arg(&self.dir)
            .output()
            .unwrap();
        format!("{}{}", stdout(&out), stderr(&out))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .args([CLUSTER, "stop"])
            .arg(&self.dir)
            .output();
    }
}

fn installed(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn experiment(dir: &Path, name: &str) -> PathBuf {
    let text = common::tiny_grid(name, &format!("runs/{name}"), 12, "[1, 2]", "");
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// `nerlab ARGS` in `dir` with the cluster's configuration.
fn nerlab_in(dir: &Path, conf: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nerlab"))
        .args(args)
        .current_dir(dir)
        .env("SLURM_CONF", conf)
        .output()
        .unwrap()
}

fn states(dir: &Path, conf: &str, file: &str) -> Vec<String> {
    let out = nerlab_in(dir, conf, &["experiment", "status", file, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).unwrap();
    v.iter()
        .map(|p| p["state"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_submitted_experiment_requeued_mid_run_reports_what_a_local_run_reports() {
    let tools = [
        "sbatch",
        "scontrol",
        "scancel",
        "squeue",
        "slurmctld",
        "slurmd",
        "munged",
    ];
    if let Some(t) = tools.iter().find(|t| !installed(t)) {
        common::skip(&format!(
            "{t} not found: Slurm (Debian's slurm-wlm and munge) is not installed; .ci/run installs it"
        ));
        return;
    }
    let work = TempDir::new("slurm");
    let cluster = Cluster::start(work.path("cluster"));
    let conf = cluster.conf.clone();
    let file = experiment(&work.0, "grid");
    let fail = |what: &str| -> ! {
        let logs: String = std::fs::read_dir(work.path("runs/grid/slurm"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "out"))
            .map(|e| {
                format!(
                    "--- {}\n{}",
                    e.path().display(),
                    std::fs::read_to_string(e.path()).unwrap_or_default()
                )
            })
            .collect();
        let queue = Command::new("squeue")
            .args(["-h", "-r", "-t", "all", "-o", "%i %A %T %R"])
            .env("SLURM_CONF", &conf)
            .output()
            .map(|o| stdout(&o))
            .unwrap_or_default();
        let status = nerlab_in(&work.0, &conf, &["experiment", "status", "grid.toml"]);
        panic!(
            "{what}\nsqueue:\n{queue}\nstatus:\n{}\n{logs}\n{}",
            stdout(&status),
            cluster.logs()
        );
    };

    // Submitting returns at once with the array's job id.
    let started = Instant::now();
    let out = nerlab_in(
        &work.0,
        &conf,
        &[
            "experiment",
            "submit",
            "grid.toml",
            "--slurm",
            "--max-parallel",
            "2",
            "--grace",
            "30",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(20));
    let job = stdout(&out).lines().next().unwrap().trim().to_string();
    assert!(job.parse::<u64>().is_ok(), "job id {job:?}");
    assert!(file.exists());

    // Signal task 0 as Slurm does before a time limit, once it trains.
    let deadline = Instant::now() + Duration::from_secs(120);
    while states(&work.0, &conf, "grid.toml")[0] != "running" {
        if Instant::now() > deadline {
            fail("task 0 never started training");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Signal until the task's log shows its trap ran: the batch step may still be registering
    // with slurmd when the run already trains, and scancel's exit status on an array task is not
    // a reliable sign (it has reported an error for a signal it delivered).
    let task = format!("{job}_0");
    let log_path = work.path(&format!("runs/grid/slurm/{job}_0.out"));
    let trapped = || {
        std::fs::read_to_string(&log_path).is_ok_and(|l| l.contains("checkpointing and requeueing"))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !trapped() {
        let out = Command::new("scancel")
            .args(["--batch", "--signal=USR1", &task])
            .env("SLURM_CONF", &conf)
            .output()
            .unwrap();
        if Instant::now() > deadline {
            fail(&format!(
                "task 0 never took the signal: {}{}",
                stdout(&out),
                stderr(&out)
            ));
        }
        std::thread::sleep(Duration::from_millis(1000));
    }

    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let s = states(&work.0, &conf, "grid.toml");
        if s.iter().all(|x| x == "done") {
            break;
        }
        if s.iter().any(|x| x == "failed") || Instant::now() > deadline {
            fail(&format!("runs did not all finish: {s:?}"));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    // The signalled task checkpointed, requeued itself and resumed its run.
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    for needle in ["checkpointing and requeueing", "attempt 2", "resuming"] {
        if !log.contains(needle) {
            fail(&format!("{needle:?} not in task 0's log:\n{log}"));
        }
    }

    // The same experiment trained here, one thread per run as each task had.
    experiment(&work.0, "local");
    let out = nerlab_in(
        &work.0,
        &conf,
        &[
            "experiment",
            "run",
            "local.toml",
            "--threads",
            "1",
            "--quiet",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let report = |f: &str| -> serde_json::Value {
        let out = nerlab_in(&work.0, &conf, &["experiment", "report", f, "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let mut v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        v["experiment"] = serde_json::Value::Null;
        v
    };
    let (slurm, local) = (report("grid.toml"), report("local.toml"));
    assert_eq!(slurm["groups"].as_array().unwrap().len(), 2);
    assert!(slurm["groups"][0]["values"].as_array().unwrap().len() == 2);
    assert_eq!(slurm, local);
}
