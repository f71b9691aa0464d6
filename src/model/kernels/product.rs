//! `a @ b` for f32 on the CPU as candle computes it, without zero-filling the output first.
//!
//! candle's CPU matmul allocates its output with `vec![0.0; m * n]` and then calls gemm with
//! `read_dst = false`, which overwrites every element without reading it: the zero fill is a pass
//! over memory that nothing uses (about 5% of an e5-small training step in `perf`, and the first
//! touch of fresh pages). [`matmul`] makes the same gemm call (the same sizes, strides, batch
//! steps and threads), so the result is the same to the bit, into an uninitialized buffer. It has
//! no backward pass: it serves the fused encoder passes, whose weights are detached and whose
//! backward is derived by hand, and frozen (inference) layers. Anything else (an operand autograd
//! tracks, another dtype or device, shapes candle would refuse) goes to candle's matmul.

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor, bail};

/// See the module documentation.
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    matmul_steps(a, b, Threads::Gemm)
}

/// `(a1 @ b1, a2 @ b2)`: two independent products side by side, each on half the threads (the
/// bits of [`matmul`]: gemm's threads split a product's blocks, never a sum). On two cores, two
/// single-threaded products at once kept both busier than each product split over both in turn
/// (a KLUE training step's backward pass 1-3% faster, docs/PERFORMANCE.md).
pub fn matmul_pair(a1: &Tensor, b1: &Tensor, a2: &Tensor, b2: &Tensor) -> Result<(Tensor, Tensor)> {
    let half = candle_core::utils::get_num_threads() / 2;
    if half == 0 {
        return Ok((matmul(a1, b1)?, matmul(a2, b2)?));
    }
    let (x, y) = rayon::join(
        || matmul_steps(a1, b1, Threads::Count(half)),
        || matmul_steps(a2, b2, Threads::Count(half)),
    );
    Ok((x?, y?))
}

/// [`matmul`] for a batch of products, the batch's matrices spread over the threads (each still
/// the gemm call candle makes for it, so the same bits) and written into one output. Attention's
/// products are many small matrices, each below gemm's own threading threshold.
pub fn matmul_batched(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    matmul_steps(a, b, Threads::Spread)
}

/// How a product uses the threads.
#[derive(Clone, Copy, PartialEq)]
enum Threads {
    /// gemm's own threading.
    Gemm,
    /// A batch's matrices spread over the threads, one gemm call each on one thread.
    Spread,
    /// gemm's threading over this many threads (the caller runs other work beside it).
    Count(usize),
}

fn matmul_steps(a: &Tensor, b: &Tensor, threads: Threads) -> Result<Tensor> {
    let (ad, bd) = (a.dims(), b.dims());
    let rank = ad.len();
    let plain = a.device().is_cpu()
        && b.device().is_cpu()
        && a.dtype() == DType::F32
        && b.dtype() == DType::F32
        && rank >= 2
        && bd.len() == rank
        // An operand that autograd tracks keeps candle's op, which has a backward pass.
        && !a.track_op()
        && !b.track_op();
    if !plain {
        return a.matmul(b);
    }
    let (m, k, k2, n) = (ad[rank - 2], ad[rank - 1], bd[rank - 2], bd[rank - 1]);
    let batch: usize = ad[..rank - 2].iter().product();
    let batch_b: usize = bd[..rank - 2].iter().product();
    if k != k2 || batch != batch_b || m * n * batch == 0 || k == 0 {
        return a.matmul(b);
    }
    let out = a.apply_op2_no_bwd(
        b,
        &Product {
            bmnk: (batch, m, n, k),
            threads,
        },
    )?;
    let mut shape = ad[..rank - 2].to_vec();
    shape.extend([m, n]);
    out.reshape(shape)
}

/// The op behind [`matmul`]: candle's `MatMul` for f32, the output left uninitialized for gemm.
struct Product {
    bmnk: (usize, usize, usize, usize),
    threads: Threads,
}

/// The output's address, shared by the tasks that write disjoint matrices of it.
#[derive(Clone, Copy)]
struct Dst(*mut f32);
// SAFETY: each task writes only its own steps' `m * n` elements (see `Product::cpu_fwd`).
#[allow(unsafe_code)]
unsafe impl Send for Dst {}
#[allow(unsafe_code)]
unsafe impl Sync for Dst {}

impl Dst {
    /// The address `offset` elements on (a method, so that closures capture the whole `Dst`).
    fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

impl Product {
    /// candle's `MatMul::ab_skip`: the distance between consecutive matrices of each operand.
    fn skips(&self, a: &Layout, b: &Layout) -> Result<(usize, usize)> {
        let (_, m, n, k) = self.bmnk;
        let skip = |l: &Layout, own: usize| -> Result<usize> {
            let stride = l.stride();
            let dims = l.dims();
            Ok(match stride[..stride.len() - 2] {
                [s1, s] if s1 == s * dims[1] => s,
                [_, s] if dims[0] == 1 => s,
                [s, _] if dims[1] == 1 => s,
                [s] => s,
                [] => own,
                _ => bail!("product: an operand's batch axes are not contiguous"),
            })
        };
        Ok((skip(a, m * k)?, skip(b, n * k)?))
    }
}

impl CustomOp2 for Product {
    fn name(&self) -> &'static str {
        "nerlab-product"
    }

    #[allow(unsafe_code)]
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(lhs), CpuStorage::F32(rhs)) = (s1, s2) else {
            bail!("product: f32 only");
        };
        let (b, m, n, k) = self.bmnk;
        let (lhs, rhs) = (&lhs[l1.start_offset()..], &rhs[l2.start_offset()..]);
        let (ls, rs) = (l1.stride(), l2.stride());
        let rank = ls.len();
        let (lhs_cs, lhs_rs) = (ls[rank - 1] as isize, ls[rank - 2] as isize);
        let (rhs_cs, rhs_rs) = (rs[rank - 1] as isize, rs[rank - 2] as isize);
        let (a_skip, b_skip) = self.skips(l1, l2)?;
        let c_skip = m * n;
        let threads = match self.threads {
            Threads::Count(n) => n,
            _ => candle_core::utils::get_num_threads(),
        };
        let parallelism = if threads > 1 {
            gemm::Parallelism::Rayon(threads)
        } else {
            gemm::Parallelism::None
        };
        // candle merges a batch that shares one right operand into a single taller product.
        let (b, m) = if b_skip == 0 && a_skip == m * k {
            (1, b * m)
        } else {
            (b, m)
        };
        // The last element each operand's reads reach, checked before gemm reads them.
        let reach = |rs: isize, cs: isize, rows: usize, cols: usize, skip: usize| {
            (b - 1) * skip + (rows - 1) * rs as usize + (cols - 1) * cs as usize
        };
        if reach(lhs_rs, lhs_cs, m, k, a_skip) >= lhs.len()
            || reach(rhs_rs, rhs_cs, k, n, b_skip) >= rhs.len()
        {
            bail!("product: an operand is shorter than its layout");
        }
        let len = b * m * n;
        let mut dst: Vec<f32> = Vec::with_capacity(len);
        let out = Dst(dst.as_mut_ptr());
        let step = |step: usize| {
            // SAFETY: the operands hold every element gemm reads (checked above), and `dst` has
            // capacity for the `m * n` elements of step `step`, which gemm writes without
            // reading (`read_dst = false`, as candle calls it); no other step writes them.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    out.at(step * c_skip),
                    1,
                    n as isize,
                    false,
                    lhs.as_ptr().add(step * a_skip),
                    lhs_cs,
                    lhs_rs,
                    rhs.as_ptr().add(step * b_skip),
                    rhs_cs,
                    rhs_rs,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    parallelism,
                );
            }
        };
        if self.threads == Threads::Spread && b > 1 && threads > 1 {
            use rayon::prelude::*;
            (0..b).into_par_iter().for_each(step);
        } else {
            (0..b).for_each(step);
        }
        // SAFETY: every element of `0..len` was written by gemm above.
        unsafe { dst.set_len(len) };
        Ok((CpuStorage::F32(dst), Shape::from((b * m, n))))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::super::test_data::{bits, vals};

    /// The same bits as candle's matmul for every layout the encoder uses: plain, a transposed
    /// right or left operand, batched (4-D, with transposed views), a shared right operand, a
    /// narrowed (offset) operand, k larger than gemm's block, and a single row; and two products
    /// at once ([`super::matmul_pair`]).
    #[test]
    fn product_equals_candle_matmul_to_the_bit() {
        let dev = &Device::Cpu;
        let t =
            |n: usize, k: u32, shape: &[usize]| Tensor::from_vec(vals(n, k), shape, dev).unwrap();
        let mut cases: Vec<(Tensor, Tensor)> = Vec::new();
        for (m, k, n) in [(33, 384, 40), (1, 70, 9), (17, 1536, 24), (5, 3, 2)] {
            let a = t(m * k, 1, &[m, k]);
            let b = t(k * n, 2, &[k, n]);
            let w = t(n * k, 3, &[n, k]);
            let at = t(k * m, 4, &[k, m]);
            cases.push((a.clone(), b));
            cases.push((a.clone(), w.t().unwrap()));
            cases.push((at.t().unwrap(), w.t().unwrap()));
            cases.push((at.t().unwrap(), t(k * n, 5, &[k, n])));
        }
        let q = t(2 * 3 * 7 * 4, 6, &[2, 3, 7, 4]);
        let kk = t(2 * 3 * 7 * 4, 7, &[2, 3, 7, 4]);
        cases.push((q.clone(), kk.t().unwrap()));
        cases.push((
            q.clone().matmul(&kk.t().unwrap()).unwrap().t().unwrap(),
            q.clone(),
        ));
        let shared = t(4 * 5, 8, &[1, 4, 5]).broadcast_as((3, 4, 5)).unwrap();
        cases.push((t(3 * 6 * 4, 9, &[3, 6, 4]), shared));
        let big = t(10 * 8, 10, &[10, 8]);
        cases.push((big.narrow(0, 3, 5).unwrap(), t(8 * 6, 11, &[8, 6])));
        // An operand autograd tracks keeps candle's op, and with it the gradient.
        let var = candle_core::Var::from_tensor(&t(6, 12, &[2, 3])).unwrap();
        let y = super::matmul(var.as_tensor(), &t(12, 13, &[3, 4])).unwrap();
        let grads = y.sum_all().unwrap().backward().unwrap();
        assert!(grads.get(var.as_tensor()).is_some());
        for (a, b) in &cases {
            let want = a.matmul(b).unwrap();
            let got = super::matmul(a, b).unwrap();
            assert_eq!(got.dims(), want.dims(), "{:?} x {:?}", a.dims(), b.dims());
            assert_eq!(bits(&got), bits(&want), "{:?} x {:?}", a.dims(), b.dims());
        }
        // Two at once, each on half the threads: the same bits.
        for pair in cases.chunks_exact(2) {
            let [(a1, b1), (a2, b2)] = pair else {
                unreachable!()
            };
            let (x, y) = super::matmul_pair(a1, b1, a2, b2).unwrap();
            assert_eq!(bits(&x), bits(&a1.matmul(b1).unwrap()));
            assert_eq!(bits(&y), bits(&a2.matmul(b2).unwrap()));
        }
    }
}
