//! Storage of the server: workspaces, devices, enrollment tokens and the blob log, behind one
//! backend-neutral trait.
//!
//! The trait is **blocking**: the HTTP layer calls it through `tokio::task::spawn_blocking`, never
//! on the async executor. SQLite ([`sqlite::SqliteStorage`]) is the default backend;
//! PostgreSQL ([`postgres::PostgresStorage`]) serves several server processes over one database.
//! Both pass the same test suites (`common::backend_tests!` in `tests/storage.rs`, `tests/api.rs`,
//! ...), and the reads that are the same SQL on both are written once in `reads`.
//!
//! Invariants every backend keeps:
//! - sequence numbers of a workspace are 1, 2, 3, ... with no gaps, and a number is visible to
//!   [`Storage::pull`] only once every smaller number is committed;
//! - a push batch is stored whole or not at all, and a blob whose content id is already stored in
//!   the workspace is not stored again (its earlier sequence number is answered);
//! - secrets are never stored: tokens arrive here already hashed ([`TokenHash`]);
//! - a workspace's team (devices, their keys and roles, the key epoch and the wrapped keys) has
//!   a version that grows with every enrollment, revocation and key upload, and a device's
//!   `revoked_at_seq` is the head sequence number when its revocation committed: no blob of it
//!   gets a higher number;
//! - every blob keeps the chain hash of the log up to it ([`waymark_protocol::chain_next`]),
//!   computed when its number is assigned: a log rewound by a restore and written again shows
//!   devices other hashes for the numbers they had seen;
//! - a check-in is updated only by the device that started it, keeps the highest version it was
//!   sent, never reopens once closed or raised, and every change of a workspace's check-ins
//!   (an update, the watcher marking one overdue, a purge) bumps the workspace's check-ins
//!   version in the same transaction ([`plan_check_in`]);
//! - an alert owed (overdue, alarm) is in the database until a watcher records it delivered:
//!   a claim holds [`ALERT_CLAIM_SECS`], so an alert whose process died is claimed again;
//! - a tip is stored as the tipster's browser sealed it with the hour it arrived, nothing else
//!   (no address, no user agent, no exact time); a workspace's `tips_waiting` is the number of
//!   its tips stored, changed in the transaction that stores or deletes them, and its tip
//!   numbers are never reused; a workspace has at most one tip page, and a page path belongs to
//!   one workspace.

pub mod postgres;
pub mod pull_page;
mod reads;
pub mod sqlite;
pub mod team_log;

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use waymark_protocol::{
    AppendRequest, CHAIN_START, ChainHash, ChainResponse, CheckInEntry, CheckInRequest,
    CheckInResponse, CheckInsResponse, ContentId, DocId, KeysRequest, PublicKey, PullResponse,
    PushBlob, TeamResponse, TipEntry, TipPageRequest, TipReplyRequest, chain_next, check_in_states,
    limits, roles,
};

/// SHA-256 of a token: the only form in which device and enrollment tokens are stored.
pub type TokenHash = [u8; 32];

/// An enrolled, not revoked device, as authentication finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The device's public id.
    pub id: String,
    /// The public id of the only workspace the device may read and write.
    pub workspace_id: String,
    /// Its role, from [`roles`].
    pub role: String,
}

impl Device {
    /// Whether the device is a coordinator's.
    pub fn is_coordinator(&self) -> bool {
        self.role == roles::COORDINATOR
    }
}

/// A device about to be enrolled: what the enrollment request and the server chose for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDevice {
    /// Its public id.
    pub id: String,
    /// The name given at enrollment.
    pub name: String,
    /// Hash of the device token the server hands out.
    pub token_hash: TokenHash,
    /// Its Ed25519 public key.
    pub sign_key: PublicKey,
    /// Its X25519 public key.
    pub box_key: PublicKey,
    /// The join proof it presented, if any.
    pub join_proof: Option<Vec<u8>>,
    /// The Automerge actor id it declared, if any.
    pub actor: Option<Vec<u8>>,
}

/// What an enrollment created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolled {
    /// The workspace the device joined.
    pub workspace_id: String,
    /// The role the enrollment token gave it.
    pub role: String,
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
    /// Its role, from [`roles`].
    pub role: String,
    /// If revoked: the workspace's head sequence number when the revocation took effect.
    pub revoked_at_seq: Option<u64>,
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

/// How long finished (closed or raised) check-ins stay listed, and stored once their alert is
/// done: a day, in seconds.
pub const CHECK_IN_KEPT_SECS: i64 = 86_400;

/// How long a watcher's claim on an alert holds, in seconds. A claim older than this (its process
/// died, or its hook failed) is claimed again, so every alert runs at least once; the hook's own
/// timeout is shorter, so one process never runs an alert twice at once.
pub const ALERT_CLAIM_SECS: i64 = 60;

/// How many times an alert is claimed before the server gives up on it.
pub const MAX_ALERT_ATTEMPTS: u32 = 10;

/// Why a check-in's alert is owed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AlertKind {
    /// Still open past its deadline and the grace period.
    Overdue,
    /// Raised by the worker (closed with the duress PIN).
    Alarm,
}

impl AlertKind {
    /// Its name, as stored and as the alert hook gets it (`WAYMARK_ALERT_KIND`).
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Overdue => check_in_states::OVERDUE,
            AlertKind::Alarm => check_in_states::ALARM,
        }
    }

    /// The kind stored as `name`.
    pub(crate) fn from_stored(name: &str) -> StorageResult<Self> {
        match name {
            check_in_states::OVERDUE => Ok(AlertKind::Overdue),
            check_in_states::ALARM => Ok(AlertKind::Alarm),
            other => Err(StorageError::Backend(
                format!("stored alert kind {other:?} is unknown").into(),
            )),
        }
    }
}

/// An alert a watcher claimed: what the alert hook is told, and what identifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckInAlert {
    /// The workspace's public id.
    pub workspace_id: String,
    /// The check-in's id.
    pub check_in: DocId,
    /// The name the check-in's device enrolled with.
    pub device_name: String,
    /// Why the alert is owed.
    pub kind: AlertKind,
    /// Whole minutes since the deadline when claimed (0 for an alarm).
    pub minutes_overdue: u64,
    /// How many times it was claimed, this claim included.
    pub attempts: u32,
    /// The check-in's version when claimed: a later update (an extension, an alarm) owes a new
    /// alert, which this one's delivery does not settle.
    pub version: u64,
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
    /// The device's role does not allow this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The request is invalid against what is stored (e.g. an envelope for an unknown device).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The request contradicts stored data.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A team log append does not follow the stored head: another coordinator appended first.
    #[error("team log moved: {0}")]
    LogMoved(String),
    /// A blob sealed under a key epoch older than the workspace's, once its team keeps a log.
    #[error("stale epoch: {0}")]
    StaleEpoch(String),
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

    /// Stores a one-time enrollment token (by hash) for a workspace, enrolling a device of
    /// `role`. `issued_by` is the device that asked for it, `None` for the operator.
    /// [`StorageError::NotFound`] if the workspace does not exist.
    fn issue_enrollment_token(
        &self,
        workspace_id: &str,
        token_hash: &TokenHash,
        expires_at: i64,
        issued_by: Option<&str>,
        role: &str,
        now: i64,
    ) -> StorageResult<()>;

    /// Redeems an enrollment token: marks it used and enrolls the device with the token's role,
    /// bumping the team version, in one transaction. [`StorageError::Conflict`] if another device
    /// of the workspace already has its sign key or box key.
    fn enroll(
        &self,
        enrollment_token: &TokenHash,
        device: &NewDevice,
        now: i64,
    ) -> StorageResult<Enrolled>;

    /// Finds the device holding a token; `None` if the token is unknown,
    /// [`StorageError::DeviceRevoked`] if its device was revoked.
    fn authenticate(&self, device_token: &TokenHash) -> StorageResult<Option<Device>>;

    /// The team of `caller`'s workspace, with the key envelopes sealed to `caller` and the team
    /// log's entries from index `log_from` on.
    fn team(&self, caller: &Device, log_from: u64) -> StorageResult<TeamResponse>;

    /// Appends coordinator-signed entries to the team log of `caller`'s workspace and stores
    /// the envelopes that come with them, all or nothing, after [`team_log::plan_append`]
    /// accepted them; the server's records follow the log (revoked devices' tokens stop
    /// working, roles and the epoch change) in the same transaction. Returns the log's length.
    fn append_team_log(
        &self,
        caller: &Device,
        request: &AppendRequest,
        now: i64,
    ) -> StorageResult<u64>;

    /// Stores wrapped workspace keys uploaded by a coordinator's device (see [`check_keys`]):
    /// with `rotate_to`, atomically moves the workspace to the new epoch. Returns the epoch
    /// after the upload.
    fn upload_keys(&self, caller: &Device, request: &KeysRequest, now: i64) -> StorageResult<u32>;

    /// Appends a batch of blobs to the device's workspace log, all or nothing. Blobs must already
    /// be validated (content id matches ciphertext). Each new blob must pass [`check_new_blob`]
    /// (its epoch, and who may supersede); a blob already stored answers its earlier number.
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

    /// The same page as [`pull`](Storage::pull), as the CBOR bytes of its [`PullResponse`]
    /// (what the API sends). Backends that can write the answer while reading their rows
    /// override it to skip building the blobs first.
    fn pull_encoded(
        &self,
        workspace_id: &str,
        after: u64,
        max_bytes: u64,
        max_blobs: usize,
    ) -> StorageResult<pull_page::EncodedPull> {
        let page = self.pull(workspace_id, after, max_bytes, max_blobs)?;
        Ok(pull_page::EncodedPull::from_response(&page))
    }

    /// The head of `workspace_id`'s log and the chain hash at each of `seqs` up to it, in the
    /// order asked (numbers beyond the head are left out).
    fn chain(&self, workspace_id: &str, seqs: &[u64]) -> StorageResult<ChainResponse>;

    /// Records that a device synced at `now`.
    fn touch_device(&self, device_id: &str, now: i64) -> StorageResult<()>;

    /// Lists devices, of one workspace or all.
    fn list_devices(&self, workspace_id: Option<&str>) -> StorageResult<Vec<DeviceInfo>>;

    /// Revokes a device (the operator's command): its token stops working at once, enrollment
    /// tokens it issued that are still unused are expired, the workspace needs a key rotation.
    /// Returns the workspace's head sequence number at the revocation; revoking a revoked device
    /// is not an error and answers the first revocation's number.
    fn revoke_device(&self, device_id: &str, now: i64) -> StorageResult<u64> {
        self.revoke_device_by(None, device_id, now)
    }

    /// Like [`revoke_device`](Storage::revoke_device), asked by `caller` when given: a
    /// coordinator may revoke any device of its workspace, any device itself
    /// ([`StorageError::Forbidden`] otherwise); a device of another workspace is
    /// [`StorageError::NotFound`].
    fn revoke_device_by(
        &self,
        caller: Option<&Device>,
        device_id: &str,
        now: i64,
    ) -> StorageResult<u64>;

    /// Usage per workspace.
    fn usage(&self) -> StorageResult<Vec<WorkspaceUsage>>;

    /// Drops the ciphertext of blobs superseded at or before `superseded_before` (unix seconds).
    /// Their sequence numbers and content ids stay, so retried pushes remain idempotent and
    /// cursors stay valid; pulls no longer return them.
    fn compact(&self, superseded_before: i64) -> StorageResult<CompactReport>;

    /// Checks that the database answers.
    fn health(&self) -> StorageResult<()>;

    /// Stores an update of one of `device`'s check-ins by the rules of [`check_check_in`] and
    /// [`plan_check_in`]; answers the deadline and version stored.
    fn put_check_in(
        &self,
        device: &Device,
        request: &CheckInRequest,
        now: i64,
    ) -> StorageResult<CheckInResponse>;

    /// The check-ins of `workspace_id` as `GET /v1/check-ins` lists them at `now` with a grace
    /// period of `grace_secs` (see [`CheckInRow::listed`]).
    fn check_ins(
        &self,
        workspace_id: &str,
        now: i64,
        grace_secs: u64,
    ) -> StorageResult<CheckInsResponse>;

    /// Marks open check-ins whose deadline plus `grace_secs` is at or before `now` overdue,
    /// owing an overdue alert; returns how many.
    fn mark_overdue_check_ins(&self, now: i64, grace_secs: u64) -> StorageResult<u64>;

    /// Deletes closed and raised check-ins last updated more than [`CHECK_IN_KEPT_SECS`] before
    /// `now` whose alert is delivered, given up or not owed; returns how many.
    fn purge_check_ins(&self, now: i64) -> StorageResult<u64>;

    /// Claims every alert owed, not delivered, claimed fewer than [`MAX_ALERT_ATTEMPTS`] times
    /// and not claimed in the last [`ALERT_CLAIM_SECS`] (by any server process).
    fn claim_check_in_alerts(&self, now: i64) -> StorageResult<Vec<CheckInAlert>>;

    /// Records `alert` delivered. `false` (and nothing changes) when the check-in no longer owes
    /// it: a later update settled it or owes another. A failed delivery is simply not recorded:
    /// the claim expires and the alert is claimed again.
    fn check_in_alert_done(&self, alert: &CheckInAlert, now: i64) -> StorageResult<bool>;

    /// Publishes the tip page of `caller`'s workspace, replacing the one before (whose path then
    /// leads nowhere): the caller must be a coordinator's device, not revoked
    /// ([`StorageError::Forbidden`], [`StorageError::DeviceRevoked`]), the statement must pass
    /// [`crate::tips::check_tip_page`] against its stored sign key ([`StorageError::Invalid`]),
    /// and its path must not be another workspace's page ([`StorageError::Conflict`]).
    fn put_tip_page(
        &self,
        caller: &Device,
        request: &TipPageRequest,
        now: i64,
    ) -> StorageResult<()>;

    /// The tip page of `workspace_id` as published, `None` before the first.
    fn tip_page(&self, workspace_id: &str) -> StorageResult<Option<TipPageRequest>>;

    /// The signed statement (CBOR) of the page at path `page`, `None` when no workspace has it.
    fn tip_page_statement(&self, page: &str) -> StorageResult<Option<Vec<u8>>>;

    /// Stores a tip posted to the page at path `page` ([`StorageError::NotFound`] when no
    /// workspace has it) with the hour of `now`, unless `max_waiting` tips of the workspace are
    /// waiting already ([`TipReceipt::Full`]).
    fn submit_tip(
        &self,
        page: &str,
        tip: &NewTip,
        max_waiting: u64,
        now: i64,
    ) -> StorageResult<TipReceipt>;

    /// The tips waiting in `workspace_id`, oldest first, at most `max`.
    fn tips(&self, workspace_id: &str, max: usize) -> StorageResult<Vec<TipEntry>>;

    /// Deletes the tips of `caller`'s workspace with these numbers (numbers of no waiting tip of
    /// the workspace are ignored); the caller must be a coordinator's device, not revoked.
    /// Returns how many were deleted.
    fn tips_done(&self, caller: &Device, ids: &[u64]) -> StorageResult<u64>;

    /// Keeps a reply sealed to a tipster under its receipt's lookup id in `caller`'s workspace:
    /// the caller must be a coordinator's device, not revoked; a lookup holding
    /// [`limits::MAX_TIP_REPLIES`] replies already is [`StorageError::Conflict`].
    fn put_tip_reply(&self, caller: &Device, request: &TipReplyRequest) -> StorageResult<()>;

    /// The replies kept under `lookup` in the workspace whose page is at path `page`, oldest
    /// first; `None` when no workspace has that page.
    fn tip_replies(&self, page: &str, lookup: &[u8]) -> StorageResult<Option<Vec<TipReply>>>;
}

/// A tip as a tipster's browser posted it, its base64 decoded (see
/// [`crate::tips::decode_submission`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTip {
    /// The epoch of the tip key it is sealed to.
    pub epoch: u32,
    /// The one-time public key.
    pub ephemeral: [u8; 32],
    /// The nonce.
    pub nonce: [u8; 24],
    /// The sealed tip.
    pub sealed: Vec<u8>,
}

/// What became of a submitted tip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TipReceipt {
    /// It is stored, waiting for a coordinator's device.
    Stored,
    /// The workspace has as many tips waiting as it may: nothing was stored.
    Full,
}

/// A reply sealed to a tipster, as kept under a receipt's lookup id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TipReply {
    /// The one-time public key it is sealed from.
    pub ephemeral: [u8; 32],
    /// The nonce.
    pub nonce: [u8; 24],
    /// The sealed reply.
    pub sealed: Vec<u8>,
}

/// Whether a device of role `role` may handle the workspace's tips (coordinators only: the
/// tip key is derived from the restricted key only they hold).
pub(crate) fn check_may_handle_tips(role: &str) -> StorageResult<()> {
    if role == roles::COORDINATOR {
        Ok(())
    } else {
        Err(StorageError::Forbidden(
            "only a coordinator's device may handle the workspace's tips".into(),
        ))
    }
}

/// The first schema whose blobs carry their chain hash: both backends' migration runners fill
/// in the hashes of blobs stored before it ([`ChainFill`]) right after its script, before any
/// later script runs.
pub(crate) const CHAIN_SCHEMA: i64 = 4;

/// Chain hashes computed over blobs read in (workspace, sequence) order, for the migration that
/// gives blobs stored before chain hashes theirs.
#[derive(Debug, Default)]
pub(crate) struct ChainFill {
    at: Option<(i64, ChainHash)>,
}

impl ChainFill {
    /// The chain hash of blob `seq` of workspace row `workspace`, the next in order.
    pub(crate) fn next(&mut self, workspace: i64, seq: u64, content_id: &ContentId) -> ChainHash {
        let prev = match self.at {
            Some((w, chain)) if w == workspace => chain,
            _ => CHAIN_START,
        };
        let chain = chain_next(&prev, seq, content_id);
        self.at = Some((workspace, chain));
        chain
    }
}

/// A stored number as the unsigned number it was (never negative when written by this server).
pub(crate) fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// An unsigned number as stored (numbers past `i64::MAX` are refused before they get here).
pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The device a token authenticated, unless it was revoked (`revoked`).
pub(crate) fn live_or_revoked((device, revoked): (Device, bool)) -> StorageResult<Device> {
    match revoked {
        true => Err(StorageError::DeviceRevoked),
        false => Ok(device),
    }
}

/// Why an enrollment with a key already used in the workspace is refused.
pub(crate) const KEY_TAKEN: &str =
    "another device of this workspace already has this sign_key or box_key; generate new keys";

/// A pushed blob whose content id is already stored (blob `index` of the request) must be the
/// same blob again, a retry: one naming another document or key epoch is refused.
pub(crate) fn check_same_blob(
    index: usize,
    blob: &PushBlob,
    stored_doc_id: &[u8],
    stored_epoch: i64,
) -> StorageResult<()> {
    if stored_doc_id != blob.doc_id || stored_epoch != i64::from(blob.epoch) {
        return Err(StorageError::Conflict(format!(
            "blob {index}: this content id is already stored for another document or key epoch"
        )));
    }
    Ok(())
}

/// Checks blob `index` of a push that is not stored yet, for a device of role `role`, against
/// the workspace's key `epoch`:
/// - an epoch above the workspace's is [`StorageError::Invalid`]: no coordinator rotated to it,
///   so no teammate could ever open it (and it would be kept aside on every phone);
/// - once the workspace keeps a team log (`has_log`), an older epoch is
///   [`StorageError::StaleEpoch`]: a retired key may be held by a revoked device, so the
///   client must re-seal under the current key first;
/// - `supersedes` (compaction, or an erase or redaction, which let the server drop older blobs)
///   is a coordinator's, or the record author's: the device that pushed the document's first
///   stored blob (`author`; [`StorageError::Forbidden`] otherwise).
pub(crate) fn check_new_blob(
    index: usize,
    blob: &PushBlob,
    epoch: u32,
    has_log: bool,
    role: &str,
    author: bool,
) -> StorageResult<()> {
    if blob.epoch > epoch {
        return Err(StorageError::Invalid(format!(
            "blob {index}: epoch {} is beyond the workspace's key epoch {epoch}",
            blob.epoch
        )));
    }
    if has_log && blob.epoch < epoch {
        return Err(StorageError::StaleEpoch(format!(
            "blob {index}: epoch {} is retired; the workspace is at epoch {epoch}: fetch the \
             team, re-seal under the current key and push again",
            blob.epoch
        )));
    }
    if blob.supersedes.is_some() && role != roles::COORDINATOR && !author {
        return Err(StorageError::Forbidden(format!(
            "blob {index}: only a coordinator's device or the record's author may supersede \
             (compact, erase or redact) blobs"
        )));
    }
    if !blob.covers.is_empty() {
        if role != roles::COORDINATOR {
            return Err(StorageError::Forbidden(format!(
                "blob {index}: only a coordinator's device may push a snapshot"
            )));
        }
        if blob.supersedes.is_none()
            || !blob.covers.len().is_multiple_of(16)
            || blob.covers.len() / 16 > waymark_protocol::limits::MAX_SNAPSHOT_DOCS
        {
            return Err(StorageError::Invalid(format!(
                "blob {index}: a snapshot names what it supersedes and 1 to {} document ids of \
                 16 bytes",
                waymark_protocol::limits::MAX_SNAPSHOT_DOCS
            )));
        }
    }
    if blob.forget && blob.supersedes.is_none() {
        return Err(StorageError::Invalid(format!(
            "blob {index}: forget needs supersedes (the blobs it rewrites)"
        )));
    }
    Ok(())
}

/// The sequence number a snapshot blob covers up to (`None` for any other blob), as stored.
pub(crate) fn snapshot_upto(blob: &PushBlob) -> Option<i64> {
    blob.supersedes
        .filter(|_| !blob.covers.is_empty())
        .map(|n| i64::try_from(n).unwrap_or(i64::MAX))
}

/// A device's stored public key; all zeros for a device enrolled before device keys existed.
pub(crate) fn stored_key(bytes: Option<Vec<u8>>) -> StorageResult<PublicKey> {
    match bytes {
        None => Ok([0; 32]),
        Some(bytes) => {
            let len = bytes.len();
            PublicKey::try_from(bytes).map_err(|_| {
                StorageError::Backend(format!("stored key has {len} bytes, expected 32").into())
            })
        }
    }
}

/// Whether a device of role `caller_role` may revoke `target` (a coordinator: any device of its
/// workspace; anyone: itself).
pub(crate) fn check_may_revoke(
    caller: &Device,
    caller_role: &str,
    target: &str,
) -> StorageResult<()> {
    if caller.id == target || caller_role == roles::COORDINATOR {
        Ok(())
    } else {
        Err(StorageError::Forbidden(
            "only a coordinator's device may revoke another device".into(),
        ))
    }
}

/// Refuses `POST /v1/keys` once a workspace keeps a team log: its keys are sealed to the devices
/// the log admits, and uploaded with the log's entries.
pub(crate) fn keys_kept_in_log(has_log: bool) -> StorageResult<()> {
    if has_log {
        return Err(StorageError::Conflict(
            "this workspace's team is kept in a team log: upload keys with POST /v1/team/log"
                .into(),
        ));
    }
    Ok(())
}

/// Whether a device of role `caller_role` may upload wrapped keys (coordinators only).
pub(crate) fn check_may_upload_keys(caller_role: &str) -> StorageResult<()> {
    if caller_role == roles::COORDINATOR {
        Ok(())
    } else {
        Err(StorageError::Forbidden(
            "only a coordinator's device may upload workspace keys".into(),
        ))
    }
}

/// One device of a workspace as [`check_keys`] needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecipient {
    /// Its public id.
    pub id: String,
    /// Whether it was revoked.
    pub revoked: bool,
    /// Whether it has a box key (devices enrolled before device keys existed do not).
    pub has_box_key: bool,
}

/// Checks a key upload against the workspace as stored (both backends call it inside the
/// transaction that then stores the envelopes, with the workspace locked):
/// - every `signer_key` is the caller's stored sign key (else [`StorageError::Invalid`]);
/// - every recipient is a device of the workspace with a box key (else `Invalid`) and not
///   revoked (else [`StorageError::Conflict`]: it may have been revoked meanwhile);
/// - no (device, epoch) appears twice (`Invalid`);
/// - `rotate_to: Some(n)`: `n` is `epoch + 1` (else `Conflict`: another coordinator rotated
///   first), every envelope is of epoch `n` (`Invalid`), and one of them is the caller's own
///   (`Invalid`). Other devices may be left out: a coordinator seals new keys only to the
///   devices it vouches for, so a device the server (or a breach of it) slipped into the team
///   gets nothing, and it tops up devices it vouches for later (`rotate_to: None`);
/// - `rotate_to: None`: every envelope's epoch is at most `epoch` (`Invalid`).
pub fn check_keys(
    request: &KeysRequest,
    epoch: u32,
    caller_id: &str,
    caller_sign_key: Option<&PublicKey>,
    devices: &[KeyRecipient],
) -> StorageResult<()> {
    let by_id: HashMap<&str, &KeyRecipient> = devices.iter().map(|d| (d.id.as_str(), d)).collect();
    let mut seen = HashSet::new();
    for (index, envelope) in request.envelopes.iter().enumerate() {
        if caller_sign_key != Some(&envelope.signer_key) {
            return Err(StorageError::Invalid(format!(
                "envelope {index}: signer_key is not the calling device's sign key"
            )));
        }
        match by_id.get(envelope.device_id.as_str()) {
            None => {
                return Err(StorageError::Invalid(format!(
                    "envelope {index}: no device {} in this workspace",
                    envelope.device_id
                )));
            }
            Some(device) if device.revoked => {
                return Err(StorageError::Conflict(format!(
                    "envelope {index}: device {} is revoked",
                    envelope.device_id
                )));
            }
            Some(device) if !device.has_box_key => {
                return Err(StorageError::Invalid(format!(
                    "envelope {index}: device {} enrolled without a public key; re-enroll it",
                    envelope.device_id
                )));
            }
            Some(_) => {}
        }
        if !seen.insert((envelope.device_id.as_str(), envelope.epoch)) {
            return Err(StorageError::Invalid(format!(
                "envelope {index}: a second envelope for device {} and epoch {}",
                envelope.device_id, envelope.epoch
            )));
        }
    }
    match request.rotate_to {
        Some(next) => {
            if Some(next) != epoch.checked_add(1) {
                return Err(StorageError::Conflict(format!(
                    "rotate_to {next} is not the next epoch: the workspace is at epoch {epoch} \
                     (another coordinator may have rotated first; fetch the team and retry)"
                )));
            }
            if let Some((index, envelope)) = request
                .envelopes
                .iter()
                .enumerate()
                .find(|(_, e)| e.epoch != next)
            {
                return Err(StorageError::Invalid(format!(
                    "envelope {index}: epoch {} in a rotation to epoch {next}",
                    envelope.epoch
                )));
            }
            if !seen.contains(&(caller_id, next)) {
                return Err(StorageError::Invalid(format!(
                    "a rotation to epoch {next} must include an envelope for the rotating device"
                )));
            }
        }
        None => {
            if let Some((index, envelope)) = request
                .envelopes
                .iter()
                .enumerate()
                .find(|(_, e)| e.epoch > epoch)
            {
                return Err(StorageError::Invalid(format!(
                    "envelope {index}: epoch {} is beyond the workspace's epoch {epoch}; \
                     rotate with rotate_to",
                    envelope.epoch
                )));
            }
        }
    }
    Ok(())
}

/// Checks a check-in update on its own and against the workspace's key `epoch`; each refusal is
/// [`StorageError::Invalid`]: a state a device may not send, `due_in_secs` above
/// [`limits::MAX_CHECK_IN_DUE_SECS`], `sealed` empty or above
/// [`limits::MAX_CHECK_IN_SEALED_BYTES`], a version of 0 or above 2^63 − 1, an epoch above the
/// workspace's (nobody rotated to it, so no teammate could open the details).
pub fn check_check_in(request: &CheckInRequest, epoch: u32) -> StorageResult<()> {
    let invalid = |why: String| Err(StorageError::Invalid(why));
    if !check_in_states::is_sent(&request.state) {
        return invalid(format!(
            "state must be {:?}, {:?} or {:?}",
            check_in_states::OPEN,
            check_in_states::CLOSED,
            check_in_states::ALARM
        ));
    }
    if request.due_in_secs > limits::MAX_CHECK_IN_DUE_SECS {
        return invalid(format!(
            "due_in_secs must be at most {} (30 days)",
            limits::MAX_CHECK_IN_DUE_SECS
        ));
    }
    if request.sealed.is_empty() || request.sealed.len() > limits::MAX_CHECK_IN_SEALED_BYTES {
        return invalid(format!(
            "sealed must be 1 to {} bytes, it has {}",
            limits::MAX_CHECK_IN_SEALED_BYTES,
            request.sealed.len()
        ));
    }
    if request.version == 0 || request.version > limits::MAX_CURSOR {
        return invalid(format!(
            "version must be 1 to {} (counted by the device from 1)",
            limits::MAX_CURSOR
        ));
    }
    if request.epoch > epoch {
        return invalid(format!(
            "epoch {} is beyond the workspace's key epoch {epoch}",
            request.epoch
        ));
    }
    Ok(())
}

/// A stored check-in, as [`plan_check_in`] needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredCheckIn {
    /// Row key of the device that started it.
    pub device: i64,
    pub state: String,
    pub deadline: i64,
    pub version: u64,
    pub overdue_at: Option<i64>,
    pub alert_kind: Option<String>,
    pub alerted_at: Option<i64>,
}

/// What an update does to a check-in's alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AlertChange {
    /// Leaves it as it is.
    Keep,
    /// No alert is owed any more (bookkeeping reset).
    Clear,
    /// A new alert of this kind is owed (bookkeeping reset).
    Raise(AlertKind),
}

impl AlertChange {
    /// Whether the alert bookkeeping starts over, and the kind owed then: the parameters of the
    /// backends' `CASE WHEN reset THEN kind ELSE alert_kind END`.
    pub(crate) fn columns(self) -> (bool, Option<&'static str>) {
        match self {
            AlertChange::Keep => (false, None),
            AlertChange::Clear => (true, None),
            AlertChange::Raise(kind) => (true, Some(kind.as_str())),
        }
    }
}

/// The row an accepted update writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckInWrite {
    /// A new check-in (else the stored one is updated).
    pub insert: bool,
    pub state: &'static str,
    pub deadline: i64,
    pub overdue_at: Option<i64>,
    pub alert: AlertChange,
}

/// What a check-in update does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CheckInPlan {
    /// Nothing: a late or retried update. The answer is what is stored.
    Unchanged(CheckInResponse),
    /// Writes this row (and bumps the workspace's check-ins version).
    Write(CheckInWrite),
}

fn is_live(state: &str) -> bool {
    state == check_in_states::OPEN || state == check_in_states::OVERDUE
}

/// Decides what an update (already passed by [`check_check_in`]) of the check-in `stored` (none
/// yet: `None`) by device row `caller` does at `now`. Both backends call it inside the write
/// transaction, then write what it says:
/// - a check-in started by another device is [`StorageError::Forbidden`];
/// - a version at or below the stored one changes nothing and answers what is stored (a retry,
///   or an update that arrived after a later one);
/// - `open` starts the watch, or extends it: the deadline is `now + due_in_secs` on the
///   server's clock, and an overdue check-in is open again (its overdue alert settled);
///   starting one more than [`limits::MAX_OPEN_CHECK_INS`] open at once for one device (counted
///   by `open_count`, called only then) is [`StorageError::Conflict`];
/// - `closed` ends it, safe: the deadline stays; an overdue alert not yet delivered is no longer
///   owed (the worker is back);
/// - `alarm` raises it: an alarm alert is owed, whatever was before;
/// - a closed or raised check-in never reopens: a later `open` is [`StorageError::Conflict`]
///   (the device starts a new one, with a new id), and so is `closed` after `alarm` (only the
///   team stands an alarm down; a phone in someone else's hands cannot). A closed one may still
///   be raised, and a same-state update replaces the sealed details.
pub(crate) fn plan_check_in(
    stored: Option<&StoredCheckIn>,
    caller: i64,
    request: &CheckInRequest,
    now: i64,
    open_count: impl FnOnce() -> StorageResult<usize>,
) -> StorageResult<CheckInPlan> {
    use check_in_states::{ALARM, CLOSED, OPEN};
    let due = now.saturating_add(to_i64(request.due_in_secs));
    let Some(stored) = stored else {
        let (state, alert) = match request.state.as_str() {
            OPEN => {
                if open_count()? >= limits::MAX_OPEN_CHECK_INS {
                    return Err(StorageError::Conflict(format!(
                        "this device has {} check-ins open already; close one first",
                        limits::MAX_OPEN_CHECK_INS
                    )));
                }
                (OPEN, AlertChange::Keep)
            }
            CLOSED => (CLOSED, AlertChange::Keep),
            _ => (ALARM, AlertChange::Raise(AlertKind::Alarm)),
        };
        return Ok(CheckInPlan::Write(CheckInWrite {
            insert: true,
            state,
            deadline: due,
            overdue_at: None,
            alert,
        }));
    };
    if stored.device != caller {
        return Err(StorageError::Forbidden(
            "this check-in was started by another device; only that device may update it".into(),
        ));
    }
    if request.version <= stored.version {
        return Ok(CheckInPlan::Unchanged(CheckInResponse {
            deadline: to_u64(stored.deadline),
            version: stored.version,
        }));
    }
    let keep = |state, alert| {
        Ok(CheckInPlan::Write(CheckInWrite {
            insert: false,
            state,
            deadline: stored.deadline,
            overdue_at: stored.overdue_at,
            alert,
        }))
    };
    match (stored.state.as_str(), request.state.as_str()) {
        (live, OPEN) if is_live(live) => Ok(CheckInPlan::Write(CheckInWrite {
            insert: false,
            state: OPEN,
            deadline: due,
            overdue_at: None,
            alert: AlertChange::Clear,
        })),
        (live, CLOSED) if is_live(live) => {
            let undelivered = stored.alert_kind.is_some() && stored.alerted_at.is_none();
            keep(
                CLOSED,
                match undelivered {
                    true => AlertChange::Clear,
                    false => AlertChange::Keep,
                },
            )
        }
        (CLOSED, CLOSED) => keep(CLOSED, AlertChange::Keep),
        (ALARM, ALARM) => keep(ALARM, AlertChange::Keep),
        (_, ALARM) => keep(ALARM, AlertChange::Raise(AlertKind::Alarm)),
        (ALARM, _) => Err(StorageError::Conflict(
            "this check-in raised an alarm, which stays raised; start a new check-in".into(),
        )),
        _ => Err(StorageError::Conflict(
            "this check-in is closed and never reopens; start a new one with a new id".into(),
        )),
    }
}

/// A check-in as read for the list, before [`listed`](CheckInRow::listed) decides how it shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckInRow {
    pub id: Vec<u8>,
    pub device_id: String,
    pub state: String,
    pub deadline: i64,
    pub overdue_at: Option<i64>,
    pub version: i64,
    pub epoch: u32,
    pub sealed: Vec<u8>,
}

impl CheckInRow {
    /// The entry as listed at `now`: an open check-in whose deadline plus `grace_secs` has come
    /// is `overdue` (since then) even before the watcher marked it, so a teammate never sees
    /// "open" for a worker who is late.
    pub(crate) fn listed(self, now: i64, grace_secs: u64) -> StorageResult<CheckInEntry> {
        let len = self.id.len();
        let id = DocId::try_from(self.id).map_err(|_| {
            StorageError::Backend(format!("stored check-in id has {len} bytes").into())
        })?;
        let overdue_from = self.deadline.saturating_add(to_i64(grace_secs));
        let (state, overdue_at) = match self.state == check_in_states::OPEN && now >= overdue_from {
            true => (check_in_states::OVERDUE.to_owned(), Some(overdue_from)),
            false => (self.state, self.overdue_at),
        };
        Ok(CheckInEntry {
            id,
            device_id: self.device_id,
            state,
            deadline: to_u64(self.deadline),
            overdue_since: overdue_at.map(to_u64),
            version: to_u64(self.version),
            epoch: self.epoch,
            sealed: self.sealed,
        })
    }
}

/// Whole minutes from `deadline` to `now` for an overdue alert; 0 for an alarm.
pub(crate) fn minutes_overdue(kind: AlertKind, deadline: i64, now: i64) -> u64 {
    match kind {
        AlertKind::Overdue => to_u64(now.saturating_sub(deadline) / 60),
        AlertKind::Alarm => 0,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    /// A migration that reads `chain`, run after the last real one: what a later migration
    /// would see of the chain hashes of blobs older than schema 4 (the same SQL on both).
    pub(crate) const READS_CHAIN: &str =
        "CREATE TABLE seen AS SELECT workspace, seq, chain FROM blobs";

    /// Every schema is written for both backends: a migration added to one and not the other
    /// would leave a version number meaning two different schemas.
    #[test]
    fn both_backends_have_the_same_schema_versions() {
        assert_eq!(
            super::sqlite::SCHEMA_VERSION,
            super::postgres::SCHEMA_VERSION
        );
    }
}
