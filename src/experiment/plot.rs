//! The report's plots, as SVG (drawn here, element by element) and PNG (the same SVG rendered by
//! resvg with the font the workbench ships, so the two files always agree and no system font is
//! needed): a heatmap of the pivot table (e.g. source language x K), grouped bars with 95 %
//! intervals (an ablation, per language), and the metric against a numeric column axis (K) with a
//! band of one standard deviation over seeds.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::file::ReportSpec;
use super::report::{Group, Pivot, Report};

/// Colour-blind-safe series colours (Okabe & Ito), the pale yellow last: it reads worst on white.
const PALETTE: [&str; 8] = [
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442",
];

/// How the `i`-th line of a curve plot is drawn: the palette's colour, and past its eight colours
/// a dash pattern and a square marker, so that ten source languages stay ten lines a reader can
/// tell apart (the legend shows each line's sample).
fn series_style(i: usize) -> (&'static str, Option<&'static str>, bool) {
    let dash = match i / PALETTE.len() {
        0 => None,
        1 => Some("7 4"),
        _ => Some("2 3"),
    };
    (PALETTE[i % PALETTE.len()], dash, i >= PALETTE.len())
}
const FONT: &str = "sans-serif";
/// PNGs are rendered at twice the SVG's size, for screens with dense pixels.
const PNG_SCALE: f32 = 2.0;

/// Writes every plot that fits the report's layout into `dir` (`heatmap`, `bars`, `curve`, each
/// `.svg` and `.png`); with `plots_by`, one set per value of those axes (`heatmap-<axis>-<value>`),
/// each heatmap on the colour scale of the whole report so that the parts compare. Returns the
/// files written.
pub fn write_plots(report: &Report, spec: &ReportSpec, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // Plots an earlier layout drew and this one does not are stale.
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        let ours = ["heatmap", "bars", "curve"]
            .iter()
            .any(|n| stem == *n || stem.starts_with(&format!("{n}-")));
        let ext = path.extension().and_then(|e| e.to_str());
        if ours && matches!(ext, Some("svg" | "png")) {
            let _ = std::fs::remove_file(&path);
        }
    }
    let scale = min_max(
        &report
            .groups
            .iter()
            .filter_map(|g| g.mean)
            .collect::<Vec<_>>(),
    );
    let part_spec = ReportSpec {
        rows: without(&spec.rows, &spec.plots_by),
        columns: without(&spec.columns, &spec.plots_by),
        ..spec.clone()
    };
    let mut written = Vec::new();
    for (suffix, part) in split(report, &spec.plots_by) {
        let pivot = part.pivot(&part_spec);
        let plots = [
            ("heatmap", scale.and_then(|s| heatmap_scaled(&pivot, s))),
            ("bars", bars(&pivot)),
            ("curve", curve(&pivot)),
        ];
        for (name, svg) in plots {
            let Some(svg) = svg else { continue };
            let path = dir.join(format!("{name}{suffix}.svg"));
            std::fs::write(&path, &svg).with_context(|| format!("writing {}", path.display()))?;
            written.push(path);
            let path = dir.join(format!("{name}{suffix}.png"));
            std::fs::write(&path, png(&svg)?)
                .with_context(|| format!("writing {}", path.display()))?;
            written.push(path);
        }
    }
    Ok(written)
}

/// `axes` without those in `drop`.
fn without(axes: &[String], drop: &[String]) -> Vec<String> {
    axes.iter().filter(|a| !drop.contains(a)).cloned().collect()
}

/// The report cut by the values of the axes `by`, in the order they first appear: each part with
/// its file-name suffix (`-model.prompt-true`) and a title that names its values. The whole
/// report, suffix empty, when `by` is empty.
fn split(report: &Report, by: &[String]) -> Vec<(String, Report)> {
    if by.is_empty() {
        return vec![(String::new(), report.clone())];
    }
    let mut parts: Vec<(Vec<String>, Report)> = Vec::new();
    for g in &report.groups {
        let key: Vec<String> = by
            .iter()
            .map(|a| g.axes.get(a).cloned().unwrap_or_default())
            .collect();
        if let Some((_, part)) = parts.iter_mut().find(|(k, _)| *k == key) {
            part.groups.push(g.clone());
            continue;
        }
        let named: Vec<String> = by
            .iter()
            .zip(&key)
            .map(|(a, v)| format!("{a} = {v}"))
            .collect();
        let part = Report {
            experiment: format!("{} ({})", report.experiment, named.join(", ")),
            metric: report.metric.clone(),
            axes: report.axes.clone(),
            groups: vec![g.clone()],
            baseline: report.baseline.clone(),
        };
        parts.push((key, part));
    }
    let mut used: Vec<String> = Vec::new();
    parts
        .into_iter()
        .map(|(key, part)| {
            let words: Vec<String> = by
                .iter()
                .zip(&key)
                .map(|(a, v)| format!("{a}-{v}"))
                .collect();
            // File-name safe, short enough for any file system, and unique among the parts.
            let mut safe: String = words
                .join("_")
                .chars()
                .map(|c| {
                    if c.is_alphanumeric() || "-_.".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .take(80)
                .collect();
            if used.contains(&safe) {
                safe = format!("{safe}-{}", used.len() + 1);
            }
            used.push(safe.clone());
            (format!("-{safe}"), part)
        })
        .collect()
}

/// The first group of a cell that has a result.
fn cell<'r>(p: &'r Pivot<'_>, row: &[String], column: &[String]) -> Option<&'r Group> {
    p.cell(row, column).into_iter().find(|g| g.mean.is_some())
}

/// The pivot table as coloured cells with their mean, standard deviation and number of seeds.
/// None without both row and column axes.
pub fn heatmap(p: &Pivot<'_>) -> Option<String> {
    let means: Vec<f64> = p.report.groups.iter().filter_map(|g| g.mean).collect();
    heatmap_scaled(p, min_max(&means)?)
}

/// [`heatmap`] with colours spread over `(lo, hi)`: the scale of a larger report that this
/// pivot is a part of.
pub fn heatmap_scaled(p: &Pivot<'_>, (lo, hi): (f64, f64)) -> Option<String> {
    if p.row_axes.is_empty() || p.col_axes.is_empty() {
        return None;
    }
    let (cw, ch) = (92.0, 50.0);
    let left = 24.0
        + 7.0
            * longest(
                p.rows
                    .iter()
                    .map(|r| Pivot::label(r))
                    .chain([p.row_axes.join(" / ")]),
            ) as f64;
    let top = 64.0;
    // Wide enough for the caption under the cells.
    let width = (left + cw * p.columns.len() as f64 + 110.0).max(500.0);
    let height = top + ch * p.rows.len() as f64 + 56.0;
    let mut s = Svg::new(width, height);
    s.title(&p.report.experiment, &p.report.metric);
    for (j, c) in p.columns.iter().enumerate() {
        let x = left + cw * (j as f64 + 0.5);
        s.text(x, top - 8.0, 12.0, "middle", &Pivot::label(c));
    }
    for (i, r) in p.rows.iter().enumerate() {
        let y = top + ch * i as f64;
        s.text(
            left - 8.0,
            y + ch / 2.0 + 4.0,
            12.0,
            "end",
            &Pivot::label(r),
        );
        for (j, c) in p.columns.iter().enumerate() {
            let x = left + cw * j as f64;
            let Some(g) = cell(p, r, c) else {
                s.rect(x, y, cw, ch, "#eeeeee", Some("#ffffff"));
                s.text(x + cw / 2.0, y + ch / 2.0 + 4.0, 12.0, "middle", "–");
                continue;
            };
            let mean = g.mean.unwrap_or(lo);
            let t = if hi > lo {
                (mean - lo) / (hi - lo)
            } else {
                0.5
            };
            s.rect(x, y, cw, ch, &blues(t), Some("#ffffff"));
            let ink = if t > 0.55 { "#ffffff" } else { "#111111" };
            s.text_colored(
                x + cw / 2.0,
                y + 22.0,
                14.0,
                "middle",
                ink,
                &format!("{mean:.3}"),
            );
            let under = match g.sd {
                Some(sd) => format!("±{sd:.3} (n={})", g.n),
                None => format!("(n={})", g.n),
            };
            s.text_colored(x + cw / 2.0, y + 38.0, 10.0, "middle", ink, &under);
        }
    }
    let bottom = top + ch * p.rows.len() as f64;
    s.text(
        left + cw * p.columns.len() as f64 / 2.0,
        bottom + 24.0,
        12.0,
        "middle",
        &p.col_axes.join(" / "),
    );
    s.text(12.0, top - 8.0, 12.0, "start", &p.row_axes.join(" / "));
    // The colour scale.
    let bar_x = left + cw * p.columns.len() as f64 + 24.0;
    let steps = 20;
    let step_h = ch * p.rows.len() as f64 / steps as f64;
    for k in 0..steps {
        let t = 1.0 - k as f64 / (steps - 1) as f64;
        s.rect(
            bar_x,
            top + step_h * k as f64,
            16.0,
            step_h + 0.5,
            &blues(t),
            None,
        );
    }
    s.text(bar_x + 22.0, top + 10.0, 11.0, "start", &format!("{hi:.3}"));
    s.text(bar_x + 22.0, bottom, 11.0, "start", &format!("{lo:.3}"));
    s.text(
        12.0,
        height - 10.0,
        10.0,
        "start",
        "each cell: mean ± sample sd over seeds (n seeds) of the best dev evaluation",
    );
    Some(s.finish())
}

/// Bars of the mean per row, one bar per column, with the 95 % t interval of the mean over
/// seeds. None when no group has a result.
pub fn bars(p: &Pivot<'_>) -> Option<String> {
    // With three seeds a t interval is wide (t = 4.30) and can pass the ends of a score's range:
    // whiskers are drawn cut at 0 and, for a metric whose every value is in [0, 1], at 1.
    let bounded = p
        .report
        .groups
        .iter()
        .flat_map(|g| &g.values)
        .all(|v| (0.0..=1.0).contains(&v.value));
    let clip = |v: f64| {
        if bounded {
            v.clamp(0.0, 1.0)
        } else {
            v.max(0.0)
        }
    };
    let highs: Vec<f64> = p
        .report
        .groups
        .iter()
        .filter_map(|g| g.ci95.map(|c| clip(c[1])).or(g.mean))
        .collect();
    let (_, hi) = min_max(&highs)?;
    let y_max = nice_ceiling(hi.max(1e-9));
    let series = p.columns.len().max(1);
    let bar_w = 22.0;
    let group_w = bar_w * series as f64 + 24.0;
    // `[report] mean_row`: the columns' means over the rows, as a last group after a gap.
    let row_means: Vec<Option<f64>> = p
        .columns
        .iter()
        .map(|c| {
            p.mean_of_rows(c)
                .filter(|&(_, k)| k == p.rows.len())
                .map(|(m, _)| m)
        })
        .collect();
    let average = row_means.iter().any(Option::is_some);
    let groups = p.rows.len() + usize::from(average);
    let (left, top, plot_h) = (64.0, 64.0, 260.0);
    let legend_w = if p.col_axes.is_empty() {
        0.0
    } else {
        40.0 + 7.0
            * longest(
                p.columns
                    .iter()
                    .map(|c| Pivot::label(c))
                    .chain([p.col_axes.join(" / ")]),
            ) as f64
    };
    // Wide enough for the caption above the bars.
    let width = (left + group_w * groups as f64 + 24.0 + legend_w).max(520.0);
    let label_h = 7.0 * longest(p.rows.iter().map(|r| Pivot::label(r))) as f64;
    let height = top + plot_h + 40.0 + label_h.min(160.0);
    let mut s = Svg::new(width, height);
    s.title(&p.report.experiment, &p.report.metric);
    let y_of = |v: f64| top + plot_h * (1.0 - v / y_max);
    s.y_axis(left, top, plot_h, y_max, &p.report.metric);
    for (i, r) in p.rows.iter().enumerate() {
        let gx = left + 12.0 + group_w * i as f64;
        for (j, c) in p.columns.iter().enumerate() {
            let Some(g) = cell(p, r, c) else { continue };
            let mean = g.mean.unwrap_or(0.0);
            let x = gx + bar_w * j as f64;
            let colour = PALETTE[j % PALETTE.len()];
            s.rect(
                x,
                y_of(mean),
                bar_w - 2.0,
                y_of(0.0) - y_of(mean),
                colour,
                None,
            );
            if let Some([a, b]) = g.ci95.map(|c| c.map(clip)) {
                let mid = x + (bar_w - 2.0) / 2.0;
                s.line(mid, y_of(a), mid, y_of(b), "#222222", 1.2);
                s.line(mid - 4.0, y_of(a), mid + 4.0, y_of(a), "#222222", 1.2);
                s.line(mid - 4.0, y_of(b), mid + 4.0, y_of(b), "#222222", 1.2);
            }
        }
        let cx = gx + bar_w * series as f64 / 2.0;
        s.text_rotated(cx, top + plot_h + 14.0, 11.0, &Pivot::label(r));
    }
    if average {
        // Outlined bars without whiskers: a mean of means, with no interval of its own.
        let gx = left + 12.0 + group_w * p.rows.len() as f64;
        for (j, m) in row_means.iter().enumerate() {
            let Some(m) = *m else { continue };
            let x = gx + bar_w * j as f64;
            let colour = PALETTE[j % PALETTE.len()];
            let h = y_of(0.0) - y_of(m);
            s.rect(x, y_of(m), bar_w - 2.0, h, colour, Some("#222222"));
        }
        let cx = gx + bar_w * series as f64 / 2.0;
        s.text_rotated(cx, top + plot_h + 14.0, 11.0, "mean of rows");
    }
    if !p.col_axes.is_empty() {
        let lx = left + group_w * groups as f64 + 24.0;
        s.text(lx, top, 11.0, "start", &p.col_axes.join(" / "));
        for (j, c) in p.columns.iter().enumerate() {
            let y = top + 10.0 + 16.0 * j as f64;
            s.rect(lx, y, 10.0, 10.0, PALETTE[j % PALETTE.len()], None);
            s.text(lx + 14.0, y + 9.0, 11.0, "start", &Pivot::label(c));
        }
    }
    s.text(
        left,
        42.0,
        10.0,
        "start",
        if bounded {
            "bars: mean over seeds; whiskers: 95 % t interval of the mean, cut at 0 and 1"
        } else {
            "bars: mean over seeds; whiskers: 95 % t interval of the mean, cut at 0"
        },
    );
    Some(s.finish())
}

/// The metric against the column axis when its values are numbers (K), one line per row with a
/// band of ± one standard deviation over seeds. None unless at least two columns are numbers.
pub fn curve(p: &Pivot<'_>) -> Option<String> {
    let xs: Vec<(usize, f64)> = p
        .columns
        .iter()
        .enumerate()
        .filter_map(|(j, c)| match c.as_slice() {
            [one] => one.parse::<f64>().ok().map(|x| (j, x)),
            _ => None,
        })
        .collect();
    if xs.len() < 2 {
        return None;
    }
    let mut order = xs.clone();
    order.sort_by(|a, b| a.1.total_cmp(&b.1));
    let highs: Vec<f64> = p
        .report
        .groups
        .iter()
        .filter_map(|g| g.mean.map(|m| m + g.sd.unwrap_or(0.0)))
        .collect();
    let (_, hi) = min_max(&highs)?;
    let y_max = nice_ceiling(hi.max(1e-9));
    let (left, top, plot_w, plot_h) = (64.0, 64.0, 90.0 * order.len() as f64, 260.0);
    let legend_w = 54.0 + 7.0 * longest(p.rows.iter().map(|r| Pivot::label(r))) as f64;
    let width = (left + plot_w + 24.0 + legend_w).max(440.0);
    let mut s = Svg::new(width, top + plot_h + 56.0);
    s.title(&p.report.experiment, &p.report.metric);
    s.y_axis(left, top, plot_h, y_max, &p.report.metric);
    let y_of = |v: f64| top + plot_h * (1.0 - v / y_max);
    // Columns evenly spaced in their numeric order (K = 1, 5, 10, 50 reads better than to scale).
    let x_of = |k: usize| left + plot_w * (k as f64 + 0.5) / order.len() as f64;
    for (k, (_, x)) in order.iter().enumerate() {
        s.text(
            x_of(k),
            top + plot_h + 16.0,
            11.0,
            "middle",
            &format!("{x}"),
        );
    }
    s.text(
        left + plot_w / 2.0,
        top + plot_h + 36.0,
        12.0,
        "middle",
        &p.col_axes.join(" / "),
    );
    // Bands lighter as lines multiply, so ten overlapping bands do not hide the lines.
    let band_opacity = (0.54 / p.rows.len().max(1) as f64).clamp(0.06, 0.18);
    for (i, r) in p.rows.iter().enumerate() {
        let (colour, dash, square) = series_style(i);
        let pts: Vec<(f64, f64, f64)> = order
            .iter()
            .enumerate()
            .filter_map(|(k, (j, _))| {
                let g = cell(p, r, &p.columns[*j])?;
                Some((x_of(k), g.mean?, g.sd.unwrap_or(0.0)))
            })
            .collect();
        let mut band: Vec<(f64, f64)> = pts.iter().map(|&(x, m, sd)| (x, y_of(m + sd))).collect();
        band.extend(
            pts.iter()
                .rev()
                .map(|&(x, m, sd)| (x, y_of((m - sd).max(0.0)))),
        );
        s.polygon(&band, colour, band_opacity);
        let line: Vec<(f64, f64)> = pts.iter().map(|&(x, m, _)| (x, y_of(m))).collect();
        s.polyline(&line, colour, dash);
        let marker = |s: &mut Svg, x: f64, y: f64| {
            if square {
                s.rect(x - 3.0, y - 3.0, 6.0, 6.0, colour, None);
            } else {
                s.circle(x, y, 3.0, colour);
            }
        };
        for &(x, y) in &line {
            marker(&mut s, x, y);
        }
        let lx = left + plot_w + 24.0;
        let ly = top + 10.0 + 16.0 * i as f64;
        s.polyline(&[(lx, ly + 5.0), (lx + 22.0, ly + 5.0)], colour, dash);
        marker(&mut s, lx + 11.0, ly + 5.0);
        s.text(lx + 28.0, ly + 9.0, 11.0, "start", &Pivot::label(r));
    }
    s.text(
        left,
        42.0,
        10.0,
        "start",
        "lines: mean over seeds; bands: ± one sample standard deviation",
    );
    Some(s.finish())
}

/// Renders an SVG of this module to PNG with the workbench's font.
pub fn png(svg: &str) -> anyhow::Result<Vec<u8>> {
    use resvg::{tiny_skia, usvg};
    let mut opt = usvg::Options::default();
    let db = opt.fontdb_mut();
    db.load_font_data(epaint_default_fonts::UBUNTU_LIGHT.to_vec());
    let family = db
        .faces()
        .next()
        .and_then(|f| f.families.first())
        .map(|(name, _)| name.clone());
    if let Some(family) = family {
        db.set_sans_serif_family(family);
    }
    let tree = usvg::Tree::from_str(svg, &opt).context("parsing the plot's SVG")?;
    let size = tree.size();
    let (w, h) = (
        (size.width() * PNG_SCALE).ceil() as u32,
        (size.height() * PNG_SCALE).ceil() as u32,
    );
    let mut pixmap = tiny_skia::Pixmap::new(w, h).context("a plot of zero size")?;
    pixmap.fill(tiny_skia::Color::WHITE);
    resvg::render(
        &tree,
        tiny_skia::Transform::from_scale(PNG_SCALE, PNG_SCALE),
        &mut pixmap.as_mut(),
    );
    pixmap.encode_png().context("encoding the plot as PNG")
}

/// A white-to-dark-blue scale, `t` in 0..=1.
fn blues(t: f64) -> String {
    let (a, b) = ([239.0, 243.0, 255.0], [8.0, 48.0, 107.0]);
    let t = t.clamp(0.0, 1.0);
    let c: Vec<u8> = (0..3)
        .map(|i| (a[i] + (b[i] - a[i]) * t).round() as u8)
        .collect();
    format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
}

fn min_max(v: &[f64]) -> Option<(f64, f64)> {
    let lo = v.iter().copied().reduce(f64::min)?;
    let hi = v.iter().copied().reduce(f64::max)?;
    Some((lo, hi))
}

/// The smallest of 1, 2, 2.5, 5 times a power of ten at or above `v`.
fn nice_ceiling(v: f64) -> f64 {
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|&c| c >= v - 1e-12)
        .unwrap_or(10.0 * p)
}

fn longest(labels: impl Iterator<Item = String>) -> usize {
    labels.map(|l| l.chars().count()).max().unwrap_or(0)
}

/// An SVG document written element by element.
struct Svg {
    out: String,
}

impl Svg {
    fn new(w: f64, h: f64) -> Self {
        let mut out = String::new();
        let _ = write!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}" font-family="{FONT}">"#
        );
        let _ = write!(
            out,
            r##"<rect width="100%" height="100%" fill="#ffffff"/>"##
        );
        Self { out }
    }

    fn title(&mut self, experiment: &str, metric: &str) {
        self.text(
            12.0,
            24.0,
            16.0,
            "start",
            &format!("{experiment}: {metric}"),
        );
    }

    fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: &str, stroke: Option<&str>) {
        let stroke = stroke.map_or(String::new(), |s| format!(r#" stroke="{s}""#));
        let _ = write!(
            self.out,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{:.1}" fill="{fill}"{stroke}/>"#,
            h.max(0.0)
        );
    }

    fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, stroke: &str, width: f64) {
        let _ = write!(
            self.out,
            r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="{stroke}" stroke-width="{width}"/>"#
        );
    }

    fn circle(&mut self, x: f64, y: f64, r: f64, fill: &str) {
        let _ = write!(
            self.out,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="{r}" fill="{fill}"/>"#
        );
    }

    fn points(pts: &[(f64, f64)]) -> String {
        pts.iter()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn polyline(&mut self, pts: &[(f64, f64)], stroke: &str, dash: Option<&str>) {
        let dash = dash.map_or(String::new(), |d| format!(r#" stroke-dasharray="{d}""#));
        let _ = write!(
            self.out,
            r#"<polyline points="{}" fill="none" stroke="{stroke}" stroke-width="2"{dash}/>"#,
            Self::points(pts)
        );
    }

    fn polygon(&mut self, pts: &[(f64, f64)], fill: &str, opacity: f64) {
        let _ = write!(
            self.out,
            r#"<polygon points="{}" fill="{fill}" fill-opacity="{opacity}"/>"#,
            Self::points(pts)
        );
    }

    fn text(&mut self, x: f64, y: f64, size: f64, anchor: &str, s: &str) {
        self.text_colored(x, y, size, anchor, "#111111", s);
    }

    fn text_colored(&mut self, x: f64, y: f64, size: f64, anchor: &str, fill: &str, s: &str) {
        let _ = write!(
            self.out,
            r#"<text x="{x:.1}" y="{y:.1}" font-size="{size}" text-anchor="{anchor}" fill="{fill}">{}</text>"#,
            escape(s)
        );
    }

    /// Text turned 35 degrees, hanging below a point (long category labels).
    fn text_rotated(&mut self, x: f64, y: f64, size: f64, s: &str) {
        let _ = write!(
            self.out,
            r##"<text x="{x:.1}" y="{y:.1}" font-size="{size}" text-anchor="end" fill="#111111" transform="rotate(-35 {x:.1} {y:.1})">{}</text>"##,
            escape(s)
        );
    }

    /// A vertical axis from 0 to `max` with five ticks, grid lines and its name.
    fn y_axis(&mut self, left: f64, top: f64, h: f64, max: f64, name: &str) {
        // Enough decimals that the ticks differ.
        let decimals = (-(max / 5.0).log10()).ceil().clamp(0.0, 6.0) as usize;
        for k in 0..=5 {
            let v = max * k as f64 / 5.0;
            let y = top + h * (1.0 - k as f64 / 5.0);
            self.line(left, y, left + 10_000.0, y, "#e4e4e4", 1.0);
            self.text(left - 6.0, y + 4.0, 11.0, "end", &format!("{v:.decimals$}"));
        }
        self.line(left, top, left, top + h, "#444444", 1.0);
        let _ = write!(
            self.out,
            r##"<text x="14" y="{:.1}" font-size="12" text-anchor="middle" fill="#111111" transform="rotate(-90 14 {:.1})">{}</text>"##,
            top + h / 2.0,
            top + h / 2.0,
            escape(name)
        );
    }

    fn finish(mut self) -> String {
        self.out.push_str("</svg>\n");
        self.out
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::experiment::report::Value;

    fn group(src: &str, k: &str, mean: f64, sd: Option<f64>) -> Group {
        Group {
            axes: BTreeMap::from([("src".into(), src.into()), ("k".into(), k.into())]),
            n: 3,
            mean: Some(mean),
            sd,
            ci95: sd.map(|s| [mean - s, mean + s]),
            values: Vec::new(),
            pending: 0,
            aso_vs_baseline: None,
            paired_vs_baseline: None,
        }
    }

    fn report() -> (Report, ReportSpec) {
        let groups = vec![
            group("en", "1", 0.2, Some(0.05)),
            group("en", "10", 0.5, Some(0.02)),
            group("hi", "1", 0.1, None),
            group("hi", "10", 0.4, Some(0.01)),
        ];
        source_by_k("transfer <x>", groups)
    }

    /// A report of `groups` laid out as source (rows) x K (columns).
    fn source_by_k(name: &str, groups: Vec<Group>) -> (Report, ReportSpec) {
        let r = Report {
            experiment: name.into(),
            metric: "dev.micro.f1".into(),
            axes: vec!["src".into(), "k".into()],
            groups,
            baseline: BTreeMap::new(),
        };
        let spec = ReportSpec {
            rows: vec!["src".into()],
            columns: vec!["k".into()],
            ..ReportSpec::default()
        };
        (r, spec)
    }

    #[test]
    fn ten_curves_are_ten_different_lines() {
        let styles: Vec<_> = (0..10).map(series_style).collect();
        for (i, a) in styles.iter().enumerate() {
            for b in &styles[i + 1..] {
                assert_ne!((a.0, a.1), (b.0, b.1));
            }
        }
        let groups = (0..10)
            .flat_map(|i| {
                [("0", 0.1), ("5", 0.3)]
                    .map(|(k, m)| group(&format!("l{i}"), k, m + 0.01 * i as f64, Some(0.02)))
            })
            .collect();
        let (r, spec) = source_by_k("ten", groups);
        let c = curve(&r.pivot(&spec)).unwrap();
        // A line and a legend sample per language; the last two dashed, with square markers.
        assert_eq!(c.matches("<polyline").count(), 20);
        assert_eq!(c.matches("stroke-dasharray").count(), 4);
        assert_eq!(c.matches(r#"fill-opacity="0.06""#).count(), 10);
    }

    #[test]
    fn every_plot_shows_the_numbers_of_the_report() {
        let (r, spec) = report();
        let p = r.pivot(&spec);
        let h = heatmap(&p).unwrap();
        // Every cell's mean is written in it; names are escaped.
        for m in ["0.200", "0.500", "0.100", "0.400"] {
            assert!(h.contains(&format!(">{m}</text>")), "{m} in {h}");
        }
        assert!(h.contains("transfer &lt;x&gt;"));
        assert!(h.contains("±0.050 (n=3)") && h.contains(">(n=3)</text>"));
        // The darkest cell is the best.
        assert!(h.contains(&blues(1.0)) && h.contains(&blues(0.0)));
        let b = bars(&p).unwrap();
        assert_eq!(
            b.matches("<rect").count() - 1,
            4 + 2,
            "4 bars, 2 legend keys"
        );
        let c = curve(&p).unwrap();
        assert_eq!(c.matches("<polyline").count(), 4); // a line and a legend sample per row
        // K = 1 comes before K = 10 however the columns are ordered.
        assert!(c.find(">1</text>").unwrap() < c.find(">10</text>").unwrap());
    }

    /// Three seeds' t intervals pass a score's ends: the whiskers are cut at 0 and 1, as if the
    /// interval had ended there, and the axis stays on the scores' scale.
    #[test]
    fn whiskers_past_a_scores_range_are_cut_at_0_and_1() {
        let with = |ci: [f64; 2]| {
            let mut g = group("en", "1", 0.5, Some(0.3));
            g.ci95 = Some(ci);
            g.values = [0.2, 0.5, 0.8]
                .iter()
                .enumerate()
                .map(|(i, &value)| Value {
                    seed: (i + 1).to_string(),
                    run: format!("r{i}"),
                    value,
                })
                .collect();
            let (r, spec) = source_by_k("cut", vec![g]);
            bars(&r.pivot(&spec)).unwrap()
        };
        let wide = with([-0.245, 1.245]);
        assert_eq!(wide, with([0.0, 1.0]));
        assert!(wide.contains("cut at 0 and 1"));
    }

    /// With `mean_row`, the bars end with the columns' means over the rows (outlined, no
    /// whiskers), as the table's "mean of rows" line.
    #[test]
    fn bars_end_with_the_mean_of_rows_when_the_file_asks() {
        let (r, mut spec) = report();
        let without = bars(&r.pivot(&spec)).unwrap();
        spec.mean_row = true;
        let p = r.pivot(&spec);
        assert_eq!(
            p.mean_of_rows(&["1".to_string()]),
            Some(((0.2 + 0.1) / 2.0, 2))
        );
        let with = bars(&p).unwrap();
        assert!(with.contains(">mean of rows</text>") && !without.contains("mean of rows"));
        assert_eq!(
            with.matches("<rect").count(),
            without.matches("<rect").count() + 2,
            "one bar per column"
        );
    }

    #[test]
    fn plots_that_do_not_fit_the_layout_are_not_drawn() {
        let (r, mut spec) = report();
        spec.columns.clear();
        let p = r.pivot(&spec);
        assert!(heatmap(&p).is_none() && curve(&p).is_none());
        assert!(bars(&p).is_some());
    }

    #[test]
    fn plots_by_draws_one_set_per_value_on_one_scale() {
        let (mut r, mut spec) = report();
        // A second method, 0.3 better everywhere.
        let mut prompt = r.groups.clone();
        for g in &mut r.groups {
            g.axes.insert("method".into(), "plain".into());
        }
        for g in &mut prompt {
            g.axes.insert("method".into(), "prompt".into());
            g.mean = g.mean.map(|m| m + 0.3);
        }
        r.groups.extend(prompt);
        r.axes.push("method".into());
        spec.rows = vec!["method".into(), "src".into()];
        spec.plots_by = vec!["method".into()];
        let dir = std::env::temp_dir().join(format!("nerlab-plots-by-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("heatmap.png"), b"stale").unwrap();
        let written = write_plots(&r, &spec, &dir).unwrap();
        assert_eq!(
            written.len(),
            2 * 3 * 2,
            "2 methods x 3 plots x svg and png"
        );
        assert!(
            !dir.join("heatmap.png").exists(),
            "a plot of the old layout stays"
        );
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
        let (plain, better) = (
            read("heatmap-method-plain.svg"),
            read("heatmap-method-prompt.svg"),
        );
        assert!(
            plain.contains("transfer &lt;x&gt; (method = plain)"),
            "{plain}"
        );
        // Rows are the sources only; both heatmaps are on the scale of the whole report.
        assert!(plain.contains(">en</text>") && !plain.contains(">plain / en</text>"));
        for h in [&plain, &better] {
            assert!(
                h.contains(">0.800</text>") && h.contains(">0.100</text>"),
                "{h}"
            );
        }
        assert!(read("curve-method-prompt.svg").contains("<polyline"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_png_is_the_svg_rendered_with_text() {
        let (r, spec) = report();
        let svg = heatmap(&r.pivot(&spec)).unwrap();
        let bytes = png(&svg).unwrap();
        let img = image::load_from_memory(&bytes).unwrap().to_rgb8();
        assert!(img.width() > 400 && img.height() > 200);
        // Text was drawn: the title's row has dark pixels.
        let dark = (0..img.width())
            .filter(|&x| img.get_pixel(x, 40)[0] < 100)
            .count();
        assert!(dark > 20, "{dark} dark pixels in the title row");
        assert_eq!(nice_ceiling(0.43), 0.5);
        assert_eq!(nice_ceiling(0.91), 1.0);
    }
}
