//! What the CLI's end-to-end tests share: a real `waymark-server` process on loopback with a
//! workspace, phones made with `waymark-core`, and the real `waymark` binary run on a store of
//! its own, joined to the team as a coordinator.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

use serde_json::Value;
use waymark_core::*;

pub const WAYMARK: &str = env!("CARGO_BIN_EXE_waymark");
pub const PASSPHRASE: &str = "correct horse battery staple";

/// The sync server binary, built next to this test's `waymark` (same profile, same target).
pub fn server_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = Path::new(WAYMARK).parent().unwrap();
        let mut build = Command::new(env!("CARGO"));
        build.args(["build", "--quiet", "-p", "waymark-server"]);
        if dir.ends_with("release") {
            build.arg("--release");
        }
        assert!(build.status().unwrap().success(), "building waymark-server");
        dir.join("waymark-server")
    })
}

pub fn admin(data: &Path, args: &[&str]) -> Value {
    let out = Command::new(server_bin())
        .arg("--data-dir")
        .arg(data)
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A server process, killed on drop.
pub struct Server {
    child: Child,
    /// Where it listens.
    pub url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_server(data: &Path) -> Server {
    let mut child = Command::new(server_bin())
        .arg("--data-dir")
        .arg(data)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = lines
        .by_ref()
        .take(5)
        .filter_map(|l| l.ok())
        .find_map(|l| {
            l.strip_prefix("listening on ")
                .map(|a| a.trim().to_string())
        })
        .expect("the server printed where it listens");
    std::thread::spawn(move || for _ in lines {});
    Server { child, url }
}

/// A server with its data in `data`, a workspace on it, and a token that enrols its first
/// (coordinator's) device.
pub fn server_with_workspace(data: &Path) -> (Server, String) {
    let server = start_server(data);
    let ws = admin(data, &["workspace", "create", "--name", "Team"]);
    let token = admin(
        data,
        &[
            "token",
            "issue",
            "--workspace",
            ws["id"].as_str().unwrap(),
            "--ttl",
            "1h",
        ],
    );
    (server, token["token"].as_str().unwrap().to_string())
}

/// Runs `waymark` with the store in `dir`, the passphrase in the environment.
pub fn waymark(dir: &Path, args: &[&str]) -> Output {
    Command::new(WAYMARK)
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env("WAYMARK_PASSPHRASE", PASSPHRASE)
        .output()
        .unwrap()
}

pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "waymark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn json(dir: &Path, args: &[&str]) -> Value {
    serde_json::from_str(&ok(waymark(dir, args))).unwrap()
}

/// The CLI's store joined, as a coordinator, to the synced workspace `ws` of `phone`, and admitted
/// by the phone's next sync: the folder that holds it, and the store's path.
pub fn laptop_coordinator(phone: &Store, ws: &str) -> (tempfile::TempDir, PathBuf) {
    let cli = tempfile::tempdir().unwrap();
    let dir = cli.path().join("store");
    let code = phone
        .create_invite_with_role(ws, 3600, "coordinator")
        .unwrap();
    ok(waymark(&dir, &["join", &code]));
    json(&dir, &["sync", "--json"]);
    phone.sync().unwrap();
    (cli, dir)
}

pub fn phone(name: &str) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("waymark.db"), &rand::random::<[u8; 32]>()).unwrap();
    store.set_device_name(name).unwrap();
    (dir, store)
}
