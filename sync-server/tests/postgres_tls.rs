//! The server's connections to PostgreSQL: TLS chosen by `sslmode` (certificate verified against
//! `sslrootcert` or the Mozilla roots) and a bounded pool sized by `--database-pool-size`.
//!
//! Runs against the real test cluster of `sync-server/scripts/start-postgres.sh`, which has
//! ssl=on with a throwaway CA and a role, `waymark_tls`, that pg_hba refuses in plain text: a
//! connection as that role that works is an encrypted one. Needs `WAYMARK_TEST_POSTGRES_URL`
//! and `WAYMARK_TEST_POSTGRES_TLS_URL`; fails without them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use common::{SchemaGuard, fresh_schema, postgres_url};
use waymark_server::{PostgresStorage, Storage};

const BIN: &str = env!("CARGO_BIN_EXE_waymark-server");

fn tls_url() -> String {
    match std::env::var("WAYMARK_TEST_POSTGRES_TLS_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "WAYMARK_TEST_POSTGRES_TLS_URL is not set: run \
             `eval \"$(sync-server/scripts/start-postgres.sh)\"` first (scripts/test does)."
        ),
    }
}

/// A fresh schema (dropped at the end) and `url` pointed at it.
fn in_fresh_schema(url: &str) -> (String, SchemaGuard) {
    let admin_url = postgres_url();
    let schema = fresh_schema();
    let mut client = postgres::Client::connect(&admin_url, postgres::NoTls).unwrap();
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .unwrap();
    let separator = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{separator}options=-c%20search_path%3D{schema}");
    (
        url,
        SchemaGuard {
            url: admin_url,
            schema,
        },
    )
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().unwrap()
}

#[test]
fn admin_commands_reach_a_tls_only_database_with_sslmode_require() {
    let (url, _guard) = in_fresh_schema(&tls_url());
    let out = run(&[
        "--database",
        &url,
        "--database-pool-size",
        "2",
        "--json",
        "workspace",
        "create",
        "--name",
        "Over TLS",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let out = run(&["--database", &url, "--json", "usage"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let usage: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(usage[0]["id"], created["id"], "{usage}");

    // The same role in plain text is refused by the database: the success above was encrypted.
    let plain = url.replace("sslmode=require", "sslmode=disable");
    let out = run(&["--database", &plain, "usage"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no encryption"), "{err}");
}

#[test]
fn a_database_certificate_from_an_untrusted_issuer_is_refused_without_leaking_the_password() {
    // Without sslrootcert only the Mozilla roots are trusted, and the test CA is not one of them.
    let url = tls_url();
    let (base, _) = url.split_once('?').unwrap();
    let url = base.replace("waymark_tls@", "waymark_tls:hunter2@") + "?sslmode=require";
    let err = PostgresStorage::open(&url).err().unwrap().to_string();
    assert!(err.contains("certificate"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");

    let out = run(&["--database", &url, "usage"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("certificate") && !err.contains("hunter2"),
        "{err}"
    );
}

#[test]
fn the_pool_never_opens_more_connections_than_its_size() {
    let app = format!("pool_{}", fresh_schema());
    let (url, _guard) = in_fresh_schema(&format!("{}&application_name={app}", tls_url()));
    let storage = Arc::new(PostgresStorage::open_with_pool(&url, 2).unwrap());

    // Count this pool's connections as the database sees them while 8 threads write at once.
    let stop = Arc::new(AtomicBool::new(false));
    let most = Arc::new(AtomicI64::new(0));
    let watcher = {
        let (stop, most, app) = (stop.clone(), most.clone(), app.clone());
        std::thread::spawn(move || {
            let mut client = postgres::Client::connect(&postgres_url(), postgres::NoTls).unwrap();
            while !stop.load(Ordering::Relaxed) {
                let n: i64 = client
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                        &[&app],
                    )
                    .unwrap()
                    .get(0);
                most.fetch_max(n, Ordering::Relaxed);
            }
        })
    };
    std::thread::scope(|scope| {
        for t in 0..8 {
            let storage = &storage;
            scope.spawn(move || {
                for i in 0..25 {
                    storage
                        .create_workspace(Some(&format!("t{t} w{i}")), 1)
                        .unwrap();
                }
            });
        }
    });
    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    let most = most.load(Ordering::Relaxed);
    assert!((1..=2).contains(&most), "{most} connections open at once");
    assert_eq!(storage.usage().unwrap().len(), 200);
}

#[test]
fn the_pool_size_is_an_option_with_an_environment_variable_and_is_checked() {
    let help = run(&["--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--database-pool-size"), "{help}");
    assert!(help.contains("WAYMARK_DATABASE_POOL_SIZE"), "{help}");
    assert!(help.contains("sslmode=require"), "{help}");

    let out = run(&["--database-pool-size", "0", "usage"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--database-pool-size"));
}
