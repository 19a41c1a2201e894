//! Calls that panic on purpose, so the binding suites can check that a panic in Rust reaches
//! the app as an error and the process goes on. Compiled only with the `test-hooks` feature,
//! which `bindings/build-for-tests.sh` enables; a default build, as apps ship, exports none of
//! them (`bindings/check-shipped-surface.sh` checks the library's symbols).

use crate::error::{self, Result};

/// Panics inside the bindings' guard, as a bug in the core would: tests use it to check that
/// the app gets `WaymarkError::Internal` and the process goes on.
#[doc(hidden)]
#[uniffi::export]
pub fn debug_force_internal_error() -> Result<()> {
    error::guard(|| force_panic("debug_force_internal_error"))
}

/// Like `debug_force_internal_error`, but the panic happens on the worker thread of an async
/// call.
#[doc(hidden)]
#[uniffi::export]
pub async fn debug_force_internal_error_async() -> Result<()> {
    error::off_thread("debug", || force_panic("debug_force_internal_error_async")).await
}

/// Panics with no guard of ours around it: tests use it to check that uniffi's own catch turns
/// it into an exception (`InternalError` in Python, `InternalException` in Kotlin).
#[doc(hidden)]
#[uniffi::export]
pub fn debug_force_panic() {
    // Deliberate: this function exists to panic.
    #[allow(clippy::panic)]
    {
        panic!("debug_force_panic: a forced panic for tests");
    }
}

#[allow(clippy::panic)]
fn force_panic<T>(what: &str) -> T {
    panic!("{what}: a forced internal error for tests")
}
