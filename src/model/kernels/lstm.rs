//! The LSTM recurrence, fused: `h_t` for every step from the input projections `xw` (biases
//! added) and the recurrent weight `w_hh`, and its backward pass through time.
//!
//! Composed from candle ops the recurrence is about fifteen ops per time step, each an
//! allocation and a pass over memory, all kept for autograd. Here each time step is one matrix
//! product for the whole batch (`h_{t-1} W_hhᵀ`, candle's gemm) and one pass over the gates; the
//! forward keeps the activated gates and the cells beside the hidden states (one output, of
//! which `lstm_recurrence` shows the hidden part), so the backward pass reads them instead of
//! recomputing. The backward pass through time is one product per step (`dgates W_hh`) and, at
//! the end, `dW_hh` as one product over every row and step.
//!
//! Gate order i, f, g, o (PyTorch's). `tests/gradcheck.rs` checks the backward pass (the BiLSTM-CRF
//! model) against finite differences.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Device, Layout, Result, Shape, Tensor, bail};

use super::*;

/// `sigmoid` through the kernels' `exp` (a polynomial for f32).
#[inline(always)]
fn sigmoid<T: Real>(x: T) -> T {
    T::ONE / (T::ONE + (-x).exp())
}

/// `tanh(x) = 2 sigmoid(2x) - 1`.
#[inline(always)]
fn tanh<T: Real>(x: T) -> T {
    let two = T::ONE + T::ONE;
    two * sigmoid(two * x) - T::ONE
}

/// `a` (m x k) times `b` (k x n) through candle's matrix product.
fn matmul<T: Real>(a: &[T], m: usize, k: usize, b: &Tensor) -> Result<Vec<T>> {
    Tensor::from_slice(a, (m, k), &Device::Cpu)?
        .matmul(b)?
        .flatten_all()?
        .to_vec1::<T>()
}

/// The forward pass of `rows` sequences of `steps` steps: (row, step, 6H) holding the hidden
/// state, the activated gates (i, f, g, o) and the cell.
fn forward<T: Real>(xw: &[T], w_hh: &[T], rows: usize, steps: usize, h: usize) -> Result<Vec<T>> {
    let (g4, w) = (4 * h, 6 * h);
    let wt = Tensor::from_slice(w_hh, (g4, h), &Device::Cpu)?
        .t()?
        .contiguous()?;
    let mut out = vec![T::ZERO; rows * steps * w];
    let mut prev_h = vec![T::ZERO; rows * h];
    let mut gates = vec![T::ZERO; rows * g4];
    for s in 0..steps {
        for r in 0..rows {
            gates[r * g4..(r + 1) * g4].copy_from_slice(&xw[(r * steps + s) * g4..][..g4]);
        }
        if s > 0 {
            let p = matmul(&prev_h, rows, h, &wt)?;
            for (g, p) in gates.iter_mut().zip(&p) {
                *g += *p;
            }
        }
        for r in 0..rows {
            let g = &mut gates[r * g4..(r + 1) * g4];
            for v in &mut g[..2 * h] {
                *v = sigmoid(*v);
            }
            for v in &mut g[2 * h..3 * h] {
                *v = tanh(*v);
            }
            for v in &mut g[3 * h..] {
                *v = sigmoid(*v);
            }
            let at = (r * steps + s) * w;
            let (before, here) = out.split_at_mut(at);
            let here = &mut here[..w];
            for j in 0..h {
                let prev_c = if s == 0 {
                    T::ZERO
                } else {
                    before[at - w + 5 * h + j]
                };
                let c = g[h + j] * prev_c + g[j] * g[2 * h + j];
                let hj = g[3 * h + j] * tanh(c);
                here[j] = hj;
                here[5 * h + j] = c;
                prev_h[r * h + j] = hj;
            }
            here[h..5 * h].copy_from_slice(g);
        }
    }
    Ok(out)
}

/// The backward pass through time, from the forward's output (row, step, 6H), `w_hh` and the
/// gradient of the hidden states (the first H of each (row, step) of `gy`): (row, step, 5H)
/// holding the gates' pre-activation gradients (= `dxw`) and the previous hidden state.
fn backward<T: Real>(
    fwd: &[T],
    w_hh: &Tensor,
    gy: &[T],
    rows: usize,
    steps: usize,
    h: usize,
) -> Result<Vec<T>> {
    let (g4, w) = (4 * h, 6 * h);
    let mut out = vec![T::ZERO; rows * steps * 5 * h];
    let mut dh = vec![T::ZERO; rows * h];
    let mut dc = vec![T::ZERO; rows * h];
    let mut dgates = vec![T::ZERO; rows * g4];
    for s in (0..steps).rev() {
        for r in 0..rows {
            let at = (r * steps + s) * w;
            let f_row = &fwd[at..at + w];
            let g = &f_row[h..5 * h];
            let dg = &mut dgates[r * g4..(r + 1) * g4];
            for j in 0..h {
                let (i, f, gg, o) = (g[j], g[h + j], g[2 * h + j], g[3 * h + j]);
                let prev_c = if s == 0 {
                    T::ZERO
                } else {
                    fwd[at - w + 5 * h + j]
                };
                let tc = tanh(f_row[5 * h + j]);
                let dhj = gy[at + j] + dh[r * h + j];
                let dcj = dhj * o * (T::ONE - tc * tc) + dc[r * h + j];
                dg[j] = dcj * gg * i * (T::ONE - i);
                dg[h + j] = dcj * prev_c * f * (T::ONE - f);
                dg[2 * h + j] = dcj * i * (T::ONE - gg * gg);
                dg[3 * h + j] = dhj * tc * o * (T::ONE - o);
                dc[r * h + j] = dcj * f;
            }
            let o = &mut out[(r * steps + s) * 5 * h..][..5 * h];
            o[..g4].copy_from_slice(dg);
            if s > 0 {
                o[g4..].copy_from_slice(&fwd[at - w..at - w + h]);
            }
        }
        if s > 0 {
            // dh_{s-1} = dgates W_hh.
            dh = matmul(&dgates, rows, g4, w_hh)?;
        }
    }
    Ok(out)
}

/// The recurrence: `xw` (batch, steps, 4H), `w_hh` (4H, H) -> (batch, steps, 6H): hidden
/// state, activated gates and cell ([`forward`]).
pub(crate) struct LstmRecurrence;

fn dims(l1: &Layout, l2: &Layout) -> Result<(usize, usize, usize)> {
    let (b, t, g) = l1.shape().dims3()?;
    let (g2, h) = l2.shape().dims2()?;
    if g != 4 * h || g2 != g {
        bail!("lstm recurrence: input projections (.., {g}) and w_hh ({g2}, {h}) disagree");
    }
    Ok((b, t, h))
}

impl CustomOp2 for LstmRecurrence {
    fn name(&self) -> &'static str {
        "nerlab-lstm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, t, h) = dims(l1, l2)?;
        let out = by_real!(s1, "lstm", T => forward::<T>(
            contiguous(s1, l1, "xw")?,
            contiguous(s2, l2, "w_hh")?,
            b,
            t,
            h,
        )?);
        Ok((out, Shape::from((b, t, 6 * h))))
    }

    fn bwd(
        &self,
        xw: &Tensor,
        w_hh: &Tensor,
        res: &Tensor,
        gy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (b, t, g) = xw.dims3()?;
        let h = g / 4;
        let both = res.apply_op3_no_bwd(w_hh, &gy.contiguous()?, &LstmRecurrenceBwd)?;
        let dxw = both.narrow(2, 0, g)?.contiguous()?;
        let prev_h = both.narrow(2, g, h)?.contiguous()?;
        // dW_hh = the sum over rows and steps of dgates_t h_{t-1}ᵀ: one product.
        let dw = dxw
            .reshape((b * t, g))?
            .t()?
            .matmul(&prev_h.reshape((b * t, h))?)?;
        Ok((Some(dxw), Some(dw)))
    }
}

/// The backward pass: (forward output, w_hh, its gradient) -> (batch, steps, 5H) ([`backward`]).
struct LstmRecurrenceBwd;

impl CustomOp3 for LstmRecurrenceBwd {
    fn name(&self) -> &'static str {
        "nerlab-lstm-bwd"
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
        let (b, t, w) = l1.shape().dims3()?;
        let (g4, h) = l2.shape().dims2()?;
        if w != 6 * h || g4 != 4 * h || l3.shape().dims() != [b, t, w] {
            bail!(
                "lstm backward: forward {:?}, w_hh {:?}, gradient {:?} disagree",
                l1.shape(),
                l2.shape(),
                l3.shape()
            );
        }
        let out = by_real!(s1, "lstm backward", T => {
            let w_hh = Tensor::from_slice(contiguous::<T>(s2, l2, "w_hh")?, (g4, h), &Device::Cpu)?;
            backward::<T>(
                contiguous(s1, l1, "forward")?,
                &w_hh,
                contiguous(s3, l3, "grad")?,
                b,
                t,
                h,
            )?
        });
        Ok((out, Shape::from((b, t, 5 * h))))
    }
}

/// The LSTM recurrence over `xw` (batch, steps, 4H: the input projections with both biases) and
/// `w_hh` (4H, H), from zero states: (batch, steps, H). Fused on the CPU in f32 and f64.
pub fn lstm_recurrence(xw: &Tensor, w_hh: &Tensor) -> Result<Tensor> {
    let h = w_hh.dim(1)?;
    xw.contiguous()?
        .apply_op2(&w_hh.contiguous()?, LstmRecurrence)?
        .narrow(2, 0, h)
}
