//! What a tipster on a poor link waits for: the tip page's size, the time to load it, and the
//! time from pressing send to seeing the receipt code, in headless Chromium throttled to
//! 64 kbit/s each way with 300 ms of added round trip (a 2G/EDGE phone), against a real server
//! process on loopback. Prints figures; asserts nothing about time.
//!
//! Run: `cargo bench -p waymark-e2e --bench tip_page` (env `WAYMARK_BENCH_RUNS`, default 5).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Instant;

use serde_json::json;
use support::*;
use waymark_e2e::browser::Browser;

/// 64 kbit/s in bytes per second.
const LINK_BYTES_PER_SEC: u64 = 8_000;
const ADDED_RTT_MS: u64 = 300;

fn median(mut v: Vec<u128>) -> u128 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn main() {
    let runs: usize = std::env::var("WAYMARK_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (_, token) = server.workspace_and_token();
    let (team, ws) = team(&server.url(), &token, &["Coordinator"]);
    team[0].store.set_tip_page(&ws, &[], false).unwrap();
    team[0].sync_until_ok();
    let page = team[0].store.tip_page(&ws).unwrap().unwrap();
    let html = reqwest::blocking::get(&page.url).unwrap().text().unwrap();
    println!(
        "Waymark tip page ({} languages), {runs} runs, 64 kbit/s each way + {ADDED_RTT_MS} ms RTT",
        page.languages.len()
    );
    println!(
        "  page size: {} bytes (one file, nothing else fetched)",
        html.len()
    );

    let (mut loads, mut sends) = (Vec::new(), Vec::new());
    for run in 0..runs {
        let mut browser = Browser::launch();
        browser.call(
            "Network.emulateNetworkConditions",
            json!({
                "offline": false,
                "latency": ADDED_RTT_MS,
                "downloadThroughput": LINK_BYTES_PER_SEC,
                "uploadThroughput": LINK_BYTES_PER_SEC,
            }),
        );
        let started = Instant::now();
        browser.open(&page.url);
        loads.push(started.elapsed().as_millis());
        browser.eval(&format!(
            "document.getElementById('what').value = 'Run {run}: a tip of about two hundred \
             characters, as a bystander would write one: what they saw, where it was, and \
             roughly when it happened, with a detail or two.';
             document.getElementById('where').value = 'Market street';
             true"
        ));
        let started = Instant::now();
        browser.eval("document.getElementById('send').click(); true");
        browser.wait_for("document.getElementById('receipt').textContent.trim()");
        sends.push(started.elapsed().as_millis());
    }
    team[0].sync_until_ok();
    assert_eq!(
        team[0].store.tips(&ws).unwrap().len(),
        runs,
        "every tip arrived"
    );
    println!(
        "  load the page: median {} ms (worst {} ms)",
        median(loads.clone()),
        loads.iter().max().unwrap()
    );
    println!(
        "  send to receipt: median {} ms (worst {} ms)",
        median(sends.clone()),
        sends.iter().max().unwrap()
    );
}
