//! KLUE-NER (and KoNEC, which shares its layout): a `## <id><TAB><text>` comment before each
//! sentence, then one `CHAR<TAB>TAG` line per character, the space character included.
//! The first block of the file may carry extra `##` lines describing the format (the preamble).

use std::path::Path;
use std::sync::Arc;

use super::detect::describe_line;
use super::error::{DataError, Location};
use super::{Corpus, Format, Layout, Origin, ReadNotes, Scheme, Sentence};

const EXPECTED_LINE: &str = "one CHAR<TAB>TAG line";

pub fn parse(lines: &[(usize, &str)], path: &Arc<Path>) -> Result<Corpus, DataError> {
    // Only an empty line separates sentences: a line holding a lone space is a space token that
    // lost its tag, not a separator.
    let blocks = super::text::blocks(lines, str::is_empty);
    let mut sentences = Vec::with_capacity(blocks.len());
    let mut preamble = Vec::new();
    let mut inline_comments = false;
    let gap = super::text::gap(&blocks);
    for block in blocks {
        let n_comments = block
            .iter()
            .take_while(|(_, l)| l.starts_with("##"))
            .count();
        let (comments, body) = block.split_at(n_comments);
        if let Some(&(no, line)) = body.iter().find(|(_, l)| l.starts_with("##")) {
            return Err(DataError::Malformed {
                at: Location::new(path, no),
                expected: format!("{EXPECTED_LINE} (comments go before a sentence)"),
                found: line.to_string(),
            });
        }
        let Some(&(header_no, header)) = comments.last() else {
            let id = format!("{}:{}", file_stem(path), body[0].0);
            sentences.push(sentence(id, body, path)?);
            continue;
        };
        let header_text = header.trim_start_matches('#').trim_start_matches(' ');
        if body.is_empty() {
            if header_text.contains('\t') {
                let id = header_text
                    .split('\t')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                return Err(DataError::EmptySentence {
                    at: Location::new(path, header_no),
                    id,
                });
            }
            if sentences.is_empty() {
                preamble.extend(comments.iter().map(|(_, l)| l.to_string()));
            }
            continue;
        }
        if sentences.is_empty() {
            preamble.extend(
                comments[..comments.len() - 1]
                    .iter()
                    .map(|(_, l)| l.to_string()),
            );
        }
        let (id, text) = header_text.split_once('\t').unwrap_or((header_text, ""));
        let s = sentence(id.trim().to_string(), body, path)?;
        if s.raw.as_deref() != Some(text) {
            inline_comments = true;
        }
        sentences.push(s);
    }
    let trailing_blank = lines.last().is_some_and(|(_, l)| l.is_empty());
    Ok(Corpus {
        path: path.to_path_buf(),
        format: Format::Klue,
        scheme: Scheme::Iob2,
        sentences,
        preamble,
        layout: Layout {
            leading_blank: false,
            trailing_blank,
            inline_comments,
            gap,
        },
        notes: ReadNotes::default(),
    })
}

fn sentence(id: String, body: &[(usize, &str)], path: &Arc<Path>) -> Result<Sentence, DataError> {
    let mut tokens = Vec::with_capacity(body.len());
    let mut tags = Vec::with_capacity(body.len());
    for &(no, line) in body {
        let at = || Location::new(path, no);
        let Some((token, tag)) = line.split_once('\t') else {
            if let Some(found) = describe_line(line) {
                return Err(DataError::MixedFormat {
                    at: at(),
                    found,
                    expected: Format::Klue.describe(),
                });
            }
            return Err(DataError::TokenWithoutTag {
                at: at(),
                token: line.to_string(),
                expected: EXPECTED_LINE,
            });
        };
        if tag.contains('\t') {
            return Err(match describe_line(line) {
                Some(found) => DataError::MixedFormat {
                    at: at(),
                    found,
                    expected: Format::Klue.describe(),
                },
                None => DataError::Malformed {
                    at: at(),
                    expected: format!("{EXPECTED_LINE} (two tab-separated columns)"),
                    found: line.to_string(),
                },
            });
        }
        DataError::check_halves(at, token, tag, EXPECTED_LINE)?;
        if token.chars().count() != 1 {
            return Err(DataError::Malformed {
                at: at(),
                expected: "a single character (KLUE is character-level)".into(),
                found: token.to_string(),
            });
        }
        tokens.push(token.to_string());
        tags.push(tag.to_string());
    }
    let origin = Origin {
        path: path.clone(),
        line: body[0].0,
    };
    Ok(char_sentence(id, tokens, tags, origin))
}

/// A KLUE sentence: Korean, one token per character, its text the characters joined.
pub(super) fn char_sentence(
    id: String,
    chars: Vec<String>,
    tags: Vec<String>,
    origin: Origin,
) -> Sentence {
    Sentence {
        lang: Some("ko".into()),
        raw: Some(chars.concat()),
        ..Sentence::read_at(id, chars, tags, origin)
    }
}

pub fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "corpus".into())
}
