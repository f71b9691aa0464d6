//! In-place row kernels for inference: the bias, residual and layer norm that follow a projection,
//! and the bias and GELU that follow the intermediate one, written over the product's own fresh
//! buffer. The training path's ops (`BiasDropoutAdd`, `LayerNorm`, `BiasGelu`) each allocate a
//! zeroed output and make a pass over it; inference needs neither the copies nor their inputs.

use candle_core::{CpuStorage, InplaceOp2, InplaceOp3, Layout, Result, bail};
use rayon::prelude::*;

use super::gelu::gelu;
use super::norm::block_stats;
use super::*;

/// Where an in-place op's destination lies in its storage (it must be contiguous).
fn span(l: &Layout, what: &str) -> Result<std::ops::Range<usize>> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(a..b),
        None => bail!("{what}: not contiguous"),
    }
}

/// `x <- layer_norm(x + bias + residual) * gamma + beta` per row. The second input is the
/// residual, `(rows, width)`; the third the `3 * width` parameters `[bias; gamma; beta]`.
/// Equal to `BiasDropoutAdd` (dropout off) then `LayerNorm`: the same arithmetic, the statistics
/// in f64.
pub(crate) struct AddNorm {
    pub eps: f64,
}

impl AddNorm {
    fn run<T: Real>(&self, x: &mut [T], residual: &[T], params: &[T]) -> Result<()> {
        let d = params.len() / 3;
        if d == 0 || x.len() != residual.len() || !x.len().is_multiple_of(d) {
            bail!("add-norm: shapes do not match");
        }
        let (bias, rest) = params.split_at(d);
        let (gamma, beta) = rest.split_at(d);
        let eps = self.eps;
        x.par_chunks_mut(d * ROW_BLOCK)
            .zip(residual.par_chunks(d * ROW_BLOCK))
            .for_each(|(xb, rb)| {
                wide(
                    #[inline(always)]
                    || {
                        for (row, res) in xb.chunks_mut(d).zip(rb.chunks(d)) {
                            for ((v, &r), &b) in row.iter_mut().zip(res).zip(bias) {
                                *v = *v + b + r;
                            }
                        }
                        let mut stats = [(0.0, 0.0); ROW_BLOCK];
                        block_stats(xb, d, eps, &mut stats);
                        for (row, &(mean, rstd)) in xb.chunks_mut(d).zip(&stats) {
                            let (mean, rstd) = (T::of(mean), T::of(rstd));
                            for ((v, &g), &b) in row.iter_mut().zip(gamma).zip(beta) {
                                *v = (*v - mean) * rstd * g + b;
                            }
                        }
                    },
                )
            });
        Ok(())
    }
}

impl InplaceOp3 for AddNorm {
    fn name(&self) -> &'static str {
        "nerlab-add-norm"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        res: &CpuStorage,
        res_l: &Layout,
        par: &CpuStorage,
        par_l: &Layout,
    ) -> Result<()> {
        let at = span(dst_l, "add-norm")?;
        if par_l.shape().elem_count() != 3 * row_width(dst_l.dims()) {
            bail!("add-norm: the parameters are not [bias; gamma; beta] of the rows' width");
        }
        match dst {
            CpuStorage::F32(x) => self.run::<f32>(
                &mut x[at],
                contiguous(res, res_l, "residual")?,
                contiguous(par, par_l, "parameters")?,
            ),
            CpuStorage::F64(x) => self.run::<f64>(
                &mut x[at],
                contiguous(res, res_l, "residual")?,
                contiguous(par, par_l, "parameters")?,
            ),
            _ => bail!("add-norm: f32 or f64 only"),
        }
    }
}

/// `x <- gelu(x + bias)` per row of `bias.len()` (erf GELU, as `BiasGelu`).
pub(crate) struct BiasGeluInPlace;

impl BiasGeluInPlace {
    fn run<T: Real>(x: &mut [T], bias: &[T]) -> Result<()> {
        let d = bias.len();
        if d == 0 || !x.len().is_multiple_of(d) {
            bail!("bias-gelu: shapes do not match");
        }
        x.par_chunks_mut(d * ROW_BLOCK).for_each(|blk| {
            wide(
                #[inline(always)]
                || {
                    for row in blk.chunks_mut(d) {
                        for (v, &b) in row.iter_mut().zip(bias) {
                            *v = gelu(*v + b);
                        }
                    }
                },
            )
        });
        Ok(())
    }
}

impl InplaceOp2 for BiasGeluInPlace {
    fn name(&self) -> &'static str {
        "nerlab-bias-gelu-in-place"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        bias: &CpuStorage,
        bias_l: &Layout,
    ) -> Result<()> {
        let at = span(dst_l, "bias-gelu")?;
        if bias_l.shape().elem_count() != row_width(dst_l.dims()) {
            bail!("bias-gelu: the bias is not as wide as the rows");
        }
        match dst {
            CpuStorage::F32(x) => Self::run::<f32>(&mut x[at], contiguous(bias, bias_l, "bias")?),
            CpuStorage::F64(x) => Self::run::<f64>(&mut x[at], contiguous(bias, bias_l, "bias")?),
            _ => bail!("bias-gelu: f32 or f64 only"),
        }
    }
}

/// `x <- x + y`, elementwise, for gradients that meet (training's backward pass): candle's add
/// would allocate a third buffer, and it hands large tensors to candle's own barrier-thread pool,
/// whose worker then spins for a while beside rayon's threads (2% of a training step's samples
/// on two cores). f32 addition commutes, so the bits are those of `x + y`.
pub(crate) struct AddInPlace;

impl AddInPlace {
    fn run<T: Real>(x: &mut [T], y: &[T]) -> Result<()> {
        if x.len() != y.len() {
            bail!("add in place: shapes do not match");
        }
        x.par_chunks_mut(ADD_CHUNK)
            .zip(y.par_chunks(ADD_CHUNK))
            .for_each(|(xs, ys)| {
                wide(
                    #[inline(always)]
                    || {
                        for (v, &w) in xs.iter_mut().zip(ys) {
                            *v += w;
                        }
                    },
                )
            });
        Ok(())
    }
}

/// Elements per parallel work item of [`AddInPlace`].
const ADD_CHUNK: usize = 1 << 14;

impl InplaceOp2 for AddInPlace {
    fn name(&self) -> &'static str {
        "nerlab-add-in-place"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        y: &CpuStorage,
        y_l: &Layout,
    ) -> Result<()> {
        let at = span(dst_l, "add in place")?;
        if dst_l.dims() != y_l.dims() {
            bail!("add in place: shapes do not match");
        }
        match dst {
            CpuStorage::F32(x) => Self::run::<f32>(&mut x[at], contiguous(y, y_l, "addend")?),
            CpuStorage::F64(x) => Self::run::<f64>(&mut x[at], contiguous(y, y_l, "addend")?),
            _ => bail!("add in place: f32 or f64 only"),
        }
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::super::test_data::{bits, vals};
    use super::AddInPlace;

    /// The bits of candle's `x + y`, over a whole tensor and over the leading rows of a larger
    /// one (a layer norm's backward returns its input gradient as such a view); only those rows
    /// change; other shapes are an error.
    #[test]
    fn add_in_place_equals_candle_add() {
        let dev = &Device::Cpu;
        for rows in [1, 3, 700] {
            let y = Tensor::from_vec(vals(rows * 384, 1), (rows, 384), dev).unwrap();
            let whole = Tensor::from_vec(vals((rows + 2) * 384, 2), (rows + 2, 384), dev).unwrap();
            let want = (whole.narrow(0, 0, rows).unwrap() + &y).unwrap();
            let tail = bits(&whole.narrow(0, rows, 2).unwrap());
            let x = whole.narrow(0, 0, rows).unwrap();
            x.inplace_op2(&y, &AddInPlace).unwrap();
            assert_eq!(bits(&x), bits(&want));
            assert_eq!(bits(&whole.narrow(0, rows, 2).unwrap()), tail);
        }
        let x = Tensor::zeros((2, 3), candle_core::DType::F32, dev).unwrap();
        let y = Tensor::zeros((3, 2), candle_core::DType::F32, dev).unwrap();
        assert!(x.inplace_op2(&y, &AddInPlace).is_err());
    }
}
