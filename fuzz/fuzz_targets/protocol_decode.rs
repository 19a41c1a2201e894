//! The wire decoder on every request and answer body, and the pull query parser.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| waymark_fuzz::panics::run(|| {
    waymark_fuzz::protocol::protocol_decode(data)
}));
