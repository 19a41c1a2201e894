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
//! - secrets are never stored: tokens arrive here already hashed ([`TokenHash`]);
//! - a workspace's team (devices, their keys and roles, the key epoch and the wrapped keys) has
//!   a version that grows with every enrollment, revocation and key upload, and a device's
//!   `revoked_at_seq` is the head sequence number when its revocation committed: no blob of it
//!   gets a higher number;
//! - every blob keeps the chain hash of the log up to it ([`waymark_protocol::chain_next`]),
//!   computed when its number is assigned: a log rewound by a restore and written again shows
//!   devices other hashes for the numbers they had seen.

pub mod postgres;
pub mod pull_page;
pub mod sqlite;
pub mod team_log;

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use waymark_protocol::{
    AppendRequest, CHAIN_START, ChainHash, ChainResponse, ContentId, KeysRequest, PublicKey,
    PullResponse, PushBlob, TeamResponse, chain_next, roles,
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
}

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
