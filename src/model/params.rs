//! Parameters: every trainable tensor of a model, by name, loaded from a checkpoint or initialized.
//!
//! Names are canonical BERT names without a model prefix (`embeddings.word_embeddings.weight`,
//! `encoder.layer.0.attention.self.query.weight`, `cls.predictions.transform.dense.weight`).
//! [`Checkpoint`] maps whatever a Hugging Face file uses onto them: `bert.`/`electra.`/`roberta.`
//! prefixes, legacy `gamma`/`beta` LayerNorm names, RoBERTa's `lm_head.*` and ELECTRA's
//! `generator_*` MLM heads. [`Params`] hands tensors to model code in candle's `vb.pp(..)` style;
//! under [`Policy::MustLoad`] a tensor missing from the checkpoint is an error naming it, under
//! [`Policy::LoadOrInit`] (new heads) it is initialized and recorded.

/// The word-embedding parameter's canonical name: FGM perturbs it, and its gradient may come
/// row-sparse.
pub const WORD_EMBEDDING: &str = "embeddings.word_embeddings.weight";

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use candle_core::{DType, Device, Shape, Tensor, Var};

use crate::rng::SplitMix64;

/// Tensors of a pretrained model under canonical names.
#[derive(Debug, Clone, Default)]
pub struct Checkpoint {
    pub path: PathBuf,
    pub tensors: HashMap<String, Tensor>,
}

/// The canonical name of a checkpoint tensor (see the module docs), or `None` for tensors no
/// nerlab model uses (poolers, ELECTRA's discriminator head).
pub fn canonical_name(name: &str) -> Option<String> {
    let mut n = name.to_string();
    for prefix in ["bert.", "electra.", "roberta.", "xlm-roberta.", "model."] {
        if let Some(rest) = n.strip_prefix(prefix) {
            n = rest.to_string();
            break;
        }
    }
    let renames = [
        ("lm_head.dense.", "cls.predictions.transform.dense."),
        (
            "lm_head.layer_norm.",
            "cls.predictions.transform.LayerNorm.",
        ),
        ("lm_head.decoder.weight", "cls.predictions.decoder.weight"),
        ("lm_head.decoder.bias", "cls.predictions.bias"),
        ("lm_head.bias", "cls.predictions.bias"),
        (
            "generator_predictions.dense.",
            "cls.predictions.transform.dense.",
        ),
        (
            "generator_predictions.LayerNorm.",
            "cls.predictions.transform.LayerNorm.",
        ),
        ("generator_lm_head.weight", "cls.predictions.decoder.weight"),
        ("generator_lm_head.bias", "cls.predictions.bias"),
        ("cls.predictions.decoder.bias", "cls.predictions.bias"),
    ];
    for (from, to) in renames {
        if let Some(rest) = n.strip_prefix(from) {
            n = format!("{to}{rest}");
            break;
        }
    }
    let is_norm = n.contains("LayerNorm") || n.contains("layer_norm");
    if is_norm {
        if let Some(stem) = n.strip_suffix(".gamma") {
            n = format!("{stem}.weight");
        } else if let Some(stem) = n.strip_suffix(".beta") {
            n = format!("{stem}.bias");
        }
    }
    let unused = n.starts_with("pooler.")
        || n.starts_with("discriminator_predictions.")
        || n.starts_with("cls.seq_relationship")
        || n.ends_with("position_ids");
    (!unused).then_some(n)
}

impl Checkpoint {
    /// Reads `model.safetensors` (or `pytorch_model.bin`) from a model folder.
    pub fn from_dir(dir: &Path) -> anyhow::Result<Self> {
        let safetensors = dir.join("model.safetensors");
        let bin = dir.join("pytorch_model.bin");
        let (path, raw): (PathBuf, Vec<(String, Tensor)>) = if safetensors.exists() {
            let map = candle_core::safetensors::load(&safetensors, &Device::Cpu).with_context(|| {
                format!(
                    "reading {} ({} bytes): the file is cut short or damaged (a copy or download \
                     that did not finish?); copy it again",
                    safetensors.display(),
                    std::fs::metadata(&safetensors).map_or(0, |m| m.len())
                )
            })?;
            (safetensors, map.into_iter().collect())
        } else if bin.exists() {
            let list = candle_core::pickle::read_all(&bin).with_context(|| {
                format!(
                    "reading {}: not a PyTorch state dict as torch.save writes it (a zip archive \
                     of tensors), or one cut short",
                    bin.display()
                )
            })?;
            (bin, list)
        } else {
            bail!(
                "{}: no model.safetensors or pytorch_model.bin (expected a Hugging Face model folder)",
                dir.display()
            );
        };
        let mut tensors = HashMap::new();
        for (name, t) in raw {
            if let Some(c) = canonical_name(&name) {
                tensors.entry(c).or_insert(t);
            }
        }
        Ok(Self { path, tensors })
    }
}

/// What to do with a tensor the checkpoint does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Pretrained parts: fail, naming the tensor.
    MustLoad,
    /// New heads and added rows: initialize.
    LoadOrInit,
}

/// How to initialize a tensor that is not loaded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    Zeros,
    Ones,
    /// Normal with this standard deviation (HF's `initializer_range`).
    Normal(f64),
    /// Uniform in `[-a, a]`.
    Uniform(f64),
}

#[derive(Debug)]
struct Store {
    vars: Mutex<BTreeMap<String, Var>>,
    /// Tensors not yet turned into parameters: each is taken out when it becomes one, so the
    /// weights are not held twice.
    checkpoint: Mutex<Checkpoint>,
    checkpoint_path: PathBuf,
    dtype: DType,
    device: Device,
    init_rng: Mutex<SplitMix64>,
    initialized: Mutex<Vec<String>>,
}

/// A view of the parameter store under a name prefix (candle's `VarBuilder` habit).
#[derive(Debug, Clone)]
pub struct Params {
    store: Arc<Store>,
    prefix: String,
    policy: Policy,
}

impl Params {
    /// A store backed by a checkpoint; `seed` drives the initialization of new tensors.
    pub fn new(checkpoint: Checkpoint, dtype: DType, device: &Device, seed: u64) -> Self {
        Self {
            store: Arc::new(Store {
                vars: Mutex::new(BTreeMap::new()),
                checkpoint_path: checkpoint.path.clone(),
                checkpoint: Mutex::new(checkpoint),
                dtype,
                device: device.clone(),
                init_rng: Mutex::new(SplitMix64::new(seed ^ 0x5EED_1417)),
                initialized: Mutex::new(Vec::new()),
            }),
            prefix: String::new(),
            policy: Policy::MustLoad,
        }
    }

    /// A store with nothing to load: everything is initialized.
    pub fn fresh(dtype: DType, device: &Device, seed: u64) -> Self {
        Self::new(Checkpoint::default(), dtype, device, seed).with_policy(Policy::LoadOrInit)
    }

    pub fn pp(&self, name: impl AsRef<str>) -> Self {
        let name = name.as_ref();
        Self {
            store: self.store.clone(),
            prefix: if self.prefix.is_empty() {
                name.to_string()
            } else {
                format!("{}.{name}", self.prefix)
            },
            policy: self.policy,
        }
    }

    /// The root of the store (for tying a head to the word embeddings).
    pub fn root(&self) -> Self {
        Self {
            store: self.store.clone(),
            prefix: String::new(),
            policy: self.policy,
        }
    }

    pub fn with_policy(&self, policy: Policy) -> Self {
        Self {
            policy,
            ..self.clone()
        }
    }

    pub fn dtype(&self) -> DType {
        self.store.dtype
    }

    pub fn device(&self) -> &Device {
        &self.store.device
    }

    fn full(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// Whether the checkpoint has this tensor (already loaded, or still to load).
    pub fn has(&self, name: &str) -> bool {
        let full = self.full(name);
        self.store.vars.lock().is_ok_and(|v| v.contains_key(&full))
            || self
                .store
                .checkpoint
                .lock()
                .is_ok_and(|c| c.tensors.contains_key(&full))
    }

    /// The tensor `name` of `shape`: already created, loaded, or initialized (per the policy).
    pub fn get(&self, shape: impl Into<Shape>, name: &str, init: Init) -> anyhow::Result<Tensor> {
        let shape = shape.into();
        self.get_or(shape, name, |shape, rng| Ok(initial(shape, init, rng)))
    }

    /// Like [`get`](Self::get), with the initial value computed by `make` when not loaded.
    pub fn get_or(
        &self,
        shape: Shape,
        name: &str,
        make: impl FnOnce(&Shape, &mut SplitMix64) -> anyhow::Result<Vec<f32>>,
    ) -> anyhow::Result<Tensor> {
        let full = self.full(name);
        let mut vars = self
            .store
            .vars
            .lock()
            .map_err(|_| anyhow::anyhow!("parameter store poisoned"))?;
        if let Some(v) = vars.get(&full) {
            if v.shape() != &shape {
                bail!(
                    "parameter {full} requested as {shape:?} but exists as {:?}",
                    v.shape()
                );
            }
            return Ok(v.as_tensor().clone());
        }
        let loaded = self
            .store
            .checkpoint
            .lock()
            .ok()
            .and_then(|mut c| c.tensors.remove(&full));
        let tensor = match loaded {
            Some(t) => {
                if t.shape() != &shape {
                    bail!(
                        "{}: tensor {full} has shape {:?}, the config implies {shape:?}",
                        self.store.checkpoint_path.display(),
                        t.dims()
                    );
                }
                t.to_dtype(self.store.dtype)?
                    .to_device(&self.store.device)?
            }
            None if self.policy == Policy::MustLoad => {
                let from = if self.store.checkpoint_path.as_os_str().is_empty() {
                    "the checkpoint".to_string()
                } else {
                    self.store.checkpoint_path.display().to_string()
                };
                bail!("{from}: missing tensor {full} (shape {shape:?})");
            }
            None => {
                let values = {
                    let mut rng = self
                        .store
                        .init_rng
                        .lock()
                        .map_err(|_| anyhow::anyhow!("rng poisoned"))?;
                    make(&shape, &mut rng)?
                };
                if let Ok(mut log) = self.store.initialized.lock() {
                    log.push(full.clone());
                }
                Tensor::from_vec(values, shape.clone(), &Device::Cpu)?
                    .to_dtype(self.store.dtype)?
                    .to_device(&self.store.device)?
            }
        };
        let var = Var::from_tensor(&tensor)?;
        let out = var.as_tensor().clone();
        vars.insert(full, var);
        Ok(out)
    }

    /// Every parameter, sorted by name.
    pub fn vars(&self) -> Vec<(String, Var)> {
        self.store
            .vars
            .lock()
            .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// Checkpoint tensors no parameter has taken (sorted): keys a model does not know.
    pub fn unused(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .store
            .checkpoint
            .lock()
            .map(|c| c.tensors.keys().cloned().collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Names of the parameters that were initialized rather than loaded.
    pub fn initialized(&self) -> Vec<String> {
        self.store
            .initialized
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
    }

    /// Fails, naming `source` and the tensors, where any tensor was initialized instead of read:
    /// a model opened from files must be complete, nothing silently re-initialized.
    pub fn require_loaded(&self, source: &Path) -> anyhow::Result<()> {
        let fresh = self.initialized();
        if !fresh.is_empty() {
            bail!(
                "{}: tensors missing: {}",
                source.display(),
                fresh.join(", ")
            );
        }
        Ok(())
    }

    /// Number of scalar parameters.
    pub fn count(&self) -> usize {
        self.vars().iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// All parameters as tensors, for saving.
    pub fn tensors(&self) -> HashMap<String, Tensor> {
        self.vars()
            .into_iter()
            .map(|(k, v)| (k, v.as_tensor().clone()))
            .collect()
    }
}

fn initial(shape: &Shape, init: Init, rng: &mut SplitMix64) -> Vec<f32> {
    let n = shape.elem_count();
    match init {
        Init::Zeros => vec![0.0; n],
        Init::Ones => vec![1.0; n],
        Init::Normal(std) => (0..n).map(|_| (rng.normal() * std) as f32).collect(),
        Init::Uniform(a) => (0..n)
            .map(|_| ((rng.unit_f64() * 2.0 - 1.0) * a) as f32)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_hf_names() {
        let cases = [
            (
                "bert.embeddings.LayerNorm.gamma",
                Some("embeddings.LayerNorm.weight"),
            ),
            (
                "bert.encoder.layer.0.output.LayerNorm.beta",
                Some("encoder.layer.0.output.LayerNorm.bias"),
            ),
            (
                "electra.embeddings_project.weight",
                Some("embeddings_project.weight"),
            ),
            (
                "roberta.encoder.layer.1.attention.self.query.bias",
                Some("encoder.layer.1.attention.self.query.bias"),
            ),
            (
                "lm_head.layer_norm.weight",
                Some("cls.predictions.transform.LayerNorm.weight"),
            ),
            ("lm_head.bias", Some("cls.predictions.bias")),
            ("generator_lm_head.bias", Some("cls.predictions.bias")),
            (
                "generator_predictions.LayerNorm.gamma",
                Some("cls.predictions.transform.LayerNorm.weight"),
            ),
            ("cls.predictions.decoder.bias", Some("cls.predictions.bias")),
            (
                "embeddings.word_embeddings.weight",
                Some("embeddings.word_embeddings.weight"),
            ),
            ("bert.pooler.dense.weight", None),
            ("discriminator_predictions.dense.weight", None),
            ("roberta.embeddings.position_ids", None),
        ];
        for (from, to) in cases {
            assert_eq!(canonical_name(from).as_deref(), to, "{from}");
        }
    }

    #[test]
    fn must_load_names_the_missing_tensor() {
        let p = Params::new(Checkpoint::default(), DType::F32, &Device::Cpu, 0)
            .pp("encoder")
            .pp("layer.0");
        let err = p
            .get((2, 2), "weight", Init::Zeros)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "the checkpoint: missing tensor encoder.layer.0.weight (shape [2, 2])"
        );
    }

    #[test]
    fn init_is_seeded_and_shared() {
        let a = Params::fresh(DType::F32, &Device::Cpu, 1);
        let x = a.get((3,), "w", Init::Normal(1.0)).unwrap();
        let same = a.get((3,), "w", Init::Zeros).unwrap();
        assert_eq!(x.to_vec1::<f32>().unwrap(), same.to_vec1::<f32>().unwrap());
        let b = Params::fresh(DType::F32, &Device::Cpu, 1);
        let y = b.get((3,), "w", Init::Normal(1.0)).unwrap();
        assert_eq!(x.to_vec1::<f32>().unwrap(), y.to_vec1::<f32>().unwrap());
        assert_eq!(a.initialized(), vec!["w".to_string()]);
        assert!(a.get((4,), "w", Init::Zeros).is_err());
    }
}
