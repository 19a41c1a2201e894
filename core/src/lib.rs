//! Waymark's client core: field visits and awareness workshops recorded offline as Automerge
//! documents in an encrypted SQLite store, merged with teammates' copies.
//!
//! ```no_run
//! use waymark_core::{NewVisit, Place, Store};
//!
//! # fn main() -> waymark_core::Result<()> {
//! let key = [7u8; 32]; // from Android Keystore / iOS Keychain
//! let store = Store::open("waymark.db", &key)?;
//! let team = store.create_workspace("North district outreach")?;
//! let id = store.create_visit(&team.id, &NewVisit {
//!     place: Place { name: "Bus station".into(), area: "North".into(), coordinates: None },
//!     occurred_at: 1_764_000_000_000,
//!     visit_type: "transit_point".into(),
//!     people_reached: 4,
//!     indicators: vec!["deception".into()],
//!     notes: "Two young men waiting for a recruiter.".into(),
//!     ..Default::default()
//! })?;
//! store.set_visit_notes(&id, "Two young men waiting for a recruiter; one holds no passport.")?;
//! # Ok(()) }
//! ```
//!
//! Every method is blocking and returns only after its transaction committed; call it from a
//! worker thread. See `docs/` in the repository for the reasoning behind the layout.

mod crypto;
mod duplicates;
mod error;
mod exchange;
mod export;
// Fixture stores under a fixed key: compiled only for the fuzz targets and their seed tests.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod ids;
mod invite;
mod model;
mod records;
mod report;
mod store;
mod sync;
mod validate;

pub use duplicates::{AttendeeRef, DuplicateMatch, DuplicatePair};
pub use error::{CodecError, Corruption, Error, Result};
pub use export::{Cell, ExportOptions, ExportSummary, Table};
pub use model::*;
pub use records::settings::TAXONOMIES;
pub use report::{MonthFigures, Report, ReportFilter, VisitFigures, WorkshopFigures};
pub use store::{ExportError, StorageError};
pub use store::{KEY_LEN, PendingRevocation, Store, WipeReport};
pub use sync::log::{AlertKind, TeamAlert};
pub use sync::team::{PendingJoin, TeamMember, TeamStatus, TeamTrust};
pub use sync::{
    CheckIn, CheckInDetails, CheckInState, CompactReport, ProgressFn, SetAside, SyncOptions,
    SyncPhase, SyncProgress, SyncReport, TipAnswer, TipFields, TipPage, TipPageLanguage,
    read_tip_replies, send_tip,
};
pub use sync::{NetworkError, Refusal};
