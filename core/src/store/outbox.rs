//! The outbox: sealed changes of connected workspaces waiting to be pushed. Every local change
//! is queued in the same transaction that stores it, so nothing recorded can miss the server.

use rusqlite::{Connection, params};

use super::keys;
use crate::crypto;
use crate::error::{Error, Result};
use crate::model::RecordKind;

/// True if the workspace syncs with a server that has not revoked this device.
pub(crate) fn connected(conn: &Connection, workspace: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM memberships WHERE workspace_id = ?1 AND revoked = 0")?
        .exists(params![workspace])?)
}

/// Queues a chunk another device sealed and signed (carried in by hand), as it is, if the
/// workspace is connected: teammates check its author's signature, not this device's.
pub(crate) fn enqueue_signed(
    conn: &Connection,
    workspace: &str,
    doc_id: &str,
    epoch: u32,
    sealed: &[u8],
) -> Result<()> {
    if !connected(conn, workspace)? {
        return Ok(());
    }
    let content_id = waymark_protocol::content_id_of(sealed);
    conn.prepare_cached(
        "INSERT INTO outbox(workspace_id, doc_id, epoch, content_id, ciphertext)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        workspace,
        doc_id,
        epoch,
        content_id.as_slice(),
        sealed
    ])?;
    Ok(())
}

/// Seals `chunk` of document `doc_id` and queues it, if the workspace is connected.
pub(crate) fn enqueue(
    conn: &Connection,
    workspace: &str,
    doc_id: &str,
    kind: RecordKind,
    chunk: &[u8],
) -> Result<()> {
    if chunk.is_empty() || !connected(conn, workspace)? {
        return Ok(());
    }
    // Only a device that joined by an invite to approve has no key yet.
    let (epoch, key) = keys::current(conn, workspace)?.ok_or_else(|| {
        Error::NotPermitted(
            "this device waits for a coordinator to approve its join before it can record".into(),
        )
    })?;
    let own = crate::sync::team::own_keys(conn, workspace)?;
    let sealed = crypto::seal_signed(
        &key,
        &own,
        workspace,
        &crypto::doc_id_bytes(doc_id)?,
        epoch,
        kind,
        chunk,
    )?;
    let content_id = waymark_protocol::content_id_of(&sealed);
    conn.prepare_cached(
        "INSERT INTO outbox(workspace_id, doc_id, epoch, content_id, ciphertext)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        workspace,
        doc_id,
        epoch,
        content_id.as_slice(),
        sealed
    ])?;
    Ok(())
}
