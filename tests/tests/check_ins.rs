//! Staff safety check-ins against a real server with a one-second grace period and an alert
//! hook: an overdue check-in reaches a teammate and runs the hook; a duress close runs it too
//! and looks, on the worker's phone, like a safe close (and leaves no trace there); a check-in
//! closed in time never alerts; a server killed and started again keeps every open deadline; a
//! check-in started without signal is watched from the next sync; and a server that lies
//! cannot close a worker's check-in or hide that it is overdue.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use support::*;
use waymark_core::*;
use waymark_e2e::hostile::HostileServer;
use waymark_protocol as proto;

/// Amina's duress PIN. Eight digits, so that the scan of her store's pages for it cannot stumble
/// on it inside one of the many hex ids a store holds (four digits did, now and then).
const DURESS_PIN: &str = "83920571";

/// A server that finds check-ins overdue one second past their deadline and runs a hook that
/// appends one line per alert to `alerts.txt` in `dir`: kind, workspace (its id on the server,
/// as the operator knows it), device name, minutes overdue, check-in id.
fn watching_server(dir: &Path) -> (Server, PathBuf) {
    let alerts = dir.join("alerts.txt");
    let hook = dir.join("alert.sh");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\necho \"$WAYMARK_ALERT_KIND $1 $2 $3 $WAYMARK_CHECK_IN\" >> '{}'\n",
            alerts.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let data = dir.join("server");
    std::fs::create_dir_all(&data).unwrap();
    let server = Server::start_with(
        &data,
        &[
            "--check-in-grace",
            "1s",
            "--alert-command",
            &hook.display().to_string(),
        ],
    );
    (server, alerts)
}

/// A watching server (see `watching_server`) with a workspace, a coordinator and Amina admitted
/// to it, through a hostile server in front of it when `hostile`.
struct Watched {
    server: Server,
    /// Where the hook writes its lines.
    hook: PathBuf,
    /// The workspace's id on the server, as the hook names it.
    server_ws: String,
    /// The hostile server the phones talk to, when asked for.
    hostile: Option<HostileServer>,
    /// The coordinator's phone, then Amina's.
    team: Vec<Device>,
    /// The workspace's id on the phones.
    ws: String,
}

fn watched_team(dir: &Path, hostile: bool) -> Watched {
    let (server, hook) = watching_server(dir);
    let hostile = hostile.then(|| HostileServer::start(&server.url()).unwrap());
    let url = hostile
        .as_ref()
        .map_or_else(|| server.url(), HostileServer::url);
    let (server_ws, token) = server.workspace_and_token();
    let (team, ws) = team(&url, &token, &["Coordinator", "Amina"]);
    Watched {
        server,
        hook,
        server_ws,
        hostile,
        team,
        ws,
    }
}

/// The alert lines written so far.
fn alerts(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Waits (at most 30 s) until the hook has written `n` lines; returns them.
fn wait_for_alerts(path: &Path, n: usize) -> Vec<String> {
    let started = Instant::now();
    loop {
        let lines = alerts(path);
        if lines.len() >= n {
            return lines;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the alert hook did not run: {lines:?}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

fn details(place: &str) -> CheckInDetails {
    CheckInDetails {
        place: place.into(),
        with_whom: "Joseph (driver)".into(),
        note: "Back room, ask for Mr. T".into(),
    }
}

/// The check-in `id` as `d` lists it.
fn listed(d: &Device, ws: &str, id: &str) -> CheckIn {
    d.store
        .check_ins(ws)
        .unwrap()
        .into_iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("check-in {id} is not listed"))
}

/// Syncs `d` until the check-in `id` is in `state` there (at most 30 s).
fn sync_until(d: &Device, ws: &str, id: &str, state: CheckInState) -> CheckIn {
    let started = Instant::now();
    loop {
        d.sync_until_ok();
        if let Some(c) = d
            .store
            .check_ins(ws)
            .unwrap()
            .into_iter()
            .find(|c| c.id == id)
            && c.state == state
        {
            return c;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "check-in never became {state:?}: {:?}",
            d.store.check_ins(ws).unwrap()
        );
        thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn an_overdue_check_in_reaches_a_teammate_and_runs_the_alert_hook() {
    let dir = tempfile::tempdir().unwrap();
    let Watched {
        server,
        hook,
        server_ws,
        team,
        ws,
        ..
    } = watched_team(dir.path(), false);
    let (coordinator, amina) = (&team[0], &team[1]);

    let marker = "Golden Lotus karaoke MARKER";
    let started = amina
        .store
        .start_check_in(&ws, now_ms() + 1_500, &details(marker))
        .unwrap();
    assert!(started.watched, "the server was told at once");
    assert_eq!(started.state, CheckInState::Open);
    assert!(started.own);

    coordinator.sync_until_ok();
    let seen = listed(coordinator, &ws, &started.id);
    assert_eq!(seen.state, CheckInState::Open);
    assert_eq!(
        seen.details,
        details(marker),
        "the team can open the details"
    );
    assert_eq!(seen.device_name, "Amina");
    assert!(!seen.own);

    let lines = wait_for_alerts(&hook, 1);
    assert_eq!(
        lines,
        vec![format!("overdue {server_ws} Amina 0 {}", started.id)],
        "the hook runs once, with the workspace, the device's name and the minutes overdue"
    );
    let report = coordinator.sync_until_ok();
    assert!(
        report.changed.contains(&started.id),
        "the change listener hears of it: {report:?}"
    );
    let overdue = listed(coordinator, &ws, &started.id);
    assert_eq!(overdue.state, CheckInState::Overdue);
    assert_eq!(
        overdue.details.place, marker,
        "so the team knows where to look"
    );
    amina.sync_until_ok();
    assert_eq!(
        listed(amina, &ws, &started.id).state,
        CheckInState::Overdue,
        "the worker's phone shows it overdue too, once it syncs"
    );

    // The server holds the deadline and the state, never the details.
    assert!(!contains(&all_bytes(&server.data), "MARKER"));
    thread::sleep(Duration::from_secs(2));
    assert_eq!(alerts(&hook).len(), 1, "an alert runs once");
}

#[test]
fn a_duress_close_raises_the_alarm_and_looks_like_a_safe_close_on_the_phone() {
    let dir = tempfile::tempdir().unwrap();
    let Watched {
        mut server,
        hook,
        server_ws,
        team,
        ws,
        ..
    } = watched_team(dir.path(), false);
    let (coordinator, amina) = (&team[0], &team[1]);
    amina.store.set_duress_pin(Some(DURESS_PIN)).unwrap();
    let hour = now_ms() + 3_600_000;

    let safe = amina
        .store
        .start_check_in(&ws, hour, &details("Market"))
        .unwrap();
    let safe = amina.store.close_check_in(&safe.id, Some("1234")).unwrap();
    let forced = amina
        .store
        .start_check_in(&ws, hour, &details("Port"))
        .unwrap();
    // No signal when she closes it: the alarm waits on the phone until the next sync.
    server.kill();
    let forced = amina
        .store
        .close_check_in(&forced.id, Some(DURESS_PIN))
        .unwrap();
    for c in [&safe, &forced] {
        assert_eq!(c.state, CheckInState::Closed, "{c:?}");
        assert!(c.closed_at.is_some());
    }
    let db = amina.dir.path().join("waymark.db");
    let pages = waymark_e2e::pages::plaintext(&db, &amina.key).unwrap();
    assert!(
        contains(&pages, "alarm"),
        "the scan sees the pending alarm (it can find what it looks for)"
    );

    server.restart();
    amina.sync_until_ok();
    let lines = wait_for_alerts(&hook, 1);
    assert_eq!(
        lines,
        vec![format!("alarm {server_ws} Amina 0 {}", forced.id)]
    );

    let raised = sync_until(coordinator, &ws, &forced.id, CheckInState::Alarm);
    assert_eq!(raised.details.place, "Port");
    assert_eq!(
        listed(coordinator, &ws, &safe.id).state,
        CheckInState::Closed
    );

    // On her phone both read the same, and nothing in the store says which one was forced.
    let mine = amina.store.check_ins(&ws).unwrap();
    assert!(
        mine.iter()
            .all(|c| c.state == CheckInState::Closed && c.watched),
        "{mine:?}"
    );
    let pages = waymark_e2e::pages::plaintext(&db, &amina.key).unwrap();
    assert!(
        !contains(&pages, "alarm"),
        "the phone keeps no trace of the duress close"
    );
    assert!(!contains(&pages, DURESS_PIN), "nor the PIN");
    thread::sleep(Duration::from_secs(2));
    assert_eq!(alerts(&hook).len(), 1, "a safe close never alerts");
}

#[test]
fn a_check_in_closed_in_time_never_alerts_and_an_extended_one_waits_for_its_new_time() {
    let dir = tempfile::tempdir().unwrap();
    let Watched {
        server: _server,
        hook,
        team,
        ws,
        ..
    } = watched_team(dir.path(), false);
    let (coordinator, amina) = (&team[0], &team[1]);

    let closed = amina
        .store
        .start_check_in(&ws, now_ms() + 1_000, &details("Garment factory"))
        .unwrap();
    amina.store.close_check_in(&closed.id, None).unwrap();
    let extended = amina
        .store
        .start_check_in(&ws, now_ms() + 1_000, &details("Brick kiln"))
        .unwrap();
    let extended = amina
        .store
        .extend_check_in(&extended.id, now_ms() + 60_000)
        .unwrap();
    assert!(extended.watched);

    // Past both first deadlines and the grace period, with the watcher running each second.
    thread::sleep(Duration::from_secs(4));
    assert_eq!(alerts(&hook), Vec::<String>::new());
    coordinator.sync_until_ok();
    assert_eq!(
        listed(coordinator, &ws, &closed.id).state,
        CheckInState::Closed
    );
    assert_eq!(
        listed(coordinator, &ws, &extended.id).state,
        CheckInState::Open
    );
    assert!(
        amina
            .store
            .extend_check_in(&closed.id, now_ms() + 60_000)
            .is_err(),
        "a closed check-in stays closed"
    );
}

#[test]
fn a_server_killed_and_started_again_keeps_every_open_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let Watched {
        mut server,
        hook,
        server_ws,
        team,
        ws,
        ..
    } = watched_team(dir.path(), false);
    let amina = &team[1];
    let started = amina
        .store
        .start_check_in(&ws, now_ms() + 2_000, &details("Transit point"))
        .unwrap();
    assert!(started.watched);
    server.kill();
    server.restart();
    let lines = wait_for_alerts(&hook, 1);
    assert_eq!(
        lines,
        vec![format!("overdue {server_ws} Amina 0 {}", started.id)]
    );
}

#[test]
fn a_check_in_started_without_signal_is_watched_from_the_next_sync() {
    let dir = tempfile::tempdir().unwrap();
    let Watched {
        mut server,
        hook,
        team,
        ws,
        ..
    } = watched_team(dir.path(), false);
    let (coordinator, amina) = (&team[0], &team[1]);
    server.kill();
    let started = amina
        .store
        .start_check_in(&ws, now_ms() + 2_000, &details("Bus station"))
        .unwrap();
    assert!(
        !started.watched,
        "the app can warn that nobody watches it yet"
    );
    assert_eq!(
        listed(amina, &ws, &started.id),
        started,
        "saved on the phone"
    );
    server.restart();
    amina.sync_until_ok();
    assert!(listed(amina, &ws, &started.id).watched);
    wait_for_alerts(&hook, 1);
    sync_until(coordinator, &ws, &started.id, CheckInState::Overdue);
}

#[test]
fn a_server_cannot_close_a_workers_check_in_nor_hide_that_it_is_overdue() {
    let dir = tempfile::tempdir().unwrap();
    let Watched {
        server: _server,
        hook: _hook,
        hostile,
        team,
        ws,
        ..
    } = watched_team(dir.path(), true);
    let hostile = hostile.unwrap();
    let (coordinator, amina) = (&team[0], &team[1]);
    let started = amina
        .store
        .start_check_in(&ws, now_ms() + 1_500, &details("Harbour"))
        .unwrap();
    coordinator.sync_until_ok();
    assert_eq!(
        listed(coordinator, &ws, &started.id).state,
        CheckInState::Open
    );

    // From now on the server says the worker closed it, with sealed bytes of its own making,
    // and then stops listing it at all.
    let forged = amina
        .store
        .start_check_in(&ws, now_ms() + 3_600_000, &details("Decoy"))
        .unwrap();
    hostile.rewrite_check_ins(|list| {
        for entry in &mut list.check_ins {
            entry.state = proto::check_in_states::CLOSED.into();
            entry.version += 1;
            let n = entry.sealed.len();
            entry.sealed[n - 1] ^= 1;
        }
    });
    thread::sleep(Duration::from_secs(3));
    coordinator.sync_until_ok();
    assert_eq!(
        listed(coordinator, &ws, &started.id).state,
        CheckInState::Overdue,
        "a close the worker did not sign is not believed"
    );
    assert!(
        coordinator
            .store
            .check_ins(&ws)
            .unwrap()
            .iter()
            .all(|c| c.id != forged.id),
        "nor a check-in whose sealed part was altered"
    );
    hostile.rewrite_check_ins(|list| list.check_ins.clear());
    coordinator.sync_until_ok();
    assert_eq!(
        listed(coordinator, &ws, &started.id).state,
        CheckInState::Overdue,
        "a check-in the server stops listing stays overdue on the devices that saw it"
    );
}

#[test]
fn a_server_that_replays_an_older_state_does_not_reopen_a_closed_check_in() {
    let dir = tempfile::tempdir().unwrap();
    let Watched {
        server: _server,
        hook: _hook,
        hostile,
        team,
        ws,
        ..
    } = watched_team(dir.path(), true);
    let hostile = hostile.unwrap();
    let (coordinator, amina) = (&team[0], &team[1]);
    let started = amina
        .store
        .start_check_in(&ws, now_ms() + 1_500, &details("Night market"))
        .unwrap();
    // The server keeps what it listed while the check-in was open...
    let kept = std::sync::Arc::new(std::sync::Mutex::new(None));
    let keep = kept.clone();
    hostile.rewrite_check_ins(move |list| {
        let mut kept = keep.lock().unwrap();
        match kept.as_ref() {
            None => *kept = Some(list.clone()),
            Some(old) => *list = old.clone(),
        }
    });
    coordinator.sync_until_ok();
    assert_eq!(
        listed(coordinator, &ws, &started.id).state,
        CheckInState::Open
    );
    hostile.honest();
    amina.store.close_check_in(&started.id, None).unwrap();
    coordinator.sync_until_ok();
    assert_eq!(
        listed(coordinator, &ws, &started.id).state,
        CheckInState::Closed
    );

    // ...and shows it again, signed and all, once she is back and past her time.
    let replay = kept.clone();
    hostile.rewrite_check_ins(move |list| {
        if let Some(old) = replay.lock().unwrap().as_ref() {
            *list = old.clone();
            list.version += 10;
        }
    });
    thread::sleep(Duration::from_secs(3));
    coordinator.sync_until_ok();
    assert_eq!(
        listed(coordinator, &ws, &started.id).state,
        CheckInState::Closed,
        "an older sealed state never replaces a newer one"
    );
}
