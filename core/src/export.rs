//! Export of records and report tables as CSV files or one XLSX workbook, for the people a
//! team reports to.
//!
//! The same tables go into both formats: `visits`, `referrals` and `workshops` (one row per
//! record, from the projections) and the report's tables (`Report::tables`). Restricted
//! records are left out unless `include_restricted` is set, and notes only go out with
//! `include_notes`; named attendees never leave the store (workshops carry their counts).

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;

use crate::error::{Error, Result, StorageError};
use crate::report::{ReportFilter, Scope, validate_filter};
use crate::store::ExportError;
use crate::store::Store;

/// One cell of an exported table.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Text.
    Text(String),
    /// A whole number.
    Int(i64),
    /// A number with decimals.
    Float(f64),
    /// No value.
    Empty,
}

impl Cell {
    /// The cell as text (what a CSV file or a terminal shows).
    pub fn display(&self) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            Cell::Int(n) => n.to_string(),
            Cell::Float(f) => format!("{f:.2}"),
            Cell::Empty => String::new(),
        }
    }
}

impl From<&str> for Cell {
    fn from(s: &str) -> Self {
        Cell::Text(s.to_string())
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Self {
        Cell::Text(s)
    }
}

impl From<i64> for Cell {
    fn from(n: i64) -> Self {
        Cell::Int(n)
    }
}

impl From<Option<f64>> for Cell {
    fn from(f: Option<f64>) -> Self {
        f.map_or(Cell::Empty, Cell::Float)
    }
}

impl From<Option<String>> for Cell {
    fn from(s: Option<String>) -> Self {
        s.map_or(Cell::Empty, Cell::Text)
    }
}

/// A table of an export or a report: a name usable as a file or sheet name, a title, column
/// headers and rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Short name (`visits_by_type`): the CSV file stem or the XLSX sheet name.
    pub name: String,
    /// Human title ("Visits by type").
    pub title: String,
    /// Column headers.
    pub columns: Vec<String>,
    /// Rows, each as long as `columns`.
    pub rows: Vec<Vec<Cell>>,
}

/// What an export holds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExportOptions {
    /// Which records (and which report) to export.
    pub filter: ReportFilter,
    /// Also export restricted records (identifying a victim, a minor or an open case).
    pub include_restricted: bool,
    /// Also export the free-text notes of records.
    pub include_notes: bool,
    /// Also export anonymous tips (a `tips` table: what tipsters wrote, and the replies), of
    /// the filter's workspace and period: never unless asked for.
    pub include_tips: bool,
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExportSummary {
    /// Visits exported.
    pub visits: u64,
    /// Workshops exported.
    pub workshops: u64,
    /// Restricted records matching the filter that were left out.
    pub restricted_left_out: u64,
    /// The tables written, in order: CSV file names, or XLSX sheet names.
    pub tables: Vec<String>,
}

/// A time in ms as an ISO 8601 UTC timestamp (seconds precision).
fn iso(ms: i64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

fn yes_no(b: bool) -> Cell {
    Cell::from(if b { "yes" } else { "no" })
}

fn query_rows(
    c: &Connection,
    sql: &str,
    params: &[SqlValue],
    width: usize,
) -> Result<Vec<Vec<SqlValue>>> {
    let mut st = c.prepare(sql)?;
    let mut rows = st.query(rusqlite::params_from_iter(params.iter()))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(
            (0..width)
                .map(|i| r.get::<_, SqlValue>(i))
                .collect::<rusqlite::Result<Vec<_>>>()?,
        );
    }
    Ok(out)
}

fn int(v: &SqlValue) -> i64 {
    match v {
        SqlValue::Integer(n) => *n,
        _ => 0,
    }
}

fn text(v: &SqlValue) -> String {
    match v {
        SqlValue::Text(s) => s.clone(),
        SqlValue::Integer(n) => n.to_string(),
        _ => String::new(),
    }
}

fn float(v: &SqlValue) -> Option<f64> {
    match v {
        SqlValue::Real(f) => Some(*f),
        SqlValue::Integer(n) => Some(*n as f64),
        _ => None,
    }
}

fn export_err(file: &str, source: impl Into<ExportError>) -> Error {
    // Library messages name files and formats, never the data being written.
    Error::Storage(StorageError::Export {
        file: file.into(),
        source: source.into(),
    })
}

impl Store {
    /// Device names by actor (hex) across every workspace, to show who recorded what.
    fn all_device_names(&self) -> Result<BTreeMap<String, String>> {
        let mut names = BTreeMap::new();
        for ws in self.workspaces()? {
            if let Ok(s) = self.settings(&ws.id) {
                names.extend(s.devices);
            }
        }
        Ok(names)
    }

    /// The tables an export holds (records first, then the report's), and what it left out.
    pub fn export_tables(&self, opts: &ExportOptions) -> Result<(Vec<Table>, ExportSummary)> {
        validate_filter(&opts.filter)?;
        let names = self.all_device_names()?;
        let who = |actor: &SqlValue| {
            let a = text(actor);
            Cell::Text(names.get(&a).cloned().unwrap_or(a))
        };
        let v = Scope::new("v", &opts.filter, false);
        let k = Scope::new("k", &opts.filter, true);
        let shown = if opts.include_restricted {
            ""
        } else {
            " AND sensitivity = 'normal'"
        };
        let (visit_rows, referral_rows, workshop_rows, left_out) = self.read(|c| {
            let visits = query_rows(
                c,
                &format!(
                    "SELECT v.id, v.occurred_at, v.place_name, v.area, v.visit_type,
                        v.people_reached,
                        (SELECT group_concat(indicator, ';') FROM (SELECT indicator
                            FROM visit_indicators WHERE visit_id = v.id ORDER BY indicator)),
                        (SELECT count(*) FROM referrals r WHERE r.visit_id = v.id),
                        v.follow_up_needed, v.follow_up_due, v.follow_up_done,
                        (SELECT group_concat(tag, ';') FROM (SELECT tag FROM visit_tags
                            WHERE visit_id = v.id ORDER BY tag)),
                        v.sensitivity, v.created_by
                     FROM visits v WHERE {}{shown} ORDER BY v.occurred_at, v.id",
                    v.sql
                ),
                &v.params,
                14,
            )?;
            let referrals = query_rows(
                c,
                &format!(
                    "SELECT r.visit_id, v.occurred_at, r.kind, r.to_whom, r.status
                     FROM visits v JOIN referrals r ON r.visit_id = v.id
                     WHERE {}{shown} ORDER BY v.occurred_at, v.id, r.id",
                    v.sql
                ),
                &v.params,
                5,
            )?;
            let workshops = query_rows(
                c,
                &format!(
                    "SELECT k.id, k.occurred_at, k.title, k.topic, k.area, k.venue, k.audience,
                        k.language, k.duration_minutes,
                        (SELECT group_concat(name, ';') FROM (SELECT name
                            FROM workshop_facilitators WHERE workshop_id = k.id ORDER BY name)),
                        (SELECT count(*) FROM attendees a
                            WHERE a.workshop_id = k.id AND a.withdrawn = 0),
                        (SELECT coalesce(sum(count), 0) FROM tallies t WHERE t.workshop_id = k.id),
                        k.feedback_count, k.feedback_avg, k.sensitivity, k.created_by
                     FROM workshops k WHERE {}{shown} ORDER BY k.occurred_at, k.id",
                    k.sql
                ),
                &k.params,
                16,
            )?;
            let mut params = v.params.clone();
            params.extend(k.params.iter().cloned());
            let left_out: i64 = if opts.include_restricted {
                0
            } else {
                c.query_row(
                    &format!(
                        "SELECT (SELECT count(*) FROM visits v WHERE {} AND sensitivity != 'normal')
                            + (SELECT count(*) FROM workshops k WHERE {} AND sensitivity != 'normal')",
                        v.sql, k.sql
                    ),
                    rusqlite::params_from_iter(params.iter()),
                    |r| r.get(0),
                )?
            };
            Ok((visits, referrals, workshops, left_out))
        })?;

        let mut visit_cols: Vec<String> = [
            "id",
            "occurred_at",
            "place",
            "area",
            "visit_type",
            "people_reached",
            "indicators",
            "referrals",
            "follow_up_needed",
            "follow_up_due",
            "follow_up_done",
            "tags",
            "sensitivity",
            "recorded_by",
        ]
        .map(String::from)
        .to_vec();
        let mut visits = Vec::with_capacity(visit_rows.len());
        for r in &visit_rows {
            let mut row = vec![
                text(&r[0]).into(),
                iso(int(&r[1])).into(),
                text(&r[2]).into(),
                text(&r[3]).into(),
                text(&r[4]).into(),
                int(&r[5]).into(),
                text(&r[6]).into(),
                int(&r[7]).into(),
                yes_no(int(&r[8]) != 0),
                text(&r[9]).into(),
                yes_no(int(&r[10]) != 0),
                text(&r[11]).into(),
                text(&r[12]).into(),
                who(&r[13]),
            ];
            if opts.include_notes {
                row.push(self.get_visit(&text(&r[0]))?.notes.into());
            }
            visits.push(row);
        }
        let mut workshop_cols: Vec<String> = [
            "id",
            "occurred_at",
            "title",
            "topic",
            "area",
            "venue",
            "audience",
            "language",
            "duration_minutes",
            "facilitators",
            "named_attendees",
            "counted_anonymously",
            "attendance",
            "feedback_count",
            "feedback_average",
            "sensitivity",
            "recorded_by",
        ]
        .map(String::from)
        .to_vec();
        let mut workshops = Vec::with_capacity(workshop_rows.len());
        for r in &workshop_rows {
            let (named, anonymous) = (int(&r[10]), int(&r[11]));
            let mut row = vec![
                text(&r[0]).into(),
                iso(int(&r[1])).into(),
                text(&r[2]).into(),
                text(&r[3]).into(),
                text(&r[4]).into(),
                text(&r[5]).into(),
                text(&r[6]).into(),
                text(&r[7]).into(),
                int(&r[8]).into(),
                text(&r[9]).into(),
                named.into(),
                anonymous.into(),
                (named + anonymous).into(),
                int(&r[12]).into(),
                float(&r[13]).into(),
                text(&r[14]).into(),
                who(&r[15]),
            ];
            if opts.include_notes {
                row.push(self.get_workshop(&text(&r[0]))?.notes.into());
            }
            workshops.push(row);
        }
        if opts.include_notes {
            visit_cols.push("notes".into());
            workshop_cols.push("notes".into());
        }
        let referrals = referral_rows
            .iter()
            .map(|r| {
                vec![
                    text(&r[0]).into(),
                    iso(int(&r[1])).into(),
                    text(&r[2]).into(),
                    text(&r[3]).into(),
                    text(&r[4]).into(),
                ]
            })
            .collect();
        let summary = ExportSummary {
            visits: visits.len() as u64,
            workshops: workshops.len() as u64,
            restricted_left_out: u64::try_from(left_out).unwrap_or(0),
            tables: Vec::new(),
        };
        let mut tables = vec![
            Table {
                name: "visits".into(),
                title: "Visits".into(),
                columns: visit_cols,
                rows: visits,
            },
            Table {
                name: "referrals".into(),
                title: "Referrals".into(),
                columns: ["visit_id", "occurred_at", "kind", "to", "status"]
                    .map(String::from)
                    .to_vec(),
                rows: referrals,
            },
            Table {
                name: "workshops".into(),
                title: "Workshops".into(),
                columns: workshop_cols,
                rows: workshops,
            },
        ];
        if opts.include_tips {
            tables.push(self.tips_table(&opts.filter)?);
        }
        let report = self.report(&opts.filter)?;
        tables.extend(report.tables().into_iter().map(|mut t| {
            t.name = format!("report_{}", t.name);
            t
        }));
        Ok((tables, summary))
    }

    /// The tips received in the filter's workspace and period, oldest first.
    fn tips_table(&self, filter: &ReportFilter) -> Result<Table> {
        let ids: Vec<String> = self.read(|c| {
            let mut st = c.prepare(
                "SELECT id FROM tips WHERE deleted = 0
                   AND (?1 IS NULL OR workspace_id = ?1)
                   AND (?2 IS NULL OR received_at >= ?2) AND (?3 IS NULL OR received_at < ?3)
                 ORDER BY received_at, id",
            )?;
            let ids = st
                .query_map(
                    rusqlite::params![filter.workspace_id, filter.from, filter.to],
                    |r| r.get(0),
                )?
                .collect::<rusqlite::Result<_>>()?;
            Ok(ids)
        })?;
        let mut rows = Vec::with_capacity(ids.len());
        for id in &ids {
            let t = self.get_tip(id)?;
            let replies = t
                .replies
                .iter()
                .map(|r| r.text.as_str())
                .collect::<Vec<_>>()
                .join("\n---\n");
            rows.push(vec![
                t.id.into(),
                iso(t.received_at).into(),
                t.language.into(),
                t.what.into(),
                t.place.into(),
                t.time.into(),
                t.contact.into(),
                replies.into(),
                t.visit_id.unwrap_or_default().into(),
            ]);
        }
        Ok(Table {
            name: "tips".into(),
            title: "Anonymous tips".into(),
            columns: [
                "id",
                "received_at",
                "language",
                "what",
                "where",
                "when",
                "contact",
                "replies",
                "visit_id",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        })
    }

    /// Writes the export as one CSV file per table into `dir` (created if missing).
    pub fn export_csv(&self, dir: impl AsRef<Path>, opts: &ExportOptions) -> Result<ExportSummary> {
        let dir = dir.as_ref();
        let (tables, mut summary) = self.export_tables(opts)?;
        std::fs::create_dir_all(dir).map_err(|e| export_err("directory", e))?;
        for t in &tables {
            let file = format!("{}.csv", t.name);
            write_csv(&dir.join(&file), t).map_err(|e| export_err(&file, e))?;
            summary.tables.push(file);
        }
        Ok(summary)
    }

    /// Writes the export as one XLSX workbook at `path`, a sheet per table.
    pub fn export_xlsx(
        &self,
        path: impl AsRef<Path>,
        opts: &ExportOptions,
    ) -> Result<ExportSummary> {
        let (tables, mut summary) = self.export_tables(opts)?;
        write_xlsx(path.as_ref(), &tables).map_err(|e| export_err("workbook", e))?;
        summary.tables = tables.into_iter().map(|t| t.name).collect();
        Ok(summary)
    }
}

/// A cell as CSV text. Text a spreadsheet would run as a formula (`=`, `+`, `-`, `@` first) gets
/// a leading apostrophe: a place name typed in the field must not become a formula on the
/// coordinator's laptop.
fn csv_cell(c: &Cell) -> String {
    match c {
        Cell::Text(s) if s.starts_with(['=', '+', '-', '@', '\t', '\r']) => format!("'{s}"),
        other => other.display(),
    }
}

fn write_csv(path: &Path, t: &Table) -> std::result::Result<(), csv::Error> {
    let mut w = csv::Writer::from_path(path)?;
    w.write_record(&t.columns)?;
    for row in &t.rows {
        w.write_record(row.iter().map(csv_cell))?;
    }
    w.flush()?;
    Ok(())
}

fn write_xlsx(
    path: &Path,
    tables: &[Table],
) -> std::result::Result<(), rust_xlsxwriter::XlsxError> {
    use rust_xlsxwriter::{Format, Workbook};
    let mut book = Workbook::new();
    let bold = Format::new().set_bold();
    let decimals = Format::new().set_num_format("0.00");
    for t in tables {
        let sheet = book.add_worksheet();
        // Sheet names are at most 31 characters.
        sheet.set_name(t.name.chars().take(31).collect::<String>())?;
        for (col, name) in t.columns.iter().enumerate() {
            sheet.write_string_with_format(0, col as u16, name, &bold)?;
        }
        for (i, row) in t.rows.iter().enumerate() {
            let r = i as u32 + 1;
            for (col, cell) in row.iter().enumerate() {
                let col = col as u16;
                match cell {
                    Cell::Text(s) => {
                        sheet.write_string(r, col, s)?;
                    }
                    Cell::Int(n) => {
                        sheet.write_number(r, col, *n as f64)?;
                    }
                    Cell::Float(f) => {
                        sheet.write_number_with_format(r, col, *f, &decimals)?;
                    }
                    Cell::Empty => {}
                }
            }
        }
        sheet.set_freeze_panes(1, 0)?;
    }
    book.save(path)
}
