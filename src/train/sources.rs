//! Where corpora and models come from: local files and folders, the built-in demo corpus, named
//! presets, and the Hugging Face Hub (`hf:`), resolved to a [`Corpus`] or a model folder.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::config::RunConfig;
use crate::data::hub::{Hub, RepoRef};
use crate::data::{self, Corpus, Format, ReadOptions};

/// The offline demo corpus: original Korean sentences with KLUE's six types, written for nerlab
/// (CC0; see `assets/demo/LICENSE.md`). Every fifth sentence is dev, the rest train.
pub const DEMO_SENTENCES: &str = include_str!("../../assets/demo/sentences.txt");

/// A built-in corpus by name: `demo/train`, `demo/dev`, `demo/all`.
pub fn builtin(name: &str) -> anyhow::Result<Corpus> {
    let path = Path::new("assets/demo/sentences.txt");
    let all = data::inline::corpus_from_lines(
        DEMO_SENTENCES.lines().enumerate().map(|(i, l)| (i + 1, l)),
        path,
        "demo",
    )?;
    let keep: Box<dyn Fn(usize) -> bool> = match name {
        "demo/train" => Box::new(|i| i % 5 != 4),
        "demo/dev" => Box::new(|i| i % 5 == 4),
        "demo/all" | "demo" => Box::new(|_| true),
        other => {
            anyhow::bail!("unknown built-in corpus {other:?} (demo/train, demo/dev, demo/all)")
        }
    };
    let indices: Vec<usize> = (0..all.len()).filter(|&i| keep(i)).collect();
    let mut c = all.subset(&indices);
    c.path = PathBuf::from(format!("builtin:{name}"));
    Ok(c)
}

/// A dataset on the Hub: repository, config and split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubDataset {
    pub repo: String,
    pub config: String,
    pub split: String,
}

/// The parsed form of a data source string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataSource {
    Builtin(String),
    Hub(HubDataset),
    Path(PathBuf),
}

fn hub_split(split: &str) -> String {
    match split {
        "dev" | "valid" => "validation".into(),
        other => other.into(),
    }
}

/// Parses `builtin:demo/train`, `klue-ner/train`, `wikiann:ko/dev`, `hf:repo:config/split` or a path.
pub fn parse_data_source(s: &str) -> Result<DataSource, String> {
    if let Some(name) = s.strip_prefix("builtin:") {
        return Ok(DataSource::Builtin(name.into()));
    }
    // `klue-ner/<split>` names the Hub's KLUE-NER only for a split name: run from a folder that
    // has a `klue-ner/` directory (the shared corpora), `klue-ner/<file>` is that file.
    if let Some(split) = s.strip_prefix("klue-ner/")
        && matches!(split, "train" | "validation" | "dev" | "valid" | "test")
    {
        return Ok(DataSource::Hub(HubDataset {
            repo: "klue/klue".into(),
            config: "ner".into(),
            split: hub_split(split),
        }));
    }
    if let Some(rest) = s.strip_prefix("wikiann:") {
        let (lang, split) = rest
            .split_once('/')
            .ok_or("wikiann sources look like wikiann:<lang>/<split>")?;
        return Ok(DataSource::Hub(HubDataset {
            repo: "unimelb-nlp/wikiann".into(),
            config: lang.into(),
            split: hub_split(split),
        }));
    }
    if let Some(rest) = s.strip_prefix("hf:") {
        let (repo, cs) = rest
            .rsplit_once(':')
            .ok_or("Hub datasets look like hf:<repo>:<config>/<split>")?;
        let (config, split) = cs
            .split_once('/')
            .ok_or("Hub datasets look like hf:<repo>:<config>/<split>")?;
        return Ok(DataSource::Hub(HubDataset {
            repo: repo.into(),
            config: config.into(),
            split: hub_split(split),
        }));
    }
    Ok(DataSource::Path(PathBuf::from(s)))
}

/// Why a data source cannot work, checked without reading it (for launchers).
pub fn check_data_source(s: &str) -> Option<String> {
    let s = match split_range(s) {
        Ok((source, _)) => source,
        Err(e) => return Some(e),
    };
    match parse_data_source(s) {
        Err(e) => Some(format!("{s}: {e}")),
        Ok(DataSource::Path(p)) if !p.exists() => {
            Some(format!("{}: no such file or folder", p.display()))
        }
        Ok(DataSource::Builtin(name))
            if !["demo/train", "demo/dev", "demo/all", "demo"].contains(&name.as_str()) =>
        {
            Some(format!("{s}: unknown built-in corpus"))
        }
        _ => None,
    }
}

/// Sentences `start..end` of a corpus (0-based, end excluded; no end: to the last), written after
/// any data source as `[start:end]`: `dev-ko.tsv[:1000]`, `klue-ner-v1.1_dev.tsv[4000:5000]`. A
/// fixed rule in a configuration, so a subset is the same wherever the file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentenceRange {
    pub start: usize,
    pub end: Option<usize>,
}

impl SentenceRange {
    /// The indices it keeps of a corpus of `len` sentences; a range that reaches past the end is
    /// refused (a subset silently smaller than written would change an experiment unnoticed).
    pub fn indices(&self, len: usize) -> Result<std::ops::Range<usize>, String> {
        let end = self.end.unwrap_or(len);
        if end > len || self.start >= end {
            return Err(format!(
                "sentences [{}:{}] asked of a corpus of {len} sentences",
                self.start,
                self.end.map_or(String::new(), |e| e.to_string())
            ));
        }
        Ok(self.start..end)
    }
}

/// Splits a trailing `[start:end]` off a data source: the source itself and its range. Brackets
/// that do not hold `digits:digits` are part of the name (a file may be called `a[1].tsv`).
pub fn split_range(s: &str) -> Result<(&str, Option<SentenceRange>), String> {
    let Some(body) = s.strip_suffix(']') else {
        return Ok((s, None));
    };
    let Some(open) = body.rfind('[') else {
        return Ok((s, None));
    };
    let inside = &body[open + 1..];
    let Some((a, b)) = inside.split_once(':') else {
        return Ok((s, None));
    };
    let digits = |x: &str| x.chars().all(|c| c.is_ascii_digit());
    if !digits(a) || !digits(b) {
        // Python's slices (`[-100:]`, `[::2]`) look like a range but are not one nerlab reads:
        // say so, rather than look for a file of that name and report it missing.
        let slice_like = inside
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ':' | '-' | '+' | ' '));
        if slice_like && !std::path::Path::new(s).exists() {
            return Err(format!(
                "{s}: [{inside}] is not a sentence range nerlab reads: only [start:end] with \
                 whole numbers from 0, either one left out (e.g. [:100], [100:200], [4000:])"
            ));
        }
        return Ok((s, None));
    }
    let number = |x: &str| -> Result<Option<usize>, String> {
        if x.is_empty() {
            return Ok(None);
        }
        x.parse()
            .map(Some)
            .map_err(|_| format!("{s}: {x} is not a sentence number"))
    };
    let (start, end) = (number(a)?.unwrap_or(0), number(b)?);
    if end.is_some_and(|e| e <= start) {
        return Err(format!("{s}: the range [{inside}] holds no sentence"));
    }
    Ok((&body[..open], Some(SentenceRange { start, end })))
}

/// The local file or folder a data source reads, if it reads one (its range taken off).
pub fn local_path(s: &str) -> Option<PathBuf> {
    let (source, _) = split_range(s).ok()?;
    match parse_data_source(source) {
        Ok(DataSource::Path(p)) => Some(p),
        _ => None,
    }
}

/// Reads a corpus from any source, with its sentence range (`[start:end]`) when it has one.
pub fn load_corpus(s: &str, format: Option<Format>, hub: &Hub) -> anyhow::Result<Corpus> {
    let (source, range) = split_range(s).map_err(anyhow::Error::msg)?;
    let corpus = load_whole(source, format, hub)?;
    let Some(range) = range else {
        return Ok(corpus);
    };
    let keep: Vec<usize> = range
        .indices(corpus.len())
        .map_err(|e| anyhow::anyhow!("{s}: {e}"))?
        .collect();
    Ok(corpus.subset(&keep))
}

fn load_whole(s: &str, format: Option<Format>, hub: &Hub) -> anyhow::Result<Corpus> {
    match parse_data_source(s).map_err(anyhow::Error::msg)? {
        DataSource::Builtin(name) => builtin(&name),
        DataSource::Path(p) => Ok(data::read(
            &p,
            &ReadOptions {
                format,
                ..ReadOptions::default()
            },
        )?),
        DataSource::Hub(d) => {
            let repo = RepoRef::dataset(&d.repo);
            let files = hub.dataset_split(&repo, &d.config, &d.split)?;
            let lang = (d.repo == "unimelb-nlp/wikiann")
                .then_some(d.config.as_str())
                .or((d.repo == "klue/klue").then_some("ko"));
            data::parquet::read_parquet(&files, s, lang).with_context(|| format!("reading {s}"))
        }
    }
}

/// Model presets: short names for the encoders a Korean NER researcher reaches for.
pub const MODEL_PRESETS: &[(&str, &str, &str)] = &[
    (
        "koelectra-base-v3",
        "hf:monologg/koelectra-base-v3-discriminator",
        "KoELECTRA-base v3 (Korean, ELECTRA)",
    ),
    (
        "klue-roberta-base",
        "hf:klue/roberta-base",
        "KLUE-RoBERTa base (Korean)",
    ),
    (
        "klue-roberta-large",
        "hf:klue/roberta-large",
        "KLUE-RoBERTa large (Korean)",
    ),
    (
        "klue-bert-base",
        "hf:klue/bert-base",
        "KLUE-BERT base (Korean)",
    ),
    (
        "xlmr-base",
        "hf:FacebookAI/xlm-roberta-base",
        "XLM-R base (100 languages)",
    ),
    (
        "xlmr-large",
        "hf:FacebookAI/xlm-roberta-large",
        "XLM-R large (100 languages)",
    ),
    (
        "mbert",
        "hf:google-bert/bert-base-multilingual-cased",
        "multilingual BERT, cased",
    ),
    (
        "e5-small",
        "hf:intfloat/multilingual-e5-small",
        "multilingual-e5-small (BERT, XLM-R vocabulary)",
    ),
    (
        "minilm",
        "hf:sentence-transformers/all-MiniLM-L6-v2",
        "all-MiniLM-L6-v2 (English)",
    ),
];

/// What a model source resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    Char,
    Dir(PathBuf),
    Hub(String),
}

/// Resolves presets: `e5-small` and `minilm` use the folders `obtain.sh` fills when present.
pub fn parse_model_source(s: &str) -> ModelSource {
    if s == "char" {
        return ModelSource::Char;
    }
    let local = match s {
        "e5-small" => Some("multilingual-e5-small"),
        "minilm" => Some("all-MiniLM-L6-v2"),
        _ => None,
    };
    if let Some(name) = local {
        let dir = crate::models_dir().join(name);
        if dir.join("config.json").exists() {
            return ModelSource::Dir(dir);
        }
    }
    if let Some((_, hub, _)) = MODEL_PRESETS.iter().find(|(name, _, _)| *name == s) {
        return ModelSource::Hub(hub.trim_start_matches("hf:").into());
    }
    match s.strip_prefix("hf:") {
        Some(repo) => ModelSource::Hub(repo.into()),
        None => ModelSource::Dir(PathBuf::from(s)),
    }
}

pub fn check_model_source(s: &str) -> Option<String> {
    match parse_model_source(s) {
        ModelSource::Dir(d) if !d.join("config.json").exists() => Some(format!(
            "{}: not a model folder (no config.json); use char, a folder, hf:<repo> or a preset",
            d.display()
        )),
        _ => None,
    }
}

/// The folder of a pretrained model (downloading from the Hub if needed), or `None` for `char`.
pub fn resolve_model(s: &str, hub: &Hub) -> anyhow::Result<Option<PathBuf>> {
    match parse_model_source(s) {
        ModelSource::Char => Ok(None),
        ModelSource::Dir(d) => Ok(Some(d)),
        ModelSource::Hub(repo) => Ok(Some(hub.model_dir(&RepoRef::model(&repo))?)),
    }
}

/// MANER's batch size. The paper's value could not be read here (docs/METHODS.md says what was
/// checked); 8 keeps 100 sentences at 13 steps an epoch.
const MANER_BATCH: usize = 8;

/// Named run presets for `--preset`.
pub const RUN_PRESETS: &[(&str, &str)] = &[
    (
        "demo",
        "the character model on the built-in Korean demo corpus (offline, under 2 minutes on 2 cores)",
    ),
    (
        "klue-koelectra",
        "KoELECTRA-base v3 on KLUE-NER from the Hub",
    ),
    (
        "wikiann-ko-e5",
        "multilingual-e5-small on WikiANN-ko (the shared copy in ../shared/data)",
    ),
    (
        "klue-koelectra-bilstm-crf",
        "seed 003's recipe: KoELECTRA-base v3 + BiLSTM + CRF with FGM, R-Drop and multi-sample dropout on KLUE-NER (Hub)",
    ),
    (
        "maner",
        "MANER as Sonkar et al. train it: XLM-R large, a mask before every word, 100 WikiANN sentences (Hub)",
    ),
    (
        "maner-cpu",
        "MANER sized for a CPU: multilingual-e5-small, 100 sentences of the shared WikiANN-yo",
    ),
];

/// Applies a preset to a configuration (flags given afterwards still override it).
pub fn apply_preset(name: &str, c: &mut RunConfig) -> anyhow::Result<()> {
    match name {
        "demo" => {
            c.data.train = vec!["builtin:demo/train".into()];
            c.data.dev = Some("builtin:demo/dev".into());
            c.model.source = "char".into();
            c.model.head = crate::model::ner::HeadKind::Crf;
            // The corpus is small: dev F1 peaks around epoch 7 and then drifts down, so stop
            // after 5 evaluations without a new best.
            c.train.epochs = 20;
            c.train.patience = 5;
            c.train.batch_size = 16;
            c.train.lr = 2e-3;
            c.train.weight_decay = 0.01;
            c.train.warmup_ratio = 0.05;
            c.train.eval_every = 0;
            c.train.checkpoint_every = 100;
        }
        "klue-koelectra" => {
            c.data.train = vec!["klue-ner/train".into()];
            c.data.dev = Some("klue-ner/dev".into());
            c.model.source = "koelectra-base-v3".into();
            c.train.epochs = 3;
            c.train.batch_size = 32;
            c.train.lr = 5e-5;
            c.train.warmup_ratio = 0.1;
        }
        "wikiann-ko-e5" => {
            let shared = crate::shared_dir().join("data/wikiann/xtreme-panx");
            c.data.train = vec![shared.join("train-ko.tsv").to_string_lossy().into_owned()];
            c.data.dev = Some(shared.join("dev-ko.tsv").to_string_lossy().into_owned());
            c.data.max_sentences = 2000;
            c.model.source = "e5-small".into();
            c.train.epochs = 3;
            c.train.batch_size = 16;
            c.train.lr = 5e-5;
            c.train.weight_decay = 0.0;
            c.train.bucket = false;
        }
        "klue-koelectra-bilstm-crf" => {
            use crate::model::ner::{HeadKind, MsdAverage};
            c.data.train = vec!["klue-ner/train".into()];
            c.data.dev = Some("klue-ner/dev".into());
            c.model.source = "koelectra-base-v3".into();
            c.model.head = HeadKind::BilstmCrf;
            c.model.lstm_hidden = 256;
            c.model.msd_samples = 5;
            c.model.msd_average = MsdAverage::Logits;
            c.model.max_length = 128;
            // Seed 003 gives every character of KLUE its own token.
            c.model.char_units = crate::model::align::CharUnits::Characters;
            c.train.fgm_epsilon = 0.5;
            c.train.rdrop_alpha = 0.5;
            c.train.rdrop_kl = super::config::RdropKl::Sum;
            c.train.lr = 3e-5;
            c.train.head_lr = Some(1e-3);
            c.train.warmup_ratio = 0.1;
            c.train.clip_norm = 1.0;
            c.train.batch_size = 32;
            c.train.epochs = 3;
        }
        "maner" | "maner-cpu" => {
            c.model.marker = crate::model::align::Marker::Mask;
            c.model.head = crate::model::ner::HeadKind::Softmax;
            c.data.max_sentences = 100;
            c.train.eval_every = 0;
            if name == "maner" {
                c.data.train = vec!["wikiann:yo/train".into()];
                c.data.dev = Some("wikiann:yo/dev".into());
                c.model.source = "xlmr-large".into();
                c.train.lr = 5e-6;
                c.train.epochs = 30;
                c.train.batch_size = MANER_BATCH;
            } else {
                let shared = crate::shared_dir().join("data/wikiann/xtreme-panx");
                c.data.train = vec![shared.join("train-yo.tsv").to_string_lossy().into_owned()];
                c.data.dev = Some(shared.join("dev-yo.tsv").to_string_lossy().into_owned());
                c.model.source = "e5-small".into();
                c.train.lr = 5e-5;
                c.train.epochs = 10;
                c.train.batch_size = MANER_BATCH;
                c.train.bucket = false;
            }
        }
        other => {
            let names: Vec<&str> = RUN_PRESETS.iter().map(|(n, _)| *n).collect();
            let nearest = names
                .iter()
                .map(|n| (strsim::levenshtein(n, other), *n))
                .min()
                .filter(|(d, _)| *d <= (other.chars().count() / 3).max(2));
            match nearest {
                Some((_, n)) => anyhow::bail!("unknown preset {other:?}; did you mean {n}?"),
                None => anyhow::bail!(
                    "unknown preset {other:?}: the presets are {}",
                    names.join(", ")
                ),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sources() {
        assert_eq!(
            parse_data_source("wikiann:ko/dev"),
            Ok(DataSource::Hub(HubDataset {
                repo: "unimelb-nlp/wikiann".into(),
                config: "ko".into(),
                split: "validation".into()
            }))
        );
        assert_eq!(
            parse_data_source("hf:org/ds:cfg/train"),
            Ok(DataSource::Hub(HubDataset {
                repo: "org/ds".into(),
                config: "cfg".into(),
                split: "train".into()
            }))
        );
        assert_eq!(
            parse_data_source("x.tsv"),
            Ok(DataSource::Path("x.tsv".into()))
        );
        assert!(parse_data_source("hf:nope").is_err());
        assert!(matches!(
            parse_data_source("klue-ner/dev"),
            Ok(DataSource::Hub(HubDataset { split, .. })) if split == "validation"
        ));
        assert_eq!(
            parse_data_source("klue-ner/klue-ner-v1.1_dev.tsv"),
            Ok(DataSource::Path(PathBuf::from(
                "klue-ner/klue-ner-v1.1_dev.tsv"
            )))
        );
        assert_eq!(
            parse_model_source("koelectra-base-v3"),
            ModelSource::Hub("monologg/koelectra-base-v3-discriminator".into())
        );
        assert_eq!(
            parse_model_source("hf:a/b@r"),
            ModelSource::Hub("a/b@r".into())
        );
        assert_eq!(parse_model_source("char"), ModelSource::Char);
        assert!(check_model_source("/nonexistent").is_some());
        assert!(check_data_source("/nonexistent.tsv").is_some());
    }

    #[test]
    fn a_range_after_a_source_takes_those_sentences() {
        let r = |start, end| Some(SentenceRange { start, end });
        assert_eq!(split_range("d.tsv[:1000]"), Ok(("d.tsv", r(0, Some(1000)))));
        assert_eq!(split_range("d.tsv[4000:]"), Ok(("d.tsv", r(4000, None))));
        assert_eq!(
            split_range("wikiann:ko/dev[5:9]"),
            Ok(("wikiann:ko/dev", r(5, Some(9))))
        );
        // Brackets that are not a range belong to the name.
        assert_eq!(split_range("a[1].tsv"), Ok(("a[1].tsv", None)));
        assert_eq!(split_range("a[x:y]"), Ok(("a[x:y]", None)));
        for python in ["d.tsv[-100:]", "d.tsv[::2]", "d.tsv[1:9:2]"] {
            let e = split_range(python).unwrap_err();
            assert!(e.contains("is not a sentence range nerlab reads"), "{e}");
        }
        assert!(
            split_range("d.tsv[9:5]")
                .unwrap_err()
                .contains("holds no sentence")
        );
        assert_eq!(local_path("d.tsv[:3]"), Some(PathBuf::from("d.tsv")));
        assert_eq!(local_path("builtin:demo/dev[:3]"), None);

        let hub = Hub::from_env(true);
        let all = load_corpus("builtin:demo/all", None, &hub).unwrap();
        let some = load_corpus("builtin:demo/all[10:20]", None, &hub).unwrap();
        assert_eq!(some.sentences, all.sentences[10..20]);
        let tail = load_corpus("builtin:demo/all[300:]", None, &hub).unwrap();
        assert_eq!(tail.sentences, all.sentences[300..]);
        let past = format!("builtin:demo/all[:{}]", all.len() + 1);
        let e = load_corpus(&past, None, &hub).unwrap_err().to_string();
        assert!(
            e.contains(&format!("a corpus of {} sentences", all.len())),
            "{e}"
        );
        assert!(check_data_source("builtin:demo/all[3:1]").is_some());
        assert!(check_data_source("builtin:demo/all[1:3]").is_none());
    }

    #[test]
    fn demo_corpus_splits_and_reads() {
        let train = builtin("demo/train").unwrap();
        let dev = builtin("demo/dev").unwrap();
        let all = builtin("demo/all").unwrap();
        assert_eq!(train.len() + dev.len(), all.len());
        assert!(all.len() >= 300, "{} sentences", all.len());
        assert_eq!(
            all.types().into_iter().collect::<Vec<_>>(),
            ["DT", "LC", "OG", "PS", "QT", "TI"]
        );
    }
}
