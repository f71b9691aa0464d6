//! The workbench: owns the persisted UI state, the run store and the worker handle. Worker events
//! are drained in `logic()` (which eframe calls even while the window is hidden) within a time
//! budget; panels lay out from the store and return actions, applied after layout. Nothing heavier
//! than drawing happens on this thread: training, tagging and file reading run on the worker, file
//! writing and dialogs on short-lived threads.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, unbounded};
use egui::{RichText, Ui};

use super::context::{Action, Export, PanelCtx, PathTarget};
use super::panels::{
    attention, calibration, confusion, curves, errors, experiment, experiments, launcher, tagger,
};
use super::state::{PanelKind, UiState};
use super::store::{Phase, RunStore};
use super::theme::{self, Theme};
use crate::protocol::{Command, Event, RunId, TrainRequest};
use crate::train::RunConfig;
use crate::worker::WorkerHandle;

/// A path chosen in a file dialog, for a launcher field.
type Picked = (PathTarget, PathBuf);

/// How often runs that other processes train are checked (a killed one stops showing as running).
const CHECK_RUNS_EVERY: Duration = Duration::from_secs(3);
/// How long the window keeps polling for the worker's answers after sending it a command
/// (loading a run takes well under a second; an evaluation's panels ask for repaints themselves).
const ANSWER_WAIT: Duration = Duration::from_secs(10);

pub struct NerlabApp {
    pub state: UiState,
    pub store: RunStore,
    worker: Option<WorkerHandle>,
    next_id: RunId,
    picks: (Sender<Picked>, Receiver<Picked>),
    notices: Vec<(String, Instant)>,
    requested: HashSet<PathBuf>,
    /// When runs trained by other processes were last checked.
    last_check: Instant,
    /// When a command was last sent to the worker: its answer arrives without any input, so the
    /// window keeps polling for a while after (a fresh window showed no runs until the mouse
    /// moved).
    last_sent: Instant,
    /// The banner message last copied, and when (its button says so for a moment).
    copied: Option<(usize, Instant)>,
    /// CPU milliseconds of recent frames, when `--frame-stats` asked for a readout.
    pub frame_ms: Option<std::collections::VecDeque<f32>>,
    /// Commands waiting for room in the worker's queue (256): a scan of a folder of many runs
    /// asks for each, and the window must not wait for the worker to catch up (it froze for as
    /// long as the worker took to read the runs beyond the 256th).
    outbox: std::collections::VecDeque<Command>,
    /// The runs folder as it is being typed: applied (and the folder scanned) when the field
    /// loses focus. Rebuilt from the state each frame, the text lost every keystroke.
    runs_dir_edit: Option<String>,
}

impl NerlabApp {
    /// The app with its state, a store, and (normally) a live worker.
    pub fn with_parts(state: UiState, store: RunStore, worker: Option<WorkerHandle>) -> Self {
        Self {
            state,
            store,
            worker,
            next_id: 1,
            picks: unbounded(),
            notices: Vec::new(),
            requested: HashSet::new(),
            last_check: Instant::now(),
            last_sent: Instant::now(),
            copied: None,
            frame_ms: None,
            runs_dir_edit: None,
            outbox: std::collections::VecDeque::new(),
        }
    }

    /// The app eframe starts: persisted state (unless `launch.fresh`), fonts, a worker, and the
    /// runs found on disk.
    pub fn new(cc: &eframe::CreationContext<'_>, launch: &super::Launch) -> Self {
        super::fonts::install(&cc.egui_ctx);
        let mut state: UiState = if launch.fresh {
            UiState::default()
        } else {
            cc.storage
                .and_then(|s| eframe::get_value(s, eframe::APP_KEY))
                .unwrap_or_default()
        };
        if let Some(dir) = &launch.runs_dir {
            state.runs_dir = Some(dir.clone());
        }
        if let Some(panel) = launch.panel {
            state.panel = panel;
        }
        if let Some(name) = &launch.select {
            state.selected = Some(name.clone());
        }
        let mut opened = None;
        if let Some(file) = &launch.experiment {
            opened = state.experiment.open_file(file).err();
            state.panel = PanelKind::Experiment;
        }
        cc.egui_ctx.set_visuals(state.theme.visuals());
        let mut app = Self::with_parts(state, RunStore::default(), WorkerHandle::spawn(None).ok());
        app.frame_ms = launch.frame_stats.then(std::collections::VecDeque::new);
        if let Some(e) = opened {
            app.store.banners.push(format!("{e:#}"));
        }
        app.scan_runs();
        if let (Some(model), Some(data)) = (&launch.open_model, &launch.model_data) {
            app.store.opening(model);
            app.send(Command::OpenModel {
                model: model.clone(),
                data: data.clone(),
                labels: launch.model_labels.clone(),
                torch: launch.model_torch.clone(),
            });
            app.state.selected = Some(super::store::opened_name(model));
        }
        app
    }

    pub fn worker_alive(&self) -> bool {
        self.worker.as_ref().is_some_and(WorkerHandle::alive)
    }

    fn send(&mut self, cmd: Command) {
        self.last_sent = Instant::now();
        self.outbox.push_back(cmd);
        self.flush_outbox();
    }

    /// Hands waiting commands to the worker, in order, as far as its queue has room; never waits.
    fn flush_outbox(&mut self) {
        let Some(w) = &self.worker else {
            if !self.outbox.is_empty() {
                self.outbox.clear();
                self.store.banners.push("no worker is running".into());
            }
            return;
        };
        while let Some(cmd) = self.outbox.pop_front() {
            match w.try_send(cmd) {
                Ok(Ok(())) => {}
                Ok(Err(full)) => {
                    self.outbox.push_front(full);
                    break;
                }
                Err(e) => {
                    self.outbox.clear();
                    self.store.banners.push(e);
                    break;
                }
            }
        }
    }

    /// Starts a run (as the launcher's start button does).
    pub fn launch(&mut self, config: RunConfig) {
        let ctx = egui::Context::default();
        self.apply(Action::Launch(Box::new(config)), &ctx);
    }

    /// Asks the worker to list the runs folder; its answer, [`Event::RunsFound`], has the runs
    /// not yet read loaded (see [`Self::pump`]). The UI thread never reads the directory itself.
    pub fn scan_runs(&mut self) {
        let dir = self.state.runs_dir();
        self.send(Command::ScanRuns { dir });
    }

    /// Asks the worker to read each of `runs` not asked for before (once per run).
    fn load_new_runs(&mut self, runs: Vec<PathBuf>) {
        for dir in runs {
            if self.requested.insert(dir.clone()) {
                self.send(Command::LoadRun { dir });
            }
        }
    }

    /// Applies waiting worker events for at most `budget`; returns how many.
    pub fn pump(&mut self, budget: Duration) -> usize {
        let start = Instant::now();
        let mut n = 0;
        while start.elapsed() < budget {
            let Some(event) = self.worker.as_ref().and_then(WorkerHandle::try_recv) else {
                break;
            };
            n += 1;
            if let Event::RunsFound { runs, .. } = event {
                self.load_new_runs(runs);
                continue;
            }
            // A new best model or a finished run: read its dev predictions for browsing.
            let refresh = match &event {
                Event::Evaluated { id, best: true, .. } | Event::Finished { id, .. } => {
                    self.store.by_id(*id).and_then(|r| r.dir.clone())
                }
                _ => None,
            };
            let finished_dir = match &event {
                Event::Finished { dir, .. } => Some(dir.clone()),
                // A run another process trains has changed state (finished, failed, stopped):
                // read it again, or its curves and scores stay as they were when first listed.
                Event::RunStatus { dir, state, .. } => self
                    .store
                    .elsewhere(dir)
                    .filter(|r| r.phase != Phase::Active(*state))
                    .map(|_| dir.clone()),
                _ => None,
            };
            self.store.apply(event);
            if let Some(dir) = refresh.or(finished_dir) {
                self.send(Command::LoadRun { dir });
            }
        }
        n
    }

    /// Draws the whole workbench into `ui`.
    pub fn ui_root(&mut self, ui: &mut Ui) {
        let mut actions = Vec::new();
        egui::Panel::top("nerlab-top").show(ui, |ui| self.top_bar(ui));
        if !self.store.banners.is_empty() || (self.worker.is_some() && !self.worker_alive()) {
            egui::Panel::top("nerlab-banner")
                .frame(
                    egui::Frame::new()
                        .fill(theme::banner_background(self.state.theme))
                        .inner_margin(6.0),
                )
                .show(ui, |ui| self.banner(ui));
        }
        egui::Panel::left("nerlab-runs")
            .default_size(230.0)
            .show(ui, |ui| self.run_list(ui, &mut actions));
        egui::CentralPanel::default().show(ui, |ui| {
            let cx = PanelCtx {
                store: &self.store,
                theme: self.state.theme,
                selected: self
                    .state
                    .selected
                    .as_ref()
                    .and_then(|n| self.store.runs.iter().find(|r| &r.name == n)),
            };
            let runs_dir = self.state.runs_dir();
            let s = &mut self.state;
            let acts = match s.panel {
                PanelKind::Launcher => launcher::ui(&mut s.launcher, ui, &cx),
                PanelKind::Curves => curves::ui(&mut s.curves, ui, &cx),
                PanelKind::Confusion => confusion::ui(&mut s.confusion, ui, &cx),
                PanelKind::Errors => errors::ui(&mut s.errors, ui, &cx),
                PanelKind::Attention => attention::ui(&mut s.attention, ui, &cx),
                PanelKind::Calibration => calibration::ui(ui, &cx),
                PanelKind::Tagger => tagger::ui(&mut s.tagger, ui, &cx),
                PanelKind::Table => experiments::ui(&mut s.experiments, ui, &cx),
                PanelKind::Experiment => experiment::ui(&mut s.experiment, ui, &cx, &runs_dir),
            };
            actions.extend(acts);
        });
        let ctx = ui.ctx().clone();
        for a in actions {
            self.apply(a, &ctx);
        }
        self.notices
            .retain(|(_, t)| t.elapsed() < Duration::from_secs(6));
    }

    fn top_bar(&mut self, ui: &mut Ui) {
        ui.horizontal(|ui| {
            ui.heading(RichText::new("nerlab").strong());
            ui.separator();
            for (kind, name) in PanelKind::ALL {
                ui.selectable_value(&mut self.state.panel, kind, name);
            }
            ui.separator();
            let dark = self.state.theme.is_dark();
            if ui
                .button(if dark { "☀ light" } else { "🌙 dark" })
                .clicked()
            {
                self.state.theme = if dark { Theme::Light } else { Theme::Dark };
                ui.ctx().set_visuals(self.state.theme.visuals());
            }
            for (text, _) in &self.notices {
                ui.label(RichText::new(text).weak());
            }
            if let Some(times) = &self.frame_ms {
                let mut v: Vec<f32> = times.iter().copied().collect();
                v.sort_by(f32::total_cmp);
                let p = |q: f32| {
                    v.get(((v.len().saturating_sub(1)) as f32 * q) as usize)
                        .copied()
                        .unwrap_or(0.0)
                };
                ui.label(
                    RichText::new(format!(
                        "frame CPU p50 {:.1} ms, p99 {:.1} ms ({} frames)",
                        p(0.5),
                        p(0.99),
                        v.len()
                    ))
                    .monospace(),
                );
            }
        });
    }

    fn banner(&mut self, ui: &mut Ui) {
        if self.worker.is_some() && !self.worker_alive() {
            ui.horizontal(|ui| {
                ui.label(RichText::new("The background worker has stopped.").strong());
                if ui.button("restart it").clicked() {
                    self.worker = WorkerHandle::spawn(None).ok();
                    self.requested.clear();
                    self.scan_runs();
                }
            });
        }
        let mut dismiss = None;
        let mut copy = None;
        // Long messages (a failed run's whole error chain) wrap, and scroll past a few lines.
        egui::ScrollArea::vertical()
            .id_salt("banner-messages")
            .max_height(160.0)
            .show(ui, |ui| {
                for (i, b) in self.store.banners.iter().enumerate() {
                    ui.horizontal(|ui| {
                        if ui.small_button("dismiss").clicked() {
                            dismiss = Some(i);
                        }
                        let copied = self
                            .copied
                            .is_some_and(|(j, at)| j == i && at.elapsed() < Duration::from_secs(2));
                        let label = if copied { "copied ✔" } else { "copy" };
                        if ui
                            .small_button(label)
                            .on_hover_text("copy the whole message")
                            .clicked()
                        {
                            copy = Some(i);
                        }
                        let text = egui::Label::new(RichText::new(format!("⚠ {b}")).strong())
                            .wrap()
                            .sense(egui::Sense::click());
                        if ui.add(text).on_hover_text("click to copy").clicked() {
                            copy = Some(i);
                        }
                    });
                }
            });
        if let Some(i) = copy {
            ui.ctx().copy_text(self.store.banners[i].clone());
            self.copied = Some((i, Instant::now()));
            ui.ctx().request_repaint_after(Duration::from_secs(2));
        }
        if let Some(i) = dismiss {
            self.store.banners.remove(i);
            self.copied = None;
        }
    }

    fn run_list(&mut self, ui: &mut Ui, actions: &mut Vec<Action>) {
        let found = self.state.experiment.found();
        if !found.is_empty() {
            ui.heading("Experiments");
            for r in found {
                let on = self.state.panel == PanelKind::Experiment
                    && self.state.experiment.open.as_ref() == Some(&r);
                if ui
                    .selectable_label(on, format!("▦ {}", r.name))
                    .on_hover_text(r.file.display().to_string())
                    .clicked()
                {
                    self.state.experiment.show(r);
                    self.state.panel = PanelKind::Experiment;
                }
            }
            ui.separator();
        }
        ui.horizontal(|ui| {
            ui.heading("Runs");
            if ui
                .small_button("⟳")
                .on_hover_text("look for runs on disk, and read the listed ones again")
                .clicked()
            {
                self.requested.clear();
                self.scan_runs();
            }
        });
        ui.horizontal(|ui| {
            let l = ui.label(RichText::new("folder").small());
            let state = &self.state;
            let dir = self
                .runs_dir_edit
                .get_or_insert_with(|| state.runs_dir().display().to_string());
            let field = ui
                .add(egui::TextEdit::singleline(dir).desired_width(150.0))
                .labelled_by(l.id);
            if field.lost_focus() {
                if let Some(dir) = self.runs_dir_edit.take() {
                    self.state.runs_dir = Some(PathBuf::from(dir));
                }
                self.scan_runs();
            } else if !field.has_focus() {
                // Not being edited: follow the state (set elsewhere, e.g. by an opened folder).
                self.runs_dir_edit = None;
            }
        });
        ui.separator();
        egui::ScrollArea::vertical()
            .id_salt("run-list")
            .show(ui, |ui| {
                for (i, r) in self.store.runs.iter().enumerate() {
                    let selected = self.state.selected.as_deref() == Some(r.name.as_str());
                    // The run's curve colour as a marker; the text keeps the theme's contrast.
                    let mut job = egui::text::LayoutJob::default();
                    let body = ui.visuals().text_color();
                    let font = egui::TextStyle::Body.resolve(ui.style());
                    job.append(
                        "■ ",
                        0.0,
                        egui::TextFormat::simple(font.clone(), theme::run(i)),
                    );
                    job.append(&r.name, 0.0, egui::TextFormat::simple(font.clone(), body));
                    let detail = format!(
                        "\n{}{}",
                        r.phase.label(),
                        r.best_f1.map_or(String::new(), |f| format!(" · F1 {f:.4}"))
                    );
                    job.append(
                        &detail,
                        0.0,
                        egui::TextFormat::simple(font, ui.visuals().weak_text_color()),
                    );
                    if ui.selectable_label(selected, job).clicked() {
                        actions.push(Action::Select(r.name.clone()));
                    }
                    if r.phase.is_live() {
                        ui.add(
                            egui::ProgressBar::new(r.step as f32 / r.total_steps.max(1) as f32)
                                .desired_height(4.0),
                        );
                    }
                }
                if self.store.runs.is_empty() {
                    ui.label(RichText::new("none yet").weak());
                }
            });
    }

    fn apply(&mut self, action: Action, ctx: &egui::Context) {
        match action {
            Action::Launch(config) => {
                let mut config = *config;
                config.out = self.state.runs_dir();
                let name = config
                    .name
                    .clone()
                    .unwrap_or_else(|| crate::train::trainer::default_name(&config));
                config.name = Some(name.clone());
                let id = self.next_id;
                self.next_id += 1;
                self.store.launched(id, name.clone(), config.clone());
                self.requested.insert(config.out.join(&name));
                self.state.selected = Some(name);
                self.send(Command::Train {
                    id,
                    request: TrainRequest::New(Box::new(config)),
                });
            }
            Action::ResumeRun(dir) => {
                let id = self.next_id;
                self.next_id += 1;
                let name = dir.file_name().map_or_else(
                    || dir.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                );
                // The entry on disk becomes the session's run.
                if let Some(r) = self
                    .store
                    .runs
                    .iter_mut()
                    .find(|r| r.dir.as_deref() == Some(dir.as_path()))
                {
                    r.id = Some(id);
                    r.phase = Phase::Queued;
                    r.error = None;
                }
                self.send(Command::Train {
                    id,
                    request: TrainRequest::Resume(dir),
                });
                self.state.selected = Some(name);
            }
            Action::Send(cmd) => {
                if let Command::OpenModel { model, .. } = &cmd {
                    self.store.opening(model);
                }
                self.send(cmd);
            }
            Action::Select(name) => {
                if let Some(dir) = self
                    .store
                    .runs
                    .iter()
                    .find(|r| r.name == name)
                    .and_then(|r| r.dir.clone())
                    && self
                        .store
                        .runs
                        .iter()
                        .any(|r| r.name == name && r.dev.is_none() && !r.phase.is_live())
                {
                    self.send(Command::LoadRun { dir });
                }
                self.state.selected = Some(name);
            }
            Action::PickPath(target) => {
                let tx = self.picks.0.clone();
                let ctx = ctx.clone();
                let _ = std::thread::Builder::new()
                    .name("nerlab-dialog".into())
                    .spawn(move || {
                        let dialog = rfd::FileDialog::new();
                        let picked = match target {
                            PathTarget::Model => dialog.pick_folder(),
                            _ => dialog.pick_file(),
                        };
                        if let Some(p) = picked {
                            let _ = tx.send((target, p));
                            ctx.request_repaint();
                        }
                    });
            }
            Action::Export(e) => self.export(e, ctx),
            Action::ScanRuns(dir) => self.send(Command::ScanRuns { dir }),
            Action::MakeExperiment {
                config,
                name,
                axis,
                values,
            } => {
                let runs = self.state.runs_dir();
                let file = runs.join(format!("{name}.experiment.toml"));
                let written =
                    crate::experiment::from_run(&config, &name, &runs.join(&name), &axis, &values)
                        .and_then(|text| {
                            std::fs::create_dir_all(&runs)?;
                            std::fs::write(&file, text)?;
                            self.state.experiment.open_file(&file)
                        });
                match written {
                    Ok(()) => self.state.panel = PanelKind::Experiment,
                    Err(e) => self.store.banners.push(format!("{e:#}")),
                }
            }
            Action::ShowRuns(dirs) => {
                let names: Vec<String> = dirs
                    .iter()
                    .filter_map(|d| Some(d.file_name()?.to_string_lossy().into_owned()))
                    .collect();
                self.load_new_runs(dirs);
                self.state.curves.overlay = names.iter().cloned().collect();
                if let Some(first) = names.first() {
                    self.state.selected = Some(first.clone());
                }
                self.state.panel = PanelKind::Curves;
            }
        }
    }

    fn export(&mut self, e: Export, ctx: &egui::Context) {
        match e {
            Export::Csv { path, content } => {
                self.notices
                    .push((format!("writing {}", path.display()), Instant::now()));
                off_ui_thread(move || {
                    if let Some(dir) = path.parent() {
                        let _ = std::fs::create_dir_all(dir);
                    }
                    let _ = std::fs::write(&path, content);
                });
            }
            Export::Png { rect, path } => {
                self.notices
                    .push((format!("saving {}", path.display()), Instant::now()));
                let ppp = ctx.pixels_per_point();
                // eframe calls this on the thread that paints: crop, encode and write elsewhere.
                let callback = egui::ScreenshotCallback::new(move |image| {
                    off_ui_thread(move || {
                        let _ = save_png(&image, rect, ppp, &path);
                    });
                });
                ctx.send_viewport_cmd(egui::ViewportCommand::Screenshot(callback));
            }
        }
    }

    /// Applies paths picked in file dialogs.
    fn poll_picks(&mut self) {
        while let Ok((target, path)) = self.picks.1.try_recv() {
            let p = path.display().to_string();
            let l = &mut self.state.launcher;
            match target {
                PathTarget::Train => l.train_text = p,
                PathTarget::Dev => l.dev_text = p,
                PathTarget::Model => l.config.model.source = p,
            }
        }
    }

    /// The per-frame work besides layout: worker events (within an 8 ms budget), picked paths,
    /// and a repaint a few times a second while a run is live so curves move on their own.
    pub fn tick(&mut self, ctx: &egui::Context) {
        self.flush_outbox();
        if !self.outbox.is_empty() {
            ctx.request_repaint_after(Duration::from_millis(20));
        }
        if self.pump(Duration::from_millis(8)) > 0 {
            // Something changed: draw it, and look for more.
            ctx.request_repaint();
        } else if self.last_sent.elapsed() < ANSWER_WAIT {
            ctx.request_repaint_after(Duration::from_millis(100));
        }
        self.poll_picks();
        if self.last_check.elapsed() >= CHECK_RUNS_EVERY {
            self.last_check = Instant::now();
            let dirs = self.store.live_elsewhere();
            if !dirs.is_empty() {
                self.send(Command::CheckRuns { dirs });
            }
        }
        if self.live() {
            ctx.request_repaint_after(Duration::from_millis(250));
        }
    }

    /// Whether something is running, so the UI should keep redrawing.
    pub fn live(&self) -> bool {
        self.store.runs.iter().any(|r| r.phase.is_live())
    }
}

/// Runs `write` (an export's file writing) on a short-lived named thread, never the UI's.
fn off_ui_thread(write: impl FnOnce() + Send + 'static) {
    let _ = std::thread::Builder::new()
        .name("nerlab-export".into())
        .spawn(write);
}

/// Crops a screenshot to `rect` (points) and writes it as PNG.
fn save_png(
    image: &egui::ColorImage,
    rect: egui::Rect,
    ppp: f32,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    let [w, h] = image.size;
    let x0 = ((rect.min.x * ppp) as usize).min(w);
    let y0 = ((rect.min.y * ppp) as usize).min(h);
    let x1 = ((rect.max.x * ppp) as usize).clamp(x0, w);
    let y1 = ((rect.max.y * ppp) as usize).clamp(y0, h);
    let mut buf = image::RgbaImage::new((x1 - x0) as u32, (y1 - y0) as u32);
    for y in y0..y1 {
        for x in x0..x1 {
            let c = image.pixels[y * w + x];
            buf.put_pixel(
                (x - x0) as u32,
                (y - y0) as u32,
                image::Rgba([c.r(), c.g(), c.b(), c.a()]),
            );
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    buf.save(path)?;
    Ok(())
}

impl eframe::App for NerlabApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.tick(ctx);
    }

    fn ui(&mut self, ui: &mut Ui, frame: &mut eframe::Frame) {
        if let (Some(times), Some(ms)) = (self.frame_ms.as_mut(), frame.info().cpu_usage) {
            times.push_back(ms * 1e3);
            if times.len() > 1000 {
                times.pop_front();
            }
        }
        self.ui_root(ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.state);
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        // Dropping the handle stops a running run cooperatively: it writes a checkpoint that
        // `--resume` (or the launcher's resume button) continues from.
        self.worker = None;
    }
}
