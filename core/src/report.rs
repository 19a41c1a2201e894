//! Reports: the figures coordinators and funders ask for (visits, people reached, risk
//! indicators, referrals, follow-ups; workshops, attendance, feedback), for a period and
//! optional filters, overall and per calendar month.
//!
//! Every figure is a SQL aggregate over the projection tables, grouped by month and key in
//! one pass per breakdown; the overall figures are the sums of the months. Months are UTC
//! calendar months (`YYYY-MM`) of when the visit or workshop happened. Deleted records never
//! count; restricted records do count (a report shows totals, never which record they came
//! from), and exports leave them out unless asked for (see `export`).

use std::collections::{BTreeMap, HashMap};

use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;

use crate::error::{Error, Result};
use crate::model::Count;
use crate::store::Store;
use crate::validate;

/// What a report covers; empty fields do not filter.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReportFilter {
    /// Only this workspace.
    pub workspace_id: Option<String>,
    /// Records that happened at or after (ms).
    pub from: Option<i64>,
    /// Records that happened before (ms).
    pub to: Option<i64>,
    /// Only this area.
    pub area: Option<String>,
    /// Only workshops of this topic (visits have no topic and are not filtered by it).
    pub topic: Option<String>,
    /// Only records created by this device (Automerge actor, hex; see `Settings::devices`).
    pub worker: Option<String>,
    /// The date follow-ups are overdue against (`YYYY-MM-DD`, strictly before); default today
    /// (UTC).
    pub today: Option<String>,
}

/// Figures about field visits.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VisitFigures {
    /// Visits made.
    pub visits: i64,
    /// People reached, summed over visits.
    pub people_reached: i64,
    /// Visits per visit type, most first.
    pub by_type: Vec<Count>,
    /// Visits per area, most first.
    pub by_area: Vec<Count>,
    /// Visits on which each risk indicator was observed, most first.
    pub indicators: Vec<Count>,
    /// Referrals made on these visits.
    pub referrals: i64,
    /// Referrals per kind, most first.
    pub referrals_by_kind: Vec<Count>,
    /// Referrals per status, most first.
    pub referrals_by_status: Vec<Count>,
    /// Follow-ups due: needed and not yet done.
    pub follow_ups_due: i64,
    /// Follow-ups overdue: due, with a due date before the report's `today`.
    pub follow_ups_overdue: i64,
}

/// Figures about awareness workshops.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WorkshopFigures {
    /// Workshops held.
    pub workshops: i64,
    /// Workshops per topic, most first.
    pub by_topic: Vec<Count>,
    /// Workshops per audience, most first.
    pub by_audience: Vec<Count>,
    /// People attending: named attendees (withdrawn excluded) plus anonymous tallies.
    pub attendance: i64,
    /// Named attendees, withdrawn excluded.
    pub named: i64,
    /// People counted anonymously.
    pub anonymous: i64,
    /// Attendance per age band (`unknown` where not recorded), most first.
    pub by_age_band: Vec<Count>,
    /// Attendance per gender (`not_recorded` where not recorded), most first.
    pub by_gender: Vec<Count>,
    /// Feedback entries collected.
    pub feedback_count: i64,
    /// Average feedback score (1-5) over all entries, if any.
    pub feedback_average: Option<f64>,
}

/// The figures of one calendar month.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MonthFigures {
    /// The month, `YYYY-MM` (UTC).
    pub month: String,
    /// Visit figures of the month.
    pub visits: VisitFigures,
    /// Workshop figures of the month.
    pub workshops: WorkshopFigures,
}

/// A report: overall figures and the same figures per month.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    /// The filter the report answers.
    pub filter: ReportFilter,
    /// The date overdue follow-ups were counted against (`YYYY-MM-DD`).
    pub today: String,
    /// Visit figures for the whole period.
    pub visits: VisitFigures,
    /// Workshop figures for the whole period.
    pub workshops: WorkshopFigures,
    /// Every month from the first to the last with a record, gaps included (as zeros).
    pub months: Vec<MonthFigures>,
}

/// Today's date (UTC) as `YYYY-MM-DD`.
pub(crate) fn today_utc() -> String {
    let d = time::OffsetDateTime::now_utc().date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// Checks a filter before any query runs.
pub(crate) fn validate_filter(f: &ReportFilter) -> Result<()> {
    if let Some(ws) = &f.workspace_id {
        validate::id("workspace_id", ws)?;
    }
    if let Some(t) = f.from {
        validate::time("from", t)?;
    }
    if let Some(t) = f.to {
        validate::time("to", t)?;
    }
    if let (Some(a), Some(b)) = (f.from, f.to)
        && a >= b
    {
        return Err(Error::invalid("to", "must be after from"));
    }
    if let Some(a) = &f.area {
        validate::line("area", a)?;
    }
    if let Some(t) = &f.topic {
        validate::key("topic", t)?;
    }
    if let Some(w) = &f.worker
        && (w.is_empty() || w.len() > 64 || !w.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(Error::invalid(
            "worker",
            "must be a device's actor id (hex)",
        ));
    }
    if let Some(d) = &f.today {
        validate::date("today", d)?;
    }
    Ok(())
}

/// The WHERE clause shared by every query of one table (`v` visits or `k` workshops).
pub(crate) struct Scope {
    pub(crate) sql: String,
    pub(crate) params: Vec<SqlValue>,
}

impl Scope {
    /// Records of `alias` (`v` or `k`) matching `f`; `topic` applies to workshops only.
    pub(crate) fn new(alias: &str, f: &ReportFilter, workshops: bool) -> Scope {
        let mut clauses = vec![format!("{alias}.deleted = 0")];
        let mut params: Vec<SqlValue> = Vec::new();
        let mut and = |c: &str, v: SqlValue| {
            clauses.push(format!("{alias}.{c} ?"));
            params.push(v);
        };
        if let Some(ws) = &f.workspace_id {
            and("workspace_id =", ws.clone().into());
        }
        if let Some(t) = f.from {
            and("occurred_at >=", t.into());
        }
        if let Some(t) = f.to {
            and("occurred_at <", t.into());
        }
        if let Some(a) = &f.area {
            and("area =", a.clone().into());
        }
        if workshops && let Some(t) = &f.topic {
            and("topic =", t.clone().into());
        }
        if let Some(w) = &f.worker {
            and("created_by =", w.to_ascii_lowercase().into());
        }
        Scope {
            sql: clauses.join(" AND "),
            params,
        }
    }
}

/// The month of a record's time, as SQL over column `occurred_at` of `alias`.
fn month(alias: &str) -> String {
    format!("strftime('%Y-%m', {alias}.occurred_at / 1000, 'unixepoch')")
}

/// Counts per month and key, added up into overall counts too.
#[derive(Default)]
struct Breakdown {
    total: BTreeMap<String, i64>,
    months: BTreeMap<String, BTreeMap<String, i64>>,
}

impl Breakdown {
    fn add(&mut self, month: String, key: String, n: i64) {
        *self.total.entry(key.clone()).or_default() += n;
        *self
            .months
            .entry(month)
            .or_default()
            .entry(key)
            .or_default() += n;
    }

    fn counts(map: &BTreeMap<String, i64>) -> Vec<Count> {
        let mut v: Vec<Count> = map
            .iter()
            .filter(|(_, n)| **n != 0)
            .map(|(k, n)| Count {
                key: k.clone(),
                count: *n,
            })
            .collect();
        v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
        v
    }

    fn overall(&self) -> Vec<Count> {
        Self::counts(&self.total)
    }

    fn month(&self, m: &str) -> Vec<Count> {
        self.months.get(m).map(Self::counts).unwrap_or_default()
    }
}

/// Runs `sql` whose rows are (section, month, key, n) into one breakdown per section.
fn sections(c: &Connection, sql: &str, params: &[SqlValue]) -> Result<HashMap<String, Breakdown>> {
    let mut st = c.prepare_cached(sql)?;
    let mut rows = st.query(rusqlite::params_from_iter(params.iter()))?;
    let mut out: HashMap<String, Breakdown> = HashMap::new();
    while let Some(r) = rows.next()? {
        let n = r.get::<_, Option<i64>>(3)?.unwrap_or(0);
        out.entry(r.get(0)?)
            .or_default()
            .add(r.get(1)?, r.get(2)?, n);
    }
    Ok(out)
}

/// The months from `first` to `last` (`YYYY-MM`), both included.
fn month_range(first: &str, last: &str) -> Vec<String> {
    let parse = |m: &str| -> Option<(i32, u32)> {
        let (y, mo) = m.split_once('-')?;
        Some((y.parse().ok()?, mo.parse().ok()?))
    };
    let (Some((mut y, mut m)), Some(end)) = (parse(first), parse(last)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    while (y, m) <= end {
        out.push(format!("{y:04}-{m:02}"));
        (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    }
    out
}

/// The visit sections of a report, in one statement: the filtered visits are read once (with
/// their month computed once) and every breakdown groups that set. The first parameter is
/// `today`, then the scope's.
fn visit_sql(scope: &str) -> String {
    format!(
        "WITH fv AS MATERIALIZED (
            SELECT v.id AS id, {m} AS m, v.visit_type AS t, v.area AS a, v.people_reached AS p,
                (v.follow_up_needed = 1 AND v.follow_up_done = 0) AS due,
                (v.follow_up_needed = 1 AND v.follow_up_done = 0
                    AND v.follow_up_due IS NOT NULL AND v.follow_up_due < ?) AS overdue
            FROM visits v WHERE {scope})
         SELECT 'visits', m, '', count(*) FROM fv GROUP BY m
         UNION ALL SELECT 'people', m, '', sum(p) FROM fv GROUP BY m
         UNION ALL SELECT 'due', m, '', sum(due) FROM fv GROUP BY m
         UNION ALL SELECT 'overdue', m, '', sum(overdue) FROM fv GROUP BY m
         UNION ALL SELECT 'type', m, t, count(*) FROM fv GROUP BY m, t
         UNION ALL SELECT 'area', m, a, count(*) FROM fv GROUP BY m, a
         UNION ALL SELECT 'indicators', fv.m, i.indicator, count(*) FROM fv
            JOIN visit_indicators i ON i.visit_id = fv.id GROUP BY fv.m, i.indicator
         UNION ALL SELECT 'ref_kind', fv.m, r.kind, count(*) FROM fv
            JOIN referrals r ON r.visit_id = fv.id GROUP BY fv.m, r.kind
         UNION ALL SELECT 'ref_status', fv.m, r.status, count(*) FROM fv
            JOIN referrals r ON r.visit_id = fv.id GROUP BY fv.m, r.status",
        m = month("v"),
    )
}

/// The workshop sections of a report, in one statement. Attendance puts named attendees
/// (withdrawn excluded, unrecorded band or gender as `unknown` / `not_recorded`) and anonymous
/// tallies side by side.
fn workshop_sql(scope: &str) -> String {
    format!(
        "WITH fk AS MATERIALIZED (
            SELECT k.id AS id, {m} AS m, k.topic AS t, k.audience AS au
            FROM workshops k WHERE {scope}),
         people AS MATERIALIZED (
            SELECT fk.m AS m, coalesce(a.age_band, 'unknown') AS band,
                coalesce(a.gender, 'not_recorded') AS g, 1 AS n, 1 AS named
            FROM fk JOIN attendees a ON a.workshop_id = fk.id WHERE a.withdrawn = 0
            UNION ALL
            SELECT fk.m, t.age_band, t.gender, t.count, 0
            FROM fk JOIN tallies t ON t.workshop_id = fk.id)
         SELECT 'workshops', m, '', count(*) FROM fk GROUP BY m
         UNION ALL SELECT 'topic', m, t, count(*) FROM fk GROUP BY m, t
         UNION ALL SELECT 'audience', m, au, count(*) FROM fk GROUP BY m, au
         UNION ALL SELECT 'named', m, '', sum(n) FROM people WHERE named = 1 GROUP BY m
         UNION ALL SELECT 'anonymous', m, '', sum(n) FROM people WHERE named = 0 GROUP BY m
         UNION ALL SELECT 'age', m, band, sum(n) FROM people GROUP BY m, band
         UNION ALL SELECT 'gender', m, g, sum(n) FROM people GROUP BY m, g
         UNION ALL SELECT 'feedback', fk.m, '', count(*) FROM fk
            JOIN feedback f ON f.workshop_id = fk.id GROUP BY fk.m
         UNION ALL SELECT 'score', fk.m, '', sum(f.score) FROM fk
            JOIN feedback f ON f.workshop_id = fk.id GROUP BY fk.m",
        m = month("k"),
    )
}

/// The figures of one section set, overall (`month` None) or for one month.
struct Pick<'a> {
    sections: &'a HashMap<String, Breakdown>,
    month: Option<&'a str>,
}

impl Pick<'_> {
    fn counts(&self, name: &str) -> Vec<Count> {
        match (self.sections.get(name), self.month) {
            (None, _) => Vec::new(),
            (Some(b), None) => b.overall(),
            (Some(b), Some(m)) => b.month(m),
        }
    }

    fn total(&self, name: &str) -> i64 {
        let Some(b) = self.sections.get(name) else {
            return 0;
        };
        let map = match self.month {
            None => Some(&b.total),
            Some(m) => b.months.get(m),
        };
        map.and_then(|m| m.get("")).copied().unwrap_or(0)
    }

    fn visits(&self) -> VisitFigures {
        VisitFigures {
            visits: self.total("visits"),
            people_reached: self.total("people"),
            by_type: self.counts("type"),
            by_area: self.counts("area"),
            indicators: self.counts("indicators"),
            referrals: self.counts("ref_kind").iter().map(|c| c.count).sum(),
            referrals_by_kind: self.counts("ref_kind"),
            referrals_by_status: self.counts("ref_status"),
            follow_ups_due: self.total("due"),
            follow_ups_overdue: self.total("overdue"),
        }
    }

    fn workshops(&self) -> WorkshopFigures {
        let (named, anonymous) = (self.total("named"), self.total("anonymous"));
        let (feedback, score) = (self.total("feedback"), self.total("score"));
        WorkshopFigures {
            workshops: self.total("workshops"),
            by_topic: self.counts("topic"),
            by_audience: self.counts("audience"),
            attendance: named + anonymous,
            named,
            anonymous,
            by_age_band: self.counts("age"),
            by_gender: self.counts("gender"),
            feedback_count: feedback,
            feedback_average: (feedback > 0).then(|| score as f64 / feedback as f64),
        }
    }
}

impl Store {
    /// The report for `filter`: visit and workshop figures for the period, and per month.
    pub fn report(&self, filter: &ReportFilter) -> Result<Report> {
        validate_filter(filter)?;
        let today = filter.today.clone().unwrap_or_else(today_utc);
        let v = Scope::new("v", filter, false);
        let k = Scope::new("k", filter, true);
        // `today` is bound first: its `?` comes before the WHERE clause's.
        let mut vp: Vec<SqlValue> = vec![today.clone().into()];
        vp.extend(v.params.iter().cloned());
        let (vs, ks) = self.read(|c| {
            Ok((
                sections(c, &visit_sql(&v.sql), &vp)?,
                sections(c, &workshop_sql(&k.sql), &k.params)?,
            ))
        })?;
        let present: Vec<&String> = [vs.get("visits"), ks.get("workshops")]
            .into_iter()
            .flatten()
            .flat_map(|b| b.months.keys())
            .collect();
        let months = match (present.iter().min(), present.iter().max()) {
            (Some(first), Some(last)) => month_range(first, last),
            _ => Vec::new(),
        };
        let overall = |s| Pick {
            sections: s,
            month: None,
        };
        Ok(Report {
            filter: filter.clone(),
            visits: overall(&vs).visits(),
            workshops: overall(&ks).workshops(),
            months: months
                .iter()
                .map(|m| MonthFigures {
                    month: m.clone(),
                    visits: Pick {
                        sections: &vs,
                        month: Some(m),
                    }
                    .visits(),
                    workshops: Pick {
                        sections: &ks,
                        month: Some(m),
                    }
                    .workshops(),
                })
                .collect(),
            today,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::month_range;

    #[test]
    fn month_ranges_cross_year_ends_and_keep_gaps() {
        assert_eq!(
            month_range("2025-11", "2026-02"),
            ["2025-11", "2025-12", "2026-01", "2026-02"]
        );
        assert_eq!(month_range("2026-03", "2026-03"), ["2026-03"]);
        assert!(month_range("2026-03", "2026-01").is_empty());
    }
}
