//! Storage of the server: workspaces, devices, enrollment tokens and the blob log, behind one
//! backend-neutral trait.
//!
//! The trait is **blocking**: the HTTP layer calls it through `tokio::task::spawn_blocking`, never
//! on the async executor. SQLite ([`sqlite::SqliteStorage`]) is the default backend;
//! PostgreSQL ([`postgres::PostgresStorage`]) serves several server processes over one database.
//! Both pass the same test suites (`tests/storage.rs`, `tests/api.rs`).
//!
//! Invariants every backend keeps:
//! - sequence numbers of a workspace are 1, 2, 3, ... with no gaps, and a number is visible to
//!   [`Storage::pull`] only once every smaller number is committed;
//! - a push batch is stored whole or not at all, and a blob whose content id is already stored in
//!   the workspace is not stored again (its earlier sequence number is answered);
//! - secrets are never stored: tokens arrive here already hashed ([`TokenHash`]).

pub mod postgres;
pub mod sqlite;

use serde::Serialize;
use waymark_protocol::{PullResponse, PushBlob};

/// SHA-256 of a token: the only form in which device and enrollment tokens are stored.
pub type TokenHash = [u8; 32];

/// An enrolled, not revoked device, as authentication finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The device's public id.
    pub id: String,
    /// The public id of the only workspace the device may read and write.
    pub workspace_id: String,
}

/// A workspace as created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Workspace {
    /// Its public id.
    pub id: String,
    /// The operator's label for it, if any.
    pub name: Option<String>,
    /// Creation time, unix seconds.
    pub created_at: i64,
}

/// One device as the operator sees it in `devices list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceInfo {
    /// The device's public id.
    pub id: String,
    /// The name given at enrollment.
    pub name: String,
    /// Its workspace's public id.
    pub workspace_id: String,
    /// Enrollment time, unix seconds.
    pub enrolled_at: i64,
    /// Last push or pull, unix seconds (pull times are recorded at most once a minute).
    pub last_sync_at: Option<i64>,
    /// Blobs first pushed by this device and still stored.
    pub blobs_stored: u64,
    /// Ciphertext bytes of those blobs.
    pub bytes_stored: u64,
    /// Revocation time, unix seconds, if revoked.
    pub revoked_at: Option<i64>,
}

/// Usage of one workspace, for `usage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkspaceUsage {
    /// The workspace's public id.
    pub id: String,
    /// The operator's label for it, if any.
    pub name: Option<String>,
    /// Devices not revoked.
    pub active_devices: u64,
    /// Devices revoked.
    pub revoked_devices: u64,
    /// Blobs whose ciphertext is still stored.
    pub blobs: u64,
    /// Their ciphertext bytes.
    pub bytes: u64,
    /// The highest sequence number assigned.
    pub head_seq: u64,
}

/// What a push stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushOutcome {
    /// One sequence number per pushed blob, in order.
    pub assigned: Vec<u64>,
    /// How many blobs were new (the rest were repeats of stored content ids).
    pub newly_stored: u64,
    /// Ciphertext bytes of the new blobs.
    pub bytes_stored: u64,
}

/// What a compaction dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct CompactReport {
    /// Superseded blobs whose ciphertext was dropped.
    pub blobs_dropped: u64,
    /// Their ciphertext bytes.
    pub bytes_dropped: u64,
}

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// No workspace or device with that id.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. "workspace 0a1b...".
        what: String,
    },
    /// The enrollment token is not known.
    #[error("unknown enrollment token")]
    TokenUnknown,
    /// The enrollment token has expired.
    #[error("enrollment token expired")]
    TokenExpired,
    /// The enrollment token was already used.
    #[error("enrollment token already used")]
    TokenUsed,
    /// The device was revoked (or is unknown) when the write ran.
    #[error("device revoked")]
    DeviceRevoked,
    /// The request contradicts stored data.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database was written by a newer server version; it is left untouched.
    #[error("database schema version {found} is newer than this server supports ({supported})")]
    NewerSchema {
        /// The version found in the file.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// A filesystem error (creating the data directory, backup destination, ...).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The backend failed.
    #[error("database error: {0}")]
    Backend(#[from] Box<dyn std::error::Error + Send + Sync>),
}

/// Result of a storage operation.
pub type StorageResult<T> = Result<T, StorageError>;

/// The server's storage backend. Every method blocks; call it from a blocking thread.
pub trait Storage: Send + Sync + 'static {
    /// Creates a workspace with a fresh random id.
    fn create_workspace(&self, name: Option<&str>, now: i64) -> StorageResult<Workspace>;

    /// Stores a one-time enrollment token (by hash) for a workspace. `issued_by` is the device
    /// that asked for it, `None` for the operator. [`StorageError::NotFound`] if the workspace
    /// does not exist.
    fn issue_enrollment_token(
        &self,
        workspace_id: &str,
        token_hash: &TokenHash,
        expires_at: i64,
        issued_by: Option<&str>,
        now: i64,
    ) -> StorageResult<()>;

    /// Redeems an enrollment token: marks it used and enrolls a device with the given id, name and
    /// device token hash, in one transaction. Returns the workspace id.
    fn enroll(
        &self,
        enrollment_token: &TokenHash,
        device_id: &str,
        device_name: &str,
        device_token: &TokenHash,
        now: i64,
    ) -> StorageResult<String>;

    /// Finds the device holding a token; `None` if the token is unknown or the device revoked.
    fn authenticate(&self, device_token: &TokenHash) -> StorageResult<Option<Device>>;

    /// Appends a batch of blobs to the device's workspace log, all or nothing. Blobs must already
    /// be validated (content id matches ciphertext).
    fn push(&self, device: &Device, blobs: &[PushBlob], now: i64) -> StorageResult<PushOutcome>;

    /// Reads blobs with `seq > after` in order, up to `max_bytes` of ciphertext (the first blob is
    /// returned whatever its size) and at most `max_blobs` blobs.
    fn pull(
        &self,
        workspace_id: &str,
        after: u64,
        max_bytes: u64,
        max_blobs: usize,
    ) -> StorageResult<PullResponse>;

    /// Records that a device synced at `now`.
    fn touch_device(&self, device_id: &str, now: i64) -> StorageResult<()>;

    /// Lists devices, of one workspace or all.
    fn list_devices(&self, workspace_id: Option<&str>) -> StorageResult<Vec<DeviceInfo>>;

    /// Revokes a device: its token stops working at once, and enrollment tokens it issued that are
    /// still unused are expired. Revoking a revoked device is not an error.
    fn revoke_device(&self, device_id: &str, now: i64) -> StorageResult<()>;

    /// Usage per workspace.
    fn usage(&self) -> StorageResult<Vec<WorkspaceUsage>>;

    /// Drops the ciphertext of blobs superseded at or before `superseded_before` (unix seconds).
    /// Their sequence numbers and content ids stay, so retried pushes remain idempotent and
    /// cursors stay valid; pulls no longer return them.
    fn compact(&self, superseded_before: i64) -> StorageResult<CompactReport>;

    /// Checks that the database answers.
    fn health(&self) -> StorageResult<()>;
}
