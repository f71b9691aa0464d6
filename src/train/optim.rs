//! AdamW with parameter groups (Loshchilov & Hutter 2019), learning-rate schedules and global-norm
//! clipping, following PyTorch's `torch.optim.AdamW` and Hugging Face's Trainer so runs compare.
//!
//! Groups: encoder parameters (`embeddings.*`, `encoder.*`) take the encoder learning rate, the rest
//! (heads, MLM head) the head rate; biases and LayerNorm parameters get no weight decay, as in HF's
//! Trainer. When parameters are in half precision (GPU), f32 master copies are updated and cast back.

use std::collections::HashMap;

use candle_core::{DType, Tensor, Var};

use super::config::Schedule;

/// Whether a parameter belongs to the pretrained encoder (encoder learning rate).
pub fn is_encoder_param(name: &str) -> bool {
    name.starts_with("embeddings") || name.starts_with("encoder.")
}

/// Whether weight decay applies (not to biases or LayerNorm parameters).
pub fn decays(name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or(name);
    !(last.contains("bias") || name.contains("LayerNorm") || name.contains("layer_norm"))
}

struct Slot {
    name: String,
    var: Var,
    /// f32 copy when `var` is half precision.
    master: Option<Tensor>,
    m: Tensor,
    v: Tensor,
    encoder: bool,
    decay: bool,
}

/// AdamW over named parameters.
pub struct AdamW {
    slots: Vec<Slot>,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Optimizer steps taken.
    pub step: usize,
}

impl AdamW {
    pub fn new(vars: Vec<(String, Var)>, weight_decay: f64) -> candle_core::Result<Self> {
        let slots = vars
            .into_iter()
            .map(|(name, var)| {
                let master = if var.dtype() == DType::F32 || var.dtype() == DType::F64 {
                    None
                } else {
                    Some(var.as_tensor().to_dtype(DType::F32)?)
                };
                let state_dtype = if var.dtype() == DType::F64 {
                    DType::F64
                } else {
                    DType::F32
                };
                let m = Tensor::zeros(var.shape(), state_dtype, var.device())?;
                Ok(Slot {
                    encoder: is_encoder_param(&name),
                    decay: decays(&name),
                    v: m.clone(),
                    m,
                    master,
                    name,
                    var,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            slots,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            step: 0,
        })
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.slots.iter().map(|s| s.name.as_str())
    }

    /// One update with the given gradients (by parameter name; missing ones are skipped, as
    /// PyTorch skips parameters without a gradient).
    pub fn step(
        &mut self,
        grads: &HashMap<String, Tensor>,
        lr_encoder: f64,
        lr_head: f64,
    ) -> candle_core::Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let bc1 = 1.0 - self.beta1.powi(t);
        let bc2_sqrt = (1.0 - self.beta2.powi(t)).sqrt();
        for s in &mut self.slots {
            let Some(g) = grads.get(&s.name) else {
                continue;
            };
            let g = g.to_dtype(s.m.dtype())?;
            let lr = if s.encoder { lr_encoder } else { lr_head };
            let p = match &s.master {
                Some(m) => m.clone(),
                None => s.var.as_tensor().clone(),
            };
            // param.mul_(1 - lr * weight_decay)
            let p = if s.decay && self.weight_decay != 0.0 {
                p.affine(1.0 - lr * self.weight_decay, 0.0)?
            } else {
                p
            };
            // exp_avg.lerp_(grad, 1 - beta1); exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2)
            s.m = (&s.m + (g.sub(&s.m)? * (1.0 - self.beta1))?)?;
            s.v = ((&s.v * self.beta2)? + (g.sqr()? * (1.0 - self.beta2))?)?;
            // denom = exp_avg_sq.sqrt() / sqrt(bias_correction2) + eps; param -= lr / bc1 * exp_avg / denom
            let denom = ((s.v.sqrt()? / bc2_sqrt)? + self.eps)?;
            let p = (p - (s.m.div(&denom)? * (lr / bc1))?)?;
            match &mut s.master {
                Some(m) => {
                    s.var.set(&p.to_dtype(s.var.dtype())?)?;
                    *m = p;
                }
                None => s.var.set(&p)?,
            }
        }
        Ok(())
    }

    /// Optimizer state for a checkpoint: `m.<name>`, `v.<name>` (and `master.<name>`).
    pub fn state(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for s in &self.slots {
            out.insert(format!("m.{}", s.name), s.m.clone());
            out.insert(format!("v.{}", s.name), s.v.clone());
            if let Some(m) = &s.master {
                out.insert(format!("master.{}", s.name), m.clone());
            }
        }
        out
    }

    /// Restores [`state`](Self::state) and the step count.
    pub fn load_state(
        &mut self,
        state: &HashMap<String, Tensor>,
        step: usize,
    ) -> anyhow::Result<()> {
        for s in &mut self.slots {
            let get = |k: String| -> anyhow::Result<Tensor> {
                let t = state
                    .get(&k)
                    .ok_or_else(|| anyhow::anyhow!("optimizer state lacks {k}"))?;
                Ok(t.to_device(s.var.device())?)
            };
            s.m = get(format!("m.{}", s.name))?.to_dtype(s.m.dtype())?;
            s.v = get(format!("v.{}", s.name))?.to_dtype(s.v.dtype())?;
            if s.master.is_some() {
                s.master = Some(get(format!("master.{}", s.name))?);
            }
        }
        self.step = step;
        Ok(())
    }
}

/// The global L2 norm of all gradients.
pub fn global_norm(grads: &HashMap<String, Tensor>) -> candle_core::Result<f64> {
    let mut sum = 0.0;
    for g in grads.values() {
        sum += g
            .to_dtype(DType::F64)?
            .sqr()?
            .sum_all()?
            .to_scalar::<f64>()?;
    }
    Ok(sum.sqrt())
}

/// `torch.nn.utils.clip_grad_norm_`: scales all gradients by `max / (norm + 1e-6)` when that is
/// below 1. Returns the norm before clipping.
pub fn clip(grads: &mut HashMap<String, Tensor>, max_norm: f64) -> candle_core::Result<f64> {
    let norm = global_norm(grads)?;
    if max_norm > 0.0 {
        let coef = max_norm / (norm + 1e-6);
        if coef < 1.0 {
            for g in grads.values_mut() {
                *g = (&*g * coef)?;
            }
        }
    }
    Ok(norm)
}

/// The learning-rate multiplier at optimizer step `step` (0-based, before the update), as HF's
/// `get_linear_schedule_with_warmup` / `get_cosine_schedule_with_warmup` compute it.
pub fn lr_factor(schedule: Schedule, step: usize, warmup: usize, total: usize) -> f64 {
    if step < warmup {
        return step as f64 / warmup.max(1) as f64;
    }
    let progress = (step - warmup) as f64 / total.saturating_sub(warmup).max(1) as f64;
    match schedule {
        Schedule::Constant => 1.0,
        Schedule::Linear => (1.0 - progress).max(0.0),
        Schedule::Cosine => (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())).max(0.0),
    }
}

/// Warmup steps for a ratio (HF: `ceil(total * ratio)`).
pub fn warmup_steps(total: usize, ratio: f64) -> usize {
    (total as f64 * ratio).ceil() as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn groups_and_decay() {
        assert!(is_encoder_param("embeddings.word_embeddings.weight"));
        assert!(is_encoder_param("embeddings_project.weight"));
        assert!(is_encoder_param(
            "encoder.layer.0.attention.self.query.weight"
        ));
        assert!(!is_encoder_param("ner.proj.weight"));
        assert!(decays("encoder.layer.0.attention.self.query.weight"));
        assert!(!decays("encoder.layer.0.attention.self.query.bias"));
        assert!(!decays("embeddings.LayerNorm.weight"));
        assert!(!decays("cls.predictions.bias"));
        assert!(!decays("cls.predictions.extra_bias"));
        assert!(!decays("ner.lstm.forward.bias_ih"));
        assert!(decays("ner.crf.transitions"));
    }

    #[test]
    fn matches_torch_adamw() {
        // torch.optim.AdamW([p], lr=0.1, weight_decay=0.01) with p = [1.0, -2.0] and the gradients
        // [0.5, -1.0] then [0.25, 0.5], against PyTorch's single-tensor update rule written out.
        let var = Var::from_tensor(&Tensor::new(&[1.0f64, -2.0], &Device::Cpu).unwrap()).unwrap();
        let mut opt = AdamW::new(vec![("w".into(), var.clone())], 0.01).unwrap();
        for g in [[0.5f64, -1.0], [0.25, 0.5]] {
            let grads = HashMap::from([("w".to_string(), Tensor::new(&g, &Device::Cpu).unwrap())]);
            opt.step(&grads, 0.1, 0.1).unwrap();
        }
        let p: Vec<f64> = var.as_tensor().to_vec1().unwrap();
        let expected = reference_adamw(&[1.0, -2.0], &[[0.5, -1.0], [0.25, 0.5]], 0.1, 0.01);
        for (a, b) in p.iter().zip(&expected) {
            assert!((a - b).abs() < 1e-12, "{p:?} vs {expected:?}");
        }
    }

    /// PyTorch's single-tensor AdamW written out in plain f64.
    fn reference_adamw(p0: &[f64], grads: &[[f64; 2]], lr: f64, wd: f64) -> Vec<f64> {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        let mut p = p0.to_vec();
        let mut m = vec![0.0; p.len()];
        let mut v = vec![0.0; p.len()];
        for (t, g) in grads.iter().enumerate() {
            let t = (t + 1) as i32;
            for i in 0..p.len() {
                p[i] *= 1.0 - lr * wd;
                m[i] += (g[i] - m[i]) * (1.0 - b1);
                v[i] = v[i] * b2 + g[i] * g[i] * (1.0 - b2);
                let denom = v[i].sqrt() / (1.0 - b2.powi(t)).sqrt() + eps;
                p[i] -= lr / (1.0 - b1.powi(t)) * m[i] / denom;
            }
        }
        p
    }

    #[test]
    fn clipping_and_schedules() {
        let mut g = HashMap::from([(
            "a".to_string(),
            Tensor::new(&[3.0f64, 4.0], &Device::Cpu).unwrap(),
        )]);
        let norm = clip(&mut g, 1.0).unwrap();
        assert_eq!(norm, 5.0);
        assert!((global_norm(&g).unwrap() - 1.0).abs() < 1e-6);
        assert_eq!(lr_factor(Schedule::Linear, 0, 0, 10), 1.0);
        assert_eq!(lr_factor(Schedule::Linear, 5, 0, 10), 0.5);
        assert_eq!(lr_factor(Schedule::Linear, 1, 2, 10), 0.5);
        assert!((lr_factor(Schedule::Cosine, 6, 2, 10) - 0.5).abs() < 1e-12);
        assert_eq!(warmup_steps(375, 0.1), 38);
    }
}
