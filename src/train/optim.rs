//! AdamW with parameter groups (Loshchilov & Hutter 2019), learning-rate schedules and global-norm
//! clipping, following PyTorch's `torch.optim.AdamW` and Hugging Face's Trainer so runs compare.
//!
//! Groups: encoder parameters (`embeddings.*`, `encoder.*`) take the encoder learning rate, the rest
//! (heads, MLM head) the head rate; biases and LayerNorm parameters get no weight decay, as in HF's
//! Trainer. When parameters are in half precision (GPU), f32 master copies are updated and cast back.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use candle_core::{DType, Tensor, Var};

use super::config::Schedule;
use super::fused::{AdamHyper, CatchUp, DenseAdam, RowAdam};
use crate::model::params::WORD_EMBEDDING;

/// Whether a parameter belongs to the pretrained encoder (encoder learning rate).
pub fn is_encoder_param(name: &str) -> bool {
    name.starts_with("embeddings") || name.starts_with("encoder.")
}

/// Whether weight decay applies (not to biases or LayerNorm parameters).
pub fn decays(name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or(name);
    !(last.contains("bias") || name.contains("LayerNorm") || name.contains("layer_norm"))
}

/// The optimizer's moments of one parameter: host buffers for CPU f32 parameters (updated in place
/// by the fused kernels), tensors otherwise (GPU, f64).
enum Moments {
    Host { m: Vec<f32>, v: Vec<f32> },
    Tensor { m: Tensor, v: Tensor },
}

struct Slot {
    name: String,
    var: Var,
    /// f32 copy when `var` is half precision.
    master: Option<Tensor>,
    moments: Moments,
    encoder: bool,
    decay: bool,
}

/// Gradients of one optimizer step: dense ones by parameter name (sorted, so sums run in the same
/// order in every process), and the word-embedding matrix's as gathered rows.
#[derive(Debug, Default)]
pub struct Grads {
    pub dense: BTreeMap<String, Tensor>,
    /// Word-embedding gradient rows by token id (only rows a batch used).
    pub rows: BTreeMap<u32, Vec<f32>>,
    pub row_param: Option<String>,
}

impl Grads {
    /// Adds `scale` times the gradients in `store` of the model's parameters, and of the sparse
    /// embedding rows its encoder gathered (which are taken from it).
    pub fn add(
        &mut self,
        params: &[(String, Var)],
        store: &candle_core::backprop::GradStore,
        sparse: Vec<crate::model::encoder::SparseRows>,
        scale: f64,
    ) -> candle_core::Result<()> {
        for (name, var) in params {
            if let Some(g) = store.get(var.as_tensor()) {
                // `g * 1.0` equals `g` for every use (it only turns -0.0 into +0.0, which squares and
                // AdamW's arithmetic do not see): skip that pass and its copy in the usual case.
                let g = if scale == 1.0 {
                    g.clone()
                } else {
                    (g * scale)?
                };
                let entry = self.dense.remove(name);
                self.dense.insert(
                    name.clone(),
                    match entry {
                        Some(a) => (a + g)?,
                        None => g,
                    },
                );
            }
        }
        for s in sparse {
            let Some(g) = store.get(s.var.as_tensor()) else {
                continue;
            };
            let g: Vec<Vec<f32>> = g.to_dtype(DType::F32)?.to_vec2()?;
            for (&row, grad) in s.rows.iter().zip(g) {
                let acc = self
                    .rows
                    .entry(row)
                    .or_insert_with(|| vec![0.0; grad.len()]);
                for (a, x) in acc.iter_mut().zip(grad) {
                    *a += x * scale as f32;
                }
            }
            self.row_param
                .get_or_insert_with(|| WORD_EMBEDDING.to_string());
        }
        Ok(())
    }

    /// The global L2 norm of all gradients.
    pub fn norm(&self) -> candle_core::Result<f64> {
        // Each tensor's sum on its own, then added in name order, as before.
        let grads: Vec<&Tensor> = (self.dense.iter())
            .filter(|(name, _)| name.as_str() != WORD_EMBEDDING)
            .map(|(_, g)| g)
            .collect();
        // Host f32 gradients read in place, several at once (see `squares_interleaved`); any
        // other through candle, before any storage is locked here.
        let on_host = |g: &Tensor| {
            g.device().is_cpu()
                && g.dtype() == DType::F32
                && g.layout().contiguous_offsets().is_some()
        };
        let other: Vec<Option<f64>> = grads
            .iter()
            .map(|g| (!on_host(g)).then(|| tensor_squares(g)).transpose())
            .collect::<candle_core::Result<_>>()?;
        let guards: Vec<_> = (grads.iter())
            .filter(|g| on_host(g))
            .map(|g| g.storage_and_layout())
            .collect();
        let slices = guards
            .iter()
            .map(
                |(storage, layout)| match (&**storage, layout.contiguous_offsets()) {
                    (
                        candle_core::Storage::Cpu(candle_core::CpuStorage::F32(data)),
                        Some((a, b)),
                    ) => Ok(&data[a..b]),
                    _ => Err(candle_core::Error::Msg(
                        "gradient norm: not host f32".into(),
                    )),
                },
            )
            .collect::<candle_core::Result<Vec<&[f32]>>>()?;
        let mut host_sums = squares_interleaved(&slices).into_iter();
        let mut sum = 0.0;
        for o in &other {
            sum += match o {
                Some(s) => *s,
                None => host_sums.next().unwrap_or(0.0),
            };
        }
        drop(guards);
        // The word embedding last (clipping scales every gradient by the norm: a last-bit
        // difference between its dense and row-sparse forms would set the two updates apart).
        Ok(self.add_embedding_squares(sum)?.sqrt())
    }

    /// The L2 norm of the word-embedding gradient (sparse rows, or the dense matrix), summed in
    /// the same order for both.
    pub fn norm_of_embedding(&self) -> candle_core::Result<f64> {
        Ok(self.add_embedding_squares(0.0)?.sqrt())
    }

    /// `start` plus the squares of the word-embedding gradient, added row by row in row order
    /// whether it is a dense matrix or row-sparse (one of the two is present), so that both forms
    /// give the same sum to the last bit.
    fn add_embedding_squares(&self, start: f64) -> candle_core::Result<f64> {
        let mut sum = start;
        if let Some(g) = self.dense.get(WORD_EMBEDDING) {
            sum = dense_row_squares(g)?.into_iter().fold(sum, |s, r| s + r);
        }
        Ok(self.rows.values().fold(sum, |s, r| s + row_squares(r)))
    }

    /// The sparse rows as (ids, a (rows, width) tensor).
    pub fn row_tensor(
        &self,
        device: &candle_core::Device,
    ) -> candle_core::Result<Option<(Vec<u32>, Tensor)>> {
        let Some(width) = self.rows.values().next().map(Vec::len) else {
            return Ok(None);
        };
        let ids: Vec<u32> = self.rows.keys().copied().collect();
        let flat: Vec<f32> = self.rows.values().flatten().copied().collect();
        Ok(Some((
            ids.clone(),
            Tensor::from_vec(flat, (ids.len(), width), device)?,
        )))
    }
}

/// What dense AdamW would still have done to the rows of the row-sparse parameter (the word
/// embeddings) that recent steps did not touch. Dense AdamW moves a row with zero gradient too
/// (its moments decay but are not zero), about ten times as far in total as the step that had
/// the gradient; PyTorch's SparseAdam drops those moves. Here they are replayed, with dense
/// AdamW's arithmetic, before a row is next read ([`AdamW::catch_up`]) or saved
/// ([`AdamW::flush`]): the result is dense AdamW's at the cost of the rows used.
struct Lazy {
    slot: usize,
    width: usize,
    /// Per row: the step through which it is current.
    last: Vec<u32>,
    /// Step `base + 1 + i`'s update scalars at index `i`.
    base: usize,
    hist: Vec<AdamHyper>,
}

/// AdamW over named parameters.
pub struct AdamW {
    slots: Vec<Slot>,
    lazy: Option<Lazy>,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Optimizer steps taken.
    pub step: usize,
}

fn host_eligible(var: &Var) -> bool {
    var.device().is_cpu()
        && var.dtype() == DType::F32
        && var.as_tensor().is_contiguous()
        && crate::model::device::gpu_path().is_none()
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
                let moments = if host_eligible(&var) {
                    Moments::Host {
                        m: vec![0.0; var.elem_count()],
                        v: vec![0.0; var.elem_count()],
                    }
                } else {
                    let state_dtype = if var.dtype() == DType::F64 {
                        DType::F64
                    } else {
                        DType::F32
                    };
                    let m = Tensor::zeros(var.shape(), state_dtype, var.device())?;
                    Moments::Tensor { v: m.clone(), m }
                };
                Ok(Slot {
                    encoder: is_encoder_param(&name),
                    decay: decays(&name),
                    moments,
                    master,
                    name,
                    var,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            slots,
            lazy: None,
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

    /// One update (parameters without a gradient are skipped, as PyTorch skips them). Gradients are
    /// first multiplied by `grad_scale` (clipping).
    pub fn step(
        &mut self,
        grads: &Grads,
        lr_encoder: f64,
        lr_head: f64,
        grad_scale: f64,
    ) -> candle_core::Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let bc1 = 1.0 - self.beta1.powi(t);
        let bc2_sqrt = (1.0 - self.beta2.powi(t)).sqrt();
        let row_tensor = match self.slots.first() {
            Some(s) => grads.row_tensor(s.var.device())?,
            None => None,
        };
        for (si, s) in self.slots.iter_mut().enumerate() {
            let lr = if s.encoder { lr_encoder } else { lr_head };
            let decay = if s.decay && self.weight_decay != 0.0 {
                1.0 - lr * self.weight_decay
            } else {
                1.0
            };
            let hyper = AdamHyper {
                lr,
                beta1: self.beta1,
                beta2: self.beta2,
                eps: self.eps,
                decay,
                bc1,
                bc2_sqrt,
                grad_scale,
            };
            let sparse = grads.row_param.as_deref() == Some(s.name.as_str());
            match (&mut s.moments, sparse, &row_tensor) {
                (Moments::Host { m, v }, true, Some((rows, g))) => {
                    let width = g.dim(1)?;
                    let lazy = self.lazy.get_or_insert_with(|| Lazy {
                        slot: si,
                        width,
                        last: vec![(t - 1) as u32; s.var.elem_count() / width.max(1)],
                        base: (t - 1) as usize,
                        hist: Vec::new(),
                    });
                    catch_up_rows(lazy, &s.var, m, v, rows)?;
                    lazy.hist.push(hyper);
                    for &r in rows {
                        if let Some(l) = lazy.last.get_mut(r as usize) {
                            *l = t as u32;
                        }
                    }
                    let op = RowAdam {
                        hyper,
                        rows,
                        width,
                        m: Mutex::new(m.as_mut_slice()),
                        v: Mutex::new(v.as_mut_slice()),
                    };
                    s.var.as_tensor().inplace_op2(g, &op)?;
                }
                (Moments::Host { m, v }, false, _) => {
                    let Some(g) = grads.dense.get(&s.name) else {
                        continue;
                    };
                    let g = if g.is_contiguous() && g.dtype() == DType::F32 {
                        g.clone()
                    } else {
                        g.to_dtype(DType::F32)?.contiguous()?
                    };
                    let op = DenseAdam {
                        hyper,
                        m: Mutex::new(m.as_mut_slice()),
                        v: Mutex::new(v.as_mut_slice()),
                    };
                    s.var.as_tensor().inplace_op2(&g, &op)?;
                }
                (Moments::Tensor { m, v }, _, _) => {
                    let Some(g) = grads.dense.get(&s.name) else {
                        continue;
                    };
                    let g = (g.to_dtype(m.dtype())? * grad_scale)?;
                    let p = match &s.master {
                        Some(master) => master.clone(),
                        None => s.var.as_tensor().clone(),
                    };
                    // PyTorch's AdamW: decay, lerp the first moment, update the second, step.
                    let p = if decay != 1.0 {
                        p.affine(decay, 0.0)?
                    } else {
                        p
                    };
                    *m = (&*m + (g.sub(m)? * (1.0 - self.beta1))?)?;
                    *v = ((&*v * self.beta2)? + (g.sqr()? * (1.0 - self.beta2))?)?;
                    let denom = ((v.sqrt()? / bc2_sqrt)? + self.eps)?;
                    let p = (p - (m.div(&denom)? * (lr / bc1))?)?;
                    match &mut s.master {
                        Some(master) => {
                            s.var.set(&p.to_dtype(s.var.dtype())?)?;
                            *master = p;
                        }
                        None => s.var.set(&p)?,
                    }
                }
                (Moments::Host { .. }, true, None) => {}
            }
            // The row-sparse parameter got no rows this step: dense AdamW still moved them all.
            if let Some(lazy) = self.lazy.as_mut().filter(|l| l.slot == si)
                && lazy.hist.len() + lazy.base < t as usize
            {
                lazy.hist.push(hyper);
            }
        }
        Ok(())
    }

    /// Brings the word-embedding rows among `ids` up to date (see [`Lazy`]) before a forward pass
    /// reads them. Ids outside the matrix (added tokens) are ignored.
    pub fn catch_up(&mut self, ids: &[u32]) -> candle_core::Result<()> {
        let Some(lazy) = self.lazy.as_mut() else {
            return Ok(());
        };
        let s = &mut self.slots[lazy.slot];
        let Moments::Host { m, v } = &mut s.moments else {
            return Ok(());
        };
        catch_up_rows(lazy, &s.var, m, v, ids)
    }

    /// Brings every word-embedding row up to date: before saving or evaluating the model.
    pub fn flush(&mut self) -> candle_core::Result<()> {
        let Some(lazy) = self.lazy.as_mut() else {
            return Ok(());
        };
        let s = &mut self.slots[lazy.slot];
        let Moments::Host { m, v } = &mut s.moments else {
            return Ok(());
        };
        let from: Vec<u32> = lazy
            .last
            .iter()
            .map(|&l| (l as usize).saturating_sub(lazy.base) as u32)
            .collect();
        let op = CatchUp {
            rows: None,
            from_all: &from,
            hist: &lazy.hist,
            width: lazy.width,
            m: Mutex::new(m.as_mut_slice()),
            v: Mutex::new(v.as_mut_slice()),
        };
        s.var.as_tensor().inplace_op1(&op)?;
        let now = lazy.base + lazy.hist.len();
        lazy.last.iter_mut().for_each(|l| *l = now as u32);
        lazy.base = now;
        lazy.hist.clear();
        Ok(())
    }

    /// Optimizer state for a checkpoint: `m.<name>`, `v.<name>` (and `master.<name>`). Flush
    /// first: the parameters saved beside it must be current.
    pub fn state(&self) -> candle_core::Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for s in &self.slots {
            let (m, v) = match &s.moments {
                Moments::Host { m, v } => (
                    Tensor::from_slice(m, s.var.shape(), &candle_core::Device::Cpu)?,
                    Tensor::from_slice(v, s.var.shape(), &candle_core::Device::Cpu)?,
                ),
                Moments::Tensor { m, v } => (m.clone(), v.clone()),
            };
            out.insert(format!("m.{}", s.name), m);
            out.insert(format!("v.{}", s.name), v);
            if let Some(master) = &s.master {
                out.insert(format!("master.{}", s.name), master.clone());
            }
        }
        Ok(out)
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
                Ok(t.clone())
            };
            let (m, v) = (get(format!("m.{}", s.name))?, get(format!("v.{}", s.name))?);
            match &mut s.moments {
                Moments::Host { m: hm, v: hv } => {
                    *hm = m.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
                    *hv = v.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
                }
                Moments::Tensor { m: tm, v: tv } => {
                    *tm = m.to_device(s.var.device())?.to_dtype(tm.dtype())?;
                    *tv = v.to_device(s.var.device())?.to_dtype(tv.dtype())?;
                }
            }
            if s.master.is_some() {
                s.master = Some(get(format!("master.{}", s.name))?.to_device(s.var.device())?);
            }
        }
        self.step = step;
        // Everything saved was current (flushed before saving).
        self.lazy = None;
        Ok(())
    }
}

/// Catches up the rows among `ids` (deduplicated here) that are behind.
fn catch_up_rows(
    lazy: &mut Lazy,
    var: &Var,
    m: &mut [f32],
    v: &mut [f32],
    ids: &[u32],
) -> candle_core::Result<()> {
    let now = (lazy.base + lazy.hist.len()) as u32;
    let mut rows: Vec<(u32, usize)> = ids
        .iter()
        .filter(|&&r| lazy.last.get(r as usize).is_some_and(|&l| l < now))
        .map(|&r| (r, lazy.last[r as usize] as usize - lazy.base))
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    rows.sort_unstable();
    rows.dedup();
    let op = CatchUp {
        rows: Some(&rows),
        from_all: &[],
        hist: &lazy.hist,
        width: lazy.width,
        m: Mutex::new(m),
        v: Mutex::new(v),
    };
    var.as_tensor().inplace_op1(&op)?;
    for &(r, _) in &rows {
        lazy.last[r as usize] = now;
    }
    Ok(())
}

/// The sum of squares of one gradient row, sequentially in f64. Rows are added to a norm one
/// such sum at a time, in row order, whether the gradient is row-sparse or a dense matrix (whose
/// rows of zeros add exactly nothing), so both give the same norm to the last bit.
fn row_squares(row: &[f32]) -> f64 {
    row.iter().map(|&x| f64::from(x) * f64::from(x)).sum()
}

/// The sum of squares of a gradient that is not a contiguous host f32 tensor (GPU, another dtype,
/// a strided view), through candle: `g.to_dtype(F64).sqr().sum_all()`, whose f64 sum runs element
/// by element in order from 0 on the CPU, as [`squares_interleaved`] does for host slices.
fn tensor_squares(g: &Tensor) -> candle_core::Result<f64> {
    g.to_dtype(DType::F64)?.sqr()?.sum_all()?.to_scalar::<f64>()
}

/// The sum of squares of each slice, in f64, each element by element in order from 0 (what
/// candle's f64 `sum_all` of the squares computes, to the bit), eight slices at a time in one
/// loop. One slice's sum
/// is a chain of dependent additions, each waiting for the last (about four cycles): summed one
/// after another the 21M dense gradients of e5-small took about 14 ms of a 350 ms training step
/// on two threads. Eight independent chains advance together in the time of one. Slices of
/// similar length are grouped (sorted by length); each group runs to its shortest slice's end
/// together and the rest of each slice alone, in order; groups run in parallel.
fn squares_interleaved(slices: &[&[f32]]) -> Vec<f64> {
    use rayon::prelude::*;
    const LANES: usize = 8;
    let mut order: Vec<usize> = (0..slices.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(slices[i].len()));
    let groups: Vec<&[usize]> = order.chunks(LANES).collect();
    let group_sums: Vec<Vec<f64>> = groups
        .par_iter()
        .map(|group| {
            let together = group.iter().map(|&i| slices[i].len()).min().unwrap_or(0);
            // Lanes past a short last group repeat its last (shortest) slice; their sums are
            // dropped.
            let heads: [&[f32]; LANES] =
                std::array::from_fn(|l| &slices[group[l.min(group.len() - 1)]][..together]);
            let mut acc = [0.0f64; LANES];
            for j in 0..together {
                for (a, h) in acc.iter_mut().zip(&heads) {
                    let x = f64::from(h[j]);
                    *a += x * x;
                }
            }
            (acc.iter().zip(group.iter()))
                .map(|(&a, &i)| {
                    slices[i][together..].iter().fold(a, |a, &x| {
                        let x = f64::from(x);
                        a + x * x
                    })
                })
                .collect()
        })
        .collect();
    let mut sums = vec![0.0; slices.len()];
    for (group, got) in groups.iter().zip(group_sums) {
        for (&i, s) in group.iter().zip(got) {
            sums[i] = s;
        }
    }
    sums
}

/// [`row_squares`] of every row of a dense (rows, width) gradient. On the CPU exactly as for
/// row-sparse rows; elsewhere (GPU, dense updates only) on the device, so that one number per
/// row crosses to the host rather than the whole matrix.
fn dense_row_squares(g: &Tensor) -> candle_core::Result<Vec<f64>> {
    let width = g.dims().last().copied().unwrap_or(1).max(1);
    if g.device().is_cpu() {
        let data = g.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        Ok(data.chunks(width).map(row_squares).collect())
    } else {
        g.to_dtype(DType::F64)?
            .sqr()?
            .reshape(((), width))?
            .sum(1)?
            .to_vec1::<f64>()
    }
}

/// `torch.nn.utils.clip_grad_norm_`'s factor: `max / (norm + 1e-6)` when that is below 1, else 1
/// (and 1 when clipping is off).
pub fn clip_scale(norm: f64, max_norm: f64) -> f64 {
    if max_norm > 0.0 {
        (max_norm / (norm + 1e-6)).min(1.0)
    } else {
        1.0
    }
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

    /// Each slice's sum equal to the sequential one to the bit (candle's f64 `sum_all` of the
    /// squares), whatever the lengths, including empty slices and groups of fewer than eight.
    #[test]
    fn interleaved_squares_equal_sequential_sums_to_the_bit() {
        let data: Vec<Vec<f32>> = (0..21usize)
            .map(|i| {
                let len = [0, 1, 7, 384, 385, 1000, 4096][i % 7] + i / 7;
                (0..len)
                    .map(|j| ((j * 7919 + i * 104_729) % 2003) as f32 / 37.0 - 27.0)
                    .collect()
            })
            .collect();
        for count in [1, 3, 8, 9, 21] {
            let slices: Vec<&[f32]> = data[..count].iter().map(Vec::as_slice).collect();
            let got = squares_interleaved(&slices);
            for (s, g) in slices.iter().zip(&got) {
                let t = Tensor::from_slice(s, s.len(), &Device::Cpu).unwrap();
                let want = if s.is_empty() {
                    0.0
                } else {
                    t.to_dtype(DType::F64)
                        .unwrap()
                        .sqr()
                        .unwrap()
                        .sum_all()
                        .unwrap()
                        .to_scalar::<f64>()
                        .unwrap()
                };
                assert_eq!(g.to_bits(), want.to_bits(), "length {}", s.len());
            }
        }
    }

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

    /// bf16 keeps 8 bits of mantissa: 1.0 + 1e-4 rounds back to 1.0, so updates of 1e-4 applied
    /// to the bf16 weight itself would be lost every step. The f32 master copy keeps them: after
    /// 100 steps of lr 1e-4 against a constant gradient the weight has moved by about 1e-2, as in
    /// f32, and the bf16 weight shows it.
    #[test]
    fn f32_master_weights_keep_updates_smaller_than_bf16_resolution() {
        let run = |dtype: DType| -> f64 {
            let var = Var::from_tensor(
                &Tensor::new(&[1.0f32], &Device::Cpu)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap(),
            )
            .unwrap();
            let mut opt = AdamW::new(vec![("w".into(), var.clone())], 0.0).unwrap();
            for _ in 0..100 {
                let mut grads = Grads::default();
                let g = Tensor::new(&[1.0f32], &Device::Cpu)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap();
                grads.dense.insert("w".into(), g);
                opt.step(&grads, 1e-4, 1e-4, 1.0).unwrap();
            }
            var.as_tensor()
                .to_dtype(DType::F64)
                .unwrap()
                .to_vec1::<f64>()
                .unwrap()[0]
        };
        let f32_moved = 1.0 - run(DType::F32);
        let bf16_moved = 1.0 - run(DType::BF16);
        assert!((f32_moved - 0.01).abs() < 1e-4, "{f32_moved}");
        // The bf16 weight is the master rounded: within one bf16 step (2^-8 near 1) of f32's.
        assert!(
            (bf16_moved - f32_moved).abs() <= 1.0 / 256.0,
            "{bf16_moved} vs {f32_moved}"
        );
        assert!(bf16_moved > 0.005, "updates were lost: moved {bf16_moved}");
    }

    #[test]
    fn matches_torch_adamw() {
        // torch.optim.AdamW([p], lr=0.1, weight_decay=0.01) with p = [1.0, -2.0] and the gradients
        // [0.5, -1.0] then [0.25, 0.5]: [0.8048830404754623, -1.869468297369903] (torch 2.15), which
        // PyTorch's update rule written out below reproduces. The f64 parameter takes the tensor
        // path, the f32 one the fused in-place kernel.
        let expected = reference_adamw(&[1.0, -2.0], &[[0.5, -1.0], [0.25, 0.5]], 0.1, 0.01);
        assert!((expected[0] - 0.8048830404754623).abs() < 1e-15);
        for dtype in [candle_core::DType::F64, candle_core::DType::F32] {
            let var = Var::from_tensor(
                &Tensor::new(&[1.0f64, -2.0], &Device::Cpu)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap(),
            )
            .unwrap();
            let mut opt = AdamW::new(vec![("w".into(), var.clone())], 0.01).unwrap();
            for g in [[0.5f64, -1.0], [0.25, 0.5]] {
                let mut grads = Grads::default();
                grads.dense.insert(
                    "w".into(),
                    Tensor::new(&g, &Device::Cpu)
                        .unwrap()
                        .to_dtype(dtype)
                        .unwrap(),
                );
                opt.step(&grads, 0.1, 0.1, 1.0).unwrap();
            }
            let p: Vec<f64> = var
                .as_tensor()
                .to_dtype(candle_core::DType::F64)
                .unwrap()
                .to_vec1()
                .unwrap();
            let tol = if dtype == candle_core::DType::F64 {
                1e-12
            } else {
                1e-6
            };
            for (a, b) in p.iter().zip(&expected) {
                assert!((a - b).abs() < tol, "{dtype:?}: {p:?} vs {expected:?}");
            }
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

    /// Row-sparse steps, with rows caught up before they are read and a flush at the end, give
    /// dense AdamW's parameters bit for bit, rows never used included (they only decay), with
    /// clipping on (the gradient norm is the same to the last bit).
    #[test]
    fn sparse_rows_with_catch_up_equal_dense_adamw() {
        let name = WORD_EMBEDDING;
        let (rows, width) = (5usize, 3usize);
        let init: Vec<f32> = (0..rows * width).map(|i| (i as f32 * 0.37).sin()).collect();
        // Which rows each step's batch uses; row 4 is never used.
        let used: [&[u32]; 6] = [&[0, 1], &[2], &[0, 3], &[1], &[1, 2, 3], &[0]];
        let grad = |step: usize, row: u32| -> Vec<f32> {
            (0..width)
                .map(|j| ((step * 7 + row as usize * 3 + j) as f32 * 0.91).cos())
                .collect()
        };
        let make = || {
            let var = Var::from_tensor(
                &Tensor::from_vec(init.clone(), (rows, width), &Device::Cpu).unwrap(),
            )
            .unwrap();
            let opt = AdamW::new(vec![(name.to_string(), var.clone())], 0.01).unwrap();
            (var, opt)
        };
        // A step with clipping on (every step clips: the norms are above 0.5); returns the norm.
        let clipped_step = |opt: &mut AdamW, grads: &Grads, step: usize| -> f64 {
            let norm = grads.norm().unwrap();
            opt.step(
                grads,
                0.05 * (1.0 + step as f64),
                0.05,
                clip_scale(norm, 0.5),
            )
            .unwrap();
            norm
        };
        // Dense: the full gradient matrix every step (zero rows where unused).
        let (dense, mut opt) = make();
        let (mut dense_norms, mut sparse_norms) = (Vec::new(), Vec::new());
        for (step, rs) in used.iter().enumerate() {
            let mut g = vec![0.0f32; rows * width];
            for &r in *rs {
                g[r as usize * width..][..width].copy_from_slice(&grad(step, r));
            }
            let mut grads = Grads::default();
            grads.dense.insert(
                name.to_string(),
                Tensor::from_vec(g, (rows, width), &Device::Cpu).unwrap(),
            );
            // The norm of the dense matrix must equal that of its rows.
            dense_norms.push(clipped_step(&mut opt, &grads, step));
        }
        // Sparse: only the used rows, caught up before each "forward pass".
        let (sparse, mut opt) = make();
        for (step, rs) in used.iter().enumerate() {
            opt.catch_up(rs).unwrap();
            let mut grads = Grads::default();
            for &r in *rs {
                grads.rows.insert(r, grad(step, r));
            }
            grads.row_param = Some(name.to_string());
            sparse_norms.push(clipped_step(&mut opt, &grads, step));
        }
        opt.flush().unwrap();
        assert_eq!(dense_norms, sparse_norms);
        assert!(dense_norms.iter().all(|&n| clip_scale(n, 0.5) < 1.0));
        let d: Vec<Vec<f32>> = dense.as_tensor().to_vec2().unwrap();
        let s: Vec<Vec<f32>> = sparse.as_tensor().to_vec2().unwrap();
        assert_eq!(d, s);
        // Without catching up (PyTorch's SparseAdam) the rows differ.
        let (lazy, mut opt) = make();
        for (step, rs) in used.iter().enumerate() {
            let mut grads = Grads::default();
            for &r in *rs {
                grads.rows.insert(r, grad(step, r));
            }
            grads.row_param = Some(name.to_string());
            opt.lazy = None;
            opt.step(&grads, 0.05 * (1.0 + step as f64), 0.05, 1.0)
                .unwrap();
        }
        let l: Vec<Vec<f32>> = lazy.as_tensor().to_vec2().unwrap();
        assert_ne!(d[0], l[0]);
    }

    /// A dense word-embedding gradient and its row-sparse form have the same norm to the last bit
    /// (the clipping factor of a step depends on it).
    /// The norm adds each tensor's sequential f64 sum of squares in name order, whether the
    /// tensor is read in place (host f32, contiguous) or through candle (f64, a transposed view),
    /// mixed in one store: the same bits as that sum written out.
    #[test]
    fn the_norm_adds_sequential_sums_in_name_order() {
        let dev = &Device::Cpu;
        let vals = |n: usize, k: usize| -> Vec<f32> {
            (0..n)
                .map(|i| ((i * 7919 + k * 104_729) % 2003) as f32 / 37.0 - 27.0)
                .collect()
        };
        let mut g = Grads::default();
        let mut want = Vec::new();
        for (k, n) in [700usize, 3, 384, 1, 700, 0, 12, 384, 5, 9, 700]
            .into_iter()
            .enumerate()
        {
            let v = vals(n, k);
            let t = match k % 3 {
                0 => Tensor::from_vec(v.clone(), n, dev).unwrap(),
                1 => Tensor::from_vec(v.clone(), n, dev)
                    .unwrap()
                    .to_dtype(DType::F64)
                    .unwrap(),
                _ if n % 3 == 0 && n > 0 => {
                    // A transposed (non-contiguous) view of the same values.
                    let m = Tensor::from_vec(v.clone(), (n / 3, 3), dev).unwrap();
                    let tt = m.t().unwrap().contiguous().unwrap().t().unwrap();
                    assert!(!tt.is_contiguous());
                    tt
                }
                _ => Tensor::from_vec(v.clone(), n, dev).unwrap(),
            };
            g.dense.insert(format!("p{k:02}"), t);
            want.push(
                v.iter()
                    .fold(0.0f64, |s, &x| s + f64::from(x) * f64::from(x)),
            );
        }
        let want = want.into_iter().fold(0.0, |s, t| s + t).sqrt();
        assert_eq!(g.norm().unwrap().to_bits(), want.to_bits());
    }

    #[test]
    fn dense_and_row_sparse_gradients_have_the_same_norm() {
        let (rows, width) = (300usize, 384usize);
        let used: Vec<u32> = (0..rows as u32).filter(|r| r % 3 != 1).collect();
        let value = |r: u32, j: usize| -> f32 {
            let i = r as usize * width + j;
            (i as f32 * 0.731).sin() * 10f32.powi((i % 7) as i32 - 3)
        };
        let other = Tensor::new(&[0.3f32, -1.7, 2.9], &Device::Cpu).unwrap();
        let mut dense = Grads::default();
        let mut matrix = vec![0.0f32; rows * width];
        for &r in &used {
            for j in 0..width {
                matrix[r as usize * width + j] = value(r, j);
            }
        }
        dense.dense.insert(
            WORD_EMBEDDING.into(),
            Tensor::from_vec(matrix, (rows, width), &Device::Cpu).unwrap(),
        );
        dense.dense.insert("z.other".into(), other.clone());
        let mut sparse = Grads::default();
        for &r in &used {
            sparse
                .rows
                .insert(r, (0..width).map(|j| value(r, j)).collect());
        }
        sparse.row_param = Some(WORD_EMBEDDING.into());
        sparse.dense.insert("z.other".into(), other);
        assert_eq!(dense.norm().unwrap(), sparse.norm().unwrap());
        assert_eq!(
            dense.norm_of_embedding().unwrap(),
            sparse.norm_of_embedding().unwrap()
        );
    }

    #[test]
    fn clipping_and_schedules() {
        let mut g = Grads::default();
        g.dense.insert(
            "a".into(),
            Tensor::new(&[3.0f64, 4.0], &Device::Cpu).unwrap(),
        );
        g.rows.insert(7, vec![0.0, 0.0]);
        let norm = g.norm().unwrap();
        assert_eq!(norm, 5.0);
        assert!((clip_scale(norm, 1.0) * norm - 1.0).abs() < 1e-6);
        assert_eq!(clip_scale(0.5, 1.0), 1.0);
        assert_eq!(clip_scale(50.0, 0.0), 1.0);
        assert_eq!(lr_factor(Schedule::Linear, 0, 0, 10), 1.0);
        assert_eq!(lr_factor(Schedule::Linear, 5, 0, 10), 0.5);
        assert_eq!(lr_factor(Schedule::Linear, 1, 2, 10), 0.5);
        assert!((lr_factor(Schedule::Cosine, 6, 2, 10) - 0.5).abs() < 1e-12);
        assert_eq!(warmup_steps(375, 0.1), 38);
    }
}
