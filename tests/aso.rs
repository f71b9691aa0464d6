//! Almost Stochastic Order against deepsig (`scripts/aso_reference.py` made
//! `tests/fixtures/aso.json`): the violation ratio equal, epsilon_min within bootstrap noise.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use nerlab::metrics::aso::{epsilon_min, violation_ratio};

#[test]
fn aso_equals_deepsig() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/aso.json"),
    )
    .unwrap();
    let cases: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(cases.len(), 4);
    for c in cases {
        let v = |k: &str| -> Vec<f64> {
            c[k].as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        };
        let (a, b) = (v("a"), v("b"));
        let vr = violation_ratio(&a, &b);
        assert!(
            (vr - c["violation_ratio"].as_f64().unwrap()).abs() < 1e-12,
            "{vr} {c}"
        );
        let eps = epsilon_min(&a, &b, 0.95, 1, 20_000, 1).unwrap();
        let want = c["eps_min"].as_f64().unwrap();
        eprintln!("epsilon_min {eps:.4}, deepsig {want:.4}");
        assert!(
            (eps - want).abs() < 0.02,
            "epsilon_min {eps}, deepsig {want}: {c}"
        );
    }
}
