//! Reads answered from the projection tables: lists with filters, attendance, search.

use rusqlite::types::Value as SqlValue;
use rusqlite::{Row, params, params_from_iter};

use super::Store;
use crate::error::{Error, Result};
use crate::model::*;
use crate::validate;

/// Default and largest page of a list.
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 10_000;

/// Builds a WHERE clause with positional parameters.
#[derive(Default)]
struct Where {
    clauses: Vec<String>,
    params: Vec<SqlValue>,
}

impl Where {
    fn and(&mut self, clause: &str, values: impl IntoIterator<Item = SqlValue>) {
        self.clauses.push(clause.to_string());
        self.params.extend(values);
    }

    fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }
}

fn page(limit: Option<u32>, offset: Option<u32>) -> (i64, i64) {
    (
        i64::from(limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT)),
        i64::from(offset.unwrap_or(0)),
    )
}

fn split_list(s: Option<String>) -> Vec<String> {
    s.map(|s| {
        s.split(',')
            .filter(|x| !x.is_empty())
            .map(String::from)
            .collect()
    })
    .unwrap_or_default()
}

fn visit_summary(r: &Row<'_>) -> rusqlite::Result<VisitSummary> {
    Ok(VisitSummary {
        id: r.get(0)?,
        workspace_id: r.get(1)?,
        occurred_at: r.get(2)?,
        place_name: r.get(3)?,
        area: r.get(4)?,
        visit_type: r.get(5)?,
        people_reached: r.get(6)?,
        indicators: split_list(r.get(7)?),
        follow_up: FollowUp {
            needed: r.get(8)?,
            due: r.get(9)?,
            done: r.get(10)?,
        },
        sensitivity: Sensitivity::parse(&r.get::<_, String>(11)?),
        has_conflicts: r.get(12)?,
        deleted: r.get(13)?,
    })
}

impl Store {
    /// Visits matching `filter`, newest first (ties by id).
    pub fn list_visits(&self, filter: &VisitFilter) -> Result<Vec<VisitSummary>> {
        let mut w = Where::default();
        if let Some(ws) = &filter.workspace_id {
            w.and("v.workspace_id = ?", [ws.clone().into()]);
        }
        if let Some(t) = filter.from {
            w.and("v.occurred_at >= ?", [t.into()]);
        }
        if let Some(t) = filter.to {
            w.and("v.occurred_at < ?", [t.into()]);
        }
        if let Some(a) = &filter.area {
            w.and("v.area = ?", [a.clone().into()]);
        }
        if let Some(t) = &filter.visit_type {
            w.and("v.visit_type = ?", [t.clone().into()]);
        }
        if let Some(i) = &filter.indicator {
            w.and(
                "EXISTS (SELECT 1 FROM visit_indicators i WHERE i.visit_id = v.id AND i.indicator = ?)",
                [i.clone().into()],
            );
        }
        match &filter.follow_up {
            None => {}
            Some(FollowUpFilter::Open) => {
                w.and("v.follow_up_needed = 1 AND v.follow_up_done = 0", []);
            }
            Some(FollowUpFilter::DueBy(d)) => {
                validate::date("follow_up", d)?;
                w.and(
                    "v.follow_up_needed = 1 AND v.follow_up_done = 0 AND v.follow_up_due <= ?",
                    [d.clone().into()],
                );
            }
            Some(FollowUpFilter::OverdueOn(d)) => {
                validate::date("follow_up", d)?;
                w.and(
                    "v.follow_up_needed = 1 AND v.follow_up_done = 0 AND v.follow_up_due < ?",
                    [d.clone().into()],
                );
            }
        }
        if !filter.include_deleted {
            w.and("v.deleted = 0", []);
        }
        let (limit, offset) = page(filter.limit, filter.offset);
        // Pick the page first, then gather indicators for those rows only.
        let sql = format!(
            "SELECT v.id, v.workspace_id, v.occurred_at, v.place_name, v.area, v.visit_type,
                v.people_reached,
                (SELECT group_concat(indicator, ',') FROM
                    (SELECT indicator FROM visit_indicators WHERE visit_id = v.id ORDER BY indicator)),
                v.follow_up_needed, v.follow_up_due, v.follow_up_done, v.sensitivity,
                v.has_conflicts, v.deleted
             FROM (SELECT * FROM visits v {} ORDER BY v.occurred_at DESC, v.id DESC
                   LIMIT {limit} OFFSET {offset}) v
             ORDER BY v.occurred_at DESC, v.id DESC",
            w.sql()
        );
        self.read(|c| {
            let mut st = c.prepare_cached(&sql)?;
            let rows = st.query_map(params_from_iter(w.params.iter()), visit_summary)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Workshops matching `filter`, newest first.
    pub fn list_workshops(&self, filter: &WorkshopFilter) -> Result<Vec<WorkshopSummary>> {
        let mut w = Where::default();
        if let Some(ws) = &filter.workspace_id {
            w.and("k.workspace_id = ?", [ws.clone().into()]);
        }
        if let Some(t) = filter.from {
            w.and("k.occurred_at >= ?", [t.into()]);
        }
        if let Some(t) = filter.to {
            w.and("k.occurred_at < ?", [t.into()]);
        }
        if let Some(t) = &filter.topic {
            w.and("k.topic = ?", [t.clone().into()]);
        }
        if let Some(a) = &filter.area {
            w.and("k.area = ?", [a.clone().into()]);
        }
        if !filter.include_deleted {
            w.and("k.deleted = 0", []);
        }
        let (limit, offset) = page(filter.limit, filter.offset);
        let sql = format!(
            "SELECT k.id, k.workspace_id, k.title, k.topic, k.occurred_at, k.area, k.audience,
                (SELECT count(*) FROM attendees a WHERE a.workshop_id = k.id AND a.withdrawn = 0)
                + (SELECT coalesce(sum(count), 0) FROM tallies t WHERE t.workshop_id = k.id),
                k.sensitivity, k.has_conflicts, k.deleted
             FROM (SELECT * FROM workshops k {} ORDER BY k.occurred_at DESC, k.id DESC
                   LIMIT {limit} OFFSET {offset}) k
             ORDER BY k.occurred_at DESC, k.id DESC",
            w.sql()
        );
        self.read(|c| {
            let mut st = c.prepare_cached(&sql)?;
            let rows = st.query_map(params_from_iter(w.params.iter()), |r| {
                Ok(WorkshopSummary {
                    id: r.get(0)?,
                    workspace_id: r.get(1)?,
                    title: r.get(2)?,
                    topic: r.get(3)?,
                    occurred_at: r.get(4)?,
                    area: r.get(5)?,
                    audience: r.get(6)?,
                    attendance: r.get(7)?,
                    sensitivity: Sensitivity::parse(&r.get::<_, String>(8)?),
                    has_conflicts: r.get(9)?,
                    deleted: r.get(10)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// A workshop's attendees and anonymous tallies, with totals and breakdowns.
    pub fn attendance(&self, workshop_id: &str) -> Result<Attendance> {
        validate::id("workshop_id", workshop_id)?;
        self.read(|c| {
            let exists = c
                .prepare_cached("SELECT 1 FROM workshops WHERE id = ?1")?
                .exists(params![workshop_id])?;
            if !exists {
                return Err(Error::not_found(format!("workshop {workshop_id}")));
            }
            let mut st = c.prepare_cached(
                "SELECT id, name, age_band, gender, contact, consent_at, checked_in_at, withdrawn,
                    same_as
                 FROM attendees WHERE workshop_id = ?1 ORDER BY checked_in_at, id",
            )?;
            let attendees = st
                .query_map(params![workshop_id], |r| {
                    Ok(Attendee {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        age_band: r.get(2)?,
                        gender: r.get(3)?,
                        contact: r.get(4)?,
                        consent_at: r.get(5)?,
                        checked_in_at: r.get(6)?,
                        withdrawn: r.get(7)?,
                        same_as: r.get(8)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut st = c.prepare_cached(
                "SELECT age_band, gender, count FROM tallies WHERE workshop_id = ?1
                 ORDER BY age_band, gender",
            )?;
            let tallies = st
                .query_map(params![workshop_id], |r| {
                    Ok(Tally {
                        age_band: r.get(0)?,
                        gender: r.get(1)?,
                        count: r.get(2)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let breakdown = |sql: &str| -> Result<Vec<Count>> {
                let mut st = c.prepare_cached(sql)?;
                let rows = st.query_map(params![workshop_id], |r| {
                    Ok(Count {
                        key: r.get(0)?,
                        count: r.get(1)?,
                    })
                })?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            };
            let by_age_band = breakdown(
                "SELECT k, sum(n) FROM (
                    SELECT coalesce(age_band, 'unknown') AS k, 1 AS n FROM attendees
                        WHERE workshop_id = ?1 AND withdrawn = 0
                    UNION ALL
                    SELECT age_band, count FROM tallies WHERE workshop_id = ?1)
                 GROUP BY k HAVING sum(n) != 0 ORDER BY k",
            )?;
            let by_gender = breakdown(
                "SELECT k, sum(n) FROM (
                    SELECT coalesce(gender, 'not_recorded') AS k, 1 AS n FROM attendees
                        WHERE workshop_id = ?1 AND withdrawn = 0
                    UNION ALL
                    SELECT gender, count FROM tallies WHERE workshop_id = ?1)
                 GROUP BY k HAVING sum(n) != 0 ORDER BY k",
            )?;
            let named = attendees.iter().filter(|a| !a.withdrawn).count() as i64;
            let withdrawn = attendees.len() as i64 - named;
            let anonymous: i64 = tallies.iter().map(|t| t.count).sum();
            let marks = crate::duplicates::Marks::read(c)?;
            let unique_people = attendees
                .iter()
                .filter(|a| !a.withdrawn)
                .map(|a| marks.person(&format!("{workshop_id}:{}", a.id)))
                .collect::<std::collections::HashSet<_>>()
                .len() as i64;
            Ok(Attendance {
                attendees,
                tallies,
                named,
                withdrawn,
                unique_people,
                anonymous,
                total: named + anonymous,
                by_age_band,
                by_gender,
            })
        })
    }

    /// Full-text search over notes, feedback comments, place names and titles (prefix match on
    /// every word; all words must match). Deleted records are not found.
    pub fn search(&self, query: &str, limit: u32) -> Result<Vec<SearchHit>> {
        validate::line("query", query)?;
        // Quote every word so that FTS5 operators typed by a user are searched for, not run.
        let terms: Vec<String> = query
            .split_whitespace()
            .map(|w| format!("\"{}\"*", w.replace('"', "\"\"")))
            .collect();
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let fts = terms.join(" ");
        let limit = i64::from(limit.clamp(1, MAX_LIMIT));
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT doc_id, kind, workspace_id, title,
                    snippet(search, 5, '[', ']', '…', 12), sensitivity
                 FROM search WHERE search MATCH ?1 ORDER BY rank LIMIT ?2",
            )?;
            let rows = st.query_map(params![fts, limit], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                ))
            })?;
            let mut hits = Vec::new();
            for row in rows {
                let (id, kind, workspace_id, title, snippet, sensitivity) = row?;
                let Some(kind) = RecordKind::parse(&kind) else {
                    continue;
                };
                hits.push(SearchHit {
                    id,
                    kind,
                    workspace_id,
                    title,
                    snippet,
                    sensitivity: Sensitivity::parse(&sensitivity),
                });
            }
            Ok(hits)
        })
    }
}
