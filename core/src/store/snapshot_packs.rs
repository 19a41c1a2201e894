//! The snapshot blobs of each synced workspace this device pushed or pulled
//! (`snapshot_packs`): the next snapshot covers them too, and the last one tells how long the
//! log's tail has grown since. Every read and write of the table is here.

use rusqlite::{Connection, params};

use crate::error::Result;

/// Notes snapshot blob `doc_id` of `workspace` at `seq` (pushed here, or pulled).
pub(crate) fn record(c: &Connection, workspace: &str, doc_id: &str, seq: i64) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO snapshot_packs(workspace_id, doc_id, seq) VALUES (?1, ?2, ?3)
         ON CONFLICT(workspace_id, doc_id) DO NOTHING",
    )?
    .execute(params![workspace, doc_id, seq])?;
    Ok(())
}

/// The sequence number of `workspace`'s last snapshot (0: none yet).
pub(crate) fn last_seq(c: &Connection, workspace: &str) -> Result<i64> {
    Ok(c.query_row(
        "SELECT coalesce(max(seq), 0) FROM snapshot_packs WHERE workspace_id = ?1",
        params![workspace],
        |r| r.get(0),
    )?)
}

/// The snapshot blobs of `workspace` noted so far.
pub(crate) fn doc_ids(c: &Connection, workspace: &str) -> Result<Vec<String>> {
    Ok(
        c.prepare("SELECT doc_id FROM snapshot_packs WHERE workspace_id = ?1")?
            .query_map(params![workspace], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?,
    )
}

/// Forgets snapshot blobs `doc_ids` of `workspace`: a newer snapshot covers them.
pub(crate) fn forget(c: &Connection, workspace: &str, doc_ids: &[String]) -> Result<()> {
    let mut forget =
        c.prepare("DELETE FROM snapshot_packs WHERE workspace_id = ?1 AND doc_id = ?2")?;
    for id in doc_ids {
        forget.execute(params![workspace, id])?;
    }
    Ok(())
}
