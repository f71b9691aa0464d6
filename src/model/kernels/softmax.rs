//! Softmax over the last dimension, plain or scaled with an additive mask (attention), and its
//! backward pass.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor, bail};

use super::*;

/// `softmax(scale * x + bias)` over the last dimension. `bias`, when given, has one row of `k`
/// values per leading index `i / rows_per_bias` (attention: one mask row per sentence, shared by
/// its heads and query positions).
pub(crate) struct Softmax {
    pub scale: f64,
}

#[inline(always)]
fn softmax_row<T: Real>(x: &[T], bias: Option<&[T]>, scale: T, out: &mut [T]) {
    let mut max = T::LOWEST;
    for j in 0..x.len() {
        let v = scale * x[j] + bias.map_or(T::ZERO, |b| b[j]);
        out[j] = v;
        if v > max {
            max = v;
        }
    }
    let mut sum = 0.0f64;
    for o in out.iter_mut() {
        let e = (*o - max).exp();
        *o = e;
        sum += e.wide();
    }
    let inv = T::of(1.0 / sum);
    for o in out.iter_mut() {
        *o *= inv;
    }
}

impl Softmax {
    fn run<T: Real>(&self, x: &[T], bias: Option<(&[T], usize)>, k: usize) -> Vec<T> {
        let mut y = vec![T::ZERO; x.len()];
        let scale = T::of(self.scale);
        rows_map(&mut y, k, |r, out| {
            let b = bias.map(|(b, per)| {
                let i = r / per;
                &b[i * k..(i + 1) * k]
            });
            softmax_row(&x[r * k..(r + 1) * k], b, scale, out);
        });
        y
    }
}

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "nerlab-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let k = row_width(l.dims());
        let out = by_real!(s, "softmax", T => self.run::<T>(contiguous(s, l, "x")?, None, k));
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, gy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(y.apply_op2_no_bwd(
            &gy.contiguous()?,
            &SoftmaxBwd { scale: self.scale },
        )?))
    }
}

impl CustomOp2 for Softmax {
    fn name(&self) -> &'static str {
        "nerlab-masked-softmax"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let k = row_width(l1.dims());
        let rows = l1.shape().elem_count() / k.max(1);
        let bias_rows = l2.shape().elem_count() / k.max(1);
        if bias_rows == 0 || !rows.is_multiple_of(bias_rows) {
            bail!("masked softmax: {rows} rows do not divide into {bias_rows} mask rows");
        }
        let per = rows / bias_rows;
        let out = by_real!(s1, "masked softmax", T => self.run::<T>(
            contiguous(s1, l1, "x")?,
            Some((contiguous(s2, l2, "mask")?, per)),
            k,
        ));
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _bias: &Tensor,
        y: &Tensor,
        gy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dx = y.apply_op2_no_bwd(&gy.contiguous()?, &SoftmaxBwd { scale: self.scale })?;
        // The mask is a constant: no gradient.
        Ok((Some(dx), None))
    }
}

/// `dx = scale * y * (g - sum(g * y))` per row.
pub(crate) struct SoftmaxBwd {
    pub scale: f64,
}

impl SoftmaxBwd {
    fn run<T: Real>(&self, y: &[T], g: &[T], k: usize) -> Vec<T> {
        let mut dx = vec![T::ZERO; y.len()];
        rows_map(&mut dx, k, |r, out| {
            let (yr, gr) = (&y[r * k..(r + 1) * k], &g[r * k..(r + 1) * k]);
            let dot: f64 = yr.iter().zip(gr).map(|(a, b)| a.wide() * b.wide()).sum();
            let dot = T::of(dot);
            let scale = T::of(self.scale);
            for j in 0..k {
                out[j] = scale * yr[j] * (gr[j] - dot);
            }
        });
        dx
    }
}

impl CustomOp2 for SoftmaxBwd {
    fn name(&self) -> &'static str {
        "nerlab-softmax-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let k = row_width(l1.dims());
        let out = by_real!(s1, "softmax backward", T => self.run::<T>(
            contiguous(s1, l1, "y")?,
            contiguous(s2, l2, "grad")?,
            k,
        ));
        Ok((out, l1.shape().clone()))
    }
}

/// Softmax over the last dimension (fused).
pub fn softmax(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Softmax { scale: 1.0 })
}

/// `softmax(scale * scores + mask)` over the last dimension, `mask` (batch, 1, 1, keys) holding 0
/// for tokens and the lowest value for padding, as attention uses it (fused).
pub fn masked_softmax(scores: &Tensor, mask: &Tensor, scale: f64) -> Result<Tensor> {
    scores
        .contiguous()?
        .apply_op2(&mask.contiguous()?, Softmax { scale })
}
