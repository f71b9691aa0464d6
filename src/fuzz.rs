//! Entry points for fuzzing: each takes arbitrary bytes, runs one of nerlab's parsers on them and
//! checks what must hold whatever the input. A panic is a bug; an `Err` is the parser doing its
//! job. `fuzz/` drives them with cargo-fuzz (libFuzzer, nightly) and `tests/fuzz.rs` with a
//! mutation harness on stable, so both find the same bugs (docs/RELIABILITY.md).
//!
//! - [`corpus`]: format detection and every corpus reader; what reads must write back and read
//!   again to the same tokens and tags.
//! - [`run_config`]: run configurations; what parses must print and parse again.
//! - [`experiment`]: experiment files and their expansion into points.
//! - [`text`]: typed text (decoded from bytes as a file would be) split into the units a model
//!   tags and aligned to sub-words by each tokenizer given, with and without MANER markers.

use std::path::Path;

use crate::data::{self, Format, ReadOptions};
use crate::model::align::{self, AlignMode, Marker};
use crate::model::tokenize::{HfTokenizer, TextTokenizer};

/// The file names a corpus is tried under (detection looks at the extension for some formats).
const NAMES: [&str; 3] = ["fuzz.txt", "fuzz.tsv", "fuzz.conll"];

/// Reads `bytes` as a corpus, detected and as every format; anything read round-trips.
pub fn corpus(bytes: &[u8]) {
    let forced = Format::ALL.into_iter().map(Some);
    for (i, format) in std::iter::once(None).chain(forced).enumerate() {
        let name = NAMES[i % NAMES.len()];
        let opts = ReadOptions {
            format,
            ..ReadOptions::default()
        };
        if let Ok(c) = data::parse(bytes, Path::new(name), &opts) {
            check_corpus(&c);
        }
    }
}

fn check_corpus(c: &data::Corpus) {
    for s in &c.sentences {
        assert_eq!(
            s.tokens.len(),
            s.tags.len(),
            "sentence {} of {}",
            s.id,
            c.format
        );
        assert!(s.columns.is_empty() || s.columns.len() == s.tokens.len());
    }
    let text = data::to_text(c);
    let again = data::parse(
        text.as_bytes(),
        &c.path,
        &ReadOptions::with_format(c.format),
    )
    .unwrap_or_else(|e| panic!("{} written back does not read: {e}\n{text}", c.format));
    let words = |c: &data::Corpus| -> Vec<(Vec<String>, Vec<String>)> {
        c.sentences
            .iter()
            .map(|s| (s.tokens.clone(), s.tags.clone()))
            .collect()
    };
    assert_eq!(words(c), words(&again), "{} round trip\n{text}", c.format);
}

/// Parses `bytes` as a run configuration; one that parses prints and parses again, equal.
pub fn run_config(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let Ok(config) = crate::train::RunConfig::from_toml(text) else {
        return;
    };
    let printed = config.to_toml().expect("a parsed configuration prints");
    let again = crate::train::RunConfig::from_toml(&printed)
        .unwrap_or_else(|e| panic!("printed configuration does not parse: {e}\n{printed}"));
    assert_eq!(
        again.to_toml().expect("prints"),
        printed,
        "printing is stable"
    );
}

/// Parses `bytes` as an experiment file and plans it (from a folder of its own: planning reads the
/// corpora it names to fingerprint them). Inputs naming device files are skipped: reading
/// `/dev/zero` never ends, by design.
pub fn experiment(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if text.contains("/dev") || text.contains("/proc") || text.contains("/sys") {
        return;
    }
    let Ok(file) = toml::from_str::<crate::experiment::ExperimentFile>(text) else {
        return;
    };
    if let Ok(plan) = crate::experiment::plan(&file) {
        for p in &plan.points {
            assert!(!p.id.is_empty());
        }
    }
}

/// Decodes `bytes` as typed text, splits it the three ways a model reads text and aligns each to
/// the sub-words of every tokenizer; checks the offsets and the alignment's indices.
pub fn text(bytes: &[u8], tokenizers: &[TextTokenizer]) {
    let Ok(decoded) = data::text::decode(Path::new("fuzz.txt"), bytes.to_vec()) else {
        return;
    };
    let text = decoded.text.as_str();
    let n_chars = text.chars().count();
    for mode in [AlignMode::Words, AlignMode::Chars, AlignMode::CharTokens] {
        let units = crate::infer::tokenize(text, mode);
        for (tok, start, end) in &units {
            assert!(start < end && *end <= n_chars, "{tok:?} at {start}..{end}");
            let slice: String = text.chars().skip(*start).take(end - start).collect();
            assert_eq!(&slice, tok);
        }
        let tokens: Vec<String> = units.into_iter().map(|u| u.0).collect();
        let tags = vec!["O".to_string(); tokens.len()];
        for tokenizer in tokenizers {
            let markers: &[Marker] = if mode.char_level() {
                &[Marker::None]
            } else {
                &[Marker::None, Marker::Mask]
            };
            for &marker in markers {
                let mask = tokenizer.specials().mask;
                let Ok(a) = align::align(tokenizer, &tokens, Some(&tags), mode, marker, mask)
                else {
                    continue;
                };
                check_alignment(&a, tokens.len());
                let expanded = align::expand(&a.sources, &vec!["O".into(); a.units.len()]);
                assert_eq!(expanded.len(), tokens.len());
            }
        }
    }
}

fn check_alignment(a: &align::Alignment, n_tokens: usize) {
    assert_eq!(a.sources.len(), n_tokens);
    assert_eq!(a.units.len(), a.unit_tags.len());
    assert!(a.units.iter().all(|&u| u < a.ids.len()), "{a:?}");
    assert!(a.units.windows(2).all(|w| w[0] < w[1]), "{a:?}");
    // Windows cover every position (a sentence without sub-words gets one empty window).
    let wins = align::windows(a.ids.len(), 16);
    for w in &wins {
        assert!(
            w.0 <= w.1 && w.1 <= a.ids.len() && w.1 - w.0 <= 16,
            "{wins:?}"
        );
    }
    for pos in 0..a.ids.len() {
        let best = wins[align::best_window(&wins, pos)];
        assert!(best.0 <= pos && pos < best.1, "{pos} in {wins:?}");
    }
}

/// The tokenizers [`text`] aligns with: the repository's tiny WordPiece (BERT) and SentencePiece
/// (XLM-R) fixtures.
pub fn fixture_tokenizers() -> Vec<TextTokenizer> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models");
    ["tiny-bert-ner", "tiny-xlmr-ner"]
        .iter()
        .map(|m| HfTokenizer::from_dir(&dir.join(m)).expect("fixture tokenizer"))
        .map(|t| TextTokenizer::Hf(Box::new(t)))
        .collect()
}

/// One input to any target: the first byte picks the target, the rest is its input. This is what
/// lets one fuzzing run cover all four.
pub fn any(bytes: &[u8], tokenizers: &[TextTokenizer]) {
    let Some((&which, rest)) = bytes.split_first() else {
        return;
    };
    match which % 4 {
        0 => corpus(rest),
        1 => run_config(rest),
        2 => experiment(rest),
        _ => text(rest, tokenizers),
    }
}

/// Valid inputs to start from, each prefixed with its target's byte for [`any`]: a small file in
/// every corpus format, the default configuration and every preset's, every experiment template,
/// and texts in the scripts nerlab serves (Korean with combining jamo, Hebrew, emoji with joiners,
/// zero-width characters).
pub fn seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut add = |target: u8, bytes: &[u8]| {
        let mut v = vec![target];
        v.extend_from_slice(bytes);
        out.push(v);
    };
    for c in CORPORA {
        add(0, c.as_bytes());
    }
    let mut configs = vec![crate::train::RunConfig::default()];
    for (name, _) in crate::train::sources::RUN_PRESETS {
        let mut c = crate::train::RunConfig::default();
        if crate::train::sources::apply_preset(name, &mut c).is_ok() {
            configs.push(c);
        }
    }
    for c in configs {
        add(1, c.to_toml().unwrap_or_default().as_bytes());
    }
    for t in crate::experiment::Template::ALL {
        add(2, t.render("fuzz", &t.default_sizes()).as_bytes());
    }
    for t in TEXTS {
        add(3, t.as_bytes());
    }
    out
}

const CORPORA: [&str; 7] = [
    "## h\n## s1\t<가:PS> 나\n가\tB-PS\n \tO\n나\tO\n\n## s2\t다\n다\tO\n",
    "Seoul\tB-LOC\nis\tO\n\nKim\tB-PER\nLee\tI-PER\n",
    "en:Seoul\tB-LOC\nen:is\tO\n\nen:Kim\tB-PER\n",
    "\n# id 1\tdomain=en\neli _ _ B-PER\nlilly _ _ I-PER\n\n# id 2\tdomain=en\nx _ _ O\n",
    "Trump B-PER\naike O\n\nda O\n",
    "## 1\n## 오에 는\n## <오에:PER> 는\n오에\t오에\tNNG\tB-PER\n_\t_\t_\tO\n는\t는\tJX\tO\n",
    "New\tB-LOC\nYork\tE-LOC\nis\tO\nbig\tS-MISC\n\n",
];

const TEXTS: [&str; 6] = [
    "이순신은 조선 중기의 무신이다.",
    "\u{1100}\u{1161}\u{11a8} 한국어 \u{1112}\u{1161}\u{11ab}",
    "שלום עולם and مرحبا بالعالم",
    "👩\u{200d}👩\u{200d}👧 family 🇰🇷 flag",
    "zero\u{200b}width\u{200c}non\u{200d}joiner\u{feff}",
    "Barack Obama visited Seoul in 2009.",
];
