//! Every file name of a run folder, in one place: nothing else in nerlab spells them.

/// The complete configuration (reload it to rerun).
pub const CONFIG: &str = "config.toml";
/// State, step, best dev F1, message, the writing process (what `nerlab runs` and the workbench list).
pub const STATUS: &str = "status.json";
/// One typed JSON line per logged step and per evaluation ([`super::MetricsLine`]).
pub const METRICS: &str = "metrics.jsonl";
/// Points at the latest resumable checkpoint folder.
pub const CHECKPOINT_POINTER: &str = "checkpoint.json";
/// Prefix of checkpoint folders (`checkpoint-0000120/`).
pub const CHECKPOINT_PREFIX: &str = "checkpoint-";
/// Inside a checkpoint folder: the trainer's position and random generators.
pub const CHECKPOINT_STATE: &str = "state.json";
/// Inside a checkpoint folder: the optimizer's moments.
pub const CHECKPOINT_OPTIMIZER: &str = "optimizer.safetensors";
/// The model with the best dev F1: a link to the newest `best-<step>/` folder (see `best.rs`).
pub const BEST: &str = "best";
/// Prefix of the versions `best` points at.
pub const BEST_VERSION_PREFIX: &str = "best-";
/// The best model's dev predictions, `dev-predictions.<ext>` in the dev corpus's own format.
pub const DEV_PREDICTIONS_STEM: &str = "dev-predictions";
/// Extensions dev predictions are written with (by corpus format).
pub const DEV_PREDICTIONS_EXTENSIONS: [&str; 3] = ["tsv", "txt", "conll"];
/// Their calibration (reliability bins, ECE), which tags alone cannot give back.
pub const DEV_CALIBRATION: &str = "dev-calibration.json";
/// `{"dev": <nerlab score --json shape>, "eval": {...}, "best_step": ..., "stages": [...]}`.
pub const REPORT: &str = "report.json";
/// The section of a stage that another followed, written when it ended: `report-stage1.json`.
pub fn stage_report(stage: usize) -> String {
    format!("report-stage{stage}.json")
}
/// The best model of a stage that another followed, kept so a later run can start from it:
/// `stage1-best/` (a model folder, as `best/`).
pub fn stage_best(stage: usize) -> String {
    format!("stage{stage}-best")
}
/// Whether `name` is a [`stage_best`] folder.
pub fn is_stage_best(name: &str) -> bool {
    name.strip_prefix("stage")
        .and_then(|rest| rest.strip_suffix("-best"))
        .is_some_and(|n| n.parse::<usize>().is_ok())
}
/// The sentences each stage sampled from each corpus (K-shot, random subsets).
pub const SAMPLES: &str = "samples.json";
/// What the run trained and was scored on, as read when it started (sentences and a hash of
/// tokens and tags per corpus): a resume checks its data against it.
pub const DATA: &str = "data.json";
/// The single-writer claim: the process training the run (see `lock.rs`).
pub const LOCK: &str = "train.lock";
