//! Almost Stochastic Order (Dror et al. 2019; del Barrio et al. 2018) as deepsig computes it
//! (Ulmer et al. 2022, `deepsig.aso`): how far the scores of A (over seeds) are from being
//! stochastically larger than those of B. `epsilon_min` below a threshold (deepsig recommends 0.2)
//! reads as "A is better than B"; 0.5 and above as no evidence. The violation ratio is computed
//! exactly as deepsig does (equal to 1e-12, `tests/fixtures/aso.json`); `epsilon_min` bootstraps
//! it with nerlab's seeded generator, so it matches deepsig's within bootstrap noise.

use crate::rng::SplitMix64;

/// The integration step over the quantiles (deepsig's `dt`).
const DT: f64 = 0.005;

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s
}

/// The empirical quantile function of `sorted` scores at `p` (deepsig's `get_quantile_function`).
fn quantile(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    let index = (n as f64 * p).ceil() as i64 - 1;
    sorted[index.clamp(0, n as i64 - 1) as usize]
}

/// deepsig's `compute_violation_ratio`: the part of the squared Wasserstein distance between the
/// quantile functions where B's exceed A's, over all of it (0.5 when they are equal).
pub fn violation_ratio(a: &[f64], b: &[f64]) -> f64 {
    let (a, b) = (sorted(a), sorted(b));
    // numpy's arange(dt, 1, dt): dt + i * dt while below 1.
    let n = ((1.0 - DT) / DT).ceil() as usize;
    let mut total = 0.0;
    let mut violated = 0.0;
    for i in 0..n {
        let t = DT + i as f64 * DT;
        let diff = quantile(&b, t) - quantile(&a, t);
        total += diff * diff * DT;
        // deepsig leaves out the first point of the violation integral.
        if i > 0 && quantile(&a, t) < quantile(&b, t) {
            violated += diff * diff * DT;
        }
    }
    if total == 0.0 { 0.5 } else { violated / total }
}

/// deepsig's `aso`: the violation ratio corrected upwards by its bootstrap spread at
/// `confidence`, clipped to [0, 1]. For `comparisons` m > 1 the confidence c becomes
/// c + (1 - c) / m, as deepsig (1.2.4 on) computes it and calls Bonferroni: the same as
/// Bonferroni's 1 - (1 - c) / m for two comparisons, weaker from three on (the error rate tested
/// is (1 - c)(m - 1) / m, not (1 - c) / m). Kept so that ε equals deepsig's.
pub fn epsilon_min(
    a: &[f64],
    b: &[f64],
    confidence: f64,
    comparisons: usize,
    iterations: usize,
    seed: u64,
) -> Option<f64> {
    if a.is_empty() || b.is_empty() || iterations == 0 {
        return None;
    }
    // deepsig's correction for m comparisons (see above), applied from two comparisons on.
    let confidence = if comparisons > 1 {
        confidence + (1.0 - confidence) / comparisons as f64
    } else {
        confidence
    };
    let vr = violation_ratio(a, b);
    let (sa, sb) = (sorted(a), sorted(b));
    let mut rng = SplitMix64::new(seed);
    let (n, m) = (a.len() as f64, b.len() as f64);
    let c = (n * m / (n + m)).sqrt();
    let samples: Vec<f64> = (0..iterations)
        .map(|_| {
            let ra: Vec<f64> = (0..a.len())
                .map(|_| quantile(&sa, rng.unit_f64()))
                .collect();
            let rb: Vec<f64> = (0..b.len())
                .map(|_| quantile(&sb, rng.unit_f64()))
                .collect();
            c * (violation_ratio(&ra, &rb) - vr)
        })
        .collect();
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    let sigma =
        (samples.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / samples.len() as f64).sqrt();
    Some((vr - sigma / c * normal_quantile(1.0 - confidence)).clamp(0.0, 1.0))
}

/// The standard normal quantile function (Acklam's rational approximation, relative error below
/// 1.2e-9).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_normal_quantile_is_scipys() {
        // scipy.stats.norm.ppf
        assert!((normal_quantile(0.05) + 1.644_853_626_951_472_2).abs() < 1e-8);
        assert!((normal_quantile(0.975) - 1.959_963_984_540_054).abs() < 1e-8);
        assert!((normal_quantile(0.001) + 3.090_232_306_167_813_5).abs() < 1e-8);
    }
}
