//! The Hugging Face Hub: model folders and dataset splits, fetched through `hf-hub` into the
//! standard cache (`$HF_HOME/hub`, else `~/.cache/huggingface/hub`) and read from there.
//!
//! Offline (`--offline`, or `HF_HUB_OFFLINE=1`) nothing is fetched: what is cached is used, and
//! anything missing is an error that names the repository, the file and the cache folder.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use hf_hub::{Cache, Repo, RepoType};

/// Access to the Hub and its local cache.
#[derive(Debug, Clone)]
pub struct Hub {
    pub cache_dir: PathBuf,
    pub offline: bool,
}

/// A repository on the Hub: `org/name` with an optional revision (`org/name@rev`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoRef {
    pub id: String,
    pub revision: String,
    pub dataset: bool,
}

impl RepoRef {
    pub fn model(spec: &str) -> Self {
        Self::parse(spec, false)
    }

    pub fn dataset(spec: &str) -> Self {
        Self::parse(spec, true)
    }

    fn parse(spec: &str, dataset: bool) -> Self {
        let (id, revision) = spec.split_once('@').unwrap_or((spec, "main"));
        Self {
            id: id.to_string(),
            revision: revision.to_string(),
            dataset,
        }
    }

    fn repo(&self) -> Repo {
        let kind = if self.dataset {
            RepoType::Dataset
        } else {
            RepoType::Model
        };
        Repo::with_revision(self.id.clone(), kind, self.revision.clone())
    }
}

impl std::fmt::Display for RepoRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.dataset { "dataset " } else { "" };
        write!(f, "{kind}{}@{}", self.id, self.revision)
    }
}

impl Hub {
    /// The default cache; offline when asked or when `HF_HUB_OFFLINE` is set.
    pub fn from_env(offline: bool) -> Self {
        let env_offline = std::env::var("HF_HUB_OFFLINE")
            .is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
        Self {
            cache_dir: Cache::from_env().path().clone(),
            offline: offline || env_offline,
        }
    }

    pub fn with_cache(cache_dir: &Path, offline: bool) -> Self {
        Self {
            cache_dir: cache_dir.to_path_buf(),
            offline,
        }
    }

    fn cached(&self, repo: &RepoRef, file: &str) -> Option<PathBuf> {
        Cache::new(self.cache_dir.clone())
            .repo(repo.repo())
            .get(file)
    }

    fn api(&self) -> anyhow::Result<hf_hub::api::sync::Api> {
        Ok(hf_hub::api::sync::ApiBuilder::new()
            .with_cache_dir(self.cache_dir.clone())
            .with_progress(true)
            .build()?)
    }

    /// One file of a repository: from the cache, else downloaded (unless offline).
    pub fn file(&self, repo: &RepoRef, file: &str) -> anyhow::Result<PathBuf> {
        if let Some(p) = self.cached(repo, file) {
            return Ok(p);
        }
        if self.offline {
            bail!(
                "{repo}: {file} is not in the Hugging Face cache ({}) and nerlab is offline; \
                 run once with network access, or copy the cache from a machine that has it",
                self.cache_dir.display()
            );
        }
        self.api()?
            .repo(repo.repo())
            .get(file)
            .with_context(|| format!("downloading {file} of {repo} from the Hugging Face Hub"))
    }

    /// Whether a file exists, without failing: cached, or (online) downloadable.
    fn try_file(&self, repo: &RepoRef, file: &str) -> Option<PathBuf> {
        self.file(repo, file).ok()
    }

    /// The files of a repository: listed online, or those of the cached snapshot offline.
    pub fn list(&self, repo: &RepoRef) -> anyhow::Result<Vec<String>> {
        if self.offline {
            let folder = self.cache_dir.join(repo.repo().folder_name());
            let commit = std::fs::read_to_string(folder.join("refs").join(&repo.revision))
                .with_context(|| {
                    format!(
                        "{repo} is not in the Hugging Face cache ({}) and nerlab is offline",
                        self.cache_dir.display()
                    )
                })?;
            let snapshot = folder.join("snapshots").join(commit.trim());
            let mut files = Vec::new();
            walk(&snapshot, &snapshot, &mut files)?;
            files.sort();
            return Ok(files);
        }
        let info = self
            .api()?
            .repo(repo.repo())
            .info()
            .with_context(|| format!("listing {repo} on the Hugging Face Hub"))?;
        Ok(info.siblings.into_iter().map(|s| s.rfilename).collect())
    }

    /// A model folder (`config.json`, weights, tokenizer) in the cache, fetched as needed.
    pub fn model_dir(&self, repo: &RepoRef) -> anyhow::Result<PathBuf> {
        let config = self.file(repo, "config.json")?;
        let weights = ["model.safetensors", "pytorch_model.bin"];
        if !weights.iter().any(|w| self.try_file(repo, w).is_some()) {
            bail!(
                "{repo}: neither model.safetensors nor pytorch_model.bin could be found{}",
                offline_hint(self)
            );
        }
        if self.try_file(repo, "tokenizer.json").is_none() {
            // Older repositories (KoELECTRA) ship only a WordPiece vocabulary.
            self.file(repo, "vocab.txt")
                .with_context(|| format!("{repo}: no tokenizer.json or vocab.txt"))?;
            let _ = self.try_file(repo, "tokenizer_config.json");
        }
        Ok(config.parent().map(Path::to_path_buf).unwrap_or_default())
    }

    /// The parquet files of a dataset split: `<config>/<split>-*.parquet` (dataset repositories
    /// stored as parquet) or `<config>/<split>/*.parquet` (the Hub's parquet conversion).
    pub fn dataset_split(
        &self,
        repo: &RepoRef,
        config: &str,
        split: &str,
    ) -> anyhow::Result<Vec<PathBuf>> {
        let files = self.list(repo)?;
        let wanted: Vec<&String> = files
            .iter()
            .filter(|f| {
                f.ends_with(".parquet")
                    && (f.starts_with(&format!("{config}/{split}-"))
                        || f.starts_with(&format!("{config}/{split}/")))
            })
            .collect();
        if wanted.is_empty() {
            let splits: std::collections::BTreeSet<&str> = files
                .iter()
                .filter(|f| f.starts_with(&format!("{config}/")) && f.ends_with(".parquet"))
                .filter_map(|f| f.split('/').nth(1))
                .map(|s| s.split(['-', '.']).next().unwrap_or(s))
                .collect();
            bail!(
                "{repo}: no parquet files for config {config:?} split {split:?} (splits there: {})",
                if splits.is_empty() {
                    "none".to_string()
                } else {
                    splits.into_iter().collect::<Vec<_>>().join(", ")
                }
            );
        }
        wanted.into_iter().map(|f| self.file(repo, f)).collect()
    }
}

fn offline_hint(hub: &Hub) -> String {
    if hub.offline {
        format!(" in the cache ({}) while offline", hub.cache_dir.display())
    } else {
        String::new()
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            walk(root, &path, out)?;
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

/// Lays out files as a cached Hub snapshot (`<cache>/<kind>s--org--name/{refs,snapshots}`), as
/// `hf-hub` writes it. For tests and for preparing an offline machine from plain folders.
pub fn seed_cache(
    cache_dir: &Path,
    repo: &RepoRef,
    files: &[(&str, &Path)],
) -> anyhow::Result<PathBuf> {
    let folder = cache_dir.join(repo.repo().folder_name());
    let commit = "0000000000000000000000000000000000000000";
    std::fs::create_dir_all(folder.join("refs"))?;
    std::fs::write(folder.join("refs").join(&repo.revision), commit)?;
    let snapshot = folder.join("snapshots").join(commit);
    for (name, src) in files {
        let dest = snapshot.join(name);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(src, &dest)
            .with_context(|| format!("copying {} into the cache", src.display()))?;
    }
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_repo_specs() {
        let r = RepoRef::model("klue/roberta-base@v1");
        assert_eq!(
            (r.id.as_str(), r.revision.as_str()),
            ("klue/roberta-base", "v1")
        );
        assert_eq!(
            RepoRef::dataset("klue/klue").to_string(),
            "dataset klue/klue@main"
        );
    }

    #[test]
    fn offline_and_uncached_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("nerlab-hub-empty-{}", std::process::id()));
        let hub = Hub::with_cache(&dir, true);
        let err = hub
            .model_dir(&RepoRef::model("monologg/koelectra-base-v3-discriminator"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("config.json is not in the Hugging Face cache"),
            "{err}"
        );
        assert!(err.contains("nerlab is offline"), "{err}");
    }
}
