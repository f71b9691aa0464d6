//! `nerlab score --gold G --pred P`: every metric of the metrics module, as a table or as the JSON
//! contract of `metrics::report`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::table::{Table, count, frac};
use super::{CorpusArgs, parse_mode};
use crate::data::{ReadOptions, SpanMode};
use crate::metrics::errors::{ErrorCategory, ErrorMode, ErrorSummary};
use crate::metrics::{ScoreOptions, ScoreReport, score};

#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// Gold corpus (`-`: standard input).
    #[arg(long)]
    pub gold: PathBuf,
    /// Predictions: the gold's tokens with predicted tags, in the gold's format (`-`: standard
    /// input).
    #[arg(long)]
    pub pred: PathBuf,
    #[command(flatten)]
    pub read: CorpusArgs,
    /// strict (seqeval mode="strict", KLUE's) or conlleval (seqeval's default).
    #[arg(long, default_value = "strict", value_parser = parse_mode)]
    pub mode: SpanMode,
    /// Bootstrap resamples for the 95% interval of micro F1 (0 to skip).
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
    /// Seed of the bootstrap.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print the JSON report instead of tables.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &ScoreArgs) -> anyhow::Result<()> {
    if args.gold.as_os_str() == "-" && args.pred.as_os_str() == "-" {
        anyhow::bail!("--gold and --pred cannot both be standard input (-)");
    }
    let opts = args.read.read_options();
    let gold = super::read_corpus(&args.gold, &opts)
        .with_context(|| format!("reading gold {}", args.gold.display()))?;
    let pred_opts = ReadOptions {
        format: Some(opts.format.unwrap_or(gold.format)),
        scheme: Some(gold.scheme),
        ..opts
    };
    let pred = super::read_corpus(&args.pred, &pred_opts)
        .with_context(|| format!("reading predictions {}", args.pred.display()))?;
    gold.check_same_tokens(&pred)?;
    let gold_view = gold.view();
    let pred_view = gold.view_of(pred.sentences.iter().map(|s| s.tags.as_slice()));
    let report = score(
        &gold_view.tags,
        &pred_view.tags,
        None,
        &ScoreOptions {
            mode: args.mode,
            scheme: gold.scheme,
            char_level: gold.format.char_level(),
            bootstrap_iterations: args.bootstrap,
            seed: args.seed,
            ..ScoreOptions::default()
        },
    )?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report, gold.format.space_tokens()));
    }
    Ok(())
}

pub fn render(r: &ScoreReport, space_tokens: bool) -> String {
    let mut out = format!(
        "mode {} ({}), {} sentences, {} tokens{}\n\n",
        r.mode,
        r.scheme,
        count(r.sentences),
        count(r.tokens),
        if space_tokens {
            " (space tokens skipped)"
        } else {
            ""
        }
    );
    let mut t = Table::new(&["type", "precision", "recall", "f1", "support", "predicted"]);
    for (ty, s) in &r.per_type {
        t.row(vec![
            ty.clone(),
            frac(s.precision),
            frac(s.recall),
            frac(s.f1),
            count(s.support),
            count(s.predicted),
        ]);
    }
    let gold_total: usize = r.per_type.values().map(|s| s.support).sum();
    let pred_total: usize = r.per_type.values().map(|s| s.predicted).sum();
    for (name, p) in [
        ("micro", r.micro),
        ("macro", r.macro_avg),
        ("weighted", r.weighted),
    ] {
        t.row(vec![
            name.into(),
            frac(p.precision),
            frac(p.recall),
            frac(p.f1),
            count(gold_total),
            count(pred_total),
        ]);
    }
    out += &t.render();
    if r.bootstrap.iterations > 0 {
        out += &format!(
            "\nmicro F1 95% interval  [{}, {}]  ({} bootstrap resamples of sentences, seed {})\n",
            frac(r.bootstrap.low),
            frac(r.bootstrap.high),
            r.bootstrap.iterations,
            r.bootstrap.seed
        );
    }
    if let Some(c) = &r.char {
        out += &format!(
            "KLUE character macro F1  with O {}  (KLUE's official scorer)   without O {}  (the KLUE paper)\n",
            frac(c.macro_f1_with_o),
            frac(c.macro_f1_without_o)
        );
    }
    out += "\nerrors (each prediction categorized; unmatched gold spans missed)\n";
    out += &error_table(&r.errors, &ErrorCategory::ALL);
    out += "\nerrors, gold-centred (each gold span categorized: boundary whatever the type, a \
            prediction strictly inside missed; predictions touching no gold span spurious)\n";
    out += &error_table(&r.errors_gold_centred, &ErrorMode::GoldCentred.categories());
    if let Some(per_type) = r.calibration.as_ref().map(|c| &c.ece_per_type)
        && !per_type.is_empty()
    {
        let cells: Vec<String> = per_type
            .iter()
            .map(|(t, e)| format!("{t} {}", frac(*e)))
            .collect();
        out += &format!("\nECE per predicted type  {}\n", cells.join("   "));
    }
    out += "\nSemEval-2013 (nervaluate)\n";
    let mut s = Table::new(&[
        "  scenario",
        "correct",
        "incorrect",
        "partial",
        "missed",
        "spurious",
        "precision",
        "recall",
        "f1",
    ]);
    for (name, c) in [
        ("strict", &r.semeval.overall.strict),
        ("exact", &r.semeval.overall.exact),
        ("partial", &r.semeval.overall.partial),
        ("ent_type", &r.semeval.overall.ent_type),
    ] {
        s.row(vec![
            format!("  {name}"),
            count(c.correct),
            count(c.incorrect),
            count(c.partial),
            count(c.missed),
            count(c.spurious),
            frac(c.precision),
            frac(c.recall),
            frac(c.f1),
        ]);
    }
    out += &s.render();
    out
}

/// Error counts per entity type and in all, one column per category.
fn error_table(summary: &ErrorSummary, categories: &[ErrorCategory]) -> String {
    let mut head = vec!["  type"];
    head.extend(categories.iter().map(|c| c.name()));
    let mut e = Table::new(&head);
    let cells = |m: &std::collections::BTreeMap<ErrorCategory, usize>| {
        categories
            .iter()
            .map(|c| count(m.get(c).copied().unwrap_or(0)))
            .collect::<Vec<_>>()
    };
    for (ty, m) in &summary.per_type {
        let mut row = vec![format!("  {ty}")];
        row.extend(cells(m));
        e.row(row);
    }
    let mut all = vec!["  all".to_string()];
    all.extend(cells(&summary.counts));
    e.row(all);
    e.render()
}
