//! Packing an experiment's finished runs into small files that travel (a commit, a copy off a
//! cluster) and unpacking them into run folders elsewhere, where `run` counts them as done and
//! `report` reads them as if they had been trained there.
//!
//! One file per run, `<dir>/<run name>.json.gz`: every file of the run folder that the report and
//! the workbench read (configuration, status, metrics, report, calibration, samples), and its dev
//! predictions as tags only, run-length encoded, with a fingerprint of the dev corpus's tokens.
//! No model, no checkpoint and no corpus text goes in: a packed KLUE run is some tens of KB.
//! Unpacking rebuilds the predictions file in the corpus's own format from the gold dev corpus
//! (which must be the one the run was scored on: the fingerprint says so) and the packed tags.
//!
//! A stage run that later points start from keeps its model only in its run folder, so it is
//! unpacked only when every point that starts from it is packed too; otherwise `run` trains it
//! again (the same configuration and seed give the same model).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::plan::{Plan, Point};
use super::runner::{PointState, state_of};
use crate::data::hub::Hub;
use crate::data::{Corpus, Format};
use crate::train::run_dir::{RunDir, files, write_atomic};
use crate::train::sources::load_corpus;

/// The version of the packed layout; unpacking refuses others.
const VERSION: u32 = 1;
/// A packed run's file name: `<run name>` + this.
pub const EXTENSION: &str = ".json.gz";

/// One run, packed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PackedRun {
    nerlab_pack: u32,
    run: String,
    /// File name -> contents (all text).
    files: BTreeMap<String, String>,
    dev: Option<PackedPredictions>,
}

/// Dev predictions without the corpus: tags and what to check the gold against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PackedPredictions {
    /// The dev corpus as the run's configuration names it.
    source: String,
    sentences: usize,
    /// FNV-1a of every token, in order ([`fingerprint`]).
    tokens: String,
    /// One entry per sentence: its tags, run-length encoded ([`encode_tags`]).
    tags: Vec<String>,
}

/// The files of a run folder that are packed: everything but models, checkpoints, the lock and
/// the predictions (packed apart, without the corpus text).
fn packed_file(name: &str) -> bool {
    [
        files::CONFIG,
        files::STATUS,
        files::METRICS,
        files::REPORT,
        files::DEV_CALIBRATION,
        files::SAMPLES,
    ]
    .contains(&name)
        || name
            .strip_prefix("report-stage")
            .and_then(|r| r.strip_suffix(".json"))
            .is_some_and(|n| n.parse::<usize>().is_ok())
}

/// FNV-1a (64 bits) over the tokens, with separators between tokens and sentences.
fn fingerprint(corpus: &Corpus) -> String {
    let mut h = crate::hash::Fnv1a::default();
    for s in &corpus.sentences {
        for t in &s.tokens {
            h.write(t.as_bytes());
            h.write(&[0x1f]);
        }
        h.write(&[0x1e]);
    }
    format!("{:016x}", h.finish())
}

/// `O O O B-PS I-PS O` -> `O*3 B-PS I-PS O`.
fn encode_tags(tags: &[String]) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut i = 0;
    while i < tags.len() {
        let t = &tags[i];
        anyhow::ensure!(
            !t.is_empty() && !t.contains('*') && !t.contains(char::is_whitespace),
            "the tag {t:?} cannot be packed (empty, or with a space or '*')"
        );
        let n = tags[i..].iter().take_while(|u| *u == t).count();
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(t);
        if n > 1 {
            out.push_str(&format!("*{n}"));
        }
        i += n;
    }
    Ok(out)
}

fn decode_tags(s: &str) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for group in s.split_whitespace() {
        match group.split_once('*') {
            Some((t, n)) => {
                let n: usize = n
                    .parse()
                    .with_context(|| format!("{group:?} is not TAG*COUNT"))?;
                out.extend(std::iter::repeat_n(t.to_string(), n));
            }
            None => out.push(group.to_string()),
        }
    }
    Ok(out)
}

/// Where a plan's packed runs go by default: `results/<experiment name>/` beside the experiment
/// file.
pub fn default_dir(file: &Path, plan: &Plan) -> PathBuf {
    file.parent()
        .unwrap_or(Path::new("."))
        .join("results")
        .join(&plan.name)
}

/// What packing did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Packed {
    /// Runs written (new or changed).
    pub written: Vec<String>,
    /// Runs whose packed file was already the same.
    pub unchanged: usize,
    /// Points not done (nothing to pack).
    pub not_done: usize,
    /// Bytes of every packed file of the plan now in the folder.
    pub bytes: u64,
    /// Done runs that could not be packed, with why (the others are packed all the same).
    pub failed: Vec<(String, String)>,
}

/// Packs every done point of `plan` into `dir`. A run that cannot be packed is listed in
/// [`Packed::failed`] and the others are packed all the same.
pub fn pack(plan: &Plan, dir: &Path) -> anyhow::Result<Packed> {
    let mut packer = Packer::new(dir)?;
    let mut out = Packed::default();
    for point in &plan.points {
        if state_of(point) != PointState::Done {
            out.not_done += 1;
            continue;
        }
        match packer.pack(point) {
            Ok(true) => out.written.push(point.name.clone()),
            Ok(false) => out.unchanged += 1,
            Err(e) => {
                out.failed.push((point.name.clone(), format!("{e:#}")));
                continue;
            }
        }
        out.bytes += std::fs::metadata(packer.path(point))
            .map(|m| m.len())
            .unwrap_or(0);
    }
    Ok(out)
}

/// Packs runs one at a time into one folder (`experiment run --pack` packs each as it ends),
/// reading each gold dev corpus once.
pub struct Packer {
    dir: PathBuf,
    gold: Gold,
}

impl Packer {
    pub fn new(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            gold: Gold::default(),
        })
    }

    /// Where `point` is packed.
    pub fn path(&self, point: &Point) -> PathBuf {
        self.dir.join(format!("{}{EXTENSION}", point.name))
    }

    /// Packs the done run of `point`: true when its file was written, false when it was already
    /// the same.
    pub fn pack(&mut self, point: &Point) -> anyhow::Result<bool> {
        anyhow::ensure!(
            state_of(point) == PointState::Done,
            "{} is not done",
            point.dir().display()
        );
        let path = self.path(point);
        let packed = pack_run(point, &mut self.gold)
            .with_context(|| format!("packing the run {}", point.dir().display()))?;
        let same = std::fs::read(&path)
            .ok()
            .and_then(|old| gunzip(&old).ok())
            .and_then(|old| serde_json::from_slice::<PackedRun>(&old).ok())
            .is_some_and(|old| old == packed);
        if !same {
            write_atomic(&path, &gzip(&serde_json::to_vec(&packed)?)?)?;
        }
        Ok(!same)
    }
}

fn pack_run(point: &Point, gold: &mut Gold) -> anyhow::Result<PackedRun> {
    let run = RunDir::open(&point.dir())?;
    let mut packed_files = BTreeMap::new();
    for entry in std::fs::read_dir(&run.path)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type()?.is_file() && packed_file(&name) {
            let text = std::fs::read_to_string(entry.path())
                .with_context(|| format!("reading {}", entry.path().display()))?;
            packed_files.insert(name, text);
        }
    }
    let dev = match (&point.config.data.dev, run.dev_predictions()) {
        (Some(source), Some(pred_file)) => {
            let corpus = gold.get(source, point)?;
            let pred = crate::data::read(
                &pred_file,
                &crate::data::ReadOptions::for_predictions(corpus),
            )?;
            corpus.check_same_tokens(&pred)?;
            Some(PackedPredictions {
                source: source.clone(),
                sentences: corpus.len(),
                tokens: fingerprint(corpus),
                tags: pred
                    .sentences
                    .iter()
                    .map(|s| encode_tags(&s.tags))
                    .collect::<anyhow::Result<_>>()?,
            })
        }
        _ => None,
    };
    Ok(PackedRun {
        nerlab_pack: VERSION,
        run: point.name.clone(),
        files: packed_files,
        dev,
    })
}

/// Gold dev corpora, each read once (by source and format), as the point's own configuration
/// reads them (offline or not, as it trained).
#[derive(Default)]
struct Gold(Vec<((String, Option<Format>), Corpus)>);

impl Gold {
    fn get(&mut self, source: &str, point: &Point) -> anyhow::Result<&Corpus> {
        let key = (source.to_string(), point.config.data.format);
        let at = match self.0.iter().position(|(k, _)| *k == key) {
            Some(at) => at,
            None => {
                let hub = Hub::from_env(point.config.offline);
                let corpus = load_corpus(source, key.1, &hub)
                    .with_context(|| format!("reading the dev corpus {source}"))?;
                self.0.push((key, corpus));
                self.0.len() - 1
            }
        };
        Ok(&self.0[at].1)
    }
}

/// What unpacking did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Unpacked {
    /// Runs written into their run folders.
    pub written: Vec<String>,
    /// Packed runs whose run folder already exists (left as they are).
    pub kept: usize,
    /// Stage runs not unpacked because a point that starts from them is neither done nor
    /// packed: `run` trains them again, with their model.
    pub stages_to_train: Vec<String>,
    /// Points with no packed file.
    pub missing: usize,
}

/// Unpacks every packed run of `plan` found in `dir` whose run folder does not exist yet.
pub fn unpack(plan: &Plan, dir: &Path) -> anyhow::Result<Unpacked> {
    anyhow::ensure!(
        dir.is_dir(),
        "{} does not exist: nothing packed there (`nerlab experiment pack` writes it)",
        dir.display()
    );
    let mut gold = Gold::default();
    let packed_path = |p: &Point| dir.join(format!("{}{EXTENSION}", p.name));
    let mut out = Unpacked::default();
    // Last point first: a stage's dependants come after it in the plan, so by the time a stage
    // is reached it is known whether every point that starts from it is done or now unpacked.
    let mut done: Vec<bool> = plan
        .points
        .iter()
        .map(|p| state_of(p) == PointState::Done)
        .collect();
    for (i, point) in plan.points.iter().enumerate().rev() {
        let path = packed_path(point);
        if !path.exists() {
            out.missing += 1;
            continue;
        }
        // A folder left by a start killed before it wrote its configuration holds nothing: the
        // packed run replaces it (kept, `run` would train the point again).
        if point.dir().exists() && !RunDir::remove_if_no_run(&point.dir())? {
            out.kept += 1;
            continue;
        }
        let stranded = plan
            .points
            .iter()
            .enumerate()
            .any(|(j, q)| q.needs == Some(i) && !done[j]);
        if stranded {
            out.stages_to_train.push(point.name.clone());
            continue;
        }
        unpack_run(point, &path, &mut gold)
            .with_context(|| format!("unpacking {}", path.display()))?;
        done[i] = true;
        out.written.push(point.name.clone());
    }
    out.written.reverse();
    out.stages_to_train.reverse();
    Ok(out)
}

fn unpack_run(point: &Point, path: &Path, gold: &mut Gold) -> anyhow::Result<()> {
    let bytes = std::fs::read(path)?;
    let packed: PackedRun = serde_json::from_slice(&gunzip(&bytes)?).context("not a packed run")?;
    anyhow::ensure!(
        packed.nerlab_pack == VERSION,
        "packed with layout version {}; this nerlab reads version {VERSION}",
        packed.nerlab_pack
    );
    anyhow::ensure!(
        packed.run == point.name,
        "it holds the run {}, not {}",
        packed.run,
        point.name
    );
    for name in packed.files.keys() {
        anyhow::ensure!(packed_file(name), "it holds an unexpected file {name:?}");
    }
    anyhow::ensure!(
        packed.files.contains_key(files::CONFIG) && packed.files.contains_key(files::STATUS),
        "it lacks {} or {}",
        files::CONFIG,
        files::STATUS
    );
    let tags = match &packed.dev {
        Some(dev) => {
            let corpus = gold.get(&dev.source, point)?;
            anyhow::ensure!(
                corpus.len() == dev.sentences && fingerprint(corpus) == dev.tokens,
                "the dev corpus {} is not the one this run was scored on ({} sentences with \
                 token fingerprint {}; packed: {} sentences, {})",
                dev.source,
                corpus.len(),
                fingerprint(corpus),
                dev.sentences,
                dev.tokens
            );
            let tags: Vec<Vec<String>> = dev
                .tags
                .iter()
                .map(|t| decode_tags(t))
                .collect::<anyhow::Result<_>>()?;
            anyhow::ensure!(
                tags.len() == corpus.len(),
                "it holds tags for {} dev sentences, the corpus has {}",
                tags.len(),
                corpus.len()
            );
            for (n, (s, t)) in corpus.sentences.iter().zip(&tags).enumerate() {
                anyhow::ensure!(
                    s.tokens.len() == t.len(),
                    "dev sentence {} has {} tokens but {} packed tags",
                    n + 1,
                    s.tokens.len(),
                    t.len()
                );
            }
            Some((corpus.clone(), tags))
        }
        None => None,
    };
    // Written whole into a hidden temporary folder (`nerlab runs` and the workbench skip hidden
    // folders), then renamed: an interrupted unpack leaves no half run that `run` would take for
    // an interrupted one.
    let dest = point.dir();
    let tmp = dest.with_file_name(format!(".unpacking-{}-{}", point.name, std::process::id()));
    let write = |name: &str, text: &str| -> anyhow::Result<()> {
        let f = tmp.join(name);
        std::fs::write(&f, text).with_context(|| format!("writing {}", f.display()))
    };
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
    }
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    for (name, text) in &packed.files {
        write(name, text)?;
    }
    if let Some((corpus, tags)) = tags {
        RunDir::open(&tmp)?.write_dev_predictions(&corpus, tags)?;
    }
    std::fs::rename(&tmp, &dest)
        .with_context(|| format!("renaming {} to {}", tmp.display(), dest.display()))?;
    Ok(())
}

fn gzip(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(bytes)?;
    Ok(e.finish()?)
}

fn gunzip(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .context("not gzip")?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip_through_run_length_encoding() {
        let tags: Vec<String> = ["O", "O", "O", "B-PS", "I-PS", "I-PS", "O", "B-LC"]
            .map(String::from)
            .to_vec();
        let s = encode_tags(&tags).unwrap();
        assert_eq!(s, "O*3 B-PS I-PS*2 O B-LC");
        assert_eq!(decode_tags(&s).unwrap(), tags);
        assert_eq!(encode_tags(&[]).unwrap(), "");
        assert!(decode_tags("").unwrap().is_empty());
        assert!(encode_tags(&["A B".to_string()]).is_err());
        assert!(encode_tags(&["A*2".to_string()]).is_err());
        assert!(decode_tags("O*x").is_err());
    }

    #[test]
    fn only_result_files_are_packed() {
        for name in [
            "config.toml",
            "status.json",
            "metrics.jsonl",
            "report.json",
            "report-stage1.json",
            "dev-calibration.json",
            "samples.json",
        ] {
            assert!(packed_file(name), "{name}");
        }
        for name in [
            "train.lock",
            "checkpoint.json",
            "dev-predictions.tsv",
            "report-stageX.json",
            "report.json.tmp",
        ] {
            assert!(!packed_file(name), "{name}");
        }
    }
}
