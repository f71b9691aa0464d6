//! Writers, one per format. Predictions are written in the gold's own format by writing a copy of
//! the gold corpus with the predicted tags ([`Corpus::with_tags`]); lines derived from tags (KLUE's
//! and KMOU's inline `<entity:TYPE>` text) are rebuilt from the tags being written.

use std::fmt::Write as _;
use std::path::Path;

use super::error::DataError;
use super::spans::lenient_spans;
use super::{Corpus, Format, Sentence};

/// Writes the corpus to `path` (via a temporary file renamed into place, so a crash never leaves
/// half a file behind).
pub fn write(corpus: &Corpus, path: &Path) -> Result<(), DataError> {
    let io = |source| DataError::Io {
        path: path.to_path_buf(),
        error: source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("nerlab-tmp");
    std::fs::write(&tmp, to_text(corpus)).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// The corpus as the text of a file in its format.
pub fn to_text(corpus: &Corpus) -> String {
    let mut out = String::with_capacity(corpus.token_count() * 8);
    for line in &corpus.preamble {
        out.push_str(line);
        out.push('\n');
    }
    if corpus.layout.leading_blank {
        out.push('\n');
    }
    let n = corpus.sentences.len();
    for (i, s) in corpus.sentences.iter().enumerate() {
        match corpus.format {
            Format::Klue => klue(&mut out, s, corpus.layout.inline_comments),
            Format::Kmou => kmou(&mut out, s, i),
            Format::Multiconer => multiconer(&mut out, s),
            Format::Wikiann => rows(&mut out, s, |tok, tag| format!("{tok}\t{tag}")),
            Format::WikiannRaw => {
                let lang = s.lang.as_deref().unwrap_or("xx");
                rows(&mut out, s, |tok, tag| format!("{lang}:{tok}\t{tag}"))
            }
            Format::Conll => rows(&mut out, s, |tok, tag| format!("{tok} {tag}")),
        }
        if i + 1 < n {
            out.push_str(&"\n".repeat(corpus.layout.gap.max(1)));
        } else if corpus.layout.trailing_blank {
            out.push('\n');
        }
    }
    out
}

fn rows(out: &mut String, s: &Sentence, line: impl Fn(&str, &str) -> String) {
    for (tok, tag) in s.tokens.iter().zip(&s.tags) {
        out.push_str(&line(tok, tag));
        out.push('\n');
    }
}

/// Text with entities marked `<text:TYPE>`, as KLUE's and KMOU's comment lines have it.
fn inline(tokens: &[String], tags: &[String]) -> String {
    let spans = lenient_spans(tags);
    let mut text = String::new();
    let mut next = spans.iter().peekable();
    let mut open: Option<&str> = None;
    for (i, tok) in tokens.iter().enumerate() {
        if let Some(span) = next.peek()
            && span.start == i
        {
            text.push('<');
            open = Some(&span.ty);
        }
        text.push_str(tok);
        if let Some(span) = next.peek()
            && span.end == i + 1
        {
            let _ = write!(text, ":{}>", open.unwrap_or(&span.ty));
            next.next();
            open = None;
        }
    }
    text
}

fn klue(out: &mut String, s: &Sentence, inline_comments: bool) {
    let text = if inline_comments {
        inline(&s.tokens, &s.tags)
    } else {
        s.tokens.concat()
    };
    let _ = writeln!(out, "## {}\t{text}", s.id);
    rows(out, s, |tok, tag| format!("{tok}\t{tag}"));
}

fn kmou(out: &mut String, s: &Sentence, index: usize) {
    let number = s
        .header
        .first()
        .cloned()
        .unwrap_or_else(|| (index + 1).to_string());
    let surfaces: Vec<String> = s.tokens.clone();
    let raw = s.raw.clone().unwrap_or_else(|| surfaces.concat());
    let _ = writeln!(out, "## {number}");
    let _ = writeln!(out, "## {raw}");
    let _ = writeln!(out, "## {}", inline(&surfaces, &s.tags));
    for (i, (tok, tag)) in s.tokens.iter().zip(&s.tags).enumerate() {
        let cols = s.columns.get(i);
        if tok == " " {
            let _ = writeln!(out, "_\t_\t_\t{tag}");
        } else {
            let morpheme = cols
                .and_then(|c| c.first())
                .map_or(tok.as_str(), String::as_str);
            let pos = cols.and_then(|c| c.get(1)).map_or("_", String::as_str);
            let _ = writeln!(out, "{tok}\t{morpheme}\t{pos}\t{tag}");
        }
    }
}

fn multiconer(out: &mut String, s: &Sentence) {
    match &s.lang {
        Some(lang) => {
            let _ = writeln!(out, "# id {}\tdomain={lang}", s.id);
        }
        None => {
            let _ = writeln!(out, "# id {}", s.id);
        }
    }
    for (i, (tok, tag)) in s.tokens.iter().zip(&s.tags).enumerate() {
        let cols = s
            .columns
            .get(i)
            .map_or_else(|| "_ _".to_string(), |c| c.join(" "));
        let _ = writeln!(out, "{tok} {cols} {tag}");
    }
}
