//! Raw text in, entities out: splitting text into the units a model tags, tagging it with
//! confidences, and the attention of a typed text.

use serde::Serialize;

use crate::data::spans::lenient_spans;
use crate::model::align::AlignMode;
use crate::model::ner::{AttentionView, NerModel};

/// One entity found in a text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TextSpan {
    #[serde(rename = "type")]
    pub ty: String,
    /// Character offsets into the text, end exclusive.
    pub start: usize,
    pub end: usize,
    pub text: String,
    /// Mean probability the model gave the span's tags.
    pub confidence: f32,
}

/// A text and the entities found in it (one line of `nerlab tag`'s output).
#[derive(Debug, Clone, Serialize)]
pub struct TaggedText {
    pub text: String,
    pub spans: Vec<TextSpan>,
}

/// Tokens of raw text with their character offsets: characters for character-level models,
/// whitespace-separated words otherwise.
pub fn tokenize(text: &str, mode: AlignMode) -> Vec<(String, usize, usize)> {
    let chars: Vec<char> = text.chars().collect();
    match mode {
        AlignMode::Chars | AlignMode::CharTokens => chars
            .iter()
            .enumerate()
            .map(|(i, c)| (c.to_string(), i, i + 1))
            .collect(),
        AlignMode::Words => {
            let mut out = Vec::new();
            let mut start = None;
            for (i, c) in chars
                .iter()
                .enumerate()
                .chain(std::iter::once((chars.len(), &' ')))
            {
                match (c.is_whitespace(), start) {
                    (true, Some(s)) => {
                        out.push((chars[s..i].iter().collect(), s, i));
                        start = None;
                    }
                    (false, None) => start = Some(i),
                    _ => {}
                }
            }
            out
        }
    }
}

/// Tags texts; spans are read leniently (an `I-X` after `O` still shows as an entity).
pub fn tag_texts(model: &NerModel, texts: &[String]) -> anyhow::Result<Vec<TaggedText>> {
    let toks: Vec<Vec<(String, usize, usize)>> =
        texts.iter().map(|t| tokenize(t, model.align)).collect();
    let tokens: Vec<Vec<String>> = toks
        .iter()
        .map(|t| t.iter().map(|(s, _, _)| s.clone()).collect())
        .collect();
    let nonempty: Vec<usize> = (0..texts.len())
        .filter(|&i| !tokens[i].is_empty())
        .collect();
    let batch: Vec<Vec<String>> = nonempty.iter().map(|&i| tokens[i].clone()).collect();
    let tagged = model.tag(&batch, 32)?;
    let mut out: Vec<TaggedText> = texts
        .iter()
        .map(|t| TaggedText {
            text: t.clone(),
            spans: Vec::new(),
        })
        .collect();
    for (&i, t) in nonempty.iter().zip(tagged) {
        let chars: Vec<char> = texts[i].chars().collect();
        for span in lenient_spans(&t.tags) {
            let (start, end) = (toks[i][span.start].1, toks[i][span.end - 1].2);
            let conf = t.confidence[span.start..span.end].iter().sum::<f32>() / span.len() as f32;
            out[i].spans.push(TextSpan {
                ty: span.ty,
                start,
                end,
                text: chars[start..end].iter().collect(),
                confidence: conf,
            });
        }
    }
    Ok(out)
}

/// Attention of every layer and head for a typed text, split as [`tag_texts`] splits it.
pub fn attention_of_text(model: &NerModel, text: &str) -> anyhow::Result<AttentionView> {
    let tokens: Vec<String> = tokenize(text, model.align)
        .into_iter()
        .map(|(t, _, _)| t)
        .collect();
    model.attention(&tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizes_with_offsets() {
        assert_eq!(
            tokenize(" 서울 시청 ", AlignMode::Words),
            vec![("서울".into(), 1, 3), ("시청".into(), 4, 6)]
        );
        assert_eq!(tokenize("가 나", AlignMode::Chars).len(), 3);
    }
}
