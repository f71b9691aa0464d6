//! `nerlab runs [--out DIR] [--json]`: the runs on disk with their state and best dev F1.

use std::path::PathBuf;

use clap::Args;

use super::table::{Table, frac};
use crate::train::run_dir::list_runs;

#[derive(Debug, Args)]
pub struct RunsArgs {
    /// Where run directories are.
    #[arg(long, default_value = "runs")]
    pub out: PathBuf,
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: &RunsArgs) -> anyhow::Result<()> {
    let runs = list_runs(&a.out);
    if a.json {
        let rows: Vec<serde_json::Value> = runs
            .iter()
            .map(|r| {
                let s = r.status();
                let c = r.config().ok();
                serde_json::json!({
                    "name": r.name(), "dir": r.path, "state": s.state, "step": s.step, "total_steps": s.total_steps,
                    "best_f1": s.best_f1, "best_step": s.best_step, "model": c.as_ref().map(|c| c.model.source.clone()),
                    "message": s.message,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if runs.is_empty() {
        println!("no runs in {}", a.out.display());
        return Ok(());
    }
    let mut t = Table::new(&[
        "run", "state", "step", "best F1", "at step", "model", "head",
    ]);
    for r in &runs {
        let s = r.status();
        let c = r.config().ok();
        t.row(vec![
            r.name(),
            s.state.name().to_string(),
            format!("{}/{}", s.step, s.total_steps),
            s.best_f1.map_or("-".into(), frac),
            s.best_step.map_or("-".into(), |x| x.to_string()),
            c.as_ref().map_or("?".into(), |c| c.model.source.clone()),
            c.as_ref()
                .and_then(|c| serde_json::to_value(c.model.head).ok())
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
        ]);
    }
    print!("{}", t.render());
    Ok(())
}
