//! The workbench under egui_kittest, asserting on the accessibility tree (not pixels): every
//! panel renders a canned run store; clicking a confusion cell lists the sentences behind it; and,
//! against a live worker on the offline demo preset, a run starts, its curve gains points, typing
//! a Korean sentence in the tagger shows its spans, and closing the app leaves a resumable
//! checkpoint.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use egui::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use nerlab::metrics::{ScoreOptions, score};
use nerlab::protocol::{CurvePoint, DevView, EvalPoint, Event, LoadedRun, RunFiles};
use nerlab::train::RunConfig;
use nerlab::train::run_dir::{RunDir, RunState};
use nerlab::ui::{NerlabApp, PanelKind, RunStore, UiState};
use nerlab::worker::WorkerHandle;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nerlab-ui-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn words(lines: &[&str]) -> Vec<Vec<String>> {
    lines
        .iter()
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect()
}

/// Three Korean dev sentences with one error of each kind: a type error (서울 LC read as OG),
/// a missed entity (한국 LC) and a spurious one (온다 PS).
fn canned_run(dir: &Path) -> LoadedRun {
    let tokens = words(&[
        "삼성전자 이재용 회장이 서울에서 기자회견을 열었다",
        "구글은 한국 개발자를 위한 교육을 시작한다",
        "오늘 부산에 비가 온다",
    ]);
    let gold = words(&["B-OG B-PS O B-LC O O", "B-OG B-LC O O O O", "B-DT B-LC O O"]);
    let pred = words(&["B-OG B-PS O B-OG O O", "B-OG O O O O O", "B-DT B-LC O B-PS"]);
    let confidence: Vec<Vec<f64>> = pred
        .iter()
        .map(|s| {
            s.iter()
                .enumerate()
                .map(|(i, _)| 0.55 + 0.1 * (i % 4) as f64)
                .collect()
        })
        .collect();
    let report = score(&gold, &pred, Some(&confidence), &ScoreOptions::default()).unwrap();
    // The attention panel and the tagger need a saved model; the worker reports that it has one.
    LoadedRun {
        dir: dir.to_path_buf(),
        config: Some(RunConfig::default()),
        state: RunState::Finished,
        step: 40,
        total_steps: 40,
        curve: (1..=40)
            .map(|s| CurvePoint {
                step: s,
                loss: 30.0 / s as f64,
                lr: 1e-3,
            })
            .collect(),
        evals: [10, 20, 30, 40]
            .iter()
            .map(|&s| EvalPoint {
                step: s,
                micro_f1: s as f64 / 60.0,
                macro_f1: s as f64 / 70.0,
                per_type: vec![("LC".into(), 0.5)],
            })
            .collect(),
        dev: Some(DevView {
            ids: Arc::new(vec!["dev-1".into(), "dev-2".into(), "dev-3".into()]),
            positions: Arc::new(tokens.iter().map(|t| (0..t.len()).collect()).collect()),
            tokens: Arc::new(tokens),
            gold: Arc::new(gold),
            pred,
            space_tokens: false,
        }),
        report: Some(Box::new(report)),
        message: String::new(),
        files: RunFiles {
            has_model: true,
            has_checkpoint: false,
        },
    }
}

fn canned_app(name: &str, panel: PanelKind) -> (NerlabApp, PathBuf) {
    let runs = temp_dir(name);
    let dir = runs.join("canned-run");
    let mut store = RunStore::default();
    store.apply(Event::RunLoaded(Box::new(canned_run(&dir))));
    let state = UiState {
        panel,
        selected: Some("canned-run".into()),
        runs_dir: Some(runs.clone()),
        ..UiState::default()
    };
    (NerlabApp::with_parts(state, store, None), runs)
}

fn harness<'a>(app: NerlabApp) -> Harness<'a, NerlabApp> {
    Harness::builder()
        .with_size([1280.0, 900.0])
        .with_context_setup(nerlab::ui::fonts::install)
        .build_ui_state(
            |ui, app: &mut NerlabApp| {
                let ctx = ui.ctx().clone();
                app.tick(&ctx);
                app.ui_root(ui);
            },
            app,
        )
}

/// Runs frames until the UI settles (tolerating a pending debounce or a live run's repaints).
fn settle(h: &mut Harness<'_, NerlabApp>) {
    for _ in 0..3 {
        h.step();
    }
    let _ = h.try_run();
}

#[test]
fn launcher_shows_the_form_presets_and_runs() {
    let (app, runs) = canned_app("launcher", PanelKind::Launcher);
    let mut h = harness(app);
    settle(&mut h);
    h.get_by_label("Offline demo (character model, built-in Korean corpus)");
    h.get_by_label("KLUE-NER + KoELECTRA (Hugging Face Hub)");
    h.get_by_label("Open a corpus folder…");
    h.get_by_label_contains("Start run");
    // The canned run is listed with its state and best F1 (40/60).
    assert!(h.query_all_by_label("canned-run").count() >= 1);
    h.get_by_label("best F1 0.6667");
    // An invalid field is reported next to it and the start button is disabled.
    h.state_mut().state.launcher.train_text = String::new();
    settle(&mut h);
    h.get_by_label_contains("problem(s) to fix first");
    std::fs::remove_dir_all(runs).unwrap();
}

#[test]
fn curves_panel_plots_the_selected_run() {
    let (app, runs) = canned_app("curves", PanelKind::Curves);
    let mut h = harness(app);
    settle(&mut h);
    h.get_by_label("training loss");
    h.get_by_label("dev F1");
    h.get_by_label("learning rate");
    h.get_by_role_and_label(Role::CheckBox, "canned-run");
    let csv = nerlab::ui::panels::curves::csv(&[&h.state().store.runs[0]]);
    assert!(csv.contains("canned-run,40,dev_micro_f1,0.6666"), "{csv}");
    assert_eq!(csv.lines().filter(|l| l.contains(",loss,")).count(), 40);
    std::fs::remove_dir_all(runs).unwrap();
}

#[test]
fn clicking_a_confusion_cell_lists_its_sentences() {
    let (app, runs) = canned_app("confusion", PanelKind::Confusion);
    let mut h = harness(app);
    settle(&mut h);
    h.get_by_label("Click a cell to list its sentences.");
    // Span level: 서울 (LC) predicted OG in sentence dev-1 only.
    h.get_by_label("gold LC, predicted OG: 1").click();
    settle(&mut h);
    h.get_by_label("1 sentences: gold LC, predicted OG");
    h.get_by_label_contains("dev-1");
    assert!(h.query_by_label_contains("dev-2").is_none());
    // The missed 한국 is in dev-2 only.
    h.get_by_label("gold LC, predicted MISSED: 1").click();
    settle(&mut h);
    h.get_by_label("1 sentences: gold LC, predicted MISSED");
    h.get_by_label_contains("dev-2");
    assert!(h.query_by_label_contains("dev-1").is_none());
    // Token level: O predicted B-PS is the spurious 온다 in dev-3.
    h.get_by_label("token-level").click();
    settle(&mut h);
    h.get_by_label("gold O, predicted B-PS: 1").click();
    settle(&mut h);
    h.get_by_label("1 sentences: gold O, predicted B-PS");
    h.get_by_label_contains("dev-3");
    std::fs::remove_dir_all(runs).unwrap();
}

#[test]
fn errors_panel_counts_categories_and_lists_cases() {
    let (app, runs) = canned_app("errors", PanelKind::Errors);
    let mut h = harness(app);
    settle(&mut h);
    h.get_by_label("Errors: canned-run");
    h.get_by_label("SemEval-2013 (nervaluate)");
    // One type error, one missed, one spurious.
    h.get_by_label("3 cases");
    h.get_by_label_contains("type: gold LC, predicted OG");
    // Filtering by text keeps only the sentence containing it.
    h.state_mut().state.errors.search = "부산".into();
    settle(&mut h);
    h.get_by_label("1 cases");
    h.get_by_label_contains("spurious: PS");
    // Seed 003's gold-centred categories: no boundary+type column; the same three errors.
    h.state_mut().state.errors.search = String::new();
    assert!(h.query_all_by_label("boundary+type").count() > 0);
    h.get_by_label("gold-centred (seed 003)").click();
    settle(&mut h);
    assert_eq!(h.query_all_by_label("boundary+type").count(), 0);
    h.get_by_label("3 cases");
    std::fs::remove_dir_all(runs).unwrap();
}

#[test]
fn a_papers_recipe_is_one_click_in_the_launcher() {
    let (app, runs) = canned_app("recipes", PanelKind::Launcher);
    let mut h = harness(app);
    settle(&mut h);
    h.query_all_by_role(Role::ComboBox)
        .find(|n| n.value().as_deref() == Some("papers' recipes…"))
        .expect("the recipes box")
        .click();
    settle(&mut h);
    h.get_by_label_contains("maner-cpu:").click();
    settle(&mut h);
    let config = h.state().state.launcher.config();
    assert_eq!(config.model.marker, nerlab::model::align::Marker::Mask);
    assert_eq!(config.model.source, "e5-small");
    assert_eq!(config.data.max_sentences, 100);
    std::fs::remove_dir_all(runs).unwrap();
}

#[test]
fn calibration_panel_shows_ece_and_both_plots() {
    let (app, runs) = canned_app("calibration", PanelKind::Calibration);
    let mut h = harness(app);
    settle(&mut h);
    h.get_by_label("Calibration: canned-run");
    let ece = h.state().store.runs[0]
        .report
        .as_ref()
        .unwrap()
        .calibration
        .as_ref()
        .unwrap()
        .ece;
    h.get_by_label_contains(&format!("ECE {ece:.4}"));
    h.get_by_label_contains("reliability diagram");
    h.get_by_label_contains("confidence histogram");
    std::fs::remove_dir_all(runs).unwrap();
}

#[test]
fn attention_panel_draws_the_answer_as_a_heatmap() {
    let (app, runs) = canned_app("attention", PanelKind::Attention);
    let mut h = harness(app);
    settle(&mut h);
    h.get_by_label("Attention: canned-run");
    // The first dev sentence is requested at once; with no worker in this test the request is
    // refused with a banner, and a canned answer arrives instead.
    h.get_by_label("dev sentence");
    h.get_by_label_contains("no worker is running");
    let tokens = vec![
        "[CLS]".to_string(),
        "삼성".into(),
        "##전자".into(),
        "[SEP]".into(),
    ];
    let head = vec![vec![0.25f32; 4]; 4];
    h.state_mut().store.apply(Event::Attention {
        request: 2_000_001,
        tokens,
        token_tags: vec![String::new(), "B-OG".into(), String::new(), String::new()],
        weights: vec![vec![head.clone(), head]; 2],
    });
    settle(&mut h);
    h.get_by_label("2 layers x 2 heads, 4 tokens");
    let map = h.get_by_label("attention heatmap, 4 x 4").rect();
    h.get_by_label("hover a cell for its weight");
    // Hovering the last cell reads it out above the map; no tooltip covers the controls.
    h.hover_at(map.max - egui::vec2(5.0, 5.0));
    settle(&mut h);
    h.get_by_label_contains("query [SEP] → key [SEP]: weight 0.2500");
    assert!(h.query_by_label_contains("row [SEP], column").is_none());
    std::fs::remove_dir_all(runs).unwrap();
}

#[test]
fn a_long_error_banner_wraps_and_a_click_copies_it() {
    let (mut app, runs) = canned_app("banner", PanelKind::Launcher);
    let long = format!(
        "run failed: loading klue-ner/train: listing dataset klue/klue@main on the Hugging Face \
         Hub: request error: {}",
        "connection refused ".repeat(40)
    );
    app.store.banners.push(long.clone());
    let mut h = harness(app);
    settle(&mut h);
    let label = h
        .get_by_label_contains("listing dataset klue/klue@main")
        .rect();
    assert!(label.max.x <= 1280.0, "cut at the window's edge: {label:?}");
    assert!(label.height() > 40.0, "not wrapped: {label:?}");
    h.get_by_role_and_label(Role::Button, "copy").click();
    h.step();
    let copied = h
        .output()
        .platform_output
        .commands
        .iter()
        .any(|c| matches!(c, egui::OutputCommand::CopyText(t) if *t == long));
    assert!(copied, "{:?}", h.output().platform_output.commands);
    settle(&mut h);
    h.get_by_role_and_label(Role::Button, "copied ✔");
    std::fs::remove_dir_all(runs).unwrap();
}

#[test]
fn tagger_shows_answers_and_where_two_runs_disagree() {
    let (mut app, runs) = canned_app("tagger", PanelKind::Tagger);
    // A second run on the same dev sentences that gets 서울 right.
    let mut other = canned_run(&runs.join("other-run"));
    other.dev.as_mut().unwrap().pred[0] = words(&["B-OG B-PS O B-LC O O"]).remove(0);
    app.store.apply(Event::RunLoaded(Box::new(other)));
    app.state.tagger.compare = true;
    app.state.tagger.run_b = Some("other-run".into());
    let mut h = harness(app);
    settle(&mut h);
    h.get_by_label("Tag text");
    h.get_by_label("1 dev sentences where the two runs disagree");
    h.get_by_label_contains("dev-1");
    std::fs::remove_dir_all(runs).unwrap();
}

#[test]
fn experiments_table_lists_every_run() {
    let (app, runs) = canned_app("experiments", PanelKind::Table);
    let mut h = harness(app);
    settle(&mut h);
    h.get_by_label_contains("best micro F1");
    h.get_by_label_contains("LC F1");
    // Best micro F1 of the evaluations (40/60), beside the report's numbers.
    assert!(h.query_all_by_label("0.6667").count() >= 1);
    h.get_by_role_and_label(Role::Link, "canned-run");
    std::fs::remove_dir_all(runs).unwrap();
}

#[test]
fn every_panel_renders_with_no_runs_at_all() {
    for (panel, _) in PanelKind::ALL {
        let state = UiState {
            panel,
            ..UiState::default()
        };
        let mut h = harness(NerlabApp::with_parts(state, RunStore::default(), None));
        settle(&mut h);
        assert!(h.query_all_by_label("Runs").count() >= 1);
        h.get_by_label("none yet");
    }
}

/// Steps the harness (which pumps worker events) until `done` holds or `secs` pass.
fn step_until(
    h: &mut Harness<'_, NerlabApp>,
    secs: u64,
    what: &str,
    done: impl Fn(&Harness<'_, NerlabApp>) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done(h) {
        assert!(
            Instant::now() < deadline,
            "no {what} within {secs} s; banners: {:?}",
            h.state().store.banners
        );
        std::thread::sleep(Duration::from_millis(50));
        h.step();
    }
}

#[test]
fn live_demo_run_streams_curves_and_tags_typed_korean() {
    let runs = temp_dir("live");
    let state = UiState {
        runs_dir: Some(runs.clone()),
        ..UiState::default()
    };
    let worker = WorkerHandle::spawn(None).unwrap();
    let mut h = harness(NerlabApp::with_parts(
        state,
        RunStore::default(),
        Some(worker),
    ));
    settle(&mut h);
    // Launch the offline demo from the launcher, as a first-time user would.
    h.get_by_label("Offline demo (character model, built-in Korean corpus)")
        .click();
    settle(&mut h);
    h.state_mut().state.launcher.config.threads = Some(1);
    h.get_by_label_contains("Start run").click();
    h.step();
    step_until(&mut h, 120, "curve points", |h| {
        h.state()
            .store
            .runs
            .first()
            .is_some_and(|r| r.curve.len() >= 2)
    });
    let n = h.state().store.runs[0].curve.len();
    step_until(&mut h, 120, "more curve points", |h| {
        h.state().store.runs[0].curve.len() > n
    });
    assert_eq!(h.state().store.runs[0].phase.label(), "running");
    // Curves panel shows the live run.
    h.get_by_label("Curves").click();
    settle(&mut h);
    h.get_by_label("training loss");
    // The first evaluation saves a best model, which the tagger can use.
    step_until(&mut h, 180, "a saved best model", |h| {
        h.state().store.runs[0].model_dir().is_some()
    });
    h.get_by_label("Tagger").click();
    settle(&mut h);
    h.state_mut().state.tagger.text.clear();
    settle(&mut h);
    let edit = h.get_by_role(Role::MultilineTextInput);
    edit.focus();
    edit.type_text("박지성은 맨체스터에서 뛰었다");
    step_until(&mut h, 60, "tagged spans", |h| {
        h.state()
            .store
            .tagged
            .values()
            .any(|t| t.text.contains("맨체스터"))
    });
    settle(&mut h);
    let answer = h
        .state()
        .store
        .tagged
        .values()
        .find(|t| t.text.contains("맨체스터"))
        .unwrap()
        .clone();
    eprintln!("tagged {:?}: {:?}", answer.text, answer.spans);
    // Whatever an early model finds, the panel shows it: each span's text with its type.
    if answer.spans.is_empty() {
        h.get_by_label("no entities found");
    } else {
        for s in &answer.spans {
            h.get_by_label_contains(&format!("{} {}", s.ty, s.text));
        }
    }
    // Closing the window (dropping the app) stops the run cleanly with a checkpoint to resume.
    let dir = h.state().store.runs[0].dir.clone().unwrap();
    drop(h);
    let run = RunDir::open(&dir).unwrap();
    assert_eq!(run.status().state, RunState::Stopped);
    assert!(run.latest_checkpoint().is_some(), "a resumable checkpoint");
    std::fs::remove_dir_all(runs).unwrap();
}

/// Runs already on disk are found through the worker (the UI thread never lists the folder), and
/// scanning again keeps one entry per run.
#[test]
fn runs_on_disk_are_found_through_the_worker() {
    let runs = temp_dir("scan");
    RunDir::create(&runs, "on-disk")
        .unwrap()
        .write_config(&RunConfig::default())
        .unwrap();
    let state = UiState {
        runs_dir: Some(runs.clone()),
        ..UiState::default()
    };
    let worker = WorkerHandle::spawn(Some(1)).unwrap();
    let mut app = NerlabApp::with_parts(state, RunStore::default(), Some(worker));
    app.scan_runs();
    let mut h = harness(app);
    step_until(&mut h, 60, "the run on disk", |h| {
        h.state().store.runs.iter().any(|r| r.name == "on-disk")
    });
    // Scanning again finds the same run, which stays one entry.
    h.get_by_label("⟳").click();
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(50));
        h.step();
    }
    assert_eq!(h.state().store.runs.len(), 1);
    assert!(
        h.state().store.banners.is_empty(),
        "{:?}",
        h.state().store.banners
    );
    drop(h);
    std::fs::remove_dir_all(runs).unwrap();
}

/// A run that failed before its first step, read from disk after the window reopened: the run
/// list says failed (not `running 0/0`), and the launcher, Errors and Attention panels show why.
#[test]
fn a_failed_run_read_from_disk_shows_its_reason_everywhere() {
    let runs = temp_dir("failed");
    let message = "loading klue-ner/train: listing dataset klue/klue@main on the Hugging Face Hub: \
                   request error: failed to lookup address information";
    let mut store = RunStore::default();
    store.apply(Event::RunLoaded(Box::new(LoadedRun {
        dir: runs.join("klue-hub"),
        config: Some(RunConfig::default()),
        state: RunState::Failed,
        step: 0,
        total_steps: 0,
        curve: Vec::new(),
        evals: Vec::new(),
        report: None,
        dev: None,
        message: message.into(),
        files: RunFiles::default(),
    })));
    for (panel, says) in [
        (PanelKind::Launcher, format!("klue-hub: {message}")),
        (PanelKind::Errors, message.to_string()),
        (PanelKind::Attention, message.to_string()),
    ] {
        let state = UiState {
            panel,
            selected: Some("klue-hub".into()),
            runs_dir: Some(runs.clone()),
            ..UiState::default()
        };
        let mut h = harness(NerlabApp::with_parts(state, store.clone(), None));
        settle(&mut h);
        h.get_by_label_contains(&says);
        assert!(h.query_by_label_contains("running").is_none(), "{panel:?}");
        if panel != PanelKind::Launcher {
            h.get_by_label_contains("klue-hub failed before its first");
        }
    }
    std::fs::remove_dir_all(runs).unwrap();
}

/// The experiment page on an experiment the command line trained: it finds the experiment in the
/// runs folder, lists every run with its state, fills the pivot table, and a cell opens its runs
/// with their curves overlaid.
#[test]
fn the_experiment_page_shows_the_plan_and_results_and_a_cell_opens_its_runs() {
    let dir = temp_dir("experiment-page");
    let out = dir.join("runs").join("page");
    let file = dir.join("page.toml");
    let text = common::tiny_grid("page", &out.display().to_string(), 1, "[1]", "");
    std::fs::write(&file, text).unwrap();
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_nerlab"));
    let o = std::process::Command::new(&exe)
        .args(["experiment", "run"])
        .arg(&file)
        .arg("--quiet")
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut state = UiState {
        panel: PanelKind::Experiment,
        runs_dir: Some(dir.join("runs")),
        ..UiState::default()
    };
    state.experiment.exe = Some(exe);
    let app = NerlabApp::with_parts(state, RunStore::default(), WorkerHandle::spawn(None).ok());
    let mut h = harness(app);
    // The page reads the experiment on a thread; the sidebar and the chooser list it.
    let deadline = Instant::now() + Duration::from_secs(60);
    while h.query_all_by_label_contains("(n=1)").count() < 2 {
        assert!(Instant::now() < deadline, "the results never showed");
        h.step();
        if h.query_by_label("▦ page").is_some() && h.state().state.experiment.open.is_none() {
            h.get_by_label("▦ page").click();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    h.get_by_label("Plan: 2 runs");
    assert_eq!(h.query_all_by_label("done").count(), 2);
    h.get_by_label_contains("2/2 runs done");
    h.query_all_by_label_contains("(n=1)")
        .next()
        .unwrap()
        .click();
    settle(&mut h);
    let app = h.state();
    assert_eq!(app.state.panel, PanelKind::Curves);
    assert_eq!(app.state.curves.overlay.len(), 1);
    let run = app.state.curves.overlay.iter().next().unwrap();
    assert!(run.starts_with("head-softmax_seed-1_"), "{run}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Clicks "Open and evaluate" in the launcher's "Open a trained model" box (as `state` fills it),
/// with a live worker, and waits until the entry `name` has its evaluation.
fn open_from_launcher<'a>(state: UiState, name: &str) -> Harness<'a, NerlabApp> {
    let worker = WorkerHandle::spawn(Some(1)).unwrap();
    let app = NerlabApp::with_parts(state, RunStore::default(), Some(worker));
    let mut h = harness(app);
    settle(&mut h);
    h.get_by_label_contains("Open a trained model").click();
    settle(&mut h);
    h.get_by_label("Open and evaluate").click();
    step_until(&mut h, 120, name, |h| {
        h.state()
            .store
            .runs
            .iter()
            .any(|r| r.name == name && r.report.is_some())
    });
    h
}

/// "Open a trained model" in the launcher: a transformers token-classification checkpoint,
/// evaluated on a corpus through the worker, becomes a read-only entry the confusion panel shows.
#[test]
fn a_checkpoint_opened_from_the_launcher_fills_the_confusion_panel() {
    let runs = temp_dir("open-model");
    let mut state = UiState {
        runs_dir: Some(runs.clone()),
        ..UiState::default()
    };
    state.launcher.inspect_model = common::fixture("models/tiny-electra-ner")
        .to_string_lossy()
        .into_owned();
    state.launcher.inspect_data = "builtin:demo/dev".into();
    let mut h = open_from_launcher(state, "tiny-electra-ner");
    assert_eq!(
        h.state().state.selected.as_deref(),
        Some("tiny-electra-ner")
    );
    h.state_mut().state.panel = PanelKind::Confusion;
    settle(&mut h);
    h.get_by_label("Click a cell to list its sentences.");
    assert!(
        h.query_all_by_label_contains("gold PS, predicted").count() > 1,
        "span-level cells of KLUE's types"
    );
    assert!(
        h.state().store.banners.is_empty(),
        "{:?}",
        h.state().store.banners
    );
    drop(h);
    std::fs::remove_dir_all(runs).unwrap();
}

/// A model being opened is listed at once (queued, with a note); a failure takes the entry away
/// and leaves the reason in a banner.
#[test]
fn an_opening_placeholder_goes_when_the_model_cannot_be_opened() {
    use nerlab::ui::store::Phase;
    let mut store = RunStore::default();
    store.opening("/x/broken-model");
    assert_eq!(store.runs.len(), 1);
    assert_eq!(store.runs[0].name, "broken-model");
    assert_eq!(store.runs[0].phase, Phase::Queued);
    assert!(store.runs[0].messages[0].contains("opening"));
    store.apply(Event::Failed {
        id: None,
        message: "opening /x/broken-model: no config.json".into(),
        files: None,
    });
    assert!(store.runs.is_empty());
    assert_eq!(store.banners, ["opening /x/broken-model: no config.json"]);
}

/// A PyTorch state dict alone in its folder opens from the launcher once its encoder and labels
/// are given in the box.
#[test]
fn a_state_dict_opens_from_the_launcher_with_its_encoder_and_labels() {
    let runs = temp_dir("open-state-dict");
    let lone = runs.join("lone");
    std::fs::create_dir_all(&lone).unwrap();
    std::fs::copy(
        common::fixture("models/tiny-korean-ner/model.pt"),
        lone.join("model.pt"),
    )
    .unwrap();
    let mut state = UiState {
        runs_dir: Some(runs.clone()),
        ..UiState::default()
    };
    state.launcher.inspect_model = lone.join("model.pt").to_string_lossy().into_owned();
    state.launcher.inspect_data = "builtin:demo/dev".into();
    state.launcher.inspect_encoder = common::fixture("models/tiny-korean-ner")
        .to_string_lossy()
        .into_owned();
    state.launcher.inspect_labels = "klue".into();
    let h = open_from_launcher(state, "model.pt");
    assert!(
        h.state().store.banners.is_empty(),
        "{:?}",
        h.state().store.banners
    );
    drop(h);
    std::fs::remove_dir_all(runs).unwrap();
}

/// A listed run opened again as a model keeps its curves and evaluations; only the report and
/// sentences the panels show are the new evaluation's.
#[test]
fn a_listed_run_opened_as_a_model_keeps_its_history() {
    let dir = temp_dir("reopen").join("canned-run");
    let mut store = RunStore::default();
    store.apply(Event::RunLoaded(Box::new(canned_run(&dir))));
    let before = store.runs[0].clone();
    assert!(before.config.is_some() && !before.evals.is_empty());
    let mut opened = canned_run(&dir);
    opened.config = None;
    opened.curve.clear();
    opened.evals = vec![EvalPoint {
        step: 0,
        micro_f1: 0.1,
        macro_f1: 0.1,
        per_type: Vec::new(),
    }];
    opened.message = "opened read-only and evaluated on x".into();
    store.apply(Event::RunLoaded(Box::new(opened)));
    assert_eq!(store.runs.len(), 1);
    let r = &store.runs[0];
    assert_eq!(r.evals, before.evals);
    assert_eq!(r.curve, before.curve);
    assert!(r.config.is_some());
    assert!(r.messages.iter().any(|m| m.contains("evaluated on x")));
}

/// The runs folder field keeps what is typed over the frames it takes to type it, and applies it
/// when it loses focus (it used to be rebuilt from the saved folder every frame, so every
/// keystroke was lost).
#[test]
fn the_runs_folder_field_keeps_what_is_typed_and_applies_it_on_leaving() {
    let (app, runs) = canned_app("runs-folder-field", PanelKind::Curves);
    let mut h = harness(app);
    settle(&mut h);
    let field = h.get_by_label("folder");
    field.focus();
    settle(&mut h);
    h.get_by_label("folder").type_text("-x");
    settle(&mut h);
    h.get_by_label("folder").type_text("y");
    settle(&mut h);
    let shown = h.get_by_label("folder").value().unwrap_or_default();
    assert!(
        shown.ends_with("-xy"),
        "typed text kept over frames: {shown:?}"
    );
    assert_eq!(h.state().state.runs_dir(), runs, "not applied while typing");
    h.get_by_label("Curves").click();
    settle(&mut h);
    let applied = h.state().state.runs_dir();
    assert!(
        applied.display().to_string().ends_with("-xy"),
        "applied on leaving the field: {}",
        applied.display()
    );
    let _ = std::fs::remove_dir_all(&runs);
}
