//! Layer normalization, forward and backward in one pass per row each.

use std::mem::MaybeUninit;

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

use super::*;

/// Rows whose sums [`block_stats`] and the backward pass run side by side.
const STATS_ROWS: usize = 8;

/// The mean and reciprocal standard deviation (in f64) of each row (of `d`) of `block`, into
/// `out`: the two-pass sums `x.iter().map(wide).sum::<f64>()` of one row at a time, to the bit
/// (the tests keep that form as the reference). A row's sums are chains of dependent f64
/// additions (about 4 cycles each, 3,000 per row of 384); this runs the chains of up to
/// [`STATS_ROWS`] rows side by side, each row's additions in its own order, from `-0.0` as
/// `Iterator::sum` starts.
#[inline(always)]
pub(super) fn block_stats<T: Real>(block: &[T], d: usize, eps: f64, out: &mut [(f64, f64)]) {
    let df = d as f64;
    for (rows, out) in block.chunks(d * STATS_ROWS).zip(out.chunks_mut(STATS_ROWS)) {
        let g = rows.len() / d;
        let mut sum = [-0.0f64; STATS_ROWS];
        for j in 0..d {
            for (r, acc) in sum.iter_mut().enumerate().take(g) {
                *acc += rows[r * d + j].wide();
            }
        }
        let mean = sum.map(|v| v / df);
        let mut squares = [-0.0f64; STATS_ROWS];
        for j in 0..d {
            for (r, acc) in squares.iter_mut().enumerate().take(g) {
                let c = rows[r * d + j].wide() - mean[r];
                *acc += c * c;
            }
        }
        for (r, o) in out.iter_mut().enumerate().take(g) {
            *o = (mean[r], 1.0 / (squares[r] / df + eps).sqrt());
        }
    }
}

pub(crate) struct LayerNorm {
    pub eps: f64,
}

impl LayerNorm {
    #[allow(unsafe_code)]
    fn fwd<T: Real>(&self, x: &[T], w: &[T], b: &[T], d: usize) -> Vec<T> {
        if d == 0 {
            return vec![T::ZERO; x.len()];
        }
        // SAFETY: each block is written in full; each row is zipped with a row of `x`, `w` and
        // `b`, all `d` long.
        unsafe {
            blocks_map(
                x.len(),
                d,
                #[inline(always)]
                |blk, chunk| {
                    let start = blk * ROW_BLOCK * d;
                    let xs = &x[start..start + chunk.len()];
                    let mut stats = [(0.0, 0.0); ROW_BLOCK];
                    block_stats(xs, d, self.eps, &mut stats);
                    for ((out, xr), &(mean, rstd)) in
                        chunk.chunks_mut(d).zip(xs.chunks(d)).zip(&stats)
                    {
                        let (mean, rstd) = (T::of(mean), T::of(rstd));
                        for (((o, &x), &w), &b) in out.iter_mut().zip(xr).zip(w).zip(b) {
                            o.write((x - mean) * rstd * w + b);
                        }
                    }
                },
            )
        }
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
        // The kernel zips each row with the weight and bias: they must be a whole row long.
        if l2.shape().elem_count() != d || l3.shape().elem_count() != d {
            bail!(
                "layer norm: weight and bias of {} and {} values for rows of {d}",
                l2.shape().elem_count(),
                l3.shape().elem_count()
            );
        }
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
    #[allow(unsafe_code)]
    fn run<T: Real>(&self, x: &[T], w: &[T], gy: &[T], d: usize) -> Vec<T> {
        if d == 0 {
            return Vec::new();
        }
        let n = x.len() / d;
        let fill = |out: &mut [MaybeUninit<T>]| {
            let (dx, rest) = out.split_at_mut(n * d);
            // Per block: dx rows, and partial sums of the weight and bias gradients.
            let partials: Vec<(Vec<f64>, Vec<f64>)> = dx
                .par_chunks_mut(d * ROW_BLOCK)
                .enumerate()
                .map(|(blk, chunk)| {
                    wide(
                        #[inline(always)]
                        || {
                            let mut dw = vec![0.0f64; d];
                            let mut db = vec![0.0f64; d];
                            let df = d as f64;
                            let start = blk * ROW_BLOCK * d;
                            let xs = &x[start..start + chunk.len()];
                            let gs = &gy[start..start + chunk.len()];
                            let mut stats = [(0.0, 0.0); ROW_BLOCK];
                            block_stats(xs, d, self.eps, &mut stats);
                            // Up to STATS_ROWS rows at a time: their `a` and `c` sums side by side,
                            // and `dw`, `db` still gaining the rows in order.
                            let group = d * STATS_ROWS;
                            let groups = chunk
                                .chunks_mut(group)
                                .zip(xs.chunks(group).zip(gs.chunks(group)))
                                .zip(stats.chunks(STATS_ROWS));
                            for ((dxg, (xg, gg)), st) in groups {
                                let rows = xg.len() / d;
                                let mut a = [0.0f64; STATS_ROWS];
                                let mut c = [0.0f64; STATS_ROWS];
                                for j in 0..d {
                                    let wj = w[j].wide();
                                    let (mut dwj, mut dbj) = (dw[j], db[j]);
                                    for r in 0..rows {
                                        let (mean, rstd) = st[r];
                                        let xhat = (xg[r * d + j].wide() - mean) * rstd;
                                        let gr = gg[r * d + j].wide();
                                        let g = gr * wj;
                                        a[r] += g;
                                        c[r] += g * xhat;
                                        dwj += gr * xhat;
                                        dbj += gr;
                                    }
                                    dw[j] = dwj;
                                    db[j] = dbj;
                                }
                                for r in 0..rows {
                                    let (mean, rstd) = st[r];
                                    let (a, c) = (a[r] / df, c[r] / df);
                                    let (xr, gr) =
                                        (&xg[r * d..(r + 1) * d], &gg[r * d..(r + 1) * d]);
                                    let dxr = &mut dxg[r * d..(r + 1) * d];
                                    for (((o, &x), &gy), &w) in
                                        dxr.iter_mut().zip(xr).zip(gr).zip(w)
                                    {
                                        let xhat = (x.wide() - mean) * rstd;
                                        let g = gy.wide() * w.wide();
                                        o.write(T::of(rstd * (g - a - xhat * c)));
                                    }
                                }
                            }
                            (dw, db)
                        },
                    )
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
            for ((o, p), (&w, &b)) in dw_out.iter_mut().zip(db_out).zip(dw.iter().zip(&db)) {
                o.write(T::of(w));
                p.write(T::of(b));
            }
        };
        // SAFETY: the `dx` blocks cover its `n` rows, each row zipped with rows of `x`, `gy` and
        // `w` (all `d` long); the last two rows are zipped with `dw` and `db` (`d` long).
        unsafe { written((n + 2) * d, fill) }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-row form [`block_stats`] must equal.
    fn row_stats<T: Real>(x: &[T], eps: f64) -> (f64, f64) {
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

    /// The backward pass one row at a time, as it was before rows ran side by side.
    fn backward_by_rows<T: Real>(x: &[T], w: &[T], gy: &[T], d: usize, eps: f64) -> Vec<T> {
        let n = x.len() / d;
        let mut out = vec![T::ZERO; (n + 2) * d];
        let mut partials = Vec::new();
        for blk in 0..n.div_ceil(ROW_BLOCK) {
            let mut dw = vec![0.0f64; d];
            let mut db = vec![0.0f64; d];
            for r in blk * ROW_BLOCK..((blk + 1) * ROW_BLOCK).min(n) {
                let xr = &x[r * d..(r + 1) * d];
                let gr = &gy[r * d..(r + 1) * d];
                let (mean, rstd) = row_stats(xr, eps);
                let (mut a, mut c) = (0.0f64, 0.0f64);
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
                    out[r * d + j] = T::of(rstd * (g - a - xhat * c));
                }
            }
            partials.push((dw, db));
        }
        let (mut dw, mut db) = (vec![0.0f64; d], vec![0.0f64; d]);
        for (pw, pb) in &partials {
            for j in 0..d {
                dw[j] += pw[j];
                db[j] += pb[j];
            }
        }
        for j in 0..d {
            out[n * d + j] = T::of(dw[j]);
            out[(n + 1) * d + j] = T::of(db[j]);
        }
        out
    }

    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut r = crate::rng::SplitMix64::new(seed);
        (0..n).map(|_| (r.normal() * 3.0 + 0.5) as f32).collect()
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn rows_side_by_side_equal_one_row_at_a_time_to_the_bit() {
        for d in [1, 5, 64, 384] {
            for n in [1, 7, 8, 9, 16, 17, 40] {
                let x = values(n * d, (n * 1000 + d) as u64);
                let (w, b) = (values(d, 7), values(d, 8));
                let gy = values(n * d, 9);
                // Statistics, with a row of negative zeros (the sums' starting sign matters).
                let mut xz = x.clone();
                xz[..d].fill(-0.0);
                let mut got = vec![(0.0, 0.0); n];
                block_stats(&xz, d, 1e-12, &mut got);
                for (r, &(mean, rstd)) in got.iter().enumerate() {
                    let (m0, s0) = row_stats(&xz[r * d..(r + 1) * d], 1e-12);
                    assert_eq!(
                        (mean.to_bits(), rstd.to_bits()),
                        (m0.to_bits(), s0.to_bits())
                    );
                }
                // Forward against the one-row form.
                let y = LayerNorm { eps: 1e-12 }.fwd(&x, &w, &b, d);
                let mut want = vec![0.0f32; n * d];
                for r in 0..n {
                    let (mean, rstd) = row_stats(&x[r * d..(r + 1) * d], 1e-12);
                    let (mean, rstd) = (mean as f32, rstd as f32);
                    for j in 0..d {
                        want[r * d + j] = (x[r * d + j] - mean) * rstd * w[j] + b[j];
                    }
                }
                assert_eq!(bits(&y), bits(&want), "forward, {n} rows of {d}");
                let got = LayerNormBwd { eps: 1e-12 }.run(&x, &w, &gy, d);
                let want = backward_by_rows(&x, &w, &gy, d, 1e-12);
                assert_eq!(bits(&got), bits(&want), "backward, {n} rows of {d}");
            }
        }
    }

    #[test]
    fn a_weight_shorter_than_the_rows_is_an_error() {
        let dev = &candle_core::Device::Cpu;
        let x = Tensor::from_vec(values(2 * 4, 1), (2, 4), dev).unwrap();
        let short = Tensor::from_vec(values(3, 2), 3, dev).unwrap();
        let full = Tensor::from_vec(values(4, 3), 4, dev).unwrap();
        let err = x
            .apply_op3_no_bwd(&short, &full, &LayerNorm { eps: 1e-5 })
            .unwrap_err();
        assert!(err.to_string().contains("rows of 4"), "{err}");
        assert!(
            x.apply_op3_no_bwd(&full, &full, &LayerNorm { eps: 1e-5 })
                .is_ok()
        );
    }
}
