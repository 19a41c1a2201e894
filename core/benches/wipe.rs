//! Wipe and rekey benchmarks: prints the median (and slowest) time of the panic button and of a
//! key change on stores of 100 and 10,000 records, next to what overwriting everything would
//! cost instead.
//!
//! ```text
//! cargo bench -p waymark-core --bench wipe
//! WAYMARK_BENCH_DIR=/mnt/sdcard cargo bench -p waymark-core --bench wipe   # another disk
//! ```
//!
//! Run without `--bench` (`cargo test -p waymark-core --bench wipe`), it does a quick smoke run.
//! Every wipe runs on a fresh copy of a seeded store, opened, written to and read from first
//! so that it has a write-ahead log and open readers, as a store in use does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use waymark_core::*;

const KEY: [u8; 32] = [0x5a; 32];
/// Directory to put the stores in (default: a temp dir).
const DIR_ENV: &str = "WAYMARK_BENCH_DIR";
const AREAS: &[&str] = &[
    "North",
    "South",
    "Port",
    "Border crossing",
    "Market district",
];
const PHRASES: &[&str] = &[
    "Spoke with three women waiting at the bus station.",
    "A recruiter offered jobs abroad with no contract.",
    "Passports were held by the employer.",
    "Workers sleep at the site and cannot leave.",
    "Referred one minor to the shelter.",
    "Debts for travel keep growing every month.",
];

fn with_suffix(p: &Path, s: &str) -> PathBuf {
    let mut o = p.as_os_str().to_owned();
    o.push(s);
    PathBuf::from(o)
}

fn fmt_time(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

/// Median and maximum of `samples`.
fn summary(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    (samples[samples.len() / 2], samples[samples.len() - 1])
}

/// Seeds a store of `n` records (one in 25 a workshop with attendees, the rest visits with
/// about 200 bytes of notes), closes it and returns its path.
fn seed(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join(format!("seed-{n}.db"));
    let store = Store::open(&path, &KEY).unwrap();
    let ws = store.create_workspace("Bench team").unwrap().id;
    for i in 0..n {
        let notes: Vec<&str> = (0..4).map(|k| PHRASES[(i + k) % PHRASES.len()]).collect();
        if i % 25 == 24 {
            let w = store
                .create_workshop(
                    &ws,
                    &NewWorkshop {
                        title: format!("Awareness session {i}"),
                        topic: "safe_migration".into(),
                        occurred_at: 1_735_689_600_000 + i as i64 * 3_600_000,
                        duration_minutes: 90,
                        venue: "Community hall".into(),
                        area: AREAS[i % AREAS.len()].into(),
                        audience: "students".into(),
                        language: "en".into(),
                        facilitators: vec!["Ana".into()],
                        notes: notes.join(" "),
                        ..Default::default()
                    },
                )
                .unwrap();
            for a in 0..4 {
                let attendee = NewAttendee {
                    name: format!("Attendee {a}"),
                    ..Default::default()
                };
                store.check_in(&w, &attendee).unwrap();
            }
        } else {
            let v = NewVisit {
                place: Place {
                    name: format!("Site {}", i % 97),
                    area: AREAS[i % AREAS.len()].into(),
                    coordinates: None,
                },
                occurred_at: 1_735_689_600_000 + i as i64 * 3_600_000,
                visit_type: "street_outreach".into(),
                people_reached: (i % 20) as u32,
                indicators: vec!["deception".into()],
                notes: notes.join(" "),
                ..Default::default()
            };
            store.create_visit(&ws, &v).unwrap();
        }
        if n >= 1000 && (i + 1) % (n / 10) == 0 {
            eprintln!("  seeded {}/{n}", i + 1);
        }
    }
    drop(store);
    path
}

/// A fresh copy of the seeded store, opened and in use (a pending log, readers open).
fn in_use_copy(seeded: &Path, dir: &Path, rep: usize) -> (PathBuf, Store) {
    let path = dir.join(format!("copy-{rep}.db"));
    std::fs::copy(seeded, &path).unwrap();
    let store = Store::open(&path, &KEY).unwrap();
    let ws = store.workspaces().unwrap()[0].id.clone();
    for (i, notes) in PHRASES.iter().take(5).enumerate() {
        let v = NewVisit {
            place: Place {
                name: format!("Fresh site {i}"),
                area: "North".into(),
                coordinates: None,
            },
            occurred_at: 1_767_225_600_000,
            visit_type: "street_outreach".into(),
            notes: (*notes).into(),
            ..Default::default()
        };
        store.create_visit(&ws, &v).unwrap();
    }
    assert!(!store.search("passports", 10).unwrap().is_empty());
    (path, store)
}

fn bytes_of(path: &Path) -> u64 {
    ["", "-wal"]
        .iter()
        .map(|s| std::fs::metadata(with_suffix(path, s)).map_or(0, |m| m.len()))
        .sum()
}

/// Writes zeros over the whole file and syncs it: the alternative to overwriting only page 1
/// and the key-bearing pages.
fn overwrite_all(path: &Path) {
    let len = std::fs::metadata(path).unwrap().len();
    let mut f = OpenOptions::new().write(true).open(path).unwrap();
    let zeros = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        f.write_all(&zeros[..n]).unwrap();
        left -= n as u64;
    }
    f.sync_data().unwrap();
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let sizes: &[usize] = if full { &[100, 10_000] } else { &[30] };
    let reps = if full { 15 } else { 3 };
    let tmp = match std::env::var(DIR_ENV) {
        Ok(d) => tempfile::tempdir_in(d),
        Err(_) => tempfile::tempdir(),
    }
    .unwrap();
    eprintln!("waymark-core wipe bench in {}", tmp.path().display());
    let mut rows: Vec<(String, String, String)> = Vec::new();
    let mut row = |what: String, (median, max): (Duration, Duration)| {
        eprintln!("  {what}: {} (max {})", fmt_time(median), fmt_time(max));
        rows.push((what, fmt_time(median), fmt_time(max)));
    };

    for &n in sizes {
        let seeded = seed(tmp.path(), n);
        let mut wipe = Vec::new();
        let mut unlink_only = Vec::new();
        let mut overwrite_everything = Vec::new();
        let mut size = 0;
        for rep in 0..reps {
            let (path, store) = in_use_copy(&seeded, tmp.path(), rep);
            size = bytes_of(&path);
            let t = Instant::now();
            store.wipe().unwrap();
            wipe.push(t.elapsed());
            assert!(!path.exists() && !with_suffix(&path, "-wal").exists());

            // The same store closed and unlinked with no overwrite at all, and with every
            // byte of the database and its log overwritten, for comparison.
            let (path, store) = in_use_copy(&seeded, tmp.path(), rep);
            let t = Instant::now();
            drop(store);
            for s in ["-wal", "-shm", ""] {
                let _ = std::fs::remove_file(with_suffix(&path, s));
            }
            unlink_only.push(t.elapsed());

            let (path, store) = in_use_copy(&seeded, tmp.path(), rep);
            let t = Instant::now();
            drop(store);
            for s in ["-wal", ""] {
                let p = with_suffix(&path, s);
                if p.exists() {
                    overwrite_all(&p);
                }
            }
            for s in ["-wal", "-shm", ""] {
                let _ = std::fs::remove_file(with_suffix(&path, s));
            }
            overwrite_everything.push(t.elapsed());
        }
        let mb = size as f64 / 1e6;
        row(
            format!("wipe(), store of {n} records ({mb:.1} MB with log)"),
            summary(wipe),
        );
        row(
            format!("  for comparison: close + unlink, no overwrite ({n})"),
            summary(unlink_only),
        );
        row(
            format!("  for comparison: close + overwrite every byte + unlink ({n})"),
            summary(overwrite_everything),
        );

        let rekeys = if n > 1000 { reps.min(5) } else { reps };
        let (_, store) = in_use_copy(&seeded, tmp.path(), 0);
        let mut times = Vec::new();
        for i in 0..rekeys {
            let t = Instant::now();
            store.rekey(&[i as u8 + 1; 32]).unwrap();
            times.push(t.elapsed());
        }
        row(format!("rekey(), store of {n} records"), summary(times));
        store.wipe().unwrap();
    }

    println!("\n| measurement | median | slowest |\n|---|---:|---:|");
    for (what, median, max) in &rows {
        println!("| {what} | {median} | {max} |");
    }
}
