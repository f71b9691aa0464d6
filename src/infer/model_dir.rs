//! Where a run keeps its trained model, and loading it for inference.

use std::path::{Path, PathBuf};

use crate::data::hub::Hub;
use crate::model::HfTokenizer;
use crate::model::ner::{MODEL_FILE, NerModel};
use crate::model::tokenize::TextTokenizer;
use crate::train::run_dir::read_model;

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
    let mut model = read_model(path, |dir| {
        NerModel::load(dir, candle_core::DType::F32, &candle_core::Device::Cpu)
    })?;
    model.freeze()?;
    Ok(model)
}

/// The tokenizer of a model: a trained nerlab model (a run or model folder), or a pretrained
/// one (a folder, a preset such as `e5-small`, or `hf:<repo>`, from the cache or the Hub).
pub fn tokenizer_of(source: &str) -> anyhow::Result<TextTokenizer> {
    let path = Path::new(source);
    if has_model(path) {
        return Ok(load_model(path)?.backbone.tokenizer);
    }
    match crate::train::sources::resolve_model(source, &Hub::from_env(false))? {
        Some(dir) => Ok(TextTokenizer::Hf(Box::new(HfTokenizer::from_dir(&dir)?))),
        None => anyhow::bail!(
            "{source}: the character model builds its vocabulary from the corpus, one unit per \
             character; give a pretrained model or a run"
        ),
    }
}
