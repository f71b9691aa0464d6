//! The in-memory corpus: its sentences, what a writer needs to reproduce its file, and the views
//! scoring and checking take of it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::*;

/// File layout details a writer needs to reproduce a file byte for byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Layout {
    /// The file starts with a blank line (MultiCoNER).
    pub leading_blank: bool,
    /// The last sentence is followed by a blank line.
    pub trailing_blank: bool,
    /// Blank lines between sentences (1 almost everywhere, 2 in MultiCoNER; 0 means 1).
    pub gap: usize,
    /// KLUE's `##` line marks entities inline (`<경찰:OG>은`) and is rebuilt from the tags when
    /// writing; KoNEC's holds the raw text. False for every other format.
    pub inline_comments: bool,
}

/// What reading had to clean up; shown by `nerlab stats` so nothing is hidden.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadNotes {
    pub files: usize,
    /// Files that started with a UTF-8 byte-order mark (removed).
    pub bom_files: usize,
    /// Lines that ended in CRLF (the CR removed).
    pub crlf_lines: usize,
}

/// A whole corpus in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Corpus {
    pub path: PathBuf,
    pub format: Format,
    pub scheme: Scheme,
    pub sentences: Vec<Sentence>,
    /// Comment lines before the first sentence (KLUE's five-line header).
    pub preamble: Vec<String>,
    pub layout: Layout,
    pub notes: ReadNotes,
}

/// The tags scores are computed on, with the map back to token positions. Space-token formats
/// drop their space tokens here, exactly as KLUE's scorer does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TagView {
    pub tags: Vec<Vec<String>>,
    /// `positions[s][i]` is the token index in sentence `s` of view position `i`.
    pub positions: Vec<Vec<usize>>,
}

impl Corpus {
    pub fn len(&self) -> usize {
        self.sentences.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sentences.is_empty()
    }

    pub fn token_count(&self) -> usize {
        self.sentences.iter().map(Sentence::len).sum()
    }

    /// Entity types used anywhere, sorted.
    pub fn types(&self) -> BTreeSet<String> {
        self.sentences
            .iter()
            .flat_map(|s| s.tags.iter())
            .filter_map(|t| scheme::tag_type(t))
            .map(String::from)
            .collect()
    }

    /// Every distinct tag, sorted.
    pub fn label_set(&self) -> BTreeSet<String> {
        self.sentences
            .iter()
            .flat_map(|s| s.tags.iter().cloned())
            .collect()
    }

    /// Languages of the sentences with their sentence counts.
    pub fn languages(&self) -> BTreeMap<String, usize> {
        let mut langs = BTreeMap::new();
        for s in &self.sentences {
            let lang = s.lang.clone().unwrap_or_else(|| "?".into());
            *langs.entry(lang).or_default() += 1;
        }
        langs
    }

    /// The scoring view: see [`TagView`].
    pub fn view(&self) -> TagView {
        self.view_of(self.sentences.iter().map(|s| s.tags.as_slice()))
    }

    /// The scoring view of other tags for these sentences (predictions over this corpus).
    pub fn view_of<'a>(&self, tags: impl Iterator<Item = &'a [String]>) -> TagView {
        let mut view = TagView::default();
        for (s, tags) in self.sentences.iter().zip(tags) {
            let keep: Vec<usize> = (0..s.len())
                .filter(|&i| !(self.format.space_tokens() && s.tokens[i].trim().is_empty()))
                .collect();
            view.tags
                .push(keep.iter().map(|&i| tags[i].clone()).collect());
            view.positions.push(keep);
        }
        view
    }

    /// A copy of this corpus with other tags, to write predictions in the gold's own format.
    pub fn with_tags(&self, tags: Vec<Vec<String>>) -> Corpus {
        let mut out = self.clone();
        for (s, t) in out.sentences.iter_mut().zip(tags) {
            s.tags = t;
        }
        out
    }

    /// Repairs every sentence in place (see [`scheme::repair`]) and reports what changed.
    pub fn repair(&mut self) -> RepairCounts {
        let mut total = RepairCounts::default();
        for s in &mut self.sentences {
            let (fixed, counts) = scheme::repair(&s.tags, self.scheme);
            s.tags = fixed;
            total.add(&counts);
        }
        total
    }

    /// Checks that `pred` has the same sentences and tokens as this gold corpus.
    pub fn check_same_tokens(&self, pred: &Corpus) -> Result<(), DataError> {
        if self.len() != pred.len() {
            return Err(DataError::SentenceCountMismatch {
                gold_path: self.path.clone(),
                pred_path: pred.path.clone(),
                gold: self.len(),
                pred: pred.len(),
            });
        }
        for (g, p) in self.sentences.iter().zip(&pred.sentences) {
            if let Some(i) = (0..g.len().min(p.len())).find(|&i| g.tokens[i] != p.tokens[i]) {
                return Err(DataError::TokenMismatch {
                    pred_at: p.origin.token(i),
                    gold_at: g.origin.token(i),
                    gold: g.tokens[i].clone(),
                    pred: p.tokens[i].clone(),
                });
            }
            if g.len() != p.len() {
                return Err(DataError::LengthMismatch {
                    pred_at: p.origin.token(0),
                    gold_at: g.origin.token(0),
                    gold_len: g.len(),
                    pred_len: p.len(),
                });
            }
        }
        Ok(())
    }
}
