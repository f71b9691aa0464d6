//! Training: run configuration, data and model sources (local, built-in, Hub), the optimizer, the
//! training loop with its tricks, and run directories on disk.

pub mod config;
mod data;
pub mod events;
pub mod flow;
pub mod fused;
pub mod memory;
pub mod optim;
mod outcome;
pub mod run_dir;
pub mod sources;
mod start;
pub mod step;
pub mod trainer;
pub mod tricks;

pub use config::RunConfig;
pub use events::{Control, Observer, RunOutcome, StepMetrics, TrainEvent};
pub use run_dir::{RunDir, RunState, Status};
pub use start::{Amend, amend_for_resume, default_name, train};
pub use step::TrainStep;
