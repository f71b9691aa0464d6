//! Scaling an experiment out on Slurm: one job-array script, one run per array task, submitted
//! with `sbatch --parsable` and left to run (submitting returns at once). Arrays are split to fit
//! the cluster's MaxArraySize (which bounds the largest task *index*), throttled with `%N`, and
//! an earlier stage's array must end before the main stage's starts (`afterany`: a main point
//! whose source failed fails with that reason). Before the time limit Slurm signals the batch
//! shell (`--signal=B:USR1@grace`); the script stops nerlab, which checkpoints, and requeues its
//! own task, which then resumes. Where every run stands is read from the run folders on the
//! shared file system, as on one machine; `squeue` only adds whether a task is still queued.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::plan::Plan;
use super::runner::{PointState, state_of};

/// What `nerlab experiment submit --slurm` was asked for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SlurmOptions {
    pub partition: Option<String>,
    pub gpus_per_task: Option<u32>,
    pub cpus_per_task: u32,
    /// `--time` as Slurm reads it (`2:00:00`, `1-00:00:00`).
    pub time: Option<String>,
    /// The `%N` throttle: tasks of one array running at once.
    pub max_parallel: Option<usize>,
    /// Seconds before the time limit at which the task checkpoints and requeues itself.
    pub grace: u32,
    /// More `#SBATCH` lines, as written after `#SBATCH ` (e.g. `--account=nlp`).
    pub sbatch_args: Vec<String>,
    /// Also train failed runs again.
    pub retry: bool,
}

/// One submitted array: its job id and the plan's points its tasks run, in task order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArrayJob {
    pub job: String,
    pub stage: Option<String>,
    /// `points[task]` is the index in the plan of array task `task`.
    pub points: Vec<usize>,
}

/// What was submitted, written to `<out>/slurm/submitted.json` (appended to by each submission).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Submitted {
    pub arrays: Vec<ArrayJob>,
}

impl Submitted {
    pub fn path(plan: &Plan) -> PathBuf {
        plan.out.join("slurm").join("submitted.json")
    }

    /// Writes `submitted.json` (aside, then renamed).
    pub fn save(&self, plan: &Plan) -> anyhow::Result<()> {
        let path = Self::path(plan);
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(self)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
    }

    pub fn load(plan: &Plan) -> Self {
        std::fs::read_to_string(Self::path(plan))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }
}

/// The arrays to submit: the points not done (nor failed, unless retried), by stage (earlier
/// stages first), each split into chunks of at most `max_array_size` tasks.
pub fn arrays(
    plan: &Plan,
    retry: bool,
    max_array_size: usize,
) -> Vec<(Option<String>, Vec<usize>)> {
    let mut by_stage: BTreeMap<(bool, Option<String>), Vec<usize>> = BTreeMap::new();
    for (i, p) in plan.points.iter().enumerate() {
        let wanted = match state_of(p) {
            PointState::Done | PointState::Running => false,
            PointState::Failed => retry,
            PointState::Planned | PointState::Interrupted => true,
        };
        if wanted {
            // Earlier stages (false) sort before the main stage (true).
            by_stage
                .entry((p.stage.is_none(), p.stage.clone()))
                .or_default()
                .push(i);
        }
    }
    let size = max_array_size.max(1);
    by_stage
        .into_iter()
        .flat_map(|((_, stage), points)| {
            points
                .chunks(size)
                .map(|c| (stage.clone(), c.to_vec()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The job-array script: task `$SLURM_ARRAY_TASK_ID` of the array submitted with first argument
/// `OFFSET` trains point `POINTS[OFFSET + task]` with `nerlab experiment run --point`.
pub fn script(plan: &Plan, file: &Path, exe: &Path, points: &[usize], o: &SlurmOptions) -> String {
    let log_dir = plan.out.join("slurm");
    let mut s = String::from("#!/bin/bash\n");
    let _ = writeln!(
        s,
        "# Written by `nerlab experiment submit --slurm`: one run per array task."
    );
    let _ = writeln!(s, "#SBATCH --job-name=nerlab-{}", plan.name);
    let _ = writeln!(s, "#SBATCH --output={}/%A_%a.out", log_dir.display());
    let _ = writeln!(s, "#SBATCH --open-mode=append");
    let _ = writeln!(s, "#SBATCH --requeue");
    let _ = writeln!(s, "#SBATCH --signal=B:USR1@{}", o.grace);
    let _ = writeln!(s, "#SBATCH --cpus-per-task={}", o.cpus_per_task.max(1));
    if let Some(p) = &o.partition {
        let _ = writeln!(s, "#SBATCH --partition={p}");
    }
    if let Some(g) = o.gpus_per_task {
        let _ = writeln!(s, "#SBATCH --gpus-per-task={g}");
    }
    if let Some(t) = &o.time {
        let _ = writeln!(s, "#SBATCH --time={t}");
    }
    for a in &o.sbatch_args {
        let _ = writeln!(s, "#SBATCH {a}");
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let _ = writeln!(s, "set -u\ncd {}", quote(&cwd.display().to_string()));
    let list: Vec<String> = points.iter().map(usize::to_string).collect();
    let _ = writeln!(s, "POINTS=({})", list.join(" "));
    s.push_str("POINT=${POINTS[$(( ${1:-0} + SLURM_ARRAY_TASK_ID ))]}\n");
    let action = if o.retry { "retry" } else { "run" };
    let devices = if o.gpus_per_task.is_some_and(|g| g > 0) {
        // Slurm hides the other GPUs: the task's own is cuda:0.
        " --devices cuda:0"
    } else {
        ""
    };
    let _ = writeln!(
        s,
        "echo \"nerlab: point $POINT, task ${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}, \
         attempt $(( ${{SLURM_RESTART_COUNT:-0}} + 1 )), on $(hostname)\""
    );
    s.push_str(
        "# Near the time limit: stop nerlab (it checkpoints), then requeue this task, which resumes.\n\
         requeue() {\n  \
           echo \"nerlab: signalled before the time limit: checkpointing and requeueing\"\n  \
           kill -INT \"$child\" 2>/dev/null\n  \
           wait \"$child\"\n  \
           scontrol requeue \"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\" || exit 1\n  \
           exit 0\n\
         }\n\
         trap requeue USR1\n",
    );
    let _ = writeln!(
        s,
        "{} experiment {action} {} --point \"$POINT\" --threads \"${{SLURM_CPUS_PER_TASK:-1}}\"{devices} --quiet &",
        quote(&exe.display().to_string()),
        quote(&file.display().to_string()),
    );
    s.push_str("child=$!\nwait \"$child\"\n");
    s
}

/// Single quotes for the shell.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The cluster's MaxArraySize (`scontrol show config`); Slurm's default 1001 if it cannot be read.
pub fn max_array_size() -> usize {
    let out = Command::new("scontrol").args(["show", "config"]).output();
    let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    text.ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.trim_start().starts_with("MaxArraySize"))
                .and_then(|l| l.split('=').nth(1))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(1001)
}

/// Writes the script and submits every array; returns them with their job ids. Earlier stages
/// are submitted first and the main stage's arrays wait for them to end.
pub fn submit(plan: &Plan, file: &Path, o: &SlurmOptions) -> anyhow::Result<Vec<ArrayJob>> {
    let chunks = arrays(plan, o.retry, max_array_size());
    if chunks.is_empty() {
        return Ok(Vec::new());
    }
    let dir = plan.out.join("slurm");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let all: Vec<usize> = chunks.iter().flat_map(|(_, p)| p.clone()).collect();
    let exe = std::env::current_exe().context("finding the nerlab executable")?;
    let file = std::fs::canonicalize(file).with_context(|| format!("{}", file.display()))?;
    let path = dir.join(format!("{}.sbatch", plan.name));
    std::fs::write(&path, script(plan, &file, &exe, &all, o))
        .with_context(|| format!("writing {}", path.display()))?;
    let mut submitted = Submitted::load(plan);
    let mut jobs: Vec<ArrayJob> = Vec::new();
    let mut offset = 0;
    for (stage, points) in chunks {
        let mut cmd = Command::new("sbatch");
        cmd.arg("--parsable");
        let throttle = o.max_parallel.map_or(String::new(), |n| format!("%{n}"));
        cmd.arg(format!("--array=0-{}{throttle}", points.len() - 1));
        let earlier: Vec<&str> = jobs
            .iter()
            .filter(|j| j.stage.is_some() && stage.is_none())
            .map(|j| j.job.as_str())
            .collect();
        if !earlier.is_empty() {
            cmd.arg(format!("--dependency=afterany:{}", earlier.join(":")));
        }
        cmd.arg(&path).arg(offset.to_string());
        let out = cmd
            .output()
            .context("running sbatch (is Slurm installed and SLURM_CONF set?)")?;
        if !out.status.success() {
            bail!(
                "sbatch failed ({}): {}\n(submit from a node of the cluster, where `sinfo` answers; \
                 a private cluster needs SLURM_CONF set to its slurm.conf)",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        // `--parsable` prints `jobid` or `jobid;cluster`.
        let stdout = String::from_utf8_lossy(&out.stdout);
        let job = stdout.trim().split(';').next().unwrap_or("").to_string();
        if job.is_empty() {
            bail!("sbatch printed no job id");
        }
        offset += points.len();
        let array = ArrayJob { job, stage, points };
        // Recorded at once: a later sbatch that fails leaves the earlier arrays known.
        submitted.arrays.push(array.clone());
        submitted.save(plan)?;
        jobs.push(array);
    }
    Ok(jobs)
}

/// What squeue says of the submitted tasks still in the queue: plan index -> (task, state).
/// Empty when squeue is missing or fails: it is only a hint.
pub fn queued(plan: &Plan) -> BTreeMap<usize, (String, String)> {
    let submitted = Submitted::load(plan);
    if submitted.arrays.is_empty() {
        return BTreeMap::new();
    }
    let ids: Vec<&str> = submitted.arrays.iter().map(|a| a.job.as_str()).collect();
    let out = Command::new("squeue")
        .args(["-h", "-r", "-o", "%i %T", "-j", &ids.join(",")])
        .output();
    let Ok(out) = out else {
        return BTreeMap::new();
    };
    parse_squeue(&String::from_utf8_lossy(&out.stdout), &submitted)
}

/// `12_3 PENDING` lines (one per task, `squeue -r`) to plan index -> (task, state).
fn parse_squeue(text: &str, submitted: &Submitted) -> BTreeMap<usize, (String, String)> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let (Some(task), Some(state)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Some((job, index)) = task.split_once('_') else {
            continue;
        };
        let Ok(index) = index.parse::<usize>() else {
            continue;
        };
        // Later submissions of the same points replace earlier ones.
        for a in submitted.arrays.iter().filter(|a| a.job == job) {
            if let Some(&p) = a.points.get(index) {
                out.insert(p, (task.to_string(), state.to_string()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::{ExperimentFile, plan};

    /// The plan tests' staged experiment (a stage of 2 points; 4 main settings, each crossed with both: 8 points).
    fn demo() -> Plan {
        let text = plan::tests::STAGED.replace("runs/transfer", "/nonexistent/nerlab-slurm-test");
        let f: ExperimentFile = toml::from_str(&text).unwrap();
        plan::plan(&f).unwrap()
    }

    #[test]
    fn arrays_are_split_to_fit_and_earlier_stages_come_first() {
        let p = demo();
        assert_eq!(p.points.len(), 2 + 8);
        let a = arrays(&p, false, 4);
        let shape: Vec<(Option<&str>, usize)> =
            a.iter().map(|(s, pts)| (s.as_deref(), pts.len())).collect();
        assert_eq!(shape, [(Some("source"), 2), (None, 4), (None, 4)]);
        let all: Vec<usize> = a.iter().flat_map(|(_, p)| p.clone()).collect();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn the_script_runs_its_task_point_and_requeues_itself_before_the_limit() {
        let p = demo();
        let o = SlurmOptions {
            partition: Some("gpu".into()),
            gpus_per_task: Some(1),
            cpus_per_task: 4,
            time: Some("2:00:00".into()),
            max_parallel: Some(3),
            grace: 300,
            sbatch_args: vec!["--account=nlp".into()],
            retry: false,
        };
        let s = script(
            &p,
            Path::new("/x/exp's.toml"),
            Path::new("/bin/nerlab"),
            &[0, 5, 7],
            &o,
        );
        for line in [
            "#SBATCH --signal=B:USR1@300",
            "#SBATCH --partition=gpu",
            "#SBATCH --gpus-per-task=1",
            "#SBATCH --cpus-per-task=4",
            "#SBATCH --time=2:00:00",
            "#SBATCH --account=nlp",
            "#SBATCH --requeue",
            "POINTS=(0 5 7)",
            "trap requeue USR1",
            "scontrol requeue \"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\" || exit 1",
        ] {
            assert!(s.lines().any(|l| l.trim() == line), "{line} in\n{s}");
        }
        assert!(s.contains(
            "'/bin/nerlab' experiment run '/x/exp'\\''s.toml' --point \"$POINT\" --threads \"${SLURM_CPUS_PER_TASK:-1}\" --devices cuda:0 --quiet &"
        ));
        // No `#SBATCH` after the first command: sbatch stops reading there.
        let first_cmd = s.lines().position(|l| l.starts_with("set -u")).unwrap();
        assert!(s.lines().skip(first_cmd).all(|l| !l.starts_with("#SBATCH")));
    }

    #[test]
    fn squeue_lines_map_back_to_points() {
        let submitted = Submitted {
            arrays: vec![
                ArrayJob {
                    job: "12".into(),
                    stage: None,
                    points: vec![4, 5, 6],
                },
                ArrayJob {
                    job: "13".into(),
                    stage: None,
                    points: vec![7],
                },
            ],
        };
        let q = parse_squeue(
            "12_1 RUNNING\n12_2 PENDING\n13_0 PENDING\nnonsense\n",
            &submitted,
        );
        assert_eq!(q[&5], ("12_1".into(), "RUNNING".into()));
        assert_eq!(q[&6].1, "PENDING");
        assert_eq!(q[&7].0, "13_0");
        assert!(!q.contains_key(&4));
    }
}
