//! Safety check-ins on disk: this device's own and the teammates' it fetched, with what was sent
//! of each and what listeners were last told. Every read and write of the `check_ins` table is
//! here, and the duress PIN's row of `meta`.

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::Result;

/// The meta key of the duress PIN's salt and hash.
const DURESS_PIN: &str = "duress_pin";

/// One row of the `check_ins` table.
pub(crate) struct Row {
    pub(crate) id: String,
    pub(crate) workspace: String,
    pub(crate) device_id: String,
    pub(crate) own: bool,
    pub(crate) version: i64,
    /// The state as signed by its device (a duress close is stored closed).
    pub(crate) state: String,
    pub(crate) started_at: i64,
    pub(crate) expected_back: i64,
    pub(crate) closed_at: Option<i64>,
    pub(crate) place: String,
    pub(crate) with_whom: String,
    pub(crate) note: String,
    /// The state to send instead of `state`, until the server has it (a duress close).
    pub(crate) send_state: Option<String>,
    pub(crate) sent_version: i64,
    /// What the server last said of it (overdue, alarm), if anything.
    pub(crate) server_state: Option<String>,
}

/// A check-in this device starts.
pub(crate) struct NewOwn<'a> {
    pub(crate) id: &'a str,
    pub(crate) workspace: &'a str,
    pub(crate) device_id: &'a str,
    pub(crate) state: &'a str,
    pub(crate) started_at: i64,
    pub(crate) expected_back: i64,
    pub(crate) place: &'a str,
    pub(crate) with_whom: &'a str,
    pub(crate) note: &'a str,
}

/// A teammate's check-in as its device sealed it, with the server's word on it.
pub(crate) struct Teammate<'a> {
    pub(crate) id: &'a str,
    pub(crate) workspace: &'a str,
    pub(crate) device_id: &'a str,
    pub(crate) version: i64,
    pub(crate) state: &'a str,
    pub(crate) started_at: i64,
    pub(crate) expected_back: i64,
    pub(crate) closed_at: Option<i64>,
    pub(crate) place: &'a str,
    pub(crate) with_whom: &'a str,
    pub(crate) note: &'a str,
    pub(crate) server_state: Option<&'a str>,
    pub(crate) updated_at: i64,
}

const COLUMNS: &str = "id, workspace_id, device_id, own, version, state, started_at, \
                       expected_back, closed_at, place, with_whom, note, send_state, \
                       sent_version, server_state";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        id: r.get(0)?,
        workspace: r.get(1)?,
        device_id: r.get(2)?,
        own: r.get(3)?,
        version: r.get(4)?,
        state: r.get(5)?,
        started_at: r.get(6)?,
        expected_back: r.get(7)?,
        closed_at: r.get(8)?,
        place: r.get(9)?,
        with_whom: r.get(10)?,
        note: r.get(11)?,
        send_state: r.get(12)?,
        sent_version: r.get(13)?,
        server_state: r.get(14)?,
    })
}

/// Check-in `id`, or `None` if this device does not know it.
pub(crate) fn load(c: &Connection, id: &str) -> Result<Option<Row>> {
    Ok(
        c.prepare_cached(&format!("SELECT {COLUMNS} FROM check_ins WHERE id = ?1"))?
            .query_row(params![id], row)
            .optional()?,
    )
}

/// The check-ins of `workspace` still open or closed after `closed_after` (ms).
pub(crate) fn listed(c: &Connection, workspace: &str, closed_after: i64) -> Result<Vec<Row>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM check_ins WHERE workspace_id = ?1
           AND (closed_at IS NULL OR closed_at > ?2)"
    ))?;
    let rows = st
        .query_map(params![workspace, closed_after], row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Every check-in of `workspace`, with the state listeners were last told of it.
pub(crate) fn all_with_told(c: &Connection, workspace: &str) -> Result<Vec<(Row, Option<String>)>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {COLUMNS}, told FROM check_ins WHERE workspace_id = ?1"
    ))?;
    let rows = st
        .query_map(params![workspace], |r| {
            Ok((row(r)?, r.get::<_, Option<String>>(15)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Records that listeners were told check-in `id` is in `state`.
pub(crate) fn set_told(c: &Connection, id: &str, state: &str) -> Result<()> {
    c.execute(
        "UPDATE check_ins SET told = ?2 WHERE id = ?1",
        params![id, state],
    )?;
    Ok(())
}

/// Records a check-in this device starts, at version 1.
pub(crate) fn insert_own(c: &Connection, n: &NewOwn<'_>) -> Result<()> {
    c.execute(
        "INSERT INTO check_ins(id, workspace_id, device_id, own, version, state,
            started_at, expected_back, place, with_whom, note, updated_at)
         VALUES (?1, ?2, ?3, 1, 1, ?4, ?5, ?6, ?7, ?8, ?9, ?5)",
        params![
            n.id,
            n.workspace,
            n.device_id,
            n.state,
            n.started_at,
            n.expected_back,
            n.place,
            n.with_whom,
            n.note
        ],
    )?;
    Ok(())
}

/// Moves check-in `id` to `expected_back` in a new version, forgetting what the server said of
/// the old one.
pub(crate) fn extend(c: &Connection, id: &str, expected_back: i64, at: i64) -> Result<()> {
    c.execute(
        "UPDATE check_ins SET expected_back = ?2, version = version + 1,
            server_state = NULL, updated_at = ?3 WHERE id = ?1",
        params![id, expected_back, at],
    )?;
    Ok(())
}

/// Closes check-in `id` at `at` in a new version: stored as `state`, sent as `send_state`
/// when given.
pub(crate) fn close(
    c: &Connection,
    id: &str,
    state: &str,
    send_state: Option<&str>,
    at: i64,
) -> Result<()> {
    c.execute(
        "UPDATE check_ins SET state = ?2, send_state = ?3, closed_at = ?4,
            version = version + 1, updated_at = ?4 WHERE id = ?1",
        params![id, state, send_state, at],
    )?;
    Ok(())
}

/// The ids of this device's check-ins of `workspace` with an update the server does not have.
pub(crate) fn unsent(c: &Connection, workspace: &str) -> Result<Vec<String>> {
    let mut st = c.prepare_cached(
        "SELECT id FROM check_ins WHERE workspace_id = ?1 AND own = 1
           AND sent_version < version",
    )?;
    let ids = st
        .query_map(params![workspace], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(ids)
}

/// Records that the server has `version` of check-in `id`, and forgets the state sent in its
/// place if that version carried it; returns whether one was forgotten.
pub(crate) fn mark_sent(c: &Connection, id: &str, version: i64) -> Result<bool> {
    c.execute(
        "UPDATE check_ins SET sent_version = max(sent_version, ?2) WHERE id = ?1",
        params![id, version],
    )?;
    let cleared = c.execute(
        "UPDATE check_ins SET send_state = NULL
         WHERE id = ?1 AND version <= ?2 AND send_state IS NOT NULL",
        params![id, version],
    )?;
    Ok(cleared > 0)
}

/// Whether a teammate's check-in of `workspace` is in `state`.
pub(crate) fn teammate_in(c: &Connection, workspace: &str, state: &str) -> Result<bool> {
    Ok(c.query_row(
        "SELECT EXISTS(SELECT 1 FROM check_ins WHERE workspace_id = ?1 AND own = 0
           AND state = ?2)",
        params![workspace, state],
        |r| r.get(0),
    )?)
}

/// Records what the server says of check-in `id` (`None`: nothing to heed).
pub(crate) fn set_server_state(c: &Connection, id: &str, state: Option<&str>) -> Result<()> {
    c.execute(
        "UPDATE check_ins SET server_state = ?2 WHERE id = ?1",
        params![id, state],
    )?;
    Ok(())
}

/// Stores a teammate's check-in, replacing what this device had of it.
pub(crate) fn upsert_teammate(c: &Connection, t: &Teammate<'_>) -> Result<()> {
    c.execute(
        "INSERT INTO check_ins(id, workspace_id, device_id, own, version, state,
            started_at, expected_back, closed_at, place, with_whom, note,
            sent_version, server_state, updated_at)
         VALUES (?1, ?2, ?3, 0, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?4, ?12, ?13)
         ON CONFLICT(id) DO UPDATE SET version = excluded.version,
            state = excluded.state, expected_back = excluded.expected_back,
            closed_at = excluded.closed_at, place = excluded.place,
            with_whom = excluded.with_whom, note = excluded.note,
            sent_version = excluded.sent_version, server_state = excluded.server_state,
            updated_at = excluded.updated_at",
        params![
            t.id,
            t.workspace,
            t.device_id,
            t.version,
            t.state,
            t.started_at,
            t.expected_back,
            t.closed_at,
            t.place,
            t.with_whom,
            t.note,
            t.server_state,
            t.updated_at
        ],
    )?;
    Ok(())
}

/// The ids of teammates' check-ins of `workspace` closed before `before` (ms), or, never
/// closed, due more than `unclosed_extra` ms before it.
pub(crate) fn teammates_ended(
    c: &Connection,
    workspace: &str,
    before: i64,
    unclosed_extra: i64,
) -> Result<Vec<String>> {
    let mut st = c.prepare_cached(
        "SELECT id FROM check_ins WHERE workspace_id = ?1 AND own = 0
           AND coalesce(closed_at, expected_back + ?3) < ?2",
    )?;
    let ids = st
        .query_map(params![workspace, before, unclosed_extra], |r| {
            r.get::<_, String>(0)
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(ids)
}

/// Deletes check-in `id`.
pub(crate) fn delete(c: &Connection, id: &str) -> Result<()> {
    c.execute("DELETE FROM check_ins WHERE id = ?1", params![id])?;
    Ok(())
}

/// Deletes this device's check-ins of `workspace` closed before `before` (ms) whose last update
/// the server has.
pub(crate) fn delete_own_closed(c: &Connection, workspace: &str, before: i64) -> Result<()> {
    c.execute(
        "DELETE FROM check_ins WHERE workspace_id = ?1 AND own = 1 AND closed_at < ?2
           AND sent_version >= version",
        params![workspace, before],
    )?;
    Ok(())
}

/// The duress PIN as stored (salt and hash), if one is set.
pub(crate) fn duress_pin(c: &Connection) -> Result<Option<String>> {
    Ok(c.query_row(
        "SELECT value FROM meta WHERE key = ?1",
        params![DURESS_PIN],
        |r| r.get(0),
    )
    .optional()?)
}

/// Keeps `value` (salt and hash) as the duress PIN; `None` removes it.
pub(crate) fn set_duress_pin(c: &Connection, value: Option<&str>) -> Result<()> {
    match value {
        Some(v) => c.execute(
            "INSERT INTO meta(key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![DURESS_PIN, v],
        )?,
        None => c.execute("DELETE FROM meta WHERE key = ?1", params![DURESS_PIN])?,
    };
    Ok(())
}
