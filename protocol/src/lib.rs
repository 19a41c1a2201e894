//! Waymark's sync wire protocol: the request and response bodies that the client (`waymark-core`)
//! and the sync server (`waymark-server`) exchange, so the two cannot drift apart.
//!
//! Bodies are CBOR (RFC 8949) through `ciborium`; byte fields are CBOR byte strings. This crate
//! holds types and constants only (no HTTP, no runtime, no database) because phones link it.
//!
//! ```
//! use waymark_protocol::{PushBlob, PushRequest, content_id_of, decode, encode};
//!
//! let ciphertext = b"sealed bytes".to_vec();
//! let blob = PushBlob {
//!     content_id: content_id_of(&ciphertext),
//!     doc_id: [7; 16],
//!     epoch: 1,
//!     ciphertext,
//!     supersedes: None,
//!     forget: false,
//!     covers: Vec::new(),
//! };
//! let body = encode(&PushRequest { blobs: vec![blob.clone()] });
//! let back: PushRequest = decode(&body).unwrap();
//! assert_eq!(back.blobs, vec![blob]);
//! ```
//!
//! The HTTP API that carries these bodies is documented in `sync-server/API.md`.

pub mod team_log;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Path prefix of every versioned endpoint.
pub const API_PREFIX: &str = "/v1";
/// `POST`: enroll a device with a one-time enrollment token (unauthenticated).
pub const PATH_ENROLL: &str = "/v1/enroll";
/// `POST`: an enrolled device creates a one-time enrollment token for its own workspace.
pub const PATH_INVITES: &str = "/v1/invites";
/// `POST`: push a batch of blobs.
pub const PATH_PUSH: &str = "/v1/push";
/// `GET`: pull blobs after a cursor (query parameters `after`, `max_bytes`).
pub const PATH_PULL: &str = "/v1/pull";
/// `GET`: the caller's team: every device's public keys and role, the current key epoch, and the
/// workspace keys wrapped for the caller.
pub const PATH_TEAM: &str = "/v1/team";
/// `POST`: a coordinator's device uploads workspace keys wrapped for devices (a rotation to a new
/// epoch, or the approval of a joining device).
pub const PATH_KEYS: &str = "/v1/keys";
/// `POST`: revoke a device (a coordinator: any device of the workspace; anyone: itself).
pub const PATH_REVOKE: &str = "/v1/devices/revoke";
/// `POST`: append signed entries to the workspace's team log (compare-and-swap on its head),
/// with the key envelopes they call for.
pub const PATH_TEAM_LOG: &str = "/v1/team/log";
/// `GET`: the blob log's chain hash at given sequence numbers (query parameter `at`), so a device
/// whose cursor the log no longer matches (a restore from backup) finds where they part.
pub const PATH_CHAIN: &str = "/v1/chain";
/// `POST`: a device starts, extends or closes one of its safety check-ins; `GET`: the
/// workspace's check-ins, open, overdue, raised and recently closed.
pub const PATH_CHECK_INS: &str = "/v1/check-ins";
/// `GET`: the sealed tips waiting for the team (a coordinator's device only).
pub const PATH_TIPS: &str = "/v1/tips";
/// `POST`: a coordinator's device says which waiting tips it has stored as records: the server
/// deletes them.
pub const PATH_TIPS_DONE: &str = "/v1/tips/done";
/// `PUT`: a coordinator's device publishes the workspace's tip page (its path, the tip public
/// key, signed); `GET`: the page as published, for any device of the workspace to check.
pub const PATH_TIP_PAGE: &str = "/v1/tips/page";
/// `POST`: a coordinator's device leaves a reply, sealed to the tipster, under a receipt's
/// lookup id.
pub const PATH_TIP_REPLIES: &str = "/v1/tips/replies";
/// Prefix of the public tip routes, which need no token: `GET /t/{page}` is the tip page,
/// `POST /t/{page}/tips` takes a sealed tip (JSON, see [`TipSubmission`]), and
/// `GET /t/{page}/replies/{lookup}` lists the sealed replies left under a receipt (JSON).
pub const PATH_PUBLIC_TIPS: &str = "/t";
/// `GET`: liveness and database check (plain text).
pub const PATH_HEALTHZ: &str = "/healthz";
/// `GET`: Prometheus text exposition.
pub const PATH_METRICS: &str = "/metrics";

/// Content type of every request and response body under [`API_PREFIX`].
pub const CONTENT_TYPE_CBOR: &str = "application/cbor";
/// Header carrying the device token as `Bearer <token>`.
pub const HEADER_AUTHORIZATION: &str = "authorization";
/// Scheme prefix of the authorization header value.
pub const BEARER_PREFIX: &str = "Bearer ";
/// Header telling a rate-limited client how many seconds to wait.
pub const HEADER_RETRY_AFTER: &str = "retry-after";
/// Header with the server-assigned request id, echoed on every response (quote it in bug reports).
pub const HEADER_REQUEST_ID: &str = "x-request-id";

/// Query parameter of [`PATH_PULL`]: return blobs with a sequence number strictly greater.
pub const QUERY_AFTER: &str = "after";
/// Query parameter of [`PATH_PULL`]: byte budget of ciphertext in the answer.
pub const QUERY_MAX_BYTES: &str = "max_bytes";
/// Query parameter of [`PATH_TEAM`]: send the team log's entries from this index on (0 when
/// absent: the whole log).
pub const QUERY_LOG_FROM: &str = "log_from";

/// Default limits of a server; a server may be configured otherwise.
pub mod limits {
    /// Largest request body accepted (413 above it).
    pub const DEFAULT_MAX_BODY_BYTES: u64 = 8 * 1024 * 1024;
    /// Largest single blob ciphertext accepted (413 above it).
    pub const DEFAULT_MAX_BLOB_BYTES: u64 = 4 * 1024 * 1024;
    /// Most blobs in one push batch (413 above it).
    pub const DEFAULT_MAX_BATCH_BLOBS: usize = 500;
    /// Byte budget of a pull when the client gives none.
    pub const DEFAULT_PULL_MAX_BYTES: u64 = 4 * 1024 * 1024;
    /// Largest byte budget of a pull; larger requests are clamped to it, not refused.
    pub const DEFAULT_PULL_MAX_BYTES_CLAMP: u64 = 16 * 1024 * 1024;
    /// Most blobs in one pull answer, whatever the byte budget.
    pub const MAX_PULL_BLOBS: usize = 10_000;
    /// Largest cursor value accepted (sequence numbers are stored as signed 64-bit integers).
    pub const MAX_CURSOR: u64 = i64::MAX as u64;
    /// Longest lifetime of an enrollment token created through [`super::PATH_INVITES`].
    pub const MAX_INVITE_TTL_SECONDS: u64 = 30 * 24 * 3600;
    /// Longest time a server spends on one request, body upload included.
    pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 60;
    /// Longest device name accepted at enrollment, in characters.
    pub const MAX_DEVICE_NAME_CHARS: usize = 128;
    /// Most key envelopes in one [`super::KeysRequest`].
    pub const MAX_ENVELOPES: usize = 10_000;
    /// Longest sealed key in an envelope, in bytes.
    pub const MAX_SEALED_KEY_BYTES: usize = 256;
    /// Longest join proof, in bytes.
    pub const MAX_JOIN_PROOF_BYTES: usize = 64;
    /// Longest Automerge actor id a device may declare, in bytes.
    pub const MAX_ACTOR_BYTES: usize = 32;
    /// Most team log entries in one [`super::AppendRequest`] (a team log started for a big
    /// existing team carries one entry per device).
    pub const MAX_LOG_ENTRIES: usize = 2_000;
    /// Longest team log entry, in bytes (a coordinator admitted late carries every epoch's
    /// restricted key, about 130 bytes each).
    pub const MAX_LOG_ENTRY_BYTES: usize = 16_384;
    /// Most sequence numbers one `GET /v1/chain` may ask about.
    pub const MAX_CHAIN_QUERY: usize = 64;
    /// Most documents one snapshot blob may cover.
    pub const MAX_SNAPSHOT_DOCS: usize = 10_000;
    /// Longest sealed part of a check-in (where, with whom, a note), in bytes.
    pub const MAX_CHECK_IN_SEALED_BYTES: usize = 16_384;
    /// Longest a check-in may run before its deadline: 30 days, in seconds.
    pub const MAX_CHECK_IN_DUE_SECS: u64 = 30 * 24 * 3600;
    /// Most check-ins one device may have open at once.
    pub const MAX_OPEN_CHECK_INS: usize = 16;
    /// Longest body of a public tip submission (JSON, base64 inside), in bytes.
    pub const MAX_TIP_BODY_BYTES: usize = 65_536;
    /// Longest sealed tip, in bytes (before base64).
    pub const MAX_TIP_SEALED_BYTES: usize = 32_768;
    /// Longest sealed reply to a tipster, in bytes.
    pub const MAX_TIP_REPLY_SEALED_BYTES: usize = 16_384;
    /// Most replies kept under one receipt.
    pub const MAX_TIP_REPLIES: usize = 32;
    /// Most tips waiting in one workspace: further submissions are refused until a coordinator
    /// syncs (a flood cannot fill the server's disk).
    pub const MAX_WAITING_TIPS: u64 = 10_000;
    /// Most tips one [`super::TipsResponse`] carries.
    pub const MAX_TIPS_LISTED: usize = 500;
    /// Longest signed tip page statement, in bytes (labels in a few languages).
    pub const MAX_TIP_STATEMENT_BYTES: usize = 65_536;
    /// Length of a tip page's path segment: 26 characters of lowercase base32 (128 bits).
    pub const TIP_PAGE_CHARS: usize = 26;
    /// Length of a receipt's lookup id, in bytes (hex in URLs).
    pub const TIP_LOOKUP_BYTES: usize = 16;
}

/// States of a safety check-in as the server tracks it ([`CheckInRequest::state`],
/// [`CheckInEntry::state`]).
pub mod check_in_states {
    /// Running: the worker is expected back by the deadline.
    pub const OPEN: &str = "open";
    /// Closed by the worker: safe.
    pub const CLOSED: &str = "closed";
    /// Closed with the duress PIN, or raised by the worker: the team is alerted.
    pub const ALARM: &str = "alarm";
    /// Still open past its deadline and the grace period: the team is alerted (answers only;
    /// a device never sends it).
    pub const OVERDUE: &str = "overdue";

    /// Whether a device may send `state`.
    pub fn is_sent(state: &str) -> bool {
        state == OPEN || state == CLOSED || state == ALARM
    }
}

/// Device roles. A coordinator may invite coordinators, revoke any device of its workspace and
/// upload wrapped keys; a member may invite members and revoke only itself.
pub mod roles {
    /// Leads the team: invites, approves joins, revokes, rotates keys.
    pub const COORDINATOR: &str = "coordinator";
    /// Records and syncs.
    pub const MEMBER: &str = "member";

    /// Whether `role` is one of the known roles.
    pub fn is_known(role: &str) -> bool {
        role == COORDINATOR || role == MEMBER
    }
}

/// Stable machine-readable error codes carried in [`ErrorBody::code`].
pub mod codes {
    /// Malformed body or query: bad CBOR, wrong types, missing fields, bad cursor, bad blob.
    pub const BAD_REQUEST: &str = "bad_request";
    /// Missing or unknown device token (one the server never issued, or lost in a restore from
    /// backup), or an unknown enrollment token.
    pub const UNAUTHORIZED: &str = "unauthorized";
    /// The device token belongs to a device that was revoked (401): it stops syncing for good.
    pub const DEVICE_REVOKED: &str = "device_revoked";
    /// The enrollment token has expired.
    pub const TOKEN_EXPIRED: &str = "token_expired";
    /// The enrollment token was already used to enroll a device.
    pub const TOKEN_USED: &str = "token_used";
    /// No such route (or nothing of that name visible to this device).
    pub const NOT_FOUND: &str = "not_found";
    /// The route exists but not with this HTTP method.
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    /// The body is not `application/cbor`.
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "unsupported_media_type";
    /// Body, blob or batch larger than the server allows.
    pub const TOO_LARGE: &str = "too_large";
    /// Too many requests from this device; wait `Retry-After` seconds.
    pub const RATE_LIMITED: &str = "rate_limited";
    /// The request contradicts stored data (e.g. a known content id under another document).
    pub const CONFLICT: &str = "conflict";
    /// The device is authenticated but its role does not allow this.
    pub const FORBIDDEN: &str = "forbidden";
    /// The thing asked for existed but is gone.
    pub const GONE: &str = "gone";
    /// The request took longer than the server allows (e.g. a stalled upload); retry it.
    pub const TIMEOUT: &str = "timeout";
    /// The server failed; the request may be retried.
    pub const INTERNAL: &str = "internal";
    /// A push under a key epoch older than the workspace's (409): fetch the team, re-seal the
    /// queued changes under the current key and push again.
    pub const STALE_EPOCH: &str = "stale_epoch";
    /// A team log append that does not follow the stored head (409): another coordinator
    /// appended first; fetch the log and retry.
    pub const TEAM_LOG_MOVED: &str = "team_log_moved";
}

/// SHA-256 of a blob's ciphertext: its content id.
pub type ContentId = [u8; 32];
/// Random opaque document id chosen by the client.
pub type DocId = [u8; 16];
/// An Ed25519 (signing) or X25519 (key agreement) public key.
pub type PublicKey = [u8; 32];
/// An Ed25519 signature.
pub type Signature = [u8; 64];

/// The content id of a ciphertext (SHA-256), as the server verifies it.
pub fn content_id_of(ciphertext: &[u8]) -> ContentId {
    Sha256::digest(ciphertext).into()
}

/// `POST /v1/enroll` body: redeem a one-time enrollment token for device credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// The one-time enrollment token (base64url, no padding).
    pub token: String,
    /// A name for people to recognise the device by in `devices list` (1 to 128 characters).
    pub device_name: String,
    /// The device's Ed25519 public key: teammates verify its blobs' signatures with it.
    #[serde(with = "serde_bytes")]
    pub sign_key: PublicKey,
    /// The device's X25519 public key: workspace keys are sealed to it.
    #[serde(with = "serde_bytes")]
    pub box_key: PublicKey,
    /// For an invite to be approved: an HMAC of the public keys under the invite's verification
    /// secret, which only the inviting coordinator can check (the server never sees the secret).
    #[serde(default, with = "serde_bytes")]
    pub join_proof: Option<Vec<u8>>,
    /// The Automerge actor id the device's changes carry (1 to 32 bytes), covered by the join
    /// proof: the team log binds it to the device's keys, so no other device can write as it.
    #[serde(default, with = "serde_bytes")]
    pub actor: Option<Vec<u8>>,
}

/// `POST /v1/enroll` answer: the new device's identity and secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollResponse {
    /// The workspace the token belonged to.
    pub workspace_id: String,
    /// The new device's id.
    pub device_id: String,
    /// The device token to send as `Authorization: Bearer ...`; the server keeps only its hash.
    pub device_token: String,
    /// The new device's role, from [`roles`].
    pub role: String,
}

/// `POST /v1/invites` body: create a one-time enrollment token for the caller's workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteRequest {
    /// Lifetime of the token, 1 to [`limits::MAX_INVITE_TTL_SECONDS`].
    pub ttl_seconds: u64,
    /// Role of the device that will enroll with it ([`roles::MEMBER`] when absent); only a
    /// coordinator may invite a coordinator.
    #[serde(default)]
    pub role: Option<String>,
}

/// `POST /v1/invites` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteResponse {
    /// The one-time enrollment token (base64url, no padding).
    pub enrollment_token: String,
    /// When the token expires, in unix seconds.
    pub expires_at: i64,
}

/// One blob of a push: an encrypted chunk of one document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushBlob {
    /// SHA-256 of `ciphertext`; the server verifies it and deduplicates on it.
    #[serde(with = "serde_bytes")]
    pub content_id: ContentId,
    /// The document this chunk belongs to (random, opaque to the server).
    #[serde(with = "serde_bytes")]
    pub doc_id: DocId,
    /// The workspace key epoch the blob is sealed with.
    pub epoch: u32,
    /// The sealed bytes.
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
    /// Set on a compacted full save: it covers this document's blobs with `seq <= n`.
    #[serde(default)]
    pub supersedes: Option<u64>,
    /// With `supersedes`: the save rewrites the record without its history (an erase or a
    /// redaction), so the server drops the covered blobs' ciphertext at once instead of after
    /// the compaction grace period.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forget: bool,
    /// A coordinator's snapshot of many documents: their ids, 16 bytes each, concatenated. With
    /// `supersedes: n`, it covers each listed document's blobs with `seq <= n`; pulls skip
    /// covered blobs (the snapshot comes later in the log), and skip the snapshot for a device
    /// whose cursor is already at `n` or beyond (it has all the snapshot holds).
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "serde_bytes")]
    pub covers: Vec<u8>,
}

/// Query parameter of [`PATH_CHAIN`]: comma-separated sequence numbers (at most
/// [`limits::MAX_CHAIN_QUERY`]).
pub const QUERY_AT: &str = "at";

/// The chain hash of a workspace's blob log at a sequence number: it covers every blob up to
/// there, so a log rewound (restored from a backup) and written again gives other hashes.
pub type ChainHash = [u8; 32];

/// The chain hash before the first blob.
pub const CHAIN_START: ChainHash = [0; 32];

/// The chain hash at `seq`, the blob with `content_id`, after `prev` (the hash at `seq - 1`).
pub fn chain_next(prev: &ChainHash, seq: u64, content_id: &ContentId) -> ChainHash {
    let mut h = Sha256::new();
    h.update(b"waymark blob chain v1");
    h.update(prev);
    h.update(seq.to_be_bytes());
    h.update(content_id);
    h.finalize().into()
}

/// `POST /v1/push` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushRequest {
    /// The blobs, stored all or none.
    pub blobs: Vec<PushBlob>,
}

/// `POST /v1/push` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushResponse {
    /// One sequence number per pushed blob, in the same order (the earlier one for a repeat).
    pub assigned: Vec<u64>,
}

/// `GET /v1/pull` query parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PullRequest {
    /// Return blobs with a sequence number strictly greater than this (0 = from the start).
    pub after: u64,
    /// Ciphertext byte budget; `None` lets the server choose.
    pub max_bytes: Option<u64>,
}

impl PullRequest {
    /// The path and query string to request, e.g. `/v1/pull?after=42&max_bytes=65536`.
    pub fn to_path_and_query(&self) -> String {
        match self.max_bytes {
            Some(max) => format!(
                "{PATH_PULL}?{QUERY_AFTER}={}&{QUERY_MAX_BYTES}={max}",
                self.after
            ),
            None => format!("{PATH_PULL}?{QUERY_AFTER}={}", self.after),
        }
    }
}

/// One blob of a pull answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PulledBlob {
    /// Its sequence number in the workspace log.
    pub seq: u64,
    /// SHA-256 of `ciphertext`.
    #[serde(with = "serde_bytes")]
    pub content_id: ContentId,
    /// The document it belongs to.
    #[serde(with = "serde_bytes")]
    pub doc_id: DocId,
    /// The key epoch it is sealed with.
    pub epoch: u32,
    /// The sealed bytes.
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
    /// The device that pushed it first.
    pub device_id: String,
}

/// `GET /v1/pull` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullResponse {
    /// Blobs in increasing `seq` order, all greater than `after`.
    pub blobs: Vec<PulledBlob>,
    /// True when blobs after the last one returned exist: pull again after it.
    pub more: bool,
    /// The highest sequence number visible in the workspace when the pull ran.
    pub head: u64,
    /// The version of the workspace's team ([`TeamResponse::version`]); when it grew, fetch
    /// [`PATH_TEAM`] before applying the blobs.
    #[serde(default)]
    pub team_version: u64,
    /// The chain hash at `after` ([`CHAIN_START`] for 0); `None` when `after` is beyond the head
    /// (or from a server before chain hashes). A device compares it with the hash it kept for its
    /// cursor: a difference means the log was rewound.
    #[serde(default, with = "serde_bytes")]
    pub chain_after: Option<ChainHash>,
    /// The chain hash at the last blob of the answer; `None` when it has no blobs.
    #[serde(default, with = "serde_bytes")]
    pub chain_last: Option<ChainHash>,
    /// The chain hash at `head`. When `more` is false, every blob up to `head` was either in
    /// this answer or one the device does not need (covered by a later save or snapshot it
    /// gets, or a snapshot of what it has): its cursor may move to `head`.
    #[serde(default, with = "serde_bytes")]
    pub chain_head: Option<ChainHash>,
    /// The version of the workspace's check-ins ([`CheckInsResponse::version`]); when it grew,
    /// fetch [`PATH_CHECK_INS`].
    #[serde(default)]
    pub check_ins: u64,
    /// How many sealed tips are waiting on the server for a coordinator's device to store them
    /// (0 for other devices); when not 0, a coordinator's device fetches [`PATH_TIPS`].
    #[serde(default)]
    pub tips: u64,
}

/// `POST /v1/check-ins` body: the whole current state of one of the calling device's
/// check-ins (a start, an extension or a close), sealed for the team and signed by the device.
/// The server learns the device, the deadline, the state and an opaque id, nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckInRequest {
    /// The check-in's random id, chosen by the device.
    #[serde(with = "serde_bytes")]
    pub id: DocId,
    /// Seconds from now until the worker is due back, on the server's clock (a phone's wrong
    /// clock does not move the deadline); at most [`limits::MAX_CHECK_IN_DUE_SECS`]. Ignored
    /// once closed.
    pub due_in_secs: u64,
    /// [`check_in_states::OPEN`], [`check_in_states::CLOSED`] or [`check_in_states::ALARM`].
    pub state: String,
    /// The update's number, counted by the device from 1: the server keeps the highest (a late
    /// or retried update never undoes a later one), and a closed check-in stays closed.
    pub version: u64,
    /// The key epoch `sealed` is sealed under.
    pub epoch: u32,
    /// The details and state, sealed under the workspace key and signed by the device.
    #[serde(with = "serde_bytes")]
    pub sealed: Vec<u8>,
}

/// `POST /v1/check-ins` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckInResponse {
    /// The deadline the server watches, unix seconds on its clock.
    pub deadline: u64,
    /// The version the server keeps (higher than the request's when a later update won).
    pub version: u64,
}

/// One check-in of the workspace, as `GET /v1/check-ins` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckInEntry {
    /// Its id.
    #[serde(with = "serde_bytes")]
    pub id: DocId,
    /// The device that started it.
    pub device_id: String,
    /// [`check_in_states`]: open, overdue, alarm or closed.
    pub state: String,
    /// The deadline, unix seconds on the server's clock.
    pub deadline: u64,
    /// When the server found it overdue, unix seconds.
    pub overdue_since: Option<u64>,
    /// The version of its last update.
    pub version: u64,
    /// The key epoch of `sealed`.
    pub epoch: u32,
    /// What the device sealed with its last update.
    #[serde(with = "serde_bytes")]
    pub sealed: Vec<u8>,
}

/// `GET /v1/check-ins` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckInsResponse {
    /// Grows with every change of the workspace's check-ins (as [`PullResponse::check_ins`]).
    pub version: u64,
    /// The server's clock, unix seconds.
    pub now: u64,
    /// Seconds past a deadline before a check-in is overdue.
    pub grace_secs: u64,
    /// Open, overdue and raised check-ins, and those closed in the last day.
    pub check_ins: Vec<CheckInEntry>,
}

/// What a coordinator signs when it publishes the workspace's tip page: CBOR, carried as
/// bytes in [`TipPageRequest::statement`] so the signature covers exactly what is served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TipPageStatement {
    /// The workspace whose team the tips are for.
    pub workspace_id: String,
    /// The page's path segment under [`PATH_PUBLIC_TIPS`] ([`limits::TIP_PAGE_CHARS`] of
    /// lowercase base32): unguessable, chosen by the coordinator's device.
    pub page: String,
    /// The restricted-key epoch the tip key belongs to.
    pub epoch: u32,
    /// The tip public key (X25519): tips are sealed to it in the tipster's browser.
    #[serde(with = "serde_bytes")]
    pub public_key: [u8; 32],
    /// The page's words in each of the workspace's languages, the first the default.
    pub languages: Vec<TipPageLanguage>,
    /// When it was signed, unix milliseconds on the coordinator's clock.
    pub signed_at: u64,
}

/// The words of the tip page in one language (plain text; the server escapes them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TipPageLanguage {
    /// Language code (`en`, `fr`, ...).
    pub code: String,
    /// The labels, keyed by [`tip_labels`] names.
    pub labels: std::collections::BTreeMap<String, String>,
}

/// Names of the labels of a tip page ([`TipPageLanguage::labels`]).
pub mod tip_labels {
    /// The page's title.
    pub const TITLE: &str = "title";
    /// What the page is for and what happens to a tip.
    pub const INTRO: &str = "intro";
    /// The field for what happened.
    pub const WHAT: &str = "what";
    /// The field for where.
    pub const WHERE: &str = "where";
    /// The field for when.
    pub const WHEN: &str = "when";
    /// The optional field for how to reach the tipster.
    pub const CONTACT: &str = "contact";
    /// The send button.
    pub const SEND: &str = "send";
    /// Shown after sending, above the receipt code.
    pub const SENT: &str = "sent";
    /// The field and button to read replies with a receipt code.
    pub const CHECK: &str = "check";
    /// Shown when a receipt has no reply yet.
    pub const NO_REPLY: &str = "no_reply";
    /// Shown when sending or reading failed.
    pub const FAILED: &str = "failed";
    /// Every label name, in the order a page shows them.
    pub const ALL: &[&str] = &[
        TITLE, INTRO, WHAT, WHERE, WHEN, CONTACT, SEND, SENT, CHECK, NO_REPLY, FAILED,
    ];
}

/// `PUT /v1/tips/page` body, and `GET /v1/tips/page` answer: a coordinator's signed
/// statement of the tip page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TipPageRequest {
    /// A CBOR [`TipPageStatement`].
    #[serde(with = "serde_bytes")]
    pub statement: Vec<u8>,
    /// The device that signed it (the server checks it is the caller when publishing).
    pub device_id: String,
    /// Ed25519 signature of `statement` by that device's signing key.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

/// A tip as the tipster's browser posts it to `POST /t/{page}/tips` (JSON, base64 fields):
/// NaCl `crypto_box` (X25519, XSalsa20-Poly1305) of the tip from a one-time key to the tip
/// public key of `epoch`. The server stores it as it came and learns nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TipSubmission {
    /// The epoch of the tip public key it is sealed to.
    pub epoch: u32,
    /// The one-time public key, base64.
    pub ephemeral: String,
    /// The 24-byte nonce, base64.
    pub nonce: String,
    /// The sealed tip, base64.
    pub sealed: String,
}

/// One waiting tip, as `GET /v1/tips` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TipEntry {
    /// The server's number for it (to say it is done).
    pub id: u64,
    /// When it arrived, unix seconds rounded down to the hour (what the server keeps).
    pub received_hour: u64,
    /// The tip as it was posted.
    pub submission: TipSubmission,
}

/// `GET /v1/tips` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TipsResponse {
    /// Waiting tips, oldest first, at most [`limits::MAX_TIPS_LISTED`].
    pub tips: Vec<TipEntry>,
}

/// `POST /v1/tips/done` body: tips now stored as records, which the server deletes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TipsDoneRequest {
    /// Their [`TipEntry::id`]s.
    pub ids: Vec<u64>,
}

/// `POST /v1/tips/replies` body: a reply sealed to the tipster's reply key (NaCl `crypto_box`
/// from a one-time key), kept under the receipt's lookup id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TipReplyRequest {
    /// The receipt's lookup id ([`limits::TIP_LOOKUP_BYTES`]).
    #[serde(with = "serde_bytes")]
    pub lookup: Vec<u8>,
    /// The one-time public key.
    #[serde(with = "serde_bytes")]
    pub ephemeral: [u8; 32],
    /// The nonce.
    #[serde(with = "serde_bytes")]
    pub nonce: [u8; 24],
    /// The sealed reply.
    #[serde(with = "serde_bytes")]
    pub sealed: Vec<u8>,
}

/// `GET /v1/chain` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainResponse {
    /// The highest sequence number visible in the workspace.
    pub head: u64,
    /// The chain hash at each asked sequence number up to the head, in the order asked.
    pub marks: Vec<ChainMark>,
}

/// The chain hash at one sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainMark {
    /// The sequence number.
    pub seq: u64,
    /// The chain hash there.
    #[serde(with = "serde_bytes")]
    pub chain: ChainHash,
}

/// One device of a team, as [`PATH_TEAM`] lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamDevice {
    /// The device's id.
    pub device_id: String,
    /// Its name.
    pub name: String,
    /// Its role, from [`roles`].
    pub role: String,
    /// Its Ed25519 public key.
    #[serde(with = "serde_bytes")]
    pub sign_key: PublicKey,
    /// Its X25519 public key.
    #[serde(with = "serde_bytes")]
    pub box_key: PublicKey,
    /// The join proof it enrolled with, if it joined by an invite to be approved.
    #[serde(default, with = "serde_bytes")]
    pub join_proof: Option<Vec<u8>>,
    /// Enrollment time, unix seconds.
    pub enrolled_at: i64,
    /// If revoked: the workspace's head sequence number at the revocation; blobs it signed with
    /// a higher sequence number are not its own.
    #[serde(default)]
    pub revoked_at_seq: Option<u64>,
    /// Epochs for which a wrapped key for this device is stored.
    pub key_epochs: Vec<u32>,
    /// The Automerge actor id it enrolled with, if it declared one.
    #[serde(default, with = "serde_bytes")]
    pub actor: Option<Vec<u8>>,
    /// Its last push or pull, unix seconds, as the server saw it (pulls are recorded at most
    /// once a minute); shown to coordinators, never used to decide anything.
    #[serde(default)]
    pub last_sync_at: Option<i64>,
}

/// A workspace key of one epoch, sealed to one device's X25519 key and signed by the
/// coordinator's device that sealed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyEnvelope {
    /// The device it is sealed to.
    pub device_id: String,
    /// The key epoch.
    pub epoch: u32,
    /// The sealed key (an anonymous sealed box).
    #[serde(with = "serde_bytes")]
    pub sealed_key: Vec<u8>,
    /// The Ed25519 public key of the coordinator's device that sealed it.
    #[serde(with = "serde_bytes")]
    pub signer_key: PublicKey,
    /// Its signature over the workspace id, `device_id`, `epoch` and `sealed_key`.
    #[serde(with = "serde_bytes")]
    pub signature: Signature,
}

/// `GET /v1/team` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamResponse {
    /// Grows with every enrollment, revocation and key upload in the workspace.
    pub version: u64,
    /// The newest key epoch a coordinator rotated to (0 before any rotation).
    pub epoch: u32,
    /// A device was revoked since `epoch` was set: a coordinator's device should rotate.
    pub rotation_needed: bool,
    /// Every device of the workspace, revoked ones included, in enrollment order.
    pub devices: Vec<TeamDevice>,
    /// The envelopes sealed to the calling device.
    pub envelopes: Vec<KeyEnvelope>,
    /// The team log's entries from the requested index ([`QUERY_LOG_FROM`]) on.
    #[serde(default)]
    pub log: Vec<team_log::SignedEntry>,
    /// How many entries the team log has (0: no log yet).
    #[serde(default)]
    pub log_len: u64,
}

/// `POST /v1/team/log` body: signed entries that extend the team log, and key envelopes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendRequest {
    /// Entries in order; the first one's index must be at most the log's length. Entries the
    /// log already has (same index, same bytes) are skipped, so a device can re-send entries a
    /// server restored from a backup lost.
    pub entries: Vec<team_log::SignedEntry>,
    /// Envelopes of workspace keys, each for a device the log (with the new entries) admits
    /// and has not revoked.
    #[serde(default)]
    pub envelopes: Vec<KeyEnvelope>,
}

/// `POST /v1/team/log` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendResponse {
    /// The log's length after the append.
    pub log_len: u64,
}

/// `POST /v1/keys` body (coordinators only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysRequest {
    /// `Some(n)`: a rotation to epoch `n`, which must be the current epoch + 1, with one envelope
    /// of epoch `n` for every device not revoked. `None`: envelopes of existing epochs for
    /// devices not revoked (approving a join).
    #[serde(default)]
    pub rotate_to: Option<u32>,
    /// The envelopes; each `signer_key` must be the caller's own.
    pub envelopes: Vec<KeyEnvelope>,
}

/// `POST /v1/keys` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysResponse {
    /// The workspace's current epoch after the upload.
    pub epoch: u32,
}

/// `POST /v1/devices/revoke` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeRequest {
    /// The device to revoke (the caller's own id to revoke itself, e.g. on wipe).
    pub device_id: String,
}

/// `POST /v1/devices/revoke` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeResponse {
    /// The workspace's head sequence number when the revocation took effect.
    pub revoked_at_seq: u64,
}

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A stable machine code from [`codes`].
    pub code: String,
    /// A sentence for people saying what was wrong (never contains secrets).
    pub message: String,
}

/// A body that is not valid CBOR for the expected type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid CBOR body: {message}")]
pub struct DecodeError {
    /// What the decoder found wrong (e.g. "missing field `token`").
    pub message: String,
}

/// Encodes a value as CBOR.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail, and the protocol types have no fallible Serialize impls.
    if let Err(err) = ciborium::ser::into_writer(value, &mut out) {
        debug_assert!(false, "CBOR encoding into a Vec failed: {err}");
    }
    out
}

/// Decodes one CBOR value of type `T`; trailing bytes are an error.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let mut rest = bytes;
    let value = ciborium::de::from_reader(&mut rest).map_err(|err| DecodeError {
        message: describe(err),
    })?;
    if !rest.is_empty() {
        return Err(DecodeError {
            message: format!("{} unexpected trailing bytes after the value", rest.len()),
        });
    }
    Ok(value)
}

fn describe(err: ciborium::de::Error<std::io::Error>) -> String {
    use ciborium::de::Error;
    match err {
        Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            "truncated (ended in the middle of a value)".to_owned()
        }
        Error::Io(io) => format!("read error: {io}"),
        Error::Syntax(offset) => format!("not well-formed CBOR at byte {offset}"),
        Error::Semantic(Some(offset), msg) => format!("{msg} (at byte {offset})"),
        Error::Semantic(None, msg) => msg,
        Error::RecursionLimitExceeded => "nested too deeply".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use proptest::prelude::*;

    fn blob(ciphertext: &[u8]) -> PushBlob {
        PushBlob {
            content_id: content_id_of(ciphertext),
            doc_id: [9; 16],
            epoch: 3,
            ciphertext: ciphertext.to_vec(),
            supersedes: Some(17),
            forget: false,
            covers: Vec::new(),
        }
    }

    #[test]
    fn every_message_round_trips() {
        let enroll = EnrollRequest {
            token: "tok".into(),
            device_name: "phone of Ana".into(),
            sign_key: [1; 32],
            box_key: [2; 32],
            join_proof: Some(vec![3; 32]),
            actor: Some(vec![4; 16]),
        };
        assert_eq!(decode::<EnrollRequest>(&encode(&enroll)).unwrap(), enroll);
        let enrolled = EnrollResponse {
            workspace_id: "w".into(),
            device_id: "d".into(),
            device_token: "t".into(),
            role: roles::MEMBER.into(),
        };
        assert_eq!(
            decode::<EnrollResponse>(&encode(&enrolled)).unwrap(),
            enrolled
        );
        let invite = InviteRequest {
            ttl_seconds: 600,
            role: Some(roles::COORDINATOR.into()),
        };
        assert_eq!(decode::<InviteRequest>(&encode(&invite)).unwrap(), invite);
        let invited = InviteResponse {
            enrollment_token: "e".into(),
            expires_at: -5,
        };
        assert_eq!(
            decode::<InviteResponse>(&encode(&invited)).unwrap(),
            invited
        );
        let push = PushRequest {
            blobs: vec![blob(b"a"), blob(b"")],
        };
        assert_eq!(decode::<PushRequest>(&encode(&push)).unwrap(), push);
        let pushed = PushResponse {
            assigned: vec![1, 2, u64::MAX],
        };
        assert_eq!(decode::<PushResponse>(&encode(&pushed)).unwrap(), pushed);
        let pulled = PullResponse {
            blobs: vec![PulledBlob {
                seq: 4,
                content_id: [1; 32],
                doc_id: [2; 16],
                epoch: 0,
                ciphertext: vec![0, 255],
                device_id: "d".into(),
            }],
            more: true,
            head: 9,
            team_version: 4,
            chain_after: None,
            chain_last: None,
            chain_head: None,
            check_ins: 0,
            tips: 0,
        };
        assert_eq!(decode::<PullResponse>(&encode(&pulled)).unwrap(), pulled);
        let team = TeamResponse {
            version: 7,
            epoch: 2,
            rotation_needed: true,
            devices: vec![TeamDevice {
                device_id: "d".into(),
                name: "n".into(),
                role: roles::COORDINATOR.into(),
                sign_key: [5; 32],
                box_key: [6; 32],
                join_proof: None,
                enrolled_at: 1,
                revoked_at_seq: Some(12),
                key_epochs: vec![0, 1, 2],
                actor: Some(vec![9; 16]),
                last_sync_at: None,
            }],
            envelopes: vec![KeyEnvelope {
                device_id: "d".into(),
                epoch: 2,
                sealed_key: vec![9; 80],
                signer_key: [5; 32],
                signature: [7; 64],
            }],
            log: vec![team_log::SignedEntry {
                entry: vec![1, 2, 3],
                signature: [8; 64],
            }],
            log_len: 4,
        };
        assert_eq!(decode::<TeamResponse>(&encode(&team)).unwrap(), team);
        let append = AppendRequest {
            entries: team.log.clone(),
            envelopes: team.envelopes.clone(),
        };
        assert_eq!(decode::<AppendRequest>(&encode(&append)).unwrap(), append);
        let appended = AppendResponse { log_len: 5 };
        assert_eq!(
            decode::<AppendResponse>(&encode(&appended)).unwrap(),
            appended
        );
        let keys = KeysRequest {
            rotate_to: Some(3),
            envelopes: team.envelopes.clone(),
        };
        assert_eq!(decode::<KeysRequest>(&encode(&keys)).unwrap(), keys);
        let revoke = RevokeRequest {
            device_id: "d".into(),
        };
        assert_eq!(decode::<RevokeRequest>(&encode(&revoke)).unwrap(), revoke);
        let error = ErrorBody {
            code: codes::TOO_LARGE.into(),
            message: "m".into(),
        };
        assert_eq!(decode::<ErrorBody>(&encode(&error)).unwrap(), error);
    }

    #[test]
    fn byte_fields_are_cbor_byte_strings_not_arrays() {
        let encoded = encode(&blob(b"xyz"));
        let value: ciborium::Value = decode(&encoded).unwrap();
        let map = value.as_map().unwrap();
        for (key, val) in map {
            let key = key.as_text().unwrap();
            if ["content_id", "doc_id", "ciphertext"].contains(&key) {
                assert!(val.is_bytes(), "{key} should be a byte string, was {val:?}");
            }
        }
        // 32 + 16 + 3 bytes of payload plus small framing, not ~2 bytes per element of arrays.
        assert!(encoded.len() < 120, "encoded size {}", encoded.len());
    }

    #[test]
    fn missing_supersedes_reads_as_none() {
        let mut value: ciborium::Value = decode(&encode(&blob(b"q"))).unwrap();
        if let ciborium::Value::Map(entries) = &mut value {
            entries.retain(|(k, _)| k.as_text() != Some("supersedes"));
        }
        let back: PushBlob = decode(&encode(&value)).unwrap();
        assert_eq!(back.supersedes, None);
    }

    #[test]
    fn garbage_truncated_and_wrongly_typed_bodies_are_decode_errors() {
        let good = encode(&PushRequest {
            blobs: vec![blob(b"hello")],
        });
        for cut in 0..good.len() {
            let err = decode::<PushRequest>(&good[..cut]).unwrap_err();
            assert!(!err.message.is_empty());
        }
        assert!(decode::<PushRequest>(&[0xff, 0x00, 0x13]).is_err());
        assert!(decode::<PushRequest>(b"not cbor at all").is_err());

        let mut trailing = good.clone();
        trailing.push(0);
        let err = decode::<PushRequest>(&trailing).unwrap_err();
        assert!(err.message.contains("trailing"), "{err}");

        let wrong_type = encode(&EnrollRequest {
            token: "t".into(),
            device_name: "n".into(),
            sign_key: [0; 32],
            box_key: [0; 32],
            join_proof: None,
            actor: None,
        });
        let err = decode::<PushRequest>(&wrong_type).unwrap_err();
        assert!(err.message.contains("blobs"), "{err}");

        let short_doc_id = encode(&ciborium::Value::Map(vec![(
            "blobs".into(),
            ciborium::Value::Array(vec![ciborium::Value::Map(vec![
                ("content_id".into(), ciborium::Value::Bytes(vec![0; 32])),
                ("doc_id".into(), ciborium::Value::Bytes(vec![0; 3])),
                ("epoch".into(), 1.into()),
                ("ciphertext".into(), ciborium::Value::Bytes(vec![1])),
            ])]),
        )]));
        assert!(decode::<PushRequest>(&short_doc_id).is_err());

        let negative_epoch = encode(&ciborium::Value::Map(vec![(
            "ttl_seconds".into(),
            ciborium::Value::Integer((-1).into()),
        )]));
        assert!(decode::<InviteRequest>(&negative_epoch).is_err());
    }

    #[test]
    fn a_huge_declared_length_with_little_data_fails_without_allocating_it() {
        let mut body = encode(&ciborium::Value::Map(vec![(
            "blobs".into(),
            ciborium::Value::Array(vec![ciborium::Value::Map(vec![
                ("content_id".into(), ciborium::Value::Bytes(vec![0; 32])),
                ("doc_id".into(), ciborium::Value::Bytes(vec![0; 16])),
                ("epoch".into(), 1.into()),
                ("ciphertext".into(), ciborium::Value::Bytes(vec![1, 2, 3])),
            ])]),
        )]));
        // Replace the final 3-byte string header (0x43) by one claiming 2^62 bytes.
        let at = body.len() - 4;
        assert_eq!(body[at], 0x43);
        body.splice(at..=at, [0x5b, 0x40, 0, 0, 0, 0, 0, 0, 0]);
        let err = decode::<PushRequest>(&body).unwrap_err();
        assert!(err.message.contains("truncated"), "{err}");
    }

    #[test]
    fn pull_request_renders_its_query() {
        let req = PullRequest {
            after: 42,
            max_bytes: Some(1000),
        };
        assert_eq!(req.to_path_and_query(), "/v1/pull?after=42&max_bytes=1000");
        assert_eq!(
            PullRequest::default().to_path_and_query(),
            "/v1/pull?after=0"
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode::<PushRequest>(&bytes);
            let _ = decode::<PullResponse>(&bytes);
        }

        #[test]
        fn arbitrary_push_batches_round_trip(
            bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
            epoch in any::<u32>(),
            supersedes in proptest::option::of(any::<u64>()),
        ) {
            let req = PushRequest {
                blobs: bodies
                    .iter()
                    .map(|c| PushBlob { epoch, supersedes, ..blob(c) })
                    .collect(),
            };
            prop_assert_eq!(decode::<PushRequest>(&encode(&req)).unwrap(), req);
        }
    }
}
