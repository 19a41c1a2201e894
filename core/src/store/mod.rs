//! The encrypted local store: one SQLCipher database holding every document, its projections
//! and the device's identity.
//!
//! Concurrency follows one rule: exactly one writer connection, guarded by a mutex, and a pool
//! of read-only connections beside it. SQLite in WAL mode lets readers see the last committed
//! state while a write is in progress, so lists and searches never wait on an edit. Every edit
//! loads its document, applies the change, and in one transaction appends the Automerge chunk
//! and refreshes the projection rows: when a call returns, all of it is on disk (`synchronous
//! = FULL`), and a process killed at any instant leaves either all of it or none.
//!
//! The API is blocking; hosts call it from a worker thread.

pub(crate) mod alerts;
pub(crate) mod chain_marks;
pub(crate) mod check_ins;
pub(crate) mod docs;
mod error;
mod forget;
pub(crate) mod invite_secrets;
pub(crate) mod keys;
pub(crate) mod memberships;
pub(crate) mod outbox;
pub(crate) mod projection;
mod query;
mod rekey;
pub(crate) mod schema;
pub(crate) mod set_aside;
pub(crate) mod signers;
pub(crate) mod snapshot_packs;
pub(crate) mod team_devices;
pub(crate) mod team_log;
pub(crate) mod team_lookups;
pub(crate) mod tips;
mod wipe;
pub(crate) mod workspaces;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use automerge::transaction::CommitOptions;
use automerge::{ActorId, AutoCommit};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::ids::new_id;
use crate::model::*;
use crate::records::{self, Header, meta, settings, visit, workshop};
pub use error::{ExportError, StorageError};

pub(crate) use docs::{StoredDoc, forget as forget_document};
pub(crate) use forget::{checkpoint, replace as replace_document};
pub use wipe::{PendingRevocation, WipeReport};

/// Length of a store key in bytes.
pub const KEY_LEN: usize = 32;

/// How many documents the writer keeps decoded in memory.
const CACHE_CAPACITY: usize = 128;

/// Milliseconds since the Unix epoch, from the device clock.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// An open store. Cheap to clone; `Send + Sync`; every method is blocking.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// The key new connections are opened with; `None` once the store is wiped. Readers hold
    /// it shared for the whole of a read, so `rekey` and `wipe` (which take it exclusively,
    /// always after the writer lock) know that no connection is in use. A read must therefore
    /// never start another read or take the writer lock.
    key: RwLock<Option<Zeroizing<[u8; KEY_LEN]>>>,
    actor: ActorId,
    // Field order is drop order: readers close first so that the writer is the last connection
    // to close, which checkpoints the WAL into the database file and removes it.
    readers: Mutex<Vec<Connection>>,
    /// Held for the whole of a sync: two overlapping syncs of one store would only push and
    /// pull the same blobs twice.
    sync_lock: Mutex<()>,
    /// `None` once the store is wiped.
    writer: Mutex<Option<Writer>>,
    /// Set when a wipe begins: from then on every statement of the writer aborts (see
    /// `open`), so a wipe does not wait for a long import or rebuild, and the write it stopped
    /// fails with `Wiped`.
    wiping: Arc<AtomicBool>,
    /// Whether the app allowed plain `http://` to servers beyond this machine.
    insecure_transport: AtomicBool,
}

/// The writer connection with the documents it has decoded recently.
pub(crate) struct Writer {
    conn: Connection,
    cache: DocCache,
}

impl Writer {
    /// Begins a transaction on the writer connection, for the store's typed functions.
    pub(crate) fn transaction(&mut self) -> Result<Transaction<'_>> {
        Ok(self.conn.transaction()?)
    }

    /// The writer connection, for one of the store's typed functions outside a transaction.
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }
}

/// A small most-recently-used cache of decoded documents, only touched under the writer lock.
#[derive(Default)]
struct DocCache {
    docs: HashMap<String, StoredDoc>,
    order: VecDeque<String>,
}

impl DocCache {
    fn take(&mut self, id: &str) -> Option<StoredDoc> {
        let d = self.docs.remove(id)?;
        self.order.retain(|k| k != id);
        Some(d)
    }

    fn put(&mut self, id: String, doc: StoredDoc) {
        if self.docs.len() >= CACHE_CAPACITY
            && let Some(old) = self.order.pop_front()
        {
            self.docs.remove(&old);
        }
        self.order.push_back(id.clone());
        self.docs.insert(id, doc);
    }

    fn clear(&mut self) {
        self.docs.clear();
        self.order.clear();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave SQLite half-written (transactions roll
    // back on drop), so the guarded state is still consistent: keep going.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Opens a connection and unlocks it with `key`; a wrong key is reported as such.
fn connect(path: &Path, key: &[u8; KEY_LEN], read_only: bool) -> Result<Connection> {
    use rusqlite::OpenFlags;
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)?;
    // A raw 256-bit key: no passphrase derivation, so opening stays fast; the key itself
    // comes from the platform keystore.
    // SQLCipher logs a failed page check (a wrong key) to stderr / logcat; the typed error
    // says it better, and app logs should carry nothing about the store.
    conn.execute_batch("PRAGMA cipher_log_level = NONE;")?;
    let pragma = Zeroizing::new(format!("PRAGMA key = \"x'{}'\";", hex::encode(key)));
    conn.execute_batch(&pragma)?;
    match conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    }) {
        Ok(_) => {}
        Err(e) => {
            return Err(match Error::from(e) {
                Error::WrongKey | Error::Corrupt(_) => Error::WrongKey,
                other => other,
            });
        }
    }
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // One edit runs about twenty distinct statements; the default cache of 16 would re-parse
    // every one of them on every edit.
    conn.set_prepared_statement_cache_capacity(64);
    // Decrypted pages kept per connection: a cache miss costs a read and a decryption. The
    // writer's cache holds the indexes a big pull inserts into at random (ids are random), or
    // each insert would read and decrypt a page, and the cost per record would grow with the
    // store; readers serve lists and searches and need less.
    conn.execute_batch(if read_only {
        "PRAGMA cache_size = -8192;"
    } else {
        "PRAGMA cache_size = -32768;"
    })?;
    if read_only {
        conn.execute_batch("PRAGMA query_only = ON;")?;
    } else {
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA secure_delete = ON;",
        )?;
    }
    Ok(conn)
}

impl Store {
    /// Opens (creating if needed) the store at `path`, encrypted with the 32-byte `key`.
    ///
    /// Fails with `WrongKey` if the key does not open an existing file, and with
    /// `NewerSchema` if the file comes from a newer Waymark; in both cases nothing is changed.
    pub fn open(path: impl AsRef<Path>, key: &[u8]) -> Result<Store> {
        Self::open_with_migrations(path.as_ref(), key, schema::MIGRATIONS)
    }

    pub(crate) fn open_with_migrations(
        path: &Path,
        key: &[u8],
        migrations: &[schema::Migration],
    ) -> Result<Store> {
        let key: [u8; KEY_LEN] = key
            .try_into()
            .map_err(|_| Error::invalid("key", format!("must be {KEY_LEN} bytes")))?;
        let key = Zeroizing::new(key);
        if path.exists() {
            // Check the key on a read-only connection first: a read-write connection opened
            // with a wrong key could, on closing, checkpoint a pending WAL through the wrong
            // cipher and damage the file.
            drop(connect(path, &key, true)?);
        }
        let mut conn = connect(path, &key, false)?;
        schema::migrate(&mut conn, migrations)?;
        let actor = {
            let tx = conn.transaction()?;
            let actor = match tx
                .query_row("SELECT value FROM meta WHERE key = 'actor'", [], |r| {
                    r.get::<_, Vec<u8>>(0)
                })
                .optional()?
            {
                Some(a) => ActorId::from(a),
                None => {
                    let a = rand::random::<[u8; 16]>();
                    tx.execute(
                        "INSERT INTO meta(key, value) VALUES ('actor', ?1)",
                        params![a.to_vec()],
                    )?;
                    ActorId::from(a)
                }
            };
            keys::ensure_all(&tx)?;
            tx.commit()?;
            actor
        };
        let wiping = Arc::new(AtomicBool::new(false));
        {
            // Called every thousand virtual machine steps of the writer's statements; a true
            // aborts the statement (and so the transaction). Costs one atomic load.
            let wiping = wiping.clone();
            conn.progress_handler(1000, Some(move || wiping.load(Ordering::Relaxed)))?;
        }
        let store = Store {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                key: RwLock::new(Some(key)),
                actor,
                readers: Mutex::new(Vec::new()),
                sync_lock: Mutex::new(()),
                writer: Mutex::new(Some(Writer {
                    conn,
                    cache: DocCache::default(),
                })),
                wiping,
                insecure_transport: AtomicBool::new(false),
            }),
        };
        let stale: bool = store.with_writer(|w| {
            Ok(w.conn
                .query_row(
                    "SELECT value FROM meta WHERE key = 'projections_stale'",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .optional()?
                .unwrap_or(0)
                != 0)
        })?;
        if stale {
            store.rebuild_projections()?;
        }
        Ok(store)
    }

    /// Lets this store reach sync servers over plain `http://` on any host, for this handle's
    /// lifetime. Off by default: without TLS a device's token crosses the network in clear
    /// text (the records stay sealed). Only for tests and closed networks; `http://` to this
    /// machine (loopback) is always accepted.
    pub fn allow_insecure_transport(&self, allow: bool) {
        self.inner
            .insecure_transport
            .store(allow, Ordering::Relaxed);
    }

    /// Whether the app allowed insecure transport (see [`Store::allow_insecure_transport`]).
    pub(crate) fn insecure_transport(&self) -> bool {
        self.inner.insecure_transport.load(Ordering::Relaxed)
    }

    /// This device's Automerge actor id (hex): how its changes are attributed.
    pub fn actor(&self) -> String {
        self.inner.actor.to_hex_string()
    }

    /// Runs `f` on a read-only connection from the pool.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let key = self.inner.key.read().unwrap_or_else(|p| p.into_inner());
        let Some(key) = key.as_ref() else {
            return Err(Error::Wiped);
        };
        let conn = match lock(&self.inner.readers).pop() {
            Some(c) => c,
            None => connect(&self.inner.path, key, true)?,
        };
        let out = f(&conn);
        // Back to the pool while the key is still held shared: a rekey cannot have started.
        lock(&self.inner.readers).push(conn);
        out
    }

    /// Runs `f` with the writer (connection and document cache) held.
    pub(crate) fn with_writer<T>(&self, f: impl FnOnce(&mut Writer) -> Result<T>) -> Result<T> {
        let mut guard = lock(&self.inner.writer);
        let Some(w) = guard.as_mut() else {
            return Err(Error::Wiped);
        };
        let out = f(w);
        if out.is_err() {
            // A failed call may have left a decoded document ahead of what was committed.
            w.cache.clear();
            if self.inner.wiping.load(Ordering::SeqCst) {
                return Err(Error::Wiped);
            }
        }
        out
    }

    fn new_doc(&self) -> AutoCommit {
        AutoCommit::new().with_actor(self.inner.actor.clone())
    }

    /// Creates a document with `f`, stores it and its projections; returns its id.
    fn create_doc(
        &self,
        kind: RecordKind,
        workspace: &str,
        f: impl FnOnce(&mut AutoCommit, i64) -> Result<()>,
    ) -> Result<String> {
        let id = new_id();
        let now = now_ms();
        let mut doc = self.new_doc();
        f(&mut doc, now)?;
        doc.commit_with(CommitOptions::default().with_time(now));
        self.insert_doc(&id, kind, workspace, doc)?;
        Ok(id)
    }

    /// Stores a new document `id`, made and committed by the caller, with its projections and
    /// its change queued for the server.
    pub(crate) fn insert_doc(
        &self,
        id: &str,
        kind: RecordKind,
        workspace: &str,
        doc: AutoCommit,
    ) -> Result<()> {
        self.with_writer(|w| {
            let tx = w.conn.transaction()?;
            ensure_workspace(&tx, workspace)?;
            if kind == RecordKind::Settings {
                keys::insert(&tx, workspace, 0, &crate::crypto::new_workspace_key())?;
            }
            let mut stored = StoredDoc {
                doc,
                workspace: workspace.to_string(),
                kind,
            };
            let snapshot = docs::insert(&tx, id, &mut stored)?;
            outbox::enqueue(
                &tx,
                workspace,
                id,
                kind,
                &snapshot,
                records::is_restricted(&stored.doc),
            )?;
            projection::refresh_new(&tx, id, &stored.doc)?;
            tx.commit()?;
            w.cache.put(id.to_string(), stored);
            Ok(())
        })
    }

    /// Applies `f` to document `id` (which must be of `kind`), commits it as one change, and
    /// stores the change with refreshed projections. Returns what `f` returned.
    pub(crate) fn edit_doc<T>(
        &self,
        id: &str,
        kind: RecordKind,
        f: impl FnOnce(&mut AutoCommit, i64) -> Result<T>,
    ) -> Result<T> {
        crate::validate::id("id", id)?;
        self.with_writer(|w| {
            let mut stored = match w.cache.take(id) {
                Some(d) => d,
                None => docs::load(&w.conn, id, &self.inner.actor)?
                    .ok_or_else(|| Error::not_found(format!("{} {id}", kind.as_str())))?,
            };
            if stored.kind != kind {
                return Err(Error::not_found(format!("{} {id}", kind.as_str())));
            }
            let before = stored.doc.get_heads();
            let was_restricted = records::is_restricted(&stored.doc);
            let now = now_ms();
            let out = f(&mut stored.doc, now)?;
            if stored
                .doc
                .commit_with(CommitOptions::default().with_time(now))
                .is_some()
            {
                let chunk = stored.doc.save_after(&before);
                let restricted = records::is_restricted(&stored.doc);
                let tx = w.conn.transaction()?;
                docs::append(&tx, id, &mut stored, &chunk)?;
                if was_restricted && !restricted {
                    // Members never had its history: they get all of it, now it is theirs.
                    let whole = stored.doc.save();
                    outbox::enqueue(&tx, &stored.workspace, id, kind, &whole, false)?;
                } else {
                    outbox::enqueue(&tx, &stored.workspace, id, kind, &chunk, restricted)?;
                }
                projection::refresh(&tx, id, &stored.doc)?;
                tx.commit()?;
            }
            w.cache.put(id.to_string(), stored);
            Ok(out)
        })
    }

    /// Loads document `id` through a reader connection.
    pub(crate) fn load_doc(&self, id: &str) -> Result<Option<StoredDoc>> {
        crate::validate::id("id", id)?;
        self.read(|c| docs::load(c, id, &self.inner.actor))
    }

    /// Document `id` and its header, `NotFound` unless it is a record of `kind`.
    pub(crate) fn load_kind(&self, id: &str, kind: RecordKind) -> Result<(AutoCommit, Header)> {
        let not_found = || Error::not_found(format!("{} {id}", kind.as_str()));
        let stored = self.load_doc(id)?.ok_or_else(not_found)?;
        let h = records::header(&stored.doc).ok_or_else(not_found)?;
        if h.kind != kind {
            return Err(not_found());
        }
        Ok((stored.doc, h))
    }

    // ---- workspaces and settings ----

    /// Creates a local workspace with default settings and returns it.
    pub fn create_workspace(&self, name: &str) -> Result<Workspace> {
        crate::validate::required_line("name", name)?;
        let ws = new_id();
        let device = self.device_name()?;
        let actor = self.actor();
        self.create_doc(RecordKind::Settings, &ws, |doc, now| {
            settings::create(doc, &ws, name, (&actor, &device), now)
        })?;
        Ok(Workspace {
            id: ws,
            name: name.to_string(),
        })
    }

    /// The workspaces in this store, by name.
    pub fn workspaces(&self) -> Result<Vec<Workspace>> {
        self.read(|c| {
            let mut st = c.prepare("SELECT id, name FROM workspaces ORDER BY name, id")?;
            let rows = st.query_map([], |r| {
                Ok(Workspace {
                    id: r.get(0)?,
                    name: r.get(1)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn settings_doc_id(&self, workspace: &str) -> Result<String> {
        crate::validate::id("workspace_id", workspace)?;
        self.read(|c| {
            c.query_row(
                "SELECT settings_doc FROM workspaces WHERE id = ?1",
                params![workspace],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()?
            .flatten()
            .ok_or_else(|| Error::not_found(format!("settings of workspace {workspace}")))
        })
    }

    /// The settings (taxonomies, device names) of a workspace.
    pub fn settings(&self, workspace: &str) -> Result<Settings> {
        let id = self.settings_doc_id(workspace)?;
        let (doc, h) = self.load_kind(&id, RecordKind::Settings)?;
        Ok(settings::read(&doc, &h))
    }

    /// Applies settings edits as one change.
    pub fn update_settings(&self, workspace: &str, edits: &[SettingsEdit]) -> Result<()> {
        edits.iter().try_for_each(settings::validate_edit)?;
        let id = self.settings_doc_id(workspace)?;
        self.edit_doc(&id, RecordKind::Settings, |doc, _| {
            edits.iter().try_for_each(|e| settings::apply(doc, e))
        })
    }

    /// This device's display name (shown to teammates next to its changes).
    pub fn device_name(&self) -> Result<String> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT value FROM meta WHERE key = 'device_name'",
                [],
                |r| r.get::<_, String>(0),
            )
            .optional()?
            .unwrap_or_else(|| "unnamed device".to_string()))
        })
    }

    /// Sets this device's display name, here and in every workspace's settings.
    pub fn set_device_name(&self, name: &str) -> Result<()> {
        crate::validate::required_line("name", name)?;
        self.with_writer(|w| {
            w.conn.execute(
                "INSERT INTO meta(key, value) VALUES ('device_name', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![name],
            )?;
            Ok(())
        })?;
        let actor = self.actor();
        for ws in self.workspaces()? {
            if let Ok(id) = self.settings_doc_id(&ws.id) {
                self.edit_doc(&id, RecordKind::Settings, |doc, _| {
                    settings::set_device_name(doc, &actor, name)
                })?;
            }
        }
        Ok(())
    }

    /// Adds this device's name to a workspace's settings if it is not there yet; true if it
    /// wrote a change.
    pub(crate) fn register_device_name(&self, workspace: &str) -> Result<bool> {
        let actor = self.actor();
        if self.device_names(workspace).contains_key(&actor) {
            return Ok(false);
        }
        let Ok(id) = self.settings_doc_id(workspace) else {
            return Ok(false);
        };
        let name = self.device_name()?;
        self.edit_doc(&id, RecordKind::Settings, |doc, _| {
            settings::set_device_name(doc, &actor, &name)
        })?;
        Ok(true)
    }

    /// Device names of a workspace, keyed by actor hex; empty if its settings are not here yet.
    fn device_names(&self, workspace: &str) -> std::collections::BTreeMap<String, String> {
        self.settings_doc_id(workspace)
            .and_then(|id| self.load_kind(&id, RecordKind::Settings))
            .map(|(doc, _)| settings::device_names(&doc))
            .unwrap_or_default()
    }

    fn require_workspace(&self, workspace: &str) -> Result<()> {
        crate::validate::id("workspace_id", workspace)?;
        let known = self.read(|c| {
            Ok(c.query_row(
                "SELECT 1 FROM workspaces WHERE id = ?1",
                params![workspace],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
        })?;
        if known {
            Ok(())
        } else {
            Err(Error::not_found(format!("workspace {workspace}")))
        }
    }

    // ---- visits ----

    /// Records a field visit; returns its id once it is on disk.
    pub fn create_visit(&self, workspace: &str, v: &NewVisit) -> Result<String> {
        visit::validate_new(v)?;
        self.require_workspace(workspace)?;
        self.create_doc(RecordKind::Visit, workspace, |doc, now| {
            visit::create(doc, workspace, v, now)
        })
    }

    /// Applies edits to a visit as one change.
    pub fn update_visit(&self, id: &str, edits: &[VisitEdit]) -> Result<()> {
        edits.iter().try_for_each(visit::validate_edit)?;
        self.edit_doc(id, RecordKind::Visit, |doc, _| {
            edits.iter().try_for_each(|e| visit::apply(doc, e))
        })
    }

    /// Replaces a visit's notes with `text`, merged character by character with others' edits.
    pub fn set_visit_notes(&self, id: &str, text: &str) -> Result<()> {
        self.update_visit(id, &[VisitEdit::Notes(text.to_string())])
    }

    /// Adds a referral to a visit; returns the referral's id.
    pub fn add_referral(&self, visit_id: &str, r: &NewReferral) -> Result<String> {
        visit::validate_referral(r)?;
        self.edit_doc(visit_id, RecordKind::Visit, |doc, now| {
            visit::add_referral(doc, r, now)
        })
    }

    /// One visit, deleted or not.
    pub fn get_visit(&self, id: &str) -> Result<Visit> {
        let (doc, h) = self.load_kind(id, RecordKind::Visit)?;
        Ok(visit::read(&doc, id, &h))
    }

    // ---- workshops ----

    /// Records an awareness workshop; returns its id.
    pub fn create_workshop(&self, workspace: &str, w: &NewWorkshop) -> Result<String> {
        workshop::validate_new(w)?;
        self.require_workspace(workspace)?;
        self.create_doc(RecordKind::Workshop, workspace, |doc, now| {
            workshop::create(doc, workspace, w, now)
        })
    }

    /// Applies edits to a workshop as one change.
    pub fn update_workshop(&self, id: &str, edits: &[WorkshopEdit]) -> Result<()> {
        edits.iter().try_for_each(workshop::validate_edit)?;
        self.edit_doc(id, RecordKind::Workshop, |doc, _| {
            edits.iter().try_for_each(|e| workshop::apply(doc, e))
        })
    }

    /// Replaces a workshop's notes with `text`, merged character by character.
    pub fn set_workshop_notes(&self, id: &str, text: &str) -> Result<()> {
        self.update_workshop(id, &[WorkshopEdit::Notes(text.to_string())])
    }

    /// Checks a named attendee in; returns the attendee's id.
    pub fn check_in(&self, workshop_id: &str, a: &NewAttendee) -> Result<String> {
        workshop::validate_attendee(a)?;
        self.edit_doc(workshop_id, RecordKind::Workshop, |doc, now| {
            workshop::check_in(doc, a, now)
        })
    }

    /// Marks an attendee as withdrawn (kept, but no longer counted).
    pub fn withdraw_attendee(&self, workshop_id: &str, attendee_id: &str) -> Result<()> {
        crate::validate::id("attendee_id", attendee_id)?;
        self.edit_doc(workshop_id, RecordKind::Workshop, |doc, _| {
            workshop::withdraw(doc, attendee_id)
        })
    }

    /// Adds `delta` (usually 1, negative to correct) to an anonymous tally.
    pub fn add_to_tally(
        &self,
        workshop_id: &str,
        age_band: &str,
        gender: &str,
        delta: i64,
    ) -> Result<()> {
        workshop::validate_tally(age_band, gender, delta)?;
        self.edit_doc(workshop_id, RecordKind::Workshop, |doc, _| {
            workshop::tally(doc, age_band, gender, delta)
        })
    }

    /// Records feedback (score 1-5 and a comment); returns its id.
    pub fn add_feedback(&self, workshop_id: &str, score: u8, comment: &str) -> Result<String> {
        workshop::validate_feedback(score, comment)?;
        self.edit_doc(workshop_id, RecordKind::Workshop, |doc, now| {
            workshop::feedback(doc, score, comment, now)
        })
    }

    /// One workshop with its attendance and feedback.
    pub fn get_workshop(&self, id: &str) -> Result<Workshop> {
        let (doc, h) = self.load_kind(id, RecordKind::Workshop)?;
        Ok(workshop::read(&doc, id, &h))
    }

    // ---- any record ----

    fn record_kind(&self, id: &str) -> Result<RecordKind> {
        crate::validate::id("id", id)?;
        self.read(|c| {
            let kind: Option<String> = c
                .query_row(
                    "SELECT kind FROM documents WHERE id = ?1",
                    params![id],
                    |r| r.get(0),
                )
                .optional()?;
            kind.and_then(|k| RecordKind::parse(&k))
                .ok_or_else(|| Error::not_found(format!("record {id}")))
        })
    }

    /// Deletes a visit or workshop (a tombstone: concurrent edits survive, it stays deleted).
    pub fn delete_record(&self, id: &str) -> Result<()> {
        let kind = self.record_kind(id)?;
        if kind == RecordKind::Settings {
            return Err(Error::invalid("id", "workspace settings cannot be deleted"));
        }
        self.edit_doc(id, kind, |doc, _| {
            use automerge::transaction::Transactable;
            doc.put(automerge::ROOT, records::K_DELETED, true)?;
            Ok(())
        })
    }

    /// Fields of a record holding concurrent values from different devices.
    pub fn conflicts(&self, id: &str) -> Result<Vec<Conflict>> {
        let kind = self.record_kind(id)?;
        let (doc, h) = self.load_kind(id, kind)?;
        Ok(meta::conflicts(&doc, &self.device_names(&h.workspace)))
    }

    /// Resolves a conflict by choosing one of its values.
    pub fn resolve_conflict(&self, id: &str, field: &str, chosen: &FieldValue) -> Result<()> {
        let kind = self.record_kind(id)?;
        self.edit_doc(id, kind, |doc, _| meta::resolve(doc, field, chosen))
    }

    /// Who changed which fields of a record, and when, oldest first.
    pub fn history(&self, id: &str) -> Result<Vec<HistoryEntry>> {
        let kind = self.record_kind(id)?;
        let (mut doc, h) = self.load_kind(id, kind)?;
        Ok(meta::history(&mut doc, &self.device_names(&h.workspace)))
    }

    /// Derives every projection row again from the documents alone.
    pub fn rebuild_projections(&self) -> Result<()> {
        self.with_writer(|w| {
            let tx = w.conn.transaction()?;
            projection::clear(&tx)?;
            let ids: Vec<String> = {
                let mut st = tx.prepare("SELECT id FROM documents ORDER BY n")?;
                let rows = st.query_map([], |r| r.get(0))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            for id in ids {
                if let Some(stored) = docs::load(&tx, &id, &self.inner.actor)? {
                    projection::refresh(&tx, &id, &stored.doc)?;
                }
            }
            tx.execute("DELETE FROM meta WHERE key = 'projections_stale'", [])?;
            tx.commit()?;
            Ok(())
        })
    }

    /// Every projection row as text, sorted: lets tests compare two stores, or one store before
    /// and after a rebuild, row for row.
    #[doc(hidden)]
    pub fn projection_rows(&self) -> Result<Vec<String>> {
        projection::dump(self)
    }

    /// Serialises syncs of this store.
    pub(crate) fn sync_guard(&self) -> MutexGuard<'_, ()> {
        lock(&self.inner.sync_lock)
    }

    /// The actor this store writes as.
    pub(crate) fn actor_id(&self) -> &ActorId {
        &self.inner.actor
    }

    /// Takes a decoded document out of the writer's cache, if it is there.
    pub(crate) fn take_cached(w: &mut Writer, id: &str) -> Option<StoredDoc> {
        w.cache.take(id)
    }

    /// Returns a decoded document to the writer's cache after a committed write.
    pub(crate) fn cache_after_write(w: &mut Writer, id: String, doc: StoredDoc) {
        w.cache.put(id, doc);
    }
}

/// Makes sure a workspace row exists (documents may arrive before their settings).
pub(crate) fn ensure_workspace(tx: &Transaction<'_>, workspace: &str) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO workspaces(id, created_at) VALUES (?1, ?2) ON CONFLICT(id) DO NOTHING",
    )?
    .execute(params![workspace, now_ms()])?;
    Ok(())
}

pub(crate) use docs::{
    append as append_chunk, decode_heads, insert as insert_doc, insert_as as insert_doc_as,
    load as load_stored,
};
pub(crate) use projection::{refresh as refresh_projection, refresh_new as project_new};

#[cfg(test)]
mod tests;
