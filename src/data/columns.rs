//! Column formats with one token per line and blank lines between sentences: WikiANN as XTREME
//! ships it (`token<TAB>tag`), Rahimi's raw WikiANN (`lang:token<TAB>tag`), CoNLL two-column
//! (`token tag`, MasakhaNER) and MultiCoNER (`# id <id><TAB>domain=<lang>`, then `token _ _ tag`).

use std::path::Path;
use std::sync::Arc;

use super::detect::{describe_line, lang_prefix, line_format};
use super::error::{DataError, Location};
use super::klue::file_stem;
use super::{Corpus, Format, Layout, Origin, ReadNotes, Scheme, Sentence};

/// One parsed token line.
struct Row {
    lang: Option<String>,
    token: String,
    columns: Vec<String>,
    tag: String,
}

pub fn parse(
    format: Format,
    lines: &[(usize, &str)],
    path: &Arc<Path>,
) -> Result<Corpus, DataError> {
    let blocks = super::text::blocks(lines, |l| l.trim().is_empty());
    let file_lang = lang_from_path(format, path);
    let mut sentences = Vec::with_capacity(blocks.len());
    for (n, block) in blocks.iter().enumerate() {
        // Only MultiCoNER has header lines; a line starting with `#` that is a valid token line
        // (the token `#` itself, common in WikiANN's Chinese files) is a token.
        let is_header = |l: &str| {
            format == Format::Multiconer && l.starts_with('#') && line_format(l) != Some(format)
        };
        let n_header = block.iter().take_while(|(_, l)| is_header(l)).count();
        let (header, body) = block.split_at(n_header);
        let mut id = format!("{}-{}", file_stem(path), n + 1);
        let mut lang = file_lang.clone();
        if let Some(&(_, line)) = header.last() {
            let (hid, hlang) = multiconer_header(line);
            if let Some(hid) = hid {
                id = hid;
            }
            lang = hlang.or(lang);
        }
        if body.is_empty() {
            let &(no, _) = header.last().unwrap_or(&block[0]);
            return Err(DataError::EmptySentence {
                at: Location::new(path, no),
                id,
            });
        }
        let mut s = Sentence {
            id,
            lang,
            tokens: Vec::with_capacity(body.len()),
            tags: Vec::with_capacity(body.len()),
            raw: None,
            columns: Vec::new(),
            header: Vec::new(),
            origin: Origin {
                path: path.clone(),
                line: body[0].0,
            },
        };
        for &(no, line) in body {
            let row = parse_row(format, path, no, line)?;
            if let Some(row_lang) = row.lang {
                match &s.lang {
                    Some(l) if *l != row_lang && s.tokens.is_empty() => s.lang = Some(row_lang),
                    Some(l) if *l != row_lang => {
                        return Err(DataError::Malformed {
                            at: Location::new(path, no),
                            expected: format!("the sentence's language prefix {l}:"),
                            found: line.to_string(),
                        });
                    }
                    Some(_) => {}
                    None => s.lang = Some(row_lang),
                }
            }
            s.tokens.push(row.token);
            s.tags.push(row.tag);
            if !row.columns.is_empty() {
                s.columns.push(row.columns);
            }
        }
        sentences.push(s);
    }
    let leading_blank = lines.first().is_some_and(|(_, l)| l.trim().is_empty());
    let trailing_blank = lines.last().is_some_and(|(_, l)| l.trim().is_empty());
    Ok(Corpus {
        path: path.to_path_buf(),
        format,
        scheme: Scheme::Iob2,
        sentences,
        preamble: Vec::new(),
        layout: Layout {
            leading_blank,
            trailing_blank,
            inline_comments: false,
            gap: super::text::gap(&blocks),
        },
        notes: ReadNotes::default(),
    })
}

/// `# id 5239d808-...<TAB>domain=en` -> (id, lang).
fn multiconer_header(line: &str) -> (Option<String>, Option<String>) {
    let Some(rest) = line.strip_prefix("# id") else {
        return (None, None);
    };
    let mut fields = rest.trim().split('\t');
    let id = fields
        .next()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let lang = fields
        .find_map(|f| f.trim().strip_prefix("domain="))
        .map(String::from);
    (id, lang)
}

/// The language a file name implies: `dev-ko.tsv` (XTREME), `masakhaner/hau/train.txt`.
fn lang_from_path(format: Format, path: &Path) -> Option<String> {
    let stem = file_stem(path);
    if let Some((_, lang)) = stem.split_once('-')
        && (2..=3).contains(&lang.len())
        && lang.bytes().all(|b| b.is_ascii_lowercase())
    {
        return Some(lang.to_string());
    }
    if format == Format::Conll {
        let parent = path.parent()?.file_name()?.to_str()?;
        if (2..=3).contains(&parent.len()) && parent.bytes().all(|b| b.is_ascii_lowercase()) {
            return Some(parent.to_string());
        }
    }
    None
}

fn expected_line(format: Format) -> &'static str {
    match format {
        Format::Wikiann => "token<TAB>tag",
        Format::WikiannRaw => "lang:token<TAB>tag",
        Format::Multiconer => "token _ _ tag",
        _ => "token tag",
    }
}

fn mixed_or_malformed(format: Format, path: &Path, no: usize, line: &str) -> DataError {
    let at = Location::new(path, no);
    if format == Format::Multiconer && line.starts_with("# id") {
        // A header inside a sentence: the blank line before it is missing.
        return DataError::Malformed {
            at,
            expected: "a token _ _ tag line, or a blank line before this sentence header".into(),
            found: line.to_string(),
        };
    }
    match describe_line(line) {
        Some(found) if line_format(line) != Some(format) => DataError::MixedFormat {
            at,
            found,
            expected: format.describe(),
        },
        _ => DataError::Malformed {
            at,
            expected: format!("a {} line", expected_line(format)),
            found: line.to_string(),
        },
    }
}

fn parse_row(format: Format, path: &Path, no: usize, line: &str) -> Result<Row, DataError> {
    let at = || Location::new(path, no);
    let expected = expected_line(format);
    let fields: Vec<&str> = match format {
        Format::Wikiann | Format::WikiannRaw => line.split('\t').collect(),
        Format::Multiconer => line.split(' ').collect(),
        _ => {
            if line.contains('\t') {
                return Err(mixed_or_malformed(format, path, no, line));
            }
            let mut f: Vec<&str> = line.split_whitespace().collect();
            if line.starts_with(char::is_whitespace) {
                f.insert(0, "");
            }
            f
        }
    };
    let want = if format == Format::Multiconer { 4 } else { 2 };
    if fields.len() == 1 || (fields.len() == want && fields[want - 1].is_empty()) {
        if fields.len() == 1
            && let Some(found) = describe_line(line).filter(|_| line_format(line) != Some(format))
        {
            return Err(DataError::MixedFormat {
                at: at(),
                found,
                expected: format.describe(),
            });
        }
        return Err(DataError::TokenWithoutTag {
            at: at(),
            token: fields[0].to_string(),
            expected,
        });
    }
    if format == Format::Multiconer && fields.len() == 3 && fields[1] == "_" && fields[2] == "_" {
        return Err(DataError::TokenWithoutTag {
            at: at(),
            token: fields[0].to_string(),
            expected,
        });
    }
    if fields.len() != want {
        return Err(mixed_or_malformed(format, path, no, line));
    }
    let (token, tag) = (fields[0], fields[want - 1]);
    if token.is_empty() {
        return Err(DataError::TagWithoutToken {
            at: at(),
            tag: tag.to_string(),
            expected,
        });
    }
    let (lang, token) = if format == Format::WikiannRaw {
        match lang_prefix(token) {
            Some((lang, tok)) => (Some(lang.to_string()), tok),
            None => {
                return Err(DataError::MixedFormat {
                    at: at(),
                    found: "a WikiANN line without its lang: prefix",
                    expected: format.describe(),
                });
            }
        }
    } else {
        (None, token)
    };
    Ok(Row {
        lang,
        token: token.to_string(),
        columns: fields[1..want - 1].iter().map(|s| s.to_string()).collect(),
        tag: tag.to_string(),
    })
}
