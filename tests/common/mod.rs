//! Helpers shared by integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// `../shared/data/<rel>` if the shared corpora are present; otherwise prints why the test is
/// skipped and returns `None`.
pub fn shared_data(rel: &str) -> Option<PathBuf> {
    shared_data_all(&[rel]).and_then(|paths| paths.into_iter().next())
}

/// Every `../shared/data/<rel>` of `rels`, or `None` with one skip line naming those absent: for
/// a test that needs several corpora and must skip once, not once per corpus.
pub fn shared_data_all(rels: &[&str]) -> Option<Vec<PathBuf>> {
    let paths: Vec<PathBuf> = rels
        .iter()
        .map(|rel| nerlab::shared_dir().join("data").join(rel))
        .collect();
    let mut absent: Vec<String> = paths
        .iter()
        .filter(|p| !p.exists())
        .map(|p| p.display().to_string())
        .collect();
    absent.sort();
    absent.dedup();
    if absent.is_empty() {
        Some(paths)
    } else {
        skip(&format!(
            "{} absent (the shared corpora live in ../shared/data; set NERLAB_SHARED to point elsewhere)",
            absent.join(", ")
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

/// Runs the `nerlab` binary with `args` (standard input empty).
pub fn nerlab(args: &[&str]) -> std::process::Output {
    nerlab_with_stdin(args, None)
}

/// Runs the `nerlab` binary with `args`, `stdin` written to its standard input.
pub fn nerlab_with_stdin(args: &[&str], stdin: Option<&[u8]>) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_nerlab"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nerlab runs");
    let mut pipe = child.stdin.take().expect("a stdin pipe");
    if let Some(bytes) = stdin {
        pipe.write_all(bytes).expect("stdin written");
    }
    drop(pipe);
    child.wait_with_output().expect("nerlab ends")
}

pub fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `text` as UTF-16 little-endian with its byte-order mark (a file a Windows editor saved).
pub fn utf16le(text: &str) -> Vec<u8> {
    [0xFF, 0xFE]
        .into_iter()
        .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
        .collect()
}

/// A fixture under `tests/fixtures`.
pub fn fixture(rel: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// Records that the calling test is skipped for want of a corpus or a model, as one line in one
/// format, `nerlab-skip: <test>: <reason>`. The line goes to stderr directly, not with
/// `eprintln!`, which the test harness captures (and hides) for passing tests, and, when
/// `NERLAB_SKIP_LOG` names a file, is appended to it: `.ci/run` sets it and fails when anything
/// was skipped, since CI has every corpus and model.
pub fn skip(reason: &str) {
    use std::io::Write;
    // The harness names each test's thread after the test.
    let test = std::thread::current().name().unwrap_or("?").to_owned();
    let line = format!("nerlab-skip: {test}: {reason}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
    if let Some(log) = std::env::var_os("NERLAB_SKIP_LOG") {
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = appended {
            let _ = writeln!(
                std::io::stderr(),
                "nerlab: could not append the skip line to {}: {e}",
                std::path::Path::new(&log).display()
            );
        }
    }
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

/// An experiment file of small character-model runs on the built-in demo corpus: the head
/// (softmax, crf) x `seeds`, `epochs` each, reported by head; `report` adds lines to [report].
pub fn tiny_grid(name: &str, out: &str, epochs: usize, seeds: &str, report: &str) -> String {
    format!(
        r#"name = "{name}"
out = "{out}"
[base]
data.train = ["builtin:demo/train"]
data.dev = "builtin:demo/dev"
model.source = "char"
train.epochs = {epochs}
train.checkpoint_every = 5
model.char.hidden = 32
model.char.layers = 1
model.char.heads = 2
model.char.intermediate = 64
[grid]
"model.head" = ["softmax", "crf"]
seed = {seeds}
[report]
rows = ["model.head"]
metric = "dev.micro.f1"
{report}"#
    )
}

/// A run configuration of the small character model (one layer, two heads, softmax head) on the
/// built-in demo corpus, one thread: `hidden` wide (its feed-forward twice that), `epochs` at
/// learning rate `lr`, a checkpoint every `checkpoint_every` steps (0: at evaluations).
pub fn demo_char_run(
    seed: u64,
    hidden: usize,
    epochs: usize,
    lr: f64,
    checkpoint_every: usize,
) -> String {
    format!(
        r#"seed = {seed}
threads = 1
[data]
train = ["builtin:demo/train"]
dev = "builtin:demo/dev"
[model]
source = "char"
head = "softmax"
[model.char]
hidden = {hidden}
layers = 1
heads = 2
intermediate = {}
max_positions = 256
dropout = 0.1
[train]
epochs = {epochs}
batch_size = 16
lr = {lr}
checkpoint_every = {checkpoint_every}
"#,
        2 * hidden
    )
}
