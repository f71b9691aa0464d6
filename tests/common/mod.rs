//! Helpers shared by integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// `../shared/data/<rel>` if the shared corpora are present; otherwise prints why the test is
/// skipped and returns `None`.
pub fn shared_data(rel: &str) -> Option<PathBuf> {
    let path = nerlab::shared_dir().join("data").join(rel);
    if path.exists() {
        Some(path)
    } else {
        skip(&format!(
            "{} is absent (the shared corpora live in ../shared/data; set NERLAB_SHARED to point elsewhere)",
            path.display()
        ));
        None
    }
}

/// A pretrained model folder from `obtain.sh` (`~/.cache/ner-models/<name>`), or `None` with the
/// reason printed.
pub fn obtained_model(name: &str) -> Option<PathBuf> {
    let dir = nerlab::models_dir().join(name);
    if dir.join("model.safetensors").exists() {
        Some(dir)
    } else {
        skip(&format!(
            "{} is absent (fetch it with ../shared/models/obtain.sh; set NERLAB_MODELS to point elsewhere)",
            dir.display()
        ));
        None
    }
}

/// `../shared/models/<name>`, or `None` with the reason printed.
pub fn shared_model(name: &str) -> Option<PathBuf> {
    let dir = nerlab::shared_dir().join("models").join(name);
    if dir.join("model.safetensors").exists() {
        Some(dir)
    } else {
        skip(&format!("{} is absent", dir.display()));
        None
    }
}

/// A fixture under `tests/fixtures`.
pub fn fixture(rel: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// Prints why a test is skipped. Written to stderr directly, not with `eprintln!`, which the test
/// harness captures (and hides) for passing tests.
pub fn skip(reason: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "skipped: {reason}");
}

/// A fresh empty directory under the system temp dir, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("nerlab-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }

    pub fn write(&self, file: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(file);
        std::fs::write(&p, bytes).expect("write temp file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
