//! Merging without a network: a store exports the Automerge chunks another store lacks as one
//! bundle of bytes (a file on a memory card, a QR sequence), and the other imports it.
//!
//! A *checkpoint* is a compact summary of what a store has (the heads of each document).
//! `export(Some(checkpoint))` sends only what the checkpoint's owner is missing; `export(None)`
//! sends everything. Importing is all or nothing: a bundle with any undecodable part is refused
//! with `Corrupt` and the store is left exactly as it was.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use automerge::{AutoCommit, Automerge, AutomergeError, ChangeHash, LoadOptions, OnPartialLoad};
use rusqlite::params;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::error::{Error, Result};
use crate::model::{ImportReport, RecordKind};
use crate::records;
use crate::store::{self, Store, StoredDoc};
use crate::validate;

/// Format version of bundles and checkpoints.
const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Bundle {
    v: u32,
    docs: Vec<BundleDoc>,
}

#[derive(Serialize, Deserialize)]
struct BundleDoc {
    id: String,
    workspace: String,
    kind: String,
    chunks: Vec<ByteBuf>,
}

#[derive(Serialize, Deserialize)]
struct Checkpoint {
    v: u32,
    heads: BTreeMap<String, ByteBuf>,
}

fn to_cbor<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).map_err(|e| Error::Storage(format!("encoding: {e}")))?;
    Ok(out)
}

fn from_cbor<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    ciborium::from_reader(bytes).map_err(|e| Error::Corrupt(format!("{what}: {e}")))
}

/// Decodes untrusted Automerge bytes into `doc`, turning any failure (even a panic inside the
/// decoder) into `Corrupt`.
///
/// `load_incremental` silently keeps whatever prefix of a damaged chunk it can parse, so each
/// chunk is first parsed strictly on its own: changes whose dependencies are elsewhere are
/// fine (`MissingDeps`), anything undecodable is not.
fn load_chunk(doc: &mut AutoCommit, id: &str, chunk: &[u8]) -> Result<()> {
    let strict = LoadOptions::new().on_partial_load(OnPartialLoad::Error);
    match catch_unwind(AssertUnwindSafe(|| {
        Automerge::load_with_options(chunk, strict)
    })) {
        Ok(Ok(_)) | Ok(Err(AutomergeError::MissingDeps)) => {}
        Ok(Err(e)) => return Err(Error::Corrupt(format!("document {id}: {e}"))),
        Err(_) => return Err(Error::Corrupt(format!("document {id}: undecodable chunk"))),
    }
    match catch_unwind(AssertUnwindSafe(|| doc.load_incremental(chunk))) {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(Error::Corrupt(format!("document {id}: {e}"))),
        Err(_) => Err(Error::Corrupt(format!("document {id}: undecodable chunk"))),
    }
}

impl Store {
    /// A summary of what this store holds, for another store to export what is missing here.
    pub fn checkpoint(&self) -> Result<Vec<u8>> {
        let heads = self.read(|c| {
            let mut st = c.prepare("SELECT id, heads FROM documents")?;
            let rows = st.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    ByteBuf::from(r.get::<_, Vec<u8>>(1)?),
                ))
            })?;
            Ok(rows.collect::<rusqlite::Result<BTreeMap<_, _>>>()?)
        })?;
        to_cbor(&Checkpoint { v: VERSION, heads })
    }

    /// The changes this store has that the owner of `since` lacks (everything if `None`).
    pub fn export_changes(&self, since: Option<&[u8]>) -> Result<Vec<u8>> {
        let since: Option<Checkpoint> = since.map(|b| from_cbor("checkpoint", b)).transpose()?;
        if let Some(cp) = &since {
            if cp.v != VERSION {
                return Err(Error::Corrupt(format!(
                    "checkpoint version {} is not supported",
                    cp.v
                )));
            }
        }
        let theirs = since.map(|c| c.heads).unwrap_or_default();
        let mut docs = Vec::new();
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT id, workspace_id, kind, heads, snapshot FROM documents ORDER BY n",
            )?;
            let mut chunks_st =
                c.prepare("SELECT data FROM doc_chunks WHERE doc_id = ?1 ORDER BY id")?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                let id: String = r.get(0)?;
                let heads: Vec<u8> = r.get(3)?;
                let their = theirs.get(&id);
                if their.is_some_and(|h| h.as_slice() == heads.as_slice()) {
                    continue;
                }
                let snapshot: Vec<u8> = r.get(4)?;
                let mut chunks = vec![ByteBuf::from(snapshot)];
                for chunk in chunks_st.query_map(params![id], |r| r.get::<_, Vec<u8>>(0))? {
                    chunks.push(ByteBuf::from(chunk?));
                }
                if let Some(their) = their.and_then(|h| store::decode_heads(h)) {
                    chunks = vec![ByteBuf::from(changes_after(&id, &chunks, &their)?)];
                }
                docs.push(BundleDoc {
                    id,
                    workspace: r.get(1)?,
                    kind: r.get(2)?,
                    chunks,
                });
            }
            Ok(())
        })?;
        to_cbor(&Bundle { v: VERSION, docs })
    }

    /// Merges a bundle from `export_changes` into this store, all or nothing.
    pub fn import_changes(&self, bundle: &[u8]) -> Result<ImportReport> {
        let bundle: Bundle = from_cbor("bundle", bundle)?;
        if bundle.v != VERSION {
            return Err(Error::Corrupt(format!(
                "bundle version {} is not supported",
                bundle.v
            )));
        }
        for d in &bundle.docs {
            validate::id("document id", &d.id)
                .and_then(|_| validate::id("workspace id", &d.workspace))
                .map_err(|e| Error::Corrupt(format!("bundle: {e}")))?;
            if RecordKind::parse(&d.kind).is_none() {
                return Err(Error::Corrupt(format!("bundle: unknown kind for {}", d.id)));
            }
        }
        let actor = self.actor_id().clone();
        self.with_writer(|w| {
            let mut report = ImportReport::default();
            let mut touched = Vec::new();
            let mut cached: std::collections::HashMap<String, StoredDoc> = bundle
                .docs
                .iter()
                .filter_map(|d| Store::take_cached(w, &d.id).map(|s| (d.id.clone(), s)))
                .collect();
            let tx = w.conn.transaction()?;
            for d in &bundle.docs {
                let kind = RecordKind::parse(&d.kind)
                    .ok_or_else(|| Error::Corrupt(format!("bundle: unknown kind for {}", d.id)))?;
                let existing = match cached.remove(&d.id) {
                    Some(s) => Some(s),
                    None => store::load_stored(&tx, &d.id, &actor)?,
                };
                let is_new = existing.is_none();
                let mut stored = existing.unwrap_or_else(|| StoredDoc {
                    doc: AutoCommit::new().with_actor(actor.clone()),
                    workspace: d.workspace.clone(),
                    kind,
                });
                if stored.workspace != d.workspace || stored.kind != kind {
                    return Err(Error::Corrupt(format!(
                        "bundle: document {} is filed under another workspace or kind",
                        d.id
                    )));
                }
                let before = stored.doc.get_heads();
                for chunk in &d.chunks {
                    load_chunk(&mut stored.doc, &d.id, chunk)?;
                }
                if let Some(h) = records::header(&stored.doc) {
                    if h.workspace != d.workspace || h.kind != kind {
                        return Err(Error::Corrupt(format!(
                            "bundle: document {} does not match its label",
                            d.id
                        )));
                    }
                }
                let after = stored.doc.get_heads();
                let waiting = !stored.doc.get_missing_deps(&[]).is_empty();
                if after == before && !waiting {
                    report.unchanged += 1;
                    touched.push((d.id.clone(), stored));
                    continue;
                }
                store::ensure_workspace(&tx, &d.workspace)?;
                if is_new {
                    store::insert_doc(&tx, &d.id, &mut stored)?;
                }
                if waiting {
                    // Keep the raw chunks: changes waiting for their dependencies exist only there.
                    for chunk in &d.chunks {
                        store::append_chunk(&tx, &d.id, &mut stored, chunk)?;
                    }
                } else if !is_new {
                    let chunk = stored.doc.save_after(&before);
                    store::append_chunk(&tx, &d.id, &mut stored, &chunk)?;
                }
                store::refresh_projection(&tx, &d.id, &stored.doc)?;
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
        })
    }
}

/// The changes in a stored document (snapshot + chunks) that are not ancestors of `their`.
fn changes_after(id: &str, chunks: &[ByteBuf], their: &[ChangeHash]) -> Result<Vec<u8>> {
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
