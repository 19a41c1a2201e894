//! `waymark export`: CSV files or an XLSX workbook, staged privately inside the store's
//! directory and then copied to where the person asked (see `files`). With `--lang`, taxonomy
//! keys become the workspace's labels in that language; the CLI then writes the core's tables
//! itself, as the core writes them.

use std::path::Path;

use waymark_core as wc;

use crate::files;
use crate::labels::Labels;

/// Exports CSV files into `dest`: staged privately, checked (no file to replace without
/// `force`, no symlink), then copied, so a refused export writes nothing.
pub fn csv(
    store: &wc::Store,
    store_dir: &Path,
    dest: &Path,
    opts: &wc::ExportOptions,
    labels: Option<&Labels>,
    force: bool,
) -> Result<wc::ExportSummary, String> {
    let staging = files::Staging::new(store_dir)?;
    let summary = match labels {
        None => store
            .export_csv(staging.path(), opts)
            .map_err(|e| e.to_string())?,
        Some(labels) => {
            let (mut tables, mut summary) = store.export_tables(opts).map_err(|e| e.to_string())?;
            labels.tables(&mut tables);
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
    labels: Option<&Labels>,
    force: bool,
) -> Result<wc::ExportSummary, String> {
    files::check_target(dest, force)?;
    let staging = files::Staging::new(store_dir)?;
    const STAGED: &str = "export.xlsx";
    let summary = match labels {
        None => store
            .export_xlsx(staging.path().join(STAGED), opts)
            .map_err(|e| e.to_string())?,
        Some(labels) => {
            let (mut tables, mut summary) = store.export_tables(opts).map_err(|e| e.to_string())?;
            labels.tables(&mut tables);
            write_xlsx(&staging.path().join(STAGED), &tables)
                .map_err(|e| format!("cannot write the workbook: {e}"))?;
            summary.tables = tables.into_iter().map(|t| t.name).collect();
            summary
        }
    };
    staging.deliver(STAGED, dest, force)?;
    Ok(summary)
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
