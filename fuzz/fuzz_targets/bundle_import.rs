//! An exchange bundle imported as from a memory card.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| waymark_fuzz::panics::run(|| {
    waymark_fuzz::client::bundle_import(data)
}));
