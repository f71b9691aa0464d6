//! Tags and label schemes: parsing `B-PER`-style tags, converting between IOB1, IOB2 and BIOES, and
//! repairing invalid sequences (an `I-` with no entity before it) with a count of what changed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::spans::{Span, lenient_spans};

/// The position of a token inside an entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Prefix {
    O,
    B,
    I,
    E,
    S,
}

/// The label scheme a sequence of tags follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// `I-` everywhere, `B-` only where an entity directly follows one of the same type.
    Iob1,
    /// `B-` starts every entity (KLUE, WikiANN, MultiCoNER, MasakhaNER, KMOU).
    #[default]
    Iob2,
    /// `B-` begin, `I-` inside, `E-` end, `S-` single-token entity.
    Bioes,
}

crate::choices!(named Scheme, "scheme":
    Iob1 = "iob1" | "bio1", Iob2 = "iob2" | "bio" | "iob", Bioes = "bioes" | "iobes",
);

impl Scheme {
    pub const ALL: [Scheme; 3] = [Scheme::Iob1, Scheme::Iob2, Scheme::Bioes];

    /// Whether tags with this prefix may appear at all in the scheme.
    pub fn allows(self, prefix: Prefix) -> bool {
        match self {
            Self::Iob1 | Self::Iob2 => matches!(prefix, Prefix::O | Prefix::B | Prefix::I),
            Self::Bioes => true,
        }
    }

    /// The tag forms of this scheme, for error messages.
    pub fn expected_tags(self) -> &'static str {
        match self {
            Self::Iob1 | Self::Iob2 => "O, B-TYPE or I-TYPE",
            Self::Bioes => "O, B-TYPE, I-TYPE, E-TYPE or S-TYPE",
        }
    }

    /// Guesses a corpus's scheme from its sentences' tags: IOB2 unless `E-`/`S-` tags occur, and
    /// then BIOES only when they are at least half as many as the `B-` tags (a BIOES corpus has
    /// an `E-` or an `S-` for nearly every entity, however sloppy its other tags). One stray `S-`
    /// in an IOB2 file thus keeps it IOB2, and its reader names that tag, instead of turning the
    /// file BIOES, where every single-token `B-` entity would be invalid and dropped by strict
    /// scoring. IOB1 cannot be told from a sloppy IOB2 file by its tags alone, so it is never
    /// guessed.
    pub fn detect<'a>(sentences: impl IntoIterator<Item = &'a [String]>) -> Scheme {
        let (mut begins, mut ends) = (0usize, 0usize);
        for tag in sentences.into_iter().flatten() {
            match parse_tag(tag) {
                Ok((Prefix::B, _)) => begins += 1,
                Ok((Prefix::E | Prefix::S, _)) => ends += 1,
                _ => {}
            }
        }
        if ends > 0 && 2 * ends >= begins {
            Scheme::Bioes
        } else {
            Scheme::Iob2
        }
    }
}

/// Splits a tag into its prefix and entity type: `"B-PER"` -> `(B, "PER")`, `"O"` -> `(O, "")`.
/// The error says what a well-formed tag looks like.
pub fn parse_tag(tag: &str) -> Result<(Prefix, &str), &'static str> {
    const EXPECTED: &str = "O or PREFIX-TYPE with PREFIX one of B, I, E, S";
    if tag == "O" {
        return Ok((Prefix::O, ""));
    }
    let (head, ty) = tag.split_once('-').ok_or(EXPECTED)?;
    let prefix = match head {
        "B" => Prefix::B,
        "I" => Prefix::I,
        "E" => Prefix::E,
        "S" => Prefix::S,
        _ => return Err(EXPECTED),
    };
    if ty.is_empty()
        || ty.starts_with('-')
        || ty.ends_with('-')
        || ty.chars().any(char::is_whitespace)
    {
        return Err(EXPECTED);
    }
    Ok((prefix, ty))
}

/// The entity type of a tag, or `None` for `O` and malformed tags.
pub fn tag_type(tag: &str) -> Option<&str> {
    match parse_tag(tag) {
        Ok((Prefix::O, _)) | Err(_) => None,
        Ok((_, ty)) => Some(ty),
    }
}

/// Writes spans back as tags of the given scheme. Spans must not overlap.
pub fn render(len: usize, spans: &[Span], scheme: Scheme) -> Vec<String> {
    let mut tags = vec!["O".to_string(); len];
    let mut prev_end_same: Option<(usize, &str)> = None;
    for span in spans {
        let ty = span.ty.as_str();
        for (offset, tag) in tags[span.start..span.end].iter_mut().enumerate() {
            let single = span.end - span.start == 1;
            let prefix = match scheme {
                Scheme::Iob2 => {
                    if offset == 0 {
                        "B"
                    } else {
                        "I"
                    }
                }
                Scheme::Iob1 => {
                    // B- only where the previous token ends an entity of the same type.
                    let follows_same = prev_end_same == Some((span.start, ty));
                    if offset == 0 && follows_same {
                        "B"
                    } else {
                        "I"
                    }
                }
                Scheme::Bioes => {
                    if single {
                        "S"
                    } else if offset == 0 {
                        "B"
                    } else if offset + 1 == span.end - span.start {
                        "E"
                    } else {
                        "I"
                    }
                }
            };
            *tag = format!("{prefix}-{ty}");
        }
        prev_end_same = Some((span.end, ty));
    }
    tags
}

/// Converts a tag sequence from one scheme to another through its (lenient) spans.
pub fn convert(tags: &[String], to: Scheme) -> Vec<String> {
    render(tags.len(), &lenient_spans(tags), to)
}

/// What a repair changed, by kind of fault, for reports that must not hide data edits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairCounts {
    /// Sentences with at least one changed tag.
    pub sentences: usize,
    /// Tags changed.
    pub tags: usize,
    /// Changed tags by kind, e.g. `"I- after O"`.
    pub by_kind: BTreeMap<String, usize>,
}

impl RepairCounts {
    pub fn is_empty(&self) -> bool {
        self.tags == 0
    }

    pub fn add(&mut self, other: &RepairCounts) {
        self.sentences += other.sentences;
        self.tags += other.tags;
        for (kind, n) in &other.by_kind {
            *self.by_kind.entry(kind.clone()).or_default() += n;
        }
    }
}

/// Rewrites a sequence so it is valid in `scheme`, reading it the conlleval way (an `I-X` with no
/// `X` entity open starts one). Returns the repaired tags and what was changed.
pub fn repair(tags: &[String], scheme: Scheme) -> (Vec<String>, RepairCounts) {
    let fixed = render(tags.len(), &lenient_spans(tags), scheme);
    let mut counts = RepairCounts::default();
    let mut prev = "O";
    for (old, new) in tags.iter().zip(&fixed) {
        if old != new {
            counts.tags += 1;
            *counts.by_kind.entry(fault_kind(prev, old)).or_default() += 1;
        }
        prev = old;
    }
    if counts.tags > 0 {
        counts.sentences = 1;
    }
    (fixed, counts)
}

fn fault_kind(prev: &str, tag: &str) -> String {
    let (prefix, ty) = match parse_tag(tag) {
        Ok(p) => p,
        Err(_) => return "malformed tag".into(),
    };
    let prev_parsed = parse_tag(prev).ok();
    let name = |p: Prefix| match p {
        Prefix::O => "O",
        Prefix::B => "B-",
        Prefix::I => "I-",
        Prefix::E => "E-",
        Prefix::S => "S-",
    };
    match prev_parsed {
        None | Some((Prefix::O, _)) => format!("{} after O", name(prefix)),
        Some((_, prev_ty)) if prev_ty != ty => format!("{} after another type", name(prefix)),
        Some((p, _)) => format!("{} after {}", name(prefix), name(p)),
    }
}

/// The first position where `tags` is not a valid sequence of `scheme` (for strict reading), as the
/// index and the type of the entity the tag tries to continue.
pub fn first_dangling(tags: &[String], scheme: Scheme) -> Option<(usize, String)> {
    let mut prev: (Prefix, &str) = (Prefix::O, "");
    for (i, tag) in tags.iter().enumerate() {
        let Ok((prefix, ty)) = parse_tag(tag) else {
            continue;
        };
        let continues = matches!(prefix, Prefix::I | Prefix::E);
        if continues && scheme != Scheme::Iob1 {
            let open = matches!(prev.0, Prefix::B | Prefix::I) && prev.1 == ty;
            if !open {
                return Some((i, ty.to_string()));
            }
        }
        prev = (prefix, ty);
    }
    None
}

/// Tags written as one string, spaces between them (the tests' notation).
#[cfg(test)]
pub(crate) fn tags_of(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

/// One tag sequence per string, in [`tags_of`]'s notation.
#[cfg(test)]
pub(crate) fn tag_docs(docs: &[&str]) -> Vec<Vec<String>> {
    docs.iter().map(|d| tags_of(d)).collect()
}

#[cfg(test)]
mod tests {
    use super::tags_of as t;
    use super::*;

    #[test]
    fn parses_tags() {
        assert_eq!(parse_tag("O"), Ok((Prefix::O, "")));
        assert_eq!(parse_tag("B-PER"), Ok((Prefix::B, "PER")));
        assert_eq!(
            parse_tag("I-Medication/Vaccine"),
            Ok((Prefix::I, "Medication/Vaccine"))
        );
        assert_eq!(parse_tag("S-X-Y"), Ok((Prefix::S, "X-Y")));
        for bad in ["", "B", "B-", "PER", "X-PER", "b-per", "B--X", "B-A B", "o"] {
            assert!(parse_tag(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn converts_between_schemes() {
        let iob2 = t("B-PER I-PER B-PER O B-LOC I-LOC I-LOC B-ORG");
        let bioes = convert(&iob2, Scheme::Bioes);
        assert_eq!(bioes, t("B-PER E-PER S-PER O B-LOC I-LOC E-LOC S-ORG"));
        let iob1 = convert(&iob2, Scheme::Iob1);
        assert_eq!(iob1, t("I-PER I-PER B-PER O I-LOC I-LOC I-LOC I-ORG"));
        assert_eq!(convert(&iob1, Scheme::Iob2), iob2);
        assert_eq!(convert(&bioes, Scheme::Iob2), iob2);
    }

    #[test]
    fn repairs_dangling_inside_tags() {
        let (fixed, counts) = repair(&t("O I-PER I-PER B-LOC I-ORG"), Scheme::Iob2);
        assert_eq!(fixed, t("O B-PER I-PER B-LOC B-ORG"));
        assert_eq!(counts.tags, 2);
        assert_eq!(counts.sentences, 1);
        assert_eq!(counts.by_kind["I- after O"], 1);
        assert_eq!(counts.by_kind["I- after another type"], 1);
        let (same, none) = repair(&t("B-PER I-PER O"), Scheme::Iob2);
        assert_eq!(same, t("B-PER I-PER O"));
        assert!(none.is_empty());
    }

    #[test]
    fn finds_dangling_tags() {
        assert_eq!(
            first_dangling(&t("O B-PER I-PER O I-LOC"), Scheme::Iob2),
            Some((4, "LOC".into()))
        );
        assert_eq!(
            first_dangling(&t("B-PER I-LOC"), Scheme::Iob2),
            Some((1, "LOC".into()))
        );
        assert_eq!(first_dangling(&t("I-PER I-PER"), Scheme::Iob1), None);
        assert_eq!(first_dangling(&t("B-PER E-PER S-LOC"), Scheme::Bioes), None);
    }

    #[test]
    fn detects_bioes() {
        let detect = |docs: &[&str]| {
            let tags = tag_docs(docs);
            Scheme::detect(tags.iter().map(Vec::as_slice))
        };
        assert_eq!(detect(&["O B-PER E-PER", "S-LOC O"]), Scheme::Bioes);
        assert_eq!(detect(&["O B-PER I-PER", "B-LOC O"]), Scheme::Iob2);
        // A sloppy BIOES file (entities B- I- without E-, more of them than its S- tags) is
        // still BIOES: E- and S- tags at least half as many as B-.
        assert_eq!(
            detect(&[
                "B-PER I-PER E-PER O S-LOC",
                "B-ORG I-ORG O",
                "B-LOC I-LOC",
                "B-PER"
            ]),
            Scheme::Bioes
        );
        assert_eq!(detect(&["S-PER O S-LOC"]), Scheme::Bioes);
        // An IOB2 file with one stray S- among three B-: IOB2.
        assert_eq!(
            detect(&["B-PER I-PER O B-LOC", "B-PER O S-LOC"]),
            Scheme::Iob2
        );
    }
}
