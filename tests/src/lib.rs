//! End-to-end suites for Waymark live in `tests/`; this crate hosts the server binary they
//! start, the hostile server the security suites (in Rust and in every binding language) put in
//! front of it, the page reader the forgetting tests scan stores with, and the headless browser
//! the tip page test drives.

pub mod browser;
pub mod hostile;
pub mod pages;
