//! The load tool (`waymark-load`) run small on SQLite with a server process killed (SIGKILL)
//! and restarted mid-run: it must end converged with every acknowledged blob present.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

#[test]
fn a_small_load_run_with_a_killed_server_ends_verified() {
    let out = Command::new(env!("CARGO_BIN_EXE_waymark-load"))
        .args(["--devices", "30", "--rounds", "3", "--kill-every", "1"])
        .args(["--max-seconds", "120"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("verified: ") && l.contains("all 30 devices converged")),
        "{stdout}"
    );
    // At least one process was killed and came back during the run.
    let kills = stdout
        .lines()
        .find_map(|l| l.strip_prefix("kills: "))
        .unwrap_or_else(|| panic!("no kills line in {stdout}"));
    assert!(!kills.starts_with("0 "), "{stdout}");
    assert!(stdout.contains("latency: push p50"), "{stdout}");
}
