//! Fused CPU kernels with their backward passes: layer normalization, softmax (plain, and scaled
//! with an additive mask for attention) and the erf GELU. candle composes these from primitive
//! ops, each a pass over memory with its own allocation, forward and backward alike (the layer
//! norm's backward alone is about twenty passes); here each direction is one pass per row.
//!
//! Each kernel is a candle custom op whose backward is another custom op, so autograd works as
//! before. They run for f32 and f64 tensors on the CPU; anything else (CUDA, half precision) takes
//! the composed path in `ops.rs`. `tests/gradcheck.rs` checks every backward against finite
//! differences and `tests/model_parity.rs` the forward against PyTorch.
//!
//! Rows are processed in fixed blocks of `ROW_BLOCK`, in parallel with rayon; reductions across
//! rows (the norm's weight and bias gradients) add the blocks' partial sums in block order, so
//! results do not depend on the number of threads.

use std::mem::MaybeUninit;
use std::ops::Neg;

use candle_core::{CpuStorage, DType, Device, Layout, Result, Tensor, WithDType, bail};
use rayon::prelude::*;

/// Rows per parallel work item.
const ROW_BLOCK: usize = 16;

/// The custom ops' dtype dispatch: evaluates `$body` (a `Vec<T>`) with the type `T` bound to
/// the storage's float type and wraps the result as storage; other dtypes are an error naming
/// the op. Defined before the kernel modules so that they see it.
macro_rules! by_real {
    ($s:expr, $op:literal, $T:ident => $body:expr) => {
        match $s {
            CpuStorage::F32(_) => {
                type $T = f32;
                <f32 as Real>::storage($body)
            }
            CpuStorage::F64(_) => {
                type $T = f64;
                <f64 as Real>::storage($body)
            }
            _ => bail!(concat!($op, ": f32 or f64 only")),
        }
    };
}

/// The float types the kernels run on (candle's `WithDType` brings the arithmetic and the
/// storage conversions).
pub trait Real: WithDType + Neg<Output = Self> {
    const ZERO: Self;
    const ONE: Self;
    const LOWEST: Self;
    fn of(x: f64) -> Self;
    fn wide(self) -> f64;
    /// `exp`: for f32 a branch-free polynomial (relative error under 1e-7, vectorizable); for
    /// f64 the standard library's.
    fn exp(self) -> Self;
    /// `erf`: for f32 a rational approximation (absolute error under 5e-7, vectorizable, 14x
    /// faster than libm's); for f64 libm's.
    fn erf(self) -> Self;
    fn slice(s: &CpuStorage) -> Option<&[Self]> {
        Self::cpu_storage_as_slice(s).ok()
    }
    fn storage(v: Vec<Self>) -> CpuStorage {
        Self::to_cpu_storage_owned(v)
    }
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const LOWEST: Self = f32::MIN;
    #[inline(always)]
    fn of(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn wide(self) -> f64 {
        f64::from(self)
    }
    #[inline(always)]
    fn exp(self) -> Self {
        fast_exp(self)
    }
    #[inline(always)]
    fn erf(self) -> Self {
        fast_erf(self)
    }
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const LOWEST: Self = f64::MIN;
    #[inline(always)]
    fn of(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn wide(self) -> f64 {
        self
    }
    #[inline(always)]
    fn exp(self) -> Self {
        f64::exp(self)
    }
    #[inline(always)]
    fn erf(self) -> Self {
        libm::erf(self)
    }
}

/// `exp(x)` in f32 without branches or calls, so loops over it vectorize: Cody–Waite range
/// reduction to `r` in [-ln2/2, ln2/2], Cephes' degree-6 polynomial for `e^r`, and `2^n` built in
/// the exponent bits. Relative error below 1e-7 over [-87, 88] (measured against f64 `exp`);
/// exactly 0 below -87, as softmax's masked positions need.
#[inline(always)]
pub fn fast_exp(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    let xc = x.clamp(-87.0, 88.0);
    let n = (xc * std::f32::consts::LOG2_E + MAGIC) - MAGIC;
    let r = xc - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_2e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    if x < -87.0 { 0.0 } else { y * scale }
}

/// `erf(x)` in f32 as the ratio of two polynomials on [-4, 4] (outside, erf is ±1 to f32
/// precision), the approximation Eigen and TensorFlow use for float erf. Absolute error below
/// 5e-7 (measured against f64 `erf`).
#[inline(always)]
pub fn fast_erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    p = x2 * p + -2.101_024e-6;
    p = x2 * p + -5.692_506_4e-5;
    p = x2 * p + -7.349_906_3e-4;
    p = x2 * p + -2.954_6e-3;
    p = x2 * p + -1.609_603_3e-2;
    let mut q = x2 * -1.456_607_2e-5 + -2.133_740_6e-4;
    q = x2 * q + -1.682_827e-3;
    q = x2 * q + -7.373_329e-3;
    q = x2 * q + -1.426_474e-2;
    x * p / q
}

/// Whether the fused kernels apply to `t` (CPU, f32 or f64, unless the GPU path is asked for:
/// [`crate::model::device::GPU_PATH`]).
pub fn applies(t: &Tensor) -> bool {
    matches!(t.device(), Device::Cpu)
        && matches!(t.dtype(), DType::F32 | DType::F64)
        && crate::model::device::gpu_path().is_none()
}

fn contiguous<'a, T: Real>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [T]> {
    let Some(data) = T::slice(s) else {
        bail!(
            "{what}: unexpected dtype {:?}",
            candle_core::backend::BackendStorage::dtype(s)
        )
    };
    let Some((a, b)) = l.contiguous_offsets() else {
        bail!("{what}: not contiguous")
    };
    Ok(&data[a..b])
}

/// The length of the rows a kernel works on: the last dimension (1 for a scalar).
fn row_width(dims: &[usize]) -> usize {
    dims.last().copied().unwrap_or(1)
}

/// Runs `f` compiled for the widest vector instructions this CPU has, through `pulp`'s runtime
/// dispatch (the crate itself is built for baseline x86-64, whose vectors are 4 floats wide).
/// The results are the same to the bit: Rust never fuses a multiply and an add on its own, so
/// each lane rounds as the scalar operation does; only the width changes. `f` and what it calls
/// must be inlined into the dispatched body to benefit (`#[inline(always)]` on the helpers).
#[inline(always)]
pub(crate) fn wide<R>(f: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(f)
}

/// An output of `n` elements that `fill` writes in full, without zero-filling it first:
/// `vec![0; n]` is a serial pass over memory on the calling thread before the parallel work
/// starts (3.8% of a KLUE training step's samples in `perf`, before this).
///
/// # Safety
/// `fill` must write every element of the slice it is given. The kernels that use this write
/// their whole output through iterators zipped over it, and their tests compare every element
/// with a reference.
#[allow(unsafe_code)]
pub(crate) unsafe fn written<T>(n: usize, fill: impl FnOnce(&mut [MaybeUninit<T>])) -> Vec<T> {
    let mut v = Vec::with_capacity(n);
    fill(&mut v.spare_capacity_mut()[..n]);
    // SAFETY: `n` is within the capacity, and the caller guarantees `fill` initialized all `n`.
    unsafe { v.set_len(n) };
    v
}

/// An output of `n` elements made by `f` from (block index, block) for every block of
/// [`ROW_BLOCK`] rows of `width` (the last may be shorter), in parallel, each block compiled
/// through [`wide`] (mark `f` `#[inline(always)]`: a closure left out of line is compiled for the
/// baseline).
///
/// # Safety
/// `f` must write every element of each block it is given (see [`written`]).
#[allow(unsafe_code)]
unsafe fn blocks_map<T: Send>(
    n: usize,
    width: usize,
    f: impl Fn(usize, &mut [MaybeUninit<T>]) + Sync,
) -> Vec<T> {
    let fill = |out: &mut [MaybeUninit<T>]| {
        out.par_chunks_mut(width * ROW_BLOCK)
            .enumerate()
            .for_each(|(blk, chunk)| {
                wide(
                    #[inline(always)]
                    || f(blk, chunk),
                )
            })
    };
    // SAFETY: the blocks cover `0..n`, and the caller's `f` writes every block in full.
    unsafe { written(n, fill) }
}

/// [`blocks_map`] one row at a time: `f` gets (row index, output row).
///
/// # Safety
/// `f` must write every element of each row it is given (see [`written`]).
#[allow(unsafe_code)]
unsafe fn rows_map<T: Real>(
    n: usize,
    width: usize,
    f: impl Fn(usize, &mut [MaybeUninit<T>]) + Sync,
) -> Vec<T> {
    // SAFETY: every row of every block goes to `f`, which the caller guarantees writes it.
    unsafe {
        blocks_map(
            n,
            width,
            #[inline(always)]
            |blk, chunk| {
                for (k, row) in chunk.chunks_mut(width).enumerate() {
                    f(blk * ROW_BLOCK + k, row);
                }
            },
        )
    }
}

/// Which positions of a padded `(batch, seq)` layout hold real tokens. Packed tensors have one
/// row per real token, so matrix products and row kernels do no work on padding; the attention
/// kernels unpack into `(batch, heads, seq, head_dim)` (zeros at padding) and pack back, and the
/// dropout kernels index their masks by the unpacked position, so a packed pass draws exactly the
/// masks a padded one does.
#[derive(Debug)]
pub(crate) struct Packing {
    /// The flat `batch * seq` position of each packed row.
    pub rows: Vec<u32>,
    /// The packed row of each flat position, `u32::MAX` at padding.
    pub slot: Vec<u32>,
}

impl Packing {
    /// From a `batch * seq` 0/1 mask; `None` when nothing is padding.
    pub fn from_mask(mask: &[f32]) -> Option<std::sync::Arc<Self>> {
        if mask.iter().all(|&m| m > 0.5) {
            return None;
        }
        let mut rows = Vec::new();
        let slot = mask
            .iter()
            .enumerate()
            .map(|(i, &m)| {
                if m > 0.5 {
                    rows.push(i as u32);
                    (rows.len() - 1) as u32
                } else {
                    u32::MAX
                }
            })
            .collect();
        Some(std::sync::Arc::new(Self { rows, slot }))
    }

    /// The flat index, in the padded layout, of element `i` of a packed tensor with rows of `width`.
    #[inline]
    fn unpacked(pack: Option<&Self>, i: usize, width: usize) -> usize {
        match pack {
            Some(p) => p.rows[i / width] as usize * width + i % width,
            None => i,
        }
    }
}

mod attention;
mod dropout;
mod gelu;
mod heads;
mod inplace;
mod int8;
mod lstm;
mod norm;
mod product;
mod softmax;

pub(crate) use attention::PackedAttention;
pub(crate) use dropout::{Dropout, MASK_PIECE, mask_into};
pub use dropout::{dropout, dropout_mask_value, mask_params};
pub use gelu::gelu_erf;
pub(crate) use heads::{BiasDropoutAdd, BiasGelu, BiasGeluBwd, MergeHeads, SplitHeads};
pub(crate) use inplace::{AddInPlace, AddNorm, BiasGeluInPlace};
pub(crate) use int8::QuantMatmul;
pub use int8::{QuantWeight, vnni_available};
pub use lstm::lstm_recurrence;
pub use norm::layer_norm;
pub(crate) use norm::{LayerNorm, LayerNormBwd};
pub use product::{matmul, matmul_batched, matmul_pair};
pub(crate) use softmax::{Softmax, SoftmaxBwd};
pub use softmax::{masked_softmax, softmax};

/// Test inputs shared by the kernels' bit-for-bit tests.
#[cfg(test)]
pub(crate) mod test_data {
    use candle_core::Tensor;

    /// `n` values in [-0.5, 0.5) from a multiplicative hash of the index, offset by `k`.
    pub(crate) fn vals(n: usize, k: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(k) % 1000) as f32 / 997.0 - 0.5
            })
            .collect()
    }

    /// The bits of every element, for comparisons to the bit.
    pub(crate) fn bits(t: &Tensor) -> Vec<u32> {
        let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        v.into_iter().map(f32::to_bits).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: Vec<f64>, shape: &[usize]) -> Tensor {
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn close(a: &Tensor, b: &Tensor, tol: f64) {
        let a: Vec<f64> = a.flatten_all().unwrap().to_vec1().unwrap();
        let b: Vec<f64> = b.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() <= tol, "{x} vs {y}");
        }
    }

    fn data(n: usize, seed: u64) -> Vec<f64> {
        let mut r = crate::rng::SplitMix64::new(seed);
        (0..n).map(|_| r.normal() * 2.0).collect()
    }

    fn split_heads(
        x: &Tensor,
        bias: &Tensor,
        (batch, seq, heads): (usize, usize, usize),
        transpose: bool,
        pack: Option<std::sync::Arc<Packing>>,
    ) -> Tensor {
        let op = SplitHeads {
            batch,
            seq,
            heads,
            transpose,
            pack,
        };
        x.apply_op2_no_bwd(bias, &op).unwrap()
    }

    #[test]
    fn fast_exp_and_erf_are_accurate() {
        let mut x = -90.0f64;
        while x < 88.0 {
            let (got, want) = (f64::from(fast_exp(x as f32)), (x as f32 as f64).exp());
            assert!(
                (got - want).abs() <= 2e-7 * want || (x < -87.0 && got == 0.0),
                "exp({x}): {got} vs {want}"
            );
            x += 0.0137;
        }
        let mut x = -6.0f64;
        while x < 6.0 {
            let (got, want) = (f64::from(fast_erf(x as f32)), libm::erf(x as f32 as f64));
            assert!((got - want).abs() <= 5e-7, "erf({x}): {got} vs {want}");
            x += 0.000_37;
        }
    }

    #[test]
    fn forward_passes_equal_the_composed_ops() {
        let x = t(data(37 * 19, 1), &[37, 19]);
        let w = t(data(19, 2), &[19]);
        let b = t(data(19, 3), &[19]);
        close(
            &layer_norm(&x, &w, &b, 1e-12).unwrap(),
            &super::super::ops::layer_norm_composed(&x, &w, &b, 1e-12).unwrap(),
            1e-12,
        );
        close(
            &softmax(&x).unwrap(),
            &super::super::ops::softmax_composed(&x).unwrap(),
            1e-14,
        );
        let g = gelu_erf(&x).unwrap();
        close(&g, &x.gelu_erf().unwrap(), 1e-12);
        // Masked: (batch 2, heads 3, queries 4, keys 5), padding at the last key of sentence 1.
        let s = t(data(2 * 3 * 4 * 5, 4), &[2, 3, 4, 5]);
        let m = t(
            vec![0., 0., 0., 0., 0., 0., 0., 0., 0., -1e300],
            &[2, 1, 1, 5],
        );
        let want = super::super::ops::softmax_composed(
            &(s.clone() * 0.5).unwrap().broadcast_add(&m).unwrap(),
        )
        .unwrap();
        close(&masked_softmax(&s, &m, 0.5).unwrap(), &want, 1e-14);
    }

    #[test]
    fn fused_dropout_draws_the_same_mask_as_the_host_generator() {
        let x = Tensor::ones(1001, DType::F32, &Device::Cpu).unwrap();
        let rng = crate::model::ops::DropoutRng::new(9);
        let state = rng.reserve(1001);
        let fused: Vec<f32> = dropout(&x, 0.1, state).unwrap().to_vec1().unwrap();
        let host = crate::model::ops::DropoutRng::new(9).mask_for_test(1001, 0.1);
        assert_eq!(fused, host);
        // Both leave the generator in the same place.
        let other = crate::model::ops::DropoutRng::new(9);
        let _ = other.mask_for_test(1001, 0.1);
        assert_eq!(rng.state(), other.state());
    }

    #[test]
    fn mask_runs_equal_the_mask_value_at_every_start_and_length() {
        let threshold = (0.3f64 * 65536.0).round() as u64;
        for start in 0..9 {
            for len in (0..11).chain([255, 256, 257, 600]) {
                let mut got = vec![-1.0f32; len];
                mask_into(77, start, threshold, 2.5, &mut got);
                let want: Vec<f32> = (0..len)
                    .map(|j| dropout_mask_value(77, start + j, threshold, 2.5))
                    .collect();
                assert_eq!(got, want, "start {start}, length {len}");
            }
        }
    }

    #[test]
    fn heads_and_bias_ops_equal_their_definitions() {
        let (b, s, heads, hd) = (2, 3, 2, 4);
        let x = t(data(b * s * heads * hd, 11), &[b * s, heads * hd]);
        let bias = t(data(heads * hd, 12), &[heads * hd]);
        let split = split_heads(&x, &bias, (b, s, heads), false, None);
        let split_t = split_heads(&x, &bias, (b, s, heads), true, None);
        close(&split_t, &split.transpose(2, 3).unwrap(), 0.0);
        let want = x
            .broadcast_add(&bias)
            .unwrap()
            .reshape((b, s, heads, hd))
            .unwrap()
            .transpose(1, 2)
            .unwrap();
        close(&split, &want, 0.0);
        close(
            &split.apply_op1_no_bwd(&MergeHeads::default()).unwrap(),
            &x.broadcast_add(&bias).unwrap(),
            0.0,
        );
        let g = x.apply_op2_no_bwd(&bias, &BiasGelu).unwrap();
        close(
            &g,
            &x.broadcast_add(&bias).unwrap().gelu_erf().unwrap(),
            1e-12,
        );
        let r = t(data(b * s * heads * hd, 13), &[b * s, heads * hd]);
        let y = x
            .apply_op3_no_bwd(
                &bias,
                &r,
                &BiasDropoutAdd {
                    state: Some(5),
                    p: 0.25,
                    pack: None,
                },
            )
            .unwrap();
        let want = (dropout(&x.broadcast_add(&bias).unwrap(), 0.25, 5).unwrap() + &r).unwrap();
        close(&y, &want, 1e-12);
    }

    #[test]
    fn packed_ops_equal_the_padded_ones_at_real_rows() {
        // Two sentences of 4 positions, the second with 2 real tokens.
        let (b, s, heads, hd) = (2, 4, 2, 3);
        let h = heads * hd;
        let mask = [1., 1., 1., 1., 1., 1., 0., 0.];
        let pack = Packing::from_mask(&mask).unwrap();
        assert_eq!(pack.rows, vec![0, 1, 2, 3, 4, 5]);
        let keep = Tensor::new(&[0u32, 1, 2, 3, 4, 5], &Device::Cpu).unwrap();
        let padded = t(data(b * s * h, 21), &[b * s, h]);
        let packed = padded.index_select(&keep, 0).unwrap();
        let bias = t(data(h, 22), &[h]);
        let split = |x: &Tensor, pack| split_heads(x, &bias, (b, s, heads), false, pack);
        let from_packed = split(&packed, Some(pack.clone()));
        let from_padded = split(&padded, None);
        // Real positions agree; padding is zero.
        let sel = |x: &Tensor| x.narrow(0, 1, 1).unwrap().narrow(2, 0, 2).unwrap();
        close(&sel(&from_packed), &sel(&from_padded), 0.0);
        close(
            &from_packed.narrow(0, 0, 1).unwrap(),
            &from_padded.narrow(0, 0, 1).unwrap(),
            0.0,
        );
        assert_eq!(
            from_packed
                .narrow(0, 1, 1)
                .unwrap()
                .narrow(2, 2, 2)
                .unwrap()
                .abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f64>()
                .unwrap(),
            0.0
        );
        let merged = from_padded
            .apply_op1_no_bwd(&MergeHeads {
                pack: Some(pack.clone()),
            })
            .unwrap();
        close(&merged, &packed.broadcast_add(&bias).unwrap(), 0.0);
        // Dropout masks follow the padded positions.
        let r = t(data(b * s * h, 23), &[b * s, h]);
        let fused = |x: &Tensor, r: &Tensor, pack: Option<std::sync::Arc<Packing>>| {
            x.apply_op3_no_bwd(
                &bias,
                r,
                &BiasDropoutAdd {
                    state: Some(3),
                    p: 0.3,
                    pack,
                },
            )
            .unwrap()
        };
        close(
            &fused(
                &packed,
                &r.index_select(&keep, 0).unwrap(),
                Some(pack.clone()),
            ),
            &fused(&padded, &r, None).index_select(&keep, 0).unwrap(),
            0.0,
        );
        let drop = |x: &Tensor, pack| {
            x.apply_op1_no_bwd(&Dropout {
                state: 7,
                p: 0.3,
                pack,
            })
            .unwrap()
        };
        close(
            &drop(&packed, Some(pack)),
            &drop(&padded, None).index_select(&keep, 0).unwrap(),
            0.0,
        );
    }

    #[test]
    fn packed_attention_equals_split_product_softmax_merge() {
        // Three sentences of up to 5 positions: lengths 5, 2 and 4.
        let (b, s, heads, hd) = (3, 5, 2, 3);
        let h = heads * hd;
        let mut mask = vec![0.0f32; b * s];
        for (bi, len) in [5, 2, 4].into_iter().enumerate() {
            mask[bi * s..bi * s + len].fill(1.0);
        }
        let pack = Packing::from_mask(&mask).unwrap();
        let rows = pack.rows.len();
        let qkv = t(data(rows * 3 * h, 31), &[rows, 3 * h]);
        let bias = t(data(3 * h, 32), &[3 * h]);
        let scale = 0.7;
        let part = |i: usize| {
            (
                qkv.narrow(1, i * h, h).unwrap().contiguous().unwrap(),
                bias.narrow(0, i * h, h).unwrap(),
            )
        };
        let split = |i: usize, transpose: bool| {
            let (x, b_) = part(i);
            split_heads(&x, &b_, (b, s, heads), transpose, Some(pack.clone()))
        };
        let m: Vec<f64> = mask
            .iter()
            .map(|&v| if v > 0.5 { 0.0 } else { f64::MIN })
            .collect();
        let probs = split(0, false)
            .matmul(&split(1, true))
            .unwrap()
            .apply_op2_no_bwd(&t(m, &[b, 1, 1, s]), &Softmax { scale })
            .unwrap();
        let want = probs
            .matmul(&split(2, false))
            .unwrap()
            .apply_op1_no_bwd(&MergeHeads {
                pack: Some(pack.clone()),
            })
            .unwrap();
        let spans = PackedAttention::spans(Some(&pack), b, s);
        assert_eq!(spans, vec![(0, 5), (5, 2), (7, 4)]);
        let got = qkv
            .apply_op2_no_bwd(
                &bias,
                &PackedAttention {
                    heads,
                    scale,
                    spans: std::sync::Arc::new(spans),
                },
            )
            .unwrap();
        close(&got, &want, 1e-12);
        // Without padding every sentence is `seq` rows.
        assert_eq!(PackedAttention::spans(None, 2, 4), vec![(0, 4), (4, 4)]);
        // Spans that do not cover the rows are refused.
        let short = PackedAttention {
            heads,
            scale,
            spans: std::sync::Arc::new(vec![(0, 3)]),
        };
        assert!(qkv.apply_op2_no_bwd(&bias, &short).is_err());
    }

    #[test]
    fn in_place_inference_kernels_equal_the_training_ops() {
        let (n, d) = (37, 19);
        let y = t(data(n * d, 41), &[n, d]);
        let r = t(data(n * d, 42), &[n, d]);
        let (b, g, beta) = (
            t(data(d, 43), &[d]),
            t(data(d, 44), &[d]),
            t(data(d, 45), &[d]),
        );
        let summed = y
            .apply_op3_no_bwd(
                &b,
                &r,
                &BiasDropoutAdd {
                    state: None,
                    p: 0.0,
                    pack: None,
                },
            )
            .unwrap();
        let want = summed
            .apply_op3_no_bwd(&g, &beta, &LayerNorm { eps: 1e-12 })
            .unwrap();
        let got = y.copy().unwrap();
        let params = Tensor::cat(&[&b, &g, &beta], 0).unwrap();
        got.inplace_op3(&r, &params, &AddNorm { eps: 1e-12 })
            .unwrap();
        close(&got, &want, 1e-12);
        let want = y.apply_op2_no_bwd(&b, &BiasGelu).unwrap();
        let got = y.copy().unwrap();
        got.inplace_op2(&b, &BiasGeluInPlace).unwrap();
        close(&got, &want, 0.0);
        // The input is what changed; a mismatched parameter row is refused.
        assert!(
            y.copy()
                .unwrap()
                .inplace_op3(&r, &b, &AddNorm { eps: 1e-12 })
                .is_err()
        );
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let x = t(data(301 * 33, 5), &[301, 33]);
        let w = t(data(33, 6), &[33]);
        let b = t(data(33, 7), &[33]);
        let run = |threads: usize| {
            crate::model::device::with_threads(threads, || {
                let xv = candle_core::Var::from_tensor(&x).unwrap();
                let wv = candle_core::Var::from_tensor(&w).unwrap();
                let y = layer_norm(xv.as_tensor(), wv.as_tensor(), &b, 1e-5).unwrap();
                let loss = y.sqr().unwrap().sum_all().unwrap();
                let g = loss.backward().unwrap();
                g.get(wv.as_tensor()).unwrap().to_vec1::<f64>().unwrap()
            })
            .unwrap()
        };
        assert_eq!(run(1), run(2));
    }
}
