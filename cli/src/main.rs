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
mod exchange;
mod export;
mod files;
mod html;
mod key;
mod labels;
mod output;
mod query;
mod records;
mod team;
mod words;

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
    /// Create a workspace in the store (creating the store if there is none) and connect it to
    /// a sync server with the operator's enrolment token (`waymark-server token issue`), then
    /// sync. This device becomes the team's first coordinator.
    CreateWorkspace {
        /// The workspace's name.
        #[arg(long)]
        name: String,
        /// The sync server's address (https://..., or http:// on this machine).
        #[arg(long)]
        server: String,
        /// The enrolment token from the server's operator.
        // Tokens are base64url: one in 64 starts with '-', which is still the value, not a flag.
        #[arg(
            long,
            env = "WAYMARK_ENROLMENT_TOKEN",
            hide_env_values = true,
            allow_hyphen_values = true
        )]
        token: String,
        /// This device's name, shown to teammates in history and conflicts.
        #[arg(long)]
        device_name: Option<String>,
    },
    /// Make an invite code for a new device: printed as text and as a QR code to scan. Pass it
    /// in person: unless it is an approval invite, it carries the workspace key.
    Invite {
        /// The role the device joins with (only a coordinator may invite a coordinator).
        #[arg(long, default_value = "member", value_parser = ["coordinator", "member"])]
        role: String,
        /// An invite without keys: the device waits until approved here (`waymark joins`,
        /// `waymark approve`). Always a member.
        #[arg(long, conflicts_with = "role")]
        approval: bool,
        /// How long the code stays valid (e.g. 30m, 1h, 7d; at most 30 days).
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// The workspace (id); default: the store's only workspace.
        #[arg(long)]
        workspace: Option<String>,
        /// Print as JSON (the code only, no QR code).
        #[arg(long)]
        json: bool,
    },
    /// Devices that joined and wait to be admitted, with the confirmation code each must show.
    Joins {
        /// Only this workspace (id); default: every workspace in the store.
        #[arg(long)]
        workspace: Option<String>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Admit a device that waits (see `waymark joins`), once the confirmation code it shows
    /// matches: it then receives the team's keys at its next sync.
    Approve {
        /// The device's id.
        device_id: String,
        /// The confirmation code the device shows (spaces allowed).
        #[arg(long)]
        code: String,
        /// Only this workspace (id); default: the one the device waits in.
        #[arg(long)]
        workspace: Option<String>,
    },
    /// The team's devices as of the last sync: name, role, admitted or revoked.
    Team {
        /// Only this workspace (id); default: every workspace in the store.
        #[arg(long)]
        workspace: Option<String>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a device (lost, stolen, or someone who left): it can no longer sync, and the
    /// workspace key is rotated so that nothing written from now on can be read with its keys.
    Revoke {
        /// The device's id (see `waymark team`).
        device_id: String,
        /// Only this workspace (id); default: the one the device belongs to.
        #[arg(long)]
        workspace: Option<String>,
    },
    /// Make a device a coordinator (it may then approve joins, revoke devices and read
    /// restricted records) or a member again (the restricted key is rotated at once).
    SetRole {
        /// The device's id (see `waymark team`).
        device_id: String,
        /// The new role.
        #[arg(value_parser = ["coordinator", "member"])]
        role: String,
        /// Only this workspace (id); default: the one the device belongs to.
        #[arg(long)]
        workspace: Option<String>,
    },
    /// Rename the workspace for the whole team (synced like any edit).
    RenameWorkspace {
        /// The new name.
        name: String,
        /// The workspace (id); may be left out when the store has only one.
        #[arg(long)]
        workspace: Option<String>,
    },
    /// Visits and workshops whose fields were changed on two devices at once: each value with
    /// the device that wrote it, numbered for `waymark resolve`.
    Conflicts {
        /// Only this workspace (id); default: every workspace in the store.
        #[arg(long)]
        workspace: Option<String>,
        /// Also show restricted records.
        #[arg(long)]
        include_restricted: bool,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Keep one of a conflict's values (sync to send the choice to the team).
    #[command(group(clap::ArgGroup::new("choice").required(true).args(["pick", "value"])))]
    Resolve {
        /// The record's id.
        id: String,
        /// The field, as `waymark conflicts` names it (e.g. people_reached).
        field: String,
        /// The number of the value to keep, as `waymark conflicts` lists it.
        #[arg(long)]
        pick: Option<usize>,
        /// The value to keep, as text (as `waymark conflicts` shows it).
        #[arg(long)]
        value: Option<String>,
    },
    /// A record's changes: when, by which device, which fields.
    History {
        /// The record's id.
        id: String,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The workspace's lists (visit types, risk indicators, topics, ...) and their labels in
    /// each language (a coordinator; sync to send the edits to the team).
    Taxonomy {
        #[command(subcommand)]
        command: TaxonomyCommand,
    },
    /// Write this store's changes to a file, to carry on a memory card to a device without a
    /// network (created readable by you only; an existing file is refused without --force).
    ExportChanges {
        /// The file to write.
        file: PathBuf,
        /// Replace an existing file (never a symbolic link).
        #[arg(long)]
        force: bool,
    },
    /// Merge a file of changes another device wrote (`export-changes`), all or nothing.
    ImportChanges {
        /// The file to read.
        file: PathBuf,
        /// Print what changed as JSON.
        #[arg(long)]
        json: bool,
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
        /// Show the figures with the workspace's labels in this language (e.g. es).
        #[arg(long)]
        lang: Option<String>,
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

#[derive(Subcommand)]
enum TaxonomyCommand {
    /// List the entries and their labels.
    List {
        /// Only this taxonomy (visit_types, risk_indicators, referral_kinds, referral_statuses,
        /// workshop_topics, audiences, age_bands, genders).
        taxonomy: Option<String>,
        /// Also list archived entries.
        #[arg(long)]
        archived: bool,
        /// The workspace (id); default: the store's only workspace.
        #[arg(long)]
        workspace: Option<String>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add an entry (or restore an archived one) with its labels.
    Add {
        /// The taxonomy (e.g. risk_indicators).
        taxonomy: String,
        /// The new entry's key (e.g. forced_labour): records store it, labels show it.
        key: String,
        /// A label as LANG=TEXT (e.g. --label en="Forced labour" --label es="Trabajo forzoso").
        #[arg(long = "label", value_parser = labels::parse_label, required = true)]
        labels: Vec<wc::Label>,
        /// The workspace (id); default: the store's only workspace.
        #[arg(long)]
        workspace: Option<String>,
    },
    /// Set an entry's label in one language (a translation).
    Label {
        /// The taxonomy.
        taxonomy: String,
        /// The entry's key.
        key: String,
        /// The language (e.g. es, pt-BR).
        lang: String,
        /// The label.
        text: String,
        /// The workspace (id); default: the store's only workspace.
        #[arg(long)]
        workspace: Option<String>,
    },
    /// Archive an entry: hidden from the phones' pickers, kept for the records that use it.
    Archive {
        /// The taxonomy.
        taxonomy: String,
        /// The entry's key.
        key: String,
        /// Restore the entry instead.
        #[arg(long)]
        restore: bool,
        /// The workspace (id); default: the store's only workspace.
        #[arg(long)]
        workspace: Option<String>,
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
    /// Show visit types, indicators, topics and other lists in the workspace's labels in this
    /// language (e.g. es), and headers and titles in it (English, Spanish and French ship).
    /// Tables and HTML pages are for people in any case (default en); JSON and exports keep
    /// the keys unless it is given.
    #[arg(long)]
    lang: Option<String>,
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
            "no store in {}: run `waymark join <invite-code>` or `waymark create-workspace` \
             first (or give --data-dir)",
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
        Command::CreateWorkspace {
            name,
            server,
            token,
            device_name,
        } => {
            let store = open(&dir, true)?;
            if let Some(n) = device_name {
                store.set_device_name(&n).map_err(err)?;
            }
            let ws = team::create_workspace(&store, &name, &server, &token)?;
            say!("created workspace {} ({}) on {server}", ws.name, ws.id);
            let report = sync(&store)?;
            Out::new(false).sync(&report);
            Ok(())
        }
        Command::Invite {
            role,
            approval,
            ttl,
            workspace,
            json,
        } => {
            let store = open(&dir, false)?;
            let ws = team::one_workspace(&store, workspace)?;
            let opts = team::InviteOptions {
                role,
                approval,
                ttl,
            };
            team::invite(&store, &ws, &opts, json)
        }
        Command::Joins { workspace, json } => {
            let store = open(&dir, false)?;
            let wss = team::workspaces(&store, workspace.as_deref())?;
            team::joins(&store, &wss, json)
        }
        Command::Approve {
            device_id,
            code,
            workspace,
        } => {
            let store = open(&dir, false)?;
            let wss = team::workspaces(&store, workspace.as_deref())?;
            team::approve(&store, &wss, &device_id, &code)
        }
        Command::Team { workspace, json } => {
            let store = open(&dir, false)?;
            let wss = team::workspaces(&store, workspace.as_deref())?;
            team::team(&store, &wss, json)
        }
        Command::Revoke {
            device_id,
            workspace,
        } => {
            let store = open(&dir, false)?;
            let wss = team::workspaces(&store, workspace.as_deref())?;
            team::revoke(&store, &wss, &device_id)
        }
        Command::SetRole {
            device_id,
            role,
            workspace,
        } => {
            let store = open(&dir, false)?;
            let wss = team::workspaces(&store, workspace.as_deref())?;
            team::set_role(&store, &wss, &device_id, &role)
        }
        Command::RenameWorkspace { name, workspace } => {
            let store = open(&dir, false)?;
            let ws = team::one_workspace(&store, workspace)?;
            labels::edit(&store, &ws, wc::SettingsEdit::Rename(name.clone()))?;
            say!("renamed the workspace {name}: the team sees it after their next sync");
            Ok(())
        }
        Command::Conflicts {
            workspace,
            include_restricted,
            json,
        } => {
            let store = open(&dir, false)?;
            records::conflicts(&store, workspace, include_restricted, json)
        }
        Command::Resolve {
            id,
            field,
            pick,
            value,
        } => {
            let store = open(&dir, false)?;
            let choice = match (pick, value) {
                (Some(n), _) => records::Choice::Pick(n),
                (None, Some(v)) => records::Choice::Value(v),
                (None, None) => return Err("give --pick N or --value TEXT".into()),
            };
            records::resolve(&store, &id, &field, &choice)
        }
        Command::History { id, json } => {
            let store = open(&dir, false)?;
            records::history(&store, &id, json)
        }
        Command::Taxonomy { command } => {
            let store = open(&dir, false)?;
            taxonomy(&store, command)
        }
        Command::ExportChanges { file, force } => {
            let store = open(&dir, false)?;
            exchange::export_changes(&store, &file, force)
        }
        Command::ImportChanges { file, json } => {
            let store = open(&dir, false)?;
            exchange::import_changes(&store, &file, json)
        }
        Command::Sync { json } => {
            let store = open(&dir, false)?;
            let report = sync(&store)?;
            Out::new(json).sync(&report);
            Ok(())
        }
        Command::Dashboard {
            port,
            no_open,
            lang,
        } => {
            let store = open(&dir, false)?;
            let opts = dashboard::Options {
                port,
                open: !no_open,
                lang,
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
            let ws = team::one_workspace(&store, workspace)?;
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
            let mut report = store.report(&filter).map_err(err)?;
            let names = device_names(&store)?;
            let scope = &a.scope;
            let labels = labels::Labels::load(
                &store,
                scope.period.workspace.as_deref(),
                scope.lang.as_deref(),
            )?;
            let keys = report.clone();
            labels.report(&mut report);
            let words = words::Words::new(scope.lang.as_deref().unwrap_or(labels::DEFAULT_LANG));
            if let Some(path) = &a.html {
                let page = html::page(&report, &names, &words);
                files::write_private(path, page.as_bytes(), a.force)?;
                if !a.json {
                    say!("wrote {}", path.display());
                    return Ok(());
                }
            }
            // JSON keeps the keys for scripts, unless a language was asked for.
            let shown = if a.json && scope.lang.is_none() {
                &keys
            } else {
                &report
            };
            Out::new(a.json).report(shown, &names, &words);
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
            let language = match &a.scope.lang {
                Some(lang) => Some((
                    labels::Labels::load(&store, a.scope.period.workspace.as_deref(), Some(lang))?,
                    words::Words::new(lang),
                )),
                None => None,
            };
            let lang = language
                .as_ref()
                .map(|(labels, words)| export::Language { labels, words });
            let lang = lang.as_ref();
            let (summary, target) = match (&a.csv, &a.xlsx) {
                (Some(d), _) => (export::csv(&store, &dir, d, &opts, lang, a.force)?, d),
                (None, Some(f)) => (export::xlsx(&store, &dir, f, &opts, lang, a.force)?, f),
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

/// The `taxonomy` subcommands.
fn taxonomy(store: &wc::Store, command: TaxonomyCommand) -> Result<(), String> {
    let (workspace, edit, done) = match command {
        TaxonomyCommand::List {
            taxonomy,
            archived,
            workspace,
            json,
        } => {
            let ws = team::one_workspace(store, workspace)?;
            return labels::list(store, &ws, taxonomy.as_deref(), archived, json);
        }
        TaxonomyCommand::Add {
            taxonomy,
            key,
            labels,
            workspace,
        } => {
            let done = format!("added {key} to {taxonomy}");
            let edit = wc::SettingsEdit::AddEntry {
                taxonomy,
                key,
                labels,
            };
            (workspace, edit, done)
        }
        TaxonomyCommand::Label {
            taxonomy,
            key,
            lang,
            text,
            workspace,
        } => {
            let done = format!("labelled {key} of {taxonomy} in {lang}");
            let edit = wc::SettingsEdit::SetLabel {
                taxonomy,
                key,
                lang,
                text,
            };
            (workspace, edit, done)
        }
        TaxonomyCommand::Archive {
            taxonomy,
            key,
            restore,
            workspace,
        } => {
            let done = match restore {
                true => format!("restored {key} of {taxonomy}"),
                false => format!("archived {key} of {taxonomy}"),
            };
            let edit = wc::SettingsEdit::Archive {
                taxonomy,
                key,
                archived: !restore,
            };
            (workspace, edit, done)
        }
    };
    let ws = team::one_workspace(store, workspace)?;
    labels::edit(store, &ws, edit)?;
    say!("{done}; sync to send it to the team");
    Ok(())
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use clap::Parser;

    use super::{Cli, Command};

    #[test]
    fn an_enrolment_token_that_starts_with_a_dash_is_read_as_the_token() {
        let cli = Cli::try_parse_from([
            "waymark",
            "create-workspace",
            "--name",
            "Team",
            "--server",
            "http://127.0.0.1:1",
            "--token",
            "-Xy_9",
        ])
        .expect("parsed");
        assert!(matches!(cli.command, Command::CreateWorkspace { token, .. } if token == "-Xy_9"));
    }
}
