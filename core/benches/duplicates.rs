//! Duplicate attendees benchmark: how long a check-in waits for `possible_duplicates` against
//! a workspace of N named attendees (default 100,000, in workshops of 25), next to the target
//! of under 50 ms, and how long `duplicate_attendees` takes to flag the pairs of the whole
//! workspace. Names are made of random syllables, one in fifty typed again with a typo, in
//! another order or without accents, as two educators at one door would.
//!
//! ```text
//! cargo bench -p waymark-core --bench duplicates
//! WAYMARK_BENCH_ATTENDEES=20000 cargo bench -p waymark-core --bench duplicates
//! ```
//!
//! Run without `--bench` (e.g. `cargo test --benches`), it does a quick smoke run on 500
//! attendees. The store is seeded on `/dev/shm` when it exists (`WAYMARK_BENCH_DIR` to choose).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use waymark_core::*;

const KEY: [u8; 32] = [0x5a; 32];
/// 2025-01-01T00:00:00Z in ms.
const JAN_2025: i64 = 1_735_689_600_000;
const TARGET: Duration = Duration::from_millis(50);
const PER_WORKSHOP: usize = 25;
const SYLLABLES: &[&str] = &[
    "a", "ma", "ri", "lo", "pe", "na", "ko", "fi", "sa", "du", "ye", "ba", "tu", "mi", "ra", "zi",
    "no", "ha", "le", "go", "me", "ya", "di", "ka", "wo", "é", "ñu", "ja", "xi", "ol",
];
const BANDS: &[&str] = &["12_17", "18_24", "25_59", "60_plus"];
const GENDERS: &[&str] = &["female", "male"];

fn word(rng: &mut StdRng) -> String {
    let mut w: String = (0..rng.random_range(2..=3))
        .map(|_| *SYLLABLES.choose(rng).unwrap())
        .collect();
    if let Some(first) = w.get(0..1) {
        w = first.to_uppercase() + &w[1..];
    }
    w
}

/// The same name as an educator in a hurry types it: a letter dropped, the words swapped, or
/// in lower case.
fn retyped(name: &str, rng: &mut StdRng) -> String {
    match rng.random_range(0..3) {
        0 => {
            let chars: Vec<char> = name.chars().collect();
            let at = rng.random_range(1..chars.len());
            chars[..at].iter().chain(&chars[at + 1..]).collect()
        }
        1 => name.split(' ').rev().collect::<Vec<_>>().join(" "),
        _ => name.to_lowercase(),
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("WAYMARK_BENCH_ATTENDEES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 100_000 } else { 500 });
    let base = std::env::var("WAYMARK_BENCH_DIR").unwrap_or_else(|_| {
        match std::path::Path::new("/dev/shm").is_dir() {
            true => "/dev/shm".into(),
            false => std::env::temp_dir().display().to_string(),
        }
    });
    let dir = tempfile::tempdir_in(base).unwrap();
    let store = Store::open(dir.path().join("bench.db"), &KEY).unwrap();
    let ws = store.create_workspace("Bench").unwrap().id;
    let mut rng = StdRng::seed_from_u64(14);

    let seeding = Instant::now();
    let mut names: Vec<(String, &str, &str)> = Vec::with_capacity(n);
    let mut workshop = String::new();
    for i in 0..n {
        if i % PER_WORKSHOP == 0 {
            workshop = store
                .create_workshop(
                    &ws,
                    &NewWorkshop {
                        title: format!("Session {i}"),
                        topic: "safe_migration".into(),
                        occurred_at: JAN_2025 + i as i64 * 60_000,
                        duration_minutes: 90,
                        venue: "Hall".into(),
                        area: "North".into(),
                        audience: "students".into(),
                        language: "en".into(),
                        ..Default::default()
                    },
                )
                .unwrap();
        }
        let (name, band, gender) = match names.choose(&mut rng) {
            Some((name, band, gender)) if rng.random_ratio(1, 50) => {
                (retyped(name, &mut rng), *band, *gender)
            }
            _ => (
                format!("{} {}", word(&mut rng), word(&mut rng)),
                *BANDS.choose(&mut rng).unwrap(),
                *GENDERS.choose(&mut rng).unwrap(),
            ),
        };
        store
            .check_in(
                &workshop,
                &NewAttendee {
                    name: name.clone(),
                    age_band: Some(band.into()),
                    gender: Some(gender.into()),
                    ..Default::default()
                },
            )
            .unwrap();
        names.push((name, band, gender));
    }
    println!(
        "Duplicate attendees benchmark: {n} named attendees in {} workshops (seeded in {:.1} s)",
        n.div_ceil(PER_WORKSHOP),
        seeding.elapsed().as_secs_f64()
    );

    // Lookups as at the door: half people already recorded (retyped), half newcomers.
    let mut times = Vec::new();
    let mut found = 0;
    for i in 0..if benching { 101 } else { 11 } {
        let (name, band, gender) = match i % 2 {
            0 => {
                let (name, band, gender) = names.choose(&mut rng).unwrap();
                (retyped(name, &mut rng), *band, *gender)
            }
            _ => (
                format!("{} {}", word(&mut rng), word(&mut rng)),
                "18_24",
                "female",
            ),
        };
        let attendee = NewAttendee {
            name,
            age_band: Some(band.into()),
            gender: Some(gender.into()),
            ..Default::default()
        };
        let started = Instant::now();
        let matches = store.possible_duplicates(&ws, &attendee).unwrap();
        times.push(started.elapsed());
        found += usize::from(!matches.is_empty());
    }
    let lookups = times.len();
    let lookup = median(times);
    println!(
        "  possible_duplicates, median of {lookups}: {:.1} ms (target under {} ms: {}); {found} \
         of {lookups} lookups found a match",
        lookup.as_secs_f64() * 1000.0,
        TARGET.as_millis(),
        if lookup < TARGET { "met" } else { "NOT met" }
    );
    let started = Instant::now();
    let pairs = store.duplicate_attendees(&ws).unwrap();
    println!(
        "  duplicate_attendees over the whole workspace: {:.0} ms, {} pairs flagged",
        started.elapsed().as_secs_f64() * 1000.0,
        pairs.len()
    );
}
