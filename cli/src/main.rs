//! `waymark`: the coordinator's desktop client. It joins the team's workspace with an invite,
//! syncs, lists and searches visits and workshops, and turns the merged records into the
//! figures funders ask for: a terminal table, a self-contained HTML page with charts, CSV or
//! XLSX. It is one more device of the team, using the same core as the phones.

/// Prints a line to standard output like `println!`, except that a reader that went away
/// (`waymark report | head`) ends the program quietly, as command-line tools do, instead of
/// a panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            $crate::output::stdout_failed(&e);
        }
    }};
}

mod dashboard;
mod files;
mod html;
mod key;
mod output;
mod query;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use waymark_core as wc;

use crate::output::Out;
use crate::query::{device_names, narrow, parse_day, search_ids, today};

/// waymark: join a team's workspace, sync, and report on its visits and workshops.
///
/// The store is encrypted with a key derived from a passphrase, read from the
/// WAYMARK_PASSPHRASE environment variable or typed at a prompt, never from the command line.
#[derive(Parser)]
#[command(name = "waymark", version, propagate_version = true)]
struct Cli {
    /// Directory holding the store (waymark.db) and its salt (waymark.salt).
    #[arg(long, env = "WAYMARK_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Join a workspace with an invite code from a coordinator's device (creates the store).
    ///
    /// The code carries the workspace key: pass it in person. Give "-" (or nothing) to read it
    /// from standard input instead of the command line.
    Join {
        /// The invite code, or "-" to read it from standard input.
        code: Option<String>,
        /// This device's name, shown to teammates in history and conflicts.
        #[arg(long)]
        device_name: Option<String>,
    },
    /// Push local changes and pull the team's, with a progress bar on long syncs.
    Sync {
        /// Print what the sync did as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the workspaces in the store.
    Workspaces {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List, filter and search field visits, newest first.
    Visits(VisitsArgs),
    /// List, filter and search workshops, newest first.
    Workshops(WorkshopsArgs),
    /// The team's figures for a period: a table in the terminal, JSON, or an HTML page.
    Report(ReportArgs),
    /// Export records and report tables as CSV files or an XLSX workbook.
    Export(ExportArgs),
    /// The team's open, overdue and raised safety check-ins (and those closed in the last day),
    /// as of the last sync, the most urgent first.
    Checkins {
        /// Only this workspace (id); default: every workspace in the store.
        #[arg(long)]
        workspace: Option<String>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Anonymous tips sent through the workspace's tip page, newest first (a coordinator's
    /// store; as of the last sync).
    Tips {
        /// Only this workspace (id); default: every workspace in the store.
        #[arg(long)]
        workspace: Option<String>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set up the workspace's tip page (or show it): prints its address and the fingerprint of
    /// its key to print on posters; published at the next sync.
    TipPage {
        /// The workspace (id); default: the store's only workspace.
        #[arg(long)]
        workspace: Option<String>,
        /// Move the page to a new address (the old one stops working).
        #[arg(long)]
        new_address: bool,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Reply to a tipster: sealed to them, sent at the next sync; they read it on the page
    /// with their receipt code.
    TipReply {
        /// The tip's id.
        id: String,
        /// What to say.
        text: String,
    },
    /// Serve the dashboard: the team's figures, records, team, check-ins and tips in a browser
    /// on this computer only (127.0.0.1), opened with a one-time address printed here.
    Dashboard {
        /// Port to listen on (127.0.0.1 only); 0 picks a free one.
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Only print the address; do not open a browser.
        #[arg(long)]
        no_open: bool,
    },
    /// Erase a visit or workshop on every device and on the server: nothing it ever said stays
    /// (the record's author or a coordinator; sync to send it).
    Erase {
        /// The record's id.
        id: String,
    },
    /// Forget every earlier value of a field of a visit or workshop (e.g. a name typed into
    /// the notes and edited away), on every device and on the server; current values stay
    /// (the record's author or a coordinator; sync to send it).
    Redact {
        /// The record's id.
        id: String,
        /// The field whose history must go (e.g. notes, place, attendees).
        #[arg(long, default_value = "notes")]
        field: String,
    },
}

/// Period and scope shared by reports, lists and exports.
#[derive(Args, Clone, Default)]
struct Period {
    /// First day (YYYY-MM-DD) or month (YYYY-MM), UTC.
    #[arg(long)]
    from: Option<String>,
    /// Last day (YYYY-MM-DD) or month (YYYY-MM), included, UTC.
    #[arg(long)]
    to: Option<String>,
    /// Only this area.
    #[arg(long)]
    area: Option<String>,
    /// Only this workspace (id); default: every workspace in the store.
    #[arg(long)]
    workspace: Option<String>,
}

#[derive(Args)]
struct VisitsArgs {
    #[command(flatten)]
    period: Period,
    /// Only this visit type (e.g. street_outreach).
    #[arg(long = "type")]
    visit_type: Option<String>,
    /// Only visits where this risk indicator was observed (e.g. debt_bondage).
    #[arg(long)]
    indicator: Option<String>,
    /// Only visits with an open follow-up.
    #[arg(long, conflicts_with = "overdue")]
    follow_up: bool,
    /// Only visits whose follow-up is overdue today.
    #[arg(long)]
    overdue: bool,
    /// Only visits whose notes or place match these words.
    #[arg(long)]
    search: Option<String>,
    /// Also show restricted visits (identifying a victim, a minor or an open case).
    #[arg(long)]
    include_restricted: bool,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Print as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct WorkshopsArgs {
    #[command(flatten)]
    period: Period,
    /// Only this topic (e.g. safe_migration).
    #[arg(long)]
    topic: Option<String>,
    /// Only workshops whose title, notes or feedback match these words.
    #[arg(long)]
    search: Option<String>,
    /// Also show restricted workshops.
    #[arg(long)]
    include_restricted: bool,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Print as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Clone, Default)]
struct ReportScope {
    #[command(flatten)]
    period: Period,
    /// Only workshops of this topic.
    #[arg(long)]
    topic: Option<String>,
    /// Only records created by this device (its name, or its actor id).
    #[arg(long)]
    worker: Option<String>,
    /// Count follow-ups overdue against this date (YYYY-MM-DD) instead of today.
    #[arg(long)]
    today: Option<String>,
}

#[derive(Args)]
struct ReportArgs {
    #[command(flatten)]
    scope: ReportScope,
    /// Print the report as JSON instead of tables.
    #[arg(long)]
    json: bool,
    /// Write a self-contained HTML page with charts to this file (created readable by you
    /// only; an existing file is refused without --force).
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Replace an existing file (never a symbolic link).
    #[arg(long, requires = "html")]
    force: bool,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("format").required(true).args(["csv", "xlsx"])))]
struct ExportArgs {
    #[command(flatten)]
    scope: ReportScope,
    /// Write one CSV file per table into this directory (created if missing).
    #[arg(long, value_name = "DIR")]
    csv: Option<PathBuf>,
    /// Write one XLSX workbook, a sheet per table.
    #[arg(long, value_name = "FILE")]
    xlsx: Option<PathBuf>,
    /// Replace existing files (never a symbolic link). Without it an export that would
    /// replace a file writes nothing. Files are always created readable by you only.
    #[arg(long)]
    force: bool,
    /// Also export restricted records (identifying a victim, a minor or an open case).
    #[arg(long)]
    include_restricted: bool,
    /// Also export the free-text notes.
    #[arg(long)]
    include_notes: bool,
    /// Also export anonymous tips (a coordinator's store): what tipsters wrote, in clear text.
    #[arg(long)]
    include_tips: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("waymark: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The data directory: `--data-dir`, `WAYMARK_DATA_DIR`, or the platform's data directory.
fn data_dir(cli: &Cli) -> Result<PathBuf, String> {
    match &cli.data_dir {
        Some(d) => Ok(d.clone()),
        None => dirs::data_dir()
            .map(|d| d.join("waymark"))
            .ok_or_else(|| "no data directory: give --data-dir".to_string()),
    }
}

/// Opens the store in `dir`; `create` allows making a new one (only `join` does).
fn open(dir: &Path, create: bool) -> Result<wc::Store, String> {
    let db = dir.join("waymark.db");
    let exists = db.exists();
    if !exists && !create {
        return Err(format!(
            "no store in {}: run `waymark join <invite-code>` first (or give --data-dir)",
            dir.display()
        ));
    }
    files::create_private_dir(dir)?;
    files::tighten_dir(dir);
    let key = key::store_key(&dir.join("waymark.salt"), !exists)?;
    if !exists {
        // Created private here: SQLite gives its journals the database file's mode.
        files::write_private(&db, b"", false)?;
    }
    wc::Store::open(&db, key.as_ref()).map_err(|e| match e {
        wc::Error::WrongKey => "wrong passphrase: the store cannot be opened with it".to_string(),
        other => other.to_string(),
    })
}

fn run(cli: Cli) -> Result<(), String> {
    let dir = data_dir(&cli)?;
    let err = |e: wc::Error| e.to_string();
    match cli.command {
        Command::Join { code, device_name } => {
            let code = match code.as_deref() {
                Some(c) if c != "-" => c.trim().to_string(),
                _ => {
                    let mut s = String::new();
                    std::io::stdin()
                        .read_line(&mut s)
                        .map_err(|e| format!("cannot read the invite code: {e}"))?;
                    s.trim().to_string()
                }
            };
            let store = open(&dir, true)?;
            if let Some(name) = device_name {
                store.set_device_name(&name).map_err(err)?;
            }
            let ws = store.join(&code).map_err(err)?;
            say!("joined workspace {} ({})", ws.name, ws.id);
            say!("run `waymark sync` to fetch the team's records");
            Ok(())
        }
        Command::Sync { json } => {
            let store = open(&dir, false)?;
            let report = sync(&store)?;
            Out::new(json).sync(&report);
            Ok(())
        }
        Command::Dashboard { port, no_open } => {
            let store = open(&dir, false)?;
            let opts = dashboard::Options {
                port,
                open: !no_open,
            };
            dashboard::serve(store, &dir, &opts).map_err(|e| e.to_string())
        }
        Command::Erase { id } => {
            let store = open(&dir, false)?;
            store.erase_record(&id).map_err(err)?;
            say!("erased {id}; sync to erase it on the server and the team's devices");
            Ok(())
        }
        Command::Redact { id, field } => {
            let store = open(&dir, false)?;
            store.redact_record(&id, &field).map_err(err)?;
            say!(
                "redacted the history of {field} in {id}; sync to redact it on the server and \
                 the team's devices"
            );
            Ok(())
        }
        Command::Checkins { workspace, json } => {
            let store = open(&dir, false)?;
            let mut all = Vec::new();
            for ws in store.workspaces().map_err(err)? {
                if workspace.as_ref().is_none_or(|w| *w == ws.id) {
                    all.extend(store.check_ins(&ws.id).map_err(err)?);
                }
            }
            Out::new(json).check_ins(&all);
            Ok(())
        }
        Command::Tips { workspace, json } => {
            let store = open(&dir, false)?;
            let mut all = Vec::new();
            for ws in store.workspaces().map_err(err)? {
                if workspace.as_ref().is_none_or(|w| *w == ws.id) {
                    all.extend(store.tips(&ws.id).map_err(err)?);
                }
            }
            Out::new(json).tips(&all);
            Ok(())
        }
        Command::TipPage {
            workspace,
            new_address,
            json,
        } => {
            let store = open(&dir, false)?;
            let ws = match workspace {
                Some(w) => w,
                None => match store.workspaces().map_err(err)?.as_slice() {
                    [only] => only.id.clone(),
                    _ => return Err("give --workspace ID (the store has several)".into()),
                },
            };
            let page = match store.tip_page(&ws).map_err(err)? {
                Some(p) if !new_address => p,
                _ => store.set_tip_page(&ws, &[], new_address).map_err(err)?,
            };
            Out::new(json).tip_page(&page);
            Ok(())
        }
        Command::TipReply { id, text } => {
            let store = open(&dir, false)?;
            store.reply_to_tip(&id, &text).map_err(err)?;
            say!("reply sealed to the tipster; sync to send it");
            Ok(())
        }
        Command::Workspaces { json } => {
            let store = open(&dir, false)?;
            Out::new(json).workspaces(&store.workspaces().map_err(err)?);
            Ok(())
        }
        Command::Visits(a) => {
            let store = open(&dir, false)?;
            visits(&store, a)
        }
        Command::Workshops(a) => {
            let store = open(&dir, false)?;
            workshops(&store, a)
        }
        Command::Report(a) => {
            let store = open(&dir, false)?;
            let filter = report_filter(&store, &a.scope)?;
            let report = store.report(&filter).map_err(err)?;
            let names = device_names(&store)?;
            if let Some(path) = &a.html {
                let page = html::page(&report, &names);
                files::write_private(path, page.as_bytes(), a.force)?;
                if !a.json {
                    say!("wrote {}", path.display());
                    return Ok(());
                }
            }
            Out::new(a.json).report(&report, &names);
            Ok(())
        }
        Command::Export(a) => {
            let store = open(&dir, false)?;
            let opts = wc::ExportOptions {
                filter: report_filter(&store, &a.scope)?,
                include_restricted: a.include_restricted,
                include_notes: a.include_notes,
                include_tips: a.include_tips,
            };
            let (summary, target) = match (&a.csv, &a.xlsx) {
                (Some(d), _) => (export_csv(&store, &dir, d, &opts, a.force)?, d),
                (None, Some(f)) => (export_xlsx(&store, &dir, f, &opts, a.force)?, f),
                (None, None) => return Err("give --csv DIR or --xlsx FILE".into()),
            };
            say!(
                "exported {} visits and {} workshops ({} tables) to {}",
                summary.visits,
                summary.workshops,
                summary.tables.len(),
                target.display()
            );
            if summary.restricted_left_out > 0 {
                say!(
                    "{} restricted records left out (--include-restricted to export them)",
                    summary.restricted_left_out
                );
            }
            Ok(())
        }
    }
}

/// Exports CSV files into `dest`: staged privately, checked (no file to replace without
/// `force`, no symlink), then copied, so a refused export writes nothing.
fn export_csv(
    store: &wc::Store,
    store_dir: &Path,
    dest: &Path,
    opts: &wc::ExportOptions,
    force: bool,
) -> Result<wc::ExportSummary, String> {
    let staging = files::Staging::new(store_dir)?;
    let summary = store
        .export_csv(staging.path(), opts)
        .map_err(|e| e.to_string())?;
    files::export_dir(dest)?;
    for file in &summary.tables {
        files::check_target(&dest.join(file), force)?;
    }
    for file in &summary.tables {
        staging.deliver(file, &dest.join(file), force)?;
    }
    Ok(summary)
}

/// Exports an XLSX workbook to `dest`, staged privately and copied (see [`export_csv`]).
fn export_xlsx(
    store: &wc::Store,
    store_dir: &Path,
    dest: &Path,
    opts: &wc::ExportOptions,
    force: bool,
) -> Result<wc::ExportSummary, String> {
    files::check_target(dest, force)?;
    let staging = files::Staging::new(store_dir)?;
    const STAGED: &str = "export.xlsx";
    let summary = store
        .export_xlsx(staging.path().join(STAGED), opts)
        .map_err(|e| e.to_string())?;
    staging.deliver(STAGED, dest, force)?;
    Ok(summary)
}

/// Syncs with a progress bar on stderr (drawn only on a terminal, once a sync is long).
fn sync(store: &wc::Store) -> Result<wc::SyncReport, String> {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>6} [{bar:40}] {pos}/{len} blobs {bytes_per_sec}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    let shown = bar.clone();
    let progress: wc::ProgressFn = Arc::new(move |p: &wc::SyncProgress| {
        shown.set_message(match p.phase {
            wc::SyncPhase::Push => "push",
            wc::SyncPhase::Pull => "pull",
        });
        shown.set_length(p.blobs_total.max(p.blobs_done));
        shown.set_position(p.blobs_done);
    });
    let out = store.sync_with(&wc::SyncOptions {
        progress: Some(progress),
        ..Default::default()
    });
    bar.finish_and_clear();
    out.map_err(|e| e.to_string())
}

fn period_bounds(p: &Period) -> Result<(Option<i64>, Option<i64>), String> {
    let from = p.from.as_deref().map(|s| parse_day(s, false)).transpose()?;
    let to = p.to.as_deref().map(|s| parse_day(s, true)).transpose()?;
    Ok((from, to))
}

fn report_filter(store: &wc::Store, s: &ReportScope) -> Result<wc::ReportFilter, String> {
    let (from, to) = period_bounds(&s.period)?;
    let worker = s
        .worker
        .as_deref()
        .map(|w| query::worker_actor(store, w))
        .transpose()?;
    Ok(wc::ReportFilter {
        workspace_id: s.period.workspace.clone(),
        from,
        to,
        area: s.period.area.clone(),
        topic: s.topic.clone(),
        worker,
        today: s.today.clone(),
    })
}

fn visits(store: &wc::Store, a: VisitsArgs) -> Result<(), String> {
    let (from, to) = period_bounds(&a.period)?;
    let hits = search_ids(store, a.search.as_deref(), wc::RecordKind::Visit)?;
    let filter = wc::VisitFilter {
        workspace_id: a.period.workspace.clone(),
        from,
        to,
        area: a.period.area.clone(),
        visit_type: a.visit_type,
        indicator: a.indicator,
        follow_up: if a.overdue {
            Some(wc::FollowUpFilter::OverdueOn(today()))
        } else if a.follow_up {
            Some(wc::FollowUpFilter::Open)
        } else {
            None
        },
        include_deleted: false,
        // A search narrows after listing: list everything in the period first.
        limit: Some(if hits.is_some() { 10_000 } else { a.limit }),
        offset: None,
    };
    let all = store.list_visits(&filter).map_err(|e| e.to_string())?;
    let (shown, hidden) = narrow(all, hits.as_ref(), a.include_restricted, a.limit, |v| {
        (&v.id, v.sensitivity)
    });
    Out::new(a.json).visits(&shown, hidden, hits.as_ref());
    Ok(())
}

fn workshops(store: &wc::Store, a: WorkshopsArgs) -> Result<(), String> {
    let (from, to) = period_bounds(&a.period)?;
    let hits = search_ids(store, a.search.as_deref(), wc::RecordKind::Workshop)?;
    let filter = wc::WorkshopFilter {
        workspace_id: a.period.workspace.clone(),
        from,
        to,
        topic: a.topic,
        area: a.period.area.clone(),
        include_deleted: false,
        limit: Some(if hits.is_some() { 10_000 } else { a.limit }),
        offset: None,
    };
    let all = store.list_workshops(&filter).map_err(|e| e.to_string())?;
    let (shown, hidden) = narrow(all, hits.as_ref(), a.include_restricted, a.limit, |w| {
        (&w.id, w.sensitivity)
    });
    Out::new(a.json).workshops(&shown, hidden, hits.as_ref());
    Ok(())
}
