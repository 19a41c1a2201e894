//! Databases as earlier releases left them, for the upgrade tests. A database at schema N is
//! made by the first N of the backend's own migration scripts (the runner's `MIGRATIONS`, so a
//! script edited after its release shows up here), with the version recorded the way the
//! runner records it: `PRAGMA user_version` for SQLite, one `waymark_schema` row per script for
//! PostgreSQL. The test then writes what that release stored, in plain SQL of that schema, and
//! opens the database with the current code, which migrates it.
//!
//! [`backend_tests!`](super::backend_tests)`(old: name)` runs `fn name(old: Old)` once per
//! backend, as for the other suites.

use std::path::PathBuf;

use waymark_server::storage::{StorageResult, postgres as pg, sqlite};
use waymark_server::{PostgresStorage, SqliteStorage, Storage};

use super::{SchemaGuard, fresh_schema, postgres_url};

/// Which backend an upgrade test builds its old database for.
#[derive(Debug, Clone, Copy)]
pub enum Old {
    Sqlite,
    Postgres,
}

/// Old SQLite files.
pub fn sqlite() -> Old {
    Old::Sqlite
}

/// Old PostgreSQL databases (each in a fresh schema of the test database).
pub fn postgres() -> Old {
    Old::Postgres
}

impl Old {
    /// A database at schema `version`, with no rows yet.
    pub fn at(self, version: usize) -> OldDatabase {
        let builder = match self {
            Old::Sqlite => Builder::sqlite(version),
            Old::Postgres => Builder::postgres(version),
        };
        OldDatabase {
            version,
            builder: Some(builder),
        }
    }
}

/// A database an earlier release made, being filled in, then opened with the current code.
pub struct OldDatabase {
    version: usize,
    builder: Option<Builder>,
}

// One per test and never moved around: the larger variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
enum Builder {
    Sqlite {
        _dir: tempfile::TempDir,
        path: PathBuf,
        conn: Option<rusqlite::Connection>,
    },
    Postgres {
        url: String,
        guard: SchemaGuard,
        client: Option<postgres::Client>,
    },
}

impl Builder {
    fn sqlite(version: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite3");
        let mut conn = rusqlite::Connection::open(&path).unwrap();
        // As `SqliteStorage::open` leaves every file: foreign keys checked, write-ahead log.
        conn.pragma_update(None, "foreign_keys", true).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        let tx = conn.transaction().unwrap();
        for script in &sqlite::MIGRATIONS[..version] {
            tx.execute_batch(script).unwrap();
        }
        tx.pragma_update(None, "user_version", i64::try_from(version).unwrap())
            .unwrap();
        tx.commit().unwrap();
        Builder::Sqlite {
            _dir: dir,
            path,
            conn: Some(conn),
        }
    }

    fn postgres(version: usize) -> Self {
        let url = postgres_url();
        let guard = SchemaGuard {
            url: url.clone(),
            schema: fresh_schema(),
        };
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        // For the whole session: the test's plain SQL goes to the same schema.
        client
            .batch_execute(&format!(
                "CREATE SCHEMA {0}; SET search_path = {0};",
                guard.schema
            ))
            .unwrap();
        let mut tx = client.transaction().unwrap();
        // The runner's own table, one row per script applied.
        tx.batch_execute(
            "CREATE TABLE waymark_schema (
                 version     BIGINT PRIMARY KEY,
                 applied_at  BIGINT NOT NULL
             )",
        )
        .unwrap();
        for (number, script) in (1i64..).zip(&pg::MIGRATIONS[..version]) {
            tx.batch_execute(script).unwrap();
            tx.execute(
                "INSERT INTO waymark_schema (version, applied_at) VALUES ($1, 0)",
                &[&number],
            )
            .unwrap();
        }
        tx.commit().unwrap();
        Builder::Postgres {
            url,
            guard,
            client: Some(client),
        }
    }
}

impl OldDatabase {
    /// The schema version it was made at.
    pub fn version(&self) -> usize {
        self.version
    }

    fn builder(&mut self) -> &mut Builder {
        self.builder.as_mut().unwrap()
    }

    /// `bytes` as an SQL literal of this backend.
    pub fn bytes(&self, bytes: &[u8]) -> String {
        match self.builder.as_ref().unwrap() {
            Builder::Sqlite { .. } => format!("X'{}'", hex::encode(bytes)),
            Builder::Postgres { .. } => format!("'\\x{}'::bytea", hex::encode(bytes)),
        }
    }

    /// Runs `sql`, statements of the old schema, in one transaction: what the old release wrote.
    pub fn execute(&mut self, sql: &str) {
        match self.builder() {
            Builder::Sqlite { conn, .. } => {
                let tx = conn.as_mut().unwrap().transaction().unwrap();
                tx.execute_batch(sql).unwrap();
                tx.commit().unwrap();
            }
            Builder::Postgres { client, .. } => {
                let mut tx = client.as_mut().unwrap().transaction().unwrap();
                tx.batch_execute(sql).unwrap();
                tx.commit().unwrap();
            }
        }
    }

    /// Opens it with the current code, which migrates it. The connection that filled it in is
    /// closed first; the database lives as long as `self`.
    pub fn open(&mut self) -> StorageResult<Box<dyn Storage>> {
        match self.builder() {
            Builder::Sqlite { path, conn, .. } => {
                drop(conn.take());
                Ok(Box::new(SqliteStorage::open(path)?))
            }
            Builder::Postgres {
                url, guard, client, ..
            } => {
                if let Some(mut client) = client.take() {
                    follow_serial_sequences(&mut client);
                }
                Ok(Box::new(PostgresStorage::open_in_schema(
                    url,
                    &guard.schema,
                )?))
            }
        }
    }

    /// The newest schema version the current code writes to this backend.
    pub fn latest_version(&self) -> i64 {
        match self.builder.as_ref().unwrap() {
            Builder::Sqlite { .. } => sqlite::SCHEMA_VERSION,
            Builder::Postgres { .. } => pg::SCHEMA_VERSION,
        }
    }

    /// The schema version recorded in it now, as the runner reads it.
    pub fn recorded_version(&mut self) -> i64 {
        match self.builder() {
            Builder::Sqlite { path, .. } => rusqlite::Connection::open(path)
                .unwrap()
                .query_row("PRAGMA user_version", [], |row| row.get(0))
                .unwrap(),
            Builder::Postgres { url, guard, .. } => postgres::Client::connect(url, postgres::NoTls)
                .unwrap()
                .query_one(
                    &format!("SELECT max(version) FROM {}.waymark_schema", guard.schema),
                    &[],
                )
                .unwrap()
                .get(0),
        }
    }
}

/// Moves every `BIGSERIAL` sequence of the schema past the ids in its table: the fixtures give
/// row ids explicitly, where the old release let the column default draw them (and so moved
/// the sequence), and the current code inserts through that default.
fn follow_serial_sequences(client: &mut postgres::Client) {
    let serials = client
        .query(
            "SELECT table_name::text, column_name::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND column_default LIKE 'nextval(%'",
            &[],
        )
        .unwrap();
    for row in serials {
        let (table, column): (String, String) = (row.get(0), row.get(1));
        client
            .batch_execute(&format!(
                "SELECT setval(pg_get_serial_sequence('{table}', '{column}'),
                               coalesce(max({column}), 0) + 1, false) FROM {table}"
            ))
            .unwrap();
    }
}
