//! Forgetting for real: erasing a record, redacting its history, removing an attendee's data.
//!
//! Automerge keeps every value a document ever had, and cannot truncate its history. So a
//! record that must forget is rewritten as its next *generation*: a new document holding only
//! what should stay (for an erase, the header and the tombstone; for a redaction, the current
//! values), written under the actor of the device that created the record, so that it still
//! shows as theirs and teammates accept it from that device or a coordinator only (issue 12's
//! authorship rule). Every device replaces its copy when the rewrite arrives: the earlier
//! generation's save, chunks, projections, search entry, queued changes and held blobs go in
//! the same transaction; `secure_delete`, the search index's `secure-delete` and a WAL
//! checkpoint leave no copy in freed pages. The server drops the earlier blobs' ciphertext at
//! once (`PushBlob::forget`). A change made to an earlier generation is never merged into a
//! later one (it would bring its history back): it is set aside and reported.

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ObjId, ObjType, ReadDoc, Value};
use rusqlite::{Transaction, params};

use super::{Store, Writer, docs, outbox, projection, set_aside};
use crate::crypto::ChunkMeta;
use crate::error::{Error, Result};
use crate::exchange::{Target, merge_chunks};
use crate::model::RecordKind;
use crate::records::{self, K_CREATED_AT, K_DELETED, K_KIND, K_SCHEMA, K_WORKSPACE};
use crate::sync::team::{Authorship, is_coordinator};

/// Fields a redaction may name: every field a person types or picks on a visit or workshop.
const REDACTABLE: &[&str] = &[
    "notes",
    "place",
    "area",
    "visit_type",
    "indicators",
    "referrals",
    "follow_up",
    "title",
    "topic",
    "venue",
    "audience",
    "facilitators",
    "attendees",
    "feedback",
];

impl Store {
    /// Erases record `id` on every device and on the server: it is rewritten as an empty,
    /// deleted record without any history, so nothing it ever said stays anywhere (export
    /// bundles made afterwards included). Allowed to the record's author and to coordinators.
    pub fn erase_record(&self, id: &str) -> Result<()> {
        self.rewrite_record(id, Rewrite::Erase)
    }

    /// Forgets every earlier value of `field` of record `id` (e.g. a name typed into the notes
    /// and edited away): the record is rewritten from its current values without any history,
    /// on every device and on the server. Earlier values of its other fields go too, and
    /// conflicting values keep only the one shown. Allowed to the record's author and to
    /// coordinators.
    pub fn redact_record(&self, id: &str, field: &str) -> Result<()> {
        if !REDACTABLE.contains(&field) {
            return Err(Error::invalid(
                "field",
                "not a field of a visit or workshop that can be redacted",
            ));
        }
        self.rewrite_record(id, Rewrite::Redact)
    }

    /// An attendee asked to be removed: withdraws them, removes their name and contact, and
    /// redacts the workshop so that no earlier copy keeps them.
    pub fn remove_attendee_data(&self, workshop_id: &str, attendee_id: &str) -> Result<()> {
        crate::validate::id("attendee_id", attendee_id)?;
        self.edit_doc(workshop_id, RecordKind::Workshop, |doc, _| {
            crate::records::workshop::remove_personal_data(doc, attendee_id)
        })?;
        self.rewrite_record(workshop_id, Rewrite::Redact)
    }

    fn rewrite_record(&self, id: &str, how: Rewrite) -> Result<()> {
        crate::validate::id("id", id)?;
        let actor = self.actor_id().clone();
        self.with_writer(|w| {
            Store::take_cached(w, id);
            let tx = w.conn.transaction()?;
            let stored = docs::load(&tx, id, &actor)?
                .filter(|s| s.kind != RecordKind::Settings)
                .ok_or_else(|| Error::not_found(format!("record {id}")))?;
            let creator = records::creator(&stored.doc);
            let own = hex::encode(actor.to_bytes());
            if outbox::connected(&tx, &stored.workspace)?
                && creator != own
                && !is_coordinator(&tx, &stored.workspace)?
            {
                return Err(Error::NotPermitted(
                    "only the record's author or a coordinator may erase or redact it".into(),
                ));
            }
            let creator = hex::decode(&creator)
                .map(ActorId::from)
                .map_err(|_| Error::corrupt(format!("record {id} names no author")))?;
            let mut rewritten = rewrite(&stored.doc, creator, how)?;
            let save = rewritten.save();
            let restricted = projection::is_restricted(&tx, id)?;
            let on_server: i64 = tx.query_row(
                "SELECT seq FROM documents WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )?;
            let generation = outbox::generation(&tx, id)? + 1;
            let target = Target {
                id,
                workspace: &stored.workspace,
                kind: stored.kind,
            };
            // Changes queued here are in the rewrite: nothing of them is lost.
            let meta = ChunkMeta {
                kind: stored.kind,
                generation,
                replaces: true,
                covers: u64::try_from(on_server).unwrap_or(0),
                pack: false,
            };
            replace(&tx, &target, &save, meta, &actor, &Authorship::Any, false)?;
            outbox::enqueue_rewrite(
                &tx,
                &stored.workspace,
                id,
                stored.kind,
                &save,
                restricted,
                u64::try_from(on_server).ok().filter(|&seq| seq > 0),
            )?;
            tx.commit()?;
            checkpoint(w);
            Ok(())
        })
    }
}

/// What a rewrite keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rewrite {
    /// The header and the tombstone; every container empty.
    Erase,
    /// Every current value.
    Redact,
}

/// The record `doc` as a new document without history, written as `creator`.
fn rewrite(doc: &AutoCommit, creator: ActorId, how: Rewrite) -> Result<AutoCommit> {
    let mut out = AutoCommit::new().with_actor(creator);
    let root = automerge::ROOT;
    for key in doc.keys(&root) {
        let Some((value, id)) = doc.get(&root, key.as_str())? else {
            continue;
        };
        let header = [K_SCHEMA, K_KIND, K_WORKSPACE, K_CREATED_AT].contains(&key.as_str());
        match (value, how) {
            (Value::Object(kind), Rewrite::Erase) => {
                out.put_object(&root, key.as_str(), kind)?;
            }
            (Value::Object(kind), Rewrite::Redact) => {
                let to = out.put_object(&root, key.as_str(), kind)?;
                copy(doc, &id, &mut out, &to, kind)?;
            }
            (Value::Scalar(s), _) if header || how == Rewrite::Redact => {
                out.put(&root, key.as_str(), s.into_owned())?;
            }
            (Value::Scalar(_), _) => {}
        }
    }
    if how == Rewrite::Erase {
        out.put(&root, K_DELETED, true)?;
    }
    out.commit();
    Ok(out)
}

/// Copies the current content of object `from` of `src` into the empty object `to` of `dst`.
fn copy(
    src: &AutoCommit,
    from: &ObjId,
    dst: &mut AutoCommit,
    to: &ObjId,
    kind: ObjType,
) -> Result<()> {
    match kind {
        ObjType::Text => {
            let text = src.text(from)?;
            dst.splice_text(to, 0, 0, &text)?;
        }
        ObjType::List => {
            for i in 0..src.length(from) {
                match src.get(from, i)? {
                    Some((Value::Object(k), id)) => {
                        let child = dst.insert_object(to, i, k)?;
                        copy(src, &id, dst, &child, k)?;
                    }
                    Some((Value::Scalar(s), _)) => dst.insert(to, i, s.into_owned())?,
                    None => {}
                }
            }
        }
        ObjType::Map | ObjType::Table => {
            for key in src.keys(from) {
                match src.get(from, key.as_str())? {
                    Some((Value::Object(k), id)) => {
                        let child = dst.put_object(to, key.as_str(), k)?;
                        copy(src, &id, dst, &child, k)?;
                    }
                    Some((Value::Scalar(s), _)) => dst.put(to, key.as_str(), s.into_owned())?,
                    None => {}
                }
            }
        }
    }
    Ok(())
}

/// Replaces document `t.id` by the rewrite `save` (`meta` says its generation and what it
/// covers) within `tx`: everything of the earlier generation goes (see the module docs). With
/// `from_elsewhere` (the rewrite came from another device), changes this device has that the
/// rewrite does not (queued here, or seen on the server after what the rewrite covers) are
/// recorded as set aside, so that the user is told.
pub(crate) fn replace(
    tx: &Transaction<'_>,
    t: &Target<'_>,
    save: &[u8],
    meta: ChunkMeta,
    actor: &ActorId,
    authors: &Authorship,
    from_elsewhere: bool,
) -> Result<docs::StoredDoc> {
    let (unsent, seen): (i64, i64) = tx.query_row(
        "SELECT (SELECT count(*) FROM outbox WHERE doc_id = ?1),
                coalesce((SELECT seq FROM documents WHERE id = ?1), 0)",
        params![t.id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let later = u64::try_from(seen).unwrap_or(0) > meta.covers && meta.covers > 0;
    // Held blobs of the earlier generation could only be set aside once they open: their bytes
    // go now.
    tx.execute(
        "UPDATE set_aside SET blob = NULL, held = NULL,
            reason = 'made before this record was erased or redacted'
         WHERE doc_id = ?1 AND blob IS NOT NULL",
        params![t.id],
    )?;
    docs::forget(tx, t.id)?;
    let (stored, _) = merge_chunks(tx, None, actor, t, &[save.to_vec()], false, authors)?;
    docs::set_generation(tx, t.id, meta.generation)?;
    if from_elsewhere && (unsent > 0 || later) {
        set_aside::put_local(
            tx,
            t.workspace,
            t.id,
            "changes to this record made while another device erased or redacted it are not in \
             it: they were set aside",
        )?;
    }
    Ok(stored)
}

/// Folds the write-ahead log into the database file and empties it, so that pages a rewrite
/// freed (zeroed in place by `secure_delete`) keep no earlier copy there.
pub(crate) fn checkpoint(w: &mut Writer) {
    // Best effort: a reader still on an older snapshot makes it wait for the next rewrite or
    // SQLite's own checkpoint, which zeroed pages then overwrite.
    let _ = w
        .conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            r.get::<_, i64>(0)
        });
}
