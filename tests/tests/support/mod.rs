//! What the end-to-end suites share: a real server process, its admin commands, simulated
//! devices (real encrypted stores), and a TCP proxy that injects network faults.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::Value;
use waymark_core::*;

pub const BIN: &str = env!("CARGO_BIN_EXE_e2e-server");
/// 2026-11-01T09:00:00Z in ms.
pub const NOV_1: i64 = 1_793_523_600_000;

/// Runs an admin command on `data_dir` with `--json` and returns its output.
pub fn admin(data_dir: &Path, args: &[&str]) -> Value {
    admin_on(&["--data-dir", &data_dir.display().to_string()], args)
}

/// Runs an admin command with the storage arguments `storage` and `--json`; returns its output.
pub fn admin_on(storage: &[&str], args: &[&str]) -> Value {
    let out = Command::new(BIN)
        .args(storage)
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

/// A running server process; killed on drop.
pub struct Server {
    pub data: PathBuf,
    pub addr: String,
    /// Where it stores: `--data-dir <data>`, or `--database <url>`.
    storage: Vec<String>,
    /// Extra arguments of `serve`, kept for restarts.
    args: Vec<String>,
    child: Option<Child>,
}

impl Server {
    /// Starts a server on a free loopback port with its data in `data`.
    pub fn start(data: &Path) -> Server {
        Self::start_with(data, &[])
    }

    /// Starts a server as [`Server::start`] does, with extra arguments of `serve` (e.g.
    /// `--rate-limit 0`).
    pub fn start_with(data: &Path, args: &[&str]) -> Server {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let storage = vec!["--data-dir".to_string(), data.display().to_string()];
        Self::start_on(data, storage, "127.0.0.1:0", &args)
    }

    /// Starts a server on PostgreSQL at `database_url` (`data` is only for files of the test).
    pub fn start_postgres(data: &Path, database_url: &str) -> Server {
        let storage = vec!["--database".to_string(), database_url.to_string()];
        Self::start_on(data, storage, "127.0.0.1:0", &[])
    }

    fn start_on(data: &Path, storage: Vec<String>, listen: &str, args: &[String]) -> Server {
        let mut child = Command::new(BIN)
            .args(&storage)
            .args(["serve", "--listen", listen])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Server {
            data: data.to_path_buf(),
            addr: listening_addr(&mut child),
            storage,
            args: args.to_vec(),
            child: Some(child),
        }
    }

    /// Runs an admin command on this server's storage with `--json` and returns its output.
    pub fn admin(&self, args: &[&str]) -> Value {
        let storage: Vec<&str> = self.storage.iter().map(String::as_str).collect();
        admin_on(&storage, args)
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The base URL devices use.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Kills the process at once (SIGKILL), as a crash or power cut would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// Starts the process again on the same address and data.
    pub fn restart(&mut self) {
        self.kill();
        for _ in 0..50 {
            let started = std::panic::catch_unwind(|| {
                Self::start_on(&self.data, self.storage.clone(), &self.addr, &self.args)
            });
            if let Ok(mut s) = started {
                self.child = s.child.take();
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
        panic!("the server did not come back on {}", self.addr);
    }

    /// A new workspace on the server and a one-time enrolment token for it.
    pub fn workspace_and_token(&self) -> (String, String) {
        let ws = self.admin(&["workspace", "create", "--name", "Team"]);
        let ws = ws["id"].as_str().unwrap().to_string();
        let token = self.admin(&["token", "issue", "--workspace", &ws, "--ttl", "1h"]);
        (ws, token["token"].as_str().unwrap().to_string())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The address a just-started `serve` process (stdout piped) prints that it listens on; its
/// stdout is drained from then on so that it never blocks on a full pipe.
pub fn listening_addr(child: &mut Child) -> String {
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut addr = None;
    for line in lines.by_ref().take(5) {
        let line = line.unwrap();
        if let Some(a) = line.strip_prefix("listening on http://") {
            addr = Some(a.trim().to_string());
            break;
        }
    }
    thread::spawn(move || for _ in lines {});
    addr.expect("the server printed where it listens")
}

/// A simulated phone: a real encrypted store in its own directory.
pub struct Device {
    pub dir: tempfile::TempDir,
    pub store: Store,
    /// The store's key (tests that read the file itself need it).
    pub key: [u8; 32],
}

impl Device {
    pub fn new(name: &str) -> Device {
        let dir = tempfile::tempdir().unwrap();
        let key = rand::random::<[u8; 32]>();
        let store = Store::open(dir.path().join("waymark.db"), &key).unwrap();
        store.set_device_name(name).unwrap();
        Device { dir, store, key }
    }

    /// Syncs, retrying as a phone's scheduler would after network errors (bounded).
    pub fn sync_until_ok(&self) -> SyncReport {
        let mut last = None;
        for _ in 0..40 {
            match self.store.sync() {
                Ok(r) => return r,
                Err(Error::Network(e)) => last = Some(e),
                Err(e) => panic!("sync failed: {e:?}"),
            }
            thread::sleep(Duration::from_millis(100));
        }
        panic!("sync never succeeded: {last:?}");
    }
}

/// A coordinator device with a workspace connected to `server`, and devices joined to it, each
/// admitted by the coordinator into the team log (the coordinator's sync after a join).
pub fn team(server_url: &str, token: &str, names: &[&str]) -> (Vec<Device>, String) {
    let coordinator = Device::new(names[0]);
    let ws = coordinator
        .store
        .create_workspace("North district")
        .unwrap()
        .id;
    coordinator
        .store
        .connect_workspace(&ws, server_url, token)
        .unwrap();
    coordinator.sync_until_ok();
    let mut devices = vec![coordinator];
    for name in &names[1..] {
        let d = Device::new(name);
        let code = devices[0].store.create_invite(&ws, 3600).unwrap();
        d.store.join(&code).unwrap();
        d.sync_until_ok();
        devices[0].sync_until_ok();
        d.sync_until_ok();
        devices.push(d);
    }
    (devices, ws)
}

/// The device id of the teammate called `name`, as `viewer`'s team list shows it.
pub fn id_of(viewer: &Device, ws: &str, name: &str) -> String {
    viewer
        .store
        .team(ws)
        .unwrap()
        .into_iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("{name} is not in the team"))
        .device_id
}

pub fn visit(place: &str, notes: &str, at: i64) -> NewVisit {
    NewVisit {
        place: Place {
            name: place.into(),
            area: "North".into(),
            coordinates: None,
        },
        occurred_at: at,
        visit_type: "street_outreach".into(),
        people_reached: 2,
        indicators: vec!["deception".into()],
        notes: notes.into(),
        ..Default::default()
    }
}

pub fn workshop(title: &str) -> NewWorkshop {
    NewWorkshop {
        title: title.into(),
        topic: "safe_migration".into(),
        occurred_at: NOV_1,
        duration_minutes: 60,
        venue: "Hall".into(),
        area: "North".into(),
        audience: "students".into(),
        language: "en".into(),
        ..Default::default()
    }
}

/// Asserts that every device holds identical documents and projections.
pub fn assert_converged(devices: &[Device]) {
    let first = &devices[0].store;
    for d in &devices[1..] {
        assert_eq!(
            d.store.checkpoint().unwrap(),
            first.checkpoint().unwrap(),
            "identical documents"
        );
        assert_eq!(
            d.store.projection_rows().unwrap(),
            first.projection_rows().unwrap(),
            "identical projections"
        );
    }
}

/// Network faults a proxy injects, changeable while it runs.
#[derive(Clone, Copy, Default)]
pub struct Faults {
    /// Probability that a connection is cut after a random number of response bytes.
    pub cut: f64,
    /// Delay added before forwarding each chunk, in ms.
    pub delay_ms: u64,
    /// Probability that a connection's requests are also delivered a second time to the server.
    pub duplicate: f64,
}

/// A TCP proxy in front of the server that injects faults and records every byte it carries.
pub struct Proxy {
    pub addr: String,
    pub faults: Arc<Mutex<Faults>>,
    pub wire: Arc<Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    pub fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let faults = Arc::new(Mutex::new(Faults::default()));
        let wire = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, w, s, up) = (
            faults.clone(),
            wire.clone(),
            stop.clone(),
            upstream.to_string(),
        );
        thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = conn else { continue };
                let _ = client.set_nodelay(true);
                let Ok(server) = TcpStream::connect(&up) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let _ = server.set_nodelay(true);
                let faults = *f.lock().unwrap();
                let duplicate = (rand::random::<f64>() < faults.duplicate)
                    .then(|| TcpStream::connect(&up).ok())
                    .flatten();
                let cut_after =
                    (rand::random::<f64>() < faults.cut).then(|| rand::random::<u64>() % 600);
                pump(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    faults.delay_ms,
                    None,
                    duplicate.as_ref().and_then(|d| d.try_clone().ok()),
                    w.clone(),
                );
                pump(server, client, faults.delay_ms, cut_after, None, w.clone());
                if let Some(d) = duplicate {
                    // Read and drop the duplicate's answers.
                    thread::spawn(move || {
                        let mut d = d;
                        let mut buf = [0u8; 8192];
                        while matches!(d.read(&mut buf), Ok(n) if n > 0) {}
                    });
                }
            }
        });
        Proxy {
            addr,
            faults,
            wire,
            stop,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, f: Faults) {
        *self.faults.lock().unwrap() = f;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(&self.addr);
    }
}

/// Copies `from` to `to` (and to `copy`), with a delay per chunk, cutting both after
/// `cut_after` bytes.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    delay_ms: u64,
    cut_after: Option<u64>,
    mut copy: Option<TcpStream>,
    wire: Arc<Mutex<Vec<u8>>>,
) {
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut sent = 0u64;
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if delay_ms > 0 {
                thread::sleep(Duration::from_millis(delay_ms));
            }
            let n = match cut_after {
                Some(limit) if sent + n as u64 > limit => (limit - sent.min(limit)) as usize,
                _ => n,
            };
            wire.lock().unwrap().extend_from_slice(&buf[..n]);
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
            if let Some(c) = copy.as_mut() {
                let _ = c.write_all(&buf[..n]);
            }
            sent += n as u64;
            if cut_after.is_some_and(|l| sent >= l) {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}

/// True if `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Every byte of every file under `dir`.
pub fn all_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(all_bytes(&p));
        } else {
            out.extend(std::fs::read(&p).unwrap_or_default());
        }
    }
    out
}
