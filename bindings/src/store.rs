//! `WaymarkStore`: the open store as an object, each method converting its arguments, calling
//! `waymark_core::Store`, and converting the answer back.
//!
//! Two kinds of methods:
//! - `async` (Kotlin `suspend`, Swift `async`, Python coroutine): open, sync, connect, invites,
//!   join, checkpoint/export/import, rebuild. They run the blocking core call on a thread of
//!   their own and await it, so they never block the caller's thread.
//! - everything else (create/update/get/list/search) is blocking but fast (one SQLite
//!   transaction): call it from a background dispatcher / task, not from the UI thread.

use std::sync::Arc;

use waymark_core as wc;

use crate::error::{Result, call, off_thread};
use crate::listeners::{
    CancelOnDrop, CancellationToken, ChangeListener, ChangeListenerHandle, Listeners,
    SyncProgressListener,
};
use crate::types::*;

/// An open, encrypted Waymark store. Thread-safe: share one per app process.
#[derive(uniffi::Object)]
pub struct WaymarkStore {
    pub(crate) store: wc::Store,
    pub(crate) listeners: Arc<Listeners>,
}

impl WaymarkStore {
    /// Runs a write and, if it succeeded, tells the change listeners about `id`.
    fn write<T>(&self, id: &str, f: impl FnOnce(&wc::Store) -> wc::Result<T>) -> Result<T> {
        let out = call(|| f(&self.store))?;
        self.listeners.notify(vec![id.to_string()]);
        Ok(out)
    }
}

#[uniffi::export]
impl WaymarkStore {
    /// Opens (creating if needed) the store at `path`, encrypted with the 32-byte `key` from
    /// Android Keystore / iOS Keychain.
    ///
    /// Fails with `WrongKey` if the key does not open an existing file, with `NewerSchema` if
    /// the file comes from a newer Waymark (both leave the file untouched), and with
    /// `InvalidInput` (field `key`) if the key is not 32 bytes.
    #[uniffi::constructor]
    pub async fn open(path: String, key: Vec<u8>) -> Result<Arc<Self>> {
        let store = off_thread("open", move || wc::Store::open(&path, &key)).await?;
        Ok(Arc::new(WaymarkStore {
            store,
            listeners: Arc::default(),
        }))
    }

    /// This device's Automerge actor id (hex): how its changes are attributed.
    pub fn actor(&self) -> String {
        self.store.actor()
    }

    /// Registers a listener told which records change; it stays registered until the returned
    /// handle is cancelled or released.
    pub fn add_change_listener(
        &self,
        listener: Arc<dyn ChangeListener>,
    ) -> Arc<ChangeListenerHandle> {
        let id = self.listeners.add(listener);
        Arc::new(ChangeListenerHandle::new(&self.listeners, id))
    }

    // ---- workspaces and settings ----

    /// Creates a local workspace with default settings and returns it.
    pub fn create_workspace(&self, name: String) -> Result<Workspace> {
        let ws = call(|| self.store.create_workspace(&name))?;
        self.listeners.notify(vec![ws.id.clone()]);
        Ok(ws.into())
    }

    /// The workspaces in this store, by name.
    pub fn workspaces(&self) -> Result<Vec<Workspace>> {
        call(|| self.store.workspaces()).map(all)
    }

    /// The settings (taxonomies, labels, device names) of a workspace.
    pub fn settings(&self, workspace_id: String) -> Result<WorkspaceSettings> {
        call(|| self.store.settings(&workspace_id)).map(Into::into)
    }

    /// Applies settings edits as one change.
    pub fn update_settings(&self, workspace_id: String, edits: Vec<SettingsEdit>) -> Result<()> {
        let edits: Vec<wc::SettingsEdit> = all(edits);
        self.write(&workspace_id, |s| s.update_settings(&workspace_id, &edits))
    }

    /// This device's display name (shown to teammates next to its changes).
    pub fn device_name(&self) -> Result<String> {
        call(|| self.store.device_name())
    }

    /// Sets this device's display name, here and in every workspace's settings.
    pub fn set_device_name(&self, name: String) -> Result<()> {
        call(|| self.store.set_device_name(&name))
    }

    // ---- visits ----

    /// Records a field visit; returns its id once it is on disk.
    pub fn create_visit(&self, workspace_id: String, visit: NewVisit) -> Result<String> {
        let visit: wc::NewVisit = visit.into();
        let id = call(|| self.store.create_visit(&workspace_id, &visit))?;
        self.listeners.notify(vec![id.clone()]);
        Ok(id)
    }

    /// Applies edits to a visit as one change.
    pub fn update_visit(&self, id: String, edits: Vec<VisitEdit>) -> Result<()> {
        let edits: Vec<wc::VisitEdit> = all(edits);
        self.write(&id, |s| s.update_visit(&id, &edits))
    }

    /// Replaces a visit's notes with `text`, merged character by character with others' edits.
    pub fn set_visit_notes(&self, id: String, text: String) -> Result<()> {
        self.write(&id, |s| s.set_visit_notes(&id, &text))
    }

    /// Adds a referral to a visit; returns the referral's id.
    pub fn add_referral(&self, visit_id: String, referral: NewReferral) -> Result<String> {
        let referral: wc::NewReferral = referral.into();
        self.write(&visit_id, |s| s.add_referral(&visit_id, &referral))
    }

    /// One visit, deleted or not.
    pub fn get_visit(&self, id: String) -> Result<Visit> {
        call(|| self.store.get_visit(&id)).map(Into::into)
    }

    /// Visits matching `filter`, newest first.
    pub fn list_visits(&self, filter: VisitFilter) -> Result<Vec<VisitSummary>> {
        let filter: wc::VisitFilter = filter.into();
        call(|| self.store.list_visits(&filter)).map(all)
    }

    // ---- workshops ----

    /// Records an awareness workshop; returns its id.
    pub fn create_workshop(&self, workspace_id: String, workshop: NewWorkshop) -> Result<String> {
        let workshop: wc::NewWorkshop = workshop.into();
        let id = call(|| self.store.create_workshop(&workspace_id, &workshop))?;
        self.listeners.notify(vec![id.clone()]);
        Ok(id)
    }

    /// Applies edits to a workshop as one change.
    pub fn update_workshop(&self, id: String, edits: Vec<WorkshopEdit>) -> Result<()> {
        let edits: Vec<wc::WorkshopEdit> = all(edits);
        self.write(&id, |s| s.update_workshop(&id, &edits))
    }

    /// Replaces a workshop's notes with `text`, merged character by character.
    pub fn set_workshop_notes(&self, id: String, text: String) -> Result<()> {
        self.write(&id, |s| s.set_workshop_notes(&id, &text))
    }

    /// Checks a named attendee in; returns the attendee's id.
    pub fn check_in(&self, workshop_id: String, attendee: NewAttendee) -> Result<String> {
        let attendee: wc::NewAttendee = attendee.into();
        self.write(&workshop_id, |s| s.check_in(&workshop_id, &attendee))
    }

    /// Marks an attendee as withdrawn (kept, but no longer counted).
    pub fn withdraw_attendee(&self, workshop_id: String, attendee_id: String) -> Result<()> {
        self.write(&workshop_id, |s| {
            s.withdraw_attendee(&workshop_id, &attendee_id)
        })
    }

    /// An attendee asked to be removed: withdraws them, removes their name and contact, and
    /// redacts the workshop so that no earlier copy keeps them, on every device.
    pub fn remove_attendee_data(&self, workshop_id: String, attendee_id: String) -> Result<()> {
        self.write(&workshop_id, |s| {
            s.remove_attendee_data(&workshop_id, &attendee_id)
        })
    }

    /// Attendees of the workspace who may be the person being checked in, the likeliest first
    /// (at most 10), each with a score (0 to 1) and why; ask before checking them in again.
    pub fn possible_duplicates(
        &self,
        workspace_id: String,
        attendee: NewAttendee,
    ) -> Result<Vec<DuplicateMatch>> {
        call(|| {
            self.store
                .possible_duplicates(&workspace_id, &attendee.into())
        })
        .map(|v| v.into_iter().map(Into::into).collect())
    }

    /// Pairs of the workspace's attendees who may be the same person and are not marked as one
    /// yet, the likeliest first (at most 1,000); duplicates two devices made show after a sync.
    pub fn duplicate_attendees(&self, workspace_id: String) -> Result<Vec<DuplicatePair>> {
        call(|| self.store.duplicate_attendees(&workspace_id))
            .map(|v| v.into_iter().map(Into::into).collect())
    }

    /// Marks an attendee as the same person as another, so reports count them once; undone by
    /// `unmerge_attendee`, merged across devices like any edit.
    pub fn merge_attendees(
        &self,
        workshop_id: String,
        attendee_id: String,
        same_as_workshop_id: String,
        same_as_attendee_id: String,
    ) -> Result<()> {
        self.write(&workshop_id, |s| {
            s.merge_attendees(
                &workshop_id,
                &attendee_id,
                &same_as_workshop_id,
                &same_as_attendee_id,
            )
        })
    }

    /// Undoes `merge_attendees`: the attendee counts as a person of their own again.
    pub fn unmerge_attendee(&self, workshop_id: String, attendee_id: String) -> Result<()> {
        self.write(&workshop_id, |s| {
            s.unmerge_attendee(&workshop_id, &attendee_id)
        })
    }

    /// Adds `delta` (usually 1, negative to correct) to an anonymous tally.
    pub fn add_to_tally(
        &self,
        workshop_id: String,
        age_band: String,
        gender: String,
        delta: i64,
    ) -> Result<()> {
        self.write(&workshop_id, |s| {
            s.add_to_tally(&workshop_id, &age_band, &gender, delta)
        })
    }

    /// Records feedback (score 1-5 and a comment); returns its id.
    pub fn add_feedback(&self, workshop_id: String, score: u8, comment: String) -> Result<String> {
        self.write(&workshop_id, |s| {
            s.add_feedback(&workshop_id, score, &comment)
        })
    }

    /// One workshop with its attendance and feedback.
    pub fn get_workshop(&self, id: String) -> Result<Workshop> {
        call(|| self.store.get_workshop(&id)).map(Into::into)
    }

    /// Workshops matching `filter`, newest first.
    pub fn list_workshops(&self, filter: WorkshopFilter) -> Result<Vec<WorkshopSummary>> {
        let filter: wc::WorkshopFilter = filter.into();
        call(|| self.store.list_workshops(&filter)).map(all)
    }

    /// A workshop's attendees and anonymous tallies, with totals and breakdowns.
    pub fn attendance(&self, workshop_id: String) -> Result<Attendance> {
        call(|| self.store.attendance(&workshop_id)).map(Into::into)
    }

    // ---- any record ----

    /// Full-text search over notes, feedback, place names and titles (prefix match on every
    /// word; all words must match); at most `limit` hits. Deleted records are not found.
    pub fn search(&self, query: String, limit: u32) -> Result<Vec<SearchHit>> {
        call(|| self.store.search(&query, limit)).map(all)
    }

    /// Deletes a visit or workshop (a tombstone: concurrent edits survive, it stays deleted).
    pub fn delete_record(&self, id: String) -> Result<()> {
        self.write(&id, |s| s.delete_record(&id))
    }

    /// Erases a visit or workshop on every device and on the server: rewritten as an empty,
    /// deleted record without history, so nothing it ever said stays. The record's author and
    /// coordinators only.
    pub fn erase_record(&self, id: String) -> Result<()> {
        self.write(&id, |s| s.erase_record(&id))
    }

    /// Forgets every earlier value of `field` (e.g. `notes`) of a visit or workshop on every
    /// device and on the server: the record is rewritten from its current values without
    /// history. The record's author and coordinators only.
    pub fn redact_record(&self, id: String, field: String) -> Result<()> {
        self.write(&id, |s| s.redact_record(&id, &field))
    }

    /// Fields of a record holding concurrent values from different devices.
    pub fn conflicts(&self, id: String) -> Result<Vec<Conflict>> {
        call(|| self.store.conflicts(&id)).map(all)
    }

    /// Resolves a conflict on `field` by choosing one of its values.
    pub fn resolve_conflict(&self, id: String, field: String, chosen: FieldValue) -> Result<()> {
        let chosen: wc::FieldValue = chosen.into();
        self.write(&id, |s| s.resolve_conflict(&id, &field, &chosen))
    }

    /// Who changed which fields of a record, and when, oldest first.
    pub fn history(&self, id: String) -> Result<Vec<HistoryEntry>> {
        call(|| self.store.history(&id)).map(all)
    }

    // ---- exchange without a server ----

    /// A summary of what this store holds, for another store to export what is missing here.
    pub async fn checkpoint(&self) -> Result<Vec<u8>> {
        let store = self.store.clone();
        off_thread("checkpoint", move || store.checkpoint()).await
    }

    /// The changes this store has that the owner of `since` (a checkpoint) lacks; everything
    /// if `since` is absent.
    #[uniffi::method(default(since = None))]
    pub async fn export_changes(&self, since: Option<Vec<u8>>) -> Result<Vec<u8>> {
        let store = self.store.clone();
        off_thread("export", move || store.export_changes(since.as_deref())).await
    }

    /// Merges a bundle from `export_changes` into this store, all or nothing.
    pub async fn import_changes(&self, bundle: Vec<u8>) -> Result<ImportReport> {
        let store = self.store.clone();
        let report = off_thread("import", move || store.import_changes(&bundle)).await?;
        self.listeners.notify(report.changed.clone());
        Ok(report.into())
    }

    /// Derives every list, filter and search row again from the records alone.
    pub async fn rebuild_projections(&self) -> Result<()> {
        let store = self.store.clone();
        off_thread("rebuild", move || store.rebuild_projections()).await
    }

    // ---- teams and sync ----

    /// Connects a local workspace to a sync server with an enrolment token from the server's
    /// operator; everything recorded so far is queued for the next `sync`.
    pub async fn connect_workspace(
        &self,
        workspace_id: String,
        server_url: String,
        enrollment_token: String,
    ) -> Result<()> {
        let store = self.store.clone();
        off_thread("connect", move || {
            store.connect_workspace(&workspace_id, &server_url, &enrollment_token)
        })
        .await
    }

    /// Creates an invite code (for a QR code or to read out) for another device to join the
    /// workspace; for a connected workspace it carries a one-time enrolment token valid for
    /// `ttl_seconds`.
    pub async fn create_invite(&self, workspace_id: String, ttl_seconds: u64) -> Result<String> {
        let store = self.store.clone();
        off_thread("invite", move || {
            store.create_invite(&workspace_id, ttl_seconds)
        })
        .await
    }

    /// Joins the workspace of an invite code; its records arrive with the next `sync`.
    ///
    /// Fails with `InvalidInvite`, `InviteExpired` or `InviteUsed` when the code cannot be used.
    pub async fn join(&self, code: String) -> Result<Workspace> {
        let store = self.store.clone();
        let ws = off_thread("join", move || store.join(&code)).await?;
        self.listeners.notify(vec![ws.id.clone()]);
        Ok(ws.into())
    }

    /// Syncs every connected workspace: push, then pull until caught up. Safe to call at any
    /// time and again after a failure or a cut; reports what it did.
    ///
    /// `listener` hears progress; `cancel` stops the sync at its next request boundary with
    /// `Cancelled` (so does cancelling the awaiting coroutine or task). Fails with
    /// `DeviceRevoked` if a server refused this device, `Network` if a server stayed
    /// unreachable.
    #[uniffi::method(default(listener = None, cancel = None))]
    pub async fn sync(
        &self,
        listener: Option<Arc<dyn SyncProgressListener>>,
        cancel: Option<Arc<CancellationToken>>,
    ) -> Result<SyncReport> {
        let store = self.store.clone();
        let flag = cancel.map_or_else(|| CancellationToken::default().flag(), |c| c.flag());
        let on_drop = CancelOnDrop::new(flag.clone());
        let progress: Option<wc::ProgressFn> = listener.map(|l| {
            let f: wc::ProgressFn = Arc::new(move |p: &wc::SyncProgress| {
                l.on_progress(p.clone().into());
            });
            f
        });
        let opts = wc::SyncOptions {
            progress,
            cancel: Some(flag),
            ..Default::default()
        };
        let result = off_thread("sync", move || store.sync_with(&opts)).await;
        on_drop.disarm();
        let report = result?;
        self.listeners.notify_sync(&report);
        Ok(report.into())
    }

    /// Blobs set aside so far (they failed authentication or could not be decoded).
    pub fn set_aside_blobs(&self) -> Result<Vec<SetAside>> {
        call(|| self.store.set_aside_blobs()).map(all)
    }

    /// Local changes of a workspace waiting to be pushed.
    pub fn pending_changes(&self, workspace_id: String) -> Result<u64> {
        call(|| self.store.pending_changes(&workspace_id))
    }
}
