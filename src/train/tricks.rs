//! The training tricks that change a step's gradients: FGM adversarial training (Miyato et al.
//! 2017) and R-Drop's consistency loss (Liang et al. 2021). Multi-sample dropout lives in the
//! head (`ModelSpec::msd_samples`), since it changes the forward pass, not the step.

use candle_core::{D, DType, Tensor, Var};

use super::fused::{AddRows, SetRows};
use super::optim::Grads;
use crate::model::batch::Batch;
use crate::model::ner::NerModel;
use crate::model::ops::log_softmax;

/// Which tricks a step uses, and how strongly (0 = off).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Tricks {
    /// FGM: the norm of the word-embedding perturbation.
    pub fgm_epsilon: f64,
    /// R-Drop: the weight of the symmetric KL between two dropout passes.
    pub rdrop_alpha: f64,
}

/// Symmetric KL divergence between two passes' class distributions, mean over real units.
pub fn symmetric_kl(a: &Tensor, b: &Tensor, unit_mask: &Tensor) -> candle_core::Result<Tensor> {
    let (la, lb) = (log_softmax(a)?, log_softmax(b)?);
    let (pa, pb) = (la.exp()?, lb.exp()?);
    let kl = ((pa.mul(&(&la - &lb)?)? + pb.mul(&(&lb - &la)?)?)?.sum(D::Minus1)? * 0.5)?;
    let count = unit_mask
        .sum_all()?
        .to_dtype(DType::F64)?
        .to_scalar::<f64>()?
        .max(1.0);
    kl.mul(unit_mask)?.sum_all()? / count
}

/// FGM: moves the word embeddings the batch used along their gradient `own` (to norm
/// `epsilon`), adds the gradients of the loss there to `grads` (scaled by `1 / accum`), and puts
/// the embeddings back exactly.
pub fn fgm(
    model: &NerModel,
    batch: &Batch,
    own: &Grads,
    params: &[(String, Var)],
    grads: &mut Grads,
    epsilon: f64,
    accum: f64,
) -> anyhow::Result<()> {
    let Some(emb) = model.word_embedding_var() else {
        return Ok(());
    };
    let norm = own.norm_of_embedding()?;
    if !(norm > 0.0 && norm.is_finite()) {
        return Ok(());
    }
    let scale = epsilon / norm;
    // The loss at the moved embeddings, its gradients added.
    let adversarial = |grads: &mut Grads| -> anyhow::Result<()> {
        let adv = model.loss(batch, true)?;
        let store = model.backward(&adv)?;
        grads.add(params, &store, model.encoder().take_sparse(), 1.0 / accum)?;
        Ok(())
    };
    match own.row_tensor(emb.device())? {
        Some((rows, g)) => {
            let width = g.dim(1)?;
            let ids = Tensor::from_vec(rows.clone(), rows.len(), emb.device())?;
            let backup = emb.as_tensor().index_select(&ids, 0)?.contiguous()?;
            emb.as_tensor().inplace_op2(
                &g,
                &AddRows {
                    rows: &rows,
                    width,
                    scale: scale as f32,
                },
            )?;
            adversarial(grads)?;
            emb.as_tensor()
                .inplace_op2(&backup, &SetRows { rows: &rows, width })?;
        }
        None => {
            let Some(g) = own.dense.get(crate::model::params::WORD_EMBEDDING) else {
                return Ok(());
            };
            let backup = emb.as_tensor().copy()?;
            emb.set(&(emb.as_tensor() + (g * scale)?)?)?;
            adversarial(grads)?;
            emb.set(&backup)?;
        }
    }
    Ok(())
}
