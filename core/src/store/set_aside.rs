//! Blobs set aside instead of applied (`set_aside`): those that failed authentication or were
//! written for another generation of their record, kept as a note, and those held with their
//! sealed bytes until their key, their epoch or their signer's admission arrives. Every read and
//! write of the table is here; what to set aside, and the budget of held bytes, are `sync`'s.

use rusqlite::{Connection, OptionalExtension, params};

use super::now_ms;
use crate::error::Result;

/// A blob to set aside, noticed now.
pub(crate) struct NewSetAside<'a> {
    pub(crate) workspace: &'a str,
    /// Its sequence number on the server.
    pub(crate) seq: i64,
    pub(crate) doc_id: &'a str,
    pub(crate) reason: &'a str,
    pub(crate) epoch: u32,
    /// What it waits for (`key`, `epoch` or `signer`) when it is held; `None`: not held.
    pub(crate) held: Option<&'a str>,
    /// Its sealed bytes, kept when it is held.
    pub(crate) blob: Option<&'a [u8]>,
}

/// A held blob with its sealed bytes.
pub(crate) struct Held {
    pub(crate) seq: u64,
    pub(crate) doc_id: String,
    pub(crate) epoch: u32,
    pub(crate) blob: Vec<u8>,
}

/// A blob set aside, as the list of them shows it.
pub(crate) struct Noted {
    pub(crate) workspace: String,
    pub(crate) seq: u64,
    pub(crate) doc_id: String,
    pub(crate) reason: String,
}

/// Sets a blob aside, replacing what was noted for its sequence number before (a held blob
/// retried).
pub(crate) fn put(c: &Connection, b: &NewSetAside<'_>) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO set_aside(workspace_id, seq, doc_id, reason, at, epoch, blob, held)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT(workspace_id, seq) DO UPDATE SET reason = excluded.reason,
            at = excluded.at, blob = excluded.blob, held = excluded.held",
    )?
    .execute(params![
        b.workspace,
        b.seq,
        b.doc_id,
        b.reason,
        now_ms(),
        b.epoch,
        b.blob,
        b.held
    ])?;
    Ok(())
}

/// Records that something this device held for `doc_id` was set aside, with `reason`, under a
/// sequence number of its own (negative: not the server's).
pub(crate) fn put_local(c: &Connection, workspace: &str, doc_id: &str, reason: &str) -> Result<()> {
    let seq: i64 = c
        .query_row(
            "SELECT min(seq) FROM set_aside WHERE workspace_id = ?1 AND seq < 0",
            params![workspace],
            |r| r.get::<_, Option<i64>>(0),
        )
        .optional()?
        .flatten()
        .unwrap_or(0)
        - 1;
    c.execute(
        "INSERT INTO set_aside(workspace_id, seq, doc_id, reason, at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![workspace, seq, doc_id, reason, now_ms()],
    )?;
    Ok(())
}

/// Removes the blob of `workspace` at `seq` (a held blob, now applied).
pub(crate) fn remove(c: &Connection, workspace: &str, seq: i64) -> Result<()> {
    c.prepare_cached("DELETE FROM set_aside WHERE workspace_id = ?1 AND seq = ?2")?
        .execute(params![workspace, seq])?;
    Ok(())
}

/// The held blobs of `workspace`, in the server's order.
pub(crate) fn held(c: &Connection, workspace: &str) -> Result<Vec<Held>> {
    let mut st = c.prepare(
        "SELECT seq, doc_id, epoch, blob FROM set_aside
         WHERE workspace_id = ?1 AND blob IS NOT NULL ORDER BY seq",
    )?;
    let rows = st.query_map(params![workspace], |r| {
        Ok(Held {
            seq: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
            doc_id: r.get(1)?,
            epoch: r.get(2)?,
            blob: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The sealed bytes held for `workspace`.
pub(crate) fn held_bytes(c: &Connection, workspace: &str) -> Result<i64> {
    Ok(c.query_row(
        "SELECT coalesce(sum(length(blob)), 0) FROM set_aside
         WHERE workspace_id = ?1 AND blob IS NOT NULL",
        params![workspace],
        |r| r.get(0),
    )?)
}

/// The row id and size of the oldest blob held for `workspace`, if any.
pub(crate) fn oldest_held(c: &Connection, workspace: &str) -> Result<Option<(i64, i64)>> {
    Ok(c.query_row(
        "SELECT id, length(blob) FROM set_aside
         WHERE workspace_id = ?1 AND blob IS NOT NULL ORDER BY id LIMIT 1",
        params![workspace],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()?)
}

/// Drops the bytes of the held blob of row `id`, which stays noted with `note` added to its
/// reason.
pub(crate) fn drop_bytes(c: &Connection, id: i64, note: &str) -> Result<()> {
    c.execute(
        "UPDATE set_aside SET blob = NULL, held = NULL, reason = reason || ?2 WHERE id = ?1",
        params![id, note],
    )?;
    Ok(())
}

/// The newest epoch of the blobs of `workspace` held for their epoch beyond the one its
/// verified team log is at (`None`: there are none, or no log).
pub(crate) fn epoch_beyond_log(c: &Connection, workspace: &str) -> Result<Option<u32>> {
    Ok(c.query_row(
        "SELECT max(s.epoch) FROM set_aside s JOIN team_state t
           ON t.workspace_id = s.workspace_id
         WHERE s.workspace_id = ?1 AND s.held = 'epoch' AND s.epoch > t.epoch
           AND t.log_len > 0",
        params![workspace],
        |r| r.get(0),
    )?)
}

/// Every blob set aside, by workspace and sequence number.
pub(crate) fn all(c: &Connection) -> Result<Vec<Noted>> {
    let mut st = c.prepare(
        "SELECT workspace_id, seq, doc_id, reason FROM set_aside ORDER BY workspace_id, seq",
    )?;
    let rows = st.query_map([], |r| {
        Ok(Noted {
            workspace: r.get(0)?,
            seq: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
            doc_id: r.get(2)?,
            reason: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
