//! The CRF against brute-force enumeration of every label path on small random inputs: the
//! log-partition, the Viterbi path, the marginals, and (when constrained) zero probability mass on
//! paths IOB2 forbids.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use candle_core::{DType, Device, Tensor};
use nerlab::model::crf::{Crf, allowed, emissions_tensor, marginals, viterbi};
use nerlab::model::params::Params;
use nerlab::rng::SplitMix64;

const LABELS: [&str; 5] = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"];

fn labels() -> Vec<String> {
    LABELS.iter().map(|s| s.to_string()).collect()
}

/// Every path of `len` over `n` labels.
fn paths(len: usize, n: usize) -> Vec<Vec<usize>> {
    (0..n.pow(len as u32))
        .map(|mut k| {
            (0..len)
                .map(|_| {
                    let y = k % n;
                    k /= n;
                    y
                })
                .collect()
        })
        .collect()
}

fn host(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn check(constrained: bool, seed: u64) {
    let n = LABELS.len();
    let params = Params::fresh(DType::F64, &Device::Cpu, seed);
    let crf = Crf::load(&params.pp("crf"), &labels(), constrained).unwrap();
    // Larger random transitions than the default init, so paths differ clearly.
    let mut rng = SplitMix64::new(seed);
    let vals: Vec<f64> = (0..n * n).map(|_| rng.normal()).collect();
    for (name, var) in params.vars() {
        if name.ends_with("transitions") {
            var.set(&Tensor::from_vec(vals.clone(), (n, n), &Device::Cpu).unwrap())
                .unwrap();
        }
    }
    let lengths = [4usize, 2, 3, 1];
    let rows: Vec<Vec<Vec<f64>>> = lengths
        .iter()
        .map(|&l| {
            (0..l)
                .map(|_| (0..n).map(|_| rng.normal() * 2.0).collect())
                .collect()
        })
        .collect();
    let em = emissions_tensor(&rows, DType::F64, &Device::Cpu).unwrap();
    let log_z = host(&crf.log_partition(&em, &lengths).unwrap());
    let decoded = crf.decode(&em, &lengths).unwrap();

    let mask = |i: usize, j: usize| {
        if constrained && !allowed(Some(LABELS[i]), LABELS[j]) {
            -10000.0
        } else {
            0.0
        }
    };
    let start_mask = |j: usize| {
        if constrained && !allowed(None, LABELS[j]) {
            -10000.0
        } else {
            0.0
        }
    };
    let trans: Vec<Vec<f64>> = (0..n)
        .map(|i| (0..n).map(|j| vals[i * n + j] + mask(i, j)).collect())
        .collect();
    let start: Vec<f64> = host(&crf.start)
        .iter()
        .enumerate()
        .map(|(j, s)| s + start_mask(j))
        .collect();
    let end = host(&crf.end);

    for (b, (&len, em_b)) in lengths.iter().zip(&rows).enumerate() {
        let score = |p: &[usize]| {
            let mut s = start[p[0]] + em_b[0][p[0]] + end[p[len - 1]];
            for t in 1..len {
                s += trans[p[t - 1]][p[t]] + em_b[t][p[t]];
            }
            s
        };
        let all = paths(len, n);
        let scores: Vec<f64> = all.iter().map(|p| score(p)).collect();
        let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let brute_z = max + scores.iter().map(|s| (s - max).exp()).sum::<f64>().ln();
        assert!(
            (log_z[b] - brute_z).abs() < 1e-9,
            "log Z: {} vs brute force {brute_z}",
            log_z[b]
        );

        let best = all
            .iter()
            .zip(&scores)
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0;
        let best: Vec<u32> = best.iter().map(|&y| y as u32).collect();
        assert_eq!(decoded[b].0, best, "Viterbi path");
        assert_eq!(viterbi(em_b, &trans, &start, &end, n), best);

        let marg = marginals(em_b, &trans, &start, &end, n);
        for t in 0..len {
            for (y, &m) in marg[t].iter().enumerate() {
                let brute: f64 = all
                    .iter()
                    .zip(&scores)
                    .filter(|(p, _)| p[t] == y)
                    .map(|(_, s)| (s - brute_z).exp())
                    .sum();
                assert!((m - brute).abs() < 1e-9, "marginal t={t} y={y}");
            }
        }

        if constrained {
            let valid = |p: &[usize]| {
                allowed(None, LABELS[p[0]])
                    && p.windows(2)
                        .all(|w| allowed(Some(LABELS[w[0]]), LABELS[w[1]]))
            };
            let invalid_mass: f64 = all
                .iter()
                .zip(&scores)
                .filter(|(p, _)| !valid(p))
                .map(|(_, s)| (s - brute_z).exp())
                .sum();
            assert_eq!(
                invalid_mass, 0.0,
                "forbidden IOB2 paths must get no probability"
            );
            assert!(valid(&best.iter().map(|&y| y as usize).collect::<Vec<_>>()));
        }
    }
}

#[test]
fn crf_equals_brute_force() {
    for seed in 0..5 {
        check(false, seed);
    }
}

#[test]
fn constrained_crf_gives_no_mass_to_invalid_paths() {
    for seed in 0..5 {
        check(true, seed);
    }
}

#[test]
fn iob2_transitions() {
    assert!(allowed(None, "B-PER") && allowed(None, "O") && !allowed(None, "I-PER"));
    assert!(allowed(Some("B-PER"), "I-PER") && allowed(Some("I-PER"), "I-PER"));
    assert!(
        !allowed(Some("O"), "I-PER")
            && !allowed(Some("B-LOC"), "I-PER")
            && !allowed(Some("I-LOC"), "I-PER")
    );
    assert!(allowed(Some("I-LOC"), "B-PER") && allowed(Some("I-LOC"), "O"));
}

#[test]
fn nll_is_positive_and_zero_for_certain_paths() {
    let params = Params::fresh(DType::F64, &Device::Cpu, 3);
    let crf = Crf::load(&params.pp("crf"), &labels(), true).unwrap();
    let em = emissions_tensor(
        &[vec![
            vec![0.0, 50.0, 0.0, 0.0, 0.0],
            vec![0.0, 0.0, 50.0, 0.0, 0.0],
        ]],
        DType::F64,
        &Device::Cpu,
    )
    .unwrap();
    let nll: f64 = crf
        .nll(&em, &[vec![1, 2]], &[2])
        .unwrap()
        .to_scalar()
        .unwrap();
    assert!((0.0..1e-9).contains(&nll), "{nll}");
    let wrong: f64 = crf
        .nll(&em, &[vec![0, 0]], &[2])
        .unwrap()
        .to_scalar()
        .unwrap();
    assert!(wrong > 90.0, "{wrong}");
}
