//! A chunk sealed with the real workspace key (optionally altered), applied as a pulled blob.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| waymark_fuzz::panics::run(|| {
    waymark_fuzz::client::sealed_blob(data)
}));
