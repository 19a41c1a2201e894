//! `waymark-load`: a bounded load run against real sync server processes on loopback.
//!
//! It starts its own server processes (SQLite in a temporary directory by default, or
//! `--servers K` processes sharing one PostgreSQL database with `--database postgres://...`),
//! creates a workspace (or `--workspaces W`, teams with the devices spread over them), enrols one
//! device per simulated device (each enrolled device invites the next, as phones do), then runs `--rounds` rounds in which every device, concurrently on a
//! bounded pool of workers, pushes a few opaque sealed-size blobs to a random server process and
//! pulls from its cursor until caught up. Requests refused with 429, 408 or 5xx, or failing on
//! the connection (a killed process), are retried with backoff on a random process.
//!
//! With `--kill-every SECS` one server process is killed (SIGKILL) and restarted on the same
//! address every SECS seconds while the rounds run (the first 50 ms after they start).
//!
//! At the end it verifies that a full pull from every server process holds every acknowledged
//! blob exactly once under the sequence number it was acknowledged with, that sequence numbers
//! are 1..=head without gaps, and that every device's cursor reached the head. It prints
//! throughput, p50/p99 latencies and error counts, then `verified: ...` and exits 0, or
//! `verification FAILED: ...` and exits 1.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use clap::Parser;
use rand::{Rng, RngCore};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use waymark_protocol as proto;

/// Load and fault run against real Waymark sync server processes (loopback only).
#[derive(Debug, Parser)]
#[command(name = "waymark-load")]
struct Args {
    /// Simulated devices, spread evenly over the workspaces.
    #[arg(long, default_value_t = 1000)]
    devices: usize,
    /// Workspaces (teams); every device pulls everything its workspace's devices push.
    #[arg(long, default_value_t = 1)]
    workspaces: usize,
    /// Rounds; in each, every device pushes a batch and pulls until caught up.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Most blobs per device per round (each round pushes 1..=this many).
    #[arg(long, default_value_t = 4)]
    max_blobs: usize,
    /// Concurrent workers (each runs one device's round at a time).
    #[arg(long, default_value_t = 64)]
    workers: usize,
    /// Server processes to start (default 1 on SQLite, 3 on PostgreSQL).
    #[arg(long)]
    servers: Option<usize>,
    /// A PostgreSQL database the server processes share (default: SQLite in a temp dir).
    #[arg(long)]
    database: Option<String>,
    /// The server binary (default: `e2e-server` next to this executable).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Kill -9 one server process and restart it on the same address every SECS seconds (the
    /// first kill comes 50 ms after the load starts).
    #[arg(long)]
    kill_every: Option<f64>,
    /// Give up (and fail) after this many seconds.
    #[arg(long, default_value_t = 900)]
    max_seconds: u64,
    /// Byte budget of each pull page.
    #[arg(long, default_value_t = 256 * 1024)]
    pull_bytes: u64,
    /// Extra arguments for `serve` (e.g. `--server-arg=--rate-limit=0`).
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
}

/// How the server processes are told where their data is.
#[derive(Clone)]
struct Backend {
    bin: PathBuf,
    args: Vec<String>,
    label: &'static str,
}

impl Backend {
    fn admin(&self, args: &[&str]) -> Result<serde_json::Value, String> {
        let out = Command::new(&self.bin)
            .args(&self.args)
            .arg("--json")
            .args(args)
            .output()
            .map_err(|e| format!("running {}: {e}", self.bin.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        serde_json::from_slice(&out.stdout).map_err(|e| format!("{args:?}: {e}"))
    }

    /// Starts `serve` on `listen`; returns the child and the address it listens on.
    fn serve(&self, listen: &str, extra: &[String]) -> Result<(Child, String), String> {
        // Every simulated device enrolls from this one loopback address: the per-address
        // enrollment limit (meant for a room of real phones) is off unless asked for.
        let enroll_limit: &[&str] = if extra.iter().any(|a| a.starts_with("--enroll-rate")) {
            &[]
        } else {
            &["--enroll-rate-limit", "0"]
        };
        let mut child = Command::new(&self.bin)
            .args(&self.args)
            .args(["serve", "--listen", listen])
            .args(enroll_limit)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", self.bin.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let mut addr = None;
        for line in lines.by_ref().take(5) {
            let Ok(line) = line else { break };
            if let Some(a) = line.strip_prefix("listening on http://") {
                addr = Some(a.trim().to_string());
                break;
            }
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        thread::spawn(move || for _ in lines {});
        match addr {
            Some(a) => Ok((child, a)),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("the server did not start on {listen}"))
            }
        }
    }
}

/// The server processes; addresses never change (restarts reuse them).
struct Cluster {
    backend: Backend,
    extra: Vec<String>,
    addrs: Vec<String>,
    children: Mutex<Vec<Option<Child>>>,
}

impl Cluster {
    fn kill_and_restart(&self, i: usize) -> Result<Duration, String> {
        {
            let mut children = self.children.lock().map_err(|_| "poisoned")?;
            if let Some(mut c) = children[i].take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        let t = Instant::now();
        let mut last = String::new();
        for _ in 0..100 {
            match self.backend.serve(&self.addrs[i], &self.extra) {
                Ok((child, _)) => {
                    self.children.lock().map_err(|_| "poisoned")?[i] = Some(child);
                    return Ok(t.elapsed());
                }
                Err(e) => last = e,
            }
            thread::sleep(Duration::from_millis(50));
        }
        Err(last)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Ok(children) = self.children.get_mut() {
            for c in children.iter_mut().filter_map(Option::take) {
                let mut c = c;
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

#[derive(Default)]
struct Counters {
    retry_429: AtomicU64,
    retry_5xx: AtomicU64,
    retry_connection: AtomicU64,
    failed: AtomicU64,
    pushed_blobs: AtomicU64,
    pushed_bytes: AtomicU64,
    pulled_blobs: AtomicU64,
    pulled_bytes: AtomicU64,
    cursor_gaps: AtomicU64,
}

struct Ctx {
    http: reqwest::blocking::Client,
    addrs: Vec<String>,
    deadline: Instant,
    counters: Counters,
    push_lat: Mutex<Vec<Duration>>,
    pull_lat: Mutex<Vec<Duration>>,
    pull_bytes: u64,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Push,
    Pull,
    Other,
}

impl Ctx {
    /// One request, retried with backoff on a random server process (or always `fixed`); the
    /// answer is parsed straight from the received body.
    fn call<T: DeserializeOwned>(
        &self,
        kind: Kind,
        fixed: Option<usize>,
        token: Option<&str>,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<T, String> {
        let mut backoff = Duration::from_millis(20);
        let mut last = String::new();
        for _ in 0..200 {
            if Instant::now() > self.deadline {
                return Err(format!("deadline passed; last error: {last}"));
            }
            let server = fixed.unwrap_or_else(|| rand::rng().random_range(0..self.addrs.len()));
            let url = format!("http://{}{path}", self.addrs[server]);
            let mut req = match body {
                Some(b) => self
                    .http
                    .post(url)
                    .header("content-type", proto::CONTENT_TYPE_CBOR)
                    .body(b.to_vec()),
                None => self.http.get(url),
            };
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let t = Instant::now();
            let outcome = req.send().and_then(|r| {
                let status = r.status().as_u16();
                let retry_after = r
                    .headers()
                    .get(proto::HEADER_RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<f64>().ok());
                r.bytes().map(|b| (status, retry_after, b))
            });
            match outcome {
                Ok((200, _, bytes)) => {
                    let lat = t.elapsed();
                    match kind {
                        Kind::Push => lock(&self.push_lat).push(lat),
                        Kind::Pull => lock(&self.pull_lat).push(lat),
                        Kind::Other => {}
                    }
                    return proto::decode(&bytes).map_err(|e| format!("{path}: {e}"));
                }
                Ok((429, retry_after, _)) => {
                    self.counters.retry_429.fetch_add(1, Ordering::Relaxed);
                    let wait = retry_after.unwrap_or(0.2).clamp(0.05, 2.0);
                    // Spread the retries so devices do not come back all at once.
                    let jitter = rand::rng().random_range(0.5..1.5);
                    thread::sleep(Duration::from_secs_f64(wait * jitter));
                    last = "429".into();
                    continue;
                }
                Ok((status, _, bytes)) if status == 408 || status >= 500 => {
                    self.counters.retry_5xx.fetch_add(1, Ordering::Relaxed);
                    last = format!("{status}: {}", String::from_utf8_lossy(&bytes));
                }
                Ok((status, _, bytes)) => {
                    self.counters.failed.fetch_add(1, Ordering::Relaxed);
                    return Err(format!(
                        "{path}: {status}: {}",
                        String::from_utf8_lossy(&bytes)
                    ));
                }
                Err(e) => {
                    self.counters
                        .retry_connection
                        .fetch_add(1, Ordering::Relaxed);
                    last = e.to_string();
                }
            }
            let jitter = rand::rng().random_range(0.5..1.5);
            thread::sleep(backoff.mul_f64(jitter));
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
        Err(format!("{path}: gave up after retries; last error: {last}"))
    }

    fn enroll(&self, token: String, name: String) -> Result<String, String> {
        let body = proto::encode(&proto::EnrollRequest {
            token,
            device_name: name,
            sign_key: rand::random(),
            box_key: rand::random(),
            join_proof: None,
            actor: None,
        });
        let e: proto::EnrollResponse =
            self.call(Kind::Other, None, None, proto::PATH_ENROLL, Some(&body))?;
        Ok(e.device_token)
    }

    fn invite(&self, device_token: &str) -> Result<String, String> {
        let body = proto::encode(&proto::InviteRequest {
            ttl_seconds: 3600,
            role: None,
        });
        let i: proto::InviteResponse = self.call(
            Kind::Other,
            None,
            Some(device_token),
            proto::PATH_INVITES,
            Some(&body),
        )?;
        Ok(i.enrollment_token)
    }

    fn pull_page(&self, server: Option<usize>, token: &str, after: u64) -> Result<Page, String> {
        let path = proto::PullRequest {
            after,
            max_bytes: Some(self.pull_bytes),
        }
        .to_path_and_query();
        self.call(Kind::Pull, server, Some(token), &path, None)
    }
}

/// What the tool keeps of a pull answer ([`proto::PullResponse`], unknown fields skipped):
/// sequence numbers, content ids and each ciphertext's length. A phone would decrypt and store
/// the bytes; here they are received and measured but never copied out of the decoder, so the
/// tool's CPU (it shares the machine with the server it measures) goes into the requests.
#[derive(Deserialize)]
struct Page {
    blobs: Vec<PageBlob>,
    more: bool,
    head: u64,
}

#[derive(Deserialize)]
struct PageBlob {
    seq: u64,
    #[serde(with = "serde_bytes")]
    content_id: proto::ContentId,
    ciphertext: ByteCount,
}

/// The length of a CBOR byte string, read without keeping the bytes.
struct ByteCount(usize);

impl<'de> Deserialize<'de> for ByteCount {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Measure;
        impl serde::de::Visitor<'_> for Measure {
            type Value = ByteCount;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<ByteCount, E> {
                Ok(ByteCount(v.len()))
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<ByteCount, E> {
                Ok(ByteCount(v.len()))
            }
        }
        // `any`: the decoder hands short strings over from its scratch buffer and allocates only
        // for long ones.
        deserializer.deserialize_any(Measure)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

struct Device {
    /// Index of its workspace.
    ws: usize,
    token: String,
    docs: Vec<proto::DocId>,
    cursor: u64,
    /// (content id, acknowledged seq) of every blob the server acknowledged.
    acked: Vec<(proto::ContentId, u64)>,
    errors: Vec<String>,
}

impl Device {
    fn push(&mut self, ctx: &Ctx, max_blobs: usize) -> Result<(), String> {
        let mut rng = rand::rng();
        let n = rng.random_range(1..=max_blobs.max(1));
        let blobs: Vec<proto::PushBlob> = (0..n)
            .map(|_| {
                let mut ciphertext = vec![0u8; rng.random_range(200..=2000)];
                rng.fill_bytes(&mut ciphertext);
                proto::PushBlob {
                    content_id: proto::content_id_of(&ciphertext),
                    doc_id: self.docs[rng.random_range(0..self.docs.len())],
                    epoch: 0,
                    ciphertext,
                    supersedes: None,
                    forget: false,
                    covers: Vec::new(),
                }
            })
            .collect();
        let ids: Vec<proto::ContentId> = blobs.iter().map(|b| b.content_id).collect();
        let bytes: usize = blobs.iter().map(|b| b.ciphertext.len()).sum();
        let body = proto::encode(&proto::PushRequest { blobs });
        let answer: proto::PushResponse = ctx.call(
            Kind::Push,
            None,
            Some(&self.token),
            proto::PATH_PUSH,
            Some(&body),
        )?;
        if answer.assigned.len() != ids.len() {
            return Err(format!(
                "push of {} blobs acknowledged {}",
                ids.len(),
                answer.assigned.len()
            ));
        }
        self.acked.extend(ids.into_iter().zip(answer.assigned));
        ctx.counters
            .pushed_blobs
            .fetch_add(n as u64, Ordering::Relaxed);
        ctx.counters
            .pushed_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
        Ok(())
    }

    fn catch_up(&mut self, ctx: &Ctx) -> Result<(), String> {
        loop {
            let page = ctx.pull_page(None, &self.token, self.cursor)?;
            for b in &page.blobs {
                if b.seq != self.cursor + 1 {
                    ctx.counters.cursor_gaps.fetch_add(1, Ordering::Relaxed);
                    self.errors
                        .push(format!("pulled seq {} after {}", b.seq, self.cursor));
                }
                self.cursor = b.seq;
                ctx.counters
                    .pulled_bytes
                    .fetch_add(b.ciphertext.0 as u64, Ordering::Relaxed);
            }
            ctx.counters
                .pulled_blobs
                .fetch_add(page.blobs.len() as u64, Ordering::Relaxed);
            if !page.more {
                return Ok(());
            }
        }
    }
}

/// Runs `f` on every index of `0..n` using `workers` threads.
fn pool(workers: usize, n: usize, f: impl Fn(usize) + Sync) {
    let next = AtomicUsize::new(0);
    thread::scope(|s| {
        for _ in 0..workers.min(n).max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    f(i);
                }
            });
        }
    });
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            println!("verification FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<bool, String> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.max_seconds);
    let bin = match &args.server_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("e2e-server"),
    };
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let backend = match &args.database {
        Some(url) => Backend {
            bin,
            args: vec!["--database".into(), url.clone()],
            label: "postgresql",
        },
        None => Backend {
            bin,
            args: vec!["--data-dir".into(), tmp.path().display().to_string()],
            label: "sqlite",
        },
    };
    let n_servers = args
        .servers
        .unwrap_or(if args.database.is_some() { 3 } else { 1 })
        .max(1);

    // Migrate once before several processes start on the same database.
    let n_ws = args.workspaces.clamp(1, args.devices.max(1));
    let mut workspaces = Vec::new();
    for w in 0..n_ws {
        let name = format!("load {w}");
        let id = backend.admin(&["workspace", "create", "--name", &name])?["id"]
            .as_str()
            .ok_or("workspace id")?
            .to_string();
        workspaces.push(id);
    }
    let mut children = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..n_servers {
        let (child, addr) = backend.serve("127.0.0.1:0", &args.server_args)?;
        children.push(Some(child));
        addrs.push(addr);
    }
    let cluster = Arc::new(Cluster {
        backend: backend.clone(),
        extra: args.server_args.clone(),
        addrs: addrs.clone(),
        children: Mutex::new(children),
    });
    println!(
        "waymark-load: {} devices in {n_ws} workspace(s), {} rounds, {} workers, {} {} server process(es) at {}{}",
        args.devices,
        args.rounds,
        args.workers,
        n_servers,
        backend.label,
        addrs.join(", "),
        args.kill_every
            .map(|s| format!(", killing one every {s} s"))
            .unwrap_or_default()
    );

    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(args.workers)
        .build()
        .map_err(|e| e.to_string())?;
    let ctx = Ctx {
        http,
        addrs,
        deadline,
        counters: Counters::default(),
        push_lat: Mutex::new(Vec::new()),
        pull_lat: Mutex::new(Vec::new()),
        pull_bytes: args.pull_bytes,
    };

    // Enrolment: the admin issues one token; then every enrolled device invites one more, as
    // phones invite phones, doubling the team each wave.
    let t_enroll = Instant::now();
    // Per workspace, device tokens; the first of each is enrolled with an admin token.
    let mut teams: Vec<Vec<String>> = Vec::new();
    for (w, ws) in workspaces.iter().enumerate() {
        let first = backend.admin(&["token", "issue", "--workspace", ws, "--ttl", "1h"])?["token"]
            .as_str()
            .ok_or("token")?
            .to_string();
        teams.push(vec![ctx.enroll(first, format!("load {w}.0"))?]);
    }
    let target = |w: usize| args.devices / n_ws + usize::from(w < args.devices % n_ws);
    loop {
        // (workspace, inviter index) of this wave's invitations.
        let tasks: Vec<(usize, usize)> = teams
            .iter()
            .enumerate()
            .flat_map(|(w, t)| (0..(target(w) - t.len()).min(t.len())).map(move |i| (w, i)))
            .collect();
        if tasks.is_empty() {
            break;
        }
        let new: Vec<Mutex<Option<Result<String, String>>>> =
            tasks.iter().map(|_| Mutex::new(None)).collect();
        pool(args.workers, tasks.len(), |k| {
            let (w, i) = tasks[k];
            let r = ctx
                .invite(&teams[w][i])
                .and_then(|inv| ctx.enroll(inv, format!("load {w}.{}", teams[w].len() + i)));
            *lock(&new[k]) = Some(r);
        });
        for (slot, (w, _)) in new.into_iter().zip(tasks) {
            let r = slot
                .into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .ok_or("enrolment did not run")?;
            teams[w].push(r?);
        }
    }
    println!(
        "enrolled {} devices in {:.1} s",
        teams.iter().map(Vec::len).sum::<usize>(),
        t_enroll.elapsed().as_secs_f64()
    );
    let tokens: Vec<(usize, String)> = teams
        .into_iter()
        .enumerate()
        .flat_map(|(w, t)| t.into_iter().map(move |tok| (w, tok)))
        .collect();
    let devices: Vec<Mutex<Device>> = tokens
        .into_iter()
        .map(|(ws, token)| {
            Mutex::new(Device {
                ws,
                token,
                docs: (0..8).map(|_| rand::random()).collect(),
                cursor: 0,
                acked: Vec::new(),
                errors: Vec::new(),
            })
        })
        .collect();

    // The killer: one process at a time, on a timer, while the rounds run.
    let stop = Arc::new(AtomicBool::new(false));
    let killer = args.kill_every.map(|secs| {
        let (cluster, stop) = (cluster.clone(), stop.clone());
        thread::spawn(move || {
            let mut kills = Vec::new();
            // The first kill comes soon after the load starts, so even a short run has one.
            let mut next = Instant::now() + Duration::from_secs_f64(secs.min(0.05));
            while !stop.load(Ordering::SeqCst) {
                if Instant::now() < next {
                    thread::sleep(Duration::from_millis(20));
                    continue;
                }
                let i = rand::rng().random_range(0..cluster.addrs.len());
                kills.push(cluster.kill_and_restart(i));
                next = Instant::now() + Duration::from_secs_f64(secs);
            }
            kills
        })
    });

    let t_load = Instant::now();
    for round in 0..args.rounds {
        let t = Instant::now();
        pool(args.workers, devices.len(), |i| {
            let mut d = lock(&devices[i]);
            if let Err(e) = d.push(&ctx, args.max_blobs) {
                d.errors.push(format!("round {round} push: {e}"));
            }
            if let Err(e) = d.catch_up(&ctx) {
                d.errors.push(format!("round {round} pull: {e}"));
            }
        });
        println!("round {}: {:.1} s", round + 1, t.elapsed().as_secs_f64());
    }
    let load_wall = t_load.elapsed();
    stop.store(true, Ordering::SeqCst);
    let kills = match killer {
        Some(k) => k.join().map_err(|_| "the killer thread panicked")?,
        None => Vec::new(),
    };

    // Every device catches up with what was pushed after its last pull.
    pool(args.workers, devices.len(), |i| {
        let mut d = lock(&devices[i]);
        if let Err(e) = d.catch_up(&ctx) {
            d.errors.push(format!("final pull: {e}"));
        }
    });

    // Report.
    let c = &ctx.counters;
    let secs = load_wall.as_secs_f64();
    let pushed = c.pushed_blobs.load(Ordering::Relaxed);
    let pulled = c.pulled_blobs.load(Ordering::Relaxed);
    let mut push_lat = std::mem::take(&mut *lock(&ctx.push_lat));
    let mut pull_lat = std::mem::take(&mut *lock(&ctx.pull_lat));
    push_lat.sort();
    pull_lat.sort();
    println!(
        "load: {:.1} s; pushed {pushed} blobs ({:.1} MB) = {:.0} blobs/s; pulled {pulled} blobs ({:.1} MB) = {:.0} blobs/s",
        secs,
        c.pushed_bytes.load(Ordering::Relaxed) as f64 / 1e6,
        pushed as f64 / secs,
        c.pulled_bytes.load(Ordering::Relaxed) as f64 / 1e6,
        pulled as f64 / secs,
    );
    println!(
        "latency: push p50 {:.1} ms p99 {:.1} ms ({} requests); pull p50 {:.1} ms p99 {:.1} ms ({} requests)",
        percentile(&push_lat, 0.5),
        percentile(&push_lat, 0.99),
        push_lat.len(),
        percentile(&pull_lat, 0.5),
        percentile(&pull_lat, 0.99),
        pull_lat.len(),
    );
    println!(
        "errors: retried 429 {}, retried 408/5xx {}, retried connection {}, failed {}",
        c.retry_429.load(Ordering::Relaxed),
        c.retry_5xx.load(Ordering::Relaxed),
        c.retry_connection.load(Ordering::Relaxed),
        c.failed.load(Ordering::Relaxed),
    );
    if !kills.is_empty() {
        let ok: Vec<f64> = kills
            .iter()
            .filter_map(|k| k.as_ref().ok())
            .map(|d| d.as_secs_f64() * 1000.0)
            .collect();
        println!(
            "kills: {} (restarted {}, longest restart {:.0} ms)",
            kills.len(),
            ok.len(),
            ok.iter().copied().fold(0.0, f64::max)
        );
    }

    // Verification.
    let mut problems: Vec<String> = Vec::new();
    for k in kills.iter().filter_map(|k| k.as_ref().err()) {
        problems.push(format!("a server did not restart: {k}"));
    }
    let devices: Vec<Device> = devices
        .into_iter()
        .map(|d| {
            d.into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        })
        .collect();
    for (i, d) in devices.iter().enumerate() {
        for e in d.errors.iter().take(3) {
            problems.push(format!("device {i}: {e}"));
        }
    }
    let mut acked_all = 0;
    let mut heads = vec![0u64; n_ws];
    for (w, head_w) in heads.iter_mut().enumerate() {
        let team: Vec<&Device> = devices.iter().filter(|d| d.ws == w).collect();
        let acked: HashMap<proto::ContentId, u64> =
            team.iter().flat_map(|d| d.acked.iter().copied()).collect();
        let acked_total: usize = team.iter().map(|d| d.acked.len()).sum();
        acked_all += acked.len();
        if acked.len() != acked_total {
            problems.push(format!(
                "workspace {w}: {acked_total} acknowledgements but {} distinct content ids",
                acked.len()
            ));
        }
        let mut head = None;
        for server in 0..ctx.addrs.len() {
            let mut seen: HashMap<proto::ContentId, u64> = HashMap::new();
            let mut cursor = 0;
            let mut last_head = 0;
            let mut gaps = 0;
            loop {
                let page = ctx.pull_page(Some(server), &team[0].token, cursor)?;
                last_head = last_head.max(page.head);
                for b in page.blobs {
                    if b.seq != cursor + 1 {
                        gaps += 1;
                    }
                    cursor = b.seq;
                    if seen.insert(b.content_id, b.seq).is_some() {
                        problems.push(format!(
                            "workspace {w} server {server}: a content id appears twice"
                        ));
                    }
                }
                if !page.more {
                    break;
                }
            }
            if gaps > 0 {
                problems.push(format!(
                    "workspace {w} server {server}: {gaps} gaps in 1..={cursor}"
                ));
            }
            if cursor != last_head {
                problems.push(format!(
                    "workspace {w} server {server}: full pull ended at {cursor}, head {last_head}"
                ));
            }
            let missing = acked.keys().filter(|id| !seen.contains_key(*id)).count();
            let moved = acked
                .iter()
                .filter(|(id, seq)| seen.get(*id).is_some_and(|s| s != *seq))
                .count();
            if missing > 0 || moved > 0 {
                problems.push(format!(
                    "workspace {w} server {server}: {missing} acknowledged blobs missing, {moved} under another seq"
                ));
            }
            match head {
                None => head = Some(cursor),
                Some(h) if h != cursor => problems.push(format!(
                    "workspace {w} server {server}: head {cursor}, another had {h}"
                )),
                Some(_) => {}
            }
        }
        *head_w = head.unwrap_or(0);
        let behind = team.iter().filter(|d| d.cursor != *head_w).count();
        if behind > 0 {
            problems.push(format!(
                "workspace {w}: {behind} devices did not converge on head {head_w}"
            ));
        }
    }
    let head_text = if n_ws == 1 {
        format!(
            "seqs 1..={} gap-free, all {} devices converged at {}",
            heads[0],
            devices.len(),
            heads[0]
        )
    } else {
        format!(
            "seqs 1..=head gap-free in each of {n_ws} workspaces (heads {}..={}), all {} devices converged at their workspace's head",
            heads.iter().min().copied().unwrap_or(0),
            heads.iter().max().copied().unwrap_or(0),
            devices.len()
        )
    };
    let gaps = c.cursor_gaps.load(Ordering::Relaxed);
    if gaps > 0 {
        problems.push(format!("{gaps} gaps seen by devices while pulling"));
    }
    println!(
        "total: {:.1} s (bound {} s)",
        started.elapsed().as_secs_f64(),
        args.max_seconds
    );
    drop(cluster);
    if problems.is_empty() {
        println!(
            "verified: {acked_all} acknowledged blobs present exactly once on each of {} server process(es), {head_text}",
            ctx.addrs.len(),
        );
        Ok(true)
    } else {
        let shown: Vec<&str> = problems.iter().take(20).map(String::as_str).collect();
        println!(
            "verification FAILED ({} problems): {}",
            problems.len(),
            shown.join("; ")
        );
        Ok(false)
    }
}
