//! The storage layer directly: what an operator relies on across restarts, upgrades, backups and
//! admin commands running beside the server, plus the compaction rules.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::{Backend, blob, new_device};
use waymark_protocol::{PushBlob, roles};
use waymark_server::storage::{Device, StorageError};
use waymark_server::{SqliteStorage, Storage, tokens};

fn device_in(storage: &dyn Storage, ws: &str) -> Device {
    let enrollment = tokens::new_token();
    let now = tokens::now();
    storage
        .issue_enrollment_token(
            ws,
            &tokens::hash_token(&enrollment),
            now + 60,
            None,
            roles::COORDINATOR,
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
);

backend_tests!(postgres:
    supersedes_only_older_blobs_of_the_same_document,
    a_pull_is_capped_by_blob_count_too,
    unknown_workspaces_and_devices_are_not_found,
    an_encoded_pull_is_the_same_page_in_wire_form,
);

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
