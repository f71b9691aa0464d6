//! Training: run configuration, data and model sources (local, built-in, Hub), the optimizer, the
//! training loop with its tricks, and run directories on disk.

pub mod config;
pub mod fused;
pub mod optim;
pub mod run_dir;
pub mod sources;
pub mod trainer;

pub use config::RunConfig;
pub use run_dir::{RunDir, RunState, Status};
pub use trainer::{Control, Observer, RunOutcome, TrainEvent, train};
