//! The encoder's forward pass in candle ops: the entry points ([`Encoder::forward_t`],
//! [`Encoder::forward_full`]), which hand over to the fused pass (`fused.rs`) wherever it applies,
//! and the pass itself, kept as the autograd reference the fused pass and its hand-derived backward
//! are tested against (`tests/gradcheck.rs`), and run where the kernels do not apply (GPUs, half
//! precision), where the hand-derived backward is turned off, or when training asks for attention.

use candle_core::{Result as CResult, Tensor};

use super::super::ops::{dropout, softmax};
use super::{Encoder, EncoderOutput, Layer, activate};

impl Encoder {
    /// Hidden states for `ids` (batch, seq) under `mask` (batch, seq; 1 = token, 0 = padding), with
    /// dropout when `train`.
    pub fn forward_t(&self, ids: &Tensor, mask: &Tensor, train: bool) -> CResult<Tensor> {
        Ok(self.forward_full(ids, mask, train, false)?.hidden)
    }

    /// Like [`forward_t`](Self::forward_t), optionally returning every layer's attention.
    pub fn forward_full(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        train: bool,
        attention: bool,
    ) -> CResult<EncoderOutput> {
        let c = &self.config;
        let (b, s) = ids.dims2()?;
        if s > c.max_tokens() {
            candle_core::bail!(
                "sequence of {s} tokens is longer than the model's {} positions; split it into windows",
                c.max_tokens()
            );
        }
        if train && self.frozen {
            candle_core::bail!("this model was frozen for inference; load it again to train it");
        }
        // The fast path: always outside training, and in training unless turned off (the
        // autograd reference) or attention is asked for.
        if super::super::kernels::applies(&self.embeddings.word)
            && (!train || (self.taped && !attention))
        {
            return self.forward_fast(ids, mask, train, attention);
        }
        let emb = &self.embeddings;
        let positions = emb
            .position
            .index_select(&self.positions(mask)?.flatten_all()?, 0)?
            .reshape((b, s, ()))?;
        let token_type = emb.token_type.narrow(0, 0, 1)?;
        let x = self
            .lookup(ids, train)?
            .add(&positions)?
            .broadcast_add(&token_type)?;
        let x = self.hidden_dropout(&emb.norm.forward(&x)?, train)?;
        let mut hidden = match &emb.project {
            Some(p) => p.forward(&x)?,
            None => x,
        };

        let bias = self.attention_bias(mask)?;
        let mut attentions = Vec::new();
        for layer in &self.layers {
            let (out, probs) = self.layer_forward(layer, &hidden, &bias, train)?;
            hidden = out;
            if attention {
                attentions.push(probs);
            }
        }
        Ok(EncoderOutput { hidden, attentions })
    }

    fn layer_forward(
        &self,
        l: &Layer,
        x: &Tensor,
        bias: &Tensor,
        train: bool,
    ) -> CResult<(Tensor, Tensor)> {
        let c = &self.config;
        let (b, s, h) = x.dims3()?;
        let (nh, hd) = (c.num_attention_heads, c.head_dim());
        let split = |t: Tensor| -> CResult<Tensor> {
            t.reshape((b, s, nh, hd))?.transpose(1, 2)?.contiguous()
        };
        let q = split(l.query.forward(x)?)?;
        let k = split(l.key.forward(x)?)?;
        let v = split(l.value.forward(x)?)?;
        // (batch, heads, seq, seq)
        let scale = 1.0 / (hd as f64).sqrt();
        let scores = q.matmul(&k.t()?)?;
        let probs = if super::super::kernels::applies(&scores) {
            super::super::kernels::masked_softmax(&scores, bias, scale)?
        } else {
            softmax(&(scores * scale)?.broadcast_add(bias)?)?
        };
        let ctx = dropout(&probs, c.attention_probs_dropout_prob, train, &self.rng)?.matmul(&v)?;
        let ctx = ctx.transpose(1, 2)?.reshape((b, s, h))?;
        let attn = self.hidden_dropout(&l.attn_out.forward(&ctx)?, train)?;
        let attn = l.attn_norm.forward(&(attn + x)?)?;
        let inter = activate(&l.intermediate.forward(&attn)?, c.hidden_act)?;
        let out = self.hidden_dropout(&l.output.forward(&inter)?, train)?;
        let out = l.out_norm.forward(&(out + &attn)?)?;
        Ok((out, probs))
    }

    /// Dropout on a hidden state (embeddings, attention and feed-forward outputs), drawn from the
    /// encoder's generator.
    fn hidden_dropout(&self, x: &Tensor, train: bool) -> CResult<Tensor> {
        dropout(x, self.config.hidden_dropout_prob, train, &self.rng)
    }
}
