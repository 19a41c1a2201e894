//! Group commit on SQLite: pushes that arrive together share one transaction and one fsync, yet
//! each is answered only once durable, a bad push fails alone, sequence numbers stay gap-free,
//! and a server killed (SIGKILL) in the middle of it keeps every push it acknowledged, once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use common::{admin, blob, new_device, serve};
use waymark_protocol::{
    ContentId, EnrollRequest, EnrollResponse, PullRequest, PullResponse, PushRequest, PushResponse,
    decode, encode,
};
use waymark_server::storage::{Device, StorageError};
use waymark_server::{SqliteStorage, Storage, tokens};

const PUSHERS: usize = 16;
const PUSHES: usize = 40;

/// Enrolls a device straight through the storage API.
fn enroll(storage: &SqliteStorage, workspace: &str) -> Device {
    let token = tokens::new_token();
    storage
        .issue_enrollment_token(
            workspace,
            &tokens::hash_token(&token),
            i64::MAX,
            None,
            "member",
            0,
        )
        .unwrap();
    let device = new_device(&tokens::new_token());
    let enrolled = storage
        .enroll(&tokens::hash_token(&token), &device, 0)
        .unwrap();
    Device {
        id: device.id,
        workspace_id: enrolled.workspace_id,
        role: enrolled.role,
    }
}

#[test]
fn concurrent_pushes_share_commits_and_a_bad_push_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Arc::new(SqliteStorage::open_in_dir(dir.path()).unwrap());
    let workspace = storage.create_workspace(None, 0).unwrap().id;
    // A stored blob of document 1; pushing its bytes again as document 2 is a conflict.
    let first = enroll(&storage, &workspace);
    let taken = blob(1, b"already stored for document 1");
    storage
        .push(&first, std::slice::from_ref(&taken), 0)
        .unwrap();
    let before = storage.group_commit_stats();

    let threads: Vec<_> = (0..PUSHERS)
        .map(|p| {
            let storage = Arc::clone(&storage);
            let device = enroll(&storage, &workspace);
            let taken = taken.clone();
            thread::spawn(move || {
                let mut acked: Vec<(ContentId, u64)> = Vec::new();
                let mut refused: Vec<ContentId> = Vec::new();
                for n in 0..PUSHES {
                    let mut batch: Vec<_> = (0..3)
                        .map(|i| blob(p as u8, format!("pusher {p} push {n} blob {i}").as_bytes()))
                        .collect();
                    // Every fifth push carries a conflicting blob: it must fail whole, alone.
                    let bad = n % 5 == 4;
                    if bad {
                        batch.push(waymark_protocol::PushBlob {
                            doc_id: [2; 16],
                            ..taken.clone()
                        });
                    }
                    match storage.push(&device, &batch, 0) {
                        Ok(outcome) => {
                            assert!(!bad, "pusher {p} push {n}: a conflicting push was stored");
                            assert_eq!(outcome.assigned.len(), batch.len());
                            acked.extend(batch.iter().map(|b| b.content_id).zip(outcome.assigned));
                        }
                        Err(StorageError::Conflict(_)) if bad => {
                            refused.extend(batch.iter().take(3).map(|b| b.content_id));
                        }
                        Err(err) => panic!("pusher {p} push {n} failed: {err}"),
                    }
                }
                (acked, refused)
            })
        })
        .collect();
    let mut acked: HashMap<ContentId, u64> = HashMap::new();
    let mut refused = Vec::new();
    for t in threads {
        let (a, r) = t.join().unwrap();
        for (id, seq) in a {
            assert!(
                acked.insert(id, seq).is_none(),
                "a content id was acked twice"
            );
        }
        refused.extend(r);
    }
    assert_eq!(acked.len(), PUSHERS * (PUSHES - PUSHES / 5) * 3);

    // The log holds 1..=head with no gap: the first blob, then every acknowledged one under the
    // number it was acknowledged with, and nothing of the refused pushes.
    let mut stored: HashMap<ContentId, u64> = HashMap::new();
    let mut cursor = 0;
    loop {
        let page = storage.pull(&workspace, cursor, u64::MAX, 1000).unwrap();
        for b in &page.blobs {
            assert_eq!(b.seq, cursor + 1, "gap after {cursor}");
            cursor = b.seq;
            assert!(stored.insert(b.content_id, b.seq).is_none());
        }
        if !page.more {
            assert_eq!(page.head, cursor);
            break;
        }
    }
    assert_eq!(stored.len(), acked.len() + 1);
    assert_eq!(stored.get(&taken.content_id), Some(&1));
    for (id, seq) in &acked {
        assert_eq!(
            stored.get(id),
            Some(seq),
            "an acknowledged blob moved or is missing"
        );
    }
    for id in &refused {
        assert!(
            !stored.contains_key(id),
            "a blob of a refused push was stored"
        );
    }

    // Pushes that arrived together shared commits: fewer commits than successful pushes.
    let after = storage.group_commit_stats();
    let writes = after.writes - before.writes;
    let commits = after.commits - before.commits;
    assert_eq!(writes, (PUSHERS * (PUSHES - PUSHES / 5)) as u64);
    assert!(
        commits < writes,
        "{writes} pushes took {commits} commits: none were grouped"
    );
}

// --- the real server process, killed in the middle of group commits ---

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

fn pull_all(base: &str, token: &str) -> (Vec<(u64, ContentId)>, u64) {
    let agent = agent();
    let mut cursor = 0;
    let mut seen = Vec::new();
    loop {
        let path = PullRequest {
            after: cursor,
            max_bytes: None,
        }
        .to_path_and_query();
        let mut resp = agent
            .get(format!("{base}{path}"))
            .header("authorization", format!("Bearer {token}"))
            .call()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let page: PullResponse = decode(&resp.body_mut().read_to_vec().unwrap()).unwrap();
        for b in &page.blobs {
            assert_eq!(b.seq, cursor + 1, "gap after {cursor}");
            cursor = b.seq;
            seen.push((b.seq, b.content_id));
        }
        if !page.more {
            return (seen, page.head);
        }
    }
}

#[test]
fn a_server_killed_during_group_commits_keeps_every_acknowledged_push_once() {
    let dir = tempfile::tempdir().unwrap();
    let backend = [std::ffi::OsStr::new("--data-dir"), dir.path().as_os_str()];
    let workspace = admin(&backend, &["workspace", "create"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let fast = ["--rate-limit", "0"];
    let server = serve(&backend, &fast, Stdio::null());
    let tokens: Vec<String> = (0..PUSHERS)
        .map(|p| {
            let token = admin(&backend, &["token", "issue", "--workspace", &workspace])["token"]
                .as_str()
                .unwrap()
                .to_owned();
            let body = encode(&EnrollRequest {
                token,
                device_name: format!("phone {p}"),
                sign_key: rand::random(),
                box_key: rand::random(),
                join_proof: None,
                actor: None,
            });
            let mut resp = agent()
                .post(format!("{}/v1/enroll", server.base))
                .header("content-type", "application/cbor")
                .send(&body[..])
                .unwrap();
            assert_eq!(resp.status().as_u16(), 200);
            decode::<EnrollResponse>(&resp.body_mut().read_to_vec().unwrap())
                .unwrap()
                .device_token
        })
        .collect();

    // Every pusher pushes as fast as it can until its connection breaks; the server is killed
    // once enough pushes went through for groups to form.
    let stop = Arc::new(AtomicBool::new(false));
    let pushers: Vec<_> = tokens
        .iter()
        .enumerate()
        .map(|(p, token)| {
            let (base, token, stop) = (server.base.clone(), token.clone(), Arc::clone(&stop));
            thread::spawn(move || {
                let agent = agent();
                let mut acked: Vec<(ContentId, u64)> = Vec::new();
                for n in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let batch: Vec<_> = (0..4)
                        .map(|i| blob(p as u8, format!("pusher {p} push {n} blob {i}").as_bytes()))
                        .collect();
                    let ids: Vec<ContentId> = batch.iter().map(|b| b.content_id).collect();
                    let sent = agent
                        .post(format!("{base}/v1/push"))
                        .header("content-type", "application/cbor")
                        .header("authorization", format!("Bearer {token}"))
                        .send(&encode(&PushRequest { blobs: batch })[..]);
                    // A broken connection or a failed answer: this push was not acknowledged.
                    let Ok(mut resp) = sent else { break };
                    if resp.status().as_u16() != 200 {
                        break;
                    }
                    let Ok(body) = resp.body_mut().read_to_vec() else {
                        break;
                    };
                    let answer: PushResponse = decode(&body).unwrap();
                    acked.extend(ids.into_iter().zip(answer.assigned));
                }
                acked
            })
        })
        .collect();
    // Long enough for a few hundred pushes even on a busy machine.
    thread::sleep(Duration::from_millis(1500));
    let mut server = server;
    // SIGKILL: no shutdown path runs, whatever commit is in flight is cut off.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    stop.store(true, Ordering::SeqCst);
    let mut acked: HashMap<ContentId, u64> = HashMap::new();
    for p in pushers {
        for (id, seq) in p.join().unwrap() {
            assert!(
                acked.insert(id, seq).is_none(),
                "a content id was acked twice"
            );
        }
    }
    assert!(
        acked.len() >= 100,
        "only {} blobs acknowledged before the kill",
        acked.len()
    );

    let restarted = serve(&backend, &fast, Stdio::null());
    let (log, head) = pull_all(&restarted.base, &tokens[0]);
    assert_eq!(log.len() as u64, head, "the log is not 1..=head");
    let mut stored: HashMap<ContentId, u64> = HashMap::new();
    for (seq, id) in log {
        assert!(stored.insert(id, seq).is_none(), "a blob is stored twice");
    }
    for (id, seq) in &acked {
        assert_eq!(
            stored.get(id),
            Some(seq),
            "an acknowledged blob is missing or moved after the kill"
        );
    }
}
