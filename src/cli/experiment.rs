//! `nerlab experiment plan|run|status|report|retry FILE`: a grid of runs (docs/EXPERIMENTS.md).

use std::path::PathBuf;
use std::sync::Mutex;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use super::table::Table;
use crate::experiment::{
    ExperimentFile, Outcome, Plan, Point, PointState, Progress, RunOptions, plan, report,
    run as run_plan, state_of,
};
use crate::train::Control;

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
    /// Mean, standard deviation and 95 % interval over seeds, per setting; writes results.json,
    /// results.csv and report.md into the experiment's folder.
    Report(FileArgs),
    /// Train the failed points again (their folders are kept, renamed), then what is missing.
    Retry(RunArgs),
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
pub struct RunArgs {
    /// The experiment file (TOML).
    pub file: PathBuf,
    /// Runs trained at once.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// CPU threads per run (default: the cores shared out among the jobs).
    #[arg(long)]
    pub threads: Option<usize>,
    /// No progress bar (for logs).
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(a: &ExperimentArgs) -> anyhow::Result<()> {
    match &a.action {
        Action::Plan(f) => show_plan(&load(&f.file)?, f.json),
        Action::Status(f) => show_status(&load(&f.file)?, f.json),
        Action::Report(f) => write_report(f),
        Action::Run(r) => train_plan(r, false),
        Action::Retry(r) => train_plan(r, true),
    }
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
    if json {
        let points: Vec<serde_json::Value> = plan
            .points
            .iter()
            .zip(&states)
            .map(|(p, s)| serde_json::json!({"axes": p.axes, "dir": p.dir(), "state": s}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&points)?);
        return Ok(());
    }
    let mut head: Vec<&str> = plan.axes.iter().map(String::as_str).collect();
    head.extend(["state", "run folder"]);
    let mut t = Table::new(&head);
    for (p, s) in plan.points.iter().zip(&states) {
        let mut row = axes_of(p, &plan.axes);
        row.push(s.name().to_string());
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

fn write_report(f: &FileArgs) -> anyhow::Result<()> {
    let file = ExperimentFile::load(&f.file)?;
    let plan = plan(&file)?;
    let r = report(&plan, &file.report);
    std::fs::create_dir_all(&plan.out)?;
    let json = serde_json::to_string_pretty(&r.to_json())?;
    std::fs::write(plan.out.join("results.json"), &json)?;
    std::fs::write(plan.out.join("results.csv"), r.to_csv())?;
    let md = r.to_markdown(&file.report);
    std::fs::write(plan.out.join("report.md"), &md)?;
    if f.json {
        println!("{json}");
    } else {
        print!("{md}");
        eprintln!(
            "written: {}, results.csv and report.md there",
            plan.out.join("results.json").display()
        );
    }
    Ok(())
}

/// A progress bar of runs: done, failed, running, and the ETA.
struct Bar {
    bar: Option<ProgressBar>,
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
            _ => {}
        }
        self.update(|c| {
            c.2.retain(|n| n != &point.name);
            match outcome {
                Outcome::Trained | Outcome::Resumed | Outcome::AlreadyDone => c.0 += 1,
                Outcome::Failed(_) | Outcome::SkippedFailed => c.1 += 1,
                Outcome::Busy | Outcome::Stopped => {}
            }
        });
        if let Some(b) = &self.bar {
            b.inc(1);
        }
    }
}

fn train_plan(a: &RunArgs, retry: bool) -> anyhow::Result<()> {
    let plan = load(&a.file)?;
    let control = Control::default();
    let stop = control.stop.clone();
    let _ = ctrlc::set_handler(move || {
        eprintln!("\nstopping: every run writes a checkpoint; `nerlab experiment run` resumes");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let bar = (!a.quiet).then(|| {
        let b = ProgressBar::new(plan.points.len() as u64);
        b.set_style(
            ProgressStyle::with_template(
                "{bar:30} {pos}/{len} runs [{elapsed_precise} < {eta_precise}] {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    });
    let progress = Bar {
        bar,
        counts: Mutex::new((0, 0, Vec::new())),
    };
    let opts = RunOptions {
        jobs: a.jobs,
        threads: a.threads,
        retry_failed: retry,
    };
    let outcomes = run_plan(&plan, opts, &control, &progress);
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
    if failed > 0 {
        anyhow::bail!(
            "{failed} run(s) failed (see `nerlab experiment status`; `nerlab experiment retry` trains them again)"
        );
    }
    Ok(())
}
