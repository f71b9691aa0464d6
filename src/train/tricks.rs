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
    pub rdrop_kl: RdropKl,
}

/// How R-Drop combines the two directions of the KL divergence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RdropKl {
    /// 1/2 (KL(p1||p2) + KL(p2||p1)), as Liang et al. (2021) write it.
    #[default]
    Mean,
    /// KL(p1||p2) + KL(p2||p1), as the KLUE BiLSTM-CRF source adds it.
    Sum,
}

crate::choices!(RdropKl, "R-Drop KL": Mean = "mean", Sum = "sum");

/// Symmetric KL divergence between two passes' class distributions (the two directions halved
/// or summed), mean over real units.
pub fn symmetric_kl(
    a: &Tensor,
    b: &Tensor,
    unit_mask: &Tensor,
    how: RdropKl,
) -> candle_core::Result<Tensor> {
    let (la, lb) = (log_softmax(a)?, log_softmax(b)?);
    let (pa, pb) = (la.exp()?, lb.exp()?);
    let scale = match how {
        RdropKl::Mean => 0.5,
        RdropKl::Sum => 1.0,
    };
    let kl = ((pa.mul(&(&la - &lb)?)? + pb.mul(&(&lb - &la)?)?)?.sum(D::Minus1)? * scale)?;
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

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Tensor};

    use super::*;
    use crate::model::align::AlignMode;
    use crate::model::backbone::{Backbone, CharModelSize};
    use crate::model::ner::{ModelSpec, NerModel};
    use crate::model::tokenize::CharVocab;

    /// KL(p || q) of two score rows, by hand.
    fn kl(p: &[f64], q: &[f64]) -> f64 {
        let norm = |x: &[f64]| {
            let z: f64 = x.iter().map(|v| v.exp()).sum();
            x.iter().map(|v| v.exp() / z).collect::<Vec<_>>()
        };
        let (p, q) = (norm(p), norm(q));
        p.iter().zip(&q).map(|(a, b)| a * (a / b).ln()).sum()
    }

    #[test]
    fn rdrop_kl_equals_a_hand_computation() {
        // Two units; the second is padding and must not count.
        let a = [[1.0, 2.0, 0.0], [5.0, 0.0, 0.0]];
        let b = [[0.0, 1.0, 3.0], [0.0, 0.0, 5.0]];
        let t = |x: &[[f64; 3]; 2]| {
            Tensor::from_iter(x.iter().flatten().copied(), &Device::Cpu)
                .unwrap()
                .reshape((1, 2, 3))
                .unwrap()
        };
        let mask = Tensor::new(&[[1.0f64, 0.0]], &Device::Cpu).unwrap();
        let both = kl(&a[0], &b[0]) + kl(&b[0], &a[0]);
        let got = |how| {
            symmetric_kl(&t(&a), &t(&b), &mask, how)
                .unwrap()
                .to_scalar::<f64>()
                .unwrap()
        };
        assert!(
            (got(RdropKl::Sum) - both).abs() < 1e-12,
            "{}",
            got(RdropKl::Sum)
        );
        assert!((got(RdropKl::Mean) - both / 2.0).abs() < 1e-12);
    }

    fn tiny_model(sparse: bool) -> (NerModel, Batch) {
        let texts = ["서울 시청", "김 철수 씨"];
        let vocab = CharVocab::build(texts.iter().copied(), 1);
        let size = CharModelSize {
            hidden: 16,
            layers: 1,
            heads: 2,
            intermediate: 32,
            max_positions: 64,
            dropout: 0.0,
        };
        let backbone = Backbone::char(vocab, size, DType::F32, &Device::Cpu, 3).unwrap();
        let labels: Vec<String> = ["O", "B-LC", "I-LC", "B-PS", "I-PS"]
            .map(String::from)
            .to_vec();
        let mut model =
            NerModel::new(backbone, ModelSpec::default(), labels, AlignMode::Words).unwrap();
        model.backbone.encoder.set_sparse_embedding(sparse);
        let tokens: Vec<String> = ["서울", "시청"].map(String::from).to_vec();
        let tags: Vec<String> = ["B-LC", "I-LC"].map(String::from).to_vec();
        let (_, ex) = model.encode(0, &tokens, Some(&tags)).unwrap();
        let batch = model.batch(&ex.iter().collect::<Vec<_>>(), None).unwrap();
        (model, batch)
    }

    #[test]
    fn fgm_puts_the_embeddings_back_bit_for_bit() {
        for sparse in [true, false] {
            let (model, batch) = tiny_model(sparse);
            let params = model.params().vars();
            let emb = model.word_embedding_var().unwrap();
            let bits = |t: &Tensor| -> Vec<u32> {
                t.flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
                    .iter()
                    .map(|x| x.to_bits())
                    .collect()
            };
            let before = bits(emb.as_tensor());
            let loss = model.loss(&batch, true).unwrap();
            let store = model.backward(&loss).unwrap();
            let mut own = Grads::default();
            own.add(&params, &store, model.encoder().take_sparse(), 1.0)
                .unwrap();
            let mut grads = Grads::default();
            fgm(&model, &batch, &own, &params, &mut grads, 0.5, 1.0).unwrap();
            assert_eq!(bits(emb.as_tensor()), before, "sparse {sparse}");
            assert!(
                grads.norm().unwrap() > 0.0,
                "the adversarial pass added gradients (sparse {sparse})"
            );
        }
    }
}
