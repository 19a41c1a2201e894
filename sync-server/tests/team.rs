//! Team security as a client sees it (issue 5), driven through the router: device keys and roles
//! at enrollment, the team directory, wrapped key uploads and rotations (also racing), revocation
//! by devices, workspace isolation, replayed requests and garbage bodies on the new routes.
//!
//! Every test runs against every storage backend (see the `backend_tests!` lists at the bottom).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::{Method, StatusCode};
use common::{Answer, Backend, TestServer, blob};
use waymark_protocol::{
    EnrollRequest, EnrollResponse, InviteRequest, InviteResponse, KeyEnvelope, KeysRequest,
    KeysResponse, PublicKey, PushRequest, RevokeRequest, RevokeResponse, TeamResponse, codes,
    encode, limits, roles,
};
use waymark_server::tokens;

/// An enrolled device and the public keys it enrolled with.
#[derive(Debug, Clone)]
struct Dev {
    id: String,
    token: String,
    role: String,
    sign_key: PublicKey,
    box_key: PublicKey,
}

fn enroll_body(token: &str, sign_key: PublicKey, box_key: PublicKey) -> EnrollRequest {
    EnrollRequest {
        token: token.to_owned(),
        device_name: "phone".into(),
        sign_key,
        box_key,
        join_proof: None,
        actor: None,
    }
}

async fn enroll_raw(server: &TestServer, body: &EnrollRequest) -> Answer {
    server
        .send(Method::POST, "/v1/enroll", None, Some(encode(body)))
        .await
}

async fn enroll(server: &TestServer, token: &str) -> Dev {
    let body = enroll_body(token, rand::random(), rand::random());
    let answer = enroll_raw(server, &body).await;
    assert_eq!(answer.status, StatusCode::OK);
    let enrolled: EnrollResponse = answer.decode();
    Dev {
        id: enrolled.device_id,
        token: enrolled.device_token,
        role: enrolled.role,
        sign_key: body.sign_key,
        box_key: body.box_key,
    }
}

/// A device enrolled with an operator's token: the team's coordinator.
async fn coordinator(server: &TestServer, ws: &str) -> Dev {
    let token = server.enrollment_token(ws);
    enroll(server, &token).await
}

async fn invite_raw(server: &TestServer, inviter: &Dev, role: Option<&str>) -> Answer {
    server
        .send(
            Method::POST,
            "/v1/invites",
            Some(&inviter.token),
            Some(encode(&InviteRequest {
                ttl_seconds: 600,
                role: role.map(str::to_owned),
            })),
        )
        .await
}

async fn invite(server: &TestServer, inviter: &Dev, role: Option<&str>) -> String {
    let answer = invite_raw(server, inviter, role).await;
    assert_eq!(answer.status, StatusCode::OK);
    answer.decode::<InviteResponse>().enrollment_token
}

/// A device invited by `inviter` with the default role.
async fn member(server: &TestServer, inviter: &Dev) -> Dev {
    let token = invite(server, inviter, None).await;
    enroll(server, &token).await
}

async fn team(server: &TestServer, device: &Dev) -> TeamResponse {
    let answer = server
        .send(Method::GET, "/v1/team", Some(&device.token), None)
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    answer.decode()
}

/// An envelope of `epoch` for `recipient`, signed (as far as the server can tell) by `signer`.
fn envelope(recipient: &Dev, epoch: u32, signer: &Dev) -> KeyEnvelope {
    KeyEnvelope {
        device_id: recipient.id.clone(),
        epoch,
        sealed_key: (0..80).map(|_| rand::random::<u8>()).collect(),
        signer_key: signer.sign_key,
        signature: [7; 64],
    }
}

async fn keys_raw(server: &TestServer, caller: &Dev, request: &KeysRequest) -> Answer {
    server
        .send(
            Method::POST,
            "/v1/keys",
            Some(&caller.token),
            Some(encode(request)),
        )
        .await
}

/// Uploads keys and expects success; returns the epoch answered.
async fn upload(server: &TestServer, caller: &Dev, request: &KeysRequest) -> u32 {
    let answer = keys_raw(server, caller, request).await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "{:?}",
        waymark_protocol::decode::<waymark_protocol::ErrorBody>(&answer.body)
    );
    answer.decode::<KeysResponse>().epoch
}

fn rotation(to: u32, caller: &Dev, recipients: &[&Dev]) -> KeysRequest {
    KeysRequest {
        rotate_to: Some(to),
        envelopes: recipients.iter().map(|d| envelope(d, to, caller)).collect(),
    }
}

async fn revoke_raw(server: &TestServer, caller: &Dev, device_id: &str) -> Answer {
    server
        .send(
            Method::POST,
            "/v1/devices/revoke",
            Some(&caller.token),
            Some(encode(&RevokeRequest {
                device_id: device_id.to_owned(),
            })),
        )
        .await
}

async fn revoke(server: &TestServer, caller: &Dev, device_id: &str) -> u64 {
    let answer = revoke_raw(server, caller, device_id).await;
    assert_eq!(answer.status, StatusCode::OK);
    answer.decode::<RevokeResponse>().revoked_at_seq
}

async fn enrollment_stores_keys_and_role_and_grows_the_team_version(backend: Backend) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let lead = coordinator(&server, &ws).await;
    assert_eq!(
        lead.role,
        roles::COORDINATOR,
        "an operator's token enrolls a coordinator"
    );
    let before = team(&server, &lead).await;
    assert_eq!(
        (before.version, before.epoch, before.rotation_needed),
        (1, 0, false)
    );

    let invite_token = invite(&server, &lead, None).await;
    let mut body = enroll_body(&invite_token, rand::random(), rand::random());
    body.join_proof = Some(vec![9; 32]);
    let answer = enroll_raw(&server, &body).await;
    assert_eq!(answer.status, StatusCode::OK);
    let joined: EnrollResponse = answer.decode();
    assert_eq!(
        joined.role,
        roles::MEMBER,
        "an invite enrolls a member by default"
    );

    let team = team(&server, &lead).await;
    assert_eq!(team.version, 2);
    assert_eq!(team.epoch, 0);
    assert!(!team.rotation_needed);
    assert!(team.envelopes.is_empty());
    let ids: Vec<&str> = team.devices.iter().map(|d| d.device_id.as_str()).collect();
    assert_eq!(
        ids,
        [lead.id.as_str(), joined.device_id.as_str()],
        "enrollment order"
    );
    let first = &team.devices[0];
    assert_eq!(
        (first.role.as_str(), first.sign_key, first.box_key),
        (roles::COORDINATOR, lead.sign_key, lead.box_key)
    );
    assert_eq!(first.join_proof, None);
    let second = &team.devices[1];
    assert_eq!(second.role, roles::MEMBER);
    assert_eq!(
        (second.sign_key, second.box_key),
        (body.sign_key, body.box_key)
    );
    assert_eq!(second.join_proof, Some(vec![9; 32]));
    assert_eq!(second.revoked_at_seq, None);
    assert!(second.key_epochs.is_empty());
    assert!(second.enrolled_at >= first.enrolled_at);

    // Every pull says which team version it saw, so clients know when to fetch the team.
    let page = server.pull(&lead.token, 0, None).await;
    assert_eq!(page.team_version, 2);
    let devices = server.storage().list_devices(Some(&ws)).unwrap();
    let roles_listed: Vec<&str> = devices.iter().map(|d| d.role.as_str()).collect();
    assert_eq!(roles_listed, [roles::COORDINATOR, roles::MEMBER]);
}

async fn a_key_already_used_in_the_workspace_is_refused_with_409(backend: Backend) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let lead = coordinator(&server, &ws).await;
    for (sign_key, box_key) in [
        (lead.sign_key, rand::random()),
        (rand::random(), lead.box_key),
    ] {
        let token = invite(&server, &lead, None).await;
        enroll_raw(&server, &enroll_body(&token, sign_key, box_key))
            .await
            .expect_error(StatusCode::CONFLICT, codes::CONFLICT);
        // The refused enrollment left the token unused and the team unchanged.
        let answer = enroll_raw(
            &server,
            &enroll_body(&token, rand::random(), rand::random()),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK);
    }
    assert_eq!(team(&server, &lead).await.devices.len(), 3);
    // Keys identify signers within a workspace: another workspace may not be refused on them.
    let other = server.workspace();
    let token = server.enrollment_token(&other);
    let answer = enroll_raw(&server, &enroll_body(&token, lead.sign_key, lead.box_key)).await;
    assert_eq!(answer.status, StatusCode::OK);
}

async fn a_member_cannot_invite_a_coordinator_upload_keys_or_revoke_others(backend: Backend) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let lead = coordinator(&server, &ws).await;
    let ana = member(&server, &lead).await;
    let ben = member(&server, &ana).await;
    assert_eq!(ben.role, roles::MEMBER, "a member invites members");

    invite_raw(&server, &ana, Some(roles::COORDINATOR))
        .await
        .expect_error(StatusCode::FORBIDDEN, codes::FORBIDDEN);
    keys_raw(&server, &ana, &rotation(1, &ana, &[&lead, &ana, &ben]))
        .await
        .expect_error(StatusCode::FORBIDDEN, codes::FORBIDDEN);
    let approve = KeysRequest {
        rotate_to: None,
        envelopes: vec![envelope(&ben, 0, &ana)],
    };
    keys_raw(&server, &ana, &approve)
        .await
        .expect_error(StatusCode::FORBIDDEN, codes::FORBIDDEN);
    for target in [&lead, &ben] {
        revoke_raw(&server, &ana, &target.id)
            .await
            .expect_error(StatusCode::FORBIDDEN, codes::FORBIDDEN);
    }
    invite_raw(&server, &ana, Some("admin"))
        .await
        .expect_error(StatusCode::BAD_REQUEST, codes::BAD_REQUEST);
    // Nothing changed: nobody revoked, no key stored, still epoch 0.
    let seen = team(&server, &lead).await;
    assert!(seen.devices.iter().all(|d| d.revoked_at_seq.is_none()));
    assert!(seen.devices.iter().all(|d| d.key_epochs.is_empty()));
    assert_eq!(seen.epoch, 0);

    // A coordinator may invite a coordinator, who then may do all of it.
    let token = invite(&server, &lead, Some(roles::COORDINATOR)).await;
    let deputy = enroll(&server, &token).await;
    assert_eq!(deputy.role, roles::COORDINATOR);
    assert_eq!(revoke(&server, &deputy, &ben.id).await, 0);
}

async fn a_coordinator_revokes_and_rotates_and_each_device_gets_its_key(backend: Backend) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let lead = coordinator(&server, &ws).await;
    let ana = member(&server, &lead).await;
    let lost = member(&server, &lead).await;
    server
        .push(&ana.token, vec![blob(1, b"a1"), blob(2, b"b1")])
        .await;
    let version = team(&server, &lead).await.version;

    assert_eq!(
        revoke(&server, &lead, &lost.id).await,
        2,
        "the head at revocation"
    );
    server
        .send(Method::GET, "/v1/pull?after=0", Some(&lost.token), None)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, codes::UNAUTHORIZED);
    let after_revoke = team(&server, &lead).await;
    assert!(after_revoke.rotation_needed);
    assert!(after_revoke.version > version);
    let lost_entry = after_revoke
        .devices
        .iter()
        .find(|d| d.device_id == lost.id)
        .unwrap();
    assert_eq!(lost_entry.revoked_at_seq, Some(2));

    let request = rotation(1, &lead, &[&lead, &ana]);
    assert_eq!(upload(&server, &lead, &request).await, 1);
    let seen_by_ana = team(&server, &ana).await;
    assert_eq!(seen_by_ana.epoch, 1);
    assert!(!seen_by_ana.rotation_needed);
    assert!(seen_by_ana.version > after_revoke.version);
    assert_eq!(
        seen_by_ana.envelopes,
        vec![request.envelopes[1].clone()],
        "a device gets only the envelopes sealed to it"
    );
    let epochs: Vec<(&str, Vec<u32>)> = seen_by_ana
        .devices
        .iter()
        .map(|d| (d.device_id.as_str(), d.key_epochs.clone()))
        .collect();
    assert_eq!(
        epochs,
        [
            (lead.id.as_str(), vec![1]),
            (ana.id.as_str(), vec![1]),
            (lost.id.as_str(), vec![])
        ]
    );
    assert_eq!(
        server.pull(&ana.token, 0, None).await.team_version,
        seen_by_ana.version
    );
    // The revoked device cannot be given the new key.
    let request = KeysRequest {
        rotate_to: None,
        envelopes: vec![envelope(&lost, 1, &lead)],
    };
    keys_raw(&server, &lead, &request)
        .await
        .expect_error(StatusCode::CONFLICT, codes::CONFLICT);
}

async fn a_rotation_may_leave_out_devices_but_never_the_rotating_one(backend: Backend) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let lead = coordinator(&server, &ws).await;
    let ana = member(&server, &lead).await;
    let stranger = member(&server, &lead).await;
    // Without an envelope for itself the rotating device would lock itself out.
    let message = keys_raw(&server, &lead, &rotation(1, &lead, &[&ana]))
        .await
        .expect_error(StatusCode::BAD_REQUEST, codes::BAD_REQUEST);
    assert!(message.contains("rotating device"), "{message}");
    let seen = team(&server, &lead).await;
    assert_eq!(seen.epoch, 0, "nothing rotated");
    assert!(
        seen.devices.iter().all(|d| d.key_epochs.is_empty()),
        "nothing stored"
    );
    // A device the coordinator does not vouch for is simply left out.
    assert_eq!(
        upload(&server, &lead, &rotation(1, &lead, &[&lead, &ana])).await,
        1
    );
    let seen = team(&server, &lead).await;
    let epochs = |id: &str| {
        seen.devices
            .iter()
            .find(|d| d.device_id == id)
            .unwrap()
            .key_epochs
            .clone()
    };
    assert_eq!(epochs(&ana.id), vec![1]);
    assert!(epochs(&stranger.id).is_empty());
}

async fn coordinators_racing_to_rotate_get_one_winner_and_consecutive_epochs(backend: Backend) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let first = coordinator(&server, &ws).await;
    let second = coordinator(&server, &ws).await;
    let ana = member(&server, &first).await;
    let everyone = [&first, &second, &ana];
    for round in 1..=8u32 {
        let a = rotation(round, &first, &everyone);
        let b = rotation(round, &second, &everyone);
        // Both requests run at once, on blocking threads, each with its own connection.
        let (answer_a, answer_b) = tokio::join!(
            keys_raw(&server, &first, &a),
            keys_raw(&server, &second, &b)
        );
        let mut statuses = [answer_a.status, answer_b.status];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::OK, StatusCode::CONFLICT],
            "round {round}: exactly one rotation wins"
        );
        let loser = if answer_a.status == StatusCode::OK {
            answer_b
        } else {
            answer_a
        };
        loser.expect_error(StatusCode::CONFLICT, codes::CONFLICT);
        // Ana has one key per epoch, no gap, and this epoch's is the winner's.
        let seen = team(&server, &ana).await;
        assert_eq!(seen.epoch, round);
        let epochs: Vec<u32> = seen.envelopes.iter().map(|e| e.epoch).collect();
        assert_eq!(
            epochs,
            (1..=round).collect::<Vec<_>>(),
            "one key per epoch, no gap"
        );
        let stored = &seen.envelopes[usize::try_from(round - 1).unwrap()];
        assert!(
            *stored == a.envelopes[2] || *stored == b.envelopes[2],
            "round {round}: the stored key is one of the two uploaded"
        );
    }
}

async fn key_uploads_are_checked_against_the_team(backend: Backend) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let lead = coordinator(&server, &ws).await;
    let ana = member(&server, &lead).await;
    let outsider_ws = server.workspace();
    let outsider = coordinator(&server, &outsider_ws).await;
    let approve = |envelopes: Vec<KeyEnvelope>| KeysRequest {
        rotate_to: None,
        envelopes,
    };

    let mut forged = envelope(&ana, 0, &lead);
    forged.signer_key = ana.sign_key;
    let mut empty = envelope(&ana, 0, &lead);
    empty.sealed_key.clear();
    let mut long = envelope(&ana, 0, &lead);
    long.sealed_key = vec![1; limits::MAX_SEALED_KEY_BYTES + 1];
    let mut unknown = envelope(&ana, 0, &lead);
    unknown.device_id = tokens::new_id();
    for (what, request) in [
        ("a signer key not the caller's", approve(vec![forged])),
        ("an empty sealed key", approve(vec![empty])),
        ("a sealed key over the limit", approve(vec![long])),
        ("an unknown device", approve(vec![unknown])),
        (
            "another workspace's device",
            approve(vec![envelope(&outsider, 0, &lead)]),
        ),
        (
            "an epoch not rotated to",
            approve(vec![envelope(&ana, 1, &lead)]),
        ),
        (
            "two envelopes for one device and epoch",
            approve(vec![envelope(&ana, 0, &lead), envelope(&ana, 0, &lead)]),
        ),
        (
            "an envelope of another epoch in a rotation",
            KeysRequest {
                rotate_to: Some(1),
                envelopes: vec![envelope(&lead, 1, &lead), envelope(&ana, 0, &lead)],
            },
        ),
    ] {
        let answer = keys_raw(&server, &lead, &request).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{what}");
        answer.expect_error(StatusCode::BAD_REQUEST, codes::BAD_REQUEST);
    }
    keys_raw(&server, &lead, &rotation(2, &lead, &[&lead, &ana]))
        .await
        .expect_error(StatusCode::CONFLICT, codes::CONFLICT);
    let too_many = approve(
        (0..=limits::MAX_ENVELOPES)
            .map(|_| KeyEnvelope {
                sealed_key: vec![1],
                ..envelope(&ana, 0, &lead)
            })
            .collect(),
    );
    keys_raw(&server, &lead, &too_many)
        .await
        .expect_error(StatusCode::PAYLOAD_TOO_LARGE, codes::TOO_LARGE);
    let seen = team(&server, &lead).await;
    assert!(
        seen.devices.iter().all(|d| d.key_epochs.is_empty()),
        "nothing stored"
    );
    assert_eq!(seen.epoch, 0);

    // Approving a join: keys of existing epochs. A repeat of a stored one is ignored, not an
    // error, and the first stays (the device may already use it).
    let first = envelope(&ana, 0, &lead);
    assert_eq!(
        upload(&server, &lead, &approve(vec![first.clone()])).await,
        0
    );
    assert_eq!(
        upload(&server, &lead, &approve(vec![envelope(&ana, 0, &lead)])).await,
        0
    );
    assert_eq!(team(&server, &ana).await.envelopes, vec![first]);
}

async fn any_device_may_revoke_itself_and_its_invites_die_with_it(backend: Backend) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let lead = coordinator(&server, &ws).await;
    let wiped = member(&server, &lead).await;
    let pending = invite(&server, &wiped, None).await;
    server.push(&wiped.token, vec![blob(1, b"x")]).await;

    assert_eq!(revoke(&server, &wiped, &wiped.id).await, 1);
    server
        .send(Method::GET, "/v1/pull?after=0", Some(&wiped.token), None)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, codes::UNAUTHORIZED);
    enroll_raw(
        &server,
        &enroll_body(&pending, rand::random(), rand::random()),
    )
    .await
    .expect_error(StatusCode::UNAUTHORIZED, codes::TOKEN_EXPIRED);
    let seen = team(&server, &lead).await;
    assert!(seen.rotation_needed);
    let entry = seen
        .devices
        .iter()
        .find(|d| d.device_id == wiped.id)
        .unwrap();
    assert_eq!(entry.revoked_at_seq, Some(1));
}

async fn revoking_twice_keeps_the_first_revoked_at_seq(backend: Backend) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let lead = coordinator(&server, &ws).await;
    let lost = member(&server, &lead).await;
    server.push(&lead.token, vec![blob(1, b"1")]).await;
    // The operator's command and a coordinator's device answer the same number.
    assert_eq!(
        server
            .storage()
            .revoke_device(&lost.id, tokens::now())
            .unwrap(),
        1
    );
    let version = team(&server, &lead).await.version;
    server
        .push(&lead.token, vec![blob(1, b"2"), blob(1, b"3")])
        .await;
    assert_eq!(revoke(&server, &lead, &lost.id).await, 1);
    assert_eq!(
        server
            .storage()
            .revoke_device(&lost.id, tokens::now())
            .unwrap(),
        1
    );
    assert_eq!(
        team(&server, &lead).await.version,
        version,
        "nothing changed"
    );
    let listed = server.storage().list_devices(Some(&ws)).unwrap();
    let entry = listed.iter().find(|d| d.id == lost.id).unwrap();
    assert_eq!(entry.revoked_at_seq, Some(1));
    assert!(entry.revoked_at.is_some());
    let kept = listed.iter().find(|d| d.id == lead.id).unwrap();
    assert_eq!(kept.revoked_at_seq, None);
}

async fn a_token_of_workspace_a_cannot_revoke_or_read_anything_of_workspace_b(backend: Backend) {
    let server = TestServer::new(backend);
    let ws_a = server.workspace();
    let ws_b = server.workspace();
    let lead_a = coordinator(&server, &ws_a).await;
    let lead_b = coordinator(&server, &ws_b).await;
    let member_b = member(&server, &lead_b).await;
    upload(
        &server,
        &lead_b,
        &rotation(1, &lead_b, &[&lead_b, &member_b]),
    )
    .await;

    for target in [&lead_b, &member_b] {
        revoke_raw(&server, &lead_a, &target.id)
            .await
            .expect_error(StatusCode::NOT_FOUND, codes::NOT_FOUND);
    }
    revoke_raw(&server, &lead_a, "no-such-device")
        .await
        .expect_error(StatusCode::NOT_FOUND, codes::NOT_FOUND);
    let request = KeysRequest {
        rotate_to: None,
        envelopes: vec![envelope(&member_b, 0, &lead_a)],
    };
    keys_raw(&server, &lead_a, &request)
        .await
        .expect_error(StatusCode::BAD_REQUEST, codes::BAD_REQUEST);

    let seen_by_a = team(&server, &lead_a).await;
    assert_eq!(seen_by_a.devices.len(), 1);
    assert_eq!(seen_by_a.devices[0].device_id, lead_a.id);
    assert!(seen_by_a.envelopes.is_empty());
    assert_eq!(seen_by_a.epoch, 0);
    let seen_by_b = team(&server, &member_b).await;
    assert_eq!(seen_by_b.epoch, 1);
    assert!(seen_by_b.devices.iter().all(|d| d.revoked_at_seq.is_none()));
    assert_eq!(seen_by_b.envelopes.len(), 1);
}

async fn a_revoked_devices_token_gets_401_on_every_route_at_once(backend: Backend) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let lead = coordinator(&server, &ws).await;
    let lost = coordinator(&server, &ws).await;
    let ana = member(&server, &lead).await;
    server
        .storage()
        .revoke_device(&lost.id, tokens::now())
        .unwrap();
    let requests: Vec<(Method, &str, Option<Vec<u8>>)> = vec![
        (Method::GET, "/v1/pull?after=0", None),
        (Method::GET, "/v1/team", None),
        (
            Method::POST,
            "/v1/push",
            Some(encode(&PushRequest {
                blobs: vec![blob(1, b"after")],
            })),
        ),
        (
            Method::POST,
            "/v1/invites",
            Some(encode(&InviteRequest {
                ttl_seconds: 60,
                role: None,
            })),
        ),
        (
            Method::POST,
            "/v1/keys",
            Some(encode(&rotation(1, &lost, &[&lead, &ana]))),
        ),
        (
            Method::POST,
            "/v1/devices/revoke",
            Some(encode(&RevokeRequest {
                device_id: ana.id.clone(),
            })),
        ),
    ];
    for (method, path, body) in requests {
        server
            .send(method, path, Some(&lost.token), body)
            .await
            .expect_error(StatusCode::UNAUTHORIZED, codes::UNAUTHORIZED);
    }
    let seen = team(&server, &lead).await;
    assert_eq!(seen.epoch, 0);
    assert_eq!(server.pull(&lead.token, 0, None).await.head, 0);
    assert!(
        seen.devices
            .iter()
            .filter(|d| d.device_id != lost.id)
            .all(|d| d.revoked_at_seq.is_none())
    );
}

async fn replayed_requests_change_nothing(backend: Backend) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let lead = coordinator(&server, &ws).await;
    let ana = member(&server, &lead).await;

    // The same push body twice: the same numbers, stored once.
    let body = encode(&PushRequest {
        blobs: vec![blob(1, b"one"), blob(2, b"two")],
    });
    let mut answers = Vec::new();
    for _ in 0..2 {
        let answer = server
            .send(
                Method::POST,
                "/v1/push",
                Some(&ana.token),
                Some(body.clone()),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK);
        answers.push(answer.body);
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(server.pull_all(&lead.token, 0).await.len(), 2);

    // The same enrollment body twice: the second is refused as used.
    let token = invite(&server, &lead, None).await;
    let enrollment = enroll_body(&token, rand::random(), rand::random());
    assert_eq!(
        enroll_raw(&server, &enrollment).await.status,
        StatusCode::OK
    );
    enroll_raw(&server, &enrollment)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, codes::TOKEN_USED);
    let version = team(&server, &lead).await.version;

    // The same rotation twice: the second is a conflict and stores nothing.
    let everyone = team(&server, &lead).await.devices;
    let request = KeysRequest {
        rotate_to: Some(1),
        envelopes: everyone
            .iter()
            .map(|d| KeyEnvelope {
                device_id: d.device_id.clone(),
                ..envelope(&lead, 1, &lead)
            })
            .collect(),
    };
    assert_eq!(upload(&server, &lead, &request).await, 1);
    keys_raw(&server, &lead, &request)
        .await
        .expect_error(StatusCode::CONFLICT, codes::CONFLICT);
    let seen = team(&server, &lead).await;
    assert_eq!((seen.epoch, seen.version), (1, version + 1));

    // The same revocation twice: the same answer.
    let first = revoke(&server, &lead, &ana.id).await;
    assert_eq!(revoke(&server, &lead, &ana.id).await, first);
}

async fn garbage_bodies_on_the_new_routes_get_400_with_a_code(backend: Backend) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let lead = coordinator(&server, &ws).await;
    let wrong_type = encode(&InviteRequest {
        ttl_seconds: 5,
        role: None,
    });
    let mut truncated = encode(&rotation(1, &lead, &[&lead]));
    truncated.truncate(truncated.len() / 2);
    for path in ["/v1/keys", "/v1/devices/revoke"] {
        for body in [
            b"\xff\x00garbage".to_vec(),
            Vec::new(),
            wrong_type.clone(),
            truncated.clone(),
        ] {
            server
                .send(Method::POST, path, Some(&lead.token), Some(body))
                .await
                .expect_error(StatusCode::BAD_REQUEST, codes::BAD_REQUEST);
        }
    }
    // A device id of a megabyte is refused without being echoed back.
    let huge = "d".repeat(1 << 20);
    let message = revoke_raw(&server, &lead, &huge)
        .await
        .expect_error(StatusCode::BAD_REQUEST, codes::BAD_REQUEST);
    assert!(message.len() < 200, "{message}");
    let mut far = envelope(&lead, 0, &lead);
    far.device_id = huge;
    let request = KeysRequest {
        rotate_to: None,
        envelopes: vec![far],
    };
    let message = keys_raw(&server, &lead, &request)
        .await
        .expect_error(StatusCode::BAD_REQUEST, codes::BAD_REQUEST);
    assert!(message.len() < 200, "{message}");
    // Enrollment: keys of the wrong length, all-zero keys, an oversized join proof.
    let token = server.enrollment_token(&ws);
    let short = {
        use ciborium::Value;
        let map = Value::Map(vec![
            (Value::Text("token".into()), Value::Text(token.clone())),
            (
                Value::Text("device_name".into()),
                Value::Text("phone".into()),
            ),
            (Value::Text("sign_key".into()), Value::Bytes(vec![1; 31])),
            (Value::Text("box_key".into()), Value::Bytes(vec![2; 32])),
        ]);
        let mut bytes = Vec::new();
        ciborium::into_writer(&map, &mut bytes).unwrap();
        bytes
    };
    server
        .send(Method::POST, "/v1/enroll", None, Some(short))
        .await
        .expect_error(StatusCode::BAD_REQUEST, codes::BAD_REQUEST);
    let mut zero = enroll_body(&token, [0; 32], rand::random());
    enroll_raw(&server, &zero)
        .await
        .expect_error(StatusCode::BAD_REQUEST, codes::BAD_REQUEST);
    zero.sign_key = rand::random();
    zero.join_proof = Some(vec![1; limits::MAX_JOIN_PROOF_BYTES + 1]);
    let message = enroll_raw(&server, &zero)
        .await
        .expect_error(StatusCode::BAD_REQUEST, codes::BAD_REQUEST);
    assert!(message.contains("join_proof"), "{message}");
    // None of it used the token.
    zero.join_proof = Some(vec![1; limits::MAX_JOIN_PROOF_BYTES]);
    assert_eq!(enroll_raw(&server, &zero).await.status, StatusCode::OK);
    assert_eq!(team(&server, &lead).await.devices.len(), 2);
}

async fn the_new_routes_are_measured_under_their_own_labels(backend: Backend) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let lead = coordinator(&server, &ws).await;
    team(&server, &lead).await;
    upload(&server, &lead, &rotation(1, &lead, &[&lead])).await;
    revoke_raw(&server, &lead, "missing").await;
    let answer = server.send(Method::GET, "/metrics", None, None).await;
    let text = String::from_utf8(answer.body).unwrap();
    for needle in [
        r#"route="/v1/team""#,
        r#"route="/v1/keys""#,
        r#"route="/v1/devices/revoke""#,
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }
}

/// Runs every named test once per backend: `sqlite::name` and `postgres::name`.
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            backend_tests!(@in sqlite: $($name),*);
        }
        mod postgres {
            backend_tests!(@in postgres: $($name),*);
        }
    };
    (@in $backend:ident: $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::common::$backend()).await;
            }
        )*
    };
}

backend_tests!(
    enrollment_stores_keys_and_role_and_grows_the_team_version,
    a_key_already_used_in_the_workspace_is_refused_with_409,
    a_member_cannot_invite_a_coordinator_upload_keys_or_revoke_others,
    a_coordinator_revokes_and_rotates_and_each_device_gets_its_key,
    a_rotation_may_leave_out_devices_but_never_the_rotating_one,
    coordinators_racing_to_rotate_get_one_winner_and_consecutive_epochs,
    key_uploads_are_checked_against_the_team,
    any_device_may_revoke_itself_and_its_invites_die_with_it,
    revoking_twice_keeps_the_first_revoked_at_seq,
    a_token_of_workspace_a_cannot_revoke_or_read_anything_of_workspace_b,
    a_revoked_devices_token_gets_401_on_every_route_at_once,
    replayed_requests_change_nothing,
    garbage_bodies_on_the_new_routes_get_400_with_a_code,
    the_new_routes_are_measured_under_their_own_labels,
);
