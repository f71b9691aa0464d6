//! Command-line interface: argument parsing with clap, one file per subcommand. Errors are handled
//! once, here: each subcommand returns `anyhow::Result` and `main` prints the chain.

pub mod bench;
mod encode;
pub mod eval;
mod experiment;
mod export;
mod import;
mod runs;
mod sample;
mod score;
mod stats;
pub mod table;
pub mod tag;
pub mod train;

pub use stats::{Stats, stats as stats_of};

use clap::{Args, Parser, Subcommand};

use crate::data::{Format, ReadOptions, Scheme, SpanMode};

/// nerlab: a research workbench for named entity recognition in Korean and low-resource languages.
#[derive(Debug, Parser)]
#[command(name = "nerlab", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sentences, tokens, entities per type, label set and repairs of a corpus.
    Stats(stats::StatsArgs),
    /// Score predictions against gold (seqeval strict or conlleval, KLUE char F1, SemEval, errors).
    Score(score::ScoreArgs),
    /// Draw a K-shot or random subset of a corpus, written in its own format.
    Sample(sample::SampleArgs),
    /// Train a model (from a config file, a preset and/or flags); --resume continues a run.
    Train(Box<train::TrainArgs>),
    /// Evaluate a model on a corpus: a run's best, or a Hugging Face token-classification
    /// checkpoint (its labels matched to the corpus's).
    Eval(eval::EvalArgs),
    /// Tag text with a model: a run's best, or a Hugging Face token-classification checkpoint
    /// (JSON lines of spans).
    Tag(tag::TagArgs),
    /// Write a run's best model as a Hugging Face transformers folder (with a model card).
    Export(export::ExportArgs),
    /// Write a model from elsewhere (a token-classification checkpoint, a PyTorch state dict) as a
    /// nerlab model folder, to start runs from.
    Import(import::ImportArgs),
    /// List runs with their state and best dev F1.
    Runs(runs::RunsArgs),
    /// A grid of runs from an experiment file: plan, run (resumable), status, report, retry,
    /// submit (Slurm), new (a paper's design).
    Experiment(experiment::ExperimentArgs),
    /// Tokens, ids, offsets, hidden states and attention of a text under a model (for debugging).
    Encode(encode::EncodeArgs),
    /// Training and tagging throughput, latency and peak memory (see docs/PERFORMANCE.md).
    Bench(bench::BenchArgs),
    /// Open the workbench window (also what `nerlab` with no command does).
    #[command(alias = "workbench")]
    Gui(GuiArgs),
}

/// Options of the workbench window.
#[derive(Debug, Clone, Default, Args)]
pub struct GuiArgs {
    /// Folder of run directories to list and to create runs in (default: the last one used, or `runs`).
    #[arg(long)]
    pub runs: Option<std::path::PathBuf>,
    /// Ignore the saved UI state (opens as on a first launch).
    #[arg(long)]
    pub fresh: bool,
    /// Open on this panel: launch, curves, confusion, errors, attention, calibration, tagger,
    /// table (runs side by side), experiments.
    #[arg(long, value_parser = |s: &str| s.parse::<crate::ui::PanelKind>())]
    pub panel: Option<crate::ui::PanelKind>,
    /// Select this run (by directory name).
    #[arg(long)]
    pub select: Option<String>,
    /// Window size in points, WIDTHxHEIGHT.
    #[arg(long, value_parser = parse_size)]
    pub size: Option<(f32, f32)>,
    /// Show the CPU time of recent frames (p50, p99) in the top bar.
    #[arg(long)]
    pub frame_stats: bool,
    /// Open the page of this experiment file (TOML).
    #[arg(long)]
    pub experiment: Option<std::path::PathBuf>,
    /// Open a trained model read-only beside the runs (a Hugging Face token-classification
    /// checkpoint, a model folder or a run elsewhere), evaluated on --data, and select it.
    #[arg(long, requires = "data")]
    pub model: Option<String>,
    /// The corpus --model is evaluated on (as nerlab eval --data).
    #[arg(long)]
    pub data: Option<String>,
    /// How --model's labels meet the corpus's (as nerlab eval's).
    #[command(flatten)]
    pub labels: eval::LabelArgs,
    /// What a PyTorch state dict given as --model needs (as nerlab eval's).
    #[command(flatten)]
    pub torch: eval::TorchArgs,
}

fn parse_size(s: &str) -> Result<(f32, f32), String> {
    let (w, h) = s
        .split_once('x')
        .ok_or_else(|| format!("expected WIDTHxHEIGHT, got {s:?}"))?;
    let num = |v: &str| v.trim().parse::<f32>().map_err(|e| format!("{v:?}: {e}"));
    Ok((num(w)?, num(h)?))
}

fn gui(args: &GuiArgs) -> anyhow::Result<()> {
    let model_labels = args.labels.map()?;
    crate::ui::run(crate::ui::Launch {
        runs_dir: args.runs.clone(),
        fresh: args.fresh,
        panel: args.panel,
        select: args.select.clone(),
        size: args.size,
        frame_stats: args.frame_stats,
        experiment: args.experiment.clone(),
        open_model: args.model.clone(),
        model_data: args.data.clone(),
        model_labels,
        model_torch: args.torch.options(),
    })
}

/// Options shared by commands that read a corpus.
#[derive(Debug, Clone, Args)]
pub struct CorpusArgs {
    /// Corpus format (detected from the content when omitted).
    #[arg(long, value_parser = parse_format)]
    pub format: Option<Format>,
    /// Label scheme (detected when omitted: BIOES if E-/S- tags are at least half as many as
    /// B- tags, else IOB2).
    #[arg(long, value_parser = parse_scheme)]
    pub scheme: Option<Scheme>,
}

impl CorpusArgs {
    pub fn read_options(&self) -> ReadOptions {
        ReadOptions {
            format: self.format,
            scheme: self.scheme,
            ..ReadOptions::default()
        }
    }
}

fn parse_format(s: &str) -> Result<Format, String> {
    s.parse()
}

fn parse_scheme(s: &str) -> Result<Scheme, String> {
    s.parse()
}

pub(crate) fn parse_mode(s: &str) -> Result<SpanMode, String> {
    s.parse()
}

/// Parses arguments and runs the command. With no command, opens the workbench.
pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        None => gui(&GuiArgs::default()),
        Some(Command::Gui(args)) => gui(&args),
        Some(Command::Stats(args)) => stats::run(&args),
        Some(Command::Score(args)) => score::run(&args),
        Some(Command::Sample(args)) => sample::run(&args),
        Some(Command::Encode(args)) => encode::run(&args),
        Some(Command::Bench(args)) => bench::run(&args),
        Some(Command::Train(args)) => train::run(&args),
        Some(Command::Eval(args)) => eval::run(&args),
        Some(Command::Tag(args)) => tag::run(&args),
        Some(Command::Export(args)) => export::run(&args),
        Some(Command::Import(args)) => import::run(&args),
        Some(Command::Runs(args)) => runs::run(&args),
        Some(Command::Experiment(args)) => experiment::run(&args),
    }
}

/// The texts of a text argument: the text itself, or for `-` (or no argument) every line of
/// standard input. Every subcommand that takes text reads `-` the same way.
pub(crate) fn texts_arg(text: Option<&str>) -> anyhow::Result<Vec<String>> {
    use std::io::BufRead;
    match text {
        Some("-") | None => Ok(std::io::stdin()
            .lock()
            .lines()
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow::anyhow!("reading standard input: {e}"))?),
        Some(t) => Ok(vec![t.to_string()]),
    }
}

/// Reads a corpus named on the command line; `-` reads it from standard input (named `<stdin>`
/// in messages).
pub(crate) fn read_corpus(
    path: &std::path::Path,
    opts: &crate::data::ReadOptions,
) -> Result<crate::data::Corpus, crate::data::error::DataError> {
    if path.as_os_str() != "-" {
        return crate::data::read(path, opts);
    }
    let name = std::path::Path::new("<stdin>");
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut bytes).map_err(|source| {
        crate::data::error::DataError::Io {
            path: name.to_path_buf(),
            error: source,
        }
    })?;
    crate::data::parse(&bytes, name, opts)
}

/// Says once, after tagging, how many sentences were longer than the model reads at a time.
fn say_windowed(who: &str, model: &crate::model::ner::NerModel) {
    if let Some(note) = model.windowed_note() {
        eprintln!("{who}: {note}");
    }
}
