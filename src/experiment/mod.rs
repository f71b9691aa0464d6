//! Experiments: a grid of runs as one unit of work. An experiment file ([`ExperimentFile`])
//! describes a base run configuration and the axes that vary it; [`plan`] expands it into points,
//! each a run with an identity; [`run`] trains what is missing (resuming the interrupted, never
//! a point twice, `jobs` at a time); [`report`] groups the results by every axis but the seed with
//! their statistics. See docs/EXPERIMENTS.md.
//!
//! Layers: above `train` and `infer` (it starts runs and reads their folders), below `cli`,
//! `worker` and `ui`.

pub mod archive;
mod file;
mod plan;
pub mod plot;
mod report;
mod runner;
pub mod slurm;
mod templates;

pub use file::{
    ExperimentFile, REGISTRATION, Registration, ReportSpec, STAGE_PREFIX, Stage, from_run,
};
pub use plan::{Plan, Point, plan};
pub use report::{Group, Pivot, Report, SEED, Value, metric_of, report};
pub use runner::{Outcome, PointState, Progress, RunOptions, Silent, run, state_of};
pub use templates::{Sizes, Template};
