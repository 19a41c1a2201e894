//! An invite code as typed or scanned, or the payload inside a well-formed one.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| waymark_fuzz::panics::run(|| {
    waymark_fuzz::client::invite_code(data)
}));
