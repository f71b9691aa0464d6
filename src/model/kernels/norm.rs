//! Layer normalization, forward and backward in one pass per row each.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

use super::*;

/// A row's mean and reciprocal standard deviation, in f64.
pub(super) fn row_stats<T: Real>(x: &[T], eps: f64) -> (f64, f64) {
    let d = x.len() as f64;
    let mean = x.iter().map(|v| v.wide()).sum::<f64>() / d;
    let var = x
        .iter()
        .map(|v| {
            let c = v.wide() - mean;
            c * c
        })
        .sum::<f64>()
        / d;
    (mean, 1.0 / (var + eps).sqrt())
}

pub(crate) struct LayerNorm {
    pub eps: f64,
}

impl LayerNorm {
    fn fwd<T: Real>(&self, x: &[T], w: &[T], b: &[T], d: usize) -> Vec<T> {
        let mut y = vec![T::ZERO; x.len()];
        rows_map(&mut y, d, |r, out| {
            let xr = &x[r * d..(r + 1) * d];
            let (mean, rstd) = row_stats(xr, self.eps);
            let (mean, rstd) = (T::of(mean), T::of(rstd));
            for j in 0..d {
                out[j] = (xr[j] - mean) * rstd * w[j] + b[j];
            }
        });
        y
    }
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "nerlab-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = row_width(l1.dims());
        let out = by_real!(s1, "layer norm", T => self.fwd::<T>(
            contiguous(s1, l1, "x")?,
            contiguous(s2, l2, "weight")?,
            contiguous(s3, l3, "bias")?,
            d,
        ));
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _y: &Tensor,
        gy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = row_width(x.dims());
        let n = x.elem_count() / d.max(1);
        // One op returns (n + 2, d): dx, then the weight and bias gradients.
        let packed = x.apply_op3_no_bwd(w, &gy.contiguous()?, &LayerNormBwd { eps: self.eps })?;
        let dx = packed.narrow(0, 0, n)?.reshape(x.shape())?;
        let dw = packed.narrow(0, n, 1)?.reshape(d)?;
        let db = packed.narrow(0, n + 1, 1)?.reshape(d)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

pub(crate) struct LayerNormBwd {
    pub eps: f64,
}

impl LayerNormBwd {
    fn run<T: Real>(&self, x: &[T], w: &[T], gy: &[T], d: usize) -> Vec<T> {
        let n = x.len() / d;
        let mut out = vec![T::ZERO; (n + 2) * d];
        let (dx, rest) = out.split_at_mut(n * d);
        // Per block: dx rows, and partial sums of the weight and bias gradients.
        let partials: Vec<(Vec<f64>, Vec<f64>)> = dx
            .par_chunks_mut(d * ROW_BLOCK)
            .enumerate()
            .map(|(blk, chunk)| {
                let mut dw = vec![0.0f64; d];
                let mut db = vec![0.0f64; d];
                for (k, dxr) in chunk.chunks_mut(d).enumerate() {
                    let r = blk * ROW_BLOCK + k;
                    let xr = &x[r * d..(r + 1) * d];
                    let gr = &gy[r * d..(r + 1) * d];
                    let (mean, rstd) = row_stats(xr, self.eps);
                    let mut a = 0.0f64;
                    let mut c = 0.0f64;
                    for j in 0..d {
                        let xhat = (xr[j].wide() - mean) * rstd;
                        let g = gr[j].wide() * w[j].wide();
                        a += g;
                        c += g * xhat;
                        dw[j] += gr[j].wide() * xhat;
                        db[j] += gr[j].wide();
                    }
                    a /= d as f64;
                    c /= d as f64;
                    for j in 0..d {
                        let xhat = (xr[j].wide() - mean) * rstd;
                        let g = gr[j].wide() * w[j].wide();
                        dxr[j] = T::of(rstd * (g - a - xhat * c));
                    }
                }
                (dw, db)
            })
            .collect();
        let (dw_out, db_out) = rest.split_at_mut(d);
        let mut dw = vec![0.0f64; d];
        let mut db = vec![0.0f64; d];
        for (pw, pb) in &partials {
            for j in 0..d {
                dw[j] += pw[j];
                db[j] += pb[j];
            }
        }
        for j in 0..d {
            dw_out[j] = T::of(dw[j]);
            db_out[j] = T::of(db[j]);
        }
        out
    }
}

impl CustomOp3 for LayerNormBwd {
    fn name(&self) -> &'static str {
        "nerlab-layer-norm-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = row_width(l1.dims());
        let n = l1.shape().elem_count() / d.max(1);
        let out = by_real!(s1, "layer norm backward", T => self.run::<T>(
            contiguous(s1, l1, "x")?,
            contiguous(s2, l2, "weight")?,
            contiguous(s3, l3, "grad")?,
            d,
        ));
        Ok((out, Shape::from((n + 2, d))))
    }
}

/// Layer normalization over the last dimension (fused; see the module docs).
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?.apply_op3(
        &weight.contiguous()?,
        &bias.contiguous()?,
        LayerNorm { eps },
    )
}
