//! How soon the alarm is raised once a safety check-in is overdue: from the moment its deadline
//! and grace period have passed to (a) the operator's alert hook running and (b) a teammate's
//! phone, syncing every 100 ms, showing it overdue. A real server process on loopback with a
//! one-second grace period and a hook that writes the time it ran. Prints figures; asserts
//! nothing about time.
//!
//! Run: `cargo bench -p waymark-e2e --bench check_ins` (env `WAYMARK_BENCH_RUNS`, default 10
//! check-ins, one after another).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::*;
use waymark_core::{CheckInDetails, CheckInState};

const GRACE_MS: i64 = 1_000;

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

fn median(mut v: Vec<i64>) -> i64 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn main() {
    let runs: usize = std::env::var("WAYMARK_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let dir = tempfile::tempdir().unwrap();
    let alerts = dir.path().join("alerts.txt");
    let hook = dir.path().join("alert.sh");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\necho \"$WAYMARK_CHECK_IN $(date +%s%3N)\" >> '{}'\n",
            alerts.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let data = dir.path().join("server");
    std::fs::create_dir_all(&data).unwrap();
    let server = Server::start_with(
        &data,
        &[
            "--check-in-grace",
            "1s",
            "--alert-command",
            &hook.display().to_string(),
            "--rate-limit",
            "0",
        ],
    );
    let (_, token) = server.workspace_and_token();
    let (team, ws) = team(&server.url(), &token, &["Coordinator", "Amina"]);
    let (coordinator, amina) = (&team[0], &team[1]);

    let (mut to_hook, mut to_team) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        // On a whole second: the server keeps deadlines to the second (a check-in due at
        // 12:00:00.700 is watched from 12:00:00), which would read as an alarm raised early.
        let expected_back = (now_ms() / 1_000 + 2) * 1_000;
        let started = amina
            .store
            .start_check_in(&ws, expected_back, &CheckInDetails::default())
            .unwrap();
        let due = expected_back + GRACE_MS;
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = None;
        let mut ran = None;
        while seen.is_none() || ran.is_none() {
            assert!(Instant::now() < deadline, "no alert within 30 s");
            if seen.is_none() {
                coordinator.sync_until_ok();
                let state = coordinator
                    .store
                    .check_ins(&ws)
                    .unwrap()
                    .into_iter()
                    .find(|c| c.id == started.id)
                    .map(|c| c.state);
                if state == Some(CheckInState::Overdue) {
                    seen = Some(now_ms());
                }
            }
            if ran.is_none() {
                ran = std::fs::read_to_string(&alerts)
                    .unwrap_or_default()
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("{} ", started.id))?.parse().ok());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        to_team.push(seen.unwrap_or(due) - due);
        to_hook.push(ran.unwrap_or(due) - due);
        amina.store.close_check_in(&started.id, None).unwrap();
    }
    println!(
        "Check-in alarm latency past deadline + grace ({runs} check-ins, loopback, 1 s grace):"
    );
    println!(
        "  the operator's hook runs: median {} ms, worst {} ms",
        median(to_hook.clone()),
        to_hook.iter().max().unwrap()
    );
    println!(
        "  a teammate's phone syncing every 100 ms shows it overdue: median {} ms, worst {} ms \
         (by its own clock once the grace has passed, or at the sync after the server marks it)",
        median(to_team.clone()),
        to_team.iter().max().unwrap()
    );
}
