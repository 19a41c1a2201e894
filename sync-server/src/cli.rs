//! The `waymark-server` command line: `serve`, and the operator commands that work on the same
//! database (also while `serve` runs): workspaces, enrollment tokens, devices, usage,
//! compaction and online backup. Tables for people, `--json` for scripts.
//!
//! The database is SQLite in `--data-dir` by default, or PostgreSQL with
//! `--database postgres://...` (any number of `serve` processes may share it).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use serde::Serialize;
use waymark_protocol::{limits, roles};

use crate::api::{AppState, app};
use crate::clients::TrustedProxies;
use crate::config::Limits;
use crate::connections::{self, ConnectionLimits};
use crate::storage::postgres::{PostgresStorage, is_postgres_url};
use crate::storage::sqlite::SqliteStorage;
use crate::storage::{Storage, StorageError};
use crate::tokens;

/// Waymark sync server: a blind relay for end-to-end encrypted workspace logs.
#[derive(Debug, Parser)]
#[command(name = "waymark-server", version, propagate_version = true)]
pub struct Cli {
    /// Directory holding the database (created if missing).
    #[arg(
        long,
        global = true,
        env = "WAYMARK_DATA_DIR",
        default_value = "./waymark-data"
    )]
    pub data_dir: PathBuf,
    /// A PostgreSQL database instead of SQLite in --data-dir: postgres://user:password@host:port/db
    /// (migrated on start; several `serve` processes may share it). TLS: add
    /// `?sslmode=require` (the certificate is always verified: against the Mozilla roots, or the
    /// PEM file given as `&sslrootcert=/path/ca.pem`).
    #[arg(long, global = true, env = "WAYMARK_DATABASE_URL")]
    pub database: Option<String>,
    /// Most connections one process keeps open to PostgreSQL; requests beyond it wait for a free
    /// one. Size it so that processes x pool size stays under the database's max_connections.
    #[arg(
        long,
        global = true,
        env = "WAYMARK_DATABASE_POOL_SIZE",
        default_value_t = crate::storage::postgres::DEFAULT_MAX_CONNECTIONS,
        value_parser = clap::builder::TypedValueParser::map(
            clap::value_parser!(u16).range(1..=1000),
            usize::from
        )
    )]
    pub database_pool_size: usize,
    /// Print JSON instead of tables (admin commands).
    #[arg(long, global = true, env = "WAYMARK_JSON")]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server.
    // Boxed: its many options would make every command as large as it.
    Serve(Box<ServeArgs>),
    /// Create workspaces.
    #[command(subcommand)]
    Workspace(WorkspaceCommand),
    /// Issue one-time enrollment tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// List and revoke devices.
    #[command(subcommand)]
    Devices(DevicesCommand),
    /// Show devices, blobs, bytes and head sequence number per workspace.
    Usage,
    /// Drop the ciphertext of blobs superseded by a full save longer ago than the grace period.
    Compact {
        /// How long superseded blobs are kept for devices still catching up (e.g. 7d, 36h).
        #[arg(long, default_value = "7d", value_parser = parse_duration)]
        grace: Duration,
    },
    /// Write a consistent copy of the SQLite database to FILE (safe while `serve` runs),
    /// readable by its owner only. For PostgreSQL use `pg_dump`.
    Backup {
        /// Destination file; must not exist (nor be a symlink).
        #[arg(long)]
        to: PathBuf,
    },
    /// Put a backup made by `backup` in place of the SQLite database (stop `serve` first). The
    /// replaced database is kept beside it. Devices notice the rewind at their next sync and
    /// send again what the backup lacks. For PostgreSQL use `pg_restore`.
    Restore {
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
    },
}

/// `workspace` subcommands.
#[derive(Debug, Subcommand)]
pub enum WorkspaceCommand {
    /// Create a workspace and print its id.
    Create {
        /// A label for operators (never sent to devices).
        #[arg(long)]
        name: Option<String>,
    },
}

/// `token` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue a one-time enrollment token for a workspace.
    Issue {
        /// The workspace id (from `workspace create` or `usage`).
        #[arg(long)]
        workspace: String,
        /// How long the token stays valid (e.g. 30m, 24h, 7d).
        #[arg(long, default_value = "24h", value_parser = parse_duration)]
        ttl: Duration,
        /// Role of the device that enrolls with it: the operator's token usually goes to the
        /// team's coordinator, whose device then invites the members.
        #[arg(long, default_value = roles::COORDINATOR,
              value_parser = [roles::COORDINATOR, roles::MEMBER])]
        role: String,
    },
}

/// `devices` subcommands.
#[derive(Debug, Subcommand)]
pub enum DevicesCommand {
    /// List devices with their last sync time and bytes stored.
    List {
        /// Only this workspace's devices.
        #[arg(long)]
        workspace: Option<String>,
    },
    /// Revoke a device: its token is refused at once (e.g. a lost phone).
    Revoke {
        /// The device id (from `devices list`).
        device_id: String,
    },
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// Multi-line, human-readable.
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

/// `serve` options; each also settable by a `WAYMARK_*` environment variable.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the real address is printed).
    #[arg(long, env = "WAYMARK_LISTEN", default_value = "127.0.0.1:7878")]
    pub listen: SocketAddr,
    /// Largest request body in bytes (413 above).
    #[arg(long, env = "WAYMARK_MAX_BODY_BYTES", default_value_t = limits::DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: u64,
    /// Largest blob ciphertext in bytes (413 above).
    #[arg(long, env = "WAYMARK_MAX_BLOB_BYTES", default_value_t = limits::DEFAULT_MAX_BLOB_BYTES)]
    pub max_blob_bytes: u64,
    /// Most blobs per push (413 above).
    #[arg(long, env = "WAYMARK_MAX_BATCH_BLOBS", default_value_t = limits::DEFAULT_MAX_BATCH_BLOBS)]
    pub max_batch_blobs: usize,
    /// Pull byte budget when the client gives none.
    #[arg(long, env = "WAYMARK_PULL_DEFAULT_BYTES", default_value_t = limits::DEFAULT_PULL_MAX_BYTES)]
    pub pull_default_bytes: u64,
    /// Largest pull byte budget (larger requests are clamped).
    #[arg(long, env = "WAYMARK_PULL_MAX_BYTES", default_value_t = limits::DEFAULT_PULL_MAX_BYTES_CLAMP)]
    pub pull_max_bytes: u64,
    /// Sustained requests per second per device (0 disables rate limiting).
    #[arg(long, env = "WAYMARK_RATE_LIMIT", default_value_t = Limits::default().rate_per_second)]
    pub rate_limit: f64,
    /// Requests a device may burst above the sustained rate.
    #[arg(long, env = "WAYMARK_RATE_BURST", default_value_t = Limits::default().rate_burst)]
    pub rate_burst: u32,
    /// Longest time spent on one request, body upload included (e.g. 60s); 408 above.
    #[arg(long, env = "WAYMARK_REQUEST_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Longest wait for a complete request header (e.g. 10s), from the connection's start and,
    /// on a kept-alive connection, from the previous answer; the connection is closed after.
    #[arg(long, env = "WAYMARK_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,
    /// Most client connections open at once; more are closed at once.
    #[arg(long, env = "WAYMARK_MAX_CONNECTIONS", default_value_t = connections::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Most connections open at once from one client address (0: no cap); trusted proxies are
    /// exempt.
    #[arg(long, env = "WAYMARK_MAX_CONNECTIONS_PER_ADDRESS",
          default_value_t = connections::DEFAULT_MAX_CONNECTIONS_PER_ADDRESS)]
    pub max_connections_per_address: usize,
    /// Reverse proxies (addresses or networks, comma-separated; `none` for none) whose
    /// X-Forwarded-For names the client for the per-address rate limits, and whose connections
    /// are not capped per address.
    #[arg(long, env = "WAYMARK_TRUSTED_PROXIES", default_value = "127.0.0.1,::1",
          value_parser = TrustedProxies::parse)]
    pub trusted_proxies: TrustedProxies,
    /// Sustained enrollments per second per client address (0 disables the limit); 429 above.
    #[arg(long, env = "WAYMARK_ENROLL_RATE_LIMIT", default_value_t = Limits::default().enroll_rate_per_second)]
    pub enroll_rate_limit: f64,
    /// Enrollments a client address may burst above the sustained rate.
    #[arg(long, env = "WAYMARK_ENROLL_RATE_BURST", default_value_t = Limits::default().enroll_rate_burst)]
    pub enroll_rate_burst: u32,
    /// Sustained failed authentications (401s) per second per client address (0 disables the
    /// limit); above it, the address's requests are answered 429 until it refills.
    #[arg(long, env = "WAYMARK_FAILED_AUTH_RATE_LIMIT",
          default_value_t = Limits::default().failed_auth_rate_per_second)]
    pub failed_auth_rate_limit: f64,
    /// Failed authentications a client address may burst above the sustained rate.
    #[arg(long, env = "WAYMARK_FAILED_AUTH_BURST", default_value_t = Limits::default().failed_auth_burst)]
    pub failed_auth_burst: u32,
    /// Run compaction every hour with this grace period (e.g. 7d); off when absent.
    #[arg(long, env = "WAYMARK_AUTO_COMPACT_GRACE", value_parser = parse_duration)]
    pub auto_compact_grace: Option<Duration>,
    /// How long past its deadline a safety check-in still open becomes overdue: teammates see it
    /// so, and the alert runs (e.g. 10m, 1s).
    #[arg(long, env = "WAYMARK_CHECK_IN_GRACE", default_value = "10m", value_parser = parse_duration)]
    pub check_in_grace: Duration,
    /// Command run for each check-in alert (overdue, alarm), as
    /// `sh -c '<command> "$@"' waymark-alert <workspace id> <device name> <minutes overdue>`
    /// with WAYMARK_ALERT_KIND (overdue or alarm) and WAYMARK_CHECK_IN (hex id) set; exit 0
    /// means delivered, anything else is retried a minute later; killed after 30 s. Without it,
    /// alerts are only logged.
    #[arg(long, env = "WAYMARK_ALERT_COMMAND")]
    pub alert_command: Option<String>,
    /// The server's address as tipsters reach it (e.g. https://tips.example.org): tip pages
    /// post there, also when saved as a file or copied to another website. Without it, each
    /// page posts to the address it was requested at (https when a trusted proxy says so).
    #[arg(long, env = "WAYMARK_PUBLIC_URL", value_parser = parse_public_url)]
    pub public_url: Option<String>,
    /// Sustained requests per second to the public tip routes per client address (0 disables
    /// the limit); 429 above.
    #[arg(long, env = "WAYMARK_TIP_RATE_LIMIT", default_value_t = Limits::default().tip_rate_per_second)]
    pub tip_rate_limit: f64,
    /// Requests to the public tip routes a client address may burst above the sustained rate.
    #[arg(long, env = "WAYMARK_TIP_RATE_BURST", default_value_t = Limits::default().tip_rate_burst)]
    pub tip_rate_burst: u32,
    /// Sustained tips per second to one tip page, from all addresses (0 disables the limit);
    /// 429 above.
    #[arg(long, env = "WAYMARK_TIP_PAGE_RATE_LIMIT",
          default_value_t = Limits::default().tip_page_rate_per_second)]
    pub tip_page_rate_limit: f64,
    /// Tips one page may take in a burst above the sustained rate.
    #[arg(long, env = "WAYMARK_TIP_PAGE_RATE_BURST", default_value_t = Limits::default().tip_page_rate_burst)]
    pub tip_page_rate_burst: u32,
    /// Log format (logs go to stderr; filter with RUST_LOG, default "info").
    #[arg(long, env = "WAYMARK_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Storage failed (including "not found").
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// An I/O error.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Metrics could not be set up.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// JSON output failed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// Invalid arguments beyond what the parser checks.
    #[error("{0}")]
    Usage(String),
}

/// Entry point of the binary: parses arguments, runs the command, maps errors to exit code 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<(), CliError> {
    let out = Output { json: cli.json };
    let db = Db {
        data_dir: cli.data_dir,
        database: cli.database,
        pool_size: cli.database_pool_size,
    };
    match cli.command {
        Command::Serve(args) => serve(&db, *args),
        Command::Workspace(WorkspaceCommand::Create { name }) => {
            let storage = open_existing_or_new(&db)?;
            let workspace = storage.create_workspace(name.as_deref(), tokens::now())?;
            out.emit(&workspace, || format!("{}\n", workspace.id))
        }
        Command::Token(TokenCommand::Issue {
            workspace,
            ttl,
            role,
        }) => {
            let storage = open_existing_or_new(&db)?;
            if ttl.is_zero() {
                return Err(CliError::Usage("--ttl must be positive".into()));
            }
            let token = tokens::new_token();
            let now = tokens::now();
            let expires_at = now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX));
            storage.issue_enrollment_token(
                &workspace,
                &tokens::hash_token(&token),
                expires_at,
                None,
                &role,
                now,
            )?;
            #[derive(Serialize)]
            struct Issued<'a> {
                token: &'a str,
                workspace_id: &'a str,
                expires_at: i64,
                role: &'a str,
            }
            let issued = Issued {
                token: &token,
                workspace_id: &workspace,
                expires_at,
                role: &role,
            };
            out.emit(&issued, || {
                format!(
                    "enrollment token: {token}\nworkspace:        {workspace}\nexpires at:       {}\n\
                     role:             {role}\n\
                     It works once. Pass it to the device in person; it cannot be shown again.\n",
                    format_time(expires_at)
                )
            })
        }
        Command::Devices(DevicesCommand::List { workspace }) => {
            let storage = open_existing_or_new(&db)?;
            let devices = storage.list_devices(workspace.as_deref())?;
            out.emit(&devices, || {
                table(
                    &[
                        "DEVICE",
                        "NAME",
                        "WORKSPACE",
                        "ROLE",
                        "ENROLLED",
                        "LAST SYNC",
                        "BLOBS",
                        "BYTES",
                        "REVOKED",
                        "REVOKED AT SEQ",
                    ],
                    devices
                        .iter()
                        .map(|d| {
                            vec![
                                d.id.clone(),
                                d.name.clone(),
                                d.workspace_id.clone(),
                                d.role.clone(),
                                format_time(d.enrolled_at),
                                d.last_sync_at.map_or("never".into(), format_time),
                                d.blobs_stored.to_string(),
                                format_bytes(d.bytes_stored),
                                d.revoked_at.map_or("no".into(), format_time),
                                d.revoked_at_seq.map_or("-".into(), |seq| seq.to_string()),
                            ]
                        })
                        .collect(),
                )
            })
        }
        Command::Devices(DevicesCommand::Revoke { device_id }) => {
            let storage = open_existing_or_new(&db)?;
            let revoked_at_seq = storage.revoke_device(&device_id, tokens::now())?;
            let answer = serde_json::json!({
                "revoked": device_id,
                "revoked_at_seq": revoked_at_seq,
            });
            out.emit(&answer, || {
                format!(
                    "revoked device {device_id}: its token is refused from now on; blobs it \
                     signed after seq {revoked_at_seq} are not its own.\n\
                     Rotate the workspace key from a coordinator's device so it cannot read new data.\n"
                )
            })
        }
        Command::Usage => {
            let storage = open_existing_or_new(&db)?;
            let usage = storage.usage()?;
            out.emit(&usage, || {
                table(
                    &[
                        "WORKSPACE",
                        "NAME",
                        "DEVICES",
                        "REVOKED",
                        "BLOBS",
                        "BYTES",
                        "HEAD SEQ",
                    ],
                    usage
                        .iter()
                        .map(|u| {
                            vec![
                                u.id.clone(),
                                u.name.clone().unwrap_or_default(),
                                u.active_devices.to_string(),
                                u.revoked_devices.to_string(),
                                u.blobs.to_string(),
                                format_bytes(u.bytes),
                                u.head_seq.to_string(),
                            ]
                        })
                        .collect(),
                )
            })
        }
        Command::Compact { grace } => {
            let storage = open_existing_or_new(&db)?;
            let before = compact_cutoff(grace);
            let report = storage.compact(before)?;
            out.emit(&report, || {
                format!(
                    "dropped {} superseded blobs ({}) superseded before {}\n",
                    report.blobs_dropped,
                    format_bytes(report.bytes_dropped),
                    format_time(before)
                )
            })
        }
        Command::Backup { to } => {
            if db.database.is_some() {
                return Err(CliError::Usage(
                    "backup copies the SQLite database; back up PostgreSQL with pg_dump \
                     (e.g. `pg_dump --format=custom --file=waymark.dump DATABASE_URL`)"
                        .into(),
                ));
            }
            prepare_data_dir(&db.data_dir, &warn_on_stderr)?;
            let storage = SqliteStorage::open_in_dir(&db.data_dir)?;
            storage.backup_to(&to)?;
            out.emit(&serde_json::json!({ "backup": to }), || {
                format!("backup written to {}\n", to.display())
            })
        }
        Command::Restore { from } => {
            if db.database.is_some() {
                return Err(CliError::Usage(
                    "restore puts back an SQLite backup; restore PostgreSQL with pg_restore \
                     (e.g. `pg_restore --clean --dbname DATABASE_URL waymark.dump`)"
                        .into(),
                ));
            }
            prepare_data_dir(&db.data_dir, &warn_on_stderr)?;
            let kept = SqliteStorage::restore_from(&db.data_dir, &from)?;
            // Migrated now, so that a backup made by an older server is ready to serve.
            SqliteStorage::open_in_dir(&db.data_dir)?;
            out.emit(
                &serde_json::json!({ "restored": from, "replaced_kept_at": kept }),
                || {
                    format!(
                        "restored {}; the database it replaced is kept at {}\n",
                        from.display(),
                        kept.display()
                    )
                },
            )
        }
    }
}

/// Which database the command works on.
struct Db {
    data_dir: PathBuf,
    database: Option<String>,
    pool_size: usize,
}

/// Where the data lives, as `serve` prints it.
enum Location {
    Sqlite { data_dir: PathBuf, file: PathBuf },
    Postgres(String),
}

/// Creates the data directory 0700 and the database 0600 (or tightens them); `warn` is told what
/// was changed or could not be.
fn prepare_data_dir(data_dir: &std::path::Path, warn: &dyn Fn(&str)) -> Result<(), CliError> {
    let notes = crate::files::prepare_data_dir(data_dir, crate::storage::sqlite::DATABASE_FILE)
        .map_err(|source| StorageError::Io {
            context: format!("creating data directory {}", data_dir.display()),
            source,
        })?;
    for note in notes {
        warn(&note);
    }
    Ok(())
}

fn warn_on_stderr(message: &str) {
    eprintln!("warning: {message}");
}

fn open_storage(cli: &Db, warn: &dyn Fn(&str)) -> Result<(Arc<dyn Storage>, Location), CliError> {
    match &cli.database {
        Some(url) if is_postgres_url(url) => {
            let storage = PostgresStorage::open_with_pool(url, cli.pool_size)?;
            let location = Location::Postgres(storage.description().to_owned());
            Ok((Arc::new(storage), location))
        }
        Some(other) => Err(CliError::Usage(format!(
            "--database takes a postgres:// URL, not {:?}; leave it out to use SQLite in \
             --data-dir",
            other.split_once("://").map_or("", |(scheme, _)| scheme)
        ))),
        None => {
            prepare_data_dir(&cli.data_dir, warn)?;
            let storage = SqliteStorage::open_in_dir(&cli.data_dir)?;
            let location = Location::Sqlite {
                data_dir: std::path::absolute(&cli.data_dir)?,
                file: std::path::absolute(storage.path())?,
            };
            Ok((Arc::new(storage), location))
        }
    }
}

fn open_existing_or_new(cli: &Db) -> Result<Arc<dyn Storage>, CliError> {
    Ok(open_storage(cli, &warn_on_stderr)?.0)
}

fn compact_cutoff(grace: Duration) -> i64 {
    tokens::now().saturating_sub(i64::try_from(grace.as_secs()).unwrap_or(i64::MAX))
}

struct Output {
    json: bool,
}

impl Output {
    fn emit<T: Serialize>(
        &self,
        value: &T,
        human: impl FnOnce() -> String,
    ) -> Result<(), CliError> {
        let mut stdout = std::io::stdout().lock();
        if self.json {
            serde_json::to_writer_pretty(&mut stdout, value)?;
            writeln!(stdout)?;
        } else {
            stdout.write_all(human().as_bytes())?;
        }
        stdout.flush()?;
        Ok(())
    }
}

fn serve(cli: &Db, args: ServeArgs) -> Result<(), CliError> {
    init_logging(args.log_format);
    if args.max_blob_bytes > args.max_body_bytes {
        return Err(CliError::Usage(
            "--max-blob-bytes must not exceed --max-body-bytes".into(),
        ));
    }
    // An empty command would make `sh` run the workspace id as one.
    if args
        .alert_command
        .as_ref()
        .is_some_and(|c| c.trim().is_empty())
    {
        return Err(CliError::Usage(
            "--alert-command must not be empty (leave it out to only log alerts)".into(),
        ));
    }
    let limits = Limits {
        max_body_bytes: args.max_body_bytes,
        max_blob_bytes: args.max_blob_bytes,
        max_batch_blobs: args.max_batch_blobs.max(1),
        pull_default_bytes: args.pull_default_bytes.min(args.pull_max_bytes),
        pull_max_bytes: args.pull_max_bytes,
        rate_per_second: args.rate_limit,
        rate_burst: args.rate_burst.max(1),
        request_timeout: args.request_timeout.max(Duration::from_secs(1)),
        enroll_rate_per_second: args.enroll_rate_limit,
        enroll_rate_burst: args.enroll_rate_burst.max(1),
        failed_auth_rate_per_second: args.failed_auth_rate_limit,
        failed_auth_burst: args.failed_auth_burst.max(1),
        trusted_proxies: args.trusted_proxies.clone(),
        check_in_grace: args.check_in_grace,
        tip_rate_per_second: args.tip_rate_limit,
        tip_rate_burst: args.tip_rate_burst.max(1),
        tip_page_rate_per_second: args.tip_page_rate_limit,
        tip_page_rate_burst: args.tip_page_rate_burst.max(1),
        max_waiting_tips: limits::MAX_WAITING_TIPS,
        public_url: args.public_url.clone(),
    };
    let header_read_timeout = args.header_read_timeout.max(Duration::from_secs(1));
    // Client sockets beside the database's own files (and PostgreSQL's pool).
    let reserved = connections::RESERVED_FILES
        + if cli.database.is_some() {
            u64::try_from(cli.pool_size).unwrap_or(u64::MAX)
        } else {
            0
        };
    let (max_connections, open_file_warning) =
        connections::fit_open_file_limit(args.max_connections.max(1), reserved);
    if let Some(warning) = open_file_warning {
        tracing::warn!("{warning}");
    }
    let connection_limits = ConnectionLimits {
        header_read_timeout,
        max_connections,
        max_connections_per_address: args.max_connections_per_address,
        trusted_proxies: args.trusted_proxies,
        // Long enough for any request in flight to finish or time out.
        shutdown_grace: limits.request_timeout + header_read_timeout,
    };
    let (storage, location) = open_storage(cli, &|note| tracing::warn!("{note}"))?;
    let where_ = match &location {
        Location::Sqlite { data_dir, .. } => data_dir.display().to_string(),
        Location::Postgres(description) => description.clone(),
    };
    let state = AppState::new(Arc::clone(&storage), limits.clone())?;
    let metrics = state.metrics().clone();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = connections::listen(args.listen)?;
        let addr = listener.local_addr()?;
        {
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "listening on http://{addr}")?;
            match &location {
                Location::Sqlite { data_dir, file } => {
                    writeln!(stdout, "data directory: {}", data_dir.display())?;
                    writeln!(stdout, "database: {}", file.display())?;
                }
                Location::Postgres(description) => {
                    writeln!(stdout, "storage: postgresql")?;
                    writeln!(stdout, "database: {description}")?;
                }
            }
            stdout.flush()?;
        }
        if !addr.ip().is_loopback() {
            tracing::warn!(
                %addr,
                "serving plain HTTP on a non-loopback address: put a TLS reverse proxy in front"
            );
        }
        // Whether a hook is set, never the command: it may carry a webhook's secret.
        tracing::info!(%addr, database = %where_, ?limits, ?connection_limits,
            alert_hook = args.alert_command.is_some(), "waymark-server started");
        tokio::spawn(crate::check_ins::watch(
            Arc::clone(&storage),
            crate::check_ins::WatcherOptions {
                grace: args.check_in_grace,
                alert_command: args.alert_command,
            },
        ));
        if let Some(grace) = args.auto_compact_grace {
            tokio::spawn(auto_compact(storage, grace));
        }
        connections::serve(
            listener,
            app(state),
            connection_limits,
            metrics,
            shutdown_signal(),
        )
        .await;
        tracing::info!("waymark-server stopped");
        Ok(())
    })
}

async fn auto_compact(storage: Arc<dyn Storage>, grace: Duration) {
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    loop {
        every.tick().await;
        let storage = Arc::clone(&storage);
        let before = compact_cutoff(grace);
        match tokio::task::spawn_blocking(move || storage.compact(before)).await {
            Ok(Ok(report)) => tracing::info!(
                blobs_dropped = report.blobs_dropped,
                bytes_dropped = report.bytes_dropped,
                "compaction"
            ),
            Ok(Err(err)) => tracing::error!(error = %err, "compaction failed"),
            Err(err) => tracing::error!(error = %err, "compaction task failed"),
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Pretty => builder.pretty().try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    if let Err(err) = result {
        eprintln!("warning: logging not initialised: {err}");
    }
}

/// Parses `--public-url`: an absolute `http://` or `https://` URL of a host (and port, and path
/// prefix if a proxy serves the server under one), without query or fragment; a trailing slash
/// is dropped.
pub fn parse_public_url(text: &str) -> Result<String, String> {
    let url = text.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{text:?} must start with https:// (or http://)"))?;
    let host = rest.split('/').next().unwrap_or("");
    let fine = |b: u8| b.is_ascii_alphanumeric() || b"-._~/:[]%".contains(&b);
    if host.is_empty() || !rest.bytes().all(fine) {
        return Err(format!(
            "{text:?} is not a URL like https://tips.example.org (no query, fragment or spaces)"
        ));
    }
    Ok(url.to_owned())
}

/// Parses a duration such as `90s`, `15m`, `24h`, `7d`, `2w`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("expected a duration like 30m, 24h or 7d, got {text:?}"))?;
    let unit_secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {text:?}; use s, m, h, d or w"
            ));
        }
    };
    number
        .checked_mul(unit_secs)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("duration {text:?} is too long"))
}

fn format_time(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = "B";
    for next in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    format!("{value:.1} {unit}")
}

fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    if rows.is_empty() {
        return "(none)\n".to_owned();
    }
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(padded.join("  ").trim_end());
        out.push('\n');
    };
    line(headers.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        line(row);
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(604_800));
        assert_eq!(parse_duration("1s").unwrap(), Duration::from_secs(1));
        assert!(parse_duration("7y").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("99999999999999999999w").is_err());
    }

    #[test]
    fn public_urls_are_absolute_and_lose_a_trailing_slash() {
        assert_eq!(
            parse_public_url("https://tips.example.org/").unwrap(),
            "https://tips.example.org"
        );
        assert_eq!(
            parse_public_url("http://10.0.0.5:8080/waymark").unwrap(),
            "http://10.0.0.5:8080/waymark"
        );
        for bad in [
            "tips.example.org",
            "ftp://x",
            "https://",
            "https://x/?a=1",
            "https://x/#f",
            "https://x y",
            "https://x\"\u{3c}",
        ] {
            assert!(parse_public_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tables_align_columns() {
        let text = table(
            &["A", "LONG"],
            vec![
                vec!["xyz".into(), "1".into()],
                vec!["q".into(), "22".into()],
            ],
        );
        assert_eq!(text, "A    LONG\nxyz  1\nq    22\n");
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
    }

    #[test]
    fn every_command_has_help() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
