//! Where a run keeps its trained model, and loading it for inference.

use std::path::{Path, PathBuf};

use crate::model::ner::{MODEL_FILE, NerModel};
use crate::train::run_dir::RunDir;

/// The folder holding the trained model of `path`: `path` itself when it is a model folder,
/// else a run directory's `best/`.
pub fn model_dir(path: &Path) -> PathBuf {
    if path.join(MODEL_FILE).exists() {
        path.to_path_buf()
    } else {
        path.join(crate::train::run_dir::files::BEST)
    }
}

/// Whether `path` (a run directory or a model folder) has a trained model to load.
pub fn has_model(path: &Path) -> bool {
    model_dir(path).join(MODEL_FILE).exists()
}

/// The model behind a run directory (`best/`) or a model folder, ready for inference.
pub fn load_model(path: &Path) -> anyhow::Result<NerModel> {
    if !has_model(path) {
        anyhow::bail!(
            "{}: no trained model here (expected a run directory with best/, or a model folder)",
            path.display()
        );
    }
    let load = |dir: &Path| NerModel::load(dir, candle_core::DType::F32, &candle_core::Device::Cpu);
    // A run's best model is read through its run folder, which switches `best` whole while a
    // run improves it, so the model read is never half old, half new.
    let mut model = match RunDir::open(path) {
        Ok(run) if !path.join(MODEL_FILE).exists() => run.read_best(load)?,
        _ => load(&model_dir(path))?,
    };
    model.freeze()?;
    Ok(model)
}
