//! An Automerge chunk merged through the strict parse of sync and bundle import.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| waymark_fuzz::panics::run(|| {
    waymark_fuzz::client::automerge_chunk(data)
}));
