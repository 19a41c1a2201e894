//! The team log's costs, against real server processes on loopback and real stores: a new
//! device verifying the log of a big team that churned, what the log then costs each sync, a
//! coordinator's rotation for a big team, and the work a server would need to grind keys that
//! show a given verification code.
//! Prints figures next to the targets of the issue; asserts nothing about time.
//!
//! Run: `cargo bench -p waymark-e2e --bench team` (env `WAYMARK_BENCH_TEAM`, default 200
//! devices, coordinator included; `WAYMARK_BENCH_REVOKED`, default 50, revoked among them;
//! `WAYMARK_BENCH_ROTATION_TEAM`, default 500; `WAYMARK_BENCH_RUNS`, default 5 newcomers and 5
//! revocations; `WAYMARK_BENCH_SAMPLES`, default 30 log replays and verification codes).
//!
//! The teams are made the way a coordinator makes them, one device at a time: each device
//! enrols on the server with an operator's token and keys of its own (it never syncs), and the
//! coordinator's store admits it with `confirm_device` (one append each); revocations go
//! through `revoke_device`, which also rotates. The servers run with rate limits off: the
//! setup sends hundreds of requests a second from one device and one address, which the
//! default limits would slow down (nothing measured is throttled by them otherwise).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use support::*;
use waymark_core::TeamTrust;
use waymark_protocol as proto;
use waymark_protocol::team_log::{Entry, SignedEntry, TeamState};

/// Serve arguments of every server here (see the module docs).
const NO_RATE_LIMITS: &[&str] = &["--rate-limit", "0", "--enroll-rate-limit", "0"];
/// Visits the coordinator records before the team grows: a newcomer's first pull is not empty.
const VISITS: usize = 10;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// CPU seconds (user + system) a process has used so far, from `/proc/<pid>/stat`.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split(' ')
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    // Clock ticks: 100 per second on Linux everywhere this runs.
    f.iter().sum::<f64>() / 100.0
}

/// A device enrolled by hand with keys of its own, as a phone that joined and waits for a
/// coordinator to compare codes; it never syncs.
struct Raw {
    id: String,
    token: String,
}

fn enroll(server: &Server, server_ws: &str, http: &reqwest::blocking::Client, name: &str) -> Raw {
    let t = admin(
        &server.data,
        &[
            "token",
            "issue",
            "--workspace",
            server_ws,
            "--ttl",
            "1h",
            "--role",
            "member",
        ],
    );
    let sign = ed25519_dalek::SigningKey::from_bytes(&rand::random());
    let boxk = crypto_box::SecretKey::from_bytes(rand::random());
    let resp = http
        .post(format!("{}{}", server.url(), proto::PATH_ENROLL))
        .body(proto::encode(&proto::EnrollRequest {
            token: t["token"].as_str().unwrap().into(),
            device_name: name.into(),
            sign_key: sign.verifying_key().to_bytes(),
            box_key: boxk.public_key().to_bytes(),
            join_proof: None,
            actor: None,
        }))
        .send()
        .unwrap();
    assert!(resp.status().is_success(), "enrolment: {}", resp.status());
    let e: proto::EnrollResponse = proto::decode(&resp.bytes().unwrap()).unwrap();
    Raw {
        id: e.device_id,
        token: e.device_token,
    }
}

/// The team answer as the server serves it to `token` with the whole log, and its body's size.
fn fetch_team(server: &Server, token: &str) -> (proto::TeamResponse, usize) {
    let resp = reqwest::blocking::Client::new()
        .get(format!(
            "{}{}?{}=0",
            server.url(),
            proto::PATH_TEAM,
            proto::QUERY_LOG_FROM
        ))
        .bearer_auth(token)
        .send()
        .unwrap();
    assert!(resp.status().is_success(), "team: {}", resp.status());
    let body = resp.bytes().unwrap();
    (proto::decode(&body).unwrap(), body.len())
}

/// A coordinator connected to a fresh server, with a few visits pushed.
struct Workspace {
    server: Server,
    server_ws: String,
    coordinator: Device,
    ws: String,
    http: reqwest::blocking::Client,
    _data: tempfile::TempDir,
}

impl Workspace {
    fn new() -> Workspace {
        let data = tempfile::tempdir().unwrap();
        let server = Server::start_with(data.path(), NO_RATE_LIMITS);
        let (server_ws, token) = server.workspace_and_token();
        let coordinator = Device::new("Coordinator");
        let ws = coordinator.store.create_workspace("Big team").unwrap().id;
        coordinator
            .store
            .connect_workspace(&ws, &server.url(), &token)
            .unwrap();
        for i in 0..VISITS {
            coordinator
                .store
                .create_visit(
                    &ws,
                    &visit(&format!("Place {i}"), "workers met at the gate", NOV_1),
                )
                .unwrap();
        }
        coordinator.sync_until_ok();
        Workspace {
            server,
            server_ws,
            coordinator,
            ws,
            http: reqwest::blocking::Client::new(),
            _data: data,
        }
    }
}

/// How long the setup's steps took, by step.
#[derive(Default)]
struct Setup {
    enrol: Vec<Duration>,
    /// `confirm_device`, with the log's length before it.
    admit: Vec<(usize, Duration)>,
    /// `revoke_device`, with the log's length before it.
    revoke: Vec<(usize, Duration)>,
}

impl Setup {
    fn print(&self, wall: Duration) {
        let total = |v: &[Duration]| v.iter().sum::<Duration>().as_secs_f64();
        println!(
            "  setup: {:.1} s: {} enrolments {:.1} s (median {:.1} ms: operator's token \
             process + POST /v1/enroll), {} confirm_device {:.1} s, {} revoke_device {:.1} s",
            wall.as_secs_f64(),
            self.enrol.len(),
            total(&self.enrol),
            ms(median(self.enrol.clone())),
            self.admit.len(),
            total(&self.admit.iter().map(|a| a.1).collect::<Vec<_>>()),
            self.revoke.len(),
            total(&self.revoke.iter().map(|a| a.1).collect::<Vec<_>>()),
        );
        for (what, v) in [
            ("confirm_device", &self.admit),
            ("revoke_device", &self.revoke),
        ] {
            if v.len() < 10 {
                continue;
            }
            // The first and last tenth: how a step's cost grows with the log.
            let tenth = v.len() / 10;
            let (first, last) = (&v[..tenth], &v[v.len() - tenth..]);
            println!(
                "    {what}: median {:.1} ms at log entries {}..{}, {:.1} ms at {}..{}",
                ms(median(first.iter().map(|a| a.1).collect())),
                first[0].0,
                first[tenth - 1].0,
                ms(median(last.iter().map(|a| a.1).collect())),
                last[0].0,
                last[tenth - 1].0,
            );
        }
    }
}

/// The coordinator's log length, as its store reports it.
fn log_len(w: &Workspace) -> usize {
    w.coordinator.store.team_status(&w.ws).unwrap().log_length as usize
}

/// Grows the team to `size` devices (the coordinator included), one `confirm_device` at a
/// time, revoking `revoked` of them with `revoke_device` spread evenly along the way (the
/// longest admitted first). Returns the devices still in the team.
fn grow(w: &Workspace, size: usize, revoked: usize, setup: &mut Setup) -> VecDeque<Raw> {
    let joiners = size.saturating_sub(1);
    let revoked = revoked.min(joiners.saturating_sub(1));
    let mut active = VecDeque::new();
    let mut done = 0;
    for i in 1..=joiners {
        let t = Instant::now();
        let d = enroll(&w.server, &w.server_ws, &w.http, &format!("Phone {i}"));
        setup.enrol.push(t.elapsed());
        let len = log_len(w);
        let t = Instant::now();
        w.coordinator.store.confirm_device(&w.ws, &d.id).unwrap();
        setup.admit.push((len, t.elapsed()));
        active.push_back(d);
        while done < revoked * i / joiners && active.len() > 1 {
            let gone = active.pop_front().unwrap();
            let len = log_len(w);
            let t = Instant::now();
            w.coordinator.store.revoke_device(&w.ws, &gone.id).unwrap();
            setup.revoke.push((len, t.elapsed()));
            done += 1;
        }
        if i % 100 == 0 {
            println!("    ... {} devices admitted", i + 1);
        }
    }
    active
}

fn main() {
    let started = Instant::now();
    let size = env_usize("WAYMARK_BENCH_TEAM", 200).max(2);
    let revoked = env_usize("WAYMARK_BENCH_REVOKED", 50);
    let rotation_size = env_usize("WAYMARK_BENCH_ROTATION_TEAM", 500).max(3);
    let runs = env_usize("WAYMARK_BENCH_RUNS", 5).max(1);
    let samples = env_usize("WAYMARK_BENCH_SAMPLES", 30).max(1);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':').map(|x| x.1))
        .unwrap_or("?")
        .trim()
        .to_string();
    println!(
        "Waymark team log benchmark (loopback, real server processes, {} cores, {cpu})",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "  reproduce: WAYMARK_BENCH_TEAM={size} WAYMARK_BENCH_REVOKED={revoked} \
         WAYMARK_BENCH_ROTATION_TEAM={rotation_size} WAYMARK_BENCH_RUNS={runs} \
         WAYMARK_BENCH_SAMPLES={samples} cargo bench -p waymark-e2e --bench team"
    );
    println!();

    // 1. A new device verifies the log of a team that grew and churned.
    println!("1. a team of {size} devices, {revoked} of them revoked (each revocation rotates):");
    let t = Instant::now();
    let w = Workspace::new();
    let mut setup = Setup::default();
    let active = grow(&w, size, revoked, &mut setup);
    setup.print(t.elapsed());

    // (a) The log as the server serves it to a device of the team, verified from scratch.
    let reader = active.back().unwrap();
    let (team, body_bytes) = fetch_team(&w.server, &reader.token);
    let entries = team.log;
    let log_bytes: usize = entries
        .iter()
        .map(|e| e.entry.len() + e.signature.len())
        .sum();
    let mut replays = Vec::new();
    let mut state = None;
    for _ in 0..samples {
        let t = Instant::now();
        let s = TeamState::replay(&entries).unwrap();
        replays.push(t.elapsed());
        state = Some(s);
    }
    let state = state.unwrap();
    assert_eq!(state.len as usize, entries.len());
    let replay = median(replays);
    // Where the time goes: the Ed25519 signatures alone, and the CBOR decoding alone.
    let signatures = median(
        (0..samples.min(10))
            .map(|_| {
                let t = Instant::now();
                for e in &entries {
                    let entry = e.decode().unwrap();
                    ed25519_dalek::VerifyingKey::from_bytes(&entry.author)
                        .unwrap()
                        .verify_strict(
                            &Entry::message(&e.entry),
                            &ed25519_dalek::Signature::from_bytes(&e.signature),
                        )
                        .unwrap();
                }
                t.elapsed()
            })
            .collect(),
    );
    let decoding = median(
        (0..samples.min(10))
            .map(|_| {
                let t = Instant::now();
                for e in &entries {
                    std::hint::black_box(e.decode().unwrap());
                }
                t.elapsed()
            })
            .collect(),
    );
    println!(
        "  the log: {} entries, {:.1} kB of entries and signatures ({:.1} kB as CBOR in the \
         answer; the whole GET /v1/team?log_from=0 answer {:.1} kB with the listing of {} \
         devices); epoch {}, {} devices active",
        entries.len(),
        log_bytes as f64 / 1e3,
        proto::encode(&entries).len() as f64 / 1e3,
        body_bytes as f64 / 1e3,
        team.devices.len(),
        state.epoch,
        state.active().len()
    );
    println!(
        "  (a) TeamState::replay of the whole log: median {:.2} ms of {samples} ({:.1} µs per \
         entry) -- target < 50 ms: {}",
        ms(replay),
        replay.as_secs_f64() * 1e6 / entries.len() as f64,
        if ms(replay) < 50.0 { "met" } else { "NOT met" }
    );
    println!(
        "      of which decode + Ed25519 verify_strict alone {:.2} ms, CBOR decoding alone \
         {:.2} ms",
        ms(signatures),
        ms(decoding)
    );

    // (b) Newcomers join with the coordinator's invite and sync for the first time. The
    // coordinator does not sync in between, so every newcomer sees the same log; an invite
    // handed over in person carries the workspace keys, so no envelope is needed yet.
    let mut first_syncs = Vec::new();
    let mut newcomers = Vec::new();
    for run in 1..=runs {
        let code = w.coordinator.store.create_invite(&w.ws, 3600).unwrap();
        let d = Device::new(&format!("Newcomer {run}"));
        let t = Instant::now();
        d.store.join(&code).unwrap();
        let joined = t.elapsed();
        let t = Instant::now();
        let report = d.store.sync().unwrap();
        let synced = t.elapsed();
        let status = d.store.team_status(&w.ws).unwrap();
        assert_eq!(status.log_length as usize, entries.len());
        println!(
            "  (b) newcomer {run}: join {:.0} ms, first sync {:.0} ms ({} blobs pulled, {:.1} kB \
             down, {:.1} kB up; trust {:?})",
            ms(joined),
            ms(synced),
            report.pulled,
            report.bytes_down as f64 / 1e3,
            report.bytes_up as f64 / 1e3,
            status.trust
        );
        first_syncs.push(synced);
        newcomers.push(d);
    }
    println!(
        "  (b) a newcomer's whole first sync: median {:.0} ms of {runs} (an invite handed over \
         in person carries the workspace keys: no envelope to open yet)",
        ms(median(first_syncs))
    );

    // (c) What the log costs once the team is steady: the coordinator's next sync admits the
    // newcomers (one append, every key sealed to each), then syncs with nothing new.
    let t = Instant::now();
    w.coordinator.sync_until_ok();
    let admitted = t.elapsed();
    for d in &newcomers {
        d.sync_until_ok();
    }
    let member = &newcomers[0];
    assert!(matches!(
        member.store.team_status(&w.ws).unwrap().trust,
        TeamTrust::Verified
    ));
    let idle = |d: &Device| {
        median(
            (0..samples)
                .map(|_| {
                    let t = Instant::now();
                    d.sync_until_ok();
                    t.elapsed()
                })
                .collect(),
        )
    };
    println!(
        "  (c) the coordinator's next sync admits the {runs} newcomers: {:.0} ms; a sync with \
         nothing new: member {:.1} ms, coordinator {:.1} ms (medians of {samples})",
        ms(admitted),
        ms(idle(member)),
        ms(idle(&w.coordinator))
    );
    println!();
    drop(newcomers);
    drop(w);

    // 2. A coordinator's rotation for a big team.
    println!("2. a team of {rotation_size} admitted devices; revoke_device (revoke and rotate):");
    let t = Instant::now();
    let w = Workspace::new();
    let mut setup = Setup::default();
    let mut active = grow(&w, rotation_size, 0, &mut setup);
    setup.print(t.elapsed());
    let server_pid = w.server.pid().unwrap();
    let mut rotations = Vec::new();
    for run in 1..=runs.min(active.len() - 1) {
        let gone = active.pop_front().unwrap();
        let before = w.coordinator.store.team_status(&w.ws).unwrap();
        let server_cpu = cpu_secs(server_pid);
        let client_cpu = cpu_secs(std::process::id());
        let t = Instant::now();
        w.coordinator.store.revoke_device(&w.ws, &gone.id).unwrap();
        let took = t.elapsed();
        let server_cpu = cpu_secs(server_pid) - server_cpu;
        let client_cpu = cpu_secs(std::process::id()) - client_cpu;
        let after = w.coordinator.store.team_status(&w.ws).unwrap();
        assert_eq!(after.epoch, before.epoch + 1);
        println!(
            "  run {run}: {} devices left, log {} -> {} entries, epoch {}: {:.0} ms (CPU: \
             client {:.2} s, server {:.2} s)",
            active.len() + 1,
            before.log_length,
            after.log_length,
            after.epoch,
            ms(took),
            client_cpu,
            server_cpu
        );
        rotations.push(took);
    }
    let rotation = median(rotations.clone());
    let (team, _) = fetch_team(&w.server, &active.back().unwrap().token);
    let replay = median(
        (0..samples.min(10))
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(TeamState::replay(&team.log).unwrap());
                t.elapsed()
            })
            .collect(),
    );
    // The size of the last append: its two entries and one envelope per remaining device, all
    // of one size (the device ids are of one length); one of them is the reader's own.
    let env = team
        .envelopes
        .iter()
        .find(|e| e.epoch == team.epoch)
        .unwrap()
        .clone();
    let remaining = TeamState::replay(&team.log).unwrap().active().len();
    let last_two: Vec<SignedEntry> = team.log[team.log.len() - 2..].to_vec();
    let append = proto::encode(&proto::AppendRequest {
        entries: last_two,
        envelopes: vec![env.clone(); remaining],
    });
    println!(
        "  revoke_device for a team of {rotation_size}: median {:.0} ms of {} -- target < 1 s: \
         {}",
        ms(rotation),
        rotations.len(),
        if rotation < Duration::from_secs(1) {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "  for scale: TeamState::replay of this log ({} entries) takes {:.1} ms here",
        team.log.len(),
        ms(replay)
    );
    println!(
        "  the append (POST /v1/team/log): 2 entries and {remaining} envelopes of {} B \
         (sealed key {} B): {:.1} kB of CBOR",
        proto::encode(&env).len(),
        env.sealed_key.len(),
        append.len() as f64 / 1e3
    );
    println!();

    // 3. The cost of grinding a verification code, on this machine.
    let mut codes = Vec::new();
    for _ in 0..samples {
        let t = Instant::now();
        std::hint::black_box(w.coordinator.store.verification_code(&w.ws).unwrap());
        codes.push(t.elapsed());
    }
    let code = median(codes).as_secs_f64();
    // A server that substitutes a joining device's keys must find keys whose code is the one
    // the device shows: each candidate hits with probability 1e-12, so the number of
    // candidates until a hit is geometric, with mean 1e12; half the servers that try succeed
    // within 1e12 * ln 2 candidates.
    let space = 1e12_f64;
    let year = 365.25 * 24.0 * 3600.0;
    println!(
        "3. Store::verification_code (Argon2id, 19 MiB, 2 passes, 1 lane): median {:.1} ms of \
         {samples}",
        code * 1e3
    );
    for (what, n) in [
        ("expected candidates until a hit (1e12)", space),
        (
            "candidates for a one-in-two chance (1e12 ln 2)",
            space * 2f64.ln(),
        ),
        ("half the code space (5e11)", space / 2.0),
    ] {
        println!(
            "   {what}: 2^{:.1} Argon2id evaluations x {:.1} ms = {:.0} core-years ({:.1} \
             million core-hours)",
            n.log2(),
            code * 1e3,
            n * code / year,
            n * code / 3600.0 / 1e6
        );
    }
    println!();
    drop(w);
    println!(
        "whole benchmark: {:.0} s (setup included)",
        started.elapsed().as_secs_f64()
    );
}
