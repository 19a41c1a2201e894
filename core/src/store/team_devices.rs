//! The server's listing of each synced workspace's devices, as last fetched (`team_devices`):
//! names, keys, join proofs and which key epochs each holds. Shown to people and used to find
//! whom to admit and top up with keys, never to decide whom to trust (that is the team log's,
//! `team_log`). Every read and write of the table is here.

use rusqlite::{Connection, Row, Transaction, params};
use waymark_protocol as proto;

use crate::error::Result;

/// A device as the server lists it.
pub(crate) struct Listed {
    pub(crate) device_id: String,
    pub(crate) name: String,
    pub(crate) sign: [u8; 32],
    pub(crate) boxk: [u8; 32],
    pub(crate) proof: Option<Vec<u8>>,
    pub(crate) revoked_at_seq: Option<u64>,
    pub(crate) key_epochs: Vec<u32>,
    pub(crate) actor: Option<Vec<u8>>,
}

/// A device as the team's list shows it.
pub(crate) struct Shown {
    pub(crate) device_id: String,
    pub(crate) name: String,
    pub(crate) role: String,
    pub(crate) revoked: bool,
    pub(crate) sign_key: Vec<u8>,
    /// Its last sync (ms) as the server last listed it.
    pub(crate) last_sync_at: Option<i64>,
}

/// Reads a [`Shown`] from columns device id, name, role, revoked, signing key, last sync.
pub(super) fn shown(r: &Row<'_>) -> rusqlite::Result<Shown> {
    Ok(Shown {
        device_id: r.get(0)?,
        name: r.get(1)?,
        role: r.get(2)?,
        revoked: r.get(3)?,
        sign_key: r.get(4)?,
        last_sync_at: r.get(5)?,
    })
}

/// Replaces the listing of `workspace` with `devices`, as the server just listed them.
pub(crate) fn replace(
    tx: &Transaction<'_>,
    workspace: &str,
    devices: &[proto::TeamDevice],
) -> Result<()> {
    tx.execute(
        "DELETE FROM team_devices WHERE workspace_id = ?1",
        params![workspace],
    )?;
    let mut ins = tx.prepare_cached(
        "INSERT INTO team_devices(workspace_id, device_id, name, role, sign_key, box_key,
            join_proof, enrolled_at, revoked_at_seq, key_epochs, actor, last_sync_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
         ON CONFLICT DO NOTHING",
    )?;
    for d in devices {
        let epochs: Vec<String> = d.key_epochs.iter().map(u32::to_string).collect();
        ins.execute(params![
            workspace,
            d.device_id,
            d.name,
            d.role,
            d.sign_key.as_slice(),
            d.box_key.as_slice(),
            d.join_proof,
            d.enrolled_at,
            d.revoked_at_seq
                .map(|s| i64::try_from(s).unwrap_or(i64::MAX)),
            epochs.join(","),
            d.actor,
            d.last_sync_at.map(|s| s.saturating_mul(1000)),
        ])?;
    }
    Ok(())
}

/// The devices the server lists for `workspace`, in the order they enrolled (a row whose keys
/// are not 32 bytes is left out).
pub(crate) fn listed(c: &Connection, workspace: &str) -> Result<Vec<Listed>> {
    let mut st = c.prepare(
        "SELECT device_id, name, sign_key, box_key, join_proof, revoked_at_seq, key_epochs,
                actor
         FROM team_devices WHERE workspace_id = ?1 ORDER BY enrolled_at, device_id",
    )?;
    let rows = st.query_map(params![workspace], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Vec<u8>>(2)?,
            r.get::<_, Vec<u8>>(3)?,
            r.get::<_, Option<Vec<u8>>>(4)?,
            r.get::<_, Option<i64>>(5)?,
            r.get::<_, String>(6)?,
            r.get::<_, Option<Vec<u8>>>(7)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (device_id, name, sign, boxk, proof, revoked, epochs, actor) = row?;
        let (Ok(sign), Ok(boxk)) = (<[u8; 32]>::try_from(sign), <[u8; 32]>::try_from(boxk)) else {
            continue;
        };
        out.push(Listed {
            device_id,
            name,
            sign,
            boxk,
            proof,
            revoked_at_seq: revoked.map(|s| u64::try_from(s).unwrap_or(0)),
            key_epochs: epochs.split(',').filter_map(|e| e.parse().ok()).collect(),
            actor,
        });
    }
    Ok(out)
}

/// Every device the server lists for `workspace`, as the team's list shows it, in the order
/// they enrolled.
pub(crate) fn all(c: &Connection, workspace: &str) -> Result<Vec<Shown>> {
    let mut st = c.prepare(
        "SELECT device_id, name, role, revoked_at_seq IS NOT NULL, sign_key, last_sync_at
         FROM team_devices WHERE workspace_id = ?1 ORDER BY enrolled_at, device_id",
    )?;
    let rows = st.query_map(params![workspace], shown)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
