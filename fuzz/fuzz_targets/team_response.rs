//! The team directory from a hostile server: devices, roles and the key envelopes in it.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| waymark_fuzz::panics::run(|| {
    waymark_fuzz::client::team_response(data)
}));
