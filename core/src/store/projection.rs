//! Projection rows derived from documents: what lists, filters, search and reports query.
//!
//! `refresh` replaces every row of one document, so it is correct after any change, local or
//! merged, and `rebuild_projections` is just `refresh` over all documents.

use automerge::AutoCommit;
use rusqlite::{OptionalExtension, Transaction, params};

use crate::error::Result;
use crate::model::{RecordKind, Tip, Visit, Workshop};
use crate::records::{self, Header, settings, tip, visit, workshop};

/// Tables holding one document's rows: the column naming the document, and its kind.
const PER_DOC: &[(&str, &str, RecordKind)] = &[
    ("visits", "id", RecordKind::Visit),
    ("visit_indicators", "visit_id", RecordKind::Visit),
    ("visit_tags", "visit_id", RecordKind::Visit),
    ("referrals", "visit_id", RecordKind::Visit),
    ("workshops", "id", RecordKind::Workshop),
    ("workshop_facilitators", "workshop_id", RecordKind::Workshop),
    ("attendees", "workshop_id", RecordKind::Workshop),
    ("tallies", "workshop_id", RecordKind::Workshop),
    ("feedback", "workshop_id", RecordKind::Workshop),
    ("tips", "id", RecordKind::Tip),
];

/// Empties every projection table.
pub(crate) fn clear(tx: &Transaction<'_>) -> Result<()> {
    for (table, _, _) in PER_DOC {
        tx.execute(&format!("DELETE FROM {table}"), [])?;
    }
    tx.execute("DELETE FROM search", [])?;
    Ok(())
}

/// Whether the projection of record `id` says it is restricted.
pub(crate) fn is_restricted(tx: &rusqlite::Connection, id: &str) -> Result<bool> {
    Ok(tx
        .prepare_cached(
            "SELECT 1 FROM visits WHERE id = ?1 AND sensitivity = 'restricted'
             UNION ALL SELECT 1 FROM workshops WHERE id = ?1 AND sensitivity = 'restricted'
             UNION ALL SELECT 1 FROM tips WHERE id = ?1",
        )?
        .exists(params![id])?)
}

/// Restricted records of `workspace` not created by `actor` (hex): what a device that is not
/// a coordinator must not keep.
pub(crate) fn restricted_of_others(
    tx: &rusqlite::Connection,
    workspace: &str,
    actor: &str,
) -> Result<Vec<String>> {
    let mut st = tx.prepare(
        "SELECT id FROM visits WHERE workspace_id = ?1 AND sensitivity = 'restricted'
           AND created_by != ?2
         UNION ALL
         SELECT id FROM workshops WHERE workspace_id = ?1 AND sensitivity = 'restricted'
           AND created_by != ?2
         UNION ALL
         SELECT id FROM tips WHERE workspace_id = ?1",
    )?;
    let rows = st.query_map(params![workspace, actor], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The device (Automerge actor, hex) that created visit or workshop `id`, if it is one.
pub(crate) fn creator(tx: &rusqlite::Connection, id: &str) -> Result<Option<String>> {
    Ok(tx
        .query_row(
            "SELECT created_by FROM visits WHERE id = ?1
             UNION ALL SELECT created_by FROM workshops WHERE id = ?1",
            params![id],
            |r| r.get(0),
        )
        .optional()?)
}

/// The ids of `workspace`'s tips not deleted, newest first.
pub(crate) fn tips(c: &rusqlite::Connection, workspace: &str) -> Result<Vec<String>> {
    let mut st = c.prepare(
        "SELECT id FROM tips WHERE workspace_id = ?1 AND deleted = 0
         ORDER BY received_at DESC, id",
    )?;
    let ids = st
        .query_map(params![workspace], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(ids)
}

/// Removes every projection row of document `id` (its search entry included).
pub(crate) fn remove(tx: &Transaction<'_>, id: &str) -> Result<()> {
    if let Some(n) = tx
        .prepare_cached("SELECT n FROM documents WHERE id = ?1")?
        .query_row(params![id], |r| r.get::<_, i64>(0))
        .optional()?
    {
        tx.prepare_cached("DELETE FROM search WHERE rowid = ?1")?
            .execute(params![n])?;
    }
    for (table, col, _) in PER_DOC {
        tx.prepare_cached(&format!("DELETE FROM {table} WHERE {col} = ?1"))?
            .execute(params![id])?;
    }
    Ok(())
}

fn b(v: bool) -> i64 {
    i64::from(v)
}

/// Replaces the projection rows of document `id` with rows derived from `doc`.
pub(crate) fn refresh(tx: &Transaction<'_>, id: &str, doc: &AutoCommit) -> Result<()> {
    write(tx, id, &Rows::of(id, doc), false)
}

/// Writes the projection rows of document `id`, stored in this transaction: it has none yet.
pub(crate) fn refresh_new(tx: &Transaction<'_>, id: &str, doc: &AutoCommit) -> Result<()> {
    write(tx, id, &Rows::of(id, doc), true)
}

/// What one document shows in the projection tables: derived from the document alone, so it
/// can be computed away from the database (on another thread, ahead of the writer).
pub(crate) enum Rows {
    /// A document whose first change has not arrived yet: nothing to show.
    Empty,
    /// Workspace settings: the workspace's name.
    Settings { header: Header, name: String },
    /// A visit, and the device that created it.
    Visit {
        header: Header,
        visit: Box<Visit>,
        creator: String,
    },
    /// A workshop, and the device that created it.
    Workshop {
        header: Header,
        workshop: Box<Workshop>,
        creator: String,
    },
    /// An anonymous tip.
    Tip { header: Header, tip: Box<Tip> },
}

impl Rows {
    /// The rows of document `id`.
    pub(crate) fn of(id: &str, doc: &AutoCommit) -> Rows {
        let Some(header) = records::header(doc) else {
            return Rows::Empty;
        };
        match header.kind {
            RecordKind::Settings => Rows::Settings {
                name: settings::name(doc),
                header,
            },
            RecordKind::Visit => Rows::Visit {
                visit: Box::new(visit::read(doc, id, &header)),
                creator: records::creator(doc),
                header,
            },
            RecordKind::Workshop => Rows::Workshop {
                workshop: Box::new(workshop::read(doc, id, &header)),
                creator: records::creator(doc),
                header,
            },
            RecordKind::Tip => Rows::Tip {
                tip: Box::new(tip::read(doc, id, &header)),
                header,
            },
        }
    }

    /// The document's header, unless it has none yet.
    pub(crate) fn header(&self) -> Option<&Header> {
        match self {
            Rows::Empty => None,
            Rows::Settings { header, .. }
            | Rows::Visit { header, .. }
            | Rows::Workshop { header, .. }
            | Rows::Tip { header, .. } => Some(header),
        }
    }
}

/// Writes `rows` as the projection of document `id`, replacing what it had unless `new`.
pub(crate) fn write(tx: &Transaction<'_>, id: &str, rows: &Rows, new: bool) -> Result<()> {
    let n: i64 = tx
        .prepare_cached("SELECT n FROM documents WHERE id = ?1")?
        .query_row(params![id], |r| r.get(0))?;
    if !new {
        tx.prepare_cached("DELETE FROM search WHERE rowid = ?1")?
            .execute(params![n])?;
    }
    let Some(h) = rows.header() else {
        return Ok(());
    };
    // A document's kind never changes: only its own kind's tables can hold rows of it.
    for (table, col, _) in PER_DOC.iter().filter(|(_, _, k)| *k == h.kind && !new) {
        tx.prepare_cached(&format!("DELETE FROM {table} WHERE {col} = ?1"))?
            .execute(params![id])?;
    }
    match rows {
        Rows::Empty => {}
        Rows::Settings { header: h, name } => {
            tx.prepare_cached(
                "INSERT INTO workspaces(id, name, settings_doc, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(id) DO UPDATE SET name = excluded.name,
                     settings_doc = excluded.settings_doc",
            )?
            .execute(params![h.workspace, name, id, h.created_at])?;
        }
        Rows::Visit {
            header: h,
            visit: v,
            creator,
        } => {
            tx.prepare_cached(
                "INSERT INTO visits(id, workspace_id, occurred_at, place_name, area, lat, lon,
                    visit_type, people_reached, follow_up_needed, follow_up_due, follow_up_done,
                    sensitivity, deleted, created_at, has_conflicts, created_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                    ?17)",
            )?
            .execute(params![
                id,
                v.workspace_id,
                v.occurred_at,
                v.place.name,
                v.place.area,
                v.place.coordinates.map(|c| c.lat),
                v.place.coordinates.map(|c| c.lon),
                v.visit_type,
                v.people_reached,
                b(v.follow_up.needed),
                v.follow_up.due,
                b(v.follow_up.done),
                v.sensitivity.as_str(),
                b(v.deleted),
                v.created_at,
                b(v.has_conflicts),
                creator,
            ])?;
            let mut ind = tx.prepare_cached(
                "INSERT INTO visit_indicators(visit_id, indicator) VALUES (?1, ?2)",
            )?;
            for i in &v.indicators {
                ind.execute(params![id, i])?;
            }
            let mut tag =
                tx.prepare_cached("INSERT INTO visit_tags(visit_id, tag) VALUES (?1, ?2)")?;
            for t in &v.tags {
                tag.execute(params![id, t])?;
            }
            let mut refs = tx.prepare_cached(
                "INSERT INTO referrals(visit_id, id, kind, to_whom, status) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for r in &v.referrals {
                refs.execute(params![id, r.id, r.kind, r.to, r.status.as_str()])?;
            }
            if !v.deleted {
                index_text(
                    tx,
                    n,
                    id,
                    h,
                    v.sensitivity.as_str(),
                    &v.place.name,
                    &v.notes,
                )?;
            }
        }
        Rows::Workshop {
            header: h,
            workshop: w,
            creator,
        } => {
            let scores: Vec<f64> = w.feedback.iter().map(|f| f64::from(f.score)).collect();
            let avg =
                (!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64);
            tx.prepare_cached(
                "INSERT INTO workshops(id, workspace_id, title, topic, occurred_at, duration_minutes,
                    venue, area, audience, language, sensitivity, feedback_count, feedback_avg,
                    deleted, created_at, has_conflicts, created_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                    ?17)",
            )?
            .execute(params![
                id,
                w.workspace_id,
                w.title,
                w.topic,
                w.occurred_at,
                w.duration_minutes,
                w.venue,
                w.area,
                w.audience,
                w.language,
                w.sensitivity.as_str(),
                scores.len() as i64,
                avg,
                b(w.deleted),
                w.created_at,
                b(w.has_conflicts),
                creator,
            ])?;
            let mut fac = tx.prepare_cached(
                "INSERT INTO workshop_facilitators(workshop_id, name) VALUES (?1, ?2)",
            )?;
            for f in &w.facilitators {
                fac.execute(params![id, f])?;
            }
            let mut att = tx.prepare_cached(
                "INSERT INTO attendees(workshop_id, id, name, age_band, gender, contact, consent_at,
                    checked_in_at, withdrawn, same_as, name_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?;
            for a in &w.attendees {
                att.execute(params![
                    id,
                    a.id,
                    a.name,
                    a.age_band,
                    a.gender,
                    a.contact,
                    a.consent_at,
                    a.checked_in_at,
                    b(a.withdrawn),
                    a.same_as,
                    crate::duplicates::name_key(&a.name)
                ])?;
            }
            let mut tal = tx.prepare_cached(
                "INSERT INTO tallies(workshop_id, age_band, gender, count) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for t in &w.tallies {
                tal.execute(params![id, t.age_band, t.gender, t.count])?;
            }
            let mut fb = tx.prepare_cached(
                "INSERT INTO feedback(workshop_id, id, score, comment, at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for f in &w.feedback {
                fb.execute(params![id, f.id, f.score, f.comment, f.at])?;
            }
            if !w.deleted {
                let body = std::iter::once(w.notes.as_str())
                    .chain(w.feedback.iter().map(|f| f.comment.as_str()))
                    .collect::<Vec<_>>()
                    .join("\n");
                index_text(tx, n, id, h, w.sensitivity.as_str(), &w.title, &body)?;
            }
        }
        Rows::Tip { header: h, tip: t } => {
            tx.prepare_cached(
                "INSERT INTO tips(id, workspace_id, received_at, language, replies, visit_id,
                    deleted)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                id,
                t.workspace_id,
                t.received_at,
                t.language,
                t.replies.len() as i64,
                t.visit_id,
                b(t.deleted),
            ])?;
            if !t.deleted {
                let title: String = t
                    .what
                    .lines()
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(80)
                    .collect();
                let body = [&t.what, &t.place, &t.time, &t.contact]
                    .iter()
                    .map(|s| s.as_str())
                    .chain(t.replies.iter().map(|r| r.text.as_str()))
                    .collect::<Vec<_>>()
                    .join("\n");
                index_text(tx, n, id, h, "restricted", &title, &body)?;
            }
        }
    }
    Ok(())
}

fn index_text(
    tx: &Transaction<'_>,
    n: i64,
    id: &str,
    h: &records::Header,
    sensitivity: &str,
    title: &str,
    body: &str,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO search(rowid, doc_id, kind, workspace_id, sensitivity, title, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        n,
        id,
        h.kind.as_str(),
        h.workspace,
        sensitivity,
        title,
        body
    ])?;
    Ok(())
}

/// Every projection row as text, sorted.
pub(crate) fn dump(store: &super::Store) -> Result<Vec<String>> {
    store.read(|c| {
        let mut out = Vec::new();
        let tables = PER_DOC
            .iter()
            .map(|(t, _, _)| *t)
            .chain(["workspaces", "search"]);
        for table in tables {
            let cols = if table == "workspaces" {
                "id, name, settings_doc"
            } else {
                "*"
            };
            let mut st = c.prepare(&format!("SELECT {cols} FROM {table}"))?;
            let n = st.column_count();
            let rows = st.query_map([], |r| {
                let mut parts = vec![table.to_string()];
                for i in 0..n {
                    parts.push(format!("{:?}", r.get::<_, rusqlite::types::Value>(i)?));
                }
                Ok(parts.join("|"))
            })?;
            for row in rows {
                out.push(row?);
            }
        }
        out.sort();
        Ok(out)
    })
}
