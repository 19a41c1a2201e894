//! Reports and exports at the boundary: the figures of a period (overall and per month) and
//! writing records and report tables as CSV files or an XLSX workbook.
//!
//! As in `types`, the filter's `from`/`to` are `since`/`until` here (keywords in Kotlin/Swift).

use waymark_core as wc;

use crate::error::{Result, call, off_thread};
use crate::store::WaymarkStore;
use crate::types::Count;

fn counts(c: Vec<wc::Count>) -> Vec<Count> {
    c.into_iter().map(Into::into).collect()
}

/// What a report covers; empty fields do not filter.
#[derive(uniffi::Record, Debug, Clone, PartialEq, Default)]
pub struct ReportFilter {
    /// Only this workspace.
    #[uniffi(default)]
    pub workspace_id: Option<String>,
    /// Records that happened at or after (ms). (`from` in the core.)
    #[uniffi(default)]
    pub since: Option<i64>,
    /// Records that happened before (ms). (`to` in the core.)
    #[uniffi(default)]
    pub until: Option<i64>,
    /// Only this area.
    #[uniffi(default)]
    pub area: Option<String>,
    /// Only workshops of this topic.
    #[uniffi(default)]
    pub topic: Option<String>,
    /// Only records created by this device (actor id, hex).
    #[uniffi(default)]
    pub worker: Option<String>,
    /// The date follow-ups are overdue against (`YYYY-MM-DD`); default today (UTC).
    #[uniffi(default)]
    pub today: Option<String>,
}

impl From<ReportFilter> for wc::ReportFilter {
    fn from(f: ReportFilter) -> Self {
        let ReportFilter {
            workspace_id,
            since,
            until,
            area,
            topic,
            worker,
            today,
        } = f;
        wc::ReportFilter {
            workspace_id,
            from: since,
            to: until,
            area,
            topic,
            worker,
            today,
        }
    }
}

impl From<wc::ReportFilter> for ReportFilter {
    fn from(f: wc::ReportFilter) -> Self {
        let wc::ReportFilter {
            workspace_id,
            from,
            to,
            area,
            topic,
            worker,
            today,
        } = f;
        ReportFilter {
            workspace_id,
            since: from,
            until: to,
            area,
            topic,
            worker,
            today,
        }
    }
}

/// Figures about field visits.
#[derive(uniffi::Record, Debug, Clone, PartialEq)]
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
    /// Referrals made.
    pub referrals: i64,
    /// Referrals per kind, most first.
    pub referrals_by_kind: Vec<Count>,
    /// Referrals per status, most first.
    pub referrals_by_status: Vec<Count>,
    /// Follow-ups needed and not done.
    pub follow_ups_due: i64,
    /// Of those, due before the report's `today`.
    pub follow_ups_overdue: i64,
}

impl From<wc::VisitFigures> for VisitFigures {
    fn from(v: wc::VisitFigures) -> Self {
        let wc::VisitFigures {
            visits,
            people_reached,
            by_type,
            by_area,
            indicators,
            referrals,
            referrals_by_kind,
            referrals_by_status,
            follow_ups_due,
            follow_ups_overdue,
        } = v;
        VisitFigures {
            visits,
            people_reached,
            by_type: counts(by_type),
            by_area: counts(by_area),
            indicators: counts(indicators),
            referrals,
            referrals_by_kind: counts(referrals_by_kind),
            referrals_by_status: counts(referrals_by_status),
            follow_ups_due,
            follow_ups_overdue,
        }
    }
}

/// Figures about awareness workshops.
#[derive(uniffi::Record, Debug, Clone, PartialEq)]
pub struct WorkshopFigures {
    /// Workshops held.
    pub workshops: i64,
    /// Workshops per topic, most first.
    pub by_topic: Vec<Count>,
    /// Workshops per audience, most first.
    pub by_audience: Vec<Count>,
    /// Named attendees (withdrawn excluded) plus anonymous tallies.
    pub attendance: i64,
    /// Named attendees, withdrawn excluded.
    pub named: i64,
    /// Unique people among the named attendees (attendees marked as the same person count
    /// once, over the period as in each month).
    pub unique_people: i64,
    /// People counted anonymously.
    pub anonymous: i64,
    /// Attendance per age band, most first.
    pub by_age_band: Vec<Count>,
    /// Attendance per gender, most first.
    pub by_gender: Vec<Count>,
    /// Feedback entries.
    pub feedback_count: i64,
    /// Average feedback score (1-5), if any.
    pub feedback_average: Option<f64>,
}

impl From<wc::WorkshopFigures> for WorkshopFigures {
    fn from(w: wc::WorkshopFigures) -> Self {
        let wc::WorkshopFigures {
            workshops,
            by_topic,
            by_audience,
            attendance,
            named,
            unique_people,
            anonymous,
            by_age_band,
            by_gender,
            feedback_count,
            feedback_average,
        } = w;
        WorkshopFigures {
            workshops,
            by_topic: counts(by_topic),
            by_audience: counts(by_audience),
            attendance,
            named,
            unique_people,
            anonymous,
            by_age_band: counts(by_age_band),
            by_gender: counts(by_gender),
            feedback_count,
            feedback_average,
        }
    }
}

/// The figures of one calendar month.
#[derive(uniffi::Record, Debug, Clone, PartialEq)]
pub struct MonthFigures {
    /// The month, `YYYY-MM` (UTC).
    pub month: String,
    /// Visit figures of the month.
    pub visits: VisitFigures,
    /// Workshop figures of the month.
    pub workshops: WorkshopFigures,
}

/// A report: overall figures and the same figures per month.
#[derive(uniffi::Record, Debug, Clone, PartialEq)]
pub struct Report {
    /// The filter the report answers.
    pub filter: ReportFilter,
    /// The date overdue follow-ups were counted against.
    pub today: String,
    /// Visit figures for the whole period.
    pub visits: VisitFigures,
    /// Workshop figures for the whole period.
    pub workshops: WorkshopFigures,
    /// Every month from the first to the last with a record, gaps as zeros.
    pub months: Vec<MonthFigures>,
}

impl From<wc::Report> for Report {
    fn from(r: wc::Report) -> Self {
        let wc::Report {
            filter,
            today,
            visits,
            workshops,
            months,
        } = r;
        Report {
            filter: filter.into(),
            today,
            visits: visits.into(),
            workshops: workshops.into(),
            months: months
                .into_iter()
                .map(|m| MonthFigures {
                    month: m.month,
                    visits: m.visits.into(),
                    workshops: m.workshops.into(),
                })
                .collect(),
        }
    }
}

/// What an export holds.
#[derive(uniffi::Record, Debug, Clone, PartialEq, Default)]
pub struct ExportOptions {
    /// Which records (and which report) to export.
    pub filter: ReportFilter,
    /// Also export restricted records.
    #[uniffi(default)]
    pub include_restricted: bool,
    /// Also export free-text notes.
    #[uniffi(default)]
    pub include_notes: bool,
    /// Also export anonymous tips (never unless asked for).
    #[uniffi(default)]
    pub include_tips: bool,
}

impl From<ExportOptions> for wc::ExportOptions {
    fn from(o: ExportOptions) -> Self {
        let ExportOptions {
            filter,
            include_restricted,
            include_notes,
            include_tips,
        } = o;
        wc::ExportOptions {
            filter: filter.into(),
            include_restricted,
            include_notes,
            include_tips,
        }
    }
}

/// What an export wrote.
#[derive(uniffi::Record, Debug, Clone, PartialEq)]
pub struct ExportSummary {
    /// Visits exported.
    pub visits: u64,
    /// Workshops exported.
    pub workshops: u64,
    /// Restricted records matching the filter that were left out.
    pub restricted_left_out: u64,
    /// The tables written: CSV file names, or XLSX sheet names.
    pub tables: Vec<String>,
}

impl From<wc::ExportSummary> for ExportSummary {
    fn from(s: wc::ExportSummary) -> Self {
        let wc::ExportSummary {
            visits,
            workshops,
            restricted_left_out,
            tables,
        } = s;
        ExportSummary {
            visits,
            workshops,
            restricted_left_out,
            tables,
        }
    }
}

#[uniffi::export]
impl WaymarkStore {
    /// The figures of a period (visits, people reached, indicators, referrals, follow-ups;
    /// workshops, attendance, feedback), overall and per month. Fast (SQL over the store's
    /// tables); blocking.
    pub fn report(&self, filter: ReportFilter) -> Result<Report> {
        call(|| self.store.report(&filter.into())).map(Into::into)
    }

    /// Writes records and report tables as one CSV file per table into the directory `dir`.
    /// Restricted records are left out unless `options.include_restricted`.
    pub async fn export_csv(&self, dir: String, options: ExportOptions) -> Result<ExportSummary> {
        let store = self.store.clone();
        off_thread("export", move || store.export_csv(&dir, &options.into()))
            .await
            .map(Into::into)
    }

    /// Writes records and report tables as one XLSX workbook at `path`, a sheet per table.
    /// Restricted records are left out unless `options.include_restricted`.
    pub async fn export_xlsx(&self, path: String, options: ExportOptions) -> Result<ExportSummary> {
        let store = self.store.clone();
        off_thread("export", move || store.export_xlsx(&path, &options.into()))
            .await
            .map(Into::into)
    }
}
