//! The SQLite backend: one file under the data directory.
//!
//! Concurrency (the reasoning, next to the code):
//! - exactly **one writer connection**, behind a `std::sync::Mutex`, locked only on blocking
//!   threads; every write runs in a `BEGIN IMMEDIATE` transaction, so writes are serialised and a
//!   batch is stored whole or not at all;
//! - pushes and sync-time updates go through **group commit** ([`group_commit`]): those that
//!   arrive while a commit is flushing share the next transaction (a savepoint each, so one
//!   failing write does not fail the others) and its one fsync, and each is answered only once
//!   that transaction is durable;
//! - sequence numbers are assigned inside that transaction from `workspaces.head_seq`, so they are
//!   gap-free, and since a reader only ever sees committed transactions (WAL snapshots), a number
//!   is visible only together with every smaller one;
//! - **readers** are separate connections (a small pool), each pull runs in one read transaction
//!   so the blobs and the head it reports come from the same snapshot;
//! - WAL mode and a `busy_timeout` let the admin commands (another process) write while `serve`
//!   runs; `synchronous = FULL` so an acknowledged push survives power loss;
//! - the query planner stability guarantee is on: plans depend on the schema, never on bound
//!   values, so cached statements are not re-prepared whenever a value is bound (SQLite is built
//!   with STAT4, which otherwise does that for e.g. `LIMIT ?`).
//!
//! Migrations are numbered SQL scripts applied in one transaction, tracked by
//! `PRAGMA user_version`; a file from a newer server is refused untouched.

mod group_commit;

pub use group_commit::GroupCommitStats;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use waymark_protocol::{
    AppendRequest, ChainHash, ChainResponse, CheckInRequest, CheckInResponse, CheckInsResponse,
    KeysRequest, PullResponse, PulledBlob, PushBlob, TeamResponse, TipEntry, TipPageRequest,
    TipReplyRequest, chain_next, limits,
};

use super::pull_page::{BlobRef, EncodedPull, PageEnd, PullPageWriter};
use super::reads::{self, Param, Reads, fixed};
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

/// File name of the database inside the data directory.
pub const DATABASE_FILE: &str = "waymark.sqlite3";

const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle read connections kept open. About as many as requests served at once (the load tool runs
/// 64): a connection opened per request costs more than the request (schema parse, pragmas, and
/// its statement cache starts empty).
const MAX_IDLE_READERS: usize = 64;

/// Schema migrations; `MIGRATIONS[i]` upgrades `user_version` i to i + 1. Public so that the
/// upgrade tests build each earlier release's database from the very scripts run here.
pub const MIGRATIONS: &[&str] = &[
    include_str!("migrations/001_initial.sql"),
    include_str!("migrations/002_team.sql"),
    include_str!("migrations/003_team_log.sql"),
    include_str!("migrations/004_chain.sql"),
    include_str!("migrations/005_snapshots.sql"),
    include_str!("migrations/006_check_ins.sql"),
    include_str!("migrations/007_tips.sql"),
];

/// The newest schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// A connection running the statements both backends share ([`reads`]).
struct Sql<'c>(&'c Connection);

impl Reads for Sql<'_> {
    type Row<'r> = rusqlite::Row<'r>;

    fn each_row(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        mut each: impl FnMut(&Self::Row<'_>) -> StorageResult<()>,
    ) -> StorageResult<()> {
        // `$n` is PostgreSQL's placeholder; SQLite's `?n` binds the same parameter n.
        let mut stmt = self.0.prepare_cached(&sql.replace('$', "?"))?;
        let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
        while let Some(row) = rows.next()? {
            each(row)?;
        }
        Ok(())
    }
}

impl reads::Row for rusqlite::Row<'_> {
    fn column<T: reads::Column>(&self, index: usize) -> StorageResult<T> {
        Ok(self.get(index)?)
    }
}

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Param::Int(value) => value.to_sql(),
            Param::Text(value) => value.to_sql(),
            Param::MaybeText(value) => value.to_sql(),
            Param::Bytes(value) => value.to_sql(),
        }
    }
}

impl From<rusqlite::Error> for StorageError {
    fn from(err: rusqlite::Error) -> Self {
        StorageError::Backend(Box::new(err))
    }
}

/// Storage in one SQLite file.
pub struct SqliteStorage {
    path: PathBuf,
    writer: Mutex<Connection>,
    queue: group_commit::WriteQueue,
    readers: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for SqliteStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStorage")
            .field("path", &self.path)
            .finish()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave a half-written transaction behind (rusqlite
    // rolls back on drop), so the connection is still good to use.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SqliteStorage {
    /// Opens (creating if missing) the database in `data_dir`, creating the directory too.
    pub fn open_in_dir(data_dir: &Path) -> StorageResult<Self> {
        std::fs::create_dir_all(data_dir).map_err(|source| StorageError::Io {
            context: format!("creating data directory {}", data_dir.display()),
            source,
        })?;
        Self::open(&data_dir.join(DATABASE_FILE))
    }

    /// Opens (creating if missing) the database file at `path` and migrates it.
    pub fn open(path: &Path) -> StorageResult<Self> {
        let mut writer = Connection::open(path)?;
        configure(&writer)?;
        // Refuse a newer file before anything (even the journal mode) is written to it.
        check_not_newer(&writer)?;
        writer.pragma_update(None, "journal_mode", "WAL")?;
        migrate(&mut writer)?;
        Ok(Self {
            path: path.to_owned(),
            writer: Mutex::new(writer),
            queue: group_commit::WriteQueue::default(),
            readers: Mutex::new(Vec::new()),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many group commits pushes and sync-time updates went through since opening.
    pub fn group_commit_stats(&self) -> GroupCommitStats {
        self.queue.stats()
    }

    /// Copies a consistent snapshot of the database to `dest` with SQLite's online backup API,
    /// while other connections keep reading and writing. The copy is readable by its owner only
    /// (0600); an existing file or a symlink at `dest` is refused, never overwritten or followed.
    pub fn backup_to(&self, dest: &Path) -> StorageResult<()> {
        // Claimed first, empty, exclusively (`O_EXCL`: no file, no symlink may be there).
        crate::files::create_private(dest).map_err(|source| StorageError::Io {
            context: format!("backup destination {}", dest.display()),
            source,
        })?;
        // Written under a temporary name and renamed, so a failed backup leaves no
        // plausible-looking partial file behind. A `.partial` left by a crashed backup to this
        // destination is ours to replace (never followed: removing a symlink removes the link).
        let mut partial = dest.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let _ = std::fs::remove_file(&partial);
        let result = crate::files::create_private(&partial)
            .map_err(|source| StorageError::Io {
                context: format!("creating {}", partial.display()),
                source,
            })
            // SQLite gives the copy's journal the mode of the file it opens: 0600.
            .and_then(|_created| self.backup_into(&partial))
            .and_then(|()| {
                std::fs::rename(&partial, dest).map_err(|source| StorageError::Io {
                    context: format!("moving the backup to {}", dest.display()),
                    source,
                })
            });
        if result.is_err() {
            let _ = std::fs::remove_file(&partial);
            let _ = std::fs::remove_file(dest);
        }
        result
    }

    /// Puts the backup `from` in place of the database in `data_dir`, which no process may have
    /// open (a running `serve` is refused). The backup is checked first (a Waymark database
    /// this build can open, intact) and copied, not moved; the database it replaces is kept
    /// beside it under a `.replaced-<unix time>` name, which is returned. The old database's
    /// journals go with it: a write-ahead log left beside the restored file would be replayed
    /// into it.
    pub fn restore_from(data_dir: &Path, from: &Path) -> StorageResult<PathBuf> {
        let io = |context: String| move |source| StorageError::Io { context, source };
        check_backup(from)?;
        let live = data_dir.join(DATABASE_FILE);
        let kept = data_dir.join(format!("{DATABASE_FILE}.replaced-{}", tokens::now()));
        if live.exists() {
            // An exclusive lock on the live database: refused while `serve` (or anything) has
            // it open. Its log is folded into the file, so the kept copy stands alone.
            let conn = Connection::open(&live)?;
            conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
            conn.execute_batch("BEGIN EXCLUSIVE; COMMIT;")
                .map_err(|_| in_use(&live))?;
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
                row.get::<_, i64>(0)
            })
            .ok()
            .filter(|busy| *busy == 0)
            .ok_or_else(|| in_use(&live))?;
            conn.pragma_update(None, "journal_mode", "DELETE")?;
            drop(conn);
        }
        let incoming = data_dir.join(format!("{DATABASE_FILE}.restoring"));
        let _ = std::fs::remove_file(&incoming);
        crate::files::create_private(&incoming)
            .map_err(io(format!("creating {}", incoming.display())))?;
        let copied = (|| -> StorageResult<()> {
            let source = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
            let mut target = Connection::open(&incoming)?;
            copy_database(&source, &mut target)?;
            target.pragma_update(None, "journal_mode", "DELETE")?;
            Ok(())
        })();
        if let Err(err) = copied {
            let _ = std::fs::remove_file(&incoming);
            return Err(err);
        }
        if live.exists() {
            std::fs::rename(&live, &kept).map_err(io(format!("keeping {}", live.display())))?;
        }
        for journal in ["-wal", "-shm", "-journal"] {
            let path = data_dir.join(format!("{DATABASE_FILE}{journal}"));
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(io(format!("removing {}", path.display()))(err)),
            }
        }
        std::fs::rename(&incoming, &live).map_err(io(format!("restoring {}", live.display())))?;
        if let Ok(dir) = std::fs::File::open(data_dir) {
            let _ = dir.sync_all();
        }
        Ok(kept)
    }

    fn backup_into(&self, dest: &Path) -> StorageResult<()> {
        let source = self.checkout()?;
        let mut target = Connection::open(dest)?;
        copy_database(&source, &mut target)?;
        self.checkin(source);
        // The copy is a standalone file: no -wal/-shm companions needed to read it.
        target.pragma_update(None, "journal_mode", "DELETE")?;
        Ok(())
    }

    /// Takes a read connection from the pool, or opens one.
    fn checkout(&self) -> StorageResult<Connection> {
        if let Some(conn) = lock(&self.readers).pop() {
            return Ok(conn);
        }
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        configure(&conn)?;
        conn.pragma_update(None, "query_only", true)?;
        Ok(conn)
    }

    /// Returns a read connection to the pool (closing it if the pool is full).
    fn checkin(&self, conn: Connection) {
        let mut pool = lock(&self.readers);
        if pool.len() < MAX_IDLE_READERS {
            pool.push(conn);
        }
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> StorageResult<T>,
    ) -> StorageResult<T> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> StorageResult<T>) -> StorageResult<T> {
        let conn = self.checkout()?;
        let result = read_in(&conn, f);
        // Pooled again only if its transaction is over (a failed ROLLBACK would leave it open).
        if conn.is_autocommit() {
            self.checkin(conn);
        }
        result
    }
}

/// Runs `f` in one read transaction on `conn`. `BEGIN` and `COMMIT` are cached statements: parsed
/// once per connection instead of twice per request.
fn read_in<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> StorageResult<T>,
) -> StorageResult<T> {
    conn.prepare_cached("BEGIN DEFERRED")?.execute([])?;
    let result = f(conn);
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = conn
        .prepare_cached(end)
        .and_then(|mut stmt| stmt.execute([]));
    let value = result?;
    ended?;
    Ok(value)
}

fn configure(conn: &Connection) -> StorageResult<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}

fn check_not_newer(conn: &Connection) -> StorageResult<i64> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StorageError::NewerSchema {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(found)
}

fn migrate(conn: &mut Connection) -> StorageResult<()> {
    migrate_with(conn, MIGRATIONS)
}

/// The migration runner over `scripts` (`scripts[i]` upgrades version i to i + 1): all of them
/// past the file's version, in one transaction.
fn migrate_with(conn: &mut Connection, scripts: &[&str]) -> StorageResult<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Checked again inside the transaction: another process may have migrated meanwhile.
    let found = check_not_newer(&tx)?;
    for (version, script) in (1..).zip(scripts).skip(usize::try_from(found).unwrap_or(0)) {
        tx.execute_batch(script)?;
        // Right after the column is added, so every later script sees the hashes filled in.
        if version == CHAIN_SCHEMA {
            backfill_chain_sqlite(&tx)?;
        }
    }
    tx.pragma_update(
        None,
        "user_version",
        i64::try_from(scripts.len()).unwrap_or(i64::MAX),
    )?;
    tx.commit()?;
    Ok(())
}

/// Copies every page of `source` into `target` with SQLite's online backup API.
fn copy_database(source: &Connection, target: &mut Connection) -> StorageResult<()> {
    // All pages in one step: one consistent read snapshot (WAL readers never block the
    // writer), and no restart loop when pushes keep arriving during the copy.
    use rusqlite::backup::{Backup, StepResult};
    let backup = Backup::new(source, target)?;
    let mut attempts = 0;
    loop {
        match backup.step(-1)? {
            StepResult::Done => return Ok(()),
            StepResult::More | StepResult::Busy | StepResult::Locked if attempts < 100 => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            _ => {
                return Err(StorageError::Backend(
                    "the backup could not get a consistent read of the database".into(),
                ));
            }
        }
    }
}

/// Checks that `path` is a Waymark server database this build can open, and intact.
fn check_backup(path: &Path) -> StorageResult<()> {
    let not_a_backup = |why: &str| {
        StorageError::Invalid(format!(
            "{} is not a backup of this server's database: {why}",
            path.display()
        ))
    };
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|_| not_a_backup("it cannot be opened"))?;
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |row| row.get(0))
        .map_err(|_| not_a_backup("it is not an SQLite database"))?;
    if check != "ok" {
        return Err(not_a_backup("it is damaged (quick_check failed)"));
    }
    check_not_newer(&conn)?;
    let tables: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table'
         AND name IN ('workspaces', 'devices', 'blobs')",
        [],
        |row| row.get(0),
    )?;
    if tables != 3 {
        return Err(not_a_backup("it has no workspaces, devices and blobs"));
    }
    Ok(())
}

fn in_use(live: &Path) -> StorageError {
    StorageError::Conflict(format!(
        "{} is in use (is `serve` running?): stop the server before restoring",
        live.display()
    ))
}

/// Fills in the chain hash of blobs stored before schema 4, workspace by workspace in sequence
/// order (see [`ChainFill`]).
fn backfill_chain_sqlite(tx: &Connection) -> StorageResult<()> {
    let mut fill = ChainFill::default();
    let mut rows = Vec::new();
    {
        let mut stmt =
            tx.prepare("SELECT workspace, seq, content_id FROM blobs ORDER BY workspace, seq")?;
        let mut cursor = stmt.query([])?;
        while let Some(row) = cursor.next()? {
            let (workspace, seq): (i64, i64) = (row.get(0)?, row.get(1)?);
            let chain = fill.next(workspace, to_u64(seq), fixed_ref(row.get_ref(2)?)?);
            rows.push((workspace, seq, chain));
        }
    }
    let mut update = tx.prepare("UPDATE blobs SET chain = ?3 WHERE workspace = ?1 AND seq = ?2")?;
    for (workspace, seq, chain) in rows {
        update.execute(params![workspace, seq, &chain[..]])?;
    }
    Ok(())
}

/// The chain hash of the blob at `seq` in workspace row `workspace` ([`reads::chain_at`]).
fn chain_at(tx: &Connection, workspace: i64, seq: u64) -> StorageResult<Option<ChainHash>> {
    reads::chain_at(&mut Sql(tx), workspace, seq)
}

/// A device of a workspace that is not revoked, as a write finds it inside its transaction.
struct LiveDevice {
    key: i64,
    role: String,
    sign_key: Option<Vec<u8>>,
}

/// Finds a device of `workspace` that is not revoked; [`StorageError::DeviceRevoked`] if it is
/// (or is unknown): re-checked inside a write, a revocation committed after authentication still
/// stops the write.
fn live_device(tx: &Connection, device_id: &str, workspace: i64) -> StorageResult<LiveDevice> {
    tx.prepare_cached(
        "SELECT id, role, sign_key FROM devices
         WHERE public_id = ?1 AND workspace = ?2 AND revoked_at IS NULL",
    )?
    .query_row(params![device_id, workspace], |row| {
        Ok(LiveDevice {
            key: row.get(0)?,
            role: row.get(1)?,
            sign_key: row.get(2)?,
        })
    })
    .optional()?
    .ok_or(StorageError::DeviceRevoked)
}

/// The row key of workspace `workspace_id` ([`reads::workspace_key`]).
fn workspace_key(tx: &Connection, workspace_id: &str) -> StorageResult<i64> {
    reads::workspace_key(&mut Sql(tx), workspace_id)
}

/// Appends `blobs` to the log of `device`'s workspace inside the caller's transaction (see
/// [`Storage::push`]).
fn push_in(
    tx: &Connection,
    device: &Device,
    blobs: &[PushBlob],
    now: i64,
) -> StorageResult<PushOutcome> {
    let (workspace, mut head, epoch, log_len): (i64, i64, u32, i64) = tx
        .prepare_cached("SELECT id, head_seq, epoch, log_len FROM workspaces WHERE public_id = ?1")?
        .query_row([&device.workspace_id], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .optional()?
        .ok_or_else(|| StorageError::NotFound {
            what: format!("workspace {}", device.workspace_id),
        })?;
    // Re-checked inside the transaction: a revocation committed after authentication
    // still stops this write, and the role is the one stored now.
    let live = live_device(tx, &device.id, workspace)?;
    let device_key = live.key;

    let mut find = tx.prepare_cached(
        "SELECT seq, doc_id, epoch FROM blobs WHERE workspace = ?1 AND content_id = ?2",
    )?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO blobs (workspace, seq, content_id, doc_id, epoch, device, size,
                            ciphertext, created_at, chain, snapshot_upto, snapshot_from)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    // The first snapshot blob of the compaction a snapshot belongs to (one per covered bound).
    let mut compaction_start = tx
        .prepare_cached("SELECT min(seq) FROM blobs WHERE workspace = ?1 AND snapshot_upto = ?2")?;
    let mut chain = chain_at(tx, workspace, to_u64(head))?.ok_or_else(|| {
        StorageError::Backend(format!("the blob at the head {head} has no chain hash").into())
    })?;
    let mut supersede = tx.prepare_cached(
        "UPDATE blobs SET superseded_by = ?1, superseded_at = ?2
         WHERE workspace = ?3 AND doc_id = ?4 AND seq <= ?5 AND seq < ?1
           AND superseded_by IS NULL",
    )?;
    // An erase or a redaction: what the record said before goes now, not after the grace.
    let mut forget = tx.prepare_cached(
        "UPDATE blobs SET ciphertext = NULL, superseded_by = coalesce(superseded_by, ?1),
                superseded_at = coalesce(superseded_at, ?2)
         WHERE workspace = ?3 AND doc_id = ?4 AND seq <= ?5 AND seq < ?1",
    )?;
    let mut first_pusher = tx.prepare_cached(
        "SELECT device FROM blobs WHERE workspace = ?1 AND doc_id = ?2 ORDER BY seq LIMIT 1",
    )?;

    let mut outcome = PushOutcome {
        assigned: Vec::with_capacity(blobs.len()),
        newly_stored: 0,
        bytes_stored: 0,
    };
    for (index, blob) in blobs.iter().enumerate() {
        let existing: Option<(i64, Vec<u8>, u32)> = find
            .query_row(params![workspace, &blob.content_id[..]], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .optional()?;
        if let Some((seq, doc_id, stored_epoch)) = existing {
            check_same_blob(index, blob, &doc_id, i64::from(stored_epoch))?;
            outcome.assigned.push(to_u64(seq));
            continue;
        }
        let author = blob.supersedes.is_some()
            && first_pusher
                .query_row(params![workspace, &blob.doc_id[..]], |row| {
                    row.get::<_, i64>(0)
                })
                .optional()?
                .is_some_and(|first| first == device_key);
        check_new_blob(index, blob, epoch, log_len > 0, &live.role, author)?;
        head += 1;
        chain = chain_next(&chain, to_u64(head), &blob.content_id);
        let size = i64::try_from(blob.ciphertext.len()).unwrap_or(i64::MAX);
        insert.execute(params![
            workspace,
            head,
            &blob.content_id[..],
            &blob.doc_id[..],
            blob.epoch,
            device_key,
            size,
            &blob.ciphertext,
            now,
            &chain[..],
            snapshot_upto(blob),
            match snapshot_upto(blob) {
                Some(upto) => Some(
                    compaction_start
                        .query_row(params![workspace, upto], |row| row.get::<_, Option<i64>>(0))?
                        .unwrap_or(head),
                ),
                None => None,
            }
        ])?;
        for doc in blob.covers.chunks_exact(16) {
            supersede.execute(params![head, now, workspace, doc, snapshot_upto(blob)])?;
        }
        if let Some(covered) = blob.supersedes.filter(|_| blob.covers.is_empty()) {
            let covering = if blob.forget {
                &mut forget
            } else {
                &mut supersede
            };
            covering.execute(params![
                head,
                now,
                workspace,
                &blob.doc_id[..],
                to_i64(covered)
            ])?;
        }
        outcome.assigned.push(to_u64(head));
        outcome.newly_stored += 1;
        outcome.bytes_stored += to_u64(size);
    }
    tx.prepare_cached("UPDATE workspaces SET head_seq = ?1 WHERE id = ?2")?
        .execute(params![head, workspace])?;
    tx.prepare_cached("UPDATE devices SET last_sync_at = ?1 WHERE id = ?2")?
        .execute(params![now, device_key])?;
    Ok(outcome)
}

/// Revokes device row `device` of `workspace` inside the caller's write (see
/// [`Storage::revoke_device`]): its unused invites expire, its token stops working, and its
/// `revoked_at_seq` is the head now. Returns that number (the first one, if it was revoked
/// already).
fn revoke_in(
    tx: &Connection,
    device: i64,
    workspace: i64,
    revoked_at_seq: Option<i64>,
    now: i64,
) -> StorageResult<u64> {
    // Invites a lost phone made must not outlive it.
    tx.execute(
        "UPDATE enrollment_tokens SET expires_at = min(expires_at, ?1)
         WHERE issued_by = ?2 AND used_at IS NULL",
        params![now, device],
    )?;
    if let Some(seq) = revoked_at_seq {
        return Ok(to_u64(seq));
    }
    // Writes are serialised, so no push is between reading the head and committing.
    let head: i64 = tx.query_row(
        "SELECT head_seq FROM workspaces WHERE id = ?1",
        [workspace],
        |row| row.get(0),
    )?;
    tx.execute(
        "UPDATE devices SET revoked_at = ?1, revoked_at_seq = ?2 WHERE id = ?3",
        params![now, head, device],
    )?;
    tx.execute(
        "UPDATE workspaces SET rotation_needed = 1, team_version = team_version + 1
         WHERE id = ?1",
        [workspace],
    )?;
    Ok(to_u64(head))
}

/// The most ciphertext bytes a pull answer's buffer is sized for up front (pages are 256 KiB by
/// default; a client asking for a bigger budget gets a buffer that grows).
const PULL_PREALLOCATE_MAX: u64 = 1 << 20;

/// Walks the page of `workspace_id`'s log after `after` within the budgets (see
/// [`Storage::pull`]), handing each blob to `each` straight from its row; returns what follows
/// the blobs (`more`, the head, the team version, the chain hashes), all from the caller's read
/// transaction.
fn read_page(
    tx: &Connection,
    workspace_id: &str,
    after: u64,
    max_bytes: u64,
    max_blobs: usize,
    mut each: impl FnMut(BlobRef<'_>),
) -> StorageResult<PageEnd> {
    let (workspace, head, team_version, check_ins, tips): (i64, i64, i64, i64, i64) = tx
        .prepare_cached(
            "SELECT id, head_seq, team_version, check_ins_version, tips_waiting FROM workspaces
             WHERE public_id = ?1",
        )?
        .query_row([workspace_id], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
            ))
        })
        .optional()?
        .ok_or_else(|| StorageError::NotFound {
            what: format!("workspace {workspace_id}"),
        })?;
    // The ciphertext comes with the row (one b-tree walk per blob) and is only read, never
    // copied, for the row beyond the budget.
    let mut stmt = tx.prepare_cached(
        "SELECT b.seq, b.content_id, b.doc_id, b.epoch, b.size, d.public_id, b.ciphertext,
                b.chain
         FROM blobs b JOIN devices d ON d.id = b.device
         WHERE b.workspace = ?1 AND b.seq > ?2 AND b.ciphertext IS NOT NULL
           AND b.superseded_by IS NULL
           AND NOT coalesce(b.snapshot_upto <= ?2 AND ?2 < b.snapshot_from, 0)
         ORDER BY b.seq LIMIT ?3",
    )?;
    let limit = i64::try_from(max_blobs.saturating_add(1)).unwrap_or(i64::MAX);
    let mut rows = stmt.query(params![workspace, to_i64(after), limit])?;
    let mut count = 0usize;
    let mut used: u64 = 0;
    let mut more = false;
    let mut chain_last = None;
    while let Some(row) = rows.next()? {
        let size = to_u64(row.get(4)?);
        let over_budget = count > 0 && used.saturating_add(size) > max_bytes;
        if count >= max_blobs || over_budget {
            more = true;
            break;
        }
        each(BlobRef {
            seq: to_u64(row.get(0)?),
            content_id: fixed_ref(row.get_ref(1)?)?,
            doc_id: fixed_ref(row.get_ref(2)?)?,
            epoch: row.get(3)?,
            ciphertext: row.get_ref(6)?.as_blob().map_err(from_sql)?,
            device_id: row.get_ref(5)?.as_str().map_err(from_sql)?,
        });
        chain_last = row.get::<_, Option<Vec<u8>>>(7)?.map(fixed).transpose()?;
        count += 1;
        used = used.saturating_add(size);
    }
    drop(rows);
    let chain_after = match after <= to_u64(head) {
        true => chain_at(tx, workspace, after)?,
        false => None,
    };
    Ok(PageEnd {
        more,
        head: to_u64(head),
        team_version: to_u64(team_version),
        chain_after,
        chain_last,
        chain_head: chain_at(tx, workspace, to_u64(head))?,
        check_ins: to_u64(check_ins),
        tips: to_u64(tips),
    })
}

fn from_sql(err: rusqlite::types::FromSqlError) -> StorageError {
    StorageError::Backend(Box::new(err))
}

/// A stored id of `N` bytes, borrowed from its row.
fn fixed_ref<const N: usize>(value: rusqlite::types::ValueRef<'_>) -> StorageResult<&[u8; N]> {
    let bytes = value.as_blob().map_err(from_sql)?;
    <&[u8; N]>::try_from(bytes).map_err(|_| {
        StorageError::Backend(format!("stored id has {} bytes, expected {N}", bytes.len()).into())
    })
}

impl Storage for SqliteStorage {
    fn create_workspace(&self, name: Option<&str>, now: i64) -> StorageResult<Workspace> {
        let id = tokens::new_id();
        self.write(|tx| {
            tx.execute(
                "INSERT INTO workspaces (public_id, name, created_at) VALUES (?1, ?2, ?3)",
                params![id, name, now],
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
                Some(device) => Some(live_device(tx, device, workspace)?.key),
            };
            tx.execute(
                "INSERT INTO enrollment_tokens (token_hash, workspace, created_at, expires_at, issued_by,
                                                role)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![&token_hash[..], workspace, now, expires_at, issuer, role],
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
            let row: Option<(i64, i64, Option<i64>, String, String)> = tx
                .query_row(
                    "SELECT t.workspace, t.expires_at, t.used_at, w.public_id, t.role
                     FROM enrollment_tokens t JOIN workspaces w ON w.id = t.workspace
                     WHERE t.token_hash = ?1",
                    [&enrollment_token[..]],
                    |row| {
                        Ok((
                            row.get(0)?,
                            row.get(1)?,
                            row.get(2)?,
                            row.get(3)?,
                            row.get(4)?,
                        ))
                    },
                )
                .optional()?;
            let Some((workspace, expires_at, used_at, workspace_id, role)) = row else {
                return Err(StorageError::TokenUnknown);
            };
            if used_at.is_some() {
                return Err(StorageError::TokenUsed);
            }
            if expires_at <= now {
                return Err(StorageError::TokenExpired);
            }
            let taken: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM devices
                                WHERE workspace = ?1 AND (sign_key = ?2 OR box_key = ?3))",
                params![workspace, &device.sign_key[..], &device.box_key[..]],
                |row| row.get(0),
            )?;
            if taken {
                return Err(StorageError::Conflict(KEY_TAKEN.into()));
            }
            tx.execute(
                "INSERT INTO devices (public_id, workspace, name, token_hash, enrolled_at, role,
                                      sign_key, box_key, join_proof, actor)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    device.id,
                    workspace,
                    device.name,
                    &device.token_hash[..],
                    now,
                    role,
                    &device.sign_key[..],
                    &device.box_key[..],
                    device.join_proof,
                    device.actor
                ],
            )?;
            let device_key = tx.last_insert_rowid();
            tx.execute(
                "UPDATE enrollment_tokens SET used_at = ?1, used_by = ?2 WHERE token_hash = ?3",
                params![now, device_key, &enrollment_token[..]],
            )?;
            tx.execute(
                "UPDATE workspaces SET team_version = team_version + 1 WHERE id = ?1",
                [workspace],
            )?;
            Ok(Enrolled { workspace_id, role })
        })
    }

    fn authenticate(&self, device_token: &TokenHash) -> StorageResult<Option<Device>> {
        self.read(|tx| {
            tx.prepare_cached(
                "SELECT d.public_id, w.public_id, d.role, d.revoked_at IS NOT NULL
                     FROM devices d JOIN workspaces w ON w.id = d.workspace
                     WHERE d.token_hash = ?1",
            )?
            .query_row([&device_token[..]], |row| {
                let device = Device {
                    id: row.get(0)?,
                    workspace_id: row.get(1)?,
                    role: row.get(2)?,
                };
                Ok((device, row.get::<_, bool>(3)?))
            })
            .optional()?
            .map(live_or_revoked)
            .transpose()
        })
    }

    fn push(&self, device: &Device, blobs: &[PushBlob], now: i64) -> StorageResult<PushOutcome> {
        // Owned copies: the group's leader, on another request's thread, may run this write.
        let device = device.clone();
        let blobs = blobs.to_vec();
        self.queue.write(&self.writer, move |conn| {
            push_in(conn, &device, &blobs, now)
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
            let mut blobs = Vec::new();
            let end = read_page(tx, workspace_id, after, max_bytes, max_blobs, |blob| {
                blobs.push(PulledBlob {
                    seq: blob.seq,
                    content_id: *blob.content_id,
                    doc_id: *blob.doc_id,
                    epoch: blob.epoch,
                    ciphertext: blob.ciphertext.to_vec(),
                    device_id: blob.device_id.to_owned(),
                });
            })?;
            Ok(PullResponse {
                blobs,
                more: end.more,
                head: end.head,
                team_version: end.team_version,
                chain_after: end.chain_after,
                chain_last: end.chain_last,
                chain_head: end.chain_head,
                check_ins: end.check_ins,
                tips: end.tips,
            })
        })
    }

    fn pull_encoded(
        &self,
        workspace_id: &str,
        after: u64,
        max_bytes: u64,
        max_blobs: usize,
    ) -> StorageResult<EncodedPull> {
        self.read(|tx| {
            let budget = usize::try_from(max_bytes.min(PULL_PREALLOCATE_MAX)).unwrap_or(0);
            let mut page = PullPageWriter::with_capacity(budget);
            let end = read_page(tx, workspace_id, after, max_bytes, max_blobs, |blob| {
                page.blob(&blob);
            })?;
            Ok(page.finish(&end))
        })
    }

    fn chain(&self, workspace_id: &str, seqs: &[u64]) -> StorageResult<ChainResponse> {
        self.read(|tx| reads::chain(&mut Sql(tx), workspace_id, seqs))
    }

    fn touch_device(&self, device_id: &str, now: i64) -> StorageResult<()> {
        let device_id = device_id.to_owned();
        self.queue.write(&self.writer, move |conn| {
            conn.prepare_cached(
                "UPDATE devices SET last_sync_at = ?1
                 WHERE public_id = ?2 AND (last_sync_at IS NULL OR last_sync_at < ?1)",
            )?
            .execute(params![now, device_id])?;
            Ok(())
        })
    }

    fn list_devices(&self, workspace_id: Option<&str>) -> StorageResult<Vec<DeviceInfo>> {
        self.read(|tx| reads::list_devices(&mut Sql(tx), workspace_id))
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
            let (device, workspace, workspace_id, revoked_at_seq): (i64, i64, String, Option<i64>) =
                tx.query_row(
                    "SELECT d.id, d.workspace, w.public_id, d.revoked_at_seq
                     FROM devices d JOIN workspaces w ON w.id = d.workspace
                     WHERE d.public_id = ?1",
                    [device_id],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
                )
                .optional()?
                .ok_or_else(not_found)?;
            if let Some(caller) = caller {
                if caller.workspace_id != workspace_id {
                    return Err(not_found());
                }
                // The caller's role as stored now, and it must still be enrolled.
                let role = live_device(tx, &caller.id, workspace)?.role;
                check_may_revoke(caller, &role, device_id)?;
            }
            revoke_in(tx, device, workspace, revoked_at_seq, now)
        })
    }

    fn team(&self, caller: &Device, log_from: u64) -> StorageResult<TeamResponse> {
        self.read(|tx| reads::team(&mut Sql(tx), caller, log_from))
    }

    fn append_team_log(
        &self,
        caller: &Device,
        request: &AppendRequest,
        now: i64,
    ) -> StorageResult<u64> {
        self.write(|tx| {
            let (workspace, epoch): (i64, u32) = tx
                .query_row(
                    "SELECT id, epoch FROM workspaces WHERE public_id = ?1",
                    [&caller.workspace_id],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?
                .ok_or_else(|| StorageError::NotFound {
                    what: format!("workspace {}", caller.workspace_id),
                })?;
            // Any device of the team may send entries (the signatures are the authority); it
            // must still be enrolled.
            live_device(tx, &caller.id, workspace)?;
            let stored = reads::stored_log(&mut Sql(tx), workspace, 0)?;
            let mut rows = std::collections::HashMap::new();
            let mut devices = Vec::new();
            {
                let mut stmt = tx.prepare(
                    "SELECT id, public_id, role, sign_key, box_key, revoked_at IS NOT NULL,
                            revoked_at_seq
                     FROM devices WHERE workspace = ?1",
                )?;
                let mut q = stmt.query([workspace])?;
                while let Some(row) = q.next()? {
                    let id: String = row.get(1)?;
                    rows.insert(
                        id.clone(),
                        (row.get::<_, i64>(0)?, row.get::<_, Option<i64>>(6)?),
                    );
                    devices.push(EnrolledDevice {
                        id,
                        role: row.get(2)?,
                        sign_key: stored_key(row.get(3)?)?,
                        box_key: stored_key(row.get(4)?)?,
                        revoked: row.get(5)?,
                    });
                }
            }
            let mut elsewhere = |id: &str| -> StorageResult<bool> {
                Ok(tx
                    .prepare_cached(
                        "SELECT 1 FROM devices WHERE public_id = ?1 AND workspace != ?2",
                    )?
                    .exists(params![id, workspace])?)
            };
            let plan = plan_append(&stored, request, &devices, epoch, &mut elsewhere)?;
            let row_of = |id: &str| {
                rows.get(id).copied().ok_or_else(|| {
                    StorageError::Invalid(format!("no device {id} is enrolled here"))
                })
            };
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO team_log (workspace, idx, hash, entry, signature, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?;
                for (index, hash, signed) in &plan.new_entries {
                    insert.execute(params![
                        workspace,
                        to_i64(*index),
                        &hash[..],
                        &signed.entry,
                        &signed.signature[..],
                        now
                    ])?;
                }
            }
            for id in &plan.revoke {
                let (device, revoked_at_seq) = row_of(id)?;
                revoke_in(tx, device, workspace, revoked_at_seq, now)?;
            }
            for (id, role) in &plan.roles {
                let (device, _) = row_of(id)?;
                tx.execute(
                    "UPDATE devices SET role = ?1 WHERE id = ?2",
                    params![role, device],
                )?;
            }
            let mut stored_envelopes = 0;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO key_envelopes (device, epoch, sealed_key, signer_key, signature,
                                                created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (device, epoch) DO NOTHING",
                )?;
                for envelope in &request.envelopes {
                    // For a device lost in a restore: nobody could fetch it.
                    let Some(&(device, _)) = rows.get(envelope.device_id.as_str()) else {
                        continue;
                    };
                    stored_envelopes += insert.execute(params![
                        device,
                        envelope.epoch,
                        &envelope.sealed_key,
                        &envelope.signer_key[..],
                        &envelope.signature[..],
                        now
                    ])?;
                }
            }
            if plan.new_entries.is_empty() && stored_envelopes == 0 {
                // Entries re-sent that the log has, envelopes it holds: nothing changed, and
                // no device needs to look at the team again.
                return Ok(plan.len);
            }
            let rotated = plan.epoch != epoch;
            tx.execute(
                "UPDATE workspaces SET team_version = team_version + 1, epoch = ?1, log_len = ?2,
                        rotation_needed = CASE WHEN ?3 THEN 0 ELSE rotation_needed END
                 WHERE id = ?4",
                params![plan.epoch, to_i64(plan.len), rotated, workspace],
            )?;
            Ok(plan.len)
        })
    }

    fn upload_keys(&self, caller: &Device, request: &KeysRequest, now: i64) -> StorageResult<u32> {
        self.write(|tx| {
            let (workspace, epoch, log_len): (i64, u32, i64) = tx
                .query_row(
                    "SELECT id, epoch, log_len FROM workspaces WHERE public_id = ?1",
                    [&caller.workspace_id],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .optional()?
                .ok_or_else(|| StorageError::NotFound {
                    what: format!("workspace {}", caller.workspace_id),
                })?;
            keys_kept_in_log(log_len > 0)?;
            let signer = live_device(tx, &caller.id, workspace)?;
            check_may_upload_keys(&signer.role)?;
            let sign_key = signer.sign_key.map(fixed::<32>).transpose()?;
            let mut keys = std::collections::HashMap::new();
            let mut recipients = Vec::new();
            {
                let mut stmt = tx.prepare(
                    "SELECT id, public_id, revoked_at IS NOT NULL, box_key IS NOT NULL
                     FROM devices WHERE workspace = ?1",
                )?;
                let mut rows = stmt.query([workspace])?;
                while let Some(row) = rows.next()? {
                    let id: String = row.get(1)?;
                    keys.insert(id.clone(), row.get::<_, i64>(0)?);
                    recipients.push(KeyRecipient {
                        id,
                        revoked: row.get(2)?,
                        has_box_key: row.get(3)?,
                    });
                }
            }
            check_keys(request, epoch, &caller.id, sign_key.as_ref(), &recipients)?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO key_envelopes (device, epoch, sealed_key, signer_key, signature,
                                            created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (device, epoch) DO NOTHING",
            )?;
            for envelope in &request.envelopes {
                let device = keys.get(&envelope.device_id).copied().ok_or_else(|| {
                    StorageError::Invalid(format!("no device {}", envelope.device_id))
                })?;
                insert.execute(params![
                    device,
                    envelope.epoch,
                    &envelope.sealed_key,
                    &envelope.signer_key[..],
                    &envelope.signature[..],
                    now
                ])?;
            }
            let epoch = request.rotate_to.unwrap_or(epoch);
            tx.execute(
                "UPDATE workspaces SET team_version = team_version + 1, epoch = ?1,
                        rotation_needed = CASE WHEN ?2 THEN 0 ELSE rotation_needed END
                 WHERE id = ?3",
                params![epoch, request.rotate_to.is_some(), workspace],
            )?;
            Ok(epoch)
        })
    }

    fn usage(&self) -> StorageResult<Vec<WorkspaceUsage>> {
        self.read(|tx| reads::usage(&mut Sql(tx)))
    }

    fn compact(&self, superseded_before: i64) -> StorageResult<CompactReport> {
        self.write(|tx| {
            let (blobs, bytes): (i64, i64) = tx.query_row(
                "SELECT count(*), coalesce(sum(size), 0) FROM blobs
                 WHERE superseded_at IS NOT NULL AND superseded_at <= ?1
                   AND ciphertext IS NOT NULL",
                [superseded_before],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?;
            tx.execute(
                "UPDATE blobs SET ciphertext = NULL
                 WHERE superseded_at IS NOT NULL AND superseded_at <= ?1
                   AND ciphertext IS NOT NULL",
                [superseded_before],
            )?;
            Ok(CompactReport {
                blobs_dropped: to_u64(blobs),
                bytes_dropped: to_u64(bytes),
            })
        })
    }

    fn health(&self) -> StorageResult<()> {
        self.read(|tx| {
            tx.query_row("SELECT count(*) FROM workspaces", [], |row| {
                row.get::<_, i64>(0)
            })?;
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
            let (workspace, epoch): (i64, u32) = tx
                .prepare_cached("SELECT id, epoch FROM workspaces WHERE public_id = ?1")?
                .query_row([&device.workspace_id], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?
                .ok_or_else(|| StorageError::NotFound {
                    what: format!("workspace {}", device.workspace_id),
                })?;
            // Re-checked inside the transaction: a revocation committed after authentication
            // still stops this write.
            let caller = live_device(tx, &device.id, workspace)?.key;
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
            if write.insert {
                tx.prepare_cached(
                    "INSERT INTO check_ins (workspace, id, device, state, deadline, version,
                                            epoch, sealed, updated_at, alert_kind)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )?
                .execute(params![
                    workspace,
                    &request.id[..],
                    caller,
                    write.state,
                    write.deadline,
                    to_i64(request.version),
                    request.epoch,
                    &request.sealed,
                    now,
                    kind
                ])?;
            } else {
                tx.prepare_cached(
                    "UPDATE check_ins SET state = ?3, deadline = ?4, version = ?5, epoch = ?6,
                            sealed = ?7, updated_at = ?8, overdue_at = ?9,
                            alert_kind = CASE WHEN ?10 THEN ?11 ELSE alert_kind END,
                            claimed_at = CASE WHEN ?10 THEN NULL ELSE claimed_at END,
                            alerted_at = CASE WHEN ?10 THEN NULL ELSE alerted_at END,
                            attempts = CASE WHEN ?10 THEN 0 ELSE attempts END
                     WHERE workspace = ?1 AND id = ?2",
                )?
                .execute(params![
                    workspace,
                    &request.id[..],
                    write.state,
                    write.deadline,
                    to_i64(request.version),
                    request.epoch,
                    &request.sealed,
                    now,
                    write.overdue_at,
                    reset,
                    kind
                ])?;
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
        self.read(|tx| reads::check_ins(&mut Sql(tx), workspace_id, now, grace_secs))
    }

    fn mark_overdue_check_ins(&self, now: i64, grace_secs: u64) -> StorageResult<u64> {
        let cutoff = now.saturating_sub(to_i64(grace_secs));
        self.write(|tx| {
            let marked = tx
                .prepare_cached(
                    "UPDATE check_ins SET state = 'overdue', overdue_at = ?1,
                            alert_kind = 'overdue', claimed_at = NULL, alerted_at = NULL,
                            attempts = 0
                     WHERE state = 'open' AND deadline <= ?2
                     RETURNING workspace",
                )?
                .query_map(params![now, cutoff], |row| row.get(0))?
                .collect::<Result<Vec<i64>, _>>()?;
            let count = u64::try_from(marked.len()).unwrap_or(u64::MAX);
            bump_check_ins(tx, marked)?;
            Ok(count)
        })
    }

    fn purge_check_ins(&self, now: i64) -> StorageResult<u64> {
        self.write(|tx| {
            let purged = tx
                .prepare_cached(
                    "DELETE FROM check_ins
                     WHERE state IN ('closed', 'alarm') AND updated_at < ?1
                       AND (alert_kind IS NULL OR alerted_at IS NOT NULL OR attempts >= ?2)
                     RETURNING workspace",
                )?
                .query_map(
                    params![now.saturating_sub(CHECK_IN_KEPT_SECS), MAX_ALERT_ATTEMPTS],
                    |row| row.get(0),
                )?
                .collect::<Result<Vec<i64>, _>>()?;
            let count = u64::try_from(purged.len()).unwrap_or(u64::MAX);
            bump_check_ins(tx, purged)?;
            Ok(count)
        })
    }

    fn claim_check_in_alerts(&self, now: i64) -> StorageResult<Vec<CheckInAlert>> {
        self.write(|tx| {
            type Claimed = (i64, Vec<u8>, i64, String, i64, i64, u32);
            let claimed = tx
                .prepare_cached(
                    "UPDATE check_ins SET claimed_at = ?1, attempts = attempts + 1
                     WHERE alert_kind IS NOT NULL AND alerted_at IS NULL AND attempts < ?2
                       AND (claimed_at IS NULL OR claimed_at < ?3)
                     RETURNING workspace, id, device, alert_kind, deadline, version, attempts",
                )?
                .query_map(
                    params![
                        now,
                        MAX_ALERT_ATTEMPTS,
                        now.saturating_sub(ALERT_CLAIM_SECS)
                    ],
                    |row| {
                        Ok((
                            row.get(0)?,
                            row.get(1)?,
                            row.get(2)?,
                            row.get(3)?,
                            row.get(4)?,
                            row.get(5)?,
                            row.get(6)?,
                        ))
                    },
                )?
                .collect::<Result<Vec<Claimed>, _>>()?;
            let mut names = tx.prepare_cached(
                "SELECT w.public_id, d.name FROM workspaces w, devices d
                 WHERE w.id = ?1 AND d.id = ?2",
            )?;
            let mut alerts = Vec::with_capacity(claimed.len());
            for (workspace, id, device, kind, deadline, version, attempts) in claimed {
                let (workspace_id, device_name): (String, String) = names
                    .query_row(params![workspace, device], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })?;
                let kind = AlertKind::from_stored(&kind)?;
                alerts.push(CheckInAlert {
                    workspace_id,
                    check_in: fixed(id)?,
                    device_name,
                    kind,
                    minutes_overdue: minutes_overdue(kind, deadline, now),
                    attempts,
                    version: to_u64(version),
                });
            }
            Ok(alerts)
        })
    }

    fn check_in_alert_done(&self, alert: &CheckInAlert, now: i64) -> StorageResult<bool> {
        self.write(|tx| {
            let done = tx
                .prepare_cached(
                    "UPDATE check_ins SET alerted_at = ?1
                     WHERE workspace = (SELECT id FROM workspaces WHERE public_id = ?2)
                       AND id = ?3 AND version = ?4 AND alert_kind = ?5 AND alerted_at IS NULL",
                )?
                .execute(params![
                    now,
                    alert.workspace_id,
                    &alert.check_in[..],
                    to_i64(alert.version),
                    alert.kind.as_str()
                ])?;
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
            let workspace = workspace_key(tx, &caller.workspace_id)?;
            // The role and key as stored now: a coordinator demoted or revoked since the
            // request was authenticated publishes nothing.
            let signer = live_device(tx, &caller.id, workspace)?;
            check_may_handle_tips(&signer.role)?;
            let sign_key = stored_key(signer.sign_key)?;
            let statement = check_tip_page(request, &caller.id, &caller.workspace_id, &sign_key)?;
            let taken = tx
                .prepare_cached("SELECT 1 FROM tip_pages WHERE page = ?1 AND workspace != ?2")?
                .exists(params![statement.page, workspace])?;
            if taken {
                return Err(StorageError::Conflict(
                    "this page path is another workspace's: choose another".into(),
                ));
            }
            tx.prepare_cached(
                "INSERT INTO tip_pages (workspace, page, statement, device, signature,
                                        published_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (workspace) DO UPDATE SET page = excluded.page,
                     statement = excluded.statement, device = excluded.device,
                     signature = excluded.signature, published_at = excluded.published_at",
            )?
            .execute(params![
                workspace,
                statement.page,
                &request.statement,
                signer.key,
                &request.signature,
                now
            ])?;
            Ok(())
        })
    }

    fn tip_page(&self, workspace_id: &str) -> StorageResult<Option<TipPageRequest>> {
        self.read(|tx| reads::tip_page(&mut Sql(tx), workspace_id))
    }

    fn tip_page_statement(&self, page: &str) -> StorageResult<Option<Vec<u8>>> {
        self.read(|tx| reads::tip_page_statement(&mut Sql(tx), page))
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
                .prepare_cached("SELECT workspace FROM tip_pages WHERE page = ?1")?
                .query_row([page], |row| row.get(0))
                .optional()?
                .ok_or_else(|| StorageError::NotFound {
                    what: "tip page".into(),
                })?;
            let id: Option<i64> = tx
                .prepare_cached(
                    "UPDATE workspaces SET tips_waiting = tips_waiting + 1,
                            tips_seq = tips_seq + 1
                     WHERE id = ?1 AND tips_waiting < ?2
                     RETURNING tips_seq",
                )?
                .query_row(params![workspace, to_i64(max_waiting)], |row| row.get(0))
                .optional()?;
            let Some(id) = id else {
                return Ok(TipReceipt::Full);
            };
            tx.prepare_cached(
                "INSERT INTO tips (workspace, id, received_hour, epoch, ephemeral, nonce, sealed)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                workspace,
                id,
                received_hour(now),
                tip.epoch,
                &tip.ephemeral[..],
                &tip.nonce[..],
                &tip.sealed
            ])?;
            Ok(TipReceipt::Stored)
        })
    }

    fn tips(&self, workspace_id: &str, max: usize) -> StorageResult<Vec<TipEntry>> {
        self.read(|tx| reads::tips(&mut Sql(tx), workspace_id, max))
    }

    fn tips_done(&self, caller: &Device, ids: &[u64]) -> StorageResult<u64> {
        self.write(|tx| {
            let workspace = workspace_key(tx, &caller.workspace_id)?;
            check_may_handle_tips(&live_device(tx, &caller.id, workspace)?.role)?;
            let mut delete =
                tx.prepare_cached("DELETE FROM tips WHERE workspace = ?1 AND id = ?2")?;
            let mut deleted: u64 = 0;
            for &id in ids.iter().filter(|&&id| id <= limits::MAX_CURSOR) {
                deleted +=
                    u64::try_from(delete.execute(params![workspace, to_i64(id)])?).unwrap_or(0);
            }
            if deleted > 0 {
                tx.prepare_cached(
                    "UPDATE workspaces SET tips_waiting = tips_waiting - ?1 WHERE id = ?2",
                )?
                .execute(params![to_i64(deleted), workspace])?;
            }
            Ok(deleted)
        })
    }

    fn put_tip_reply(&self, caller: &Device, request: &TipReplyRequest) -> StorageResult<()> {
        self.write(|tx| {
            let workspace = workspace_key(tx, &caller.workspace_id)?;
            check_may_handle_tips(&live_device(tx, &caller.id, workspace)?.role)?;
            let kept: i64 = tx
                .prepare_cached(
                    "SELECT count(*) FROM tip_replies WHERE workspace = ?1 AND lookup = ?2",
                )?
                .query_row(params![workspace, &request.lookup], |row| row.get(0))?;
            if usize::try_from(kept).unwrap_or(usize::MAX) >= limits::MAX_TIP_REPLIES {
                return Err(StorageError::Conflict(format!(
                    "this receipt has {} replies already, as many as it may",
                    limits::MAX_TIP_REPLIES
                )));
            }
            tx.prepare_cached(
                "INSERT INTO tip_replies (workspace, lookup, ephemeral, nonce, sealed)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                workspace,
                &request.lookup,
                &request.ephemeral[..],
                &request.nonce[..],
                &request.sealed
            ])?;
            Ok(())
        })
    }

    fn tip_replies(&self, page: &str, lookup: &[u8]) -> StorageResult<Option<Vec<TipReply>>> {
        self.read(|tx| reads::tip_replies(&mut Sql(tx), page, lookup))
    }
}

/// The check-in `id` of `workspace` as stored, if any.
fn stored_check_in(
    tx: &Connection,
    workspace: i64,
    id: &[u8],
) -> StorageResult<Option<StoredCheckIn>> {
    Ok(tx
        .prepare_cached(
            "SELECT device, state, deadline, version, overdue_at, alert_kind, alerted_at
             FROM check_ins WHERE workspace = ?1 AND id = ?2",
        )?
        .query_row(params![workspace, id], |row| {
            Ok(StoredCheckIn {
                device: row.get(0)?,
                state: row.get(1)?,
                deadline: row.get(2)?,
                version: to_u64(row.get(3)?),
                overdue_at: row.get(4)?,
                alert_kind: row.get(5)?,
                alerted_at: row.get(6)?,
            })
        })
        .optional()?)
}

/// How many check-ins device row `device` has open (overdue ones included).
fn open_check_ins(tx: &Connection, device: i64) -> StorageResult<usize> {
    let open: i64 = tx
        .prepare_cached(
            "SELECT count(*) FROM check_ins WHERE device = ?1 AND state IN ('open', 'overdue')",
        )?
        .query_row([device], |row| row.get(0))?;
    Ok(usize::try_from(open).unwrap_or(usize::MAX))
}

/// Bumps the check-ins version of each workspace row in `workspaces` once.
fn bump_check_ins(tx: &Connection, mut workspaces: Vec<i64>) -> StorageResult<()> {
    workspaces.sort_unstable();
    workspaces.dedup();
    let mut bump = tx.prepare_cached(
        "UPDATE workspaces SET check_ins_version = check_ins_version + 1 WHERE id = ?1",
    )?;
    for workspace in workspaces {
        bump.execute([workspace])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::storage::tests::READS_CHAIN;
    use waymark_protocol::CHAIN_START;

    /// The backfill runs right after the script that adds the column, so a later migration
    /// that reads chain hashes (to index or check them) finds them filled in.
    #[test]
    fn migrations_after_schema_4_see_the_chain_hashes_of_older_blobs() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_with(&mut conn, &MIGRATIONS[..3]).unwrap();
        conn.execute_batch(
            "INSERT INTO workspaces (id, public_id, created_at, head_seq) VALUES (1, 'w', 0, 2);
             INSERT INTO devices (id, public_id, workspace, name, token_hash, enrolled_at)
                 VALUES (1, 'd', 1, 'phone', X'01', 0);",
        )
        .unwrap();
        for seq in 1..=2u8 {
            conn.execute(
                "INSERT INTO blobs (workspace, seq, content_id, doc_id, epoch, device, size,
                                    ciphertext, created_at)
                 VALUES (1, ?1, ?2, zeroblob(16), 0, 1, 1, X'00', 0)",
                params![seq, &[seq; 32][..]],
            )
            .unwrap();
        }
        let scripts: Vec<&str> = MIGRATIONS.iter().copied().chain([READS_CHAIN]).collect();
        migrate_with(&mut conn, &scripts).unwrap();
        let seen: Vec<Option<Vec<u8>>> = conn
            .prepare("SELECT chain FROM seen ORDER BY seq")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let first = chain_next(&CHAIN_START, 1, &[1; 32]);
        let second = chain_next(&first, 2, &[2; 32]);
        assert_eq!(seen, [Some(first.to_vec()), Some(second.to_vec())]);
    }
}
