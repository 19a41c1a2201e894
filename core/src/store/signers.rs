//! The signing keys this device learnt in person for each synced workspace, through its invite
//! or its own enrolment: the coordinators it trusts to start the team log
//! (`trusted_signers`), and the devices it vouched for before the log existed
//! (`accepted_devices`). Every read and write of those tables is here.

use std::collections::BTreeSet;

use rusqlite::{Connection, params};

use crate::error::Result;

// The two tables of this module: the only names `add` and `keys` splice into their SQL.
const TRUSTED: &str = "trusted_signers";
const ACCEPTED: &str = "accepted_devices";

/// Trusts `sign_key` to sign `workspace`'s team log (a no-op if it is already).
pub(crate) fn trust(c: &Connection, workspace: &str, sign_key: &[u8; 32]) -> Result<()> {
    add(c, TRUSTED, workspace, sign_key)
}

/// Vouches for the device signing with `sign_key` in `workspace` (a no-op if it is already).
pub(crate) fn accept(c: &Connection, workspace: &str, sign_key: &[u8; 32]) -> Result<()> {
    add(c, ACCEPTED, workspace, sign_key)
}

/// The keys trusted to sign `workspace`'s team log.
pub(crate) fn trusted(c: &Connection, workspace: &str) -> Result<BTreeSet<[u8; 32]>> {
    keys(c, TRUSTED, workspace)
}

/// The keys of the devices vouched for in `workspace`.
pub(crate) fn accepted(c: &Connection, workspace: &str) -> Result<BTreeSet<[u8; 32]>> {
    keys(c, ACCEPTED, workspace)
}

/// Adds `sign_key` to `table` for `workspace`, unless it is there.
fn add(c: &Connection, table: &str, workspace: &str, sign_key: &[u8; 32]) -> Result<()> {
    c.execute(
        &format!(
            "INSERT INTO {table}(workspace_id, sign_key) VALUES (?1, ?2)
             ON CONFLICT DO NOTHING"
        ),
        params![workspace, sign_key.as_slice()],
    )?;
    Ok(())
}

/// The keys in `table` for `workspace` (a row that is not 32 bytes is left out).
fn keys(c: &Connection, table: &str, workspace: &str) -> Result<BTreeSet<[u8; 32]>> {
    let mut st = c.prepare(&format!(
        "SELECT sign_key FROM {table} WHERE workspace_id = ?1"
    ))?;
    let rows = st.query_map(params![workspace], |r| r.get::<_, Vec<u8>>(0))?;
    let mut out = BTreeSet::new();
    for row in rows {
        if let Ok(k) = <[u8; 32]>::try_from(row?) {
            out.insert(k);
        }
    }
    Ok(out)
}
