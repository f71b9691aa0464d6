//! The background worker: one named thread that owns the device and every model, reached only
//! through the bounded channels of [`protocol`](crate::protocol). It trains one run at a time
//! (further `Train` commands queue), and between training steps, and while paused, it answers the
//! UI: pause, resume, stop, tag text, show attention, load runs from disk. A panic anywhere becomes
//! one `Event::Failed` and the worker goes on; dropping the handle stops the current run (which
//! writes a resumable checkpoint) and joins the thread.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};

use crate::data::hub::Hub;
use crate::data::label_map::LabelMap;
use crate::infer::{
    OpenOptions, attention_of_text, evaluate, has_model, load_model, model_dir, open_model,
    score_saved_predictions, tag_texts,
};
use crate::model::ner::NerModel;
use crate::protocol::{
    Command, CurvePoint, DevView, EvalPoint, Event, LoadedRun, RunFiles, RunId, TrainRequest,
};
use crate::train::events::panic_message;
use crate::train::run_dir::{MetricsLine, RunDir, RunState, list_runs};
use crate::train::sources::load_corpus;
use crate::train::{Control, Observer, RunConfig, TrainEvent, train};

/// How often progress is reported at most.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
const MODEL_CACHE: usize = 3;

/// The UI's end of the worker.
pub struct WorkerHandle {
    commands: Sender<Command>,
    events: Receiver<Event>,
    thread: Option<JoinHandle<()>>,
    threads: usize,
    /// Set when the handle shuts the worker down: the commands still waiting (a scan's hundreds
    /// of run loads) are dropped, not answered, so closing the window never waits on them.
    closing: Arc<AtomicBool>,
}

impl WorkerHandle {
    /// Starts the worker thread; `threads` caps the CPU threads of tensor work (default: all
    /// cores but one, which stays with the UI). This is where the workbench's cap is decided:
    /// runs launched here without a thread count get this one.
    pub fn spawn(threads: Option<usize>) -> std::io::Result<Self> {
        let threads = crate::model::device::default_threads(threads);
        let (ctx, crx) = bounded(256);
        let (etx, erx) = bounded(4096);
        let closing = Arc::new(AtomicBool::new(false));
        let closing_seen = Arc::clone(&closing);
        let thread = std::thread::Builder::new()
            .name("nerlab-worker".into())
            .spawn(move || match crate::model::device::thread_pool(threads) {
                // The loop stays on this thread; each command's work runs in the pool.
                Ok(pool) => Worker::new(crx, etx, threads, Arc::new(pool), closing_seen).run(),
                Err(e) => {
                    let _ = etx.send(Event::Failed {
                        id: None,
                        message: format!("worker: {e:#}"),
                        files: None,
                    });
                }
            })?;
        Ok(Self {
            commands: ctx,
            events: erx,
            thread: Some(thread),
            threads,
            closing,
        })
    }

    /// Stops the worker and waits for its thread: a run in training stops (writing its
    /// resumable checkpoint), waiting commands are dropped, and the last event is
    /// [`Event::Stopped`]. Events sent before it stay readable. Dropping the handle does this.
    pub fn shut_down(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.closing.store(true, Ordering::Relaxed);
        let _ = self.commands.send(Command::Shutdown);
        let _ = thread.join();
    }

    /// The CPU threads the worker's tensor work runs on (and runs launched without a count get).
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Sends a command, waiting while the worker's queue is full; fails only when the worker is
    /// gone. The window uses [`try_send`](Self::try_send) instead and never waits.
    pub fn send(&self, command: Command) -> Result<(), String> {
        self.commands
            .send(command)
            .map_err(|_| "the worker has stopped".to_string())
    }

    /// Sends a command if the worker's queue has room: the command back when it is full, an
    /// error when the worker is gone.
    pub fn try_send(&self, command: Command) -> Result<Result<(), Command>, String> {
        match self.commands.try_send(command) {
            Ok(()) => Ok(Ok(())),
            Err(TrySendError::Full(command)) => Ok(Err(command)),
            Err(TrySendError::Disconnected(_)) => Err("the worker has stopped".to_string()),
        }
    }

    /// The next event, if one is waiting.
    pub fn try_recv(&self) -> Option<Event> {
        self.events.try_recv().ok()
    }

    /// The event channel (to block with a timeout in tests and headless tools).
    pub fn events(&self) -> &Receiver<Event> {
        &self.events
    }

    /// Whether the worker thread is still alive.
    pub fn alive(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.shut_down();
    }
}

struct Worker {
    commands: Receiver<Command>,
    events: Sender<Event>,
    queue: VecDeque<Command>,
    /// Loaded models by the path asked for, with the version of the files they came from.
    models: HashMap<PathBuf, (ModelStamp, NerModel)>,
    /// How each model opened from elsewhere was opened (its label map and state-dict options),
    /// so tagging and attention open it the same way.
    opened: HashMap<PathBuf, (LabelMap, crate::infer::TorchOptions)>,
    shutting_down: bool,
    threads: usize,
    /// Where tensor work runs, capped at `threads` (candle's CPU kernels use the current pool).
    pool: Arc<rayon::ThreadPool>,
    /// Dev corpora read for loaded runs, read again after each scan of the runs folder.
    devs: DevCache,
    /// The handle is shutting the worker down (see [`WorkerHandle::shut_down`]).
    closing: Arc<AtomicBool>,
}

impl Worker {
    fn new(
        commands: Receiver<Command>,
        events: Sender<Event>,
        threads: usize,
        pool: Arc<rayon::ThreadPool>,
        closing: Arc<AtomicBool>,
    ) -> Self {
        Self {
            commands,
            events,
            queue: VecDeque::new(),
            models: HashMap::new(),
            opened: HashMap::new(),
            shutting_down: false,
            threads,
            pool,
            devs: DevCache::default(),
            closing,
        }
    }

    fn closing(&self) -> bool {
        self.closing.load(Ordering::Relaxed)
    }

    fn send(&self, e: Event) {
        // Closing, nobody may read events any more: never wait for room.
        if self.closing() {
            let _ = self.events.try_send(e);
        } else {
            let _ = self.events.send(e);
        }
    }

    fn run(mut self) {
        loop {
            let cmd = match self.queue.pop_front() {
                Some(c) => c,
                None if self.shutting_down => break,
                None => match self.commands.recv() {
                    Ok(c) => c,
                    Err(_) => break,
                },
            };
            if matches!(cmd, Command::Shutdown) || self.closing() {
                break;
            }
            let pool = Arc::clone(&self.pool);
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                pool.install(|| self.handle(cmd))
            }));
            if let Err(p) = result {
                self.send(Event::Failed {
                    id: None,
                    message: format!("the worker recovered from a panic: {}", panic_message(&p)),
                    files: None,
                });
            }
            if self.shutting_down {
                break;
            }
        }
        self.send(Event::Stopped);
    }

    /// Requests that need no running training.
    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Train { id, request } => self.train(id, request),
            other => self.answer(other, None),
        }
    }

    fn train(&mut self, id: RunId, request: TrainRequest) {
        // The trainer reads only the thread count from the configuration it gets to resume
        // (the run's own config.toml is used).
        let (mut config, resume) = match request {
            TrainRequest::New(config) => (*config, None),
            TrainRequest::Resume(dir) => (RunConfig::default(), Some(dir)),
        };
        config.threads.get_or_insert(self.threads);
        let control = Control::default();
        let mut obs = WorkerObserver {
            worker: self,
            id,
            control: control.clone(),
            pending: Vec::new(),
            last_flush: Instant::now(),
            last: None,
            dir: None,
        };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            train(config, resume.as_deref(), &mut obs, control.clone())
        }));
        obs.flush();
        let files = obs.dir.take().map(|d| run_files(&d));
        match result {
            Ok(Ok(outcome)) => {
                self.send(Event::Finished {
                    id,
                    files: run_files(&outcome.dir),
                    dir: outcome.dir,
                    state: outcome.state,
                    best_f1: outcome.best_f1,
                    message: outcome.message,
                });
            }
            Ok(Err(e)) => self.send(Event::Failed {
                id: Some(id),
                message: format!("{e:#}"),
                files,
            }),
            Err(p) => self.send(Event::Failed {
                id: Some(id),
                message: format!("training panicked: {}", panic_message(&p)),
                files,
            }),
        }
    }

    /// Answers a command; `control` is the running training's, if any.
    fn answer(&mut self, cmd: Command, control: Option<(&Control, RunId)>) {
        let ours = |id: RunId| {
            control
                .filter(|(_, running)| *running == id)
                .map(|(c, _)| c)
        };
        match cmd {
            Command::Pause(id) => {
                if let Some(c) = ours(id) {
                    c.pause.store(true, Ordering::Relaxed);
                }
            }
            Command::Resume(id) => {
                if let Some(c) = ours(id) {
                    c.pause.store(false, Ordering::Relaxed);
                }
            }
            Command::Stop(id) => match ours(id) {
                Some(c) => {
                    c.stop.store(true, Ordering::Relaxed);
                    c.pause.store(false, Ordering::Relaxed);
                }
                // Not running yet: drop it from the queue.
                None => self
                    .queue
                    .retain(|q| !matches!(q, Command::Train { id: qid, .. } if *qid == id)),
            },
            Command::InjectPanic(message) => panic!("{message}"),
            Command::Shutdown => {
                self.shutting_down = true;
                if let Some((c, _)) = control {
                    c.stop.store(true, Ordering::Relaxed);
                    c.pause.store(false, Ordering::Relaxed);
                }
                self.queue.clear();
            }
            Command::Train { .. } => self.queue.push_back(cmd),
            Command::Tag {
                request,
                model,
                text,
            } => {
                let result = self
                    .model(&model)
                    .and_then(|m| tag_texts(m, std::slice::from_ref(&text)));
                match result {
                    Ok(mut tagged) => self.send(Event::Tagged {
                        request,
                        text,
                        spans: tagged.pop().map(|t| t.spans).unwrap_or_default(),
                    }),
                    Err(e) => self.send(Event::Failed {
                        id: None,
                        message: format!("tagging: {e:#}"),
                        files: None,
                    }),
                }
            }
            Command::Attention {
                request,
                model,
                text,
            } => {
                let result = self.model(&model).and_then(|m| attention_of_text(m, &text));
                match result {
                    Ok(a) => self.send(Event::Attention {
                        request,
                        tokens: a.tokens,
                        token_tags: a.token_tags,
                        weights: a.weights,
                    }),
                    Err(e) => self.send(Event::Failed {
                        id: None,
                        message: format!("attention: {e:#}"),
                        files: None,
                    }),
                }
            }
            Command::CheckRuns { dirs } => self.check_runs(dirs),
            Command::ScanRuns { dir } => {
                // A scan (the window's first, or ⟳) reads dev corpora afresh: one may have changed.
                self.devs = DevCache::default();
                let runs = list_runs(&dir).into_iter().map(|r| r.path).collect();
                self.send(Event::RunsFound { dir, runs });
            }
            Command::OpenModel {
                model,
                data,
                labels,
                torch,
            } => self.open_model(model, &data, labels, torch),
            Command::LoadRun { dir } => match load_run(&dir, &mut self.devs) {
                Ok(r) => self.send(Event::RunLoaded(Box::new(r))),
                Err(e) => self.send(Event::Failed {
                    id: None,
                    message: format!("{}: {e:#}", dir.display()),
                    files: None,
                }),
            },
        }
    }

    /// The state of runs another process trains, read from their folders.
    fn check_runs(&self, dirs: Vec<PathBuf>) {
        for dir in dirs {
            if !dir.exists() {
                // Said once: the window stops checking it (it used to stay "running", checked
                // every 3 s and redrawn 10 times a second, for good).
                self.send(Event::RunGone { dir });
                continue;
            }
            if let Ok(run) = RunDir::open(&dir) {
                let s = run.status();
                let files = run_files(&dir);
                self.send(Event::RunStatus {
                    dir,
                    state: s.state,
                    step: s.step,
                    total_steps: s.total_steps,
                    message: s.message,
                    files,
                });
            }
        }
    }

    /// Opens and evaluates a model from elsewhere ([`Command::OpenModel`]), remembering how it was
    /// opened for the tagging and attention requests that follow.
    fn open_model(
        &mut self,
        model: String,
        data: &str,
        labels: LabelMap,
        torch: crate::infer::TorchOptions,
    ) {
        match open_and_evaluate(&model, data, labels.clone(), torch.clone()) {
            Ok(r) => {
                self.opened.insert(PathBuf::from(&model), (labels, torch));
                self.send(Event::RunLoaded(Box::new(r)));
            }
            Err(e) => self.send(Event::Failed {
                id: None,
                message: format!("opening {model}: {e:#}"),
                files: None,
            }),
        }
    }

    /// A cached model for a run directory or model folder (loaded on first use, and again when its
    /// files change: a training run rewrites `best/` whenever dev F1 improves).
    fn model(&mut self, path: &Path) -> anyhow::Result<&NerModel> {
        if !path.exists() {
            self.models.remove(path);
            anyhow::bail!(
                "{}: the folder is gone (removed or moved while shown); its curves and scores stay \
                 on screen until the window closes, but it cannot tag any more",
                path.display()
            );
        }
        let stamp = ModelStamp::of(&model_dir(path));
        if self.models.get(path).is_none_or(|(s, _)| *s != stamp) {
            self.models.remove(path);
            if self.models.len() >= MODEL_CACHE
                && let Some(k) = self.models.keys().next().cloned()
            {
                self.models.remove(&k);
            }
            self.models.insert(
                path.to_path_buf(),
                (stamp, open_any(path, self.opened.get(path))?),
            );
        }
        self.models
            .get(path)
            .map(|(_, m)| m)
            .ok_or_else(|| anyhow::anyhow!("model cache"))
    }
}

/// The model behind a path the UI holds: a run's best, a model folder, or a token-classification
/// checkpoint (with its own labels).
fn open_any(
    path: &Path,
    how: Option<&(LabelMap, crate::infer::TorchOptions)>,
) -> anyhow::Result<NerModel> {
    if has_model(path) {
        return load_model(path);
    }
    let options = OpenOptions {
        labels: how.map(|h| h.0.clone()).unwrap_or_default(),
        torch: how.map(|h| h.1.clone()).unwrap_or_default(),
        offline: true,
        ..OpenOptions::default()
    };
    Ok(open_model(&path.to_string_lossy(), &options)?.model)
}

/// The version of a model folder's files: their names, sizes and modification times. A
/// checkpoint written anew (files are written to a temporary name, then renamed) changes it.
#[derive(Debug, PartialEq, Eq)]
struct ModelStamp(Vec<(std::ffi::OsString, u64, Option<std::time::SystemTime>)>);

impl ModelStamp {
    fn of(dir: &Path) -> Self {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                Some((e.file_name(), m.len(), m.modified().ok()))
            })
            .collect();
        files.sort();
        Self(files)
    }
}

/// Forwards a run's events to the UI, a few times a second, and answers commands between steps.
struct WorkerObserver<'a> {
    worker: &'a mut Worker,
    id: RunId,
    control: Control,
    pending: Vec<CurvePoint>,
    last_flush: Instant,
    last: Option<crate::train::trainer::StepMetrics>,
    /// The run's folder, once training has started.
    dir: Option<PathBuf>,
}

impl WorkerObserver<'_> {
    fn flush(&mut self) {
        if let Some(last) = self.last.take() {
            let points = std::mem::take(&mut self.pending);
            // When the UI is far behind and the channel is full, this event is not sent: its
            // step numbers are superseded by the next event's, and its curve points are kept to
            // ride with the next event, so the curve never loses a point.
            if let Err(TrySendError::Full(Event::Progress { points, .. })) =
                self.worker.events.try_send(Event::Progress {
                    id: self.id,
                    last,
                    points,
                })
            {
                self.pending = points;
            }
        }
        self.last_flush = Instant::now();
    }

    fn poll(&mut self) {
        // Closing: stop the run (once) and leave every waiting command unanswered, in this poll
        // and in those of the run's last steps.
        if self.worker.closing() {
            if !self.worker.shutting_down {
                let control = self.control.clone();
                self.worker
                    .answer(Command::Shutdown, Some((&control, self.id)));
            }
            return;
        }
        while let Ok(cmd) = self.worker.commands.try_recv() {
            let control = self.control.clone();
            self.worker.answer(cmd, Some((&control, self.id)));
        }
    }
}

impl Observer for WorkerObserver<'_> {
    fn on(&mut self, event: TrainEvent) {
        let id = self.id;
        match event {
            TrainEvent::Step(m) => {
                self.pending.push(CurvePoint {
                    step: m.step,
                    loss: m.loss,
                    lr: m.lr,
                });
                self.last = Some(m);
                if self.last_flush.elapsed() >= PROGRESS_EVERY {
                    self.flush();
                }
            }
            TrainEvent::Started(start) => {
                self.dir = Some(start.dir.clone());
                self.worker.send(Event::Started { id, start });
            }
            TrainEvent::Evaluated {
                step, report, best, ..
            } => {
                self.flush();
                let files = self.dir.as_deref().map(run_files).unwrap_or_default();
                self.worker.send(Event::Evaluated {
                    id,
                    step,
                    report,
                    best,
                    files,
                });
            }
            TrainEvent::Paused => self.worker.send(Event::Paused(id)),
            TrainEvent::Resumed => self.worker.send(Event::Resumed(id)),
            TrainEvent::Message(text) => self.worker.send(Event::Message { id, text }),
        }
        self.poll();
    }

    fn idle(&mut self) {
        self.poll();
    }
}

/// What a run folder holds that the workbench offers actions on (tagging with its best model,
/// resuming from its checkpoint).
fn run_files(dir: &Path) -> RunFiles {
    RunFiles {
        has_model: has_model(dir),
        has_checkpoint: RunDir::open(dir).is_ok_and(|r| r.latest_checkpoint().is_some()),
    }
}

/// Reads a run directory for display: curves, evaluations, the best model's dev report, and the
/// dev sentences with their predictions (the report is recomputed from them, so error cases are
/// available).
pub fn load_run(dir: &Path, devs: &mut DevCache) -> anyhow::Result<LoadedRun> {
    let run = RunDir::open(dir)?;
    let config = run.config().ok();
    let status = run.status();
    let mut curve = Vec::new();
    let mut evals = Vec::new();
    for line in run.metrics() {
        match line {
            MetricsLine::Train(t) => curve.push(CurvePoint {
                step: t.step,
                loss: t.loss,
                lr: t.lr,
            }),
            MetricsLine::Eval(e) => evals.push(EvalPoint {
                step: e.step,
                micro_f1: e.micro_f1,
                macro_f1: e.macro_f1,
                per_type: e.per_type_f1.into_iter().collect(),
            }),
        }
    }
    let (report, dev) = match config
        .as_ref()
        .and_then(|c| c.data.dev.clone().map(|d| (c, d)))
    {
        Some((c, dev_src)) => match dev_report(dir, c, &dev_src, devs) {
            Ok((r, v)) => (Some(Box::new(r)), Some(v)),
            Err(_) => (None, None),
        },
        None => (None, None),
    };
    Ok(LoadedRun {
        dir: dir.to_path_buf(),
        config,
        state: status.state,
        step: status.step,
        total_steps: status.total_steps,
        curve,
        evals,
        report,
        dev,
        message: status.message,
        files: run_files(dir),
    })
}

/// A model opened from outside the runs folder, evaluated on `data`, as a finished read-only
/// run: one evaluation point, the report, and the sentences with both sides' tags.
pub fn open_and_evaluate(
    model: &str,
    data: &str,
    labels: LabelMap,
    torch: crate::infer::TorchOptions,
) -> anyhow::Result<LoadedRun> {
    let hub = Hub::from_env(true);
    let gold = load_corpus(data, None, &hub)?;
    let opened = open_model(
        model,
        &OpenOptions {
            labels,
            target: Some(gold.label_set().into_iter().collect()),
            offline: true,
            torch,
        },
    )?;
    let (report, pred) = evaluate(&opened.model, &gold, 64)?;
    let gv = gold.view();
    let pv = gold.view_of(pred.iter().map(Vec::as_slice));
    let dev = DevGold::of(&gold, gv).view(pv.tags);
    let note = opened.note();
    Ok(LoadedRun {
        dir: PathBuf::from(model),
        config: None,
        state: RunState::Finished,
        step: 0,
        total_steps: 0,
        curve: Vec::new(),
        evals: vec![EvalPoint::of(0, &report)],
        report: Some(Box::new(report)),
        dev: Some(dev),
        message: format!(
            "opened read-only and evaluated on {data}{}",
            if note.is_empty() {
                String::new()
            } else {
                format!(" ({note})")
            }
        ),
        files: RunFiles {
            has_model: true,
            has_checkpoint: false,
        },
    })
}

/// The best model's dev report, recomputed from its saved predictions, and the dev sentences
/// with both sides' tags for browsing.
fn dev_report(
    dir: &Path,
    config: &RunConfig,
    dev_src: &str,
    devs: &mut DevCache,
) -> anyhow::Result<(crate::metrics::ScoreReport, DevView)> {
    let dev = devs.get(dev_src, config.data.format)?;
    let scored = score_saved_predictions(dir, &dev.corpus)?;
    Ok((scored.report, dev.gold.view(scored.pred.tags)))
}

/// The gold side of a [`DevView`], built once per dev corpus.
#[derive(Debug, Clone)]
struct DevGold {
    ids: Arc<Vec<String>>,
    tokens: Arc<Vec<Vec<String>>>,
    positions: Arc<Vec<Vec<usize>>>,
    tags: Arc<Vec<Vec<String>>>,
    space_tokens: bool,
}

impl DevGold {
    fn of(corpus: &crate::data::Corpus, view: crate::data::TagView) -> Self {
        Self {
            ids: Arc::new(corpus.sentences.iter().map(|s| s.id.clone()).collect()),
            tokens: Arc::new(corpus.sentences.iter().map(|s| s.tokens.clone()).collect()),
            positions: Arc::new(view.positions),
            tags: Arc::new(view.tags),
            space_tokens: corpus.format.space_tokens(),
        }
    }

    /// The view of one run's predictions (in the scoring view) beside these sentences.
    fn view(&self, pred: Vec<Vec<String>>) -> DevView {
        DevView {
            ids: Arc::clone(&self.ids),
            tokens: Arc::clone(&self.tokens),
            positions: Arc::clone(&self.positions),
            gold: Arc::clone(&self.tags),
            pred,
            space_tokens: self.space_tokens,
        }
    }
}

/// A dev corpus as runs are scored on it: read once, then shared by every run that names it.
struct CachedDev {
    corpus: crate::data::Corpus,
    gold: DevGold,
}

/// The dev corpora read while loading runs, by the source a run's config names and its format.
#[derive(Default)]
pub struct DevCache(HashMap<(String, Option<crate::data::Format>), Arc<CachedDev>>);

impl DevCache {
    fn get(
        &mut self,
        source: &str,
        format: Option<crate::data::Format>,
    ) -> anyhow::Result<Arc<CachedDev>> {
        let key = (source.to_string(), format);
        if let Some(d) = self.0.get(&key) {
            return Ok(Arc::clone(d));
        }
        let corpus = load_corpus(source, format, &Hub::from_env(true))?;
        let gold = DevGold::of(&corpus, corpus.view());
        let d = Arc::new(CachedDev { corpus, gold });
        self.0.insert(key, Arc::clone(&d));
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The events of a worker run over `commands` (then a shutdown), with `closing` as the
    /// handle would have set it.
    fn events_of(commands: Vec<Command>, closing: bool) -> Vec<Event> {
        let (ctx, crx) = bounded(commands.len() + 1);
        let (etx, erx) = bounded(commands.len() + 2);
        for c in commands {
            ctx.send(c).unwrap();
        }
        ctx.send(Command::Shutdown).unwrap();
        let pool = Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .unwrap(),
        );
        Worker::new(crx, etx, 1, pool, Arc::new(AtomicBool::new(closing))).run();
        erx.try_iter().collect()
    }

    #[test]
    fn closing_drops_the_commands_still_waiting() {
        let loads = || {
            (0..50)
                .map(|i| Command::LoadRun {
                    dir: PathBuf::from(format!("/nonexistent/nerlab-run-{i}")),
                })
                .collect::<Vec<_>>()
        };
        // Shut down by a command alone: everything before it is answered.
        let answered = events_of(loads(), false);
        assert_eq!(answered.len(), 51);
        assert!(matches!(answered.last(), Some(Event::Stopped)));
        // Closed by the handle: nothing more is answered.
        let closed = events_of(loads(), true);
        assert!(matches!(closed.as_slice(), [Event::Stopped]), "{closed:?}");
    }
}
