//! Bad input never panics: each kind of fault gives a `DataError` naming the file, the line and what
//! was expected. One test per kind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::TempDir;
use nerlab::data::{self, DataError, Format, ReadOptions, parse};

fn read(text: &[u8], name: &str, format: Option<Format>) -> Result<data::Corpus, DataError> {
    let opts = ReadOptions {
        format,
        ..ReadOptions::default()
    };
    parse(text, Path::new(name), &opts)
}

fn err(text: &[u8], name: &str, format: Option<Format>) -> DataError {
    match read(text, name, format) {
        Ok(c) => panic!("expected an error, read {} sentences", c.len()),
        Err(e) => e,
    }
}

#[test]
fn unknown_tag() {
    let e = err(b"Seoul\tB_LOC\nis\tO\n", "wiki.tsv", None);
    assert!(matches!(e, DataError::UnknownTag { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "wiki.tsv:1: unknown tag \"B_LOC\", expected O or PREFIX-TYPE with PREFIX one of B, I, E, S"
    );
}

#[test]
fn tag_outside_the_label_set() {
    let opts = ReadOptions {
        labels: Some(BTreeSet::from(["PER".to_string(), "LOC".to_string()])),
        ..ReadOptions::default()
    };
    let e = parse(b"a\tB-PER\nb\tB-XX\n", Path::new("c.tsv"), &opts).unwrap_err();
    assert_eq!(
        e.to_string(),
        "c.tsv:2: unknown tag \"B-XX\", expected a type in the label set (LOC, PER)"
    );
}

#[test]
fn tag_of_another_scheme() {
    let opts = ReadOptions {
        scheme: Some(data::Scheme::Iob2),
        ..ReadOptions::default()
    };
    let e = parse(b"a\tS-PER\n", Path::new("c.tsv"), &opts).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("expected O, B-TYPE or I-TYPE (iob2)"),
        "{e}"
    );
}

#[test]
fn a_stray_bioes_tag_in_an_iob2_file_is_named_not_obeyed() {
    // One S- among three B-: read as BIOES, the three single-token and unclosed entities would
    // be invalid and dropped; read as IOB2 only the S- tag is wrong, and the error says where.
    let text = b"John\tB-PER\nSmith\tI-PER\nin\tO\nParis\tB-LOC\n\nBob\tB-PER\nhome\tS-LOC\n";
    let e = err(text, "mixed.tsv", None);
    assert_eq!(
        e.to_string(),
        "mixed.tsv:7: unknown tag \"S-LOC\", expected O, B-TYPE or I-TYPE (iob2; guessed from \
         the tags: fewer E-/S- tags than half the B- tags; a stray tag to fix, or a BIOES file \
         to read with --scheme bioes)"
    );
    let opts = ReadOptions {
        scheme: Some(data::Scheme::Bioes),
        ..ReadOptions::default()
    };
    let c = parse(text, Path::new("mixed.tsv"), &opts).unwrap();
    assert_eq!(c.scheme, data::Scheme::Bioes);
    // A weak model's predictions over a BIOES corpus look like that file; they are read in the
    // gold's scheme, not guessed.
    let pred = parse(
        text,
        Path::new("pred.tsv"),
        &ReadOptions::for_predictions(&c),
    )
    .unwrap();
    assert_eq!(pred.scheme, data::Scheme::Bioes);
}

#[test]
fn tag_without_token() {
    let e = err(b"Seoul\tB-LOC\n\tO\n", "wiki.tsv", Some(Format::Wikiann));
    assert!(matches!(e, DataError::TagWithoutToken { .. }), "{e:?}");
    assert!(
        e.to_string()
            .starts_with("wiki.tsv:2: tag \"O\" without a token"),
        "{e}"
    );
    let e = err(
        b"eli _ _ B-PER\n _ _ O\n",
        "m.conll",
        Some(Format::Multiconer),
    );
    assert!(matches!(e, DataError::TagWithoutToken { .. }), "{e:?}");
}

#[test]
fn token_without_tag() {
    let e = err(b"Seoul\tB-LOC\nis\n", "wiki.tsv", Some(Format::Wikiann));
    assert!(matches!(e, DataError::TokenWithoutTag { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "wiki.tsv:2: token \"is\" without a tag, expected token<TAB>tag"
    );
    let e = err(b"Seoul\tB-LOC\nis\t\n", "wiki.tsv", Some(Format::Wikiann));
    assert!(matches!(e, DataError::TokenWithoutTag { .. }), "{e:?}");
    let e = err(
        "## 1\n## 가\n## 가\n가\t가\tNNG\n".as_bytes(),
        "k.txt",
        Some(Format::Kmou),
    );
    assert!(matches!(e, DataError::TokenWithoutTag { .. }), "{e:?}");
}

#[test]
fn dangling_inside_in_strict_mode() {
    let text = b"Kim\tB-PER\nin\tO\nSeoul\tI-LOC\n";
    assert!(
        read(text, "w.tsv", None).is_ok(),
        "lenient reading keeps the tag"
    );
    let opts = ReadOptions {
        strict: true,
        ..ReadOptions::default()
    };
    let e = parse(text, Path::new("w.tsv"), &opts).unwrap_err();
    assert_eq!(
        e.to_string(),
        "w.tsv:3: \"I-LOC\" continues an entity but none is open before it (strict IOB2 expects B-LOC here)"
    );
}

#[test]
fn empty_file() {
    for text in [&b""[..], b"\n\n  \n", b"\xEF\xBB\xBF"] {
        let e = err(text, "empty.tsv", None);
        assert!(matches!(e, DataError::EmptyFile(_)), "{e:?}");
        assert_eq!(
            e.to_string(),
            "empty.tsv: the file is empty, expected at least one sentence"
        );
    }
    // Only comments: no sentence either.
    let e = err(
        "## 토큰 구분자 : \\n\n".as_bytes(),
        "klue.tsv",
        Some(Format::Klue),
    );
    assert!(matches!(e, DataError::EmptyFile(_)), "{e:?}");
}

#[test]
fn empty_sentence() {
    let klue = "## s1\t가\n가\tO\n\n## s2\t나\n\n## s3\t다\n다\tO\n";
    let e = err(klue.as_bytes(), "klue.tsv", None);
    assert_eq!(
        e.to_string(),
        "klue.tsv:4: sentence \"s2\" has no tokens, expected token lines after its header"
    );
    let mc = b"\n# id a\tdomain=en\neli _ _ B-PER\n\n# id b\tdomain=en\n\n";
    let e = err(mc, "m.conll", None);
    assert!(matches!(e, DataError::EmptySentence { .. }), "{e:?}");
    assert!(
        e.to_string().starts_with("m.conll:5: sentence \"b\""),
        "{e}"
    );
}

#[test]
fn invalid_utf8() {
    let e = err(b"a\tO\nb\tO\n\xc3\x28\tO\n", "bad.tsv", None);
    assert_eq!(
        e.to_string(),
        "bad.tsv:3: invalid UTF-8 at byte 1 of the line, expected UTF-8 text"
    );
}

#[test]
fn byte_order_mark_is_removed() {
    let c = read("\u{feff}Seoul\tB-LOC\nis\tO\n".as_bytes(), "bom.tsv", None).unwrap();
    assert_eq!(c.sentences[0].tokens[0], "Seoul");
    assert_eq!(c.notes.bom_files, 1);
    // A BOM left in the middle by concatenating files is removed too.
    let c = read("a\tO\n\n\u{feff}b\tO\n".as_bytes(), "cat.tsv", None).unwrap();
    assert_eq!(c.sentences[1].tokens[0], "b");
}

#[test]
fn crlf_line_ends_are_removed() {
    let c = read(b"Seoul\tB-LOC\r\nis\tO\r\n\r\nok\tO\r\n", "crlf.tsv", None).unwrap();
    assert_eq!(c.len(), 2);
    assert_eq!(c.sentences[0].tags, ["B-LOC", "O"]);
    assert_eq!(c.notes.crlf_lines, 4);
    let klue = "## s\t가 나\r\n가\tB-PS\r\n \tO\r\n나\tO\r\n";
    let c = read(klue.as_bytes(), "k.tsv", None).unwrap();
    assert_eq!(c.sentences[0].tokens, ["가", " ", "나"]);
}

#[test]
fn mixed_formats() {
    let e = err(b"Seoul\tB-LOC\nis\tO\nBusan B-LOC\n", "w.tsv", None);
    assert_eq!(
        e.to_string(),
        "w.tsv:3: this line looks like CoNLL (token tag, space-separated), but the file is WikiANN (token<TAB>tag)"
    );
    let klue = "## s\t가나\n가\tB-PS\n나 _ _ I-PS\n";
    let e = err(klue.as_bytes(), "k.tsv", None);
    assert!(matches!(e, DataError::MixedFormat { .. }), "{e:?}");
    assert!(e.to_string().contains("MultiCoNER"), "{e}");
    let raw = b"en:Seoul\tB-LOC\nBusan\tB-LOC\n";
    let e = err(raw, "test", Some(Format::WikiannRaw));
    assert!(e.to_string().contains("without its lang: prefix"), "{e}");
    // A MultiCoNER header with no blank line before it is named as that, not as another format.
    let mc = "# id 1\tdomain=en\neli _ _ B-PER\n# id 2\tdomain=en\nbob _ _ B-PER\n";
    let e = err(mc.as_bytes(), "en.conll", None);
    assert!(matches!(e, DataError::Malformed { .. }), "{e:?}");
    assert!(
        e.to_string().starts_with("en.conll:3:") && e.to_string().contains("a blank line before"),
        "{e}"
    );
}

#[test]
fn directory_where_a_file_is_expected() {
    let dir = TempDir::new("dir-not-file");
    dir.write("a.txt", b"Seoul\tB-LOC\n");
    let e = data::read(&dir.0, &ReadOptions::default()).unwrap_err();
    assert!(matches!(e, DataError::IsDirectory(_)), "{e:?}");
    assert!(e.to_string().ends_with(
        "is a directory, expected a corpus file (only KMOU corpora are read as folders)"
    ));
    let e = data::read(&dir.0, &ReadOptions::with_format(Format::Wikiann)).unwrap_err();
    assert!(matches!(e, DataError::IsDirectory(_)), "{e:?}");
    let empty = TempDir::new("dir-empty");
    let e = data::read(&empty.0, &ReadOptions::default()).unwrap_err();
    assert!(matches!(e, DataError::EmptyFolder(_)), "{e:?}");
}

#[test]
fn gold_and_prediction_tokens_differ() {
    let gold = read(b"Kim\tB-PER\nin\tO\nSeoul\tB-LOC\n", "gold.tsv", None).unwrap();
    let pred = read(b"Kim\tB-PER\nin\tO\nBusan\tB-LOC\n", "pred.tsv", None).unwrap();
    let e = gold.check_same_tokens(&pred).unwrap_err();
    assert_eq!(
        e.to_string(),
        "pred.tsv:3: prediction token \"Busan\" differs from the gold token \"Seoul\" at gold.tsv:3; \
         predictions must keep the gold tokens and change only the tags"
    );
    let short = read(b"Kim\tB-PER\nin\tO\n", "pred.tsv", None).unwrap();
    let e = gold.check_same_tokens(&short).unwrap_err();
    assert!(matches!(e, DataError::LengthMismatch { .. }), "{e:?}");
    let two = read(b"Kim\tB-PER\n\nin\tO\n", "pred.tsv", None).unwrap();
    let e = gold.check_same_tokens(&two).unwrap_err();
    assert_eq!(
        e.to_string(),
        "pred.tsv: 2 sentences, but the gold file gold.tsv has 1"
    );
}

#[test]
fn unknown_format() {
    let e = err(b"a,b,c\n", "x.csv", None);
    assert!(matches!(e, DataError::UnknownFormat { .. }), "{e:?}");
    assert!(e.to_string().ends_with("; pass --format"), "{e}");
}

#[test]
fn klue_token_longer_than_a_character() {
    let e = err(
        "## s\t서울\n서울\tB-LC\n".as_bytes(),
        "k.tsv",
        Some(Format::Klue),
    );
    assert_eq!(
        e.to_string(),
        "k.tsv:2: expected a single character (KLUE is character-level), found \"서울\""
    );
}

#[test]
fn missing_file() {
    let e = data::read(
        Path::new("/nonexistent/corpus.tsv"),
        &ReadOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, DataError::Io { .. }));
    assert!(
        e.to_string().starts_with("/nonexistent/corpus.tsv: "),
        "{e}"
    );
}

/// Mutated copies of a valid file in every format: reading must return, never panic.
#[test]
fn mutations_never_panic() {
    let samples: [&[u8]; 6] = [
        "## h\n## s1\t<가:PS> 나\n가\tB-PS\n \tO\n나\tO\n\n## s2\t다\n다\tO\n".as_bytes(),
        b"Seoul\tB-LOC\nis\tO\n\nKim\tB-PER\nLee\tI-PER\n",
        b"en:Seoul\tB-LOC\nen:is\tO\n\nen:Kim\tB-PER\n",
        b"\n# id 1\tdomain=en\neli _ _ B-PER\nlilly _ _ I-PER\n\n# id 2\tdomain=en\nx _ _ O\n",
        b"Trump B-PER\naike O\n\nda O\n",
        "## 1\n## 오에 는\n## <오에:PER> 는\n오에\t오에\tNNG\tB-PER\n_\t_\t_\tO\n는\t는\tJX\tO\n"
            .as_bytes(),
    ];
    let mut rng = nerlab::rng::SplitMix64::new(99);
    let mut outcomes = [0usize; 2];
    for sample in samples {
        for _ in 0..1500 {
            let mut bytes = sample.to_vec();
            for _ in 0..=rng.below(4) {
                let at = rng.below(bytes.len() + 1);
                match rng.below(4) {
                    0 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    1 => bytes.insert(at, b"\t\n _-#:BIO\xff\xef"[rng.below(11)]),
                    2 if at < bytes.len() => bytes[at] = rng.below(256) as u8,
                    _ => bytes.truncate(at),
                }
            }
            let result = std::panic::catch_unwind(|| read(&bytes, "m.txt", None).map(|c| c.len()));
            let result = result
                .unwrap_or_else(|_| panic!("panicked on {:?}", String::from_utf8_lossy(&bytes)));
            outcomes[usize::from(result.is_ok())] += 1;
        }
    }
    // Both outcomes occur: the mutations are neither all harmless nor all fatal.
    assert!(outcomes[0] > 100 && outcomes[1] > 100, "{outcomes:?}");
}
