//! The storage layer directly: what an operator relies on across restarts, upgrades, backups and
//! admin commands running beside the server, plus the compaction rules and the safety
//! check-ins' (updates, deadlines, alerts claimed at least once, purges).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::old::{Old, OldDatabase};
use common::{Backend, blob, new_device};
use waymark_protocol::check_in_states::{ALARM, CLOSED, OPEN, OVERDUE};
use waymark_protocol::{
    CHAIN_START, ChainHash, CheckInEntry, CheckInRequest, CheckInResponse, PushBlob, chain_next,
    limits, roles,
};
use waymark_server::storage::{AlertKind, CheckInAlert, Device, MAX_ALERT_ATTEMPTS, StorageError};
use waymark_server::{SqliteStorage, Storage, tokens};

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

// Safety check-ins (issue 14).

/// A fixed "now" for the check-in tests: the server's clock is an argument of every call.
const T: i64 = 1_800_000_000;

fn check_in(id: u8, state: &str, due_in_secs: u64, version: u64) -> CheckInRequest {
    CheckInRequest {
        id: [id; 16],
        due_in_secs,
        state: state.into(),
        version,
        epoch: 0,
        sealed: format!("sealed {id} v{version}").into_bytes(),
    }
}

/// The workspace's check-ins version as a pull answers it, both ways a pull is answered.
fn pulled_check_ins_version(storage: &dyn Storage, ws: &str) -> u64 {
    let pulled = storage.pull(ws, 0, u64::MAX, 10).unwrap().check_ins;
    let encoded = storage.pull_encoded(ws, 0, u64::MAX, 10).unwrap();
    let decoded: waymark_protocol::PullResponse =
        waymark_protocol::decode(encoded.as_bytes()).unwrap();
    assert_eq!(decoded.check_ins, pulled);
    pulled
}

fn a_check_in_is_started_extended_and_closed_and_retries_change_nothing(backend: Backend) {
    let storage = backend.storage.as_ref();
    let ws = storage.create_workspace(None, 0).unwrap().id;
    let device = device_in(storage, &ws);
    assert_eq!(pulled_check_ins_version(storage, &ws), 0);

    let started = storage
        .put_check_in(&device, &check_in(1, OPEN, 600, 1), T)
        .unwrap();
    assert_eq!(
        started,
        CheckInResponse {
            deadline: (T + 600) as u64,
            version: 1
        }
    );
    let list = storage.check_ins(&ws, T + 1, 60).unwrap();
    assert_eq!(
        (list.version, list.now, list.grace_secs),
        (1, (T + 1) as u64, 60)
    );
    assert_eq!(
        list.check_ins,
        vec![CheckInEntry {
            id: [1; 16],
            device_id: device.id.clone(),
            state: OPEN.into(),
            deadline: (T + 600) as u64,
            overdue_since: None,
            version: 1,
            epoch: 0,
            sealed: b"sealed 1 v1".to_vec(),
        }]
    );
    assert_eq!(pulled_check_ins_version(storage, &ws), 1);

    // A retry answers what is stored and changes nothing, not even the deadline.
    let retried = storage
        .put_check_in(&device, &check_in(1, OPEN, 600, 1), T + 5)
        .unwrap();
    assert_eq!(retried, started);
    assert_eq!(pulled_check_ins_version(storage, &ws), 1);

    // An extension moves the deadline from now, on the server's clock.
    let extended = storage
        .put_check_in(&device, &check_in(1, OPEN, 1200, 2), T + 100)
        .unwrap();
    assert_eq!(extended.deadline, (T + 1300) as u64);
    // The first update arriving late undoes nothing.
    let late = storage
        .put_check_in(&device, &check_in(1, OPEN, 600, 1), T + 200)
        .unwrap();
    assert_eq!(late, extended);

    // Closing keeps the deadline; the sealed details are the last update's.
    let closed = storage
        .put_check_in(&device, &check_in(1, CLOSED, 0, 3), T + 300)
        .unwrap();
    assert_eq!(closed.deadline, (T + 1300) as u64);
    let entry = &storage.check_ins(&ws, T + 301, 60).unwrap().check_ins[0];
    assert_eq!(
        (entry.state.as_str(), entry.version, entry.sealed.as_slice()),
        (CLOSED, 3, &b"sealed 1 v3"[..])
    );
    assert_eq!(pulled_check_ins_version(storage, &ws), 3);

    // Closed stays closed: a later `open` is refused and changes nothing.
    assert!(matches!(
        storage
            .put_check_in(&device, &check_in(1, OPEN, 600, 4), T + 400)
            .unwrap_err(),
        StorageError::Conflict(_)
    ));
    assert_eq!(
        storage.check_ins(&ws, T + 401, 60).unwrap().check_ins[0].state,
        CLOSED
    );
    // A closed check-in may still be raised; a raised one is never closed again.
    storage
        .put_check_in(&device, &check_in(1, ALARM, 0, 5), T + 500)
        .unwrap();
    assert!(matches!(
        storage
            .put_check_in(&device, &check_in(1, CLOSED, 0, 6), T + 600)
            .unwrap_err(),
        StorageError::Conflict(_)
    ));
    assert!(matches!(
        storage
            .put_check_in(&device, &check_in(1, OPEN, 60, 7), T + 600)
            .unwrap_err(),
        StorageError::Conflict(_)
    ));
    let list = storage.check_ins(&ws, T + 700, 60).unwrap();
    assert_eq!((list.check_ins[0].state.as_str(), list.version), (ALARM, 4));
    assert_eq!(pulled_check_ins_version(storage, &ws), 4);
}

fn only_the_device_that_started_a_check_in_may_update_it(backend: Backend) {
    let storage = backend.storage.as_ref();
    let ws = storage.create_workspace(None, 0).unwrap().id;
    let ana = device_in(storage, &ws);
    let ben = device_in(storage, &ws);
    storage
        .put_check_in(&ana, &check_in(1, OPEN, 600, 1), T)
        .unwrap();
    for state in [OPEN, CLOSED, ALARM] {
        assert!(matches!(
            storage
                .put_check_in(&ben, &check_in(1, state, 600, 9), T)
                .unwrap_err(),
            StorageError::Forbidden(_)
        ));
    }
    // Ben sees it (his team's check-in) but changed nothing.
    let list = storage.check_ins(&ws, T, 60).unwrap();
    assert_eq!(list.version, 1);
    assert_eq!(
        (
            list.check_ins[0].device_id.as_str(),
            list.check_ins[0].version
        ),
        (ana.id.as_str(), 1)
    );
    // The same id in another workspace is another check-in, which nobody here sees.
    let other_ws = storage.create_workspace(None, 0).unwrap().id;
    let other = device_in(storage, &other_ws);
    storage
        .put_check_in(&other, &check_in(1, ALARM, 600, 1), T)
        .unwrap();
    assert_eq!(storage.check_ins(&ws, T, 60).unwrap().check_ins.len(), 1);
    assert_eq!(
        storage.check_ins(&ws, T, 60).unwrap().check_ins[0].state,
        OPEN
    );
    // A revoked device's updates stop at once; its check-in stays watched.
    storage.revoke_device(&ana.id, T).unwrap();
    assert!(matches!(
        storage
            .put_check_in(&ana, &check_in(1, CLOSED, 0, 2), T)
            .unwrap_err(),
        StorageError::DeviceRevoked
    ));
    assert_eq!(storage.mark_overdue_check_ins(T + 600, 0).unwrap(), 1);
}

fn malformed_check_ins_are_refused_and_store_nothing(backend: Backend) {
    let storage = backend.storage.as_ref();
    let ws = storage.create_workspace(None, 0).unwrap().id;
    let device = device_in(storage, &ws);
    let cases = [
        (check_in(1, OVERDUE, 60, 1), "state"),
        (check_in(1, "safe", 60, 1), "state"),
        (
            check_in(1, OPEN, limits::MAX_CHECK_IN_DUE_SECS + 1, 1),
            "due_in_secs",
        ),
        (
            CheckInRequest {
                sealed: Vec::new(),
                ..check_in(1, OPEN, 60, 1)
            },
            "sealed",
        ),
        (
            CheckInRequest {
                sealed: vec![7; limits::MAX_CHECK_IN_SEALED_BYTES + 1],
                ..check_in(1, OPEN, 60, 1)
            },
            "sealed",
        ),
        (check_in(1, OPEN, 60, 0), "version"),
        (check_in(1, OPEN, 60, u64::MAX), "version"),
        (
            CheckInRequest {
                epoch: 1,
                ..check_in(1, OPEN, 60, 1)
            },
            "epoch",
        ),
    ];
    for (request, needle) in cases {
        match storage.put_check_in(&device, &request, T).unwrap_err() {
            StorageError::Invalid(message) => assert!(message.contains(needle), "{message}"),
            other => panic!("{needle}: {other}"),
        }
    }
    // The limits themselves are fine.
    storage
        .put_check_in(
            &device,
            &CheckInRequest {
                sealed: vec![7; limits::MAX_CHECK_IN_SEALED_BYTES],
                ..check_in(2, OPEN, limits::MAX_CHECK_IN_DUE_SECS, 1)
            },
            T,
        )
        .unwrap();
    let list = storage.check_ins(&ws, T, 60).unwrap();
    assert_eq!((list.version, list.check_ins.len()), (1, 1));
}

fn a_device_may_have_sixteen_check_ins_open_at_once(backend: Backend) {
    let storage = backend.storage.as_ref();
    let ws = storage.create_workspace(None, 0).unwrap().id;
    let device = device_in(storage, &ws);
    let teammate = device_in(storage, &ws);
    for id in 0..limits::MAX_OPEN_CHECK_INS as u8 {
        storage
            .put_check_in(&device, &check_in(id, OPEN, 600, 1), T)
            .unwrap();
    }
    // Overdue ones still count: the worker has not come back from them.
    assert_eq!(storage.mark_overdue_check_ins(T + 600, 0).unwrap(), 16);
    assert!(matches!(
        storage
            .put_check_in(&device, &check_in(100, OPEN, 600, 1), T + 600)
            .unwrap_err(),
        StorageError::Conflict(_)
    ));
    // Extending one that is open (overdue) is not a new one; raising an alarm is never refused;
    // a teammate has a limit of its own.
    storage
        .put_check_in(&device, &check_in(0, OPEN, 600, 2), T + 600)
        .unwrap();
    storage
        .put_check_in(&device, &check_in(101, ALARM, 0, 1), T + 600)
        .unwrap();
    storage
        .put_check_in(&teammate, &check_in(102, OPEN, 600, 1), T + 600)
        .unwrap();
    // Once one is closed, another may start.
    storage
        .put_check_in(&device, &check_in(1, CLOSED, 0, 2), T + 600)
        .unwrap();
    storage
        .put_check_in(&device, &check_in(100, OPEN, 600, 1), T + 600)
        .unwrap();
}

fn an_open_check_in_is_overdue_past_its_deadline_and_the_grace_period(backend: Backend) {
    let storage = backend.storage.as_ref();
    let ws = storage.create_workspace(None, 0).unwrap().id;
    let device = device_in(storage, &ws);
    storage
        .put_check_in(&device, &check_in(1, OPEN, 100, 1), T)
        .unwrap();
    let listed = |now| {
        let list = storage.check_ins(&ws, now, 60).unwrap();
        let entry = list.check_ins[0].clone();
        (entry.state, entry.overdue_since, list.version)
    };
    // Within the grace period it is open; once it has passed, the list says overdue (since the
    // deadline plus the grace) even before the watcher marked it.
    assert_eq!(listed(T + 159), (OPEN.into(), None, 1));
    assert_eq!(listed(T + 160), (OVERDUE.into(), Some((T + 160) as u64), 1));
    assert_eq!(storage.mark_overdue_check_ins(T + 159, 60).unwrap(), 0);
    assert_eq!(storage.mark_overdue_check_ins(T + 165, 60).unwrap(), 1);
    // Marked once: the next rounds find nothing to mark.
    assert_eq!(storage.mark_overdue_check_ins(T + 166, 60).unwrap(), 0);
    assert_eq!(storage.mark_overdue_check_ins(T + 9999, 60).unwrap(), 0);
    assert_eq!(listed(T + 170), (OVERDUE.into(), Some((T + 165) as u64), 2));
    assert_eq!(pulled_check_ins_version(storage, &ws), 2);

    // The worker extends it: open again, watched from the new deadline.
    let extended = storage
        .put_check_in(&device, &check_in(1, OPEN, 300, 2), T + 200)
        .unwrap();
    assert_eq!(extended.deadline, (T + 500) as u64);
    assert_eq!(listed(T + 201), (OPEN.into(), None, 3));
    assert_eq!(storage.mark_overdue_check_ins(T + 559, 60).unwrap(), 0);
    assert_eq!(storage.mark_overdue_check_ins(T + 560, 60).unwrap(), 1);
    // Closing an overdue check-in closes it; when it was overdue stays on record.
    storage
        .put_check_in(&device, &check_in(1, CLOSED, 0, 3), T + 600)
        .unwrap();
    assert_eq!(listed(T + 601), (CLOSED.into(), Some((T + 560) as u64), 5));
    // The grace is the server's setting: the same check-in, another grace.
    storage
        .put_check_in(&device, &check_in(2, OPEN, 100, 1), T)
        .unwrap();
    let list = storage.check_ins(&ws, T + 101, 1).unwrap();
    let entry = list.check_ins.iter().find(|e| e.id == [2; 16]).unwrap();
    assert_eq!(entry.state, OVERDUE);
}

fn each_alert_is_claimed_once_and_again_only_after_its_claim_expires(backend: Backend) {
    let storage = backend.storage.as_ref();
    let ws = storage.create_workspace(None, 0).unwrap().id;
    let device = device_in(storage, &ws);
    storage
        .put_check_in(&device, &check_in(1, OPEN, 60, 1), T)
        .unwrap();
    assert!(storage.claim_check_in_alerts(T + 1000).unwrap().is_empty());
    storage.mark_overdue_check_ins(T + 70, 10).unwrap();
    let now = T + 60 + 3 * 60 + 30;
    let claimed = storage.claim_check_in_alerts(now).unwrap();
    assert_eq!(
        claimed,
        vec![CheckInAlert {
            workspace_id: ws.clone(),
            check_in: [1; 16],
            device_name: "phone".into(),
            kind: AlertKind::Overdue,
            minutes_overdue: 3,
            attempts: 1,
            version: 1,
        }]
    );
    // Claimed: nobody else takes it for a minute.
    assert!(storage.claim_check_in_alerts(now).unwrap().is_empty());
    assert!(storage.claim_check_in_alerts(now + 60).unwrap().is_empty());
    // Its hook failed (nothing recorded): once the claim expires, it is claimed again.
    let again = storage.claim_check_in_alerts(now + 61).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].attempts, again[0].minutes_overdue), (2, 4));
    assert!(storage.check_in_alert_done(&again[0], now + 62).unwrap());
    assert!(!storage.check_in_alert_done(&again[0], now + 63).unwrap());
    assert!(
        storage
            .claim_check_in_alerts(now + 9999)
            .unwrap()
            .is_empty()
    );

    // An alarm owes an alert of its own, with no minutes.
    storage
        .put_check_in(&device, &check_in(1, ALARM, 0, 2), now + 100)
        .unwrap();
    let alarm = storage.claim_check_in_alerts(now + 100).unwrap();
    assert_eq!(alarm.len(), 1);
    assert_eq!(
        (alarm[0].kind, alarm[0].minutes_overdue, alarm[0].attempts),
        (AlertKind::Alarm, 0, 1)
    );
    // A delivery recorded for the overdue alert does not settle the alarm.
    assert!(!storage.check_in_alert_done(&again[0], now + 101).unwrap());
    assert!(storage.check_in_alert_done(&alarm[0], now + 101).unwrap());

    // An alert whose hook keeps failing is given up after ten claims.
    storage
        .put_check_in(&device, &check_in(2, ALARM, 0, 1), T)
        .unwrap();
    for attempt in 1..=MAX_ALERT_ATTEMPTS {
        let claimed = storage
            .claim_check_in_alerts(T + i64::from(attempt) * 61)
            .unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].attempts, attempt);
    }
    assert!(
        storage
            .claim_check_in_alerts(T + 99_999)
            .unwrap()
            .is_empty()
    );
}

fn an_overdue_alert_is_settled_by_the_worker_coming_back(backend: Backend) {
    let storage = backend.storage.as_ref();
    let ws = storage.create_workspace(None, 0).unwrap().id;
    let device = device_in(storage, &ws);
    // Closed (safe) before its overdue alert was delivered: no alert is owed any more.
    storage
        .put_check_in(&device, &check_in(1, OPEN, 60, 1), T)
        .unwrap();
    storage.mark_overdue_check_ins(T + 60, 0).unwrap();
    let claimed = storage.claim_check_in_alerts(T + 60).unwrap();
    storage
        .put_check_in(&device, &check_in(1, CLOSED, 0, 2), T + 61)
        .unwrap();
    assert!(!storage.check_in_alert_done(&claimed[0], T + 62).unwrap());
    assert!(storage.claim_check_in_alerts(T + 999).unwrap().is_empty());
    // Extended after its alert was delivered, then late again: a new alert is owed.
    storage
        .put_check_in(&device, &check_in(2, OPEN, 60, 1), T)
        .unwrap();
    storage.mark_overdue_check_ins(T + 60, 0).unwrap();
    let first = storage.claim_check_in_alerts(T + 60).unwrap();
    assert!(storage.check_in_alert_done(&first[0], T + 61).unwrap());
    storage
        .put_check_in(&device, &check_in(2, OPEN, 60, 2), T + 100)
        .unwrap();
    storage.mark_overdue_check_ins(T + 160, 0).unwrap();
    let second = storage.claim_check_in_alerts(T + 160).unwrap();
    assert_eq!(
        (second.len(), second[0].version, second[0].attempts),
        (1, 2, 1)
    );
}

fn finished_check_ins_are_purged_a_day_later_once_their_alert_is_done(backend: Backend) {
    let storage = backend.storage.as_ref();
    let ws = storage.create_workspace(None, 0).unwrap().id;
    let device = device_in(storage, &ws);
    let day = waymark_server::storage::CHECK_IN_KEPT_SECS;
    storage
        .put_check_in(&device, &check_in(1, OPEN, 60, 1), T)
        .unwrap();
    storage
        .put_check_in(&device, &check_in(1, CLOSED, 0, 2), T + 10)
        .unwrap();
    storage
        .put_check_in(&device, &check_in(2, ALARM, 0, 1), T + 10)
        .unwrap();
    storage
        .put_check_in(&device, &check_in(3, OPEN, 3 * day as u64, 1), T + 10)
        .unwrap();
    let ids = |now| -> Vec<u8> {
        let list = storage.check_ins(&ws, now, 60).unwrap();
        let mut ids: Vec<u8> = list.check_ins.iter().map(|e| e.id[0]).collect();
        ids.sort_unstable();
        ids
    };
    assert_eq!(ids(T + 10 + day), vec![1, 2, 3]);
    // Past a day a closed one is no longer listed; an alarm is until it is gone.
    assert_eq!(ids(T + 11 + day), vec![2, 3]);
    assert_eq!(storage.purge_check_ins(T + 10 + day).unwrap(), 0);
    let version = storage.check_ins(&ws, T, 60).unwrap().version;
    // The closed one goes; the alarm stays while its alert is owed; the open one stays.
    assert_eq!(storage.purge_check_ins(T + 11 + day).unwrap(), 1);
    assert_eq!(storage.check_ins(&ws, T, 60).unwrap().version, version + 1);
    let alarm = storage.claim_check_in_alerts(T + 11 + day).unwrap();
    assert_eq!(storage.purge_check_ins(T + 12 + day).unwrap(), 0);
    assert!(
        storage
            .check_in_alert_done(&alarm[0], T + 12 + day)
            .unwrap()
    );
    assert_eq!(storage.purge_check_ins(T + 12 + day).unwrap(), 1);
    assert_eq!(ids(T + 12 + day), vec![3]);
    assert_eq!(storage.purge_check_ins(T + 99 * day).unwrap(), 0);
}

common::backend_tests!(
    supersedes_only_older_blobs_of_the_same_document,
    a_pull_is_capped_by_blob_count_too,
    unknown_workspaces_and_devices_are_not_found,
    an_encoded_pull_is_the_same_page_in_wire_form,
    every_number_has_the_chain_hash_of_the_log_up_to_it,
    a_snapshot_replaces_what_it_covers_for_those_who_lack_it,
    a_forgetting_rewrite_drops_what_it_covers_at_once,
    a_check_in_is_started_extended_and_closed_and_retries_change_nothing,
    only_the_device_that_started_a_check_in_may_update_it,
    malformed_check_ins_are_refused_and_store_nothing,
    a_device_may_have_sixteen_check_ins_open_at_once,
    an_open_check_in_is_overdue_past_its_deadline_and_the_grace_period,
    each_alert_is_claimed_once_and_again_only_after_its_claim_expires,
    an_overdue_alert_is_settled_by_the_worker_coming_back,
    finished_check_ins_are_purged_a_day_later_once_their_alert_is_done,
);

/// What a release of schema 3 or later stored for a workspace with one coordinator's device
/// (signing with `sign_key`) that pushed `blobs` (numbered from 1), written in plain SQL of the
/// schema `db` is at: the workspace, the used enrollment token, the device and the blobs, from
/// schema 4 on with the chain hashes that release computed on push.
fn old_workspace(db: &mut OldDatabase, sign_key: [u8; 32], blobs: &[PushBlob]) -> (String, Device) {
    let (ws, id) = (tokens::new_id(), tokens::new_id());
    let token = tokens::hash_token(&tokens::new_token());
    let workspace = format!("(SELECT id FROM workspaces WHERE public_id = '{ws}')");
    let device = format!("(SELECT id FROM devices WHERE public_id = '{id}')");
    let mut sql = format!(
        "INSERT INTO workspaces (public_id, created_at, head_seq, team_version)
             VALUES ('{ws}', 0, {head}, 1);
         INSERT INTO devices (public_id, workspace, name, token_hash, enrolled_at, role,
                              sign_key, box_key)
             VALUES ('{id}', {workspace}, 'phone', {token}, 0, 'coordinator', {sign}, {box_key});
         INSERT INTO enrollment_tokens (token_hash, workspace, created_at, expires_at, used_at,
                                        used_by, role)
             VALUES ({enrollment}, {workspace}, 0, 60, 0, {device}, 'coordinator');",
        head = blobs.len(),
        token = db.bytes(&token),
        sign = db.bytes(&sign_key),
        box_key = db.bytes(&rand::random::<[u8; 32]>()),
        enrollment = db.bytes(&rand::random::<[u8; 32]>()),
    );
    let chains = chains_of(blobs);
    for (seq, (blob, chain)) in (1..).zip(blobs.iter().zip(&chains)) {
        let (chain_column, chain_value) = match db.version() >= 4 {
            true => (", chain", format!(", {}", db.bytes(chain))),
            false => ("", String::new()),
        };
        sql += &format!(
            "INSERT INTO blobs (workspace, seq, content_id, doc_id, epoch, device, size,
                                ciphertext, created_at{chain_column})
                 VALUES ({workspace}, {seq}, {content_id}, {doc_id}, {epoch}, {device}, {size},
                         {ciphertext}, 0{chain_value});",
            content_id = db.bytes(&blob.content_id),
            doc_id = db.bytes(&blob.doc_id),
            epoch = blob.epoch,
            size = blob.ciphertext.len(),
            ciphertext = db.bytes(&blob.ciphertext),
        );
    }
    db.execute(&sql);
    let device = Device {
        id,
        workspace_id: ws.clone(),
        role: roles::COORDINATOR.into(),
    };
    (ws, device)
}

/// Five blobs of five documents, as [`five_blobs`] pushes them.
fn five_old_blobs() -> Vec<PushBlob> {
    (1..=5u8).map(|n| blob(n, &[n; 20])).collect()
}

/// A schema-3 database (before chain hashes) with two workspaces' blobs gets every blob's hash
/// on upgrade, in order, workspace by workspace; new blobs continue the chain.
fn a_schema_3_database_gets_its_chain_hashes_on_upgrade(old: Old) {
    let mut db = old.at(3);
    let logs: Vec<_> = (0..2)
        .map(|_| {
            let (ws, device) = old_workspace(&mut db, rand::random(), &five_old_blobs());
            (ws, device, five_old_blobs())
        })
        .collect();
    check_upgraded_chains(db.open().unwrap().as_ref(), logs);
    assert_eq!(db.recorded_version(), db.latest_version());
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

/// A schema-4 database (before snapshots) upgrades: its blobs and their chain hashes are kept,
/// none is taken for a snapshot, and a coordinator's snapshot then covers them.
fn a_schema_4_database_keeps_its_chain_and_takes_snapshots_on_upgrade(old: Old) {
    let mut db = old.at(4);
    let blobs = five_old_blobs();
    let (ws, device) = old_workspace(&mut db, rand::random(), &blobs);
    check_upgraded_to_snapshots(db.open().unwrap().as_ref(), &ws, &device, blobs);
    assert_eq!(db.recorded_version(), db.latest_version());
}

fn check_upgraded_to_snapshots(
    storage: &dyn Storage,
    ws: &str,
    device: &Device,
    blobs: Vec<PushBlob>,
) {
    check_chains(storage, ws, &chains_of(&blobs));
    let page = storage.pull(ws, 0, u64::MAX, 100).unwrap();
    let stored: Vec<&[u8]> = page.blobs.iter().map(|b| &b.ciphertext[..]).collect();
    let pushed: Vec<&[u8]> = blobs.iter().map(|b| &b.ciphertext[..]).collect();
    assert_eq!(stored, pushed);
    // Documents 1 to 5 are one blob each, at 1 to 5: a snapshot of all of them up to 5 is all
    // a device starting from 0 needs.
    let snapshot = PushBlob {
        supersedes: Some(5),
        covers: (1..=5u8).flat_map(|d| [d; 16]).collect(),
        ..blob(9, b"documents 1 to 5 up to 5")
    };
    assert_eq!(storage.push(device, &[snapshot], 0).unwrap().assigned, [6]);
    let seqs: Vec<u64> = storage
        .pull(ws, 0, u64::MAX, 100)
        .unwrap()
        .blobs
        .iter()
        .map(|b| b.seq)
        .collect();
    assert_eq!(seqs, [6]);
}

/// A schema-5 database (before check-ins) upgrades: its workspaces start with no check-in and
/// version 0, and take check-ins at once.
fn a_schema_5_database_takes_check_ins_on_upgrade(old: Old) {
    let mut db = old.at(5);
    let (ws, device) = old_workspace(&mut db, rand::random(), &[blob(1, b"before")]);
    check_upgraded_to_check_ins(db.open().unwrap().as_ref(), &ws, &device);
    assert_eq!(db.recorded_version(), db.latest_version());
}

fn check_upgraded_to_check_ins(storage: &dyn Storage, ws: &str, device: &Device) {
    let page = storage.pull(ws, 0, u64::MAX, 10).unwrap();
    assert_eq!((page.blobs.len(), page.check_ins), (1, 0));
    assert!(storage.check_ins(ws, T, 60).unwrap().check_ins.is_empty());
    storage
        .put_check_in(device, &check_in(1, OPEN, 60, 1), T)
        .unwrap();
    assert_eq!(storage.mark_overdue_check_ins(T + 60, 0).unwrap(), 1);
    assert_eq!(storage.claim_check_in_alerts(T + 60).unwrap().len(), 1);
    assert_eq!(pulled_check_ins_version(storage, ws), 2);
}

/// A schema-6 database (before tips) upgrades: what it held stays, its workspaces have no tip
/// page and no tip waiting, and take them at once.
fn a_schema_6_database_takes_tips_on_upgrade(old: Old) {
    let mut db = old.at(6);
    let key = ed25519_dalek::SigningKey::from_bytes(&rand::random());
    let (ws, device) = old_workspace(
        &mut db,
        key.verifying_key().to_bytes(),
        &[blob(1, b"before")],
    );
    // The check-in `check_in(1, OPEN, 60, 1)` its device started at `T`, as schema 6 stored it.
    let started = check_in(1, OPEN, 60, 1);
    let sql = format!(
        "INSERT INTO check_ins (workspace, id, device, state, deadline, version, epoch, sealed,
                               updated_at)
             SELECT workspace, {id}, id, 'open', {deadline}, 1, 0, {sealed}, {T}
             FROM devices WHERE public_id = '{device}';
         UPDATE workspaces SET check_ins_version = 1 WHERE public_id = '{ws}';",
        id = db.bytes(&started.id),
        deadline = T + 60,
        sealed = db.bytes(&started.sealed),
        device = device.id,
    );
    db.execute(&sql);
    check_upgraded_to_tips(db.open().unwrap().as_ref(), &ws, &device, &key);
    assert_eq!(db.recorded_version(), db.latest_version());
}

fn check_upgraded_to_tips(
    storage: &dyn Storage,
    ws: &str,
    device: &Device,
    key: &ed25519_dalek::SigningKey,
) {
    use ed25519_dalek::Signer as _;
    let page = storage.pull(ws, 0, u64::MAX, 10).unwrap();
    assert_eq!((page.blobs.len(), page.check_ins, page.tips), (1, 1, 0));
    assert_eq!(storage.check_ins(ws, T, 60).unwrap().check_ins.len(), 1);
    assert_eq!(storage.tip_page(ws).unwrap(), None);
    let statement = waymark_protocol::encode(&waymark_protocol::TipPageStatement {
        workspace_id: ws.to_owned(),
        page: "upgradedpageabcdefghijklmn".into(),
        epoch: 0,
        public_key: [5; 32],
        languages: vec![waymark_protocol::TipPageLanguage {
            code: "en".into(),
            labels: Default::default(),
        }],
        signed_at: 0,
    });
    let request = waymark_protocol::TipPageRequest {
        signature: key.sign(&statement).to_bytes().to_vec(),
        statement,
        device_id: device.id.clone(),
    };
    storage.put_tip_page(device, &request, T).unwrap();
    assert_eq!(storage.tip_page(ws).unwrap(), Some(request));
    let tip = waymark_server::storage::NewTip {
        epoch: 0,
        ephemeral: [1; 32],
        nonce: [2; 24],
        sealed: vec![3; 40],
    };
    assert_eq!(
        storage
            .submit_tip("upgradedpageabcdefghijklmn", &tip, 10, T)
            .unwrap(),
        waymark_server::storage::TipReceipt::Stored
    );
    assert_eq!(storage.pull(ws, 0, u64::MAX, 10).unwrap().tips, 1);
    assert_eq!(storage.tips(ws, 10).unwrap()[0].id, 1);
}

/// Each upgrade, from a database made by the release before it.
mod upgrades {
    use super::*;

    common::backend_tests!(old:
        a_schema_3_database_gets_its_chain_hashes_on_upgrade,
        a_schema_4_database_keeps_its_chain_and_takes_snapshots_on_upgrade,
        a_schema_5_database_takes_check_ins_on_upgrade,
        a_schema_6_database_takes_tips_on_upgrade,
    );
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

    /// Everything in the schema a newer server could have changed: its tables and columns,
    /// the versions recorded, and the rows of the workspaces.
    fn contents(client: &mut postgres::Client, schema: &str) -> Vec<String> {
        let queries = [
            format!(
                "SELECT table_name || '.' || column_name || ' ' || data_type
                 FROM information_schema.columns WHERE table_schema = '{schema}'
                 ORDER BY table_name, column_name"
            ),
            format!(
                "SELECT version || ' ' || applied_at FROM {schema}.waymark_schema ORDER BY version"
            ),
            format!("SELECT w::text FROM {schema}.workspaces w ORDER BY id"),
        ];
        queries
            .iter()
            .flat_map(|query| client.query(query.as_str(), &[]).unwrap())
            .map(|row| row.get(0))
            .collect()
    }

    #[test]
    fn a_database_from_a_newer_server_is_refused_untouched() {
        let (url, guard) = schema();
        let storage = PostgresStorage::open_in_schema(&url, &guard.schema).unwrap();
        storage.create_workspace(Some("w"), 1).unwrap();
        drop(storage);
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        // A newer server's schema: a version this one does not know, and a table of its own.
        client
            .batch_execute(&format!(
                "INSERT INTO {0}.waymark_schema (version, applied_at) VALUES (999, 0);
                 CREATE TABLE {0}.from_the_future (id BIGINT PRIMARY KEY);",
                guard.schema
            ))
            .unwrap();
        let before = contents(&mut client, &guard.schema);
        let err = PostgresStorage::open_in_schema(&url, &guard.schema).unwrap_err();
        assert!(
            matches!(err, StorageError::NewerSchema { found: 999, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("newer"));
        assert_eq!(contents(&mut client, &guard.schema), before);
    }

    /// The two backends' migration scripts make the same tables with the same columns: a
    /// column added to one backend's script and not the other's would go unnoticed by every
    /// test that does not touch it.
    #[test]
    fn both_backends_migrate_to_the_same_tables_and_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("waymark.sqlite3");
        drop(waymark_server::SqliteStorage::open(&path).unwrap());
        let sqlite: Vec<String> = rusqlite::Connection::open(&path)
            .unwrap()
            .prepare(
                "SELECT t.name || '.' || c.name FROM sqlite_master t, pragma_table_info(t.name) c
                 WHERE t.type = 'table' AND t.name NOT LIKE 'sqlite%' ORDER BY 1",
            )
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let (url, guard) = schema();
        drop(PostgresStorage::open_in_schema(&url, &guard.schema).unwrap());
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        // `waymark_schema` is PostgreSQL's version marker, as `user_version` is SQLite's.
        let postgres: Vec<String> = client
            .query(
                "SELECT table_name || '.' || column_name FROM information_schema.columns
                 WHERE table_schema = $1 AND table_name <> 'waymark_schema'
                 ORDER BY table_name || '.' || column_name COLLATE \"C\"",
                &[&guard.schema],
            )
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert_eq!(sqlite, postgres);
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

    /// Watchers of several server processes claim at the same moments: each alert goes to one
    /// of them.
    #[test]
    fn watchers_of_several_processes_claim_each_alert_once() {
        let (url, guard) = schema();
        let stores: Vec<PostgresStorage> = (0..4)
            .map(|_| PostgresStorage::open_in_schema(&url, &guard.schema).unwrap())
            .collect();
        let ws = stores[0].create_workspace(None, 0).unwrap().id;
        let devices: Vec<_> = (0..4).map(|_| device_in(&stores[0], &ws)).collect();
        for id in 0..40u8 {
            let state = if id % 2 == 0 { "open" } else { "alarm" };
            let device = &devices[usize::from(id / 10)];
            stores[0]
                .put_check_in(device, &super::check_in(id, state, 60, 1), super::T)
                .unwrap();
        }
        let now = super::T + 60;
        let claimed: Vec<u8> = std::thread::scope(|scope| {
            let watchers: Vec<_> = stores
                .iter()
                .map(|store| {
                    scope.spawn(move || {
                        let mut mine = Vec::new();
                        for _ in 0..5 {
                            store.mark_overdue_check_ins(now, 0).unwrap();
                            mine.extend(store.claim_check_in_alerts(now).unwrap());
                        }
                        mine
                    })
                })
                .collect();
            watchers
                .into_iter()
                .flat_map(|w| w.join().unwrap())
                .map(|alert| alert.check_in[0])
                .collect()
        });
        let mut sorted = claimed.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..40).collect::<Vec<u8>>(), "claimed {claimed:?}");
        assert_eq!(stores[1].check_ins(&ws, now, 0).unwrap().version, 41);
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
