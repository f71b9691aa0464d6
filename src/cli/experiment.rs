//! `nerlab experiment plan|run|status|report|retry FILE`: a grid of runs (docs/EXPERIMENTS.md).

use std::path::PathBuf;
use std::sync::Mutex;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use super::table::Table;
use crate::experiment::slurm::{self, SlurmOptions};
use crate::experiment::{
    ExperimentFile, Outcome, Plan, Point, PointState, Progress, Registration, RunOptions, Template,
    archive, plan, report, run as run_plan, state_of,
};
use crate::model::device::DeviceSpec;
use crate::train::Control;
use crate::train::run_dir::write_atomic;

#[derive(Debug, Args)]
pub struct ExperimentArgs {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, Subcommand)]
pub enum Action {
    /// Print every point of the plan with its axis values and run folder; trains nothing.
    Plan(FileArgs),
    /// Train every point that is not done (resuming the interrupted), N at a time.
    Run(RunArgs),
    /// Where every point stands: planned, running, interrupted, failed, done.
    Status(FileArgs),
    /// Mean, standard deviation and 95 % interval over seeds, per setting, with comparisons
    /// against the baseline; writes results.json, results.csv, report.md and plots/ into the
    /// experiment's folder.
    Report(ReportArgs),
    /// Train the failed points again (their folders are kept, renamed), then what is missing.
    Retry(RunArgs),
    /// Submit every point not done to Slurm as job arrays (one run per task) and return at once.
    Submit(SubmitArgs),
    /// Write an editable experiment file with a paper's design: transfer-matrix, maner,
    /// polyglot or ablation.
    New(NewArgs),
    /// Pack every done run's results (scores, metrics, dev predictions as tags; no model, no
    /// corpus text) into one small file per run, to commit or copy off a cluster.
    Pack(PackArgs),
    /// Unpack packed runs into the run folders they came from (where none exists yet): `run`
    /// then counts them done and `report` reads them.
    Unpack(PackArgs),
}

#[derive(Debug, Args)]
pub struct PackArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// Where the packed runs are (default: `results/<experiment name>/` beside the file).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The experiment file (TOML).
    pub file: PathBuf,
    /// Submit to Slurm (the one scheduler nerlab submits to).
    #[arg(long, required = true)]
    pub slurm: bool,
    #[arg(long)]
    pub partition: Option<String>,
    /// GPUs per run; each run then trains on its task's GPU.
    #[arg(long)]
    pub gpus_per_task: Option<u32>,
    /// CPU cores per run (its training threads).
    #[arg(long, default_value_t = 1)]
    pub cpus_per_task: u32,
    /// Each task's time limit, as Slurm reads it (`4:00:00`); a task near it checkpoints and
    /// requeues itself.
    #[arg(long)]
    pub time: Option<String>,
    /// Tasks of one array running at once (the `%N` throttle).
    #[arg(long)]
    pub max_parallel: Option<usize>,
    /// Seconds before the time limit at which a task checkpoints and requeues.
    #[arg(long, default_value_t = 120)]
    pub grace: u32,
    /// More sbatch options, one per flag (`--sbatch-arg=--account=nlp`).
    #[arg(long = "sbatch-arg", allow_hyphen_values = true)]
    pub sbatch_args: Vec<String>,
    /// Also train the failed points again.
    #[arg(long)]
    pub retry: bool,
    /// Print the script and the arrays that would be submitted; write and submit nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// transfer-matrix, maner, polyglot or ablation.
    #[arg(value_parser = |s: &str| s.parse::<Template>())]
    pub template: Template,
    /// Where to write it (default `<template>.toml`); its stem names the experiment.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Seeds per setting.
    #[arg(long)]
    pub seeds: Option<usize>,
    /// K values (examples per type; MANER: training sentences).
    #[arg(long, value_delimiter = ',')]
    pub k: Vec<usize>,
    /// Languages (WikiANN codes).
    #[arg(long, value_delimiter = ',')]
    pub languages: Vec<String>,
    /// Training epochs of every run (default: each design's own).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Where the corpora are (default ../shared/data).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Overwrite an existing file.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct FileArgs {
    /// The experiment file (TOML).
    pub file: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// Print only (the table, or JSON with `--json`); write no files (what the workbench's live
    /// view asks for).
    #[arg(long)]
    pub no_files: bool,
    /// Compare with this setting instead of the file's `[report] baseline` (`AXIS=VALUE`,
    /// repeatable, e.g. `--baseline source.language=fa`); prints only, so the written report keeps
    /// the file's baseline.
    #[arg(long, value_parser = parse_setting)]
    pub baseline: Vec<(String, String)>,
}

/// `AXIS=VALUE`, as `--baseline` takes it.
fn parse_setting(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((axis, value)) if !axis.trim().is_empty() => {
            Ok((axis.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(format!("{s:?} is not AXIS=VALUE (e.g. model.prompt=false)")),
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The experiment file (TOML).
    pub file: PathBuf,
    /// Runs trained at once.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// CPU threads per run (default: the cores shared out among the jobs).
    #[arg(long)]
    pub threads: Option<usize>,
    /// One run per device at a time, each on its own (`cuda:0,cuda:1`); overrides --jobs.
    #[arg(long, value_delimiter = ',')]
    pub devices: Vec<DeviceSpec>,
    /// Only the point with this index in `nerlab experiment plan` (from 0; repeatable). What a
    /// Slurm array task runs.
    #[arg(long = "point")]
    pub points: Vec<usize>,
    /// No progress bar (for logs).
    #[arg(long)]
    pub quiet: bool,
    /// Start no run after this many minutes; the runs already training finish (a session or an
    /// allocation that ends at a known time then ends with whole runs, not checkpoints).
    #[arg(long, value_name = "MINUTES")]
    pub start_within: Option<f64>,
    /// Pack each run's results as it finishes (`nerlab experiment pack`), into
    /// `results/<experiment name>/` beside the file: a session or a machine that ends keeps them.
    #[arg(long)]
    pub pack: bool,
}

pub fn run(a: &ExperimentArgs) -> anyhow::Result<()> {
    match &a.action {
        Action::Plan(f) => show_plan(&load(&f.file)?, f.json),
        Action::Status(f) => show_status(&load(&f.file)?, f.json),
        Action::Report(a) => write_report(a),
        Action::Run(r) => train_plan(r, false),
        Action::Retry(r) => train_plan(r, true),
        Action::Submit(a) => submit(a),
        Action::New(a) => new_file(a),
        Action::Pack(a) => pack_runs(a),
        Action::Unpack(a) => unpack_runs(a),
    }
}

fn pack_dir(a: &PackArgs, plan: &Plan) -> PathBuf {
    a.dir
        .clone()
        .unwrap_or_else(|| archive::default_dir(&a.file.file, plan))
}

fn pack_runs(a: &PackArgs) -> anyhow::Result<()> {
    let plan = load(&a.file.file)?;
    let dir = pack_dir(a, &plan);
    let done = archive::pack(&plan, &dir)?;
    if a.file.json {
        println!("{}", serde_json::to_string_pretty(&done)?);
    } else {
        for name in &done.written {
            println!("packed {name}");
        }
        println!(
            "{}: {} packed, {} unchanged, {} not done; {} ({:.1} KB) in {}",
            plan.name,
            done.written.len(),
            done.unchanged,
            done.not_done,
            done.written.len() + done.unchanged,
            done.bytes as f64 / 1e3,
            dir.display()
        );
    }
    not_packed(&done.failed)
}

/// Names every run that could not be packed, and fails if there is one: a session that ends
/// believing its results are saved when they are not loses them.
fn not_packed(failed: &[(String, String)]) -> anyhow::Result<()> {
    for (name, why) in failed {
        eprintln!("not packed: {name}: {why}");
    }
    if !failed.is_empty() {
        anyhow::bail!(
            "{} done run(s) could not be packed (above); `nerlab experiment pack` tries again",
            failed.len()
        );
    }
    Ok(())
}

fn unpack_runs(a: &PackArgs) -> anyhow::Result<()> {
    let plan = load(&a.file.file)?;
    let dir = pack_dir(a, &plan);
    let done = archive::unpack(&plan, &dir)?;
    if a.file.json {
        println!("{}", serde_json::to_string_pretty(&done)?);
        return Ok(());
    }
    for name in &done.written {
        println!("unpacked {name}");
    }
    for name in &done.stages_to_train {
        println!(
            "not unpacked {name}: a stage run that points not packed start from; `run` trains it \
             again"
        );
    }
    println!(
        "{}: {} unpacked, {} kept (their run folder exists), {} to train again, {} not packed",
        plan.name,
        done.written.len(),
        done.kept,
        done.stages_to_train.len(),
        done.missing
    );
    Ok(())
}

fn submit(a: &SubmitArgs) -> anyhow::Result<()> {
    let file = ExperimentFile::load(&a.file)?;
    let plan = plan(&file)?;
    if !a.dry_run {
        Registration::of(&a.file, &file)?.write()?;
    }
    let o = SlurmOptions {
        partition: a.partition.clone(),
        gpus_per_task: a.gpus_per_task,
        cpus_per_task: a.cpus_per_task,
        time: a.time.clone(),
        max_parallel: a.max_parallel,
        grace: a.grace,
        sbatch_args: a.sbatch_args.clone(),
        retry: a.retry,
    };
    if a.dry_run {
        let chunks = slurm::arrays(&plan, a.retry, slurm::max_array_size());
        if chunks.is_empty() {
            println!(
                "{}: nothing to submit (every run is done or running)",
                plan.name
            );
            return Ok(());
        }
        let all: Vec<usize> = chunks.iter().flat_map(|(_, p)| p.clone()).collect();
        let exe = std::env::current_exe()?;
        print!("{}", slurm::script(&plan, &a.file, &exe, &all, &o));
        for (stage, points) in &chunks {
            eprintln!(
                "would submit an array of {} runs ({})",
                points.len(),
                stage.as_deref().unwrap_or("main stage")
            );
        }
        return Ok(());
    }
    let jobs = slurm::submit(&plan, &a.file, &o)?;
    if jobs.is_empty() {
        println!(
            "{}: nothing to submit (every run is done or running)",
            plan.name
        );
        return Ok(());
    }
    for j in &jobs {
        println!("{}", j.job);
        eprintln!(
            "submitted array job {} of {} runs ({})",
            j.job,
            j.points.len(),
            j.stage.as_deref().unwrap_or("main stage")
        );
    }
    eprintln!(
        "logs in {}; `nerlab experiment status {}` shows where every run stands",
        plan.out.join("slurm").display(),
        a.file.display()
    );
    Ok(())
}

fn new_file(a: &NewArgs) -> anyhow::Result<()> {
    let t = a.template;
    let mut sizes = t.default_sizes();
    if let Some(n) = a.seeds {
        sizes.seeds = n;
    }
    if !a.k.is_empty() {
        anyhow::ensure!(t.uses_k(), "--k: the {t} design has no K");
        sizes.k = a.k.clone();
    }
    if !a.languages.is_empty() {
        anyhow::ensure!(
            t.uses_languages(),
            "--languages: the {t} design has no languages"
        );
        sizes.languages = a.languages.clone();
    }
    if a.epochs.is_some() {
        sizes.epochs = a.epochs;
    }
    if let Some(d) = &a.data {
        sizes.data = d.clone();
    }
    t.check(&sizes).map_err(anyhow::Error::msg)?;
    let path = a
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.toml", t.name())));
    anyhow::ensure!(
        a.force || !path.exists(),
        "{} exists (--force overwrites it)",
        path.display()
    );
    let name = path.file_stem().map_or_else(
        || t.name().to_string(),
        |s| s.to_string_lossy().into_owned(),
    );
    std::fs::write(&path, t.render(&name, &sizes))?;
    println!("{}", path.display());
    eprintln!(
        "written: edit it, then `nerlab experiment plan {0}` and `nerlab experiment run {0} --jobs 2`",
        path.display()
    );
    Ok(())
}

fn load(path: &std::path::Path) -> anyhow::Result<Plan> {
    plan(&ExperimentFile::load(path)?)
}

fn axes_of(p: &Point, axes: &[String]) -> Vec<String> {
    axes.iter()
        .map(|a| p.axes.get(a).cloned().unwrap_or_default())
        .collect()
}

fn show_plan(plan: &Plan, json: bool) -> anyhow::Result<()> {
    if json {
        let points: Vec<serde_json::Value> = plan
            .points
            .iter()
            .map(|p| serde_json::json!({"axes": p.axes, "id": p.id, "dir": p.dir()}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&points)?);
        return Ok(());
    }
    let mut head: Vec<&str> = plan.axes.iter().map(String::as_str).collect();
    head.push("run folder");
    let mut t = Table::new(&head);
    for p in &plan.points {
        let mut row = axes_of(p, &plan.axes);
        row.push(p.dir().display().to_string());
        t.row(row);
    }
    print!("{}", t.render());
    println!("{} runs", plan.points.len());
    Ok(())
}

fn show_status(plan: &Plan, json: bool) -> anyhow::Result<()> {
    let states: Vec<PointState> = plan.points.iter().map(state_of).collect();
    // Slurm's queue, a hint beside what the run folders say.
    let queued = slurm::queued(plan);
    if json {
        let points: Vec<serde_json::Value> = plan
            .points
            .iter()
            .zip(&states)
            .enumerate()
            .map(|(i, (p, s))| {
                let slurm = queued
                    .get(&i)
                    .map(|(task, state)| serde_json::json!({"task": task, "state": state}));
                serde_json::json!({"axes": p.axes, "dir": p.dir(), "state": s, "slurm": slurm})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&points)?);
        return Ok(());
    }
    let mut head: Vec<&str> = plan.axes.iter().map(String::as_str).collect();
    head.extend(["state", "run folder"]);
    let mut t = Table::new(&head);
    for (i, (p, s)) in plan.points.iter().zip(&states).enumerate() {
        let mut row = axes_of(p, &plan.axes);
        row.push(match queued.get(&i) {
            Some((task, state)) => format!("{} (slurm {task} {})", s.name(), state.to_lowercase()),
            None => s.name().to_string(),
        });
        row.push(p.dir().display().to_string());
        t.row(row);
    }
    print!("{}", t.render());
    println!("{}", summary(&states));
    Ok(())
}

/// `4 runs: 2 done, 1 running, 1 planned`.
fn summary(states: &[PointState]) -> String {
    let mut parts = Vec::new();
    for s in [
        PointState::Done,
        PointState::Running,
        PointState::Interrupted,
        PointState::Failed,
        PointState::Planned,
    ] {
        let n = states.iter().filter(|x| **x == s).count();
        if n > 0 {
            parts.push(format!("{n} {}", s.name()));
        }
    }
    format!("{} runs: {}", states.len(), parts.join(", "))
}

fn write_report(a: &ReportArgs) -> anyhow::Result<()> {
    let f = &a.file;
    let mut file = ExperimentFile::load(&f.file)?;
    let other_baseline = !a.baseline.is_empty();
    if other_baseline {
        file.report.baseline = a.baseline.iter().cloned().collect();
    }
    // Checks the baseline too: an axis the results vary over, a value some run has.
    let plan = plan(&file).map_err(|e| {
        if other_baseline {
            let given: Vec<String> = a.baseline.iter().map(|(k, v)| format!("{k}={v}")).collect();
            e.context(format!("--baseline {}", given.join(" --baseline ")))
        } else {
            e
        }
    })?;
    let r = report(&plan, &file.report);
    let mut json = r.to_json();
    // The layout the file asks for, for readers that draw the pivot table (the workbench).
    json["rows"] = serde_json::json!(file.report.rows);
    json["columns"] = serde_json::json!(file.report.columns);
    let json = serde_json::to_string_pretty(&json)?;
    if a.no_files || other_baseline {
        if f.json {
            println!("{json}");
        } else {
            print!("{}", r.to_markdown(&file.report));
        }
        return Ok(());
    }
    Registration::of(&f.file, &file)?.write()?;
    write_atomic(&plan.out.join("results.json"), json.as_bytes())?;
    write_atomic(&plan.out.join("results.csv"), r.to_csv().as_bytes())?;
    let md = r.to_markdown(&file.report);
    write_atomic(&plan.out.join("report.md"), md.as_bytes())?;
    let plots = crate::experiment::plot::write_plots(&r, &file.report, &plan.out.join("plots"))?;
    if f.json {
        println!("{json}");
    } else {
        print!("{md}");
        eprintln!(
            "written: {}, results.csv and report.md there; {} plot files in {}",
            plan.out.join("results.json").display(),
            plots.len(),
            plan.out.join("plots").display()
        );
    }
    Ok(())
}

/// A progress bar of runs: done, failed, running, and the ETA.
struct Bar {
    bar: Option<ProgressBar>,
    /// Packs each run that ends done (`run --pack`).
    packer: Option<Mutex<archive::Packer>>,
    /// Done runs the packer could not pack, with why.
    not_packed: Mutex<Vec<(String, String)>>,
    /// Done and failed so far, and the runs training now.
    counts: Mutex<(usize, usize, Vec<String>)>,
}

impl Bar {
    fn say(&self, line: String) {
        match &self.bar {
            Some(b) => b.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn update(&self, f: impl FnOnce(&mut (usize, usize, Vec<String>))) {
        if let Ok(mut c) = self.counts.lock() {
            f(&mut c);
            if let Some(b) = &self.bar {
                b.set_message(format!(
                    "{} done, {} failed, {} running",
                    c.0,
                    c.1,
                    c.2.len()
                ));
            }
        }
    }
}

impl Progress for Bar {
    fn started(&self, point: &Point, resuming: bool) {
        let verb = if resuming { "resuming" } else { "training" };
        self.say(format!("{verb} {}", point.dir().display()));
        self.update(|c| c.2.push(point.name.clone()));
    }

    fn ended(&self, point: &Point, outcome: &Outcome) {
        match outcome {
            Outcome::Failed(m) => self.say(format!("failed: {}: {m}", point.dir().display())),
            Outcome::Busy => self.say(format!(
                "another process trains {}; left to it",
                point.dir().display()
            )),
            Outcome::Trained | Outcome::Resumed | Outcome::AlreadyDone => {
                if let Some(Ok(mut packer)) = self.packer.as_ref().map(|p| p.lock()) {
                    match packer.pack(point) {
                        Ok(true) => self.say(format!("packed {}", packer.path(point).display())),
                        Ok(false) => {}
                        Err(e) => {
                            self.say(format!("not packed: {}: {e:#}", point.dir().display()));
                            if let Ok(mut n) = self.not_packed.lock() {
                                n.push((point.name.clone(), format!("{e:#}")));
                            }
                        }
                    }
                }
            }
            _ => {}
        }
        self.update(|c| {
            c.2.retain(|n| n != &point.name);
            match outcome {
                Outcome::Trained | Outcome::Resumed | Outcome::AlreadyDone => c.0 += 1,
                Outcome::Failed(_) | Outcome::SkippedFailed => c.1 += 1,
                Outcome::Busy | Outcome::Stopped | Outcome::Skipped => {}
            }
        });
        if let Some(b) = &self.bar {
            b.inc(1);
        }
    }
}

fn train_plan(a: &RunArgs, retry: bool) -> anyhow::Result<()> {
    let file = ExperimentFile::load(&a.file)?;
    let plan = plan(&file)?;
    // Only for the workbench to find it: not worth failing a run over.
    if let Err(e) = Registration::of(&a.file, &file).and_then(|r| r.write()) {
        eprintln!("note: the experiment was not registered for the workbench: {e:#}");
    }
    let control = Control::default();
    let stop = control.stop.clone();
    let _ = ctrlc::set_handler(move || {
        eprintln!("\nstopping: every run writes a checkpoint; `nerlab experiment run` resumes");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let todo = if a.points.is_empty() {
        plan.points.len()
    } else {
        a.points.len()
    };
    let bar = (!a.quiet).then(|| {
        let b = ProgressBar::new(todo as u64);
        b.set_style(
            ProgressStyle::with_template(
                "{bar:30} {pos}/{len} runs [{elapsed_precise} < {eta_precise}] {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    });
    let packer = if a.pack {
        Some(Mutex::new(archive::Packer::new(&archive::default_dir(
            &a.file, &plan,
        ))?))
    } else {
        None
    };
    let progress = Bar {
        bar,
        packer,
        not_packed: Mutex::new(Vec::new()),
        counts: Mutex::new((0, 0, Vec::new())),
    };
    if let Some(&i) = a.points.iter().find(|&&i| i >= plan.points.len()) {
        anyhow::bail!(
            "--point {i}: {} has {} points (0 to {})",
            a.file.display(),
            plan.points.len(),
            plan.points.len().saturating_sub(1)
        );
    }
    let start_before = match a.start_within {
        Some(m) => {
            let wait = std::time::Duration::try_from_secs_f64(m * 60.0)
                .map_err(|_| anyhow::anyhow!("--start-within {m}: expected minutes, 0 or more"))?;
            Some(std::time::Instant::now() + wait)
        }
        None => None,
    };
    let opts = RunOptions {
        jobs: a.jobs,
        threads: a.threads,
        retry_failed: retry,
        devices: a.devices.clone(),
        only: (!a.points.is_empty()).then(|| a.points.clone()),
        start_before,
    };
    let outcomes = run_plan(&plan, &opts, &control, &progress);
    if let Some(b) = &progress.bar {
        b.finish_and_clear();
    }
    let count = |f: &dyn Fn(&Outcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
    println!(
        "{}: {} trained, {} resumed, {} already done, {} left to another process, {} failed, {} stopped",
        plan.name,
        count(&|o| *o == Outcome::Trained),
        count(&|o| *o == Outcome::Resumed),
        count(&|o| *o == Outcome::AlreadyDone),
        count(&|o| *o == Outcome::Busy),
        count(&|o| matches!(o, Outcome::Failed(_) | Outcome::SkippedFailed)),
        count(&|o| *o == Outcome::Stopped),
    );
    let failed = count(&|o| matches!(o, Outcome::Failed(_) | Outcome::SkippedFailed));
    let packed = not_packed(&progress.not_packed.into_inner().unwrap_or_default());
    if failed > 0 {
        anyhow::bail!(
            "{failed} run(s) failed (see `nerlab experiment status`; `nerlab experiment retry` trains them again)"
        );
    }
    packed
}
