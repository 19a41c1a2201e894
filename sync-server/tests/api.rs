//! The HTTP API as a client sees it, driven through the router without a port: enrollment and
//! auth, workspace isolation, idempotent all-or-nothing pushes, pulls with byte budgets, and a
//! precise status and error code for every kind of bad input.
//!
//! Every test runs against every storage backend (see the `backend_tests!` list at the bottom).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::{Backend, TestServer, blob};
use waymark_protocol::{
    CheckInRequest, CheckInResponse, CheckInsResponse, EnrollRequest, EnrollResponse,
    InviteRequest, InviteResponse, PullResponse, PushBlob, PushRequest, codes, content_id_of,
    encode, roles,
};
use waymark_server::storage::{
    CheckInAlert, CompactReport, Device, DeviceInfo, Enrolled, NewDevice, PushOutcome,
    StorageResult, TokenHash, Workspace, WorkspaceUsage,
};
use waymark_server::{Limits, tokens};

async fn enrolled_device_can_push_and_pull_its_blobs(backend: Backend) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let device = server.device(&ws).await;
    assert_eq!(device.workspace_id, ws);
    assert_eq!(device.device_id.len(), 32);
    let assigned = server
        .push(&device.device_token, vec![blob(1, b"one"), blob(2, b"two")])
        .await;
    assert_eq!(assigned, vec![1, 2]);
    let page = server.pull(&device.device_token, 0, None).await;
    assert_eq!(page.head, 2);
    assert!(!page.more);
    let seqs: Vec<u64> = page.blobs.iter().map(|b| b.seq).collect();
    assert_eq!(seqs, vec![1, 2]);
    assert_eq!(page.blobs[0].ciphertext, b"one");
    assert_eq!(page.blobs[0].doc_id, [1; 16]);
    assert_eq!(page.blobs[0].content_id, content_id_of(b"one"));
    assert_eq!(page.blobs[0].device_id, device.device_id);
}

async fn an_enrollment_token_works_only_once(backend: Backend) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let token = server.enrollment_token(&ws);
    let enroll = || {
        server.send(
            Method::POST,
            "/v1/enroll",
            None,
            Some(encode(&EnrollRequest {
                token: token.clone(),
                device_name: "phone".into(),
                sign_key: rand::random(),
                box_key: rand::random(),
                join_proof: None,
                actor: None,
            })),
        )
    };
    assert_eq!(enroll().await.status, StatusCode::OK);
    let message = enroll()
        .await
        .expect_error(StatusCode::UNAUTHORIZED, codes::TOKEN_USED);
    assert!(message.contains("already used"), "{message}");
}

async fn an_expired_enrollment_token_is_refused_and_says_so(backend: Backend) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let token = tokens::new_token();
    let now = tokens::now();
    server
        .storage()
        .issue_enrollment_token(
            &ws,
            &tokens::hash_token(&token),
            now - 1,
            None,
            roles::MEMBER,
            now - 100,
        )
        .unwrap();
    let answer = server
        .send(
            Method::POST,
            "/v1/enroll",
            None,
            Some(encode(&EnrollRequest {
                token,
                device_name: "phone".into(),
                sign_key: rand::random(),
                box_key: rand::random(),
                join_proof: None,
                actor: None,
            })),
        )
        .await;
    let message = answer.expect_error(StatusCode::UNAUTHORIZED, codes::TOKEN_EXPIRED);
    assert!(message.contains("expired"), "{message}");
    assert_eq!(server.storage().list_devices(None).unwrap().len(), 0);
}

async fn an_unknown_enrollment_token_is_unauthorized(backend: Backend) {
    let server = TestServer::new(backend);
    let answer = server
        .send(
            Method::POST,
            "/v1/enroll",
            None,
            Some(encode(&EnrollRequest {
                token: tokens::new_token(),
                device_name: "phone".into(),
                sign_key: rand::random(),
                box_key: rand::random(),
                join_proof: None,
                actor: None,
            })),
        )
        .await;
    answer.expect_error(StatusCode::UNAUTHORIZED, codes::UNAUTHORIZED);
}

async fn device_names_must_be_reasonable(backend: Backend) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    for name in [
        String::new(),
        "   ".into(),
        "x".repeat(129),
        "a\u{7}b".into(),
    ] {
        let token = server.enrollment_token(&ws);
        let answer = server
            .send(
                Method::POST,
                "/v1/enroll",
                None,
                Some(encode(&EnrollRequest {
                    token,
                    device_name: name.clone(),
                    sign_key: rand::random(),
                    box_key: rand::random(),
                    join_proof: None,
                    actor: None,
                })),
            )
            .await;
        let message = answer.expect_error(StatusCode::BAD_REQUEST, codes::BAD_REQUEST);
        assert!(message.contains("device_name"), "{name:?}: {message}");
    }
}

async fn requests_without_a_valid_device_token_get_401(backend: Backend) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let device = server.device(&ws).await;
    server.push(&device.device_token, vec![blob(1, b"x")]).await;
    let secret = tokens::new_token();
    let push_body = encode(&PushRequest {
        blobs: vec![blob(1, b"y")],
    });
    for (auth, what) in [
        (None, "missing"),
        (Some("Basic dXNlcjpwYXNz".to_owned()), "wrong scheme"),
        (Some(format!("Bearer {secret}")), "unknown token"),
        (Some("Bearer ".to_owned()), "empty token"),
    ] {
        for (method, path, body) in [
            (Method::GET, "/v1/pull?after=0", None),
            (Method::POST, "/v1/push", Some(push_body.clone())),
            (
                Method::POST,
                "/v1/invites",
                Some(encode(&InviteRequest {
                    ttl_seconds: 60,
                    role: None,
                })),
            ),
            (Method::GET, "/v1/team", None),
            (
                Method::POST,
                "/v1/keys",
                Some(encode(&waymark_protocol::KeysRequest {
                    rotate_to: None,
                    envelopes: vec![],
                })),
            ),
            (
                Method::POST,
                "/v1/devices/revoke",
                Some(encode(&waymark_protocol::RevokeRequest {
                    device_id: device.device_id.clone(),
                })),
            ),
            (Method::GET, "/v1/check-ins", None),
            (
                Method::POST,
                "/v1/check-ins",
                Some(encode(&check_in(1, "open", 60, 1))),
            ),
        ] {
            let mut req = Request::builder().method(method).uri(path);
            if let Some(auth) = &auth {
                req = req.header("authorization", auth);
            }
            let req = req
                .header("content-type", "application/cbor")
                .body(body.map_or_else(Body::empty, Body::from))
                .unwrap();
            let answer = server.request(req).await;
            let message = answer.expect_error(StatusCode::UNAUTHORIZED, codes::UNAUTHORIZED);
            assert!(!message.contains(&secret), "{what}: the token is echoed");
            assert!(answer.headers.contains_key("www-authenticate"));
        }
    }
    // Nothing was stored by the refused requests, and the device was not revoked.
    let page = server.pull(&device.device_token, 0, None).await;
    assert_eq!((page.head, page.check_ins), (1, 0));
}

async fn a_revoked_device_is_refused_at_once(backend: Backend) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let lost = server.device(&ws).await;
    let kept = server.device(&ws).await;
    server
        .push(&lost.device_token, vec![blob(1, b"before")])
        .await;
    server
        .storage()
        .revoke_device(&lost.device_id, tokens::now())
        .unwrap();
    // Told apart from a token the server does not know, so the phone stops for good.
    server
        .pull_raw(&lost.device_token)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, codes::DEVICE_REVOKED);
    server
        .push_raw(&lost.device_token, vec![blob(1, b"after")])
        .await
        .expect_error(StatusCode::UNAUTHORIZED, codes::DEVICE_REVOKED);
    server
        .pull_raw("a-token-this-server-never-issued")
        .await
        .expect_error(StatusCode::UNAUTHORIZED, codes::UNAUTHORIZED);
    // The other device carries on and still sees what the lost one pushed before.
    let page = server.pull(&kept.device_token, 0, None).await;
    assert_eq!(page.blobs.len(), 1);
    let devices = server.storage().list_devices(Some(&ws)).unwrap();
    let lost_info = devices.iter().find(|d| d.id == lost.device_id).unwrap();
    assert!(lost_info.revoked_at.is_some());
    // Revoking twice is fine; an unknown device is "not found".
    server
        .storage()
        .revoke_device(&lost.device_id, tokens::now())
        .unwrap();
    assert!(
        server
            .storage()
            .revoke_device("nope", tokens::now())
            .is_err()
    );
}

async fn a_device_invites_another_device_into_its_workspace(backend: Backend) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let first = server.device(&ws).await;
    server
        .push(&first.device_token, vec![blob(1, b"note")])
        .await;
    let answer = server
        .send(
            Method::POST,
            "/v1/invites",
            Some(&first.device_token),
            Some(encode(&InviteRequest {
                ttl_seconds: 600,
                role: None,
            })),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    let invite: InviteResponse = answer.decode();
    let now = tokens::now();
    assert!((now + 590..=now + 610).contains(&invite.expires_at));
    let answer = server
        .send(
            Method::POST,
            "/v1/enroll",
            None,
            Some(encode(&EnrollRequest {
                token: invite.enrollment_token.clone(),
                device_name: "second phone".into(),
                sign_key: rand::random(),
                box_key: rand::random(),
                join_proof: None,
                actor: None,
            })),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    let second: EnrollResponse = answer.decode();
    assert_eq!(second.workspace_id, ws);
    assert_eq!(
        server.pull(&second.device_token, 0, None).await.blobs.len(),
        1
    );

    for ttl in [0, 31 * 24 * 3600] {
        server
            .send(
                Method::POST,
                "/v1/invites",
                Some(&first.device_token),
                Some(encode(&InviteRequest {
                    ttl_seconds: ttl,
                    role: None,
                })),
            )
            .await
            .expect_error(StatusCode::BAD_REQUEST, codes::BAD_REQUEST);
    }
}

async fn invites_made_by_a_revoked_device_stop_working(backend: Backend) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let lost = server.device(&ws).await;
    let invite: InviteResponse = server
        .send(
            Method::POST,
            "/v1/invites",
            Some(&lost.device_token),
            Some(encode(&InviteRequest {
                ttl_seconds: 3600,
                role: None,
            })),
        )
        .await
        .decode();
    server
        .storage()
        .revoke_device(&lost.device_id, tokens::now())
        .unwrap();
    server
        .send(
            Method::POST,
            "/v1/enroll",
            None,
            Some(encode(&EnrollRequest {
                token: invite.enrollment_token,
                device_name: "thief".into(),
                sign_key: rand::random(),
                box_key: rand::random(),
                join_proof: None,
                actor: None,
            })),
        )
        .await
        .expect_error(StatusCode::UNAUTHORIZED, codes::TOKEN_EXPIRED);
}

async fn a_device_never_sees_another_workspaces_blobs(backend: Backend) {
    let server = TestServer::new(backend);
    let ws_a = server.workspace();
    let ws_b = server.workspace();
    let a = server.device(&ws_a).await;
    let b = server.device(&ws_b).await;
    server
        .push(
            &a.device_token,
            vec![blob(1, b"secret of A"), blob(2, b"more of A")],
        )
        .await;
    let page = server.pull(&b.device_token, 0, None).await;
    assert!(page.blobs.is_empty());
    assert_eq!(page.head, 0, "B must not even learn A's head");
    // The same content in B is B's own blob, numbered in B's log.
    assert_eq!(
        server
            .push(&b.device_token, vec![blob(1, b"secret of A")])
            .await,
        vec![1]
    );
    let page = server.pull(&b.device_token, 0, None).await;
    assert_eq!(page.blobs.len(), 1);
    assert_eq!(page.blobs[0].device_id, b.device_id);
    assert_eq!(server.pull(&a.device_token, 0, None).await.head, 2);
    // A's invites enroll into A only.
    let invite: InviteResponse = server
        .send(
            Method::POST,
            "/v1/invites",
            Some(&b.device_token),
            Some(encode(&InviteRequest {
                ttl_seconds: 60,
                role: None,
            })),
        )
        .await
        .decode();
    let answer = server
        .send(
            Method::POST,
            "/v1/enroll",
            None,
            Some(encode(&EnrollRequest {
                token: invite.enrollment_token,
                device_name: "b2".into(),
                sign_key: rand::random(),
                box_key: rand::random(),
                join_proof: None,
                actor: None,
            })),
        )
        .await;
    assert_eq!(answer.decode::<EnrollResponse>().workspace_id, ws_b);
}

async fn a_retried_push_stores_nothing_twice_and_answers_the_same_seqs(backend: Backend) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let device = server.device(&ws).await;
    let other = server.device(&ws).await;
    let batch = vec![blob(1, b"a"), blob(1, b"b"), blob(2, b"c")];
    let first = server.push(&device.device_token, batch.clone()).await;
    assert_eq!(first, vec![1, 2, 3]);
    assert_eq!(
        server.push(&device.device_token, batch.clone()).await,
        first
    );
    // Another device pushing the same content (e.g. relayed) also gets the stored seqs.
    assert_eq!(server.push(&other.device_token, batch.clone()).await, first);
    // A batch mixing old and new blobs only appends the new ones; a repeat within the batch
    // gets one seq.
    let mixed = vec![blob(1, b"b"), blob(3, b"d"), blob(3, b"d")];
    assert_eq!(
        server.push(&device.device_token, mixed).await,
        vec![2, 4, 4]
    );
    let all = server.pull_all(&device.device_token, 0).await;
    let seqs: Vec<u64> = all.iter().map(|b| b.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4]);
    let usage = server.storage().usage().unwrap();
    let usage = usage.iter().find(|u| u.id == ws).unwrap();
    assert_eq!((usage.blobs, usage.bytes, usage.head_seq), (4, 4, 4));
}

async fn a_batch_with_one_bad_blob_stores_nothing(backend: Backend) {
    let server = TestServer::with_limits(
        backend,
        Limits {
            max_blob_bytes: 1000,
            ..Limits::unlimited_rate()
        },
    );
    let ws = server.workspace();
    let device = server.device(&ws).await;
    server
        .push(&device.device_token, vec![blob(9, b"stored")])
        .await;

    let mut wrong_hash = blob(1, b"three");
    wrong_hash.content_id = content_id_of(b"something else");
    let answer = server
        .push_raw(
            &device.device_token,
            vec![blob(1, b"one"), blob(1, b"two"), wrong_hash],
        )
        .await;
    let message = answer.expect_error(StatusCode::BAD_REQUEST, codes::BAD_REQUEST);
    assert!(
        message.contains("blob 2") && message.contains("SHA-256"),
        "{message}"
    );

    let answer = server
        .push_raw(
            &device.device_token,
            vec![blob(1, b"one"), blob(1, &[7; 1001])],
        )
        .await;
    let message = answer.expect_error(StatusCode::PAYLOAD_TOO_LARGE, codes::TOO_LARGE);
    assert!(message.contains("blob 1"), "{message}");

    let answer = server
        .push_raw(&device.device_token, vec![blob(1, b"one"), blob(1, b"")])
        .await;
    answer.expect_error(StatusCode::BAD_REQUEST, codes::BAD_REQUEST);

    // A known content id claimed for another document is a conflict, checked inside the
    // transaction: the valid blob before it is rolled back too.
    let answer = server
        .push_raw(
            &device.device_token,
            vec![blob(1, b"one"), blob(8, b"stored")],
        )
        .await;
    let message = answer.expect_error(StatusCode::CONFLICT, codes::CONFLICT);
    assert!(message.contains("blob 1"), "{message}");

    let page = server.pull(&device.device_token, 0, None).await;
    assert_eq!(page.head, 1);
    assert_eq!(page.blobs.len(), 1);
    assert_eq!(
        server
            .push(&device.device_token, vec![blob(1, b"one")])
            .await,
        vec![2]
    );
}

async fn an_empty_push_is_answered_without_storing(backend: Backend) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let device = server.device(&ws).await;
    assert!(server.push(&device.device_token, vec![]).await.is_empty());
    assert_eq!(server.pull(&device.device_token, 0, None).await.head, 0);
}

async fn a_pull_respects_its_byte_budget_and_says_when_more_remains(backend: Backend) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let device = server.device(&ws).await;
    let blobs: Vec<PushBlob> = (0..10u8).map(|i| blob(i, &[i; 100])).collect();
    server.push(&device.device_token, blobs).await;

    let page = server.pull(&device.device_token, 0, Some(250)).await;
    assert_eq!(
        page.blobs.iter().map(|b| b.seq).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert!(page.more);
    assert_eq!(page.head, 10);

    // A budget smaller than one blob still returns that blob, so a big blob never stalls.
    let page = server.pull(&device.device_token, 4, Some(1)).await;
    assert_eq!(
        page.blobs.iter().map(|b| b.seq).collect::<Vec<_>>(),
        vec![5]
    );
    assert!(page.more);

    // Following `more` yields every seq once, in order.
    let mut after = 0;
    let mut seen = Vec::new();
    loop {
        let page = server.pull(&device.device_token, after, Some(300)).await;
        assert!(page.blobs.len() <= 3);
        seen.extend(page.blobs.iter().map(|b| b.seq));
        after = seen.last().copied().unwrap_or(after);
        if !page.more {
            break;
        }
    }
    assert_eq!(seen, (1..=10).collect::<Vec<_>>());

    let page = server.pull(&device.device_token, 9, Some(100)).await;
    assert_eq!(page.blobs.len(), 1);
    assert!(!page.more, "the last blob exactly fits: nothing more");
}

async fn a_pull_with_nothing_new_is_one_request_with_more_false(backend: Backend) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let device = server.device(&ws).await;
    let page = server.pull(&device.device_token, 0, None).await;
    assert_eq!(
        page,
        PullResponse {
            blobs: vec![],
            more: false,
            head: 0,
            team_version: 1,
            chain_after: Some(waymark_protocol::CHAIN_START),
            chain_last: None,
            chain_head: Some(waymark_protocol::CHAIN_START),
            check_ins: 0,
            tips: 0,
        }
    );
    server.push(&device.device_token, vec![blob(1, b"x")]).await;
    let page = server.pull(&device.device_token, 1, None).await;
    assert!(page.blobs.is_empty() && !page.more);
    assert_eq!(page.head, 1);
    // A cursor beyond the head (e.g. a server restored from an old backup) is not an error; the
    // client sees head < cursor.
    let page = server.pull(&device.device_token, 50, None).await;
    assert!(page.blobs.is_empty() && !page.more);
    assert_eq!(page.head, 1);
}

async fn malformed_bodies_get_400_saying_what_was_wrong(backend: Backend) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let device = server.device(&ws).await;
    let token = device.device_token.as_str();
    let good_push = encode(&PushRequest {
        blobs: vec![blob(1, b"abc")],
    });
    let epoch_as_text = {
        let mut value: ciborium::Value =
            waymark_protocol::decode(&encode(&blob(1, b"abc"))).unwrap();
        if let ciborium::Value::Map(entries) = &mut value {
            for (k, v) in entries.iter_mut() {
                if k.as_text() == Some("epoch") {
                    *v = ciborium::Value::Text("one".into());
                }
            }
        }
        encode(&ciborium::Value::Map(vec![(
            "blobs".into(),
            ciborium::Value::Array(vec![value]),
        )]))
    };
    let cases: Vec<(&str, Option<&str>, Vec<u8>, &str)> = vec![
        (
            "/v1/push",
            Some(token),
            b"\xff\xff garbage".to_vec(),
            "CBOR",
        ),
        (
            "/v1/push",
            Some(token),
            good_push[..good_push.len() - 2].to_vec(),
            "truncated",
        ),
        (
            "/v1/push",
            Some(token),
            [good_push.clone(), vec![0]].concat(),
            "trailing",
        ),
        ("/v1/push", Some(token), Vec::new(), "CBOR"),
        ("/v1/push", Some(token), epoch_as_text, "CBOR"),
        (
            "/v1/push",
            Some(token),
            encode(&InviteRequest {
                ttl_seconds: 5,
                role: None,
            }),
            "blobs",
        ),
        (
            "/v1/enroll",
            None,
            encode(&ciborium::Value::Map(vec![("token".into(), "x".into())])),
            "device_name",
        ),
        (
            "/v1/invites",
            Some(token),
            encode(&ciborium::Value::Map(vec![(
                "ttl_seconds".into(),
                ciborium::Value::Integer((-5).into()),
            )])),
            "CBOR",
        ),
    ];
    for (path, auth, body, needle) in cases {
        let answer = server.send(Method::POST, path, auth, Some(body)).await;
        let message = answer.expect_error(StatusCode::BAD_REQUEST, codes::BAD_REQUEST);
        assert!(
            message.contains(needle),
            "{path}: {message:?} lacks {needle:?}"
        );
    }
    assert_eq!(server.pull(token, 0, None).await.head, 0);
}

async fn bad_cursors_get_400_saying_what_was_wrong(backend: Backend) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let device = server.device(&ws).await;
    for (query, needle) in [
        ("after=-1", "negative"),
        ("after=ten", "non-negative integer"),
        ("after=18446744073709551616", "too large"),
        ("after=9223372036854775808", "too large"),
        ("after=1&after=2", "more than once"),
        ("after=1&max_bytes=-1", "negative"),
        ("after=1&max_bytes=lots", "max_bytes"),
    ] {
        let answer = server
            .send(
                Method::GET,
                &format!("/v1/pull?{query}"),
                Some(&device.device_token),
                None,
            )
            .await;
        let message = answer.expect_error(StatusCode::BAD_REQUEST, codes::BAD_REQUEST);
        assert!(message.contains(needle), "{query}: {message}");
    }
    // Absent parameters take defaults; a huge budget is clamped, not refused.
    let answer = server
        .send(
            Method::GET,
            "/v1/pull?max_bytes=99999999999999999999999",
            Some(&device.device_token),
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
}

async fn bodies_that_are_not_cbor_get_415(backend: Backend) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let device = server.device(&ws).await;
    let req = Request::post("/v1/push")
        .header("authorization", format!("Bearer {}", device.device_token))
        .header("content-type", "application/json")
        .body(Body::from("{\"blobs\": []}"))
        .unwrap();
    server.request(req).await.expect_error(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        codes::UNSUPPORTED_MEDIA_TYPE,
    );
}

async fn oversized_bodies_and_batches_get_413(backend: Backend) {
    let server = TestServer::with_limits(
        backend,
        Limits {
            max_body_bytes: 4096,
            max_blob_bytes: 2048,
            max_batch_blobs: 3,
            ..Limits::unlimited_rate()
        },
    );
    let ws = server.workspace();
    let device = server.device(&ws).await;
    let token = device.device_token.as_str();
    let big = encode(&PushRequest {
        blobs: vec![
            blob(1, &[1; 2000]),
            blob(2, &[2; 2000]),
            blob(3, &[3; 2000]),
        ],
    });
    // Streamed body (no Content-Length): cut off while reading.
    let message = server
        .send(Method::POST, "/v1/push", Some(token), Some(big.clone()))
        .await
        .expect_error(StatusCode::PAYLOAD_TOO_LARGE, codes::TOO_LARGE);
    assert!(message.contains("4096"), "{message}");
    // Declared Content-Length: refused before reading.
    let req = Request::post("/v1/push")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/cbor")
        .header("content-length", big.len())
        .body(Body::from(big))
        .unwrap();
    server
        .request(req)
        .await
        .expect_error(StatusCode::PAYLOAD_TOO_LARGE, codes::TOO_LARGE);
    let message = server
        .push_raw(token, (0..4u8).map(|i| blob(i, &[i + 1])).collect())
        .await
        .expect_error(StatusCode::PAYLOAD_TOO_LARGE, codes::TOO_LARGE);
    assert!(message.contains("at most 3 blobs"), "{message}");
    assert_eq!(server.pull(token, 0, None).await.head, 0);
}

async fn unknown_routes_and_methods_get_error_bodies(backend: Backend) {
    let server = TestServer::new(backend);
    for path in [
        "/",
        "/v1",
        "/v2/pull",
        "/v1/pull/extra",
        "/v1/workspaces/abc",
    ] {
        server
            .send(Method::GET, path, None, None)
            .await
            .expect_error(StatusCode::NOT_FOUND, codes::NOT_FOUND);
    }
    server
        .send(Method::GET, "/v1/push", None, None)
        .await
        .expect_error(StatusCode::METHOD_NOT_ALLOWED, codes::METHOD_NOT_ALLOWED);
    server
        .send(Method::DELETE, "/v1/pull", None, None)
        .await
        .expect_error(StatusCode::METHOD_NOT_ALLOWED, codes::METHOD_NOT_ALLOWED);
}

async fn a_device_over_its_rate_gets_429_with_retry_after(backend: Backend) {
    let server = TestServer::with_limits(
        backend,
        Limits {
            rate_per_second: 0.5,
            rate_burst: 3,
            ..Limits::default()
        },
    );
    let ws = server.workspace();
    let noisy = server.device(&ws).await;
    let quiet = server.device(&ws).await;
    for _ in 0..3 {
        server.pull(&noisy.device_token, 0, None).await;
    }
    let answer = server.pull_raw(&noisy.device_token).await;
    let message = answer.expect_error(StatusCode::TOO_MANY_REQUESTS, codes::RATE_LIMITED);
    assert!(message.contains("retry after"), "{message}");
    let retry: u64 = answer.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "retry-after {retry}");
    server.pull(&quiet.device_token, 0, None).await;
}

async fn health_and_metrics_report_the_traffic(backend: Backend) {
    let server = TestServer::new(backend);
    let answer = server.send(Method::GET, "/healthz", None, None).await;
    assert_eq!(
        (answer.status, answer.body.as_slice()),
        (StatusCode::OK, &b"ok\n"[..])
    );
    let ws = server.workspace();
    let device = server.device(&ws).await;
    server
        .push(&device.device_token, vec![blob(1, b"a"), blob(1, b"b")])
        .await;
    server.push(&device.device_token, vec![blob(1, b"a")]).await;
    server.pull(&device.device_token, 0, None).await;
    server.send(Method::GET, "/nope", None, None).await;
    let answer = server.send(Method::GET, "/metrics", None, None).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.headers.contains_key("x-request-id"));
    let text = String::from_utf8(answer.body).unwrap();
    for needle in [
        r#"waymark_http_requests_total{method="POST",route="/v1/push",status="200"} 2"#,
        r#"waymark_http_requests_total{method="GET",route="other",status="404"} 1"#,
        r#"waymark_http_errors_total{code="not_found"} 1"#,
        "waymark_blobs_stored_total 2",
        "waymark_blobs_repeated_total 1",
        "waymark_blobs_served_total 2",
        r#"waymark_http_request_duration_seconds_bucket{route="/v1/pull",le="+Inf"} 1"#,
        r#"waymark_http_request_bytes_total{route="/v1/push"}"#,
        r#"waymark_http_response_bytes_total{route="/v1/pull"}"#,
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }
}

async fn compaction_drops_superseded_blobs_but_keeps_pushes_idempotent(backend: Backend) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let device = server.device(&ws).await;
    let token = device.device_token.as_str();
    server
        .push(
            token,
            vec![blob(1, b"c1"), blob(1, b"c2"), blob(2, b"other doc")],
        )
        .await;
    server.push(token, vec![blob(1, b"c3")]).await;
    let snapshot = PushBlob {
        supersedes: Some(4),
        forget: false,
        covers: Vec::new(),
        ..blob(1, b"full save of doc 1")
    };
    assert_eq!(server.push(token, vec![snapshot]).await, vec![5]);
    // The covered blobs are no longer served (the full save, later in the log, holds them);
    // their ciphertext stays until compaction runs.
    let seqs: Vec<u64> = server
        .pull_all(token, 0)
        .await
        .iter()
        .map(|b| b.seq)
        .collect();
    assert_eq!(seqs, vec![3, 5]);

    let report = server.storage().compact(tokens::now() - 3600).unwrap();
    assert_eq!(
        report.blobs_dropped, 0,
        "inside the grace period nothing goes"
    );
    let report = server.storage().compact(tokens::now()).unwrap();
    assert_eq!((report.blobs_dropped, report.bytes_dropped), (3, 6));

    let seqs: Vec<u64> = server
        .pull_all(token, 0)
        .await
        .iter()
        .map(|b| b.seq)
        .collect();
    assert_eq!(
        seqs,
        vec![3, 5],
        "the other document and the full save remain"
    );
    // A late retry of a dropped blob gets its old seq back and is not stored again.
    assert_eq!(server.push(token, vec![blob(1, b"c2")]).await, vec![2]);
    assert_eq!(server.pull(token, 0, None).await.head, 5);
    let usage = server.storage().usage().unwrap();
    assert_eq!(usage[0].blobs, 2);
}

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

async fn check_ins_are_started_listed_and_closed_over_the_api(backend: Backend) {
    let server = TestServer::with_limits(
        backend,
        Limits {
            check_in_grace: std::time::Duration::from_secs(5),
            ..Limits::unlimited_rate()
        },
    );
    let ws = server.workspace();
    let ana = server.device(&ws).await;
    let ben = server.device(&ws).await;
    let before = tokens::now();
    let answer = server
        .post_check_in(&ana.device_token, check_in(1, "open", 3600, 1))
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    let started: CheckInResponse = answer.decode();
    let deadline = i64::try_from(started.deadline).unwrap();
    assert!((before + 3600..=tokens::now() + 3600).contains(&deadline));
    assert_eq!(started.version, 1);
    // A teammate's pull says the check-ins changed; the list has Ana's, sealed as she sent it.
    assert_eq!(server.pull(&ben.device_token, 0, None).await.check_ins, 1);
    let listed: CheckInsResponse = server.list_check_ins(&ben.device_token).await.decode();
    assert_eq!((listed.version, listed.grace_secs), (1, 5));
    assert_eq!(listed.check_ins.len(), 1);
    let entry = &listed.check_ins[0];
    assert_eq!(
        (
            entry.device_id.as_str(),
            entry.state.as_str(),
            entry.deadline
        ),
        (ana.device_id.as_str(), "open", started.deadline)
    );
    assert_eq!(entry.sealed, b"sealed 1 v1");

    // Only Ana's device may update it.
    let message = server
        .post_check_in(&ben.device_token, check_in(1, "closed", 0, 2))
        .await
        .expect_error(StatusCode::FORBIDDEN, codes::FORBIDDEN);
    assert!(message.contains("another device"), "{message}");
    // A retry answers the same; the close keeps the deadline; closed never reopens.
    let retried: CheckInResponse = server
        .post_check_in(&ana.device_token, check_in(1, "open", 3600, 1))
        .await
        .decode();
    assert_eq!(retried, started);
    let closed: CheckInResponse = server
        .post_check_in(&ana.device_token, check_in(1, "closed", 0, 2))
        .await
        .decode();
    assert_eq!(closed.deadline, started.deadline);
    let message = server
        .post_check_in(&ana.device_token, check_in(1, "open", 60, 3))
        .await
        .expect_error(StatusCode::CONFLICT, codes::CONFLICT);
    assert!(message.contains("never reopens"), "{message}");
    let listed: CheckInsResponse = server.list_check_ins(&ana.device_token).await.decode();
    assert_eq!(
        (listed.version, listed.check_ins[0].state.as_str()),
        (2, "closed")
    );

    // Another workspace sees none of it, and its version is its own.
    let other_ws = server.workspace();
    let carl = server.device(&other_ws).await;
    let listed: CheckInsResponse = server.list_check_ins(&carl.device_token).await.decode();
    assert_eq!((listed.version, listed.check_ins.len()), (0, 0));
    assert_eq!(server.pull(&carl.device_token, 0, None).await.check_ins, 0);
}

async fn malformed_check_ins_get_400_saying_what_was_wrong(backend: Backend) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let device = server.device(&ws).await;
    let short_id = {
        let mut value: ciborium::Value =
            waymark_protocol::decode(&encode(&check_in(1, "open", 60, 1))).unwrap();
        if let ciborium::Value::Map(entries) = &mut value {
            for (k, v) in entries.iter_mut() {
                if k.as_text() == Some("id") {
                    *v = ciborium::Value::Bytes(vec![1; 15]);
                }
            }
        }
        encode(&value)
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"\xff not cbor".to_vec(), "CBOR"),
        (short_id, "CBOR"),
        (
            encode(&ciborium::Value::Map(vec![("state".into(), "open".into())])),
            "CBOR",
        ),
        (encode(&check_in(1, "overdue", 60, 1)), "state"),
        (
            encode(&check_in(
                1,
                "open",
                waymark_protocol::limits::MAX_CHECK_IN_DUE_SECS + 1,
                1,
            )),
            "due_in_secs",
        ),
        (
            encode(&CheckInRequest {
                sealed: Vec::new(),
                ..check_in(1, "open", 60, 1)
            }),
            "sealed",
        ),
        (
            encode(&CheckInRequest {
                sealed: vec![0; waymark_protocol::limits::MAX_CHECK_IN_SEALED_BYTES + 1],
                ..check_in(1, "open", 60, 1)
            }),
            "sealed",
        ),
        (encode(&check_in(1, "open", 60, 0)), "version"),
        (
            encode(&CheckInRequest {
                epoch: 3,
                ..check_in(1, "open", 60, 1)
            }),
            "epoch",
        ),
    ];
    for (body, needle) in cases {
        let answer = server
            .send(
                Method::POST,
                "/v1/check-ins",
                Some(&device.device_token),
                Some(body),
            )
            .await;
        let message = answer.expect_error(StatusCode::BAD_REQUEST, codes::BAD_REQUEST);
        assert!(message.contains(needle), "{message:?} lacks {needle:?}");
    }
    server
        .send(Method::DELETE, "/v1/check-ins", None, None)
        .await
        .expect_error(StatusCode::METHOD_NOT_ALLOWED, codes::METHOD_NOT_ALLOWED);
    assert_eq!(
        server.pull(&device.device_token, 0, None).await.check_ins,
        0
    );
}

/// A backend that fails in the worst way: every call panics.
struct PanickingStorage;

impl waymark_server::Storage for PanickingStorage {
    fn create_workspace(&self, _: Option<&str>, _: i64) -> StorageResult<Workspace> {
        panic!("backend exploded")
    }
    fn issue_enrollment_token(
        &self,
        _: &str,
        _: &TokenHash,
        _: i64,
        _: Option<&str>,
        _: &str,
        _: i64,
    ) -> StorageResult<()> {
        panic!("backend exploded")
    }
    fn enroll(&self, _: &TokenHash, _: &NewDevice, _: i64) -> StorageResult<Enrolled> {
        panic!("backend exploded")
    }
    fn team(&self, _: &Device, _: u64) -> StorageResult<waymark_protocol::TeamResponse> {
        panic!("backend exploded")
    }
    fn append_team_log(
        &self,
        _: &Device,
        _: &waymark_protocol::AppendRequest,
        _: i64,
    ) -> StorageResult<u64> {
        panic!("backend exploded")
    }
    fn upload_keys(
        &self,
        _: &Device,
        _: &waymark_protocol::KeysRequest,
        _: i64,
    ) -> StorageResult<u32> {
        panic!("backend exploded")
    }
    fn authenticate(&self, _: &TokenHash) -> StorageResult<Option<Device>> {
        panic!("backend exploded")
    }
    fn push(&self, _: &Device, _: &[PushBlob], _: i64) -> StorageResult<PushOutcome> {
        panic!("backend exploded")
    }
    fn pull(&self, _: &str, _: u64, _: u64, _: usize) -> StorageResult<PullResponse> {
        panic!("backend exploded")
    }
    fn chain(&self, _: &str, _: &[u64]) -> StorageResult<waymark_protocol::ChainResponse> {
        panic!("backend exploded")
    }
    fn touch_device(&self, _: &str, _: i64) -> StorageResult<()> {
        panic!("backend exploded")
    }
    fn list_devices(&self, _: Option<&str>) -> StorageResult<Vec<DeviceInfo>> {
        panic!("backend exploded")
    }
    fn revoke_device_by(&self, _: Option<&Device>, _: &str, _: i64) -> StorageResult<u64> {
        panic!("backend exploded")
    }
    fn usage(&self) -> StorageResult<Vec<WorkspaceUsage>> {
        panic!("backend exploded")
    }
    fn compact(&self, _: i64) -> StorageResult<CompactReport> {
        panic!("backend exploded")
    }
    fn health(&self) -> StorageResult<()> {
        panic!("backend exploded")
    }
    fn put_check_in(
        &self,
        _: &Device,
        _: &CheckInRequest,
        _: i64,
    ) -> StorageResult<CheckInResponse> {
        panic!("backend exploded")
    }
    fn check_ins(&self, _: &str, _: i64, _: u64) -> StorageResult<CheckInsResponse> {
        panic!("backend exploded")
    }
    fn mark_overdue_check_ins(&self, _: i64, _: u64) -> StorageResult<u64> {
        panic!("backend exploded")
    }
    fn purge_check_ins(&self, _: i64) -> StorageResult<u64> {
        panic!("backend exploded")
    }
    fn claim_check_in_alerts(&self, _: i64) -> StorageResult<Vec<CheckInAlert>> {
        panic!("backend exploded")
    }
    fn check_in_alert_done(&self, _: &CheckInAlert, _: i64) -> StorageResult<bool> {
        panic!("backend exploded")
    }
    fn put_tip_page(
        &self,
        _: &Device,
        _: &waymark_protocol::TipPageRequest,
        _: i64,
    ) -> StorageResult<()> {
        panic!("backend exploded")
    }
    fn tip_page(&self, _: &str) -> StorageResult<Option<waymark_protocol::TipPageRequest>> {
        panic!("backend exploded")
    }
    fn tip_page_statement(&self, _: &str) -> StorageResult<Option<Vec<u8>>> {
        panic!("backend exploded")
    }
    fn submit_tip(
        &self,
        _: &str,
        _: &waymark_server::storage::NewTip,
        _: u64,
        _: i64,
    ) -> StorageResult<waymark_server::storage::TipReceipt> {
        panic!("backend exploded")
    }
    fn tips(&self, _: &str, _: usize) -> StorageResult<Vec<waymark_protocol::TipEntry>> {
        panic!("backend exploded")
    }
    fn tips_done(&self, _: &Device, _: &[u64]) -> StorageResult<u64> {
        panic!("backend exploded")
    }
    fn put_tip_reply(
        &self,
        _: &Device,
        _: &waymark_protocol::TipReplyRequest,
    ) -> StorageResult<()> {
        panic!("backend exploded")
    }
    fn tip_replies(
        &self,
        _: &str,
        _: &[u8],
    ) -> StorageResult<Option<Vec<waymark_server::storage::TipReply>>> {
        panic!("backend exploded")
    }
}

#[tokio::test]
async fn a_failing_backend_gets_500_and_the_server_keeps_serving() {
    let state = waymark_server::AppState::new(
        std::sync::Arc::new(PanickingStorage),
        Limits::unlimited_rate(),
    )
    .unwrap();
    let router = waymark_server::app(state);
    for _ in 0..2 {
        let req = Request::get("/v1/pull?after=0")
            .header("authorization", "Bearer whatever")
            .body(Body::empty())
            .unwrap();
        let response = tower::ServiceExt::oneshot(router.clone(), req)
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let error: waymark_protocol::ErrorBody = waymark_protocol::decode(&body).unwrap();
        assert_eq!(error.code, codes::INTERNAL);
        assert!(!error.message.contains("panic"), "{}", error.message);
    }
    let req = Request::get("/healthz").body(Body::empty()).unwrap();
    let response = tower::ServiceExt::oneshot(router, req).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}

impl TestServer {
    async fn post_check_in(&self, token: &str, request: CheckInRequest) -> common::Answer {
        self.send(
            Method::POST,
            "/v1/check-ins",
            Some(token),
            Some(encode(&request)),
        )
        .await
    }

    async fn list_check_ins(&self, token: &str) -> common::Answer {
        self.send(Method::GET, "/v1/check-ins", Some(token), None)
            .await
    }

    async fn pull_raw(&self, token: &str) -> common::Answer {
        self.send(Method::GET, "/v1/pull?after=0", Some(token), None)
            .await
    }
}

common::backend_tests!(async:
    enrolled_device_can_push_and_pull_its_blobs,
    an_enrollment_token_works_only_once,
    an_expired_enrollment_token_is_refused_and_says_so,
    an_unknown_enrollment_token_is_unauthorized,
    device_names_must_be_reasonable,
    requests_without_a_valid_device_token_get_401,
    a_revoked_device_is_refused_at_once,
    a_device_invites_another_device_into_its_workspace,
    invites_made_by_a_revoked_device_stop_working,
    a_device_never_sees_another_workspaces_blobs,
    a_retried_push_stores_nothing_twice_and_answers_the_same_seqs,
    a_batch_with_one_bad_blob_stores_nothing,
    an_empty_push_is_answered_without_storing,
    a_pull_respects_its_byte_budget_and_says_when_more_remains,
    a_pull_with_nothing_new_is_one_request_with_more_false,
    malformed_bodies_get_400_saying_what_was_wrong,
    bad_cursors_get_400_saying_what_was_wrong,
    bodies_that_are_not_cbor_get_415,
    oversized_bodies_and_batches_get_413,
    unknown_routes_and_methods_get_error_bodies,
    a_device_over_its_rate_gets_429_with_retry_after,
    health_and_metrics_report_the_traffic,
    compaction_drops_superseded_blobs_but_keeps_pushes_idempotent,
    check_ins_are_started_listed_and_closed_over_the_api,
    malformed_check_ins_get_400_saying_what_was_wrong,
);

/// A request body that sends nothing and never ends, like a stalled phone upload.
struct StalledBody;

impl axum::body::HttpBody for StalledBody {
    type Data = axum::body::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::task::Poll::Pending
    }
}

#[tokio::test]
async fn a_stalled_upload_gets_408_instead_of_holding_the_server() {
    let server = TestServer::with_limits(
        common::sqlite(),
        Limits {
            request_timeout: std::time::Duration::from_millis(200),
            ..Limits::unlimited_rate()
        },
    );
    let ws = server.workspace();
    let device = server.device(&ws).await;
    let req = Request::post("/v1/push")
        .header("authorization", format!("Bearer {}", device.device_token))
        .header("content-type", "application/cbor")
        .body(Body::new(StalledBody))
        .unwrap();
    server
        .request(req)
        .await
        .expect_error(StatusCode::REQUEST_TIMEOUT, codes::TIMEOUT);
    // Others are served meanwhile and afterwards.
    server.pull(&device.device_token, 0, None).await;
}
