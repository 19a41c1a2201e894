//! A team from before the team log: device stores and a server database that the previous code
//! made (`tests/fixtures/pre-team-log/`, see its README) are upgraded in place, and the team
//! goes on. The coordinator's first sync starts the log from the trust it had (the devices it
//! vouched for, the coordinators it learnt in person, the revocations the server recorded);
//! every device checks that log against the coordinators it learnt through its own invite.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::*;
use waymark_core::*;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/pre-team-log")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// A copy of one device's old store, pointed at `url` (the fixtures' server ran on a fixed
/// port; the copy's server runs where it can), opened with today's code.
struct OldPhone {
    name: String,
    device: Device,
}

fn old_phone(dir: &Path, manifest: &Value, name: &str, url: &str) -> OldPhone {
    let d = manifest["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
        .unwrap();
    let file = dir.join(d["store"].as_str().unwrap());
    let key = hex::decode(d["store_key_hex"].as_str().unwrap()).unwrap();
    {
        let conn = rusqlite::Connection::open(&file).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA key = \"x'{}'\";",
            d["store_key_hex"].as_str().unwrap()
        ))
        .unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, 5, "made by the code from before the team log");
        conn.execute("UPDATE memberships SET server_url = ?1", [url])
            .unwrap();
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&file, &key).unwrap();
    OldPhone {
        name: name.into(),
        device: Device {
            dir: tmp,
            store,
            key: key.clone().try_into().unwrap(),
        },
    }
}

fn visit_notes(store: &Store) -> Vec<String> {
    let mut notes: Vec<String> = store
        .list_visits(&VisitFilter {
            limit: Some(1_000),
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .map(|v| store.get_visit(&v.id).unwrap().notes)
        .collect();
    notes.sort();
    notes
}

#[test]
fn a_team_from_before_the_log_upgrades_starts_its_log_from_the_coordinators_trust_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixtures(), dir.path());
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).unwrap()).unwrap();
    // The server database of schema 2, upgraded when the new server starts on it.
    let server = Server::start(&dir.path().join("server"));
    let url = server.url();
    let ws = manifest["workspace_id"].as_str().unwrap().to_string();
    let phone = |name: &str| old_phone(dir.path(), &manifest, name, &url);
    let [coordinator, ana, ben, dan, eve] = ["Coordinator", "Ana", "Ben", "Dan", "Eve"].map(phone);
    let everything_before: Vec<String> = {
        let mut v: Vec<String> = ["Coordinator", "Ana", "Ben", "Dan", "Eve"]
            .iter()
            .map(|n| format!("FIXTURE-{n}-BEFORE"))
            .chain(["FIXTURE-Ana-AFTER".to_string()])
            .collect();
        v.sort();
        v
    };

    // A member that upgrades first waits for a coordinator to start the log: it still sends
    // what it records, but takes in nothing it could not check against the team.
    ana.device.sync_until_ok();
    assert_eq!(
        ana.device.store.team_status(&ws).unwrap().trust,
        TeamTrust::AwaitingLog
    );
    let during = ana
        .device
        .store
        .create_visit(&ws, &visit("Depot", "ANA-DURING-THE-UPGRADE", NOV_1))
        .unwrap();
    assert_eq!(ana.device.sync_until_ok().pushed, 1);

    // The coordinator's first sync starts the log: itself, the devices it vouched for (Ana and
    // Eve; Ben too, with his revocation), not Dan, whom a member invited and nobody confirmed;
    // and, a device having been revoked, a rotation.
    coordinator.device.sync_until_ok();
    let status = coordinator.device.store.team_status(&ws).unwrap();
    assert_eq!(status.trust, TeamTrust::Verified);
    assert_eq!(status.epoch, 2, "rotated past the key Ben holds");
    let team = coordinator.device.store.team(&ws).unwrap();
    let admitted = |name: &str| team.iter().any(|m| m.name == name && m.verified);
    assert!(admitted("Ana") && admitted("Eve") && admitted("Ben"));
    assert!(!admitted("Dan"));
    assert!(team.iter().any(|m| m.name == "Ben" && m.revoked));
    assert!(visit_notes(&coordinator.device.store).contains(&"ANA-DURING-THE-UPGRADE".to_string()));

    // Every device checks the log against the coordinators it learnt through its invite.
    for p in [&ana, &eve] {
        p.device.sync_until_ok();
        p.device.sync_until_ok();
        let status = p.device.store.team_status(&ws).unwrap();
        assert_eq!(status.trust, TeamTrust::Verified, "{}", p.name);
        assert_eq!(status.epoch, 2, "{}", p.name);
    }
    assert!(matches!(ben.device.store.sync(), Err(Error::DeviceRevoked)));
    dan.device.sync_until_ok();
    assert_eq!(
        dan.device.store.team_status(&ws).unwrap().trust,
        TeamTrust::AwaitingAdmission
    );

    // What is written after the upgrade reaches everyone admitted.
    let after = eve
        .device
        .store
        .create_visit(&ws, &visit("Ferry", "EVE-AFTER-THE-UPGRADE", NOV_1))
        .unwrap();
    eve.device.sync_until_ok();
    for p in [&coordinator, &ana] {
        p.device.sync_until_ok();
        assert_eq!(
            p.device.store.get_visit(&after).unwrap().notes,
            "EVE-AFTER-THE-UPGRADE"
        );
        assert!(p.device.store.get_visit(&during).is_ok());
    }

    // A new phone joins and gets the whole history, but Dan's visit waits until a coordinator
    // confirms Dan in person (his verification code on both screens).
    let newcomer = Device::new("Newcomer");
    newcomer
        .store
        .join(&coordinator.device.store.create_invite(&ws, 600).unwrap())
        .unwrap();
    newcomer.sync_until_ok();
    coordinator.device.sync_until_ok();
    newcomer.sync_until_ok();
    let notes = visit_notes(&newcomer.store);
    for n in &everything_before {
        assert_eq!(
            notes.contains(n),
            n != "FIXTURE-Dan-BEFORE",
            "{n} on the newcomer: {notes:?}"
        );
    }
    let pending = coordinator.device.store.pending_joins(&ws).unwrap();
    let dan_pending = pending.iter().find(|p| p.name == "Dan").unwrap();
    assert_eq!(
        dan_pending.verification_code,
        dan.device.store.verification_code(&ws).unwrap()
    );
    coordinator
        .device
        .store
        .confirm_device(&ws, &dan_pending.device_id)
        .unwrap();
    newcomer.sync_until_ok();
    assert!(visit_notes(&newcomer.store).contains(&"FIXTURE-Dan-BEFORE".to_string()));
    dan.device.sync_until_ok();
    assert_eq!(
        dan.device.store.team_status(&ws).unwrap().trust,
        TeamTrust::Verified
    );
    assert!(
        dan.device
            .store
            .get_visit(&after)
            .is_ok_and(|v| v.notes == "EVE-AFTER-THE-UPGRADE"),
        "Dan now holds the current key"
    );
}
