//! The worker protocol: a run streams aggregated progress, evaluations and its end; pause, resume
//! and stop work between steps and the worker still answers tagging requests while paused; a panic
//! becomes one `Failed` event and the worker goes on; dropping the handle mid-run stops cleanly
//! with a resumable checkpoint.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use nerlab::protocol::{Command, Event, TrainRequest};
use nerlab::train::RunConfig;
use nerlab::train::run_dir::{RunDir, RunState};
use nerlab::ui::RunStore;
use nerlab::ui::store::Phase;
use nerlab::worker::WorkerHandle;

fn config(out: &Path, name: &str, epochs: usize) -> RunConfig {
    let mut c = RunConfig::from_toml(
        r#"
seed = 3
threads = 1
[data]
train = ["builtin:demo/train"]
dev = "builtin:demo/dev"
[model.char]
hidden = 32
layers = 1
heads = 2
intermediate = 64
max_positions = 256
dropout = 0.1
[train]
batch_size = 16
lr = 0.003
checkpoint_every = 10
"#,
    )
    .unwrap();
    c.out = out.to_path_buf();
    c.name = Some(name.into());
    c.train.epochs = epochs;
    c
}

/// Waits for the first event matching `want`, returning every event seen on the way.
fn wait_for(w: &WorkerHandle, what: &str, want: impl Fn(&Event) -> bool) -> Vec<Event> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match w.events().recv_timeout(left) {
            Ok(e) => {
                let hit = want(&e);
                seen.push(e);
                if hit {
                    return seen;
                }
            }
            Err(_) => panic!("no {what} within two minutes; saw {seen:?}"),
        }
    }
}

/// Sends run `id` with config `c` and waits for its end (`Finished` or `Failed`), returning every
/// event seen on the way.
fn train_to_end(w: &WorkerHandle, id: u64, c: RunConfig, what: &str) -> Vec<Event> {
    w.send(Command::Train {
        id,
        request: TrainRequest::New(Box::new(c)),
    })
    .unwrap();
    wait_for(w, what, |e| {
        matches!(e, Event::Finished { .. } | Event::Failed { .. })
    })
}

#[test]
fn a_run_streams_progress_evaluations_and_its_end() {
    let dir = common::TempDir::new("worker-run");
    let w = WorkerHandle::spawn(Some(1)).unwrap();
    let events = train_to_end(&w, 1, config(&dir.0, "a", 2), "the end of the run");
    let Some(Event::Finished {
        state,
        best_f1,
        dir: run_dir,
        ..
    }) = events.last()
    else {
        panic!("{events:?}")
    };
    assert_eq!(*state, RunState::Finished);
    assert!(best_f1.is_some());
    let total = events
        .iter()
        .find_map(|e| match e {
            Event::Started { start, .. } => Some(start.total_steps),
            _ => None,
        })
        .unwrap();
    let progress: Vec<&Event> = events
        .iter()
        .filter(|e| matches!(e, Event::Progress { .. }))
        .collect();
    let points: usize = events
        .iter()
        .map(|e| match e {
            Event::Progress { points, .. } => points.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(points, total, "every step reaches the curve");
    assert!(
        progress.len() < total,
        "progress is aggregated: {} events for {total} steps",
        progress.len()
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Event::Evaluated { .. }))
            .count(),
        2,
        "one evaluation an epoch"
    );

    // The finished run tags text and loads for display.
    w.send(Command::Tag {
        request: 7,
        model: run_dir.clone(),
        text: "삼성전자 이재용 회장이 서울에서 기자회견을 열었다".into(),
    })
    .unwrap();
    let ev = wait_for(&w, "tagging", |e| matches!(e, Event::Tagged { .. }));
    assert!(matches!(ev.last(), Some(Event::Tagged { request: 7, .. })));
    w.send(Command::LoadRun {
        dir: run_dir.clone(),
    })
    .unwrap();
    let ev = wait_for(&w, "the loaded run", |e| matches!(e, Event::RunLoaded(_)));
    let Some(Event::RunLoaded(r)) = ev.last() else {
        unreachable!()
    };
    assert_eq!(r.curve.len(), total / 10, "one point per logged step");
    assert_eq!(r.evals.len(), 2);
    let report = r.report.as_ref().expect("dev report");
    assert!(
        !report.cases.is_empty(),
        "error cases are recomputed for browsing"
    );
    assert_eq!(r.dev.as_ref().unwrap().tokens.len(), report.sentences);
    // The runs folder is listed on the worker, so the workbench never reads it while drawing.
    w.send(Command::ScanRuns { dir: dir.0.clone() }).unwrap();
    let ev = wait_for(&w, "the run list", |e| matches!(e, Event::RunsFound { .. }));
    assert!(
        matches!(ev.last(), Some(Event::RunsFound { runs, .. }) if *runs == [run_dir.clone()]),
        "{ev:?}"
    );
    // Runs scored on one dev corpus share its sentences; a scan reads the corpus afresh.
    let load = |w: &WorkerHandle| {
        w.send(Command::LoadRun {
            dir: run_dir.clone(),
        })
        .unwrap();
        match wait_for(w, "the loaded run", |e| matches!(e, Event::RunLoaded(_))).pop() {
            Some(Event::RunLoaded(r)) => r.dev.expect("dev sentences"),
            _ => unreachable!(),
        }
    };
    let (after_scan, again) = (load(&w), load(&w));
    let first = r.dev.as_ref().unwrap();
    assert!(std::sync::Arc::ptr_eq(&after_scan.tokens, &again.tokens));
    assert!(std::sync::Arc::ptr_eq(&after_scan.gold, &again.gold));
    assert!(!std::sync::Arc::ptr_eq(&first.tokens, &again.tokens));
    assert_eq!(first.tokens, again.tokens);
    assert_eq!(first.pred, again.pred);
    w.send(Command::Attention {
        request: 8,
        model: run_dir.clone(),
        text: "서울에 간다".into(),
    })
    .unwrap();
    let ev = wait_for(&w, "attention", |e| matches!(e, Event::Attention { .. }));
    let Some(Event::Attention {
        tokens, weights, ..
    }) = ev.last()
    else {
        unreachable!()
    };
    assert_eq!(weights.len(), 1, "one layer");
    assert_eq!(weights[0][0].len(), tokens.len());
}

#[test]
fn pause_tag_while_paused_resume_and_stop() {
    let dir = common::TempDir::new("worker-control");
    let w = WorkerHandle::spawn(Some(1)).unwrap();
    // A model to tag with while the next run is paused.
    let ev = train_to_end(&w, 1, config(&dir.0, "small", 1), "the first run");
    let Some(Event::Finished { dir: small, .. }) = ev.last() else {
        panic!("{ev:?}")
    };

    w.send(Command::Train {
        id: 2,
        request: TrainRequest::New(Box::new(config(&dir.0, "long", 50))),
    })
    .unwrap();
    wait_for(&w, "progress", |e| {
        matches!(e, Event::Progress { id: 2, .. })
    });
    w.send(Command::Pause(2)).unwrap();
    wait_for(&w, "pause", |e| matches!(e, Event::Paused(2)));
    w.send(Command::Tag {
        request: 1,
        model: small.clone(),
        text: "오늘 서울".into(),
    })
    .unwrap();
    wait_for(&w, "an answer while paused", |e| {
        matches!(e, Event::Tagged { request: 1, .. })
    });
    w.send(Command::Resume(2)).unwrap();
    wait_for(&w, "resume", |e| matches!(e, Event::Resumed(2)));
    w.send(Command::Stop(2)).unwrap();
    let ev = wait_for(&w, "the stop", |e| {
        matches!(e, Event::Finished { id: 2, .. })
    });
    let Some(Event::Finished {
        state, dir: long, ..
    }) = ev.last()
    else {
        unreachable!()
    };
    assert_eq!(*state, RunState::Stopped);
    assert!(
        long.join("checkpoint.json").exists(),
        "a stopped run can be resumed"
    );
}

#[test]
fn a_panic_becomes_one_failed_event_and_the_worker_goes_on() {
    let dir = common::TempDir::new("worker-panic");
    let w = WorkerHandle::spawn(Some(1)).unwrap();
    let mut c = config(&dir.0, "boom", 1);
    c.train.inject_panic_at_step = Some(3);
    let ev = train_to_end(&w, 1, c, "the failure");
    let Some(Event::Failed {
        id: Some(1),
        message,
        ..
    }) = ev.last()
    else {
        panic!("{ev:?}")
    };
    assert!(message.contains("injected panic at step 3"), "{message}");
    // The run folder says so too (a window opened later must not show it as running).
    let status = RunDir::open(&dir.0.join("boom")).unwrap().status();
    assert_eq!(status.state, RunState::Failed);
    assert!(
        status.message.contains("injected panic at step 3"),
        "{status:?}"
    );
    // Still alive and working.
    let ev = train_to_end(&w, 2, config(&dir.0, "after", 1), "the next run");
    assert!(
        matches!(ev.last(), Some(Event::Finished { id: 2, .. })),
        "{ev:?}"
    );
    assert!(w.alive());
}

#[test]
fn dropping_the_handle_mid_run_leaves_a_resumable_checkpoint() {
    let dir = common::TempDir::new("worker-drop");
    let w = WorkerHandle::spawn(Some(1)).unwrap();
    w.send(Command::Train {
        id: 1,
        request: TrainRequest::New(Box::new(config(&dir.0, "dropped", 50))),
    })
    .unwrap();
    wait_for(&w, "progress", |e| matches!(e, Event::Progress { .. }));
    let start = Instant::now();
    drop(w);
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "shutdown is prompt"
    );
    let run = dir.0.join("dropped");
    let status: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("status.json")).unwrap()).unwrap();
    assert_eq!(status["state"], "stopped");
    assert!(run.join("checkpoint.json").exists());
}

/// A model the worker has cached is loaded again when its files change (a training run rewrites
/// `best/` whenever dev F1 improves): here run a's `best/` is replaced by run b's.
#[test]
fn a_rewritten_best_model_is_reloaded() {
    let dir = common::TempDir::new("worker-reload");
    let w = WorkerHandle::spawn(Some(1)).unwrap();
    let mut runs = Vec::new();
    for (id, name, epochs) in [(1, "a", 1), (2, "b", 3)] {
        let ev = train_to_end(&w, id, config(&dir.0, name, epochs), "a run");
        let Some(Event::Finished { dir, .. }) = ev.last() else {
            panic!("{ev:?}")
        };
        runs.push(dir.clone());
    }
    let attention = |request: u64, model: &Path| {
        w.send(Command::Attention {
            request,
            model: model.to_path_buf(),
            text: "서울에 간다".into(),
        })
        .unwrap();
        let ev = wait_for(&w, "attention", |e| matches!(e, Event::Attention { .. }));
        let Some(Event::Attention { weights, .. }) = ev.last() else {
            panic!("{ev:?}")
        };
        weights.clone()
    };
    let (a, b) = (attention(1, &runs[0]), attention(2, &runs[1]));
    assert_ne!(a, b, "the two runs' models differ");
    let best = runs[0].join("best");
    std::fs::remove_dir_all(&best).unwrap();
    std::fs::create_dir(&best).unwrap();
    for f in std::fs::read_dir(runs[1].join("best")).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), best.join(f.file_name())).unwrap();
    }
    assert_eq!(
        attention(3, &runs[0]),
        b,
        "run a now answers with b's model"
    );
}

/// A run that fails before its first step (here a training corpus in UTF-16) records that it
/// failed and why; after the window is closed and opened again (a new worker and store), it reads
/// as failed with its message, never as `running 0/0`.
#[test]
fn a_run_that_fails_before_its_first_step_is_no_ghost_after_a_restart() {
    let dir = common::TempDir::new("worker-ghost");
    let bad = dir.0.join("train-utf16.tsv");
    std::fs::write(&bad, common::utf16le("서울\tB-LC\n")).unwrap();
    let mut c = config(&dir.0, "ghost", 1);
    c.data.train = vec![bad.to_string_lossy().into_owned()];
    {
        let w = WorkerHandle::spawn(Some(1)).unwrap();
        let ev = train_to_end(&w, 1, c, "the failure");
        assert!(
            matches!(ev.last(), Some(Event::Failed { id: Some(1), message, .. }) if message.contains("UTF-16")),
            "{ev:?}"
        );
    } // the window closes
    let run_dir = dir.0.join("ghost");
    let w = WorkerHandle::spawn(Some(1)).unwrap();
    w.send(Command::LoadRun {
        dir: run_dir.clone(),
    })
    .unwrap();
    let ev = wait_for(&w, "the loaded run", |e| {
        matches!(e, Event::RunLoaded(_) | Event::Failed { .. })
    });
    let mut store = RunStore::default();
    for e in ev {
        store.apply(e);
    }
    let run = &store.runs[0];
    assert_eq!(run.phase, Phase::Active(RunState::Failed));
    let error = run.error.as_deref().unwrap_or_default();
    assert!(error.contains("looks like UTF-16"), "{error}");
    assert!(!run.phase.is_live());
    // A folder left with only config.toml (as older nerlab left such runs) is not running either.
    std::fs::remove_file(run_dir.join("status.json")).unwrap();
    w.send(Command::CheckRuns {
        dirs: vec![run_dir.clone()],
    })
    .unwrap();
    let ev = wait_for(&w, "the run's status", |e| {
        matches!(e, Event::RunStatus { .. })
    });
    let Some(Event::RunStatus { state, .. }) = ev.last() else {
        panic!("{ev:?}")
    };
    assert_eq!(*state, RunState::Interrupted);
}

#[test]
fn an_opened_checkpoint_is_a_read_only_run_that_tags_and_shows_attention() {
    let w = WorkerHandle::spawn(Some(1)).unwrap();
    let model = common::fixture("models/tiny-bert-ner");
    let mut labels = nerlab::data::label_map::LabelMap::default();
    labels.add_pair("MISC=O").unwrap();
    w.send(Command::OpenModel {
        model: model.to_string_lossy().into_owned(),
        data: "builtin:demo/dev".into(),
        labels,
        torch: Default::default(),
    })
    .unwrap();
    let ev = wait_for(&w, "the opened model", |e| matches!(e, Event::RunLoaded(_)));
    let mut store = RunStore::default();
    for e in ev {
        store.apply(e);
    }
    let r = store
        .runs
        .iter()
        .find(|r| r.name == "tiny-bert-ner")
        .expect("listed under its folder's name");
    assert_eq!(r.phase, Phase::Active(RunState::Finished));
    assert!(r.config.is_none(), "read-only: no configuration to resume");
    assert_eq!(r.model_dir(), Some(model.as_path()));
    let report = r.report.as_ref().expect("the evaluation's report");
    assert!(
        report.per_type.contains_key("PS"),
        "matched to KLUE's types"
    );
    let dev = r
        .dev
        .as_ref()
        .expect("sentences for the error and confusion panels");
    assert_eq!(dev.gold.len(), dev.pred.len());
    assert!(
        r.messages
            .iter()
            .any(|m| m.contains("types matched to the corpus"))
    );
    assert_eq!(r.best_f1, Some(report.micro.f1));

    w.send(Command::Tag {
        request: 7,
        model: model.clone(),
        text: "Seoul is in Korea".into(),
    })
    .unwrap();
    wait_for(&w, "tags from the checkpoint", |e| {
        matches!(e, Event::Tagged { request: 7, .. })
    });
    w.send(Command::Attention {
        request: 8,
        model: model.clone(),
        text: "Seoul is in Korea".into(),
    })
    .unwrap();
    let ev = wait_for(&w, "its attention", |e| {
        matches!(e, Event::Attention { request: 8, .. })
    });
    let Some(Event::Attention { weights, .. }) = ev.last() else {
        unreachable!()
    };
    assert_eq!(weights.len(), 2, "one matrix per layer of the tiny BERT");

    // A model that cannot be opened is one failure event, naming it.
    w.send(Command::OpenModel {
        model: "/nonexistent/model".into(),
        data: "builtin:demo/dev".into(),
        labels: Default::default(),
        torch: Default::default(),
    })
    .unwrap();
    let ev = wait_for(&w, "the failure", |e| matches!(e, Event::Failed { .. }));
    let Some(Event::Failed { message, .. }) = ev.last() else {
        unreachable!()
    };
    assert!(
        message.contains("/nonexistent/model: no such file or folder"),
        "{message}"
    );
}

/// A model folder removed while the window shows it: asking it to tag is a clear failure (the
/// folder is gone), the run stays listed with what it showed, and the worker goes on serving.
#[test]
fn a_folder_removed_while_shown_fails_clearly_and_the_worker_goes_on() {
    let dir = common::TempDir::new("removed-while-shown");
    let copy = dir.path("tiny-bert-ner");
    std::fs::create_dir_all(&copy).unwrap();
    let fixture = common::fixture("models/tiny-bert-ner");
    for f in std::fs::read_dir(&fixture).unwrap().flatten() {
        std::fs::copy(f.path(), copy.join(f.file_name())).unwrap();
    }
    let w = WorkerHandle::spawn(Some(1)).unwrap();
    let mut labels = nerlab::data::label_map::LabelMap::default();
    labels.add_pair("MISC=O").unwrap();
    w.send(Command::OpenModel {
        model: copy.to_string_lossy().into_owned(),
        data: "builtin:demo/dev".into(),
        labels,
        torch: Default::default(),
    })
    .unwrap();
    let mut store = RunStore::default();
    for e in wait_for(&w, "the opened model", |e| matches!(e, Event::RunLoaded(_))) {
        store.apply(e);
    }
    std::fs::remove_dir_all(&copy).unwrap();
    w.send(Command::Tag {
        request: 1,
        model: copy.clone(),
        text: "Seoul".into(),
    })
    .unwrap();
    let ev = wait_for(&w, "the failure", |e| matches!(e, Event::Failed { .. }));
    let Some(Event::Failed { message, .. }) = ev.last() else {
        unreachable!()
    };
    assert_eq!(
        message,
        &format!(
            "tagging: {}: the folder is gone (removed or moved while shown); its curves and \
             scores stay on screen until the window closes, but it cannot tag any more",
            copy.display()
        )
    );
    for e in ev {
        store.apply(e);
    }
    assert!(
        store
            .runs
            .iter()
            .any(|r| r.name == "tiny-bert-ner" && r.report.is_some()),
        "still listed with its evaluation"
    );
    w.send(Command::Tag {
        request: 2,
        model: fixture,
        text: "Seoul".into(),
    })
    .unwrap();
    wait_for(&w, "tags from another model", |e| {
        matches!(e, Event::Tagged { request: 2, .. })
    });
}

/// A run folder the window checks on (one another process trains) that has gone is answered
/// once with `RunGone`, so the window stops checking it, and the worker answers on.
#[test]
fn a_checked_run_folder_that_is_gone_is_said_once() {
    let dir = common::TempDir::new("gone-run");
    let gone = dir.path("never-there");
    let w = WorkerHandle::spawn(Some(1)).unwrap();
    w.send(Command::CheckRuns {
        dirs: vec![gone.clone()],
    })
    .unwrap();
    let ev = wait_for(&w, "RunGone", |e| matches!(e, Event::RunGone { .. }));
    assert!(matches!(ev.last(), Some(Event::RunGone { dir }) if *dir == gone));
}

/// A panic while answering a command (here injected; in life a bug while loading or tagging)
/// becomes one `Failed` event with its message, and the worker answers the next command.
#[test]
fn a_panic_while_answering_becomes_an_error_and_the_worker_serves_on() {
    let w = WorkerHandle::spawn(Some(1)).unwrap();
    w.send(Command::InjectPanic("tokenizer exploded".into()))
        .unwrap();
    let ev = wait_for(&w, "the failure", |e| matches!(e, Event::Failed { .. }));
    let Some(Event::Failed { id, message, .. }) = ev.last() else {
        unreachable!()
    };
    assert_eq!(*id, None);
    assert_eq!(
        message,
        "the worker recovered from a panic: tokenizer exploded"
    );
    w.send(Command::Tag {
        request: 3,
        model: common::fixture("models/tiny-bert-ner"),
        text: "Seoul".into(),
    })
    .unwrap();
    wait_for(&w, "tags after the panic", |e| {
        matches!(e, Event::Tagged { request: 3, .. })
    });
}
