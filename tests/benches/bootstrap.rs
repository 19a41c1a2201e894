//! A new phone joins a big workspace: time, bytes on the wire and the client's peak memory to
//! pull everything from a real server process on loopback. Prints figures; asserts nothing
//! about time.
//!
//! Run: `cargo bench -p waymark-e2e --bench bootstrap` (env `WAYMARK_BENCH_RECORDS`, default
//! 100000; `WAYMARK_BENCH_RUNS`, default 3 newcomers, one after another). Newcomers join twice:
//! pulling the whole log, then after the coordinator packed it into snapshots (and the server
//! compacted), side by side, with the snapshots' cost and the server's storage. The workspace is
//! recorded by a coordinator whose store lives on tmpfs when there is one (seeding is not what
//! is measured); each newcomer runs in a child process of its own, on disk, so that its
//! resident-memory high-water mark (`VmHWM`) is the client's alone.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Command;
use std::time::Instant;

use rand::SeedableRng;

use support::*;
use waymark_core::*;

const CHILD: &str = "WAYMARK_BENCH_BOOTSTRAP_CHILD";

/// Kilobytes of a field of /proc/self/status (e.g. `VmHWM`).
fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU seconds (user + system) a process has used so far, from `/proc/<pid>/stat`.
fn cpu_secs(pid: &str) -> f64 {
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

/// Words field notes are made of, so that a note compresses as real ones do rather than as
/// one sentence repeated.
const WORDS: [&str; 48] = [
    "workers",
    "met",
    "gate",
    "two",
    "without",
    "documents",
    "hotline",
    "cards",
    "given",
    "recruiter",
    "van",
    "night",
    "shift",
    "passport",
    "kept",
    "by",
    "foreman",
    "debt",
    "owed",
    "agency",
    "fee",
    "young",
    "women",
    "men",
    "minors",
    "bus",
    "station",
    "market",
    "farm",
    "factory",
    "locked",
    "dormitory",
    "wages",
    "unpaid",
    "phone",
    "taken",
    "referred",
    "shelter",
    "clinic",
    "legal",
    "aid",
    "follow",
    "up",
    "next",
    "week",
    "afraid",
    "to",
    "talk",
];

/// A note of about 90 characters of words picked at random.
fn note(rng: &mut rand::rngs::StdRng) -> String {
    let mut out = String::new();
    while out.len() < 90 {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(WORDS[rand::Rng::random_range(rng, 0..WORDS.len())]);
    }
    out
}

/// The newcomer: joins with the invite in `argv[1]`, syncs everything, prints one line of
/// figures.
fn child(code: &str) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let store = Store::open(dir.path().join("waymark.db"), &rand::random::<[u8; 32]>()).unwrap();
    store.set_device_name("Newcomer").unwrap();
    let before = status_kb("VmRSS");
    let cpu0 = cpu_secs("self");
    // This thread runs the sync, so its time is the writer's: the part that cannot use more
    // cores.
    let writer0 = cpu_secs("thread-self");
    let t = Instant::now();
    store.join(code).unwrap();
    let report = store.sync().unwrap();
    let secs = t.elapsed().as_secs_f64();
    let visits = store
        .list_visits(&VisitFilter {
            limit: Some(5),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(visits.len(), 5);
    println!(
        "RESULT {secs:.3} {} {} {} {before} {} {:.2} {:.2}",
        report.pulled,
        report.bytes_down,
        report.bytes_up,
        status_kb("VmHWM"),
        cpu_secs("self") - cpu0,
        cpu_secs("thread-self") - writer0
    );
}

fn main() {
    if let Ok(code) = std::env::var(CHILD) {
        child(&code);
        return;
    }
    let records: usize = std::env::var("WAYMARK_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    println!("Waymark bootstrap benchmark (loopback, real server process, {records} visits)");

    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (_, token) = server.workspace_and_token();
    let shm = std::path::Path::new("/dev/shm");
    let seed_dir = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let coordinator = Store::open(
        seed_dir.path().join("waymark.db"),
        &rand::random::<[u8; 32]>(),
    )
    .unwrap();
    coordinator.set_device_name("Coordinator").unwrap();
    let ws = coordinator.create_workspace("Big team").unwrap().id;
    coordinator
        .connect_workspace(&ws, &server.url(), &token)
        .unwrap();
    // No snapshot yet: the first newcomers measure the whole log, as before snapshots.
    let seeding = SyncOptions {
        defer_snapshots: true,
        ..Default::default()
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let t = Instant::now();
    for i in 0..records {
        coordinator
            .create_visit(
                &ws,
                &visit(
                    &format!("Place {i}"),
                    &note(&mut rng),
                    NOV_1 + i as i64 * 60_000,
                ),
            )
            .unwrap();
        // Push as it goes, as a coordinator's phone would over weeks: keeps the outbox small.
        if (i + 1) % 20_000 == 0 {
            coordinator.sync_with(&seeding).unwrap();
        }
    }
    let pushed = coordinator.sync_with(&seeding).unwrap();
    println!(
        "  seeded and pushed in {:.0} s (last push {} blobs)",
        t.elapsed().as_secs_f64(),
        pushed.pushed
    );

    // Several newcomers join one after another (env `WAYMARK_BENCH_RUNS`, default 3): the
    // median says more than one run on a machine doing other things. First as the log is,
    // then once the coordinator has packed it into snapshots.
    let runs: usize = std::env::var("WAYMARK_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let before = newcomers("the whole log", &server, &coordinator, &ws, records, runs);
    let stored = |server: &Server| server.admin(&["usage"])[0]["bytes"].as_f64().unwrap();
    let log_bytes = stored(&server);

    let cpu0 = cpu_secs("self");
    let t = Instant::now();
    let packed = coordinator.compact_workspace(&ws).unwrap();
    println!(
        "  snapshots: {} blobs, {:.1} MB for {} records ({:.0} B per record), made and pushed \
         in {:.1} s ({:.1} s of the coordinator's CPU)",
        packed.snapshots,
        packed.bytes as f64 / 1e6,
        packed.records,
        packed.bytes as f64 / packed.records.max(1) as f64,
        t.elapsed().as_secs_f64(),
        cpu_secs("self") - cpu0
    );
    server.admin(&["compact", "--grace", "0s"]);
    let compacted = stored(&server);
    println!(
        "  server storage: {:.1} MB before, {:.1} MB once compacted ({:.2}x the snapshots)",
        log_bytes / 1e6,
        compacted / 1e6,
        compacted / packed.bytes.max(1) as f64
    );
    let after = newcomers("snapshots", &server, &coordinator, &ws, records, runs);
    println!(
        "  side by side: {:.1} s and {:.0} B per record from the whole log; {:.1} s and {:.0} B \
         per record from snapshots",
        before.0, before.1, after.0, after.1
    );
}

/// Runs `runs` newcomers one after another, prints each one's figures and the median; returns
/// the median time and bytes per record.
fn newcomers(
    label: &str,
    server: &Server,
    coordinator: &Store,
    ws: &str,
    records: usize,
    runs: usize,
) -> (f64, f64) {
    println!("  a new device joins, pulling {label}:");
    let server_pid = server.pid().unwrap().to_string();
    let mut results = Vec::new();
    for run in 1..=runs {
        let code = coordinator.create_invite(ws, 3600).unwrap();
        let server_cpu0 = cpu_secs(&server_pid);
        let out = Command::new(std::env::current_exe().unwrap())
            .env(CHILD, &code)
            .output()
            .unwrap();
        let server_cpu = cpu_secs(&server_pid) - server_cpu0;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("RESULT "))
            .unwrap_or_else(|| {
                panic!(
                    "the newcomer failed: {stdout}\n{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            });
        let f: Vec<f64> = line.split(' ').map(|v| v.parse().unwrap()).collect();
        let (secs, pulled, down, up, rss0, hwm) = (f[0], f[1], f[2], f[3], f[4], f[5]);
        let (cpu, writer) = (f[6], f[7]);
        println!(
            "  run {run}: {pulled:.0} blobs, {:.1} MB down ({:.0} B per record), {:.1} kB up, \
             {secs:.1} s; CPU client {cpu:.1} s (writer thread {writer:.1} s), server \
             {server_cpu:.1} s; peak resident {:.1} MiB ({:.1} MiB before joining)",
            down / 1e6,
            down / records as f64,
            up / 1e3,
            hwm / 1024.0,
            rss0 / 1024.0
        );
        results.push((secs, hwm, down / records as f64));
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let secs = median(results.iter().map(|r| r.0).collect());
    let per_record = median(results.iter().map(|r| r.2).collect());
    println!(
        "  median of {runs}: {secs:.1} s ({:.0} records/s) on {} cores; largest peak resident \
         memory {:.1} MiB",
        records as f64 / secs,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        results.iter().map(|r| r.1).fold(0.0, f64::max) / 1024.0
    );
    (secs, per_record)
}
