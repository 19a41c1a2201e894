//! Snapshots (issue 13): a coordinator packs the team's records into a few compressed blobs; a
//! new phone downloads those and the tail instead of every change, a phone already up to date
//! downloads nothing of them, and a phone that was offline meanwhile loses nothing it wrote on
//! top of history since packed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::*;
use waymark_core::*;

/// More than one snapshot blob holds (1,000), so that a newcomer pulls several.
const RECORDS: usize = 1_100;

/// Notes of every visit a device holds, sorted.
fn notes(d: &Device) -> Vec<String> {
    let mut out: Vec<String> = d
        .store
        .list_visits(&VisitFilter {
            limit: Some(10_000),
            ..Default::default()
        })
        .unwrap()
        .iter()
        .map(|v| d.store.get_visit(&v.id).unwrap().notes)
        .collect();
    out.sort();
    out
}

/// A phone that joins with the coordinator's invite and pulls; returns it and what its first
/// sync did.
fn newcomer(coordinator: &Device, ws: &str, name: &str) -> (Device, SyncReport) {
    let d = Device::new(name);
    d.store
        .join(&coordinator.store.create_invite(ws, 600).unwrap())
        .unwrap();
    let report = d.sync_until_ok();
    (d, report)
}

#[test]
fn a_new_phone_pulls_snapshots_and_nobody_loses_a_change() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (_, token) = server.workspace_and_token();
    let (devices, ws) = team(&server.url(), &token, &["Coordinator", "Amina", "Ben"]);
    let [coordinator, amina, ben] = &devices[..] else {
        unreachable!()
    };
    let mut ids = Vec::new();
    for i in 0..RECORDS {
        let notes = format!("Visit {i}: two young men waiting for a recruiter at the gate");
        ids.push(
            amina
                .store
                .create_visit(&ws, &visit("Bus station", &notes, NOV_1 + i as i64))
                .unwrap(),
        );
    }
    for d in [amina, ben] {
        d.sync_until_ok();
    }
    // No snapshot yet: the first newcomer measures the whole log.
    let defer = SyncOptions {
        defer_snapshots: true,
        ..Default::default()
    };
    coordinator.store.sync_with(&defer).unwrap();
    let before = newcomer(coordinator, &ws, "Chidi").1.bytes_down;

    // Ben works offline while the coordinator packs the team.
    ben.store
        .set_visit_notes(&ids[7], "Visit 7: edited offline on top of what was packed")
        .unwrap();
    ben.store
        .create_visit(&ws, &visit("Market", "Recorded offline by Ben", NOV_1))
        .unwrap();
    let packed = coordinator.store.compact_workspace(&ws).unwrap();
    assert_eq!(packed.snapshots, 2);
    assert!(packed.records >= RECORDS as u64, "{packed:?}");

    // Amina is up to date: she downloads nothing of the snapshot.
    let report = amina.sync_until_ok();
    assert_eq!(report.pulled, 0, "{report:?}");
    // Ben's changes go out and come back to everyone.
    ben.sync_until_ok();
    for d in [amina, coordinator, ben] {
        d.sync_until_ok();
    }
    let (late, report) = newcomer(coordinator, &ws, "Dara");
    let after = report.bytes_down;
    let per_record = |bytes: u64| bytes / (RECORDS as u64 + 1);
    eprintln!(
        "a new phone's first pull: {} bytes per record before the snapshot, {} after",
        per_record(before),
        per_record(after)
    );
    assert!(after * 2 < before, "{after} bytes after, {before} before");

    let expected = notes(coordinator);
    assert_eq!(expected.len(), RECORDS + 1);
    assert!(expected.contains(&"Recorded offline by Ben".to_string()));
    assert!(expected.contains(&"Visit 7: edited offline on top of what was packed".to_string()));
    for d in [amina, ben, &late] {
        assert_eq!(notes(d), expected, "{}", d.store.device_name().unwrap());
    }
    assert!(late.store.set_aside_blobs().unwrap().is_empty());
    // A member may not make one.
    assert!(matches!(
        amina.store.compact_workspace(&ws),
        Err(Error::NotPermitted(_))
    ));
}

/// Without being asked: a coordinator's sync packs the team once the log has grown by as many
/// blobs as there are records (and at least 1,000), and a newcomer then pulls a few blobs.
#[test]
fn a_coordinators_sync_makes_snapshots_once_the_log_has_grown_enough() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (_, token) = server.workspace_and_token();
    let (devices, ws) = team(&server.url(), &token, &["Coordinator", "Amina"]);
    let [coordinator, amina] = &devices[..] else {
        unreachable!()
    };
    for i in 0..RECORDS {
        amina
            .store
            .create_visit(&ws, &visit("Depot", &format!("Visit {i}"), NOV_1))
            .unwrap();
    }
    amina.sync_until_ok();
    coordinator.sync_until_ok();
    let (late, report) = newcomer(coordinator, &ws, "Chidi");
    assert_eq!(notes(&late).len(), RECORDS);
    assert!(
        report.pulled < 10,
        "{} blobs for {RECORDS} records",
        report.pulled
    );
}
