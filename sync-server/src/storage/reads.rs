//! The reads both backends make with the same SQL, written once: the team as a device fetches
//! it, the team log, the blob log's chain hashes, a workspace's check-ins, its tip page, tips
//! and replies, the operator's device list and usage. Each backend only says how to run a
//! statement ([`Reads`]) and read a column ([`Row`]); the SQL and the assembly of rows into
//! answers live here, so the two backends cannot drift apart on them.
//!
//! Statements use PostgreSQL's placeholders (`$1`, `$2`, ...); the SQLite backend runs them as
//! SQLite's numbered `?1`, `?2`, ..., which bind the same parameters. Writes stay in each
//! backend: their locking (a row lock in PostgreSQL, one writer in SQLite) is where the two
//! truly differ.

use std::collections::HashMap;

use waymark_protocol::team_log::SignedEntry;
use waymark_protocol::{
    CHAIN_START, ChainHash, ChainMark, ChainResponse, CheckInsResponse, KeyEnvelope, TeamDevice,
    TeamResponse, TipEntry, TipPageRequest,
};

use super::{
    CHECK_IN_KEPT_SECS, CheckInRow, Device, DeviceInfo, StorageError, StorageResult, TipReply,
    WorkspaceUsage, stored_key, to_i64, to_u64,
};

/// A type both drivers read from a column.
pub(crate) trait Column:
    rusqlite::types::FromSql + for<'a> postgres::types::FromSql<'a>
{
}

impl Column for i64 {}
impl Column for Option<i64> {}
impl Column for bool {}
impl Column for String {}
impl Column for Option<String> {}
impl Column for Vec<u8> {}
impl Column for Option<Vec<u8>> {}

/// One row of a result. A column of another type than asked (or NULL where a value is
/// expected) is a [`StorageError`], never a panic.
pub(crate) trait Row {
    /// The value of column `index` (from 0).
    fn column<T: Column>(&self, index: usize) -> StorageResult<T>;
}

/// A parameter of a shared statement.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Param<'a> {
    /// A `BIGINT` / `INTEGER`.
    Int(i64),
    /// A `TEXT`.
    Text(&'a str),
    /// A `TEXT` or NULL.
    MaybeText(Option<&'a str>),
    /// A `BLOB` / `BYTEA`.
    Bytes(&'a [u8]),
}

/// A transaction of either backend that runs the shared statements.
pub(crate) trait Reads {
    /// A row as the driver hands it out.
    type Row<'r>: Row;

    /// Runs `sql` with `params` and hands each row to `each`, in order.
    fn each_row(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        each: impl FnMut(&Self::Row<'_>) -> StorageResult<()>,
    ) -> StorageResult<()>;
}

/// The row key of workspace `workspace_id`; [`StorageError::NotFound`] without one.
pub(crate) fn workspace_key(tx: &mut impl Reads, workspace_id: &str) -> StorageResult<i64> {
    let mut key = None;
    tx.each_row(
        "SELECT id FROM workspaces WHERE public_id = $1",
        &[Param::Text(workspace_id)],
        |row| {
            key = Some(row.column(0)?);
            Ok(())
        },
    )?;
    key.ok_or_else(|| StorageError::NotFound {
        what: format!("workspace {workspace_id}"),
    })
}

/// A stored key epoch (never negative nor above `u32::MAX` when written by this server).
pub(crate) fn epoch_of(value: i64) -> StorageResult<u32> {
    u32::try_from(value)
        .map_err(|_| StorageError::Backend(format!("stored key epoch {value} out of range").into()))
}

/// A stored id or key of `N` bytes.
pub(crate) fn fixed<const N: usize>(bytes: Vec<u8>) -> StorageResult<[u8; N]> {
    let len = bytes.len();
    <[u8; N]>::try_from(bytes).map_err(|_| {
        StorageError::Backend(format!("stored id has {len} bytes, expected {N}").into())
    })
}

/// The stored team log of workspace row `workspace` from index `from`, in order.
pub(crate) fn stored_log(
    tx: &mut impl Reads,
    workspace: i64,
    from: u64,
) -> StorageResult<Vec<SignedEntry>> {
    let mut log = Vec::new();
    tx.each_row(
        "SELECT entry, signature FROM team_log WHERE workspace = $1 AND idx >= $2 ORDER BY idx",
        &[Param::Int(workspace), Param::Int(to_i64(from))],
        |row| {
            log.push(SignedEntry {
                entry: row.column(0)?,
                signature: fixed(row.column(1)?)?,
            });
            Ok(())
        },
    )?;
    Ok(log)
}

/// The team of `caller`'s workspace (see [`super::Storage::team`]), read in the caller's read
/// transaction.
pub(crate) fn team(
    tx: &mut impl Reads,
    caller: &Device,
    log_from: u64,
) -> StorageResult<TeamResponse> {
    let mut found = None;
    tx.each_row(
        "SELECT id, team_version, epoch, rotation_needed, log_len FROM workspaces
         WHERE public_id = $1",
        &[Param::Text(&caller.workspace_id)],
        |row| {
            found = Some((
                row.column::<i64>(0)?,
                row.column::<i64>(1)?,
                epoch_of(row.column(2)?)?,
                row.column::<bool>(3)?,
                row.column::<i64>(4)?,
            ));
            Ok(())
        },
    )?;
    let (workspace, version, epoch, rotation_needed, log_len) =
        found.ok_or_else(|| StorageError::NotFound {
            what: format!("workspace {}", caller.workspace_id),
        })?;
    let mut epochs: HashMap<i64, Vec<u32>> = HashMap::new();
    tx.each_row(
        "SELECT e.device, e.epoch FROM key_envelopes e JOIN devices d ON d.id = e.device
         WHERE d.workspace = $1 ORDER BY e.device, e.epoch",
        &[Param::Int(workspace)],
        |row| {
            epochs
                .entry(row.column(0)?)
                .or_default()
                .push(epoch_of(row.column(1)?)?);
            Ok(())
        },
    )?;
    let mut devices = Vec::new();
    tx.each_row(
        "SELECT id, public_id, name, role, sign_key, box_key, join_proof, enrolled_at,
                revoked_at_seq, actor, last_sync_at
         FROM devices WHERE workspace = $1 ORDER BY enrolled_at, id",
        &[Param::Int(workspace)],
        |row| {
            let key: i64 = row.column(0)?;
            devices.push(TeamDevice {
                device_id: row.column(1)?,
                name: row.column(2)?,
                role: row.column(3)?,
                sign_key: stored_key(row.column(4)?)?,
                box_key: stored_key(row.column(5)?)?,
                join_proof: row.column(6)?,
                enrolled_at: row.column(7)?,
                revoked_at_seq: row.column::<Option<i64>>(8)?.map(to_u64),
                key_epochs: epochs.remove(&key).unwrap_or_default(),
                actor: row.column(9)?,
                last_sync_at: row.column(10)?,
            });
            Ok(())
        },
    )?;
    let mut envelopes = Vec::new();
    tx.each_row(
        "SELECT e.epoch, e.sealed_key, e.signer_key, e.signature
         FROM key_envelopes e JOIN devices d ON d.id = e.device
         WHERE d.public_id = $1 AND d.workspace = $2 ORDER BY e.epoch",
        &[Param::Text(&caller.id), Param::Int(workspace)],
        |row| {
            envelopes.push(KeyEnvelope {
                device_id: caller.id.clone(),
                epoch: epoch_of(row.column(0)?)?,
                sealed_key: row.column(1)?,
                signer_key: fixed(row.column(2)?)?,
                signature: fixed(row.column(3)?)?,
            });
            Ok(())
        },
    )?;
    Ok(TeamResponse {
        version: to_u64(version),
        epoch,
        rotation_needed,
        devices,
        envelopes,
        log: stored_log(tx, workspace, log_from)?,
        log_len: to_u64(log_len),
    })
}

/// The devices of workspace `workspace_id`, or of all workspaces (see
/// [`super::Storage::list_devices`]).
pub(crate) fn list_devices(
    tx: &mut impl Reads,
    workspace_id: Option<&str>,
) -> StorageResult<Vec<DeviceInfo>> {
    if let Some(id) = workspace_id {
        workspace_key(tx, id)?;
    }
    let mut devices = Vec::new();
    // The CASTs type the parameter and the sums the same way in both databases.
    tx.each_row(
        "SELECT d.public_id, d.name, w.public_id, d.enrolled_at, d.last_sync_at,
                d.revoked_at, d.role, d.revoked_at_seq,
                (SELECT count(*) FROM blobs b
                  WHERE b.device = d.id AND b.ciphertext IS NOT NULL),
                (SELECT CAST(coalesce(sum(b.size), 0) AS BIGINT) FROM blobs b
                  WHERE b.device = d.id AND b.ciphertext IS NOT NULL)
         FROM devices d JOIN workspaces w ON w.id = d.workspace
         WHERE CAST($1 AS TEXT) IS NULL OR w.public_id = $1
         ORDER BY w.public_id, d.enrolled_at, d.id",
        &[Param::MaybeText(workspace_id)],
        |row| {
            devices.push(DeviceInfo {
                id: row.column(0)?,
                name: row.column(1)?,
                workspace_id: row.column(2)?,
                enrolled_at: row.column(3)?,
                last_sync_at: row.column(4)?,
                revoked_at: row.column(5)?,
                role: row.column(6)?,
                revoked_at_seq: row.column::<Option<i64>>(7)?.map(to_u64),
                blobs_stored: to_u64(row.column(8)?),
                bytes_stored: to_u64(row.column(9)?),
            });
            Ok(())
        },
    )?;
    Ok(devices)
}

/// Usage per workspace (see [`super::Storage::usage`]).
pub(crate) fn usage(tx: &mut impl Reads) -> StorageResult<Vec<WorkspaceUsage>> {
    let mut usage = Vec::new();
    tx.each_row(
        "SELECT w.public_id, w.name, w.head_seq,
            (SELECT count(*) FROM devices d
              WHERE d.workspace = w.id AND d.revoked_at IS NULL),
            (SELECT count(*) FROM devices d
              WHERE d.workspace = w.id AND d.revoked_at IS NOT NULL),
            (SELECT count(*) FROM blobs b
              WHERE b.workspace = w.id AND b.ciphertext IS NOT NULL),
            (SELECT CAST(coalesce(sum(b.size), 0) AS BIGINT) FROM blobs b
              WHERE b.workspace = w.id AND b.ciphertext IS NOT NULL)
         FROM workspaces w ORDER BY w.created_at, w.id",
        &[],
        |row| {
            usage.push(WorkspaceUsage {
                id: row.column(0)?,
                name: row.column(1)?,
                head_seq: to_u64(row.column(2)?),
                active_devices: to_u64(row.column(3)?),
                revoked_devices: to_u64(row.column(4)?),
                blobs: to_u64(row.column(5)?),
                bytes: to_u64(row.column(6)?),
            });
            Ok(())
        },
    )?;
    Ok(usage)
}

/// The check-ins of `workspace_id` as listed at `now` with `grace_secs` (see
/// [`super::Storage::check_ins`]).
pub(crate) fn check_ins(
    tx: &mut impl Reads,
    workspace_id: &str,
    now: i64,
    grace_secs: u64,
) -> StorageResult<CheckInsResponse> {
    let mut found = None;
    tx.each_row(
        "SELECT id, check_ins_version FROM workspaces WHERE public_id = $1",
        &[Param::Text(workspace_id)],
        |row| {
            found = Some((row.column::<i64>(0)?, row.column::<i64>(1)?));
            Ok(())
        },
    )?;
    let (workspace, version) = found.ok_or_else(|| StorageError::NotFound {
        what: format!("workspace {workspace_id}"),
    })?;
    let mut check_ins = Vec::new();
    tx.each_row(
        "SELECT c.id, d.public_id, c.state, c.deadline, c.overdue_at, c.version, c.epoch,
                c.sealed
         FROM check_ins c JOIN devices d ON d.id = c.device
         WHERE c.workspace = $1
           AND (c.state IN ('open', 'overdue', 'alarm') OR c.updated_at >= $2)
         ORDER BY c.deadline, c.id",
        &[
            Param::Int(workspace),
            Param::Int(now.saturating_sub(CHECK_IN_KEPT_SECS)),
        ],
        |row| {
            let stored = CheckInRow {
                id: row.column(0)?,
                device_id: row.column(1)?,
                state: row.column(2)?,
                deadline: row.column(3)?,
                overdue_at: row.column(4)?,
                version: row.column(5)?,
                epoch: epoch_of(row.column(6)?)?,
                sealed: row.column(7)?,
            };
            check_ins.push(stored.listed(now, grace_secs)?);
            Ok(())
        },
    )?;
    Ok(CheckInsResponse {
        version: to_u64(version),
        now: to_u64(now),
        grace_secs,
        check_ins,
    })
}

/// The chain hash of the blob at `seq` in workspace row `workspace`, [`CHAIN_START`] for 0;
/// `None` beyond the head.
pub(crate) fn chain_at(
    tx: &mut impl Reads,
    workspace: i64,
    seq: u64,
) -> StorageResult<Option<ChainHash>> {
    if seq == 0 {
        return Ok(Some(CHAIN_START));
    }
    let mut chain = None;
    tx.each_row(
        "SELECT chain FROM blobs WHERE workspace = $1 AND seq = $2",
        &[Param::Int(workspace), Param::Int(to_i64(seq))],
        |row| {
            chain = row.column::<Option<Vec<u8>>>(0)?;
            Ok(())
        },
    )?;
    chain.map(fixed).transpose()
}

/// The head of `workspace_id` and the chain hashes at those of `seqs` not beyond it (see
/// [`super::Storage::chain`]).
pub(crate) fn chain(
    tx: &mut impl Reads,
    workspace_id: &str,
    seqs: &[u64],
) -> StorageResult<ChainResponse> {
    let mut found = None;
    tx.each_row(
        "SELECT id, head_seq FROM workspaces WHERE public_id = $1",
        &[Param::Text(workspace_id)],
        |row| {
            found = Some((row.column::<i64>(0)?, row.column::<i64>(1)?));
            Ok(())
        },
    )?;
    let (workspace, head) = found.ok_or_else(|| StorageError::NotFound {
        what: format!("workspace {workspace_id}"),
    })?;
    let mut marks = Vec::with_capacity(seqs.len());
    for &seq in seqs.iter().filter(|&&s| s <= to_u64(head)) {
        if let Some(chain) = chain_at(tx, workspace, seq)? {
            marks.push(ChainMark { seq, chain });
        }
    }
    Ok(ChainResponse {
        head: to_u64(head),
        marks,
    })
}

/// The tip page of `workspace_id` as its coordinator's device published it, if any.
pub(crate) fn tip_page(
    tx: &mut impl Reads,
    workspace_id: &str,
) -> StorageResult<Option<TipPageRequest>> {
    let workspace = workspace_key(tx, workspace_id)?;
    let mut page = None;
    tx.each_row(
        "SELECT p.statement, d.public_id, p.signature
         FROM tip_pages p JOIN devices d ON d.id = p.device
         WHERE p.workspace = $1",
        &[Param::Int(workspace)],
        |row| {
            page = Some(TipPageRequest {
                statement: row.column(0)?,
                device_id: row.column(1)?,
                signature: row.column(2)?,
            });
            Ok(())
        },
    )?;
    Ok(page)
}

/// The signed statement of the tip page at path `page`, if one is published there.
pub(crate) fn tip_page_statement(
    tx: &mut impl Reads,
    page: &str,
) -> StorageResult<Option<Vec<u8>>> {
    let mut statement = None;
    tx.each_row(
        "SELECT statement FROM tip_pages WHERE page = $1",
        &[Param::Text(page)],
        |row| {
            statement = Some(row.column(0)?);
            Ok(())
        },
    )?;
    Ok(statement)
}

/// The first `max` tips waiting in `workspace_id`, oldest first.
pub(crate) fn tips(
    tx: &mut impl Reads,
    workspace_id: &str,
    max: usize,
) -> StorageResult<Vec<TipEntry>> {
    let workspace = workspace_key(tx, workspace_id)?;
    let limit = i64::try_from(max).unwrap_or(i64::MAX);
    let mut tips = Vec::new();
    tx.each_row(
        "SELECT id, received_hour, epoch, ephemeral, nonce, sealed FROM tips
         WHERE workspace = $1 ORDER BY id LIMIT $2",
        &[Param::Int(workspace), Param::Int(limit)],
        |row| {
            tips.push(tip_entry(
                row.column(0)?,
                row.column(1)?,
                epoch_of(row.column(2)?)?,
                &row.column::<Vec<u8>>(3)?,
                &row.column::<Vec<u8>>(4)?,
                &row.column::<Vec<u8>>(5)?,
            ));
            Ok(())
        },
    )?;
    Ok(tips)
}

/// The replies to the tipster whose receipt gives `lookup`, on the tip page at path `page`, in
/// order of arrival; `None` when no page is published there.
pub(crate) fn tip_replies(
    tx: &mut impl Reads,
    page: &str,
    lookup: &[u8],
) -> StorageResult<Option<Vec<TipReply>>> {
    let mut workspace = None;
    tx.each_row(
        "SELECT workspace FROM tip_pages WHERE page = $1",
        &[Param::Text(page)],
        |row| {
            workspace = Some(row.column::<i64>(0)?);
            Ok(())
        },
    )?;
    let Some(workspace) = workspace else {
        return Ok(None);
    };
    let mut replies = Vec::new();
    tx.each_row(
        "SELECT ephemeral, nonce, sealed FROM tip_replies
         WHERE workspace = $1 AND lookup = $2 ORDER BY id",
        &[Param::Int(workspace), Param::Bytes(lookup)],
        |row| {
            replies.push(TipReply {
                ephemeral: fixed(row.column(0)?)?,
                nonce: fixed(row.column(1)?)?,
                sealed: row.column(2)?,
            });
            Ok(())
        },
    )?;
    Ok(Some(replies))
}

/// A stored tip as listed: its number, the hour it arrived, and what the browser posted,
/// base64 again.
fn tip_entry(
    id: i64,
    received_hour: i64,
    epoch: u32,
    ephemeral: &[u8],
    nonce: &[u8],
    sealed: &[u8],
) -> TipEntry {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    TipEntry {
        id: to_u64(id),
        received_hour: to_u64(received_hour),
        submission: waymark_protocol::TipSubmission {
            epoch,
            ephemeral: b64.encode(ephemeral),
            nonce: b64.encode(nonce),
            sealed: b64.encode(sealed),
        },
    }
}
