//! A pull answer from a hostile server, decoded and applied as sync applies it.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| waymark_fuzz::panics::run(|| {
    waymark_fuzz::client::pull_response(data)
}));
