//! The harnesses behind Waymark's fuzz targets (`fuzz_targets/*.rs` are one line each), so the
//! seed generator and the targets share one description of every input.
//!
//! Each harness hands untrusted bytes to the real decoder and asserts what a user relies on:
//! nothing panics (a panic escaping a harness aborts the run and libFuzzer keeps the input),
//! bad input becomes a typed error, and what decodes re-encodes to the same value.

pub mod client;
pub mod panics;
pub mod protocol;
pub mod server;
