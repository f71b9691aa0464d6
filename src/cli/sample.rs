//! `nerlab sample CORPUS --k K --seed S -o OUT`: K-shot (greedy, Yang & Katiyar 2020) or random
//! subsets, written in the corpus's own format.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::CorpusArgs;
use super::table::count;
use crate::data::sample::{k_shot, random_subset};
use crate::data::{self, write};

#[derive(Debug, Args)]
pub struct SampleArgs {
    /// A corpus file, or a folder of KMOU files (`-`: standard input).
    pub corpus: PathBuf,
    /// Every entity type gets at least K mentions.
    #[arg(
        long,
        conflicts_with = "max_sentences",
        required_unless_present = "max_sentences"
    )]
    pub k: Option<usize>,
    /// A random subset of this many sentences.
    #[arg(long)]
    pub max_sentences: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output file (written in the corpus's format; `-`: standard output).
    #[arg(short, long)]
    pub output: PathBuf,
    #[command(flatten)]
    pub read: CorpusArgs,
}

pub fn run(args: &SampleArgs) -> anyhow::Result<()> {
    let corpus = super::read_corpus(&args.corpus, &args.read.read_options())
        .with_context(|| format!("reading {}", args.corpus.display()))?;
    let (indices, summary) = match (args.k, args.max_sentences) {
        (Some(k), _) => {
            let s = k_shot(&corpus, k, args.seed);
            let mentions: Vec<String> =
                s.mentions.iter().map(|(t, n)| format!("{t} {n}")).collect();
            let mut msg = format!(
                "{k}-shot (greedy, seed {}): mentions {}",
                args.seed,
                mentions.join(", ")
            );
            for (ty, got) in &s.short {
                msg += &format!("\nwarning: only {got} {ty} mentions exist, fewer than K={k}");
            }
            (s.indices, msg)
        }
        (None, Some(n)) => (
            random_subset(corpus.len(), n, args.seed),
            format!("random subset (seed {})", args.seed),
        ),
        (None, None) => anyhow::bail!("give --k or --max-sentences"),
    };
    let subset = corpus.subset(&indices);
    if args.output.as_os_str() == "-" {
        // The corpus on standard output; the summary goes to standard error, out of its way.
        print!("{}", data::to_text(&subset));
        eprintln!(
            "wrote {} of {} sentences ({}): {summary}",
            count(subset.len()),
            count(corpus.len()),
            corpus.format
        );
        return Ok(());
    }
    write(&subset, &args.output).with_context(|| format!("writing {}", args.output.display()))?;
    println!(
        "wrote {} of {} sentences to {} ({}): {summary}",
        count(subset.len()),
        count(corpus.len()),
        args.output.display(),
        corpus.format
    );
    Ok(())
}
