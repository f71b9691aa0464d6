//! `nerlab stats CORPUS`: what a corpus holds, counted the way scores will see it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use super::CorpusArgs;
use super::table::{Table, count};
use crate::data::scheme::repair;
use crate::data::spans::strict_spans;
use crate::data::{Corpus, ReadNotes, RepairCounts};
use crate::infer::{RoundTrip, alignments_for, round_trip, tokenizer_of};
use crate::model::align::AlignMode;

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// A corpus file, or a folder of KMOU files (`-`: standard input).
    pub corpus: PathBuf,
    #[command(flatten)]
    pub read: CorpusArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also send the gold tags through this model's tokenizer and back, for every alignment the
    /// corpus can be trained with: the entity F1 no model so aligned can beat (a run, a model
    /// folder, a preset such as e5-small, or hf:<repo>).
    #[arg(long)]
    pub model: Option<String>,
}

/// Corpus statistics. Entities are strict spans over the scoring view (space tokens skipped in
/// KLUE and KMOU), so these are the counts every score in nerlab is computed on.
#[derive(Debug, Serialize)]
pub struct Stats {
    pub path: PathBuf,
    pub format: String,
    pub scheme: String,
    pub sentences: usize,
    pub tokens: usize,
    /// Tokens scores are computed on (all of them, except space tokens in KLUE and KMOU).
    pub scored_tokens: usize,
    pub entities: usize,
    pub per_type: BTreeMap<String, usize>,
    pub labels: Vec<String>,
    pub languages: BTreeMap<String, usize>,
    /// What `repair` would change in the scoring view (invalid sequences).
    pub repairs: RepairCounts,
    pub notes: ReadNotes,
    /// With `--model`: each alignment's round trip of the gold tags.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub round_trips: Vec<RoundTrip>,
}

pub fn stats(corpus: &Corpus) -> Stats {
    let view = corpus.view();
    let mut per_type = BTreeMap::new();
    let mut repairs = RepairCounts::default();
    for tags in &view.tags {
        // Tags were validated against the scheme on reading, so strict extraction cannot fail.
        for span in strict_spans(tags, corpus.scheme).unwrap_or_default() {
            *per_type.entry(span.ty).or_insert(0) += 1;
        }
        repairs.add(&repair(tags, corpus.scheme).1);
    }
    Stats {
        path: corpus.path.clone(),
        format: corpus.format.to_string(),
        scheme: corpus.scheme.to_string(),
        sentences: corpus.len(),
        tokens: corpus.token_count(),
        scored_tokens: view.tags.iter().map(Vec::len).sum(),
        entities: per_type.values().sum(),
        per_type,
        labels: corpus.label_set().into_iter().collect(),
        languages: corpus.languages(),
        repairs,
        notes: corpus.notes.clone(),
        round_trips: Vec::new(),
    }
}

pub fn run(args: &StatsArgs) -> anyhow::Result<()> {
    let corpus = super::read_corpus(&args.corpus, &args.read.read_options())
        .with_context(|| format!("reading {}", args.corpus.display()))?;
    let mut s = stats(&corpus);
    if let Some(model) = &args.model {
        let tokenizer = tokenizer_of(model)?;
        for mode in alignments_for(&corpus) {
            s.round_trips.push(round_trip(&tokenizer, &corpus, mode)?);
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print!("{}", render(&s, corpus.format.space_tokens()));
    }
    Ok(())
}

fn render(s: &Stats, space_tokens: bool) -> String {
    let mut out = String::new();
    let files = if s.notes.files == 1 {
        "1 file".to_string()
    } else {
        format!("{} files", count(s.notes.files))
    };
    out += &format!("corpus     {}\n", s.path.display());
    out += &format!("format     {} ({}), {files}\n", s.format, s.scheme);
    out += &format!("sentences  {}\n", count(s.sentences));
    if space_tokens {
        out += &format!(
            "tokens     {} ({} scored: space tokens are skipped, as KLUE's scorer does)\n",
            count(s.tokens),
            count(s.scored_tokens)
        );
    } else {
        out += &format!("tokens     {}\n", count(s.tokens));
    }
    out += &format!(
        "entities   {} (strict {})\n",
        count(s.entities),
        s.scheme.to_uppercase()
    );
    let mut by_count: Vec<(&String, &usize)> = s.per_type.iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut t = Table::new(&["  type", "entities", "share"]);
    for (ty, n) in by_count {
        let share = if s.entities == 0 {
            0.0
        } else {
            100.0 * *n as f64 / s.entities as f64
        };
        t.row(vec![format!("  {ty}"), count(*n), format!("{share:.1}%")]);
    }
    out += &t.render();
    if s.labels.len() <= 30 {
        out += &format!("labels     {} ({})\n", s.labels.join(" "), s.labels.len());
    } else {
        out += &format!(
            "labels     {} labels over {} types (the full list is in --json)\n",
            s.labels.len(),
            s.per_type.len()
        );
    }
    let langs: Vec<String> = s
        .languages
        .iter()
        .map(|(l, n)| format!("{l} {}", count(*n)))
        .collect();
    out += &format!("languages  {}\n", langs.join(", "));
    if s.repairs.is_empty() {
        out += "repairs    none needed: every sequence is valid\n";
    } else {
        let kinds: Vec<String> = s
            .repairs
            .by_kind
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect();
        out += &format!(
            "repairs    {} tags in {} sentences are invalid sequences ({}); strict scoring ignores them, \
             `repair` makes them entities\n",
            count(s.repairs.tags),
            count(s.repairs.sentences),
            kinds.join(", ")
        );
    }
    if s.notes.bom_files > 0 || s.notes.crlf_lines > 0 {
        out += &format!(
            "cleaned    byte-order marks removed from {} of {} files, CR removed from {} CRLF lines\n",
            s.notes.bom_files, s.notes.files, s.notes.crlf_lines
        );
    }
    if !s.round_trips.is_empty() {
        out += "alignment  gold tags through the model's tokenizer and back (the F1 ceiling):\n";
        let mut t = Table::new(&[
            "  alignment",
            "units",
            "changed tokens",
            "in sentences",
            "entity F1 ceiling",
        ]);
        for r in &s.round_trips {
            let name = match r.mode {
                AlignMode::Words => "words (first subword)",
                AlignMode::Chars => "subwords (KLUE baseline)",
                AlignMode::CharTokens => "characters (one word each)",
            };
            t.row(vec![
                format!("  {name}"),
                count(r.units),
                count(r.changed_tokens),
                count(r.changed_sentences),
                format!("{:.4}", r.f1),
            ]);
        }
        out += &t.render();
    }
    out
}
