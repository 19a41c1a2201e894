//! What can go wrong under the store: SQLite, files, encoders, and the few library calls whose
//! failure means a bug or a broken platform. Each keeps its cause; `Error::Storage` carries it
//! to the caller.

use thiserror::Error;

/// A failure of the device's storage or of a step that writes to it, with its cause.
#[derive(Debug, Error)]
pub enum StorageError {
    /// SQLite failed for another reason than a full disk, a wrong key or a damaged file.
    #[error("{0}")]
    Sql(#[source] rusqlite::Error),
    /// A file operation failed (wiping, compressing).
    #[error("{what}: {source}")]
    Io {
        /// The step that failed.
        what: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A value could not be encoded as CBOR.
    #[error("{what}: {source}")]
    Encode {
        /// The step that failed.
        what: &'static str,
        /// The encoder's error.
        #[source]
        source: ciborium::ser::Error<std::io::Error>,
    },
    /// A value could not be encoded as JSON.
    #[error("{what}: {source}")]
    Json {
        /// The step that failed.
        what: &'static str,
        /// The encoder's error.
        #[source]
        source: serde_json::Error,
    },
    /// Argon2 refused its parameters.
    #[error("{what}: {source}")]
    Hash {
        /// The step that failed.
        what: &'static str,
        /// Argon2's error.
        #[source]
        source: argon2::Error,
    },
    /// The clock's time could not be written down.
    #[error("the clock cannot be formatted: {0}")]
    Clock(#[source] time::error::Format),
    /// Writing an export failed; `file` names the file or part, never the data in it.
    #[error("export {file}: {source}")]
    Export {
        /// The file or part being written.
        file: String,
        /// The writer's error.
        #[source]
        source: ExportError,
    },
    /// A failure found by Waymark's own checks, or behind an error that is opaque on purpose
    /// (AEAD failures say nothing, so as to leak nothing).
    #[error("{0}")]
    Other(String),
}

/// A failure found by Waymark's own checks, with no error behind it.
impl From<&str> for StorageError {
    fn from(what: &str) -> Self {
        StorageError::Other(what.into())
    }
}

/// The writers' errors behind a failed export.
#[derive(Debug, Error)]
pub enum ExportError {
    /// Creating the directory or a file.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Writing a CSV file.
    #[error(transparent)]
    Csv(#[from] csv::Error),
    /// Writing the workbook.
    #[error(transparent)]
    Xlsx(#[from] rust_xlsxwriter::XlsxError),
}
