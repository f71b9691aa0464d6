//! Corpora: one in-memory [`Corpus`] of sentences, readers and writers for every supported format
//! (detected from the content, or named explicitly), label schemes, spans and sampling.
//!
//! Reading is strict about shape (every error names the file and line) and faithful about content:
//! tags are kept as written, and anything a consumer must fix (invalid sequences) is counted, not
//! silently changed. Use [`read`] for files and folders, [`parse`] for bytes already in memory.

mod columns;
mod corpus;
mod detect;
pub mod error;
pub mod hub;
pub mod inline;
mod klue;
mod kmou;
pub mod label_map;
pub mod parquet;
pub mod sample;
pub mod scheme;
pub mod spans;
pub mod text;
mod write;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use corpus::{Corpus, Layout, ReadNotes, TagView};
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

crate::choices!(named Format, "format":
    Klue = "klue" | "konec", Wikiann = "wikiann" | "xtreme" | "panx",
    WikiannRaw = "wikiann-raw" | "rahimi", Multiconer = "multiconer",
    Conll = "conll" | "masakhaner", Kmou = "kmou",
);

impl Format {
    pub const ALL: [Format; 6] = [
        Format::Klue,
        Format::Wikiann,
        Format::WikiannRaw,
        Format::Multiconer,
        Format::Conll,
        Format::Kmou,
    ];

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

    /// How to read predictions over `gold`: in its format and its scheme (a weak model's tags
    /// are no evidence of a scheme).
    pub fn for_predictions(gold: &Corpus) -> Self {
        Self {
            format: Some(gold.format),
            scheme: Some(gold.scheme),
            ..Self::default()
        }
    }
}

/// Reads a corpus file, or a folder of KMOU files as one corpus.
pub fn read(path: &Path, opts: &ReadOptions) -> Result<Corpus, DataError> {
    let meta = std::fs::metadata(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        error: source,
    })?;
    if meta.is_dir() {
        return kmou::read_folder(path, opts);
    }
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        error: source,
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
    let scheme = opts
        .scheme
        .unwrap_or_else(|| Scheme::detect(sentences.iter().map(|s| s.tags.as_slice())));
    for s in sentences {
        for (i, tag) in s.tags.iter().enumerate() {
            let unknown = |expected: String| DataError::UnknownTag {
                at: s.origin.token(i),
                tag: tag.clone(),
                expected,
            };
            let (prefix, ty) = scheme::parse_tag(tag).map_err(|e| unknown(e.to_string()))?;
            if !scheme.allows(prefix) {
                let guessed = if opts.scheme.is_none() && matches!(prefix, Prefix::E | Prefix::S) {
                    "; guessed from the tags: fewer E-/S- tags than half the B- tags; a \
                     stray tag to fix, or a BIOES file to read with --scheme bioes"
                } else {
                    ""
                };
                return Err(unknown(format!(
                    "{} ({scheme}{guessed})",
                    scheme.expected_tags()
                )));
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
