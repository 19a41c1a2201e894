//! The team's security model against a real server process: revocation with key rotation,
//! invites approved by a coordinator, signed blobs, replayed and misdirected requests, and key
//! rotation racing with edits. See `docs/SECURITY.md` for the threat model these tests back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::thread;

use support::*;
use waymark_core::*;
use waymark_protocol as proto;

/// The device id of the team member called `name`, as `viewer` knows the team.
fn device_id(viewer: &Device, ws: &str, name: &str) -> String {
    viewer.sync_until_ok();
    id_of(viewer, ws, name)
}

/// Every blob of the workspace, read through `token` as the server stores them.
fn all_blobs(url: &str, token: &str) -> Vec<proto::PulledBlob> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let req = proto::PullRequest {
            after,
            max_bytes: None,
        };
        let resp = reqwest::blocking::Client::new()
            .get(format!("{url}{}", req.to_path_and_query()))
            .bearer_auth(token)
            .send()
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
        let page: proto::PullResponse = proto::decode(&resp.bytes().unwrap()).unwrap();
        after = page.blobs.last().map_or(after, |b| b.seq);
        let more = page.more;
        out.extend(page.blobs);
        if !more {
            return out;
        }
    }
}

/// The body of the last `POST {path}` request the proxy carried.
fn last_request_body(wire: &[u8], path: &str) -> Vec<u8> {
    let start = format!("POST {path} ");
    let at = wire
        .windows(start.len())
        .rposition(|w| w == start.as_bytes())
        .unwrap_or_else(|| panic!("no {path} request on the wire"));
    let head_end = at + contains_at(&wire[at..], b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&wire[at..head_end]).to_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wire[head_end..head_end + len].to_vec()
}

fn contains_at(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A device enrolled by hand with keys of its own (a malicious member, or the server's own
/// device); returns its device token.
fn raw_device(server: &Server, server_ws: &str, name: &str) -> String {
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
    let (status, body) = post_raw(
        &server.url(),
        proto::PATH_ENROLL,
        "",
        proto::encode(&proto::EnrollRequest {
            token: t["token"].as_str().unwrap().into(),
            device_name: name.into(),
            sign_key: rand::random(),
            box_key: rand::random(),
            join_proof: None,
            actor: None,
        }),
    );
    assert_eq!(status, 200);
    proto::decode::<proto::EnrollResponse>(&body)
        .unwrap()
        .device_token
}

/// The bearer token of the last request on the wire.
fn last_token(wire: &[u8]) -> String {
    let text = String::from_utf8_lossy(wire);
    let at = text.to_lowercase().rfind("authorization: bearer ").unwrap();
    text[at + "authorization: bearer ".len()..]
        .lines()
        .next()
        .unwrap()
        .trim()
        .to_string()
}

/// The sequence number at which the server revoked the device called `name`.
fn revoked_at(server: &Server, name: &str) -> u64 {
    let list = admin(&server.data, &["devices", "list"]);
    let devices = list
        .as_array()
        .or_else(|| list["devices"].as_array())
        .unwrap();
    devices
        .iter()
        .find(|d| d["name"] == name)
        .and_then(|d| d["revoked_at_seq"].as_u64())
        .unwrap_or_else(|| panic!("{name} not revoked: {list}"))
}

/// Syncs a store, retrying network errors as a phone's scheduler would.
fn sync_store(store: &Store) {
    for _ in 0..40 {
        match store.sync() {
            Ok(_) => return,
            Err(Error::Network(_)) => thread::sleep(std::time::Duration::from_millis(100)),
            Err(e) => panic!("sync failed: {e:?}"),
        }
    }
    panic!("sync never succeeded");
}

fn post_raw(url: &str, path: &str, token: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
    let resp = reqwest::blocking::Client::new()
        .post(format!("{url}{path}"))
        .bearer_auth(token)
        .header("content-type", proto::CONTENT_TYPE_CBOR)
        .body(body)
        .send()
        .unwrap();
    (resp.status().as_u16(), resp.bytes().unwrap().to_vec())
}

#[test]
fn a_revoked_device_with_its_whole_database_cannot_read_what_is_written_after_the_rotation() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (server_ws, token) = server.workspace_and_token();
    let (devices, ws) = team(&server.url(), &token, &["Coordinator", "Ana", "Ben"]);
    let [coordinator, ana, ben] = &devices[..] else {
        unreachable!()
    };
    let reader = raw_device(&server, &server_ws, "Reader");
    let before = coordinator
        .store
        .create_visit(&ws, &visit("Bus station", "before the revocation", NOV_1))
        .unwrap();
    for d in &devices {
        d.sync_until_ok();
    }
    assert!(ben.store.get_visit(&before).is_ok());
    let ben_id = device_id(coordinator, &ws, "Ben");

    coordinator.store.revoke_device(&ws, &ben_id).unwrap();
    assert!(matches!(ben.store.sync(), Err(Error::DeviceRevoked)));
    let team_now = coordinator.store.team(&ws).unwrap();
    assert!(team_now.iter().any(|m| m.name == "Ben" && m.revoked));

    let secret = coordinator
        .store
        .create_visit(&ws, &visit("Harbour", "AFTER-ROTATION-SECRET", NOV_1 + 1))
        .unwrap();
    coordinator.sync_until_ok();
    ana.sync_until_ok();
    assert_eq!(
        ana.store.get_visit(&secret).unwrap().notes,
        "AFTER-ROTATION-SECRET",
        "a remaining device picked up the new key at its next sync"
    );
    let ana_after = ana
        .store
        .create_visit(&ws, &visit("Market", "ANA-AFTER-ROTATION", NOV_1 + 2))
        .unwrap();
    ana.sync_until_ok();
    coordinator.sync_until_ok();
    assert!(coordinator.store.get_visit(&ana_after).is_ok());
    assert_converged(&devices[..2]);

    // Everything pushed after the revocation is sealed under the new epoch.
    let blobs = all_blobs(&server.url(), &reader);
    let revoked_at = revoked_at(&server, "Ben");
    let after: Vec<_> = blobs.iter().filter(|b| b.seq > revoked_at).collect();
    assert!(!after.is_empty());
    assert!(
        after.iter().all(|b| b.epoch >= 1),
        "new changes use the new epoch"
    );

    // A breached server hands Ben everything: a copy of its database with Ben let back in.
    let copy = tempfile::tempdir().unwrap();
    admin(
        &server.data,
        &[
            "backup",
            "--to",
            copy.path().join("waymark.sqlite3").to_str().unwrap(),
        ],
    );
    let evil = Server::start(copy.path());
    let evil_token = admin(
        &evil.data,
        &["token", "issue", "--workspace", &server_ws, "--ttl", "1h"],
    )["token"]
        .as_str()
        .unwrap()
        .to_string();
    ben.store
        .connect_workspace(&ws, &evil.url(), &evil_token)
        .unwrap();
    let report = ben.sync_until_ok();
    assert!(
        ben.store.get_visit(&before).is_ok(),
        "old data it had anyway"
    );
    for id in [&secret, &ana_after] {
        assert!(
            matches!(ben.store.get_visit(id), Err(Error::NotFound { .. })),
            "written after the rotation, unreadable to Ben"
        );
    }
    assert!(ben.store.search("AFTER-ROTATION", 10).unwrap().is_empty());
    assert!(
        report
            .set_aside
            .iter()
            .any(|s| s.reason.contains("waiting for the key of epoch 1")),
        "{:?}",
        report.set_aside
    );
}

#[test]
fn a_device_joins_by_an_invite_without_keys_once_a_coordinator_approves_it() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (server_ws, token) = server.workspace_and_token();
    let (devices, ws) = team(&server.url(), &token, &["Coordinator", "Ana"]);
    let coordinator = &devices[0];
    let member = raw_device(&server, &server_ws, "Member");
    let v = coordinator
        .store
        .create_visit(&ws, &visit("Bus station", "for the team", NOV_1))
        .unwrap();
    coordinator.sync_until_ok();

    let in_person = coordinator.store.create_invite(&ws, 600).unwrap();
    let code = coordinator.store.create_approval_invite(&ws, 600).unwrap();
    assert!(code.len() < in_person.len(), "no key in it");
    let newcomer = Device::new("Carla");
    newcomer.store.join(&code).unwrap();
    let digits = newcomer.store.verification_code(&ws).unwrap();
    assert_eq!(digits.chars().filter(char::is_ascii_digit).count(), 12);
    newcomer.sync_until_ok();
    assert!(
        newcomer.store.get_visit(&v).is_err(),
        "nothing readable before approval"
    );
    assert!(matches!(
        newcomer
            .store
            .create_visit(&ws, &visit("X", "too early", NOV_1)),
        Err(Error::NotPermitted(_))
    ));

    // An enrollment the server (or anyone with a token) slips in, with keys of its own choosing.
    let (status, body) = post_raw(
        &server.url(),
        proto::PATH_INVITES,
        &member,
        proto::encode(&proto::InviteRequest {
            ttl_seconds: 60,
            role: None,
        }),
    );
    assert_eq!(status, 200);
    let invite: proto::InviteResponse = proto::decode(&body).unwrap();
    let (status, _) = post_raw(
        &server.url(),
        proto::PATH_ENROLL,
        "",
        proto::encode(&proto::EnrollRequest {
            token: invite.enrollment_token,
            device_name: "Impostor".into(),
            sign_key: rand::random(),
            box_key: rand::random(),
            join_proof: Some(vec![7; 32]),
            actor: None,
        }),
    );
    assert_eq!(status, 200);

    let pending = coordinator.store.pending_joins(&ws).unwrap();
    // The raw "Member" device is listed too: nobody vouched for it.
    assert_eq!(pending.len(), 3, "{pending:?}");
    let carla = pending.iter().find(|p| p.name == "Carla").unwrap();
    let impostor = pending.iter().find(|p| p.name == "Impostor").unwrap();
    assert!(carla.verified && carla.verification_code == digits);
    assert!(!impostor.verified);
    assert!(matches!(
        coordinator.store.approve_join(&ws, &impostor.device_id),
        Err(Error::Tampered(_))
    ));
    // A member cannot approve.
    assert!(
        devices[1]
            .store
            .approve_join(&ws, &carla.device_id)
            .is_err()
    );

    coordinator
        .store
        .approve_join(&ws, &carla.device_id)
        .unwrap();
    newcomer.sync_until_ok();
    assert_eq!(newcomer.store.get_visit(&v).unwrap().notes, "for the team");
    let hers = newcomer
        .store
        .create_visit(&ws, &visit("Clinic", "from Carla", NOV_1 + 5))
        .unwrap();
    newcomer.sync_until_ok();
    coordinator.sync_until_ok();
    assert_eq!(
        coordinator.store.get_visit(&hers).unwrap().notes,
        "from Carla"
    );
    assert!(
        coordinator
            .store
            .pending_joins(&ws)
            .unwrap()
            .iter()
            .all(|p| p.name != "Carla"),
        "approved joins are no longer pending"
    );
}

#[test]
fn a_member_cannot_revoke_others_and_a_revoked_devices_later_changes_are_refused() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let proxy = Proxy::start(&server.addr);
    let (server_ws, token) = server.workspace_and_token();
    let (devices, ws) = team(&proxy.url(), &token, &["Coordinator", "Ana", "Ben"]);
    let [coordinator, ana, ben] = &devices[..] else {
        unreachable!()
    };
    let malicious = raw_device(&server, &server_ws, "Malicious member");
    let ben_id = device_id(ana, &ws, "Ben");
    assert!(matches!(
        ana.store.revoke_device(&ws, &ben_id),
        Err(Error::NotPermitted(_))
    ));
    ben.sync_until_ok();

    coordinator.store.revoke_device(&ws, &ben_id).unwrap();
    // Ben, with his old key, writes on; his push is refused, but its bytes are on the wire.
    ben.store
        .create_visit(&ws, &visit("Forged", "FORGED-BY-BEN", NOV_1))
        .unwrap();
    proxy.wire.lock().unwrap().clear();
    assert!(matches!(ben.store.sync(), Err(Error::DeviceRevoked)));
    let forged = last_request_body(&proxy.wire.lock().unwrap(), proto::PATH_PUSH);
    let ben_token = last_token(&proxy.wire.lock().unwrap());
    // Replayed by someone holding a valid token: sealed under the key the rotation retired,
    // it is refused, as often as it is tried (a server that stored it anyway would find every
    // teammate setting it aside: `hostile.rs`).
    for _ in 0..2 {
        let (status, body) = post_raw(&server.url(), proto::PATH_PUSH, &malicious, forged.clone());
        assert_eq!(status, 409);
        assert_eq!(
            proto::decode::<proto::ErrorBody>(&body).unwrap().code,
            proto::codes::STALE_EPOCH
        );
    }
    ana.sync_until_ok();
    assert!(ana.store.search("FORGED-BY-BEN", 10).unwrap().is_empty());
    // Ben's own token is dead on every route.
    for (path, body) in [
        (
            proto::PATH_PUSH,
            proto::encode(&proto::PushRequest { blobs: vec![] }),
        ),
        (
            proto::PATH_TEAM_LOG,
            proto::encode(&proto::AppendRequest {
                entries: vec![],
                envelopes: vec![],
            }),
        ),
        (
            proto::PATH_KEYS,
            proto::encode(&proto::KeysRequest {
                rotate_to: None,
                envelopes: vec![],
            }),
        ),
    ] {
        assert_eq!(
            post_raw(&server.url(), path, &ben_token, body).0,
            401,
            "{path}"
        );
    }
    let (status, _) = post_raw(
        &server.url(),
        proto::PATH_REVOKE,
        &ben_token,
        proto::encode(&proto::RevokeRequest {
            device_id: device_id(coordinator, &ws, "Ana"),
        }),
    );
    assert_eq!(status, 401);
}

#[test]
fn blobs_replayed_into_another_workspace_are_set_aside_there() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let proxy = Proxy::start(&server.addr);
    let (_, token_a) = server.workspace_and_token();
    let (ws_b_server, token_b) = server.workspace_and_token();
    let (team_a, ws_a) = team(&proxy.url(), &token_a, &["A1", "A2"]);
    let (team_b, ws_b) = team(&server.url(), &token_b, &["B1"]);
    team_a[0]
        .store
        .create_visit(&ws_a, &visit("Depot", "TEAM-A-ONLY", NOV_1))
        .unwrap();
    proxy.wire.lock().unwrap().clear();
    team_a[0].sync_until_ok();
    let body = last_request_body(&proxy.wire.lock().unwrap(), proto::PATH_PUSH);
    // Team B's token pushes team A's blobs into team B's log: the server cannot tell, but team
    // B's devices can.
    let b_token = raw_device(&server, &ws_b_server, "B member");
    let (status, _) = post_raw(&server.url(), proto::PATH_PUSH, &b_token, body);
    assert_eq!(status, 200);
    let report = team_b[0].sync_until_ok();
    assert!(!report.set_aside.is_empty());
    assert!(
        team_b[0]
            .store
            .search("TEAM-A-ONLY", 10)
            .unwrap()
            .is_empty()
    );
    assert!(team_b[0].store.team(&ws_b).unwrap().len() >= 2);
}

#[test]
fn key_rotation_racing_with_edits_loses_nothing_and_everyone_converges() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (_, token) = server.workspace_and_token();
    let (devices, ws) = team(
        &server.url(),
        &token,
        &["Coordinator", "Ana", "Bo", "Cy", "Leaver"],
    );
    let leaver = device_id(&devices[0], &ws, "Leaver");
    let writers: Vec<Store> = devices[1..4].iter().map(|d| d.store.clone()).collect();
    let handles: Vec<_> = writers
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            let ws = ws.clone();
            thread::spawn(move || {
                let mut mine = Vec::new();
                for n in 0..12 {
                    mine.push(
                        d.create_visit(
                            &ws,
                            &visit(&format!("w{i} place {n}"), "racing", NOV_1 + n),
                        )
                        .unwrap(),
                    );
                    if n % 3 == 0 {
                        sync_store(&d);
                    }
                }
                mine
            })
        })
        .collect();
    // Meanwhile the coordinator revokes a device, which rotates the key, and writes on.
    devices[0].store.revoke_device(&ws, &leaver).unwrap();
    let mut expected: Vec<String> = (0..5)
        .map(|n| {
            devices[0]
                .store
                .create_visit(&ws, &visit(&format!("coord {n}"), "racing", NOV_1))
                .unwrap()
        })
        .collect();
    for h in handles {
        expected.extend(h.join().unwrap());
    }
    let remaining = &devices[..4];
    for _ in 0..2 {
        for d in remaining {
            d.sync_until_ok();
        }
    }
    for d in remaining {
        for id in &expected {
            assert!(d.store.get_visit(id).is_ok(), "{id} missing on a device");
        }
        assert!(
            d.store.set_aside_blobs().unwrap().is_empty(),
            "nothing of the team set aside"
        );
    }
    assert_converged(remaining);
}

#[test]
fn a_device_nobody_vouches_for_gets_no_new_key_until_a_coordinator_confirms_it() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (server_ws, token) = server.workspace_and_token();
    let (devices, ws) = team(&server.url(), &token, &["Coordinator", "Ana", "Leaver"]);
    let coordinator = &devices[0];
    // A device the server (or whoever breached it) enrolled with keys of its choosing.
    let planted = raw_device(&server, &server_ws, "Planted");
    // And one a member invited in person: genuine, but the coordinator has not met it.
    let guest = Device::new("Guest");
    guest
        .store
        .join(&devices[1].store.create_invite(&ws, 600).unwrap())
        .unwrap();
    guest.sync_until_ok();

    let leaver = device_id(coordinator, &ws, "Leaver");
    coordinator.store.revoke_device(&ws, &leaver).unwrap();
    let members = coordinator.store.team(&ws).unwrap();
    let verified = |name: &str| members.iter().find(|m| m.name == name).unwrap().verified;
    assert!(verified("Coordinator") && verified("Ana"));
    assert!(!verified("Planted") && !verified("Guest"));

    let key_epochs = |name: &str| -> Vec<u32> {
        let resp = reqwest::blocking::Client::new()
            .get(format!("{}{}", server.url(), proto::PATH_TEAM))
            .bearer_auth(&planted)
            .send()
            .unwrap();
        let team: proto::TeamResponse = proto::decode(&resp.bytes().unwrap()).unwrap();
        team.devices
            .into_iter()
            .find(|d| d.name == name)
            .unwrap()
            .key_epochs
    };
    assert!(key_epochs("Ana").contains(&1), "Ana got the new key");
    assert!(
        key_epochs("Planted").is_empty(),
        "the planted device got nothing"
    );
    assert!(
        key_epochs("Guest").is_empty(),
        "nor did the unconfirmed guest"
    );

    // Written after the rotation: the guest cannot read it until the coordinator confirms it.
    let later = coordinator
        .store
        .create_visit(&ws, &visit("Harbour", "after the rotation", NOV_1))
        .unwrap();
    coordinator.sync_until_ok();
    guest.sync_until_ok();
    assert!(guest.store.get_visit(&later).is_err());
    let pending = coordinator.store.pending_joins(&ws).unwrap();
    let listed = pending.iter().find(|p| p.name == "Guest").unwrap();
    assert_eq!(
        listed.verification_code,
        guest.store.verification_code(&ws).unwrap(),
        "the digits on both screens match"
    );
    coordinator
        .store
        .confirm_device(&ws, &listed.device_id)
        .unwrap();
    guest.sync_until_ok();
    assert_eq!(
        guest.store.get_visit(&later).unwrap().notes,
        "after the rotation",
        "held until the key came, then applied"
    );
    assert!(key_epochs("Planted").is_empty());
}

#[test]
fn a_revocation_by_the_operator_makes_the_coordinators_next_sync_rotate_the_key() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (server_ws, token) = server.workspace_and_token();
    let (devices, ws) = team(&server.url(), &token, &["Coordinator", "Ana", "Lost phone"]);
    let lost = device_id(&devices[0], &ws, "Lost phone");
    let out = admin(&server.data, &["devices", "revoke", &lost]);
    assert!(out["revoked_at_seq"].as_u64().is_some(), "{out}");
    assert!(matches!(devices[2].store.sync(), Err(Error::DeviceRevoked)));

    // The coordinator's next sync learns of it and rotates; Ana's next sync picks the key up.
    devices[0].sync_until_ok();
    let reader = raw_device(&server, &server_ws, "Reader");
    let v = devices[0]
        .store
        .create_visit(&ws, &visit("Clinic", "after the phone was lost", NOV_1))
        .unwrap();
    devices[0].sync_until_ok();
    let newest = all_blobs(&server.url(), &reader)
        .into_iter()
        .map(|b| b.epoch)
        .max()
        .unwrap();
    assert_eq!(newest, 1, "sealed under the rotated key");
    devices[1].sync_until_ok();
    assert_eq!(
        devices[1].store.get_visit(&v).unwrap().notes,
        "after the phone was lost"
    );
}

/// Changes the Automerge actor a store writes as (its `meta` row), as a modified client
/// could: the store must be closed.
fn write_as_actor(dir: &std::path::Path, key: &[u8; 32], actor_hex: &str) {
    let conn = rusqlite::Connection::open(dir.join("waymark.db")).unwrap();
    conn.execute_batch(&format!("PRAGMA key = \"x'{}'\";", hex::encode(key)))
        .unwrap();
    conn.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'actor'",
        [hex::decode(actor_hex).unwrap()],
    )
    .unwrap();
}

#[test]
fn a_member_cannot_write_as_another_device_history_names_only_admitted_authors() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (_, token) = server.workspace_and_token();
    let (devices, ws) = team(&server.url(), &token, &["Coordinator", "Ana"]);
    let [coordinator, ana] = &devices[..] else {
        unreachable!()
    };
    // Mallory joins as a member, then rewrites her client to write as Ana.
    let key: [u8; 32] = rand::random();
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path().join("waymark.db"), &key).unwrap();
        store.set_device_name("Mallory").unwrap();
        store
            .join(&coordinator.store.create_invite(&ws, 600).unwrap())
            .unwrap();
        sync_store(&store);
        coordinator.sync_until_ok();
        sync_store(&store);
    }
    write_as_actor(dir.path(), &key, &ana.store.actor());
    let mallory = Store::open(dir.path().join("waymark.db"), &key).unwrap();
    assert_eq!(mallory.actor(), ana.store.actor());
    let forged = mallory
        .create_visit(&ws, &visit("Bridge", "WRITTEN-AS-ANA", NOV_1))
        .unwrap();
    sync_store(&mallory);
    for d in [coordinator, ana] {
        let report = d.sync_until_ok();
        assert!(d.store.get_visit(&forged).is_err(), "not applied");
        assert!(
            report.set_aside.iter().any(|s| s
                .reason
                .contains("another device than the one that signed it")),
            "{:?}",
            report.set_aside
        );
    }
}

#[test]
fn a_revoked_devices_bundle_is_refused_and_a_teammates_is_passed_on_under_its_signature() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let proxy = Proxy::start(&server.addr);
    let (_, token) = server.workspace_and_token();
    let (devices, ws) = team(&proxy.url(), &token, &["Coordinator", "Ana", "Ben", "Cy"]);
    let [coordinator, ana, ben, cy] = &devices[..] else {
        unreachable!()
    };
    let since = ana.store.checkpoint().unwrap();

    // Cy, offline at a worksite, hands Ana his visit on a memory card; Ana passes it on.
    let hers = cy
        .store
        .create_visit(&ws, &visit("Worksite", "FROM-CY-BY-HAND", NOV_1))
        .unwrap();
    let bundle = cy.store.export_changes(Some(&since)).unwrap();
    let imported = ana.store.import_changes(&bundle).unwrap();
    assert!(imported.changed.contains(&hers), "{imported:?}");
    // Cy's copy of the settings carries Ben's name, which Ana has not synced yet: a member
    // carries only his own changes, so that document waits for sync.
    assert!(
        imported
            .refused
            .iter()
            .all(|r| r.reason.contains("another device")),
        "{imported:?}"
    );
    proxy.wire.lock().unwrap().clear();
    ana.sync_until_ok();
    coordinator.sync_until_ok();
    assert_eq!(
        coordinator.store.get_visit(&hers).unwrap().notes,
        "FROM-CY-BY-HAND"
    );
    // What Ana pushed is Cy's signed blob, not a copy under her signature: the teammates that
    // took it checked Cy's authorship.
    let pushed = last_request_body(&proxy.wire.lock().unwrap(), proto::PATH_PUSH);
    let pushed: proto::PushRequest = proto::decode(&pushed).unwrap();
    let cy_key = bundle_signer(&bundle);
    assert!(
        pushed
            .blobs
            .iter()
            .any(|b| b.ciphertext[1..33] == cy_key[..]),
        "passed on under Cy's signature"
    );

    // Ben is revoked; a bundle he makes afterwards (his phone does not know yet) is refused
    // by a teammate, and nothing of it reaches the server.
    let ben_id = device_id(coordinator, &ws, "Ben");
    coordinator.store.revoke_device(&ws, &ben_id).unwrap();
    ana.sync_until_ok();
    ben.store
        .create_visit(&ws, &visit("Forged", "BEN-AFTER-REVOCATION", NOV_1))
        .unwrap();
    let late = ben.store.export_changes(None).unwrap();
    assert!(matches!(
        ana.store.import_changes(&late),
        Err(Error::Tampered(_))
    ));
    assert!(
        ana.store
            .search("BEN-AFTER-REVOCATION", 5)
            .unwrap()
            .is_empty()
    );
    ana.sync_until_ok();
    coordinator.sync_until_ok();
    assert!(
        coordinator
            .store
            .search("BEN-AFTER-REVOCATION", 5)
            .unwrap()
            .is_empty()
    );
    // An unsigned bundle (made by an older version, or by hand) is refused as well.
    assert!(matches!(
        ana.store.import_changes(&unsigned(&bundle)),
        Err(Error::Tampered(_))
    ));
}

/// The signing key of the first chunk of a bundle.
fn bundle_signer(bundle: &[u8]) -> [u8; 32] {
    let value: ciborium::Value = ciborium::from_reader(bundle).unwrap();
    let docs = map_get(&value, "docs").as_array().unwrap();
    let blob = map_get(&docs[0], "blobs").as_array().unwrap()[0]
        .as_bytes()
        .unwrap();
    blob[1..33].try_into().unwrap()
}

/// The same bundle claiming its chunks are not signed.
fn unsigned(bundle: &[u8]) -> Vec<u8> {
    let mut value: ciborium::Value = ciborium::from_reader(bundle).unwrap();
    if let ciborium::Value::Map(top) = &mut value {
        for (k, v) in top.iter_mut() {
            if k.as_text() == Some("docs")
                && let ciborium::Value::Array(docs) = v
            {
                for d in docs {
                    if let ciborium::Value::Map(fields) = d {
                        for (k, v) in fields.iter_mut() {
                            if k.as_text() == Some("signed") {
                                *v = ciborium::Value::Bool(false);
                            }
                        }
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    ciborium::into_writer(&value, &mut out).unwrap();
    out
}

fn map_get<'a>(v: &'a ciborium::Value, key: &str) -> &'a ciborium::Value {
    v.as_map()
        .unwrap()
        .iter()
        .find(|(k, _)| k.as_text() == Some(key))
        .map(|(_, v)| v)
        .unwrap()
}
