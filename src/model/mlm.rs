//! The masked-language-model head: `dense -> activation -> LayerNorm`, then scores against the word
//! embeddings (the decoder is tied to them) plus a bias. Loaded from BERT's `cls.predictions`,
//! RoBERTa's `lm_head` or ELECTRA's generator head when the checkpoint has one, freshly initialized
//! (and still tied) when it does not, as for ELECTRA discriminators such as KoELECTRA.

use candle_core::{Result as CResult, Tensor};

use super::config::{Activation, Family};
use super::encoder::{Encoder, Norm, activate, linear};
use super::ops::Linear;
use super::params::{Init, Params, Policy};

#[derive(Debug, Clone)]
pub struct MlmHead {
    dense: Linear,
    norm: Norm,
    act: Activation,
    /// (vocab) bias of the pretrained vocabulary; absent when only added tokens are scored.
    bias: Option<Tensor>,
    /// (added tokens) bias of added rows.
    extra_bias: Option<Tensor>,
    /// Whether the weights came from the checkpoint.
    pub pretrained: bool,
}

impl MlmHead {
    /// The head as pretrained (scores the whole vocabulary).
    pub fn load(params: &Params, encoder: &Encoder) -> anyhow::Result<Self> {
        Self::load_with(params, encoder, true)
    }

    /// With `full_vocab` false only added tokens can be scored, and the vocabulary bias (which
    /// such a head would never train) is not created.
    pub fn load_with(params: &Params, encoder: &Encoder, full_vocab: bool) -> anyhow::Result<Self> {
        let c = encoder.config();
        let p = params
            .root()
            .pp("cls.predictions")
            .with_policy(Policy::LoadOrInit);
        let pretrained = p.has("transform.dense.weight");
        let (h, e) = (c.hidden_size, c.embedding_width());
        let act = match c.family() {
            // RobertaLMHead always uses exact GELU; BERT and ELECTRA's generator use the config's.
            Family::Roberta => Activation::Gelu,
            _ => c.hidden_act,
        };
        let extra = encoder.extra_len();
        Ok(Self {
            dense: linear(&p.pp("transform.dense"), h, e, c.initializer_range)?,
            norm: Norm::load(&p.pp("transform.LayerNorm"), e, c.layer_norm_eps)?,
            act,
            bias: if full_vocab {
                Some(p.get(c.vocab_size, "bias", Init::Zeros)?)
            } else {
                None
            },
            extra_bias: if extra > 0 {
                Some(p.get(extra, "extra_bias", Init::Zeros)?)
            } else {
                None
            },
            pretrained,
        })
    }

    /// (…, hidden) -> (…, embedding width): the part before the tied decoder.
    pub fn transform(&self, hidden: &Tensor) -> CResult<Tensor> {
        self.norm
            .forward(&activate(&self.dense.forward(hidden)?, self.act)?)
    }

    /// Logits over the whole vocabulary, added tokens last: (…, vocab + added).
    pub fn logits(&self, hidden: &Tensor, encoder: &Encoder) -> CResult<Tensor> {
        let Some(bias) = &self.bias else {
            candle_core::bail!("this MLM head scores added tokens only");
        };
        let t = self.transform(hidden)?;
        let base =
            Linear::new(encoder.word_embeddings().clone(), Some(bias.clone())).forward(&t)?;
        match (encoder.extra_embeddings(), &self.extra_bias) {
            (Some(rows), Some(bias)) => {
                let added = Linear::new(rows.clone(), Some(bias.clone())).forward(&t)?;
                Tensor::cat(&[&base, &added], candle_core::D::Minus1)
            }
            _ => Ok(base),
        }
    }

    /// Logits restricted to the added tokens (prompt label words): (…, added).
    pub fn added_logits(&self, hidden: &Tensor, encoder: &Encoder) -> CResult<Tensor> {
        let (Some(rows), Some(bias)) = (encoder.extra_embeddings(), &self.extra_bias) else {
            candle_core::bail!("the model has no added tokens to score");
        };
        Linear::new(rows.clone(), Some(bias.clone())).forward(&self.transform(hidden)?)
    }
}
