//! Snapshots: a coordinator's device packs many records into a few blobs, so that a new device
//! downloads a compressed team instead of every change ever made.
//!
//! A snapshot blob is sealed and signed like any blob; inside the seal, a zstd-compressed list
//! of whole Automerge saves (with each record's kind and generation), at most [`PACK_DOCS`]
//! records a blob. It is pushed with the ids of the records it holds and the number `n` it
//! covers up to (this device's cursor: it has applied every blob up to there): the server then
//! skips, in pulls, every blob of those records up to `n`, and skips the snapshot itself for a
//! device whose cursor is already at `n` (it has all it holds). Each snapshot also covers the
//! snapshots before it. A record's later changes, and a change made on top of history since
//! packed (a phone that was offline for a month), merge into the whole history a snapshot
//! carries: nothing anyone wrote is lost.
//!
//! Left out: restricted records (only coordinators may read them; a snapshot is sealed for the
//! team), and records with a blob set aside here (this device does not have all of them).
//! Receivers accept a snapshot only from a coordinator of the team log.
//!
//! When: at a coordinator's sync, once the log has grown since the last snapshot by at least as
//! many blobs as the workspace has records, and by at least [`MIN_TAIL`]. Below that, a new
//! device pulls at most about twice what a snapshot would give it, which is not worth making
//! the coordinator's phone load and compress every record (and upload them again) for.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use waymark_protocol as proto;

use super::http::{Call, Server};
use super::{Membership, seq_sql, team};
use crate::crypto::{self, ChunkMeta};
use crate::error::{Error, Result, StorageError};
use crate::model::RecordKind;
use crate::store::{Store, docs, keys, load_stored, memberships, projection, snapshot_packs};

/// Most records one snapshot blob holds (a visit packs to a few hundred bytes: a blob stays far
/// under the server's blob limit).
pub(crate) const PACK_DOCS: usize = 1_000;
/// The fewest blobs since the last snapshot that make a new one worth it.
pub(crate) const MIN_TAIL: u64 = 1_000;
/// The most compressed bytes one snapshot blob carries: well under the server's default blob
/// limit (4 MiB), and a page a slow link can carry.
const MAX_PACK_BYTES: usize = 1 << 20;
/// zstd level: better ratios cost the coordinator's phone much more time for little gain.
const LEVEL: i32 = 9;
/// The most bytes a snapshot may unpack to (a hostile or broken one must not exhaust memory).
const MAX_UNPACKED: usize = 256 << 20;

/// One record in a snapshot.
#[derive(Serialize, Deserialize)]
pub(crate) struct Packed {
    /// The record's id (16 bytes).
    pub(crate) id: ByteBuf,
    /// Its kind.
    pub(crate) kind: String,
    /// Its generation.
    pub(crate) generation: u32,
    /// Its whole Automerge save.
    pub(crate) save: ByteBuf,
}

/// What a compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CompactReport {
    /// Snapshot blobs pushed.
    pub snapshots: u64,
    /// Records they hold.
    pub records: u64,
    /// Their sealed bytes.
    pub bytes: u64,
}

/// Packs `records` into one or more snapshots' compressed bytes, halving a batch until each
/// packs within [`MAX_PACK_BYTES`] (a record alone is packed whatever its size), appending
/// (records, bytes) pairs to `out`.
fn packed_within<'a>(records: &'a [Packed], out: &mut Vec<(&'a [Packed], Vec<u8>)>) -> Result<()> {
    let packed = pack(records)?;
    if packed.len() <= MAX_PACK_BYTES || records.len() == 1 {
        out.push((records, packed));
        return Ok(());
    }
    let (a, b) = records.split_at(records.len() / 2);
    packed_within(a, out)?;
    packed_within(b, out)
}

/// Packs `records` into the compressed bytes sealed in a snapshot blob.
fn pack(records: &[Packed]) -> Result<Vec<u8>> {
    let mut cbor = Vec::new();
    ciborium::into_writer(&records, &mut cbor).map_err(|source| StorageError::Encode {
        what: "encoding a snapshot",
        source,
    })?;
    zstd::bulk::compress(&cbor, LEVEL).map_err(|source| {
        StorageError::Io {
            what: "compressing",
            source,
        }
        .into()
    })
}

/// The records of a snapshot's opened chunk.
pub(crate) fn unpack(chunk: &[u8]) -> Result<Vec<Packed>> {
    // The decoders' errors are dropped on purpose: a serde message can quote a string it did
    // not expect, and this chunk is a team's records in clear.
    let bad = || Error::Corrupt("a snapshot does not unpack".into());
    let cbor = zstd::bulk::decompress(chunk, MAX_UNPACKED).map_err(|_| bad())?;
    ciborium::from_reader(cbor.as_slice()).map_err(|_| bad())
}

impl Store {
    /// Packs the records of `workspace` this device has, up to its cursor, into snapshot blobs
    /// and pushes them (see the module docs). A coordinator's device only.
    pub fn compact_workspace(&self, workspace: &str) -> Result<CompactReport> {
        crate::validate::id("workspace_id", workspace)?;
        let _one_at_a_time = self.sync_guard();
        let m = self.membership(workspace)?;
        let server = self.server(&m.url, Some(m.token.clone()))?;
        self.compact(&server, &m)
    }

    /// Compacts `m`'s workspace at a coordinator's sync when its log grew enough (see the
    /// module docs).
    pub(crate) fn compact_if_due(&self, server: &Server, m: &Membership) -> Result<()> {
        let (coordinator, tail, records) = self.read(|c| {
            let coordinator = team::is_coordinator(c, &m.workspace)?;
            let cursor = memberships::cursor(c, &m.workspace)?;
            let last = snapshot_packs::last_seq(c, &m.workspace)?;
            let records = docs::count_in(c, &m.workspace)?;
            Ok((
                coordinator,
                u64::try_from(cursor - last).unwrap_or(0),
                records,
            ))
        })?;
        if coordinator && tail >= MIN_TAIL.max(records) {
            match self.compact(server, m) {
                // An optimisation: the next sync tries again.
                Ok(_) | Err(Error::Network(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn compact(&self, server: &Server, m: &Membership) -> Result<CompactReport> {
        let (ids, cursor, earlier) = self.read(|c| {
            if !team::is_coordinator(c, &m.workspace)? {
                return Err(Error::NotPermitted(
                    "only a coordinator's device makes snapshots".into(),
                ));
            }
            let cursor = memberships::cursor(c, &m.workspace)?;
            let ids = docs::packable(c, &m.workspace, cursor)?;
            let earlier = snapshot_packs::doc_ids(c, &m.workspace)?;
            Ok((ids, u64::try_from(cursor).unwrap_or(0), earlier))
        })?;
        // The snapshots before this compaction are covered too, a share by each batch.
        let share = earlier.len().div_ceil(ids.len().div_ceil(PACK_DOCS).max(1));
        let mut earlier_ids = earlier.chunks(share.max(1));
        let mut report = CompactReport::default();
        // A batch at a time, loaded, packed and pushed: memory stays that of one batch,
        // whatever the team's size.
        for batch in ids.chunks(PACK_DOCS) {
            let covered_too = earlier_ids.next().unwrap_or_default();
            let blobs = self.read(|c| self.snapshot_blobs(c, m, batch, covered_too, cursor))?;
            for (blob, records) in blobs {
                self.push_snapshot(server, m, blob, &mut report)?;
                report.records += records;
            }
        }
        // Covered now: the next compaction need not name them again.
        self.with_writer(|w| snapshot_packs::forget(w.conn(), &m.workspace, &earlier))?;
        Ok(report)
    }

    /// The snapshot blobs of records `ids` (restricted ones left out), sealed and signed, each
    /// with how many records it holds; the first also covers the snapshots `covered_too`.
    fn snapshot_blobs(
        &self,
        c: &rusqlite::Connection,
        m: &Membership,
        ids: &[String],
        covered_too: &[String],
        cursor: u64,
    ) -> Result<Vec<(proto::PushBlob, u64)>> {
        let (epoch, key) = keys::current(c, &m.workspace)?
            .ok_or_else(|| Error::NotPermitted("this device has no key yet".into()))?;
        let own = team::own_keys(c, &m.workspace)?;
        let mut records = Vec::with_capacity(ids.len());
        for id in ids {
            if projection::is_restricted(c, id)? {
                continue;
            }
            let Some(mut stored) = load_stored(c, id, self.actor_id())? else {
                continue;
            };
            let generation = crate::store::outbox::generation(c, id)?;
            records.push(Packed {
                id: ByteBuf::from(crypto::doc_id_bytes(id)?.to_vec()),
                kind: stored.kind.as_str().to_string(),
                generation,
                save: ByteBuf::from(stored.doc.save()),
            });
        }
        let mut batches = Vec::new();
        if !records.is_empty() {
            packed_within(&records, &mut batches)?;
        }
        let mut blobs = Vec::with_capacity(batches.len());
        for (i, (batch, packed)) in batches.into_iter().enumerate() {
            let doc: [u8; 16] = rand::random();
            let meta = ChunkMeta {
                pack: true,
                ..RecordKind::Settings.into()
            };
            let ciphertext =
                crypto::seal_signed(&key, &own, &m.workspace, &doc, epoch, meta, &packed)?;
            let mut covers: Vec<u8> = batch.iter().flat_map(|p| p.id.to_vec()).collect();
            if i == 0 {
                for id in covered_too {
                    covers.extend(crypto::doc_id_bytes(id)?);
                }
            }
            let held = batch.len() as u64;
            blobs.push((
                proto::PushBlob {
                    content_id: proto::content_id_of(&ciphertext),
                    doc_id: doc,
                    epoch,
                    ciphertext,
                    supersedes: Some(cursor),
                    forget: false,
                    covers,
                },
                held,
            ));
        }
        Ok(blobs)
    }

    /// Pushes one snapshot blob and moves past it (see `compact`).
    fn push_snapshot(
        &self,
        server: &Server,
        m: &Membership,
        blob: proto::PushBlob,
        report: &mut CompactReport,
    ) -> Result<()> {
        let doc = hex::encode(blob.doc_id);
        let size = blob.ciphertext.len() as u64;
        let content_id = blob.content_id;
        let answer = server.post::<_, proto::PushResponse>(
            Call::Device,
            proto::PATH_PUSH,
            &proto::PushRequest { blobs: vec![blob] },
        )?;
        let seq = answer.body.assigned.first().copied().unwrap_or(0);
        // Past its own snapshot, so that the next one covers it (pulls skip it for this
        // device: it has all it holds).
        self.with_writer(|w| {
            let tx = w.transaction()?;
            snapshot_packs::record(&tx, &m.workspace, &doc, seq_sql(seq))?;
            super::restore::advance_over_own(
                &tx,
                &m.workspace,
                &[content_id],
                &answer.body.assigned,
            )?;
            tx.commit()?;
            Ok(())
        })?;
        report.snapshots += 1;
        report.bytes += size;
        Ok(())
    }
}
