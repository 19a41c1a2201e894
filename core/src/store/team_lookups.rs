//! Lookups in the team tables for check-ins, tips, invites and bundle exchange: who the team
//! log admits (`team_members`), who the server lists (`team_devices`), how far the log goes
//! (`team_state`) and the signers learnt in person (`trusted_signers`). Reads only: the team
//! log (`sync/team.rs`, `sync/log.rs`) is what writes these tables.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::Result;

/// The name the team log, or else the server's listing, gives `device_id` in `workspace`
/// (empty if neither names it).
pub(crate) fn device_name(c: &Connection, workspace: &str, device_id: &str) -> Result<String> {
    Ok(c.prepare_cached(
        "SELECT name FROM team_members WHERE workspace_id = ?1 AND device_id = ?2
         UNION ALL SELECT name FROM team_devices WHERE workspace_id = ?1 AND device_id = ?2",
    )?
    .query_row(params![workspace, device_id], |r| r.get(0))
    .optional()?
    .unwrap_or_default())
}

/// The signing key the team log gives `device_id` in `workspace`, revoked or not.
pub(crate) fn member_sign_key(
    c: &Connection,
    workspace: &str,
    device_id: &str,
) -> Result<Option<Vec<u8>>> {
    Ok(c.prepare_cached(
        "SELECT sign_key FROM team_members WHERE workspace_id = ?1 AND device_id = ?2",
    )?
    .query_row(params![workspace, device_id], |r| r.get(0))
    .optional()?)
}

/// The signing key of `device_id` if the team log has it as a coordinator in force.
pub(crate) fn coordinator_sign_key(
    c: &Connection,
    workspace: &str,
    device_id: &str,
) -> Result<Option<Vec<u8>>> {
    Ok(c.query_row(
        "SELECT sign_key FROM team_members WHERE workspace_id = ?1 AND device_id = ?2
           AND role = 'coordinator' AND revoked_after_seq IS NULL",
        params![workspace, device_id],
        |r| r.get(0),
    )
    .optional()?)
}

/// The signing keys of the coordinators in force in `workspace`'s team log, in key order.
pub(crate) fn coordinator_keys(c: &Connection, workspace: &str) -> Result<Vec<Vec<u8>>> {
    let mut st = c.prepare(
        "SELECT sign_key FROM team_members WHERE workspace_id = ?1
           AND role = 'coordinator' AND revoked_after_seq IS NULL ORDER BY sign_key",
    )?;
    let keys = st
        .query_map(params![workspace], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(keys)
}

/// Whether the device signing with `sign_key` is in force in `workspace`'s team log (`None`:
/// the log does not admit it).
pub(crate) fn member_in_force(
    c: &Connection,
    workspace: &str,
    sign_key: &[u8],
) -> Result<Option<bool>> {
    Ok(c.query_row(
        "SELECT revoked_after_seq IS NULL FROM team_members
         WHERE workspace_id = ?1 AND sign_key = ?2",
        params![workspace, sign_key],
        |r| r.get(0),
    )
    .optional()?)
}

/// The signing keys this device accepts workspace keys from in `workspace`, learnt in person
/// (its own and its invite's), in key order.
pub(crate) fn trusted_signers(c: &Connection, workspace: &str) -> Result<Vec<Vec<u8>>> {
    let mut st = c.prepare(
        "SELECT sign_key FROM trusted_signers WHERE workspace_id = ?1 ORDER BY sign_key",
    )?;
    let keys = st
        .query_map(params![workspace], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(keys)
}

/// The last entry of `workspace`'s team log this device holds: its index and hash (`None`: no
/// log yet).
pub(crate) fn log_head(c: &Connection, workspace: &str) -> Result<Option<(i64, Vec<u8>)>> {
    Ok(c.query_row(
        "SELECT log_len - 1, log_head FROM team_state
         WHERE workspace_id = ?1 AND log_len > 0",
        params![workspace],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()?)
}

/// How many entries of each workspace's team log this device holds, for those with a log.
pub(crate) fn log_lengths(c: &Connection) -> Result<BTreeMap<String, u64>> {
    let mut st = c.prepare("SELECT workspace_id, log_len FROM team_state WHERE log_len > 0")?;
    let lengths = st
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
            ))
        })?
        .collect::<rusqlite::Result<BTreeMap<_, _>>>()?;
    Ok(lengths)
}
