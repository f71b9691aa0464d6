//! How a run ends: the final report of a run that trained to its end (`report.json`: the best
//! model on dev and on every further evaluation corpus), the last status, or the failure with
//! the last good checkpoint.

use super::events::{RunOutcome, TrainEvent};
use super::run_dir::RunState;
use super::trainer::Trainer;
use crate::infer::evaluate;
use crate::model::ner::NerModel;

impl Trainer<'_> {
    /// Writes the report of a run that trained to its end and the final status, or records the
    /// failure with the last good checkpoint.
    pub(super) fn finish(
        mut self,
        outcome: anyhow::Result<RunState>,
    ) -> anyhow::Result<RunOutcome> {
        let (state, message) = match outcome {
            Ok(RunState::Stopped) => (
                RunState::Stopped,
                "stopped; resume with --resume".to_string(),
            ),
            Ok(s) => {
                self.final_report()?;
                (s, "done".to_string())
            }
            Err(e) => {
                let last = self
                    .run
                    .latest_checkpoint()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "none".into());
                let msg = format!("{e:#}; the last good checkpoint is {last}");
                let _ = self.run.write_status(&self.status(RunState::Failed, &msg));
                return Err(anyhow::anyhow!(msg));
            }
        };
        self.run.write_status(&self.status(state, &message))?;
        if state != RunState::Stopped {
            // After the status: a run stopped while tidying is done, with files to spare.
            self.run.tidy(self.config.train.keep);
        }
        Ok(RunOutcome {
            dir: self.run.path.clone(),
            state,
            best_f1: self.state.best.best_f1,
            best_step: self.state.best.best_step,
            message,
        })
    }

    /// `report.json`: the final stage's best model on dev (same shape as `nerlab score --json`)
    /// and on every further evaluation corpus, and under `stages` each stage's section (a stage
    /// that another followed wrote its own when it ended). Nothing time-dependent, so a resumed
    /// run writes the same file.
    fn final_report(&mut self) -> anyhow::Result<()> {
        let mut report = self.stage_section()?;
        let mut stages = Vec::new();
        for number in 1..=self.state.stage {
            stages.push(self.run.read_stage_report(number)?);
        }
        stages.push(report.clone());
        report["stages"] = serde_json::Value::Array(stages);
        self.run.write_report(&report)
    }

    /// The current stage's best model on dev and on every evaluation corpus.
    pub(super) fn stage_section(&mut self) -> anyhow::Result<serde_json::Value> {
        let device = self.config.device.device()?;
        let dtype = self.step.dtype();
        let mut best = self
            .run
            .read_best(|dir| NerModel::load(dir, dtype, &device))?;
        best.freeze()?;
        let mut report = serde_json::json!({
            "stage": self.state.stage + 1,
            "best_step": self.state.best.best_step,
            "steps": self.state.step,
            "labels": best.labels,
        });
        if let Some(dev) = &self.prepared.dev {
            let r = match self.best_report.take() {
                Some(r) => r,
                None => {
                    let (r, pred) = evaluate(&best, dev, self.eval_batch())?;
                    self.run.write_dev_predictions(dev, pred)?;
                    r
                }
            };
            report["dev"] = serde_json::to_value(&r)?;
        }
        let mut evals = serde_json::Map::new();
        for (name, corpus) in &self.prepared.eval {
            let (r, _) = evaluate(&best, corpus, self.eval_batch())?;
            self.obs.on(TrainEvent::Message(format!(
                "stage {}: {name}: micro F1 {:.4}",
                self.state.stage + 1,
                r.micro.f1
            )));
            evals.insert(name.clone(), serde_json::to_value(&r)?);
        }
        report["eval"] = serde_json::Value::Object(evals);
        Ok(report)
    }
}
