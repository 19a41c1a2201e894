//! The public error of `waymark-core`: each variant is a case a caller can act on.
//!
//! The rich errors live with the modules that raise them (`store::StorageError`,
//! `sync::NetworkError`, [`Corruption`] for what does not decode) and keep their causes
//! (`rusqlite`, `reqwest`, `std::io`, the decoders): `std::error::Error::source()` walks the
//! whole chain, for logs and for code that must tell a timeout from a refusal. Each message
//! names its own step and ends with its cause's message, as `rusqlite` and `std::io` messages
//! name SQL, types and OS errors, never bound values or record contents; a cause whose message
//! could quote decoded data is kept out of messages on purpose (see `sync::snapshot::unpack`).

use std::fmt;

use thiserror::Error;

pub(crate) use crate::store::StorageError;
pub(crate) use crate::sync::NetworkError;

/// Everything that can go wrong in a store call.
///
/// Messages never carry record contents or key material: they name fields, ids and causes only.
#[derive(Debug, Error)]
pub enum Error {
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
    /// The key does not open this database (or the file is not a Waymark store at all).
    #[error("wrong key: the store cannot be opened with this key")]
    WrongKey,
    /// The database was written by a newer Waymark; it was left untouched.
    #[error("the store has schema version {found}, newer than this Waymark supports ({supported})")]
    NewerSchema {
        /// The `user_version` found in the file.
        found: i64,
        /// The highest version this build understands.
        supported: i64,
    },
    /// A schema migration failed and was rolled back; the data is as it was.
    #[error("migration to schema version {version} failed and was rolled back: {source}")]
    Migration {
        /// The version that could not be reached.
        version: i64,
        /// The SQLite error that stopped it.
        #[source]
        source: rusqlite::Error,
    },
    /// Bytes handed in (an exchange bundle, a chunk) or found on disk could not be decoded.
    #[error("corrupt data: {0}")]
    Corrupt(#[source] Corruption),
    /// Sealed data failed authentication: altered, sealed with another key, or moved to
    /// another document, workspace or epoch. It was not applied.
    #[error("tampered data: {0}")]
    Tampered(String),
    /// The workspace is not known to this store (it was never joined, or the data belongs to
    /// another team).
    #[error("unknown workspace {workspace}: join it with an invite first")]
    UnknownWorkspace {
        /// The workspace id.
        workspace: String,
    },
    /// The invite code could not be read.
    #[error("invalid invite: {0}")]
    InvalidInvite(String),
    /// The invite's one-time token has expired.
    #[error("the invite has expired: ask for a new one")]
    InviteExpired,
    /// The invite's one-time token was already used.
    #[error("the invite was already used: ask for a new one")]
    InviteUsed,
    /// The server refused this device: it was revoked. Sync of that workspace stops for good.
    #[error("this device's access to the workspace was revoked")]
    DeviceRevoked,
    /// The server does not know this device (restored from a backup made before it enrolled,
    /// or a proxy that drops credentials): nothing is deleted and sync is tried again each
    /// time; if it persists, a coordinator should enrol the phone again.
    #[error("the server does not recognise this device: ask your coordinator to re-enrol it")]
    DeviceUnknown,
    /// The server's answers contradict what this device verified (team history that forks,
    /// rolls back without being healed, is not signed by the team's coordinators, or is hidden):
    /// sync of that workspace stops until the server shows the real history. Nothing was
    /// sealed to a key the team did not admit. `team_status` says what was seen.
    #[error("the server misbehaved: {0}")]
    HostileServer(String),
    /// This device's role in the team does not allow it (e.g. a member revoking another
    /// device, or approving a join).
    #[error("not permitted: {0}")]
    NotPermitted(String),
    /// The server could not be reached or answered with an error; nothing was lost, retry later.
    #[error("network: {0}")]
    Network(#[from] NetworkError),
    /// The operation was cancelled; what completed before stays committed.
    #[error("cancelled")]
    Cancelled,
    /// The device's storage is full; nothing was written.
    #[error("storage full: nothing was written")]
    StorageFull,
    /// Any other failure of the underlying storage (I/O, locking).
    #[error("storage error: {0}")]
    Storage(#[from] StorageError),
    /// The store was wiped: its key and files are gone, and this handle can do nothing more.
    #[error("the store was wiped: its data and keys are gone")]
    Wiped,
}

/// Shorthand for results of store calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An `InvalidInput` for `field` with `reason`.
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidInput {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// A `Corrupt` for `what`, found by a check of Waymark's own (no decoder error behind it).
    pub(crate) fn corrupt(what: impl Into<String>) -> Self {
        Error::Corrupt(Corruption {
            what: what.into(),
            source: None,
        })
    }

    /// A `NotFound` describing `what`.
    pub(crate) fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound { what: what.into() }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ffi::ErrorCode;
        match e.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => Error::StorageFull,
            Some(ErrorCode::NotADatabase) => Error::WrongKey,
            Some(ErrorCode::DatabaseCorrupt) => {
                Error::Corrupt(Corruption::by("the database file is damaged", e))
            }
            // rusqlite's messages name SQL and types, never bound values, so they carry no record data.
            _ => Error::Storage(StorageError::Sql(e)),
        }
    }
}

impl From<automerge::AutomergeError> for Error {
    fn from(e: automerge::AutomergeError) -> Self {
        Error::Corrupt(Corruption::by("document", e))
    }
}

/// What could not be decoded, and the decoder's own error when there is one.
#[derive(Debug)]
pub struct Corruption {
    what: String,
    source: Option<Box<CodecError>>,
}

impl Corruption {
    /// `what` could not be decoded, and `source` says why.
    pub(crate) fn by(what: impl Into<String>, source: impl Into<CodecError>) -> Self {
        Corruption {
            what: what.into(),
            source: Some(Box::new(source.into())),
        }
    }
}

/// A corruption found by a check of Waymark's own, with no decoder error behind it.
impl From<&str> for Corruption {
    fn from(what: &str) -> Self {
        Corruption {
            what: what.into(),
            source: None,
        }
    }
}

/// A corruption found by a check of Waymark's own, with no decoder error behind it.
impl From<String> for Corruption {
    fn from(what: String) -> Self {
        Corruption { what, source: None }
    }
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(cause) => write!(f, "{}: {cause}", self.what),
            None => f.write_str(&self.what),
        }
    }
}

impl std::error::Error for Corruption {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// The decoder errors behind a [`Corruption`].
#[derive(Debug, Error)]
pub enum CodecError {
    /// CBOR that does not decode into the expected type.
    #[error(transparent)]
    Cbor(#[from] ciborium::de::Error<std::io::Error>),
    /// An Automerge document or chunk that does not load.
    #[error(transparent)]
    Document(#[from] automerge::AutomergeError),
    /// A team log that does not replay under its rules.
    #[error(transparent)]
    TeamLog(#[from] waymark_protocol::team_log::LogError),
    /// A value refused by Waymark's own checks (an id in a bundle).
    #[error(transparent)]
    Refused(#[from] Box<Error>),
    /// SQLite found the database file damaged.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}
