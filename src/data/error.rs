//! Errors from reading and checking corpora. Every variant names the file and, where there is one,
//! the line, so a researcher can jump straight to the problem: `dev.tsv:1042: unknown tag "B-XX" ...`.

use std::fmt;
use std::path::{Path, PathBuf};

/// A place in an input file: what every data error points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub path: PathBuf,
    /// 1-based line number.
    pub line: usize,
}

impl Location {
    pub fn new(path: &Path, line: usize) -> Self {
        Self {
            path: path.to_path_buf(),
            line,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.path.display(), self.line)
    }
}

/// Everything that can be wrong with a corpus file, each kind with what was expected instead.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    // The I/O error is part of the message, not a source: printed as a chain it would repeat.
    #[error("{}: {}", path.display(), friendly_io(error))]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },

    #[error("{}: is a directory, expected a corpus file (only KMOU corpora are read as folders)", .0.display())]
    IsDirectory(PathBuf),

    #[error("{}: the file is empty, expected at least one sentence", .0.display())]
    EmptyFile(PathBuf),

    #[error("{}: the folder holds no corpus files (expected *.txt files in KMOU format)", .0.display())]
    EmptyFolder(PathBuf),

    #[error("{at}: invalid UTF-8 at byte {column} of the line, expected UTF-8 text")]
    InvalidUtf8 { at: Location, column: usize },

    /// A NUL byte: no corpus has one; the file is binary, or was cut or padded by a crash.
    #[error(
        "{at}: a NUL byte at byte {column} of the line; a corpus is text, so the file is binary \
         or damaged (a crash while writing can pad a file with NUL bytes)"
    )]
    NulByte { at: Location, column: usize },

    /// Not UTF-8, and the bytes say which encoding it is (a byte-order mark, or the byte
    /// patterns of CP949 or Latin-1).
    #[error(
        "{at}: {hint}; convert it with `iconv -f {iconv} -t UTF-8 {0} > {0}.utf8`",
        at.path.display()
    )]
    WrongEncoding {
        at: Location,
        hint: String,
        iconv: &'static str,
    },

    #[error("{at}: unknown tag {tag:?}, expected {expected}")]
    UnknownTag {
        at: Location,
        tag: String,
        expected: String,
    },

    #[error("{at}: tag {tag:?} without a token, expected {expected}")]
    TagWithoutToken {
        at: Location,
        tag: String,
        expected: &'static str,
    },

    #[error("{at}: token {token:?} without a tag, expected {expected}")]
    TokenWithoutTag {
        at: Location,
        token: String,
        expected: &'static str,
    },

    #[error(
        "{at}: {tag:?} continues an entity but none is open before it (strict IOB2 expects B-{entity_type} here)"
    )]
    DanglingInside {
        at: Location,
        tag: String,
        entity_type: String,
    },

    #[error("{at}: sentence {id:?} has no tokens, expected token lines after its header")]
    EmptySentence { at: Location, id: String },

    #[error("{at}: this line looks like {found}, but the file is {expected}")]
    MixedFormat {
        at: Location,
        found: &'static str,
        expected: &'static str,
    },

    #[error("{at}: expected {expected}, found {found:?}")]
    Malformed {
        at: Location,
        expected: String,
        found: String,
    },

    #[error(
        "{pred_at}: prediction token {pred:?} differs from the gold token {gold:?} at {gold_at}; \
         predictions must keep the gold tokens and change only the tags"
    )]
    TokenMismatch {
        pred_at: Location,
        gold_at: Location,
        gold: String,
        pred: String,
    },

    #[error(
        "{pred_at}: sentence has {pred_len} tokens but the gold sentence at {gold_at} has {gold_len}"
    )]
    LengthMismatch {
        pred_at: Location,
        gold_at: Location,
        gold_len: usize,
        pred_len: usize,
    },

    #[error("{}: {pred} sentences, but the gold file {} has {gold}", pred_path.display(), gold_path.display())]
    SentenceCountMismatch {
        gold_path: PathBuf,
        pred_path: PathBuf,
        gold: usize,
        pred: usize,
    },

    #[error("{}: cannot tell the corpus format ({why}); pass --format", path.display())]
    UnknownFormat { path: PathBuf, why: String },

    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

impl DataError {
    /// A token line's check that neither half is empty: the token is checked first, then the tag.
    pub(crate) fn check_halves(
        at: impl Fn() -> Location,
        token: &str,
        tag: &str,
        expected: &'static str,
    ) -> Result<(), DataError> {
        if token.is_empty() {
            return Err(DataError::TagWithoutToken {
                at: at(),
                tag: tag.to_string(),
                expected,
            });
        }
        if tag.is_empty() {
            return Err(DataError::TokenWithoutTag {
                at: at(),
                token: token.to_string(),
                expected,
            });
        }
        Ok(())
    }

    /// The file the error is about, for callers that group messages by file.
    pub fn path(&self) -> &Path {
        match self {
            Self::Io { path, .. }
            | Self::IsDirectory(path)
            | Self::EmptyFile(path)
            | Self::EmptyFolder(path)
            | Self::SentenceCountMismatch {
                pred_path: path, ..
            }
            | Self::UnknownFormat { path, .. }
            | Self::Invalid { path, .. } => path,
            Self::InvalidUtf8 { at, .. }
            | Self::NulByte { at, .. }
            | Self::WrongEncoding { at, .. }
            | Self::UnknownTag { at, .. }
            | Self::TagWithoutToken { at, .. }
            | Self::TokenWithoutTag { at, .. }
            | Self::DanglingInside { at, .. }
            | Self::EmptySentence { at, .. }
            | Self::MixedFormat { at, .. }
            | Self::Malformed { at, .. } => &at.path,
            Self::TokenMismatch { pred_at, .. } | Self::LengthMismatch { pred_at, .. } => {
                &pred_at.path
            }
        }
    }
}

/// An I/O error in plain words: `no such file or folder` rather than `No such file or directory
/// (os error 2)`.
fn friendly_io(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or folder".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}
