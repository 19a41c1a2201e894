//! Memberships: the workspaces this store syncs with a server, with this device's credentials
//! and keys there, and where its sync stands (cursor, team version, check-ins and tips seen).
//! Every read and write of the `memberships` table is here; one row per workspace.

use rusqlite::types::ToSql;
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::error::Result;

/// A workspace this store syncs, and this device's credentials for it.
pub(crate) struct Membership {
    pub(crate) workspace: String,
    pub(crate) url: String,
    pub(crate) token: String,
    pub(crate) device_id: String,
}

/// What a new membership starts from: the server's answer to the enrolment and this device's
/// side of it.
pub(crate) struct NewMembership<'a> {
    pub(crate) workspace: &'a str,
    pub(crate) url: &'a str,
    pub(crate) server_workspace: &'a str,
    pub(crate) device_id: &'a str,
    pub(crate) device_token: &'a str,
    pub(crate) role: &'a str,
    pub(crate) device_keys: &'a [u8],
    pub(crate) join_proof: Option<&'a [u8]>,
    /// The team log entry (index, hash) where this device's trust in the log starts.
    pub(crate) anchor: Option<(u64, [u8; 32])>,
    pub(crate) actor: &'a [u8],
}

const CREDENTIALS: &str = "workspace_id, server_url, device_token, device_id";

fn credentials(r: &Row<'_>) -> rusqlite::Result<Membership> {
    Ok(Membership {
        workspace: r.get(0)?,
        url: r.get(1)?,
        token: r.get(2)?,
        device_id: r.get(3)?,
    })
}

/// `columns` of `workspace`'s membership, or `None` if it has none. `columns` are always
/// literals of this module.
fn get<T>(
    c: &Connection,
    workspace: &str,
    columns: &str,
    f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Option<T>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {columns} FROM memberships WHERE workspace_id = ?1"
    ))?
    .query_row(params![workspace], f)
    .optional()?)
}

/// Like `get`, for a workspace known to have a membership: none fails as a missing row does.
fn get_known<T>(
    c: &Connection,
    workspace: &str,
    columns: &str,
    f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<T> {
    Ok(get(c, workspace, columns, f)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?)
}

/// Runs `UPDATE memberships SET {set} WHERE workspace_id = ?1 {and}` with `value` as `?2`;
/// returns the rows changed. `set` and `and` are always literals of this module.
fn update(
    c: &Connection,
    workspace: &str,
    set: &str,
    and: &str,
    value: &dyn ToSql,
) -> Result<usize> {
    Ok(c.prepare_cached(&format!(
        "UPDATE memberships SET {set} WHERE workspace_id = ?1 {and}"
    ))?
    .execute(params![workspace, value])?)
}

/// Records a new membership, at the start of the server's log.
pub(crate) fn insert(c: &Connection, m: &NewMembership<'_>) -> Result<()> {
    let (anchor_idx, anchor_hash) = match &m.anchor {
        Some((idx, hash)) => (
            Some(i64::try_from(*idx).unwrap_or(i64::MAX)),
            Some(hash.to_vec()),
        ),
        None => (None, None),
    };
    c.execute(
        "INSERT INTO memberships(workspace_id, server_url, server_workspace_id, device_id,
            device_token, cursor, revoked, device_keys, role, team_version, join_proof,
            anchor_idx, anchor_hash, legacy_trust, actor)
         VALUES (?1, ?2, ?3, ?4, ?5, 0, 0, ?6, ?7, 0, ?8, ?9, ?10, 0, ?11)",
        params![
            m.workspace,
            m.url,
            m.server_workspace,
            m.device_id,
            m.device_token,
            m.device_keys,
            m.role,
            m.join_proof,
            anchor_idx,
            anchor_hash,
            m.actor
        ],
    )?;
    Ok(())
}

/// The memberships a sync goes through: those not revoked, by workspace.
pub(crate) fn active(c: &Connection) -> Result<Vec<Membership>> {
    let mut st = c.prepare(&format!(
        "SELECT {CREDENTIALS} FROM memberships WHERE revoked = 0 ORDER BY workspace_id"
    ))?;
    let rows = st.query_map([], credentials)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// The membership of `workspace` if it is not revoked.
pub(crate) fn active_in(c: &Connection, workspace: &str) -> Result<Option<Membership>> {
    Ok(c.query_row(
        &format!("SELECT {CREDENTIALS} FROM memberships WHERE workspace_id = ?1 AND revoked = 0"),
        params![workspace],
        credentials,
    )
    .optional()?)
}

/// Whether `workspace` has a membership, revoked or not.
pub(crate) fn exists(c: &Connection, workspace: &str) -> Result<bool> {
    Ok(
        c.prepare("SELECT 1 FROM memberships WHERE workspace_id = ?1")?
            .exists(params![workspace])?,
    )
}

/// Whether `workspace`'s membership is in force (`None`: it has none).
pub(crate) fn in_force(c: &Connection, workspace: &str) -> Result<Option<bool>> {
    get(c, workspace, "revoked = 0", |r| r.get(0))
}

/// Marks `workspace`'s membership revoked: it syncs no more.
pub(crate) fn revoke(c: &Connection, workspace: &str) -> Result<()> {
    c.execute(
        "UPDATE memberships SET revoked = 1 WHERE workspace_id = ?1",
        params![workspace],
    )?;
    Ok(())
}

/// Deletes `workspace`'s membership if it was revoked, making way for a new enrolment.
pub(crate) fn delete_revoked(c: &Connection, workspace: &str) -> Result<()> {
    c.execute(
        "DELETE FROM memberships WHERE workspace_id = ?1 AND revoked = 1",
        params![workspace],
    )?;
    Ok(())
}

/// The pull cursor of `workspace`.
pub(crate) fn cursor(c: &Connection, workspace: &str) -> Result<i64> {
    get_known(c, workspace, "cursor", |r| r.get(0))
}

/// Moves the pull cursor of `workspace` to `seq`.
pub(crate) fn set_cursor(c: &Connection, workspace: &str, seq: i64) -> Result<()> {
    update(c, workspace, "cursor = ?2", "", &seq)?;
    Ok(())
}

/// The pull cursor of `workspace` and the chain hash kept for it.
pub(crate) fn cursor_chain(c: &Connection, workspace: &str) -> Result<(i64, Option<Vec<u8>>)> {
    get_known(c, workspace, "cursor, cursor_chain", |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
}

/// Keeps `chain` as the chain hash at `workspace`'s cursor (`None`: a server that keeps none).
pub(crate) fn set_chain(c: &Connection, workspace: &str, chain: Option<&[u8]>) -> Result<()> {
    update(c, workspace, "cursor_chain = ?2", "", &chain)?;
    Ok(())
}

/// Moves `workspace`'s cursor back to `seq`, where the log's chain hash is `chain`.
pub(crate) fn rewind(c: &Connection, workspace: &str, seq: i64, chain: &[u8]) -> Result<()> {
    c.execute(
        "UPDATE memberships SET cursor = ?2, cursor_chain = ?3 WHERE workspace_id = ?1",
        params![workspace, seq, chain],
    )?;
    Ok(())
}

/// Marks `workspace` to be pulled again from the start (this device was made a coordinator).
pub(crate) fn set_repull(c: &Connection, workspace: &str) -> Result<()> {
    c.execute(
        "UPDATE memberships SET repull = 1 WHERE workspace_id = ?1",
        params![workspace],
    )?;
    Ok(())
}

/// If `workspace` was marked to be pulled again, moves its cursor to the start and clears the
/// mark; returns whether it was marked.
pub(crate) fn take_repull(c: &Connection, workspace: &str) -> Result<bool> {
    Ok(c.execute(
        "UPDATE memberships SET repull = 0, cursor = 0, cursor_chain = NULL
         WHERE workspace_id = ?1 AND repull = 1",
        params![workspace],
    )? > 0)
}

/// The version of the server's team listing this device last took.
pub(crate) fn team_version(c: &Connection, workspace: &str) -> Result<i64> {
    get_known(c, workspace, "team_version", |r| r.get(0))
}

/// Records the version of the server's team listing this device took.
pub(crate) fn set_team_version(c: &Connection, workspace: &str, version: i64) -> Result<()> {
    update(c, workspace, "team_version = ?2", "", &version)?;
    Ok(())
}

/// When this device last fetched the server's listing of the team (ms).
pub(crate) fn listing_at(c: &Connection, workspace: &str) -> Result<i64> {
    get_known(c, workspace, "listing_at", |r| r.get(0))
}

/// Records that the server's listing of the team was fetched at `at` (ms).
pub(crate) fn set_listing_at(c: &Connection, workspace: &str, at: i64) -> Result<()> {
    update(c, workspace, "listing_at = ?2", "", &at)?;
    Ok(())
}

/// Records that a sync of `workspace` went through at `at` (ms).
pub(crate) fn set_last_sync_at(c: &Connection, workspace: &str, at: i64) -> Result<()> {
    update(c, workspace, "last_sync_at = ?2", "", &at)?;
    Ok(())
}

/// This device's role in `workspace` and whether the team predates the signed log.
pub(crate) fn role_and_legacy(c: &Connection, workspace: &str) -> Result<(String, bool)> {
    get_known(c, workspace, "role, legacy_trust", |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
}

/// Records this device's role in `workspace`, as the team log gives it.
pub(crate) fn set_role(c: &Connection, workspace: &str, role: &str) -> Result<()> {
    update(c, workspace, "role = ?2", "", &role)?;
    Ok(())
}

/// The grace the server gives overdue check-ins of `workspace`, in seconds (`None`: no
/// membership).
pub(crate) fn check_ins_grace(c: &Connection, workspace: &str) -> Result<Option<i64>> {
    get(c, workspace, "check_ins_grace", |r| r.get(0))
}

/// The version of the team's check-ins a pull last announced, and the one last fetched.
pub(crate) fn check_ins_versions(c: &Connection, workspace: &str) -> Result<(i64, i64)> {
    get_known(c, workspace, "check_ins_seen, check_ins_fetched", |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
}

/// Records the version of the team's check-ins a pull announced.
pub(crate) fn set_check_ins_seen(c: &Connection, workspace: &str, version: i64) -> Result<()> {
    update(
        c,
        workspace,
        "check_ins_seen = ?2",
        "AND check_ins_seen <> ?2",
        &version,
    )?;
    Ok(())
}

/// Records the version of the team's check-ins fetched, with the server's grace (seconds).
pub(crate) fn set_check_ins_fetched(
    c: &Connection,
    workspace: &str,
    version: i64,
    grace: i64,
) -> Result<()> {
    c.execute(
        "UPDATE memberships SET check_ins_fetched = ?2, check_ins_grace = ?3
         WHERE workspace_id = ?1",
        params![workspace, version, grace],
    )?;
    Ok(())
}

/// How many tips a pull said wait on the server for `workspace`.
pub(crate) fn tips_waiting(c: &Connection, workspace: &str) -> Result<i64> {
    get_known(c, workspace, "tips_waiting", |r| r.get(0))
}

/// Records how many tips a pull said wait on the server.
pub(crate) fn set_tips_waiting(c: &Connection, workspace: &str, waiting: i64) -> Result<()> {
    update(
        c,
        workspace,
        "tips_waiting = ?2",
        "AND tips_waiting <> ?2",
        &waiting,
    )?;
    Ok(())
}

/// The URL of `workspace`'s server.
pub(crate) fn server_url(c: &Connection, workspace: &str) -> Result<String> {
    get_known(c, workspace, "server_url", |r| r.get(0))
}

/// The id `workspace`'s server knows it by.
pub(crate) fn server_workspace_id(c: &Connection, workspace: &str) -> Result<String> {
    get_known(c, workspace, "server_workspace_id", |r| r.get(0))
}

/// This device's key pairs in `workspace` as stored (`None`: no membership; `Some(None)`: a
/// membership from before device keys).
pub(crate) fn device_keys(c: &Connection, workspace: &str) -> Result<Option<Option<Vec<u8>>>> {
    get(c, workspace, "device_keys", |r| r.get(0))
}

/// This device's id on `workspace`'s server (`None`: no membership).
pub(crate) fn device_id(c: &Connection, workspace: &str) -> Result<Option<String>> {
    get(c, workspace, "device_id", |r| r.get(0))
}

/// The Automerge actor this device enrolled in `workspace` with (none before actors were
/// declared).
pub(crate) fn actor(c: &Connection, workspace: &str) -> Result<Option<Vec<u8>>> {
    get_known(c, workspace, "actor", |r| r.get(0))
}

/// The team log entry (index, hash) where this device's trust in `workspace`'s log starts, as
/// stored.
pub(crate) fn anchor(c: &Connection, workspace: &str) -> Result<(Option<i64>, Option<Vec<u8>>)> {
    get_known(c, workspace, "anchor_idx, anchor_hash", |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
}
