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
pub mod kernels;
pub mod lstm;
pub mod mlm;
pub mod ner;
pub mod ops;
pub mod params;
pub mod tokenize;

use std::path::{Path, PathBuf};

use anyhow::Context;
use candle_core::{DType, Device};

pub use config::EncoderConfig;
pub use encoder::{Encoder, EncoderOutput};
pub use mlm::MlmHead;
pub use params::{Checkpoint, Params, Policy};
pub use tokenize::{HfTokenizer, TextTokenizer};

use ops::DropoutRng;

/// A pretrained encoder with its tokenizer and MLM head, as loaded from a folder.
#[derive(Debug, Clone)]
pub struct Pretrained {
    pub dir: PathBuf,
    pub params: Params,
    pub encoder: Encoder,
    pub mlm: MlmHead,
    pub tokenizer: TextTokenizer,
}

/// Loads `config.json`, the weights and `tokenizer.json` from a Hugging Face model folder.
pub fn load_pretrained(
    dir: &Path,
    dtype: DType,
    device: &Device,
    seed: u64,
) -> anyhow::Result<Pretrained> {
    let config = EncoderConfig::from_file(&dir.join("config.json"))?;
    let tokenizer = HfTokenizer::from_dir(dir)?;
    let checkpoint = Checkpoint::from_dir(dir)?;
    let params = Params::new(checkpoint, dtype, device, seed);
    let encoder = Encoder::load(&params, &config, DropoutRng::new(seed))
        .with_context(|| format!("loading the encoder from {}", dir.display()))?;
    let mlm = MlmHead::load(&params, &encoder)?;
    let tokenizer = TextTokenizer::Hf(Box::new(tokenizer));
    tokenizer.check_vocab(config.vocab_size)?;
    Ok(Pretrained {
        dir: dir.to_path_buf(),
        params,
        encoder,
        mlm,
        tokenizer,
    })
}
