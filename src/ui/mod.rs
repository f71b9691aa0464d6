//! The workbench: an eframe app over the same engine the command line drives. Three layers, as
//! in rerun: [`store::RunStore`] (plain data built from worker events, testable without egui),
//! [`state::UiState`] (small, persisted by eframe) and [`app::NerlabApp`], which owns both and the
//! worker handle. One file per panel under `panels/`; every colour in [`theme`].

pub mod app;
pub mod bench;
pub mod context;
pub mod fonts;
pub mod panels;
pub mod state;
pub mod store;
pub mod theme;
pub mod widgets;

pub use app::NerlabApp;
pub use state::{PanelKind, UiState};
pub use store::RunStore;

/// Options of a workbench launch (`nerlab` or `nerlab gui`).
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// Where runs are listed from and created (overrides the persisted choice).
    pub runs_dir: Option<std::path::PathBuf>,
    /// Start without the persisted UI state (first-launch view).
    pub fresh: bool,
    /// Open on this panel.
    pub panel: Option<PanelKind>,
    /// Select this run.
    pub select: Option<String>,
    /// Window size in points.
    pub size: Option<(f32, f32)>,
    /// Show the CPU time of recent frames in the top bar.
    pub frame_stats: bool,
    /// Open this experiment file's page.
    pub experiment: Option<std::path::PathBuf>,
    /// Open this model read-only (see `Command::OpenModel`), evaluated on `model_data`, and
    /// select it.
    pub open_model: Option<String>,
    pub model_data: Option<String>,
    pub model_labels: crate::data::label_map::LabelMap,
    pub model_torch: crate::infer::TorchOptions,
}

/// Opens the workbench window and blocks until it closes.
pub fn run(launch: Launch) -> anyhow::Result<()> {
    let (w, h) = launch.size.unwrap_or((1280.0, 820.0));
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("nerlab")
            .with_app_id("nerlab")
            .with_inner_size([w, h])
            .with_min_inner_size([720.0, 480.0]),
        persist_window: !launch.fresh,
        ..Default::default()
    };
    eframe::run_native(
        "nerlab",
        options,
        Box::new(move |cc| Ok(Box::new(NerlabApp::new(cc, &launch)))),
    )
    .map_err(|e| anyhow::anyhow!("could not open the workbench window: {e}"))
}
