//! Softmax over the last dimension, plain or scaled with an additive mask (attention), and its
//! backward pass.

use std::mem::MaybeUninit;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor, bail};

use super::*;

/// `softmax(scale * x + bias)` over the last dimension. `bias`, when given, has one row of `k`
/// values per leading index `i / rows_per_bias` (attention: one mask row per sentence, shared by
/// its heads and query positions).
pub(crate) struct Softmax {
    pub scale: f64,
}

/// Softmax of the rows (of `k`) of `x` into `out`, up to [`ROW_BLOCK`] rows: per row the
/// running maximum of `scale * x + bias` in column order, `exp(v - max)`, their f64 sum from 0 in
/// column order, and the values times `1 / sum`. The maxima and sums are chains of dependent
/// operations; the rows' chains run side by side (columns outer, rows inner), each row's in its
/// own order, so every row gets the bits it would alone.
#[inline(always)]
#[allow(unsafe_code)]
fn softmax_rows<T: Real>(
    x: &[T],
    bias: &[Option<&[T]>],
    scale: T,
    k: usize,
    out: &mut [MaybeUninit<T>],
) {
    let rows = out.len() / k;
    let value = |r: usize, j: usize| scale * x[r * k + j] + bias[r].map_or(T::ZERO, |b| b[j]);
    let mut max = [T::LOWEST; ROW_BLOCK];
    for j in 0..k {
        for (r, m) in max.iter_mut().enumerate().take(rows) {
            let v = value(r, j);
            if v > *m {
                *m = v;
            }
        }
    }
    // `v - max` with `v` computed again (the same operations, so the same bits), written once.
    for (r, (row, &m)) in out.chunks_mut(k).zip(&max).enumerate() {
        let xr = &x[r * k..(r + 1) * k];
        match bias[r] {
            Some(b) => {
                assert_eq!(b.len(), k, "softmax: a mask row is shorter than the rows");
                for ((o, &xv), &bv) in row.iter_mut().zip(xr).zip(b) {
                    o.write((scale * xv + bv - m).exp());
                }
            }
            None => {
                for (o, &xv) in row.iter_mut().zip(xr) {
                    o.write((scale * xv + T::ZERO - m).exp());
                }
            }
        }
    }
    // SAFETY: the loop above wrote every element: `rows` rows of `k` (callers pass whole rows,
    // each zipped with a row of `x` and of its bias, all `k` long).
    let out = unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<T>(), out.len()) };
    let mut sum = [0.0f64; ROW_BLOCK];
    for j in 0..k {
        for (r, s) in sum.iter_mut().enumerate().take(rows) {
            *s += out[r * k + j].wide();
        }
    }
    for (row, &s) in out.chunks_mut(k).zip(&sum) {
        let inv = T::of(1.0 / s);
        for o in row.iter_mut() {
            *o *= inv;
        }
    }
}

impl Softmax {
    #[allow(unsafe_code)]
    fn run<T: Real>(&self, x: &[T], bias: Option<(&[T], usize)>, k: usize) -> Vec<T> {
        if k == 0 {
            return vec![T::ZERO; x.len()];
        }
        let scale = T::of(self.scale);
        // SAFETY: each block is written in full and `softmax_rows` writes each block in full.
        unsafe {
            blocks_map(
                x.len(),
                k,
                #[inline(always)]
                |blk, chunk| {
                    let first = blk * ROW_BLOCK;
                    let mut rows_bias = [None; ROW_BLOCK];
                    for (r, b) in rows_bias.iter_mut().enumerate() {
                        *b = bias.map(|(b, per)| {
                            let i = (first + r) / per;
                            &b[(i * k).min(b.len())..((i + 1) * k).min(b.len())]
                        });
                    }
                    let xs = &x[first * k..first * k + chunk.len()];
                    softmax_rows(xs, &rows_bias, scale, k, chunk);
                },
            )
        }
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
            &SoftmaxBwd {
                scale: self.scale,
                dropout: None,
            },
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
        let dx = y.apply_op2_no_bwd(
            &gy.contiguous()?,
            &SoftmaxBwd {
                scale: self.scale,
                dropout: None,
            },
        )?;
        // The mask is a constant: no gradient.
        Ok((Some(dx), None))
    }
}

/// `dx = scale * y * (g - sum(g * y))` per row. With `dropout`, the gradient arrives for the
/// dropped probabilities and `g` is first multiplied by the mask of that state (position `i` of
/// `g` is unpacked position `i`), `g * mask + 0` as the dropout kernel computes it: the replayed
/// mask is applied on the way in instead of in a pass and an allocation of its own.
pub(crate) struct SoftmaxBwd {
    pub scale: f64,
    /// The attention dropout's (state, probability).
    pub dropout: Option<(u64, f64)>,
}

impl SoftmaxBwd {
    #[allow(unsafe_code)]
    fn run<T: Real>(&self, y: &[T], g: &[T], k: usize) -> Vec<T> {
        if k == 0 {
            return vec![T::ZERO; y.len()];
        }
        let scale = T::of(self.scale);
        // Each row's dot product is an f64 sum from -0.0 in column order (`Iterator::sum`); the
        // rows' chains run side by side.
        // SAFETY: each block is written in full; each row is zipped with rows of `y` and `g`.
        unsafe {
            blocks_map(
                y.len(),
                k,
                #[inline(always)]
                |blk, out| {
                    let start = blk * ROW_BLOCK * k;
                    let (ys, gs) = (&y[start..start + out.len()], &g[start..start + out.len()]);
                    let masked;
                    let gs = match self.dropout {
                        Some((state, p)) => {
                            masked = dropped(gs, start, state, p);
                            &masked[..]
                        }
                        None => gs,
                    };
                    let rows = out.len() / k;
                    let mut dot = [-0.0f64; ROW_BLOCK];
                    for j in 0..k {
                        for r in 0..rows {
                            dot[r] += ys[r * k + j].wide() * gs[r * k + j].wide();
                        }
                    }
                    let row_parts = out.chunks_mut(k).zip(ys.chunks(k)).zip(gs.chunks(k));
                    for (((o, yr), gr), &d) in row_parts.zip(&dot) {
                        let d = T::of(d);
                        for ((o, &y), &g) in o.iter_mut().zip(yr).zip(gr) {
                            o.write(scale * y * (g - d));
                        }
                    }
                },
            )
        }
    }
}

/// `g * mask + 0` for the positions `start..` of `g`, with the mask of `state` (as
/// [`Dropout`](super::Dropout) computes it).
#[inline(always)]
fn dropped<T: Real>(g: &[T], start: usize, state: u64, p: f64) -> Vec<T> {
    let (threshold, keep) = mask_params(p);
    let mut mask = [0.0f32; MASK_PIECE];
    let mut out = Vec::with_capacity(g.len());
    for (at, piece) in (0..).step_by(MASK_PIECE).zip(g.chunks(MASK_PIECE)) {
        let m = &mut mask[..piece.len()];
        mask_into(state, start + at, threshold, keep, m);
        out.extend(
            piece
                .iter()
                .zip(&*m)
                .map(|(&g, &m)| g * T::of(f64::from(m)) + T::ZERO),
        );
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    /// One row at a time, as the kernels computed it before rows ran side by side.
    fn softmax_row(x: &[f32], bias: Option<&[f32]>, scale: f32, out: &mut [f32]) {
        let mut max = f32::MIN;
        for j in 0..x.len() {
            let v = scale * x[j] + bias.map_or(0.0, |b| b[j]);
            out[j] = v;
            if v > max {
                max = v;
            }
        }
        let mut sum = 0.0f64;
        for o in out.iter_mut() {
            let e = fast_exp(*o - max);
            *o = e;
            sum += f64::from(e);
        }
        let inv = (1.0 / sum) as f32;
        for o in out.iter_mut() {
            *o *= inv;
        }
    }

    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut r = crate::rng::SplitMix64::new(seed);
        (0..n).map(|_| (r.normal() * 4.0) as f32).collect()
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn rows_side_by_side_equal_one_row_at_a_time_to_the_bit() {
        let scale = 0.125f32;
        for k in [1, 3, 17, 45] {
            for rows in [1, 5, 16, 17, 40] {
                let x = values(rows * k, (rows * 100 + k) as u64);
                // Two mask rows (the second masks every other column), each shared by half the
                // rows when the count is even.
                let per = if rows % 2 == 0 { rows / 2 } else { rows };
                let masks = rows / per;
                let mut bias = vec![0.0f32; masks * k];
                for (j, b) in bias.iter_mut().enumerate().skip(k) {
                    if j % 2 == 1 {
                        *b = -1e9;
                    }
                }
                for with_bias in [false, true] {
                    let op = Softmax {
                        scale: f64::from(scale),
                    };
                    let got = op.run(&x, with_bias.then_some((&bias[..], per)), k);
                    let mut want = vec![0.0f32; rows * k];
                    for r in 0..rows {
                        let b = with_bias.then(|| &bias[(r / per) * k..(r / per + 1) * k]);
                        softmax_row(&x[r * k..(r + 1) * k], b, scale, &mut want[r * k..][..k]);
                    }
                    assert_eq!(
                        bits(&got),
                        bits(&want),
                        "{rows} rows of {k}, bias {with_bias}"
                    );
                    // Backward against the one-row dot product.
                    let g = values(rows * k, 5);
                    let dx = SoftmaxBwd {
                        scale: f64::from(scale),
                        dropout: None,
                    }
                    .run(&got, &g, k);
                    // With the attention dropout's mask replayed inside: as the dropout kernel
                    // and then the plain backward.
                    let state = (rows * 31 + k) as u64;
                    let drop = crate::model::kernels::Dropout {
                        state,
                        p: 0.1,
                        pack: None,
                    };
                    let g_masked = drop.run(&g, None);
                    let want_masked = SoftmaxBwd {
                        scale: f64::from(scale),
                        dropout: None,
                    }
                    .run(&got, &g_masked, k);
                    let fused = SoftmaxBwd {
                        scale: f64::from(scale),
                        dropout: Some((state, 0.1)),
                    }
                    .run(&got, &g, k);
                    assert_eq!(
                        bits(&fused),
                        bits(&want_masked),
                        "masked, {rows} rows of {k}"
                    );
                    let mut want_dx = vec![0.0f32; rows * k];
                    for r in 0..rows {
                        let (yr, gr) = (&got[r * k..(r + 1) * k], &g[r * k..(r + 1) * k]);
                        let dot: f64 = yr
                            .iter()
                            .zip(gr)
                            .map(|(a, b)| f64::from(*a) * f64::from(*b))
                            .sum();
                        for j in 0..k {
                            want_dx[r * k + j] = scale * yr[j] * (gr[j] - dot as f32);
                        }
                    }
                    assert_eq!(bits(&dx), bits(&want_dx), "backward, {rows} rows of {k}");
                }
            }
        }
    }
}
