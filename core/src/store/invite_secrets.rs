//! The one-time secrets of the invites this device made (`invite_secrets`): a device whose join
//! proof holds under one of them, unused and unexpired, showed the invite handed over in person.
//! Every read and write of the table is here.

use rusqlite::{Connection, params};

use super::now_ms;
use crate::error::Result;

/// An unused, unexpired secret of an invite this device made.
pub(crate) struct Secret {
    pub(crate) secret: Vec<u8>,
    /// The role the invite admits with.
    pub(crate) role: String,
    /// Whether a device that joins with it waits for a coordinator's approval (`approve_join`)
    /// instead of being admitted at a coordinator's next sync.
    pub(crate) approval: bool,
}

/// The secrets of this device's invites to `workspace` that can still admit a device.
pub(crate) fn live(c: &Connection, workspace: &str) -> Result<Vec<Secret>> {
    let mut st = c.prepare(
        "SELECT secret, role, approval FROM invite_secrets
         WHERE workspace_id = ?1 AND expires_at * 1000 >= ?2",
    )?;
    let rows = st.query_map(params![workspace, now_ms()], |r| {
        Ok(Secret {
            secret: r.get(0)?,
            role: r.get(1)?,
            approval: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Uses up `secret` of an invite to `workspace`: it admits no other device.
pub(crate) fn consume(c: &Connection, workspace: &str, secret: &[u8]) -> Result<()> {
    c.execute(
        "DELETE FROM invite_secrets WHERE workspace_id = ?1 AND secret = ?2",
        params![workspace, secret],
    )?;
    Ok(())
}

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
