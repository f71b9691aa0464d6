//! In-place CPU kernels for the optimizer, as candle in-place ops (no `unsafe`): a fused AdamW that
//! reads each parameter, gradient and moment once and writes them back (instead of ten tensor ops
//! that each allocate a parameter-sized tensor), its row-sparse variant for word embeddings, and a
//! row update used by FGM. Parallel over chunks with rayon; elementwise only, so deterministic.

use std::sync::{Mutex, MutexGuard};

use candle_core::{CpuStorage, InplaceOp2, Layout, Result, bail};
use rayon::prelude::*;

/// The scalars of one AdamW update (PyTorch's formula, see `optim.rs`).
#[derive(Debug, Clone, Copy)]
pub struct AdamHyper {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// `1 - lr * weight_decay` (1 without decay).
    pub decay: f64,
    /// `1 - beta1^t`.
    pub bc1: f64,
    /// `sqrt(1 - beta2^t)`.
    pub bc2_sqrt: f64,
    /// Multiplies the gradient first (global-norm clipping).
    pub grad_scale: f64,
}

#[inline(always)]
fn adam_elem(h: &AdamHyper, p: &mut f32, g: f32, m: &mut f32, v: &mut f32) {
    let g = f64::from(g) * h.grad_scale;
    let (mm, vv) = (f64::from(*m), f64::from(*v));
    let mm = mm + (g - mm) * (1.0 - h.beta1);
    let vv = vv * h.beta2 + g * g * (1.0 - h.beta2);
    let denom = vv.sqrt() / h.bc2_sqrt + h.eps;
    let pp = f64::from(*p) * h.decay - h.lr / h.bc1 * mm / denom;
    *m = mm as f32;
    *v = vv as f32;
    *p = pp as f32;
}

/// [`adam_elem`] over equal-length slices, element by element, through `pulp`'s dispatch: the
/// loop is compiled for the CPU's widest vectors (its f64 square roots and divisions are most of
/// an update's time, and the baseline build runs them two lanes at a time). Vector lanes round
/// as the scalar operations do (no fused multiply-adds), so the result is the same to the bit.
fn adam_slices(h: &AdamHyper, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    pulp::Arch::new().dispatch(AdamSlices { h, p, g, m, v });
}

struct AdamSlices<'a> {
    h: &'a AdamHyper,
    p: &'a mut [f32],
    g: &'a [f32],
    m: &'a mut [f32],
    v: &'a mut [f32],
}

impl pulp::WithSimd for AdamSlices<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let h = *self.h;
        let elems = (self.p.iter_mut())
            .zip(self.g)
            .zip(self.m.iter_mut())
            .zip(self.v.iter_mut());
        for (((p, &g), m), v) in elems {
            adam_elem(&h, p, g, m, v);
        }
    }
}

fn offsets(l: &Layout, what: &str) -> Result<std::ops::Range<usize>> {
    let Some((a, b)) = l.contiguous_offsets() else {
        bail!("{what}: not contiguous")
    };
    Ok(a..b)
}

fn slice_of<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    match s {
        CpuStorage::F32(data) => Ok(&data[offsets(l, what)?]),
        _ => bail!("{what}: fused AdamW needs f32"),
    }
}

fn slice_of_mut<'a>(s: &'a mut CpuStorage, l: &Layout, what: &str) -> Result<&'a mut [f32]> {
    match s {
        CpuStorage::F32(data) => Ok(&mut data[offsets(l, what)?]),
        _ => bail!("{what}: fused AdamW needs f32"),
    }
}

const CHUNK: usize = 1 << 14;

type Moment<'g, 'a> = MutexGuard<'g, &'a mut [f32]>;

/// The optimizer's moment buffers behind an op's `&self`, both locked.
fn locked<'g, 'a>(
    m: &'g Mutex<&'a mut [f32]>,
    v: &'g Mutex<&'a mut [f32]>,
) -> Result<(Moment<'g, 'a>, Moment<'g, 'a>)> {
    let poisoned = |_| candle_core::Error::Msg("moments poisoned".into());
    let m = m.lock().map_err(poisoned)?;
    Ok((m, v.lock().map_err(poisoned)?))
}

/// What an AdamW update works on: the op's first tensor (the parameter), its second (the gradient,
/// named `grad` in errors) and the locked moments.
fn adam_views<'s, 'g, 'a>(
    (s1, l1): (&'s mut CpuStorage, &Layout),
    (s2, l2): (&'s CpuStorage, &Layout),
    grad: &str,
    m: &'g Mutex<&'a mut [f32]>,
    v: &'g Mutex<&'a mut [f32]>,
) -> Result<(&'s mut [f32], &'s [f32], Moment<'g, 'a>, Moment<'g, 'a>)> {
    let p = slice_of_mut(s1, l1, "parameter")?;
    let g = slice_of(s2, l2, grad)?;
    let (m, v) = locked(m, v)?;
    Ok((p, g, m, v))
}

/// Dense AdamW on a parameter, in place; the moments are the optimizer's host buffers.
pub struct DenseAdam<'a> {
    pub hyper: AdamHyper,
    pub m: Mutex<&'a mut [f32]>,
    pub v: Mutex<&'a mut [f32]>,
}

impl InplaceOp2 for DenseAdam<'_> {
    fn name(&self) -> &'static str {
        "nerlab-adamw"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let (p, g, mut m, mut v) = adam_views((s1, l1), (s2, l2), "gradient", &self.m, &self.v)?;
        if p.len() != g.len() || p.len() != m.len() || p.len() != v.len() {
            bail!("AdamW: parameter, gradient and moments differ in size");
        }
        let h = self.hyper;
        p.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(m.par_chunks_mut(CHUNK))
            .zip(v.par_chunks_mut(CHUNK))
            .for_each(|(((p, g), m), v)| adam_slices(&h, p, g, m, v));
        Ok(())
    }
}

/// Lazy AdamW on chosen rows of a matrix (PyTorch's SparseAdam update, with AdamW's decay on the
/// same rows): `grads` holds one gradient row per entry of `rows`, rows unique.
pub struct RowAdam<'a> {
    pub hyper: AdamHyper,
    pub rows: &'a [u32],
    pub width: usize,
    pub m: Mutex<&'a mut [f32]>,
    pub v: Mutex<&'a mut [f32]>,
}

impl InplaceOp2 for RowAdam<'_> {
    fn name(&self) -> &'static str {
        "nerlab-row-adamw"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let views = adam_views((s1, l1), (s2, l2), "row gradients", &self.m, &self.v)?;
        let (p, g, mut m, mut v) = views;
        let w = self.width;
        if g.len() != self.rows.len() * w || p.len() != m.len() || p.len() != v.len() {
            bail!("row AdamW: shapes differ");
        }
        let h = self.hyper;
        for (k, &row) in self.rows.iter().enumerate() {
            let r = row as usize * w;
            if r + w > p.len() {
                bail!("row AdamW: row {row} outside the matrix");
            }
            adam_slices(
                &h,
                &mut p[r..r + w],
                &g[k * w..(k + 1) * w],
                &mut m[r..r + w],
                &mut v[r..r + w],
            );
        }
        Ok(())
    }
}

/// The updates dense AdamW gives rows that got no gradient (zero gradient: the moments decay and
/// still move the row), applied late: each listed row from its step `from` through the last entry
/// of `hist`, with exactly dense AdamW's arithmetic, so a row-sparse step followed by catching up
/// equals the dense step. Rows whose moments are zero only decay.
pub struct CatchUp<'a> {
    /// (row, index into `hist` of the first update it lacks); `None`: every row, from `from_all`.
    pub rows: Option<&'a [(u32, usize)]>,
    pub from_all: &'a [u32],
    pub hist: &'a [AdamHyper],
    pub width: usize,
    pub m: Mutex<&'a mut [f32]>,
    pub v: Mutex<&'a mut [f32]>,
}

fn catch_up_row(p: &mut [f32], m: &mut [f32], v: &mut [f32], hist: &[AdamHyper]) {
    if hist.is_empty() {
        return;
    }
    if m.iter().all(|&x| x == 0.0) && v.iter().all(|&x| x == 0.0) {
        // With zero moments the update is the decay alone (rounded each step, as dense AdamW is).
        // Step by step over the whole row (not element by element over the steps): the same
        // products in the same order, but independent lanes the compiler vectorizes.
        for h in hist.iter().filter(|h| h.decay != 1.0) {
            for x in p.iter_mut() {
                *x = (f64::from(*x) * h.decay) as f32;
            }
        }
        return;
    }
    for h in hist {
        for i in 0..p.len() {
            adam_elem(h, &mut p[i], 0.0, &mut m[i], &mut v[i]);
        }
    }
}

impl candle_core::InplaceOp1 for CatchUp<'_> {
    fn name(&self) -> &'static str {
        "nerlab-adamw-catch-up"
    }

    fn cpu_fwd(&self, s: &mut CpuStorage, l: &Layout) -> Result<()> {
        let p = slice_of_mut(s, l, "parameter")?;
        let (mut m, mut v) = locked(&self.m, &self.v)?;
        let w = self.width;
        if p.len() != m.len() || p.len() != v.len() || w == 0 || !p.len().is_multiple_of(w) {
            bail!("AdamW catch-up: parameter and moments differ in size");
        }
        match self.rows {
            Some(rows) => {
                for &(row, from) in rows {
                    let r = row as usize * w;
                    if r + w > p.len() || from > self.hist.len() {
                        bail!("AdamW catch-up: row {row} out of range");
                    }
                    catch_up_row(
                        &mut p[r..r + w],
                        &mut m[r..r + w],
                        &mut v[r..r + w],
                        &self.hist[from..],
                    );
                }
            }
            None => {
                if self.from_all.len() * w != p.len() {
                    bail!("AdamW catch-up: one start step per row expected");
                }
                let hist = self.hist;
                p.par_chunks_mut(w)
                    .zip(m.par_chunks_mut(w))
                    .zip(v.par_chunks_mut(w))
                    .zip(self.from_all.par_iter())
                    .for_each(|(((p, m), v), &from)| {
                        catch_up_row(p, m, v, &hist[(from as usize).min(hist.len())..]);
                    });
            }
        }
        Ok(())
    }
}

/// `matrix[rows] += scale * delta` in place (FGM's perturbation and its undoing).
pub struct AddRows<'a> {
    pub rows: &'a [u32],
    pub width: usize,
    pub scale: f32,
}

impl InplaceOp2 for AddRows<'_> {
    fn name(&self) -> &'static str {
        "nerlab-add-rows"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let scale = self.scale;
        let add = |dst: &mut [f32], src: &[f32]| {
            for (x, &y) in dst.iter_mut().zip(src) {
                *x += scale * y;
            }
        };
        for_rows((s1, l1), (s2, l2), self.rows, self.width, "add rows", add)
    }
}

/// `matrix[rows] = values` in place (restoring rows exactly after FGM).
pub struct SetRows<'a> {
    pub rows: &'a [u32],
    pub width: usize,
}

impl InplaceOp2 for SetRows<'_> {
    fn name(&self) -> &'static str {
        "nerlab-set-rows"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let set = |dst: &mut [f32], src: &[f32]| dst.copy_from_slice(src);
        for_rows((s1, l1), (s2, l2), self.rows, self.width, "set rows", set)
    }
}

/// Runs `write(matrix row, its row of values)` for each listed row of the first tensor (the
/// matrix), the values being the second tensor's rows in order; `what` names the op in errors.
fn for_rows(
    (s1, l1): (&mut CpuStorage, &Layout),
    (s2, l2): (&CpuStorage, &Layout),
    rows: &[u32],
    w: usize,
    what: &str,
    write: impl Fn(&mut [f32], &[f32]),
) -> Result<()> {
    let p = slice_of_mut(s1, l1, "matrix")?;
    let d = slice_of(s2, l2, "rows")?;
    for (k, &row) in rows.iter().enumerate() {
        let r = row as usize * w;
        if r + w > p.len() || (k + 1) * w > d.len() {
            bail!("{what}: row {row} out of range");
        }
        write(&mut p[r..r + w], &d[k * w..(k + 1) * w]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    fn hyper(t: i32) -> AdamHyper {
        AdamHyper {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            decay: 1.0 - 0.1 * 0.01,
            bc1: 1.0 - 0.9f64.powi(t),
            bc2_sqrt: (1.0 - 0.999f64.powi(t)).sqrt(),
            grad_scale: 1.0,
        }
    }

    #[test]
    fn dense_update_matches_torch() {
        // torch.optim.AdamW([p], lr=0.1, weight_decay=0.01), p=[1,-2], grads [0.5,-1] then
        // [0.25,0.5]: [0.8048830404754623, -1.869468297369903] (printed by torch 2.15).
        let p = Tensor::new(&[1.0f32, -2.0], &Device::Cpu).unwrap();
        let (mut m, mut v) = (vec![0.0f32; 2], vec![0.0f32; 2]);
        for (t, g) in [[0.5f32, -1.0], [0.25, 0.5]].iter().enumerate() {
            let g = Tensor::new(g, &Device::Cpu).unwrap();
            let op = DenseAdam {
                hyper: hyper(t as i32 + 1),
                m: Mutex::new(&mut m),
                v: Mutex::new(&mut v),
            };
            p.inplace_op2(&g, &op).unwrap();
        }
        let got: Vec<f32> = p.to_vec1().unwrap();
        assert!(
            (got[0] - 0.804_883).abs() < 1e-6 && (got[1] + 1.869_468_3).abs() < 1e-6,
            "{got:?}"
        );
    }

    #[test]
    fn row_update_touches_only_its_rows() {
        let p = Tensor::ones((3, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
        let (mut m, mut v) = (vec![0.0f32; 6], vec![0.0f32; 6]);
        let g = Tensor::new(&[[0.5f32, -1.0]], &Device::Cpu).unwrap();
        let op = RowAdam {
            hyper: hyper(1),
            rows: &[2],
            width: 2,
            m: Mutex::new(&mut m),
            v: Mutex::new(&mut v),
        };
        p.inplace_op2(&g, &op).unwrap();
        let got: Vec<Vec<f32>> = p.to_vec2().unwrap();
        assert_eq!(got[0], vec![1.0, 1.0]);
        assert_eq!(got[1], vec![1.0, 1.0]);
        assert!(got[2][0] < 1.0 && got[2][1] > 1.0);
        let add = AddRows {
            rows: &[0],
            width: 2,
            scale: 2.0,
        };
        p.inplace_op2(&Tensor::new(&[[1.0f32, 1.0]], &Device::Cpu).unwrap(), &add)
            .unwrap();
        assert_eq!(p.to_vec2::<f32>().unwrap()[0], vec![3.0, 3.0]);
    }
}
