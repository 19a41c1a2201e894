//! The work on a page of pulled blobs that needs neither the writer nor a transaction, done on
//! all cores before the page is applied: checking device signatures, opening seals, and, for a
//! document this store does not have yet, decoding it and deriving its projection rows. When a
//! new phone joins a big workspace nearly every blob is such a document, and this is most of
//! the work; the writer is left with the checks against the team and the inserts.
//!
//! Nothing here is trusted by itself: the writer still checks each signer against the team,
//! and a blob prepared wrongly (a key, a document that appeared meanwhile) simply takes the
//! writer's own path.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use automerge::{ActorId, ChangeHash};
use rusqlite::Connection;
use waymark_protocol::PulledBlob;

use crate::crypto::{self, WorkspaceKey};
use crate::error::Result;
use crate::exchange::{Target, decode_whole};
use crate::store::projection::Rows;
use crate::store::{docs, keys};

/// Fewest blobs worth a thread of their own.
const PER_THREAD_MIN: usize = 32;

/// What was worked out ahead for one blob.
#[derive(Default)]
pub(crate) struct Prepared {
    /// Whether the device signature holds. A blob marked false is checked again, alone, when
    /// applied, which says why it is set aside.
    pub signed_ok: bool,
    /// The opened seal: what the chunk says of itself (kind, generation) and the chunk.
    pub opened: Option<(crate::crypto::ChunkMeta, Vec<u8>)>,
    /// For a document this store did not have: the chunk holds all of it, with these heads,
    /// projection rows and authors.
    pub whole: Option<(Vec<ChangeHash>, Rows, Vec<ActorId>)>,
    /// For a snapshot: its records, each decoded as a new document would be.
    pub pack: Option<Vec<PackedRecord>>,
}

/// One record of a snapshot, unpacked and decoded ahead.
pub(crate) struct PackedRecord {
    /// Its id (hex).
    pub id: String,
    /// What it says of itself (kind, generation).
    pub meta: crate::crypto::ChunkMeta,
    /// Its whole save.
    pub save: Vec<u8>,
    /// Decoded: heads, projection rows and authors (`None` if it did not decode alone).
    pub whole: Option<(Vec<ChangeHash>, Rows, Vec<ActorId>)>,
}

/// A snapshot's record decoded as a new document would be; `None` if its id or kind is
/// malformed (the writer's own path then says why the snapshot is set aside).
pub(crate) fn decode_packed(
    workspace: &str,
    actor: &ActorId,
    r: super::snapshot::Packed,
) -> Option<PackedRecord> {
    let id = hex::encode(<[u8; 16]>::try_from(r.id.as_slice()).ok()?);
    let kind = crate::model::RecordKind::parse(&r.kind)?;
    let save = r.save.into_vec();
    let t = Target {
        id: &id,
        workspace,
        kind,
    };
    let whole = decode_whole(&t, actor, &save)
        .ok()
        .flatten()
        .map(|w| (w.heads, w.rows, w.actors));
    Some(PackedRecord {
        meta: crate::crypto::ChunkMeta {
            kind,
            generation: r.generation,
            replaces: true,
            covers: 0,
            pack: false,
        },
        id,
        save,
        whole,
    })
}

/// What a page needs from the store: the workspace keys of its epochs that this device holds,
/// and which of its documents the store already has.
pub(crate) struct Known {
    keys: HashMap<u32, Option<WorkspaceKey>>,
    stored: Vec<bool>,
}

impl Known {
    /// Reads what `blobs` need from the store (a read connection: the writer is not held).
    pub(crate) fn read(conn: &Connection, workspace: &str, blobs: &[PulledBlob]) -> Result<Known> {
        let mut keys = HashMap::new();
        let mut stored = Vec::with_capacity(blobs.len());
        for b in blobs {
            if let Entry::Vacant(e) = keys.entry(b.epoch) {
                e.insert(keys::at_epoch(conn, workspace, b.epoch)?);
            }
            let id = hex::encode(b.doc_id);
            stored.push(docs::exists(conn, &id)?);
        }
        Ok(Known { keys, stored })
    }
}

/// Prepares every blob of a page, on all cores; the result is in the order of `blobs`.
pub(crate) fn page(
    workspace: &str,
    actor: &ActorId,
    known: &Known,
    blobs: &[PulledBlob],
) -> Vec<Prepared> {
    let work: Vec<(&PulledBlob, bool)> = blobs
        .iter()
        .zip(known.stored.iter().copied().chain(std::iter::repeat(true)))
        .collect();
    let one =
        |(b, stored): &(&PulledBlob, bool)| prepare(workspace, actor, &known.keys, b, *stored);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    let per = work.len().div_ceil(threads).max(PER_THREAD_MIN);
    if work.len() <= per {
        return work.iter().map(one).collect();
    }
    std::thread::scope(|s| {
        let parts: Vec<_> = work
            .chunks(per)
            .map(|part| {
                (
                    part.len(),
                    s.spawn(move || part.iter().map(one).collect::<Vec<_>>()),
                )
            })
            .collect();
        parts
            .into_iter()
            // A thread that panicked (a decoder bug) leaves its blobs to the writer's own path.
            .flat_map(|(len, h)| {
                h.join()
                    .unwrap_or_else(|_| (0..len).map(|_| Prepared::default()).collect())
            })
            .collect()
    })
}

fn prepare(
    workspace: &str,
    actor: &ActorId,
    keys: &HashMap<u32, Option<WorkspaceKey>>,
    b: &PulledBlob,
    stored: bool,
) -> Prepared {
    let signed_ok =
        crypto::verify_blob_signature(workspace, &b.doc_id, b.epoch, &b.ciphertext).is_ok();
    let opened = keys
        .get(&b.epoch)
        .and_then(Option::as_ref)
        .filter(|_| signed_ok)
        .and_then(|k| crypto::open_verified(k, workspace, &b.doc_id, b.epoch, &b.ciphertext).ok());
    let whole = match &opened {
        Some((meta, chunk)) if !stored && !meta.pack => {
            let id = hex::encode(b.doc_id);
            let t = Target {
                id: &id,
                workspace,
                kind: meta.kind,
            };
            // An undecodable chunk is left to the writer, which sets it aside and says why.
            decode_whole(&t, actor, chunk)
                .ok()
                .flatten()
                .map(|w| (w.heads, w.rows, w.actors))
        }
        _ => None,
    };
    let pack = match &opened {
        Some((meta, chunk)) if meta.pack => super::snapshot::unpack(chunk).ok().map(|records| {
            records
                .into_iter()
                .filter_map(|r| decode_packed(workspace, actor, r))
                .collect()
        }),
        _ => None,
    };
    Prepared {
        signed_ok,
        opened,
        whole,
        pack,
    }
}
