//! The panic button: after `wipe` no file of the store is left, what a copy of the device could
//! still hold opens only with the key (which the platform deletes), the server credentials
//! come back for revocation, and every other handle fails with a typed error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use waymark_core::*;

const NOTE: &str = "Met two recruiters near the harbour gate";

fn suffixed(p: &Path, s: &str) -> PathBuf {
    let mut o = p.as_os_str().to_owned();
    o.push(s);
    PathBuf::from(o)
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A store with a workspace, 40 visits with notes and a workshop with an attendee, read
/// through the reader pool so that readers are open too.
fn seeded() -> (common::TempStore, Store, String, Vec<String>) {
    let (t, s, ws) = common::store_with_workspace();
    let mut ids = Vec::new();
    for i in 0..40 {
        let mut v = common::visit(&format!("Harbour gate {i}"), "Port", common::NOV_1);
        v.notes = format!("{NOTE} ({i})");
        ids.push(s.create_visit(&ws, &v).unwrap());
    }
    let w = s
        .create_workshop(
            &ws,
            &common::workshop("Safe jobs", "safe_migration", common::NOV_1),
        )
        .unwrap();
    s.check_in(
        &w,
        &NewAttendee {
            name: "Amina Yusuf".into(),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(s.list_visits(&VisitFilter::default()).unwrap().len(), 40);
    (t, s, ws, ids)
}

/// Adds a sync membership row the way joining a server would leave it, through a connection
/// of its own on the real file.
fn add_membership(path: &Path, ws: &str, server: &str, device: &str, token: &str, revoked: bool) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA key = \"x'{}'\"; PRAGMA busy_timeout = 5000;",
        hex::encode(common::KEY)
    ))
    .unwrap();
    conn.execute(
        "INSERT INTO memberships(workspace_id, server_url, server_workspace_id, device_id,
                                 device_token, revoked) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        rusqlite::params![ws, server, format!("srv-{ws}"), device, token, revoked],
    )
    .unwrap();
}

/// The pages (in the database file) of the b-trees of `tables`, checkpointed first so that
/// the file holds their latest version.
fn pages_of(path: &Path, tables: &[&str]) -> Vec<i64> {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA key = \"x'{}'\"; PRAGMA busy_timeout = 5000;",
        hex::encode(common::KEY)
    ))
    .unwrap();
    conn.query_row("PRAGMA wal_checkpoint(FULL)", [], |_| Ok(()))
        .unwrap();
    let mut pages = Vec::new();
    for t in tables {
        let mut st = conn
            .prepare("SELECT pageno FROM dbstat WHERE name = ?1")
            .unwrap();
        let found = st.query_map([t], |r| r.get::<_, i64>(0)).unwrap();
        pages.extend(found.map(Result::unwrap));
    }
    pages
}

#[test]
fn wipe_leaves_no_file_of_the_store() {
    let (t, s, _, _) = seeded();
    let before = names_in(t.dir.path());
    assert!(
        before.contains(&"waymark.db-wal".to_string()),
        "an open store has a write-ahead log: {before:?}"
    );
    let report = s.wipe().unwrap();
    assert_eq!(names_in(t.dir.path()), Vec::<String>::new());
    assert_eq!(report.files_removed as usize, before.len());
    assert!(report.pending_revocations.is_empty());
}

#[test]
fn a_copy_of_the_files_taken_before_wipe_opens_only_with_the_key() {
    let (t, s, _, ids) = seeded();
    // What a copy of the flash could hold: the database and its log as they were.
    let copy_dir = tempfile::tempdir().unwrap();
    let copy = copy_dir.path().join("seized.db");
    std::fs::copy(&t.path, &copy).unwrap();
    std::fs::copy(suffixed(&t.path, "-wal"), suffixed(&copy, "-wal")).unwrap();
    s.wipe().unwrap();

    let mut bytes = std::fs::read(&copy).unwrap();
    bytes.extend(std::fs::read(suffixed(&copy, "-wal")).unwrap());
    for needle in [NOTE, "Harbour gate", "Amina", "SQLite format 3"] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "the copy shows {needle:?} in clear"
        );
    }
    for other in [[0u8; 32], [0x43; 32]] {
        assert!(matches!(Store::open(&copy, &other), Err(Error::WrongKey)));
    }
    // Only the key opens it: which is why the platform wrappers delete the key on wipe.
    let opened = Store::open(&copy, &common::KEY).unwrap();
    assert!(opened.get_visit(&ids[0]).unwrap().notes.starts_with(NOTE));
}

#[test]
fn the_overwritten_files_cannot_be_opened_even_with_the_key() {
    let (t, s, ws, _) = seeded();
    add_membership(
        &t.path,
        &ws,
        "https://sync.example.org",
        "dev-1",
        "tok-1",
        false,
    );
    let key_pages = pages_of(&t.path, &["workspace_keys", "memberships"]);
    assert!(!key_pages.is_empty());
    // Handles opened before the wipe keep reading the blocks after the names are gone, as a
    // forensic copy of a plain disk would.
    let mut db = std::fs::File::open(&t.path).unwrap();
    let mut wal = std::fs::File::open(suffixed(&t.path, "-wal")).unwrap();
    s.wipe().unwrap();

    let mut left = Vec::new();
    db.read_to_end(&mut left).unwrap();
    assert!(
        left[..4096].iter().all(|&b| b == 0),
        "page 1 (salt) overwritten"
    );
    for p in key_pages {
        let page = &left[(p as usize - 1) * 4096..p as usize * 4096];
        assert!(
            page.iter().all(|&b| b == 0),
            "page {p} (keys, tokens) overwritten"
        );
    }
    assert!(
        left.iter().any(|&b| b != 0),
        "only what matters is overwritten, not the whole file"
    );
    let mut wal_left = Vec::new();
    wal.read_to_end(&mut wal_left).unwrap();
    assert!(
        !wal_left.is_empty() && wal_left.iter().all(|&b| b == 0),
        "the log overwritten"
    );

    let dir = tempfile::tempdir().unwrap();
    let revived = dir.path().join("revived.db");
    std::fs::write(&revived, &left).unwrap();
    assert!(matches!(
        Store::open(&revived, &common::KEY),
        Err(Error::WrongKey)
    ));
}

#[test]
fn wipe_hands_back_the_server_credentials_to_revoke_the_device() {
    let (t, s, ws, _) = seeded();
    let other = s.create_workspace("South district").unwrap().id;
    add_membership(
        &t.path,
        &ws,
        "https://sync.example.org",
        "dev-1",
        "tok-secret-1",
        false,
    );
    add_membership(
        &t.path,
        &other,
        "https://other.example.org",
        "dev-2",
        "tok-2",
        true,
    );

    let report = s.wipe().unwrap();
    assert_eq!(names_in(t.dir.path()), Vec::<String>::new());
    // The revoked membership needs no revocation.
    assert_eq!(report.pending_revocations.len(), 1);
    let r = &report.pending_revocations[0];
    assert_eq!(r.workspace_id, ws);
    assert_eq!(r.server_url, "https://sync.example.org");
    assert_eq!(r.server_workspace_id, format!("srv-{ws}"));
    assert_eq!(r.device_id, "dev-1");
    assert_eq!(r.device_token.as_str(), "tok-secret-1");
    let shown = format!("{report:?}");
    assert!(
        !shown.contains("tok-secret-1"),
        "a token in a log line: {shown}"
    );
}

#[test]
fn every_handle_fails_with_wiped_after_wipe() {
    let (_t, s, ws, ids) = seeded();
    let other = s.clone();
    s.wipe().unwrap();
    assert!(matches!(
        other.list_visits(&VisitFilter::default()),
        Err(Error::Wiped)
    ));
    assert!(matches!(other.get_visit(&ids[0]), Err(Error::Wiped)));
    assert!(matches!(
        other.create_visit(&ws, &common::visit("After", "North", common::NOV_1)),
        Err(Error::Wiped)
    ));
    assert!(matches!(
        other.set_visit_notes(&ids[1], "x"),
        Err(Error::Wiped)
    ));
    assert!(matches!(other.workspaces(), Err(Error::Wiped)));
    assert!(matches!(other.search("harbour", 10), Err(Error::Wiped)));
    assert!(matches!(other.export_changes(None), Err(Error::Wiped)));
    assert!(matches!(other.rebuild_projections(), Err(Error::Wiped)));
    assert!(matches!(other.rekey(&[9; 32]), Err(Error::Wiped)));
    assert!(matches!(other.wipe(), Err(Error::Wiped)));
    assert!(matches!(s.wipe(), Err(Error::Wiped)));
    assert_eq!(
        Error::Wiped.to_string(),
        "the store was wiped: its data and keys are gone"
    );
}

#[test]
fn wipe_while_other_threads_read_and_write_stops_them_with_wiped() {
    let (t, s, ws, ids) = seeded();
    // How many threads have done at least one call.
    let started = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    for n in 0..4 {
        let (s, ws, ids, started) = (s.clone(), ws.clone(), ids.clone(), started.clone());
        threads.push(std::thread::spawn(move || {
            let mut done = 0u32;
            loop {
                let r = match n % 2 {
                    0 => s
                        .create_visit(&ws, &common::visit("Loop", "North", common::NOV_1))
                        .map(drop),
                    _ => s.get_visit(&ids[done as usize % ids.len()]).map(drop),
                };
                match r {
                    Ok(()) => {
                        if done == 0 {
                            started.fetch_add(1, Ordering::SeqCst);
                        }
                        done += 1;
                    }
                    Err(Error::Wiped) => return done,
                    Err(e) => panic!("thread {n}: {e}"),
                }
            }
        }));
    }
    // (A thread that failed never counts: stop waiting and let its join report it.)
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while started.load(Ordering::SeqCst) < 4 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(50));
    s.wipe().unwrap();
    for t in threads {
        assert!(t.join().expect("no thread panicked") > 0);
    }
    assert_eq!(names_in(t.dir.path()), Vec::<String>::new());
}

#[test]
fn a_wipe_stops_a_long_import_instead_of_waiting_for_it() {
    // A bundle big enough that importing it takes a good while (one transaction).
    let (_src_dir, src, src_ws) = common::store_with_workspace();
    for i in 0..300 {
        let mut v = common::visit(&format!("Depot {i}"), "Port", common::NOV_1);
        v.notes = format!("{NOTE} {i} ").repeat(20);
        src.create_visit(&src_ws, &v).unwrap();
    }
    let bundle = src.export_changes(None).unwrap();

    let (t, s, _, _) = seeded();
    common::join(&s, &src, &src_ws);
    // Enough memberships that reading them takes more than a few SQLite steps: the wipe must
    // still read them all after stopping the import.
    for i in 0..200 {
        let ws = format!("{i:032x}");
        add_membership(
            &t.path,
            &ws,
            "https://sync.example.org",
            &format!("dev-{i}"),
            "tok",
            false,
        );
    }
    let importing = {
        let s = s.clone();
        std::thread::spawn(move || s.import_changes(&bundle))
    };
    // Let the import get going (it takes about 2.5 s in a debug build), then press the button.
    std::thread::sleep(Duration::from_millis(100));
    let started = std::time::Instant::now();
    let report = s.wipe().unwrap();
    let took = started.elapsed();
    assert_eq!(report.pending_revocations.len(), 200);
    match importing.join().expect("the import did not panic") {
        Err(Error::Wiped) => {}
        other => panic!("the import was not stopped by the wipe: {other:?}"),
    }
    eprintln!("wipe during an import returned after {took:?}");
    assert_eq!(names_in(t.dir.path()), Vec::<String>::new());
}

#[test]
fn a_new_store_can_start_at_the_same_path_after_wipe() {
    let (t, s, _, _) = seeded();
    s.wipe().unwrap();
    let fresh = Store::open(&t.path, &[0x77; 32]).unwrap();
    assert!(fresh.workspaces().unwrap().is_empty());
    assert!(
        fresh
            .list_visits(&VisitFilter::default())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn destroy_files_removes_a_store_whose_key_is_lost() {
    let (t, s, _, _) = seeded();
    drop(s);
    assert!(matches!(
        Store::open(&t.path, &[1; 32]),
        Err(Error::WrongKey)
    ));
    assert!(Store::destroy_files(&t.path).unwrap() >= 1);
    assert_eq!(names_in(t.dir.path()), Vec::<String>::new());
    assert_eq!(Store::destroy_files(&t.path).unwrap(), 0);
    Store::open(&t.path, &[1; 32]).unwrap();
}
