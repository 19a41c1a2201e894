//! Merging without a network: a store exports the Automerge chunks another store lacks as one
//! bundle of bytes (a file on a memory card, a QR sequence), and the other imports it.
//!
//! A *checkpoint* is a compact summary of what a store has (the heads of each document).
//! `export(Some(checkpoint))` sends only what the checkpoint's owner is missing; `export(None)`
//! sends everything. Importing is all or nothing: a bundle with any undecodable part is refused
//! with `Corrupt` and the store is left exactly as it was.
//!
//! Every chunk in a bundle is sealed with its workspace's key, exactly as sync seals what it
//! pushes: a bundle copied off the phone reveals nothing, and only a store that joined the
//! workspace (see `create_invite`) can import it. A bundle for a workspace this store does not
//! know is refused with `UnknownWorkspace`; an altered one with `Tampered`.
//!
//! For a workspace on a sync server, each chunk is also signed by the exporting device, as a
//! pushed blob is, and an import checks it against the team log exactly as a pulled blob is
//! checked: a device the log does not admit, or revoked, cannot hand its changes to a teammate
//! to be passed on, and the changes must be the signer's own (a coordinator may carry anyone's).
//! The importing device passes another device's changes on to the server as they were signed,
//! never under its own signature.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use automerge::{
    ActorId, AutoCommit, Automerge, AutomergeError, ChangeHash, LoadOptions, OnPartialLoad,
};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::crypto::{self, ChunkMeta};
use crate::error::{Corruption, Error, Result, StorageError};
use crate::model::{ImportReport, RecordKind, RefusedDocument};
use crate::records;
use crate::store::projection::{self, Rows};
use crate::store::{self, Store, StoredDoc, keys, outbox};
use crate::sync::team::Authorship;
use crate::validate;
use waymark_protocol::team_log::SignedEntry;

/// Format version of checkpoints.
const VERSION: u32 = 2;
/// Format version of bundles: 3 signs chunks of workspaces on a server; 2 (still read) never
/// did.
const BUNDLE_VERSION: u32 = 3;

#[derive(Serialize, Deserialize)]
struct Bundle {
    v: u32,
    docs: Vec<BundleDoc>,
    /// The exporter's team log of each workspace, from what the checkpoint's owner had: a device
    /// offline since a teammate was admitted (or revoked) learns it by hand too.
    #[serde(default)]
    logs: BTreeMap<String, Vec<SignedEntry>>,
}

#[derive(Serialize, Deserialize)]
struct BundleDoc {
    id: String,
    workspace: String,
    epoch: u32,
    /// Sealed chunks; the record kind is inside the seal.
    blobs: Vec<ByteBuf>,
    /// Whether each chunk is signed by the exporting device (the blob format of a push).
    #[serde(default)]
    signed: bool,
}

#[derive(Serialize, Deserialize)]
struct Checkpoint {
    v: u32,
    heads: BTreeMap<String, ByteBuf>,
    /// How many team log entries this store verified, per workspace.
    #[serde(default)]
    logs: BTreeMap<String, u64>,
}

fn to_cbor<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).map_err(|source| StorageError::Encode {
        what: "encoding",
        source,
    })?;
    Ok(out)
}

fn from_cbor<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    ciborium::from_reader(bytes).map_err(|e| Error::Corrupt(Corruption::by(what, e)))
}

/// Decodes untrusted Automerge bytes into `doc`, turning any failure (even a panic inside the
/// decoder) into `Corrupt`.
///
/// `load_incremental` silently keeps whatever prefix of a damaged chunk it can parse, so each
/// chunk is first parsed strictly on its own: changes whose dependencies are elsewhere are
/// fine (`MissingDeps`), anything undecodable is not.
fn load_chunk(doc: &mut AutoCommit, id: &str, chunk: &[u8]) -> Result<()> {
    let strict = || LoadOptions::new().on_partial_load(OnPartialLoad::Error);
    if doc.is_empty() {
        // A new document: the strict parse is the load, no need to decode twice.
        let loaded = catch_unwind(AssertUnwindSafe(|| {
            AutoCommit::load_with_options(chunk, strict())
        }));
        match loaded {
            Ok(Ok(d)) => {
                let actor = doc.get_actor().clone();
                *doc = d.with_actor(actor);
                return Ok(());
            }
            Ok(Err(AutomergeError::MissingDeps)) => {}
            Ok(Err(e)) => return Err(Error::Corrupt(Corruption::by(format!("document {id}"), e))),
            Err(_) => return Err(Error::corrupt(format!("document {id}: undecodable chunk"))),
        }
    } else {
        match catch_unwind(AssertUnwindSafe(|| {
            Automerge::load_with_options(chunk, strict())
        })) {
            Ok(Ok(_)) | Ok(Err(AutomergeError::MissingDeps)) => {}
            Ok(Err(e)) => return Err(Error::Corrupt(Corruption::by(format!("document {id}"), e))),
            Err(_) => return Err(Error::corrupt(format!("document {id}: undecodable chunk"))),
        }
    }
    match catch_unwind(AssertUnwindSafe(|| doc.load_incremental(chunk))) {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(Error::Corrupt(Corruption::by(format!("document {id}"), e))),
        Err(_) => Err(Error::corrupt(format!("document {id}: undecodable chunk"))),
    }
}

impl Store {
    /// A summary of what this store holds, for another store to export what is missing here.
    pub fn checkpoint(&self) -> Result<Vec<u8>> {
        let heads = self.read(|c| {
            let heads: BTreeMap<String, ByteBuf> = store::docs::all_heads(c)?
                .into_iter()
                .map(|(id, heads)| (id, ByteBuf::from(heads)))
                .collect();
            Ok((heads, store::team_lookups::log_lengths(c)?))
        })?;
        let (heads, logs) = heads;
        to_cbor(&Checkpoint {
            v: VERSION,
            heads,
            logs,
        })
    }

    /// The changes this store has that the owner of `since` lacks (everything if `None`).
    pub fn export_changes(&self, since: Option<&[u8]>) -> Result<Vec<u8>> {
        let since: Option<Checkpoint> = since.map(|b| from_cbor("checkpoint", b)).transpose()?;
        if let Some(cp) = &since
            && cp.v != VERSION
        {
            return Err(Error::corrupt(format!(
                "checkpoint version {} is not supported",
                cp.v
            )));
        }
        let (theirs, their_logs) = since.map(|c| (c.heads, c.logs)).unwrap_or_default();
        let mut docs = Vec::new();
        let mut logs = BTreeMap::new();
        self.read(|c| {
            store::docs::for_each(c, |d| {
                let store::docs::DocMeta {
                    id,
                    workspace,
                    kind,
                    heads,
                    generation,
                } = d;
                let their = theirs.get(&id);
                if their.is_some_and(|h| h.as_slice() == heads.as_slice()) {
                    return Ok(());
                }
                let mut chunks = store::docs::saved(c, &id)?;
                // A rewritten record goes whole, as the rewrite it is: their heads may be of
                // an earlier generation, which it replaces.
                if let Some(their) = their.and_then(|h| store::decode_heads(h))
                    && generation == 0
                {
                    chunks = vec![changes_after(&id, &chunks, &their)?];
                }
                let (epoch, key) =
                    keys::current(c, &workspace)?.ok_or_else(|| Error::UnknownWorkspace {
                        workspace: workspace.clone(),
                    })?;
                let doc_bytes = crypto::doc_id_bytes(&id)?;
                // Signed by this device when it belongs to the workspace on a server.
                let own = match outbox::connected(c, &workspace)? {
                    true => Some(crate::sync::team::own_keys(c, &workspace)?),
                    false => None,
                };
                let blobs = chunks
                    .iter()
                    .enumerate()
                    .map(|(i, ch)| {
                        let meta = ChunkMeta {
                            kind,
                            generation,
                            replaces: generation > 0 && i == 0,
                            covers: 0,
                            pack: false,
                        };
                        match &own {
                            Some(own) => crypto::seal_signed(
                                &key, own, &workspace, &doc_bytes, epoch, meta, ch,
                            ),
                            None => crypto::seal(&key, &workspace, &doc_bytes, epoch, meta, ch),
                        }
                        .map(ByteBuf::from)
                    })
                    .collect::<Result<Vec<_>>>()?;
                if own.is_some() && !logs.contains_key(&workspace) {
                    let from = their_logs.get(&workspace).copied().unwrap_or(0);
                    let entries = crate::sync::log::LocalLog::load(c, &workspace)?.entries;
                    // From the last entry they have: the importer checks it is theirs.
                    let skip = usize::try_from(from.saturating_sub(1)).unwrap_or(usize::MAX);
                    logs.insert(
                        workspace.clone(),
                        entries.into_iter().skip(skip).collect::<Vec<_>>(),
                    );
                }
                docs.push(BundleDoc {
                    id,
                    workspace,
                    epoch,
                    blobs,
                    signed: own.is_some(),
                });
                Ok(())
            })
        })?;
        to_cbor(&Bundle {
            v: BUNDLE_VERSION,
            docs,
            logs,
        })
    }

    /// Merges a bundle from `export_changes` into this store, all or nothing.
    pub fn import_changes(&self, bundle: &[u8]) -> Result<ImportReport> {
        let bundle: Bundle = from_cbor("bundle", bundle)?;
        if bundle.v != BUNDLE_VERSION && bundle.v != 2 {
            return Err(Error::corrupt(format!(
                "bundle version {} is not supported",
                bundle.v
            )));
        }
        for d in &bundle.docs {
            validate::id("document id", &d.id)
                .and_then(|_| validate::id("workspace id", &d.workspace))
                .map_err(|e| Error::Corrupt(Corruption::by("bundle", Box::new(e))))?;
        }
        let actor = self.actor_id().clone();
        let report = self.with_writer(|w| {
            let mut report = ImportReport::default();
            let mut touched = Vec::new();
            let mut cached: std::collections::HashMap<String, StoredDoc> = bundle
                .docs
                .iter()
                .filter_map(|d| Store::take_cached(w, &d.id).map(|s| (d.id.clone(), s)))
                .collect();
            let tx = w.transaction()?;
            for (workspace, entries) in &bundle.logs {
                crate::sync::team::extend_log(&tx, workspace, entries)?;
            }
            for d in &bundle.docs {
                let key = match keys::at_epoch(&tx, &d.workspace, d.epoch)? {
                    Some(k) => k,
                    None if keys::current(&tx, &d.workspace)?.is_none() => {
                        return Err(Error::UnknownWorkspace {
                            workspace: d.workspace.clone(),
                        });
                    }
                    None => {
                        return Err(Error::Tampered(format!(
                            "document {} is sealed with a key epoch this store does not have",
                            d.id
                        )));
                    }
                };
                let doc_bytes = crypto::doc_id_bytes(&d.id)?;
                let signer = signer_of(&tx, d)?;
                let mut first: Option<ChunkMeta> = None;
                let mut chunks = Vec::with_capacity(d.blobs.len());
                for blob in &d.blobs {
                    let (meta, chunk) = match d.signed {
                        true => crypto::open_signed(&key, &d.workspace, &doc_bytes, d.epoch, blob)?,
                        false => crypto::open(&key, &d.workspace, &doc_bytes, d.epoch, blob)?,
                    };
                    if first.is_some_and(|f| f.kind != meta.kind || f.generation != meta.generation)
                    {
                        return Err(Error::corrupt(format!(
                            "bundle: document {} mixes kinds or generations",
                            d.id
                        )));
                    }
                    first.get_or_insert(meta);
                    chunks.push(chunk);
                }
                let Some(meta) = first else { continue };
                let kind = meta.kind;
                let target = Target {
                    id: &d.id,
                    workspace: &d.workspace,
                    kind,
                };
                let authors = match &signer {
                    Some(s) => Authorship::of(&tx, &d.workspace, s)?,
                    None => Authorship::Any,
                };
                // Changes carried in by hand reach the server too, through this device: another
                // device's as that device signed them, this device's own as it signs anything.
                let relay = signer.is_some_and(|s| Some(s) != own_sign_key(&tx, &d.workspace));
                let local = outbox::generation(&tx, &d.id)?;
                let has_local = store::load_stored(&tx, &d.id, &actor)?.is_some();
                if has_local && meta.generation != local {
                    let rewrite = meta.generation > local && meta.replaces;
                    if !rewrite {
                        report.refused.push(RefusedDocument {
                            doc_id: d.id.clone(),
                            reason: match meta.generation < local {
                                true => "made before this record was erased or redacted",
                                false => "made after a rewrite of this record not in the bundle",
                            }
                            .into(),
                        });
                        continue;
                    }
                    // A rewrite carried in by hand replaces this device's copy, as pulled.
                    cached.remove(&d.id);
                    let (save, rest) = chunks.split_first().ok_or_else(|| {
                        Error::corrupt(format!("bundle: document {} is empty", d.id))
                    })?;
                    let stored =
                        store::replace_document(&tx, &target, save, meta, &actor, &authors, true)?;
                    let (stored, _) = match rest.is_empty() {
                        true => (stored, true),
                        false => {
                            merge_chunks(&tx, Some(stored), &actor, &target, rest, false, &authors)?
                        }
                    };
                    if relay {
                        for blob in &d.blobs {
                            outbox::enqueue_signed(&tx, &d.workspace, &d.id, d.epoch, blob)?;
                        }
                    }
                    report.changed.push(d.id.clone());
                    touched.push((d.id.clone(), stored));
                    continue;
                }
                let existing = match cached.remove(&d.id) {
                    Some(s) => Some(s),
                    None => store::load_stored(&tx, &d.id, &actor)?,
                };
                let merged =
                    merge_chunks(&tx, existing, &actor, &target, &chunks, !relay, &authors);
                let (stored, changed) = match merged {
                    // Authorship is checked before anything is written: leave this document
                    // out, take the others.
                    Err(Error::Tampered(reason)) if authors != Authorship::Any => {
                        report.refused.push(RefusedDocument {
                            doc_id: d.id.clone(),
                            reason,
                        });
                        continue;
                    }
                    other => other?,
                };
                if !has_local && meta.generation > 0 {
                    store::docs::set_generation(&tx, &d.id, meta.generation)?;
                }
                if relay && changed {
                    for blob in &d.blobs {
                        outbox::enqueue_signed(&tx, &d.workspace, &d.id, d.epoch, blob)?;
                    }
                }
                if !changed {
                    report.unchanged += 1;
                    // A document this store did not have and still does not (the bundle held
                    // nothing new of it) must not sit in the cache as if stored.
                    if has_local {
                        touched.push((d.id.clone(), stored));
                    }
                    continue;
                }
                report.changed.push(d.id.clone());
                touched.push((d.id.clone(), stored));
            }
            tx.commit()?;
            for (id, doc) in touched {
                Store::cache_after_write(w, id, doc);
            }
            report.changed.sort();
            report.changed.dedup();
            Ok(report)
        })?;
        // A device that joined without a server learns the settings with its first bundle:
        // add its name there so teammates see who wrote what.
        let workspaces: std::collections::BTreeSet<&str> =
            bundle.docs.iter().map(|d| d.workspace.as_str()).collect();
        for ws in workspaces {
            self.register_device_name(ws)?;
        }
        Ok(report)
    }
}

/// The device that signed a bundle document, checked against the team log as a pulled blob's
/// signer is (`Tampered` if the log does not admit it, or revoked it); `None` for an unsigned
/// document, which only a workspace without a team log takes.
fn signer_of(tx: &rusqlite::Transaction<'_>, d: &BundleDoc) -> Result<Option<[u8; 32]>> {
    let has_log = crate::sync::team::log_epoch(tx, &d.workspace)?.is_some();
    if !d.signed {
        if has_log {
            return Err(Error::Tampered(format!(
                "document {} is not signed: this workspace takes bundles signed by a device of its team",
                d.id
            )));
        }
        return Ok(None);
    }
    let mut signers = d.blobs.iter().map(|b| crypto::blob_signer(b));
    let signer = match signers.next() {
        Some(s) => s?,
        None => return Ok(None),
    };
    for other in signers {
        if other? != signer {
            return Err(Error::Tampered(format!(
                "document {} mixes chunks of several devices",
                d.id
            )));
        }
    }
    if has_log {
        match store::team_lookups::member_in_force(tx, &d.workspace, &signer)? {
            None => {
                return Err(Error::Tampered(
                    "the bundle is signed by a device the team log does not admit".into(),
                ));
            }
            Some(false) => {
                return Err(Error::Tampered(
                    "the bundle is signed by a device that was revoked".into(),
                ));
            }
            Some(true) => {}
        }
    }
    Ok(Some(signer))
}

/// This device's signing key for a workspace it syncs, if any.
fn own_sign_key(tx: &rusqlite::Transaction<'_>, workspace: &str) -> Option<[u8; 32]> {
    crate::sync::team::own_keys(tx, workspace)
        .ok()
        .map(|k| k.sign_public())
}

/// The document chunks are merged into.
pub(crate) struct Target<'a> {
    pub id: &'a str,
    pub workspace: &'a str,
    pub kind: RecordKind,
}

/// A new document decoded from one chunk that holds all of it (a document's first blob is a
/// save), with its heads and projection rows.
pub(crate) struct Whole {
    pub doc: AutoCommit,
    pub heads: Vec<ChangeHash>,
    pub rows: Rows,
    /// The actors of its changes.
    pub actors: Vec<ActorId>,
}

/// The distinct actors of the changes `doc` has beyond `before` (cheap: change metadata only).
pub(crate) fn new_actors(doc: &mut AutoCommit, before: &[ChangeHash]) -> Vec<ActorId> {
    let mut actors: Vec<ActorId> = doc
        .get_changes_meta(before)
        .into_iter()
        .map(|m| m.actor.into_owned())
        .collect();
    actors.sort();
    actors.dedup();
    actors
}

/// Decodes `chunk` as the whole of new document `t`; `None` if it holds no change or needs
/// changes it does not carry. Needs no database, so pulled pages are decoded on all cores.
pub(crate) fn decode_whole(
    t: &Target<'_>,
    actor: &automerge::ActorId,
    chunk: &[u8],
) -> Result<Option<Whole>> {
    let mut doc = AutoCommit::new().with_actor(actor.clone());
    load_chunk(&mut doc, t.id, chunk)?;
    let heads = doc.get_heads();
    if heads.is_empty() || !doc.get_missing_deps(&[]).is_empty() {
        return Ok(None);
    }
    let rows = Rows::of(t.id, &doc);
    check_label(t, rows.header())?;
    let actors = new_actors(&mut doc, &[]);
    Ok(Some(Whole {
        doc,
        heads,
        rows,
        actors,
    }))
}

/// Stores new document `t` as `chunk`, the whole of it (see [`decode_whole`]): encoding it
/// again would cost as much as decoding it did.
pub(crate) fn insert_whole(
    tx: &rusqlite::Transaction<'_>,
    t: &Target<'_>,
    chunk: &[u8],
    heads: &[ChangeHash],
    rows: &Rows,
) -> Result<()> {
    store::ensure_workspace(tx, t.workspace)?;
    store::insert_doc_as(tx, t.id, t.workspace, t.kind, chunk, heads)?;
    projection::write(tx, t.id, rows, true)
}

/// Refuses a document whose header names another workspace or kind than it is filed under.
fn check_label(t: &Target<'_>, h: Option<&records::Header>) -> Result<()> {
    match h {
        Some(h) if h.workspace != t.workspace || h.kind != t.kind => Err(Error::corrupt(format!(
            "document {} does not match its label",
            t.id
        ))),
        _ => Ok(()),
    }
}

/// Merges decrypted Automerge chunks into a document (loaded as `existing`, or new), storing
/// the new changes and refreshing projections within `tx`; with `enqueue`, also queues them
/// for the server. `authors` says whose changes the chunks may bring (`Tampered` otherwise).
/// Returns the document and whether anything changed. On error nothing was written.
pub(crate) fn merge_chunks(
    tx: &rusqlite::Transaction<'_>,
    existing: Option<StoredDoc>,
    actor: &automerge::ActorId,
    t: &Target<'_>,
    chunks: &[Vec<u8>],
    enqueue: bool,
    authors: &Authorship,
) -> Result<(StoredDoc, bool)> {
    if existing.is_none()
        && let [only] = chunks
        && let Some(whole) = decode_whole(t, actor, only)?
    {
        authors.check(&whole.actors)?;
        insert_whole(tx, t, only, &whole.heads, &whole.rows)?;
        if enqueue {
            let restricted = records::is_restricted(&whole.doc);
            outbox::enqueue(tx, t.workspace, t.id, t.kind, only, restricted)?;
        }
        let stored = StoredDoc {
            doc: whole.doc,
            workspace: t.workspace.to_string(),
            kind: t.kind,
        };
        return Ok((stored, true));
    }
    let is_new = existing.is_none();
    let mut stored = existing.unwrap_or_else(|| StoredDoc {
        doc: AutoCommit::new().with_actor(actor.clone()),
        workspace: t.workspace.to_string(),
        kind: t.kind,
    });
    if stored.workspace != t.workspace || stored.kind != t.kind {
        return Err(Error::corrupt(format!(
            "document {} is filed under another workspace or kind",
            t.id
        )));
    }
    let before = stored.doc.get_heads();
    for chunk in chunks {
        load_chunk(&mut stored.doc, t.id, chunk)?;
    }
    check_label(t, records::header(&stored.doc).as_ref())?;
    authors.check(&new_actors(&mut stored.doc, &before))?;
    let after = stored.doc.get_heads();
    let waiting = !stored.doc.get_missing_deps(&[]).is_empty();
    if after == before && !waiting {
        return Ok((stored, false));
    }
    store::ensure_workspace(tx, t.workspace)?;
    let mut new_chunks = Vec::new();
    if is_new {
        new_chunks.push(store::insert_doc(tx, t.id, &mut stored)?);
    }
    if waiting {
        // Keep the raw chunks: changes waiting for their dependencies exist only there.
        for chunk in chunks {
            store::append_chunk(tx, t.id, &mut stored, chunk)?;
            new_chunks.push(chunk.clone());
        }
    } else if !is_new {
        let chunk = stored.doc.save_after(&before);
        store::append_chunk(tx, t.id, &mut stored, &chunk)?;
        new_chunks.push(chunk);
    }
    if enqueue {
        let restricted = records::is_restricted(&stored.doc);
        for chunk in &new_chunks {
            outbox::enqueue(tx, t.workspace, t.id, t.kind, chunk, restricted)?;
        }
    }
    if is_new {
        store::project_new(tx, t.id, &stored.doc)?;
    } else {
        store::refresh_projection(tx, t.id, &stored.doc)?;
    }
    Ok((stored, true))
}

/// The changes in a stored document (snapshot + chunks) that are not ancestors of `their`.
fn changes_after(id: &str, chunks: &[Vec<u8>], their: &[ChangeHash]) -> Result<Vec<u8>> {
    let mut doc = AutoCommit::new();
    for c in chunks {
        load_chunk(&mut doc, id, c)?;
    }
    // Heads this store has never seen say nothing about what lies below them: keep only the
    // known ones (at worst some changes are sent twice, which Automerge ignores).
    let known: Vec<ChangeHash> = their
        .iter()
        .filter(|h| doc.get_change_by_hash(h).is_some())
        .copied()
        .collect();
    Ok(doc.save_after(&known))
}
