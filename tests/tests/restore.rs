//! An operator restores the server from a backup (issue 13): the SQLite file put back as the
//! README says, or a PostgreSQL database restored with `pg_restore`. Phones that synced after
//! the backup notice that the server's log was rewound, send again what it lost, and pull from
//! where the two logs still agree: afterwards every phone, and a phone that joins later, has
//! every record. A phone the restored server no longer knows gets a typed error and keeps what
//! it has not sent.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;
use waymark_core::*;

/// Where a test server keeps its data, and how the operator backs it up and restores it.
enum Backend {
    Sqlite {
        dir: tempfile::TempDir,
    },
    Postgres {
        url: String,
        schema: String,
        dir: tempfile::TempDir,
    },
}

impl Backend {
    fn sqlite() -> Backend {
        Backend::Sqlite {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A fresh schema in the test database (`WAYMARK_TEST_POSTGRES_URL`).
    fn postgres() -> Backend {
        let base = std::env::var("WAYMARK_TEST_POSTGRES_URL").expect(
            "WAYMARK_TEST_POSTGRES_URL is not set: run `eval \"$(sync-server/scripts/start-postgres.sh)\"` first",
        );
        let schema = format!("restore_{}", hex::encode(rand::random::<[u8; 6]>()));
        psql(&base, &format!("CREATE SCHEMA {schema}"));
        Backend::Postgres {
            url: base,
            schema,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn data(&self) -> &Path {
        match self {
            Backend::Sqlite { dir } | Backend::Postgres { dir, .. } => dir.path(),
        }
    }

    fn start(&self) -> Server {
        match self {
            Backend::Sqlite { dir } => Server::start(dir.path()),
            Backend::Postgres { url, schema, dir } => {
                Server::start_postgres(dir.path(), &schema_url(url, schema))
            }
        }
    }

    /// Takes a backup the way the README tells the operator to; returns where it is.
    fn backup(&self, server: &Server) -> PathBuf {
        let to = self.data().join("backup");
        match self {
            Backend::Sqlite { .. } => {
                server.admin(&["backup", "--to", to.to_str().unwrap()]);
            }
            Backend::Postgres { url, schema, .. } => {
                run(Command::new("pg_dump")
                    .args(["-Fc", "-n", schema, "-f"])
                    .arg(&to)
                    .arg(url));
            }
        }
        to
    }

    /// Stops `server`, puts the backup back as the README says, and starts the server again
    /// at the same address.
    fn restore(&self, server: &mut Server, backup: &Path) {
        server.kill();
        match self {
            Backend::Sqlite { dir } => {
                run(Command::new(support::BIN)
                    .arg("--data-dir")
                    .arg(dir.path())
                    .args(["restore", "--from"])
                    .arg(backup));
            }
            Backend::Postgres { url, schema, .. } => {
                psql(url, &format!("DROP SCHEMA {schema} CASCADE"));
                run(Command::new("pg_restore").args(["-d", url]).arg(backup));
            }
        }
        server.restart();
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Backend::Postgres { url, schema, .. } = self {
            let _ = Command::new("psql")
                .args([
                    "-q",
                    "-c",
                    &format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
                    url,
                ])
                .output();
        }
    }
}

fn schema_url(url: &str, schema: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}options=-c%20search_path%3D{schema}")
}

fn psql(url: &str, sql: &str) {
    run(Command::new("psql").args(["-q", "-v", "ON_ERROR_STOP=1", "-c", sql, url]));
}

fn run(command: &mut Command) {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Notes of every visit a device holds, sorted.
fn notes(d: &Device) -> Vec<String> {
    let mut out: Vec<String> = d
        .store
        .list_visits(&VisitFilter::default())
        .unwrap()
        .iter()
        .map(|v| d.store.get_visit(&v.id).unwrap().notes)
        .collect();
    out.sort();
    out
}

/// The operator's scenario: two phones synced, a backup, a phone records and syncs, the backup
/// is put back, the other phone records and syncs; then everyone syncs and a new phone joins.
fn a_restore_loses_nothing(backend: Backend) {
    let mut server = backend.start();
    let (_, token) = server.workspace_and_token();
    let (devices, ws) = team(&server.url(), &token, &["Coordinator", "Amina", "Ben"]);
    let [coordinator, amina, ben] = &devices[..] else {
        unreachable!()
    };
    let shared = amina
        .store
        .create_visit(&ws, &visit("Bus station", "before the backup", NOV_1))
        .unwrap();
    for d in [amina, ben, coordinator] {
        d.sync_until_ok();
    }
    let backup = backend.backup(&server);

    // After the backup: Amina records a visit and edits the one everybody has, and syncs.
    amina
        .store
        .create_visit(&ws, &visit("Market", "after the backup", NOV_1 + 1))
        .unwrap();
    amina
        .store
        .set_visit_notes(&shared, "before the backup, edited after it")
        .unwrap();
    assert_eq!(amina.sync_until_ok().pushed, 2);
    assert_eq!(amina.store.pending_changes(&ws).unwrap(), 0);

    backend.restore(&mut server, &backup);

    // Ben's visit takes a number Amina's cursor has already passed.
    ben.store
        .create_visit(&ws, &visit("Harbour", "after the restore", NOV_1 + 2))
        .unwrap();
    ben.sync_until_ok();

    let report = amina.sync_until_ok();
    assert!(report.resent >= 2, "{report:?}");
    let alerts = amina.store.team_status(&ws).unwrap().alerts;
    assert!(
        alerts.iter().any(|a| a.kind == AlertKind::Rewound),
        "{alerts:?}"
    );
    for d in [ben, coordinator] {
        d.sync_until_ok();
    }

    // A phone that joins now learns everything from the server alone.
    let newcomer = Device::new("Chidi");
    let code = coordinator.store.create_invite(&ws, 3600).unwrap();
    newcomer.store.join(&code).unwrap();
    newcomer.sync_until_ok();
    coordinator.sync_until_ok();
    newcomer.sync_until_ok();

    let expected = vec![
        "after the backup".to_string(),
        "after the restore".to_string(),
        "before the backup, edited after it".to_string(),
    ];
    for d in [amina, ben, coordinator] {
        d.sync_until_ok();
    }
    for d in [coordinator, amina, ben, &newcomer] {
        assert_eq!(notes(d), expected, "{}", d.store.device_name().unwrap());
    }
    assert_converged(&devices);
    drop(server);
}

#[test]
fn a_restore_from_a_sqlite_backup_loses_nothing() {
    a_restore_loses_nothing(Backend::sqlite());
}

#[test]
fn a_restore_from_a_postgres_dump_loses_nothing() {
    a_restore_loses_nothing(Backend::postgres());
}

/// A phone that enrolled after the backup is unknown to the restored server: its sync fails
/// with `DeviceUnknown` every time, and nothing it recorded is deleted; a revoked phone gets
/// `DeviceRevoked`.
#[test]
fn a_phone_the_restored_server_does_not_know_keeps_its_outbox() {
    let backend = Backend::sqlite();
    let mut server = backend.start();
    let (_, token) = server.workspace_and_token();
    let (devices, ws) = team(&server.url(), &token, &["Coordinator", "Amina"]);
    let backup = backend.backup(&server);

    let late = Device::new("Dara");
    let code = devices[0].store.create_invite(&ws, 3600).unwrap();
    late.store.join(&code).unwrap();
    late.sync_until_ok();
    devices[0].sync_until_ok();
    late.sync_until_ok();

    backend.restore(&mut server, &backup);
    late.store
        .create_visit(
            &ws,
            &visit("Clinic", "recorded by a phone the server forgot", NOV_1),
        )
        .unwrap();
    let pending = late.store.pending_changes(&ws).unwrap();
    assert!(pending > 0);
    for _ in 0..2 {
        assert!(matches!(late.store.sync(), Err(Error::DeviceUnknown)));
        assert_eq!(late.store.pending_changes(&ws).unwrap(), pending);
    }
    assert_eq!(notes(&late), vec!["recorded by a phone the server forgot"]);

    // The others go on syncing with the restored server.
    devices[1]
        .store
        .create_visit(&ws, &visit("Depot", "still syncing", NOV_1))
        .unwrap();
    devices[1].sync_until_ok();
    devices[0].sync_until_ok();
    assert_eq!(notes(&devices[0]), vec!["still syncing"]);

    // A revocation is still told apart.
    devices[0]
        .store
        .revoke_device(&ws, &id_of(&devices[0], &ws, "Amina"))
        .unwrap();
    assert!(matches!(devices[1].store.sync(), Err(Error::DeviceRevoked)));
}

/// A backup taken before an erase brings the erased record's blobs back onto the server. The
/// coordinator's phone that erased it notices the rewind at its next sync and sends the rewrite
/// again, which drops them once more; a phone that pulled them meanwhile replaces its copy.
#[test]
fn a_restore_does_not_bring_an_erased_name_back_for_long() {
    const NAME: &str = "Zainab Okonkwo-Quadri";
    let backend = Backend::sqlite();
    let mut server = backend.start();
    let (_, token) = server.workspace_and_token();
    let (devices, ws) = team(&server.url(), &token, &["Coordinator", "Amina"]);
    let [coordinator, amina] = &devices[..] else {
        unreachable!()
    };
    let id = amina
        .store
        .create_visit(&ws, &visit("Bus station", &format!("Met {NAME}"), NOV_1))
        .unwrap();
    amina.sync_until_ok();
    coordinator.sync_until_ok();
    let backup = backend.backup(&server);
    coordinator.store.erase_record(&id).unwrap();
    coordinator.sync_until_ok();
    backend.restore(&mut server, &backup);

    let holds = |d: &Device| {
        let pages = waymark_e2e::pages::plaintext(&d.dir.path().join("waymark.db"), &d.key);
        contains(&pages.unwrap(), NAME)
    };
    let newcomer = Device::new("Chidi");
    newcomer
        .store
        .join(&coordinator.store.create_invite(&ws, 600).unwrap())
        .unwrap();
    newcomer.sync_until_ok();
    assert!(
        holds(&newcomer),
        "the restored server served the old record"
    );

    coordinator.sync_until_ok();
    newcomer.sync_until_ok();
    amina.sync_until_ok();
    for d in [coordinator, amina, &newcomer] {
        assert!(!holds(d), "{}", d.store.device_name().unwrap());
        assert!(d.store.get_visit(&id).unwrap().deleted);
    }
    let later = Device::new("Dara");
    later
        .store
        .join(&coordinator.store.create_invite(&ws, 600).unwrap())
        .unwrap();
    later.sync_until_ok();
    assert!(!holds(&later), "the server no longer serves it");
}
