//! The verified team log of each synced workspace and the team it makes: the entries
//! (`team_log`), the devices they admit (`team_members`), and the log's length, head and epoch
//! with the server's unresolved attack and the count of dropped held blobs (`team_state`). Every
//! read and write of those tables is here; checking entries and deciding whom to trust is
//! `sync::log`'s and `sync::team`'s.

use std::collections::BTreeSet;

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use waymark_protocol::team_log::{SignedEntry, TeamState};

use super::team_devices::Shown;
use crate::error::{Error, Result};

/// A device of the team as the authorship rule sees it.
pub(crate) struct Member {
    pub(crate) sign_key: Vec<u8>,
    pub(crate) role: String,
    pub(crate) actor: Option<Vec<u8>>,
    /// Not revoked.
    pub(crate) active: bool,
}

/// Where one device stands in the verified log.
pub(crate) struct Admission {
    pub(crate) role: String,
    /// The last sequence number its blobs count up to, once revoked.
    pub(crate) revoked_after_seq: Option<i64>,
}

/// What this device knows of a workspace's log besides its entries (all zero: nothing yet).
#[derive(Default)]
pub(crate) struct State {
    pub(crate) log_len: i64,
    pub(crate) epoch: u32,
    pub(crate) rotation_due: bool,
    /// The unresolved attack, if any (see [`set_attack`]).
    pub(crate) attack: Option<String>,
    /// Held blobs whose bytes were dropped to stay within the budget.
    pub(crate) set_aside_dropped: i64,
}

/// The verified entries of `workspace`'s log, in order.
pub(crate) fn entries(c: &Connection, workspace: &str) -> Result<Vec<SignedEntry>> {
    let mut st = c.prepare_cached(
        "SELECT entry, signature FROM team_log WHERE workspace_id = ?1 ORDER BY idx",
    )?;
    let rows = st.query_map(params![workspace], |r| {
        Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
    })?;
    let mut entries = Vec::new();
    for row in rows {
        let (entry, signature) = row?;
        let signature = signature
            .try_into()
            .map_err(|_| Error::Corrupt("a stored team log entry is damaged".into()))?;
        entries.push(SignedEntry { entry, signature });
    }
    Ok(entries)
}

/// Appends newly verified entries to `workspace`'s log, the first at index `first`.
pub(crate) fn append(
    tx: &Transaction<'_>,
    workspace: &str,
    first: u64,
    new: &[SignedEntry],
) -> Result<()> {
    let mut ins = tx.prepare_cached(
        "INSERT INTO team_log(workspace_id, idx, hash, entry, signature)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (i, e) in new.iter().enumerate() {
        ins.execute(params![
            workspace,
            i64::try_from(first + i as u64).unwrap_or(i64::MAX),
            e.hash().as_slice(),
            e.entry,
            e.signature.as_slice()
        ])?;
    }
    Ok(())
}

/// Replaces what `workspace`'s log makes of the team with `state`: its members, head and epoch;
/// an attack recorded before is cleared (the log verified).
pub(crate) fn set_team(tx: &Transaction<'_>, workspace: &str, state: &TeamState) -> Result<()> {
    tx.execute(
        "DELETE FROM team_members WHERE workspace_id = ?1",
        params![workspace],
    )?;
    {
        let mut ins = tx.prepare_cached(
            "INSERT INTO team_members(workspace_id, sign_key, device_id, name, role, box_key,
                actor, admitted_idx, vouch, revoked_after_seq)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for m in state.members.values() {
            ins.execute(params![
                workspace,
                m.member.sign_key.as_slice(),
                m.member.device_id,
                m.member.name,
                m.member.role,
                m.member.box_key.as_slice(),
                m.member.actor,
                i64::try_from(m.admitted_at).unwrap_or(i64::MAX),
                m.vouch.map(|v| format!("{v:?}").to_lowercase()),
                m.revoked_after_seq
                    .map(|s| i64::try_from(s).unwrap_or(i64::MAX)),
            ])?;
        }
    }
    tx.execute(
        "INSERT INTO team_state(workspace_id, epoch, rotation_needed, log_len, log_head,
            rotation_due, attack)
         VALUES (?1, ?2, 0, ?3, ?4, ?5, NULL)
         ON CONFLICT(workspace_id) DO UPDATE SET epoch = excluded.epoch,
            log_len = excluded.log_len, log_head = excluded.log_head,
            rotation_due = excluded.rotation_due, attack = NULL",
        params![
            workspace,
            state.epoch,
            i64::try_from(state.len).unwrap_or(i64::MAX),
            state.head.as_slice(),
            state.rotation_due
        ],
    )?;
    Ok(())
}

/// Every device the log of `workspace` admitted, revoked or not.
pub(crate) fn members(c: &Connection, workspace: &str) -> Result<Vec<Member>> {
    let mut st = c.prepare_cached(
        "SELECT sign_key, role, actor, revoked_after_seq IS NULL FROM team_members
         WHERE workspace_id = ?1",
    )?;
    let rows = st.query_map(params![workspace], |r| {
        Ok(Member {
            sign_key: r.get(0)?,
            role: r.get(1)?,
            actor: r.get(2)?,
            active: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Where the device signing with `sign_key` stands in `workspace`'s log (`None`: not admitted).
pub(crate) fn admission(
    c: &Connection,
    workspace: &str,
    sign_key: &[u8; 32],
) -> Result<Option<Admission>> {
    Ok(c.prepare_cached(
        "SELECT role, revoked_after_seq FROM team_members
         WHERE workspace_id = ?1 AND sign_key = ?2",
    )?
    .query_row(params![workspace, sign_key.as_slice()], |r| {
        Ok(Admission {
            role: r.get(0)?,
            revoked_after_seq: r.get(1)?,
        })
    })
    .optional()?)
}

/// Whether the log of `workspace` admits the device signing with `sign_key`, not revoked.
pub(crate) fn is_admitted(c: &Connection, workspace: &str, sign_key: &[u8; 32]) -> Result<bool> {
    Ok(c.prepare_cached(
        "SELECT 1 FROM team_members WHERE workspace_id = ?1 AND sign_key = ?2
           AND revoked_after_seq IS NULL",
    )?
    .exists(params![workspace, sign_key.as_slice()])?)
}

/// Whether the log of `workspace` makes the device signing with `sign_key` a coordinator, not
/// revoked.
pub(crate) fn is_coordinator(c: &Connection, workspace: &str, sign_key: &[u8; 32]) -> Result<bool> {
    Ok(c.prepare_cached(
        "SELECT 1 FROM team_members WHERE workspace_id = ?1 AND sign_key = ?2
           AND role = 'coordinator' AND revoked_after_seq IS NULL",
    )?
    .exists(params![workspace, sign_key.as_slice()])?)
}

/// The devices the log of `workspace` admitted, in the order it did, each with its last sync
/// as the server last listed it.
pub(crate) fn admitted(c: &Connection, workspace: &str) -> Result<Vec<Shown>> {
    let mut st = c.prepare(
        "SELECT m.device_id, m.name, m.role, m.revoked_after_seq IS NOT NULL, m.sign_key,
            (SELECT d.last_sync_at FROM team_devices d
             WHERE d.workspace_id = m.workspace_id AND d.device_id = m.device_id)
         FROM team_members m WHERE m.workspace_id = ?1 ORDER BY m.admitted_idx",
    )?;
    let rows = st.query_map(params![workspace], super::team_devices::shown)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The signing keys of the devices the log of `workspace` admitted, revoked or not.
pub(crate) fn member_keys(c: &Connection, workspace: &str) -> Result<BTreeSet<[u8; 32]>> {
    Ok(members(c, workspace)?
        .into_iter()
        .filter_map(|m| <[u8; 32]>::try_from(m.sign_key).ok())
        .collect())
}

/// The key epoch `workspace`'s log is at, once this device verified an entry of it.
pub(crate) fn epoch(c: &Connection, workspace: &str) -> Result<Option<u32>> {
    Ok(c.query_row(
        "SELECT epoch FROM team_state WHERE workspace_id = ?1 AND log_len > 0",
        params![workspace],
        |r| r.get(0),
    )
    .optional()?)
}

/// How many entries of `workspace`'s log this device verified.
pub(crate) fn len(c: &Connection, workspace: &str) -> Result<i64> {
    Ok(c.query_row(
        "SELECT log_len FROM team_state WHERE workspace_id = ?1",
        params![workspace],
        |r| r.get(0),
    )
    .optional()?
    .unwrap_or(0))
}

/// What this device knows of `workspace`'s log besides its entries (`None`: nothing yet).
pub(crate) fn state(c: &Connection, workspace: &str) -> Result<Option<State>> {
    Ok(c.query_row(
        "SELECT log_len, epoch, rotation_due, attack, set_aside_dropped
         FROM team_state WHERE workspace_id = ?1",
        params![workspace],
        |r| {
            Ok(State {
                log_len: r.get(0)?,
                epoch: r.get(1)?,
                rotation_due: r.get(2)?,
                attack: r.get(3)?,
                set_aside_dropped: r.get(4)?,
            })
        },
    )
    .optional()?)
}

/// The unresolved attack of `workspace`, if any.
pub(crate) fn attack(c: &Connection, workspace: &str) -> Result<Option<String>> {
    Ok(c.query_row(
        "SELECT attack FROM team_state WHERE workspace_id = ?1",
        params![workspace],
        |r| r.get::<_, Option<String>>(0),
    )
    .optional()?
    .flatten())
}

/// Records `attack` as `workspace`'s unresolved attack (cleared when a log verifies again).
pub(crate) fn set_attack(c: &Connection, workspace: &str, attack: &str) -> Result<()> {
    c.execute(
        "INSERT INTO team_state(workspace_id, epoch, rotation_needed, attack)
         VALUES (?1, 0, 0, ?2)
         ON CONFLICT(workspace_id) DO UPDATE SET attack = excluded.attack",
        params![workspace, attack],
    )?;
    Ok(())
}

/// Counts `dropped` more held blobs of `workspace` whose bytes were dropped.
pub(crate) fn add_dropped(c: &Connection, workspace: &str, dropped: u64) -> Result<()> {
    c.execute(
        "INSERT INTO team_state(workspace_id, epoch, rotation_needed, set_aside_dropped)
         VALUES (?1, 0, 0, ?2)
         ON CONFLICT(workspace_id) DO UPDATE
         SET set_aside_dropped = set_aside_dropped + excluded.set_aside_dropped",
        params![workspace, i64::try_from(dropped).unwrap_or(i64::MAX)],
    )?;
    Ok(())
}
