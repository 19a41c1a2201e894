//! Reports: the figures coordinators and funders ask for (visits, people reached, risk
//! indicators, referrals, follow-ups; workshops, attendance, feedback), for a period and
//! optional filters, overall and per calendar month.
//!
//! The figures come from the projection tables: SQL selects the records in scope (period,
//! area, topic, worker; deleted ones never), and one scan of each child table (indicators,
//! referrals, attendees, tallies, feedback) adds their rows up per month and key, in one read
//! transaction. The overall figures are the sums of the months. Months are UTC calendar months
//! (`YYYY-MM`) of when the visit or workshop happened. Deleted records never
//! count; restricted records do count (a report shows totals, never which record they came
//! from), and exports leave them out unless asked for (see `export`).

use std::collections::{BTreeMap, HashMap, HashSet};

use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;

use crate::error::{Error, Result};
use crate::export::{Cell, Table};
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
    /// Unique people among the named attendees: attendees marked as the same person
    /// (`Store::merge_attendees`) count once, over the whole period as in each month.
    pub unique_people: i64,
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

/// Counts per month and key, added up into overall counts too.
#[derive(Default)]
struct Breakdown {
    total: BTreeMap<String, i64>,
    months: BTreeMap<String, BTreeMap<String, i64>>,
}

impl Breakdown {
    /// Adds `n` to `key` in `month` and overall; allocates only for a month or key not seen yet.
    fn add(&mut self, month: &str, key: &str, n: i64) {
        fn bump(map: &mut BTreeMap<String, i64>, key: &str, n: i64) {
            match map.get_mut(key) {
                Some(x) => *x += n,
                None => {
                    map.insert(key.to_string(), n);
                }
            }
        }
        bump(&mut self.total, key, n);
        match self.months.get_mut(month) {
            Some(m) => bump(m, key, n),
            None => {
                self.months
                    .insert(month.to_string(), BTreeMap::from([(key.to_string(), n)]));
            }
        }
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

/// The month (`YYYY-MM`, UTC) of a time in ms.
fn month_of(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!("{:04}-{:02}", t.year(), u8::from(t.month()))
}

/// Column `i` of a row as text, borrowed (no copy per row).
fn str_at<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> Result<&'r str> {
    r.get_ref(i)?.as_str().map_err(|e| {
        Error::from(rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            Box::new(e),
        ))
    })
}

/// Breakdowns by name, filled as rows are read.
type Sections = HashMap<&'static str, Breakdown>;

fn add(s: &mut Sections, section: &'static str, month: &str, key: &str, n: i64) {
    s.entry(section).or_default().add(month, key, n);
}

/// Runs `sql` and hands each row, with the month of the record it belongs to (looked up in
/// `months` by the row's first column, a record id), to `f`; rows of other records are skipped.
fn for_each_child(
    c: &Connection,
    sql: &str,
    months: &HashMap<String, String>,
    mut f: impl FnMut(&str, &rusqlite::Row<'_>) -> Result<()>,
) -> Result<()> {
    let mut st = c.prepare_cached(sql)?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        if let Some(m) = months.get(str_at(r, 0)?) {
            f(m, r)?;
        }
    }
    Ok(())
}

/// The visit sections: the visits in scope with their own figures, then their indicators and
/// referrals. Each table is read in one scan; rows are matched to their visit in memory,
/// because SQLite's nested-loop join would look every visit up by its text id (ten times the
/// cost of the scans, measured with the report bench).
fn visit_sections(c: &Connection, scope: &Scope, today: &str) -> Result<Sections> {
    let mut s = Sections::new();
    let mut months: HashMap<String, String> = HashMap::new();
    let mut st = c.prepare_cached(&format!(
        "SELECT v.id, v.occurred_at, v.visit_type, v.area, v.people_reached,
            v.follow_up_needed = 1 AND v.follow_up_done = 0, v.follow_up_due
         FROM visits v WHERE {}",
        scope.sql
    ))?;
    let mut rows = st.query(rusqlite::params_from_iter(scope.params.iter()))?;
    while let Some(r) = rows.next()? {
        let m = month_of(r.get(1)?);
        add(&mut s, "visits", &m, "", 1);
        add(&mut s, "people", &m, "", r.get(4)?);
        add(&mut s, "type", &m, str_at(r, 2)?, 1);
        add(&mut s, "area", &m, str_at(r, 3)?, 1);
        if r.get::<_, bool>(5)? {
            add(&mut s, "due", &m, "", 1);
            if r.get::<_, Option<String>>(6)?
                .is_some_and(|d| d.as_str() < today)
            {
                add(&mut s, "overdue", &m, "", 1);
            }
        }
        months.insert(r.get(0)?, m);
    }
    for_each_child(
        c,
        "SELECT visit_id, indicator FROM visit_indicators",
        &months,
        |m, r| {
            add(&mut s, "indicators", m, str_at(r, 1)?, 1);
            Ok(())
        },
    )?;
    for_each_child(
        c,
        "SELECT visit_id, kind, status FROM referrals",
        &months,
        |m, r| {
            add(&mut s, "ref_kind", m, str_at(r, 1)?, 1);
            add(&mut s, "ref_status", m, str_at(r, 2)?, 1);
            Ok(())
        },
    )?;
    Ok(s)
}

/// The workshop sections: workshops in scope, then attendance (named attendees, withdrawn
/// excluded, with an unrecorded band or gender as `unknown` / `not_recorded`, and anonymous
/// tallies) and feedback, read the same way as the visits'.
fn workshop_sections(c: &Connection, scope: &Scope) -> Result<Sections> {
    let mut s = Sections::new();
    let mut months: HashMap<String, String> = HashMap::new();
    let mut st = c.prepare_cached(&format!(
        "SELECT k.id, k.occurred_at, k.topic, k.audience FROM workshops k WHERE {}",
        scope.sql
    ))?;
    let mut rows = st.query(rusqlite::params_from_iter(scope.params.iter()))?;
    while let Some(r) = rows.next()? {
        let m = month_of(r.get(1)?);
        add(&mut s, "workshops", &m, "", 1);
        add(&mut s, "topic", &m, str_at(r, 2)?, 1);
        add(&mut s, "audience", &m, str_at(r, 3)?, 1);
        months.insert(r.get(0)?, m);
    }
    for_each_child(
        c,
        "SELECT workshop_id, coalesce(age_band, 'unknown'), coalesce(gender, 'not_recorded')
         FROM attendees WHERE withdrawn = 0",
        &months,
        |m, r| {
            add(&mut s, "named", m, "", 1);
            add(&mut s, "age", m, str_at(r, 1)?, 1);
            add(&mut s, "gender", m, str_at(r, 2)?, 1);
            Ok(())
        },
    )?;
    // People, not attendances: attendees marked as the same person count once per month and
    // once overall.
    let marks = crate::duplicates::Marks::read(c)?;
    let mut people: HashMap<String, HashSet<String>> = HashMap::new();
    let mut everyone = HashSet::new();
    for_each_child(
        c,
        "SELECT workshop_id, workshop_id || ':' || id FROM attendees WHERE withdrawn = 0",
        &months,
        |m, r| {
            let person = marks.person(str_at(r, 1)?);
            everyone.insert(person.clone());
            people.entry(m.to_string()).or_default().insert(person);
            Ok(())
        },
    )?;
    for (m, set) in &people {
        add(
            &mut s,
            "people",
            m,
            "",
            i64::try_from(set.len()).unwrap_or(i64::MAX),
        );
    }
    if let Some(b) = s.get_mut("people") {
        b.total.insert(
            String::new(),
            i64::try_from(everyone.len()).unwrap_or(i64::MAX),
        );
    }
    for_each_child(
        c,
        "SELECT workshop_id, age_band, gender, count FROM tallies",
        &months,
        |m, r| {
            let n: i64 = r.get(3)?;
            add(&mut s, "anonymous", m, "", n);
            add(&mut s, "age", m, str_at(r, 1)?, n);
            add(&mut s, "gender", m, str_at(r, 2)?, n);
            Ok(())
        },
    )?;
    for_each_child(
        c,
        "SELECT workshop_id, score FROM feedback",
        &months,
        |m, r| {
            add(&mut s, "feedback", m, "", 1);
            add(&mut s, "score", m, "", r.get(1)?);
            Ok(())
        },
    )?;
    Ok(s)
}

/// The figures of one section set, overall (`month` None) or for one month.
struct Pick<'a> {
    sections: &'a Sections,
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
            unique_people: self.total("people"),
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
        let (vs, ks) = self.read(|c| {
            // One read transaction: both halves see the same committed state.
            c.execute_batch("BEGIN")?;
            let out =
                visit_sections(c, &v, &today).and_then(|vs| Ok((vs, workshop_sections(c, &k)?)));
            c.execute_batch("COMMIT")?;
            out
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

fn breakdown_table(
    name: &str,
    title: &str,
    key: &str,
    overall: &[Count],
    months: &[MonthFigures],
    pick: impl Fn(&MonthFigures) -> &Vec<Count>,
) -> Table {
    let mut columns = vec![key.to_string(), "total".to_string()];
    columns.extend(months.iter().map(|m| m.month.clone()));
    let rows = overall
        .iter()
        .map(|c| {
            let mut row = vec![Cell::from(c.key.as_str()), Cell::Int(c.count)];
            row.extend(months.iter().map(|m| {
                Cell::Int(
                    pick(m)
                        .iter()
                        .find(|x| x.key == c.key)
                        .map_or(0, |x| x.count),
                )
            }));
            row
        })
        .collect();
    Table {
        name: name.into(),
        title: title.into(),
        columns,
        rows,
    }
}

impl Report {
    /// The report as tables: a summary, one row per month, and each breakdown with a column
    /// per month.
    pub fn tables(&self) -> Vec<Table> {
        let (v, w) = (&self.visits, &self.workshops);
        let figure = |name: &str, value: Cell| vec![Cell::from(name), value];
        let summary = Table {
            name: "summary".into(),
            title: "Summary".into(),
            columns: vec!["figure".into(), "value".into()],
            rows: vec![
                figure("Visits", v.visits.into()),
                figure("People reached", v.people_reached.into()),
                figure(
                    "Risk indicators observed",
                    v.indicators.iter().map(|c| c.count).sum::<i64>().into(),
                ),
                figure("Referrals", v.referrals.into()),
                figure("Follow-ups due", v.follow_ups_due.into()),
                figure(
                    &format!("Follow-ups overdue on {}", self.today),
                    v.follow_ups_overdue.into(),
                ),
                figure("Workshops", w.workshops.into()),
                figure("Attendance", w.attendance.into()),
                figure("Named attendees", w.named.into()),
                figure("Unique people among them", w.unique_people.into()),
                figure("Counted anonymously", w.anonymous.into()),
                figure("Feedback entries", w.feedback_count.into()),
                figure("Average feedback (1-5)", w.feedback_average.into()),
            ],
        };
        let monthly = Table {
            name: "monthly".into(),
            title: "Per month".into(),
            columns: [
                "month",
                "visits",
                "people_reached",
                "referrals",
                "follow_ups_due",
                "follow_ups_overdue",
                "workshops",
                "attendance",
                "feedback_average",
            ]
            .map(String::from)
            .to_vec(),
            rows: self
                .months
                .iter()
                .map(|m| {
                    vec![
                        m.month.as_str().into(),
                        m.visits.visits.into(),
                        m.visits.people_reached.into(),
                        m.visits.referrals.into(),
                        m.visits.follow_ups_due.into(),
                        m.visits.follow_ups_overdue.into(),
                        m.workshops.workshops.into(),
                        m.workshops.attendance.into(),
                        m.workshops.feedback_average.into(),
                    ]
                })
                .collect(),
        };
        let ms = &self.months;
        vec![
            summary,
            monthly,
            breakdown_table(
                "visits_by_type",
                "Visits by type",
                "visit_type",
                &v.by_type,
                ms,
                |m| &m.visits.by_type,
            ),
            breakdown_table(
                "visits_by_area",
                "Visits by area",
                "area",
                &v.by_area,
                ms,
                |m| &m.visits.by_area,
            ),
            breakdown_table(
                "risk_indicators",
                "Risk indicators observed (visits)",
                "indicator",
                &v.indicators,
                ms,
                |m| &m.visits.indicators,
            ),
            breakdown_table(
                "referrals_by_kind",
                "Referrals by kind",
                "kind",
                &v.referrals_by_kind,
                ms,
                |m| &m.visits.referrals_by_kind,
            ),
            breakdown_table(
                "referrals_by_status",
                "Referrals by status",
                "status",
                &v.referrals_by_status,
                ms,
                |m| &m.visits.referrals_by_status,
            ),
            breakdown_table(
                "workshops_by_topic",
                "Workshops by topic",
                "topic",
                &w.by_topic,
                ms,
                |m| &m.workshops.by_topic,
            ),
            breakdown_table(
                "workshops_by_audience",
                "Workshops by audience",
                "audience",
                &w.by_audience,
                ms,
                |m| &m.workshops.by_audience,
            ),
            breakdown_table(
                "attendance_by_age_band",
                "Attendance by age band",
                "age_band",
                &w.by_age_band,
                ms,
                |m| &m.workshops.by_age_band,
            ),
            breakdown_table(
                "attendance_by_gender",
                "Attendance by gender",
                "gender",
                &w.by_gender,
                ms,
                |m| &m.workshops.by_gender,
            ),
        ]
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
