//! nerlab: a research workbench for named entity recognition in Korean and low-resource languages.
//!
//! Data flows one way: files are read by [`data`] into a [`data::Corpus`] (tokens and tags, nothing
//! lost: raw text, extra columns and header lines are kept so predictions can be written back in
//! the gold's own format); tags become spans ([`data::spans`]) and spans become scores
//! ([`metrics`], pure functions checked against seqeval, scikit-learn and nervaluate). The command
//! line ([`cli`]) is a thin layer over both.

pub mod cli;
pub mod data;
pub mod infer;
pub mod metrics;
pub mod model;
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
