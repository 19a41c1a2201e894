//! Invites this device issued through a server: the one-time secret each carries, which a
//! joining device proves its keys with, until the invite expires. Every write of the
//! `invite_secrets` table is here.

use rusqlite::{Connection, params};

use crate::error::Result;

/// Keeps the one-time `secret` of an invite to `workspace` for `role`, until `expires_at`
/// (seconds since 1970); `approval`: the joining device waits for a coordinator's approval.
pub(crate) fn insert_secret(
    c: &Connection,
    workspace: &str,
    secret: &[u8],
    expires_at: i64,
    approval: bool,
    role: &str,
) -> Result<()> {
    c.execute(
        "INSERT INTO invite_secrets(workspace_id, secret, expires_at, approval, role)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![workspace, secret, expires_at, approval, role],
    )?;
    Ok(())
}
