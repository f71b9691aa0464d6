//! KMOU NER (Korea Maritime & Ocean University): per sentence three `##` lines (number, raw text,
//! text with inline `<entity:TYPE>` tags), then one `surface<TAB>morpheme<TAB>POS<TAB>tag` line per
//! morpheme, with a `_<TAB>_<TAB>_<TAB>tag` row where the raw text has a space. Spaces become
//! `" "` tokens here, as in KLUE, and are written back as `_` rows. The release is a folder of
//! 1,427 files; a folder is read as one corpus, files in name order.

use std::path::Path;
use std::sync::Arc;

use super::detect::describe_line;
use super::error::{DataError, Location};
use super::klue::file_stem;
use super::{Corpus, Format, Layout, Origin, ReadNotes, ReadOptions, Scheme, Sentence};

const EXPECTED_LINE: &str = "surface<TAB>morpheme<TAB>POS<TAB>tag";

pub fn parse(lines: &[(usize, &str)], path: &Arc<Path>) -> Result<Corpus, DataError> {
    let blocks = super::text::blocks(lines, |l| l.trim().is_empty());
    let stem = file_stem(path);
    let mut sentences = Vec::with_capacity(blocks.len());
    for (n, block) in blocks.iter().enumerate() {
        // A `##` line is a header unless it is a four-column token line (the morpheme `##`).
        let is_header = |l: &str| l.starts_with("##") && l.split('\t').count() != 4;
        let n_header = block.iter().take_while(|(_, l)| is_header(l)).count();
        let (header, body) = block.split_at(n_header);
        let header_text: Vec<&str> = header
            .iter()
            .map(|(_, l)| {
                l.strip_prefix("##")
                    .unwrap_or(l)
                    .strip_prefix(' ')
                    .unwrap_or("")
            })
            .collect();
        let number = header_text
            .first()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .unwrap_or_else(|| (n + 1).to_string());
        let id = format!("{stem}:{number}");
        if body.is_empty() {
            let &(no, _) = header.last().unwrap_or(&block[0]);
            return Err(DataError::EmptySentence {
                at: Location::new(path, no),
                id,
            });
        }
        if let Some(&(no, line)) = body.iter().find(|(_, l)| is_header(l)) {
            return Err(DataError::Malformed {
                at: Location::new(path, no),
                expected: format!("{EXPECTED_LINE} (comments go before a sentence)"),
                found: line.to_string(),
            });
        }
        let mut s = Sentence {
            id,
            lang: Some("ko".into()),
            tokens: Vec::with_capacity(body.len()),
            tags: Vec::with_capacity(body.len()),
            raw: header_text.get(1).map(|s| s.to_string()),
            columns: Vec::with_capacity(body.len()),
            header: vec![number],
            origin: Origin {
                path: path.clone(),
                line: body[0].0,
            },
        };
        for &(no, line) in body {
            let at = || Location::new(path, no);
            let fields: Vec<&str> = line.split('\t').collect();
            if fields.len() != 4 {
                return Err(match describe_line(line) {
                    Some(found) if fields.len() != 3 => DataError::MixedFormat {
                        at: at(),
                        found,
                        expected: Format::Kmou.describe(),
                    },
                    _ if fields.len() == 3 => DataError::TokenWithoutTag {
                        at: at(),
                        token: fields[0].to_string(),
                        expected: EXPECTED_LINE,
                    },
                    _ => DataError::Malformed {
                        at: at(),
                        expected: format!("{EXPECTED_LINE} (four tab-separated columns)"),
                        found: line.to_string(),
                    },
                });
            }
            let [surface, morpheme, pos, tag] = [fields[0], fields[1], fields[2], fields[3]];
            DataError::check_halves(at, surface, tag, EXPECTED_LINE)?;
            let is_space = surface == "_" && morpheme == "_" && pos == "_";
            s.tokens
                .push(if is_space { " ".into() } else { surface.into() });
            s.columns.push(vec![morpheme.to_string(), pos.to_string()]);
            s.tags.push(tag.to_string());
        }
        sentences.push(s);
    }
    Ok(Corpus {
        path: path.to_path_buf(),
        format: Format::Kmou,
        scheme: Scheme::Iob2,
        sentences,
        preamble: Vec::new(),
        layout: Layout {
            leading_blank: false,
            trailing_blank: lines.last().is_some_and(|(_, l)| l.trim().is_empty()),
            inline_comments: false,
            gap: super::text::gap(&blocks),
        },
        notes: ReadNotes::default(),
    })
}

/// Reads every `*.txt` file of a folder, in name order, as one KMOU corpus.
pub fn read_folder(dir: &Path, opts: &ReadOptions) -> Result<Corpus, DataError> {
    if opts.format.is_some_and(|f| f != Format::Kmou) {
        return Err(DataError::IsDirectory(dir.to_path_buf()));
    }
    let io = |source| DataError::Io {
        path: dir.to_path_buf(),
        error: source,
    };
    let entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    let mut files: Vec<_> = entries
        .iter()
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "txt"))
        .cloned()
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(if entries.is_empty() {
            DataError::EmptyFolder(dir.to_path_buf())
        } else {
            DataError::IsDirectory(dir.to_path_buf())
        });
    }
    let file_opts = ReadOptions {
        format: Some(Format::Kmou),
        ..opts.clone()
    };
    // The folder is KMOU only if its first file is: anything else is a directory given by mistake.
    if opts.format.is_none() {
        let first = std::fs::read(&files[0]).map_err(io)?;
        let probe = super::parse(&first, &files[0], &ReadOptions::default());
        if probe.is_ok_and(|c| c.format != Format::Kmou) {
            return Err(DataError::IsDirectory(dir.to_path_buf()));
        }
    }
    let mut corpus: Option<Corpus> = None;
    for file in &files {
        let bytes = std::fs::read(file).map_err(|source| DataError::Io {
            path: file.clone(),
            error: source,
        })?;
        let part = super::parse(&bytes, file, &file_opts)?;
        match corpus.as_mut() {
            None => corpus = Some(part),
            Some(c) => {
                c.sentences.extend(part.sentences);
                c.notes.files += part.notes.files;
                c.notes.bom_files += part.notes.bom_files;
                c.notes.crlf_lines += part.notes.crlf_lines;
            }
        }
    }
    let mut corpus = corpus.ok_or_else(|| DataError::EmptyFolder(dir.to_path_buf()))?;
    corpus.path = dir.to_path_buf();
    Ok(corpus)
}
