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

/// A queued change, as pushed.
pub(crate) struct Queued {
    pub(crate) id: i64,
    pub(crate) doc_id: String,
    pub(crate) epoch: u32,
    pub(crate) content_id: waymark_protocol::ContentId,
    pub(crate) ciphertext: Vec<u8>,
    /// The number of the server's blobs a rewrite supersedes.
    pub(crate) supersedes: Option<i64>,
}

/// The oldest changes queued for `workspace`: at most `max_rows`, and past the first, no more
/// than `max_bytes` of ciphertext. Rows past the budget are not read.
pub(crate) fn next_batch(
    conn: &Connection,
    workspace: &str,
    max_rows: usize,
    max_bytes: usize,
) -> Result<Vec<Queued>> {
    let mut st = conn.prepare_cached(
        "SELECT id, doc_id, epoch, content_id, ciphertext, supersedes FROM outbox
         WHERE workspace_id = ?1 ORDER BY id LIMIT ?2",
    )?;
    let rows = st.query_map(
        params![workspace, i64::try_from(max_rows).unwrap_or(i64::MAX)],
        |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, u32>(2)?,
                r.get::<_, Vec<u8>>(3)?,
                r.get::<_, Vec<u8>>(4)?,
                r.get::<_, Option<i64>>(5)?,
            ))
        },
    )?;
    let mut out = Vec::new();
    let mut size = 0;
    for row in rows {
        let (id, doc_id, epoch, content_id, ciphertext, supersedes) = row?;
        if !out.is_empty() && size + ciphertext.len() > max_bytes {
            break;
        }
        size += ciphertext.len();
        out.push(Queued {
            id,
            doc_id,
            epoch,
            content_id: content_id
                .try_into()
                .map_err(|_| Error::Corrupt("an outbox row is damaged".into()))?,
            ciphertext,
            supersedes,
        });
    }
    Ok(out)
}

/// Removes the queued rows `ids`: the server acknowledged them.
pub(crate) fn remove(conn: &Connection, ids: &[i64]) -> Result<()> {
    let mut del = conn.prepare_cached("DELETE FROM outbox WHERE id = ?1")?;
    for id in ids {
        del.execute(params![id])?;
    }
    Ok(())
}

/// Drops every change queued for `workspace` (its server revoked this device).
pub(crate) fn clear(conn: &Connection, workspace: &str) -> Result<()> {
    conn.execute(
        "DELETE FROM outbox WHERE workspace_id = ?1",
        params![workspace],
    )?;
    Ok(())
}

/// A queued change that may need sealing again.
pub(crate) struct Resealable {
    pub(crate) id: i64,
    pub(crate) doc_id: String,
    pub(crate) epoch: u32,
    pub(crate) sealed: Vec<u8>,
    pub(crate) restricted: bool,
    /// The record's kind (queued before kinds were kept, or unknown: `None`).
    pub(crate) kind: Option<RecordKind>,
    /// A restricted record's chunk in clear, kept to seal it again.
    pub(crate) plain: Option<Vec<u8>>,
    pub(crate) supersedes: Option<i64>,
}

/// The changes queued for `workspace` sealed under an epoch before `epoch`, and every
/// restricted record's.
pub(crate) fn resealable(
    conn: &Connection,
    workspace: &str,
    epoch: u32,
) -> Result<Vec<Resealable>> {
    Ok(conn
        .prepare(
            "SELECT id, doc_id, epoch, ciphertext, restricted, kind, plain, supersedes FROM outbox
             WHERE workspace_id = ?1 AND (epoch < ?2 OR restricted = 1)",
        )?
        .query_map(params![workspace, epoch], |r| {
            Ok(Resealable {
                id: r.get(0)?,
                doc_id: r.get(1)?,
                epoch: r.get(2)?,
                sealed: r.get(3)?,
                restricted: r.get(4)?,
                kind: r
                    .get::<_, Option<String>>(5)?
                    .as_deref()
                    .and_then(RecordKind::parse),
                plain: r.get(6)?,
                supersedes: r.get(7)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?)
}

/// Replaces the sealed bytes of queued row `id` with `sealed`, sealed under `epoch`.
pub(crate) fn reseal(conn: &Connection, id: i64, epoch: u32, sealed: &[u8]) -> Result<()> {
    conn.prepare_cached(
        "UPDATE outbox SET epoch = ?2, content_id = ?3, ciphertext = ?4 WHERE id = ?1",
    )?
    .execute(params![
        id,
        epoch,
        waymark_protocol::content_id_of(sealed).as_slice(),
        sealed
    ])?;
    Ok(())
}

/// Sealed bytes waiting to be pushed for `workspace`.
pub(crate) fn pending_bytes(conn: &Connection, workspace: &str) -> Result<u64> {
    workspace_u64(
        conn,
        "SELECT coalesce(sum(length(ciphertext)), 0) FROM outbox WHERE workspace_id = ?1",
        workspace,
    )
}

/// Changes waiting to be pushed for `workspace`.
pub(crate) fn pending_count(conn: &Connection, workspace: &str) -> Result<u64> {
    workspace_u64(
        conn,
        "SELECT count(*) FROM outbox WHERE workspace_id = ?1",
        workspace,
    )
}

/// Runs `sql`, a one-value query about `workspace`, and returns its non-negative result.
fn workspace_u64(conn: &Connection, sql: &str, workspace: &str) -> Result<u64> {
    let n: i64 = conn.query_row(sql, params![workspace], |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}
