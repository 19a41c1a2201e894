//! Helpers shared by the store's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use waymark_core::*;

/// A store key for tests.
pub const KEY: [u8; 32] = [0x42; 32];

/// 2026-11-01T09:00:00Z in ms.
pub const NOV_1: i64 = 1_793_523_600_000;
/// One day in ms.
pub const DAY: i64 = 86_400_000;

/// A temp dir with a store file path inside.
pub struct TempStore {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

pub fn temp_path() -> TempStore {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("waymark.db");
    TempStore { dir, path }
}

pub fn open(path: &Path) -> Store {
    Store::open(path, &KEY).unwrap()
}

/// A fresh store with one workspace.
pub fn store_with_workspace() -> (TempStore, Store, String) {
    let t = temp_path();
    let s = open(&t.path);
    let ws = s.create_workspace("North district").unwrap();
    (t, s, ws.id)
}

pub fn visit(place: &str, area: &str, at: i64) -> NewVisit {
    NewVisit {
        place: Place {
            name: place.into(),
            area: area.into(),
            coordinates: None,
        },
        occurred_at: at,
        visit_type: "street_outreach".into(),
        people_reached: 3,
        indicators: vec!["deception".into()],
        notes: String::new(),
        ..Default::default()
    }
}

pub fn workshop(title: &str, topic: &str, at: i64) -> NewWorkshop {
    NewWorkshop {
        title: title.into(),
        topic: topic.into(),
        occurred_at: at,
        duration_minutes: 90,
        venue: "Community hall".into(),
        area: "North".into(),
        audience: "students".into(),
        language: "en".into(),
        facilitators: vec!["Ana".into()],
        ..Default::default()
    }
}

/// Exchanges everything both ways between two stores.
pub fn sync_pair(a: &Store, b: &Store) {
    let to_b = a.export_changes(Some(&b.checkpoint().unwrap())).unwrap();
    b.import_changes(&to_b).unwrap();
    let to_a = b.export_changes(Some(&a.checkpoint().unwrap())).unwrap();
    a.import_changes(&to_a).unwrap();
}

/// Makes `b` a member of `a`'s local workspace `ws` with an invite code (no server).
pub fn join(b: &Store, a: &Store, ws: &str) {
    b.join(&a.create_invite(ws, 3600).unwrap()).unwrap();
}

/// A child process that is killed (SIGKILL) and reaped when dropped, so a failing parent test
/// never leaves it running.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Re-runs this test binary as a child running only the test `name`, with `env` set; returns
/// the child and its stdout, line by line, as it arrives. The crash tests use it to kill a
/// process at a random instant of its work.
pub fn spawn_test_child(
    name: &str,
    env: &[(&str, &std::ffi::OsStr)],
) -> (KillOnDrop, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", name, "--nocapture", "--test-threads=1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = KillOnDrop(cmd.spawn().unwrap());
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}
