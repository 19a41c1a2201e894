//! Many devices pushing and pulling one workspace at once: every puller sees every sequence
//! number exactly once, in order, with no gaps, each carrying the blob its pusher was told.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Backend, TestServer, blob};
use waymark_protocol::ContentId;

const PUSHERS: usize = 16;
const BATCHES: usize = 50;
const BLOBS_PER_BATCH: usize = 3;
const PULLERS: usize = 4;

async fn concurrent_pushers_and_pullers_never_see_a_gap(backend: Backend) {
    let server = Arc::new(TestServer::new(backend));
    let ws = server.workspace();
    let mut tokens = Vec::new();
    for _ in 0..PUSHERS + PULLERS {
        tokens.push(server.device(&ws).await.device_token);
    }
    let total = (PUSHERS * BATCHES * BLOBS_PER_BATCH) as u64;
    let pushing_done = Arc::new(AtomicBool::new(false));

    let mut pullers = Vec::new();
    for token in tokens.split_off(PUSHERS) {
        let server = Arc::clone(&server);
        let done = Arc::clone(&pushing_done);
        pullers.push(tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut seen: Vec<(u64, ContentId)> = Vec::new();
            let mut cursor = 0;
            loop {
                let finished = done.load(Ordering::SeqCst);
                // Small budgets so pages end mid-batch.
                let page = server.pull(&token, cursor, Some(200)).await;
                for b in &page.blobs {
                    assert_eq!(b.seq, cursor + 1, "gap or repeat after {cursor}");
                    cursor = b.seq;
                    seen.push((b.seq, b.content_id));
                }
                assert!(
                    page.head >= cursor,
                    "head {} behind served {cursor}",
                    page.head
                );
                if finished && !page.more && cursor == total {
                    return seen;
                }
                assert!(
                    Instant::now() < deadline,
                    "puller stuck at {cursor} of {total}"
                );
                if page.blobs.is_empty() {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }

    let mut pushers = Vec::new();
    for (p, token) in tokens.into_iter().enumerate() {
        let server = Arc::clone(&server);
        pushers.push(tokio::spawn(async move {
            let mut told = Vec::new();
            for batch in 0..BATCHES {
                let blobs: Vec<_> = (0..BLOBS_PER_BATCH)
                    .map(|i| {
                        blob(
                            p as u8,
                            format!("pusher {p} batch {batch} blob {i}").as_bytes(),
                        )
                    })
                    .collect();
                let assigned = server.push(&token, blobs.clone()).await;
                // A retry now and then must answer the same seqs.
                if batch % 10 == 0 {
                    assert_eq!(server.push(&token, blobs.clone()).await, assigned);
                }
                told.extend(
                    assigned
                        .into_iter()
                        .zip(blobs.into_iter().map(|b| b.content_id)),
                );
            }
            told
        }));
    }

    let mut expected: HashMap<u64, ContentId> = HashMap::new();
    for pusher in pushers {
        for (seq, content) in pusher.await.unwrap() {
            assert!(
                expected.insert(seq, content).is_none(),
                "seq {seq} assigned twice"
            );
        }
    }
    pushing_done.store(true, Ordering::SeqCst);
    assert_eq!(expected.len() as u64, total);
    assert!((1..=total).all(|seq| expected.contains_key(&seq)));

    for puller in pullers {
        let seen = puller.await.unwrap();
        assert_eq!(seen.len() as u64, total);
        for (seq, content) in seen {
            assert_eq!(expected[&seq], content, "seq {seq} carries another blob");
        }
    }
}

common::backend_tests!(async, worker_threads = 4:
    concurrent_pushers_and_pullers_never_see_a_gap,
);
