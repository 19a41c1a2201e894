//! Changing the store key: every record stays, only the new key opens the store, work on other
//! threads carries on, and a process killed at any instant of a rekey leaves a store that
//! opens with the old or the new key with everything in it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use rand::Rng;
use waymark_core::*;

const NEW_KEY: [u8; 32] = [0x17; 32];

/// A store with `n` visits carrying notes, a workshop with an attendee and a tally.
fn seed(s: &Store, ws: &str, n: usize) {
    for i in 0..n {
        let mut v = common::visit(&format!("Checkpoint {i}"), "Border", common::NOV_1);
        v.notes = format!(
            "visit {i}: {}",
            "a bus of workers without contracts. ".repeat(8)
        );
        s.create_visit(ws, &v).unwrap();
    }
    let w = s
        .create_workshop(
            ws,
            &common::workshop("Know your rights", "labour_rights", common::NOV_1),
        )
        .unwrap();
    s.check_in(
        &w,
        &NewAttendee {
            name: "Lina Haddad".into(),
            ..Default::default()
        },
    )
    .unwrap();
    s.add_to_tally(&w, "18_24", "female", 3).unwrap();
}

/// What a user reads back: every projection row (lists, search text) and the notes of every
/// `every`-th visit decoded from its document.
fn contents(s: &Store, every: usize) -> Vec<String> {
    let mut out = s.projection_rows().unwrap();
    let visits = s
        .list_visits(&VisitFilter {
            limit: Some(100_000),
            ..Default::default()
        })
        .unwrap();
    for v in visits.iter().step_by(every) {
        out.push(s.get_visit(&v.id).unwrap().notes);
    }
    out
}

#[test]
fn rekey_keeps_every_record_and_only_the_new_key_opens_the_store() {
    let (t, s, ws) = common::store_with_workspace();
    seed(&s, &ws, 60);
    let before = contents(&s, 1);

    s.rekey(&NEW_KEY).unwrap();
    assert_eq!(
        contents(&s, 1),
        before,
        "the open handle reads everything after rekey"
    );
    let later = s
        .create_visit(&ws, &common::visit("After rekey", "North", common::NOV_1))
        .unwrap();
    drop(s);

    assert!(matches!(
        Store::open(&t.path, &common::KEY),
        Err(Error::WrongKey)
    ));
    let reopened = Store::open(&t.path, &NEW_KEY).unwrap();
    assert_eq!(
        reopened.get_visit(&later).unwrap().place.name,
        "After rekey"
    );
    let now = contents(&reopened, 1);
    assert!(
        before.iter().all(|row| now.contains(row)),
        "a record was lost"
    );
    assert!(reopened.search("contracts", 100).unwrap().len() >= 60);
}

#[test]
fn rekey_refuses_a_key_of_the_wrong_length_and_changes_nothing() {
    let (t, s, ws) = common::store_with_workspace();
    seed(&s, &ws, 3);
    match s.rekey(&[1; 16]) {
        Err(Error::InvalidInput { field, .. }) => assert_eq!(field, "new_key"),
        other => panic!("expected InvalidInput, got {other:?}"),
    }
    assert_eq!(s.list_visits(&VisitFilter::default()).unwrap().len(), 3);
    drop(s);
    assert_eq!(
        common::open(&t.path)
            .list_visits(&VisitFilter::default())
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn reads_and_writes_on_other_threads_carry_on_through_rekeys() {
    let (t, s, ws) = common::store_with_workspace();
    seed(&s, &ws, 20);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut threads = Vec::new();
    for n in 0..3 {
        let (s, ws, stop) = (s.clone(), ws.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let mut created = Vec::new();
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                if n == 0 {
                    let v =
                        common::visit(&format!("During {}", created.len()), "North", common::NOV_1);
                    created.push(s.create_visit(&ws, &v).expect("a write during rekey"));
                } else {
                    let rows = s.list_visits(&VisitFilter::default()).expect("a read");
                    assert!(rows.len() >= 20);
                    assert!(!s.search("contracts", 5).expect("a search").is_empty());
                    reads += 1;
                }
            }
            (created, reads)
        }));
    }
    let mut key = common::KEY;
    for round in 0..3u8 {
        std::thread::sleep(Duration::from_millis(40));
        key = [0x60 + round; 32];
        s.rekey(&key).unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut created = Vec::new();
    for t in threads {
        let (c, _) = t.join().expect("no thread failed");
        created.extend(c);
    }
    assert!(!created.is_empty());
    drop(s);
    let s = Store::open(&t.path, &key).unwrap();
    for id in &created {
        s.get_visit(id).unwrap();
    }
}

// ---- killed during a rekey ----

/// Environment of the child process: the store, and the keys (hex) to rekey from and to.
const CHILD_ENV: &str = "WAYMARK_REKEY_CHILD";
const FROM_ENV: &str = "WAYMARK_REKEY_FROM";
const TO_ENV: &str = "WAYMARK_REKEY_TO";
const CHILD_TEST: &str = "child_process_rekeys_until_killed";
const TAG: &str = "@@rekey";
/// Rounds with a kill at a random instant of the rekey.
const ROUNDS: usize = 16;

fn report(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(format!("\n{TAG} {line} ;\n").as_bytes());
    let _ = out.flush();
}

fn key_from_env(name: &str) -> [u8; 32] {
    hex::decode(std::env::var(name).unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

/// The process the parent kills. Returns at once unless `WAYMARK_REKEY_CHILD` names a store.
#[test]
fn child_process_rekeys_until_killed() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = Store::open(&path, &key_from_env(FROM_ENV)).unwrap();
    report("ready");
    store.rekey(&key_from_env(TO_ENV)).unwrap();
    report("rekeyed");
    // Stay alive until killed, as an app would.
    std::thread::sleep(Duration::from_secs(30));
}

/// Runs a child that rekeys `path` from `from` to `to`; kills it `delay` after it is ready to
/// call `rekey` (or lets it finish if `delay` is `None`). Returns whether it reported the
/// rekey done, and how long the rekey took if it finished.
fn run_child(
    path: &Path,
    from: &[u8; 32],
    to: &[u8; 32],
    delay: Option<Duration>,
) -> (bool, Duration) {
    let (from, to) = (hex::encode(from), hex::encode(to));
    let (mut child, rx) = common::spawn_test_child(
        CHILD_TEST,
        &[
            (CHILD_ENV, path.as_os_str()),
            (FROM_ENV, from.as_ref()),
            (TO_ENV, to.as_ref()),
        ],
    );
    let wait_for = |what: &str| loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the child reports {what}"));
        if line.contains(&format!("{TAG} {what} ;")) {
            return;
        }
    };
    wait_for("ready");
    let ready = Instant::now();
    let Some(delay) = delay else {
        wait_for("rekeyed");
        return (true, ready.elapsed());
    };
    std::thread::sleep(delay);
    child.0.kill().unwrap(); // SIGKILL
    child.0.wait().unwrap();
    // The child is gone: its stdout ends, and so does this, once every line is in.
    let done = rx.iter().any(|l| l.contains(&format!("{TAG} rekeyed ;")));
    (done, ready.elapsed())
}

fn integrity_check(path: &Path, key: &[u8; 32]) -> String {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(&format!("PRAGMA key = \"x'{}'\";", hex::encode(key)))
        .unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_rekey_killed_at_any_instant_leaves_the_old_or_the_new_key_with_all_data() {
    let t = common::temp_path();
    let expected = {
        let s = common::open(&t.path);
        let ws = s.create_workspace("Border team").unwrap().id;
        seed(&s, &ws, 300);
        contents(&s, 25)
    };
    let mut rng = rand::rng();
    let mut key = common::KEY;
    // One rekey to completion first, to learn how long one takes here.
    let next: [u8; 32] = rng.random();
    let (done, took) = run_child(&t.path, &key, &next, None);
    assert!(done);
    key = next;
    let window = took.as_micros().max(1000) as u64 * 13 / 10;

    let (mut kept_old, mut got_new) = (0, 0);
    for round in 0..ROUNDS {
        let next: [u8; 32] = rng.random();
        let delay = Duration::from_micros(rng.random_range(0..window));
        let (reported, _) = run_child(&t.path, &key, &next, Some(delay));
        let opened = match Store::open(&t.path, &next) {
            Ok(s) => {
                got_new += 1;
                key = next;
                s
            }
            Err(Error::WrongKey) => {
                assert!(!reported, "round {round}: a reported rekey was lost");
                kept_old += 1;
                Store::open(&t.path, &key).unwrap_or_else(|e| {
                    panic!("round {round}: opens with neither key after SIGKILL: {e}")
                })
            }
            Err(e) => panic!("round {round}: {e}"),
        };
        assert_eq!(integrity_check(&t.path, &key), "ok", "round {round}");
        assert_eq!(
            contents(&opened, 25),
            expected,
            "round {round}: data after SIGKILL"
        );
    }
    eprintln!(
        "rekey of a 300-visit store took {took:?}; {ROUNDS} kills within {window} µs: \
         {kept_old} left the old key, {got_new} the new one"
    );
    assert!(
        kept_old > 0,
        "no kill landed before the rekey committed: the test proved nothing"
    );
}
