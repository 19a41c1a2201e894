//! A day of an outreach worker's records synced over an emulated poor mobile link: 64 kbit/s
//! each way, 600 ms round trip, 5% packet loss, and the signal lost every few seconds.
//!
//! The records must reach the server and the coordinator's phone; after every cut, sync must
//! take up where the last acknowledged request left it, sending nothing acknowledged again; and
//! every request must stay small enough to finish in a few seconds on such a link. The test
//! prints how the link was emulated, how long each phone took and how many bytes moved.
//!
//! Needs root (network namespaces, tc, nftables), as CI has: without them it fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "support/field.rs"]
mod field;
mod support;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use field::{Exchange, FieldProxy, Link, Shape};
use support::*;
use waymark_core::*;
use waymark_protocol as proto;

const SHAPE: Shape = Shape {
    rate_kbit: 64,
    rtt_ms: 600,
    loss_percent: 5,
    cut_every_ms: (6_000, 10_000),
    cut_for_ms: 1_500,
};

/// Longest any one phone may take to get everything through (a bound, not a benchmark).
const PATIENCE: Duration = Duration::from_secs(240);

/// Largest request or answer body allowed: about 6 s at 64 kbit/s.
const MAX_BODY: usize = 48 * 1024;

/// Syncs until a sync succeeds with nothing left to push, as an app would each time the
/// network came back. Returns the time taken.
fn sync_through(device: &Device, ws: &str, who: &str) -> Duration {
    let started = Instant::now();
    let mut failures = 0;
    loop {
        assert!(
            started.elapsed() < PATIENCE,
            "{who}: not through after {PATIENCE:?} ({failures} failed syncs, {} changes pending)",
            device.store.pending_changes(ws).unwrap()
        );
        match device.store.sync() {
            Ok(_) if device.store.pending_changes(ws).unwrap() == 0 => return started.elapsed(),
            Ok(_) => {}
            Err(Error::Network(_)) => {
                failures += 1;
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => panic!("{who}: sync failed: {e:?}"),
        }
    }
}

/// One day of one outreach worker: 50 visits with notes (some added to later in the day) and
/// 3 workshops with 40 attendees each, anonymous tallies and feedback.
fn record_a_day(s: &Store, ws: &str) {
    for i in 0..50 {
        let id = s
            .create_visit(
                ws,
                &visit(
                    &format!("Stop {i} on the market road"),
                    &format!(
                        "Visit {i}: spoke with four workers at the loading bay. Two said their \
                         passports are held by the recruiter and wages are withheld until the \
                         season ends. Gave hotline cards; one agreed to meet again on Friday."
                    ),
                    NOV_1 + i * 600_000,
                ),
            )
            .unwrap();
        if i % 3 == 0 {
            s.set_visit_notes(
                &id,
                &format!(
                    "Visit {i}: spoke with four workers at the loading bay. Two said their \
                     passports are held by the recruiter and wages are withheld until the \
                     season ends. Gave hotline cards; one agreed to meet again on Friday.\n\
                     Later: the recruiter's van came back at 16:00, plates noted."
                ),
            )
            .unwrap();
        }
    }
    for w in 0..3 {
        let id = s
            .create_workshop(ws, &workshop(&format!("Safe migration, group {w}")))
            .unwrap();
        for a in 0..40 {
            s.check_in(
                &id,
                &NewAttendee {
                    name: format!("Attendee {w}-{a}"),
                    age_band: Some("18_24".into()),
                    ..Default::default()
                },
            )
            .unwrap();
        }
        for _ in 0..6 {
            s.add_to_tally(&id, "18_24", "female", 1).unwrap();
        }
        for f in 0..4 {
            s.add_feedback(&id, 4, &format!("Useful session, comment {f}"))
                .unwrap();
        }
    }
}

fn pushed_ids(x: &Exchange) -> Vec<proto::ContentId> {
    let req: proto::PushRequest = proto::decode(&x.request_body).unwrap();
    req.blobs.iter().map(|b| b.content_id).collect()
}

fn pull_after(x: &Exchange) -> u64 {
    let query = x.target.split_once('?').map_or("", |(_, q)| q);
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("after="))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Checks that nothing the client was known to have been answered for was sent or asked for
/// again. Returns (pushes resent after a cut, pulls repeated after a cut).
fn assert_nothing_acknowledged_is_resent(exchanges: &[Exchange]) -> (usize, usize) {
    let mut acknowledged: HashSet<proto::ContentId> = HashSet::new();
    let mut pulled_to: HashMap<Option<String>, u64> = HashMap::new();
    let (mut resent_pushes, mut repeated_pulls) = (0, 0);
    for x in exchanges {
        let answered_ok = matches!(x.response, Some((200, _))) && !x.at_risk;
        if x.method == "POST" && x.target == proto::PATH_PUSH {
            let ids = pushed_ids(x);
            let again = ids.iter().filter(|c| acknowledged.contains(*c)).count();
            assert_eq!(
                again, 0,
                "a push sent {again} blobs again whose acknowledgement had reached the client"
            );
            if answered_ok {
                acknowledged.extend(ids);
            }
        } else if x.method == "POST" && x.target.starts_with(proto::PATH_PUSH) {
            unreachable!("push with a query: {}", x.target);
        }
        if x.method == "GET" && x.target.starts_with(proto::PATH_PULL) {
            let after = pull_after(x);
            let done = pulled_to.entry(x.token.clone()).or_default();
            assert!(
                after >= *done,
                "a pull asked again from {after} although blobs up to {done} had been received"
            );
            if let (true, Some((_, body))) = (answered_ok, &x.response) {
                let page: proto::PullResponse = proto::decode(body).unwrap();
                if let Some(last) = page.blobs.last() {
                    *done = (*done).max(last.seq);
                }
            }
        }
    }
    // Count what was legitimately sent again: requests at risk that were repeated.
    for (i, x) in exchanges.iter().enumerate() {
        if !x.at_risk {
            continue;
        }
        let repeated = exchanges[i + 1..]
            .iter()
            .any(|y| y.method == x.method && y.target == x.target && y.token == x.token);
        if repeated && x.target == proto::PATH_PUSH {
            resent_pushes += 1;
        } else if repeated && x.target.starts_with(proto::PATH_PULL) {
            repeated_pulls += 1;
        }
    }
    (resent_pushes, repeated_pulls)
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no metric {name}")) as u64
}

#[test]
fn a_days_work_reaches_the_server_and_the_coordinator_over_a_poor_mobile_link() {
    let link = Link::new(SHAPE);
    println!("emulation: {}", link.emulation);
    let data = tempfile::tempdir().unwrap();
    let server = link.start_server(BIN, data.path());
    let proxy = FieldProxy::start(&server.addr, link.proxy_delay, SHAPE);
    let (_, token) = admin_workspace_and_token(data.path());

    // Enrolment happens in the office; the day's work goes out from the field.
    let (devices, ws) = team(&proxy.url(), &token, &["Coordinator", "Outreach worker"]);
    let (coordinator, worker) = (&devices[0], &devices[1]);
    record_a_day(&worker.store, &ws);
    let blobs = worker.store.pending_changes(&ws).unwrap();
    let sealed = worker.store.pending_bytes(&ws).unwrap();

    proxy
        .cutting
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let (up0, down0) = (
        proxy.bytes_up.load(std::sync::atomic::Ordering::Relaxed),
        proxy.bytes_down.load(std::sync::atomic::Ordering::Relaxed),
    );
    let first = proxy.exchanges().len();
    let upload = sync_through(worker, &ws, "outreach worker");
    let (up1, down1) = (
        proxy.bytes_up.load(std::sync::atomic::Ordering::Relaxed),
        proxy.bytes_down.load(std::sync::atomic::Ordering::Relaxed),
    );
    let cuts_up = proxy.cuts();
    let download = sync_through(coordinator, &ws, "coordinator");
    let (up2, down2) = (
        proxy.bytes_up.load(std::sync::atomic::Ordering::Relaxed),
        proxy.bytes_down.load(std::sync::atomic::Ordering::Relaxed),
    );
    proxy
        .cutting
        .store(false, std::sync::atomic::Ordering::Relaxed);

    // Everything arrived, and both phones hold the same records.
    let visits = coordinator
        .store
        .list_visits(&VisitFilter {
            limit: Some(1000),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(visits.len(), 50);
    let workshops = coordinator
        .store
        .list_workshops(&WorkshopFilter::default())
        .unwrap();
    assert_eq!(workshops.len(), 3);
    for w in &workshops {
        assert_eq!(
            coordinator
                .store
                .get_workshop(&w.id)
                .unwrap()
                .attendees
                .len(),
            40
        );
    }
    worker.sync_until_ok();
    assert_converged(&devices);

    // After cuts, nothing acknowledged went again, and every request stayed small.
    let exchanges = proxy.exchanges()[first..].to_vec();
    let (resent_pushes, repeated_pulls) = assert_nothing_acknowledged_is_resent(&exchanges);
    let largest = exchanges
        .iter()
        .map(|x| {
            x.request_body
                .len()
                .max(x.response.as_ref().map_or(0, |(_, b)| b.len()))
        })
        .max()
        .unwrap_or(0);
    assert!(
        largest <= MAX_BODY,
        "a request or answer of {largest} B would take {:.0} s at 64 kbit/s",
        largest as f64 / 8_000.0
    );
    let mut durations: Vec<Duration> = exchanges
        .iter()
        .filter_map(|x| Some(x.finished? - x.started))
        .collect();
    durations.sort();
    let metrics = reqwest::blocking::get(format!("http://{}{}", server.addr, proto::PATH_METRICS))
        .unwrap()
        .text()
        .unwrap();
    let repeated = metric(&metrics, "waymark_blobs_repeated_total");
    // The log itself, not the metric: a push whose connection was cut is still stored, but its
    // handler never gets to count it.
    let usage = admin(data.path(), &["usage"]);
    let stored = usage[0]["blobs"].as_u64().unwrap();

    println!(
        "day's work: {blobs} changes, {:.1} kB sealed (50 visits, 3 workshops x 40 attendees)",
        sealed as f64 / 1e3
    );
    println!(
        "outreach worker -> server: {:.1} s, {:.1} kB up / {:.1} kB down on the wire, {cuts_up} cuts",
        upload.as_secs_f64(),
        (up1 - up0) as f64 / 1e3,
        (down1 - down0) as f64 / 1e3
    );
    println!(
        "server -> coordinator: {:.1} s, {:.1} kB up / {:.1} kB down on the wire, {} cuts",
        download.as_secs_f64(),
        (up2 - up1) as f64 / 1e3,
        (down2 - down1) as f64 / 1e3,
        proxy.cuts() - cuts_up
    );
    println!(
        "requests: {}, largest body {largest} B, time per request p50 {:.1} s / max {:.1} s",
        exchanges.len(),
        durations
            .get(durations.len() / 2)
            .map_or(0.0, Duration::as_secs_f64),
        durations.last().map_or(0.0, Duration::as_secs_f64)
    );
    println!(
        "after cuts: {resent_pushes} pushes and {repeated_pulls} pulls repeated (their answers \
         were cut); the server holds {stored} blobs, {repeated} arrived again"
    );
    assert!(
        proxy.cuts() > 0,
        "the link was never cut: the test proved nothing"
    );
    // A blob arrives twice only when the push carrying it lost its answer to a cut.
    let at_risk_blobs: usize = exchanges
        .iter()
        .filter(|x| x.at_risk && x.target == proto::PATH_PUSH)
        .map(|x| pushed_ids(x).len())
        .sum();
    assert!(
        repeated as usize <= at_risk_blobs,
        "{repeated} blobs pushed again, but only {at_risk_blobs} were in pushes cut before \
         their answer"
    );
}

/// A workspace and enrolment token made with the admin commands on the server's data.
fn admin_workspace_and_token(data: &std::path::Path) -> (String, String) {
    let ws = admin(data, &["workspace", "create", "--name", "Field team"]);
    let ws = ws["id"].as_str().unwrap().to_string();
    let token = admin(data, &["token", "issue", "--workspace", &ws, "--ttl", "1h"]);
    (ws, token["token"].as_str().unwrap().to_string())
}
