//! Phones that worked offline converge through a real server process, whatever the order of
//! their syncs, server crashes or a bad network; the server never sees a plaintext byte.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use rand::seq::SliceRandom;
use support::*;
use waymark_core::*;

/// Dozens of offline edits of every kind on one device, including the shared note and the
/// shared workshop's attendance.
fn offline_work(
    d: &Device,
    ws: &str,
    me: &str,
    shared_visit: &str,
    shared_workshop: &str,
    n: usize,
) {
    let s = &d.store;
    let mut mine = Vec::new();
    for i in 0..n {
        let id = s
            .create_visit(
                ws,
                &visit(
                    &format!("{me} place {i}"),
                    &format!("{me} note {i}"),
                    NOV_1 + i as i64,
                ),
            )
            .unwrap();
        mine.push(id);
    }
    for (i, id) in mine.iter().enumerate() {
        s.update_visit(
            id,
            &[
                VisitEdit::PeopleReached(i as u32),
                VisitEdit::AddIndicator("isolation".into()),
            ],
        )
        .unwrap();
        if i % 4 == 0 {
            s.delete_record(id).unwrap();
        }
    }
    let notes = s.get_visit(shared_visit).unwrap().notes;
    s.set_visit_notes(shared_visit, &format!("{notes} [{me} was here]"))
        .unwrap();
    s.update_visit(shared_visit, &[VisitEdit::AddTag(me.to_lowercase())])
        .unwrap();
    for i in 0..3 {
        s.check_in(
            shared_workshop,
            &NewAttendee {
                name: format!("{me} guest {i}"),
                ..Default::default()
            },
        )
        .unwrap();
        s.add_to_tally(shared_workshop, "18_24", "female", 1)
            .unwrap();
    }
    let w = s
        .create_workshop(ws, &workshop(&format!("{me}'s workshop")))
        .unwrap();
    s.add_feedback(&w, 4, "useful").unwrap();
}

#[test]
fn three_devices_working_offline_converge_in_any_sync_order() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (_, token) = server.workspace_and_token();
    let (devices, ws) = team(&server.url(), &token, &["Ana", "Bo", "Cy"]);

    let shared = devices[0]
        .store
        .create_visit(&ws, &visit("Bus station", "Met two young men.", NOV_1))
        .unwrap();
    let shared_w = devices[0]
        .store
        .create_workshop(&ws, &workshop("Safe migration"))
        .unwrap();
    for d in &devices {
        d.sync_until_ok();
    }
    for (d, me) in devices.iter().zip(["Ana", "Bo", "Cy"]) {
        offline_work(d, &ws, me, &shared, &shared_w, 12);
    }
    let mut order: Vec<usize> = (0..3).collect();
    let mut rng = rand::rng();
    for _ in 0..3 {
        order.shuffle(&mut rng);
        for &i in &order {
            devices[i].sync_until_ok();
        }
    }
    assert_converged(&devices);
    let names: Vec<String> = devices[0]
        .store
        .settings(&ws)
        .unwrap()
        .devices
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    assert_eq!(
        names,
        vec!["Ana", "Bo", "Cy"],
        "joined devices introduced themselves"
    );
    let history = devices[0].store.history(&shared).unwrap();
    assert!(
        history
            .iter()
            .any(|h| h.author.device_name.as_deref() == Some("Cy"))
    );
    let notes = devices[2].store.get_visit(&shared).unwrap().notes;
    for me in ["Ana", "Bo", "Cy"] {
        assert!(
            notes.contains(&format!("[{me} was here]")),
            "{me}'s edit kept: {notes}"
        );
    }
    assert!(notes.starts_with("Met two young men."));
    let att = devices[1].store.attendance(&shared_w).unwrap();
    assert_eq!((att.named, att.anonymous), (9, 9));
    let listed = devices[0]
        .store
        .list_visits(&VisitFilter {
            limit: Some(1000),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        listed.len(),
        1 + 3 * 9,
        "12 each, 3 of them deleted, plus the shared one"
    );
    for d in &devices {
        assert_eq!(d.store.pending_changes(&ws).unwrap(), 0);
    }
    // Nothing new: one round trip each way, nothing moved.
    let quiet = devices[0].sync_until_ok();
    assert_eq!((quiet.pushed, quiet.pulled), (0, 0));
    assert!(quiet.changed.is_empty());
}

#[test]
fn no_acknowledged_change_is_lost_when_the_server_is_killed_mid_sync() {
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(data.path());
    let (_, token) = server.workspace_and_token();
    let (devices, ws) = team(&server.url(), &token, &["Ana", "Bo"]);
    let mut rng = rand::rng();
    for round in 0..6 {
        for (k, d) in devices.iter().enumerate() {
            for i in 0..40 {
                d.store
                    .create_visit(&ws, &visit(&format!("r{round} d{k} v{i}"), "note", NOV_1))
                    .unwrap();
            }
        }
        // Kill the server while both devices sync.
        let handles: Vec<_> = devices
            .iter()
            .map(|d| {
                let s = d.store.clone();
                std::thread::spawn(move || s.sync())
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(rand::Rng::random_range(
            &mut rng,
            5..80,
        )));
        server.kill();
        for h in handles {
            // Either it finished before the kill, or it failed cleanly: never a panic.
            let _ = h.join().unwrap();
        }
        server.restart();
    }
    for _ in 0..2 {
        for d in &devices {
            d.sync_until_ok();
        }
    }
    assert_converged(&devices);
    let n = devices[0]
        .store
        .list_visits(&VisitFilter {
            limit: Some(10_000),
            ..Default::default()
        })
        .unwrap()
        .len();
    assert_eq!(n, 6 * 2 * 40);
    let usage = admin(&server.data, &["usage"]);
    let blobs = usage[0]["blobs"].as_u64().unwrap();
    // One blob per create, plus the settings document and device-name edits: pushes retried
    // after a crash stored nothing twice.
    assert!(
        (480..480 + 10).contains(&blobs),
        "{blobs} blobs for 480 creates"
    );
}

#[test]
fn sync_converges_through_cuts_delays_and_duplicated_requests() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let proxy = Proxy::start(&server.addr);
    let (_, token) = server.workspace_and_token();
    let (devices, ws) = team(&proxy.url(), &token, &["Ana", "Bo", "Cy"]);
    proxy.set(Faults {
        cut: 0.3,
        delay_ms: 2,
        duplicate: 0.3,
    });
    for (k, d) in devices.iter().enumerate() {
        for i in 0..30 {
            d.store
                .create_visit(
                    &ws,
                    &visit(&format!("d{k} v{i}"), &"long note ".repeat(50), NOV_1),
                )
                .unwrap();
        }
    }
    for _ in 0..3 {
        for d in &devices {
            d.sync_until_ok();
        }
    }
    proxy.set(Faults::default());
    for d in &devices {
        d.sync_until_ok();
    }
    assert_converged(&devices);
    assert_eq!(
        devices[0]
            .store
            .list_visits(&VisitFilter {
                limit: Some(1000),
                ..Default::default()
            })
            .unwrap()
            .len(),
        90
    );
}

#[test]
fn the_server_and_the_wire_never_see_plaintext() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let proxy = Proxy::start(&server.addr);
    let (_, token) = server.workspace_and_token();
    let (devices, ws) = team(&proxy.url(), &token, &["Ana", "Bo"]);
    let markers = [
        "MARKER-NOTE-4417",
        "MARKER-PLACE-2290",
        "MARKER-NAME-7781",
        "MARKER-AREA-3392",
    ];
    let mut v = visit(
        markers[1],
        &format!("The owner holds passports {}", markers[0]),
        NOV_1,
    );
    v.place.area = markers[3].into();
    devices[0].store.create_visit(&ws, &v).unwrap();
    let w = devices[0]
        .store
        .create_workshop(&ws, &workshop("Rights"))
        .unwrap();
    devices[0]
        .store
        .check_in(
            &w,
            &NewAttendee {
                name: markers[2].into(),
                ..Default::default()
            },
        )
        .unwrap();
    devices[0].sync_until_ok();
    devices[1].sync_until_ok();
    assert_eq!(
        devices[1].store.search("MARKER", 10).unwrap().len(),
        1,
        "it did arrive"
    );
    // With nothing new, a sync is a single pull request answered at once.
    devices[1].sync_until_ok();
    proxy.wire.lock().unwrap().clear();
    let quiet = devices[1].sync_until_ok();
    assert_eq!((quiet.pushed, quiet.pulled), (0, 0));
    let requests = proxy.wire.lock().unwrap().clone();
    let count = |verb: &str| {
        requests
            .windows(verb.len())
            .filter(|w| *w == verb.as_bytes())
            .count()
    };
    assert_eq!((count("GET /v1/pull"), count("POST ")), (1, 0));
    let wire = proxy.wire.lock().unwrap().clone();
    let disk = all_bytes(&server.data);
    assert!(!wire.is_empty() && !disk.is_empty());
    for m in markers.iter().chain(
        [
            "passports",
            "North district",
            "street_outreach",
            "deception",
        ]
        .iter(),
    ) {
        assert!(!contains(&wire, m), "{m} on the wire");
        assert!(!contains(&disk, m), "{m} in the server's files");
    }
}

#[test]
fn a_revoked_device_gets_a_typed_error_and_stops_syncing() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (_, token) = server.workspace_and_token();
    let (devices, ws) = team(&server.url(), &token, &["Ana", "Lost phone"]);
    let listed = admin(&server.data, &["devices", "list"]);
    let rows = listed.as_array().unwrap();
    let lost = rows
        .iter()
        .find(|d| d["name"] == "Lost phone")
        .expect("the lost phone is listed");
    admin(
        &server.data,
        &["devices", "revoke", lost["id"].as_str().unwrap()],
    );
    devices[1]
        .store
        .create_visit(&ws, &visit("after", "after revocation", NOV_1))
        .unwrap();
    assert!(matches!(devices[1].store.sync(), Err(Error::DeviceRevoked)));
    // It no longer queues or pushes anything; the rest of the team goes on.
    assert_eq!(devices[1].store.pending_changes(&ws).unwrap(), 0);
    assert!(devices[1].store.sync().is_ok());
    devices[0].sync_until_ok();
    assert!(devices[0].store.search("revocation", 5).unwrap().is_empty());
}

#[test]
fn invites_that_are_used_expired_or_damaged_say_which() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (_, token) = server.workspace_and_token();
    let (devices, ws) = team(&server.url(), &token, &["Ana"]);
    let code = devices[0].store.create_invite(&ws, 3600).unwrap();
    Device::new("Bo").store.join(&code).unwrap();
    assert!(matches!(
        Device::new("Cy").store.join(&code),
        Err(Error::InviteUsed)
    ));
    let short = devices[0].store.create_invite(&ws, 1).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert!(matches!(
        Device::new("Di").store.join(&short),
        Err(Error::InviteExpired)
    ));
    assert!(matches!(
        Device::new("Ed").store.join("WAYMARK1AAAA"),
        Err(Error::InvalidInvite(_))
    ));
}

#[test]
fn a_blob_that_fails_authentication_is_set_aside_and_the_rest_applies() {
    use waymark_protocol as proto;
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (server_ws, token) = server.workspace_and_token();
    let (devices, ws) = team(&server.url(), &token, &["Ana", "Bo"]);
    let id = devices[0]
        .store
        .create_visit(&ws, &visit("Port", "first", NOV_1))
        .unwrap();
    devices[0].sync_until_ok();

    // A malicious client enrolled in the workspace pushes garbage for that document, and a
    // real blob copied to another document.
    let evil_token = admin(
        &server.data,
        &["token", "issue", "--workspace", &server_ws, "--ttl", "1h"],
    );
    let http = |path: &str, auth: Option<&str>, body: Vec<u8>| {
        raw_post(&format!("{}{path}", server.url()), auth, &body)
    };
    let enrolled: proto::EnrollResponse = proto::decode(&http(
        proto::PATH_ENROLL,
        None,
        proto::encode(&proto::EnrollRequest {
            token: evil_token["token"].as_str().unwrap().into(),
            device_name: "evil".into(),
            sign_key: rand::random(),
            box_key: rand::random(),
            join_proof: None,
            actor: None,
        }),
    ))
    .unwrap();
    let mut doc = [0u8; 16];
    hex::decode_to_slice(&id, &mut doc).unwrap();
    let garbage = vec![0x42u8; 200];
    let blobs = vec![proto::PushBlob {
        content_id: proto::content_id_of(&garbage),
        doc_id: doc,
        epoch: 0,
        ciphertext: garbage,
        supersedes: None,
        forget: false,
        covers: Vec::new(),
    }];
    http(
        proto::PATH_PUSH,
        Some(&enrolled.device_token),
        proto::encode(&proto::PushRequest { blobs }),
    );

    devices[0].store.set_visit_notes(&id, "second").unwrap();
    devices[0].sync_until_ok();
    let report = devices[1].sync_until_ok();
    assert_eq!(report.set_aside.len(), 1, "{report:?}");
    assert_eq!(report.set_aside[0].doc_id, id);
    assert_eq!(
        devices[1].store.get_visit(&id).unwrap().notes,
        "second",
        "the rest applied"
    );
    assert_eq!(devices[1].store.set_aside_blobs().unwrap().len(), 1);
}

/// A minimal HTTP/1.1 POST over a raw socket (the test plays a malicious client).
fn raw_post(url: &str, auth: Option<&str>, body: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut s = std::net::TcpStream::connect(host).unwrap();
    let mut head = format!(
        "POST /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/cbor\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(t) = auth {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let status = String::from_utf8_lossy(&resp[..12]).to_string();
    assert!(status.contains(" 200"), "{status}");
    resp[split..].to_vec()
}

/// Names the store (and its key, hex) the pulling child syncs; absent in a normal test run.
const PULL_CHILD_ENV: &str = "WAYMARK_PULL_CHILD";

/// The device the parent kills: syncs its store until done. Returns at once in a normal run.
#[test]
fn child_pulls_until_killed() {
    let Ok(spec) = std::env::var(PULL_CHILD_ENV) else {
        return;
    };
    let (path, key) = spec.split_once(';').unwrap();
    let store = Store::open(path, &hex::decode(key).unwrap()).unwrap();
    println!("@@ready");
    loop {
        match store.sync() {
            Ok(_) => break,
            Err(Error::Network(_)) => std::thread::sleep(std::time::Duration::from_millis(50)),
            Err(e) => panic!("sync failed: {e:?}"),
        }
    }
    println!("@@done");
}

#[test]
fn a_phone_killed_again_and_again_while_joining_a_big_workspace_ends_with_everything_once() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (_, token) = server.workspace_and_token();
    let (devices, ws) = team(&server.url(), &token, &["Coordinator"]);
    let coordinator = &devices[0];
    // New documents arrive whole; edits of some arrive as later blobs of the same documents.
    let ids: Vec<String> = (0..1_000)
        .map(|i| {
            coordinator
                .store
                .create_visit(
                    &ws,
                    &visit(&format!("Place {i}"), "Met at the gate.", NOV_1),
                )
                .unwrap()
        })
        .collect();
    // The newcomer pulls every blob (no snapshot packs them): the pull is long enough to be
    // cut many times.
    let defer = SyncOptions {
        defer_snapshots: true,
        ..Default::default()
    };
    coordinator.store.sync_with(&defer).unwrap();
    for id in ids.iter().step_by(10) {
        coordinator
            .store
            .set_visit_notes(id, "Met at the gate; two referred.")
            .unwrap();
    }
    coordinator.store.sync_with(&defer).unwrap();

    let phone = tempfile::tempdir().unwrap();
    let path = phone.path().join("waymark.db");
    let key: [u8; 32] = rand::random();
    {
        let store = Store::open(&path, &key).unwrap();
        store.set_device_name("Newcomer").unwrap();
        store
            .join(&coordinator.store.create_invite(&ws, 3600).unwrap())
            .unwrap();
    }
    let mut rng = rand::rng();
    let mut seen = 0;
    let mut finished = false;
    let mut partial = false;
    for _ in 0..8 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["child_pulls_until_killed", "--exact", "--nocapture"])
            .env(
                PULL_CHILD_ENV,
                format!("{};{}", path.display(), hex::encode(key)),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        assert!(
            lines.any(|l| l.unwrap().contains("@@ready")),
            "the child opened the store"
        );
        std::thread::sleep(std::time::Duration::from_millis(rand::Rng::random_range(
            &mut rng,
            100..1_500,
        )));
        child.kill().unwrap(); // SIGKILL, mid-pull unless it already finished
        child.wait().unwrap();
        finished |= lines.any(|l| l.unwrap().contains("@@done"));
        // Whatever the instant, the store opens, and what it had is still there.
        let store = Store::open(&path, &key).unwrap();
        let now = store
            .list_visits(&VisitFilter {
                limit: Some(10_000),
                ..Default::default()
            })
            .unwrap()
            .len();
        assert!(now >= seen, "{now} visits after a kill, {seen} before");
        eprintln!("after a kill: {now} of {} visits", ids.len());
        partial |= now > 0 && now < ids.len();
        seen = now;
        if finished {
            break;
        }
    }
    assert!(partial, "no kill landed in the middle of the pull");
    let newcomer = Device {
        dir: phone,
        store: Store::open(&path, &key).unwrap(),
        key,
    };
    newcomer.sync_until_ok();
    assert!(newcomer.store.set_aside_blobs().unwrap().is_empty());
    // The newcomer added its name to the workspace settings; once the coordinator has admitted
    // it into the team log, it sends that, and the coordinator learns it.
    coordinator.sync_until_ok();
    newcomer.sync_until_ok();
    coordinator.sync_until_ok();
    let devices = [devices.into_iter().next().unwrap(), newcomer];
    assert_converged(&devices);
    assert_eq!(
        devices[1].store.get_visit(&ids[0]).unwrap().notes,
        "Met at the gate; two referred."
    );
}

#[test]
fn a_coordinator_sees_when_each_device_last_synced() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (_, token) = server.workspace_and_token();
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let (team, ws) = team(&server.url(), &token, &["Coordinator", "Amina"]);
    let amina = |t: &[TeamMember]| t.iter().find(|m| m.name == "Amina").unwrap().clone();
    let seen = amina(&team[0].store.team(&ws).unwrap()).last_sync_at;
    // To the second, as the server keeps it.
    assert!(
        seen.is_some_and(|at| at >= started / 1000 * 1000),
        "{seen:?}"
    );

    // Later, Amina pushes; the coordinator's listing is refreshed once it is a few minutes old
    // (made old here by hand rather than waited for).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    team[1]
        .store
        .create_visit(&ws, &visit("Depot", "later", started))
        .unwrap();
    team[1].sync_until_ok();
    let conn = rusqlite::Connection::open(team[0].dir.path().join("waymark.db")).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA key = \"x'{}'\";",
        hex::encode(team[0].key)
    ))
    .unwrap();
    conn.execute("UPDATE memberships SET listing_at = 0", [])
        .unwrap();
    drop(conn);
    team[0].sync_until_ok();
    let later = amina(&team[0].store.team(&ws).unwrap()).last_sync_at;
    assert!(later > seen, "{seen:?} then {later:?}");
}
