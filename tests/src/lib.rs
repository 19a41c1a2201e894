//! End-to-end suites for Waymark live in `tests/`; this crate hosts the server binary they
//! start, the hostile server the security suites (in Rust and in every binding language) put in
//! front of it, and the page reader the forgetting tests scan stores with.

pub mod hostile;
pub mod pages;
