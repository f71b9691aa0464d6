//! When a run logs, evaluates, checkpoints and stops: decisions as data, from pure functions of
//! the step counters and the configuration (as transformers' `DefaultFlowCallback` does), and
//! early stopping as its own small type. The run loop only carries them out.

use serde::{Deserialize, Serialize};

use super::config::TrainConfig;

/// The configuration's cadences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cadence {
    /// A `metrics.jsonl` line every N steps (at least 1).
    pub log_every: usize,
    /// Evaluate every N steps; 0: at the end of every epoch.
    pub eval_every: usize,
    /// A resumable checkpoint every N steps; 0: at evaluations only.
    pub checkpoint_every: usize,
    /// Whether an evaluation ends with a checkpoint.
    pub checkpoint_at_eval: bool,
}

impl Cadence {
    pub fn of(t: &TrainConfig) -> Self {
        Self {
            log_every: t.log_every.max(1),
            eval_every: t.eval_every,
            checkpoint_every: t.checkpoint_every,
            checkpoint_at_eval: t.checkpoint_at_eval,
        }
    }
}

/// What to do after an optimizer step. An evaluation ends with a checkpoint unless
/// `checkpoint_at_eval` is off (a resume then repeats the evaluation, with the same outcome).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AfterStep {
    pub log: bool,
    pub evaluate: bool,
    pub checkpoint: bool,
}

/// After optimizer step `step` (counted over all stages, from 1).
pub fn after_step(step: usize, c: Cadence) -> AfterStep {
    let evaluate = c.eval_every > 0 && step.is_multiple_of(c.eval_every);
    AfterStep {
        log: step.is_multiple_of(c.log_every),
        evaluate,
        checkpoint: (!evaluate || !c.checkpoint_at_eval)
            && c.checkpoint_every > 0
            && step.is_multiple_of(c.checkpoint_every),
    }
}

/// Whether to evaluate at the end of an epoch (when evaluations are per epoch and early
/// stopping has not ended the stage).
pub fn evaluate_after_epoch(c: Cadence, early_stopped: bool) -> bool {
    c.eval_every == 0 && !early_stopped
}

/// Whether the last steps still need an evaluation when training ends (max_steps inside an
/// evaluation interval).
pub fn evaluate_at_end(last_eval_step: Option<usize>, step: usize) -> bool {
    last_eval_step != Some(step)
}

/// The best dev F1 so far and early stopping on it (saved in every checkpoint's `state.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    pub best_f1: Option<f64>,
    pub best_step: Option<usize>,
    pub evals_since_best: usize,
}

/// What an evaluation means for the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// A new best: save this model.
    pub best: bool,
    /// `patience` evaluations without improvement: end the stage.
    pub stop: bool,
}

impl EarlyStopping {
    /// Records dev F1 `f1` at `step`; `patience` 0 never stops. Ties are not improvements.
    pub fn observe(&mut self, f1: f64, step: usize, patience: usize) -> Verdict {
        let best = self.best_f1.is_none_or(|b| f1 > b);
        if best {
            self.best_f1 = Some(f1);
            self.best_step = Some(step);
            self.evals_since_best = 0;
        } else {
            self.evals_since_best += 1;
        }
        Verdict {
            best,
            stop: patience > 0 && self.evals_since_best >= patience,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_log_evaluate_and_checkpoint_on_their_cadences() {
        let c = Cadence {
            log_every: 10,
            eval_every: 50,
            checkpoint_every: 20,
            checkpoint_at_eval: true,
        };
        let at = |s| after_step(s, c);
        assert_eq!(at(7), AfterStep::default());
        assert_eq!(
            at(10),
            AfterStep {
                log: true,
                ..AfterStep::default()
            }
        );
        assert_eq!(
            at(40),
            AfterStep {
                log: true,
                evaluate: false,
                checkpoint: true
            }
        );
        // An evaluation checkpoints anyway: no second checkpoint at step 100.
        assert_eq!(
            at(100),
            AfterStep {
                log: true,
                evaluate: true,
                checkpoint: false
            }
        );
        // Without a checkpoint at evaluations, step 100 needs its own.
        let no_eval_ckpt = Cadence {
            checkpoint_at_eval: false,
            ..c
        };
        assert!(after_step(100, no_eval_ckpt).evaluate && after_step(100, no_eval_ckpt).checkpoint);
        assert!(!after_step(50, no_eval_ckpt).checkpoint);
        let per_epoch = Cadence {
            eval_every: 0,
            checkpoint_every: 0,
            ..c
        };
        assert!(!after_step(100, per_epoch).evaluate && !after_step(100, per_epoch).checkpoint);
        assert!(evaluate_after_epoch(per_epoch, false));
        assert!(!evaluate_after_epoch(per_epoch, true));
        assert!(!evaluate_after_epoch(c, false));
        assert!(evaluate_at_end(Some(90), 95) && evaluate_at_end(None, 3));
        assert!(!evaluate_at_end(Some(95), 95));
    }

    #[test]
    fn early_stopping_counts_evaluations_without_improvement() {
        let mut e = EarlyStopping::default();
        let v = e.observe(0.5, 10, 2);
        assert!(v.best && !v.stop);
        assert!(!e.observe(0.5, 20, 2).best, "a tie is no improvement");
        let v = e.observe(0.4, 30, 2);
        assert!(!v.best && v.stop);
        assert_eq!((e.best_f1, e.best_step), (Some(0.5), Some(10)));
        assert!(e.observe(0.6, 40, 2).best);
        assert_eq!(e.evals_since_best, 0);
        let mut never = EarlyStopping::default();
        for s in 0..10 {
            assert!(!never.observe(0.1, s, 0).stop);
        }
    }
}
