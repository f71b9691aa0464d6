//! The encoder's input rows: word embeddings (the pretrained vocabulary, rows added for prompt
//! label words or MANER's marker, and row-sparse lookups in training), position and token-type
//! embeddings, and the attention mask's additive bias. Shared by both forward passes.

use candle_core::{DType, Device, Result as CResult, Tensor, Var};

use super::super::config::{EncoderConfig, Family};
use super::super::ops::Linear;
use super::super::params::{Init, Params, Policy};
use super::{Encoder, Norm, linear};

#[derive(Debug, Clone)]
pub(super) struct Embeddings {
    pub(super) word: Tensor,
    /// Rows added to the vocabulary (prompt label words, MANER's fresh token).
    pub(super) extra: Option<Tensor>,
    pub(super) position: Tensor,
    pub(super) token_type: Tensor,
    pub(super) norm: Norm,
    pub(super) project: Option<Linear>,
}

impl Embeddings {
    /// The `embeddings.*` tensors, and ELECTRA's `embeddings_project` when the embeddings are
    /// narrower than the hidden size.
    pub(super) fn load(params: &Params, c: &EncoderConfig) -> anyhow::Result<Self> {
        let pe = params.pp("embeddings");
        let std = c.initializer_range;
        let e = c.embedding_width();
        let h = c.hidden_size;
        Ok(Self {
            word: pe.get(
                (c.vocab_size, e),
                "word_embeddings.weight",
                Init::Normal(std),
            )?,
            extra: None,
            position: pe.get(
                (c.max_position_embeddings, e),
                "position_embeddings.weight",
                Init::Normal(std),
            )?,
            token_type: pe.get(
                (c.type_vocab_size.max(1), e),
                "token_type_embeddings.weight",
                Init::Normal(std),
            )?,
            norm: Norm::load(&pe.pp("LayerNorm"), e, c.layer_norm_eps)?,
            project: if e != h {
                Some(linear(&params.pp("embeddings_project"), e, h, std)?)
            } else {
                None
            },
        })
    }
}

/// Flat token ids split between the pretrained vocabulary and the added tokens' own matrix. Split
/// on the host: subtracting on a u32 tensor saturates in candle.
pub(super) struct SplitIds {
    /// Ids into the pretrained matrix (0 at added tokens), on the host.
    pub(super) base: Vec<u32>,
    /// Ids into the added matrix (0 at pretrained tokens).
    pub(super) added: Tensor,
    /// (n, 1): 1 at added tokens, 0 elsewhere, in the embeddings' dtype.
    pub(super) sel: Tensor,
}

impl SplitIds {
    pub(super) fn new(
        host: &[u32],
        vocab_size: usize,
        dtype: DType,
        dev: &Device,
    ) -> CResult<Self> {
        let v = vocab_size as u32;
        let n = host.len();
        let base: Vec<u32> = host.iter().map(|&i| if i < v { i } else { 0 }).collect();
        let added: Vec<u32> = host.iter().map(|&i| i.saturating_sub(v)).collect();
        let sel: Vec<f32> = host.iter().map(|&i| f32::from(u8::from(i >= v))).collect();
        Ok(Self {
            base,
            added: Tensor::from_vec(added, n, dev)?,
            sel: Tensor::from_vec(sel, (n, 1), dev)?.to_dtype(dtype)?,
        })
    }

    /// Each token's row: from `base_rows` or, at added tokens, from `added_rows`.
    pub(super) fn mix(&self, base_rows: &Tensor, added_rows: &Tensor) -> CResult<Tensor> {
        base_rows.broadcast_mul(&self.sel.affine(-1.0, 1.0)?)?
            + added_rows.broadcast_mul(&self.sel)?
    }
}

/// The distinct ids, sorted, and each id's index among them: the rows a row-sparse pass gathers.
pub(super) fn distinct_rows(ids: &[u32]) -> (Vec<u32>, Vec<u32>) {
    let mut rows = ids.to_vec();
    rows.sort_unstable();
    rows.dedup();
    let local = ids
        .iter()
        .map(|id| rows.binary_search(id).unwrap_or(0) as u32)
        .collect();
    (rows, local)
}

/// Word-embedding rows gathered for one training forward pass: the rows (token ids) and a leaf
/// variable holding them, whose gradient is the embedding matrix's gradient on those rows.
#[derive(Debug, Clone)]
pub struct SparseRows {
    pub rows: Vec<u32>,
    pub var: Var,
}

impl Encoder {
    /// Rows of the word-embedding matrix: the pretrained vocabulary plus added tokens.
    pub fn vocab_len(&self) -> usize {
        self.config.vocab_size + self.extra_len()
    }

    pub fn extra_len(&self) -> usize {
        self.embeddings.extra.as_ref().map_or(0, |t| t.dims()[0])
    }

    /// The pretrained word-embedding matrix (vocab, embedding width).
    pub fn word_embeddings(&self) -> &Tensor {
        &self.embeddings.word
    }

    /// The added rows, if any.
    pub fn extra_embeddings(&self) -> Option<&Tensor> {
        self.embeddings.extra.as_ref()
    }

    /// Adds vocabulary rows with ids `vocab_size..`, initialized to `init` (one row each) unless a
    /// saved nerlab checkpoint already holds them.
    pub fn add_tokens(&mut self, params: &Params, init: Vec<Vec<f32>>) -> anyhow::Result<()> {
        let n = init.len();
        if n == 0 {
            return Ok(());
        }
        let e = self.config.embedding_width();
        let rows = params
            .pp("embeddings")
            .with_policy(Policy::LoadOrInit)
            .get_or((n, e).into(), "extra_word_embeddings.weight", |_, _| {
                Ok(init.into_iter().flatten().collect())
            })?;
        self.embeddings.extra = Some(rows);
        Ok(())
    }

    /// Rows of the pretrained vocabulary for flat ids, through a leaf variable when training
    /// with sparse embeddings.
    fn word_rows(&self, flat: &Tensor, train: bool) -> CResult<Tensor> {
        if !(train && self.sparse_embedding) {
            return self.embeddings.word.index_select(flat, 0);
        }
        let host: Vec<u32> = flat.to_vec1()?;
        let (rows, local) = distinct_rows(&host);
        let dev = flat.device();
        let gathered = self
            .embeddings
            .word
            .index_select(&Tensor::from_vec(rows.clone(), rows.len(), dev)?, 0)?
            .detach();
        let var = Var::from_tensor(&gathered)?;
        let out = var
            .as_tensor()
            .index_select(&Tensor::from_vec(local, host.len(), dev)?, 0)?;
        self.push_sparse(SparseRows { rows, var });
        Ok(out)
    }

    /// Embedding rows for `ids` (batch, seq), with added tokens looked up in their own matrix.
    pub(super) fn lookup(&self, ids: &Tensor, train: bool) -> CResult<Tensor> {
        let (b, s) = ids.dims2()?;
        let flat = ids.flatten_all()?;
        let Some(extra) = &self.embeddings.extra else {
            return self.word_rows(&flat, train)?.reshape((b, s, ()));
        };
        let host: Vec<u32> = flat.to_vec1()?;
        let split = SplitIds::new(
            &host,
            self.config.vocab_size,
            self.embeddings.word.dtype(),
            ids.device(),
        )?;
        let base_ids = Tensor::from_slice(&split.base, split.base.len(), ids.device())?;
        let base_rows = self.word_rows(&base_ids, train)?;
        split
            .mix(&base_rows, &extra.index_select(&split.added, 0)?)?
            .reshape((b, s, ()))
    }

    /// Position ids: `0..seq` (BERT, ELECTRA) or, for RoBERTa, `pad + 1 + i` over real tokens and
    /// `pad` over padding (HF's `create_position_ids_from_input_ids`, taken from the mask so a
    /// wrong `pad_token_id` in a config cannot shift them).
    pub(super) fn positions(&self, mask: &Tensor) -> CResult<Tensor> {
        let (b, s) = mask.dims2()?;
        let ids: Vec<u32> = match self.config.family() {
            Family::Roberta => {
                let pad = self.config.pad_token_id.unwrap_or(1) as u32;
                let m: Vec<Vec<f32>> = mask.to_dtype(DType::F32)?.to_vec2()?;
                m.iter()
                    .flat_map(|row| {
                        let mut count = 0u32;
                        row.iter()
                            .map(|&x| {
                                if x > 0.5 {
                                    count += 1;
                                    pad + count
                                } else {
                                    pad
                                }
                            })
                            .collect::<Vec<_>>()
                    })
                    .collect()
            }
            _ => (0..b).flat_map(|_| 0..s as u32).collect(),
        };
        Tensor::from_vec(ids, (b, s), mask.device())
    }

    /// (batch, 1, 1, seq): 0 for tokens, the dtype's lowest value for padding (as HF does).
    pub(super) fn attention_bias(&self, mask: &Tensor) -> CResult<Tensor> {
        let (b, s) = mask.dims2()?;
        let dtype = self.embeddings.word.dtype();
        let lowest = match dtype {
            DType::F64 => f64::MIN,
            DType::F16 => -65504.0,
            DType::BF16 => -3.38e38,
            _ => f64::from(f32::MIN),
        };
        ((mask.to_dtype(dtype)?.neg()? + 1.0)? * lowest)?.reshape((b, 1, 1, s))
    }

    /// Mean of the word-embedding rows `ids`, to initialize an added token from words it stands
    /// for (prompt label words).
    pub fn mean_embedding(&self, ids: &[u32]) -> CResult<Vec<f32>> {
        let dev = self.embeddings.word.device();
        let idx = Tensor::from_vec(ids.to_vec(), ids.len(), dev)?;
        self.embeddings
            .word
            .index_select(&idx, 0)?
            .mean(0)?
            .to_dtype(DType::F32)?
            .to_vec1()
    }
}
