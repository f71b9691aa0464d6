//! Typed text aligned to sub-words (`nerlab::fuzz::text`).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use nerlab::model::tokenize::TextTokenizer;

static TOKENIZERS: OnceLock<Vec<TextTokenizer>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    nerlab::fuzz::text(data, TOKENIZERS.get_or_init(nerlab::fuzz::fixture_tokenizers));
});
