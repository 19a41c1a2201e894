//! End-to-end suites for Waymark live in `tests/`; this crate only hosts the server binary
//! they start.
