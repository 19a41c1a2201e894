//! Surviving a server restored from a backup.
//!
//! An operator who puts back last night's backup rewinds the server's blob log: blobs pushed
//! since are gone, and the numbers they had are handed out again to other blobs. A device whose
//! cursor is past the restored head would never pull those new blobs, and changes it pushed
//! (and dropped from its outbox once acknowledged) would be missing for every device that joins
//! later. So each device keeps the log's chain hash at its cursor ([`proto::chain_next`]: it
//! covers every blob up to there) and a mark per page it pulled; every pull answer carries the
//! server's hash at the cursor. When they differ, or the head is behind the cursor, the log was
//! rewound: the device finds the newest mark the server still agrees with, queues again every
//! document that changed after it (a coordinator the whole document, anyone else the changes it
//! wrote itself, which is all a teammate accepts under its signature), and pulls again from that
//! mark. Nothing it knows is lost, and nothing the server now holds is skipped.

use rusqlite::{Connection, Transaction};
use waymark_protocol as proto;

use super::http::Server;
use super::log::{AlertKind, record_alert};
use super::{Membership, seq_sql};
use crate::error::Result;
use crate::model::RecordKind;
use crate::store::{Store, chain_marks, docs, load_stored, memberships, outbox, projection};

/// Where this device's cursor is in the server's log, as this device last verified it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CursorChain {
    /// The pull cursor.
    pub(crate) cursor: u64,
    /// The chain hash at the cursor, once a server that keeps them told it.
    pub(crate) chain: Option<proto::ChainHash>,
}

impl CursorChain {
    /// Reads the cursor of `workspace` and the chain hash kept for it.
    pub(crate) fn read(c: &Connection, workspace: &str) -> Result<CursorChain> {
        let (cursor, chain) = memberships::cursor_chain(c, workspace)?;
        Ok(CursorChain {
            cursor: u64::try_from(cursor).unwrap_or(0),
            chain: chain.and_then(|c| c.try_into().ok()),
        })
    }

    /// The hash the server must show at the cursor: the one kept, or the log's start.
    pub(crate) fn expected(&self) -> Option<proto::ChainHash> {
        match self.cursor {
            0 => Some(proto::CHAIN_START),
            _ => self.chain,
        }
    }

    /// Whether a pull answer after this cursor, with its `head` and `chain_after`, shows a log
    /// that does not continue the one this device synced with. A server that keeps no chain
    /// hashes is judged by its head alone.
    pub(crate) fn rewound(&self, head: u64, chain_after: Option<&proto::ChainHash>) -> bool {
        if head < self.cursor {
            return true;
        }
        match (self.expected(), chain_after) {
            (Some(kept), Some(shown)) => kept != *shown,
            _ => false,
        }
    }
}

/// Records that the cursor of `workspace` is at `seq`, where the log's chain hash is `chain`
/// (`None`: a server that keeps none), and keeps a mark there to come back to.
pub(crate) fn record(
    tx: &Transaction<'_>,
    workspace: &str,
    seq: u64,
    chain: Option<&proto::ChainHash>,
) -> Result<()> {
    memberships::set_chain(tx, workspace, chain.map(|c| c.as_slice()))?;
    if let Some(chain) = chain {
        chain_marks::put(tx, workspace, seq_sql(seq), chain)?;
    }
    Ok(())
}

/// Moves the cursor of `workspace` over blobs this device just pushed (`content_ids`, answered
/// `assigned`) when they directly follow it: sequence numbers are gap-free, so nobody else's
/// blob lies in between, and pulling them back would only echo what this device has. The chain
/// hash there follows from theirs.
pub(crate) fn advance_over_own(
    tx: &Transaction<'_>,
    workspace: &str,
    content_ids: &[proto::ContentId],
    assigned: &[u64],
) -> Result<()> {
    let at = CursorChain::read(tx, workspace)?;
    let follows = assigned
        .iter()
        .enumerate()
        .all(|(i, &seq)| seq == at.cursor + 1 + i as u64);
    if !follows || assigned.len() != content_ids.len() {
        return Ok(());
    }
    let chain = at.expected().map(|mut chain| {
        for (i, content_id) in content_ids.iter().enumerate() {
            chain = proto::chain_next(&chain, at.cursor + 1 + i as u64, content_id);
        }
        chain
    });
    let cursor = at.cursor + assigned.len() as u64;
    memberships::set_cursor(tx, workspace, seq_sql(cursor))?;
    record(tx, workspace, cursor, chain.as_ref())
}

/// Notes that document `doc_id` changed on the server at `seq` (pulled or acknowledged there).
pub(crate) fn seen_at(tx: &Connection, doc_id: &str, seq: u64) -> Result<()> {
    docs::set_seq(tx, doc_id, seq_sql(seq))
}

impl Store {
    /// The server's log no longer continues what this device synced with: finds the newest
    /// mark both still share, queues again what changed after it, and moves the cursor back
    /// there. Returns how many documents were queued again.
    pub(crate) fn recover_rewound(&self, server: &Server, m: &Membership) -> Result<u64> {
        let marks = self.read(|c| chain_marks::newest_first(c, &m.workspace))?;
        let mut shared = (0, proto::CHAIN_START);
        // Newest first, a request at a time: a restore usually goes back a day, so the first
        // request finds it.
        for batch in marks.chunks(proto::limits::MAX_CHAIN_QUERY) {
            let at: Vec<String> = batch.iter().map(|(seq, _)| seq.to_string()).collect();
            let path = format!("{}?{}={}", proto::PATH_CHAIN, proto::QUERY_AT, at.join(","));
            let answer = server.get::<proto::ChainResponse>(&path)?.body;
            let found = batch.iter().find(|(seq, chain)| {
                answer
                    .marks
                    .iter()
                    .any(|mark| mark.seq == *seq && mark.chain == *chain)
            });
            if let Some(&found) = found {
                shared = found;
                break;
            }
        }
        let (seq, chain) = shared;
        let first_mark = marks.last().map(|(seq, _)| *seq);
        let own_actor = self.actor_id().clone();
        self.with_writer(|w| {
            let tx = w.transaction()?;
            let coordinator = super::team::is_coordinator(&tx, &m.workspace)?;
            // Documents last seen before this device kept marks may have changed anywhere up
            // to its first one.
            let unknown_too = first_mark.is_none_or(|first| seq < first);
            let changed = docs::changed_after(&tx, &m.workspace, seq_sql(seq), unknown_too)?;
            let mut queued = 0u64;
            for (id, kind) in changed {
                let sent = match coordinator {
                    true => queue_whole(&tx, &m.workspace, &id, kind)?,
                    false => queue_own_changes(&tx, &m.workspace, &id, kind, &own_actor)?,
                };
                queued += u64::from(sent);
            }
            memberships::rewind(&tx, &m.workspace, seq_sql(seq), chain.as_slice())?;
            chain_marks::drop_after(&tx, &m.workspace, seq_sql(seq))?;
            record_alert(
                &tx,
                &m.workspace,
                AlertKind::Rewound,
                &format!(
                    "the server's log no longer holds what this device synced after number \
                     {seq} (restored from a backup?); {queued} records sent again"
                ),
                false,
            )?;
            tx.commit()?;
            Ok(queued)
        })
    }
}

/// Queues document `id` whole, as it is stored (its save and the chunks since). Returns
/// whether anything was queued.
pub(crate) fn queue_whole(
    tx: &Transaction<'_>,
    workspace: &str,
    id: &str,
    kind: RecordKind,
) -> Result<bool> {
    let restricted = projection::is_restricted(tx, id)?;
    let mut saved = docs::saved(tx, id)?.into_iter();
    let Some(snapshot) = saved.next() else {
        return Ok(false);
    };
    match outbox::generation(tx, id)? {
        0 => outbox::enqueue(tx, workspace, id, kind, &snapshot, restricted)?,
        // A record erased or redacted here: its save is the rewrite, sent as one, so that a
        // server restored from a backup taken before the rewrite drops what the backup brought
        // back, and a device that pulled that meanwhile replaces it.
        _ => outbox::enqueue_rewrite(
            tx,
            workspace,
            id,
            kind,
            &snapshot,
            restricted,
            Some(proto::limits::MAX_CURSOR),
        )?,
    }
    for c in saved {
        outbox::enqueue(tx, workspace, id, kind, &c, restricted)?;
    }
    Ok(true)
}

/// Queues the changes of document `id` that this device (`actor`) wrote: the only ones a
/// teammate accepts under this device's signature. Returns whether there were any.
fn queue_own_changes(
    tx: &Transaction<'_>,
    workspace: &str,
    id: &str,
    kind: RecordKind,
    actor: &automerge::ActorId,
) -> Result<bool> {
    let Some(mut stored) = load_stored(tx, id, actor)? else {
        return Ok(false);
    };
    let own: Vec<u8> = stored
        .doc
        .get_changes(&[])
        .into_iter()
        .filter(|c| c.actor_id() == actor)
        .flat_map(|c| c.raw_bytes().to_vec())
        .collect();
    if own.is_empty() {
        return Ok(false);
    }
    let restricted = projection::is_restricted(tx, id)?;
    outbox::enqueue(tx, workspace, id, kind, &own, restricted)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn at(cursor: u64, chain: Option<u8>) -> CursorChain {
        CursorChain {
            cursor,
            chain: chain.map(|b| [b; 32]),
        }
    }

    #[test]
    fn a_log_is_rewound_when_its_hash_at_the_cursor_changed_or_its_head_is_behind() {
        // The same log: same hash at the cursor, head at or past it.
        assert!(!at(5, Some(1)).rewound(5, Some(&[1; 32])));
        assert!(!at(5, Some(1)).rewound(9, Some(&[1; 32])));
        // Numbers handed out again to other blobs: another hash there.
        assert!(at(5, Some(1)).rewound(9, Some(&[2; 32])));
        // Restored and nothing written since: the head is behind the cursor.
        assert!(at(5, Some(1)).rewound(4, None));
        // At the start, the hash must be the log's start, kept or not.
        assert!(!at(0, None).rewound(3, Some(&proto::CHAIN_START)));
        assert!(at(0, None).rewound(3, Some(&[7; 32])));
        // A store from before chain hashes, or a server that sends none: the head alone.
        assert!(!at(5, None).rewound(5, Some(&[3; 32])));
        assert!(!at(5, Some(1)).rewound(6, None));
        assert!(at(5, None).rewound(2, None));
    }
}
