//! Workspace keys kept in the store, by epoch, and the invite codes that hand them over.

use rusqlite::{Connection, OptionalExtension, params};

use zeroize::Zeroizing;

use crate::crypto::{self, WorkspaceKey};
use crate::error::{Error, Result};

/// The newest key of a workspace and its epoch.
pub(crate) fn current(conn: &Connection, workspace: &str) -> Result<Option<(u32, WorkspaceKey)>> {
    let row: Option<(u32, Vec<u8>)> = conn
        .prepare_cached(
            "SELECT epoch, key FROM workspace_keys WHERE workspace_id = ?1
             ORDER BY epoch DESC LIMIT 1",
        )?
        .query_row(params![workspace], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    row.map(|(epoch, k)| Ok((epoch, decode(&k)?))).transpose()
}

/// The key of a workspace at `epoch`.
pub(crate) fn at_epoch(
    conn: &Connection,
    workspace: &str,
    epoch: u32,
) -> Result<Option<WorkspaceKey>> {
    let row: Option<Vec<u8>> = conn
        .prepare_cached("SELECT key FROM workspace_keys WHERE workspace_id = ?1 AND epoch = ?2")?
        .query_row(params![workspace, epoch], |r| r.get(0))
        .optional()?;
    row.map(|k| decode(&k)).transpose()
}

/// The keys of a workspace up to `epoch`, oldest first.
pub(crate) fn up_to(
    conn: &Connection,
    workspace: &str,
    epoch: u32,
) -> Result<Vec<(u32, WorkspaceKey)>> {
    let rows: Vec<(u32, Vec<u8>)> = conn
        .prepare(
            "SELECT epoch, key FROM workspace_keys WHERE workspace_id = ?1 AND epoch <= ?2
             ORDER BY epoch",
        )?
        .query_map(params![workspace, epoch], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    rows.into_iter()
        .map(|(epoch, k)| Ok((epoch, decode(&k)?)))
        .collect()
}

/// Deletes the keys of a workspace beyond `epoch`.
pub(crate) fn drop_beyond(conn: &Connection, workspace: &str, epoch: u32) -> Result<()> {
    conn.execute(
        "DELETE FROM workspace_keys WHERE workspace_id = ?1 AND epoch > ?2",
        params![workspace, epoch],
    )?;
    Ok(())
}

/// A stored key as the cipher takes it; a damaged one is corruption.
fn decode(k: &[u8]) -> Result<WorkspaceKey> {
    crypto::key_from_bytes(k)
        .ok_or_else(|| Error::Corrupt("a stored workspace key is damaged".into()))
}

/// Every key of a workspace as stored, oldest epoch first: what an invite hands over.
pub(crate) fn all(conn: &Connection, workspace: &str) -> Result<Vec<(u32, Vec<u8>)>> {
    let mut st = conn
        .prepare("SELECT epoch, key FROM workspace_keys WHERE workspace_id = ?1 ORDER BY epoch")?;
    let all = st
        .query_map(params![workspace], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(all)
}

/// Stores a key (a no-op if this epoch is already known).
pub(crate) fn insert(
    conn: &Connection,
    workspace: &str,
    epoch: u32,
    key: &WorkspaceKey,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO workspace_keys(workspace_id, epoch, key) VALUES (?1, ?2, ?3)
         ON CONFLICT(workspace_id, epoch) DO NOTHING",
    )?
    .execute(params![workspace, epoch, key.as_slice()])?;
    Ok(())
}

/// The secret half of a workspace's restricted key of `epoch`, if this device holds it (a
/// coordinator's does).
pub(crate) fn restricted_secret(
    conn: &Connection,
    workspace: &str,
    epoch: u32,
) -> Result<Option<Zeroizing<[u8; 32]>>> {
    let row: Option<Option<Vec<u8>>> = conn
        .prepare_cached(
            "SELECT secret FROM restricted_keys WHERE workspace_id = ?1 AND epoch = ?2",
        )?
        .query_row(params![workspace, epoch], |r| r.get(0))
        .optional()?;
    row.flatten()
        .map(|s| {
            <[u8; 32]>::try_from(s.as_slice())
                .map(Zeroizing::new)
                .map_err(|_| Error::Corrupt("a stored restricted key is damaged".into()))
        })
        .transpose()
}

/// The public half of a workspace's restricted key of `epoch` (restricted records are sealed
/// to it), as the team log names it.
pub(crate) fn restricted_public(
    conn: &Connection,
    workspace: &str,
    epoch: u32,
) -> Result<Option<[u8; 32]>> {
    let row: Option<Vec<u8>> = conn
        .prepare_cached(
            "SELECT public FROM restricted_keys WHERE workspace_id = ?1 AND epoch = ?2",
        )?
        .query_row(params![workspace, epoch], |r| r.get(0))
        .optional()?;
    Ok(row.and_then(|p| <[u8; 32]>::try_from(p.as_slice()).ok()))
}

/// Records a restricted key's public half, and its secret half when this device was granted it.
pub(crate) fn insert_restricted(
    conn: &Connection,
    workspace: &str,
    epoch: u32,
    public: &[u8; 32],
    secret: Option<&[u8; 32]>,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO restricted_keys(workspace_id, epoch, public, secret) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(workspace_id, epoch) DO UPDATE
         SET secret = coalesce(excluded.secret, restricted_keys.secret)",
    )?
    .execute(params![
        workspace,
        epoch,
        public.as_slice(),
        secret.map(|s| s.as_slice())
    ])?;
    Ok(())
}

/// Gives every workspace that has none a first key (stores from before keys existed), except
/// those joined by an invite to be approved, which wait for the team's key.
pub(crate) fn ensure_all(conn: &Connection) -> Result<()> {
    let missing: Vec<String> = conn
        .prepare(
            "SELECT id FROM workspaces WHERE id NOT IN (SELECT workspace_id FROM workspace_keys)
               AND id NOT IN (SELECT workspace_id FROM memberships WHERE join_proof IS NOT NULL)",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for ws in missing {
        insert(conn, &ws, 0, &crypto::new_workspace_key())?;
    }
    Ok(())
}
