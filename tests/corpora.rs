//! Every corpus in `../shared/data` reads, with its counts checked, and writes back unchanged.
//!
//! Expected counts come from an independent reader (`seqeval.scheme.Entities(..., IOB2)` over each
//! file, space tokens dropped for KLUE and KMOU), not from nerlab.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use nerlab::cli::stats_of;
use nerlab::data::{self, Format, ReadOptions};

/// (file under ../shared/data, sentences, tokens, strict IOB2 entities over the scoring view)
const COUNTS: &[(&str, usize, usize, usize)] = &[
    ("klue-ner/klue-ner-v1.1_dev.tsv", 5000, 285929, 14255),
    ("konec/konec-dev.tsv", 5000, 285920, 19003),
    ("kmou-ner/corpus", 23964, 1047333, 80519),
    ("wikiann/xtreme-panx/dev-bn.tsv", 1000, 4361, 1107),
    ("wikiann/xtreme-panx/dev-de.tsv", 10000, 97805, 13818),
    ("wikiann/xtreme-panx/dev-en.tsv", 10000, 80536, 14146),
    ("wikiann/xtreme-panx/dev-es.tsv", 10000, 64329, 12270),
    ("wikiann/xtreme-panx/dev-fa.tsv", 10000, 59953, 10866),
    ("wikiann/xtreme-panx/dev-gu.tsv", 100, 1286, 132),
    ("wikiann/xtreme-panx/dev-hi.tsv", 1000, 5808, 1226),
    ("wikiann/xtreme-panx/dev-jv.tsv", 100, 585, 112),
    ("wikiann/xtreme-panx/dev-kk.tsv", 1000, 8039, 1152),
    ("wikiann/xtreme-panx/dev-ko.tsv", 10000, 80786, 14560),
    ("wikiann/xtreme-panx/dev-my.tsv", 100, 853, 127),
    ("wikiann/xtreme-panx/dev-nl.tsv", 10000, 84146, 13532),
    ("wikiann/xtreme-panx/dev-pa.tsv", 100, 571, 107),
    ("wikiann/xtreme-panx/dev-qu.tsv", 100, 578, 114),
    ("wikiann/xtreme-panx/dev-ru.tsv", 10000, 70279, 12334),
    ("wikiann/xtreme-panx/dev-sw.tsv", 1000, 5609, 1209),
    ("wikiann/xtreme-panx/dev-te.tsv", 1000, 8080, 1201),
    ("wikiann/xtreme-panx/dev-tr.tsv", 10000, 75930, 13517),
    ("wikiann/xtreme-panx/dev-yo.tsv", 100, 489, 107),
    ("wikiann/xtreme-panx/dev-zh.tsv", 10000, 213682, 12017),
    ("wikiann/xtreme-panx/train-bn.tsv", 10000, 42880, 10897),
    ("wikiann/xtreme-panx/train-de.tsv", 20000, 195387, 27643),
    ("wikiann/xtreme-panx/train-en.tsv", 20000, 160394, 27931),
    ("wikiann/xtreme-panx/train-es.tsv", 20000, 129283, 24750),
    ("wikiann/xtreme-panx/train-fa.tsv", 20000, 118546, 21527),
    ("wikiann/xtreme-panx/train-gu.tsv", 100, 1138, 132),
    ("wikiann/xtreme-panx/train-hi.tsv", 5000, 29443, 6124),
    ("wikiann/xtreme-panx/train-jv.tsv", 100, 651, 117),
    ("wikiann/xtreme-panx/train-kk.tsv", 1000, 8057, 1129),
    ("wikiann/xtreme-panx/train-ko.tsv", 20000, 162031, 28900),
    ("wikiann/xtreme-panx/train-my.tsv", 100, 698, 121),
    ("wikiann/xtreme-panx/train-nl.tsv", 20000, 169449, 27050),
    ("wikiann/xtreme-panx/train-pa.tsv", 100, 520, 104),
    ("wikiann/xtreme-panx/train-qu.tsv", 100, 531, 111),
    ("wikiann/xtreme-panx/train-ru.tsv", 20000, 141529, 24629),
    ("wikiann/xtreme-panx/train-sw.tsv", 1000, 5597, 1211),
    ("wikiann/xtreme-panx/train-te.tsv", 1000, 8087, 1204),
    ("wikiann/xtreme-panx/train-tr.tsv", 20000, 149786, 26482),
    ("wikiann/xtreme-panx/train-yo.tsv", 100, 564, 109),
    ("wikiann/xtreme-panx/train-zh.tsv", 20000, 420054, 24135),
    ("wikiann/rahimi-raw/de/test", 10000, 97646, 13868),
    ("wikiann/rahimi-raw/en/test", 10000, 80326, 13958),
    ("wikiann/rahimi-raw/nl/test", 10000, 85122, 13725),
    ("multiconer2/EN-English/en-dev.conll", 871, 13323, 1296),
    ("multiconer2/EN-English/en-train10.conll", 1679, 26105, 2528),
    (
        "multiconer2/EN-English/en-train90.conll",
        15099,
        226906,
        22921,
    ),
    ("multiconer2/HI-Hindi/hi-dev.conll", 514, 8639, 684),
    ("multiconer2/HI-Hindi/hi-train.conll", 9632, 159454, 12870),
    ("masakhaner/amh/dev.txt", 250, 3749, 328),
    ("masakhaner/amh/test.txt", 500, 7449, 558),
    ("masakhaner/amh/train.txt", 1750, 25819, 2247),
    ("masakhaner/hau/dev.txt", 276, 8301, 667),
    ("masakhaner/hau/test.txt", 552, 16841, 1147),
    ("masakhaner/hau/train.txt", 1912, 55010, 4143),
    ("masakhaner/ibo/dev.txt", 320, 6304, 600),
    ("masakhaner/ibo/test.txt", 638, 12645, 1179),
    ("masakhaner/ibo/train.txt", 2235, 42719, 3483),
    ("masakhaner/kin/dev.txt", 302, 6711, 618),
    ("masakhaner/kin/test.txt", 605, 14196, 968),
    ("masakhaner/kin/train.txt", 2116, 47912, 3706),
    ("masakhaner/lug/dev.txt", 200, 3771, 288),
    ("masakhaner/lug/test.txt", 407, 9841, 854),
    ("masakhaner/lug/train.txt", 1428, 33003, 3081),
    ("masakhaner/luo/dev.txt", 92, 2567, 197),
    ("masakhaner/luo/test.txt", 186, 5159, 405),
    ("masakhaner/luo/train.txt", 644, 18577, 1250),
    ("masakhaner/pcm/dev.txt", 306, 7728, 638),
    ("masakhaner/pcm/test.txt", 600, 15731, 919),
    ("masakhaner/pcm/train.txt", 2124, 52604, 4646),
    ("masakhaner/swa/dev.txt", 300, 7263, 674),
    ("masakhaner/swa/test.txt", 604, 15409, 1179),
    ("masakhaner/swa/train.txt", 2109, 56599, 4591),
    ("masakhaner/wol/dev.txt", 267, 4384, 109),
    ("masakhaner/wol/test.txt", 539, 11682, 512),
    ("masakhaner/wol/train.txt", 1871, 36805, 1397),
    ("masakhaner/yor/dev.txt", 305, 7115, 360),
    ("masakhaner/yor/test.txt", 645, 19896, 1132),
    ("masakhaner/yor/train.txt", 2171, 56274, 2862),
];

#[test]
fn every_corpus_reads_with_its_counts() {
    let mut read = 0;
    for &(rel, sentences, tokens, entities) in COUNTS {
        let Some(path) = common::shared_data(rel) else {
            return;
        };
        let corpus = data::read(&path, &ReadOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        let stats = stats_of(&corpus);
        assert_eq!(
            (stats.sentences, stats.tokens, stats.entities),
            (sentences, tokens, entities),
            "{rel}"
        );
        read += 1;
    }
    assert_eq!(read, COUNTS.len());
}

#[test]
fn klue_dev_counts_as_klue_scores_it() {
    let Some(path) = common::shared_data("klue-ner/klue-ner-v1.1_dev.tsv") else {
        return;
    };
    let corpus = data::read(&path, &ReadOptions::default()).unwrap();
    assert_eq!(corpus.format, Format::Klue);
    let stats = stats_of(&corpus);
    let want: BTreeMap<String, usize> = [
        ("PS", 4418),
        ("QT", 3150),
        ("DT", 2312),
        ("OG", 2182),
        ("LC", 1648),
        ("TI", 545),
    ]
    .into_iter()
    .map(|(t, n)| (t.to_string(), n))
    .collect();
    assert_eq!(stats.sentences, 5000);
    assert_eq!(stats.entities, 14255);
    assert_eq!(stats.per_type, want);
    // The two entities whose B- sits on a space character: KLUE's scorer drops spaces, leaving a
    // dangling I-, which strict IOB2 ignores and repair would turn into an entity.
    assert_eq!(stats.repairs.tags, 2);
    assert_eq!(corpus.sentences[0].id, "klue-ner-v1_dev_00000-wikitree");
    assert_eq!(corpus.preamble.len(), 5);
}

#[test]
fn kmou_folder_reads_as_one_corpus() {
    let Some(path) = common::shared_data("kmou-ner/corpus") else {
        return;
    };
    let corpus = data::read(&path, &ReadOptions::default()).unwrap();
    assert_eq!(corpus.format, Format::Kmou);
    assert_eq!(corpus.notes.files, 1427);
    // EXOBRAIN_NE_CORPUS_002.txt starts with a byte-order mark; its first sentence still reads.
    assert_eq!(corpus.notes.bom_files, 1);
    let s = corpus
        .sentences
        .iter()
        .find(|s| s.id == "EXOBRAIN_NE_CORPUS_002:1")
        .expect("first sentence of the BOM file");
    assert!(
        s.raw
            .as_deref()
            .unwrap_or("")
            .starts_with("'부천 영화제 사무국'")
    );
    let types: Vec<String> = corpus.types().into_iter().collect();
    assert_eq!(
        types,
        [
            "DAT", "DUR", "LOC", "MNY", "NOH", "ORG", "PER", "PNT", "POH", "TIM"
        ]
    );
}

#[test]
fn files_write_back_byte_for_byte() {
    let files = [
        "klue-ner/klue-ner-v1.1_dev.tsv",
        "konec/konec-dev.tsv",
        "wikiann/xtreme-panx/dev-ko.tsv",
        "wikiann/xtreme-panx/train-yo.tsv",
        "wikiann/rahimi-raw/en/test",
        "multiconer2/EN-English/en-dev.conll",
        "multiconer2/HI-Hindi/hi-dev.conll",
        "masakhaner/hau/dev.txt",
        "masakhaner/amh/test.txt",
    ];
    for rel in files {
        let Some(path) = common::shared_data(rel) else {
            return;
        };
        let original = std::fs::read_to_string(&path).unwrap();
        let corpus = data::read(&path, &ReadOptions::default()).unwrap();
        let written = data::to_text(&corpus);
        if written != original {
            let at = written
                .bytes()
                .zip(original.bytes())
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            let line = original[..at.min(original.len())].matches('\n').count() + 1;
            panic!("{rel}: written text differs from the file at line {line}");
        }
    }
}

#[test]
fn kmou_writes_back_the_same_corpus() {
    let Some(path) = common::shared_data("kmou-ner/corpus") else {
        return;
    };
    let corpus = data::read(&path, &ReadOptions::default()).unwrap();
    let dir = common::TempDir::new("kmou-roundtrip");
    let out = dir.path("kmou.txt");
    data::write(&corpus, &out).unwrap();
    let again = data::read(&out, &ReadOptions::default()).unwrap();
    assert_eq!(again.len(), corpus.len());
    for (a, b) in corpus.sentences.iter().zip(&again.sentences) {
        assert_eq!(
            (&a.tokens, &a.tags, &a.raw, &a.columns),
            (&b.tokens, &b.tags, &b.raw, &b.columns),
            "{}",
            a.id
        );
        assert_eq!(a.header, b.header);
    }
}

#[test]
fn predictions_are_written_in_the_gold_format() {
    let Some(path) = common::shared_data("klue-ner/klue-ner-v1.1_dev.tsv") else {
        return;
    };
    let gold = data::read(&path, &ReadOptions::default()).unwrap();
    let small = gold.subset(&[0]);
    let pred_tags: Vec<Vec<String>> = small
        .sentences
        .iter()
        .map(|s| vec!["O".to_string(); s.len()])
        .collect();
    let text = data::to_text(&small.with_tags(pred_tags));
    let first = text.lines().nth(5).unwrap();
    // The inline comment is rebuilt from the predicted tags: no entities marked.
    assert!(
        first.starts_with("## klue-ner-v1_dev_00000-wikitree\t경찰은"),
        "{first}"
    );
    assert!(!first.contains('<'));
}
