//! Sync with the team's relay server: push the outbox of sealed changes, then pull what
//! others pushed, until caught up.
//!
//! The server keeps one append-only log of opaque blobs per workspace, numbered without gaps.
//! Push is idempotent (blobs are named by the hash of their ciphertext), and outbox rows are
//! deleted only once the server has answered with their sequence numbers. Pulled blobs are
//! opened, merged into their documents and projected in the same transaction that advances
//! the pull cursor. So `sync()` can be cut at any instant and simply called again: nothing is
//! lost and nothing is applied twice. A blob that fails authentication is set aside and
//! reported, never applied, and the rest of the sync goes on.

mod check_ins;
mod error;
pub(crate) mod http;
pub(crate) mod log;
mod membership;
mod pace;
mod prepare;
mod restore;
mod snapshot;
pub(crate) mod team;
mod tips;
mod tipster;

pub(crate) use crate::store::memberships::Membership;
pub use check_ins::{CheckIn, CheckInDetails, CheckInState};
pub use error::{NetworkError, Refusal};
pub(crate) use membership::{Enrollment, add_membership};
pub use snapshot::CompactReport;
pub use tips::{TipPage, TipPageLanguage};
pub use tipster::{TipAnswer, TipFields, read_tip_replies, send_tip};

use std::collections::{BTreeSet, HashMap};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::time::Instant;

use rusqlite::Transaction;
use waymark_protocol as proto;

use crate::crypto;
use crate::error::{Error, Result};
use crate::exchange::{Target, insert_whole, merge_chunks};
use crate::store::{
    Store, docs, keys, load_stored, memberships, now_ms, outbox, projection, set_aside,
    snapshot_packs, team_log,
};
use http::{Call, Server};
use prepare::Prepared;

/// Pages fetched and prepared ahead of the writer, at most (each at most `pace::MAX_BYTES`).
const PAGES_AHEAD: usize = 3;
/// Records past which the writer commits, even if more pages are waiting: bounds the work a
/// crash or cut would make this device pull again, and what one transaction holds in memory
/// (a snapshot counts the records it packs, not one).
const GROUP_RECORDS: usize = 8_000;
/// Most records a sync lists in `SyncReport::changed`; past it, only `changed_all` says so (a
/// first sync into a big workspace changes every record, and listing a million ids would make
/// the device's memory grow with the team).
pub const CHANGED_LISTED: usize = 10_000;
/// Most blobs pushed in one request. Bytes per push and per pull follow the link (`pace`).
const PUSH_BATCH_BLOBS: usize = 200;

/// A blob that could not be opened or applied; it was set aside, not applied.
#[derive(Debug, Clone, PartialEq)]
pub struct SetAside {
    /// Workspace.
    pub workspace_id: String,
    /// Its sequence number on the server.
    pub seq: u64,
    /// The document it claims to belong to (hex).
    pub doc_id: String,
    /// Why it was set aside.
    pub reason: String,
}

/// How often a coordinator's device fetches the server's listing of the team again (for each
/// device's last sync), in ms.
const LISTING_EVERY_MS: i64 = 5 * 60 * 1000;

/// `Ok` for a network failure or a server's refusal (a step retried at the next sync); other
/// errors as they are.
fn tolerate_network(r: Result<()>) -> Result<()> {
    match r {
        Err(Error::Network(_)) => Ok(()),
        other => other,
    }
}

/// What one `sync()` did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SyncReport {
    /// Blobs pushed (acknowledged by the server).
    pub pushed: u64,
    /// Blobs pulled.
    pub pulled: u64,
    /// Records that changed through pulled blobs, sorted; empty when `changed_all`.
    pub changed: Vec<String>,
    /// More records changed than `CHANGED_LISTED` (a first sync into a big workspace): screens
    /// refresh everything instead of the records listed.
    pub changed_all: bool,
    /// Bytes sent.
    pub bytes_up: u64,
    /// Bytes received.
    pub bytes_down: u64,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// Blobs set aside during this sync.
    pub set_aside: Vec<SetAside>,
    /// Records sent again because the server's log was rewound (restored from a backup).
    pub resent: u64,
    /// Held blobs whose bytes were dropped during this sync because this device keeps at most
    /// 16 MiB of them per workspace (oldest first).
    pub set_aside_dropped: u64,
}

/// Which half of a sync is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPhase {
    /// Sending local changes.
    Push,
    /// Receiving others' changes.
    Pull,
}

/// Progress of a running sync.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncProgress {
    /// Workspace being synced.
    pub workspace_id: String,
    /// Push or pull.
    pub phase: SyncPhase,
    /// Blobs done in this phase.
    pub blobs_done: u64,
    /// Blobs known to be due in this phase (pull: as far as the server has told so far).
    pub blobs_total: u64,
    /// Bytes moved in this phase.
    pub bytes_done: u64,
}

/// A callback told of a running sync's progress.
pub type ProgressFn = Arc<dyn Fn(&SyncProgress) + Send + Sync>;

/// Options for a sync: a progress callback and a cancellation flag.
#[derive(Clone, Default)]
pub struct SyncOptions {
    /// Called after every request with the progress so far.
    pub progress: Option<ProgressFn>,
    /// Set to true (from any thread) to stop at the next request boundary.
    pub cancel: Option<Arc<AtomicBool>>,
    /// Leave snapshots for a later sync even when one is due (a coordinator's phone on a
    /// metered link or a low battery; `Store::compact_workspace` makes one on demand).
    pub defer_snapshots: bool,
}

impl SyncOptions {
    fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
    }

    fn report(&self, p: SyncProgress) {
        if let Some(f) = &self.progress {
            f(&p);
        }
    }
}

/// A page of pulled blobs, prepared, with what the server said about the log.
struct Page {
    blobs: Vec<proto::PulledBlob>,
    prepared: Vec<Prepared>,
    more: bool,
    head: u64,
    team_version: u64,
    bytes_down: u64,
    chain_after: Option<proto::ChainHash>,
    chain_last: Option<proto::ChainHash>,
    chain_head: Option<proto::ChainHash>,
    check_ins: u64,
    tips: u64,
}

/// How a pull ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pulled {
    /// Caught up with the server's log.
    CaughtUp,
    /// The server's log does not continue what this device synced with (see `restore`);
    /// nothing was applied.
    Rewound,
}

/// The records a sync or import changed: listed while there are few, only flagged past
/// `CHANGED_LISTED`, so the memory it takes does not grow with the workspace.
#[derive(Default)]
pub(crate) struct Changed {
    ids: BTreeSet<String>,
    all: bool,
}

impl Changed {
    /// Notes that record `id` changed.
    pub(crate) fn insert(&mut self, id: String) {
        if self.all {
            return;
        }
        self.ids.insert(id);
        if self.ids.len() > CHANGED_LISTED {
            self.ids = BTreeSet::new();
            self.all = true;
        }
    }

    /// Writes the list (or the flag) into `report`.
    pub(crate) fn into_report(self, report: &mut SyncReport) {
        report.changed = self.ids.into_iter().collect();
        report.changed_all = self.all;
    }
}

/// What applying blobs in one transaction gathers, to act on once it has committed.
#[derive(Default)]
struct Applying {
    signers: team::Signers,
    epoch_keys: HashMap<u32, Option<crypto::WorkspaceKey>>,
    /// The epoch the verified team log is at (read once per transaction), if there is a log.
    log_epoch: Option<Option<u32>>,
    /// Whether a blob was held (its bytes kept) since the budget was last enforced.
    held: bool,
    /// Held blobs whose bytes were dropped to stay within the budget.
    dropped: u64,
    /// Whether this device is a coordinator of the team log (read once per transaction).
    coordinator: Option<bool>,
    /// Every document a blob named.
    ids: BTreeSet<String>,
    /// Documents the writer decoded and changed, in the order applied.
    touched: Vec<(String, crate::store::StoredDoc)>,
    set_aside: Vec<SetAside>,
    /// A record was rewritten (erased or redacted): the write-ahead log is emptied after the
    /// commit so that no earlier copy of its pages stays there.
    rewrote: bool,
}

impl Applying {
    /// Whether this device is a coordinator of the team log of `workspace`.
    fn coordinator(&mut self, tx: &Transaction<'_>, workspace: &str) -> Result<bool> {
        if let Some(c) = self.coordinator {
            return Ok(c);
        }
        let c = team::is_coordinator(tx, workspace)?;
        self.coordinator = Some(c);
        Ok(c)
    }

    /// After the commit: the writer's cached documents follow what was written, and blobs set
    /// aside are reported.
    fn committed(self, w: &mut crate::store::Writer, report: &mut SyncReport) {
        for id in &self.ids {
            Store::take_cached(w, id);
        }
        // Several blobs of one document: only the last copy is current.
        let mut seen = BTreeSet::new();
        for (id, doc) in self.touched.into_iter().rev() {
            if seen.insert(id.clone()) {
                Store::cache_after_write(w, id, doc);
            }
        }
        report.set_aside.extend(self.set_aside);
        report.set_aside_dropped += self.dropped;
        if self.rewrote {
            crate::store::checkpoint(w);
        }
    }
}

/// What applying one blob did.
enum Applied {
    /// Sealed under a key this device does not have yet: kept, and applied once it arrives.
    Held,
    /// Sealed under an epoch the verified team log does not reach: kept, and applied once the
    /// log does (until then it shows that the server hides a rotation).
    HeldEpoch,
    /// Signed by a device the team log does not admit (yet): kept, and applied once it does.
    HeldSigner,
    /// A restricted record this device may not keep: removed from it.
    Forgotten,
    /// Nothing new in it.
    Unchanged,
    /// Its document changed; the decoded document, when the writer decoded it.
    Changed(Option<Box<crate::store::StoredDoc>>),
    /// It rewrote its record as a new generation (an erase or a redaction), which replaced
    /// this device's copy.
    Rewritten,
    /// Written for another generation of its record than this device's: never merged (an
    /// earlier one would bring back what was erased); set aside, saying why.
    OtherGeneration(&'static str),
    /// A snapshot: the records it changed.
    Pack(Vec<String>),
}

/// Records the generation of a document just stored from a blob or bundle (0 needs nothing).
fn set_generation(tx: &Transaction<'_>, doc_id: &str, generation: u32) -> Result<()> {
    if generation > 0 {
        docs::set_generation(tx, doc_id, generation)?;
    }
    Ok(())
}

/// A sequence number as SQLite stores it (the server never issues one above `i64::MAX`).
fn seq_sql(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

impl Store {
    /// A client for a sync server, refusing plain `http://` beyond this machine unless the app
    /// allowed insecure transport.
    pub(crate) fn server(&self, url: &str, token: Option<String>) -> Result<Server> {
        Server::new(url, token, self.insecure_transport())
    }

    /// Syncs every connected workspace: push, then pull until caught up. Blocking; safe to
    /// call at any time and again after a failure or a cut.
    ///
    /// Fails with `DeviceRevoked` if a server revoked this device (that workspace stops
    /// syncing; others were still synced), with `DeviceUnknown` if a server does not know it
    /// (nothing is deleted; tried again next time), with `Network` if a server stayed
    /// unreachable.
    pub fn sync(&self) -> Result<SyncReport> {
        self.sync_with(&SyncOptions::default())
    }

    /// `sync()` with progress reporting and cancellation.
    pub fn sync_with(&self, opts: &SyncOptions) -> Result<SyncReport> {
        let _one_at_a_time = self.sync_guard();
        let started = Instant::now();
        let active = self.read(memberships::active)?;
        let mut report = SyncReport::default();
        let mut changed = Changed::default();
        let mut first_error = None;
        for m in active {
            match self.sync_one(&m, opts, &mut report, &mut changed) {
                Ok(()) => {}
                Err(Error::DeviceRevoked) => {
                    self.with_writer(|w| {
                        memberships::revoke(w.conn(), &m.workspace)?;
                        outbox::clear(w.conn(), &m.workspace)
                    })?;
                    first_error.get_or_insert(Error::DeviceRevoked);
                }
                // A server that does not know this device (a restore, a proxy dropping the
                // header) is not a revocation: the outbox stays, and the next sync tries again.
                Err(e @ Error::Cancelled) => return Err(e),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        changed.into_report(&mut report);
        report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match first_error {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    fn sync_one(
        &self,
        m: &Membership,
        opts: &SyncOptions,
        report: &mut SyncReport,
        changed: &mut Changed,
    ) -> Result<()> {
        let server = self
            .server(&m.url, Some(m.token.clone()))?
            .cancellable(opts.cancel.clone());
        let (has_key, team_version, log_len) = self.read(|c| {
            let has_key = keys::current(c, &m.workspace)?.is_some();
            let team_version = memberships::team_version(c, &m.workspace)?;
            let log_len = team_log::len(c, &m.workspace)?;
            Ok((has_key, team_version, log_len))
        })?;
        // The team must be known before any blob is checked against it; a device that joined
        // by an invite to be approved learns its keys this way. A workspace still without a
        // verified log, or under attack, looks at the server's log every time.
        let under_attack = self.read(|c| team_log::attack(c, &m.workspace))?.is_some();
        // A coordinator's desk shows when each device last synced: the server's listing is
        // fetched again every few minutes of syncing (its log only from where this device is).
        let listing_due = self.read(|c| {
            let at = memberships::listing_at(c, &m.workspace)?;
            Ok(now_ms().saturating_sub(at) > LISTING_EVERY_MS
                && team::is_coordinator(c, &m.workspace).unwrap_or(false))
        })?;
        if !has_key || team_version == 0 || log_len == 0 || under_attack || listing_due {
            self.refresh_team(&server, m)?;
            self.retry_held(&m.workspace, report, changed)?;
        }
        let (has_key, has_log) = self.read(|c| {
            Ok((
                keys::current(c, &m.workspace)?.is_some(),
                team::log_epoch(c, &m.workspace)?.is_some(),
            ))
        })?;
        if !has_key {
            // Waiting for a coordinator's approval: nothing can be read or sealed yet.
            return Ok(());
        }
        self.push(&server, m, opts, report)?;
        self.send_check_ins(&server, m)?;
        if !has_log {
            // A team from before the log, and no coordinator has started it yet: nothing
            // pulled could be checked against the team.
            return Ok(());
        }
        if self.pull(&server, m, opts, report, changed)? == Pulled::Rewound {
            // Restored from a backup: send again what the server lost, then pull from where
            // its log and this device's still agree.
            report.resent += self.recover_rewound(&server, m)?;
            self.push(&server, m, opts, report)?;
            if self.pull(&server, m, opts, report, changed)? == Pulled::Rewound {
                return Err(Error::Network(
                    "the server's log changed again while this device caught up with a restore"
                        .into(),
                ));
            }
        }
        if self.take_repull(&m.workspace)? {
            // Made a coordinator during this pull: read what it could not open before.
            self.pull(&server, m, opts, report, changed)?;
        }
        self.check_withheld_rotation(&m.workspace)?;
        self.sync_check_ins(&server, m, changed)?;
        // Tips wait on the server until a sync gets through with them: a refusal or a cut
        // there must not keep the team's records from syncing.
        tolerate_network(self.sync_tips(&server, m, changed))?;
        // A device that joined learns the settings document on its first pull: add its name
        // there so teammates see who wrote what, and send that right away. After a rotation,
        // re-sealed changes go out at once too, and so do changes that waited for this
        // device's admission, which the pull may have brought.
        self.coordinator_duties(&server, m)?;
        if !opts.defer_snapshots {
            self.compact_if_due(&server, m)?;
        }
        self.register_device_name(&m.workspace)?;
        self.push(&server, m, opts, report)?;
        tolerate_network(self.finish_tips(&server, m))?;
        self.with_writer(|w| memberships::set_last_sync_at(w.conn(), &m.workspace, now_ms()))
    }

    /// Whether this device was made a coordinator since it last pulled: then its cursor goes
    /// back to the start, so that it pulls (and opens) the restricted records it skipped.
    fn take_repull(&self, workspace: &str) -> Result<bool> {
        self.with_writer(|w| memberships::take_repull(w.conn(), workspace))
    }

    /// Whether this device may push now: the team log admits it and its newest key is the
    /// log's epoch (a teammate's rotation it has no key for yet must not leave changes sealed
    /// under a retired key on a server). A team from before the log pushes as it did.
    fn may_push(&self, workspace: &str) -> Result<bool> {
        self.read(|c| {
            let Some(epoch) = team::log_epoch(c, workspace)? else {
                return Ok(true);
            };
            let own = team::own_keys(c, workspace)?.sign_public();
            let admitted = team_log::is_admitted(c, workspace, &own)?;
            let current = keys::current(c, workspace)?.map(|(e, _)| e);
            Ok(admitted && current == Some(epoch))
        })
    }

    fn push(
        &self,
        server: &Server,
        m: &Membership,
        opts: &SyncOptions,
        report: &mut SyncReport,
    ) -> Result<()> {
        if !self.may_push(&m.workspace)? {
            // Queued changes wait, sealed, for the admission or the key.
            return Ok(());
        }
        let total: u64 = self.pending_changes(&m.workspace)?;
        let (mut done, mut bytes) = (0u64, 0u64);
        let mut refreshed = false;
        loop {
            if opts.cancelled() {
                return Err(Error::Cancelled);
            }
            let budget = server.budget();
            let queued =
                self.read(|c| outbox::next_batch(c, &m.workspace, PUSH_BATCH_BLOBS, budget))?;
            let batch = queued
                .into_iter()
                .map(|q| {
                    Ok((
                        q.id,
                        proto::PushBlob {
                            content_id: q.content_id,
                            doc_id: crypto::doc_id_bytes(&q.doc_id)?,
                            epoch: q.epoch,
                            ciphertext: q.ciphertext,
                            // An erase or a redaction: the server drops the earlier blobs.
                            supersedes: q.supersedes.and_then(|s| u64::try_from(s).ok()),
                            forget: q.supersedes.is_some(),
                            covers: Vec::new(),
                        },
                    ))
                })
                .collect::<Result<Vec<_>>>()?;
            if batch.is_empty() {
                return Ok(());
            }
            let ids: Vec<i64> = batch.iter().map(|(id, _)| *id).collect();
            let blobs: Vec<proto::PushBlob> = batch.into_iter().map(|(_, b)| b).collect();
            let sent: Vec<(proto::DocId, proto::ContentId)> =
                blobs.iter().map(|b| (b.doc_id, b.content_id)).collect();
            let n = blobs.len();
            let resp = match server.try_post::<_, proto::PushResponse>(
                Call::Device,
                proto::PATH_PUSH,
                &proto::PushRequest { blobs },
            )? {
                Ok(resp) => resp,
                Err(r) if r.code == proto::codes::STALE_EPOCH && !refreshed => {
                    // A coordinator rotated since this device last looked: learn the new key
                    // (which re-seals the outbox) and push again, or wait for it.
                    refreshed = true;
                    self.refresh_team(server, m)?;
                    if !self.may_push(&m.workspace)? {
                        return Ok(());
                    }
                    continue;
                }
                Err(r) => return Err(NetworkError::Refused(r).into()),
            };
            if resp.body.assigned.len() != n {
                return Err(Error::Network(NetworkError::Other(format!(
                    "the server acknowledged {} of {n} blobs",
                    resp.body.assigned.len()
                ))));
            }
            // Acknowledged: only now may the rows go.
            self.with_writer(|w| {
                let tx = w.transaction()?;
                outbox::remove(&tx, &ids)?;
                for ((doc, _), &seq) in sent.iter().zip(&resp.body.assigned) {
                    restore::seen_at(&tx, &hex::encode(doc), seq)?;
                }
                let content_ids: Vec<proto::ContentId> = sent.iter().map(|(_, c)| *c).collect();
                restore::advance_over_own(&tx, &m.workspace, &content_ids, &resp.body.assigned)?;
                tx.commit()?;
                Ok(())
            })?;
            done += n as u64;
            bytes += resp.bytes_up;
            report.pushed += n as u64;
            report.bytes_up += resp.bytes_up;
            report.bytes_down += resp.bytes_down;
            opts.report(SyncProgress {
                workspace_id: m.workspace.clone(),
                phase: SyncPhase::Push,
                blobs_done: done,
                blobs_total: total.max(done),
                bytes_done: bytes,
            });
        }
    }

    /// Pulls until caught up. Pages are fetched and prepared (see `prepare`) one ahead, on
    /// another thread, while this one applies the page before: on a first sync into a big
    /// workspace the network, the decoding and the writer all work at once.
    fn pull(
        &self,
        server: &Server,
        m: &Membership,
        opts: &SyncOptions,
        report: &mut SyncReport,
        changed: &mut Changed,
    ) -> Result<Pulled> {
        // Read now: the push may just have moved it past this device's own blobs.
        let at = self.read(|c| restore::CursorChain::read(c, &m.workspace))?;
        let start = at.cursor;
        let mut first = true;
        let mut chain = at.expected();
        let (mut done, mut bytes) = (0u64, 0u64);
        std::thread::scope(|s| {
            // A few pages wait while one is applied and one is fetched: memory stays bounded.
            let (pages, received) = sync_channel(PAGES_AHEAD);
            s.spawn(move || {
                let fetched = catch_unwind(AssertUnwindSafe(|| {
                    self.fetch_pages(server, m, opts, start, &pages)
                }));
                // A bug must fail this sync with an error, not a panic in the caller's thread
                // (an app's, across the FFI boundary).
                if fetched.is_err() {
                    let _ = pages.send(Err(Error::Storage(
                        "the pull stopped on an internal error".into(),
                    )));
                }
            });
            let mut waiting = None;
            loop {
                let page = match waiting.take() {
                    Some(page) => page,
                    None => match received.recv() {
                        Ok(page) => page,
                        Err(_) => return Ok(Pulled::CaughtUp),
                    },
                };
                let mut page: Page = page?;
                if opts.cancelled() {
                    return Err(Error::Cancelled);
                }
                // The first answer shows where the server's log is at this device's cursor;
                // the fetcher checks that each later page continues the one before.
                if std::mem::take(&mut first) {
                    if at.rewound(page.head, page.chain_after.as_ref()) {
                        return Ok(Pulled::Rewound);
                    }
                    // A store from before chain hashes learns the one at its cursor now.
                    chain = chain.or(page.chain_after);
                }
                let known_team = self.read(|c| {
                    Ok(u64::try_from(memberships::team_version(c, &m.workspace)?).unwrap_or(0))
                })?;
                if page.team_version != known_team {
                    // Someone enrolled, was revoked or got keys (or the server was restored and
                    // counts from an older version): learn it before checking blobs.
                    self.refresh_team(server, m)?;
                    self.retry_held(&m.workspace, report, changed)?;
                }
                // This page and those already waiting are applied in one transaction. Ids are
                // random, so the blobs of a page touch pages all over the indexes, and each
                // commit writes (and encrypts) every index page touched: on a big pull, fewer
                // commits are most of the writer's time. When the writer keeps up, each page
                // is committed as soon as it is applied.
                let team_version = page.team_version;
                let head = self.with_writer(|w| {
                    let tx = w.transaction()?;
                    let mut applying = Applying::default();
                    let mut in_tx = 0;
                    let mut cursor = restore::CursorChain::read(&tx, &m.workspace)?.cursor;
                    loop {
                        report.bytes_down += page.bytes_down;
                        bytes += page.bytes_down;
                        if let Some(last) = page.blobs.last() {
                            cursor = last.seq;
                            chain = page.chain_last;
                        }
                        // The last page: what lies between it and the head is what this
                        // device does not need (covered by a save or snapshot it got, or a
                        // snapshot of what it has); moving past it lets the next snapshot
                        // cover those too.
                        if !page.more
                            && page.head > cursor
                            && let Some(at_head) = page.chain_head
                        {
                            cursor = page.head;
                            chain = Some(at_head);
                            memberships::set_cursor(&tx, &m.workspace, seq_sql(cursor))?;
                        }
                        if !page.blobs.is_empty() {
                            in_tx += page.blobs.len()
                                + page
                                    .prepared
                                    .iter()
                                    .filter_map(|p| p.pack.as_ref())
                                    .map(Vec::len)
                                    .sum::<usize>();
                            self.apply_in(
                                &tx,
                                &mut applying,
                                &m.workspace,
                                &page.blobs,
                                page.prepared,
                                true,
                                changed,
                            )?;
                            done += page.blobs.len() as u64;
                            report.pulled += page.blobs.len() as u64;
                        }
                        if in_tx >= GROUP_RECORDS || opts.cancelled() {
                            break;
                        }
                        match received.try_recv() {
                            Ok(Ok(next)) if next.team_version == team_version => page = next,
                            Ok(other) => {
                                waiting = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    restore::record(&tx, &m.workspace, cursor, chain.as_ref())?;
                    // Check-ins changed: fetched after the pull (see `check_ins`).
                    memberships::set_check_ins_seen(
                        &tx,
                        &m.workspace,
                        i64::try_from(page.check_ins).unwrap_or(i64::MAX),
                    )?;
                    memberships::set_tips_waiting(
                        &tx,
                        &m.workspace,
                        i64::try_from(page.tips).unwrap_or(i64::MAX),
                    )?;
                    tx.commit()?;
                    applying.committed(w, report);
                    Ok(page.head)
                })?;
                // Told after the commit and outside the writer lock: the callback may read or
                // write the store.
                opts.report(SyncProgress {
                    workspace_id: m.workspace.clone(),
                    phase: SyncPhase::Pull,
                    blobs_done: done,
                    blobs_total: head.saturating_sub(start).max(done),
                    bytes_done: bytes,
                });
            }
        })
    }

    /// Fetches and prepares the pages after `cursor` until caught up, handing each over in
    /// order; stops after handing over an error, or once nobody takes the pages any more.
    fn fetch_pages(
        &self,
        server: &Server,
        m: &Membership,
        opts: &SyncOptions,
        mut cursor: u64,
        pages: &SyncSender<Result<Page>>,
    ) {
        let mut chain: Option<proto::ChainHash> = None;
        loop {
            let page = self.fetch_page(server, m, opts, cursor).and_then(|p| {
                match (chain, p.chain_after) {
                    (Some(before), Some(after)) if before != after => Err(Error::Network(
                        "the server's log changed during the pull; sync again".into(),
                    )),
                    _ => Ok(p),
                }
            });
            let next = match &page {
                Ok(p) if p.more => p.blobs.last().map(|b| b.seq),
                _ => None,
            };
            chain = page.as_ref().ok().and_then(|p| p.chain_last);
            if pages.send(page).is_err() {
                return;
            }
            match next {
                Some(seq) => cursor = seq,
                None => return,
            }
        }
    }

    fn fetch_page(
        &self,
        server: &Server,
        m: &Membership,
        opts: &SyncOptions,
        cursor: u64,
    ) -> Result<Page> {
        if opts.cancelled() {
            return Err(Error::Cancelled);
        }
        let req = proto::PullRequest {
            after: cursor,
            max_bytes: Some(server.budget() as u64),
        };
        let resp = server.get::<proto::PullResponse>(&req.to_path_and_query())?;
        let batch = resp.body;
        if let Some(first) = batch.blobs.first() {
            let increasing = batch.blobs.windows(2).all(|w| w[0].seq < w[1].seq);
            if !increasing || first.seq <= cursor {
                return Err(Error::Network("the server sent blobs out of order".into()));
            }
        }
        let prepared = self.prepare_page(&m.workspace, &batch.blobs)?;
        Ok(Page {
            blobs: batch.blobs,
            prepared,
            more: batch.more,
            head: batch.head,
            team_version: batch.team_version,
            bytes_down: resp.bytes_down,
            chain_after: batch.chain_after,
            chain_last: batch.chain_last,
            chain_head: batch.chain_head,
            check_ins: batch.check_ins,
            tips: batch.tips,
        })
    }

    /// Applies one pulled batch and advances the cursor, in one transaction. Returns the new
    /// cursor. For the fuzz targets.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn apply_pulled(
        &self,
        workspace: &str,
        blobs: &[proto::PulledBlob],
        report: &mut SyncReport,
        changed: &mut Changed,
    ) -> Result<u64> {
        self.apply_blobs(workspace, blobs, true, report, changed)
    }

    /// Checks, opens and merges blobs in one transaction, setting aside those that fail (and
    /// holding, with their bytes, those sealed under an epoch whose key has not arrived yet).
    /// With `advance`, the pull cursor moves to the last blob; without, the blobs are retries
    /// of held ones. Returns the last sequence number seen.
    pub(crate) fn apply_blobs(
        &self,
        workspace: &str,
        blobs: &[proto::PulledBlob],
        advance: bool,
        report: &mut SyncReport,
        changed: &mut Changed,
    ) -> Result<u64> {
        let prepared = self.prepare_page(workspace, blobs)?;
        self.apply_prepared(workspace, blobs, prepared, advance, report, changed)
    }

    /// Works out ahead, without the writer, what applying `blobs` will need (see `prepare`).
    fn prepare_page(&self, workspace: &str, blobs: &[proto::PulledBlob]) -> Result<Vec<Prepared>> {
        if blobs.is_empty() {
            return Ok(Vec::new());
        }
        let known = self.read(|c| prepare::Known::read(c, workspace, blobs))?;
        Ok(prepare::page(workspace, self.actor_id(), &known, blobs))
    }

    /// [`Store::apply_blobs`] with the blobs already prepared.
    fn apply_prepared(
        &self,
        workspace: &str,
        blobs: &[proto::PulledBlob],
        prepared: Vec<Prepared>,
        advance: bool,
        report: &mut SyncReport,
        changed: &mut Changed,
    ) -> Result<u64> {
        self.with_writer(|w| {
            let tx = w.transaction()?;
            let mut applying = Applying::default();
            let cursor = self.apply_in(
                &tx,
                &mut applying,
                workspace,
                blobs,
                prepared,
                advance,
                changed,
            )?;
            tx.commit()?;
            applying.committed(w, report);
            Ok(cursor)
        })
    }

    /// Applies prepared blobs within `tx` (see [`Store::apply_blobs`]), gathering in `st` what
    /// to do once it commits. Returns the last sequence number seen.
    #[allow(clippy::too_many_arguments)]
    fn apply_in(
        &self,
        tx: &Transaction<'_>,
        st: &mut Applying,
        workspace: &str,
        blobs: &[proto::PulledBlob],
        prepared: Vec<Prepared>,
        advance: bool,
        changed: &mut Changed,
    ) -> Result<u64> {
        let mut cursor = 0;
        let prepared = prepared
            .into_iter()
            .chain(std::iter::repeat_with(Prepared::default));
        for (b, p) in blobs.iter().zip(prepared) {
            cursor = b.seq;
            let doc_id = hex::encode(b.doc_id);
            st.ids.insert(doc_id.clone());
            let outcome = (|| -> Result<Applied> {
                let signer = crypto::blob_signer(&b.ciphertext)?;
                if st.signers.check(tx, workspace, &signer, b.seq)? == team::Standing::Unknown {
                    return Ok(Applied::HeldSigner);
                }
                let authors = st.signers.authorship(tx, workspace, &signer)?.clone();
                let log_epoch = match st.log_epoch {
                    Some(e) => e,
                    None => *st.log_epoch.insert(team::log_epoch(tx, workspace)?),
                };
                if log_epoch.is_some_and(|e| b.epoch > e) {
                    return Ok(Applied::HeldEpoch);
                }
                if crypto::is_restricted_blob(&b.ciphertext) {
                    if !p.signed_ok {
                        crypto::verify_blob_signature(
                            workspace,
                            &b.doc_id,
                            b.epoch,
                            &b.ciphertext,
                        )?;
                    }
                    match keys::restricted_secret(tx, workspace, b.epoch)? {
                        Some(secret) => {
                            let (meta, chunk) = crypto::open_restricted_verified(
                                &secret,
                                workspace,
                                &b.doc_id,
                                b.epoch,
                                &b.ciphertext,
                            )?;
                            return self
                                .merge_opened(tx, None, workspace, &doc_id, meta, chunk, &authors);
                        }
                        // A coordinator waits for the grant; anyone else is not meant to read
                        // it, and keeps nothing of a record that became restricted unless it
                        // wrote it.
                        None if st.coordinator(tx, workspace)? => return Ok(Applied::Held),
                        None => return self.not_for_this_device(tx, &doc_id),
                    }
                }
                let key = match st.epoch_keys.get(&b.epoch) {
                    Some(k) => k,
                    None => st
                        .epoch_keys
                        .entry(b.epoch)
                        .or_insert(keys::at_epoch(tx, workspace, b.epoch)?),
                };
                let Some(key) = key else {
                    return Ok(Applied::Held);
                };
                let (meta, chunk) = match p.opened {
                    // Opened ahead, after its signature held, with this epoch's key (a
                    // stored key never changes).
                    Some(opened) => opened,
                    None if p.signed_ok => {
                        crypto::open_verified(key, workspace, &b.doc_id, b.epoch, &b.ciphertext)?
                    }
                    None => crypto::open_signed(key, workspace, &b.doc_id, b.epoch, &b.ciphertext)?,
                };
                if meta.pack {
                    return self.apply_pack(tx, workspace, &chunk, p.pack, &authors);
                }
                self.merge_opened(
                    tx,
                    p.whole.as_ref(),
                    workspace,
                    &doc_id,
                    meta,
                    chunk,
                    &authors,
                )
            })();
            let aside = |reason: String, held: Option<&str>| -> Result<SetAside> {
                set_aside::put(
                    tx,
                    &set_aside::NewSetAside {
                        workspace,
                        seq: seq_sql(b.seq),
                        doc_id: &doc_id,
                        reason: &reason,
                        epoch: b.epoch,
                        held,
                        blob: held.map(|_| b.ciphertext.as_slice()),
                    },
                )?;
                Ok(SetAside {
                    workspace_id: workspace.to_string(),
                    seq: b.seq,
                    doc_id: doc_id.clone(),
                    reason,
                })
            };
            match outcome {
                Ok(Applied::Held) => {
                    st.held = true;
                    st.set_aside.push(aside(
                        format!("waiting for the key of epoch {}", b.epoch),
                        Some("key"),
                    )?);
                }
                Ok(Applied::HeldEpoch) => {
                    st.held = true;
                    st.set_aside.push(aside(
                        format!(
                            "sealed under epoch {}, which the team log does not reach yet",
                            b.epoch
                        ),
                        Some("epoch"),
                    )?);
                }
                Ok(Applied::HeldSigner) => {
                    st.held = true;
                    st.set_aside.push(aside(
                        "signed by a device the team log does not admit (yet)".into(),
                        Some("signer"),
                    )?);
                }
                Ok(Applied::OtherGeneration(reason)) => {
                    st.set_aside.push(aside(reason.to_string(), None)?);
                }
                Ok(Applied::Pack(ids)) => {
                    if advance {
                        snapshot_packs::record(tx, workspace, &doc_id, seq_sql(b.seq))?;
                    }
                    for id in ids {
                        if advance {
                            restore::seen_at(tx, &id, b.seq)?;
                        }
                        changed.insert(id.clone());
                        st.ids.insert(id);
                    }
                }
                Ok(applied) => {
                    if !advance {
                        set_aside::remove(tx, workspace, seq_sql(b.seq))?;
                    }
                    if advance
                        && matches!(
                            applied,
                            Applied::Changed(_) | Applied::Unchanged | Applied::Rewritten
                        )
                    {
                        restore::seen_at(tx, &doc_id, b.seq)?;
                    }
                    match applied {
                        Applied::Rewritten => {
                            st.rewrote = true;
                            changed.insert(doc_id.clone());
                        }
                        Applied::Changed(stored) => {
                            changed.insert(doc_id.clone());
                            if let Some(stored) = stored {
                                st.touched.push((doc_id, *stored));
                            }
                        }
                        Applied::Forgotten => {
                            changed.insert(doc_id.clone());
                        }
                        _ => {}
                    }
                }
                // Someone else's bad blob must not stop this device from syncing.
                Err(e @ (Error::Tampered(_) | Error::Corrupt(_))) => {
                    st.set_aside.push(aside(e.to_string(), None)?);
                }
                Err(e) => return Err(e),
            }
        }
        if st.held {
            st.dropped += team::enforce_held_budget(tx, workspace)?;
            st.held = false;
        }
        if advance {
            memberships::set_cursor(tx, workspace, seq_sql(cursor))?;
        }
        Ok(cursor)
    }

    /// Merges an opened chunk of document `doc_id` (`whole`: the new document decoded ahead).
    #[allow(clippy::too_many_arguments)]
    fn merge_opened(
        &self,
        tx: &Transaction<'_>,
        whole: Option<&(
            Vec<automerge::ChangeHash>,
            crate::store::projection::Rows,
            Vec<automerge::ActorId>,
        )>,
        workspace: &str,
        doc_id: &str,
        meta: crypto::ChunkMeta,
        chunk: Vec<u8>,
        authors: &team::Authorship,
    ) -> Result<Applied> {
        let actor = self.actor_id();
        let target = Target {
            id: doc_id,
            workspace,
            kind: meta.kind,
        };
        let local = docs::generation(tx, doc_id)?;
        match local {
            Some(g) if meta.generation < g => {
                return Ok(Applied::OtherGeneration(
                    "made before this record was erased or redacted",
                ));
            }
            Some(g) if meta.generation > g && !meta.replaces => {
                return Ok(Applied::OtherGeneration(
                    "made after a rewrite of this record that has not arrived here",
                ));
            }
            Some(g) if meta.generation > g => {
                // Only the record's author (whose actor the rewrite is written as) or a
                // coordinator may rewrite it; the authorship rule checks the signer.
                let creator =
                    load_stored(tx, doc_id, actor)?.map(|s| crate::records::creator(&s.doc));
                let rewritten = crate::records::creator(
                    &automerge::AutoCommit::load(&chunk)
                        .map_err(|_| Error::Corrupt("a rewrite is not a whole record".into()))?,
                );
                if creator.is_some_and(|c| c != rewritten) {
                    return Err(Error::Tampered(
                        "a rewrite of a record names another author than the record".into(),
                    ));
                }
                crate::store::replace_document(tx, &target, &chunk, meta, actor, authors, true)?;
                return Ok(Applied::Rewritten);
            }
            _ => {}
        }
        let existing = load_stored(tx, doc_id, actor)?;
        let is_new = existing.is_none();
        if is_new && let Some((heads, rows, actors)) = whole {
            authors.check(actors)?;
            insert_whole(tx, &target, &chunk, heads, rows)?;
            set_generation(tx, doc_id, meta.generation)?;
            return Ok(Applied::Changed(None));
        }
        let (stored, did_change) =
            merge_chunks(tx, existing, actor, &target, &[chunk], false, authors)?;
        if is_new {
            set_generation(tx, doc_id, meta.generation)?;
        }
        Ok(match did_change {
            true => Applied::Changed(Some(Box::new(stored))),
            false => Applied::Unchanged,
        })
    }

    /// Merges every record of a snapshot (see `snapshot`), which only a coordinator may make.
    /// Returns the records that changed.
    fn apply_pack(
        &self,
        tx: &Transaction<'_>,
        workspace: &str,
        chunk: &[u8],
        prepared: Option<Vec<prepare::PackedRecord>>,
        authors: &team::Authorship,
    ) -> Result<Applied> {
        if *authors != team::Authorship::Any {
            return Ok(Applied::OtherGeneration(
                "a snapshot from a device that is not a coordinator's",
            ));
        }
        // Unpacked and decoded ahead, on another thread, unless that failed.
        let records = match prepared {
            Some(records) => records,
            None => {
                let unpacked = snapshot::unpack(chunk)?;
                let count = unpacked.len();
                let records: Vec<prepare::PackedRecord> = unpacked
                    .into_iter()
                    .filter_map(|r| prepare::decode_packed(workspace, self.actor_id(), r))
                    .collect();
                if records.len() != count {
                    return Err(Error::Corrupt(
                        "a snapshot names a malformed record id or kind".into(),
                    ));
                }
                records
            }
        };
        let mut changed = Vec::new();
        for r in records {
            let applied = self.merge_opened(
                tx,
                r.whole.as_ref(),
                workspace,
                &r.id,
                r.meta,
                r.save,
                authors,
            )?;
            if matches!(applied, Applied::Changed(_) | Applied::Rewritten) {
                changed.push(r.id);
            }
        }
        Ok(Applied::Pack(changed))
    }

    /// A restricted record's blob this device cannot open (it is not a coordinator's): it
    /// keeps nothing of the record, unless it wrote it.
    fn not_for_this_device(&self, tx: &Transaction<'_>, doc_id: &str) -> Result<Applied> {
        match projection::creator(tx, doc_id)? {
            Some(c) if c != self.actor() => {
                crate::store::forget_document(tx, doc_id)?;
                Ok(Applied::Forgotten)
            }
            _ => Ok(Applied::Unchanged),
        }
    }

    /// Blobs set aside so far (they failed authentication or could not be decoded).
    pub fn set_aside_blobs(&self) -> Result<Vec<SetAside>> {
        let noted = self.read(set_aside::all)?;
        Ok(noted
            .into_iter()
            .map(|n| SetAside {
                workspace_id: n.workspace,
                seq: n.seq,
                doc_id: n.doc_id,
                reason: n.reason,
            })
            .collect())
    }

    /// Sealed bytes waiting to be pushed for a workspace (for "12 kB to send" in an app).
    pub fn pending_bytes(&self, workspace: &str) -> Result<u64> {
        self.read(|c| outbox::pending_bytes(c, workspace))
    }

    /// Local changes waiting to be pushed, per workspace.
    pub fn pending_changes(&self, workspace: &str) -> Result<u64> {
        self.read(|c| outbox::pending_count(c, workspace))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sync_lists_the_records_it_changed_until_there_are_too_many_to_list() {
        let mut changed = Changed::default();
        for i in 0..CHANGED_LISTED {
            changed.insert(format!("{i:032x}"));
            changed.insert(format!("{i:032x}"));
        }
        let mut report = SyncReport::default();
        let listed = Changed {
            ids: changed.ids.clone(),
            all: changed.all,
        };
        listed.into_report(&mut report);
        assert_eq!(report.changed.len(), CHANGED_LISTED);
        assert!(!report.changed_all);
        assert!(report.changed.is_sorted());

        changed.insert("f".repeat(32));
        assert!(
            changed.ids.is_empty(),
            "the list is let go, not kept growing"
        );
        changed.insert("e".repeat(32));
        changed.into_report(&mut report);
        assert!(report.changed.is_empty());
        assert!(report.changed_all);
    }
}
