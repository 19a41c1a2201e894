//! What the app implements or holds to hear from the store: change listeners with the handle
//! that unregisters them, sync progress listeners, and the token that cancels a sync.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use crate::types::SyncProgress;

/// Told which records changed, so screens showing them can refresh.
///
/// Called after every successful local write (with the id written: the visit, the workshop, or
/// the workspace for settings) and after a sync or an import that changed records (with their
/// ids; an empty list when a sync changed too many to list, as a first sync into a big
/// workspace does: anything may have changed, refresh everything). It runs on the thread that made the change (a worker thread for long operations):
/// return quickly and hop to the UI thread yourself. It must not throw.
#[uniffi::export(foreign)]
pub trait ChangeListener: Send + Sync {
    /// Records with these ids changed (empty: any record may have changed).
    fn on_change(&self, record_ids: Vec<String>);
}

/// Told of a running sync's progress (after every request), for a progress bar.
///
/// Runs on the sync's worker thread; return quickly. It must not throw.
#[uniffi::export(foreign)]
pub trait SyncProgressListener: Send + Sync {
    /// Progress so far in one workspace and phase.
    fn on_progress(&self, progress: SyncProgress);
}

/// The change listeners registered on one store.
#[derive(Default)]
pub(crate) struct Listeners {
    next: AtomicU64,
    map: Mutex<BTreeMap<u64, Arc<dyn ChangeListener>>>,
}

impl Listeners {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, Arc<dyn ChangeListener>>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers `listener`; returns its id.
    pub(crate) fn add(&self, listener: Arc<dyn ChangeListener>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, listener);
        id
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Tells every listener that `ids` changed (nothing if `ids` is empty).
    pub(crate) fn notify(&self, ids: Vec<String>) {
        if !ids.is_empty() {
            self.tell(ids);
        }
    }

    /// Tells every listener what a sync changed: its records, or that any may have changed.
    pub(crate) fn notify_sync(&self, report: &waymark_core::SyncReport) {
        match report.changed_all {
            true => self.tell(Vec::new()),
            false => self.notify(report.changed.clone()),
        }
    }

    fn tell(&self, ids: Vec<String>) {
        // Call outside the lock, so a listener may add or cancel listeners.
        let listeners: Vec<_> = self.lock().values().cloned().collect();
        for l in listeners {
            l.on_change(ids.clone());
        }
    }
}

/// Keeps a change listener registered; `cancel()` or dropping it unregisters the listener.
#[derive(uniffi::Object)]
pub struct ChangeListenerHandle {
    listeners: Weak<Listeners>,
    id: u64,
}

impl ChangeListenerHandle {
    pub(crate) fn new(listeners: &Arc<Listeners>, id: u64) -> Self {
        ChangeListenerHandle {
            listeners: Arc::downgrade(listeners),
            id,
        }
    }
}

#[uniffi::export]
impl ChangeListenerHandle {
    /// Unregisters the listener (idempotent).
    pub fn cancel(&self) {
        if let Some(l) = self.listeners.upgrade() {
            l.remove(self.id);
        }
    }
}

impl Drop for ChangeListenerHandle {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// Cancels a running sync: create one, pass it to `sync`, call `cancel()` from any thread.
///
/// The sync stops at its next request boundary and fails with `WaymarkError.Cancelled`; what
/// completed before stays committed, and the next sync resumes from there. Cancelling the
/// awaiting coroutine or task has the same effect.
#[derive(uniffi::Object, Default)]
pub struct CancellationToken {
    flag: Arc<AtomicBool>,
}

#[uniffi::export]
impl CancellationToken {
    /// A token not yet cancelled.
    #[uniffi::constructor]
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Asks the operation to stop (idempotent).
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::Relaxed);
    }

    /// Whether `cancel()` was called.
    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }
}

impl CancellationToken {
    /// The flag the core polls.
    pub(crate) fn flag(&self) -> Arc<AtomicBool> {
        self.flag.clone()
    }
}

/// Sets a cancellation flag when dropped before `disarm()`: an awaiting task that is cancelled
/// drops its future, and the sync it started stops instead of running on unobserved.
pub(crate) struct CancelOnDrop(Option<Arc<AtomicBool>>);

impl CancelOnDrop {
    pub(crate) fn new(flag: Arc<AtomicBool>) -> Self {
        CancelOnDrop(Some(flag))
    }

    pub(crate) fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(f) = &self.0 {
            f.store(true, Ordering::Relaxed);
        }
    }
}
