//! The one error of the boundary, and the guard that turns a panic into it.
//!
//! Each variant is a case an app can act on; it becomes `WaymarkException.<Variant>` in Kotlin,
//! `WaymarkError.<variant>` in Swift and `WaymarkError.<Variant>` in Python. The message
//! (`toString()` in Kotlin, `description` in Swift) never carries record contents or key
//! material: it names fields, ids and causes only, as the core's messages do.
//!
//! `From<waymark_core::Error>` is the one place a core error becomes a boundary error: the core
//! error's cause chain (`source()`: SQLite, HTTP, I/O, decoder errors) is logged there with
//! `tracing`, then flattened into the variant's `reason`, which is all a host language keeps.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

use waymark_core as wc;

/// Everything that can go wrong in a Waymark call.
#[derive(uniffi::Error, thiserror::Error, Debug, Clone, PartialEq)]
#[uniffi::export(Display)]
pub enum WaymarkError {
    /// The record, workspace or attendee asked for does not exist in this store.
    #[error("not found: {what}")]
    NotFound {
        /// What was looked for, e.g. `visit 3f2a…`.
        what: String,
    },
    /// An argument was refused before anything was written.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The field or argument at fault.
        field: String,
        /// Why it was refused.
        reason: String,
    },
    /// The key does not open this store (or the file is not a Waymark store at all).
    #[error("wrong key: the store cannot be opened with this key")]
    WrongKey,
    /// The store was written by a newer Waymark; it was left untouched. Update the app.
    #[error("the store has schema version {found}, newer than this Waymark supports ({supported})")]
    NewerSchema {
        /// The schema version found in the file.
        found: i64,
        /// The highest version this build understands.
        supported: i64,
    },
    /// A schema migration failed and was rolled back; the data is as it was.
    #[error("migration to schema version {version} failed and was rolled back: {reason}")]
    Migration {
        /// The version that could not be reached.
        version: i64,
        /// The underlying cause.
        reason: String,
    },
    /// Bytes handed in (an exchange bundle) or found on disk could not be decoded.
    #[error("corrupt data: {reason}")]
    Corrupt {
        /// What could not be decoded.
        reason: String,
    },
    /// Sealed data failed authentication and was not applied.
    #[error("tampered data: {reason}")]
    Tampered {
        /// What failed.
        reason: String,
    },
    /// The workspace is not known to this store: join it with an invite first.
    #[error("unknown workspace {workspace}: join it with an invite first")]
    UnknownWorkspace {
        /// The workspace id.
        workspace: String,
    },
    /// The invite code could not be read.
    #[error("invalid invite: {reason}")]
    InvalidInvite {
        /// What is wrong with it.
        reason: String,
    },
    /// The invite's one-time token has expired: ask for a new one.
    #[error("the invite has expired: ask for a new one")]
    InviteExpired,
    /// The invite's one-time token was already used: ask for a new one.
    #[error("the invite was already used: ask for a new one")]
    InviteUsed,
    /// The server refused this device: it was revoked. Sync of that workspace stops for good.
    #[error("this device's access to the workspace was revoked")]
    DeviceRevoked,
    /// The server does not recognise this device (restored from a backup made before it
    /// enrolled, or a proxy dropping credentials): nothing was deleted and sync keeps trying.
    /// If it persists, show "ask your coordinator to re-enrol this phone".
    #[error("the server does not recognise this device: ask your coordinator to re-enrol it")]
    DeviceUnknown,
    /// The server could not be reached or answered with an error; nothing was lost, retry later.
    #[error("network: {reason}")]
    Network {
        /// The cause.
        reason: String,
    },
    /// The operation was cancelled; what completed before stays committed.
    #[error("cancelled")]
    Cancelled,
    /// The device's storage is full; nothing was written.
    #[error("storage full: nothing was written")]
    StorageFull,
    /// Any other failure of the underlying storage (I/O, locking).
    #[error("storage error: {reason}")]
    Storage {
        /// The cause.
        reason: String,
    },
    /// The server's answers contradict what this device verified (team history that forks,
    /// is not signed by the team's coordinators, or is hidden): sync of that workspace stops
    /// until the server shows the real history. Show it to the user and tell the coordinator;
    /// `team_status` says what was seen.
    #[error("the server misbehaved: {reason}")]
    HostileServer {
        /// What this device noticed.
        reason: String,
    },
    /// This device's role in the team does not allow it (e.g. a member revoking another device).
    #[error("not permitted: {reason}")]
    NotPermitted {
        /// What was refused.
        reason: String,
    },
    /// The store was wiped (its key and files are gone): this handle can do nothing more.
    /// Open a new store to start again.
    #[error("the store was wiped: its data and keys are gone")]
    Wiped,
    /// A bug in Waymark (a panic, caught at the boundary). The process goes on; report it.
    #[error("internal error: {reason}")]
    Internal {
        /// What failed.
        reason: String,
    },
}

impl From<wc::Error> for WaymarkError {
    fn from(e: wc::Error) -> Self {
        use wc::Error as C;
        log(&e);
        match e {
            C::NotFound { what } => Self::NotFound { what },
            C::InvalidInput { field, reason } => Self::InvalidInput { field, reason },
            C::WrongKey => Self::WrongKey,
            C::NewerSchema { found, supported } => Self::NewerSchema { found, supported },
            C::Migration { version, source } => Self::Migration {
                version,
                reason: source.to_string(),
            },
            C::Corrupt(c) => Self::Corrupt {
                reason: c.to_string(),
            },
            C::Tampered(reason) => Self::Tampered { reason },
            C::UnknownWorkspace { workspace } => Self::UnknownWorkspace { workspace },
            C::InvalidInvite(reason) => Self::InvalidInvite { reason },
            C::InviteExpired => Self::InviteExpired,
            C::InviteUsed => Self::InviteUsed,
            C::DeviceRevoked => Self::DeviceRevoked,
            C::DeviceUnknown => Self::DeviceUnknown,
            C::NotPermitted(reason) => Self::NotPermitted { reason },
            C::HostileServer(reason) => Self::HostileServer { reason },
            C::Network(n) => Self::Network {
                reason: n.to_string(),
            },
            C::Cancelled => Self::Cancelled,
            C::StorageFull => Self::StorageFull,
            C::Storage(s) => Self::Storage {
                reason: s.to_string(),
            },
            C::Wiped => Self::Wiped,
        }
    }
}

/// Logs a core error with every cause behind it, at a level by how surprising it is: a failing
/// disk or a damaged file is an error, a network or server problem a warning, and a refusal the
/// app asked for (not found, invalid input, ...) only a debug line. Messages at every level name
/// steps, SQL, URLs and OS errors, never record contents or keys.
fn log(e: &wc::Error) {
    use wc::Error as C;
    let causes = Causes(e);
    match e {
        C::Storage(_) | C::StorageFull | C::Migration { .. } | C::Corrupt(_) => {
            tracing::error!(error = %e, caused_by = %causes, "a Waymark call failed");
        }
        C::Network(_)
        | C::Tampered(_)
        | C::HostileServer(_)
        | C::DeviceRevoked
        | C::DeviceUnknown => {
            tracing::warn!(error = %e, caused_by = %causes, "a Waymark call failed");
        }
        _ => tracing::debug!(error = %e, "a Waymark call was refused"),
    }
}

/// The messages of an error's causes (not the error itself), outermost first.
struct Causes<'a>(&'a wc::Error);

impl std::fmt::Display for Causes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut cause = std::error::Error::source(self.0);
        let mut first = true;
        while let Some(c) = cause {
            if !first {
                f.write_str(" <- ")?;
            }
            write!(f, "{c}")?;
            first = false;
            cause = c.source();
        }
        Ok(())
    }
}

/// Shorthand for results of boundary calls.
pub type Result<T, E = WaymarkError> = std::result::Result<T, E>;

/// Runs `f`, turning a panic into `WaymarkError::Internal` so it never unwinds into the host.
pub(crate) fn guard<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| Err(internal(&p)))
}

/// Runs a core call under `guard`, converting its error.
pub(crate) fn call<T>(f: impl FnOnce() -> wc::Result<T>) -> Result<T> {
    guard(|| f().map_err(WaymarkError::from))
}

/// `Internal` for a caught panic payload.
fn internal(payload: &Box<dyn Any + Send>) -> WaymarkError {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with no message".to_string());
    tracing::error!(panic = %what, "a Waymark call panicked");
    WaymarkError::Internal {
        reason: format!("panic: {what}"),
    }
}

/// Runs a blocking core call on its own thread and awaits its result without blocking the
/// caller's thread (or any async runtime: the core's HTTP client must not run on one).
pub(crate) async fn off_thread<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> wc::Result<T> + Send + 'static,
) -> Result<T> {
    let (tx, rx) = futures_channel::oneshot::channel();
    std::thread::Builder::new()
        .name(format!("waymark-{name}"))
        .spawn(move || {
            // The receiver is gone only if the caller stopped waiting; nothing to tell then.
            let _ = tx.send(call(f));
        })
        .map_err(|e| WaymarkError::Internal {
            reason: format!("could not start a worker thread: {e}"),
        })?;
    rx.await.unwrap_or_else(|_| {
        Err(WaymarkError::Internal {
            reason: "the worker thread ended without an answer".to_string(),
        })
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A log sink the test can read back.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_core_error_keeps_its_message_and_its_cause_is_logged() {
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let io = std::io::Error::new(std::io::ErrorKind::StorageFull, "disk quota exceeded");
        let core = wc::Error::Storage(wc::StorageError::Io {
            what: "wipe",
            source: io,
        });
        let e = tracing::subscriber::with_default(subscriber, || WaymarkError::from(core));
        // The message an app sees is what it was when the cause was a string.
        assert_eq!(
            e,
            WaymarkError::Storage {
                reason: "wipe: disk quota exceeded".into()
            }
        );
        let logged = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert!(logged.contains("ERROR"), "{logged}");
        assert!(
            logged.contains("caused_by=wipe: disk quota exceeded <- disk quota exceeded"),
            "{logged}"
        );
    }
}
