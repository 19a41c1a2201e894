//! Documents on disk: a compacted save plus the incremental chunks appended since.

use automerge::{ActorId, AutoCommit, ChangeHash};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::error::{Corruption, Error, Result};
use crate::model::RecordKind;

/// After this many appended chunks a document is rewritten as one compacted save.
const COMPACT_AFTER: i64 = 32;

/// A decoded document with the workspace and kind it is filed under.
pub(crate) struct StoredDoc {
    pub doc: AutoCommit,
    pub workspace: String,
    pub kind: RecordKind,
}

/// The heads of a document as one blob (sorted 32-byte hashes), for cheap comparison.
pub(crate) fn encode_heads(heads: &[ChangeHash]) -> Vec<u8> {
    let mut hs: Vec<&ChangeHash> = heads.iter().collect();
    hs.sort();
    hs.iter().flat_map(|h| h.0).collect()
}

/// Decodes a heads blob; `None` if it is not a whole number of hashes.
pub(crate) fn decode_heads(b: &[u8]) -> Option<Vec<ChangeHash>> {
    if !b.len().is_multiple_of(32) {
        return None;
    }
    b.chunks(32).map(|c| ChangeHash::try_from(c).ok()).collect()
}

/// Loads and decodes document `id`, or `None` if this store does not have it.
pub(crate) fn load(conn: &Connection, id: &str, actor: &ActorId) -> Result<Option<StoredDoc>> {
    let row: Option<(String, String, Vec<u8>)> = conn
        .prepare_cached("SELECT workspace_id, kind, snapshot FROM documents WHERE id = ?1")?
        .query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((workspace, kind, snapshot)) = row else {
        return Ok(None);
    };
    let kind = RecordKind::parse(&kind)
        .ok_or_else(|| Error::corrupt(format!("document {id} has an unknown kind")))?;
    let mut doc = AutoCommit::load(&snapshot)
        .map_err(|e| Error::Corrupt(Corruption::by(format!("document {id}"), e)))?
        .with_actor(actor.clone());
    let mut st =
        conn.prepare_cached("SELECT data FROM doc_chunks WHERE doc_id = ?1 ORDER BY id")?;
    let mut rows = st.query(params![id])?;
    while let Some(r) = rows.next()? {
        let chunk: Vec<u8> = r.get(0)?;
        doc.load_incremental(&chunk)
            .map_err(|e| Error::Corrupt(Corruption::by(format!("document {id}"), e)))?;
    }
    Ok(Some(StoredDoc {
        doc,
        workspace,
        kind,
    }))
}

/// Stores a new document as one compacted save, and returns that save.
pub(crate) fn insert(tx: &Transaction<'_>, id: &str, d: &mut StoredDoc) -> Result<Vec<u8>> {
    let snapshot = d.doc.save();
    insert_as(tx, id, &d.workspace, d.kind, &snapshot, &d.doc.get_heads())?;
    Ok(snapshot)
}

/// Stores a new document as `saved`, bytes it was wholly loaded from (a save or a chunk of
/// changes) with these `heads`: loading them back gives the same document, without encoding
/// it again.
pub(crate) fn insert_as(
    tx: &Transaction<'_>,
    id: &str,
    workspace: &str,
    kind: RecordKind,
    saved: &[u8],
    heads: &[ChangeHash],
) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO documents(id, workspace_id, kind, snapshot, heads, chunk_count)
         VALUES (?1, ?2, ?3, ?4, ?5, 0)",
    )?
    .execute(params![
        id,
        workspace,
        kind.as_str(),
        saved,
        encode_heads(heads)
    ])?;
    Ok(())
}

/// Appends a chunk of new changes to a stored document, compacting it now and then.
pub(crate) fn append(
    tx: &Transaction<'_>,
    id: &str,
    d: &mut StoredDoc,
    chunk: &[u8],
) -> Result<()> {
    let count: i64 = tx
        .prepare_cached("SELECT chunk_count FROM documents WHERE id = ?1")?
        .query_row(params![id], |r| r.get(0))?;
    let heads = encode_heads(&d.doc.get_heads());
    // Changes waiting for missing dependencies are not part of a save: compact only when
    // nothing is waiting, or they would be lost.
    if count + 1 >= COMPACT_AFTER && d.doc.get_missing_deps(&[]).is_empty() {
        let snapshot = d.doc.save();
        tx.prepare_cached("DELETE FROM doc_chunks WHERE doc_id = ?1")?
            .execute(params![id])?;
        tx.prepare_cached(
            "UPDATE documents SET snapshot = ?2, heads = ?3, chunk_count = 0 WHERE id = ?1",
        )?
        .execute(params![id, snapshot, heads])?;
    } else {
        tx.prepare_cached("INSERT INTO doc_chunks(doc_id, data) VALUES (?1, ?2)")?
            .execute(params![id, chunk])?;
        tx.prepare_cached(
            "UPDATE documents SET heads = ?2, chunk_count = chunk_count + 1 WHERE id = ?1",
        )?
        .execute(params![id, heads])?;
    }
    Ok(())
}

/// Removes document `id` from this store: its save, its chunks, its projection rows and
/// search entry, and its queued changes (`secure_delete` overwrites the freed pages). Used when
/// a record must not stay on this device (a restricted record on a device that is not a
/// coordinator's).
pub(crate) fn forget(tx: &Transaction<'_>, id: &str) -> Result<()> {
    super::projection::remove(tx, id)?;
    for sql in [
        "DELETE FROM doc_chunks WHERE doc_id = ?1",
        "DELETE FROM outbox WHERE doc_id = ?1",
        "DELETE FROM documents WHERE id = ?1",
    ] {
        tx.prepare_cached(sql)?.execute(params![id])?;
    }
    Ok(())
}
