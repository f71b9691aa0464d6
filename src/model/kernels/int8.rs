//! Int8 matrix products for opt-in quantized tagging (`nerlab tag --int8`, `nerlab eval --int8`).
//!
//! Weights are quantized once, symmetrically per output channel: `w[o, k] ~ sw[o] * q[o, k]`, with
//! `q` in `[-127, 127]`. Activations are quantized per row as they arrive: `x[r, k] ~ sx[r] *
//! p[r, k]`, `p` in `[-127, 127]`, stored as the unsigned `p + 128` that the x86 VNNI instruction
//! (`vpdpbusd`: unsigned bytes times signed bytes, four products summed into each 32-bit lane)
//! wants. The product is then exact integer arithmetic,
//!
//! `y[r, o] = sx[r] * sw[o] * (sum_k (p[r, k] + 128) q[o, k] - 128 sum_k q[o, k])`,
//!
//! and both paths below (VNNI, and plain Rust where the CPU lacks it) compute the same integers,
//! so the outputs do not depend on the CPU. The sums cannot overflow: `|p + 128| <= 255` and
//! `|q| <= 127` give at most `k * 32,385`, inside `i32` for `k` below 66,000.
//!
//! The weight is packed for the VNNI kernel: blocks of 16 output channels, and within a block, for
//! each group of four inputs, the 16 channels' four bytes side by side (64 bytes, one register).

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, bail};
use rayon::prelude::*;

/// Output channels per block: one 512-bit register of `i32` sums.
const LANES: usize = 16;
/// Blocks computed together (two registers per row).
const BLOCKS: usize = 2;
/// Rows computed together: with [`BLOCKS`], 16 of the 32 vector registers hold sums.
const ROWS: usize = 8;

/// A weight matrix quantized and packed for [`QuantMatmul`].
#[derive(Debug, Clone)]
pub struct QuantWeight {
    in_dim: usize,
    out_dim: usize,
    /// Groups of four inputs (`in_dim` rounded up).
    quads: usize,
    /// Blocks of [`LANES`] output channels (rounded up to a multiple of [`BLOCKS`]).
    blocks: usize,
    /// `[block][quad][lane][4]`, zeros past `in_dim` and `out_dim`.
    packed: Vec<i8>,
    /// `sw[o]` (zero past `out_dim`).
    scale: Vec<f32>,
    /// `128 * sum_k q[o, k]`, subtracted from every sum.
    offset: Vec<i32>,
}

impl QuantWeight {
    /// Quantizes a linear layer's `(out_dim, in_dim)` weight tensor (detached; any dtype).
    pub fn from_tensor(w: &candle_core::Tensor) -> Result<Self> {
        let (out_dim, in_dim) = w.dims2()?;
        let data: Vec<f32> = w
            .detach()
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1()?;
        Self::new(&data, out_dim, in_dim)
    }

    /// Quantizes `w`, `(out_dim, in_dim)` row-major as PyTorch stores a linear layer's weight.
    pub fn new(w: &[f32], out_dim: usize, in_dim: usize) -> Result<Self> {
        if w.len() != out_dim * in_dim || out_dim == 0 || in_dim == 0 {
            bail!(
                "int8: a {out_dim} x {in_dim} weight needs {} values, not {}",
                out_dim * in_dim,
                w.len()
            );
        }
        if in_dim >= 66_000 {
            bail!("int8: {in_dim} inputs could overflow the 32-bit sums");
        }
        let quads = in_dim.div_ceil(4);
        let blocks = out_dim.div_ceil(LANES).div_ceil(BLOCKS) * BLOCKS;
        let mut packed = vec![0i8; blocks * quads * LANES * 4];
        let mut scale = vec![0f32; blocks * LANES];
        let mut offset = vec![0i32; blocks * LANES];
        for (o, row) in w.chunks(in_dim).enumerate() {
            let amax = row.iter().fold(0f32, |m, v| m.max(v.abs()));
            let s = if amax > 0.0 { amax / 127.0 } else { 1.0 };
            scale[o] = s;
            let (blk, lane) = (o / LANES, o % LANES);
            let mut sum = 0i32;
            for (k, &v) in row.iter().enumerate() {
                let q = round_small(v / s) as i8;
                sum += q as i32;
                packed[((blk * quads + k / 4) * LANES + lane) * 4 + k % 4] = q;
            }
            offset[o] = 128 * sum;
        }
        Ok(Self {
            in_dim,
            out_dim,
            quads,
            blocks,
            packed,
            scale,
            offset,
        })
    }

    pub fn out_dim(&self) -> usize {
        self.out_dim
    }

    /// The weight as it is multiplied, `(out_dim, in_dim)`: `sw[o] * q[o, k]`.
    #[cfg(test)]
    fn dequantized(&self) -> Vec<f32> {
        let mut w = Vec::with_capacity(self.out_dim * self.in_dim);
        for o in 0..self.out_dim {
            let (blk, lane) = (o / LANES, o % LANES);
            for k in 0..self.in_dim {
                let q = self.packed[((blk * self.quads + k / 4) * LANES + lane) * 4 + k % 4];
                w.push(self.scale[o] * q as f32);
            }
        }
        w
    }

    /// `x W^T` for `x` of `rows` rows of `in_dim`, through the VNNI kernel when the CPU has it
    /// and `vnni` is true; the plain kernel computes the same integers.
    pub fn matmul(&self, x: &[f32], rows: usize, vnni: bool) -> Vec<f32> {
        let (xq, sx) = self.quantize_rows(x, rows);
        let mut out = vec![0f32; rows * self.out_dim];
        let vnni = vnni && vnni_available();
        let (blocks, _) = self.packed.as_chunks::<{ LANES * 4 }>();
        let (tiles, _) = xq.as_chunks::<{ ROWS * 4 }>();
        // A few runs of tiles per thread; within one, each pair of blocks (32 bytes per input:
        // 12 KiB at 384 inputs, 48 KiB at 1,536) is multiplied by every tile of the run while it
        // stays in a near cache.
        let n_tiles = rows.div_ceil(ROWS);
        let per_task = n_tiles.div_ceil(2 * rayon::current_num_threads()).max(1);
        out.par_chunks_mut(per_task * ROWS * self.out_dim)
            .zip(tiles.par_chunks(per_task * self.quads))
            .enumerate()
            .for_each(|(task, (y, a))| {
                for pair in 0..self.blocks / BLOCKS {
                    let b: [&[[i8; LANES * 4]]; BLOCKS] = std::array::from_fn(|k| {
                        let blk = pair * BLOCKS + k;
                        &blocks[blk * self.quads..(blk + 1) * self.quads]
                    });
                    let o0 = pair * BLOCKS * LANES;
                    let width = (self.out_dim - o0).min(BLOCKS * LANES);
                    let offset = &self.offset[o0..o0 + width];
                    let scale = &self.scale[o0..o0 + width];
                    for (t, (y, a)) in y
                        .chunks_mut(ROWS * self.out_dim)
                        .zip(a.chunks(self.quads))
                        .enumerate()
                    {
                        let mut sums = [[0i32; LANES * BLOCKS]; ROWS];
                        if vnni {
                            tile_vnni_checked(a, b, &mut sums);
                        } else {
                            tile_plain(a, b, &mut sums);
                        }
                        let sx = &sx[(task * per_task + t) * ROWS..];
                        for ((row, sums), &s) in y.chunks_mut(self.out_dim).zip(&sums).zip(sx) {
                            for (((v, &sum), &off), &sw) in row[o0..o0 + width]
                                .iter_mut()
                                .zip(sums)
                                .zip(offset)
                                .zip(scale)
                            {
                                *v = (sum - off) as f32 * (s * sw);
                            }
                        }
                    }
                }
            });
        out
    }

    /// Each row as `p + 128` bytes, and its scale. The bytes are laid out per tile of [`ROWS`]
    /// rows (the last padded): for each group of four inputs, the rows' four bytes side by side,
    /// so the kernels read one tile front to back. Inputs past `in_dim` hold 128 (zero), and meet
    /// zero weights.
    fn quantize_rows(&self, x: &[f32], rows: usize) -> (Vec<u8>, Vec<f32>) {
        let tile = self.quads * ROWS * 4;
        let padded = rows.div_ceil(ROWS) * ROWS;
        let mut xq = vec![128u8; padded / ROWS * tile];
        let mut sx = vec![1f32; padded];
        let in_dim = self.in_dim;
        xq.par_chunks_mut(tile)
            .zip(sx.par_chunks_mut(ROWS))
            .zip(x.par_chunks(ROWS * in_dim))
            .for_each(|((q, s), x)| pulp::Arch::new().dispatch(QuantizeTile { x, in_dim, q, s }));
        (xq, sx)
    }

    /// Row `r`, input `k` of [`quantize_rows`](Self::quantize_rows)'s bytes.
    #[cfg(test)]
    fn byte(&self, xq: &[u8], r: usize, k: usize) -> u8 {
        xq[((r / ROWS * self.quads + k / 4) * ROWS + r % ROWS) * 4 + k % 4]
    }
}

/// One tile's rows quantized (see [`QuantWeight::quantize_rows`]), as `pulp` dispatches it: the
/// loops are compiled for the best vector instructions the CPU has.
struct QuantizeTile<'a> {
    /// Up to [`ROWS`] rows of `in_dim`.
    x: &'a [f32],
    in_dim: usize,
    /// The tile's bytes, per group of four inputs.
    q: &'a mut [u8],
    /// The rows' scales.
    s: &'a mut [f32],
}

impl pulp::WithSimd for QuantizeTile<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let mut bytes = vec![128u8; self.q.len() / ROWS];
        for (r, (row, s)) in self
            .x
            .chunks(self.in_dim)
            .zip(self.s.iter_mut())
            .enumerate()
        {
            // The largest magnitude, in 16 lanes (a fold over one lane does not vectorize).
            let mut lanes = [0f32; 16];
            let (body, tail) = row.as_chunks::<16>();
            for c in body {
                for (m, v) in lanes.iter_mut().zip(c) {
                    *m = m.max(v.abs());
                }
            }
            let amax = tail.iter().chain(&lanes).fold(0f32, |m, v| m.max(v.abs()));
            *s = if amax > 0.0 { amax / 127.0 } else { 1.0 };
            let inv = 1.0 / *s;
            for (b, &v) in bytes.iter_mut().zip(row) {
                *b = (round_small(v * inv) + 128) as u8;
            }
            let (groups, _) = bytes.as_chunks::<4>();
            let (quads, _) = self.q.as_chunks_mut::<{ ROWS * 4 }>();
            for (quad, g) in quads.iter_mut().zip(groups) {
                quad[r * 4..r * 4 + 4].copy_from_slice(g);
            }
        }
    }
}

/// `x` clamped to `[-127, 127]` (NaN to -127) and rounded half to even, in integer and float
/// arithmetic that vectorizes (no `roundf` call, no saturating float-to-int cast): adding
/// 1.5 * 2^23 leaves no bits below the unit, and the integer is then the float's low mantissa
/// bits.
#[inline(always)]
fn round_small(x: f32) -> i32 {
    const MAGIC: f32 = 12_582_912.0;
    // Not `clamp`, which keeps NaN: `max` and `min` return their other operand for it.
    #[allow(clippy::manual_clamp)]
    let y = x.max(-127.0).min(127.0) + MAGIC;
    y.to_bits() as i32 - MAGIC.to_bits() as i32
}

/// Whether this CPU runs the VNNI kernel.
pub fn vnni_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// One tile's rows `a` (per group of four inputs, [`ROWS`] rows' four bytes) against the
/// [`BLOCKS`] packed blocks `b` (per group, [`LANES`] channels' four bytes): the sums of products.
type Tile<'a> = &'a [[u8; ROWS * 4]];
type Blocks<'a> = [&'a [[i8; LANES * 4]]; BLOCKS];
type Sums = [[i32; LANES * BLOCKS]; ROWS];

/// The sums in plain Rust.
fn tile_plain(a: Tile, b: Blocks, sums: &mut Sums) {
    for (k, b) in b.iter().enumerate() {
        for (x, w) in a.iter().zip(*b) {
            for (r, x) in x.chunks(4).enumerate() {
                let acc = &mut sums[r][k * LANES..(k + 1) * LANES];
                for (lane, w) in acc.iter_mut().zip(w.chunks(4)) {
                    *lane += x
                        .iter()
                        .zip(w)
                        .map(|(&x, &w)| x as i32 * w as i32)
                        .sum::<i32>();
                }
            }
        }
    }
}

/// [`tile_vnni`] once the CPU is known to have what it needs.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
fn tile_vnni_checked(a: Tile, b: Blocks, sums: &mut Sums) {
    assert!(vnni_available());
    // SAFETY: the CPU has AVX-512F, AVX-512BW and AVX-512 VNNI (checked just above), the only
    // requirement of calling a function compiled for them.
    unsafe { tile_vnni(a, b, sums) }
}

#[cfg(not(target_arch = "x86_64"))]
fn tile_vnni_checked(a: Tile, b: Blocks, sums: &mut Sums) {
    tile_plain(a, b, sums)
}

/// [`tile_plain`] with `vpdpbusd`: per group of four inputs, each block's 64 bytes are loaded
/// once and every row's four bytes broadcast against them; the 16 sums stay in registers.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
fn tile_vnni(a: Tile, b: Blocks, sums: &mut Sums) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_si512(); BLOCKS]; ROWS];
    let quads = a.len().min(b[0].len()).min(b[1].len());
    for q in 0..quads {
        let x = &a[q];
        // SAFETY: each source is a 64-byte array; unaligned loads are allowed.
        let w: [__m512i; BLOCKS] =
            std::array::from_fn(|k| unsafe { _mm512_loadu_si512(b[k][q].as_ptr().cast()) });
        for (r, acc) in acc.iter_mut().enumerate() {
            let v = i32::from_le_bytes([x[4 * r], x[4 * r + 1], x[4 * r + 2], x[4 * r + 3]]);
            let v = _mm512_set1_epi32(v);
            for (acc, &w) in acc.iter_mut().zip(&w) {
                *acc = _mm512_dpbusd_epi32(*acc, v, w);
            }
        }
    }
    for (out, acc) in sums.iter_mut().zip(&acc) {
        for (dst, v) in out.chunks_mut(LANES).zip(acc) {
            // SAFETY: `dst` is 16 `i32`s, the 64 bytes written; unaligned stores are allowed.
            unsafe { _mm512_storeu_si512(dst.as_mut_ptr().cast(), *v) }
        }
    }
}

/// `x W^T` with an int8 weight, `x` `(rows, in_dim)` f32 -> `(rows, out_dim)` f32 (see the module
/// documentation). No gradient: inference only.
pub(crate) struct QuantMatmul {
    pub weight: std::sync::Arc<QuantWeight>,
}

impl CustomOp1 for QuantMatmul {
    fn name(&self) -> &'static str {
        "nerlab-int8-matmul"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (rows, width) = match l.dims() {
            &[r, w] => (r, w),
            d => bail!("int8 matmul: a matrix expected, got shape {d:?}"),
        };
        if width != self.weight.in_dim {
            bail!(
                "int8 matmul: rows of {width}, the weight takes {}",
                self.weight.in_dim
            );
        }
        let CpuStorage::F32(data) = s else {
            bail!("int8 matmul: f32 only")
        };
        let Some((a, b)) = l.contiguous_offsets() else {
            bail!("int8 matmul: not contiguous")
        };
        let y = self.weight.matmul(&data[a..b], rows, true);
        Ok((CpuStorage::F32(y), Shape::from((rows, self.weight.out_dim))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = crate::rng::SplitMix64::new(seed);
        (0..n).map(|_| rng.normal() as f32).collect()
    }

    /// The integers both kernels must produce, from the definition.
    fn reference(w: &QuantWeight, x: &[f32], rows: usize) -> Vec<f32> {
        let (xq, sx) = w.quantize_rows(x, rows);
        let mut y = Vec::new();
        for (r, &s) in sx.iter().enumerate().take(rows) {
            for o in 0..w.out_dim {
                let (blk, lane) = (o / LANES, o % LANES);
                let mut sum = 0i32;
                for k in 0..w.in_dim {
                    let q = w.packed[((blk * w.quads + k / 4) * LANES + lane) * 4 + k % 4];
                    sum += (w.byte(&xq, r, k) as i32 - 128) * q as i32;
                }
                y.push(sum as f32 * (s * w.scale[o]));
            }
        }
        y
    }

    #[test]
    fn both_kernels_compute_the_defined_integers() {
        // Odd sizes: rows, inputs and outputs that fill no tile, quad or block exactly; on two
        // threads the last one gives each thread a run of several tiles, the last run short.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        pool.install(|| {
            for (rows, in_dim, out_dim) in [
                (1, 5, 3),
                (13, 38, 70),
                (17, 64, 32),
                (9, 387, 45),
                (101, 40, 33),
            ] {
                let w = QuantWeight::new(&data(out_dim * in_dim, 1), out_dim, in_dim).unwrap();
                let x = data(rows * in_dim, 2);
                let want = reference(&w, &x, rows);
                assert_eq!(
                    w.matmul(&x, rows, false),
                    want,
                    "plain {rows}x{in_dim}x{out_dim}"
                );
                // On a CPU without VNNI this runs the plain kernel again.
                assert_eq!(
                    w.matmul(&x, rows, true),
                    want,
                    "vnni {rows}x{in_dim}x{out_dim}"
                );
            }
        });
    }

    #[test]
    fn the_product_is_close_to_the_f32_one() {
        let (rows, in_dim, out_dim) = (7, 384, 96);
        let wf = data(out_dim * in_dim, 3);
        let x = data(rows * in_dim, 4);
        let w = QuantWeight::new(&wf, out_dim, in_dim).unwrap();
        let y = w.matmul(&x, rows, true);
        let mut worst = 0f32;
        let mut scale = 0f32;
        for r in 0..rows {
            for o in 0..out_dim {
                let exact: f32 = (0..in_dim)
                    .map(|k| x[r * in_dim + k] * wf[o * in_dim + k])
                    .sum();
                worst = worst.max((exact - y[r * out_dim + o]).abs());
                scale = scale.max(exact.abs());
            }
        }
        // Two 8-bit roundings over 384 terms of unit variance: about 1 % of the largest output.
        assert!(worst < 0.02 * scale, "worst {worst} of {scale}");
        // The weight as multiplied is the original to half a step per channel.
        let back = w.dequantized();
        for (o, (row, got)) in wf.chunks(in_dim).zip(back.chunks(in_dim)).enumerate() {
            for (a, b) in row.iter().zip(got) {
                assert!((a - b).abs() <= 0.5 * w.scale[o] + 1e-6);
            }
        }
    }

    #[test]
    fn rounds_half_to_even_within_the_range() {
        for (x, want) in [
            (0.5, 0),
            (1.5, 2),
            (-2.5, -2),
            (2.4, 2),
            (-0.6, -1),
            (-126.6, -127),
            (300.0, 127),
            (-1e9, -127),
            (f32::NAN, -127),
        ] {
            assert_eq!(round_small(x), want, "{x}");
        }
    }

    #[test]
    fn refuses_shapes_it_cannot_multiply() {
        assert!(QuantWeight::new(&[1.0; 6], 2, 4).is_err());
        assert!(QuantWeight::new(&[], 0, 4).is_err());
        let w = QuantWeight::new(&[1.0; 8], 2, 4).unwrap();
        let x =
            candle_core::Tensor::zeros((3, 5), candle_core::DType::F32, &candle_core::Device::Cpu)
                .unwrap();
        let op = QuantMatmul {
            weight: std::sync::Arc::new(w),
        };
        let err = x.apply_op1_no_bwd(&op).unwrap_err().to_string();
        assert!(err.contains("rows of 5, the weight takes 4"), "{err}");
    }
}
