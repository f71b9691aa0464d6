//! From corpus tokens to subword units and back.
//!
//! A *unit* is a subword position that carries a label. Two alignments:
//!
//! - **Words** (WikiANN, MultiCoNER, MasakhaNER, KMOU): each token is tokenized on its own (as HF's
//!   `is_split_into_words=True` does); its first subword is its unit and carries its tag; the other
//!   subwords carry none. A token's prediction is its unit's.
//! - **Chars** (KLUE): as KLUE's baseline (`klue_baseline/data/klue_ner.py` and
//!   `models/named_entity_recognition.py`): the sentence is split into words at spaces, each word is
//!   tokenized alone, and *every* subword is a unit labelled with its first character's tag (a bare
//!   SentencePiece `▁`, which covers no character, is labelled `O`). At prediction a subword's label
//!   expands to the characters it covers, later characters of a `B-X` subword becoming `I-X`; `[UNK]`
//!   covers its whole span the same way. Character offsets from the tokenizer are used instead of
//!   KLUE's running count of subword lengths, so normalization that changes a piece's length cannot
//!   shift labels.
//!
//! - **CharTokens** (KLUE, as seed 003's KoELECTRA + BiLSTM + CRF does it): every character is a
//!   word of its own, tokenized alone; its first subword is its unit and carries its tag. Nothing
//!   is lost in the round trip (each character has its own label), at the price of longer inputs
//!   and pieces the pretrained model rarely saw alone.
//!
//! Inputs longer than the model's positions are split into overlapping windows; every unit is
//! predicted by the window in which it sits furthest from an edge, so nothing is cut.

use anyhow::bail;

use super::tokenize::TextTokenizer;

/// Which alignment (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlignMode {
    Words,
    Chars,
    #[serde(rename = "char_tokens")]
    CharTokens,
}

/// How a character-level corpus (KLUE) meets a subword model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CharUnits {
    /// KLUE's baseline: words split into subwords, every subword a unit ([`AlignMode::Chars`]).
    #[default]
    Subwords,
    /// Every character its own word ([`AlignMode::CharTokens`]).
    Characters,
}

crate::choices!(CharUnits, "character unit":
    Subwords = "subwords", Characters = "characters" | "chars",
);

impl AlignMode {
    /// The units a corpus of `format` is tagged in: for character-level formats (KLUE) as
    /// `units` says, words otherwise.
    pub fn for_format(format: crate::data::Format, units: CharUnits) -> Self {
        match (format.char_level(), units) {
            (false, _) => Self::Words,
            (true, CharUnits::Subwords) => Self::Chars,
            (true, CharUnits::Characters) => Self::CharTokens,
        }
    }

    /// Whether corpus tokens are characters (spaces are tokens too).
    pub fn char_level(self) -> bool {
        self != Self::Words
    }
}

/// How MANER changes the input (Mask Augmented NER: a marker before every word, the word's label
/// predicted at the marker).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Marker {
    /// Plain input: units are first subwords.
    #[default]
    None,
    /// The tokenizer's mask token before every word (MANER).
    Mask,
    /// A fresh, untrained added token before every word (the MANER paper's control).
    Fresh,
}

/// Where a token's prediction comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The unit's label (a word's unit, or the first character a subword covers).
    First(usize),
    /// A later character of a subword: `B-X`/`I-X` become `I-X`, `O` stays.
    Inside(usize),
    /// A character no subword covers: continues the previous character's entity (`I-X`), else `O`.
    Uncovered,
    /// A space token: `I-X` between two characters of the same entity (as KLUE writes it), else `O`.
    Space,
}

/// One sentence aligned to subwords (content only: special tokens are added per window).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alignment {
    pub ids: Vec<u32>,
    /// Position in `ids` of each unit.
    pub units: Vec<usize>,
    /// Training label of each unit (`None`: not trained on).
    pub unit_tags: Vec<Option<String>>,
    /// For each corpus token, where its prediction comes from.
    pub sources: Vec<Source>,
}

/// Aligns a sentence. `tags` are needed for training labels; `marker_id` is the id of the MANER
/// marker (mask or fresh token) when `marker` is not `None`.
pub fn align(
    tokenizer: &TextTokenizer,
    tokens: &[String],
    tags: Option<&[String]>,
    mode: AlignMode,
    marker: Marker,
    marker_id: Option<u32>,
) -> anyhow::Result<Alignment> {
    let mut a = Alignment {
        ids: Vec::new(),
        units: Vec::new(),
        unit_tags: Vec::new(),
        sources: Vec::with_capacity(tokens.len()),
    };
    let tag_of = |i: usize| tags.and_then(|t| t.get(i)).cloned();
    if mode.char_level() && marker != Marker::None {
        bail!("MANER marks words; it needs a word-level corpus, not a character-level one");
    }
    match mode {
        AlignMode::Words => {
            let marker_id = match marker {
                Marker::None => None,
                _ => Some(
                    marker_id.ok_or_else(|| anyhow::anyhow!("MANER needs a marker token id"))?,
                ),
            };
            let mut first_word = true;
            for (i, tok) in tokens.iter().enumerate() {
                if tok.trim().is_empty() {
                    a.sources.push(Source::Space);
                    continue;
                }
                if !first_word && let Some(sep) = tokenizer.word_separator() {
                    a.ids.push(sep);
                }
                first_word = false;
                a.push_word(tokenizer, tok, tag_of(i), marker_id)?;
            }
        }
        AlignMode::CharTokens => {
            // Every character a word; words of the text are still separated where spaces were.
            let mut after_space = false;
            for (i, tok) in tokens.iter().enumerate() {
                if tok.trim().is_empty() {
                    a.sources.push(Source::Space);
                    after_space = true;
                    continue;
                }
                if after_space
                    && !a.ids.is_empty()
                    && let Some(sep) = tokenizer.word_separator()
                {
                    a.ids.push(sep);
                }
                after_space = false;
                a.push_word(tokenizer, tok, tag_of(i), None)?;
            }
        }
        AlignMode::Chars => {
            // Characters grouped into words at space tokens.
            let mut start = 0;
            while start < tokens.len() {
                if tokens[start].trim().is_empty() {
                    a.sources.push(Source::Space);
                    start += 1;
                    continue;
                }
                let end = (start..tokens.len())
                    .find(|&j| tokens[j].trim().is_empty())
                    .unwrap_or(tokens.len());
                if let Some(sep) = tokenizer.word_separator()
                    && !a.ids.is_empty()
                {
                    a.ids.push(sep);
                }
                a.push_subword_units(
                    tokenizer,
                    &tokens[start..end],
                    tags.and_then(|t| t.get(start..end)),
                )?;
                start = end;
            }
        }
    }
    Ok(a)
}

impl Alignment {
    /// One word tokenized alone: its unit is the marker when there is one, else its first piece,
    /// and it carries the word's tag.
    fn push_word(
        &mut self,
        tokenizer: &TextTokenizer,
        word: &str,
        tag: Option<String>,
        marker_id: Option<u32>,
    ) -> anyhow::Result<()> {
        let mut pieces: Vec<u32> = tokenizer.encode_word(word)?.iter().map(|p| p.id).collect();
        if pieces.is_empty() {
            // A token the tokenizer deletes entirely (control characters): still predicted.
            pieces.push(tokenizer.specials().unk);
        }
        if let Some(m) = marker_id {
            self.ids.push(m);
            self.units.push(self.ids.len() - 1);
        } else {
            self.units.push(self.ids.len());
        }
        self.unit_tags.push(tag);
        self.sources.push(Source::First(self.units.len() - 1));
        self.ids.extend(pieces);
        Ok(())
    }

    /// The characters of one word (KLUE's scheme): every subword a unit labelled with its first
    /// character's tag (from `tags`, the word's characters' tags, when training).
    fn push_subword_units(
        &mut self,
        tokenizer: &TextTokenizer,
        chars: &[String],
        tags: Option<&[String]>,
    ) -> anyhow::Result<()> {
        let word: String = chars.concat();
        let n = chars.len();
        let mut sources = vec![Source::Uncovered; n];
        // Character offsets of the word are per char of `word`; corpus tokens are single
        // characters here, so offset k is the word's character k.
        for piece in tokenizer.encode_word(&word)? {
            let unit = self.units.len();
            self.units.push(self.ids.len());
            self.ids.push(piece.id);
            if piece.end <= piece.start || piece.start >= n {
                self.unit_tags.push(tags.map(|_| "O".to_string()));
                continue;
            }
            self.unit_tags
                .push(tags.and_then(|t| t.get(piece.start)).cloned());
            for (k, src) in sources
                .iter_mut()
                .enumerate()
                .take(piece.end.min(n))
                .skip(piece.start)
            {
                if *src == Source::Uncovered {
                    *src = if k == piece.start {
                        Source::First(unit)
                    } else {
                        Source::Inside(unit)
                    };
                }
            }
        }
        self.sources.extend(sources);
        Ok(())
    }
}

/// Expands unit predictions to one tag per corpus token (see [`Source`]).
pub fn expand(sources: &[Source], unit_tags: &[String]) -> Vec<String> {
    use crate::data::scheme::tag_type;
    let unit = |u: usize| unit_tags.get(u).map_or("O", String::as_str);
    let inside = |tag: &str| tag_type(tag).map_or_else(|| "O".to_string(), |ty| format!("I-{ty}"));
    // Characters first, each continuing from the previous non-space one.
    let mut out: Vec<String> = Vec::with_capacity(sources.len());
    let mut prev = "O".to_string();
    for src in sources {
        let tag = match *src {
            Source::First(u) => unit(u).to_string(),
            Source::Inside(u) => inside(unit(u)),
            Source::Uncovered => inside(&prev),
            Source::Space => {
                out.push(String::new());
                continue;
            }
        };
        prev.clone_from(&tag);
        out.push(tag);
    }
    // Then spaces, from their neighbours.
    for i in 0..sources.len() {
        if sources[i] != Source::Space {
            continue;
        }
        let before = out[..i]
            .iter()
            .rev()
            .find(|t| !t.is_empty())
            .and_then(|t| tag_type(t));
        let after = out[i + 1..].iter().find(|t| !t.is_empty());
        let continues = after.is_some_and(|t| t.starts_with("I-") && tag_type(t) == before);
        out[i] = match (continues, before) {
            (true, Some(ty)) => format!("I-{ty}"),
            _ => "O".into(),
        };
    }
    out
}

/// Windows `(start, end)` over `n` content positions, each at most `max_len` long, overlapping by
/// half, covering everything.
pub fn windows(n: usize, max_len: usize) -> Vec<(usize, usize)> {
    let max_len = max_len.max(1);
    if n <= max_len {
        return vec![(0, n)];
    }
    let stride = (max_len / 2).max(1);
    let mut out = Vec::new();
    let mut start = 0;
    loop {
        let end = (start + max_len).min(n);
        out.push((start, end));
        if end == n {
            break;
        }
        start += stride;
    }
    out
}

/// The window that predicts content position `pos`: the one where it is furthest from an edge.
pub fn best_window(windows: &[(usize, usize)], pos: usize) -> usize {
    windows
        .iter()
        .enumerate()
        .filter(|&(_, &(s, e))| s <= pos && pos < e)
        .max_by_key(|&(_, &(s, e))| (pos - s).min(e - 1 - pos))
        .map_or(0, |(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::scheme::tags_of as tags;
    use crate::model::tokenize::CharVocab;

    fn chars(s: &str) -> Vec<String> {
        s.chars().map(|c| c.to_string()).collect()
    }

    /// `text` split into characters and aligned with `gold`, by a character vocabulary of `vocab`.
    fn char_aligned(vocab: &str, text: &str, gold: &[String]) -> Alignment {
        let tok = TextTokenizer::Chars(CharVocab::build([vocab].into_iter(), 1));
        let toks = chars(text);
        align(
            &tok,
            &toks,
            Some(gold),
            AlignMode::Chars,
            Marker::None,
            None,
        )
        .unwrap()
    }

    /// The units' tags expanded back to the tokens.
    fn expanded(a: &Alignment) -> Vec<String> {
        let unit_tags: Vec<String> = a.unit_tags.iter().map(|t| t.clone().unwrap()).collect();
        expand(&a.sources, &unit_tags)
    }

    #[test]
    fn char_model_round_trips_klue_tags() {
        let gold = tags("B-OG I-OG O B-LC I-LC");
        let a = char_aligned("삼성전자 서울", "삼성 서울", &gold);
        // One unit per character, a space token between the words.
        assert_eq!(a.units.len(), 4);
        assert_eq!(a.ids.len(), 5);
        assert_eq!(expanded(&a), gold);
    }

    #[test]
    fn space_inside_an_entity_is_inside() {
        let gold = tags("B-TI I-TI I-TI I-TI I-TI");
        assert_eq!(expanded(&char_aligned("오후 5시", "오후 5시", &gold)), gold);
    }

    #[test]
    fn words_use_first_subword_and_maner_marks() {
        let tok = TextTokenizer::Chars(CharVocab::build(["Kim visited Seoul"].into_iter(), 1));
        let toks: Vec<String> = ["Kim", "visited", "Seoul"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let gold = tags("B-PER O B-LOC");
        let a = align(
            &tok,
            &toks,
            Some(&gold),
            AlignMode::Words,
            Marker::None,
            None,
        )
        .unwrap();
        assert_eq!(a.units, vec![0, 4, 12]);
        let m = align(
            &tok,
            &toks,
            Some(&gold),
            AlignMode::Words,
            Marker::Mask,
            Some(4),
        )
        .unwrap();
        for &u in &m.units {
            assert_eq!(m.ids[u], 4, "the unit is the marker");
        }
        assert_eq!(m.ids.len(), a.ids.len() + 3);
        assert_eq!(expand(&m.sources, &gold), gold);
        assert!(align(&tok, &toks, None, AlignMode::Chars, Marker::Mask, Some(4)).is_err());
    }

    #[test]
    fn windows_cover_everything() {
        assert_eq!(windows(5, 10), vec![(0, 5)]);
        let w = windows(25, 10);
        assert_eq!(w, vec![(0, 10), (5, 15), (10, 20), (15, 25)]);
        assert_eq!(best_window(&w, 2), 0);
        assert_eq!(best_window(&w, 8), 1); // 3 from the edge of (5, 15), 1 from the edge of (0, 10)
        assert_eq!(best_window(&w, 24), 3);
        for p in 0..25 {
            let (s, e) = w[best_window(&w, p)];
            assert!(s <= p && p < e);
        }
    }
}
