//! Hugging Face datasets stored as parquet: rows with `tokens` (list of strings) and `ner_tags`
//! (list of integers), the tag names taken from the `ClassLabel` feature that `datasets` writes into
//! the file's `huggingface` metadata. Character-level data (KLUE) becomes a KLUE corpus, anything
//! else a WikiANN-style one, so predictions can be written back.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;

use super::{Corpus, Format, Layout, Origin, ReadNotes, Sentence};

/// The tag names of the `ner_tags` column, from the file's `huggingface` metadata.
fn tag_names(
    reader: &SerializedFileReader<std::fs::File>,
    path: &Path,
) -> anyhow::Result<Vec<String>> {
    let meta = reader.metadata().file_metadata().key_value_metadata();
    let json = meta
        .and_then(|kv| kv.iter().find(|k| k.key == "huggingface"))
        .and_then(|k| k.value.clone())
        .with_context(|| {
            format!(
                "{}: no `huggingface` metadata naming the ner_tags labels",
                path.display()
            )
        })?;
    let v: serde_json::Value = serde_json::from_str(&json)
        .with_context(|| format!("{}: bad huggingface metadata", path.display()))?;
    let features = &v["info"]["features"]["ner_tags"];
    let names = features["feature"]["names"]
        .as_array()
        .or_else(|| features["names"].as_array())
        .with_context(|| {
            format!(
                "{}: ner_tags is not a sequence of ClassLabel",
                path.display()
            )
        })?;
    Ok(names
        .iter()
        .filter_map(|n| n.as_str().map(String::from))
        .collect())
}

/// A list field's elements through `item`; `None` unless it is a list of such elements.
fn list_of<T>(f: &Field, item: impl Fn(&Field) -> Option<T>) -> Option<Vec<T>> {
    match f {
        Field::ListInternal(l) => l.elements().iter().map(item).collect(),
        _ => None,
    }
}

fn strings(f: &Field) -> Option<Vec<String>> {
    list_of(f, |e| match e {
        Field::Str(s) => Some(s.clone()),
        _ => None,
    })
}

fn ints(f: &Field) -> Option<Vec<i64>> {
    list_of(f, |e| match e {
        Field::Long(x) => Some(*x),
        Field::Int(x) => Some(i64::from(*x)),
        Field::Short(x) => Some(i64::from(*x)),
        Field::Byte(x) => Some(i64::from(*x)),
        _ => None,
    })
}

/// Reads the parquet files of one split as a corpus named `name`.
pub fn read_parquet(files: &[PathBuf], name: &str, lang: Option<&str>) -> anyhow::Result<Corpus> {
    let mut sentences = Vec::new();
    for path in files {
        let file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let reader = SerializedFileReader::new(file)
            .with_context(|| format!("{}: not a parquet file", path.display()))?;
        let names = tag_names(&reader, path)?;
        let origin: Arc<Path> = Arc::from(path.as_path());
        // Rows are numbered from 1 in messages, as sentence origins are.
        for (row_no, row) in (1..).zip(reader.get_row_iter(None)?) {
            let row = row.with_context(|| format!("{}: row {row_no}", path.display()))?;
            let mut tokens = None;
            let mut tags = None;
            let mut id = None;
            for (col, field) in row.get_column_iter() {
                match col.as_str() {
                    "tokens" => tokens = strings(field),
                    "ner_tags" => tags = ints(field),
                    "id" | "guid" => id = Some(field.to_string().trim_matches('"').to_string()),
                    _ => {}
                }
            }
            let (Some(tokens), Some(tags)) = (tokens, tags) else {
                bail!(
                    "{}: row {row_no} lacks tokens or ner_tags lists",
                    path.display()
                );
            };
            if tokens.len() != tags.len() {
                bail!(
                    "{}: row {row_no} has {} tokens but {} tags",
                    path.display(),
                    tokens.len(),
                    tags.len()
                );
            }
            let tags = tags
                .iter()
                .map(|&t| {
                    usize::try_from(t)
                        .ok()
                        .and_then(|i| names.get(i).cloned())
                        .with_context(|| {
                            format!(
                                "{}: row {row_no}: tag id {t} outside the {} labels",
                                path.display(),
                                names.len()
                            )
                        })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            if tokens.is_empty() {
                continue;
            }
            let id = id.unwrap_or_else(|| format!("{name}-{}", sentences.len() + 1));
            let at = Origin {
                path: origin.clone(),
                line: row_no,
            };
            sentences.push(Sentence {
                lang: lang.map(String::from),
                ..Sentence::read_at(id, tokens, tags, at)
            });
        }
    }
    if sentences.is_empty() {
        bail!("{name}: the parquet files hold no sentences");
    }
    let char_level = sentences
        .iter()
        .all(|s| s.tokens.iter().all(|t| t.chars().count() == 1));
    if char_level {
        for s in &mut sentences {
            s.raw = Some(s.tokens.concat());
        }
    }
    // Every tag checked against the detected scheme, as files are (row and tag named).
    let scheme = super::validate(&sentences, &super::ReadOptions::default())?;
    Ok(Corpus {
        path: PathBuf::from(name),
        format: if char_level {
            Format::Klue
        } else {
            Format::Wikiann
        },
        scheme,
        sentences,
        preamble: Vec::new(),
        layout: Layout {
            leading_blank: false,
            trailing_blank: true,
            inline_comments: char_level,
            gap: 1,
        },
        notes: ReadNotes {
            files: files.len(),
            ..ReadNotes::default()
        },
    })
}
