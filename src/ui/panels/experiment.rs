//! The experiment page: the experiments registered in the runs folder (`<out>/experiment.json`,
//! written by `nerlab experiment run|submit|report`) or opened from a file; the state of every run
//! of the plan, progress with an ETA, and the pivot table coloured as a heatmap, filling in as runs
//! finish. A cell opens its runs (curves overlaid). Run and Stop start and stop `nerlab
//! experiment run` as a child process, which resumes what was interrupted; the page reads what
//! the command line reads (`status --json`, `report --json --no-files`) on a short-lived thread
//! every few seconds, so it shows a Slurm-submitted experiment the same way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use egui::{RichText, Ui};
use serde::{Deserialize, Serialize};

use super::super::context::{Action, PanelCtx};
use super::super::theme;
use crate::experiment::{ExperimentFile, Registration};

/// How often the page reads the experiment's state while it is shown.
const POLL_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ExperimentPageState {
    /// The experiment shown.
    pub open: Option<Registration>,
    /// Runs trained at once when started from here.
    pub jobs: usize,
    /// The nerlab executable the page runs (default: this one; tests name the binary).
    #[serde(skip)]
    pub exe: Option<PathBuf>,
    #[serde(skip)]
    live: Live,
}

impl Default for ExperimentPageState {
    fn default() -> Self {
        Self {
            open: None,
            jobs: 1,
            exe: None,
            live: Live::default(),
        }
    }
}

impl ExperimentPageState {
    /// Shows `r`'s page.
    pub fn show(&mut self, r: Registration) {
        if self.open.as_ref() != Some(&r) {
            self.open = Some(r);
            self.live.forget();
        }
    }

    /// The experiments found in the runs folder at the last look.
    pub fn found(&self) -> Vec<Registration> {
        self.live
            .data()
            .map(|d| d.found.clone())
            .unwrap_or_default()
    }

    fn exe(&self) -> PathBuf {
        self.exe
            .clone()
            .or_else(|| std::env::current_exe().ok())
            .unwrap_or_else(|| PathBuf::from("nerlab"))
    }

    /// Opens the experiment in `file` (read from the current directory, as the command line does).
    pub fn open_file(&mut self, file: &Path) -> anyhow::Result<()> {
        let exp = ExperimentFile::load(file)?;
        self.open = Some(Registration::of(file, &exp)?);
        self.live.forget();
        Ok(())
    }
}

/// One run of the plan, from `nerlab experiment status --json`.
#[derive(Debug, Clone, Default)]
struct PointRow {
    axes: BTreeMap<String, String>,
    dir: PathBuf,
    state: String,
    slurm: Option<String>,
}

/// One setting's statistics, from `nerlab experiment report --json`.
#[derive(Debug, Clone, Default)]
struct Cell {
    axes: BTreeMap<String, String>,
    n: usize,
    mean: Option<f64>,
    sd: Option<f64>,
    /// The 95 % t interval of the mean over seeds (none under two).
    ci95: Option<[f64; 2]>,
    runs: Vec<String>,
}

#[derive(Debug, Clone, Default)]
struct Results {
    metric: String,
    axes: Vec<String>,
    rows: Vec<String>,
    columns: Vec<String>,
    cells: Vec<Cell>,
}

/// What the last look found.
#[derive(Debug, Default)]
struct LiveData {
    found: Vec<Registration>,
    /// The experiment the points and results are of.
    of: Option<PathBuf>,
    axes: Vec<String>,
    points: Vec<PointRow>,
    results: Option<Results>,
    error: Option<String>,
    polled: Option<Instant>,
    polling: bool,
    /// Done runs when the results were last read (they are read again when this changes).
    done_at_results: Option<usize>,
    /// When this window started the experiment, and how many runs were done then (the ETA).
    started: Option<(Instant, usize)>,
    /// Counts [`Live::forget`]s: a poll started before the last one (of the experiment shown
    /// before) brings back only the list of experiments, never its points or results.
    generation: u64,
}

/// The page's live part: shared with the polling thread, never persisted.
#[derive(Clone, Default)]
struct Live {
    data: Arc<Mutex<LiveData>>,
    /// The runner this window started, and the experiment file it runs.
    child: Arc<Mutex<Option<(PathBuf, Child)>>>,
    /// A file picked in the dialog (which runs on its own thread), to open at the next frame.
    picked: Arc<Mutex<Option<PathBuf>>>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Live")
    }
}

impl Live {
    fn data(&self) -> Option<std::sync::MutexGuard<'_, LiveData>> {
        self.data.lock().ok()
    }

    fn forget(&self) {
        if let Some(mut d) = self.data() {
            let found = std::mem::take(&mut d.found);
            *d = LiveData {
                found,
                generation: d.generation + 1,
                ..LiveData::default()
            };
        }
    }

    /// The experiment file the runner this window started still runs (reaped when it ended).
    fn running(&self) -> Option<PathBuf> {
        let mut c = self.child.lock().ok()?;
        match c.as_mut().map(|(f, child)| (f.clone(), child.try_wait())) {
            Some((file, Ok(None))) => Some(file),
            Some(_) => {
                *c = None;
                None
            }
            None => None,
        }
    }

    /// Looks again (on a thread) when the last look is older than [`POLL_EVERY`].
    fn poll(
        &self,
        exe: PathBuf,
        runs_dir: &Path,
        open: Option<&Registration>,
        ctx: &egui::Context,
    ) {
        let generation = {
            let Some(mut d) = self.data() else { return };
            if d.polling || d.polled.is_some_and(|t| t.elapsed() < POLL_EVERY) {
                return;
            }
            d.polling = true;
            d.generation
        };
        let (live, dir, open, ctx) = (
            self.clone(),
            runs_dir.to_path_buf(),
            open.cloned(),
            ctx.clone(),
        );
        let spawned = std::thread::Builder::new()
            .name("nerlab-experiment-poll".into())
            .spawn(move || {
                let found = Registration::find(&dir);
                let looked = open.as_ref().map(|r| {
                    let done_before = live.data().and_then(|d| {
                        (d.of.as_deref() == Some(r.file.as_path()))
                            .then_some(d.done_at_results)
                            .flatten()
                    });
                    look(&exe, r, done_before)
                });
                if let Some(mut d) = live.data() {
                    d.found = found;
                    if d.generation != generation {
                        // Another experiment was opened meanwhile, and its own poll decides.
                        ctx.request_repaint();
                        return;
                    }
                    d.polling = false;
                    d.polled = Some(Instant::now());
                    if let (Some(r), Some(looked)) = (open, looked) {
                        if d.of.as_deref() != Some(r.file.as_path()) {
                            d.results = None;
                            d.started = None;
                        }
                        d.of = Some(r.file);
                        match looked {
                            Ok((axes, points, results)) => {
                                d.error = None;
                                d.axes = axes;
                                let done = points.iter().filter(|p| p.state == "done").count();
                                d.points = points;
                                if let Some(res) = results {
                                    d.results = Some(res);
                                    d.done_at_results = Some(done);
                                }
                            }
                            Err(e) => d.error = Some(e),
                        }
                    }
                }
                ctx.request_repaint();
            });
        if spawned.is_err()
            && let Some(mut d) = self.data()
        {
            d.polling = false;
        }
    }
}

/// `nerlab experiment ARGS` run as the command line would (from the experiment's directory).
fn nerlab(exe: &Path, r: &Registration, args: &[&str]) -> Result<serde_json::Value, String> {
    let out = Command::new(exe)
        .arg("experiment")
        .args(args)
        .arg(&r.file)
        .arg("--json")
        .current_dir(&r.cwd)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {}: {e}", exe.display()))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

type Looked = (Vec<String>, Vec<PointRow>, Option<Results>);

/// The experiment's points, and its results when the number of done runs changed.
fn look(exe: &Path, r: &Registration, done_before: Option<usize>) -> Result<Looked, String> {
    let status = nerlab(exe, r, &["status"])?;
    let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
    let axes_of = |v: &serde_json::Value| -> BTreeMap<String, String> {
        v.as_object()
            .map(|o| {
                o.iter()
                    .filter_map(|(k, v)| Some((k.clone(), text(v)?)))
                    .collect()
            })
            .unwrap_or_default()
    };
    let points: Vec<PointRow> = status
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| PointRow {
            axes: axes_of(&p["axes"]),
            dir: PathBuf::from(text(&p["dir"]).unwrap_or_default()),
            state: text(&p["state"]).unwrap_or_default(),
            slurm: text(&p["slurm"]["state"]).map(|s| s.to_lowercase()),
        })
        .collect();
    // Every axis of any point (a stage's points have their own), by name.
    let mut axes: Vec<String> = Vec::new();
    for p in &points {
        for k in p.axes.keys() {
            if !axes.contains(k) {
                axes.push(k.clone());
            }
        }
    }
    axes.sort();
    let done = points.iter().filter(|p| p.state == "done").count();
    let results = if done_before == Some(done) {
        None
    } else {
        let rep = nerlab(exe, r, &["report", "--no-files"])?;
        let list = |v: &serde_json::Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(text)
                .collect()
        };
        let axes = list(&rep["axes"]);
        let cells = rep["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|g| Cell {
                axes: axes
                    .iter()
                    .filter_map(|a| Some((a.clone(), text(&g[a])?)))
                    .collect(),
                n: g["n"].as_u64().unwrap_or(0) as usize,
                mean: g["mean"].as_f64(),
                sd: g["sd"].as_f64(),
                ci95: interval(&g["ci95"]),
                runs: g["values"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| text(&v["run"]))
                    .collect(),
            })
            .collect();
        Some(Results {
            metric: text(&rep["metric"]).unwrap_or_default(),
            rows: list(&rep["rows"]),
            columns: list(&rep["columns"]),
            axes,
            cells,
        })
    };
    Ok((axes, points, results))
}

/// Starts `nerlab experiment run FILE --jobs N --quiet` in the experiment's directory.
fn start(exe: &Path, r: &Registration, jobs: usize) -> std::io::Result<Child> {
    Command::new(exe)
        .args(["experiment", "run"])
        .arg(&r.file)
        .args(["--jobs", &jobs.max(1).to_string(), "--quiet"])
        .current_dir(&r.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

/// Stops the child as Ctrl-C does (every run checkpoints; running again resumes).
fn stop(child: &Child) {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
}

pub fn ui(
    s: &mut ExperimentPageState,
    ui: &mut Ui,
    cx: &PanelCtx<'_>,
    runs_dir: &Path,
) -> Vec<Action> {
    let mut actions = Vec::new();
    s.live.poll(s.exe(), runs_dir, s.open.as_ref(), ui.ctx());
    ui.ctx().request_repaint_after(POLL_EVERY);
    chooser_ui(s, ui, runs_dir);
    let Some(open) = s.open.clone() else {
        ui.add_space(8.0);
        ui.label(
            "No experiment open. `nerlab experiment new ablation` writes a file with a paper's \
             design; `nerlab experiment run FILE` registers it in its out folder, which this \
             page lists when it lies in the runs folder. Or open a file above.",
        );
        return actions;
    };
    ui.separator();
    controls_ui(s, ui, &open, &mut actions);
    let Some(d) = s.live.data() else {
        return actions;
    };
    if d.of.as_deref() != Some(open.file.as_path()) {
        ui.label(RichText::new("reading the plan…").weak());
        if let Some(e) = &d.error {
            super::super::widgets::error_text_ui(ui, e, cx.theme);
        }
        return actions;
    }
    if let Some(e) = &d.error {
        super::super::widgets::error_text_ui(ui, e, cx.theme);
    }
    progress_ui(&d, ui);
    egui::ScrollArea::vertical()
        .id_salt("experiment-page")
        .show(ui, |ui| {
            if let Some(res) = &d.results {
                egui::CollapsingHeader::new(
                    RichText::new(format!("Results: {}", res.metric)).strong(),
                )
                .default_open(true)
                .show(ui, |ui| results_ui(res, &open.out, ui, cx, &mut actions));
            }
            egui::CollapsingHeader::new(
                RichText::new(format!("Plan: {} runs", d.points.len())).strong(),
            )
            .default_open(true)
            .show(ui, |ui| plan_ui(&d, ui, cx, &mut actions));
        });
    actions
}

fn chooser_ui(s: &mut ExperimentPageState, ui: &mut Ui, runs_dir: &Path) {
    let found = s.found();
    ui.horizontal(|ui| {
        ui.heading("Experiment");
        let shown = s
            .open
            .as_ref()
            .map_or("none".to_string(), |r| r.name.clone());
        egui::ComboBox::new("experiment-choice", "in the runs folder")
            .selected_text(shown)
            .show_ui(ui, |ui| {
                for r in &found {
                    let on = s.open.as_ref() == Some(r);
                    if ui.selectable_label(on, &r.name).clicked() {
                        s.show(r.clone());
                    }
                }
                if found.is_empty() {
                    ui.label(format!("none registered in {}", runs_dir.display()));
                }
            });
        if ui
            .button("open file…")
            .on_hover_text("an experiment file (TOML)")
            .clicked()
        {
            // Dialogs block: one runs on a thread of its own, as the launcher's do.
            let (picked, ctx) = (s.live.picked.clone(), ui.ctx().clone());
            let _ = std::thread::Builder::new()
                .name("nerlab-dialog".into())
                .spawn(move || {
                    let f = rfd::FileDialog::new()
                        .add_filter("experiment", &["toml"])
                        .pick_file();
                    if let (Some(f), Ok(mut p)) = (f, picked.lock()) {
                        *p = Some(f);
                        ctx.request_repaint();
                    }
                });
        }
        let picked = s.live.picked.lock().ok().and_then(|mut p| p.take());
        if let Some(f) = picked
            && let Err(e) = s.open_file(&f)
        {
            s.live.forget();
            if let Some(mut d) = s.live.data() {
                d.error = Some(format!("{e:#}"));
            }
        }
        if let Some(r) = &s.open {
            ui.label(RichText::new(r.file.display().to_string()).weak().small());
        }
    });
}

fn controls_ui(
    s: &mut ExperimentPageState,
    ui: &mut Ui,
    open: &Registration,
    actions: &mut Vec<Action>,
) {
    let running = s.live.running();
    ui.horizontal(|ui| {
        if running.as_deref() == Some(open.file.as_path()) {
            if ui
                .button("■ Stop")
                .on_hover_text("every run checkpoints; Run resumes them")
                .clicked()
                && let Ok(c) = s.live.child.lock()
                && let Some((_, child)) = c.as_ref()
            {
                stop(child);
            }
            ui.spinner();
            ui.label("running from this window");
        } else if let Some(other) = running {
            ui.label(format!(
                "this window runs {}; stop it on its page first",
                other.display()
            ));
        } else {
            let go = ui
                .button("▶ Run")
                .on_hover_text("train every run not done; resumes the interrupted");
            ui.add(
                egui::DragValue::new(&mut s.jobs)
                    .range(1..=16)
                    .prefix("jobs "),
            );
            if go.clicked() {
                match start(&s.exe(), open, s.jobs) {
                    Ok(child) => {
                        if let Ok(mut c) = s.live.child.lock() {
                            *c = Some((open.file.clone(), child));
                        }
                        if let Some(mut d) = s.live.data() {
                            let done = d.points.iter().filter(|p| p.state == "done").count();
                            d.started = Some((Instant::now(), done));
                            d.polled = None;
                        }
                    }
                    Err(e) => {
                        if let Some(mut d) = s.live.data() {
                            d.error = Some(format!("could not start nerlab experiment run: {e}"));
                        }
                    }
                }
            }
        }
        if ui
            .button("show its runs")
            .on_hover_text("load the experiment's runs into the run list")
            .clicked()
        {
            actions.push(Action::ScanRuns(open.out.clone()));
        }
    });
}

fn progress_ui(d: &LiveData, ui: &mut Ui) {
    let count = |s: &str| d.points.iter().filter(|p| p.state == s).count();
    let (done, running, failed, total) = (
        count("done"),
        count("running"),
        count("failed"),
        d.points.len(),
    );
    let queued = d.points.iter().filter(|p| p.slurm.is_some()).count();
    let mut text = format!("{done}/{total} runs done · {running} running · {failed} failed");
    if queued > 0 {
        text += &format!(" · {queued} in the Slurm queue");
    }
    if let Some((t, done_then)) = d.started
        && done > done_then
        && done < total
    {
        let per_run = t.elapsed().as_secs_f64() / (done - done_then) as f64;
        let left = per_run * (total - done) as f64;
        text += &format!(" · ETA {}", human(left));
    }
    ui.add(
        egui::ProgressBar::new(done as f32 / total.max(1) as f32)
            .text(text)
            .desired_height(18.0),
    );
}

fn human(secs: f64) -> String {
    if secs < 90.0 {
        format!("{secs:.0} s")
    } else if secs < 5400.0 {
        format!("{:.0} min", secs / 60.0)
    } else {
        format!("{:.1} h", secs / 3600.0)
    }
}

/// The pivot table as a heatmap: each cell's mean ± sd (n), coloured by its mean; a click opens
/// the cell's runs in the curves panel, overlaid.
fn results_ui(
    res: &Results,
    out: &Path,
    ui: &mut Ui,
    cx: &PanelCtx<'_>,
    actions: &mut Vec<Action>,
) {
    let rows_axes: Vec<String> = if res.rows.is_empty() && res.columns.is_empty() {
        res.axes.clone()
    } else {
        res.rows.clone()
    };
    let key = |c: &Cell, axes: &[String]| -> Vec<String> {
        axes.iter()
            .map(|a| c.axes.get(a).cloned().unwrap_or_default())
            .collect()
    };
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut cols: Vec<Vec<String>> = Vec::new();
    for c in &res.cells {
        let (r, k) = (key(c, &rows_axes), key(c, &res.columns));
        if !rows.contains(&r) {
            rows.push(r);
        }
        if !cols.contains(&k) {
            cols.push(k);
        }
    }
    let means: Vec<f64> = res.cells.iter().filter_map(|c| c.mean).collect();
    let lo = means.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = means.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let label = |k: &[String]| {
        if k.is_empty() {
            "all".to_string()
        } else {
            k.join(" / ")
        }
    };
    egui::Grid::new("experiment-pivot")
        .spacing([4.0, 4.0])
        .show(ui, |ui| {
            let corner = if res.columns.is_empty() {
                rows_axes.join(" / ")
            } else {
                format!("{} \\ {}", rows_axes.join(" / "), res.columns.join(" / "))
            };
            ui.label(RichText::new(corner).strong());
            for k in &cols {
                ui.label(RichText::new(label(k)).strong());
            }
            ui.end_row();
            for r in &rows {
                ui.label(label(r));
                for k in &cols {
                    let cell = res
                        .cells
                        .iter()
                        .find(|c| &key(c, &rows_axes) == r && &key(c, &res.columns) == k);
                    cell_ui(ui, cell, out, (lo, hi), cx, actions);
                }
                ui.end_row();
            }
        });
    ui.label(
        RichText::new(
            "mean ± sample sd over seeds (n) of the best dev evaluation; click a cell for its runs",
        )
        .weak()
        .small(),
    );
}

fn cell_ui(
    ui: &mut Ui,
    cell: Option<&Cell>,
    out: &Path,
    (lo, hi): (f64, f64),
    cx: &PanelCtx<'_>,
    actions: &mut Vec<Action>,
) {
    let size = egui::vec2(128.0, 40.0);
    let (rect, response) = ui.allocate_exact_size(size, egui::Sense::click());
    let Some(c) = cell.filter(|c| c.mean.is_some()) else {
        ui.painter()
            .rect_filled(rect, 3.0, ui.visuals().faint_bg_color);
        ui.painter().text(
            rect.center(),
            egui::Align2::CENTER_CENTER,
            "pending",
            egui::FontId::proportional(12.0),
            ui.visuals().weak_text_color(),
        );
        return;
    };
    let mean = c.mean.unwrap_or(0.0);
    let t = if hi > lo {
        ((mean - lo) / (hi - lo)) as f32
    } else {
        0.5
    };
    ui.painter()
        .rect_filled(rect, 3.0, theme::heat(t, cx.theme));
    let ink = theme::heat_text(t, cx.theme);
    let sd = c.sd.map_or(String::new(), |s| format!(" ± {s:.3}"));
    let text = format!("{mean:.4}{sd}\n(n={})", c.n);
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &text));
    ui.painter().text(
        rect.center(),
        egui::Align2::CENTER_CENTER,
        &text,
        egui::FontId::proportional(13.0),
        ink,
    );
    if response.hovered() {
        ui.painter().rect_stroke(
            rect,
            3.0,
            (1.5, ui.visuals().strong_text_color()),
            egui::StrokeKind::Inside,
        );
    }
    if response.on_hover_text(cell_hover(c)).clicked() {
        actions.push(Action::ShowRuns(
            c.runs.iter().map(|r| out.join(r)).collect(),
        ));
    }
}

/// `[lo, hi]` from the report's JSON (null under two seeds).
fn interval(v: &serde_json::Value) -> Option<[f64; 2]> {
    Some([v.get(0)?.as_f64()?, v.get(1)?.as_f64()?])
}

/// A heatmap cell's hover: its 95 % interval (from two seeds on) and its runs.
fn cell_hover(c: &Cell) -> String {
    let interval = c.ci95.map_or(String::new(), |[lo, hi]| {
        format!("95 % t interval of the mean: [{lo:.4}, {hi:.4}]\n")
    });
    format!("{interval}{} runs: {}", c.runs.len(), c.runs.join(", "))
}

fn plan_ui(d: &LiveData, ui: &mut Ui, cx: &PanelCtx<'_>, actions: &mut Vec<Action>) {
    egui::Grid::new("experiment-plan")
        .striped(true)
        .spacing([12.0, 2.0])
        .show(ui, |ui| {
            for a in &d.axes {
                ui.label(RichText::new(a).strong());
            }
            ui.label(RichText::new("state").strong());
            ui.label(RichText::new("run").strong());
            ui.end_row();
            for p in &d.points {
                for a in &d.axes {
                    ui.label(p.axes.get(a).cloned().unwrap_or_default());
                }
                let colour = match p.state.as_str() {
                    "done" => egui::Color32::from_rgb(0, 158, 115),
                    "running" => egui::Color32::from_rgb(0, 114, 178),
                    "failed" => theme::error_text(cx.theme),
                    "interrupted" => egui::Color32::from_rgb(230, 159, 0),
                    _ => ui.visuals().weak_text_color(),
                };
                let state = match &p.slurm {
                    Some(q) if p.state != "running" => format!("{} (slurm: {q})", p.state),
                    _ => p.state.clone(),
                };
                ui.label(RichText::new(state).color(colour));
                let name = p
                    .dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if ui
                    .link(&name)
                    .on_hover_text(p.dir.display().to_string())
                    .clicked()
                {
                    actions.push(Action::ShowRuns(vec![p.dir.clone()]));
                }
                ui.end_row();
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cells_hover_gives_its_interval_from_two_seeds_on() {
        let group = serde_json::json!({"ci95": [0.25, 0.75]});
        let mut c = Cell {
            ci95: interval(&group["ci95"]),
            runs: vec!["a".into(), "b".into()],
            ..Cell::default()
        };
        assert_eq!(
            cell_hover(&c),
            "95 % t interval of the mean: [0.2500, 0.7500]\n2 runs: a, b"
        );
        c.ci95 = interval(&serde_json::json!({"ci95": null})["ci95"]);
        assert_eq!(cell_hover(&c), "2 runs: a, b");
    }
}
