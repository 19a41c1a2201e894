//! End-to-end suites for Waymark live in `tests/`; this crate hosts the server binary they
//! start, and the hostile server the security suites (in Rust and in every binding language)
//! put in front of it.

pub mod hostile;
