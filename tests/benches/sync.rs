//! Sync benchmarks against a real server process on loopback. Prints figures; asserts nothing
//! about time.
//!
//! Run: `cargo bench -p waymark-e2e --bench sync` (env `WAYMARK_BENCH_RECORDS`, default 10000,
//! and `WAYMARK_BENCH_DEVICES`, default 100).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use support::*;
use waymark_core::*;

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

fn main() {
    let records = env_usize("WAYMARK_BENCH_RECORDS", 10_000);
    let n_devices = env_usize("WAYMARK_BENCH_DEVICES", 100);
    println!(
        "Waymark sync benchmarks (loopback, real server process, {} cores)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!();

    // 1. Bytes on the wire per small edit, and the round trip of one edit.
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let proxy = Proxy::start(&server.addr);
    let (_, token) = server.workspace_and_token();
    let (devices, ws) = team(&proxy.url(), &token, &["Ana", "Bo"]);
    let direct = Device::new("Cy");
    direct
        .store
        .join(&devices[0].store.create_invite(&ws, 3600).unwrap())
        .unwrap();
    let id = devices[0]
        .store
        .create_visit(
            &ws,
            &visit("Station", &"Met a group of workers. ".repeat(20), NOV_1),
        )
        .unwrap();
    for d in devices.iter().chain([&direct]) {
        d.sync_until_ok();
    }
    let (mut sealed, mut body, mut wire) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..50u32 {
        devices[0]
            .store
            .update_visit(&id, &[VisitEdit::PeopleReached(i)])
            .unwrap();
        sealed.push(devices[0].store.pending_bytes(&ws).unwrap());
        proxy.wire.lock().unwrap().clear();
        let up = devices[0].sync_until_ok();
        wire.push(proxy.wire.lock().unwrap().len() as u64);
        body.push(up.bytes_up + up.bytes_down);
        assert_eq!(up.pushed, 1);
        devices[1].sync_until_ok();
    }
    let med = |v: &Vec<u64>| {
        let mut s = v.clone();
        s.sort();
        s[s.len() / 2]
    };
    // Seal overhead: 24-byte nonce + 16-byte tag + ~20 bytes of CBOR framing (kind, length),
    // and the device signature's header (version, signer's key, signature: 97 bytes).
    let change = med(&sealed).saturating_sub(60 + 97);
    println!("small edit (people reached), median of 50:");
    println!(
        "  Automerge change            ~{change} B (sealed blob {} B)",
        med(&sealed)
    );
    println!(
        "  sync of the edit, CBOR bodies both ways: {} B (goal < 2 x change + 200 = {} B)",
        med(&body),
        2 * change + 200
    );
    println!(
        "  sync of the edit, all bytes on the wire incl. HTTP headers: {} B",
        med(&wire)
    );
    // Round trip: one device edits and syncs, the other syncs and has it.
    let mut rtt = Vec::new();
    for i in 0..30u32 {
        let t = Instant::now();
        direct
            .store
            .update_visit(&id, &[VisitEdit::PeopleReached(100 + i)])
            .unwrap();
        direct.sync_until_ok();
        let got = devices[1].sync_until_ok();
        rtt.push(t.elapsed());
        assert_eq!(got.changed.len(), 1);
    }
    println!(
        "  edit -> sync -> other device syncs and has it: median {:.1} ms",
        ms(median(rtt))
    );
    println!();
    drop(devices);
    drop(direct);
    drop(proxy);
    drop(server);

    // 2. A new device pulls a workspace of `records` records from scratch.
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (_, token) = server.workspace_and_token();
    let coordinator = Device::new("Coordinator");
    let ws = coordinator.store.create_workspace("Big team").unwrap().id;
    let t = Instant::now();
    for i in 0..records {
        coordinator
            .store
            .create_visit(
                &ws,
                &visit(
                    &format!("Place {i}"),
                    &format!("Visit {i}: workers met at the gate, two without documents."),
                    NOV_1 + i as i64 * 60_000,
                ),
            )
            .unwrap();
    }
    let seeded = t.elapsed();
    coordinator
        .store
        .connect_workspace(&ws, &server.url(), &token)
        .unwrap();
    let t = Instant::now();
    let pushed = coordinator.sync_until_ok();
    let push_time = t.elapsed();
    let newcomer = Device::new("Newcomer");
    newcomer
        .store
        .join(&coordinator.store.create_invite(&ws, 3600).unwrap())
        .unwrap();
    let t = Instant::now();
    let pulled = newcomer.sync_until_ok();
    let pull_time = t.elapsed();
    assert_eq!(
        newcomer
            .store
            .list_visits(&VisitFilter {
                limit: Some(10),
                ..Default::default()
            })
            .unwrap()
            .len(),
        10
    );
    println!("workspace of {records} visits:");
    println!(
        "  recorded locally in {:.1} s ({:.0} records/s)",
        seeded.as_secs_f64(),
        records as f64 / seeded.as_secs_f64()
    );
    println!(
        "  first push: {} blobs, {:.1} MB up, {:.1} s",
        pushed.pushed,
        pushed.bytes_up as f64 / 1e6,
        push_time.as_secs_f64()
    );
    println!(
        "  new device pulls everything: {} blobs, {:.1} MB down, {:.1} s ({:.0} blobs/s)",
        pulled.pulled,
        pulled.bytes_down as f64 / 1e6,
        pull_time.as_secs_f64(),
        pulled.pulled as f64 / pull_time.as_secs_f64()
    );
    println!();
    drop(server);

    // 3. Server throughput: `n_devices` devices syncing at once.
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (_, token) = server.workspace_and_token();
    let (devices, ws) = team(
        &server.url(),
        &token,
        &std::iter::once("Coordinator")
            .chain(std::iter::repeat_n("Phone", n_devices - 1))
            .collect::<Vec<_>>(),
    );
    let per_device = 20;
    for (k, d) in devices.iter().enumerate() {
        for i in 0..per_device {
            d.store
                .create_visit(&ws, &visit(&format!("d{k} v{i}"), "short note", NOV_1))
                .unwrap();
        }
    }
    let barrier = Arc::new(Barrier::new(devices.len()));
    let t = Instant::now();
    let handles: Vec<_> = devices
        .iter()
        .map(|d| {
            let s = d.store.clone();
            let b = barrier.clone();
            std::thread::spawn(move || {
                b.wait();
                let mut last = None;
                for _ in 0..50 {
                    match s.sync() {
                        Ok(r) => return r,
                        Err(e) => last = Some(e),
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                panic!("sync failed: {last:?}");
            })
        })
        .collect();
    let reports: Vec<SyncReport> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let wall = t.elapsed();
    let pushed: u64 = reports.iter().map(|r| r.pushed).sum();
    let pulled: u64 = reports.iter().map(|r| r.pulled).sum();
    println!(
        "{} devices syncing at once ({per_device} new visits each):",
        devices.len()
    );
    println!(
        "  {pushed} blobs pushed and {pulled} pulled in {:.2} s",
        wall.as_secs_f64()
    );
    println!(
        "  server throughput: {:.0} blobs/s pushed, {:.0} blobs/s pushed+pulled",
        pushed as f64 / wall.as_secs_f64(),
        (pushed + pulled) as f64 / wall.as_secs_f64()
    );
    println!(
        "  (clients and server share this machine's cores; client-side decryption and merging dominate)"
    );
    println!();
    drop(server);
    raw_server_throughput(n_devices);
}

/// The server alone: `n` devices speaking the protocol directly (no client-side crypto or
/// merging), each pushing batches of opaque blobs.
fn raw_server_throughput(n: usize) {
    use waymark_protocol as proto;
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (ws, _) = server.workspace_and_token();
    let http = reqwest::blocking::Client::new();
    let url = server.url();
    let tokens: Vec<String> = (0..n)
        .map(|i| {
            let t = admin(
                &server.data,
                &["token", "issue", "--workspace", &ws, "--ttl", "1h"],
            );
            let req = proto::EnrollRequest {
                token: t["token"].as_str().unwrap().into(),
                device_name: format!("d{i}"),
                sign_key: rand::random(),
                box_key: rand::random(),
                join_proof: None,
                actor: None,
            };
            let resp = http
                .post(format!("{url}{}", proto::PATH_ENROLL))
                .body(proto::encode(&req))
                .send()
                .unwrap();
            let e: proto::EnrollResponse = proto::decode(&resp.bytes().unwrap()).unwrap();
            e.device_token
        })
        .collect();
    let (batches, per_batch) = (10usize, 10usize);
    let barrier = Arc::new(Barrier::new(n));
    let t = Instant::now();
    let handles: Vec<_> = tokens
        .into_iter()
        .enumerate()
        .map(|(i, token)| {
            let (http, url, b) = (http.clone(), url.clone(), barrier.clone());
            std::thread::spawn(move || {
                b.wait();
                let mut lat = Vec::new();
                for k in 0..batches {
                    let blobs = (0..per_batch)
                        .map(|j| {
                            let ct = format!("device {i} batch {k} blob {j} ")
                                .repeat(8)
                                .into_bytes();
                            proto::PushBlob {
                                content_id: proto::content_id_of(&ct),
                                doc_id: [(i % 256) as u8; 16],
                                epoch: 0,
                                ciphertext: ct,
                                supersedes: None,
                                forget: false,
                                covers: Vec::new(),
                            }
                        })
                        .collect();
                    let body = proto::encode(&proto::PushRequest { blobs });
                    let t = Instant::now();
                    loop {
                        let r = http
                            .post(format!("{url}{}", proto::PATH_PUSH))
                            .bearer_auth(&token)
                            .body(body.clone())
                            .send()
                            .unwrap();
                        if r.status().is_success() {
                            break;
                        }
                        assert_eq!(r.status().as_u16(), 429, "only rate limiting is expected");
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut lat: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let wall = t.elapsed();
    lat.sort();
    let total = n * batches * per_batch;
    println!(
        "server alone: {n} devices each pushing {batches} batches of {per_batch} blobs (~250 B):"
    );
    println!(
        "  {total} blobs stored in {:.2} s: {:.0} blobs/s; push latency p50 {:.1} ms, p99 {:.1} ms",
        wall.as_secs_f64(),
        total as f64 / wall.as_secs_f64(),
        ms(lat[lat.len() / 2]),
        ms(lat[lat.len() * 99 / 100])
    );
}
