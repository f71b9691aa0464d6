//! Entity spans from tag sequences, in the two modes of seqeval that every NER paper's numbers come
//! from: lenient (conlleval, `seqeval.metrics.sequence_labeling.get_entities`) and strict
//! (`seqeval.scheme.Tokens.entities` with a scheme). Both are line-for-line ports, checked against
//! seqeval 1.2.2 on perturbed real corpora in `tests/reference_scores.rs`.

use serde::{Deserialize, Serialize};

use super::scheme::{Prefix, Scheme};

/// A contiguous entity mention: tokens `start..end` (end exclusive) of one type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    #[serde(rename = "type")]
    pub ty: String,
}

impl Span {
    pub fn new(start: usize, end: usize, ty: impl Into<String>) -> Self {
        Self {
            start,
            end,
            ty: ty.into(),
        }
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    pub fn same_bounds(&self, other: &Span) -> bool {
        self.start == other.start && self.end == other.end
    }

    pub fn overlaps(&self, other: &Span) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// Number of tokens shared with `other`.
    pub fn overlap(&self, other: &Span) -> usize {
        self.end
            .min(other.end)
            .saturating_sub(self.start.max(other.start))
    }
}

/// How spans are read off tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpanMode {
    /// seqeval `mode="strict"`: only sequences valid in the scheme make entities (KLUE's scorer).
    #[default]
    Strict,
    /// seqeval's default / conlleval: an `I-X` after `O` starts an entity.
    Conlleval,
}

crate::choices!(named SpanMode, "mode":
    Strict = "strict", Conlleval = "conlleval" | "lenient" | "default",
);

/// A tag whose prefix the scheme does not allow (seqeval raises `ValueError` for these in strict mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidPrefix {
    pub index: usize,
    pub tag: String,
}

/// Spans in the given mode. Strict mode fails on a prefix the scheme does not allow.
pub fn extract(
    tags: &[impl AsRef<str>],
    mode: SpanMode,
    scheme: Scheme,
) -> Result<Vec<Span>, InvalidPrefix> {
    match mode {
        SpanMode::Strict => strict_spans(tags, scheme),
        SpanMode::Conlleval => Ok(lenient_spans(tags)),
    }
}

/// seqeval's `get_entities` on one sentence: works for IOB1, IOB2 and BIOES alike.
pub fn lenient_spans(tags: &[impl AsRef<str>]) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut prev_tag = 'O';
    let mut prev_type = "";
    let mut begin = 0;
    for i in 0..=tags.len() {
        let chunk = tags.get(i).map_or("O", |t| t.as_ref());
        let (tag, ty) = lenient_parts(chunk);
        if end_of_chunk(prev_tag, tag, prev_type, ty) {
            spans.push(Span::new(begin, i, prev_type));
        }
        if start_of_chunk(prev_tag, tag, prev_type, ty) {
            begin = i;
        }
        prev_tag = tag;
        prev_type = ty;
    }
    spans
}

/// `tag = chunk[0]`, `type_ = chunk[1:].split('-', maxsplit=1)[-1] or '_'`.
fn lenient_parts(chunk: &str) -> (char, &str) {
    let mut chars = chunk.chars();
    let Some(tag) = chars.next() else {
        return ('O', "_");
    };
    let rest = chars.as_str();
    let ty = match rest.split_once('-') {
        Some((_, after)) => after,
        None => rest,
    };
    (tag, if ty.is_empty() { "_" } else { ty })
}

fn end_of_chunk(prev_tag: char, tag: char, prev_type: &str, ty: &str) -> bool {
    matches!(prev_tag, 'E' | 'S')
        || (matches!(prev_tag, 'B' | 'I') && matches!(tag, 'B' | 'S' | 'O'))
        || (prev_tag != 'O' && prev_tag != '.' && prev_type != ty)
}

fn start_of_chunk(prev_tag: char, tag: char, prev_type: &str, ty: &str) -> bool {
    matches!(tag, 'B' | 'S')
        || (matches!(prev_tag, 'E' | 'S' | 'O') && matches!(tag, 'E' | 'I'))
        || (tag != 'O' && tag != '.' && prev_type != ty)
}

// ---- strict mode: seqeval.scheme ------------------------------------------------------------

#[derive(Clone, Copy)]
struct Tok<'a> {
    prefix: Prefix,
    ty: &'a str,
}

const OUTSIDE: Tok<'static> = Tok {
    prefix: Prefix::O,
    ty: "_",
};

#[derive(Clone, Copy, PartialEq)]
enum Cond {
    Same,
    Diff,
    Any,
}

/// A set of prefixes as a bit mask (seqeval's `Prefix` flags).
type Mask = u8;
const fn bit(p: Prefix) -> Mask {
    1 << (p as u8)
}
const O: Mask = bit(Prefix::O);
const B: Mask = bit(Prefix::B);
const I: Mask = bit(Prefix::I);
const E: Mask = bit(Prefix::E);
const S: Mask = bit(Prefix::S);
const ANY: Mask = O | B | I | E | S;

type Pattern = (Mask, Mask, Cond);

struct Patterns {
    start: &'static [Pattern],
    inside: &'static [Pattern],
    end: &'static [Pattern],
}

const IOB1: Patterns = Patterns {
    start: &[
        (O, I, Cond::Any),
        (I, I, Cond::Diff),
        (B, I, Cond::Any),
        (I, B, Cond::Same),
        (B, B, Cond::Same),
    ],
    inside: &[(B, I, Cond::Same), (I, I, Cond::Same)],
    end: &[
        (I, I, Cond::Diff),
        (I, O, Cond::Any),
        (I, B, Cond::Any),
        (B, O, Cond::Any),
        (B, I, Cond::Diff),
        (B, B, Cond::Same),
    ],
};

const IOB2: Patterns = Patterns {
    start: &[(ANY, B, Cond::Any)],
    inside: &[(B, I, Cond::Same), (I, I, Cond::Same)],
    end: &[
        (I, O, Cond::Any),
        (I, I, Cond::Diff),
        (I, B, Cond::Any),
        (B, O, Cond::Any),
        (B, I, Cond::Diff),
        (B, B, Cond::Any),
    ],
};

const IOBES: Patterns = Patterns {
    start: &[(ANY, B, Cond::Any), (ANY, S, Cond::Any)],
    inside: &[
        (B, I, Cond::Same),
        (B, E, Cond::Same),
        (I, I, Cond::Same),
        (I, E, Cond::Same),
    ],
    end: &[(S, ANY, Cond::Any), (E, ANY, Cond::Any)],
};

fn matches(prev: Tok, cur: Tok, patterns: &[Pattern]) -> bool {
    patterns.iter().any(|&(p, c, cond)| {
        p & bit(prev.prefix) != 0
            && c & bit(cur.prefix) != 0
            && match cond {
                Cond::Any => true,
                Cond::Same => prev.ty == cur.ty,
                Cond::Diff => prev.ty != cur.ty,
            }
    })
}

/// seqeval's `Token.__init__`: prefix from the first character, type `token[1:].strip('-') or '_'`.
fn strict_tok(tag: &str) -> Option<Tok<'_>> {
    let mut chars = tag.chars();
    let prefix = match chars.next()? {
        'O' => Prefix::O,
        'B' => Prefix::B,
        'I' => Prefix::I,
        'E' => Prefix::E,
        'S' => Prefix::S,
        _ => return None,
    };
    let ty = chars.as_str().trim_matches('-');
    Some(Tok {
        prefix,
        ty: if ty.is_empty() { "_" } else { ty },
    })
}

/// seqeval's `Tokens(seq, scheme).entities` on one sentence.
pub fn strict_spans(tags: &[impl AsRef<str>], scheme: Scheme) -> Result<Vec<Span>, InvalidPrefix> {
    let patterns = match scheme {
        Scheme::Iob1 => &IOB1,
        Scheme::Iob2 => &IOB2,
        Scheme::Bioes => &IOBES,
    };
    let mut ext = Vec::with_capacity(tags.len() + 1);
    for (index, tag) in tags.iter().enumerate() {
        let tag = tag.as_ref();
        match strict_tok(tag) {
            Some(tok) if scheme.allows(tok.prefix) => ext.push(tok),
            _ => {
                return Err(InvalidPrefix {
                    index,
                    tag: tag.to_string(),
                });
            }
        }
    }
    ext.push(OUTSIDE);

    let mut spans = Vec::new();
    let mut i = 0;
    let mut prev = OUTSIDE;
    while i < ext.len() {
        let tok = ext[i];
        if matches(prev, tok, patterns.start) {
            let end = forward(&ext, i + 1, tok, patterns.inside, tags.len());
            if matches(ext[end - 1], ext[end], patterns.end) {
                spans.push(Span::new(i, end, tok.ty));
            }
            i = end;
        } else {
            i += 1;
        }
        prev = ext[i - 1];
    }
    Ok(spans)
}

fn forward<'a>(
    ext: &[Tok<'a>],
    start: usize,
    mut prev: Tok<'a>,
    inside: &[Pattern],
    n_tokens: usize,
) -> usize {
    for (i, &tok) in ext.iter().enumerate().skip(start) {
        if matches(prev, tok, inside) {
            prev = tok;
        } else {
            return i;
        }
    }
    // Unreachable for well-formed input (the appended O is never inside), kept as seqeval has it.
    n_tokens.saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(tags: &str) -> Vec<&str> {
        tags.split_whitespace().collect()
    }

    fn s(spans: &[(usize, usize, &str)]) -> Vec<Span> {
        spans
            .iter()
            .map(|&(a, b, ty)| Span::new(a, b, ty))
            .collect()
    }

    #[test]
    fn lenient_matches_seqeval_docstring() {
        // seqeval: get_entities(['B-PER', 'I-PER', 'O', 'B-LOC']) == [('PER', 0, 1), ('LOC', 3, 3)]
        assert_eq!(
            lenient_spans(&t("B-PER I-PER O B-LOC")),
            s(&[(0, 2, "PER"), (3, 4, "LOC")])
        );
    }

    #[test]
    fn lenient_starts_entities_at_dangling_inside() {
        // get_entities(['O', 'I-PER', 'I-LOC', 'I-LOC']) == [('PER', 1, 1), ('LOC', 2, 3)]
        assert_eq!(
            lenient_spans(&t("O I-PER I-LOC I-LOC")),
            s(&[(1, 2, "PER"), (2, 4, "LOC")])
        );
        // BIOES: get_entities(['S-PER', 'B-LOC', 'E-LOC', 'E-LOC']) ==
        // [('PER', 0, 0), ('LOC', 1, 2), ('LOC', 3, 3)]
        assert_eq!(
            lenient_spans(&t("S-PER B-LOC E-LOC E-LOC")),
            s(&[(0, 1, "PER"), (1, 3, "LOC"), (3, 4, "LOC")])
        );
    }

    #[test]
    fn strict_drops_dangling_inside() {
        // Tokens(['O', 'I-PER', 'B-LOC', 'I-LOC', 'I-PER'], IOB2).entities == [(None, LOC, 2, 4)]
        assert_eq!(
            strict_spans(&t("O I-PER B-LOC I-LOC I-PER"), Scheme::Iob2).unwrap(),
            s(&[(2, 4, "LOC")])
        );
        assert_eq!(
            strict_spans(&t("B-PER B-PER I-PER"), Scheme::Iob2).unwrap(),
            s(&[(0, 1, "PER"), (1, 3, "PER")])
        );
    }

    #[test]
    fn strict_bioes_needs_an_end() {
        assert_eq!(
            strict_spans(&t("B-PER I-PER O S-LOC B-ORG E-ORG"), Scheme::Bioes).unwrap(),
            s(&[(3, 4, "LOC"), (4, 6, "ORG")])
        );
    }

    #[test]
    fn strict_rejects_prefix_outside_scheme() {
        let err = strict_spans(&t("O E-PER"), Scheme::Iob2).unwrap_err();
        assert_eq!(err.index, 1);
    }

    #[test]
    fn iob1_strict() {
        // I-PER I-PER B-PER: two entities in IOB1.
        assert_eq!(
            strict_spans(&t("I-PER I-PER B-PER O I-LOC"), Scheme::Iob1).unwrap(),
            s(&[(0, 2, "PER"), (2, 3, "PER"), (4, 5, "LOC")])
        );
    }
}
