//! Matching one label set onto another: a model's outputs (a Hugging Face checkpoint's `id2label`,
//! or a nerlab model trained on another corpus) onto the tags of the corpus it is scored on.
//!
//! Each model label becomes an IOB2 tag of the target. In order:
//!
//! 1. an explicit entry for the whole label (`[labels]` in a map file, `--map-label LABEL_3=B-PS`);
//! 2. else the label's prefix is read (`O`; `B`, `I`; BIOES' `S`, `E` and BILOU's `U`, `L`, which
//!    become `B` and `I`) and its type is mapped: an explicit `[types]` entry (`MISC = "O"` drops a
//!    type), the type itself when the target has it, else nerlab's built-in KLUE <-> CoNLL-style
//!    pairs ([`KLUE_PAIRS`]: `PER` <-> `PS`, `LOC` <-> `LC`, ...) when the partner is a target type.
//!
//! Without a target (tagging free text) types are kept as they are. A label that maps to nothing
//! is an error listing it and both label sets, with the way to give a map.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, bail};
use serde::Deserialize;

use super::scheme::tag_type;

/// KLUE's entity types and their CoNLL/OntoNotes-style names, either way round.
pub const KLUE_PAIRS: [(&str, &str); 8] = [
    ("PS", "PER"),
    ("LC", "LOC"),
    ("OG", "ORG"),
    ("DT", "DATE"),
    ("TI", "TIME"),
    ("QT", "QUANTITY"),
    ("DT", "DAT"),
    ("TI", "TIM"),
];

/// Explicit entries of a label map (both optional): whole labels and entity types.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelMap {
    /// A model label -> a target tag (`LABEL_3 = "B-PS"`, `S-PER = "B-PS"`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// A model entity type -> a target type, or `O` to drop it (`MISC = "O"`).
    #[serde(default)]
    pub types: BTreeMap<String, String>,
}

/// How one label was matched, for the note a command prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    /// One IOB2 tag per model label, in the model's order.
    pub tags: Vec<String>,
    /// The type renamings that were applied (`PER -> PS`), for the user to see.
    pub renamed: BTreeSet<(String, String)>,
}

impl LabelMap {
    /// Reads a TOML map file: `[labels]` and `[types]` tables of strings.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the label map {}", path.display()))?;
        let map: Self = toml::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "{}: not a label map ([labels] and [types] tables of \"FROM\" = \"TO\"): {e}",
                path.display()
            )
        })?;
        Ok(map)
    }

    /// Adds a `FROM=TO` pair from the command line: a whole label when either side has a
    /// prefix (`LABEL_3=B-PS`, `S-PER=B-PS`), else a type (`PER=PS`, `MISC=O`).
    pub fn add_pair(&mut self, pair: &str) -> anyhow::Result<()> {
        let Some((from, to)) = pair.split_once('=') else {
            bail!("--map-label {pair:?}: expected FROM=TO, such as PER=PS, MISC=O or LABEL_3=B-PS");
        };
        let (from, to) = (from.trim().to_string(), to.trim().to_string());
        if from.is_empty() || to.is_empty() {
            bail!("--map-label {pair:?}: both sides must be named");
        }
        if tag_type(&to).is_some() || prefixed(&from).is_some() || !looks_like_type(&from) {
            self.labels.insert(from, to);
        } else {
            self.types.insert(from, to);
        }
        Ok(())
    }

    /// A map from an optional file and command-line pairs.
    pub fn from_args(file: Option<&Path>, pairs: &[String]) -> anyhow::Result<Self> {
        let mut map = match file {
            Some(f) => Self::from_file(f)?,
            None => Self::default(),
        };
        for p in pairs {
            map.add_pair(p)?;
        }
        Ok(map)
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.types.is_empty()
    }

    /// Each of `labels` as an IOB2 tag of `target` (a corpus's tags; `None`: keep the types).
    pub fn resolve(&self, labels: &[String], target: Option<&[String]>) -> anyhow::Result<Mapped> {
        let types: Option<BTreeSet<&str>> =
            target.map(|t| t.iter().filter_map(|l| tag_type(l)).collect());
        let mut tags = Vec::with_capacity(labels.len());
        let mut renamed = BTreeSet::new();
        let mut unmapped = Vec::new();
        for label in labels {
            match self.one(label, types.as_ref(), &mut renamed) {
                Some(tag) => tags.push(tag),
                None => unmapped.push(label.clone()),
            }
        }
        if !unmapped.is_empty() {
            let target_text = match target {
                Some(t) => {
                    let set: BTreeSet<&String> = t.iter().collect();
                    set.into_iter().cloned().collect::<Vec<_>>().join(" ")
                }
                None => "(none: free text keeps the model's types)".into(),
            };
            let example = unmapped
                .first()
                .map(|l| match prefixed(l) {
                    Some((_, ty)) => format!("{ty}=O"),
                    None => format!("{l}=B-TYPE"),
                })
                .unwrap_or_default();
            bail!(
                "the model's labels do not match the corpus's: no mapping for {}\n  model labels:  \
                 {}\n  corpus labels: {target_text}\ngive a map with --label-map FILE (a TOML \
                 file with [labels] and [types] tables, see docs/MODELS.md) or --map-label \
                 {example}",
                unmapped.join(", "),
                labels.join(" "),
            );
        }
        Ok(Mapped { tags, renamed })
    }

    fn one(
        &self,
        label: &str,
        types: Option<&BTreeSet<&str>>,
        renamed: &mut BTreeSet<(String, String)>,
    ) -> Option<String> {
        if let Some(to) = self.labels.get(label) {
            let ok = to == "O" || tag_type(to).is_some_and(|t| types.is_none_or(|s| s.contains(t)));
            return ok.then(|| to.clone());
        }
        if label == "O" {
            return Some("O".into());
        }
        let (begin, ty) = prefixed(label)?;
        let to = if let Some(to) = self.types.get(ty) {
            if to == "O" {
                return Some("O".into());
            }
            if types.is_some_and(|s| !s.contains(to.as_str())) {
                return None;
            }
            to.clone()
        } else {
            match types {
                None => ty.to_string(),
                Some(s) if s.contains(ty) => ty.to_string(),
                Some(s) => KLUE_PAIRS
                    .iter()
                    .find_map(|&(a, b)| {
                        if a == ty && s.contains(b) {
                            Some(b)
                        } else if b == ty && s.contains(a) {
                            Some(a)
                        } else {
                            None
                        }
                    })?
                    .to_string(),
            }
        };
        if to != ty {
            renamed.insert((ty.to_string(), to.clone()));
        }
        Some(format!("{}-{to}", if begin { "B" } else { "I" }))
    }
}

/// A prefixed label's (begins an entity, type): B/S/U begin, I/E/L continue.
fn prefixed(label: &str) -> Option<(bool, &str)> {
    let (head, ty) = label.split_once('-')?;
    let begin = match head {
        "B" | "S" | "U" => true,
        "I" | "E" | "L" => false,
        _ => return None,
    };
    looks_like_type(ty).then_some((begin, ty))
}

/// Whether a name can be an entity type (not empty, no spaces).
fn looks_like_type(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(char::is_whitespace) && !s.starts_with("LABEL_")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn conll_types_meet_klue_types_through_the_built_in_pairs() {
        let model = strings("O B-MISC I-MISC B-PER I-PER B-ORG I-ORG B-LOC I-LOC");
        let klue = strings("O B-PS I-PS B-LC I-LC B-OG I-OG B-DT I-DT");
        let err = LabelMap::default()
            .resolve(&model, Some(&klue))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no mapping for B-MISC, I-MISC"), "{err}");
        assert!(err.contains("model labels:  O B-MISC"), "{err}");
        assert!(err.contains("corpus labels: B-DT B-LC"), "{err}");
        assert!(err.contains("--map-label MISC=O"), "{err}");

        let mut map = LabelMap::default();
        map.add_pair("MISC=O").unwrap();
        let m = map.resolve(&model, Some(&klue)).unwrap();
        assert_eq!(
            m.tags,
            strings("O O O B-PS I-PS B-OG I-OG B-LC I-LC"),
            "MISC dropped, the rest renamed"
        );
        assert!(m.renamed.contains(&("PER".into(), "PS".into())));
        // And back: a KLUE model scored on a CoNLL-style corpus.
        let back = LabelMap::default()
            .resolve(&strings("O B-PS I-PS B-DT"), Some(&model))
            .unwrap_err()
            .to_string();
        assert!(back.contains("no mapping for B-DT"), "{back}");
        let back = LabelMap::default()
            .resolve(&strings("B-PS I-PS O"), Some(&model))
            .unwrap();
        assert_eq!(back.tags, strings("B-PER I-PER O"));
    }

    #[test]
    fn bioes_and_bilou_prefixes_become_iob2_and_numeric_labels_need_a_map() {
        let m = LabelMap::default()
            .resolve(&strings("S-PER E-PER U-LOC L-LOC O"), None)
            .unwrap();
        assert_eq!(m.tags, strings("B-PER I-PER B-LOC I-LOC O"));
        let numeric = strings("LABEL_0 LABEL_1 LABEL_2");
        let err = LabelMap::default()
            .resolve(&numeric, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("LABEL_0, LABEL_1, LABEL_2"), "{err}");
        assert!(err.contains("--map-label LABEL_0=B-TYPE"), "{err}");
        let mut map = LabelMap::default();
        for p in ["LABEL_0=O", "LABEL_1=B-PS", "LABEL_2=I-PS"] {
            map.add_pair(p).unwrap();
        }
        assert_eq!(map.labels.len(), 3);
        assert_eq!(
            map.resolve(&numeric, Some(&strings("O B-PS I-PS")))
                .unwrap()
                .tags,
            strings("O B-PS I-PS")
        );
        // A label mapped to a type the corpus lacks is still unmapped.
        let err = map
            .resolve(&numeric, Some(&strings("O B-PER")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no mapping for LABEL_1, LABEL_2"), "{err}");
    }

    #[test]
    fn map_files_are_read_strictly() {
        let dir = std::env::temp_dir().join(format!("nerlab-labelmap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.toml");
        std::fs::write(
            &good,
            "[labels]\nLABEL_1 = \"B-PS\"\n[types]\nPER = \"PS\"\n",
        )
        .unwrap();
        let map = LabelMap::from_file(&good).unwrap();
        assert_eq!(map.labels["LABEL_1"], "B-PS");
        assert_eq!(map.types["PER"], "PS");
        let bad = dir.join("bad.toml");
        std::fs::write(&bad, "[label]\nLABEL_1 = \"B-PS\"\n").unwrap();
        let err = LabelMap::from_file(&bad).unwrap_err().to_string();
        assert!(err.contains("bad.toml: not a label map"), "{err}");
        assert!(LabelMap::default().add_pair("PER").is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
