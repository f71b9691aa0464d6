//! The experiment's results: each run's metric (from its `report.json`: the best dev checkpoint's
//! scores), grouped by every axis but the seed, with the number of seeds, the mean, the sample
//! standard deviation and a 95 % t interval of the mean; with a baseline, each group's
//! comparison with it by Almost Stochastic Order over the seeds and by a paired bootstrap over the
//! dev sentences (from the runs' saved dev predictions); as JSON, CSV and a Markdown pivot table in
//! the layout the file asks for.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::file::ReportSpec;
use super::plan::{Plan, Point};
use super::runner::{PointState, state_of};
use crate::data::hub::Hub;
use crate::data::{Corpus, Format};
use crate::infer::score_saved_predictions;
use crate::metrics::Counts;
use crate::metrics::aso::epsilon_min;
use crate::metrics::paired::{self, PairedResult, paired_bootstrap, sentence_counts};
use crate::train::run_dir::RunDir;
use crate::train::sources::load_corpus;

/// The axis that is averaged over.
pub const SEED: &str = "seed";

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
    /// 95 % t interval of the mean over the seeds (mean ± t(n-1) · sd / √n); none under two
    /// values.
    pub ci95: Option<[f64; 2]>,
    pub values: Vec<Value>,
    /// Points of this setting without a result yet (planned, running, failed...).
    pub pending: usize,
    /// Almost Stochastic Order's epsilon_min that this setting is better than the baseline's
    /// (over seeds; below [`ASO_THRESHOLD`] reads as better). None for the baseline itself, or
    /// without values on both sides.
    pub aso_vs_baseline: Option<f64>,
    /// The paired bootstrap of this setting's dev micro F1 against the baseline's, over the same
    /// dev sentences (mean over seeds on each side). None where ASO is, or where the runs' dev
    /// corpora differ or their predictions cannot be read.
    pub paired_vs_baseline: Option<Paired>,
}

/// A paired bootstrap comparison: delta of the mean dev micro F1, its 95 % interval, the one-sided
/// p-value, and the sentences and resamples it used.
pub type Paired = PairedResult;

/// How results.json and report.md name the comparison over seeds.
pub const ASO_TEST: &str = "Almost Stochastic Order over seeds (deepsig)";

/// How results.json and report.md name the comparison over sentences.
pub const PAIRED_TEST: &str = "paired bootstrap over dev sentences";

/// The confidence of ASO (before deepsig's correction for the number of comparisons).
const ASO_CONFIDENCE: f64 = 0.95;

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
    /// The setting the groups are compared with (axis -> value; empty: no comparisons).
    pub baseline: BTreeMap<String, String>,
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
    for point in plan.main_points() {
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
                paired_vs_baseline: None,
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
            g.ci95 = t_interval(&v);
            g
        })
        .collect();
    compare_with_baseline(&mut groups, plan, &spec.baseline);
    Report {
        experiment: plan.name.clone(),
        metric: spec.metric.clone(),
        axes: plan.axes.iter().filter(|a| *a != SEED).cloned().collect(),
        groups,
        baseline: spec.baseline.clone(),
    }
}

/// Each group's ASO epsilon_min against the group that differs from it only on the baseline's
/// axes, set to the baseline's values (its confidence raised for all the comparisons made, as
/// deepsig does), and
/// the paired bootstrap of the same pair over the dev sentences.
fn compare_with_baseline(groups: &mut [Group], plan: &Plan, baseline: &BTreeMap<String, String>) {
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
    // ASO over one seed on a side compares two numbers: its bootstrap has no spread and ε comes
    // out 0 or 1. It needs two seeds a side, as the sd does; the paired test, which resamples
    // sentences, does not.
    let over_seeds: Vec<bool> = pairs
        .iter()
        .map(|&(i, j)| groups[i].n > 1 && groups[j].n > 1)
        .collect();
    let aso_comparisons = over_seeds.iter().filter(|&&b| b).count();
    let mut dev = DevCounts::new(plan);
    for (&(i, j), &over_seeds) in pairs.iter().zip(&over_seeds) {
        groups[i].aso_vs_baseline = if over_seeds {
            epsilon_min(
                &values(&groups[i]),
                &values(&groups[j]),
                ASO_CONFIDENCE,
                aso_comparisons,
                ASO_ITERATIONS,
                0xA50,
            )
        } else {
            None
        };
        groups[i].paired_vs_baseline = dev.paired(&groups[i], &groups[j]);
    }
}

/// The per-sentence dev counts of done runs, each read once (a baseline group is compared with
/// many), re-scored from the run's saved dev predictions as the workbench does.
struct DevCounts<'a> {
    points: BTreeMap<&'a str, &'a Point>,
    /// Gold dev corpora by source and format; None where one could not be read.
    gold: Vec<(String, Option<Format>, Option<Corpus>)>,
    /// Each run's counts by run name; None where they could not be read.
    runs: BTreeMap<String, Option<Vec<Counts>>>,
}

impl<'a> DevCounts<'a> {
    fn new(plan: &'a Plan) -> Self {
        Self {
            points: plan.points.iter().map(|p| (p.name.as_str(), p)).collect(),
            gold: Vec::new(),
            runs: BTreeMap::new(),
        }
    }

    /// The paired bootstrap of `system`'s runs against `baseline`'s, or None when their dev
    /// corpora differ (source, format or sentence count) or a run's predictions cannot be read.
    fn paired(&mut self, system: &Group, baseline: &Group) -> Option<Paired> {
        // One dev corpus for every run: the same source read in the same format.
        let mut sources = system.values.iter().chain(&baseline.values).map(|v| {
            let data = &self.points.get(v.run.as_str())?.config.data;
            Some((data.dev.clone()?, data.format))
        });
        let first = sources.next()??;
        if !sources.all(|s| s.as_ref() == Some(&first)) {
            return None;
        }
        let mut side = |g: &Group| -> Option<Vec<Vec<Counts>>> {
            g.values.iter().map(|v| self.counts(&v.run)).collect()
        };
        let system = side(system)?;
        let baseline = side(baseline)?;
        paired_bootstrap(&system, &baseline, paired::RESAMPLES, paired::SEED)
    }

    fn counts(&mut self, run: &str) -> Option<Vec<Counts>> {
        if let Some(c) = self.runs.get(run) {
            return c.clone();
        }
        let c = self.read(run);
        self.runs.insert(run.to_string(), c.clone());
        c
    }

    /// A run's dev predictions scored against its gold dev corpus, sentence by sentence.
    fn read(&mut self, run: &str) -> Option<Vec<Counts>> {
        let point: &'a Point = self.points.get(run).copied()?;
        let data = &point.config.data;
        let gold = self.gold(data.dev.as_deref()?, data.format)?;
        let scored = score_saved_predictions(&point.dir(), gold).ok()?;
        Some(sentence_counts(
            &scored.report.gold_spans,
            &scored.report.pred_spans,
        ))
    }

    fn gold(&mut self, src: &str, format: Option<Format>) -> Option<&Corpus> {
        let at = match self
            .gold
            .iter()
            .position(|(s, f, _)| s == src && *f == format)
        {
            Some(at) => at,
            None => {
                let corpus = load_corpus(src, format, &Hub::from_env(true)).ok();
                self.gold.push((src.to_string(), format, corpus));
                self.gold.len() - 1
            }
        };
        self.gold[at].2.as_ref()
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

/// The 95 % interval of the mean from Student's t: mean ± t(0.975, n - 1) · sd / √n. With the
/// three to five seeds of a grid a percentile bootstrap of the mean is far too narrow (it cannot
/// leave [min, max], and at n = 3 it covers about three times in four, not 19 in 20).
fn t_interval(v: &[f64]) -> Option<[f64; 2]> {
    let (m, s) = (mean(v)?, sd(v)?);
    let half = t_975(v.len() - 1) * s / (v.len() as f64).sqrt();
    Some([m - half, m + half])
}

/// The 0.975 quantile of Student's t with `df` degrees of freedom (df >= 1): a table to 30, then
/// the Cornish-Fisher expansion around the normal quantile (within 1e-4 from there on).
fn t_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281, 2.2010,
        2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860, 2.0796, 2.0739,
        2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
    ];
    if (1..=30).contains(&df) {
        return TABLE[df - 1];
    }
    let (z, n): (f64, f64) = (1.959_963_985, df.max(1) as f64);
    z + (z.powi(3) + z) / (4.0 * n)
        + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * n * n)
        + (3.0 * z.powi(7) + 19.0 * z.powi(5) + 17.0 * z.powi(3) - 15.0 * z) / (384.0 * n.powi(3))
}

impl Report {
    /// `results.json`: the metric and the groups, each with its axis values under their keys;
    /// with a baseline, each compared group's tests (`aso`, `paired_bootstrap`) named in `test`.
    pub fn to_json(&self) -> serde_json::Value {
        let comparisons = self.comparisons();
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
                let (aso, paired) = self.comparison_json(g, comparisons);
                o.insert("aso".into(), aso);
                o.insert("paired_bootstrap".into(), paired);
                serde_json::Value::Object(o)
            })
            .collect();
        serde_json::json!({
            "experiment": self.experiment,
            "metric": self.metric,
            "axes": self.axes,
            "baseline": self.baseline,
            "groups": groups,
        })
    }

    /// The comparisons made (one per group with a baseline group, both with values), which
    /// The comparisons ASO's confidence is corrected for (deepsig's correction; the JSON key says
    /// `bonferroni_comparisons`, as it always has).
    fn comparisons(&self) -> usize {
        self.groups
            .iter()
            .filter(|g| g.aso_vs_baseline.is_some())
            .count()
    }

    /// A group's `aso` and `paired_bootstrap` objects (null where not compared), each naming its
    /// test and the baseline setting it was compared with.
    fn comparison_json(
        &self,
        g: &Group,
        comparisons: usize,
    ) -> (serde_json::Value, serde_json::Value) {
        let mut base = g.axes.clone();
        base.extend(self.baseline.clone());
        let aso = g.aso_vs_baseline.map_or(serde_json::Value::Null, |e| {
            let better = e < ASO_THRESHOLD;
            serde_json::json!({
                "test": ASO_TEST,
                "baseline": base,
                "epsilon_min": e,
                "threshold": ASO_THRESHOLD,
                "better": better,
                "confidence": ASO_CONFIDENCE,
                "bonferroni_comparisons": comparisons,
                "iterations": ASO_ITERATIONS,
            })
        });
        let paired = g.paired_vs_baseline.map_or(serde_json::Value::Null, |p| {
            serde_json::json!({
                "test": PAIRED_TEST,
                "baseline": base,
                "metric": "dev micro F1 (strict entity spans), mean over seeds",
                "delta": p.delta,
                "ci95": p.ci95,
                "p": p.p,
                "alternative": "one-sided: the setting is better than the baseline",
                "sentences": p.sentences,
                "resamples": p.resamples,
                "seed": p.seed,
            })
        });
        (aso, paired)
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
            "delta_vs_baseline",
            "p_paired",
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
            row.push(num(g.paired_vs_baseline.map(|p| p.delta)));
            row.push(num(g.paired_vs_baseline.map(|p| p.p)));
            out += &row.join(",");
            out.push('\n');
        }
        out
    }

    /// The groups laid out as the file asks: rows x columns (see [`Pivot`]).
    pub fn pivot(&self, spec: &ReportSpec) -> Pivot<'_> {
        let row_axes: Vec<String> = if spec.rows.is_empty() && spec.columns.is_empty() {
            self.axes.clone()
        } else {
            spec.rows.clone()
        };
        let col_axes = spec.columns.clone();
        let mut rows: Vec<Vec<String>> = Vec::new();
        let mut columns: Vec<Vec<String>> = Vec::new();
        for g in &self.groups {
            let (r, c) = (key_of(g, &row_axes), key_of(g, &col_axes));
            if !rows.contains(&r) {
                rows.push(r);
            }
            if !columns.contains(&c) {
                columns.push(c);
            }
        }
        Pivot {
            report: self,
            row_axes,
            col_axes,
            rows,
            columns,
            mean_row: spec.mean_row,
        }
    }

    /// `report.md`: the pivot table (rows x columns as the file asks; by default one row per
    /// group) of `mean ± sd (n) [95 % interval]`, and a footer saying how the numbers were made.
    pub fn to_markdown(&self, spec: &ReportSpec) -> String {
        let pivot = self.pivot(spec);
        let (rows, row_keys, col_keys) = (&pivot.row_axes, &pivot.rows, &pivot.columns);
        let mut out = format!("# {}: {}\n\n", self.experiment, self.metric);
        let col_name = |c: &[String]| {
            if c.is_empty() {
                self.metric.clone()
            } else {
                c.join(" ")
            }
        };
        // A row's first cell: its labels, or "all" where nothing varies by row.
        let label = |r: &[String]| {
            if r.is_empty() {
                "all".to_string()
            } else {
                r.join(" / ")
            }
        };
        let header: Vec<String> = col_keys.iter().map(|c| col_name(c)).collect();
        let _ = writeln!(out, "| {} | {} |", label(rows), header.join(" | "));
        let _ = writeln!(out, "|---|{}", "---|".repeat(col_keys.len()));
        for r in row_keys {
            let cells: Vec<String> = col_keys
                .iter()
                .map(|c| {
                    let hits = pivot.cell(r, c);
                    hits.iter().map(|g| cell(g)).collect::<Vec<_>>().join("; ")
                })
                .collect();
            let _ = writeln!(out, "| {} | {} |", label(r), cells.join(" | "));
        }
        if spec.mean_row && row_keys.len() > 1 {
            let n = row_keys.len();
            let cells: Vec<String> = col_keys
                .iter()
                .map(|c| match pivot.mean_of_rows(c) {
                    None => "-".into(),
                    Some((m, k)) if k == n => format!("{m:.4} ({n} rows)"),
                    Some((m, k)) => format!("{m:.4} ({k} of {n} rows)"),
                })
                .collect();
            let _ = writeln!(out, "| mean of rows | {} |", cells.join(" | "));
        }
        out += &self.footer(spec);
        out
    }

    /// What the cells hold and how the comparisons with the baseline were made.
    fn footer(&self, spec: &ReportSpec) -> String {
        let mut out = String::new();
        // Settings with no finished run yet do not count (they would show "0 to 3").
        let seeds: Vec<usize> = self.groups.iter().map(|g| g.n).filter(|&n| n > 0).collect();
        let (lo, hi) = (
            seeds.iter().min().copied().unwrap_or(0),
            seeds.iter().max().copied().unwrap_or(0),
        );
        let _ = write!(
            out,
            "\nEach cell: mean ± sample standard deviation (number of seeds) [95 % t interval of \
             the mean over seeds: mean ± t(0.975, n - 1) · sd / √n, from two seeds on] of `{}` \
             from each run's report.json, which scores the model at its best dev evaluation \
             (model selection on dev F1; a run that evaluates once, at its end, reports its last \
             model; nerlab's strict entity scorer, equal to seqeval's). Seeds per cell: {}. The \
             same numbers are in results.json and results.csv.\n",
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
                "\nCompared with the baseline ({}), the other axes equal (comparisons: {}).\n\n\
                 ε: {ASO_TEST}: Almost Stochastic Order (Dror et al. 2019) as deepsig computes it \
                 (Ulmer et al. 2022), the epsilon_min that a cell's setting is better than the \
                 baseline over seeds, on `{}`; confidence {ASO_CONFIDENCE}, raised for the m \
                 comparisons as deepsig does it, to c + (1 - c) / m (weaker than Bonferroni's \
                 1 - (1 - c) / m from three comparisons on), {ASO_ITERATIONS} bootstrap \
                 iterations; cells with fewer than two seeds on a side are not compared. * marks \
                 ε below {ASO_THRESHOLD} (better than the baseline); 0.5 and above is no \
                 evidence.\n\n\
                 Δ, p: {PAIRED_TEST}: the best checkpoints' saved dev predictions re-scored \
                 (dev micro F1, nerlab's strict entity scorer, whatever the metric above), \
                 the same sentences resampled with replacement for every run of both settings \
                 ({} resamples, seed {}); Δ is the mean over seeds of the setting's F1 minus the \
                 baseline's on all the sentences, p the one-sided share of resamples where the \
                 setting is not better, (k + 1) / (resamples + 1), not corrected for multiple \
                 comparisons, and conditional on the trained runs: it resamples sentences, not seeds (ε is \
                 the test over seeds). The 95 % interval of Δ is in results.json. No Δ where the runs' dev \
                 corpora differ or their predictions cannot be read.\n",
                base.join(", "),
                self.comparisons(),
                self.metric,
                paired::RESAMPLES,
                paired::SEED,
            );
        }
        out
    }
}

/// The report as a table: one row per setting of the row axes, one column per setting of the
/// column axes (in the order the groups come), each cell the groups that fall in it (axes
/// outside rows and columns give a cell several groups, shown apart).
pub struct Pivot<'r> {
    pub report: &'r Report,
    pub row_axes: Vec<String>,
    pub col_axes: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub columns: Vec<Vec<String>>,
    /// `[report] mean_row`: a "mean of rows" line under the table and group in the bars.
    pub mean_row: bool,
}

impl Pivot<'_> {
    /// `[report] mean_row`: a column's mean over its rows' cell means, and how many rows have
    /// one (a cell holding several groups, or none, counts as none). None without `mean_row`,
    /// under two rows, or when no row has a mean. The table's "mean of rows" line and the bars'
    /// last group (drawn only when every row has one) both read it.
    pub fn mean_of_rows(&self, column: &[String]) -> Option<(f64, usize)> {
        if !self.mean_row || self.rows.len() < 2 {
            return None;
        }
        let means: Vec<f64> = self
            .rows
            .iter()
            .filter_map(|r| match self.cell(r, column).as_slice() {
                [g] => g.mean,
                _ => None,
            })
            .collect();
        Some((mean(&means)?, means.len()))
    }

    pub fn cell(&self, row: &[String], column: &[String]) -> Vec<&Group> {
        self.report
            .groups
            .iter()
            .filter(|g| key_of(g, &self.row_axes) == row && key_of(g, &self.col_axes) == column)
            .collect()
    }

    /// A row's or a column's label: its values joined (`all` for none).
    pub fn label(key: &[String]) -> String {
        if key.is_empty() {
            "all".into()
        } else {
            key.join(" / ")
        }
    }
}

/// A group's values on `axes`.
fn key_of(g: &Group, axes: &[String]) -> Vec<String> {
    axes.iter()
        .map(|a| g.axes.get(a).cloned().unwrap_or_default())
        .collect()
}

/// `0.8123 ± 0.0041 (3) [0.8021, 0.8225]` (the 95 % t interval from two seeds on), `0.8123 (1)`,
/// or `-` while nothing is done; with a baseline, ASO's epsilon_min against it (`ε 0.04`, starred
/// below the threshold) and the paired bootstrap's delta of dev micro F1 with its p-value
/// (`Δ +0.0123 p 0.004`).
fn cell(g: &Group) -> String {
    let mut out = match (g.mean, g.sd) {
        (Some(m), Some(s)) => format!("{m:.4} ± {s:.4} ({})", g.n),
        (Some(m), None) => format!("{m:.4} ({})", g.n),
        _ => "-".into(),
    };
    if let Some([lo, hi]) = g.ci95 {
        out += &format!(" [{lo:.4}, {hi:.4}]");
    }
    if let Some(e) = g.aso_vs_baseline {
        let star = if e < ASO_THRESHOLD { "*" } else { "" };
        out += &format!(" ε {e:.2}{star}");
    }
    if let Some(p) = g.paired_vs_baseline {
        out += &format!(" Δ {:+.4} p {:.3}", p.delta, p.p);
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
        // 0.6 ± 4.3027 · 0.1 / √3 (scipy.stats.t.interval(0.95, 2, 0.6, 0.1 / 3 ** 0.5):
        // 0.35159, 0.84841): wider than the seeds' range, as three seeds warrant.
        let [lo, hi] = t_interval(&v).unwrap();
        assert!(
            (lo - 0.35159).abs() < 1e-4 && (hi - 0.84841).abs() < 1e-4,
            "{lo} {hi}"
        );
        assert_eq!(sd(&[0.5]), None);
        assert_eq!(t_interval(&[0.5]), None);
        // scipy.stats.t.ppf(0.975, df) for df past the table: 31, 60, 120, 1000.
        for (df, want) in [(31, 2.0395), (60, 2.0003), (120, 1.9799), (1000, 1.9623)] {
            assert!((t_975(df) - want).abs() < 2e-4, "df {df}: {}", t_975(df));
        }
        // The expansion meets the table's last entry.
        assert!((t_975(30) - 2.0423).abs() < 1e-9);
    }

    fn group(head: &str, mean: f64, aso: Option<f64>, paired: Option<Paired>) -> Group {
        Group {
            axes: BTreeMap::from([("model.head".to_string(), head.to_string())]),
            n: 1,
            mean: Some(mean),
            sd: None,
            ci95: None,
            values: vec![Value {
                seed: "1".into(),
                run: format!("{head}-1"),
                value: mean,
            }],
            pending: 0,
            aso_vs_baseline: aso,
            paired_vs_baseline: paired,
        }
    }

    #[test]
    fn comparisons_name_their_tests_in_every_output() {
        let baseline = BTreeMap::from([("model.head".to_string(), "softmax".to_string())]);
        let paired = PairedResult {
            delta: 0.02,
            ci95: [0.01, 0.03],
            p: 0.01,
            sentences: 40,
            resamples: 99,
            seed: 5,
        };
        let r = Report {
            experiment: "heads".into(),
            metric: "dev.micro.f1".into(),
            axes: vec!["model.head".into()],
            groups: vec![
                group("softmax", 0.80, None, None),
                group("crf", 0.82, Some(0.1), Some(paired)),
            ],
            baseline: baseline.clone(),
        };
        let json = r.to_json();
        assert_eq!(json["baseline"]["model.head"], "softmax");
        let (soft, crf) = (&json["groups"][0], &json["groups"][1]);
        assert!(soft["aso"].is_null() && soft["paired_bootstrap"].is_null());
        assert_eq!(crf["aso_vs_baseline"].as_f64(), Some(0.1));
        assert_eq!(crf["aso"]["test"], ASO_TEST);
        assert_eq!(crf["aso"]["epsilon_min"].as_f64(), Some(0.1));
        assert_eq!(crf["aso"]["bonferroni_comparisons"], 1);
        assert_eq!(crf["aso"]["baseline"]["model.head"], "softmax");
        let pb = &crf["paired_bootstrap"];
        assert_eq!(pb["test"], "paired bootstrap over dev sentences");
        assert_eq!(pb["delta"].as_f64(), Some(0.02));
        assert_eq!(pb["ci95"][1].as_f64(), Some(0.03));
        assert_eq!(pb["p"].as_f64(), Some(0.01));
        assert_eq!(
            (pb["sentences"].as_u64(), pb["resamples"].as_u64()),
            (Some(40), Some(99))
        );

        let csv = r.to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert!(
            lines[0].ends_with(",aso_vs_baseline,delta_vs_baseline,p_paired"),
            "{csv}"
        );
        assert!(lines[1].ends_with(",,,"), "{csv}");
        assert!(lines[2].ends_with(",0.1,0.02,0.01"), "{csv}");

        let spec = ReportSpec {
            baseline,
            mean_row: true,
            ..ReportSpec::default()
        };
        let md = r.to_markdown(&spec);
        assert!(md.contains("| mean of rows | 0.8100 (2 rows) |"), "{md}");
        assert!(
            md.contains("| crf | 0.8200 (1) ε 0.10* Δ +0.0200 p 0.010 |"),
            "{md}"
        );
        assert!(md.contains("| softmax | 0.8000 (1) |"), "{md}");
        for words in [
            ASO_TEST,
            "Ulmer et al. 2022",
            "Bonferroni",
            PAIRED_TEST,
            "one-sided",
        ] {
            assert!(md.contains(words), "{words}: {md}");
        }
    }
}
