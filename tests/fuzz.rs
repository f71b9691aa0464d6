//! Fuzzing on stable: a mutation harness over `nerlab::fuzz`'s four targets (corpus readers and
//! format detection, run configurations, experiment files, typed text aligned to sub-words), for a
//! bounded minute (`NERLAB_FUZZ_SECS` to change it). The long coverage-guided runs use cargo-fuzz
//! on the same entry points (`fuzz/`, docs/RELIABILITY.md); every crash either finds is kept in
//! `tests/fixtures/fuzz/` and replayed here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, Instant};

use nerlab::model::tokenize::TextTokenizer;
use nerlab::rng::SplitMix64;

/// Fragments mutations insert: format syntax, and the Unicode that breaks text handling (combining
/// jamo, emoji with joiners, right-to-left text, zero-width characters, a byte order mark, a lone
/// surrogate as UTF-8 encodes it, invalid bytes, NUL).
const FRAGMENTS: &[&[u8]] = &[
    b"\t",
    b"\n",
    b"\r\n",
    b"\n\n",
    b" ",
    b"B-",
    b"I-",
    b"E-",
    b"S-",
    b"O",
    b"PER",
    b"-",
    b"## ",
    b"# id ",
    b"domain=",
    b"_ _ ",
    b"en:",
    b"<",
    b":PS>",
    b"=",
    b"\"",
    b"[",
    b"]",
    b"[grid]\n",
    b"[base]\n",
    b"seed = [1, 2]\n",
    b"init_from = \"stage:a\"\n",
    b"epochs = ",
    b"-1",
    b"1e308",
    b"18446744073709551616",
    "\u{1100}\u{1161}\u{11a8}".as_bytes(),
    "\u{d55c}".as_bytes(),
    "👩\u{200d}👩\u{200d}👧".as_bytes(),
    "\u{05e9}\u{05dc}\u{05d5}\u{05dd}".as_bytes(),
    "\u{200b}".as_bytes(),
    "\u{200d}".as_bytes(),
    "\u{feff}".as_bytes(),
    "\u{0301}".as_bytes(),
    b"\xed\xa0\x80",
    b"\xff\xfe",
    b"\xfe\xff",
    b"\xc3",
    b"\0",
];

fn mutate(rng: &mut SplitMix64, seed: &[u8], pool: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for _ in 0..=rng.below(6) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(7) {
            0 if at < bytes.len() => {
                let n = rng.below(8).min(bytes.len() - at);
                bytes.drain(at..at + n);
            }
            1 | 2 => {
                let f = FRAGMENTS[rng.below(FRAGMENTS.len())];
                bytes.splice(at..at, f.iter().copied());
            }
            3 if at < bytes.len() => bytes[at] = rng.below(256) as u8,
            4 if at < bytes.len() => {
                // Repeat a stretch: long lines, long sentences, many sentences.
                let n = (rng.below(64) + 1).min(bytes.len() - at);
                let chunk = bytes[at..at + n].to_vec();
                for _ in 0..rng.below(20) {
                    bytes.splice(at..at, chunk.iter().copied());
                }
            }
            5 => {
                // Splice in a piece of another input (same target: skip its target byte).
                let other = &pool[rng.below(pool.len())];
                if other.len() > 1 {
                    let from = 1 + rng.below(other.len() - 1);
                    let to = from + rng.below(other.len() - from + 1);
                    bytes.splice(at..at, other[from..to].iter().copied());
                }
            }
            _ => bytes.truncate(at.max(1)),
        }
    }
    bytes
}

fn run_one(input: &[u8], tokenizers: &[TextTokenizer]) {
    if catch_unwind(AssertUnwindSafe(|| nerlab::fuzz::any(input, tokenizers))).is_err() {
        let dir = std::env::temp_dir().join("nerlab-fuzz-crashes");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("crash-{:016x}", fnv(input)));
        std::fs::write(&file, input).unwrap();
        panic!(
            "target {} panicked on {:?} (saved as {}; add it to tests/fixtures/fuzz/)",
            input[0] % 4,
            String::from_utf8_lossy(input),
            file.display()
        );
    }
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A minute of mutations, the same time for each target; every mutant that reads is kept to mutate
/// further (a crude stand-in for coverage guidance that keeps inputs deep in each parser).
#[test]
fn a_minute_of_mutated_inputs_finds_no_panic() {
    let secs: u64 = std::env::var("NERLAB_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let tokenizers = nerlab::fuzz::fixture_tokenizers();
    let seeds = nerlab::fuzz::seeds();
    let mut rng = SplitMix64::new(0x5eed);
    let mut runs = [0usize; 4];
    for target in 0..4u8 {
        let mut pool: Vec<Vec<u8>> = seeds.iter().filter(|s| s[0] == target).cloned().collect();
        assert!(!pool.is_empty(), "target {target} has seeds");
        let end = Instant::now() + Duration::from_secs(secs) / 4;
        while Instant::now() < end {
            let seed = pool[rng.below(pool.len())].clone();
            let input = mutate(&mut rng, &seed, &pool);
            if input.first() != Some(&target) || input.len() > 1 << 20 {
                continue;
            }
            run_one(&input, &tokenizers);
            runs[usize::from(target)] += 1;
            if pool.len() < 4096 && rng.below(8) == 0 {
                pool.push(input);
            }
        }
    }
    eprintln!("fuzz: {runs:?} inputs per target in {secs} s");
    assert!(runs.iter().all(|&n| n > 0), "{runs:?}");
}

/// Every input a fuzzing run ever crashed on, replayed: each was a bug, now fixed.
#[test]
fn crashes_found_by_fuzzing_stay_fixed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz");
    let tokenizers = nerlab::fuzz::fixture_tokenizers();
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        if entry.path().extension().is_some_and(|e| e == "md") {
            continue;
        }
        run_one(&std::fs::read(entry.path()).unwrap(), &tokenizers);
        n += 1;
    }
    assert!(n > 0, "no inputs in {}", dir.display());
}

/// The seeds themselves are valid: each target reads its seeds without error, so mutations start
/// deep inside each parser rather than at its first check.
#[test]
fn every_seed_is_read() {
    for seed in nerlab::fuzz::seeds() {
        let text = String::from_utf8_lossy(&seed[1..]).into_owned();
        match seed[0] {
            0 => {
                nerlab::data::parse(
                    &seed[1..],
                    Path::new("seed.txt"),
                    &nerlab::data::ReadOptions::default(),
                )
                .unwrap_or_else(|e| panic!("{e}\n{text}"));
            }
            1 => {
                nerlab::train::RunConfig::from_toml(&text)
                    .unwrap_or_else(|e| panic!("{e}\n{text}"));
            }
            2 => {
                toml::from_str::<nerlab::experiment::ExperimentFile>(&text)
                    .unwrap_or_else(|e| panic!("{e}\n{text}"));
            }
            _ => assert!(!text.is_empty()),
        }
    }
}
