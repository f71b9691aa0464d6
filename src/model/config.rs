//! The encoder configuration, read from a Hugging Face `config.json`. One struct covers BERT,
//! ELECTRA (whose `embedding_size` may differ from `hidden_size`) and RoBERTa/XLM-R (whose
//! position ids start after `pad_token_id`). Fields HF omits take HF's defaults.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The architecture family, which decides position ids and weight names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    #[default]
    Bert,
    Electra,
    /// RoBERTa and XLM-R: positions offset by `pad_token_id + 1`.
    Roberta,
}

/// The activation of the feed-forward layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Activation {
    /// Exact GELU (`erf`), HF's "gelu".
    #[default]
    #[serde(rename = "gelu")]
    Gelu,
    /// The tanh approximation: "gelu_new", "gelu_pytorch_tanh", "gelu_fast".
    #[serde(rename = "gelu_new", alias = "gelu_pytorch_tanh", alias = "gelu_fast")]
    GeluTanh,
    #[serde(rename = "relu")]
    Relu,
}

fn d_dropout() -> f64 {
    0.1
}
fn d_eps() -> f64 {
    1e-12
}
fn d_types() -> usize {
    2
}
fn d_positions() -> usize {
    512
}
fn d_init() -> f64 {
    0.02
}

/// A BERT-family encoder's hyperparameters (HF names, HF defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderConfig {
    #[serde(default)]
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default)]
    pub hidden_act: Activation,
    #[serde(default = "d_dropout")]
    pub hidden_dropout_prob: f64,
    #[serde(default = "d_dropout")]
    pub attention_probs_dropout_prob: f64,
    #[serde(default = "d_positions")]
    pub max_position_embeddings: usize,
    #[serde(default = "d_types")]
    pub type_vocab_size: usize,
    #[serde(default = "d_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub pad_token_id: Option<usize>,
    /// ELECTRA: the width of the embeddings, projected to `hidden_size` when different.
    #[serde(default)]
    pub embedding_size: Option<usize>,
    #[serde(default = "d_init")]
    pub initializer_range: f64,
}

impl EncoderConfig {
    /// Reads `config.json`, failing with the file name on any problem.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let cfg: Self = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: not a BERT-family config: {e}", path.display()))?;
        cfg.validate()
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        match self.model_type.as_str() {
            "" | "bert" | "electra" | "roberta" | "xlm-roberta" | "camembert" | "nerlab-char" => {
                Ok(())
            }
            other => Err(format!(
                "model_type {other:?} is not supported (bert, electra, roberta, xlm-roberta)"
            )),
        }
    }

    pub fn family(&self) -> Family {
        match self.model_type.as_str() {
            "electra" => Family::Electra,
            "roberta" | "xlm-roberta" | "camembert" => Family::Roberta,
            _ => Family::Bert,
        }
    }

    /// Width of the embedding layer (ELECTRA may differ from the hidden size).
    pub fn embedding_width(&self) -> usize {
        self.embedding_size.unwrap_or(self.hidden_size)
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// First position id: `pad_token_id + 1` for RoBERTa-style models, 0 otherwise.
    pub fn position_offset(&self) -> usize {
        match self.family() {
            Family::Roberta => self.pad_token_id.unwrap_or(1) + 1,
            _ => 0,
        }
    }

    /// How many tokens (special tokens included) fit in one forward pass.
    pub fn max_tokens(&self) -> usize {
        self.max_position_embeddings
            .saturating_sub(self.position_offset())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_hf_configs_with_defaults() {
        let bert: EncoderConfig = serde_json::from_str(
            r#"{"model_type":"bert","vocab_size":10,"hidden_size":8,"num_hidden_layers":1,
                "num_attention_heads":2,"intermediate_size":16,"hidden_act":"gelu"}"#,
        )
        .unwrap();
        assert_eq!(bert.family(), Family::Bert);
        assert_eq!(bert.layer_norm_eps, 1e-12);
        assert_eq!(bert.max_tokens(), 512);
        let xlmr: EncoderConfig = serde_json::from_str(
            r#"{"model_type":"xlm-roberta","vocab_size":10,"hidden_size":8,"num_hidden_layers":1,
                "num_attention_heads":2,"intermediate_size":16,"hidden_act":"gelu",
                "max_position_embeddings":514,"pad_token_id":1,"type_vocab_size":1}"#,
        )
        .unwrap();
        assert_eq!(xlmr.position_offset(), 2);
        assert_eq!(xlmr.max_tokens(), 512);
        let electra: EncoderConfig = serde_json::from_str(
            r#"{"model_type":"electra","vocab_size":10,"hidden_size":8,"num_hidden_layers":1,
                "num_attention_heads":2,"intermediate_size":16,"embedding_size":4,"hidden_act":"gelu_new"}"#,
        )
        .unwrap();
        assert_eq!(electra.embedding_width(), 4);
        assert_eq!(electra.hidden_act, Activation::GeluTanh);
    }

    #[test]
    fn rejects_bad_head_count() {
        let mut c: EncoderConfig = serde_json::from_str(
            r#"{"vocab_size":10,"hidden_size":8,"num_hidden_layers":1,"num_attention_heads":3,"intermediate_size":16}"#,
        )
        .unwrap();
        assert!(c.validate().is_err());
        c.num_attention_heads = 2;
        c.model_type = "gpt2".into();
        assert!(c.validate().unwrap_err().contains("gpt2"));
    }
}
