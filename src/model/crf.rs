//! A linear-chain CRF (Lafferty et al. 2001; Lample et al. 2016 for NER): learned transition,
//! start and end scores over the label set, the negative log-likelihood from the log-space forward
//! algorithm (on tensors, so gradients flow), Viterbi decoding and forward-backward marginals (on
//! the host, in f64). With `constrained`, transitions that IOB2 forbids (`O -> I-X`,
//! `B-X -> I-Y`, start `-> I-X`) get a fixed score of -10000: `exp(-10000)` is 0 in floating
//! point, so such paths get no probability mass at all.

use candle_core::{DType, Device, Result as CResult, Tensor};

use super::ops::logsumexp;
use super::params::{Init, Params};
use crate::data::scheme::{Prefix, parse_tag};

/// The score added to forbidden transitions.
pub const FORBIDDEN: f64 = -10000.0;

#[derive(Debug, Clone)]
pub struct Crf {
    /// (from, to) learned transition scores.
    pub transitions: Tensor,
    pub start: Tensor,
    pub end: Tensor,
    /// (from, to) and (to) fixed additive masks from the IOB2 constraints (zeros if unconstrained).
    trans_mask: Tensor,
    start_mask: Tensor,
    n: usize,
}

/// Transition, start and end scores on the host (constraints applied).
struct HostScores {
    trans: Vec<Vec<f64>>,
    start: Vec<f64>,
    end: Vec<f64>,
}

/// Whether IOB2 allows `from -> to` (`from = None` is the start of the sentence).
pub fn allowed(from: Option<&str>, to: &str) -> bool {
    let Ok((Prefix::I, ty)) = parse_tag(to) else {
        return true;
    };
    match from.map(parse_tag) {
        Some(Ok((Prefix::B | Prefix::I, from_ty))) => from_ty == ty,
        _ => false,
    }
}

impl Crf {
    pub fn load(p: &Params, labels: &[String], constrained: bool) -> anyhow::Result<Self> {
        let n = labels.len();
        let mut tm = vec![0f32; n * n];
        let mut sm = vec![0f32; n];
        if constrained {
            for (i, from) in labels.iter().enumerate() {
                for (j, to) in labels.iter().enumerate() {
                    if !allowed(Some(from), to) {
                        tm[i * n + j] = FORBIDDEN as f32;
                    }
                }
            }
            for (j, to) in labels.iter().enumerate() {
                if !allowed(None, to) {
                    sm[j] = FORBIDDEN as f32;
                }
            }
        }
        let dev = p.device();
        let dtype = p.dtype();
        Ok(Self {
            transitions: p.get((n, n), "transitions", Init::Uniform(0.1))?,
            start: p.get(n, "start", Init::Uniform(0.1))?,
            end: p.get(n, "end", Init::Uniform(0.1))?,
            trans_mask: Tensor::from_vec(tm, (n, n), &Device::Cpu)?
                .to_dtype(dtype)?
                .to_device(dev)?,
            start_mask: Tensor::from_vec(sm, n, &Device::Cpu)?
                .to_dtype(dtype)?
                .to_device(dev)?,
            n,
        })
    }

    /// pytorch-crf's `(start_transitions, end_transitions, transitions)` with the constraints
    /// folded in, in f32: `torchcrf.CRF.decode` with these gives this CRF's Viterbi paths.
    pub fn torch_scores(&self) -> CResult<(Tensor, Tensor, Tensor)> {
        let (trans, start) = self.effective()?;
        let f = |t: Tensor| {
            t.to_dtype(DType::F32)?
                .to_device(&Device::Cpu)?
                .contiguous()
        };
        Ok((f(start)?, f(self.end.clone())?, f(trans)?))
    }

    fn effective(&self) -> CResult<(Tensor, Tensor)> {
        Ok((
            (&self.transitions + &self.trans_mask)?,
            (&self.start + &self.start_mask)?,
        ))
    }

    /// Log-partition per sentence: (batch). `emissions` (batch, len, labels); `lengths` per
    /// sentence (the first `length` positions are real).
    pub fn log_partition(&self, emissions: &Tensor, lengths: &[usize]) -> CResult<Tensor> {
        let (b, t, _) = emissions.dims3()?;
        let (trans, start) = self.effective()?;
        let mut alpha = emissions
            .narrow(1, 0, 1)?
            .squeeze(1)?
            .broadcast_add(&start)?; // (b, L)
        let dev = emissions.device();
        for step in 1..t {
            let active: Vec<f32> = lengths
                .iter()
                .map(|&l| f32::from(u8::from(step < l)))
                .collect();
            let active = Tensor::from_vec(active, (b, 1), dev)?.to_dtype(emissions.dtype())?;
            // (b, from, 1) + (1, from, to) -> logsumexp over from -> (b, to)
            let scores = alpha.unsqueeze(2)?.broadcast_add(&trans.unsqueeze(0)?)?;
            let next = logsumexp(&scores, 1)?.add(&emissions.narrow(1, step, 1)?.squeeze(1)?)?;
            alpha = (next.broadcast_mul(&active)?
                + alpha.broadcast_mul(&active.affine(-1.0, 1.0)?)?)?;
        }
        logsumexp(&alpha.broadcast_add(&self.end)?, 1)
    }

    /// Score of the given label paths: (batch).
    pub fn path_score(
        &self,
        emissions: &Tensor,
        labels: &[Vec<u32>],
        lengths: &[usize],
    ) -> CResult<Tensor> {
        let (b, t, n) = emissions.dims3()?;
        let dev = emissions.device();
        let (trans, start) = self.effective()?;
        let mut emit_idx = Vec::new();
        let mut trans_idx = Vec::new();
        let mut trans_w = Vec::new();
        let mut first = Vec::new();
        let mut last = Vec::new();
        let mut emit_w = Vec::new();
        for (i, (path, &len)) in labels.iter().zip(lengths).enumerate() {
            for step in 0..t {
                let y = path.get(step).copied().unwrap_or(0);
                emit_idx.push((i * t + step) as u32 * n as u32 + y);
                emit_w.push(f32::from(u8::from(step < len)));
                if step + 1 < t {
                    let y2 = path.get(step + 1).copied().unwrap_or(0);
                    trans_idx.push(y * n as u32 + y2);
                    trans_w.push(f32::from(u8::from(step + 1 < len)));
                }
            }
            first.push(path.first().copied().unwrap_or(0));
            last.push(path.get(len.saturating_sub(1)).copied().unwrap_or(0));
        }
        let dt = emissions.dtype();
        let flat = emissions.flatten_all()?;
        let ew = Tensor::from_vec(emit_w, (b, t), dev)?.to_dtype(dt)?;
        let emit = flat
            .index_select(&Tensor::from_vec(emit_idx, b * t, dev)?, 0)?
            .reshape((b, t))?;
        let mut score = emit.mul(&ew)?.sum(1)?;
        if t > 1 {
            let tw = Tensor::from_vec(trans_w, (b, t - 1), dev)?.to_dtype(dt)?;
            let tr = trans
                .flatten_all()?
                .index_select(&Tensor::from_vec(trans_idx, b * (t - 1), dev)?, 0)?
                .reshape((b, t - 1))?;
            score = (score + tr.mul(&tw)?.sum(1)?)?;
        }
        let s = start.index_select(&Tensor::from_vec(first, b, dev)?, 0)?;
        let e = self.end.index_select(&Tensor::from_vec(last, b, dev)?, 0)?;
        (score + s)? + e
    }

    /// Mean negative log-likelihood of the gold paths.
    pub fn nll(
        &self,
        emissions: &Tensor,
        labels: &[Vec<u32>],
        lengths: &[usize],
    ) -> CResult<Tensor> {
        (self.log_partition(emissions, lengths)? - self.path_score(emissions, labels, lengths)?)?
            .mean(0)
    }

    /// Host copies of the effective scores, for decoding.
    fn host(&self) -> CResult<HostScores> {
        let (trans, start) = self.effective()?;
        Ok(HostScores {
            trans: trans.to_dtype(DType::F64)?.to_vec2()?,
            start: start.to_dtype(DType::F64)?.to_vec1()?,
            end: self.end.to_dtype(DType::F64)?.to_vec1()?,
        })
    }

    /// The best path of each sentence, and each position's marginal probability of its label.
    pub fn decode(
        &self,
        emissions: &Tensor,
        lengths: &[usize],
    ) -> CResult<Vec<(Vec<u32>, Vec<f64>)>> {
        let e: Vec<Vec<Vec<f64>>> = emissions.to_dtype(DType::F64)?.to_vec3()?;
        let HostScores { trans, start, end } = self.host()?;
        Ok(e.iter()
            .zip(lengths)
            .map(|(em, &len)| {
                let em = &em[..len.min(em.len())];
                let path = viterbi(em, &trans, &start, &end, self.n);
                let marg = marginals(em, &trans, &start, &end, self.n);
                let conf = path
                    .iter()
                    .enumerate()
                    .map(|(i, &y)| marg[i][y as usize])
                    .collect();
                (path, conf)
            })
            .collect())
    }
}

fn lse(xs: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = xs.collect();
    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// Viterbi over one sentence's emissions (len, labels).
pub fn viterbi(
    em: &[Vec<f64>],
    trans: &[Vec<f64>],
    start: &[f64],
    end: &[f64],
    n: usize,
) -> Vec<u32> {
    if em.is_empty() {
        return Vec::new();
    }
    let mut score: Vec<f64> = (0..n).map(|j| start[j] + em[0][j]).collect();
    let mut back: Vec<Vec<usize>> = Vec::with_capacity(em.len());
    for row in &em[1..] {
        let mut next = vec![0.0; n];
        let mut arg = vec![0; n];
        for j in 0..n {
            let (best_i, best) = (0..n)
                .map(|i| (i, score[i] + trans[i][j]))
                .fold((0, f64::NEG_INFINITY), |a, b| if b.1 > a.1 { b } else { a });
            next[j] = best + row[j];
            arg[j] = best_i;
        }
        back.push(arg);
        score = next;
    }
    let mut y = (0..n)
        .map(|j| (j, score[j] + end[j]))
        .fold((0, f64::NEG_INFINITY), |a, b| if b.1 > a.1 { b } else { a })
        .0;
    let mut path = vec![y as u32];
    for arg in back.iter().rev() {
        y = arg[y];
        path.push(y as u32);
    }
    path.reverse();
    path
}

/// Per-position label marginals by forward-backward.
pub fn marginals(
    em: &[Vec<f64>],
    trans: &[Vec<f64>],
    start: &[f64],
    end: &[f64],
    n: usize,
) -> Vec<Vec<f64>> {
    let t = em.len();
    if t == 0 {
        return Vec::new();
    }
    let mut alpha = vec![vec![0.0; n]; t];
    let mut beta = vec![vec![0.0; n]; t];
    for j in 0..n {
        alpha[0][j] = start[j] + em[0][j];
        beta[t - 1][j] = end[j];
    }
    for s in 1..t {
        for j in 0..n {
            alpha[s][j] = lse((0..n).map(|i| alpha[s - 1][i] + trans[i][j])) + em[s][j];
        }
    }
    for s in (0..t - 1).rev() {
        for i in 0..n {
            beta[s][i] = lse((0..n).map(|j| trans[i][j] + em[s + 1][j] + beta[s + 1][j]));
        }
    }
    let log_z = lse((0..n).map(|j| alpha[t - 1][j] + end[j]));
    (0..t)
        .map(|s| {
            (0..n)
                .map(|j| (alpha[s][j] + beta[s][j] - log_z).exp())
                .collect()
        })
        .collect()
}

/// Emissions of shape (batch, len, labels) from host rows, for tests and tools.
pub fn emissions_tensor(rows: &[Vec<Vec<f64>>], dtype: DType, device: &Device) -> CResult<Tensor> {
    let b = rows.len();
    let t = rows.iter().map(Vec::len).max().unwrap_or(0);
    let n = rows.iter().flatten().map(Vec::len).max().unwrap_or(0);
    let mut flat = Vec::with_capacity(b * t * n);
    for r in rows {
        for s in 0..t {
            for j in 0..n {
                flat.push(r.get(s).and_then(|x| x.get(j)).copied().unwrap_or(0.0));
            }
        }
    }
    Tensor::from_vec(flat, (b, t, n), device)?.to_dtype(dtype)
}
