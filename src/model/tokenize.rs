//! Tokenizers behind one interface: a Hugging Face `tokenizer.json` (WordPiece, SentencePiece,
//! BPE) or the character vocabulary of nerlab's from-scratch model. Words are encoded one at a
//! time with character offsets, which is what both alignments (first subword per word, and KLUE's
//! characters) are built from.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tokenizers::{EncodeInput, InputSequence, Tokenizer};

/// The special tokens every model input needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Specials {
    pub cls: u32,
    pub sep: u32,
    pub pad: u32,
    pub unk: u32,
    pub mask: Option<u32>,
}

/// One subword of a word: its id and the characters `start..end` of the word it covers
/// (`start == end` for pieces that cover nothing, like a bare SentencePiece `▁`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub id: u32,
    pub start: usize,
    pub end: usize,
}

/// A text as the tokenizer encodes it, special tokens included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextEncoding {
    pub ids: Vec<u32>,
    pub tokens: Vec<String>,
    /// Character offsets into the text; `(0, 0)` for special tokens.
    pub offsets: Vec<(usize, usize)>,
}

/// A Hugging Face tokenizer with padding and truncation switched off.
#[derive(Clone)]
pub struct HfTokenizer {
    inner: Tokenizer,
    pub specials: Specials,
}

impl std::fmt::Debug for HfTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HfTokenizer")
            .field("specials", &self.specials)
            .finish()
    }
}

fn find_id(t: &Tokenizer, names: &[&str]) -> Option<u32> {
    names.iter().find_map(|n| t.token_to_id(n))
}

impl HfTokenizer {
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let mut inner =
            Tokenizer::from_file(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        // all-MiniLM's tokenizer.json pads to 128 and truncates: nerlab pads and windows itself.
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let need = |names: &[&str], what: &str| {
            find_id(&inner, names).with_context(|| {
                format!(
                    "{}: no {what} token ({})",
                    path.display(),
                    names.join(" or ")
                )
            })
        };
        let specials = Specials {
            cls: need(&["[CLS]", "<s>"], "classification")?,
            sep: need(&["[SEP]", "</s>"], "separator")?,
            pad: need(&["[PAD]", "<pad>"], "padding")?,
            unk: need(&["[UNK]", "<unk>"], "unknown")?,
            mask: find_id(&inner, &["[MASK]", "<mask>"]),
        };
        Ok(Self { inner, specials })
    }

    /// A model folder's tokenizer: `tokenizer.json`, or for older repositories (KoELECTRA) a BERT
    /// WordPiece tokenizer built from `vocab.txt` (lowercasing as `tokenizer_config.json` says,
    /// BERT's default otherwise), as transformers' `BertTokenizerFast` builds it.
    pub fn from_dir(dir: &Path) -> anyhow::Result<Self> {
        let json = dir.join("tokenizer.json");
        if json.exists() {
            return Self::from_file(&json);
        }
        let vocab = dir.join("vocab.txt");
        if !vocab.exists() {
            bail!("{}: no tokenizer.json or vocab.txt", dir.display());
        }
        let lowercase = std::fs::read_to_string(dir.join("tokenizer_config.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["do_lower_case"].as_bool())
            .unwrap_or(true);
        let wp = tokenizers::models::wordpiece::WordPiece::from_file(&vocab.to_string_lossy())
            .unk_token("[UNK]".into())
            .build()
            .map_err(|e| anyhow::anyhow!("{}: {e}", vocab.display()))?;
        let mut inner = Tokenizer::new(wp);
        inner
            .with_normalizer(Some(tokenizers::normalizers::BertNormalizer::new(
                true, true, None, lowercase,
            )))
            .map_err(|e| anyhow::anyhow!("{}: {e}", vocab.display()))?;
        inner.with_pre_tokenizer(Some(tokenizers::pre_tokenizers::bert::BertPreTokenizer));
        let id = |t: &str| {
            inner
                .token_to_id(t)
                .with_context(|| format!("{}: no {t} token", vocab.display()))
        };
        let specials = Specials {
            cls: id("[CLS]")?,
            sep: id("[SEP]")?,
            pad: id("[PAD]")?,
            unk: id("[UNK]")?,
            mask: inner.token_to_id("[MASK]"),
        };
        inner.with_post_processor(Some(tokenizers::processors::bert::BertProcessing::new(
            ("[SEP]".into(), specials.sep),
            ("[CLS]".into(), specials.cls),
        )));
        Ok(Self { inner, specials })
    }

    /// Exactly `tokenizer.encode(text, add_special_tokens=True)`: ids, tokens and character offsets.
    pub fn encode_text(&self, text: &str) -> anyhow::Result<TextEncoding> {
        let enc = self
            .inner
            .encode_char_offsets(text, true)
            .map_err(|e| anyhow::anyhow!("tokenizing {text:?}: {e}"))?;
        Ok(TextEncoding {
            ids: enc.get_ids().to_vec(),
            tokens: enc.get_tokens().to_vec(),
            offsets: enc.get_offsets().to_vec(),
        })
    }

    /// The word as HF's `is_split_into_words=True` tokenizes it: the pre-tokenizer sees it as its
    /// own split (a SentencePiece `▁` is prefixed, WordPiece may split off punctuation).
    pub fn encode_word(&self, word: &str) -> anyhow::Result<Vec<Piece>> {
        let input = EncodeInput::Single(InputSequence::PreTokenized(vec![word].into()));
        let enc = self
            .inner
            .encode_char_offsets(input, false)
            .map_err(|e| anyhow::anyhow!("tokenizing {word:?}: {e}"))?;
        Ok(enc
            .get_ids()
            .iter()
            .zip(enc.get_offsets())
            .map(|(&id, &(start, end))| Piece { id, start, end })
            .collect())
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}

/// The character vocabulary of the from-scratch model: every character of its training corpus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CharVocab {
    /// Character -> id; ids 0..5 are `[PAD] [UNK] [CLS] [SEP] [MASK]`, the space is always present.
    pub chars: BTreeMap<char, u32>,
}

pub const CHAR_SPECIALS: Specials = Specials {
    pad: 0,
    unk: 1,
    cls: 2,
    sep: 3,
    mask: Some(4),
};

impl CharVocab {
    /// Characters seen at least `min_count` times in `texts` (the space always).
    pub fn build<'a>(texts: impl Iterator<Item = &'a str>, min_count: usize) -> Self {
        let mut counts: BTreeMap<char, usize> = BTreeMap::new();
        for t in texts {
            for c in t.chars() {
                *counts.entry(c).or_default() += 1;
            }
        }
        counts.insert(' ', usize::MAX);
        let mut chars = BTreeMap::new();
        for (c, n) in counts {
            if n >= min_count {
                let id = 5 + chars.len() as u32;
                chars.insert(c, id);
            }
        }
        Self { chars }
    }

    pub fn len(&self) -> usize {
        5 + self.chars.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }

    pub fn id(&self, c: char) -> u32 {
        self.chars.get(&c).copied().unwrap_or(CHAR_SPECIALS.unk)
    }

    pub fn space(&self) -> u32 {
        self.id(' ')
    }

    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let text: String = self.chars.keys().collect();
        std::fs::write(path, serde_json::to_string(&text)?)
            .with_context(|| format!("writing {}", path.display()))
    }

    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text: String = serde_json::from_str(
            &std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("{}: expected a JSON string of characters", path.display()))?;
        let chars = text
            .chars()
            .enumerate()
            .map(|(i, c)| (c, 5 + i as u32))
            .collect();
        Ok(Self { chars })
    }
}

/// Either kind of tokenizer.
#[derive(Debug, Clone)]
pub enum TextTokenizer {
    Hf(Box<HfTokenizer>),
    Chars(CharVocab),
}

impl TextTokenizer {
    pub fn specials(&self) -> Specials {
        match self {
            Self::Hf(t) => t.specials,
            Self::Chars(_) => CHAR_SPECIALS,
        }
    }

    /// The pieces of one word (see [`HfTokenizer::encode_word`]); the character model gives one
    /// piece per character.
    pub fn encode_word(&self, word: &str) -> anyhow::Result<Vec<Piece>> {
        match self {
            Self::Hf(t) => t.encode_word(word),
            Self::Chars(v) => Ok(word
                .chars()
                .enumerate()
                .map(|(i, c)| Piece {
                    id: v.id(c),
                    start: i,
                    end: i + 1,
                })
                .collect()),
        }
    }

    /// A token put between words, for tokenizers that do not mark word starts themselves (the
    /// character model gets a space; subword tokenizers mark boundaries in their pieces).
    pub fn word_separator(&self) -> Option<u32> {
        match self {
            Self::Hf(_) => None,
            Self::Chars(v) => Some(v.space()),
        }
    }

    /// A readable form of a token id, for attention views and `encode`.
    pub fn token_text(&self, id: u32) -> String {
        match self {
            Self::Hf(t) => t.id_to_token(id).unwrap_or_else(|| format!("#{id}")),
            Self::Chars(v) => match id {
                0 => "[PAD]".into(),
                1 => "[UNK]".into(),
                2 => "[CLS]".into(),
                3 => "[SEP]".into(),
                4 => "[MASK]".into(),
                _ => v
                    .chars
                    .iter()
                    .find(|&(_, &i)| i == id)
                    .map_or_else(|| format!("#{id}"), |(c, _)| c.to_string()),
            },
        }
    }

    /// Checks a tokenizer and a model agree on the vocabulary size.
    pub fn check_vocab(&self, model_vocab: usize) -> anyhow::Result<()> {
        let n = match self {
            Self::Hf(t) => t.vocab_size(),
            Self::Chars(v) => v.len(),
        };
        if n > model_vocab {
            bail!(
                "the tokenizer has {n} tokens but the model's embedding matrix only {model_vocab}"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_vocab_round_trips() {
        let v = CharVocab::build(["삼성 전자", "서울"].into_iter(), 1);
        assert_eq!(v.id('삼'), v.chars[&'삼']);
        assert_eq!(v.id('x'), CHAR_SPECIALS.unk);
        let dir = std::env::temp_dir().join(format!("nerlab-vocab-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("vocab.json");
        v.save(&p).unwrap();
        assert_eq!(CharVocab::load(&p).unwrap(), v);
        let t = TextTokenizer::Chars(v);
        let pieces = t.encode_word("서울").unwrap();
        assert_eq!(pieces.len(), 2);
        assert_eq!((pieces[1].start, pieces[1].end), (1, 2));
        assert_eq!(t.token_text(pieces[0].id), "서");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
