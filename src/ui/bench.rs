//! UI frame time while a CPU training run is active (`nerlab bench --task ui`).
//!
//! The workbench is driven headlessly, exactly as eframe drives it: `tick` (worker events), layout
//! of the whole window and tessellation into triangles, at 60 frames a second, while the worker
//! trains the offline demo preset on the same machine. The pointer sweeps over the window so
//! hover readouts are exercised, and the panel changes every two seconds. What is timed is the
//! UI thread's work for a frame; uploading the triangles to the GPU is the driver's and is not
//! included (under a real GPU it is well under a millisecond for a few thousand vertices).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::app::NerlabApp;
use super::state::{PanelKind, UiState};
use super::store::RunStore;
use crate::metrics::percentile;
use crate::train::RunConfig;
use crate::train::sources::apply_preset;
use crate::worker::WorkerHandle;

/// Frame times in milliseconds; percentiles interpolate linearly between ranks, as
/// [`percentile`] defines them.
#[derive(Debug, Clone, Serialize)]
pub struct FrameStats {
    pub frames: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// p99 per panel shown.
    pub per_panel_p99_ms: Vec<(String, f64)>,
    /// Training steps the run made while frames were measured (it really was training).
    pub training_steps: usize,
    pub training_threads: usize,
    pub seconds: f64,
}

/// The workbench on the Curves panel with the demo preset launched, and the threads it trains
/// with. The worker decides the cap (all cores but one when None); the run, launched without a
/// thread count, trains with it.
fn training_app(
    runs_dir: &std::path::Path,
    training_threads: Option<usize>,
) -> anyhow::Result<(NerlabApp, usize)> {
    let state = UiState {
        runs_dir: Some(runs_dir.to_path_buf()),
        panel: PanelKind::Curves,
        ..UiState::default()
    };
    let worker = WorkerHandle::spawn(training_threads)?;
    let threads = worker.threads();
    let mut app = NerlabApp::with_parts(state, RunStore::default(), Some(worker));
    let mut config = RunConfig::default();
    apply_preset("demo", &mut config).map_err(anyhow::Error::msg)?;
    // Long enough that training outlasts the measurement (dropping the app stops it).
    config.train.epochs = 10_000;
    config.train.patience = 0;
    app.launch(config);
    Ok((app, threads))
}

/// Measures `seconds` of frames at 1280x820 points while the demo preset trains with
/// `training_threads` threads (None: all cores but one, the workbench's default).
pub fn frame_times(seconds: f64, training_threads: Option<usize>) -> anyhow::Result<FrameStats> {
    let runs_dir: PathBuf =
        std::env::temp_dir().join(format!("nerlab-ui-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&runs_dir);
    let ctx = egui::Context::default();
    super::fonts::install(&ctx);
    let (mut app, threads) = training_app(&runs_dir, training_threads)?;
    let size = egui::vec2(1280.0, 820.0);
    let raw = |t: f64, events: Vec<egui::Event>| egui::RawInput {
        screen_rect: Some(egui::Rect::from_min_size(egui::Pos2::ZERO, size)),
        time: Some(t),
        events,
        ..Default::default()
    };
    // Wait (drawing) until the run is training, so every measured frame overlaps training.
    let start = Instant::now();
    while app.store.runs.first().is_none_or(|r| r.step == 0) {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(300),
            "the demo run did not start: {:?}",
            app.store.banners
        );
        app.tick(&ctx);
        let mut out = ctx.run_ui(raw(start.elapsed().as_secs_f64(), Vec::new()), |ui| {
            app.ui_root(ui)
        });
        // The renderer would upload these; here they are discarded.
        out.textures_delta.clear();
        std::thread::sleep(Duration::from_millis(16));
    }
    let first_step = app.store.runs[0].step;
    let panels = [
        PanelKind::Curves,
        PanelKind::Launcher,
        PanelKind::Confusion,
        PanelKind::Errors,
        PanelKind::Calibration,
        PanelKind::Tagger,
        PanelKind::Table,
    ];
    let mut times: Vec<(PanelKind, f64)> = Vec::new();
    let period = Duration::from_micros(16_667);
    let bench_start = Instant::now();
    let mut next = Instant::now();
    let mut frame = 0usize;
    while bench_start.elapsed().as_secs_f64() < seconds {
        let t = bench_start.elapsed().as_secs_f64();
        let panel = panels[(t / 2.0) as usize % panels.len()];
        if app.state.panel != panel {
            app.state.panel = panel;
            if let Some(r) = app.store.runs.first() {
                app.state.selected = Some(r.name.clone());
            }
        }
        // The pointer sweeps across the plots and matrices.
        let x = 240.0 + (frame % 200) as f32 * 5.0;
        let y = 120.0 + (frame % 50) as f32 * 12.0;
        let events = vec![egui::Event::PointerMoved(egui::pos2(x, y))];
        let started = Instant::now();
        app.tick(&ctx);
        let out = ctx.run_ui(raw(t, events), |ui| app.ui_root(ui));
        let mut out = out;
        out.textures_delta.clear();
        let primitives = ctx.tessellate(out.shapes, out.pixels_per_point);
        std::hint::black_box(primitives);
        times.push((panel, started.elapsed().as_secs_f64() * 1e3));
        frame += 1;
        next += period;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        } else {
            next = Instant::now();
        }
    }
    let training_steps = app
        .store
        .runs
        .first()
        .map_or(0, |r| r.step)
        .saturating_sub(first_step);
    let elapsed = bench_start.elapsed().as_secs_f64();
    drop(app);
    let _ = std::fs::remove_dir_all(&runs_dir);
    let mut all: Vec<f64> = times.iter().map(|(_, t)| *t).collect();
    all.sort_by(f64::total_cmp);
    let per_panel_p99_ms = panels
        .iter()
        .map(|p| {
            let mut v: Vec<f64> = times
                .iter()
                .filter(|(k, _)| k == p)
                .map(|(_, t)| *t)
                .collect();
            v.sort_by(f64::total_cmp);
            (p.to_string(), percentile(&v, 99.0))
        })
        .collect();
    Ok(FrameStats {
        frames: all.len(),
        p50_ms: percentile(&all, 50.0),
        p99_ms: percentile(&all, 99.0),
        max_ms: all.last().copied().unwrap_or(0.0),
        per_panel_p99_ms,
        training_steps,
        training_threads: threads,
        seconds: elapsed,
    })
}
