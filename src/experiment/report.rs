//! The experiment's results: each run's metric (from its `report.json`: the best dev checkpoint's
//! scores), grouped by every axis but the seed, with the number of seeds, the mean, the sample
//! standard deviation and a 95 % bootstrap interval of the mean; as JSON, CSV and a Markdown pivot
//! table in the layout the file asks for.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::file::ReportSpec;
use super::plan::{Plan, Point};
use super::runner::{PointState, state_of};
use crate::metrics::aso::epsilon_min;
use crate::metrics::percentile;
use crate::rng::SplitMix64;
use crate::train::run_dir::RunDir;

/// The axis that is averaged over.
pub const SEED: &str = "seed";

/// Bootstrap resamples of the interval of the mean.
const BOOTSTRAP: usize = 10_000;

/// One seed's value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Value {
    pub seed: String,
    pub run: String,
    pub value: f64,
}

/// The runs of one setting of the axes other than the seed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    /// The setting: axis -> value.
    pub axes: BTreeMap<String, String>,
    pub n: usize,
    pub mean: Option<f64>,
    /// Sample standard deviation (n - 1); none under two values.
    pub sd: Option<f64>,
    /// 95 % percentile bootstrap interval of the mean over the seeds; none under two values.
    pub ci95: Option<[f64; 2]>,
    pub values: Vec<Value>,
    /// Points of this setting without a result yet (planned, running, failed...).
    pub pending: usize,
    /// Almost Stochastic Order's epsilon_min that this setting is better than the baseline's
    /// (over seeds; below [`ASO_THRESHOLD`] reads as better). None for the baseline itself, or
    /// without values on both sides.
    pub aso_vs_baseline: Option<f64>,
}

/// deepsig's recommended threshold on epsilon_min (Ulmer et al. 2022).
pub const ASO_THRESHOLD: f64 = 0.2;

/// Bootstrap iterations of ASO (deepsig's default is 1,000).
const ASO_ITERATIONS: usize = 1_000;

/// Every group of an experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub experiment: String,
    pub metric: String,
    pub axes: Vec<String>,
    pub groups: Vec<Group>,
}

/// The value at a dotted path of a run's report; a key may itself hold dots (a corpus path).
pub fn metric_of(report: &serde_json::Value, path: &str) -> Option<f64> {
    let parts: Vec<&str> = path.split('.').collect();
    let mut here = report;
    let mut i = 0;
    while i < parts.len() {
        let obj = here.as_object()?;
        // The longest run of segments that is a key.
        let (j, next) = (i + 1..=parts.len())
            .rev()
            .find_map(|j| obj.get(&parts[i..j].join(".")).map(|v| (j, v)))?;
        here = next;
        i = j;
    }
    here.as_f64()
}

/// Reads every point's result and groups them (see the module docs).
pub fn report(plan: &Plan, spec: &ReportSpec) -> Report {
    let mut groups: BTreeMap<Vec<(String, String)>, Group> = BTreeMap::new();
    let mut order = Vec::new();
    for point in &plan.points {
        let key: Vec<(String, String)> = point
            .axes
            .iter()
            .filter(|(k, _)| k.as_str() != SEED)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let g = groups.entry(key.clone()).or_insert_with(|| {
            order.push(key.clone());
            Group {
                axes: key.iter().cloned().collect(),
                n: 0,
                mean: None,
                sd: None,
                ci95: None,
                values: Vec::new(),
                pending: 0,
                aso_vs_baseline: None,
            }
        });
        match result(point, &spec.metric) {
            Some(value) => g.values.push(Value {
                seed: point.axes.get(SEED).cloned().unwrap_or_default(),
                run: point.name.clone(),
                value,
            }),
            None => g.pending += 1,
        }
    }
    let mut groups: Vec<Group> = order
        .into_iter()
        .filter_map(|k| groups.remove(&k))
        .map(|mut g| {
            let v: Vec<f64> = g.values.iter().map(|v| v.value).collect();
            g.n = v.len();
            g.mean = mean(&v);
            g.sd = sd(&v);
            g.ci95 = bootstrap_ci(&v);
            g
        })
        .collect();
    compare_with_baseline(&mut groups, &spec.baseline);
    Report {
        experiment: plan.name.clone(),
        metric: spec.metric.clone(),
        axes: plan.axes.iter().filter(|a| *a != SEED).cloned().collect(),
        groups,
    }
}

/// Each group's ASO epsilon_min against the group that differs from it only on the baseline's
/// axes, set to the baseline's values; Bonferroni-corrected over all the comparisons made.
fn compare_with_baseline(groups: &mut [Group], baseline: &BTreeMap<String, String>) {
    if baseline.is_empty() {
        return;
    }
    let values = |g: &Group| g.values.iter().map(|v| v.value).collect::<Vec<f64>>();
    let pairs: Vec<(usize, usize)> = (0..groups.len())
        .filter_map(|i| {
            let mut want = groups[i].axes.clone();
            want.extend(baseline.clone());
            let j = groups.iter().position(|g| g.axes == want)?;
            (j != i && groups[i].n > 0 && groups[j].n > 0).then_some((i, j))
        })
        .collect();
    for &(i, j) in &pairs {
        groups[i].aso_vs_baseline = epsilon_min(
            &values(&groups[i]),
            &values(&groups[j]),
            0.95,
            pairs.len(),
            ASO_ITERATIONS,
            0xA50,
        );
    }
}

/// A done point's metric.
fn result(point: &Point, metric: &str) -> Option<f64> {
    if state_of(point) != PointState::Done {
        return None;
    }
    metric_of(&RunDir::open(&point.dir()).ok()?.report()?, metric)
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

fn sd(v: &[f64]) -> Option<f64> {
    let m = mean(v)?;
    (v.len() > 1)
        .then(|| (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt())
}

/// The 2.5th and 97.5th percentiles of the means of resamples (with replacement) of `v`.
fn bootstrap_ci(v: &[f64]) -> Option<[f64; 2]> {
    if v.len() < 2 {
        return None;
    }
    let mut rng = SplitMix64::new(0x00B0_0757);
    let mut means: Vec<f64> = (0..BOOTSTRAP)
        .map(|_| (0..v.len()).map(|_| v[rng.below(v.len())]).sum::<f64>() / v.len() as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    Some([percentile(&means, 2.5), percentile(&means, 97.5)])
}

impl Report {
    /// `results.json`: the metric and the groups, each with its axis values under their keys.
    pub fn to_json(&self) -> serde_json::Value {
        let groups: Vec<serde_json::Value> = self
            .groups
            .iter()
            .map(|g| {
                let mut o = serde_json::Map::new();
                for (k, v) in &g.axes {
                    o.insert(k.clone(), serde_json::Value::String(v.clone()));
                }
                o.insert("n".into(), g.n.into());
                o.insert("mean".into(), serde_json::json!(g.mean));
                o.insert("sd".into(), serde_json::json!(g.sd));
                o.insert("ci95".into(), serde_json::json!(g.ci95));
                o.insert("values".into(), serde_json::json!(g.values));
                o.insert("pending".into(), g.pending.into());
                o.insert(
                    "aso_vs_baseline".into(),
                    serde_json::json!(g.aso_vs_baseline),
                );
                serde_json::Value::Object(o)
            })
            .collect();
        serde_json::json!({
            "experiment": self.experiment,
            "metric": self.metric,
            "axes": self.axes,
            "groups": groups,
        })
    }

    /// `results.csv`: one line per group.
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        let mut head: Vec<&str> = self.axes.iter().map(String::as_str).collect();
        head.extend([
            "n",
            "mean",
            "sd",
            "ci95_low",
            "ci95_high",
            "pending",
            "aso_vs_baseline",
        ]);
        out += &head.join(",");
        out.push('\n');
        let num = |x: Option<f64>| x.map_or(String::new(), |x| format!("{x}"));
        for g in &self.groups {
            let mut row: Vec<String> = self
                .axes
                .iter()
                .map(|a| csv_field(g.axes.get(a).map_or("", String::as_str)))
                .collect();
            row.push(g.n.to_string());
            row.push(num(g.mean));
            row.push(num(g.sd));
            row.push(num(g.ci95.map(|c| c[0])));
            row.push(num(g.ci95.map(|c| c[1])));
            row.push(g.pending.to_string());
            row.push(num(g.aso_vs_baseline));
            out += &row.join(",");
            out.push('\n');
        }
        out
    }

    /// `report.md`: the pivot table (rows x columns as the file asks; by default one row per
    /// group) of `mean ± sd (n)`, and a footer saying how the numbers were made.
    pub fn to_markdown(&self, spec: &ReportSpec) -> String {
        let rows: Vec<String> = if spec.rows.is_empty() && spec.columns.is_empty() {
            self.axes.clone()
        } else {
            spec.rows.clone()
        };
        let key = |g: &Group, axes: &[String]| -> Vec<String> {
            axes.iter()
                .map(|a| g.axes.get(a).cloned().unwrap_or_default())
                .collect()
        };
        let mut row_keys: Vec<Vec<String>> = Vec::new();
        let mut col_keys: Vec<Vec<String>> = Vec::new();
        for g in &self.groups {
            let (r, c) = (key(g, &rows), key(g, &spec.columns));
            if !row_keys.contains(&r) {
                row_keys.push(r);
            }
            if !col_keys.contains(&c) {
                col_keys.push(c);
            }
        }
        let mut out = format!("# {}: {}\n\n", self.experiment, self.metric);
        let col_name = |c: &[String]| {
            if c.is_empty() {
                self.metric.clone()
            } else {
                c.join(" ")
            }
        };
        let _ = writeln!(
            out,
            "| {} | {} |",
            if rows.is_empty() {
                "all".to_string()
            } else {
                rows.join(" / ")
            },
            col_keys
                .iter()
                .map(|c| col_name(c))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let _ = writeln!(out, "|---|{}", "---|".repeat(col_keys.len()));
        for r in &row_keys {
            let cells: Vec<String> = col_keys
                .iter()
                .map(|c| {
                    // Groups that fall in this cell (axes outside rows and columns pooled apart).
                    let hits: Vec<&Group> = self
                        .groups
                        .iter()
                        .filter(|g| &key(g, &rows) == r && &key(g, &spec.columns) == c)
                        .collect();
                    hits.iter().map(|g| cell(g)).collect::<Vec<_>>().join("; ")
                })
                .collect();
            let _ = writeln!(
                out,
                "| {} | {} |",
                if r.is_empty() {
                    "all".to_string()
                } else {
                    r.join(" / ")
                },
                cells.join(" | ")
            );
        }
        let seeds: Vec<usize> = self.groups.iter().map(|g| g.n).collect();
        let (lo, hi) = (
            seeds.iter().min().copied().unwrap_or(0),
            seeds.iter().max().copied().unwrap_or(0),
        );
        let _ = write!(
            out,
            "\nEach cell: mean ± sample standard deviation (number of seeds) of `{}` from each \
             run's report.json, which scores the best dev checkpoint (model selection on dev F1, \
             nerlab's strict entity scorer, equal to seqeval's). Seeds per cell: {}. 95 % bootstrap \
             intervals of the mean ({BOOTSTRAP} resamples over seeds) are in results.json and \
             results.csv.\n",
            self.metric,
            if lo == hi {
                lo.to_string()
            } else {
                format!("{lo} to {hi}")
            }
        );
        if !spec.baseline.is_empty() {
            let base: Vec<String> = spec
                .baseline
                .iter()
                .map(|(k, v)| format!("{k} = {v}"))
                .collect();
            let _ = write!(
                out,
                "\nε: Almost Stochastic Order (Dror et al. 2019, computed as deepsig does), the \
                 epsilon_min that a cell's setting is better than the baseline ({}) with the other \
                 axes equal, over seeds; confidence 0.95, Bonferroni-corrected over the \
                 comparisons, {ASO_ITERATIONS} bootstrap iterations. * marks ε below \
                 {ASO_THRESHOLD} (better than the baseline); 0.5 and above is no evidence.\n",
                base.join(", ")
            );
        }
        out
    }
}

/// `0.8123 ± 0.0041 (3)`, `0.8123 (1)`, or `-` while nothing is done; with a baseline, ASO's
/// epsilon_min against it (`ε 0.04`, starred below the threshold).
fn cell(g: &Group) -> String {
    let mut out = match (g.mean, g.sd) {
        (Some(m), Some(s)) => format!("{m:.4} ± {s:.4} ({})", g.n),
        (Some(m), None) => format!("{m:.4} ({})", g.n),
        _ => "-".into(),
    };
    if let Some(e) = g.aso_vs_baseline {
        let star = if e < ASO_THRESHOLD { "*" } else { "" };
        out += &format!(" ε {e:.2}{star}");
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_found_through_keys_with_dots() {
        let r = serde_json::json!({
            "dev": {"micro": {"f1": 0.5}},
            "eval": {"/data/dev-en.tsv": {"micro": {"f1": 0.25}}}
        });
        assert_eq!(metric_of(&r, "dev.micro.f1"), Some(0.5));
        assert_eq!(metric_of(&r, "eval./data/dev-en.tsv.micro.f1"), Some(0.25));
        assert_eq!(metric_of(&r, "dev.macro.f1"), None);
    }

    #[test]
    fn statistics_by_hand() {
        let v = [0.5, 0.7, 0.6];
        assert!((mean(&v).unwrap() - 0.6).abs() < 1e-12);
        assert!((sd(&v).unwrap() - 0.1).abs() < 1e-12);
        let [lo, hi] = bootstrap_ci(&v).unwrap();
        assert!(lo >= 0.5 && hi <= 0.7 && lo < 0.6 && hi > 0.6, "{lo} {hi}");
        assert_eq!(sd(&[0.5]), None);
        assert_eq!(bootstrap_ci(&[0.5]), None);
    }
}
