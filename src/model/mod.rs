//! Models: BERT-family encoders loaded from Hugging Face folders, a small character model trained
//! from scratch, tokenization and alignment of words and characters to subwords, NER heads
//! (softmax, BiLSTM, CRF), MANER inputs and prompt label words.

pub mod align;
pub mod backbone;
pub mod batch;
pub mod config;
pub mod crf;
pub mod device;
pub mod encoder;
pub mod hf;
pub mod kernels;
pub mod lstm;
pub mod mlm;
pub mod ner;
pub mod ops;
pub mod params;
pub mod tokenize;
pub mod torch_ner;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};

pub use config::EncoderConfig;
pub use encoder::{Encoder, EncoderOutput};
pub use mlm::MlmHead;
pub use params::{Checkpoint, Params, Policy};
pub use tokenize::{HfTokenizer, TextTokenizer};

/// A pretrained encoder with its tokenizer and MLM head, as loaded from a folder.
#[derive(Debug, Clone)]
pub struct Pretrained {
    pub dir: PathBuf,
    pub params: Params,
    pub encoder: Encoder,
    pub mlm: MlmHead,
    pub tokenizer: TextTokenizer,
}

/// Loads `config.json`, the weights and `tokenizer.json` from a Hugging Face model folder: the
/// pretrained [`Backbone`](backbone::Backbone) and its MLM head.
pub fn load_pretrained(
    dir: &Path,
    dtype: DType,
    device: &Device,
    seed: u64,
) -> anyhow::Result<Pretrained> {
    let backbone = backbone::Backbone::pretrained(dir, dtype, device, seed)?;
    let mlm = MlmHead::load(&backbone.params, &backbone.encoder)?;
    Ok(Pretrained {
        dir: dir.to_path_buf(),
        params: backbone.params,
        encoder: backbone.encoder,
        mlm,
        tokenizer: backbone.tokenizer,
    })
}
