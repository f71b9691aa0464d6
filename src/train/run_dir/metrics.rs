//! `metrics.jsonl`: one [`MetricsLine`] per logged training step and per evaluation, written and
//! read by the same type (the `kind` field names the variant).

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::files::METRICS;
use super::{RunDir, write_atomic};

/// A logged training step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainLine {
    pub step: usize,
    pub epoch: f64,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
}

/// A dev evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalLine {
    pub step: usize,
    /// The stage evaluated (1, or 2 when fine-tuning); each stage has its own best.
    #[serde(default = "first_stage")]
    pub stage: usize,
    pub epoch: f64,
    pub micro_f1: f64,
    pub macro_f1: f64,
    pub precision: f64,
    pub recall: f64,
    pub per_type_f1: BTreeMap<String, f64>,
    /// The best dev F1 so far (its model is in `best/`).
    pub best: bool,
    /// KLUE's character macro F1 with `O`, for character-level corpora.
    #[serde(default)]
    pub char_f1_with_o: Option<f64>,
    #[serde(default)]
    pub ece: Option<f64>,
    /// Wall-clock seconds the evaluation took (tagging dev and scoring it): in a grid of small
    /// runs, evaluation is much of the time (docs/PERFORMANCE.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_secs: Option<f64>,
}

fn first_stage() -> usize {
    1
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum MetricsLine {
    Train(TrainLine),
    Eval(EvalLine),
}

impl MetricsLine {
    /// The optimizer step the line was logged at.
    pub fn step(&self) -> usize {
        match self {
            Self::Train(t) => t.step,
            Self::Eval(e) => e.step,
        }
    }
}

impl RunDir {
    /// Appends one line to `metrics.jsonl`.
    pub fn append_metrics(&self, line: &MetricsLine) -> anyhow::Result<()> {
        let path = self.path.join(METRICS);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        writeln!(f, "{}", serde_json::to_string(line)?)
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    /// Every line of `metrics.jsonl` (an unparsable line, say a half-written last one, is skipped).
    pub fn metrics(&self) -> Vec<MetricsLine> {
        std::fs::read_to_string(self.path.join(METRICS))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Drops metric lines logged after `step` (a resumed run logs them again).
    pub fn truncate_metrics_after(&self, step: usize) -> anyhow::Result<()> {
        let mut text = String::new();
        for line in self.metrics().iter().filter(|l| l.step() <= step) {
            text += &serde_json::to_string(line)?;
            text.push('\n');
        }
        write_atomic(&self.path.join(METRICS), text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_read_what_older_nerlab_wrote() {
        // As the trainer wrote them with `json!` before the type existed (keys sorted).
        let old_train =
            r#"{"epoch":0.5,"grad_norm":1.5,"kind":"train","loss":2.25,"lr":0.001,"step":10}"#;
        let old_eval = r#"{"best":true,"char_f1_with_o":null,"ece":0.1,"epoch":1.0,"kind":"eval","macro_f1":0.4,"micro_f1":0.5,"per_type_f1":{"LC":0.25},"precision":0.5,"recall":0.5,"step":20}"#;
        let t: MetricsLine = serde_json::from_str(old_train).unwrap();
        assert_eq!(
            t,
            MetricsLine::Train(TrainLine {
                step: 10,
                epoch: 0.5,
                loss: 2.25,
                lr: 0.001,
                grad_norm: 1.5
            })
        );
        let e: MetricsLine = serde_json::from_str(old_eval).unwrap();
        let MetricsLine::Eval(ev) = &e else {
            panic!("{e:?}")
        };
        assert_eq!((ev.step, ev.best, ev.ece), (20, true, Some(0.1)));
        assert_eq!(ev.per_type_f1["LC"], 0.25);
        for line in [t, e] {
            let text = serde_json::to_string(&line).unwrap();
            assert_eq!(serde_json::from_str::<MetricsLine>(&text).unwrap(), line);
        }
        assert!(serde_json::from_str::<MetricsLine>(r#"{"kind":"train","step":"#).is_err());
    }
}
