//! Makes `tests/fixtures/pre-team-log/`: a server database and five device stores written by the
//! code from before the signed team log (store schema 5, server schema 2), so that the tests of
//! that change start from files the previous code made. Not to be re-run with newer code.
//!
//! `cargo run -p waymark-e2e --example make_pre_team_log_fixtures -- OUT` makes them in OUT
//! (absent, or holding only a README.md) and checks them; `-- --check OUT` only checks copies:
//! each store opens with its key and lists exactly the visits `manifest.json` says. The server
//! is this very program run again as `waymark-server` (so always the same build as the stores),
//! on the fixed address the stores remember.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use waymark_core::*;

const ADDR: &str = "127.0.0.1:47917";
/// Set in the environment of the copies of this program that are the server.
const AS_SERVER: &str = "WAYMARK_FIXTURE_AS_SERVER";
const STORE_SCHEMA: i64 = 5;
const SERVER_SCHEMA: i64 = 2;
/// 2026-11-01T09:00:00Z in ms.
const NOV_1: i64 = 1_793_523_600_000;
/// The devices; the store key of the n-th (from 1) is 32 bytes of n.
const NAMES: [&str; 5] = ["Coordinator", "Ana", "Ben", "Dan", "Eve"];

fn main() -> ExitCode {
    if std::env::var_os(AS_SERVER).is_some() {
        return waymark_server::cli::main();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    match &args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["--check", out] => check(Path::new(out)),
        [out] => {
            make(Path::new(out));
            check(Path::new(out));
        }
        _ => {
            eprintln!("usage: make_pre_team_log_fixtures [--check] OUT");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn server(data: &Path) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.env(AS_SERVER, "1").arg("--data-dir").arg(data);
    c
}

/// Runs an admin command of the server on `data` with `--json` and returns its output.
fn admin(data: &Path, args: &[&str]) -> Value {
    let out = server(data).arg("--json").args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {err}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The serving server process, killed if the program panics before stopping it.
struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn serve(data: &Path) -> Serving {
    let mut command = server(data);
    command
        .args(["serve", "--listen", ADDR])
        .stdout(Stdio::piped());
    let mut child = Serving(command.stderr(Stdio::null()).spawn().unwrap());
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let first = lines.next().and_then(Result::ok);
    let expected = format!("listening on http://{ADDR}");
    assert_eq!(first.as_deref(), Some(&*expected), "is {ADDR} free?");
    std::thread::spawn(move || lines.for_each(drop));
    child
}

fn file(name: &str) -> String {
    format!("{}.db", name.to_lowercase())
}

/// Syncs, retrying network errors as a phone's scheduler would (bounded).
fn sync(store: &Store) {
    for _ in 0..40 {
        match store.sync() {
            Ok(_) => return,
            Err(Error::Network(_)) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => panic!("sync failed: {e:?}"),
        }
    }
    panic!("sync never succeeded");
}

fn visit(notes: &str, at: i64) -> NewVisit {
    NewVisit {
        place: Place {
            name: "Bus station".into(),
            area: "North".into(),
            coordinates: None,
        },
        occurred_at: at,
        visit_type: "street_outreach".into(),
        people_reached: 2,
        indicators: vec!["deception".into()],
        notes: notes.into(),
        ..Default::default()
    }
}

fn make(out: &Path) {
    if out.exists() {
        let mut names = out.read_dir().unwrap().map(|e| e.unwrap().file_name());
        assert!(
            names.all(|n| n == "README.md"),
            "OUT holds more than a README.md"
        );
    }
    std::fs::create_dir_all(out.join("server-backup")).unwrap();
    let data = out.join("server");
    let mut child = serve(&data);
    let url = format!("http://{ADDR}");
    let created = admin(&data, &["workspace", "create", "--name", "North district"]);
    let server_ws = created["id"].as_str().unwrap().to_string();
    let issue = ["token", "issue", "--workspace", &server_ws, "--ttl", "1h"];
    let token = admin(&data, &issue)["token"].as_str().unwrap().to_string();
    let stores: Vec<Store> = (1..)
        .zip(NAMES)
        .map(|(k, name)| {
            let store = Store::open(out.join(file(name)), &[k; 32]).unwrap();
            store.set_device_name(name).unwrap();
            store
        })
        .collect();
    let [coord, ana, ben, dan, eve] = &stores[..] else {
        unreachable!()
    };

    // 1-3. The coordinator's workspace; Ana and Ben invited in person by it, Dan by Ana.
    let ws = coord.create_workspace("North district").unwrap().id;
    coord.connect_workspace(&ws, &url, &token).unwrap();
    sync(coord);
    for (inviter, joiner) in [(coord, ana), (coord, ben), (ana, dan)] {
        let code = inviter.create_invite(&ws, 3600).unwrap();
        joiner.join(&code).unwrap();
        sync(joiner);
    }
    // 4. Eve joins by an invite to approve, and the coordinator approves her.
    let code = coord.create_approval_invite(&ws, 3600).unwrap();
    eve.join(&code).unwrap();
    sync(eve);
    let pending = coord.pending_joins(&ws).unwrap();
    let p = pending.iter().find(|p| p.name == "Eve").unwrap();
    assert!(p.verified && p.verification_code == eve.verification_code(&ws).unwrap());
    coord.approve_join(&ws, &p.device_id).unwrap();
    sync(eve);

    // 5. A visit from everyone, and everyone has everything.
    let mut visits = Vec::new();
    for (i, (name, store)) in (0..).zip(NAMES.into_iter().zip(&stores)) {
        let note = format!("FIXTURE-{name}-BEFORE");
        let id = store.create_visit(&ws, &visit(&note, NOV_1 + i));
        visits.push((name, id.unwrap(), note));
    }
    for _ in 0..2 {
        stores.iter().for_each(sync);
    }

    // 6. Ben revoked (the key rotates to epoch 1; Ben does not sync again). Ana syncs to pick the
    // new key up, so that her next visit is sealed under it.
    let team = coord.team(&ws).unwrap();
    let ben_id = &team.iter().find(|m| m.name == "Ben").unwrap().device_id;
    coord.revoke_device(&ws, ben_id).unwrap();
    sync(ana);
    let note = "FIXTURE-Ana-AFTER".to_string();
    let id = ana.create_visit(&ws, &visit(&note, NOV_1 + 10)).unwrap();
    visits.push(("Ana", id, note));
    for _ in 0..2 {
        [coord, ana, dan, eve].into_iter().for_each(sync);
    }

    // 7. A backup, the server stopped cleanly, the stores closed.
    let backup = out.join("server-backup/waymark.sqlite3");
    admin(&data, &["backup", "--to", backup.to_str().unwrap()]);
    let listed = admin(&data, &["devices", "list"]);
    let term = Command::new("kill").arg(child.0.id().to_string()).status();
    assert!(term.unwrap().success() && child.0.wait().unwrap().success());

    let db = rusqlite::Connection::open(&backup).unwrap();
    let one = |sql: &str, name: &str| -> i64 { db.query_row(sql, [name], |r| r.get(0)).unwrap() };
    let epoch = one(
        "SELECT epoch FROM workspaces WHERE public_id = ?1",
        &server_ws,
    );
    assert_eq!(epoch, 1, "the revocation rotated the key");
    let ana_sealed = "SELECT count(*) FROM blobs b JOIN devices d ON d.id = b.device \
                      WHERE d.name = ?1 AND b.epoch = 1";
    assert!(one(ana_sealed, "Ana") > 0, "Ana pushed under epoch 1");
    let keyed = "SELECT count(*) FROM key_envelopes k JOIN devices d ON d.id = k.device \
                 WHERE d.public_id = ?1 AND k.epoch = 1";
    let team = coord.team(&ws).unwrap();
    let mut devices = Vec::new();
    for ((k, name), store) in (1u8..).zip(NAMES).zip(&stores) {
        let m = team.iter().find(|m| m.name == name).unwrap();
        let row = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == *m.device_id);
        assert_eq!(row.unwrap()["role"], *m.role, "the server agrees on {name}");
        let has_key = one(keyed, &m.device_id) > 0;
        // Dan was invited by a member and never confirmed by a coordinator: no new key.
        assert_eq!(has_key, !matches!(name, "Ben" | "Dan"), "{name}'s key");
        let sees: Vec<Value> = visits
            .iter()
            .filter(|(_, _, note)| has_key || note.ends_with("-BEFORE"))
            .map(|(author, id, note)| json!({ "id": id, "author": author, "note": note }))
            .collect();
        devices.push(json!({
            "name": name, "store": file(name), "store_key_hex": hex::encode([k; 32]),
            "device_id": m.device_id, "role": m.role, "revoked": m.revoked,
            "verified_by_coordinator": m.verified, "has_key_of_epoch_1": has_key,
            "set_aside_blobs": store.set_aside_blobs().unwrap().len(), "visits": sees,
        }));
    }
    drop(stores);
    let manifest = json!({
        "made_by": "tests/examples/make_pre_team_log_fixtures.rs",
        "store_schema": STORE_SCHEMA, "server_schema": SERVER_SCHEMA,
        "server_address": ADDR, "server_url": url,
        "server_data_dir": "server", "server_backup": "server-backup/waymark.sqlite3",
        "server_workspace_id": server_ws, "workspace_id": ws, "workspace_name": "North district",
        "epoch": epoch, "devices": devices,
    });
    let text = serde_json::to_string_pretty(&manifest).unwrap() + "\n";
    std::fs::write(out.join("manifest.json"), text).unwrap();
}

/// Checks copies of the files in `out` (never the files themselves: a newer store would migrate
/// them) against its manifest.
fn check(out: &Path) {
    let m: Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for db in ["server/waymark.sqlite3", "server-backup/waymark.sqlite3"] {
        let c = rusqlite::Connection::open(closed_copy(out, db, tmp.path())).unwrap();
        assert_eq!(user_version(&c), m["server_schema"], "{db}");
        let epoch = "SELECT epoch FROM workspaces WHERE public_id = ?1";
        let ws = m["server_workspace_id"].as_str().unwrap();
        let epoch: i64 = c.query_row(epoch, [ws], |r| r.get(0)).unwrap();
        assert_eq!(epoch, m["epoch"], "{db}");
    }
    let ws = m["workspace_id"].as_str().unwrap();
    for d in m["devices"].as_array().unwrap() {
        let name = d["store"].as_str().unwrap();
        let copy = closed_copy(out, name, tmp.path());
        let key = hex::decode(d["store_key_hex"].as_str().unwrap()).unwrap();
        let c = rusqlite::Connection::open(&copy).unwrap();
        let pragma = format!("PRAGMA key = \"x'{}'\";", hex::encode(&key));
        c.execute_batch(&pragma).unwrap();
        let version = user_version(&c);
        assert_eq!(version, m["store_schema"], "{name}");
        drop(c);
        let store = Store::open(&copy, &key).unwrap();
        let filter = VisitFilter {
            workspace_id: Some(ws.into()),
            limit: Some(1000),
            ..Default::default()
        };
        let listed: BTreeSet<String> = store
            .list_visits(&filter)
            .unwrap()
            .into_iter()
            .map(|v| v.id)
            .collect();
        let mut expected = BTreeSet::new();
        for v in d["visits"].as_array().unwrap() {
            let id = v["id"].as_str().unwrap();
            assert_eq!(store.get_visit(id).unwrap().notes, v["note"], "{name}");
            expected.insert(id.to_string());
        }
        assert_eq!(listed, expected, "{name} lists exactly its visits");
        println!(
            "{name}: schema {version}, {} visits as expected",
            listed.len()
        );
    }
    println!("{}: all fixtures check", out.display());
}

/// A copy in `dir` of the database `out/rel`, which must have been closed (no WAL beside it).
fn closed_copy(out: &Path, rel: &str, dir: &Path) -> std::path::PathBuf {
    let left = |side| out.join(format!("{rel}{side}")).exists();
    assert!(!left("-wal") && !left("-shm"), "{rel} was not closed");
    let copy = dir.join(rel.replace('/', "-"));
    std::fs::copy(out.join(rel), &copy).unwrap();
    copy
}

fn user_version(c: &rusqlite::Connection) -> i64 {
    c.query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}
