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
        let width = pack.map_or(1, |p| x.len() / p.rows.len().max(1));
        // Blocks of a multiple of 4 elements, so each 64-bit draw serves one block.
        const BLOCK: usize = 1 << 12;
        y.par_chunks_mut(BLOCK).enumerate().for_each(|(blk, out)| {
            let base = blk * BLOCK;
            for (j, o) in out.iter_mut().enumerate() {
                let i = base + j;
                let m = T::of(f64::from(dropout_mask_value(
                    self.state,
                    Packing::unpacked(pack, i, width),
                    threshold,
                    keep,
                )));
                *o = x[i] * m + add.map_or(T::ZERO, |a| a[i]);
            }
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
