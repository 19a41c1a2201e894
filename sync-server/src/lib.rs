//! Waymark's sync server: a blind relay that keeps, per workspace, an append-only log of
//! encrypted blobs with gap-free sequence numbers, and serves it to the workspace's enrolled
//! devices. It never sees a plaintext byte and never links `waymark-core`.
//!
//! - [`api`]: the HTTP API ([`app`] builds the router; see `API.md`);
//! - [`storage`]: the backend-neutral storage trait and its SQLite and PostgreSQL implementations;
//! - [`cli`]: the `waymark-server` command line (serve and the operator commands);
//! - [`check_ins`]: the watcher that marks late check-ins overdue and runs the alert hook;
//! - [`tips`]: anonymous tips' page statements, page and submissions (their routes are in
//!   `api::tips`);
//! - [`connections`]: the accept loop, with connection caps and header timeouts;
//! - [`files`]: the data directory, database and backups, readable by their owner only.

pub mod api;
pub mod check_ins;
pub mod cli;
pub mod clients;
pub mod config;
pub mod connections;
pub mod files;
pub mod metrics;
pub mod ratelimit;
pub mod storage;
pub mod tips;
pub mod tokens;

pub use api::{AppState, app};
pub use config::Limits;
pub use storage::postgres::PostgresStorage;
pub use storage::sqlite::SqliteStorage;
pub use storage::{Storage, StorageError};
