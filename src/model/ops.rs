//! Numerical building blocks whose gradients are known to flow. candle's fused `layer_norm`,
//! `softmax_last_dim` and `rms_norm` have no backward pass (a naive fine-tune with them trains 2 of
//! 71 tensors), so these are composed from primitive ops that do; `tests/gradcheck.rs` checks them
//! against finite differences. Faster fused versions with a backward pass belong here too.

use std::sync::{Arc, Mutex};

use candle_core::{D, DType, Device, Result, Tensor};

use super::kernels::{QuantMatmul, QuantWeight, mask_params, matmul as product, matmul_batched};
use crate::rng::SplitMix64;

/// Layer normalization over the last dimension (Ba et al. 2016): the fused kernel on the CPU,
/// else composed.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    if super::kernels::applies(x) && x.dtype() == weight.dtype() {
        super::kernels::layer_norm(x, weight, bias, eps)
    } else {
        layer_norm_composed(x, weight, bias, eps)
    }
}

/// Layer normalization from primitive ops, computed in f32 or wider (any device, any dtype).
pub fn layer_norm_composed(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    let dtype = x.dtype();
    let x = if matches!(dtype, DType::F16 | DType::BF16) {
        x.to_dtype(DType::F32)?
    } else {
        x.clone()
    };
    let mean = x.mean_keepdim(D::Minus1)?;
    let centered = x.broadcast_sub(&mean)?;
    let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
    let inv_std = (var + eps)?.sqrt()?.recip()?;
    let normed = centered.broadcast_mul(&inv_std)?.to_dtype(dtype)?;
    normed.broadcast_mul(weight)?.broadcast_add(bias)
}

/// Softmax over the last dimension: the fused kernel on the CPU, else composed.
pub fn softmax(x: &Tensor) -> Result<Tensor> {
    if super::kernels::applies(x) {
        super::kernels::softmax(x)
    } else {
        softmax_composed(x)
    }
}

/// Softmax from primitive ops. The maximum is subtracted for stability and detached: it cancels
/// out of the value, so no gradient flows through it.
pub fn softmax_composed(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let exp = x.broadcast_sub(&max)?.exp()?;
    let sum = exp.sum_keepdim(D::Minus1)?;
    exp.broadcast_div(&sum)
}

/// `log(softmax(x))` over the last dimension.
pub fn log_softmax(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let shifted = x.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    shifted.broadcast_sub(&lse)
}

/// `log(sum(exp(x)))` over `dim`, stable.
pub fn logsumexp(x: &Tensor, dim: usize) -> Result<Tensor> {
    let max = x.max_keepdim(dim)?.detach();
    let lse = x.broadcast_sub(&max)?.exp()?.sum_keepdim(dim)?.log()?;
    lse.broadcast_add(&max)?.squeeze(dim)
}

/// The logistic function, composed so its gradient flows.
pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    (x.neg()?.exp()? + 1.0)?.recip()
}

/// A shared, seeded source of dropout masks. Every dropout in a model draws from one generator,
/// so a run is reproducible from its seed and its state can be checkpointed and restored.
#[derive(Debug, Clone)]
pub struct DropoutRng(Arc<Mutex<SplitMix64>>);

impl DropoutRng {
    pub fn new(seed: u64) -> Self {
        Self(Arc::new(Mutex::new(SplitMix64::new(seed))))
    }

    /// The generator's state, to save with a checkpoint.
    pub fn state(&self) -> u64 {
        self.0.lock().map(|r| r.state()).unwrap_or(0)
    }

    pub fn set_state(&self, state: u64) {
        if let Ok(mut r) = self.0.lock() {
            *r = SplitMix64::from_state(state);
        }
    }

    /// A mask of `n` values: 0 with probability `p`, else `1 / (1 - p)`. Four decisions are drawn
    /// from each 64-bit number (16 bits each), so `p` is resolved to 1/65536.
    fn mask(&self, n: usize, p: f64) -> Vec<f32> {
        let (threshold, keep) = mask_params(p);
        let mut out = Vec::with_capacity(n);
        let Ok(mut rng) = self.0.lock() else {
            return vec![1.0; n];
        };
        while out.len() < n {
            let mut bits = rng.next_u64();
            for _ in 0..4.min(n - out.len()) {
                out.push(if (bits & 0xFFFF) < threshold {
                    0.0
                } else {
                    keep
                });
                bits >>= 16;
            }
        }
        out
    }

    #[cfg(test)]
    pub(crate) fn mask_for_test(&self, n: usize, p: f64) -> Vec<f32> {
        self.mask(n, p)
    }

    /// Reserves the draws a mask of `n` values uses and returns the state to build it from (see
    /// [`super::kernels::dropout_mask_value`]); the generator moves on exactly as [`Self::mask`]
    /// would move it.
    pub fn reserve(&self, n: usize) -> u64 {
        let Ok(mut rng) = self.0.lock() else {
            return 0;
        };
        let start = rng.state();
        rng.skip(n.div_ceil(4) as u64);
        start
    }
}

/// Inverted dropout (Srivastava et al. 2014): identity unless `train` and `p > 0`. On the CPU a
/// fused kernel builds the mask while applying it (and rebuilds it in the backward pass instead
/// of keeping it); elsewhere the mask is built on the host. Both give the same mask.
pub fn dropout(x: &Tensor, p: f64, train: bool, rng: &DropoutRng) -> Result<Tensor> {
    if !train || p <= 0.0 {
        return Ok(x.clone());
    }
    if p >= 1.0 {
        return x.zeros_like();
    }
    if super::kernels::applies(x) {
        let state = rng.reserve(x.elem_count());
        return super::kernels::dropout(x, p, state);
    }
    let mask = rng.mask(x.elem_count(), p);
    let mask = Tensor::from_vec(mask, x.shape(), &Device::Cpu)?
        .to_dtype(x.dtype())?
        .to_device(x.device())?;
    x.mul(&mask)
}

/// A dense layer `x W^T + b` over the last dimension of any rank.
#[derive(Debug, Clone)]
pub struct Linear {
    /// (out, in), as PyTorch stores it.
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    /// A contiguous (in, out) copy of the weight, for inference: `x W^T` with `W^T` stored
    /// row-major runs several times faster in gemm than with the transposed view (8x for one
    /// 35-token sentence through a 1536 -> 384 layer), because the view makes gemm repack the
    /// weight on every call. Made by [`Linear::freeze`]; a model that trains must not have it.
    pub weight_t: Option<Tensor>,
    /// The weight quantized to int8 for opt-in quantized inference ([`Linear::quantize`]); when
    /// set, products go through it (see `kernels/int8.rs`).
    pub int8: Option<Arc<QuantWeight>>,
}

/// `a @ b` for batched matrices (rank 3 or more), the first axis spread over the thread pool and
/// written into one output ([`matmul_batched`]; halves joined with a copy before).
/// candle runs a batched product as one gemm call per matrix, one after another, and gemm
/// threads only products above about 590k multiply-adds: attention's per-head products (a few
/// tens of thousands) all ran on one core while the others waited. Each matrix's product here is
/// the same gemm call as before, so the result is the same to the bit. For f32 on the CPU it goes
/// through [`kernels::matmul`](super::kernels::matmul) (no zero fill, and no backward pass: the
/// fused encoder passes that use it derive theirs by hand).
pub fn batched_matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let threads = rayon::current_num_threads();
    let n = a.dim(0)?;
    // Only equal leading axes, `b` not broadcast along the first (candle merges a broadcast `b`
    // into one larger gemm call, which splitting would change).
    let splittable = a.device().is_cpu()
        && threads > 1
        && a.rank() >= 3
        && n > 1
        && b.rank() == a.rank()
        && b.dim(0)? == n
        && b.stride()[0] != 0;
    if !splittable {
        return product(a, b);
    }
    matmul_batched(a, b)
}

/// `x W^T` through an int8 weight, for `x` of any rank (the product runs over the last axis).
pub fn int8_product(x: &Tensor, q: &Arc<QuantWeight>) -> Result<Tensor> {
    let dims = x.dims();
    let (lead, last) = dims.split_at(dims.len().saturating_sub(1));
    let rows: usize = lead.iter().product();
    let width = last.first().copied().unwrap_or(1);
    let y = x
        .reshape((rows, width))?
        .contiguous()?
        .apply_op1_no_bwd(&QuantMatmul { weight: q.clone() })?;
    let mut shape = lead.to_vec();
    shape.push(q.out_dim());
    y.reshape(shape)
}

impl Linear {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self {
            weight,
            bias,
            weight_t: None,
            int8: None,
        }
    }

    /// Quantizes the weight to int8 per output channel; from then on products use it, and the
    /// f32 transposed copy is dropped. Inference only, on the CPU, f32.
    pub fn quantize(&mut self) -> anyhow::Result<()> {
        self.int8 = Some(Arc::new(QuantWeight::from_tensor(&self.weight)?));
        self.weight_t = None;
        Ok(())
    }

    /// Stores the transposed weight for inference (see `weight_t`).
    pub fn freeze(&mut self) -> Result<()> {
        self.weight_t = Some(self.weight.detach().t()?.contiguous()?);
        Ok(())
    }

    /// `x W^T` for 2-D `x`, through the frozen copy when there is one.
    pub fn product(&self, x: &Tensor) -> Result<Tensor> {
        if let Some(q) = &self.int8 {
            return int8_product(x, q);
        }
        match &self.weight_t {
            Some(wt) => product(x, wt),
            None => x.matmul(&self.weight.t()?),
        }
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims();
        let (lead, last) = dims.split_at(dims.len() - 1);
        let rows: usize = lead.iter().product();
        let out_dim = self.weight.dim(0)?;
        let y = self.product(&x.reshape((rows, last[0]))?)?;
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let mut shape = lead.to_vec();
        shape.push(out_dim);
        y.reshape(shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batched_matmul_equals_one_matmul_to_the_bit() {
        use super::super::kernels::test_data::vals;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let dev = &Device::Cpu;
        // (batch, heads, s, d) against its own transposed view, and an odd batch of 3.
        for (b, h, s, d) in [(5, 3, 7, 4), (3, 2, 9, 5)] {
            let q = Tensor::from_vec(vals(b * h * s * d, 1), (b, h, s, d), dev).unwrap();
            let k = Tensor::from_vec(vals(b * h * s * d, 2), (b, h, s, d), dev).unwrap();
            let kt = k.t().unwrap();
            let want: Vec<f32> = q
                .matmul(&kt)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let got: Vec<f32> = pool
                .install(|| batched_matmul(&q, &kt))
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert_eq!(got, want);
            let scores = q.matmul(&kt).unwrap();
            let want = scores.t().unwrap().matmul(&q).unwrap();
            let got = pool
                .install(|| batched_matmul(&scores.t().unwrap(), &q))
                .unwrap();
            assert_eq!(got.dims(), want.dims());
            let (got, want): (Vec<f32>, Vec<f32>) = (
                got.flatten_all().unwrap().to_vec1().unwrap(),
                want.flatten_all().unwrap().to_vec1().unwrap(),
            );
            assert_eq!(got, want);
        }
    }

    fn t(v: &[f64], shape: &[usize]) -> Tensor {
        Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn layer_norm_matches_definition() {
        let x = t(&[1.0, 2.0, 3.0, 4.0], &[1, 4]);
        let y = layer_norm(&x, &t(&[1.0; 4], &[4]), &t(&[0.0; 4], &[4]), 0.0).unwrap();
        let v: Vec<f64> = y.flatten_all().unwrap().to_vec1().unwrap();
        let sd = (1.25f64).sqrt();
        for (got, want) in v.iter().zip([-1.5 / sd, -0.5 / sd, 0.5 / sd, 1.5 / sd]) {
            assert!((got - want).abs() < 1e-12);
        }
    }

    #[test]
    fn softmax_and_log_softmax_agree() {
        let x = t(&[1.0, 2.0, 3.0, 1000.0, 1000.0, 0.0], &[2, 3]);
        let p: Vec<Vec<f64>> = softmax(&x).unwrap().to_vec2().unwrap();
        let lp: Vec<Vec<f64>> = log_softmax(&x).unwrap().to_vec2().unwrap();
        assert!((p[0].iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!((p[1][0] - 0.5).abs() < 1e-12);
        for (a, b) in p.iter().flatten().zip(lp.iter().flatten()) {
            assert!((a.ln() - b).abs() < 1e-9 || *a == 0.0);
        }
        let lse: Vec<f64> = logsumexp(&x, 1).unwrap().to_vec1().unwrap();
        assert!((lse[1] - (1000.0 + 2f64.ln())).abs() < 1e-9);
    }

    #[test]
    fn dropout_is_seeded_and_scales() {
        let x = Tensor::ones((1000,), DType::F32, &Device::Cpu).unwrap();
        let a = dropout(&x, 0.25, true, &DropoutRng::new(1))
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let b = dropout(&x, 0.25, true, &DropoutRng::new(1))
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(a, b);
        let zeros = a.iter().filter(|&&v| v == 0.0).count();
        assert!((200..300).contains(&zeros), "{zeros}");
        assert!(a.iter().all(|&v| v == 0.0 || (v - 4.0 / 3.0).abs() < 1e-6));
        let eval = dropout(&x, 0.25, false, &DropoutRng::new(1))
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!(eval.iter().all(|&v| v == 1.0));
    }

    #[test]
    fn linear_handles_any_rank() {
        let lin = Linear::new(
            t(&[1.0, 0.0, 0.0, 1.0, 1.0, 1.0], &[3, 2]),
            Some(t(&[0.0, 0.0, 1.0], &[3])),
        );
        let x = t(&[1.0, 2.0, 3.0, 4.0], &[2, 1, 2]);
        let y: Vec<Vec<Vec<f64>>> = lin.forward(&x).unwrap().to_vec3().unwrap();
        assert_eq!(
            y,
            vec![vec![vec![1.0, 2.0, 4.0]], vec![vec![3.0, 4.0, 8.0]]]
        );
    }
}
