//! Dropout whose mask is rebuilt from the generator state instead of stored.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

use super::*;

/// The mask value of element `i` for a mask built from `state` (`DropoutRng::reserve`): the same
/// value `DropoutRng::mask` gives it, 0 with probability `p`, else `1 / (1 - p)` (as f32).
#[inline]
pub fn dropout_mask_value(state: u64, i: usize, threshold: u64, keep: f32) -> f32 {
    let bits = crate::rng::SplitMix64::nth_from(state, (i / 4) as u64) >> (16 * (i % 4));
    if (bits & 0xFFFF) < threshold {
        0.0
    } else {
        keep
    }
}

/// Calls `f(j, mask value)` for the unpacked positions `start + j`, `j` in `0..len`, with the
/// values [`dropout_mask_value`] gives them one by one, but one generator draw per four positions
/// (that function computes the draw again for each of the four).
#[inline(always)]
pub(crate) fn for_each_mask(
    state: u64,
    start: usize,
    len: usize,
    threshold: u64,
    keep: f32,
    mut f: impl FnMut(usize, f32),
) {
    let mut j = 0;
    while j < len {
        let pos = start + j;
        let lane = pos % 4;
        let bits = crate::rng::SplitMix64::nth_from(state, (pos / 4) as u64) >> (16 * lane);
        let take = (4 - lane).min(len - j);
        for l in 0..take {
            let m = if (bits >> (16 * l)) & 0xFFFF < threshold {
                0.0
            } else {
                keep
            };
            f(j + l, m);
        }
        j += take;
    }
}

/// `x * mask` (and, with a second input, `x * mask + r`).
#[derive(Clone)]
pub(crate) struct Dropout {
    pub state: u64,
    pub p: f64,
    /// The input is packed (see [`Packing`]): masks are indexed by the unpacked position.
    pub pack: Option<std::sync::Arc<Packing>>,
}

impl Dropout {
    fn run<T: Real>(&self, x: &[T], add: Option<&[T]>) -> Vec<T> {
        let threshold = (self.p * 65536.0).round() as u64;
        let keep = (1.0 / (1.0 - self.p)) as f32;
        let mut y = vec![T::ZERO; x.len()];
        let pack = self.pack.as_deref();
        // Segments whose unpacked positions run on without a gap: a packed row, or a block (a
        // multiple of 4 elements). Chunks of whole segments go to the threads.
        const BLOCK: usize = 1 << 12;
        let width = pack.map_or(BLOCK, |p| (x.len() / p.rows.len().max(1)).max(1));
        let chunk = width * (BLOCK / width).max(1);
        y.par_chunks_mut(chunk).enumerate().for_each(|(c, out)| {
            wide(
                #[inline(always)]
                || {
                    for (s, seg) in out.chunks_mut(width).enumerate() {
                        let first = c * chunk + s * width;
                        let start = Packing::unpacked(pack, first, width);
                        let xs = &x[first..first + seg.len()];
                        let adds = add.map(|a| &a[first..first + seg.len()]);
                        for_each_mask(self.state, start, seg.len(), threshold, keep, |j, m| {
                            seg[j] = xs[j] * T::of(f64::from(m)) + adds.map_or(T::ZERO, |a| a[j]);
                        });
                    }
                },
            )
        });
        y
    }
}

impl CustomOp1 for Dropout {
    fn name(&self) -> &'static str {
        "nerlab-dropout"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = by_real!(s, "dropout", T => self.run::<T>(contiguous(s, l, "x")?, None));
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, gy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(gy.contiguous()?.apply_op1_no_bwd(self)?))
    }
}

impl CustomOp2 for Dropout {
    fn name(&self) -> &'static str {
        "nerlab-dropout-add"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let out = by_real!(s1, "dropout", T => self.run::<T>(
            contiguous(s1, l1, "x")?,
            Some(contiguous(s2, l2, "residual")?),
        ));
        Ok((out, l1.shape().clone()))
    }
}

/// `x * mask` with the mask of `state` (fused; the backward pass rebuilds the mask).
pub fn dropout(x: &Tensor, p: f64, state: u64) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Dropout {
        state,
        p,
        pack: None,
    })
}
