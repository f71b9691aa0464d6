//! Corpora: one in-memory [`Corpus`] of sentences, readers and writers for every supported format
//! (detected from the content, or named explicitly), label schemes, spans and sampling.
//!
//! Reading is strict about shape (every error names the file and line) and faithful about content:
//! tags are kept as written, and anything a consumer must fix (invalid sequences) is counted, not
//! silently changed. Use [`read`] for files and folders, [`parse`] for bytes already in memory.

mod columns;
mod detect;
pub mod error;
pub mod hub;
pub mod inline;
mod klue;
mod kmou;
pub mod parquet;
pub mod sample;
pub mod scheme;
pub mod spans;
pub mod text;
mod write;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use error::{DataError, Location};
pub use scheme::{Prefix, RepairCounts, Scheme};
pub use spans::{Span, SpanMode};
pub use write::{to_text, write};

/// The corpus formats nerlab reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// KLUE-NER: `## id<TAB>text` comments, one `CHAR<TAB>TAG` per line; spaces are tokens.
    Klue,
    /// WikiANN as XTREME ships it: `token<TAB>tag`.
    Wikiann,
    /// WikiANN in Rahimi's raw release: `lang:token<TAB>tag`.
    WikiannRaw,
    /// MultiCoNER: `# id <id><TAB>domain=<lang>` then `token _ _ tag`.
    Multiconer,
    /// CoNLL two-column, space-separated `token tag` (MasakhaNER).
    Conll,
    /// KMOU: `##` number/raw/tagged lines, `surface<TAB>morpheme<TAB>POS<TAB>tag`, `_` rows for spaces.
    Kmou,
}

impl Format {
    pub const ALL: [Format; 6] = [
        Format::Klue,
        Format::Wikiann,
        Format::WikiannRaw,
        Format::Multiconer,
        Format::Conll,
        Format::Kmou,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Klue => "klue",
            Self::Wikiann => "wikiann",
            Self::WikiannRaw => "wikiann-raw",
            Self::Multiconer => "multiconer",
            Self::Conll => "conll",
            Self::Kmou => "kmou",
        }
    }

    /// A phrase for messages: "KLUE (CHAR<TAB>TAG)".
    pub fn describe(self) -> &'static str {
        match self {
            Self::Klue => "KLUE (one CHAR<TAB>TAG per line)",
            Self::Wikiann => "WikiANN (token<TAB>tag)",
            Self::WikiannRaw => "raw WikiANN (lang:token<TAB>tag)",
            Self::Multiconer => "MultiCoNER (token _ _ tag)",
            Self::Conll => "CoNLL (token tag, space-separated)",
            Self::Kmou => "KMOU (surface<TAB>morpheme<TAB>POS<TAB>tag)",
        }
    }

    /// Formats where the space between words is itself a token (tagged `O`, or `I-` inside an
    /// entity). Scores on these skip the space tokens, as KLUE's official scorer does.
    pub fn space_tokens(self) -> bool {
        matches!(self, Self::Klue | Self::Kmou)
    }

    /// Character-level formats, where KLUE's character F1 is defined.
    pub fn char_level(self) -> bool {
        matches!(self, Self::Klue)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        Format::ALL
            .into_iter()
            .find(|f| f.name() == lower)
            .or(match lower.as_str() {
                "konec" => Some(Format::Klue),
                "xtreme" | "panx" => Some(Format::Wikiann),
                "rahimi" => Some(Format::WikiannRaw),
                "masakhaner" => Some(Format::Conll),
                _ => None,
            })
            .ok_or_else(|| {
                let names: Vec<_> = Format::ALL.iter().map(|f| f.name()).collect();
                format!("unknown format {s:?}: expected one of {}", names.join(", "))
            })
    }
}

/// Where a sentence came from: its first token is on `line`, token `i` on `line + i`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub path: Arc<Path>,
    pub line: usize,
}

impl Origin {
    pub fn token(&self, index: usize) -> Location {
        Location::new(&self.path, self.line + index)
    }
}

/// One sentence: tokens with one tag each, plus what the format carries besides.
#[derive(Debug, Clone, PartialEq)]
pub struct Sentence {
    pub id: String,
    pub lang: Option<String>,
    pub tokens: Vec<String>,
    pub tags: Vec<String>,
    /// The text as written, where the format has it (KLUE: the characters joined; KMOU: its raw line).
    pub raw: Option<String>,
    /// Columns between token and tag, one row per token (KMOU morpheme and POS, MultiCoNER `_ _`);
    /// empty when the format has none.
    pub columns: Vec<Vec<String>>,
    /// Header lines a writer must reproduce that are not derived from tokens (KMOU's number line).
    pub header: Vec<String>,
    pub origin: Origin,
}

impl Sentence {
    /// A sentence built in code (tests, typed text), with a synthetic origin.
    pub fn new(id: impl Into<String>, tokens: Vec<String>, tags: Vec<String>) -> Self {
        let origin = Origin {
            path: Arc::from(Path::new("<memory>")),
            line: 1,
        };
        Self::read_at(id, tokens, tags, origin)
    }

    /// Tokens and tags read from `origin`, with nothing else the format carries.
    pub fn read_at(
        id: impl Into<String>,
        tokens: Vec<String>,
        tags: Vec<String>,
        origin: Origin,
    ) -> Self {
        Self {
            id: id.into(),
            lang: None,
            tokens,
            tags,
            raw: None,
            columns: Vec::new(),
            header: Vec::new(),
            origin,
        }
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

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

/// How to read a corpus. The defaults detect the format and scheme and accept any well-formed tag.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    pub format: Option<Format>,
    pub scheme: Option<Scheme>,
    /// Fail on an `I-` tag with no entity before it instead of keeping it.
    pub strict: bool,
    /// When set, every entity type must be one of these.
    pub labels: Option<BTreeSet<String>>,
}

impl ReadOptions {
    pub fn with_format(format: Format) -> Self {
        Self {
            format: Some(format),
            ..Self::default()
        }
    }
}

/// Reads a corpus file, or a folder of KMOU files as one corpus.
pub fn read(path: &Path, opts: &ReadOptions) -> Result<Corpus, DataError> {
    let meta = std::fs::metadata(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.is_dir() {
        return kmou::read_folder(path, opts);
    }
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&bytes, path, opts)
}

/// Parses corpus bytes; `path` is used in messages and as the origin of every sentence.
pub fn parse(bytes: &[u8], path: &Path, opts: &ReadOptions) -> Result<Corpus, DataError> {
    let decoded = text::decode(path, bytes.to_vec())?;
    let (lines, crlf_lines) = text::lines(&decoded.text);
    let format = match opts.format {
        Some(f) => f,
        None => detect::detect(&lines).map_err(|why| DataError::UnknownFormat {
            path: path.to_path_buf(),
            why,
        })?,
    };
    let origin: Arc<Path> = Arc::from(path);
    let mut corpus = match format {
        Format::Klue => klue::parse(&lines, &origin)?,
        Format::Kmou => kmou::parse(&lines, &origin)?,
        _ => columns::parse(format, &lines, &origin)?,
    };
    corpus.notes = ReadNotes {
        files: 1,
        bom_files: usize::from(decoded.bom),
        crlf_lines,
    };
    if corpus.sentences.is_empty() {
        return Err(DataError::EmptyFile(path.to_path_buf()));
    }
    corpus.scheme = validate(&corpus.sentences, opts)?;
    Ok(corpus)
}

/// Checks every tag against the scheme and label set, and sequences in strict mode. Returns the
/// scheme (given, or detected from the tags).
fn validate(sentences: &[Sentence], opts: &ReadOptions) -> Result<Scheme, DataError> {
    let scheme = opts.scheme.unwrap_or_else(|| {
        Scheme::detect(
            sentences
                .iter()
                .flat_map(|s| s.tags.iter().map(String::as_str)),
        )
    });
    for s in sentences {
        for (i, tag) in s.tags.iter().enumerate() {
            let unknown = |expected: String| DataError::UnknownTag {
                at: s.origin.token(i),
                tag: tag.clone(),
                expected,
            };
            let (prefix, ty) = scheme::parse_tag(tag).map_err(|e| unknown(e.to_string()))?;
            if !scheme.allows(prefix) {
                return Err(unknown(format!("{} ({scheme})", scheme.expected_tags())));
            }
            if let Some(labels) = &opts.labels
                && prefix != Prefix::O
                && !labels.contains(ty)
            {
                let known: Vec<_> = labels.iter().map(String::as_str).collect();
                return Err(unknown(format!(
                    "a type in the label set ({})",
                    known.join(", ")
                )));
            }
        }
        if opts.strict
            && let Some((i, entity_type)) = scheme::first_dangling(&s.tags, scheme)
        {
            return Err(DataError::DanglingInside {
                at: s.origin.token(i),
                tag: s.tags[i].clone(),
                entity_type,
            });
        }
    }
    Ok(scheme)
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
