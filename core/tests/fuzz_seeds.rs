//! The committed fuzz seeds (`fuzz/seeds/`) are what a teammate, a revoked member, a stranger
//! and a coordinator really send, and every fuzz fixture shares one workspace, key and team:
//! so each seed must still do in a fresh store what it was made to do. If the blob, envelope or
//! bundle format changes, these fail: regenerate the seeds (see `fuzz/README.md`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use waymark_core::fuzzing::Fixture;

fn seed(target: &str, name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds")
        .join(target)
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn fixture() -> (tempfile::TempDir, Fixture) {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::create(&dir.path().join("store.db")).unwrap();
    (dir, fx)
}

#[test]
fn a_teammates_signed_blob_from_the_seeds_opens_and_merges_in_a_fresh_store() {
    let (_dir, fx) = fixture();
    let report = fx
        .apply_pull_response(&seed("pull_response", "new-visit"))
        .unwrap();
    assert_eq!(report.changed.len(), 1, "{report:?}");
    assert!(report.set_aside.is_empty(), "{report:?}");
}

#[test]
fn seeds_from_strangers_revoked_devices_and_unknown_epochs_are_set_aside() {
    for (name, reason) in [
        ("stranger", "does not admit"),
        ("revoked-late", "revoked"),
        ("future-epoch", "waiting for the key"),
    ] {
        let (_dir, fx) = fixture();
        let report = fx
            .apply_pull_response(&seed("pull_response", name))
            .unwrap();
        assert!(report.changed.is_empty(), "{name}: {report:?}");
        assert_eq!(report.set_aside.len(), 1, "{name}: {report:?}");
        assert!(
            report.set_aside[0].reason.contains(reason),
            "{name}: {}",
            report.set_aside[0].reason
        );
    }
}

#[test]
fn a_key_from_the_coordinator_is_learnt_and_one_from_a_member_is_not() {
    let (_dir, fx) = fixture();
    assert_eq!(
        fx.apply_team_response(&seed("team_response", "new-key"))
            .unwrap(),
        vec![1]
    );
    let (_dir, fx) = fixture();
    assert!(
        fx.apply_team_response(&seed("team_response", "key-from-a-member"))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_teammates_bundle_from_the_seeds_imports_into_a_fresh_store() {
    let (_dir, fx) = fixture();
    let report = fx
        .import_bundle(&seed("bundle_import", "everything"))
        .unwrap();
    assert!(!report.changed.is_empty(), "{report:?}");
}

#[test]
fn the_invite_code_seed_parses() {
    let typed = seed("invite_code", "typed");
    let code = std::str::from_utf8(&typed[1..]).unwrap();
    waymark_core::fuzzing::parse_invite(code).unwrap();
}
