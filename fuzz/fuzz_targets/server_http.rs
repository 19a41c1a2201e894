//! The sync server's real router fed arbitrary requests on a fresh SQLite storage.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| waymark_fuzz::panics::run(|| {
    waymark_fuzz::server::http_request(data)
}));
