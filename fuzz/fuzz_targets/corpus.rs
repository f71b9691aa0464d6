//! `nerlab::fuzz::corpus`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nerlab::fuzz::corpus(data));
