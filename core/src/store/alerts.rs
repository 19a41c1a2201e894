//! What this device noticed a server doing to a workspace's team history (`team_alerts`), kept
//! to show people. Every read and write of the table is here; what counts as an attack is
//! `sync::log`'s.

use rusqlite::{Connection, params};

use super::now_ms;
use crate::error::Result;

/// An alert as stored.
pub(crate) struct Alert {
    /// When it was noticed, ms since the Unix epoch (this device's clock).
    pub(crate) at_ms: i64,
    /// Its kind, by its stable name.
    pub(crate) kind: String,
    pub(crate) detail: String,
}

/// Records an alert of `kind` about `workspace`'s server, noticed now.
pub(crate) fn record(c: &Connection, workspace: &str, kind: &str, detail: &str) -> Result<()> {
    c.execute(
        "INSERT INTO team_alerts(workspace_id, at, kind, detail) VALUES (?1, ?2, ?3, ?4)",
        params![workspace, now_ms(), kind, detail],
    )?;
    Ok(())
}

/// The alerts recorded for `workspace`, newest first (at most `limit`).
pub(crate) fn newest(c: &Connection, workspace: &str, limit: u32) -> Result<Vec<Alert>> {
    let mut st = c.prepare(
        "SELECT at, kind, detail FROM team_alerts WHERE workspace_id = ?1
         ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = st.query_map(params![workspace, limit], |r| {
        Ok(Alert {
            at_ms: r.get(0)?,
            kind: r.get(1)?,
            detail: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
