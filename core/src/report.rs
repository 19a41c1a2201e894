//! Reports: the figures coordinators and funders ask for (visits, people reached, risk
//! indicators, referrals, follow-ups; workshops, attendance, feedback), for a period and
//! optional filters, overall and per calendar month.
//!
//! Every figure is a SQL aggregate over the projection tables, grouped by month and key in
//! one pass per breakdown; the overall figures are the sums of the months. Months are UTC
//! calendar months (`YYYY-MM`) of when the visit or workshop happened. Deleted records never
//! count; restricted records do count (a report shows totals, never which record they came
//! from), and exports leave them out unless asked for (see `export`).

use std::collections::BTreeMap;

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

/// Runs `sql` whose rows are (month, key, count) into a breakdown.
fn breakdown(c: &Connection, sql: &str, params: &[SqlValue]) -> Result<Breakdown> {
    let mut st = c.prepare_cached(sql)?;
    let mut rows = st.query(rusqlite::params_from_iter(params.iter()))?;
    let mut b = Breakdown::default();
    while let Some(r) = rows.next()? {
        b.add(r.get(0)?, r.get(1)?, r.get(2)?);
    }
    Ok(b)
}

/// Runs `sql` whose rows are (month, n1, n2, ...) into per-month rows of `N` numbers.
fn per_month<const N: usize>(
    c: &Connection,
    sql: &str,
    params: &[SqlValue],
) -> Result<BTreeMap<String, [i64; N]>> {
    let mut st = c.prepare_cached(sql)?;
    let mut rows = st.query(rusqlite::params_from_iter(params.iter()))?;
    let mut out = BTreeMap::new();
    while let Some(r) = rows.next()? {
        let mut nums = [0i64; N];
        for (i, n) in nums.iter_mut().enumerate() {
            *n = r.get::<_, Option<i64>>(i + 1)?.unwrap_or(0);
        }
        out.insert(r.get::<_, String>(0)?, nums);
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

impl Store {
    /// The report for `filter`: visit and workshop figures for the period, and per month.
    pub fn report(&self, filter: &ReportFilter) -> Result<Report> {
        validate_filter(filter)?;
        let today = filter.today.clone().unwrap_or_else(today_utc);
        let v = Scope::new("v", filter, false);
        let k = Scope::new("k", filter, true);
        let (vm, km) = (month("v"), month("k"));
        self.read(|c| {
            // `today` is bound first: its `?` comes before the WHERE clause's.
            let mut vp: Vec<SqlValue> = vec![today.clone().into()];
            vp.extend(v.params.iter().cloned());
            let visit_totals = per_month::<4>(
                c,
                &format!(
                    "SELECT {vm}, count(*), sum(v.people_reached),
                        sum(v.follow_up_needed = 1 AND v.follow_up_done = 0),
                        sum(v.follow_up_needed = 1 AND v.follow_up_done = 0
                            AND v.follow_up_due IS NOT NULL AND v.follow_up_due < ?)
                     FROM visits v WHERE {} GROUP BY 1",
                    v.sql
                ),
                &vp,
            )?;
            let by = |col: &str| {
                breakdown(
                    c,
                    &format!(
                        "SELECT {vm}, v.{col}, count(*) FROM visits v WHERE {} GROUP BY 1, 2",
                        v.sql
                    ),
                    &v.params,
                )
            };
            let by_type = by("visit_type")?;
            let by_area = by("area")?;
            let indicators = breakdown(
                c,
                &format!(
                    "SELECT {vm}, i.indicator, count(*) FROM visits v
                     JOIN visit_indicators i ON i.visit_id = v.id WHERE {} GROUP BY 1, 2",
                    v.sql
                ),
                &v.params,
            )?;
            let referrals = |col: &str| {
                breakdown(
                    c,
                    &format!(
                        "SELECT {vm}, r.{col}, count(*) FROM visits v
                         JOIN referrals r ON r.visit_id = v.id WHERE {} GROUP BY 1, 2",
                        v.sql
                    ),
                    &v.params,
                )
            };
            let ref_kind = referrals("kind")?;
            let ref_status = referrals("status")?;

            let workshop_totals = per_month::<1>(
                c,
                &format!(
                    "SELECT {km}, count(*) FROM workshops k WHERE {} GROUP BY 1",
                    k.sql
                ),
                &k.params,
            )?;
            let wby = |col: &str| {
                breakdown(
                    c,
                    &format!(
                        "SELECT {km}, k.{col}, count(*) FROM workshops k WHERE {} GROUP BY 1, 2",
                        k.sql
                    ),
                    &k.params,
                )
            };
            let by_topic = wby("topic")?;
            let by_audience = wby("audience")?;
            // Named attendees (withdrawn excluded) and anonymous tallies, side by side.
            let mut kp2 = k.params.clone();
            kp2.extend(k.params.iter().cloned());
            let people = |named_key: &str, tally_key: &str| {
                breakdown(
                    c,
                    &format!(
                        "SELECT m, key, sum(n) FROM (
                            SELECT {km} AS m, {named_key} AS key, 1 AS n FROM workshops k
                                JOIN attendees a ON a.workshop_id = k.id
                                WHERE a.withdrawn = 0 AND {ks}
                            UNION ALL
                            SELECT {km}, {tally_key}, t.count FROM workshops k
                                JOIN tallies t ON t.workshop_id = k.id WHERE {ks})
                         GROUP BY 1, 2",
                        ks = k.sql
                    ),
                    &kp2,
                )
            };
            let by_age = people("coalesce(a.age_band, 'unknown')", "t.age_band")?;
            let by_gender = people("coalesce(a.gender, 'not_recorded')", "t.gender")?;
            let named = per_month::<1>(
                c,
                &format!(
                    "SELECT {km}, count(*) FROM workshops k JOIN attendees a
                        ON a.workshop_id = k.id WHERE a.withdrawn = 0 AND {} GROUP BY 1",
                    k.sql
                ),
                &k.params,
            )?;
            let anonymous = per_month::<1>(
                c,
                &format!(
                    "SELECT {km}, sum(t.count) FROM workshops k JOIN tallies t
                        ON t.workshop_id = k.id WHERE {} GROUP BY 1",
                    k.sql
                ),
                &k.params,
            )?;
            let feedback = per_month::<2>(
                c,
                &format!(
                    "SELECT {km}, count(*), sum(f.score) FROM workshops k JOIN feedback f
                        ON f.workshop_id = k.id WHERE {} GROUP BY 1",
                    k.sql
                ),
                &k.params,
            )?;

            let visit_figures = |t: [i64; 4], pick: &dyn Fn(&Breakdown) -> Vec<Count>| {
                let referrals = pick(&ref_kind).iter().map(|c| c.count).sum();
                VisitFigures {
                    visits: t[0],
                    people_reached: t[1],
                    by_type: pick(&by_type),
                    by_area: pick(&by_area),
                    indicators: pick(&indicators),
                    referrals,
                    referrals_by_kind: pick(&ref_kind),
                    referrals_by_status: pick(&ref_status),
                    follow_ups_due: t[2],
                    follow_ups_overdue: t[3],
                }
            };
            let workshop_figures =
                |held: i64,
                 named: i64,
                 anonymous: i64,
                 fb: [i64; 2],
                 pick: &dyn Fn(&Breakdown) -> Vec<Count>| {
                    WorkshopFigures {
                        workshops: held,
                        by_topic: pick(&by_topic),
                        by_audience: pick(&by_audience),
                        attendance: named + anonymous,
                        named,
                        anonymous,
                        by_age_band: pick(&by_age),
                        by_gender: pick(&by_gender),
                        feedback_count: fb[0],
                        feedback_average: (fb[0] > 0).then(|| fb[1] as f64 / fb[0] as f64),
                    }
                };

            let present: Vec<&String> = visit_totals.keys().chain(workshop_totals.keys()).collect();
            let months = match (present.iter().min(), present.iter().max()) {
                (Some(first), Some(last)) => month_range(first, last),
                _ => Vec::new(),
            };
            let sum = |a: [i64; 4], b: &[i64; 4]| std::array::from_fn(|i| a[i] + b[i]);
            let vt = visit_totals.values().fold([0; 4], sum);
            let one = |m: &BTreeMap<String, [i64; 1]>, key: &str| m.get(key).map_or(0, |x| x[0]);
            let all = |m: &BTreeMap<String, [i64; 1]>| m.values().map(|x| x[0]).sum::<i64>();
            let fb_all = feedback
                .values()
                .fold([0; 2], |a, b| [a[0] + b[0], a[1] + b[1]]);
            let report = Report {
                filter: filter.clone(),
                visits: visit_figures(vt, &|b| b.overall()),
                workshops: workshop_figures(
                    all(&workshop_totals),
                    all(&named),
                    all(&anonymous),
                    fb_all,
                    &|b| b.overall(),
                ),
                months: months
                    .iter()
                    .map(|m| MonthFigures {
                        month: m.clone(),
                        visits: visit_figures(
                            visit_totals.get(m).copied().unwrap_or_default(),
                            &|b| b.month(m),
                        ),
                        workshops: workshop_figures(
                            one(&workshop_totals, m),
                            one(&named, m),
                            one(&anonymous, m),
                            feedback.get(m).copied().unwrap_or_default(),
                            &|b| b.month(m),
                        ),
                    })
                    .collect(),
                today: today.clone(),
            };
            Ok(report)
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
