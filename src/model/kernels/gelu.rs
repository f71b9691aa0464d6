//! The erf GELU, forward and backward.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

use super::*;

const FRAC_1_SQRT_2: f64 = std::f64::consts::FRAC_1_SQRT_2;
/// 1 / sqrt(2 pi)
const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

pub(crate) struct Gelu;

fn map_elems<T: Real>(x: &[T], f: impl Fn(T) -> T + Sync) -> Vec<T> {
    let mut y = vec![T::ZERO; x.len()];
    y.par_chunks_mut(1 << 13)
        .zip(x.par_chunks(1 << 13))
        .for_each(|(o, i)| {
            wide(
                #[inline(always)]
                || {
                    for (o, &v) in o.iter_mut().zip(i) {
                        *o = f(v);
                    }
                },
            )
        });
    y
}

#[inline(always)]
pub(super) fn gelu<T: Real>(x: T) -> T {
    T::of(0.5) * x * (T::ONE + (x * T::of(FRAC_1_SQRT_2)).erf())
}

#[inline(always)]
pub(super) fn gelu_grad<T: Real>(x: T) -> T {
    let cdf = T::of(0.5) * (T::ONE + (x * T::of(FRAC_1_SQRT_2)).erf());
    let pdf = T::of(FRAC_1_SQRT_2PI) * (-(x * x) * T::of(0.5)).exp();
    cdf + x * pdf
}

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "nerlab-gelu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = by_real!(s, "gelu", T => map_elems(contiguous::<T>(s, l, "x")?, gelu));
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, gy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(x.apply_op2_no_bwd(&gy.contiguous()?, &GeluBwd)?))
    }
}

pub(crate) struct GeluBwd;

impl CustomOp2 for GeluBwd {
    fn name(&self) -> &'static str {
        "nerlab-gelu-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        fn run<T: Real>(x: &[T], g: &[T]) -> Vec<T> {
            let mut dx = vec![T::ZERO; x.len()];
            dx.par_chunks_mut(1 << 13)
                .zip(x.par_chunks(1 << 13).zip(g.par_chunks(1 << 13)))
                .for_each(|(o, (xs, gs))| {
                    wide(
                        #[inline(always)]
                        || {
                            for ((o, &v), &g) in o.iter_mut().zip(xs).zip(gs) {
                                *o = g * gelu_grad(v);
                            }
                        },
                    )
                });
            dx
        }
        let out = by_real!(s1, "gelu backward", T => run::<T>(
            contiguous(s1, l1, "x")?,
            contiguous(s2, l2, "grad")?,
        ));
        Ok((out, l1.shape().clone()))
    }
}

/// `x * Phi(x)` with the exact (erf) normal CDF, as BERT uses (fused).
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Gelu)
}
