//! Text with inline entity marks, `<삼성전자:OG> <이재용:PS> 회장이`, as KLUE's comment lines and
//! nerlab's built-in demo corpus write it, to and from character-level KLUE sentences.

use std::path::Path;
use std::sync::Arc;

use super::error::{DataError, Location};
use super::{Corpus, Format, Layout, Origin, ReadNotes, Scheme};

/// Characters and KLUE tags of one inline-marked line. Errors say what is wrong in the line.
pub fn parse_line(line: &str) -> Result<(Vec<String>, Vec<String>), String> {
    let mut chars = Vec::new();
    let mut tags = Vec::new();
    let mut rest = line;
    while !rest.is_empty() {
        match rest.find(['<', '>']) {
            None => {
                push_plain(rest, &mut chars, &mut tags);
                break;
            }
            Some(i) if rest[i..].starts_with('>') => {
                return Err(format!(
                    "'>' without an opening '<' at byte {}",
                    line.len() - rest.len() + i
                ));
            }
            Some(i) => {
                push_plain(&rest[..i], &mut chars, &mut tags);
                let after = &rest[i + 1..];
                let close = after.find('>').ok_or("'<' without a closing '>'")?;
                let inner = &after[..close];
                if inner.contains('<') {
                    return Err(format!("nested '<' inside {inner:?}"));
                }
                let (text, ty) = inner
                    .rsplit_once(':')
                    .ok_or_else(|| format!("{inner:?} lacks a ':TYPE'"))?;
                if text.is_empty() || ty.is_empty() || ty.chars().any(char::is_whitespace) {
                    return Err(format!("{inner:?} is not TEXT:TYPE"));
                }
                if text.starts_with(' ') || text.ends_with(' ') {
                    return Err(format!("entity {text:?} begins or ends with a space"));
                }
                for (k, c) in text.chars().enumerate() {
                    chars.push(c.to_string());
                    tags.push(format!("{}-{ty}", if k == 0 { "B" } else { "I" }));
                }
                rest = &after[close + 1..];
            }
        }
    }
    if chars.is_empty() {
        return Err("empty line".into());
    }
    Ok((chars, tags))
}

fn push_plain(text: &str, chars: &mut Vec<String>, tags: &mut Vec<String>) {
    for c in text.chars() {
        chars.push(c.to_string());
        tags.push("O".into());
    }
}

/// A KLUE-format corpus from inline-marked lines (`#` comments and blank lines skipped).
/// Sentence ids are `<prefix>-<n>`.
pub fn corpus_from_lines<'a>(
    lines: impl Iterator<Item = (usize, &'a str)>,
    path: &Path,
    prefix: &str,
) -> Result<Corpus, DataError> {
    let origin_path: Arc<Path> = Arc::from(path);
    let mut sentences = Vec::new();
    for (no, line) in lines {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (tokens, tags) = parse_line(line).map_err(|why| DataError::Malformed {
            at: Location::new(path, no),
            expected: "text with entities marked <text:TYPE>".into(),
            found: why,
        })?;
        let id = format!("{prefix}-{:04}", sentences.len() + 1);
        let origin = Origin {
            path: origin_path.clone(),
            line: no,
        };
        sentences.push(super::klue::char_sentence(id, tokens, tags, origin));
    }
    if sentences.is_empty() {
        return Err(DataError::EmptyFile(path.to_path_buf()));
    }
    Ok(Corpus {
        path: path.to_path_buf(),
        format: Format::Klue,
        scheme: Scheme::Iob2,
        sentences,
        preamble: Vec::new(),
        layout: Layout {
            leading_blank: false,
            trailing_blank: true,
            inline_comments: true,
            gap: 1,
        },
        notes: ReadNotes::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_marks() {
        let (chars, tags) = parse_line("<삼성전자:OG> <오후 5시:TI>에").unwrap();
        assert_eq!(chars.concat(), "삼성전자 오후 5시에");
        assert_eq!(
            tags.join(" "),
            "B-OG I-OG I-OG I-OG O B-TI I-TI I-TI I-TI I-TI O"
        );
    }

    #[test]
    fn rejects_bad_marks() {
        for bad in [
            "<서울:LC",
            "서울>",
            "<<서울:LC>>",
            "<서울>",
            "< 서울:LC>",
            "<서울:>",
            "",
        ] {
            assert!(parse_line(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn corpus_round_trips_through_the_klue_writer() {
        let lines = [
            "# 경제",
            "<삼성전자:OG>가 <3일:DT> 발표했다.",
            "",
            "비가 온다.",
        ];
        let c = corpus_from_lines(
            lines.iter().enumerate().map(|(i, l)| (i + 1, *l)),
            Path::new("demo.txt"),
            "demo",
        )
        .unwrap();
        assert_eq!(c.len(), 2);
        let text = super::super::to_text(&c);
        assert!(
            text.starts_with("## demo-0001\t<삼성전자:OG>가 <3일:DT> 발표했다.\n삼\tB-OG\n"),
            "{text}"
        );
        let back =
            super::super::parse(text.as_bytes(), Path::new("x.tsv"), &Default::default()).unwrap();
        assert_eq!(back.sentences[0].tags, c.sentences[0].tags);
        let e = corpus_from_lines([(3, "<a:X")].into_iter(), Path::new("d.txt"), "d").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("d.txt:3: expected text with entities marked"),
            "{e}"
        );
    }
}
