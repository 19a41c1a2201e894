//! `waymark-ffi`: the uniffi surface of Waymark, the only FFI code of the project.
//!
//! No logic lives here: each item converts its arguments, calls `waymark-core`, and converts
//! the answer. Kotlin, Swift and Python bindings are generated from the built library (see
//! `bindings/README.md`); the uniffi namespace is `waymark`.
//!
//! - [`WaymarkStore`]: the open store (`WaymarkStore.open(path, key)`).
//! - `wipe`: the panic button (`WaymarkStore.wipe()`), key change (`rekey`), and
//!   `destroy_store_files` for a store whose key is lost.
//! - `team`: the devices of a workspace, revocation (with key rotation), invites to be
//!   approved, and `send_revocation` after a wipe.
//! - `report`: a period's figures (`WaymarkStore.report(filter)`) and CSV/XLSX export.
//! - `types`: records and enums mirroring the core model, with every conversion.
//! - [`WaymarkError`]: one error, a variant per case an app can act on. A panic never crosses
//!   the boundary: it becomes `WaymarkError::Internal`.
//! - [`ChangeListener`], [`SyncProgressListener`], [`CancellationToken`]: hearing about
//!   changes and sync progress, and stopping a sync.

uniffi::setup_scaffolding!("waymark");

mod check_ins;
mod error;
mod listeners;
mod report;
mod store;
mod team;
// Calls that panic on purpose, for the binding suites; never in a library an app ships.
#[cfg(feature = "test-hooks")]
mod test_hooks;
mod tips;
mod types;
mod wipe;

pub use error::{Result, WaymarkError};
pub use listeners::{
    CancellationToken, ChangeListener, ChangeListenerHandle, SyncProgressListener,
};
pub use report::{
    ExportOptions, ExportSummary, MonthFigures, Report, ReportFilter, VisitFigures, WorkshopFigures,
};
pub use store::WaymarkStore;
pub use team::send_revocation;
#[cfg(feature = "test-hooks")]
pub use test_hooks::{
    debug_force_internal_error, debug_force_internal_error_async, debug_force_panic,
};
pub use tips::{read_tip_replies, send_tip};
pub use types::*;
pub use wipe::{PendingRevocation, WipeReport, destroy_store_files};
