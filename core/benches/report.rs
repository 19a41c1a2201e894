//! Report and export benchmark: prints how long a coordinator waits for the figures of a store
//! holding N records (default 10,000: visits, and one in ten a workshop with attendees, tallies
//! and feedback), next to the target of under 100 ms.
//!
//! ```text
//! cargo bench -p waymark-core --bench report
//! WAYMARK_BENCH_RECORDS=50000 cargo bench -p waymark-core --bench report
//! ```
//!
//! Run without `--bench` (e.g. `cargo test --benches`), it does a quick smoke run on 200
//! records. The store is seeded on `/dev/shm` when it exists (`WAYMARK_BENCH_DIR` to choose):
//! seeding commits every record with an fsync, which a RAM disk makes cheap; reports only read,
//! and the pages they read are in the page cache either way.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use waymark_core::*;

const KEY: [u8; 32] = [0x5a; 32];
/// 2025-01-01T00:00:00Z in ms.
const JAN_2025: i64 = 1_735_689_600_000;
const DAY: i64 = 86_400_000;
const TARGET: Duration = Duration::from_millis(100);

const AREAS: &[&str] = &[
    "North", "South", "East", "West", "Central", "Port", "Border",
];
const TYPES: &[&str] = &[
    "street_outreach",
    "worksite_visit",
    "home_visit",
    "shelter_visit",
    "transit_point",
    "online_outreach",
    "follow_up",
];
const INDICATORS: &[&str] = &[
    "deception",
    "debt_bondage",
    "isolation",
    "retention_of_documents",
    "withholding_of_wages",
    "abusive_conditions",
    "minor_present",
];
const KINDS: &[&str] = &["shelter", "medical", "legal_aid", "hotline", "livelihood"];
const TOPICS: &[&str] = &["safe_migration", "online_safety", "workers_rights"];
const AUDIENCES: &[&str] = &["students", "parents", "migrant_workers"];
const BANDS: &[&str] = &["12_17", "18_24", "25_59", "60_plus"];
const GENDERS: &[&str] = &["female", "male", "another_gender"];

fn seed(store: &Store, ws: &str, n: usize, rng: &mut StdRng) {
    for i in 0..n {
        let at = JAN_2025 + rng.random_range(0..730 * DAY);
        let area = AREAS.choose(rng).unwrap().to_string();
        if i % 10 == 9 {
            let id = store
                .create_workshop(
                    ws,
                    &NewWorkshop {
                        title: format!("Session {i}"),
                        topic: TOPICS.choose(rng).unwrap().to_string(),
                        occurred_at: at,
                        duration_minutes: 90,
                        venue: "Hall".into(),
                        area,
                        audience: AUDIENCES.choose(rng).unwrap().to_string(),
                        language: "en".into(),
                        ..Default::default()
                    },
                )
                .unwrap();
            for j in 0..rng.random_range(0..4) {
                store
                    .check_in(
                        &id,
                        &NewAttendee {
                            name: format!("Attendee {j}"),
                            age_band: Some(BANDS.choose(rng).unwrap().to_string()),
                            gender: Some(GENDERS.choose(rng).unwrap().to_string()),
                            ..Default::default()
                        },
                    )
                    .unwrap();
            }
            let (b, g) = (BANDS.choose(rng).unwrap(), GENDERS.choose(rng).unwrap());
            store
                .add_to_tally(&id, b, g, rng.random_range(1..30))
                .unwrap();
            store
                .add_feedback(&id, rng.random_range(1..=5), "useful")
                .unwrap();
        } else {
            let needed = rng.random_ratio(1, 4);
            let how_many = rng.random_range(0..=3);
            store
                .create_visit(
                    ws,
                    &NewVisit {
                        place: Place {
                            name: format!("{area} site {}", i % 97),
                            area,
                            coordinates: None,
                        },
                        occurred_at: at,
                        visit_type: TYPES.choose(rng).unwrap().to_string(),
                        people_reached: rng.random_range(0..25),
                        indicators: INDICATORS
                            .choose_multiple(rng, how_many)
                            .map(|s| s.to_string())
                            .collect(),
                        referrals: (0..rng.random_range(0..=2))
                            .map(|_| NewReferral {
                                kind: KINDS.choose(rng).unwrap().to_string(),
                                to: "Partner".into(),
                                status: ReferralStatus::Made,
                            })
                            .collect(),
                        follow_up: FollowUp {
                            needed,
                            due: needed.then(|| {
                                format!(
                                    "2026-{:02}-{:02}",
                                    rng.random_range(1..=12),
                                    rng.random_range(1..=28)
                                )
                            }),
                            done: needed && rng.random_ratio(1, 2),
                        },
                        sensitivity: if rng.random_ratio(1, 10) {
                            Sensitivity::Restricted
                        } else {
                            Sensitivity::Normal
                        },
                        notes: "Met workers at the gate.".into(),
                        ..Default::default()
                    },
                )
                .unwrap();
        }
    }
}

/// Median and 90th percentile of `reps` runs of `f`.
fn measure(reps: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    let mut v: Vec<Duration> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    v.sort();
    let q = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (q(0.5), q(0.9))
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("WAYMARK_BENCH_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if full { 10_000 } else { 200 });
    let reps = if full { 50 } else { 3 };
    let tmp = match std::env::var("WAYMARK_BENCH_DIR") {
        Ok(d) => tempfile::tempdir_in(d),
        Err(_) if std::path::Path::new("/dev/shm").is_dir() => tempfile::tempdir_in("/dev/shm"),
        Err(_) => tempfile::tempdir(),
    }
    .unwrap();
    let store = Store::open(tmp.path().join("bench.db"), &KEY).unwrap();
    let ws = store.create_workspace("Bench team").unwrap().id;
    let mut rng = StdRng::seed_from_u64(0x7e9047);
    eprintln!("waymark-core report bench: seeding {n} records");
    let started = Instant::now();
    seed(&store, &ws, n, &mut rng);
    eprintln!("seeded in {:.1} s", started.elapsed().as_secs_f64());
    let me = store.actor();

    let filters: [(&str, ReportFilter); 5] = [
        ("everything (24 months)", ReportFilter::default()),
        (
            "one quarter",
            ReportFilter {
                from: Some(JAN_2025 + 181 * DAY),
                to: Some(JAN_2025 + 273 * DAY),
                ..Default::default()
            },
        ),
        (
            "one area",
            ReportFilter {
                area: Some("Port".into()),
                ..Default::default()
            },
        ),
        (
            "one topic",
            ReportFilter {
                topic: Some("online_safety".into()),
                ..Default::default()
            },
        ),
        (
            "one worker, one year",
            ReportFilter {
                worker: Some(me),
                from: Some(JAN_2025),
                to: Some(JAN_2025 + 365 * DAY),
                ..Default::default()
            },
        ),
    ];
    let build = if full { "cargo bench" } else { "smoke run" };
    println!("\nReport over {n} records ({build}; median / p90 of {reps} runs)\n");
    println!("| report | median | p90 | target |");
    println!("| --- | ---: | ---: | --- |");
    for (what, f) in &filters {
        let r = store.report(f).unwrap();
        assert!(r.visits.visits > 0 || n < 50, "{what}: no visits");
        let (p50, p90) = measure(reps, || {
            store.report(f).unwrap();
        });
        let verdict = if p50 < TARGET { "met" } else { "MISSED" };
        println!(
            "| {what} ({} visits, {} workshops, {} months) | {} | {} | < 100 ms: {verdict} |",
            r.visits.visits,
            r.workshops.workshops,
            r.months.len(),
            ms(p50),
            ms(p90)
        );
    }
    let few = if full { 5 } else { 1 };
    let out = tempfile::tempdir().unwrap();
    let opts = ExportOptions::default();
    let (csv, _) = measure(few, || {
        store.export_csv(out.path().join("csv"), &opts).unwrap();
    });
    let (xlsx, _) = measure(few, || {
        store.export_xlsx(out.path().join("t.xlsx"), &opts).unwrap();
    });
    println!("| export everything as CSV files | {} | | |", ms(csv));
    println!(
        "| export everything as one XLSX workbook | {} | | |",
        ms(xlsx)
    );
}
