//! `status.json`: where a run stands. Written whenever the state changes and at most about once a
//! second while it trains ([`RunDir::write_progress`]); read with the truth about the process
//! behind it ([`RunDir::status`]).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::files::STATUS;
use super::lock::Claim;
use super::{RunDir, write_atomic};

/// How often a training run rewrites `status.json` at most (state changes are written at once).
pub const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RunState {
    #[default]
    Running,
    Paused,
    Finished,
    EarlyStopped,
    Stopped,
    Failed,
    /// The status says running or paused but nobody trains the run any more (killed, crashed,
    /// machine restarted); never written, only observed by [`RunDir::status`].
    Interrupted,
}

impl RunState {
    pub fn name(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Finished => "finished",
            Self::EarlyStopped => "early-stopped",
            Self::Stopped => "stopped",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
        }
    }

    /// Whether `--resume` can continue the run.
    pub fn resumable(self) -> bool {
        matches!(
            self,
            Self::Running | Self::Paused | Self::Stopped | Self::Failed | Self::Interrupted
        )
    }

    /// Running or paused: someone is (or says it is) training the run.
    pub fn is_live(self) -> bool {
        matches!(self, Self::Running | Self::Paused)
    }
}

/// `status.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Status {
    pub state: RunState,
    pub step: usize,
    pub total_steps: usize,
    pub best_f1: Option<f64>,
    pub best_step: Option<usize>,
    pub message: String,
    /// Seconds since the Unix epoch of the last update.
    pub updated: u64,
    /// The process that wrote it (0 in files from before this field).
    pub pid: u32,
}

impl RunDir {
    /// Writes `status.json` now (a new state, or a final one).
    pub fn write_status(&self, s: &Status) -> anyhow::Result<()> {
        let mut s = s.clone();
        s.pid = std::process::id();
        s.updated = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        write_atomic(
            &self.path.join(STATUS),
            serde_json::to_string_pretty(&s)?.as_bytes(),
        )?;
        if let Ok(mut last) = self.last_status.lock() {
            *last = Some((s.state, Instant::now()));
        }
        Ok(())
    }

    /// Writes `status.json` for progress within a state: skipped when the same state was written
    /// less than [`PROGRESS_EVERY`] ago.
    pub fn write_progress(&self, s: &Status) -> anyhow::Result<()> {
        let recent = self
            .last_status
            .lock()
            .ok()
            .and_then(|last| *last)
            .is_some_and(|(state, at)| state == s.state && at.elapsed() < PROGRESS_EVERY);
        if recent {
            return Ok(());
        }
        self.write_status(s)
    }

    /// `status.json` as things stand now. A running or paused run that nobody trains any more
    /// (its claim released: the process ended or was killed), or a folder with no readable
    /// `status.json` at all, reads as [`RunState::Interrupted`], never as running.
    pub fn status(&self) -> Status {
        let Some(mut s) = std::fs::read_to_string(self.path.join(STATUS))
            .ok()
            .and_then(|t| serde_json::from_str::<Status>(&t).ok())
        else {
            return Status {
                state: RunState::Interrupted,
                message: "the run ended before it recorded its state (no readable status.json)"
                    .into(),
                ..Status::default()
            };
        };
        if s.state.is_live() && self.claim_state() == Claim::Free {
            s.state = RunState::Interrupted;
            // A live state's message ("training", "paused") no longer holds.
            s.message = "its process ended without recording why (killed, or the machine \
                         restarted); resume it to continue"
                .into();
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_nobody_trains_reads_as_interrupted() {
        let tmp = super::super::TempRun::new("status");
        let run = &tmp.run;
        // No status.json at all (a folder whose run ended before writing one): interrupted.
        assert_eq!(run.status().state, RunState::Interrupted);
        assert!(run.status().message.contains("no readable status.json"));
        // Claimed and running: running.
        let claim = run.claim().unwrap();
        run.write_status(&Status::default()).unwrap();
        assert_eq!(run.status().state, RunState::Running);
        // The claim released without a final state (the process died): interrupted, resumable.
        drop(claim);
        assert_eq!(run.status().state, RunState::Interrupted);
        assert!(run.status().state.resumable());
        // Final states are what they say.
        run.write_status(&Status {
            state: RunState::Failed,
            message: "why".into(),
            ..Status::default()
        })
        .unwrap();
        assert_eq!(run.status().message, "why");
    }

    #[test]
    fn progress_is_written_at_most_once_a_second_but_state_changes_at_once() {
        let tmp = super::super::TempRun::new("progress");
        let run = &tmp.run;
        let _claim = run.claim().unwrap();
        let at = |step| Status {
            step,
            ..Status::default()
        };
        run.write_status(&at(1)).unwrap();
        run.write_progress(&at(2)).unwrap();
        assert_eq!(
            run.status().step,
            1,
            "a second write within a second is skipped"
        );
        run.write_progress(&Status {
            state: RunState::Paused,
            ..at(3)
        })
        .unwrap();
        assert_eq!(run.status().step, 3, "a new state is written at once");
    }
}
