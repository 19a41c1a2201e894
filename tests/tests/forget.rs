//! Forgetting, tested the hard way (issue 13): a victim's name typed into a note on one phone,
//! synced to the team, edited away and redacted (or the record erased), must be gone from every
//! phone's database file (every page decrypted with the store's key, the write-ahead log too,
//! the search index), from the server's files, from export bundles made afterwards and from a
//! phone that joins later. A phone that edited the record offline meanwhile converges on the
//! rewritten record without bringing the name back, and its edit is reported as set aside.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::*;
use waymark_core::*;
use waymark_e2e::pages::plaintext;

/// Whether `d`'s store holds `marker` anywhere, as bytes on its pages or through its API.
fn holds(d: &Device, marker: &str) -> bool {
    let on_pages = contains(
        &plaintext(&d.dir.path().join("waymark.db"), &d.key).unwrap(),
        marker,
    );
    let searchable = !d.store.search(marker, 10).unwrap().is_empty();
    on_pages || searchable
}

const NAME: &str = "Zainab Okonkwo-Quadri";
const ERASED: &str = "Halima Bankole-Adeyemi";

#[test]
fn a_name_erased_or_redacted_is_gone_from_every_store_the_server_and_later_bundles() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (_, token) = server.workspace_and_token();
    let (devices, ws) = team(
        &server.url(),
        &token,
        &["Coordinator", "Amina", "Ben", "Chidi"],
    );
    let [coordinator, amina, ben, chidi] = &devices[..] else {
        unreachable!()
    };
    let typed = amina
        .store
        .create_visit(
            &ws,
            &visit("Bus station", &format!("Met {NAME} near gate 3"), NOV_1),
        )
        .unwrap();
    let doomed = amina
        .store
        .create_visit(
            &ws,
            &visit("Market", &format!("{ERASED} asked for help"), NOV_1),
        )
        .unwrap();
    for d in [amina, ben, chidi, coordinator] {
        d.sync_until_ok();
    }
    // The scan sees the names where they are: it can tell.
    for d in &devices {
        assert!(holds(d, NAME), "{}", d.store.device_name().unwrap());
        assert!(holds(d, ERASED));
    }

    // Ben edits the record offline while Amina removes the name and redacts.
    ben.store
        .set_visit_notes(
            &typed,
            &format!("Met {NAME} near gate 3; she will come back"),
        )
        .unwrap();
    amina
        .store
        .set_visit_notes(&typed, "Met a young woman near gate 3")
        .unwrap();
    amina.store.redact_record(&typed, "notes").unwrap();
    coordinator.store.erase_record(&doomed).unwrap();
    for d in [amina, coordinator, chidi] {
        d.sync_until_ok();
    }
    ben.sync_until_ok();
    for d in [amina, coordinator, chidi, ben] {
        d.sync_until_ok();
    }

    let bundle = coordinator.store.export_changes(None).unwrap();
    let newcomer = Device::new("Dara");
    newcomer
        .store
        .join(&coordinator.store.create_invite(&ws, 600).unwrap())
        .unwrap();
    newcomer.sync_until_ok();
    newcomer.store.import_changes(&bundle).unwrap();

    for d in devices.iter().chain([&newcomer]) {
        let who = d.store.device_name().unwrap();
        assert!(!holds(d, NAME), "{who} still holds the redacted name");
        assert!(
            !holds(d, ERASED),
            "{who} still holds the erased record's name"
        );
        assert_eq!(
            d.store.get_visit(&typed).unwrap().notes,
            "Met a young woman near gate 3",
            "{who}"
        );
        assert!(
            matches!(d.store.get_visit(&doomed), Err(Error::NotFound { .. }))
                || d.store.get_visit(&doomed).unwrap().deleted
        );
        assert_eq!(d.store.history(&typed).unwrap().len(), 1, "{who}");
    }
    assert!(!contains(&bundle, NAME) && !contains(&bundle, ERASED));
    let server_files = all_bytes(data.path());
    assert!(!contains(&server_files, NAME) && !contains(&server_files, ERASED));
    // The server dropped what the records were before, at once.
    let usage = server.admin(&["usage"]);
    assert!(usage[0]["blobs"].as_u64().unwrap() > 0);

    // Ben's offline edit did not come back, and was not dropped silently: Ben is told, and so
    // are the teammates that received it after the rewrite.
    let ben_told = ben.store.set_aside_blobs().unwrap();
    assert!(ben_told.iter().any(|s| s.doc_id == typed), "{ben_told:?}");
    assert_converged(&devices);
}
