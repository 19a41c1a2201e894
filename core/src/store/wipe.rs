//! The panic button: `wipe` destroys the store's key and files so that nothing on the device
//! can be read afterwards.
//!
//! What is guaranteed and what is not:
//! - Every page is encrypted with the store key (SQLCipher, AES-256 with a raw key). Once the
//!   platform keystore has deleted that key (the Kotlin and Swift wrappers do it as part of their
//!   wipe) and this process has let go of its copies, a copy of the flash taken later holds
//!   only ciphertext: this is the guarantee, and it rests on the key, not on overwriting.
//! - In this process, the key is zeroized (`Zeroizing`) and every connection is closed, which
//!   makes SQLCipher wipe its own key buffers. Copies the allocator already freed (SQLite
//!   keeps the text of a statement while it runs) are not zeroed.
//! - Before unlinking, the first page (SQLCipher salt and the schema root), every page of the
//!   tables that hold keys and server credentials, and the whole write-ahead log are
//!   overwritten with zeros and synced. On a plain disk that removes them; on flash, the
//!   translation layer and copy-on-write file systems (F2FS, APFS) may keep the old blocks,
//!   so overwriting is a best effort that costs little (see README "Security at rest").
//!
//! The server credentials of every connected workspace are read into memory before anything
//! is destroyed and returned, so the host can tell each server to revoke this device once the
//! network allows.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use rusqlite::config::DbConfig;
use zeroize::Zeroizing;

use super::{Store, lock};
use crate::error::{Error, Result, StorageError};

/// The files SQLite may keep next to the database, overwritten (all of it) before unlinking:
/// they can hold newer copies of any page.
const LOG_SUFFIXES: &[&str] = &["-wal", "-journal"];
/// The write-ahead log's index: page numbers and checksums, no page content; only unlinked.
const INDEX_SUFFIX: &str = "-shm";

/// One connected workspace's server and device credentials, kept in memory by `wipe` so that
/// the host can ask the server to revoke this device.
#[derive(Clone, PartialEq, Eq)]
pub struct PendingRevocation {
    /// The local workspace id.
    pub workspace_id: String,
    /// The sync server's base URL.
    pub server_url: String,
    /// The workspace's id on that server.
    pub server_workspace_id: String,
    /// This device's id on that server.
    pub device_id: String,
    /// This device's bearer token on that server (zeroized when dropped).
    pub device_token: Zeroizing<String>,
}

impl std::fmt::Debug for PendingRevocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a credential: never in a log line.
        f.debug_struct("PendingRevocation")
            .field("workspace_id", &self.workspace_id)
            .field("server_url", &self.server_url)
            .field("server_workspace_id", &self.server_workspace_id)
            .field("device_id", &self.device_id)
            .field("device_token", &"<redacted>")
            .finish()
    }
}

/// What `wipe` leaves to the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WipeReport {
    /// Workspaces whose server should be told that this device is gone (not yet revoked ones).
    pub pending_revocations: Vec<PendingRevocation>,
    /// How many files of the store were removed.
    pub files_removed: u32,
}

/// What must be read from the database before it is closed for good.
struct Doomed {
    revocations: Vec<PendingRevocation>,
    page_size: u64,
    key_pages: Vec<u64>,
}

impl Store {
    /// Destroys this store: every handle to it fails with `Wiped` from now on, the key is
    /// zeroized, the connections are closed and the files are overwritten where it matters and
    /// removed. Returns the server credentials the host needs to have the device revoked.
    ///
    /// The platform key must be deleted too (the Kotlin/Swift wrappers do it): it is what makes
    /// a copy of the file taken before the wipe unreadable. A write in progress (even a long
    /// import) is stopped and rolled back, reads in progress finish (milliseconds), a sync's
    /// network calls are not waited for; all of them then fail with `Wiped`. A second call
    /// fails with `Wiped`.
    pub fn wipe(&self) -> Result<WipeReport> {
        // A long write (an import, a rebuild) would hold the writer for seconds: make its next
        // statement abort; its transaction rolls back and its caller gets `Wiped`.
        self.inner
            .wiping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let doomed = {
            // Writer first, then the key: the same order as `rekey`, and a read in progress
            // (which holds the key shared) finishes before the connections close.
            let mut writer = lock(&self.inner.writer);
            let mut key = self.inner.key.write().unwrap_or_else(|p| p.into_inner());
            let Some(mut w) = writer.take() else {
                return Err(Error::Wiped);
            };
            // The handler that stopped other writes would stop these reads too.
            let _ = w.conn.progress_handler(0, None::<fn() -> bool>);
            // Dropping the `Zeroizing` key overwrites it.
            *key = None;
            lock(&self.inner.readers).clear();
            // Reading what the host needs must not stand in the way of the wipe itself.
            let doomed = Doomed {
                revocations: pending_revocations(&w.conn).unwrap_or_default(),
                page_size: page_size(&w.conn),
                key_pages: key_pages(&w.conn).unwrap_or_default(),
            };
            // The writer is the last connection: closing it would copy the whole log into the
            // file first, only for both to be destroyed. Failing to turn that off only costs
            // time.
            let _ = w
                .conn
                .set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true);
            drop(w);
            doomed
        };
        let files_removed = destroy(&self.inner.path, doomed.page_size, &doomed.key_pages)?;
        Ok(WipeReport {
            pending_revocations: doomed.revocations,
            files_removed,
        })
    }

    /// Destroys the files of a store that cannot be opened (its key is lost, or a wipe was
    /// interrupted) the way `wipe` does; returns how many files were removed. No store may be
    /// open on `path`.
    pub fn destroy_files(path: impl AsRef<Path>) -> Result<u32> {
        destroy(path.as_ref(), DEFAULT_PAGE_SIZE, &[])
    }
}

/// SQLCipher's page size (the store never changes it).
const DEFAULT_PAGE_SIZE: u64 = 4096;

/// The server credentials of every workspace whose device is not revoked yet.
fn pending_revocations(conn: &Connection) -> Result<Vec<PendingRevocation>> {
    Ok(conn
        .prepare(
            "SELECT workspace_id, server_url, server_workspace_id, device_id, device_token
             FROM memberships WHERE revoked = 0 ORDER BY workspace_id",
        )?
        .query_map([], |r| {
            Ok(PendingRevocation {
                workspace_id: r.get(0)?,
                server_url: r.get(1)?,
                server_workspace_id: r.get(2)?,
                device_id: r.get(3)?,
                device_token: Zeroizing::new(r.get(4)?),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

/// The database's page size (SQLCipher answers `PRAGMA page_size` as text).
fn page_size(conn: &Connection) -> u64 {
    conn.query_row("PRAGMA page_size", [], |r| r.get::<_, String>(0))
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n: &u64| n >= 512)
        .unwrap_or(DEFAULT_PAGE_SIZE)
}

/// Page numbers of the tables (and their indexes) that hold keys or credentials: workspace
/// keys, memberships with device tokens and device private keys, invite secrets (matched by
/// name, so that a later table of keys or secrets is covered too).
fn key_pages(conn: &Connection) -> Result<Vec<u64>> {
    let names: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_master
             WHERE type IN ('table', 'index')
               AND (tbl_name LIKE '%key%' OR tbl_name LIKE '%secret%'
                    OR tbl_name = 'memberships')",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut pages = Vec::new();
    // `dbstat` constrained by name walks only that b-tree (overflow pages included).
    let mut st = conn.prepare("SELECT pageno FROM dbstat WHERE name = ?1")?;
    for name in names {
        let found = st
            .query_map([name], |r| r.get::<_, i64>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        pages.extend(found.into_iter().filter_map(|p| u64::try_from(p).ok()));
    }
    Ok(pages)
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Overwrites and removes the store's files; returns how many there were.
fn destroy(db: &Path, page_size: u64, key_pages: &[u64]) -> Result<u32> {
    let io = |source| StorageError::Io {
        what: "wipe",
        source,
    };
    let mut removed = 0;
    // Logs and index go first: a database file left alone by a crash mid-wipe is unreadable
    // (its first page is gone), while a log left next to a new database would be replayed
    // into it.
    for suffix in LOG_SUFFIXES {
        let p = with_suffix(db, suffix);
        if p.exists() {
            let len = std::fs::metadata(&p).map_err(io)?.len();
            overwrite(&p, &[(0, len)]).map_err(io)?;
            std::fs::remove_file(&p).map_err(io)?;
            removed += 1;
        }
    }
    let shm = with_suffix(db, INDEX_SUFFIX);
    if shm.exists() {
        std::fs::remove_file(&shm).map_err(io)?;
        removed += 1;
    }
    if db.exists() {
        let len = std::fs::metadata(db).map_err(io)?.len();
        let mut ranges = vec![(0, page_size.min(len))];
        ranges.extend(
            key_pages
                .iter()
                .filter(|&&p| p > 1)
                .map(|p| ((p - 1) * page_size, page_size))
                .filter(|(at, _)| *at < len),
        );
        overwrite(db, &ranges).map_err(io)?;
        std::fs::remove_file(db).map_err(io)?;
        removed += 1;
    }
    // Make the removals durable: a power cut must not bring the names back.
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(removed)
}

/// Writes zeros over each `(offset, length)` of `path`, then syncs it to the device.
fn overwrite(path: &Path, ranges: &[(u64, u64)]) -> std::io::Result<()> {
    const CHUNK: usize = 64 * 1024;
    let zeros = [0u8; CHUNK];
    let mut f = OpenOptions::new().write(true).open(path)?;
    for &(at, len) in ranges {
        f.seek(SeekFrom::Start(at))?;
        let mut left = len;
        while left > 0 {
            let n = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
            f.write_all(&zeros[..n])?;
            left -= n as u64;
        }
    }
    f.sync_data()
}
