//! A run's complete configuration: what `nerlab train --config run.toml` reads, what the workbench's
//! launcher edits, and what every run directory keeps as `config.toml` so it can be reloaded.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use super::tricks::RdropKl;
use crate::data::Format;
use crate::model::align::{CharUnits, Marker};
use crate::model::backbone::CharModelSize;
use crate::model::device::DeviceSpec;
use crate::model::ner::{HeadKind, InitHead, ModelSpec, MsdAverage};

/// Learning-rate schedule after warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    #[default]
    Linear,
    Cosine,
    Constant,
}

/// How many sentences a training stage samples from its corpora: all of them, or a K-shot support
/// set (Yang & Katiyar's greedy sampling: every type at least K mentions). `K(0)` is zero-shot:
/// the stage trains on nothing and its model (from the previous stage or `init_from`) is only
/// evaluated. Written `"all"` or a number, in TOML, flags and the launcher alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Shots {
    #[default]
    All,
    K(usize),
}

impl Shots {
    /// Zero-shot: nothing to train on.
    pub fn is_zero(self) -> bool {
        self == Self::K(0)
    }
}

impl std::fmt::Display for Shots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::All => f.write_str("all"),
            Self::K(k) => write!(f, "{k}"),
        }
    }
}

impl std::str::FromStr for Shots {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "all" => Ok(Self::All),
            n => n.parse().map(Self::K).map_err(|_| {
                format!("{s:?}: expected a number of shots (0 = zero-shot) or \"all\"")
            }),
        }
    }
}

impl Serialize for Shots {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::All => s.serialize_str("all"),
            Self::K(k) => s.serialize_u64(*k as u64),
        }
    }
}

impl<'de> Deserialize<'de> for Shots {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Shots;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number of shots (0 = zero-shot) or \"all\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Shots, E> {
                Ok(Shots::K(v as usize))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Shots, E> {
                usize::try_from(v)
                    .map(Shots::K)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Shots, E> {
                v.parse()
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Str(v), &self))
            }
        }
        d.deserialize_any(V)
    }
}

/// What a run keeps on disk once it has ended. A grid of small runs of a large encoder would
/// otherwise keep a model and a resumable checkpoint (about four times the weights) per run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Keep {
    /// Everything: the best model and the last checkpoint (`--resume --epochs` can lengthen it).
    #[default]
    All,
    /// The best model (and `stage<N>-best/`); the checkpoints go. Other runs can start from it.
    Best,
    /// Scores only: report, metrics, dev predictions and calibration; no model, no checkpoint.
    /// Nothing can start from it or tag with it; `nerlab experiment report` reads all it needs.
    Scores,
}

crate::choices!(named Keep, "keep value": All = "all", Best = "best", Scores = "scores");

/// Which corpora to train and evaluate on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DataConfig {
    /// Training corpora, mixed (several languages make a polyglot stage). Each is a path,
    /// `builtin:demo/train`, a dataset preset (`klue-ner/train`, `wikiann:ko/train`) or
    /// `hf:<repo>:<config>/<split>`.
    pub train: Vec<String>,
    /// Development corpus: evaluated during training, drives early stopping.
    pub dev: Option<String>,
    /// Further corpora evaluated at the end (zero-shot transfer to other languages).
    pub eval: Vec<String>,
    /// Corpus format (detected when absent).
    pub format: Option<Format>,
    /// K-shot sampling of the first stage's training set (see [`Shots`]).
    pub k_shot: Shots,
    /// Random subset of the training set; 0 = all.
    pub max_sentences: usize,
    pub sample_seed: u64,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            train: vec!["builtin:demo/train".into()],
            dev: Some("builtin:demo/dev".into()),
            eval: Vec::new(),
            format: None,
            k_shot: Shots::All,
            max_sentences: 0,
            sample_seed: 0,
        }
    }
}

impl DataConfig {
    /// Every corpus the run reads: training, dev, then the further evaluations.
    pub fn sources(&self) -> impl Iterator<Item = &String> {
        self.train.iter().chain(&self.dev).chain(&self.eval)
    }
}

/// The model: its backbone and head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelConfig {
    /// `char`, a Hugging Face model folder, `hf:<repo>[@revision]`, or a preset
    /// (`koelectra-base-v3`, `klue-roberta-base`, `xlmr-base`, `mbert`, `e5-small`, ...).
    pub source: String,
    pub head: HeadKind,
    pub marker: Marker,
    pub word_mask_prob: f64,
    pub prompt: bool,
    pub msd_samples: usize,
    /// What multi-sample dropout averages: `logits` (one loss on the mean class scores) or
    /// `loss` (the mean of K losses).
    pub msd_average: MsdAverage,
    /// Longest window in tokens, special tokens included (0: the encoder's limit).
    pub max_length: usize,
    /// Character-level corpora (KLUE): `subwords` (KLUE's baseline: every subword a unit) or
    /// `characters` (every character its own word).
    pub char_units: CharUnits,
    pub head_dropout: f64,
    pub lstm_hidden: usize,
    pub constrained: bool,
    /// Prompt label words: the word(s) whose subword embeddings initialize each type's prompt
    /// token, by type (`PER = "person"`); types not listed take
    /// [`crate::model::ner::default_label_word`].
    pub label_words: BTreeMap<String, String>,
    /// Prompt label words on a model without a pretrained MLM head (an ELECTRA discriminator,
    /// e5): initialize the head freshly instead of refusing the model.
    pub fresh_mlm_head: bool,
    /// Sizes of the character model (used when `source = "char"`).
    pub char: CharModelSize,
    /// When `source` is a token-classification checkpoint: how its labels meet the training
    /// data's (`PER = "PS"`, `LABEL_3 = "B-PS"`, `MISC = "O"`), so that its classifier rows are
    /// kept for the labels both have (KLUE <-> CoNLL-style types match without it).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub label_map: BTreeMap<String, String>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        let spec = ModelSpec::default();
        Self {
            source: "char".into(),
            head: spec.head,
            marker: spec.marker,
            word_mask_prob: spec.word_mask_prob,
            prompt: spec.prompt,
            msd_samples: spec.msd_samples,
            msd_average: spec.msd_average,
            max_length: spec.max_length,
            char_units: spec.char_units,
            head_dropout: spec.head_dropout,
            lstm_hidden: spec.lstm_hidden,
            constrained: spec.constrained,
            label_words: BTreeMap::new(),
            fresh_mlm_head: false,
            char: CharModelSize::default(),
            label_map: BTreeMap::new(),
        }
    }
}

impl ModelConfig {
    pub fn spec(&self) -> ModelSpec {
        ModelSpec {
            head: self.head,
            marker: self.marker,
            word_mask_prob: self.word_mask_prob,
            prompt: self.prompt,
            label_words: self.label_words.clone(),
            fresh_mlm_head: self.fresh_mlm_head,
            msd_samples: self.msd_samples.max(1),
            msd_average: self.msd_average,
            max_length: self.max_length,
            char_units: self.char_units,
            head_dropout: self.head_dropout,
            lstm_hidden: self.lstm_hidden,
            constrained: self.constrained,
        }
    }
}

/// Optimization and its tricks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    pub epochs: usize,
    /// Stop after this many optimizer steps (0 = no limit).
    pub max_steps: usize,
    pub batch_size: usize,
    /// Micro-batches per optimizer step.
    pub grad_accum: usize,
    /// Learning rate of the encoder.
    pub lr: f64,
    /// Learning rate of the head (differential learning rates); `None` = `lr`.
    pub head_lr: Option<f64>,
    pub weight_decay: f64,
    /// Fraction of steps of linear warmup.
    pub warmup_ratio: f64,
    pub schedule: Schedule,
    /// Global gradient-norm clipping (0 = off).
    pub clip_norm: f64,
    /// FGM adversarial training on the word embeddings (Miyato et al. 2017); 0 = off.
    pub fgm_epsilon: f64,
    /// R-Drop (Liang et al. 2021): weight of the symmetric KL between two dropout passes; 0 = off.
    pub rdrop_alpha: f64,
    /// R-Drop's KL term: `mean` is the paper's 1/2 (KL(p1||p2) + KL(p2||p1)); `sum` is
    /// KL(p1||p2) + KL(p2||p1), as the KLUE BiLSTM-CRF source computes it (twice the weight).
    pub rdrop_kl: RdropKl,
    /// Evaluate every N steps (0 = at the end of every epoch).
    pub eval_every: usize,
    /// Early stopping: evaluations without dev F1 improvement before stopping (0 = off).
    pub patience: usize,
    /// Batches of similar lengths (less padding); off reproduces a plain random sampler.
    pub bucket: bool,
    /// Update only the word-embedding rows a batch used (lazy AdamW, as PyTorch's SparseAdam; CPU
    /// f32 only, see docs/PERFORMANCE.md). Off: every row every step, as dense AdamW does.
    pub sparse_embedding: bool,
    /// Write a resumable checkpoint every N steps (0 = at evaluations only).
    pub checkpoint_every: usize,
    /// Whether every evaluation ends with a checkpoint (the default). Off, with
    /// `checkpoint_every = 0`, a short run writes a checkpoint only when it is stopped: a crash
    /// then trains it again from the start, with the same result.
    pub checkpoint_at_eval: bool,
    /// Checkpoints kept on disk, newest first (the best model is kept besides, in `best/`). One is
    /// enough to resume; more let a resume fall back past a damaged one.
    pub keep_checkpoints: usize,
    /// What the run keeps once it has ended (finished or early-stopped); see [`Keep`].
    pub keep: Keep,
    /// A `metrics.jsonl` line every N steps.
    pub log_every: usize,
    /// Testing aid: makes the loss NaN at this step, to exercise the failure path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inject_nan_at_step: Option<usize>,
    /// Testing aid: panics at this step, to exercise the worker's recovery.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inject_panic_at_step: Option<usize>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 3,
            max_steps: 0,
            batch_size: 16,
            grad_accum: 1,
            lr: 5e-5,
            head_lr: None,
            weight_decay: 0.01,
            warmup_ratio: 0.0,
            schedule: Schedule::Linear,
            clip_norm: 1.0,
            fgm_epsilon: 0.0,
            rdrop_alpha: 0.0,
            rdrop_kl: RdropKl::Mean,
            eval_every: 0,
            patience: 0,
            bucket: true,
            sparse_embedding: true,
            checkpoint_every: 100,
            checkpoint_at_eval: true,
            keep_checkpoints: 1,
            keep: Keep::All,
            log_every: 10,
            inject_nan_at_step: None,
            inject_panic_at_step: None,
        }
    }
}

/// A second stage on a target corpus after the first (polyglot then monolingual fine-tuning).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FinetuneConfig {
    pub train: Vec<String>,
    /// K-shot sampling of the target corpora (see [`Shots`]; `0` evaluates the first stage's
    /// model on the target without training: zero-shot transfer).
    pub k_shot: Shots,
    pub epochs: usize,
    pub lr: f64,
}

impl Default for FinetuneConfig {
    fn default() -> Self {
        Self {
            train: Vec::new(),
            k_shot: Shots::All,
            epochs: 2,
            lr: 2e-5,
        }
    }
}

/// Everything that defines a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunConfig {
    /// Run name (the run directory is `<out>/<name>`); generated when absent.
    pub name: Option<String>,
    /// Where run directories go.
    pub out: PathBuf,
    pub seed: u64,
    /// CPU threads for tensor work (absent: all cores but one, leaving one for the UI).
    pub threads: Option<usize>,
    pub device: DeviceSpec,
    /// Do not touch the network: Hub models and datasets must already be cached.
    pub offline: bool,
    pub data: DataConfig,
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub finetune: Option<FinetuneConfig>,
    /// Start from another run's best model (a run folder, or a model folder such as
    /// `runs/x/stage1-best`) instead of `model.source`: one source run, fine-tuned many times.
    pub init_from: Option<String>,
    /// What `init_from` does with the source model's head.
    pub init_head: InitHead,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            name: None,
            out: PathBuf::from("runs"),
            seed: 42,
            threads: None,
            device: DeviceSpec::Cpu,
            offline: false,
            data: DataConfig::default(),
            model: ModelConfig::default(),
            train: TrainConfig::default(),
            finetune: None,
            init_from: None,
            init_head: InitHead::Remap,
        }
    }
}

/// One invalid field and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub reason: String,
}

impl RunConfig {
    /// Parses a configuration; errors name the offending key (`train.epochs: expected a whole
    /// number, found the string "three"`) with its line and column.
    pub fn from_toml(text: &str) -> anyhow::Result<Self> {
        from_toml_at(text, "configuration")
    }

    pub fn to_toml(&self) -> anyhow::Result<String> {
        Ok(toml::to_string_pretty(self)?)
    }

    /// Reads a configuration file; errors start with the file's name (and line and column).
    pub fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let hint = crate::data::text::encoding_hint(e.as_bytes())
                .unwrap_or_else(|| "it is not valid UTF-8".into());
            anyhow::anyhow!("{}: {hint}", path.display())
        })?;
        from_toml_at(&text, &path.display().to_string())
    }

    /// Problems a launcher can show next to their fields, before anything starts. Checks what
    /// can be checked without reading data (paths exist, numbers make sense, methods fit).
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let mut err = |field: &'static str, reason: String| errs.push(FieldError { field, reason });
        if self.data.train.is_empty() {
            err(
                "data.train",
                "at least one training corpus is needed".into(),
            );
        }
        for src in self.data.sources() {
            if let Some(reason) = super::sources::check_data_source(src) {
                err("data", reason);
            }
        }
        if let Some(reason) = super::sources::check_model_source(&self.model.source) {
            err("model.source", reason);
        }
        let t = &self.train;
        if t.keep_checkpoints == 0 {
            err("train.keep_checkpoints", "must be at least 1".into());
        }
        if t.batch_size == 0 {
            err("train.batch_size", "must be at least 1".into());
        }
        if t.grad_accum == 0 {
            err("train.grad_accum", "must be at least 1".into());
        }
        if t.epochs == 0 && t.max_steps == 0 {
            err("train.epochs", "give epochs or max_steps".into());
        }
        if !(t.lr > 0.0 && t.lr < 1.0) {
            err(
                "train.lr",
                format!("{} is not a sensible learning rate (0 < lr < 1)", t.lr),
            );
        }
        if let Some(h) = t.head_lr
            && !(h > 0.0 && h < 1.0)
        {
            err(
                "train.head_lr",
                format!("{h} is not a sensible learning rate"),
            );
        }
        if !(0.0..1.0).contains(&t.warmup_ratio) {
            err("train.warmup_ratio", "must be in [0, 1)".into());
        }
        if t.fgm_epsilon < 0.0 || t.rdrop_alpha < 0.0 || t.clip_norm < 0.0 {
            err(
                "train",
                "fgm_epsilon, rdrop_alpha and clip_norm cannot be negative".into(),
            );
        }
        if t.patience > 0 && self.data.dev.is_none() {
            err("train.patience", "early stopping needs a dev corpus".into());
        }
        let m = &self.model;
        if m.prompt && m.head != HeadKind::Softmax {
            err(
                "model.head",
                "prompt label words score through the MLM head: use softmax".into(),
            );
        }
        if !(0.0..1.0).contains(&m.word_mask_prob) || !(0.0..1.0).contains(&m.head_dropout) {
            err(
                "model",
                "word_mask_prob and head_dropout must be in [0, 1)".into(),
            );
        }
        if m.marker != Marker::None && m.word_mask_prob > 0.0 {
            err(
                "model.marker",
                "MANER's marker and its baseline 2 (word_mask_prob) are alternatives".into(),
            );
        }
        if self.data.k_shot.is_zero() && self.init_from.is_none() {
            err(
                "data.k_shot",
                "0 is zero-shot: the stage trains nothing, so the model must come from another \
                 run (init_from); \"all\" trains on every sentence"
                    .into(),
            );
        }
        if let Some(src) = &self.init_from
            && !std::path::Path::new(src).exists()
        {
            err("init_from", format!("{src}: no such run or model folder"));
        }
        if self.threads == Some(0) {
            err("threads", "must be at least 1".into());
        }
        if let Some(f) = &self.finetune
            && f.train.is_empty()
        {
            err(
                "finetune.train",
                "a fine-tuning stage needs a corpus".into(),
            );
        }
        errs
    }
}

/// Parses `text` as a [`RunConfig`]; `origin` (a file name) starts every error message. A key
/// nerlab does not know is an error naming the nearest known key (a misspelt key silently
/// ignored would run a different experiment than the one written down).
fn from_toml_at(text: &str, origin: &str) -> anyhow::Result<RunConfig> {
    let de = toml::Deserializer::parse(text).map_err(|e| config_error(origin, text, &e, ""))?;
    let mut unknown = Vec::new();
    let mut record = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
    let de = serde_ignored::Deserializer::new(de, &mut record);
    let config = serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        config_error(origin, text, e.inner(), if key == "." { "" } else { &key })
    })?;
    match unknown.first() {
        Some(key) => Err(unknown_key_error(origin, text, key)),
        None => Ok(config),
    }
}

/// Every key a configuration can have, dotted (`train.lr`), from a configuration with every
/// optional field present.
pub(crate) fn known_keys() -> Vec<String> {
    let mut full = RunConfig {
        name: Some(String::new()),
        threads: Some(1),
        finetune: Some(FinetuneConfig::default()),
        ..RunConfig::default()
    };
    full.data.format = Some(Format::Klue);
    full.train.head_lr = Some(1e-3);
    full.train.inject_nan_at_step = Some(0);
    full.train.inject_panic_at_step = Some(0);
    fn walk(prefix: &str, v: &toml::Value, out: &mut Vec<String>) {
        if let toml::Value::Table(t) = v {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.push(key.clone());
                walk(&key, v, out);
            }
        }
    }
    let mut out = Vec::new();
    if let Ok(v) = toml::Value::try_from(&full) {
        walk("", &v, &mut out);
    }
    out
}

/// `origin:line: unknown key train.learnig_rate; did you mean train.lr?`, or the keys its table
/// has when none is close.
fn unknown_key_error(origin: &str, text: &str, key: &str) -> anyhow::Error {
    let (table, last) = key.rsplit_once('.').unwrap_or(("", key));
    let siblings: Vec<String> = known_keys()
        .into_iter()
        .filter(|k| k.rsplit_once('.').map_or("", |(t, _)| t) == table)
        .collect();
    let nearest = siblings
        .iter()
        .map(|k| {
            let name = k.rsplit_once('.').map_or(k.as_str(), |(_, n)| n);
            (strsim::levenshtein(name, last), k)
        })
        .min();
    let hint = match nearest {
        Some((d, k)) if d <= (last.chars().count() / 3).max(2) => format!("did you mean {k}?"),
        _ => {
            let names: Vec<&str> = siblings
                .iter()
                .map(|k| k.rsplit_once('.').map_or(k.as_str(), |(_, n)| n))
                .filter(|n| !n.starts_with("inject_"))
                .collect();
            let table = if table.is_empty() {
                "the top level"
            } else {
                table
            };
            format!("{table} has: {}", names.join(", "))
        }
    };
    // The line that sets it, where it can be found (`last = ...` or a dotted `table.last = ...`).
    let line = text.lines().position(|l| {
        let l = l.trim_start();
        l.split('=').next().is_some_and(|k| {
            let k = k.trim().trim_matches('"');
            k == last || k == key || k.ends_with(&format!(".{last}"))
        })
    });
    let at = line.map_or(origin.to_string(), |i| format!("{origin}:{}", i + 1));
    anyhow::anyhow!("{at}: unknown key {key}; {hint}")
}

/// `origin:line:column: key: what was expected, what was found`.
fn config_error(origin: &str, text: &str, e: &toml::de::Error, key: &str) -> anyhow::Error {
    let mut at = origin.to_string();
    if let Some(span) = e.span() {
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        at = format!("{at}:{line}:{column}");
    }
    let message = plain_serde_message(e.message().trim());
    if key.is_empty() {
        anyhow::anyhow!("{at}: {message}")
    } else {
        anyhow::anyhow!("{at}: {key}: {message}")
    }
}

/// serde's `invalid type: string "three", expected usize` in words a researcher reads:
/// `expected a whole number, found the string "three"`.
fn plain_serde_message(message: &str) -> String {
    let Some((found, expected)) = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
        .and_then(|m| m.rsplit_once(", expected "))
    else {
        return message.to_string();
    };
    let expected = match expected {
        "usize" | "u8" | "u16" | "u32" | "u64" => "a whole number (0 or more)",
        "isize" | "i8" | "i16" | "i32" | "i64" => "a whole number",
        "f32" | "f64" => "a number",
        "a boolean" => "true or false",
        "a sequence" => "a list such as [\"a\", \"b\"]",
        other if other.starts_with("struct ") => "a table of keys",
        other => other,
    };
    let found = if let Some(s) = found.strip_prefix("string ") {
        format!("the string {s}")
    } else if let Some(n) = found
        .strip_prefix("integer ")
        .or_else(|| found.strip_prefix("floating point "))
    {
        format!("the number {}", n.trim_matches('`'))
    } else if let Some(b) = found.strip_prefix("boolean ") {
        b.trim_matches('`').to_string()
    } else if found == "sequence" {
        "a list".to_string()
    } else if found == "map" {
        "a table".to_string()
    } else {
        found.to_string()
    };
    format!("expected {expected}, found {found}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole message of the error a configuration text gives.
    fn error_of(text: &str) -> String {
        format!("{:#}", RunConfig::from_toml(text).unwrap_err())
    }

    #[test]
    fn round_trips_through_toml() {
        let mut c = RunConfig {
            name: Some("x".into()),
            ..RunConfig::default()
        };
        c.model.head = HeadKind::BilstmCrf;
        c.finetune = Some(FinetuneConfig {
            train: vec!["a.tsv".into()],
            ..FinetuneConfig::default()
        });
        let text = c.to_toml().unwrap();
        assert_eq!(RunConfig::from_toml(&text).unwrap(), c);
    }

    #[test]
    fn partial_files_take_defaults() {
        let c = RunConfig::from_toml("seed = 7\n[train]\nepochs = 9\n").unwrap();
        assert_eq!((c.seed, c.train.epochs, c.train.batch_size), (7, 9, 16));
        assert_eq!(c.data.train, ["builtin:demo/train"]);
    }

    #[test]
    fn type_errors_name_the_file_the_key_and_the_line() {
        let dir = std::env::temp_dir().join(format!("nerlab-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("run.toml");
        std::fs::write(&path, "seed = 3\n[train]\nepochs = \"three\"\n").unwrap();
        let err = format!("{:#}", RunConfig::load(&path).unwrap_err());
        assert_eq!(
            err,
            format!(
                "{}:3:10: train.epochs: expected a whole number (0 or more), found the string \"three\"",
                path.display()
            )
        );
        let err = error_of("[train]\nlr = true\n");
        assert_eq!(
            err,
            "configuration:2:6: train.lr: expected a number, found true"
        );
        let err = error_of("[data]\ntrain = 3\n");
        assert!(err.contains("data.train: expected a list"), "{err}");
        // A syntax error has no key but still a place.
        let err = error_of("seed = \n");
        assert!(err.starts_with("configuration:1:"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unknown_keys_are_refused_with_the_nearest_known_key() {
        let err = error_of("seed = 1\n[train]\nepochs = 2\nlearnig_rate = 0.1\n");
        assert!(
            err.starts_with("configuration:4: unknown key train.learnig_rate; "),
            "{err}"
        );
        // Nothing close: the table's keys are listed.
        assert!(
            err.contains("train has: batch_size, bucket, checkpoint_at_eval, checkpoint_every"),
            "{err}"
        );
        assert!(
            !err.contains("inject"),
            "testing aids are not advertised: {err}"
        );
        let err = error_of("[train]\nbatchsize = 8\n");
        assert_eq!(
            err,
            "configuration:2: unknown key train.batchsize; did you mean train.batch_size?"
        );
        let err = error_of("sed = 3\n");
        assert_eq!(err, "configuration:1: unknown key sed; did you mean seed?");
        // Every key nerlab writes reads back (a full configuration, optional fields included).
        assert!(known_keys().contains(&"finetune.lr".to_string()));
        let mut full = RunConfig {
            finetune: Some(FinetuneConfig::default()),
            ..RunConfig::default()
        };
        full.train.head_lr = Some(1e-3);
        assert_eq!(
            RunConfig::from_toml(&full.to_toml().unwrap()).unwrap(),
            full
        );
    }

    #[test]
    fn label_words_and_shots_round_trip_through_toml() {
        let text = "[data]\nk_shot = 5\n[model]\nprompt = true\n[model.label_words]\nPER = \"person\"\nPS = \"사람\"\n[finetune]\ntrain = [\"t.tsv\"]\nk_shot = \"all\"\n";
        let c = RunConfig::from_toml(text).unwrap();
        assert_eq!(c.data.k_shot, Shots::K(5));
        assert_eq!(c.finetune.as_ref().unwrap().k_shot, Shots::All);
        assert_eq!(c.model.label_words["PS"], "사람");
        // They reach the model's description, which the run saves.
        assert_eq!(c.model.spec().label_words, c.model.label_words);
        let again = RunConfig::from_toml(&c.to_toml().unwrap()).unwrap();
        assert_eq!(again, c);
        // "all" and a number are the two spellings; zero is zero-shot, not "all".
        assert!(
            RunConfig::default()
                .to_toml()
                .unwrap()
                .contains("k_shot = \"all\"")
        );
        let zero = RunConfig::from_toml("[data]\nk_shot = 0\n").unwrap();
        assert!(zero.data.k_shot.is_zero());
        assert!(
            zero.validate().iter().any(|e| e.field == "data.k_shot"),
            "zero-shot without a model to start from is refused"
        );
        let err = error_of("[data]\nk_shot = \"some\"\n");
        assert!(
            err.contains("data.k_shot") && err.contains("\"all\""),
            "{err}"
        );
        assert_eq!("all".parse::<Shots>(), Ok(Shots::All));
        assert_eq!("0".parse::<Shots>(), Ok(Shots::K(0)));
        assert!("-1".parse::<Shots>().is_err());
    }

    #[test]
    fn the_device_has_one_spelling() {
        let text = RunConfig::default().to_toml().unwrap();
        assert!(text.contains("device = \"cpu\""), "{text}");
        let gpu = RunConfig {
            device: DeviceSpec::Cuda(1),
            ..RunConfig::default()
        };
        assert!(gpu.to_toml().unwrap().contains("device = \"cuda:1\""));
        // What older nerlab wrote still reads.
        let old = RunConfig::from_toml("device = \"Cpu\"\n").unwrap();
        assert_eq!(old.device, DeviceSpec::Cpu);
        let old = RunConfig::from_toml("[device]\nCuda = 2\n").unwrap();
        assert_eq!(old.device, DeviceSpec::Cuda(2));
        let err = error_of("device = \"tpu\"\n");
        assert!(err.contains("device: unknown device \"tpu\""), "{err}");
    }

    #[test]
    fn validation_names_fields() {
        let mut c = RunConfig::default();
        c.train.batch_size = 0;
        c.train.lr = 5.0;
        c.model.prompt = true;
        c.model.head = HeadKind::Crf;
        c.train.keep_checkpoints = 0;
        let fields: Vec<&str> = c.validate().iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "train.keep_checkpoints",
                "train.batch_size",
                "train.lr",
                "model.head"
            ]
        );
        assert!(RunConfig::default().validate().is_empty());
    }
}
