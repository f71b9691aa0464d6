//! The encoder a NER model stands on, with its tokenizer: a pretrained Hugging Face model, or the
//! small character model trained from scratch (character embeddings and a few transformer layers,
//! its vocabulary built from the training corpus and saved with it).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use candle_core::{DType, Device};
use serde::{Deserialize, Serialize};

use super::config::{Activation, EncoderConfig};
use super::encoder::Encoder;
use super::ops::DropoutRng;
use super::params::{Checkpoint, Params};
use super::tokenize::{CharVocab, HfTokenizer, TextTokenizer};

/// Where a backbone came from, saved with a trained model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum BackboneKind {
    /// A Hugging Face model folder (its path when loaded; a saved model carries its own copy).
    Pretrained { source: PathBuf },
    /// The character model; its vocabulary is saved as `vocab.json`.
    Char,
}

/// Sizes of the character model (a configuration may give only some; the rest keep their
/// defaults).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CharModelSize {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub max_positions: usize,
    pub dropout: f64,
}

impl Default for CharModelSize {
    /// Small enough to train the demo preset in under two minutes on two cores.
    fn default() -> Self {
        Self {
            hidden: 128,
            layers: 2,
            heads: 4,
            intermediate: 256,
            max_positions: 512,
            dropout: 0.1,
        }
    }
}

impl CharModelSize {
    pub fn config(&self, vocab_len: usize) -> EncoderConfig {
        EncoderConfig {
            model_type: "nerlab-char".into(),
            vocab_size: vocab_len,
            hidden_size: self.hidden,
            num_hidden_layers: self.layers,
            num_attention_heads: self.heads,
            intermediate_size: self.intermediate,
            hidden_act: Activation::Gelu,
            hidden_dropout_prob: self.dropout,
            attention_probs_dropout_prob: self.dropout,
            max_position_embeddings: self.max_positions,
            type_vocab_size: 1,
            layer_norm_eps: 1e-12,
            pad_token_id: Some(0),
            embedding_size: None,
            initializer_range: 0.02,
        }
    }
}

/// An encoder, its tokenizer and the parameter store everything else is added to.
#[derive(Debug, Clone)]
pub struct Backbone {
    /// Provenance, saved with trained models.
    pub kind: BackboneKind,
    /// The tokenizer's files as this backbone read them (none for the character model).
    pub tokenizer_files: TokenizerFiles,
    pub params: Params,
    pub encoder: Encoder,
    pub tokenizer: TextTokenizer,
}

impl Backbone {
    /// A pretrained encoder from a Hugging Face folder; new heads may be initialized, the encoder
    /// must load completely.
    pub fn pretrained(
        dir: &Path,
        dtype: DType,
        device: &Device,
        seed: u64,
    ) -> anyhow::Result<Self> {
        Self::pretrained_with(dir, Checkpoint::from_dir(dir)?, dtype, device, seed)
    }

    /// [`pretrained`](Self::pretrained) with the folder's weights already read (and perhaps
    /// renamed: a token-classification checkpoint's classifier becomes nerlab's head).
    pub fn pretrained_with(
        dir: &Path,
        checkpoint: Checkpoint,
        dtype: DType,
        device: &Device,
        seed: u64,
    ) -> anyhow::Result<Self> {
        let kind = BackboneKind::Pretrained {
            source: dir.to_path_buf(),
        };
        Self::saved(dir, &kind, checkpoint, dtype, device, seed)
    }

    /// A freshly initialized character model over `vocab`.
    pub fn char(
        vocab: CharVocab,
        size: CharModelSize,
        dtype: DType,
        device: &Device,
        seed: u64,
    ) -> anyhow::Result<Self> {
        let config = size.config(vocab.len());
        let params = Params::fresh(dtype, device, seed);
        let tokenizer = TextTokenizer::Chars(vocab);
        let files = TokenizerFiles::default();
        Self::assemble(BackboneKind::Char, files, tokenizer, &config, params, seed)
    }

    /// Rebuilds the backbone of a saved model: `config.json`, and `tokenizer.json` or
    /// `vocab.json`, with every tensor taken from `checkpoint`.
    pub fn saved(
        dir: &Path,
        kind: &BackboneKind,
        checkpoint: Checkpoint,
        dtype: DType,
        device: &Device,
        seed: u64,
    ) -> anyhow::Result<Self> {
        let config = EncoderConfig::from_file(&dir.join("config.json"))?;
        let tokenizer = match kind {
            BackboneKind::Char => TextTokenizer::Chars(CharVocab::load(&dir.join("vocab.json"))?),
            BackboneKind::Pretrained { .. } => {
                TextTokenizer::Hf(Box::new(HfTokenizer::from_dir(dir)?))
            }
        };
        tokenizer
            .check_vocab(config.vocab_size)
            .with_context(|| format!("{}: the tokenizer does not fit the model", dir.display()))?;
        let files = match kind {
            BackboneKind::Char => TokenizerFiles::default(),
            BackboneKind::Pretrained { .. } => TokenizerFiles::read(dir)?,
        };
        let params = Params::new(checkpoint, dtype, device, seed);
        Self::assemble(kind.clone(), files, tokenizer, &config, params, seed)
            .with_context(|| format!("loading the encoder from {}", dir.display()))
    }

    /// The backbone from its parts, the encoder built from `params` as `config` says.
    fn assemble(
        kind: BackboneKind,
        tokenizer_files: TokenizerFiles,
        tokenizer: TextTokenizer,
        config: &EncoderConfig,
        params: Params,
        seed: u64,
    ) -> anyhow::Result<Self> {
        let encoder = Encoder::load(&params, config, DropoutRng::new(seed))?;
        Ok(Self {
            kind,
            tokenizer_files,
            params,
            encoder,
            tokenizer,
        })
    }

    /// Writes what [`saved`](Self::saved) reads, except the weights.
    pub fn save_files(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::write(
            dir.join("config.json"),
            serde_json::to_string_pretty(self.encoder.config())?,
        )?;
        match (&self.kind, &self.tokenizer) {
            (BackboneKind::Char, TextTokenizer::Chars(v)) => v.save(&dir.join("vocab.json"))?,
            (BackboneKind::Pretrained { .. }, TextTokenizer::Hf(_)) => {
                anyhow::ensure!(
                    !self.tokenizer_files.is_empty(),
                    "no tokenizer file to save"
                );
                self.tokenizer_files.write(dir)?;
            }
            _ => anyhow::bail!("backbone kind and tokenizer disagree"),
        }
        Ok(())
    }
}

/// The tokenizer file of a model folder: `tokenizer.json`, else `vocab.txt`.
/// A pretrained tokenizer's files (`tokenizer.json` and/or `vocab.txt`, and `tokenizer_config.json`,
/// which `vocab.txt` needs for its casing), read once when the model is loaded and kept in memory:
/// a model saved later writes them from here, so saving does not depend on the folder it was
/// loaded from still being there (a resumed run loads its checkpoint, which is deleted once a
/// newer one is published; a second stage loads a best model that is pruned later).
#[derive(Debug, Clone, Default)]
pub struct TokenizerFiles(Arc<Vec<(String, Vec<u8>)>>);

impl TokenizerFiles {
    /// The files a tokenizer is read from, in the order they are looked for.
    pub const NAMES: [&str; 3] = ["tokenizer.json", "vocab.txt", "tokenizer_config.json"];

    /// Those of [`NAMES`](Self::NAMES) that `dir` has.
    pub fn read(dir: &Path) -> anyhow::Result<Self> {
        let mut files = Vec::new();
        for name in Self::NAMES {
            let path = dir.join(name);
            if path.exists() {
                let bytes =
                    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                files.push((name.to_string(), bytes));
            }
        }
        Ok(Self(Arc::new(files)))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the model had a file `name`.
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }

    /// Writes every file into `dir`; their names.
    pub fn write(&self, dir: &Path) -> anyhow::Result<Vec<String>> {
        let mut names = Vec::new();
        for (name, bytes) in self.0.iter() {
            let path = dir.join(name);
            std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
            names.push(name.clone());
        }
        Ok(names)
    }
}
