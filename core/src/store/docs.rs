//! Documents on disk: a compacted save plus the incremental chunks appended since. Every read
//! and write of the `documents` and `doc_chunks` tables is here.

use std::collections::BTreeMap;

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
    let row: Option<(String, String)> = conn
        .prepare_cached("SELECT workspace_id, kind FROM documents WHERE id = ?1")?
        .query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((workspace, kind)) = row else {
        return Ok(None);
    };
    let kind = parse_kind(id, &kind)?;
    let mut parts = saved(conn, id)?.into_iter();
    let Some(snapshot) = parts.next() else {
        return Ok(None);
    };
    let mut doc = AutoCommit::load(&snapshot)
        .map_err(|e| Error::Corrupt(Corruption::by(format!("document {id}"), e)))?
        .with_actor(actor.clone());
    for chunk in parts {
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

/// Document `id` as stored: its save, then the chunks appended since, in order (empty if this
/// store does not have it). One statement, so a compaction between reading the save and the
/// chunks cannot lose or repeat changes.
pub(crate) fn saved(conn: &Connection, id: &str) -> Result<Vec<Vec<u8>>> {
    let mut st = conn.prepare_cached(
        "SELECT 0 AS part, 0 AS k, snapshot FROM documents WHERE id = ?1
         UNION ALL
         SELECT 1, id, data FROM doc_chunks WHERE doc_id = ?1
         ORDER BY part, k",
    )?;
    let parts = st
        .query_map(params![id], |r| r.get::<_, Vec<u8>>(2))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(parts)
}

/// A record kind as the `documents` table stores it; an unknown one is corruption.
pub(crate) fn parse_kind(id: &str, kind: &str) -> Result<RecordKind> {
    RecordKind::parse(kind)
        .ok_or_else(|| Error::corrupt(format!("document {id} has an unknown kind")))
}

fn with_kinds(rows: Vec<(String, String)>) -> Result<Vec<(String, RecordKind)>> {
    rows.into_iter()
        .map(|(id, kind)| {
            let kind = parse_kind(&id, &kind)?;
            Ok((id, kind))
        })
        .collect()
}

/// Whether this store has document `id`.
pub(crate) fn exists(conn: &Connection, id: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM documents WHERE id = ?1")?
        .exists(params![id])?)
}

/// The generation of document `id` (how many times it was rewritten), or `None` if this store
/// does not have it.
pub(crate) fn generation(conn: &Connection, id: &str) -> Result<Option<u32>> {
    Ok(conn
        .prepare_cached("SELECT generation FROM documents WHERE id = ?1")?
        .query_row(params![id], |r| r.get::<_, u32>(0))
        .optional()?)
}

/// Records the generation of document `id`, just stored from a rewrite.
pub(crate) fn set_generation(conn: &Connection, id: &str, generation: u32) -> Result<()> {
    conn.prepare_cached("UPDATE documents SET generation = ?2 WHERE id = ?1")?
        .execute(params![id, generation])?;
    Ok(())
}

/// Notes that document `id` changed on the server at `seq` (kept only if later than known).
pub(crate) fn set_seq(conn: &Connection, id: &str, seq: i64) -> Result<()> {
    conn.prepare_cached("UPDATE documents SET seq = ?2 WHERE id = ?1 AND seq < ?2")?
        .execute(params![id, seq])?;
    Ok(())
}

/// The documents of `workspace`, oldest first, with their kinds.
pub(crate) fn in_workspace(
    conn: &Connection,
    workspace: &str,
) -> Result<Vec<(String, RecordKind)>> {
    let rows: Vec<(String, String)> = conn
        .prepare_cached("SELECT id, kind FROM documents WHERE workspace_id = ?1 ORDER BY n")?
        .query_map(params![workspace], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    with_kinds(rows)
}

/// The documents of `workspace` that changed on the server after `seq`, oldest first, with
/// their kinds; with `unseen_too`, also those the server never numbered for this device.
pub(crate) fn changed_after(
    conn: &Connection,
    workspace: &str,
    seq: i64,
    unseen_too: bool,
) -> Result<Vec<(String, RecordKind)>> {
    let rows: Vec<(String, String)> = conn
        .prepare_cached(
            "SELECT id, kind FROM documents
             WHERE workspace_id = ?1 AND (seq > ?2 OR (seq = 0 AND ?3)) ORDER BY n",
        )?
        .query_map(params![workspace, seq, unseen_too], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    with_kinds(rows)
}

/// How many documents `workspace` has.
pub(crate) fn count_in(conn: &Connection, workspace: &str) -> Result<u64> {
    let n: i64 = conn
        .prepare_cached("SELECT count(*) FROM documents WHERE workspace_id = ?1")?
        .query_row(params![workspace], |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The documents of `workspace` a snapshot at `cursor` covers: numbered by the server up to
/// it, and not set aside. Oldest first.
pub(crate) fn packable(conn: &Connection, workspace: &str, cursor: i64) -> Result<Vec<String>> {
    Ok(conn
        .prepare(
            "SELECT id FROM documents
             WHERE workspace_id = ?1 AND seq > 0 AND seq <= ?2
               AND id NOT IN (SELECT doc_id FROM set_aside WHERE workspace_id = ?1)
             ORDER BY n",
        )?
        .query_map(params![workspace, cursor], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?)
}

/// The first document of `kind` in `workspace`, if any (the fuzz fixture's visit).
#[cfg(feature = "fuzzing")]
pub(crate) fn first_of_kind(
    conn: &Connection,
    workspace: &str,
    kind: RecordKind,
) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached(
            "SELECT id FROM documents WHERE workspace_id = ?1 AND kind = ?2 ORDER BY n LIMIT 1",
        )?
        .query_row(params![workspace, kind.as_str()], |r| r.get(0))
        .optional()?)
}

/// Every document's heads blob (see [`encode_heads`]), by id.
pub(crate) fn all_heads(conn: &Connection) -> Result<BTreeMap<String, Vec<u8>>> {
    Ok(conn
        .prepare("SELECT id, heads FROM documents")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?)
}

/// What a document is filed under, without its contents.
pub(crate) struct DocMeta {
    pub id: String,
    pub workspace: String,
    pub kind: RecordKind,
    /// See [`encode_heads`].
    pub heads: Vec<u8>,
    pub generation: u32,
}

/// Calls `f` with every document, oldest first, all read in one statement: what `f` reads
/// through `conn` meanwhile sees the same state of the store.
pub(crate) fn for_each(conn: &Connection, mut f: impl FnMut(DocMeta) -> Result<()>) -> Result<()> {
    let mut st =
        conn.prepare("SELECT id, workspace_id, kind, heads, generation FROM documents ORDER BY n")?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let id: String = r.get(0)?;
        let kind = parse_kind(&id, &r.get::<_, String>(2)?)?;
        f(DocMeta {
            workspace: r.get(1)?,
            kind,
            heads: r.get(3)?,
            generation: r.get(4)?,
            id,
        })?;
    }
    Ok(())
}
