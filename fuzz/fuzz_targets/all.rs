//! All four targets in one run: the first byte picks the target (`nerlab::fuzz::any`). On its first
//! start the run's corpus folder is filled with `nerlab::fuzz::seeds()` (libFuzzer calls the init
//! block before it reads the folder).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use nerlab::model::tokenize::TextTokenizer;

static TOKENIZERS: OnceLock<Vec<TextTokenizer>> = OnceLock::new();

fuzz_target!(
    init: {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/all");
        if !dir.exists() {
            std::fs::create_dir_all(&dir).expect("the corpus folder");
            for (i, seed) in nerlab::fuzz::seeds().iter().enumerate() {
                std::fs::write(dir.join(format!("seed-{i:03}")), seed).expect("a seed");
            }
        }
    },
    |data: &[u8]| {
        nerlab::fuzz::any(data, TOKENIZERS.get_or_init(nerlab::fuzz::fixture_tokenizers));
    }
);
