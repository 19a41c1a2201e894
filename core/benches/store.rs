//! Store benchmarks: prints medians and 90th percentiles of what a phone does with a store
//! holding N records (default 10,000), next to the targets from the core issue.
//!
//! ```text
//! cargo bench -p waymark-core --bench store
//! WAYMARK_BENCH_RECORDS=50000 cargo bench -p waymark-core --bench store
//! WAYMARK_BENCH_DIR=/mnt/sdcard cargo bench -p waymark-core --bench store   # another disk
//! ```
//!
//! Run without `--bench` (e.g. `cargo test --benches`), it does a quick smoke run on a small
//! store. Resident memory is measured in a fresh child process (this binary re-run with
//! `WAYMARK_BENCH_MEMORY_CHILD` set) so that seeding does not inflate the figures.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use waymark_core::*;

/// Number of records to seed.
const RECORDS_ENV: &str = "WAYMARK_BENCH_RECORDS";
/// Directory to put the stores in (default: a temp dir).
const DIR_ENV: &str = "WAYMARK_BENCH_DIR";
/// Set in the child process that measures memory: the path of the seeded store.
const MEMORY_CHILD_ENV: &str = "WAYMARK_BENCH_MEMORY_CHILD";

const KEY: [u8; 32] = [0x5a; 32];
/// 2025-01-01T00:00:00Z in ms.
const JAN_2025: i64 = 1_735_689_600_000;
const DAY: i64 = 86_400_000;

const AREAS: &[&str] = &[
    "North",
    "South",
    "East",
    "West",
    "Central",
    "Port",
    "Airport",
    "Old town",
    "Industrial zone",
    "Border crossing",
    "Riverside",
    "Market district",
];
const VISIT_TYPES: &[&str] = &[
    "street_outreach",
    "worksite_visit",
    "home_visit",
    "shelter_visit",
    "transit_point",
    "online_outreach",
    "follow_up",
];
const INDICATORS: &[&str] = &[
    "abuse_of_vulnerability",
    "deception",
    "restriction_of_movement",
    "isolation",
    "physical_sexual_violence",
    "intimidation_threats",
    "retention_of_documents",
    "withholding_of_wages",
    "debt_bondage",
    "abusive_conditions",
    "excessive_overtime",
    "minor_present",
    "signs_of_coercion",
    "recruitment_fees",
];
const REFERRAL_KINDS: &[&str] = &[
    "shelter",
    "medical",
    "psychosocial",
    "legal_aid",
    "hotline",
    "labour_inspection",
    "child_protection",
];
const TOPICS: &[&str] = &[
    "recognising_trafficking",
    "safe_migration",
    "safe_recruitment",
    "online_safety",
    "workers_rights",
    "how_to_report",
];
const AUDIENCES: &[&str] = &["students", "parents", "teachers", "migrant_workers"];
const AGE_BANDS: &[&str] = &["12_17", "18_24", "25_59", "60_plus"];
const GENDERS: &[&str] = &["female", "male"];
const NAMES: &[&str] = &[
    "Ana", "Bilal", "Chen", "Dina", "Emeka", "Farah", "Goran", "Hoa", "Ines", "Jomo",
];
/// Sentences that notes are made of (~200 bytes per note).
const PHRASES: &[&str] = &[
    "Group of young men waiting near the gate for a van.",
    "Two women said their passports are kept by the employer.",
    "Recruiter promised restaurant work abroad, fee not repaid.",
    "Workers sleep on site and are not allowed to leave at night.",
    "Shared hotline number and safe migration leaflets.",
    "Teenager selling flowers, adult watching from across the road.",
    "Wages withheld for three months to cover transport debt.",
    "Agreed to meet again on Friday with the legal aid worker.",
    "Owner refused entry; workers looked tired and frightened.",
    "Family asked about a job offer received through social media.",
];

/// Samples of one operation.
struct Samples(Vec<Duration>);

impl Samples {
    fn quantile(&self, q: f64) -> Duration {
        let mut v = self.0.clone();
        v.sort();
        let i = ((v.len() - 1) as f64 * q).round() as usize;
        v[i]
    }
    fn median(&self) -> Duration {
        self.quantile(0.5)
    }
    fn p90(&self) -> Duration {
        self.quantile(0.9)
    }
}

/// Times `f` `reps` times.
fn measure(reps: usize, mut f: impl FnMut(usize)) -> Samples {
    Samples(
        (0..reps)
            .map(|i| {
                let t = Instant::now();
                f(i);
                t.elapsed()
            })
            .collect(),
    )
}

fn fmt_time(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 10.0 {
        format!("{ms:.3} ms")
    } else if ms < 10_000.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

fn fmt_bytes(b: u64) -> String {
    let b = b as f64;
    if b < 1024.0 {
        format!("{b:.0} B")
    } else if b < 1024.0 * 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{:.1} MiB", b / 1024.0 / 1024.0)
    }
}

/// One line of the result table.
struct Line {
    what: String,
    median: String,
    p90: String,
    target: String,
    verdict: &'static str,
}

#[derive(Default)]
struct Table(Vec<Line>);

impl Table {
    fn time(&mut self, what: &str, s: &Samples, target: Option<Duration>) {
        let verdict = match target {
            Some(t) if s.median() <= t => "met",
            Some(_) => "MISSED",
            None => "",
        };
        self.0.push(Line {
            what: what.into(),
            median: fmt_time(s.median()),
            p90: fmt_time(s.p90()),
            target: target
                .map(|t| format!("< {}", fmt_time(t)))
                .unwrap_or_default(),
            verdict,
        });
        self.progress();
    }

    fn figure(&mut self, what: &str, value: String, target: &str, verdict: &'static str) {
        self.0.push(Line {
            what: what.into(),
            median: value,
            p90: String::new(),
            target: target.into(),
            verdict,
        });
        self.progress();
    }

    /// Echoes the latest line to stderr, so a long run shows where it is.
    fn progress(&self) {
        if let Some(l) = self.0.last() {
            eprintln!("  {}: {} {}", l.what, l.median, l.p90);
        }
    }

    fn print(&self, title: &str) {
        let w0 = self
            .0
            .iter()
            .map(|l| l.what.chars().count())
            .max()
            .unwrap_or(0);
        let w1 = self
            .0
            .iter()
            .map(|l| l.median.len())
            .max()
            .unwrap_or(0)
            .max(6);
        let w2 = self.0.iter().map(|l| l.p90.len()).max().unwrap_or(0).max(3);
        let w3 = self
            .0
            .iter()
            .map(|l| l.target.len())
            .max()
            .unwrap_or(0)
            .max(6);
        println!("\n{title}\n");
        println!(
            "| {:<w0$} | {:>w1$} | {:>w2$} | {:<w3$} | result |",
            "measurement", "median", "p90", "target"
        );
        println!(
            "|{}|{}:|{}:|{}|--------|",
            "-".repeat(w0 + 2),
            "-".repeat(w1 + 1),
            "-".repeat(w2 + 1),
            "-".repeat(w3 + 2)
        );
        for l in &self.0 {
            println!(
                "| {:<w0$} | {:>w1$} | {:>w2$} | {:<w3$} | {:<6} |",
                l.what, l.median, l.p90, l.target, l.verdict
            );
        }
    }
}

/// About 200 bytes of notes made of a few sentences, sometimes with a rare word.
fn notes(rng: &mut StdRng) -> String {
    let mut s = String::new();
    while s.len() < 180 {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(PHRASES.choose(rng).unwrap());
    }
    if rng.random_ratio(1, 100) {
        s.push_str(" Mentioned a broker called Zanzibarco.");
    }
    s
}

fn new_visit(rng: &mut StdRng, i: usize) -> NewVisit {
    let area = AREAS.choose(rng).unwrap();
    let how_many = rng.random_range(0..=3);
    let mut indicators: Vec<String> = INDICATORS
        .choose_multiple(rng, how_many)
        .map(|s| s.to_string())
        .collect();
    indicators.shuffle(rng);
    let referrals = if rng.random_ratio(1, 5) {
        vec![NewReferral {
            kind: REFERRAL_KINDS.choose(rng).unwrap().to_string(),
            to: "City support centre".into(),
            status: ReferralStatus::Made,
        }]
    } else {
        Vec::new()
    };
    let follow_up = if rng.random_ratio(1, 4) {
        FollowUp {
            needed: true,
            due: Some(format!(
                "2026-{:02}-{:02}",
                rng.random_range(1..=12),
                rng.random_range(1..=28)
            )),
            done: rng.random_ratio(1, 2),
        }
    } else {
        FollowUp::default()
    };
    NewVisit {
        place: Place {
            name: format!("{area} site {}", i % 97),
            area: area.to_string(),
            coordinates: rng.random_ratio(1, 10).then(|| Coordinates {
                lat: rng.random_range(-30.0..30.0),
                lon: rng.random_range(-100.0..100.0),
                precision: 3,
            }),
        },
        occurred_at: JAN_2025 + rng.random_range(0..730 * DAY),
        visit_type: VISIT_TYPES.choose(rng).unwrap().to_string(),
        people_reached: rng.random_range(0..25),
        indicators,
        referrals,
        follow_up,
        tags: if rng.random_ratio(1, 8) {
            vec!["night".into()]
        } else {
            Vec::new()
        },
        sensitivity: if rng.random_ratio(1, 10) {
            Sensitivity::Restricted
        } else {
            Sensitivity::Normal
        },
        notes: notes(rng),
    }
}

fn new_workshop(rng: &mut StdRng, i: usize) -> NewWorkshop {
    let topic = TOPICS.choose(rng).unwrap();
    NewWorkshop {
        title: format!("Awareness session {i} on {}", topic.replace('_', " ")),
        topic: topic.to_string(),
        occurred_at: JAN_2025 + rng.random_range(0..730 * DAY),
        duration_minutes: 90,
        venue: "Community hall".into(),
        area: AREAS.choose(rng).unwrap().to_string(),
        audience: AUDIENCES.choose(rng).unwrap().to_string(),
        language: "en".into(),
        facilitators: vec![NAMES.choose(rng).unwrap().to_string()],
        sensitivity: Sensitivity::Normal,
        notes: notes(rng),
    }
}

/// Seeds `n` records: one in 25 a workshop with named attendees and tallies, the rest visits.
/// Returns (calls made, visit ids).
fn seed(store: &Store, ws: &str, n: usize, rng: &mut StdRng) -> (usize, Vec<String>) {
    let mut calls = 0;
    let mut visits = Vec::new();
    for i in 0..n {
        if i % 25 == 24 {
            let w = store.create_workshop(ws, &new_workshop(rng, i)).unwrap();
            calls += 1;
            for _ in 0..rng.random_range(0..=8) {
                let a = NewAttendee {
                    name: NAMES.choose(rng).unwrap().to_string(),
                    age_band: Some(AGE_BANDS.choose(rng).unwrap().to_string()),
                    gender: Some(GENDERS.choose(rng).unwrap().to_string()),
                    ..Default::default()
                };
                store.check_in(&w, &a).unwrap();
                calls += 1;
            }
            if rng.random_ratio(1, 2) {
                let band = AGE_BANDS.choose(rng).unwrap();
                let gender = GENDERS.choose(rng).unwrap();
                store
                    .add_to_tally(&w, band, gender, rng.random_range(1..20))
                    .unwrap();
                calls += 1;
            }
        } else {
            visits.push(store.create_visit(ws, &new_visit(rng, i)).unwrap());
            calls += 1;
        }
        if n >= 1000 && (i + 1) % (n / 10) == 0 {
            eprintln!("  seeded {}/{n}", i + 1);
        }
    }
    (calls, visits)
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Bytes of the database file and its write-ahead log.
fn store_bytes(p: &Path) -> (u64, u64) {
    (file_len(p), file_len(&with_suffix(p, "-wal")))
}

/// Moves the write-ahead log into the database file (what SQLite does by itself from time to
/// time), through a connection of its own; the store's connections are idle.
fn checkpoint_wal(p: &Path) {
    let conn = rusqlite::Connection::open(p).unwrap();
    conn.execute_batch(&format!("PRAGMA key = \"x'{}'\";", hex::encode(KEY)))
        .unwrap();
    let (busy, _, _): (i64, i64, i64) = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(busy, 0, "checkpoint blocked by a reader");
}

/// How long a 4 KiB write plus `fdatasync` takes on the disk under `dir` (what every commit
/// pays at least once with `synchronous = FULL`).
fn fsync_cost(dir: &Path, reps: usize) -> Samples {
    let p = dir.join("fsync-probe");
    let mut f = File::create(&p).unwrap();
    let block = [0x17u8; 4096];
    let s = measure(reps, |_| {
        f.write_all(&block).unwrap();
        f.sync_data().unwrap();
    });
    drop(f);
    let _ = std::fs::remove_file(&p);
    s
}

/// `VmRSS` and `VmHWM` of this process, in bytes.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The 1-minute load average: other work on the machine skews every figure.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(String::from))
        .unwrap_or_else(|| "?".into())
}

/// The memory child: opens the store, lists and searches like an app's first screens, and
/// prints its memory after each step as `mem <step> <rss> <hwm>`.
fn memory_child(path: &str) {
    let report = |step: &str| {
        let (rss, hwm) = memory();
        println!("mem {step} {rss} {hwm}");
    };
    report("start");
    let store = Store::open(path, &KEY).unwrap();
    report("open");
    let page = store.list_visits(&VisitFilter::default()).unwrap();
    let _ = store.get_visit(&page[0].id).unwrap();
    report("list100");
    let all = store
        .list_visits(&VisitFilter {
            limit: Some(10_000),
            ..Default::default()
        })
        .unwrap();
    let _ = store.list_workshops(&WorkshopFilter::default()).unwrap();
    let _ = store.search("passports", 100).unwrap();
    report("listall");
    drop(all);
}

/// Runs the memory child on `path` and returns its figures by step.
fn measure_memory(path: &Path) -> Vec<(String, u64, u64)> {
    let out = Command::new(std::env::current_exe().unwrap())
        .env(MEMORY_CHILD_ENV, path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "memory child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            match w[..] {
                ["mem", step, rss, hwm] => {
                    Some((step.into(), rss.parse().ok()?, hwm.parse().ok()?))
                }
                _ => None,
            }
        })
        .collect()
}

fn main() {
    if let Ok(path) = std::env::var(MEMORY_CHILD_ENV) {
        memory_child(&path);
        return;
    }
    // `cargo bench` passes `--bench`; anything else (cargo test --benches) gets a smoke run.
    let full = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var(RECORDS_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if full { 10_000 } else { 200 });
    let reps = if full { 300 } else { 10 };
    let few = if full { 10 } else { 2 };

    let load_before = load_average();
    let tmp = match std::env::var(DIR_ENV) {
        Ok(d) => tempfile::tempdir_in(d),
        Err(_) => tempfile::tempdir(),
    }
    .unwrap();
    let path = tmp.path().join("bench.db");
    let mut t = Table::default();
    let mut rng = StdRng::seed_from_u64(0x5eed);
    eprintln!(
        "waymark-core store bench: {n} records in {}",
        tmp.path().display()
    );

    // ---- seeding ----
    let store = Store::open(&path, &KEY).unwrap();
    let ws = store.create_workspace("Bench team").unwrap().id;
    let started = Instant::now();
    let (calls, visit_ids) = seed(&store, &ws, n, &mut rng);
    let took = started.elapsed();
    t.figure(
        &format!("seed {n} records ({calls} calls, one commit each)"),
        fmt_time(took),
        "",
        "",
    );
    t.figure(
        "seeding rate",
        format!(
            "{:.0} records/s ({:.3} ms/call)",
            n as f64 / took.as_secs_f64(),
            took.as_secs_f64() * 1e3 / calls as f64
        ),
        "",
        "",
    );

    // ---- on-disk size ----
    let (db, wal) = store_bytes(&path);
    t.figure(
        "on-disk: database + WAL as left by seeding",
        format!(
            "{} + {} ({:.0} B/record)",
            fmt_bytes(db),
            fmt_bytes(wal),
            (db + wal) as f64 / n as f64
        ),
        "",
        "",
    );
    checkpoint_wal(&path);
    let (db, wal) = store_bytes(&path);
    t.figure(
        "on-disk bytes per record (after WAL checkpoint)",
        format!(
            "{:.0} B/record ({} total)",
            (db + wal) as f64 / n as f64,
            fmt_bytes(db + wal)
        ),
        "",
        "",
    );

    // ---- reads ----
    let list = |f: VisitFilter| {
        let store = store.clone();
        move |_| {
            let rows = store.list_visits(&f).unwrap();
            assert!(!rows.is_empty());
        }
    };
    let hundred = VisitFilter {
        limit: Some(100),
        ..Default::default()
    };
    t.time(
        &format!("list 100 newest visits of {n}"),
        &measure(reps, list(hundred.clone())),
        Some(Duration::from_millis(5)),
    );
    t.time(
        &format!("list 100 of {n}, filter area"),
        &measure(
            reps,
            list(VisitFilter {
                area: Some("Port".into()),
                ..hundred.clone()
            }),
        ),
        Some(Duration::from_millis(5)),
    );
    t.time(
        &format!("list 100 of {n}, filter indicator + date range"),
        &measure(
            reps,
            list(VisitFilter {
                indicator: Some("debt_bondage".into()),
                from: Some(JAN_2025 + 100 * DAY),
                to: Some(JAN_2025 + 500 * DAY),
                ..hundred.clone()
            }),
        ),
        Some(Duration::from_millis(5)),
    );
    t.time(
        &format!("list 100 of {n}, overdue follow-ups"),
        &measure(
            reps,
            list(VisitFilter {
                follow_up: Some(FollowUpFilter::OverdueOn("2026-12-31".into())),
                ..hundred.clone()
            }),
        ),
        Some(Duration::from_millis(5)),
    );
    t.time(
        &format!("list 100 of {n}, page at offset {}", n / 2),
        &measure(
            reps,
            list(VisitFilter {
                offset: Some(u32::try_from(n / 2).unwrap()),
                ..hundred.clone()
            }),
        ),
        Some(Duration::from_millis(5)),
    );
    t.time(
        &format!("full-text search in {n}: common word, 100 hits"),
        &measure(reps, |_| {
            assert!(!store.search("passports", 100).unwrap().is_empty());
        }),
        None,
    );
    t.time(
        &format!("full-text search in {n}: rare word prefix"),
        &measure(reps, |_| {
            let _ = store.search("zanzib", 100).unwrap();
        }),
        None,
    );
    t.time(
        "read one visit (get_visit, document decoded)",
        &measure(reps, |i| {
            let id = &visit_ids[(i * 7919) % visit_ids.len()];
            let _ = store.get_visit(id).unwrap();
        }),
        None,
    );

    // ---- writes ----
    t.time(
        "context: 4 KiB write + fdatasync on this disk",
        &fsync_cost(tmp.path(), reps),
        None,
    );
    t.time(
        &format!("record a visit with notes (committed), store of {n}"),
        &measure(reps, |i| {
            let v = new_visit(&mut rng, n + i);
            store.create_visit(&ws, &v).unwrap();
        }),
        Some(Duration::from_millis(1)),
    );
    let mut long_notes = String::new();
    while long_notes.len() < 5000 {
        long_notes.push_str(&notes(&mut rng));
        long_notes.push('\n');
    }
    let mut v = new_visit(&mut rng, 0);
    v.notes = long_notes.clone();
    let long = store.create_visit(&ws, &v).unwrap();
    t.time(
        &format!(
            "update a note of {} B (small change, committed)",
            long_notes.len()
        ),
        &measure(reps, |i| {
            // Type a few characters at a random place, as a worker correcting a note would.
            let mut at = rng.random_range(0..long_notes.len());
            while !long_notes.is_char_boundary(at) {
                at -= 1;
            }
            long_notes.insert_str(at, &format!(" ok{i}"));
            store.set_visit_notes(&long, &long_notes).unwrap();
        }),
        None,
    );
    t.time(
        "read + append to notes of a visit not in the cache",
        &measure(reps, |i| {
            let id = &visit_ids[(i * 104_729 + 13) % visit_ids.len()];
            let notes = store.get_visit(id).unwrap().notes;
            store
                .set_visit_notes(id, &format!("{notes} Seen again."))
                .unwrap();
        }),
        None,
    );

    // ---- export / import ----
    let mut bundle = Vec::new();
    let export = measure(few.min(3), |_| {
        bundle = store.export_changes(None).unwrap();
    });
    t.time(
        &format!("export everything ({} records)", n + reps + 1),
        &export,
        None,
    );
    t.figure(
        "export bundle size",
        format!(
            "{} ({:.0} B/record)",
            fmt_bytes(bundle.len() as u64),
            bundle.len() as f64 / (n + reps + 1) as f64
        ),
        "",
        "",
    );
    let import = Samples(
        (0..few.min(3))
            .map(|i| {
                let other = Store::open(tmp.path().join(format!("import-{i}.db")), &KEY).unwrap();
                // A bundle is sealed with the workspace key: join first (no server involved).
                other
                    .join(&store.create_invite(&ws, 3600).unwrap())
                    .unwrap();
                let started = Instant::now();
                let r = other.import_changes(&bundle).unwrap();
                let took = started.elapsed();
                assert!(r.changed.len() >= n);
                took
            })
            .collect(),
    );
    t.time(
        "import it into an empty store that joined the workspace",
        &import,
        None,
    );

    // ---- open ----
    drop(store);
    let open = measure(few, |_| {
        let s = Store::open(&path, &KEY).unwrap();
        drop(s);
    });
    t.time(
        &format!("open a store of {n} records"),
        &open,
        Some(Duration::from_millis(200)),
    );
    let open_list = measure(few, |_| {
        let s = Store::open(&path, &KEY).unwrap();
        assert_eq!(s.list_visits(&hundred).unwrap().len(), 100.min(n));
    });
    t.time("open + first list of 100", &open_list, None);

    // ---- memory ----
    let mem = measure_memory(&path);
    let get = |step: &str| {
        mem.iter()
            .find(|(s, _, _)| s == step)
            .map(|&(_, rss, hwm)| (rss, hwm))
            .unwrap_or_default()
    };
    let (rss0, _) = get("start");
    let (rss1, _) = get("open");
    let (rss2, hwm2) = get("list100");
    let (rss3, hwm3) = get("listall");
    let fifty = 50 * 1024 * 1024;
    t.figure(
        "memory: process before opening (VmRSS)",
        fmt_bytes(rss0),
        "",
        "",
    );
    t.figure("memory: after open (VmRSS)", fmt_bytes(rss1), "", "");
    t.figure(
        "memory: after open + list 100 + read one (VmRSS / VmHWM)",
        format!("{} / {}", fmt_bytes(rss2), fmt_bytes(hwm2)),
        "< 50 MiB",
        if hwm2 < fifty { "met" } else { "MISSED" },
    );
    t.figure(
        &format!("memory: after listing all {n} + search (VmRSS / VmHWM)"),
        format!("{} / {}", fmt_bytes(rss3), fmt_bytes(hwm3)),
        "< 50 MiB",
        if hwm3 < fifty { "met" } else { "MISSED" },
    );

    t.print(&format!(
        "waymark-core store, {n} records ({} build, {} CPUs, load average {} before / {} after), \
         {reps} samples per timing",
        if cfg!(debug_assertions) {
            "DEBUG"
        } else {
            "release"
        },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_before,
        load_average(),
    ));
}
