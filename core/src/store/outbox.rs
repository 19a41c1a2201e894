//! The outbox: sealed changes of connected workspaces waiting to be pushed. Every local change
//! is queued in the same transaction that stores it, so nothing recorded can miss the server.

use rusqlite::{Connection, params};

use super::keys;
use crate::crypto::{self, ChunkMeta};
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

/// Seals `chunk` of document `doc_id` and queues it, if the workspace is connected. A
/// `restricted` record's chunk is sealed to the epoch's restricted key (only coordinators can
/// open it); its plain chunk is kept with the row, inside the encrypted store, so that it can
/// be sealed again after a rotation by this device, which may not hold the restricted key.
pub(crate) fn enqueue(
    conn: &Connection,
    workspace: &str,
    doc_id: &str,
    kind: RecordKind,
    chunk: &[u8],
    restricted: bool,
) -> Result<()> {
    let meta = ChunkMeta {
        generation: generation(conn, doc_id)?,
        ..kind.into()
    };
    enqueue_with(conn, workspace, doc_id, meta, chunk, restricted, None)
}

/// Queues the save of a record rewritten as a new generation (an erase or a redaction): it
/// replaces the record on every device, and the server drops its blobs up to `supersedes`
/// (`None`: the record never reached the server).
pub(crate) fn enqueue_rewrite(
    conn: &Connection,
    workspace: &str,
    doc_id: &str,
    kind: RecordKind,
    save: &[u8],
    restricted: bool,
    supersedes: Option<u64>,
) -> Result<()> {
    let meta = ChunkMeta {
        kind,
        generation: generation(conn, doc_id)?,
        replaces: true,
        covers: supersedes.unwrap_or(0),
        pack: false,
    };
    enqueue_with(conn, workspace, doc_id, meta, save, restricted, supersedes)
}

/// The generation of document `doc_id` (0 if this store does not have it).
pub(crate) fn generation(conn: &Connection, doc_id: &str) -> Result<u32> {
    Ok(super::docs::generation(conn, doc_id)?.unwrap_or(0))
}

fn enqueue_with(
    conn: &Connection,
    workspace: &str,
    doc_id: &str,
    meta: ChunkMeta,
    chunk: &[u8],
    restricted: bool,
    supersedes: Option<u64>,
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
    let sealed = seal(
        conn, workspace, doc_id, meta, chunk, restricted, epoch, &key,
    )?;
    let content_id = waymark_protocol::content_id_of(&sealed);
    conn.prepare_cached(
        "INSERT INTO outbox(workspace_id, doc_id, epoch, content_id, ciphertext, restricted,
            kind, plain, supersedes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        workspace,
        doc_id,
        epoch,
        content_id.as_slice(),
        sealed,
        restricted,
        meta.kind.as_str(),
        restricted.then_some(chunk),
        supersedes.map(|s| i64::try_from(s).unwrap_or(i64::MAX))
    ])?;
    Ok(())
}

/// Seals and signs a chunk for the outbox under the key of `epoch`: a restricted record's to
/// the epoch's restricted key once the team log names one (before that, as any record: the
/// row is sealed again when it does).
#[allow(clippy::too_many_arguments)]
pub(crate) fn seal(
    conn: &Connection,
    workspace: &str,
    doc_id: &str,
    meta: ChunkMeta,
    chunk: &[u8],
    restricted: bool,
    epoch: u32,
    key: &crypto::WorkspaceKey,
) -> Result<Vec<u8>> {
    let own = crate::sync::team::own_keys(conn, workspace)?;
    let doc = crypto::doc_id_bytes(doc_id)?;
    match restricted {
        true => match keys::restricted_public(conn, workspace, epoch)? {
            Some(public) => {
                crypto::seal_restricted_signed(&public, &own, workspace, &doc, epoch, meta, chunk)
            }
            None => crypto::seal_signed(key, &own, workspace, &doc, epoch, meta, chunk),
        },
        false => crypto::seal_signed(key, &own, workspace, &doc, epoch, meta, chunk),
    }
}
