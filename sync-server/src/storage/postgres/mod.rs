//! The PostgreSQL backend: for organisations that run several server processes (behind a load
//! balancer) over one database.
//!
//! Concurrency (the reasoning, next to the code):
//! - every write is one transaction at READ COMMITTED; a push first locks its workspace's row
//!   (`SELECT ... FOR NO KEY UPDATE`) and assigns sequence numbers from `workspaces.head_seq`
//!   inside that transaction. The row lock is held until commit, so pushes to one workspace are
//!   serialised **across all server processes**: a push can only take the lock after the previous
//!   push committed (or rolled back, which releases its numbers unused), hence numbers are
//!   gap-free and commit order equals sequence order. A reader therefore never sees seq N
//!   without every smaller one — the invariant a pull cursor relies on. We chose this over a
//!   PostgreSQL `SEQUENCE` (which leaves gaps on rollback and commits out of order) and over
//!   SERIALIZABLE (retries under contention): pushes to *different* workspaces never wait for
//!   each other, and within one workspace the work per push is small. `NO KEY UPDATE` rather than
//!   `UPDATE` so foreign-key checks (enrolling a device into the workspace) do not wait for it;
//! - a push also locks its device's row, and a revocation updates that row: so a revocation and
//!   a push by that device are ordered, and a push never commits after the revocation it raced;
//! - team changes (enrollment, revocation, key upload) take the same workspace row lock first
//!   (the one lock order everywhere: workspace, then devices and tokens, so they cannot
//!   deadlock with pushes or each other): two coordinators rotating at once from different
//!   processes are serialised and the second sees the first's epoch; an enrollment is entirely
//!   before or after a rotation; a revocation reads the head no push is about to move, which
//!   makes its `revoked_at_seq` exact;
//! - reads (pull, usage, ...) run in one REPEATABLE READ, READ ONLY transaction, so the blobs
//!   and the head a pull reports come from the same snapshot;
//! - the few retryable failures PostgreSQL may still report (deadlock, serialization) are retried
//!   a few times; connections come from a small bounded pool ([`pool`]).
//!
//! Migrations are numbered SQL scripts under `migrations/postgres/`, applied on open in one
//! transaction that holds an advisory lock (so several processes starting at once migrate only
//! once), and recorded in `waymark_schema`; a database from a newer server is refused untouched.
//!
//! The client is `postgres` (the blocking rust-postgres client), which fits the blocking
//! [`Storage`] trait. It runs its own small runtime per connection, so a call must not be made
//! on an async executor thread; the server never does (it uses `spawn_blocking`), and
//! [`PostgresStorage`] moves off such a thread by itself when a caller does ([`pool`]).

use std::time::Duration;

use postgres::error::SqlState;
use postgres::{Client, Config, IsolationLevel, Transaction};
use waymark_protocol::{
    AppendRequest, ChainResponse, CheckInRequest, CheckInResponse, CheckInsResponse, KeysRequest,
    PullResponse, PulledBlob, PushBlob, TeamResponse, TipEntry, TipPageRequest, TipReplyRequest,
    chain_next, limits,
};

use super::reads::{self, Param, Reads, chain_at, epoch_of, fixed, workspace_key};
use super::team_log::{EnrolledDevice, plan_append};
use super::{
    ALERT_CLAIM_SECS, AlertKind, CHAIN_SCHEMA, CHECK_IN_KEPT_SECS, ChainFill, CheckInAlert,
    CheckInPlan, CompactReport, Device, DeviceInfo, Enrolled, KEY_TAKEN, KeyRecipient,
    MAX_ALERT_ATTEMPTS, NewDevice, NewTip, PushOutcome, Storage, StorageError, StorageResult,
    StoredCheckIn, TipReceipt, TipReply, TokenHash, Workspace, WorkspaceUsage, check_check_in,
    check_keys, check_may_handle_tips, check_may_revoke, check_may_upload_keys, check_new_blob,
    check_same_blob, keys_kept_in_log, live_or_revoked, minutes_overdue, plan_check_in,
    snapshot_upto, stored_key, to_i64, to_u64,
};
use crate::tips::{check_tip_page, received_hour};
use crate::tokens;

mod pool;
mod tls;

pub use pool::DEFAULT_MAX_CONNECTIONS;
use pool::{Pool, off_executor};

/// Schema migrations; `MIGRATIONS[i]` upgrades version i to i + 1. Public so that the
/// upgrade tests build each earlier release's database from the very scripts run here.
pub const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/postgres/001_initial.sql"),
    include_str!("../migrations/postgres/002_team.sql"),
    include_str!("../migrations/postgres/003_team_log.sql"),
    include_str!("../migrations/postgres/004_chain.sql"),
    include_str!("../migrations/postgres/005_snapshots.sql"),
    include_str!("../migrations/postgres/006_check_ins.sql"),
    include_str!("../migrations/postgres/007_tips.sql"),
];

/// The newest schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Key of the transaction-scoped advisory lock taken while migrating ("waymark" in ASCII).
const MIGRATION_LOCK: i64 = 0x0077_6179_6d61_726b;

/// How often a write is retried after a deadlock or serialization failure.
const RETRIES: u32 = 5;

/// A PostgreSQL error shown with its causes: the client's own text is only "db error" or
/// "error performing TLS handshake", which tells an operator nothing. (PostgreSQL never echoes a
/// password, so the causes are safe to show.)
#[derive(Debug)]
struct PgError(postgres::Error);

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = std::error::Error::source(&self.0);
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

impl std::error::Error for PgError {}

impl Reads for Transaction<'_> {
    type Row<'r> = postgres::Row;

    fn each_row(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        mut each: impl FnMut(&Self::Row<'_>) -> StorageResult<()>,
    ) -> StorageResult<()> {
        use postgres::types::ToSql;
        let params: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|param| -> &(dyn ToSql + Sync) {
                match param {
                    Param::Int(value) => value,
                    Param::Text(value) => value,
                    Param::MaybeText(value) => value,
                    Param::Bytes(value) => value,
                }
            })
            .collect();
        for row in self.query(sql, &params)? {
            each(&row)?;
        }
        Ok(())
    }
}

impl reads::Row for postgres::Row {
    fn column<T: reads::Column>(&self, index: usize) -> StorageResult<T> {
        Ok(self.try_get(index)?)
    }
}

impl From<postgres::Error> for StorageError {
    fn from(err: postgres::Error) -> Self {
        StorageError::Backend(Box::new(PgError(err)))
    }
}

/// Whether a URL names a PostgreSQL database (`postgres://` or `postgresql://`).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Storage in a PostgreSQL database (optionally in one schema of it).
pub struct PostgresStorage {
    description: String,
    pool: Pool,
}

impl std::fmt::Debug for PostgresStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStorage")
            .field("database", &self.description)
            .finish()
    }
}

fn backend(message: String) -> StorageError {
    StorageError::Backend(message.into())
}

fn is_retryable(err: &StorageError) -> bool {
    let StorageError::Backend(err) = err else {
        return false;
    };
    err.downcast_ref::<PgError>()
        .and_then(|e| e.0.code())
        .is_some_and(|code| {
            *code == SqlState::T_R_DEADLOCK_DETECTED || *code == SqlState::T_R_SERIALIZATION_FAILURE
        })
}

fn check_schema_name(schema: &str) -> StorageResult<()> {
    let ok = !schema.is_empty()
        && schema.len() <= 63
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !schema.as_bytes()[0].is_ascii_digit();
    if ok {
        Ok(())
    } else {
        Err(backend(format!(
            "invalid schema name {schema:?}: use lowercase letters, digits and _"
        )))
    }
}

impl PostgresStorage {
    /// Connects to the database at `url` (`postgres://user:password@host:port/dbname?...`) and
    /// migrates it. Tables go where the connection's `search_path` puts them (by default the
    /// `public` schema; `?options=-c%20search_path%3Dname` picks another). `sslmode` and
    /// `sslrootcert` choose TLS as the `tls` module describes.
    pub fn open(url: &str) -> StorageResult<Self> {
        Self::open_with_pool(url, DEFAULT_MAX_CONNECTIONS)
    }

    /// Like [`open`](Self::open), with at most `pool_size` connections.
    pub fn open_with_pool(url: &str, pool_size: usize) -> StorageResult<Self> {
        let (config, tls) = tls::parse(url)?;
        Self::open_config(config, tls, pool_size)
    }

    /// Like [`open`](Self::open), but keeps everything in `schema` (created if missing): several
    /// independent stores can share one database (the tests use one schema each).
    pub fn open_in_schema(url: &str, schema: &str) -> StorageResult<Self> {
        check_schema_name(schema)?;
        let (mut config, tls) = tls::parse(url)?;
        off_executor(|| -> StorageResult<()> {
            let mut client = tls.connect(&config)?;
            // `IF NOT EXISTS` alone races with another process creating it at the same moment.
            let mut tx = client.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
            tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))?;
            tx.commit()?;
            Ok(())
        })?;
        let options = match config.get_options() {
            Some(existing) => format!("{existing} -c search_path={schema}"),
            None => format!("-c search_path={schema}"),
        };
        config.options(&options);
        Self::open_config(config, tls, DEFAULT_MAX_CONNECTIONS)
    }

    fn open_config(config: Config, tls: tls::Tls, max_connections: usize) -> StorageResult<Self> {
        let pool = Pool::new(config, tls, max_connections);
        let storage = Self {
            description: pool.describe(),
            pool,
        };
        storage.pool.with_client(migrate)?;
        Ok(storage)
    }

    /// Where the data lives, without credentials (e.g. `postgres://app@db:5432/waymark`).
    pub fn description(&self) -> &str {
        &self.description
    }

    fn write<T: Send>(
        &self,
        mut f: impl FnMut(&mut Transaction<'_>) -> StorageResult<T> + Send,
    ) -> StorageResult<T> {
        self.pool.with_client(|client| {
            let mut attempt = 0;
            loop {
                let result = (|| {
                    let mut tx = client.transaction()?;
                    let value = f(&mut tx)?;
                    tx.commit()?;
                    Ok(value)
                })();
                match result {
                    Err(err) if attempt < RETRIES && is_retryable(&err) => {
                        attempt += 1;
                        std::thread::sleep(Duration::from_millis(5 << attempt));
                    }
                    other => return other,
                }
            }
        })
    }

    fn read<T: Send>(
        &self,
        f: impl FnOnce(&mut Transaction<'_>) -> StorageResult<T> + Send,
    ) -> StorageResult<T> {
        self.pool.with_client(|client| {
            let mut tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let value = f(&mut tx)?;
            tx.commit()?;
            Ok(value)
        })
    }
}

fn migrate(client: &mut Client) -> StorageResult<()> {
    migrate_with(client, MIGRATIONS)
}

/// The migration runner over `scripts` (`scripts[i]` upgrades version i to i + 1): all of them
/// past the database's version, in one transaction.
fn migrate_with(client: &mut Client, scripts: &[&str]) -> StorageResult<()> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS waymark_schema (
             version     BIGINT PRIMARY KEY,
             applied_at  BIGINT NOT NULL
         )",
    )?;
    let found: i64 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM waymark_schema", &[])?
        .try_get(0)?;
    if found > SCHEMA_VERSION {
        // Dropping `tx` rolls back: nothing is written.
        return Err(StorageError::NewerSchema {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    let now = tokens::now();
    for (version, script) in (1..).zip(scripts).skip(usize::try_from(found).unwrap_or(0)) {
        tx.batch_execute(script)?;
        // Right after the column is added, so every later script sees the hashes filled in.
        if version == CHAIN_SCHEMA {
            backfill_chain_postgres(&mut tx)?;
        }
        tx.execute(
            "INSERT INTO waymark_schema (version, applied_at) VALUES ($1, $2)",
            &[&version, &now],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Fills in the chain hash of blobs stored before schema 4, workspace by workspace in sequence
/// order (see [`ChainFill`]).
fn backfill_chain_postgres(tx: &mut Transaction<'_>) -> StorageResult<()> {
    let rows = tx.query(
        "SELECT workspace, seq, content_id FROM blobs ORDER BY workspace, seq",
        &[],
    )?;
    let update = tx.prepare("UPDATE blobs SET chain = $3 WHERE workspace = $1 AND seq = $2")?;
    let mut fill = ChainFill::default();
    for row in rows {
        let (workspace, seq): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        let chain = fill.next(workspace, to_u64(seq), &fixed(row.try_get(2)?)?);
        tx.execute(&update, &[&workspace, &seq, &&chain[..]])?;
    }
    Ok(())
}

/// A device of `workspace` that is not revoked (its row id, role and signing key);
/// [`StorageError::DeviceRevoked`] if it is (or is unknown): re-checked inside a write, a
/// revocation committed after authentication still stops the write.
fn live_device(
    tx: &mut Transaction<'_>,
    device_id: &str,
    workspace: i64,
) -> StorageResult<(i64, String, Option<Vec<u8>>)> {
    tx.query_opt(
        "SELECT id, role, sign_key FROM devices
         WHERE public_id = $1 AND workspace = $2 AND revoked_at IS NULL",
        &[&device_id, &workspace],
    )?
    .map(|row| -> StorageResult<_> { Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)) })
    .transpose()?
    .ok_or(StorageError::DeviceRevoked)
}

/// Locks a workspace's row until the transaction ends (see the module documentation) and
/// returns its head sequence number.
fn lock_workspace(tx: &mut Transaction<'_>, workspace: i64) -> StorageResult<i64> {
    Ok(tx
        .query_one(
            "SELECT head_seq FROM workspaces WHERE id = $1 FOR NO KEY UPDATE",
            &[&workspace],
        )?
        .try_get(0)?)
}

/// Revokes device `device_id` of `workspace` inside the caller's write, with the workspace row
/// locked and `head` its head (see [`Storage::revoke_device`]): its unused invites expire, its
/// token stops working, and its `revoked_at_seq` is `head`. Returns that number (the first one,
/// if it was revoked already); `None` if no such device exists.
fn revoke_in(
    tx: &mut Transaction<'_>,
    device_id: &str,
    workspace: i64,
    head: i64,
    now: i64,
) -> StorageResult<Option<u64>> {
    let Some((device, revoked_at_seq)): Option<(i64, Option<i64>)> = tx
        .query_opt(
            "SELECT id, revoked_at_seq FROM devices WHERE public_id = $1 AND workspace = $2
             FOR NO KEY UPDATE",
            &[&device_id, &workspace],
        )?
        .map(|row| -> StorageResult<_> { Ok((row.try_get(0)?, row.try_get(1)?)) })
        .transpose()?
    else {
        return Ok(None);
    };
    // Invites a lost phone made must not outlive it.
    tx.execute(
        "UPDATE enrollment_tokens SET expires_at = LEAST(expires_at, $1)
         WHERE issued_by = $2 AND used_at IS NULL",
        &[&now, &device],
    )?;
    if let Some(seq) = revoked_at_seq {
        return Ok(Some(to_u64(seq)));
    }
    tx.execute(
        "UPDATE devices SET revoked_at = $1, revoked_at_seq = $2 WHERE id = $3",
        &[&now, &head, &device],
    )?;
    tx.execute(
        "UPDATE workspaces SET rotation_needed = TRUE, team_version = team_version + 1
         WHERE id = $1",
        &[&workspace],
    )?;
    Ok(Some(to_u64(head)))
}

/// The check-in `id` of `workspace` as stored, if any, locked until the transaction ends.
fn stored_check_in(
    tx: &mut Transaction<'_>,
    workspace: i64,
    id: &[u8],
) -> StorageResult<Option<StoredCheckIn>> {
    tx.query_opt(
        "SELECT device, state, deadline, version, overdue_at, alert_kind, alerted_at
             FROM check_ins WHERE workspace = $1 AND id = $2
             FOR UPDATE",
        &[&workspace, &id],
    )?
    .map(|row| -> StorageResult<_> {
        Ok(StoredCheckIn {
            device: row.try_get(0)?,
            state: row.try_get(1)?,
            deadline: row.try_get(2)?,
            version: to_u64(row.try_get(3)?),
            overdue_at: row.try_get(4)?,
            alert_kind: row.try_get(5)?,
            alerted_at: row.try_get(6)?,
        })
    })
    .transpose()
}

/// How many check-ins device row `device` has open (overdue ones included).
fn open_check_ins(tx: &mut Transaction<'_>, device: i64) -> StorageResult<usize> {
    let open: i64 = tx
        .query_one(
            "SELECT count(*) FROM check_ins WHERE device = $1 AND state IN ('open', 'overdue')",
            &[&device],
        )?
        .try_get(0)?;
    Ok(usize::try_from(open).unwrap_or(usize::MAX))
}

/// Bumps the check-ins version of each workspace row in `workspaces` once.
fn bump_check_ins(tx: &mut Transaction<'_>, mut workspaces: Vec<i64>) -> StorageResult<()> {
    workspaces.sort_unstable();
    workspaces.dedup();
    if !workspaces.is_empty() {
        tx.execute(
            "UPDATE workspaces SET check_ins_version = check_ins_version + 1
             WHERE id = ANY($1)",
            &[&workspaces],
        )?;
    }
    Ok(())
}

/// Locks, in id order, the rows of the workspaces with a check-in matching `condition` (an SQL
/// condition on `check_ins` with `$1` its one parameter) and returns their ids. Every write to
/// check-ins takes its workspace's row first, as a check-in update does, so the watchers of
/// several processes and the updates never wait for each other in a cycle.
fn lock_check_in_workspaces(
    tx: &mut Transaction<'_>,
    condition: &str,
    parameter: i64,
) -> StorageResult<Vec<i64>> {
    Ok(tx
        .query(
            &format!(
                "SELECT id FROM workspaces
                 WHERE id IN (SELECT workspace FROM check_ins WHERE {condition})
                 ORDER BY id FOR NO KEY UPDATE"
            ),
            &[&parameter],
        )?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?)
}

impl Storage for PostgresStorage {
    fn create_workspace(&self, name: Option<&str>, now: i64) -> StorageResult<Workspace> {
        let id = tokens::new_id();
        self.write(|tx| {
            tx.execute(
                "INSERT INTO workspaces (public_id, name, created_at) VALUES ($1, $2, $3)",
                &[&id, &name, &now],
            )?;
            Ok(())
        })?;
        Ok(Workspace {
            id,
            name: name.map(str::to_owned),
            created_at: now,
        })
    }

    fn issue_enrollment_token(
        &self,
        workspace_id: &str,
        token_hash: &TokenHash,
        expires_at: i64,
        issued_by: Option<&str>,
        role: &str,
        now: i64,
    ) -> StorageResult<()> {
        self.write(|tx| {
            let workspace = workspace_key(tx, workspace_id)?;
            let issuer: Option<i64> = match issued_by {
                None => None,
                // FOR SHARE: a concurrent revocation of the issuer either waits for this token
                // (and then expires it) or commits first (and then this finds no device).
                Some(device) => Some(
                    tx.query_opt(
                        "SELECT id FROM devices
                         WHERE public_id = $1 AND workspace = $2 AND revoked_at IS NULL
                         FOR SHARE",
                        &[&device, &workspace],
                    )?
                    .map(|row| row.try_get(0))
                    .transpose()?
                    .ok_or(StorageError::DeviceRevoked)?,
                ),
            };
            tx.execute(
                "INSERT INTO enrollment_tokens (token_hash, workspace, created_at, expires_at, issued_by,
                                                role)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[&&token_hash[..], &workspace, &now, &expires_at, &issuer, &role],
            )?;
            Ok(())
        })
    }

    fn enroll(
        &self,
        enrollment_token: &TokenHash,
        device: &NewDevice,
        now: i64,
    ) -> StorageResult<Enrolled> {
        self.write(|tx| {
            // The workspace row first (the lock order of every team change: workspace, then
            // devices and tokens), so a rotation and an enrollment are ordered: a rotation either
            // sees the new device or commits before it exists.
            let workspace: Option<i64> = tx
                .query_opt(
                    "SELECT workspace FROM enrollment_tokens WHERE token_hash = $1",
                    &[&&enrollment_token[..]],
                )?
                .map(|row| row.try_get(0))
                .transpose()?;
            let Some(workspace) = workspace else {
                return Err(StorageError::TokenUnknown);
            };
            lock_workspace(tx, workspace)?;
            // FOR UPDATE: two devices redeeming one token at once are serialised, and the second
            // sees it used.
            let row = tx.query_opt(
                "SELECT t.expires_at, t.used_at, w.public_id, t.role
                 FROM enrollment_tokens t JOIN workspaces w ON w.id = t.workspace
                 WHERE t.token_hash = $1
                 FOR UPDATE OF t",
                &[&&enrollment_token[..]],
            )?;
            let Some(row) = row else {
                return Err(StorageError::TokenUnknown);
            };
            let expires_at: i64 = row.try_get(0)?;
            let used_at: Option<i64> = row.try_get(1)?;
            let workspace_id: String = row.try_get(2)?;
            let role: String = row.try_get(3)?;
            if used_at.is_some() {
                return Err(StorageError::TokenUsed);
            }
            if expires_at <= now {
                return Err(StorageError::TokenExpired);
            }
            let taken: bool = tx
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM devices
                                    WHERE workspace = $1 AND (sign_key = $2 OR box_key = $3))",
                    &[&workspace, &&device.sign_key[..], &&device.box_key[..]],
                )?
                .try_get(0)?;
            if taken {
                return Err(StorageError::Conflict(KEY_TAKEN.into()));
            }
            let device_key: i64 = tx
                .query_one(
                    "INSERT INTO devices (public_id, workspace, name, token_hash, enrolled_at, role,
                                          sign_key, box_key, join_proof, actor)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
                    &[
                        &device.id,
                        &workspace,
                        &device.name,
                        &&device.token_hash[..],
                        &now,
                        &role,
                        &&device.sign_key[..],
                        &&device.box_key[..],
                        &device.join_proof,
                        &device.actor,
                    ],
                )?
                .try_get(0)?;
            tx.execute(
                "UPDATE enrollment_tokens SET used_at = $1, used_by = $2 WHERE token_hash = $3",
                &[&now, &device_key, &&enrollment_token[..]],
            )?;
            tx.execute(
                "UPDATE workspaces SET team_version = team_version + 1 WHERE id = $1",
                &[&workspace],
            )?;
            Ok(Enrolled { workspace_id, role })
        })
    }

    fn authenticate(&self, device_token: &TokenHash) -> StorageResult<Option<Device>> {
        self.pool.with_client(|client| {
            // One statement is one snapshot: no transaction needed.
            client
                .query_opt(
                    "SELECT d.public_id, w.public_id, d.role, d.revoked_at IS NOT NULL
                     FROM devices d JOIN workspaces w ON w.id = d.workspace
                     WHERE d.token_hash = $1",
                    &[&&device_token[..]],
                )?
                .map(|row| {
                    let device = Device {
                        id: row.try_get(0)?,
                        workspace_id: row.try_get(1)?,
                        role: row.try_get(2)?,
                    };
                    live_or_revoked((device, row.try_get(3)?))
                })
                .transpose()
        })
    }

    fn push(&self, device: &Device, blobs: &[PushBlob], now: i64) -> StorageResult<PushOutcome> {
        self.write(|tx| {
            // The per-workspace lock that makes sequence numbers gap-free and commit in order
            // (see the module documentation). Held until commit.
            let (workspace, mut head, epoch, log_len): (i64, i64, i64, i64) = tx
                .query_opt(
                    "SELECT id, head_seq, epoch, log_len FROM workspaces WHERE public_id = $1
                     FOR NO KEY UPDATE",
                    &[&device.workspace_id],
                )?
                .map(|row| -> StorageResult<_> {
                    Ok((
                        row.try_get(0)?,
                        row.try_get(1)?,
                        row.try_get(2)?,
                        row.try_get(3)?,
                    ))
                })
                .transpose()?
                .ok_or_else(|| StorageError::NotFound {
                    what: format!("workspace {}", device.workspace_id),
                })?;
            let epoch = epoch_of(epoch)?;
            // Re-checked (and locked) inside the transaction: a revocation committed after
            // authentication still stops this write, and one running now waits for it; the
            // role is the one stored now.
            let (device_key, role): (i64, String) = tx
                .query_opt(
                    "SELECT id, role FROM devices
                     WHERE public_id = $1 AND workspace = $2 AND revoked_at IS NULL
                     FOR NO KEY UPDATE",
                    &[&device.id, &workspace],
                )?
                .map(|row| -> StorageResult<_> {
                    Ok((
                        row.try_get(0)?,
                        row.try_get(1)?,
                    ))
                })
                .transpose()?
                .ok_or(StorageError::DeviceRevoked)?;

            let find = tx.prepare(
                "SELECT seq, doc_id, epoch FROM blobs WHERE workspace = $1 AND content_id = $2",
            )?;
            let insert = tx.prepare(
                "INSERT INTO blobs (workspace, seq, content_id, doc_id, epoch, device, size,
                                    ciphertext, created_at, chain, snapshot_upto,
                                    snapshot_from)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )?;
            let mut chain = chain_at(tx, workspace, to_u64(head))?
                .ok_or_else(|| backend(format!("the blob at the head {head} has no chain hash")))?;
            let supersede = tx.prepare(
                "UPDATE blobs SET superseded_by = $1, superseded_at = $2
                 WHERE workspace = $3 AND doc_id = $4 AND seq <= $5 AND seq < $1
                   AND superseded_by IS NULL",
            )?;
            // An erase or a redaction: what the record said before goes now, not after the
            // grace.
            let forget = tx.prepare(
                "UPDATE blobs SET ciphertext = NULL, superseded_by = coalesce(superseded_by, $1),
                        superseded_at = coalesce(superseded_at, $2)
                 WHERE workspace = $3 AND doc_id = $4 AND seq <= $5 AND seq < $1",
            )?;
            let first_pusher = tx.prepare(
                "SELECT device FROM blobs WHERE workspace = $1 AND doc_id = $2
                 ORDER BY seq LIMIT 1",
            )?;

            let mut outcome = PushOutcome {
                assigned: Vec::with_capacity(blobs.len()),
                newly_stored: 0,
                bytes_stored: 0,
            };
            for (index, blob) in blobs.iter().enumerate() {
                let existing = tx.query_opt(&find, &[&workspace, &&blob.content_id[..]])?;
                if let Some(row) = existing {
                    let seq: i64 = row.try_get(0)?;
                    let doc_id: Vec<u8> = row.try_get(1)?;
                    let stored_epoch: i64 = row.try_get(2)?;
                    check_same_blob(index, blob, &doc_id, stored_epoch)?;
                    outcome.assigned.push(to_u64(seq));
                    continue;
                }
                let author = blob.supersedes.is_some()
                    && tx
                        .query_opt(&first_pusher, &[&workspace, &&blob.doc_id[..]])?
                        .map(|row| row.try_get::<_, i64>(0))
                        .transpose()?
                        .is_some_and(|first| first == device_key);
                check_new_blob(index, blob, epoch, log_len > 0, &role, author)?;
                head += 1;
                chain = chain_next(&chain, to_u64(head), &blob.content_id);
                // The first snapshot blob of the compaction it belongs to (one per bound).
                let snapshot_from: Option<i64> = match snapshot_upto(blob) {
                    Some(upto) => Some(
                        tx.query_one(
                            "SELECT min(seq) FROM blobs WHERE workspace = $1 AND snapshot_upto = $2",
                            &[&workspace, &upto],
                        )?
                        .try_get::<_, Option<i64>>(0)?
                        .unwrap_or(head),
                    ),
                    None => None,
                };
                let size = i64::try_from(blob.ciphertext.len()).unwrap_or(i64::MAX);
                tx.execute(
                    &insert,
                    &[
                        &workspace,
                        &head,
                        &&blob.content_id[..],
                        &&blob.doc_id[..],
                        &i64::from(blob.epoch),
                        &device_key,
                        &size,
                        &blob.ciphertext,
                        &now,
                        &&chain[..],
                        &snapshot_upto(blob),
                        &snapshot_from,
                    ],
                )?;
                for doc in blob.covers.chunks_exact(16) {
                    tx.execute(
                        &supersede,
                        &[&head, &now, &workspace, &doc, &snapshot_upto(blob)],
                    )?;
                }
                if let Some(covered) = blob.supersedes.filter(|_| blob.covers.is_empty()) {
                    tx.execute(
                        if blob.forget { &forget } else { &supersede },
                        &[&head, &now, &workspace, &&blob.doc_id[..], &to_i64(covered)],
                    )?;
                }
                outcome.assigned.push(to_u64(head));
                outcome.newly_stored += 1;
                outcome.bytes_stored += to_u64(size);
            }
            tx.execute(
                "UPDATE workspaces SET head_seq = $1 WHERE id = $2",
                &[&head, &workspace],
            )?;
            tx.execute(
                "UPDATE devices SET last_sync_at = $1 WHERE id = $2",
                &[&now, &device_key],
            )?;
            Ok(outcome)
        })
    }

    fn pull(
        &self,
        workspace_id: &str,
        after: u64,
        max_bytes: u64,
        max_blobs: usize,
    ) -> StorageResult<PullResponse> {
        self.read(|tx| {
            let (workspace, head, team_version, check_ins, tips): (i64, i64, i64, i64, i64) = tx
                .query_opt(
                    "SELECT id, head_seq, team_version, check_ins_version, tips_waiting
                     FROM workspaces WHERE public_id = $1",
                    &[&workspace_id],
                )?
                .map(|row| -> StorageResult<_> {
                    Ok((
                        row.try_get(0)?,
                        row.try_get(1)?,
                        row.try_get(2)?,
                        row.try_get(3)?,
                        row.try_get(4)?,
                    ))
                })
                .transpose()?
                .ok_or_else(|| StorageError::NotFound {
                    what: format!("workspace {workspace_id}"),
                })?;
            // First the sizes, to fit the page to its budget without loading ciphertext that
            // will not be sent; then the chosen blobs, from the same snapshot.
            let limit = i64::try_from(max_blobs.saturating_add(1)).unwrap_or(i64::MAX);
            let sizes = tx.query(
                "SELECT seq, size FROM blobs
                 WHERE workspace = $1 AND seq > $2 AND ciphertext IS NOT NULL
                   AND superseded_by IS NULL
                   AND NOT coalesce(snapshot_upto <= $2 AND $2 < snapshot_from, false)
                 ORDER BY seq LIMIT $3",
                &[&workspace, &to_i64(after), &limit],
            )?;
            let mut last: Option<i64> = None;
            let mut count = 0usize;
            let mut used: u64 = 0;
            let mut more = false;
            for row in &sizes {
                let size = to_u64(row.try_get(1)?);
                let over_budget = count > 0 && used.saturating_add(size) > max_bytes;
                if count >= max_blobs || over_budget {
                    more = true;
                    break;
                }
                last = Some(row.try_get(0)?);
                count += 1;
                used = used.saturating_add(size);
            }
            let mut blobs = Vec::with_capacity(count);
            let mut chain_last = None;
            if let Some(last) = last {
                let rows = tx.query(
                    "SELECT b.seq, b.content_id, b.doc_id, b.epoch, b.ciphertext, d.public_id,
                            b.chain
                     FROM blobs b JOIN devices d ON d.id = b.device
                     WHERE b.workspace = $1 AND b.seq > $2 AND b.seq <= $3
                       AND b.ciphertext IS NOT NULL AND b.superseded_by IS NULL
                       AND NOT coalesce(b.snapshot_upto <= $2 AND $2 < b.snapshot_from, false)
                     ORDER BY b.seq",
                    &[&workspace, &to_i64(after), &last],
                )?;
                for row in rows {
                    blobs.push(PulledBlob {
                        seq: to_u64(row.try_get(0)?),
                        content_id: fixed(row.try_get(1)?)?,
                        doc_id: fixed(row.try_get(2)?)?,
                        epoch: epoch_of(row.try_get(3)?)?,
                        ciphertext: row.try_get(4)?,
                        device_id: row.try_get(5)?,
                    });
                    chain_last = row
                        .try_get::<_, Option<Vec<u8>>>(6)?
                        .map(fixed)
                        .transpose()?;
                }
            }
            let chain_after = match after <= to_u64(head) {
                true => chain_at(tx, workspace, after)?,
                false => None,
            };
            let chain_head = chain_at(tx, workspace, to_u64(head))?;
            Ok(PullResponse {
                blobs,
                more,
                head: to_u64(head),
                team_version: to_u64(team_version),
                chain_after,
                chain_last,
                chain_head,
                check_ins: to_u64(check_ins),
                tips: to_u64(tips),
            })
        })
    }

    fn chain(&self, workspace_id: &str, seqs: &[u64]) -> StorageResult<ChainResponse> {
        self.read(|tx| reads::chain(tx, workspace_id, seqs))
    }

    fn touch_device(&self, device_id: &str, now: i64) -> StorageResult<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE devices SET last_sync_at = $1
                 WHERE public_id = $2 AND (last_sync_at IS NULL OR last_sync_at < $1)",
                &[&now, &device_id],
            )?;
            Ok(())
        })
    }

    fn list_devices(&self, workspace_id: Option<&str>) -> StorageResult<Vec<DeviceInfo>> {
        self.read(|tx| reads::list_devices(tx, workspace_id))
    }

    fn revoke_device_by(
        &self,
        caller: Option<&Device>,
        device_id: &str,
        now: i64,
    ) -> StorageResult<u64> {
        self.write(|tx| {
            let not_found = || StorageError::NotFound {
                what: format!("device {device_id}"),
            };
            let (workspace, workspace_id): (i64, String) = tx
                .query_opt(
                    "SELECT d.workspace, w.public_id
                     FROM devices d JOIN workspaces w ON w.id = d.workspace
                     WHERE d.public_id = $1",
                    &[&device_id],
                )?
                .map(|row| -> StorageResult<_> { Ok((row.try_get(0)?, row.try_get(1)?)) })
                .transpose()?
                .ok_or_else(not_found)?;
            if caller.is_some_and(|caller| caller.workspace_id != workspace_id) {
                return Err(not_found());
            }
            // Workspace row, then device row: the order a push takes them in. Holding the
            // workspace row, no push is between reading the head and committing, so no blob of
            // the revoked device ever gets a number above `revoked_at_seq`.
            let head = lock_workspace(tx, workspace)?;
            if let Some(caller) = caller {
                // The caller's role as stored now, and it must still be enrolled.
                let role: String = tx
                    .query_opt(
                        "SELECT role FROM devices
                         WHERE public_id = $1 AND workspace = $2 AND revoked_at IS NULL",
                        &[&caller.id, &workspace],
                    )?
                    .map(|row| row.try_get(0))
                    .transpose()?
                    .ok_or(StorageError::DeviceRevoked)?;
                check_may_revoke(caller, &role, device_id)?;
            }
            revoke_in(tx, device_id, workspace, head, now)?.ok_or_else(not_found)
        })
    }

    fn team(&self, caller: &Device, log_from: u64) -> StorageResult<TeamResponse> {
        self.read(|tx| reads::team(tx, caller, log_from))
    }

    fn append_team_log(
        &self,
        caller: &Device,
        request: &AppendRequest,
        now: i64,
    ) -> StorageResult<u64> {
        self.write(|tx| {
            // Locked until commit, as a push locks it: appends of two coordinators (from any
            // server process) are serialised, and a revocation's head is exact.
            let workspace = workspace_key(tx, &caller.workspace_id)?;
            let head = lock_workspace(tx, workspace)?;
            let epoch = epoch_of(
                tx.query_one("SELECT epoch FROM workspaces WHERE id = $1", &[&workspace])?
                    .try_get(0)?,
            )?;
            // Any device of the team may send entries (the signatures are the authority); it
            // must still be enrolled.
            tx.query_opt(
                "SELECT 1 FROM devices
                 WHERE public_id = $1 AND workspace = $2 AND revoked_at IS NULL",
                &[&caller.id, &workspace],
            )?
            .ok_or(StorageError::DeviceRevoked)?;
            let stored = reads::stored_log(tx, workspace, 0)?;
            let mut rows = std::collections::HashMap::new();
            let mut devices = Vec::new();
            for row in tx.query(
                "SELECT id, public_id, role, sign_key, box_key, revoked_at IS NOT NULL
                 FROM devices WHERE workspace = $1",
                &[&workspace],
            )? {
                let id: String = row.try_get(1)?;
                rows.insert(id.clone(), row.try_get::<_, i64>(0)?);
                devices.push(EnrolledDevice {
                    id,
                    role: row.try_get(2)?,
                    sign_key: stored_key(row.try_get(3)?)?,
                    box_key: stored_key(row.try_get(4)?)?,
                    revoked: row.try_get(5)?,
                });
            }
            let elsewhere =
                tx.prepare("SELECT 1 FROM devices WHERE public_id = $1 AND workspace != $2")?;
            let mut known_elsewhere = Vec::new();
            for signed in &request.entries {
                if let Ok(entry) = signed.decode()
                    && let waymark_protocol::team_log::Body::Admit { member, .. } = &entry.body
                    && tx
                        .query_opt(&elsewhere, &[&member.device_id, &workspace])?
                        .is_some()
                {
                    known_elsewhere.push(member.device_id.clone());
                }
            }
            let mut elsewhere =
                |id: &str| -> StorageResult<bool> { Ok(known_elsewhere.iter().any(|k| k == id)) };
            let plan = plan_append(&stored, request, &devices, epoch, &mut elsewhere)?;
            let row_of = |id: &str| {
                rows.get(id).copied().ok_or_else(|| {
                    StorageError::Invalid(format!("no device {id} is enrolled here"))
                })
            };
            let insert = tx.prepare(
                "INSERT INTO team_log (workspace, idx, hash, entry, signature, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )?;
            for (index, hash, signed) in &plan.new_entries {
                tx.execute(
                    &insert,
                    &[
                        &workspace,
                        &to_i64(*index),
                        &&hash[..],
                        &signed.entry,
                        &&signed.signature[..],
                        &now,
                    ],
                )?;
            }
            for id in &plan.revoke {
                revoke_in(tx, id, workspace, head, now)?;
            }
            for (id, role) in &plan.roles {
                tx.execute(
                    "UPDATE devices SET role = $1 WHERE id = $2",
                    &[role, &row_of(id)?],
                )?;
            }
            let insert = tx.prepare(
                "INSERT INTO key_envelopes (device, epoch, sealed_key, signer_key, signature,
                                            created_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (device, epoch) DO NOTHING",
            )?;
            let mut stored_envelopes = 0;
            for envelope in &request.envelopes {
                // For a device lost in a restore: nobody could fetch it.
                let Some(device) = rows.get(envelope.device_id.as_str()).copied() else {
                    continue;
                };
                stored_envelopes += tx.execute(
                    &insert,
                    &[
                        &device,
                        &i64::from(envelope.epoch),
                        &envelope.sealed_key,
                        &&envelope.signer_key[..],
                        &&envelope.signature[..],
                        &now,
                    ],
                )?;
            }
            if plan.new_entries.is_empty() && stored_envelopes == 0 {
                // Entries re-sent that the log has, envelopes it holds: nothing changed, and
                // no device needs to look at the team again.
                return Ok(plan.len);
            }
            let rotated = plan.epoch != epoch;
            tx.execute(
                "UPDATE workspaces SET team_version = team_version + 1, epoch = $1, log_len = $2,
                        rotation_needed = rotation_needed AND NOT $3
                 WHERE id = $4",
                &[
                    &i64::from(plan.epoch),
                    &to_i64(plan.len),
                    &rotated,
                    &workspace,
                ],
            )?;
            Ok(plan.len)
        })
    }

    fn upload_keys(&self, caller: &Device, request: &KeysRequest, now: i64) -> StorageResult<u32> {
        self.write(|tx| {
            // Locked until commit: two coordinators rotating at once (from any server process)
            // are serialised, and the second sees the epoch the first moved to.
            let workspace = workspace_key(tx, &caller.workspace_id)?;
            lock_workspace(tx, workspace)?;
            let row = tx.query_one(
                "SELECT epoch, log_len FROM workspaces WHERE id = $1",
                &[&workspace],
            )?;
            let epoch = epoch_of(row.try_get(0)?)?;
            keys_kept_in_log(row.try_get::<_, i64>(1)? > 0)?;
            let (role, sign_key): (String, Option<Vec<u8>>) = tx
                .query_opt(
                    "SELECT role, sign_key FROM devices
                     WHERE public_id = $1 AND workspace = $2 AND revoked_at IS NULL",
                    &[&caller.id, &workspace],
                )?
                .map(|row| -> StorageResult<_> { Ok((row.try_get(0)?, row.try_get(1)?)) })
                .transpose()?
                .ok_or(StorageError::DeviceRevoked)?;
            check_may_upload_keys(&role)?;
            let sign_key = sign_key.map(fixed::<32>).transpose()?;
            let mut keys = std::collections::HashMap::new();
            let mut recipients = Vec::new();
            for row in tx.query(
                "SELECT id, public_id, revoked_at IS NOT NULL, box_key IS NOT NULL
                 FROM devices WHERE workspace = $1",
                &[&workspace],
            )? {
                let id: String = row.try_get(1)?;
                keys.insert(id.clone(), row.try_get::<_, i64>(0)?);
                recipients.push(KeyRecipient {
                    id,
                    revoked: row.try_get(2)?,
                    has_box_key: row.try_get(3)?,
                });
            }
            check_keys(request, epoch, &caller.id, sign_key.as_ref(), &recipients)?;
            let insert = tx.prepare(
                "INSERT INTO key_envelopes (device, epoch, sealed_key, signer_key, signature,
                                            created_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (device, epoch) DO NOTHING",
            )?;
            for envelope in &request.envelopes {
                let device = keys.get(&envelope.device_id).copied().ok_or_else(|| {
                    StorageError::Invalid(format!("no device {}", envelope.device_id))
                })?;
                tx.execute(
                    &insert,
                    &[
                        &device,
                        &i64::from(envelope.epoch),
                        &envelope.sealed_key,
                        &&envelope.signer_key[..],
                        &&envelope.signature[..],
                        &now,
                    ],
                )?;
            }
            let rotated = request.rotate_to.is_some();
            let epoch = request.rotate_to.unwrap_or(epoch);
            tx.execute(
                "UPDATE workspaces SET team_version = team_version + 1, epoch = $1,
                        rotation_needed = rotation_needed AND NOT $2
                 WHERE id = $3",
                &[&i64::from(epoch), &rotated, &workspace],
            )?;
            Ok(epoch)
        })
    }

    fn usage(&self) -> StorageResult<Vec<WorkspaceUsage>> {
        self.read(|tx| reads::usage(tx))
    }

    fn compact(&self, superseded_before: i64) -> StorageResult<CompactReport> {
        self.write(|tx| {
            let row = tx.query_one(
                "WITH dropped AS (
                     UPDATE blobs SET ciphertext = NULL
                     WHERE superseded_at IS NOT NULL AND superseded_at <= $1
                       AND ciphertext IS NOT NULL
                     RETURNING size
                 )
                 SELECT count(*), coalesce(sum(size), 0)::bigint FROM dropped",
                &[&superseded_before],
            )?;
            Ok(CompactReport {
                blobs_dropped: to_u64(row.try_get(0)?),
                bytes_dropped: to_u64(row.try_get(1)?),
            })
        })
    }

    fn health(&self) -> StorageResult<()> {
        self.pool.with_client(|client| {
            client.query_one("SELECT count(*) FROM workspaces", &[])?;
            Ok(())
        })
    }

    fn put_check_in(
        &self,
        device: &Device,
        request: &CheckInRequest,
        now: i64,
    ) -> StorageResult<CheckInResponse> {
        self.write(|tx| {
            // The workspace row first, as every team change and the watcher take it: updates of
            // the workspace's check-ins are serialised (across processes too), and a revocation
            // is entirely before or after this write.
            let workspace = workspace_key(tx, &device.workspace_id)?;
            lock_workspace(tx, workspace)?;
            let epoch = epoch_of(
                tx.query_one("SELECT epoch FROM workspaces WHERE id = $1", &[&workspace])?
                    .try_get(0)?,
            )?;
            let caller: i64 = tx
                .query_opt(
                    "SELECT id FROM devices
                     WHERE public_id = $1 AND workspace = $2 AND revoked_at IS NULL",
                    &[&device.id, &workspace],
                )?
                .map(|row| row.try_get(0))
                .transpose()?
                .ok_or(StorageError::DeviceRevoked)?;
            check_check_in(request, epoch)?;
            let stored = stored_check_in(tx, workspace, &request.id)?;
            let plan = plan_check_in(stored.as_ref(), caller, request, now, || {
                open_check_ins(tx, caller)
            })?;
            let write = match plan {
                CheckInPlan::Unchanged(answer) => return Ok(answer),
                CheckInPlan::Write(write) => write,
            };
            let (reset, kind) = write.alert.columns();
            let version = to_i64(request.version);
            let epoch = i64::from(request.epoch);
            if write.insert {
                tx.execute(
                    "INSERT INTO check_ins (workspace, id, device, state, deadline, version,
                                            epoch, sealed, updated_at, alert_kind)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    &[
                        &workspace,
                        &&request.id[..],
                        &caller,
                        &write.state,
                        &write.deadline,
                        &version,
                        &epoch,
                        &request.sealed,
                        &now,
                        &kind,
                    ],
                )?;
            } else {
                tx.execute(
                    "UPDATE check_ins SET state = $3, deadline = $4, version = $5, epoch = $6,
                            sealed = $7, updated_at = $8, overdue_at = $9,
                            alert_kind = CASE WHEN $10 THEN $11::text ELSE alert_kind END,
                            claimed_at = CASE WHEN $10 THEN NULL ELSE claimed_at END,
                            alerted_at = CASE WHEN $10 THEN NULL ELSE alerted_at END,
                            attempts = CASE WHEN $10 THEN 0 ELSE attempts END
                     WHERE workspace = $1 AND id = $2",
                    &[
                        &workspace,
                        &&request.id[..],
                        &write.state,
                        &write.deadline,
                        &version,
                        &epoch,
                        &request.sealed,
                        &now,
                        &write.overdue_at,
                        &reset,
                        &kind,
                    ],
                )?;
            }
            bump_check_ins(tx, vec![workspace])?;
            Ok(CheckInResponse {
                deadline: to_u64(write.deadline),
                version: request.version,
            })
        })
    }

    fn check_ins(
        &self,
        workspace_id: &str,
        now: i64,
        grace_secs: u64,
    ) -> StorageResult<CheckInsResponse> {
        self.read(|tx| reads::check_ins(tx, workspace_id, now, grace_secs))
    }

    fn mark_overdue_check_ins(&self, now: i64, grace_secs: u64) -> StorageResult<u64> {
        let cutoff = now.saturating_sub(to_i64(grace_secs));
        self.write(|tx| {
            let due = "state = 'open' AND deadline <= $1";
            let workspaces = lock_check_in_workspaces(tx, due, cutoff)?;
            if workspaces.is_empty() {
                return Ok(0);
            }
            let marked: Vec<i64> = tx
                .query(
                    "UPDATE check_ins SET state = 'overdue', overdue_at = $1,
                            alert_kind = 'overdue', claimed_at = NULL, alerted_at = NULL,
                            attempts = 0
                     WHERE workspace = ANY($3) AND state = 'open' AND deadline <= $2
                     RETURNING workspace",
                    &[&now, &cutoff, &workspaces],
                )?
                .iter()
                .map(|row| row.try_get(0))
                .collect::<Result<_, _>>()?;
            let count = u64::try_from(marked.len()).unwrap_or(u64::MAX);
            bump_check_ins(tx, marked)?;
            Ok(count)
        })
    }

    fn purge_check_ins(&self, now: i64) -> StorageResult<u64> {
        let before = now.saturating_sub(CHECK_IN_KEPT_SECS);
        let attempts = i64::from(MAX_ALERT_ATTEMPTS);
        self.write(|tx| {
            let finished = "state IN ('closed', 'alarm') AND updated_at < $1";
            let workspaces = lock_check_in_workspaces(tx, finished, before)?;
            if workspaces.is_empty() {
                return Ok(0);
            }
            let purged: Vec<i64> = tx
                .query(
                    "DELETE FROM check_ins
                     WHERE workspace = ANY($3) AND state IN ('closed', 'alarm')
                       AND updated_at < $1
                       AND (alert_kind IS NULL OR alerted_at IS NOT NULL OR attempts >= $2)
                     RETURNING workspace",
                    &[&before, &attempts, &workspaces],
                )?
                .iter()
                .map(|row| row.try_get(0))
                .collect::<Result<_, _>>()?;
            let count = u64::try_from(purged.len()).unwrap_or(u64::MAX);
            bump_check_ins(tx, purged)?;
            Ok(count)
        })
    }

    fn claim_check_in_alerts(&self, now: i64) -> StorageResult<Vec<CheckInAlert>> {
        self.write(|tx| {
            // One statement at READ COMMITTED: a row another process is claiming at the same
            // moment is waited for and its condition checked again on the claimed row, which
            // then fails it (`claimed_at` is recent). So each claim goes to one process.
            let rows = tx.query(
                "WITH claimed AS (
                     UPDATE check_ins SET claimed_at = $1, attempts = attempts + 1
                     WHERE alert_kind IS NOT NULL AND alerted_at IS NULL AND attempts < $2
                       AND (claimed_at IS NULL OR claimed_at < $3)
                     RETURNING workspace, id, device, alert_kind, deadline, version, attempts
                 )
                 SELECT w.public_id, c.id, d.name, c.alert_kind, c.deadline, c.version,
                        c.attempts
                 FROM claimed c
                 JOIN workspaces w ON w.id = c.workspace
                 JOIN devices d ON d.id = c.device",
                &[
                    &now,
                    &i64::from(MAX_ALERT_ATTEMPTS),
                    &now.saturating_sub(ALERT_CLAIM_SECS),
                ],
            )?;
            let mut alerts = Vec::with_capacity(rows.len());
            for row in rows {
                let kind = AlertKind::from_stored(row.try_get(3)?)?;
                alerts.push(CheckInAlert {
                    workspace_id: row.try_get(0)?,
                    check_in: fixed(row.try_get(1)?)?,
                    device_name: row.try_get(2)?,
                    kind,
                    minutes_overdue: minutes_overdue(kind, row.try_get(4)?, now),
                    attempts: u32::try_from(row.try_get::<_, i64>(6)?).unwrap_or(u32::MAX),
                    version: to_u64(row.try_get(5)?),
                });
            }
            Ok(alerts)
        })
    }

    fn check_in_alert_done(&self, alert: &CheckInAlert, now: i64) -> StorageResult<bool> {
        self.write(|tx| {
            let done = tx.execute(
                "UPDATE check_ins SET alerted_at = $1
                 WHERE workspace = (SELECT id FROM workspaces WHERE public_id = $2)
                   AND id = $3 AND version = $4 AND alert_kind = $5 AND alerted_at IS NULL",
                &[
                    &now,
                    &alert.workspace_id,
                    &&alert.check_in[..],
                    &to_i64(alert.version),
                    &alert.kind.as_str(),
                ],
            )?;
            Ok(done > 0)
        })
    }

    fn put_tip_page(
        &self,
        caller: &Device,
        request: &TipPageRequest,
        now: i64,
    ) -> StorageResult<()> {
        self.write(|tx| {
            // The workspace row first, as every write takes it: two coordinators publishing at
            // once are serialised, and a revocation is entirely before or after this write.
            let workspace = workspace_key(tx, &caller.workspace_id)?;
            lock_workspace(tx, workspace)?;
            let (device, role, sign_key) = live_device(tx, &caller.id, workspace)?;
            check_may_handle_tips(&role)?;
            let statement = check_tip_page(
                request,
                &caller.id,
                &caller.workspace_id,
                &stored_key(sign_key)?,
            )?;
            let taken = tx
                .query_opt(
                    "SELECT 1 FROM tip_pages WHERE page = $1 AND workspace != $2",
                    &[&statement.page, &workspace],
                )?
                .is_some();
            if taken {
                return Err(StorageError::Conflict(
                    "this page path is another workspace's: choose another".into(),
                ));
            }
            tx.execute(
                "INSERT INTO tip_pages (workspace, page, statement, device, signature,
                                        published_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (workspace) DO UPDATE SET page = excluded.page,
                     statement = excluded.statement, device = excluded.device,
                     signature = excluded.signature, published_at = excluded.published_at",
                &[
                    &workspace,
                    &statement.page,
                    &request.statement,
                    &device,
                    &request.signature,
                    &now,
                ],
            )
            .map_err(|err| match err.code() {
                // Another workspace took the path since the check above. Told apart here, not
                // left to the internal error, whose log line would quote the path.
                Some(code) if *code == SqlState::UNIQUE_VIOLATION => StorageError::Conflict(
                    "this page path is another workspace's: choose another".into(),
                ),
                _ => err.into(),
            })?;
            Ok(())
        })
    }

    fn tip_page(&self, workspace_id: &str) -> StorageResult<Option<TipPageRequest>> {
        self.read(|tx| reads::tip_page(tx, workspace_id))
    }

    fn tip_page_statement(&self, page: &str) -> StorageResult<Option<Vec<u8>>> {
        self.read(|tx| reads::tip_page_statement(tx, page))
    }

    fn submit_tip(
        &self,
        page: &str,
        tip: &NewTip,
        max_waiting: u64,
        now: i64,
    ) -> StorageResult<TipReceipt> {
        self.write(|tx| {
            let workspace: i64 = tx
                .query_opt("SELECT workspace FROM tip_pages WHERE page = $1", &[&page])?
                .map(|row| row.try_get(0))
                .transpose()?
                .ok_or_else(|| StorageError::NotFound {
                    what: "tip page".into(),
                })?;
            // One statement on the workspace row: a submission racing another (in any process)
            // waits for it and counts again, so the cap holds and numbers are not repeated.
            let Some(id): Option<i64> = tx
                .query_opt(
                    "UPDATE workspaces SET tips_waiting = tips_waiting + 1,
                            tips_seq = tips_seq + 1
                     WHERE id = $1 AND tips_waiting < $2
                     RETURNING tips_seq",
                    &[&workspace, &to_i64(max_waiting)],
                )?
                .map(|row| row.try_get(0))
                .transpose()?
            else {
                return Ok(TipReceipt::Full);
            };
            tx.execute(
                "INSERT INTO tips (workspace, id, received_hour, epoch, ephemeral, nonce, sealed)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &workspace,
                    &id,
                    &received_hour(now),
                    &i64::from(tip.epoch),
                    &&tip.ephemeral[..],
                    &&tip.nonce[..],
                    &tip.sealed,
                ],
            )?;
            Ok(TipReceipt::Stored)
        })
    }

    fn tips(&self, workspace_id: &str, max: usize) -> StorageResult<Vec<TipEntry>> {
        self.read(|tx| reads::tips(tx, workspace_id, max))
    }

    fn tips_done(&self, caller: &Device, ids: &[u64]) -> StorageResult<u64> {
        let ids: Vec<i64> = ids
            .iter()
            .filter(|&&id| id <= limits::MAX_CURSOR)
            .map(|&id| to_i64(id))
            .collect();
        self.write(|tx| {
            let workspace = workspace_key(tx, &caller.workspace_id)?;
            lock_workspace(tx, workspace)?;
            check_may_handle_tips(&live_device(tx, &caller.id, workspace)?.1)?;
            let deleted = tx.execute(
                "DELETE FROM tips WHERE workspace = $1 AND id = ANY($2)",
                &[&workspace, &ids],
            )?;
            if deleted > 0 {
                tx.execute(
                    "UPDATE workspaces SET tips_waiting = tips_waiting - $1 WHERE id = $2",
                    &[&to_i64(deleted), &workspace],
                )?;
            }
            Ok(deleted)
        })
    }

    fn put_tip_reply(&self, caller: &Device, request: &TipReplyRequest) -> StorageResult<()> {
        self.write(|tx| {
            // The workspace row first: two replies under one receipt at once are serialised, so
            // the cap holds.
            let workspace = workspace_key(tx, &caller.workspace_id)?;
            lock_workspace(tx, workspace)?;
            check_may_handle_tips(&live_device(tx, &caller.id, workspace)?.1)?;
            let kept: i64 = tx
                .query_one(
                    "SELECT count(*) FROM tip_replies WHERE workspace = $1 AND lookup = $2",
                    &[&workspace, &request.lookup],
                )?
                .try_get(0)?;
            if usize::try_from(kept).unwrap_or(usize::MAX) >= limits::MAX_TIP_REPLIES {
                return Err(StorageError::Conflict(format!(
                    "this receipt has {} replies already, as many as it may",
                    limits::MAX_TIP_REPLIES
                )));
            }
            tx.execute(
                "INSERT INTO tip_replies (workspace, lookup, ephemeral, nonce, sealed)
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &workspace,
                    &request.lookup,
                    &&request.ephemeral[..],
                    &&request.nonce[..],
                    &request.sealed,
                ],
            )?;
            Ok(())
        })
    }

    fn tip_replies(&self, page: &str, lookup: &[u8]) -> StorageResult<Option<Vec<TipReply>>> {
        self.read(|tx| reads::tip_replies(tx, page, lookup))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::storage::tests::READS_CHAIN;
    use waymark_protocol::CHAIN_START;

    /// Drops the test's schema when the test ends, passed or not.
    struct DropSchema {
        url: String,
        schema: String,
    }

    impl Drop for DropSchema {
        fn drop(&mut self) {
            if let Ok(mut client) = Client::connect(&self.url, postgres::NoTls) {
                let _ = client.batch_execute(&format!("DROP SCHEMA {} CASCADE", self.schema));
            }
        }
    }

    /// The backfill runs right after the script that adds the column, so a later migration
    /// that reads chain hashes (to index or check them) finds them filled in.
    #[test]
    fn migrations_after_schema_4_see_the_chain_hashes_of_older_blobs() {
        let url = std::env::var("WAYMARK_TEST_POSTGRES_URL")
            .expect("WAYMARK_TEST_POSTGRES_URL: run sync-server/scripts/start-postgres.sh");
        let guard = DropSchema {
            schema: format!("unit_{}", tokens::new_id().to_lowercase()),
            url,
        };
        let mut client = Client::connect(&guard.url, postgres::NoTls).unwrap();
        client
            .batch_execute(&format!(
                "CREATE SCHEMA {0}; SET search_path = {0};",
                guard.schema
            ))
            .unwrap();
        migrate_with(&mut client, &MIGRATIONS[..3]).unwrap();
        client
            .batch_execute(
                "INSERT INTO workspaces (id, public_id, created_at, head_seq) VALUES (1, 'w', 0, 2);
                 INSERT INTO devices (id, public_id, workspace, name, token_hash, enrolled_at)
                     VALUES (1, 'd', 1, 'phone', '\\x01', 0);",
            )
            .unwrap();
        for seq in 1..=2u8 {
            client
                .execute(
                    "INSERT INTO blobs (workspace, seq, content_id, doc_id, epoch, device, size,
                                        ciphertext, created_at)
                     VALUES (1, $1, $2, $3, 0, 1, 1, '\\x00', 0)",
                    &[&i64::from(seq), &&[seq; 32][..], &&[0u8; 16][..]],
                )
                .unwrap();
        }
        let scripts: Vec<&str> = MIGRATIONS.iter().copied().chain([READS_CHAIN]).collect();
        migrate_with(&mut client, &scripts).unwrap();
        let seen: Vec<Option<Vec<u8>>> = client
            .query("SELECT chain FROM seen ORDER BY seq", &[])
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        let first = chain_next(&CHAIN_START, 1, &[1; 32]);
        let second = chain_next(&first, 2, &[2; 32]);
        assert_eq!(seen, [Some(first.to_vec()), Some(second.to_vec())]);
    }
}
