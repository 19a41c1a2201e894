//! Restricted means restricted: a record marked restricted (it identifies a victim, a minor, an
//! ongoing case) is sealed to a key only coordinators hold, so a member's phone, seized and
//! opened with its key, holds no restricted record but those it wrote itself.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::*;
use waymark_core::*;

/// Every text value in every table of a store's database, opened with its key.
fn every_text(d: &Device, key: &[u8; 32]) -> String {
    let conn = rusqlite::Connection::open(d.dir.path().join("waymark.db")).unwrap();
    conn.execute_batch(&format!("PRAGMA key = \"x'{}'\";", hex::encode(key)))
        .unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut all = String::new();
    for t in tables {
        let Ok(mut st) = conn.prepare(&format!("SELECT * FROM \"{t}\"")) else {
            continue;
        };
        let n = st.column_count();
        let mut rows = st.query([]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            for i in 0..n {
                match r.get_ref(i).unwrap() {
                    rusqlite::types::ValueRef::Text(b) | rusqlite::types::ValueRef::Blob(b) => {
                        all.push_str(&String::from_utf8_lossy(b));
                        all.push('\n');
                    }
                    _ => {}
                }
            }
        }
    }
    all
}

/// A device with a known store key (to open its database from outside).
fn keyed(name: &str) -> (Device, [u8; 32]) {
    let device = Device::new(name);
    let key = device.key;
    (device, key)
}

fn restricted(place: &str, notes: &str) -> NewVisit {
    NewVisit {
        sensitivity: Sensitivity::Restricted,
        ..visit(place, notes, NOV_1)
    }
}

fn sync_all(devices: &[&Device]) {
    for _ in 0..2 {
        for d in devices {
            d.sync_until_ok();
        }
    }
}

#[test]
fn a_members_phone_holds_no_restricted_record_it_can_open_and_its_author_keeps_its_own() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (_, token) = server.workspace_and_token();
    let (devices, ws) = team(&server.url(), &token, &["Coordinator", "Ana"]);
    let [coordinator, ana] = &devices[..] else {
        unreachable!()
    };
    // A second coordinator, and a member whose phone will be seized.
    let lead = Device::new("Lead");
    lead.store
        .join(
            &coordinator
                .store
                .create_invite_with_role(&ws, 600, "coordinator")
                .unwrap(),
        )
        .unwrap();
    let (ben, ben_key) = keyed("Ben");
    ben.store
        .join(&coordinator.store.create_invite(&ws, 600).unwrap())
        .unwrap();
    sync_all(&[&lead, &ben, coordinator]);

    let case = coordinator
        .store
        .create_visit(&ws, &restricted("Shelter", "CASE-OF-A-MINOR-7731"))
        .unwrap();
    let hers = ana
        .store
        .create_visit(&ws, &restricted("Clinic", "ANA-OWN-RESTRICTED-4410"))
        .unwrap();
    let open = coordinator
        .store
        .create_visit(&ws, &visit("Market", "OPEN-TO-THE-TEAM", NOV_1))
        .unwrap();
    sync_all(&[coordinator, ana, &lead, &ben]);

    // Both coordinators read both restricted records.
    for d in [coordinator, &lead] {
        assert_eq!(
            d.store.get_visit(&case).unwrap().notes,
            "CASE-OF-A-MINOR-7731"
        );
        assert_eq!(
            d.store.get_visit(&hers).unwrap().notes,
            "ANA-OWN-RESTRICTED-4410"
        );
    }
    // Ana keeps what she wrote, and gets nothing of the coordinator's.
    assert!(ana.store.get_visit(&hers).is_ok());
    assert!(matches!(
        ana.store.get_visit(&case),
        Err(Error::NotFound { .. })
    ));
    // Ben's phone, opened with its key: the team's open record, no restricted one.
    assert_eq!(
        ben.store.get_visit(&open).unwrap().notes,
        "OPEN-TO-THE-TEAM"
    );
    for id in [&case, &hers] {
        assert!(matches!(
            ben.store.get_visit(id),
            Err(Error::NotFound { .. })
        ));
    }
    assert!(ben.store.search("CASE-OF-A-MINOR", 5).unwrap().is_empty());
    let text = every_text(&ben, &ben_key);
    assert!(
        text.contains("OPEN-TO-THE-TEAM"),
        "the scan reads the store"
    );
    for marker in ["CASE-OF-A-MINOR-7731", "ANA-OWN-RESTRICTED-4410"] {
        assert!(!text.contains(marker), "{marker} on a member's phone");
    }
    // And nothing was set aside on his phone for it: the records are simply not his to read.
    assert!(ben.store.set_aside_blobs().unwrap().is_empty());
}

#[test]
fn a_record_restricted_later_leaves_members_phones_and_one_made_open_again_reaches_them() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (_, token) = server.workspace_and_token();
    let (devices, ws) = team(&server.url(), &token, &["Coordinator", "Ana"]);
    let [coordinator, ana] = &devices[..] else {
        unreachable!()
    };
    let (ben, ben_key) = keyed("Ben");
    ben.store
        .join(&coordinator.store.create_invite(&ws, 600).unwrap())
        .unwrap();
    sync_all(&[&ben, coordinator]);
    let id = ana
        .store
        .create_visit(&ws, &visit("Port", "NAMES-THE-FAMILY-5520", NOV_1))
        .unwrap();
    sync_all(&[ana, coordinator, &ben]);
    assert!(ben.store.get_visit(&id).is_ok());

    // The coordinator learns it identifies a family at risk, and restricts it.
    coordinator
        .store
        .update_visit(&id, &[VisitEdit::Sensitivity(Sensitivity::Restricted)])
        .unwrap();
    coordinator
        .store
        .set_visit_notes(&id, "NAMES-THE-FAMILY-5520; CASE OPENED-8890")
        .unwrap();
    sync_all(&[coordinator, &ben, ana]);
    assert!(matches!(
        ben.store.get_visit(&id),
        Err(Error::NotFound { .. })
    ));
    assert!(ben.store.search("NAMES-THE-FAMILY", 5).unwrap().is_empty());
    let text = every_text(&ben, &ben_key);
    for marker in ["NAMES-THE-FAMILY-5520", "OPENED-8890"] {
        assert!(
            !text.contains(marker),
            "{marker} stayed on a member's phone"
        );
    }
    // Ana wrote it: she keeps her copy (not the coordinator's later notes).
    assert!(ana.store.get_visit(&id).is_ok());

    // The case is closed: open to the team again, whole.
    coordinator
        .store
        .update_visit(&id, &[VisitEdit::Sensitivity(Sensitivity::Normal)])
        .unwrap();
    sync_all(&[coordinator, &ben, ana]);
    assert_eq!(
        ben.store.get_visit(&id).unwrap().notes,
        "NAMES-THE-FAMILY-5520; CASE OPENED-8890"
    );
    assert_eq!(
        ana.store.get_visit(&id).unwrap().notes,
        "NAMES-THE-FAMILY-5520; CASE OPENED-8890"
    );
}

#[test]
fn a_member_made_coordinator_reads_restricted_records_and_one_stepping_down_reads_no_new_ones() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (_, token) = server.workspace_and_token();
    let (devices, ws) = team(&server.url(), &token, &["Coordinator", "Ana"]);
    let [coordinator, ana] = &devices[..] else {
        unreachable!()
    };
    let before = coordinator
        .store
        .create_visit(&ws, &restricted("Shelter", "BEFORE-PROMOTION-1001"))
        .unwrap();
    sync_all(&[coordinator, ana]);
    assert!(ana.store.get_visit(&before).is_err());

    let ana_id = ana
        .store
        .team(&ws)
        .unwrap()
        .into_iter()
        .find(|m| m.is_this_device)
        .unwrap()
        .device_id;
    coordinator
        .store
        .set_role(&ws, &ana_id, "coordinator")
        .unwrap();
    sync_all(&[ana]);
    assert_eq!(
        ana.store.get_visit(&before).unwrap().notes,
        "BEFORE-PROMOTION-1001"
    );

    // Ana steps down: the restricted key she holds is retired at once.
    let epoch = coordinator.store.team_status(&ws).unwrap().epoch;
    coordinator.store.set_role(&ws, &ana_id, "member").unwrap();
    assert_eq!(coordinator.store.team_status(&ws).unwrap().epoch, epoch + 1);
    let after = coordinator
        .store
        .create_visit(&ws, &restricted("Court", "AFTER-STEPPING-DOWN-2002"))
        .unwrap();
    sync_all(&[coordinator, ana]);
    assert!(ana.store.get_visit(&after).is_err());
    assert!(
        ana.store.get_visit(&before).is_err(),
        "a member keeps no restricted record but its own"
    );
}
