//! Durability under SIGKILL: every write a process saw return is on disk, whatever the instant
//! the process dies.
//!
//! The parent test re-runs this test binary as a child that writes in a loop (visits, note
//! edits, workshop check-ins) and reports each call on stdout only after it returned. The parent
//! kills the child with SIGKILL at a random moment, then reopens the same store and checks that
//! the file is intact and that every reported write is there. The store accumulates over all
//! rounds, so every round also checks that later crashes did not lose earlier writes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use rand::Rng;
use waymark_core::*;

/// Environment variable naming the store the child writes to; absent in a normal test run.
const CHILD_ENV: &str = "WAYMARK_CRASH_CHILD";
/// Environment variable with the round number, so markers are unique across child runs.
const ROUND_ENV: &str = "WAYMARK_CRASH_ROUND";
/// Name of the child test (must match the function below).
const CHILD_TEST: &str = "child_process_writes_until_killed";
/// Tag that starts every protocol line the child prints (the test harness prints other lines).
const TAG: &str = "@@crash";
/// How many times the child is killed.
const ROUNDS: usize = 24;
/// A child left running by accident stops by itself after this long.
const CHILD_LIFETIME: Duration = Duration::from_secs(30);

/// Prints one protocol line and flushes it, so it reaches the pipe before the next call starts.
fn report(line: &str) {
    let mut out = std::io::stdout().lock();
    // One write per line: a pipe write this small is atomic, a kill cannot tear it.
    let _ = out.write_all(format!("\n{TAG} {line} ;\n").as_bytes());
    let _ = out.flush();
}

fn attendee(name: &str) -> NewAttendee {
    NewAttendee {
        name: name.into(),
        age_band: Some("18_24".into()),
        gender: Some("female".into()),
        ..Default::default()
    }
}

/// The writer the parent kills. Returns at once unless `WAYMARK_CRASH_CHILD` names a store.
#[test]
fn child_process_writes_until_killed() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let round: usize = std::env::var(ROUND_ENV).unwrap().parse().unwrap();
    let started = Instant::now();
    let mut rng = rand::rng();

    let store = Store::open(&path, &common::KEY).unwrap();
    report("open");
    let ws = match store.workspaces().unwrap().into_iter().next() {
        Some(ws) => ws.id,
        None => store.create_workspace("Crash test team").unwrap().id,
    };
    report(&format!("workspace {ws}"));
    let workshop = match store
        .list_workshops(&WorkshopFilter::default())
        .unwrap()
        .into_iter()
        .next()
    {
        Some(w) => w.id,
        None => {
            let w = common::workshop("Safe migration talk", "safe_migration", common::NOV_1);
            store.create_workshop(&ws, &w).unwrap()
        }
    };
    report(&format!("workshop {workshop}"));
    // Visits from earlier rounds are edited too: their notes must survive later crashes.
    let mut visits: Vec<String> = store
        .list_visits(&VisitFilter {
            limit: Some(10_000),
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .map(|v| v.id)
        .collect();
    report("ready");

    for i in 0usize.. {
        if started.elapsed() > CHILD_LIFETIME {
            return;
        }
        let marker = format!("m{round:03}i{i:06}");
        // Announced before the call: anything in the store must have been started.
        report(&format!("start {marker}"));
        let mut v = common::visit(&marker, ["North", "South", "Port"][i % 3], common::NOV_1);
        v.occurred_at += i64::try_from(i).unwrap() * 60_000;
        v.notes = format!("visit {marker} saw a recruiter at the gate");
        let id = store.create_visit(&ws, &v).unwrap();
        report(&format!("visit {id} {marker}"));
        visits.push(id);

        if i % 3 == 1 {
            let target = visits[rng.random_range(0..visits.len())].clone();
            let notes = store.get_visit(&target).unwrap().notes;
            let edit = format!("{marker}n");
            report(&format!("start {edit}"));
            store
                .set_visit_notes(&target, &format!("{notes} then {edit}"))
                .unwrap();
            report(&format!("notes {target} {edit}"));
        }
        if i % 4 == 2 {
            let name = format!("{marker}a");
            let a = store.check_in(&workshop, &attendee(&name)).unwrap();
            report(&format!("attendee {workshop} {a} {name}"));
        }
    }
}

/// Everything a child reported, over all rounds.
#[derive(Default)]
struct Reported {
    workspaces: BTreeSet<String>,
    /// Markers announced before a write began (a superset of what may be in the store).
    started: BTreeSet<String>,
    /// Visit id -> its marker.
    visits: BTreeMap<String, String>,
    /// Visit id -> markers appended to its notes.
    notes: BTreeMap<String, Vec<String>>,
    /// (workshop id, attendee id, name).
    attendees: Vec<(String, String, String)>,
    /// Writes reported done in the last round.
    last_round_writes: usize,
    /// Longest time a child took to start, open the store and get ready to write.
    startup: Duration,
}

impl Reported {
    /// Records one protocol line; a line cut short by the kill (no closing `;`) is ignored.
    fn take(&mut self, line: &str) {
        let Some(pos) = line.find(TAG) else { return };
        let words: Vec<&str> = line[pos + TAG.len()..].split_whitespace().collect();
        if words.last() != Some(&";") {
            return;
        }
        match words[..words.len() - 1] {
            ["workspace", id] => {
                self.workspaces.insert(id.into());
            }
            ["start", marker] => {
                self.started.insert(marker.into());
            }
            ["visit", id, marker] => {
                self.visits.insert(id.into(), marker.into());
                self.last_round_writes += 1;
            }
            ["notes", id, marker] => {
                self.notes.entry(id.into()).or_default().push(marker.into());
                self.last_round_writes += 1;
            }
            ["attendee", workshop, id, name] => {
                self.attendees
                    .push((workshop.into(), id.into(), name.into()));
                self.last_round_writes += 1;
            }
            _ => {}
        }
    }
}

/// Runs one child on `path`, kills it `delay` after it reported its first write (or after it
/// was spawned, if not `wait_for_ready`), and collects what it reported.
fn run_child_and_kill(
    path: &Path,
    round: usize,
    wait_for_ready: bool,
    delay: Duration,
    reported: &mut Reported,
) {
    let round = round.to_string();
    let (mut child, rx) = common::spawn_test_child(
        CHILD_TEST,
        &[(CHILD_ENV, path.as_os_str()), (ROUND_ENV, round.as_ref())],
    );
    let mut lines = Vec::new();
    if wait_for_ready {
        let spawned = Instant::now();
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(20))
                .expect("the child reports that it is ready to write");
            let ready = line.contains(&format!("{TAG} ready ;"));
            lines.push(line);
            if ready {
                break;
            }
        }
        reported.startup = reported.startup.max(spawned.elapsed());
        // Then let it report a first write, so that on a loaded machine (where one write may
        // take longer than the whole random delay) the kill still lands among writes.
        let first = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the child reports its first write");
        lines.push(first);
    }
    std::thread::sleep(delay);
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "the child stopped before it was killed (a write failed?)"
    );
    child.0.kill().unwrap(); // SIGKILL
    let status = child.0.wait().unwrap();
    assert!(!status.success(), "the child was killed, not finished");
    reported.last_round_writes = 0;
    // The child is gone: its stdout ends, and so does this, once every line is in.
    lines.extend(rx.iter());
    for line in &lines {
        reported.take(line);
    }
}

/// `PRAGMA integrity_check` on the file as the crash left it, through a connection of its own.
fn integrity_check(path: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA key = \"x'{}'\";",
        hex::encode(common::KEY)
    ))
    .unwrap();
    let mut st = conn.prepare("PRAGMA integrity_check").unwrap();
    st.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .collect::<rusqlite::Result<Vec<_>>>()
        .unwrap()
}

/// Reopens the store and checks that everything reported so far is there, and nothing else.
fn check_store(path: &Path, round: usize, reported: &Reported) {
    assert_eq!(
        integrity_check(path),
        vec!["ok".to_string()],
        "round {round}: integrity_check after SIGKILL"
    );
    let store = Store::open(path, &common::KEY)
        .unwrap_or_else(|e| panic!("round {round}: reopening after SIGKILL failed: {e}"));

    let workspaces: BTreeSet<String> = store
        .workspaces()
        .unwrap()
        .into_iter()
        .map(|w| w.id)
        .collect();
    assert!(workspaces.len() <= 1, "round {round}: one workspace only");
    assert!(
        reported.workspaces.is_subset(&workspaces),
        "round {round}: a reported workspace is missing"
    );

    // Every listed visit is one the child had at least started (no phantom or half-made
    // rows), and its projection row agrees with its document.
    let listed = store
        .list_visits(&VisitFilter {
            limit: Some(10_000),
            ..Default::default()
        })
        .unwrap();
    let mut docs = BTreeMap::new();
    for row in &listed {
        assert!(
            reported.started.contains(&row.place_name),
            "round {round}: listed visit {} was never started",
            row.place_name
        );
        let doc = store.get_visit(&row.id).unwrap();
        assert_eq!(
            doc.place.name, row.place_name,
            "round {round}: projection row"
        );
        docs.insert(row.id.clone(), doc);
    }
    assert!(
        listed.len() <= reported.visits.len() + round + 1,
        "round {round}: at most one unreported visit per kill may have committed"
    );

    // Every reported visit is there and listed, with its notes, and so is every reported note edit.
    for (id, marker) in &reported.visits {
        let Some(v) = docs.get(id) else {
            match store.get_visit(id) {
                Ok(_) => panic!("round {round}: reported visit {marker} is not listed"),
                Err(e) => panic!("round {round}: reported visit {marker} lost: {e}"),
            }
        };
        assert_eq!(&v.place.name, marker, "round {round}: visit {id}");
        assert!(
            v.notes.starts_with(&format!("visit {marker} ")),
            "round {round}: notes of visit {marker} lost: {:?}",
            v.notes
        );
    }
    // (An edited visit may be one whose creation committed but was never reported.)
    for (id, edits) in &reported.notes {
        let v = docs
            .get(id)
            .unwrap_or_else(|| panic!("round {round}: edited visit {id} is not listed"));
        for edit in edits {
            assert!(
                v.notes.contains(&format!(" then {edit}")),
                "round {round}: reported note edit {edit} of visit {id} lost: {:?}",
                v.notes
            );
        }
    }

    // Every reported check-in is in the workshop document and in its attendance rows.
    let workshops: BTreeSet<&String> = reported.attendees.iter().map(|(w, _, _)| w).collect();
    for workshop in workshops {
        let doc = store.get_workshop(workshop).unwrap();
        let rows = store.attendance(workshop).unwrap();
        for (_, attendee, name) in reported.attendees.iter().filter(|a| &a.0 == workshop) {
            assert!(
                doc.attendees
                    .iter()
                    .any(|a| &a.id == attendee && &a.name == name),
                "round {round}: reported check-in {name} lost"
            );
            assert!(
                rows.attendees.iter().any(|a| &a.id == attendee),
                "round {round}: check-in {name} missing from the attendance rows"
            );
        }
    }

    if let Some((id, marker)) = reported.visits.iter().next_back() {
        let hits = store.search(marker, 10).unwrap();
        assert!(
            hits.iter().any(|h| &h.id == id),
            "round {round}: full-text search finds visit {marker}"
        );
    }
}

#[test]
fn every_reported_write_survives_sigkill_at_random_moments() {
    let t = common::temp_path();
    let mut reported = Reported::default();
    let mut rng = rand::rng();
    let mut writes_per_round = Vec::new();
    for round in 0..ROUNDS {
        let delay = Duration::from_millis(rng.random_range(10..=150));
        // Most kills land among writes; every fourth counts from the spawn, so that it may
        // also land while the store is being created, recovered or opened.
        let wait_for_ready = round % 4 != 0;
        run_child_and_kill(&t.path, round, wait_for_ready, delay, &mut reported);
        writes_per_round.push(reported.last_round_writes);
        check_store(&t.path, round, &reported);
    }
    eprintln!(
        "{ROUNDS} kills; writes reported per round: {writes_per_round:?}; \
         {} visits, {} note edits, {} check-ins survived; slowest child start {:?}",
        reported.visits.len(),
        reported.notes.values().map(Vec::len).sum::<usize>(),
        reported.attendees.len(),
        reported.startup
    );
    // The test means something only if kills landed among writes, not before the first one.
    let rounds_with_writes = writes_per_round.iter().filter(|&&n| n > 0).count();
    assert!(
        rounds_with_writes >= ROUNDS / 2,
        "too few rounds got to write before the kill: {writes_per_round:?}"
    );
    assert!(!reported.notes.is_empty() && !reported.attendees.is_empty());
}
