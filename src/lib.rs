//! nerlab: a research workbench for named entity recognition in Korean and low-resource languages.
//!
//! Data flows one way. [`data`] reads corpus files into a [`data::Corpus`] (tokens and tags, nothing
//! lost: raw text, extra columns and header lines are kept so predictions can be written back in
//! the gold's own format). [`model`] (encoders, tokenization and alignment, NER heads) and
//! [`train`] (the training loop, the optimizer, run folders on disk) run on the [`worker`] thread,
//! which owns the device and every tensor and reports through [`protocol`]'s plain-data events.
//! The [`ui`] folds those events into its run store ([`ui::RunStore`]), and the panels draw from
//! that store, never from tensors. [`metrics`] turns spans into scores with pure functions checked
//! against seqeval, scikit-learn and nervaluate, for the trainer, the workbench and the command
//! line alike. The command line ([`cli`]) is a thin layer that runs the same pieces headless.

pub mod cli;
pub mod data;
pub mod experiment;
pub mod fuzz;
pub mod hash;
pub mod infer;
pub mod metrics;
pub mod model;
pub mod names;
pub mod protocol;
pub mod rng;
pub mod train;
pub mod ui;
pub mod worker;

/// Where the shared corpora and models live relative to the repository (`../shared`), or
/// `NERLAB_SHARED` when set. Tests and benchmarks that need them skip when it is absent.
pub fn shared_dir() -> std::path::PathBuf {
    match std::env::var_os("NERLAB_SHARED") {
        Some(dir) => dir.into(),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"),
    }
}

/// Where pretrained encoders fetched by `../shared/models/obtain.sh` live: `NERLAB_MODELS`, or
/// `~/.cache/ner-models` (obtain.sh's default).
pub fn models_dir() -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("NERLAB_MODELS") {
        return dir.into();
    }
    let home = std::env::var_os("HOME").map_or_else(|| std::path::PathBuf::from("."), Into::into);
    home.join(".cache/ner-models")
}
