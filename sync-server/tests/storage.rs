//! The storage layer directly: what an operator relies on across restarts, upgrades, backups and
//! admin commands running beside the server, plus the compaction rules.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::{Backend, SchemaGuard, blob, fresh_schema, new_device, postgres_url};
use waymark_protocol::{CHAIN_START, ChainHash, PushBlob, chain_next, roles};
use waymark_server::storage::{Device, StorageError};
use waymark_server::{PostgresStorage, SqliteStorage, Storage, tokens};

fn device_in(storage: &dyn Storage, ws: &str) -> Device {
    device_with_role(storage, ws, roles::COORDINATOR)
}

fn device_with_role(storage: &dyn Storage, ws: &str, role: &str) -> Device {
    let enrollment = tokens::new_token();
    let now = tokens::now();
    storage
        .issue_enrollment_token(
            ws,
            &tokens::hash_token(&enrollment),
            now + 60,
            None,
            role,
            now,
        )
        .unwrap();
    let device_token = tokens::new_token();
    storage
        .enroll(
            &tokens::hash_token(&enrollment),
            &new_device(&device_token),
            now,
        )
        .unwrap();
    storage
        .authenticate(&tokens::hash_token(&device_token))
        .unwrap()
        .unwrap()
}

fn supersedes_only_older_blobs_of_the_same_document(backend: Backend) {
    let storage = backend.storage.as_ref();
    let ws = storage.create_workspace(None, 0).unwrap().id;
    let device = device_in(storage, &ws);
    let t = 1_000;
    storage
        .push(
            &device,
            &[blob(1, b"a1"), blob(2, b"b1"), blob(1, b"a2")],
            t,
        )
        .unwrap();
    // The full save covers doc 1 up to seq 1 only (its author had not seen seq 3).
    let snapshot = PushBlob {
        supersedes: Some(1),
        forget: false,
        covers: Vec::new(),
        ..blob(1, b"save of doc 1 at seq 1")
    };
    storage.push(&device, &[snapshot], t).unwrap();
    // Before the grace period ends nothing is dropped; after, only seq 1.
    assert_eq!(storage.compact(t - 1).unwrap().blobs_dropped, 0);
    assert_eq!(storage.compact(t).unwrap().blobs_dropped, 1);
    let page = storage.pull(&ws, 0, u64::MAX, 100).unwrap();
    let seqs: Vec<u64> = page.blobs.iter().map(|b| b.seq).collect();
    assert_eq!(seqs, vec![2, 3, 4]);
    // A snapshot claiming to cover seqs beyond itself never supersedes itself or later blobs.
    let greedy = PushBlob {
        supersedes: Some(1_000_000),
        forget: false,
        covers: Vec::new(),
        ..blob(2, b"save of doc 2")
    };
    storage.push(&device, &[greedy], t + 1).unwrap();
    storage.push(&device, &[blob(2, b"b2")], t + 1).unwrap();
    assert_eq!(storage.compact(t + 10).unwrap().blobs_dropped, 1);
    let page = storage.pull(&ws, 0, u64::MAX, 100).unwrap();
    let seqs: Vec<u64> = page.blobs.iter().map(|b| b.seq).collect();
    assert_eq!(seqs, vec![3, 4, 5, 6]);
    assert_eq!(page.head, 6);
}

fn a_pull_is_capped_by_blob_count_too(backend: Backend) {
    let storage = backend.storage.as_ref();
    let ws = storage.create_workspace(None, 0).unwrap().id;
    let device = device_in(storage, &ws);
    let blobs: Vec<PushBlob> = (0..5u8).map(|i| blob(i, &[i, i])).collect();
    storage.push(&device, &blobs, 0).unwrap();
    let page = storage.pull(&ws, 0, u64::MAX, 2).unwrap();
    assert_eq!(page.blobs.len(), 2);
    assert!(page.more);
    let page = storage.pull(&ws, 3, u64::MAX, 2).unwrap();
    assert_eq!(page.blobs.len(), 2);
    assert!(!page.more);
}

fn unknown_workspaces_and_devices_are_not_found(backend: Backend) {
    let storage = backend.storage.as_ref();
    let err = storage
        .issue_enrollment_token("missing", &[0; 32], 10, None, roles::MEMBER, 0)
        .unwrap_err();
    assert!(matches!(err, StorageError::NotFound { .. }), "{err}");
    assert!(matches!(
        storage.list_devices(Some("missing")).unwrap_err(),
        StorageError::NotFound { .. }
    ));
    assert!(matches!(
        storage.revoke_device("missing", 0).unwrap_err(),
        StorageError::NotFound { .. }
    ));
    assert!(matches!(
        storage.enroll(&[1; 32], &new_device("t"), 0).unwrap_err(),
        StorageError::TokenUnknown
    ));
}

fn an_encoded_pull_is_the_same_page_in_wire_form(backend: Backend) {
    let storage = backend.storage.as_ref();
    let ws = storage.create_workspace(None, 0).unwrap().id;
    let (alice, bob) = (device_in(storage, &ws), device_in(storage, &ws));
    for (i, device) in [&alice, &bob, &alice].into_iter().enumerate() {
        let blobs: Vec<PushBlob> = (0..30u8)
            .map(|n| blob(n, &vec![n; 50 + 40 * usize::from(n) + i]))
            .collect();
        storage.push(device, &blobs, 0).unwrap();
    }
    // Pages cut by bytes and by count, one blob over its budget, past the head, and compacted
    // rows in between (pushes above supersede nothing, so compact after a full save).
    let save = PushBlob {
        supersedes: Some(40),
        forget: false,
        covers: Vec::new(),
        ..blob(3, b"save of doc 3")
    };
    storage.push(&alice, &[save], 0).unwrap();
    assert!(storage.compact(0).unwrap().blobs_dropped > 0);
    for (after, max_bytes, max_blobs) in [
        (0, u64::MAX, 1000),
        (0, 2_000, 1000),
        (10, u64::MAX, 7),
        (44, 1, 1000),
        (90, 5_000, 3),
        (91, u64::MAX, 1000),
        (500, u64::MAX, 1000),
    ] {
        let page = storage.pull(&ws, after, max_bytes, max_blobs).unwrap();
        let encoded = storage
            .pull_encoded(&ws, after, max_bytes, max_blobs)
            .unwrap();
        assert_eq!(
            encoded.as_bytes(),
            &waymark_protocol::encode(&page)[..],
            "after {after}, {max_bytes} bytes, {max_blobs} blobs"
        );
        assert_eq!(encoded.blobs, page.blobs.len());
    }
    assert!(matches!(
        storage.pull_encoded("missing", 0, 1, 1).unwrap_err(),
        StorageError::NotFound { .. }
    ));
}

/// The chain hashes of a log whose blobs have these content ids, from 1 on.
fn chains_of(blobs: &[PushBlob]) -> Vec<ChainHash> {
    let mut chain = CHAIN_START;
    (1..)
        .zip(blobs)
        .map(|(seq, b)| {
            chain = chain_next(&chain, seq, &b.content_id);
            chain
        })
        .collect()
}

/// Pushes five blobs in two batches (one repeated) and returns them in sequence order.
fn five_blobs(storage: &dyn Storage, device: &Device) -> Vec<PushBlob> {
    let blobs: Vec<PushBlob> = (1..=5u8).map(|n| blob(n, &[n; 20])).collect();
    storage.push(device, &blobs[..2], 0).unwrap();
    storage.push(device, &blobs[1..], 0).unwrap();
    blobs
}

/// Checks every chain hash `storage` shows for `ws` against `expected` (seq 1 first).
fn check_chains(storage: &dyn Storage, ws: &str, expected: &[ChainHash]) {
    let head = expected.len() as u64;
    for after in 0..=head {
        let page = storage.pull(ws, after, u64::MAX, 2).unwrap();
        let at = |seq: u64| match seq {
            0 => CHAIN_START,
            s => expected[s as usize - 1],
        };
        assert_eq!(page.chain_after, Some(at(after)), "after {after}");
        let last = page.blobs.last().map(|b| at(b.seq));
        assert_eq!(page.chain_last, last, "after {after}");
    }
    assert_eq!(
        storage.pull(ws, head + 1, u64::MAX, 2).unwrap().chain_after,
        None
    );
    let answer = storage.chain(ws, &[head + 3, head, 0, 2]).unwrap();
    assert_eq!(answer.head, head);
    let marks: Vec<(u64, ChainHash)> = answer.marks.iter().map(|m| (m.seq, m.chain)).collect();
    assert_eq!(
        marks,
        vec![
            (head, expected[head as usize - 1]),
            (0, CHAIN_START),
            (2, expected[1])
        ]
    );
}

fn every_number_has_the_chain_hash_of_the_log_up_to_it(backend: Backend) {
    let storage = backend.storage.as_ref();
    let ws = storage.create_workspace(None, 0).unwrap().id;
    let device = device_in(storage, &ws);
    let blobs = five_blobs(storage, &device);
    check_chains(storage, &ws, &chains_of(&blobs));
    // Compaction drops ciphertext, not history: the hashes stay.
    let save = PushBlob {
        supersedes: Some(5),
        forget: false,
        covers: Vec::new(),
        ..blob(1, b"save of doc 1")
    };
    storage
        .push(&device, std::slice::from_ref(&save), 0)
        .unwrap();
    storage.compact(0).unwrap();
    let mut all = blobs;
    all.push(save);
    let expected = chains_of(&all);
    let page = storage.pull(&ws, 0, u64::MAX, 100).unwrap();
    assert_eq!(page.blobs.len(), 5);
    assert_eq!(page.chain_last, Some(expected[5]));
    assert_eq!(
        storage.pull(&ws, 1, u64::MAX, 100).unwrap().chain_after,
        Some(expected[0])
    );
    assert!(matches!(
        storage.chain("missing", &[1]).unwrap_err(),
        StorageError::NotFound { .. }
    ));
}

/// A coordinator's snapshot of several documents, pushed in two requests: pulls from before it
/// skip what it covers and take all of it; a device already past what it covers before it began
/// skips it; a device halfway through it takes the rest; documents it does not list, and blobs
/// after it, are served as ever.
fn a_snapshot_replaces_what_it_covers_for_those_who_lack_it(backend: Backend) {
    let storage = backend.storage.as_ref();
    let ws = storage.create_workspace(None, 0).unwrap().id;
    let device = device_in(storage, &ws);
    let blobs: Vec<PushBlob> = [1u8, 2, 3, 1, 2]
        .iter()
        .enumerate()
        .map(|(i, d)| blob(*d, &[*d, i as u8]))
        .collect();
    storage.push(&device, &blobs, 0).unwrap();
    let snapshot = |docs: &[u8], body: &[u8]| PushBlob {
        supersedes: Some(4),
        covers: docs.iter().flat_map(|d| [*d; 16]).collect(),
        ..blob(9, body)
    };
    storage
        .push(
            &device,
            &[snapshot(&[1, 2], b"documents 1 and 2 up to 4")],
            0,
        )
        .unwrap();
    storage
        .push(&device, &[snapshot(&[3], b"document 3 up to 4")], 0)
        .unwrap();
    storage.push(&device, &[blob(1, b"after")], 0).unwrap();
    let seqs = |after: u64| -> Vec<u64> {
        let page = storage.pull(&ws, after, u64::MAX, 100).unwrap();
        page.blobs.iter().map(|b| b.seq).collect()
    };
    // 1, 2, 3 and 4 are covered; 5 (document 2, after what the snapshot covers) is not.
    assert_eq!(seqs(0), vec![5, 6, 7, 8]);
    assert_eq!(seqs(3), vec![5, 6, 7, 8]);
    // At 4 (or 5), the device had all the snapshot holds before it began.
    assert_eq!(seqs(4), vec![5, 8]);
    assert_eq!(seqs(5), vec![8]);
    // Halfway through it (it took the first blob), it takes the rest.
    assert_eq!(seqs(6), vec![7, 8]);
    // Only a coordinator's device may push one.
    let member = device_with_role(storage, &ws, roles::MEMBER);
    assert!(matches!(
        storage
            .push(&member, &[snapshot(&[3], b"a member's snapshot")], 0)
            .unwrap_err(),
        StorageError::Forbidden(_)
    ));
    // Bad snapshots: not whole ids, or no bound.
    for bad in [
        PushBlob {
            supersedes: Some(4),
            covers: vec![1; 15],
            ..blob(9, b"x")
        },
        PushBlob {
            covers: vec![1; 16],
            ..blob(9, b"y")
        },
    ] {
        assert!(matches!(
            storage.push(&device, &[bad], 0).unwrap_err(),
            StorageError::Invalid(_)
        ));
    }
}

/// An erase or redaction's rewrite (`forget`) drops the covered blobs' ciphertext in its own
/// transaction, not after the grace period; `forget` without `supersedes` is refused.
fn a_forgetting_rewrite_drops_what_it_covers_at_once(backend: Backend) {
    let storage = backend.storage.as_ref();
    let ws = storage.create_workspace(None, 0).unwrap().id;
    let device = device_in(storage, &ws);
    storage
        .push(
            &device,
            &[blob(1, b"a name"), blob(1, b"more"), blob(2, b"other")],
            0,
        )
        .unwrap();
    let rewrite = PushBlob {
        supersedes: Some(3),
        forget: true,
        ..blob(1, b"the record rewritten")
    };
    storage.push(&device, &[rewrite], 0).unwrap();
    let usage = storage.usage().unwrap();
    assert_eq!(
        (usage[0].blobs, usage[0].head_seq),
        (2, 4),
        "dropped at once"
    );
    assert_eq!(storage.compact(i64::MAX).unwrap().blobs_dropped, 0);
    let alone = PushBlob {
        forget: true,
        ..blob(2, b"forget what?")
    };
    assert!(matches!(
        storage.push(&device, &[alone], 0).unwrap_err(),
        StorageError::Invalid(_)
    ));
}

macro_rules! backend_tests {
    ($backend:ident: $($name:ident),* $(,)?) => {
        mod $backend {
            $(
                #[test]
                fn $name() {
                    super::$name(super::common::$backend());
                }
            )*
        }
    };
}

backend_tests!(sqlite:
    supersedes_only_older_blobs_of_the_same_document,
    a_pull_is_capped_by_blob_count_too,
    unknown_workspaces_and_devices_are_not_found,
    an_encoded_pull_is_the_same_page_in_wire_form,
    every_number_has_the_chain_hash_of_the_log_up_to_it,
    a_snapshot_replaces_what_it_covers_for_those_who_lack_it,
    a_forgetting_rewrite_drops_what_it_covers_at_once,
);

backend_tests!(postgres:
    supersedes_only_older_blobs_of_the_same_document,
    a_pull_is_capped_by_blob_count_too,
    unknown_workspaces_and_devices_are_not_found,
    an_encoded_pull_is_the_same_page_in_wire_form,
    every_number_has_the_chain_hash_of_the_log_up_to_it,
    a_snapshot_replaces_what_it_covers_for_those_who_lack_it,
    a_forgetting_rewrite_drops_what_it_covers_at_once,
);

/// A schema-3 database (before chain hashes) with two workspaces' blobs gets every blob's hash
/// on upgrade, in order, workspace by workspace; new blobs continue the chain.
#[test]
fn a_schema_3_sqlite_file_gets_its_chain_hashes_on_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.sqlite3");
    let mut logs = Vec::new();
    {
        // Schemas 4 and 5 add only a column each: dropping them gives the file schema 3 wrote.
        let storage = SqliteStorage::open(&path).unwrap();
        for _ in 0..2 {
            let ws = storage.create_workspace(None, 0).unwrap().id;
            let device = device_in(&storage, &ws);
            logs.push((ws, device.clone(), five_blobs(&storage, &device)));
        }
        drop(storage);
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "ALTER TABLE blobs DROP COLUMN chain; ALTER TABLE blobs DROP COLUMN snapshot_upto;
             ALTER TABLE blobs DROP COLUMN snapshot_from; PRAGMA user_version = 3;",
        )
        .unwrap();
    }
    let storage = SqliteStorage::open(&path).unwrap();
    check_upgraded_chains(&storage, logs);
}

#[test]
fn a_schema_3_postgres_database_gets_its_chain_hashes_on_upgrade() {
    let url = postgres_url();
    let guard = SchemaGuard {
        url: url.clone(),
        schema: fresh_schema(),
    };
    let mut logs = Vec::new();
    {
        let storage = PostgresStorage::open_in_schema(&url, &guard.schema).unwrap();
        for _ in 0..2 {
            let ws = storage.create_workspace(None, 0).unwrap().id;
            let device = device_in(&storage, &ws);
            logs.push((ws, device.clone(), five_blobs(&storage, &device)));
        }
        let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
        client
            .batch_execute(&format!(
                "ALTER TABLE {0}.blobs DROP COLUMN chain;
                 ALTER TABLE {0}.blobs DROP COLUMN snapshot_upto;
                 ALTER TABLE {0}.blobs DROP COLUMN snapshot_from;
                 DELETE FROM {0}.waymark_schema WHERE version >= 4;",
                guard.schema
            ))
            .unwrap();
    }
    let storage = PostgresStorage::open_in_schema(&url, &guard.schema).unwrap();
    check_upgraded_chains(&storage, logs);
}

fn check_upgraded_chains(storage: &dyn Storage, logs: Vec<(String, Device, Vec<PushBlob>)>) {
    for (ws, device, mut blobs) in logs {
        check_chains(storage, &ws, &chains_of(&blobs));
        let next = blob(9, ws.as_bytes());
        storage
            .push(&device, std::slice::from_ref(&next), 0)
            .unwrap();
        blobs.push(next);
        check_chains(storage, &ws, &chains_of(&blobs));
    }
}

/// `restore` refuses a database in use and a file that is not a backup, and keeps the
/// database it replaces.
#[test]
fn a_restore_refuses_a_database_in_use_and_keeps_the_one_it_replaces() {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("backup.sqlite3");
    let (ws, device) = {
        let storage = SqliteStorage::open_in_dir(dir.path()).unwrap();
        let ws = storage.create_workspace(None, 0).unwrap().id;
        let device = device_in(&storage, &ws);
        storage
            .push(&device, &[blob(1, b"in the backup")], 0)
            .unwrap();
        storage.backup_to(&backup).unwrap();
        storage.push(&device, &[blob(2, b"after it")], 0).unwrap();
        assert!(matches!(
            SqliteStorage::restore_from(dir.path(), &backup).unwrap_err(),
            StorageError::Conflict(_)
        ));
        (ws, device)
    };
    let junk = dir.path().join("notes.txt");
    std::fs::write(&junk, "not a database").unwrap();
    assert!(matches!(
        SqliteStorage::restore_from(dir.path(), &junk).unwrap_err(),
        StorageError::Invalid(_)
    ));
    let kept = SqliteStorage::restore_from(dir.path(), &backup).unwrap();
    let restored = SqliteStorage::open_in_dir(dir.path()).unwrap();
    assert_eq!(restored.pull(&ws, 0, u64::MAX, 10).unwrap().head, 1);
    let replaced = SqliteStorage::open(&kept).unwrap();
    assert_eq!(replaced.pull(&ws, 0, u64::MAX, 10).unwrap().head, 2);
    drop(device);
}

// SQLite-specific: the file on disk.

#[test]
fn everything_survives_closing_and_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let ws = {
        let storage = SqliteStorage::open_in_dir(dir.path()).unwrap();
        let ws = storage.create_workspace(Some("w"), 1).unwrap().id;
        let device = device_in(&storage, &ws);
        storage.push(&device, &[blob(1, b"kept")], 2).unwrap();
        ws
    };
    let storage = SqliteStorage::open_in_dir(dir.path()).unwrap();
    let page = storage.pull(&ws, 0, u64::MAX, 10).unwrap();
    assert_eq!(page.blobs[0].ciphertext, b"kept");
}

#[test]
fn a_database_from_a_newer_server_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("waymark.sqlite3");
    {
        let storage = SqliteStorage::open(&path).unwrap();
        storage.create_workspace(Some("w"), 1).unwrap();
    }
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        conn.pragma_update(None, "journal_mode", "DELETE").unwrap();
    }
    let digest = |p: &std::path::Path| waymark_protocol::content_id_of(&std::fs::read(p).unwrap());
    let before = digest(&path);
    let err = SqliteStorage::open(&path).unwrap_err();
    assert!(
        matches!(err, StorageError::NewerSchema { found: 99, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("newer"));
    assert!(digest(&path) == before, "the file was modified");
}

#[test]
fn admin_commands_write_while_the_server_writes_to_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let server = Arc::new(SqliteStorage::open_in_dir(dir.path()).unwrap());
    let admin = SqliteStorage::open_in_dir(dir.path()).unwrap();
    let ws = admin.create_workspace(None, 0).unwrap().id;
    let device = device_in(server.as_ref(), &ws);
    let pusher = {
        let server = Arc::clone(&server);
        std::thread::spawn(move || {
            for i in 0..200u32 {
                server
                    .push(&device, &[blob(1, format!("blob {i}").as_bytes())], 0)
                    .unwrap();
            }
        })
    };
    for _ in 0..50 {
        admin.create_workspace(None, 0).unwrap();
        admin.usage().unwrap();
    }
    pusher.join().unwrap();
    let usage = admin.usage().unwrap();
    assert_eq!(usage.iter().find(|u| u.id == ws).unwrap().head_seq, 200);
}

#[test]
fn a_backup_is_a_complete_database_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let storage = SqliteStorage::open_in_dir(&dir.path().join("live")).unwrap();
    let ws = storage.create_workspace(None, 0).unwrap().id;
    let device = device_in(&storage, &ws);
    storage
        .push(&device, &[blob(1, b"x"), blob(2, b"y")], 0)
        .unwrap();
    let dest = dir.path().join("backup.sqlite3");
    storage.backup_to(&dest).unwrap();
    let err = storage.backup_to(&dest).unwrap_err();
    assert!(err.to_string().contains("exists"), "{err}");
    let restored = SqliteStorage::open(&dest).unwrap();
    assert_eq!(restored.pull(&ws, 0, u64::MAX, 10).unwrap().head, 2);
    assert_eq!(restored.list_devices(None).unwrap().len(), 1);
}

#[test]
fn tokens_are_stored_only_as_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let storage = SqliteStorage::open_in_dir(dir.path()).unwrap();
    let ws = storage.create_workspace(None, 0).unwrap().id;
    let enrollment = tokens::new_token();
    let device_token = tokens::new_token();
    let now = tokens::now();
    storage
        .issue_enrollment_token(
            &ws,
            &tokens::hash_token(&enrollment),
            now + 60,
            None,
            roles::COORDINATOR,
            now,
        )
        .unwrap();
    storage
        .enroll(
            &tokens::hash_token(&enrollment),
            &new_device(&device_token),
            now,
        )
        .unwrap();
    let path = storage.path().to_owned();
    drop(storage);
    let mut bytes = std::fs::read(&path).unwrap();
    if let Ok(wal) = std::fs::read(path.with_extension("sqlite3-wal")) {
        bytes.extend(wal);
    }
    for secret in [&enrollment, &device_token] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "a token is stored in clear"
        );
    }
}

#[test]
fn a_backup_taken_during_pushes_is_a_consistent_prefix_of_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Arc::new(SqliteStorage::open_in_dir(&dir.path().join("live")).unwrap());
    let ws = storage.create_workspace(None, 0).unwrap().id;
    let device = device_in(storage.as_ref(), &ws);
    storage.push(&device, &[blob(1, b"first")], 0).unwrap();
    let pusher = {
        let storage = Arc::clone(&storage);
        std::thread::spawn(move || {
            for i in 0..300u32 {
                let batch = [
                    blob(1, format!("a{i}").as_bytes()),
                    blob(2, format!("b{i}").as_bytes()),
                ];
                storage.push(&device, &batch, 0).unwrap();
            }
        })
    };
    let dest = dir.path().join("during.sqlite3");
    storage.backup_to(&dest).unwrap();
    pusher.join().unwrap();

    let restored = SqliteStorage::open(&dest).unwrap();
    let page = restored.pull(&ws, 0, u64::MAX, 10_000).unwrap();
    let seqs: Vec<u64> = page.blobs.iter().map(|b| b.seq).collect();
    assert_eq!(seqs, (1..=page.head).collect::<Vec<_>>());
    assert_eq!(page.head % 2, 1, "a batch was split by the backup");
    assert!(!dir.path().join("during.sqlite3.partial").exists());
}

// PostgreSQL-specific: migrations and several stores (server processes) on one database.

mod postgres_only {
    use std::sync::Arc;

    use super::common::{SchemaGuard, fresh_schema, postgres_url};
    use super::device_in;
    use waymark_server::storage::StorageError;
    use waymark_server::{PostgresStorage, Storage};

    fn schema() -> (String, SchemaGuard) {
        let url = postgres_url();
        let schema = fresh_schema();
        let guard = SchemaGuard {
            url: url.clone(),
            schema: schema.clone(),
        };
        (url, guard)
    }

    #[test]
    fn reopening_keeps_everything_and_migrates_once() {
        let (url, guard) = schema();
        let ws = {
            let storage = PostgresStorage::open_in_schema(&url, &guard.schema).unwrap();
            storage.create_workspace(Some("kept"), 7).unwrap().id
        };
        let storage = PostgresStorage::open_in_schema(&url, &guard.schema).unwrap();
        let usage = storage.usage().unwrap();
        assert_eq!(usage.len(), 1);
        assert_eq!(
            (usage[0].id.as_str(), usage[0].name.as_deref()),
            (ws.as_str(), Some("kept"))
        );
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let versions: i64 = client
            .query_one(
                &format!("SELECT count(*) FROM {}.waymark_schema", guard.schema),
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(versions, waymark_server::storage::postgres::SCHEMA_VERSION);
    }

    #[test]
    fn a_database_from_a_newer_server_is_refused_untouched() {
        let (url, guard) = schema();
        drop(PostgresStorage::open_in_schema(&url, &guard.schema).unwrap());
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        client
            .batch_execute(&format!(
                "INSERT INTO {}.waymark_schema (version, applied_at) VALUES (999, 0)",
                guard.schema
            ))
            .unwrap();
        let err = PostgresStorage::open_in_schema(&url, &guard.schema).unwrap_err();
        assert!(
            matches!(err, StorageError::NewerSchema { found: 999, .. }),
            "{err}"
        );
    }

    #[test]
    fn stores_started_at_once_migrate_once_and_share_one_log() {
        let (url, guard) = schema();
        let stores: Vec<Arc<PostgresStorage>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| PostgresStorage::open_in_schema(&url, &guard.schema)))
                .collect();
            handles
                .into_iter()
                .map(|h| Arc::new(h.join().unwrap().unwrap()))
                .collect()
        });
        let ws = stores[0].create_workspace(None, 0).unwrap().id;
        let device = device_in(stores[1].as_ref(), &ws);
        std::thread::scope(|scope| {
            for (i, store) in stores.iter().enumerate() {
                let device = device.clone();
                scope.spawn(move || {
                    for n in 0..20u8 {
                        let i = u8::try_from(i).unwrap();
                        store.push(&device, &[super::blob(i, &[i, n])], 0).unwrap();
                    }
                });
            }
        });
        let page = stores[3].pull(&ws, 0, u64::MAX, 1000).unwrap();
        let seqs: Vec<u64> = page.blobs.iter().map(|b| b.seq).collect();
        assert_eq!(seqs, (1..=80).collect::<Vec<_>>());
        assert_eq!(page.head, 80);
    }

    #[test]
    fn a_revoked_device_cannot_push_through_another_store() {
        let (url, guard) = schema();
        let a = PostgresStorage::open_in_schema(&url, &guard.schema).unwrap();
        let b = PostgresStorage::open_in_schema(&url, &guard.schema).unwrap();
        let ws = a.create_workspace(None, 0).unwrap().id;
        let device = device_in(&a, &ws);
        b.revoke_device(&device.id, 1).unwrap();
        assert!(matches!(
            a.push(&device, &[super::blob(1, b"late")], 2).unwrap_err(),
            StorageError::DeviceRevoked
        ));
    }
}
