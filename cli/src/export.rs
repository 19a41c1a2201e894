//! `waymark export`: CSV files or an XLSX workbook, staged privately inside the store's
//! directory and then copied to where the person asked (see `files`). With `--lang`, taxonomy
//! keys become the workspace's labels in that language and headers, titles and sheet names the
//! CLI's words in it; the CLI then writes the core's tables itself, as the core writes them.

use std::path::Path;

use waymark_core as wc;

use crate::files;
use crate::labels::Labels;
use crate::words::Words;

/// What `--lang` asks of an export: the workspace's labels and the CLI's words in one language.
pub struct Language<'a> {
    /// The workspace's labels of taxonomy keys.
    pub labels: &'a Labels,
    /// Headers, titles and fixed cell words.
    pub words: &'a Words,
}

impl Language<'_> {
    /// The export's tables in this language.
    fn tables(
        &self,
        store: &wc::Store,
        opts: &wc::ExportOptions,
    ) -> Result<(Vec<wc::Table>, wc::ExportSummary), String> {
        let (mut tables, summary) = store.export_tables(opts).map_err(|e| e.to_string())?;
        // Labels first: they find their columns by the keys the words then replace.
        self.labels.tables(&mut tables);
        self.words.tables(&mut tables);
        Ok((tables, summary))
    }
}

/// Exports CSV files into `dest`: staged privately, checked (no file to replace without
/// `force`, no symlink), then copied, so a refused export writes nothing.
pub fn csv(
    store: &wc::Store,
    store_dir: &Path,
    dest: &Path,
    opts: &wc::ExportOptions,
    lang: Option<&Language>,
    force: bool,
) -> Result<wc::ExportSummary, String> {
    let staging = files::Staging::new(store_dir)?;
    let summary = match lang {
        None => store
            .export_csv(staging.path(), opts)
            .map_err(|e| e.to_string())?,
        Some(lang) => {
            let (tables, mut summary) = lang.tables(store, opts)?;
            for t in &tables {
                let file = format!("{}.csv", t.name);
                write_csv(&staging.path().join(&file), t)
                    .map_err(|e| format!("cannot write {file}: {e}"))?;
                summary.tables.push(file);
            }
            summary
        }
    };
    files::export_dir(dest)?;
    for file in &summary.tables {
        files::check_target(&dest.join(file), force)?;
    }
    for file in &summary.tables {
        staging.deliver(file, &dest.join(file), force)?;
    }
    Ok(summary)
}

/// Exports an XLSX workbook to `dest`, staged privately and copied (see [`csv`]).
pub fn xlsx(
    store: &wc::Store,
    store_dir: &Path,
    dest: &Path,
    opts: &wc::ExportOptions,
    lang: Option<&Language>,
    force: bool,
) -> Result<wc::ExportSummary, String> {
    files::check_target(dest, force)?;
    let staging = files::Staging::new(store_dir)?;
    const STAGED: &str = "export.xlsx";
    let summary = match lang {
        None => store
            .export_xlsx(staging.path().join(STAGED), opts)
            .map_err(|e| e.to_string())?,
        Some(lang) => {
            let (mut tables, mut summary) = lang.tables(store, opts)?;
            sheet_names(&mut tables);
            write_xlsx(&staging.path().join(STAGED), &tables)
                .map_err(|e| format!("cannot write the workbook: {e}"))?;
            summary.tables = tables.into_iter().map(|t| t.name).collect();
            summary
        }
    };
    staging.deliver(STAGED, dest, force)?;
    Ok(summary)
}

/// Names the sheets after the tables' titles, as a person reads them: at most 31 characters,
/// none of those a sheet name may not hold, and no two alike (Excel compares them ignoring case).
fn sheet_names(tables: &mut [wc::Table]) {
    let mut taken: Vec<String> = Vec::new();
    for t in tables {
        let base: String = t
            .title
            .chars()
            .map(|c| if "[]:*?/\\".contains(c) { ' ' } else { c })
            .take(31)
            .collect();
        let base = base.trim().trim_matches('\'').to_string();
        let mut name = if base.is_empty() {
            t.name.clone()
        } else {
            base.clone()
        };
        let mut n = 2;
        while taken
            .iter()
            .any(|x| x.to_lowercase() == name.to_lowercase())
        {
            let suffix = format!(" ({n})");
            name = format!(
                "{}{suffix}",
                base.chars().take(31 - suffix.len()).collect::<String>()
            );
            n += 1;
        }
        taken.push(name.clone());
        t.name = name;
    }
}

/// A cell as CSV text. Text a spreadsheet would run as a formula gets a leading apostrophe, as
/// the core's own CSV export does: a label typed on a phone must not become a formula.
fn csv_cell(c: &wc::Cell) -> String {
    match c {
        wc::Cell::Text(s) if s.starts_with(['=', '+', '-', '@', '\t', '\r']) => format!("'{s}"),
        other => other.display(),
    }
}

fn write_csv(path: &Path, t: &wc::Table) -> Result<(), csv::Error> {
    let mut w = csv::Writer::from_path(path)?;
    w.write_record(&t.columns)?;
    for row in &t.rows {
        w.write_record(row.iter().map(csv_cell))?;
    }
    w.flush()?;
    Ok(())
}

fn write_xlsx(path: &Path, tables: &[wc::Table]) -> Result<(), rust_xlsxwriter::XlsxError> {
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
                    wc::Cell::Text(s) => {
                        sheet.write_string(r, col, s)?;
                    }
                    wc::Cell::Int(n) => {
                        sheet.write_number(r, col, *n as f64)?;
                    }
                    wc::Cell::Float(f) => {
                        sheet.write_number_with_format(r, col, *f, &decimals)?;
                    }
                    wc::Cell::Empty => {}
                }
            }
        }
        sheet.set_freeze_panes(1, 0)?;
    }
    book.save(path)
}
