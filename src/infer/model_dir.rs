//! Where a run keeps its trained model, and loading it for inference.

use std::path::{Path, PathBuf};

use crate::data::hub::Hub;
use crate::data::label_map::LabelMap;
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

/// How to open a model that was not trained on the corpus at hand: a label map, and the corpus's
/// tags its outputs are matched to.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    pub labels: LabelMap,
    /// The tags of the corpus the model is scored on (`None`: free text, types kept).
    pub target: Option<Vec<String>>,
    /// Use only the Hub cache.
    pub offline: bool,
    /// For a PyTorch state dict: its encoder, labels, key layout and alignment.
    pub torch: TorchOptions,
}

/// What a PyTorch state dict (`model.pt`) needs beside it; each has a default (see
/// [`open_model`]).
#[derive(Debug, Clone, Default)]
pub struct TorchOptions {
    /// The encoder's `config.json` and tokenizer: a folder, `hf:<repo>` or a preset (default: the
    /// state dict's own folder, when it has a `config.json`).
    pub encoder: Option<String>,
    /// `klue`, a file with one label per line, or `A,B,C` (default: `labels.txt` beside the
    /// state dict).
    pub labels: Option<String>,
    /// A TOML key layout (default: the korean_ner names `electra.`, `lstm.`, `classifier.`, `crf.`).
    pub layout: Option<PathBuf>,
    /// KLUE's characters: one per token (default, korean_ner's) or KLUE's sub-word scheme.
    pub char_units: Option<crate::model::align::CharUnits>,
    /// Decode the CRF with IOB2's constraints (pytorch-crf does not).
    pub constrained: bool,
}

/// A model opened for inference, and what was done to its labels.
#[derive(Debug, Clone)]
pub struct Opened {
    pub model: NerModel,
    /// A token-classification checkpoint rather than a nerlab run or model folder.
    pub checkpoint: Option<PathBuf>,
    /// Type renamings applied to match the corpus (`PER -> PS`).
    pub renamed: Vec<(String, String)>,
}

impl Opened {
    /// One line for the user on where the model came from and how its labels were matched
    /// (empty when there is nothing to say).
    pub fn note(&self) -> String {
        let mut parts = Vec::new();
        match &self.checkpoint {
            Some(file) if file.is_file() => parts.push(format!(
                "PyTorch state dict {} ({} outputs, {} head)",
                file.display(),
                self.model.labels.len(),
                serde_json::to_value(self.model.spec.head)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default()
            )),
            Some(dir) => parts.push(format!(
                "token-classification checkpoint {} ({} outputs; a word's tag is its first \
                 sub-word's)",
                dir.display(),
                self.model.labels.len()
            )),
            None => {}
        }
        if !self.renamed.is_empty() {
            let r: Vec<String> = self
                .renamed
                .iter()
                .map(|(a, b)| format!("{a} -> {b}"))
                .collect();
            parts.push(format!("types matched to the corpus: {}", r.join(", ")));
        }
        parts.join("; ")
    }
}

/// Opens any model nerlab can tag with: a run directory (its best model), a saved model folder,
/// or a Hugging Face token-classification checkpoint (a folder or `hf:<repo>[@revision]`, through
/// the Hub cache), its labels matched to `options.target`.
pub fn open_model(source: &str, options: &OpenOptions) -> anyhow::Result<Opened> {
    let path = Path::new(source);
    let target = options.target.as_deref();
    if has_model(path) {
        let mut model = load_model(path)?;
        // A nerlab model keeps its own labels unless they can be matched (a type the corpus
        // lacks only counts as spurious), but an explicit map must hold.
        let mapped = if options.labels.is_empty() {
            match target {
                Some(t) if options.labels.resolve(&model.labels, Some(t)).is_ok() => {
                    Some(model.relabel(&options.labels, Some(t))?)
                }
                _ => None,
            }
        } else {
            Some(model.relabel(&options.labels, target)?)
        };
        return Ok(Opened {
            model,
            checkpoint: None,
            renamed: mapped
                .map(|m| m.renamed.into_iter().collect())
                .unwrap_or_default(),
        });
    }
    if crate::model::torch_ner::is_state_dict(path) {
        let mut model = open_state_dict(path, options)?;
        let mapped = if options.labels.is_empty() && target.is_none() {
            None
        } else {
            Some(model.relabel(&options.labels, target)?)
        };
        model.freeze()?;
        return Ok(Opened {
            model,
            checkpoint: Some(path.to_path_buf()),
            renamed: mapped
                .map(|m| m.renamed.into_iter().collect())
                .unwrap_or_default(),
        });
    }
    if crate::train::RunDir::is_run(path) {
        let run = crate::train::RunDir::open(path)?;
        let hint = match run.latest_checkpoint() {
            Some(ck) => format!(
                "its latest checkpoint is a model too: --model {}",
                ck.display()
            ),
            None => "it has no checkpoint either; train it again".to_string(),
        };
        anyhow::bail!(
            "{source}: this run has no best model (best/ was deleted, or the run never reached an \
             evaluation); {hint}"
        );
    }
    if path.is_dir() && !path.join("config.json").exists() {
        anyhow::bail!(
            "{source}: no trained model here (expected a run directory with best/, a nerlab model \
             folder, or a Hugging Face token-classification checkpoint with config.json)"
        );
    }
    let dir = match crate::train::sources::resolve_model(source, &Hub::from_env(options.offline))? {
        Some(dir) => dir,
        None => anyhow::bail!("{source}: the character model must be trained first (a run)"),
    };
    if !dir.exists() {
        anyhow::bail!(
            "{source}: no such file or folder (give a run, a model folder, a token-classification \
             checkpoint's folder, hf:<repo>, or a PyTorch state dict such as model.pt)"
        );
    }
    let (mut model, mapped) = crate::model::hf::open(
        &dir,
        &options.labels,
        target,
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    )?;
    model.freeze()?;
    Ok(Opened {
        model,
        checkpoint: Some(dir),
        renamed: mapped.renamed.into_iter().collect(),
    })
}

/// A PyTorch state dict with what [`TorchOptions`] gives or its folder holds.
fn open_state_dict(path: &Path, options: &OpenOptions) -> anyhow::Result<NerModel> {
    use crate::model::torch_ner::{KeyLayout, TorchSpec, open, read_labels};
    let t = &options.torch;
    let folder = path.parent().unwrap_or(Path::new("."));
    let encoder = match &t.encoder {
        Some(e) => crate::train::sources::resolve_model(e, &Hub::from_env(options.offline))?
            .ok_or_else(|| anyhow::anyhow!("--encoder {e}: give a pretrained encoder's folder"))?,
        None if folder.join("config.json").exists() => folder.to_path_buf(),
        None => anyhow::bail!(
            "{}: a PyTorch state dict needs its encoder's config.json and tokenizer: give the \
             folder or hub id with --encoder (e.g. --encoder hf:monologg/koelectra-base-v3-discriminator)",
            path.display()
        ),
    };
    let labels = match &t.labels {
        Some(l) => read_labels(l)?,
        None if folder.join("labels.txt").exists() => {
            read_labels(&folder.join("labels.txt").to_string_lossy())?
        }
        None => anyhow::bail!(
            "{}: a PyTorch state dict does not name its outputs: give --labels klue (KLUE's 13 in \
             korean_ner's order), a file with one label per line, or A,B,C",
            path.display()
        ),
    };
    let layout = match &t.layout {
        Some(f) => KeyLayout::from_file(f)?,
        None => KeyLayout::default(),
    };
    let spec = TorchSpec {
        encoder,
        labels,
        layout,
        char_units: t
            .char_units
            .unwrap_or(crate::model::align::CharUnits::Characters),
        constrained: t.constrained,
    };
    open(
        path,
        &spec,
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    )
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
