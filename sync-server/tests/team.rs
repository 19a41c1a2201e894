//! Team security as a client sees it (issues 5 and 12), driven through the router: device keys and
//! roles at enrollment, the team directory, wrapped key uploads and rotations (also racing),
//! revocation by devices, workspace isolation, replayed requests and garbage bodies on the new
//! routes; then the team log (`GET /v1/team?log_from`, `POST /v1/team/log`): what an append must
//! be to be stored, how the server's records follow it, and the push rules once a log exists.
//!
//! Every test runs against every storage backend (see the `backend_tests!` lists at the bottom).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::{Method, StatusCode};
use common::{Answer, Backend, TestServer, blob};
use ed25519_dalek::{Signer as _, SigningKey};
use waymark_protocol::team_log::{
    Body, Entry, Grant, Member, Restricted, SignedEntry, TeamState, Vouch,
};
use waymark_protocol::{
    AppendRequest, AppendResponse, EnrollRequest, EnrollResponse, InviteRequest, InviteResponse,
    KeyEnvelope, KeysRequest, KeysResponse, PublicKey, PushBlob, PushRequest, RevokeRequest,
    RevokeResponse, TeamResponse, codes, content_id_of, encode, limits, roles,
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
        .expect_error(StatusCode::UNAUTHORIZED, codes::DEVICE_REVOKED);
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
        .expect_error(StatusCode::UNAUTHORIZED, codes::DEVICE_REVOKED);
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
            .expect_error(StatusCode::UNAUTHORIZED, codes::DEVICE_REVOKED);
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

// The team log.

/// An enrolled device that holds its Ed25519 key, so that it can sign team log entries.
struct Signer {
    dev: Dev,
    key: SigningKey,
}

/// Enrolls a device with a real Ed25519 key with `token`.
async fn enroll_signer(server: &TestServer, token: &str) -> Signer {
    let key = SigningKey::from_bytes(&rand::random());
    let body = enroll_body(token, key.verifying_key().to_bytes(), rand::random());
    let answer = enroll_raw(server, &body).await;
    assert_eq!(answer.status, StatusCode::OK);
    let enrolled: EnrollResponse = answer.decode();
    Signer {
        dev: Dev {
            id: enrolled.device_id,
            token: enrolled.device_token,
            role: enrolled.role,
            sign_key: body.sign_key,
            box_key: body.box_key,
        },
        key,
    }
}

/// A coordinator (operator's token) and members (its invites) that can sign.
async fn signers(server: &TestServer, ws: &str, members: usize) -> (Signer, Vec<Signer>) {
    let lead = enroll_signer(server, &server.enrollment_token(ws)).await;
    let mut out = Vec::new();
    for _ in 0..members {
        let token = invite(server, &lead.dev, None).await;
        out.push(enroll_signer(server, &token).await);
    }
    (lead, out)
}

/// How the log names a device enrolled here, with `role`.
fn member_of(d: &Dev, role: &str) -> Member {
    Member {
        device_id: d.id.clone(),
        name: "phone".into(),
        role: role.into(),
        sign_key: d.sign_key,
        box_key: d.box_key,
        actor: None,
    }
}

/// `body` with the restricted keys the log's rules ask for filled in: a genesis's and a
/// rotation's granted to every coordinator, every epoch's to a device becoming one. The grants
/// are arbitrary bytes: only their recipients could tell, and the server cannot.
fn fill(state: Option<&TeamState>, mut body: Body) -> Body {
    let grant = |to: [u8; 32], epoch: u32| Grant {
        to,
        epoch,
        sealed: vec![1; 80],
    };
    let all = |s: &TeamState, to: [u8; 32]| -> Vec<Grant> {
        s.restricted.keys().map(|e| grant(to, *e)).collect()
    };
    match &mut body {
        Body::Genesis {
            epoch,
            coordinator,
            restricted: restricted @ None,
            ..
        } => {
            *restricted = Some(Restricted {
                public: [9; 32],
                grants: vec![grant(coordinator.sign_key, *epoch)],
            });
        }
        Body::Rotate {
            epoch,
            restricted: restricted @ None,
        } => {
            let s = state.unwrap();
            *restricted = Some(Restricted {
                public: [10; 32],
                grants: s
                    .active()
                    .into_iter()
                    .filter(|m| m.role == roles::COORDINATOR)
                    .map(|m| grant(m.sign_key, *epoch))
                    .collect(),
            });
        }
        Body::Admit { member, grants, .. }
            if member.role == roles::COORDINATOR && grants.is_empty() =>
        {
            *grants = all(state.unwrap(), member.sign_key);
        }
        Body::Role {
            sign_key,
            role,
            grants,
        } if role == roles::COORDINATOR && grants.is_empty() => {
            *grants = all(state.unwrap(), *sign_key);
        }
        _ => {}
    }
    body
}

/// `entry` signed by `by` (whoever it names as author), its restricted keys filled in.
fn signed(by: &Signer, entry: &Entry) -> SignedEntry {
    let mut entry = entry.clone();
    if let Body::Genesis { .. } = entry.body {
        entry.body = fill(None, entry.body);
    }
    let bytes = entry.to_bytes();
    SignedEntry {
        signature: by.key.sign(&Entry::message(&bytes)).to_bytes(),
        entry: bytes,
    }
}

/// `by`'s genesis of the team log at `epoch`.
fn genesis(by: &Signer, epoch: u32) -> SignedEntry {
    signed(
        by,
        &Entry::first(
            by.dev.sign_key,
            1,
            Body::Genesis {
                workspace: "the-teams-own-id".into(),
                epoch,
                coordinator: member_of(&by.dev, roles::COORDINATOR),
                restricted: None,
            },
        ),
    )
}

/// The entry `by` signs after `log`'s head.
fn next(log: &[SignedEntry], by: &Signer, body: Body) -> SignedEntry {
    let state = TeamState::replay(log).unwrap();
    signed(
        by,
        &Entry::next(&state, by.dev.sign_key, 2, fill(Some(&state), body)),
    )
}

fn admit(d: &Dev, role: &str) -> Body {
    Body::Admit {
        member: member_of(d, role),
        vouch: Vouch::Invite,
        grants: vec![],
    }
}

/// `log` followed by what `by` signs of `bodies`, one after another.
fn extend(log: &[SignedEntry], by: &Signer, bodies: Vec<Body>) -> Vec<SignedEntry> {
    let mut out = log.to_vec();
    for body in bodies {
        let e = next(&out, by, body);
        out.push(e);
    }
    out
}

async fn append_raw(
    server: &TestServer,
    caller: &Dev,
    entries: &[SignedEntry],
    envelopes: Vec<KeyEnvelope>,
) -> Answer {
    let body = AppendRequest {
        entries: entries.to_vec(),
        envelopes,
    };
    server
        .send(
            Method::POST,
            "/v1/team/log",
            Some(&caller.token),
            Some(encode(&body)),
        )
        .await
}

/// Appends and expects success; returns the log's length answered.
async fn append(
    server: &TestServer,
    caller: &Dev,
    entries: &[SignedEntry],
    envelopes: Vec<KeyEnvelope>,
) -> u64 {
    let answer = append_raw(server, caller, entries, envelopes).await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "{:?}",
        waymark_protocol::decode::<waymark_protocol::ErrorBody>(&answer.body)
    );
    answer.decode::<AppendResponse>().log_len
}

async fn team_from(server: &TestServer, device: &Dev, from: &str) -> Answer {
    server
        .send(
            Method::GET,
            &format!("/v1/team?log_from={from}"),
            Some(&device.token),
            None,
        )
        .await
}

/// A blob of a fresh document sealed (as far as the server can tell) under `epoch`.
fn blob_at(epoch: u32, supersedes: Option<u64>) -> PushBlob {
    let ciphertext: Vec<u8> = (0..48).map(|_| rand::random()).collect();
    PushBlob {
        content_id: content_id_of(&ciphertext),
        doc_id: rand::random(),
        epoch,
        ciphertext,
        supersedes,
        forget: false,
        covers: Vec::new(),
    }
}

async fn the_team_log_starts_with_a_genesis_by_an_enrolled_coordinator_and_is_served_from_any_index(
    backend: Backend,
) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let (lead, members) = signers(&server, &ws, 1).await;
    let ana = &members[0];
    let before = team(&server, &lead.dev).await;
    assert_eq!((before.log_len, before.log.len()), (0, 0), "no log yet");

    let mut wrong_keys = lead.dev.clone();
    wrong_keys.box_key = rand::random();
    let not_genesis = signed(
        &lead,
        &Entry::first(lead.dev.sign_key, 1, admit(&ana.dev, roles::MEMBER)),
    );
    let by_a_member = genesis(ana, 0);
    let other_keys = signed(
        &lead,
        &Entry::first(
            lead.dev.sign_key,
            1,
            Body::Genesis {
                workspace: "the-teams-own-id".into(),
                epoch: 0,
                coordinator: member_of(&wrong_keys, roles::COORDINATOR),
                restricted: None,
            },
        ),
    );
    let mut bad_signature = genesis(&lead, 0);
    bad_signature.signature[0] ^= 1;
    let at_index_1 = next(&[genesis(&lead, 0)], &lead, admit(&ana.dev, roles::MEMBER));
    for (what, entries) in [
        ("not a genesis", vec![not_genesis]),
        ("a member's genesis", vec![by_a_member]),
        ("keys the device did not enroll with", vec![other_keys]),
        (
            "another epoch than the workspace's",
            vec![genesis(&lead, 3)],
        ),
        ("a signature that does not verify", vec![bad_signature]),
        ("entry 1 of a log that has none", vec![at_index_1]),
    ] {
        let answer = append_raw(&server, &lead.dev, &entries, vec![]).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{what}");
        answer.expect_error(StatusCode::BAD_REQUEST, codes::BAD_REQUEST);
    }
    // Envelopes need a log to say whom they may go to.
    append_raw(
        &server,
        &lead.dev,
        &[],
        vec![envelope(&ana.dev, 0, &lead.dev)],
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, codes::BAD_REQUEST);
    assert_eq!(team(&server, &lead.dev).await.log_len, 0, "nothing stored");

    let log = extend(
        &[genesis(&lead, 0)],
        &lead,
        vec![admit(&ana.dev, roles::MEMBER)],
    );
    assert_eq!(append(&server, &lead.dev, &log, vec![]).await, 2);
    let whole = team(&server, &lead.dev).await;
    assert_eq!((whole.log_len, &whole.log), (2, &log));
    assert!(whole.version > before.version, "the team version grows");
    // From any index, to any device of the workspace; past the end, nothing but the length.
    let from_1: TeamResponse = team_from(&server, &ana.dev, "1").await.decode();
    assert_eq!((from_1.log_len, from_1.log), (2, log[1..].to_vec()));
    let past: TeamResponse = team_from(&server, &ana.dev, "9").await.decode();
    assert_eq!((past.log_len, past.log.len()), (2, 0));
    for bad in ["-1", "x", "", "1&log_from=2", "18446744073709551616"] {
        team_from(&server, &ana.dev, bad)
            .await
            .expect_error(StatusCode::BAD_REQUEST, codes::BAD_REQUEST);
    }
}

async fn appends_are_compare_and_swap_on_the_head_and_a_resent_log_is_stored_once(
    backend: Backend,
) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let (lead, members) = signers(&server, &ws, 2).await;
    let (ana, ben) = (&members[0], &members[1]);
    let deputy = enroll_signer(&server, &server.enrollment_token(&ws)).await;
    let log = extend(
        &[genesis(&lead, 0)],
        &lead,
        vec![admit(&deputy.dev, roles::COORDINATOR)],
    );
    assert_eq!(append(&server, &lead.dev, &log, vec![]).await, 2);

    // Two coordinators append at the same head at once: one wins, the other is told the log
    // moved and stores nothing.
    let by_lead = next(&log, &lead, admit(&ana.dev, roles::MEMBER));
    let by_deputy = next(&log, &deputy, admit(&ben.dev, roles::MEMBER));
    let (a, b) = tokio::join!(
        append_raw(&server, &lead.dev, std::slice::from_ref(&by_lead), vec![]),
        append_raw(
            &server,
            &deputy.dev,
            std::slice::from_ref(&by_deputy),
            vec![]
        )
    );
    let (winner, loser) = match a.status {
        StatusCode::OK => (by_lead.clone(), b),
        _ => (by_deputy.clone(), a),
    };
    loser.expect_error(StatusCode::CONFLICT, codes::TEAM_LOG_MOVED);
    let mut log = log;
    log.push(winner.clone());
    assert_eq!(team(&server, &lead.dev).await.log, log);
    // The loser's entry again, alone: still not at the head.
    let lost = if winner == by_lead {
        &by_deputy
    } else {
        &by_lead
    };
    append_raw(&server, &lead.dev, std::slice::from_ref(lost), vec![])
        .await
        .expect_error(StatusCode::CONFLICT, codes::TEAM_LOG_MOVED);

    // The whole log again (a device giving back what a restored server lost), by any device of
    // the team, a member too: the signatures are the authority. Nothing is stored twice, and
    // the team's version does not move (no device needs to look at the team again).
    let version = team(&server, &lead.dev).await.version;
    for sender in [&lead.dev, &ana.dev] {
        assert_eq!(append(&server, sender, &log, vec![]).await, 3);
        let now = team(&server, &lead.dev).await;
        assert_eq!((now.log, now.version), (log.clone(), version));
    }
    // Entries the log has, then new ones: the new ones are appended.
    let other = if winner == by_lead { ben } else { ana };
    let longer = extend(&log, &lead, vec![admit(&other.dev, roles::MEMBER)]);
    assert_eq!(append(&server, &ana.dev, &longer, vec![]).await, 4);
    assert_eq!(team(&server, &lead.dev).await.log, longer);
    // A gap: an entry past the end of the log.
    let state = TeamState::replay(&longer).unwrap();
    let mut far = Entry::next(
        &state,
        lead.dev.sign_key,
        3,
        fill(
            Some(&state),
            Body::Rotate {
                epoch: 1,
                restricted: None,
            },
        ),
    );
    far.index += 2;
    append_raw(&server, &lead.dev, &[signed(&lead, &far)], vec![])
        .await
        .expect_error(StatusCode::BAD_REQUEST, codes::BAD_REQUEST);
    // An old index with other bytes, even followed by a valid new entry: the log moved.
    let mut rewritten = longer.clone();
    rewritten[3] = next(&longer[..3], &deputy, admit(&other.dev, roles::MEMBER));
    append_raw(&server, &lead.dev, &rewritten, vec![])
        .await
        .expect_error(StatusCode::CONFLICT, codes::TEAM_LOG_MOVED);
    assert_eq!(team(&server, &lead.dev).await.log, longer);
}

async fn entries_that_are_forged_unauthorised_or_disagree_with_enrolment_are_refused(
    backend: Backend,
) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let (lead, members) = signers(&server, &ws, 2).await;
    let (ana, ben) = (&members[0], &members[1]);
    let log = extend(
        &[genesis(&lead, 0)],
        &lead,
        vec![admit(&ana.dev, roles::MEMBER)],
    );
    assert_eq!(append(&server, &lead.dev, &log, vec![]).await, 2);

    let state = TeamState::replay(&log).unwrap();
    let claiming_lead = signed(
        ana,
        &Entry::next(
            &state,
            lead.dev.sign_key,
            2,
            fill(
                Some(&state),
                Body::Rotate {
                    epoch: 1,
                    restricted: None,
                },
            ),
        ),
    );
    let mut ben_other_box = ben.dev.clone();
    ben_other_box.box_key = rand::random();
    let mut not_here = ben.dev.clone();
    not_here.id = tokens::new_id();
    let outsider = {
        let ws = server.workspace();
        enroll_signer(&server, &server.enrollment_token(&ws)).await
    };
    for (what, entry) in [
        (
            "a member's entry",
            next(&log, ana, admit(&ben.dev, roles::MEMBER)),
        ),
        ("a coordinator's entry signed by another key", claiming_lead),
        (
            "keys the device did not enroll with",
            next(&log, &lead, admit(&ben_other_box, roles::MEMBER)),
        ),
        (
            "a device of another workspace",
            next(&log, &lead, admit(&outsider.dev, roles::MEMBER)),
        ),
        (
            "a key the team has",
            next(&log, &lead, admit(&ana.dev, roles::COORDINATOR)),
        ),
        (
            "an epoch that is not the next",
            next(
                &log,
                &lead,
                Body::Rotate {
                    epoch: 5,
                    restricted: None,
                },
            ),
        ),
        (
            "the last coordinator revoked",
            next(
                &log,
                &lead,
                Body::Revoke {
                    sign_key: lead.dev.sign_key,
                    after_seq: 0,
                },
            ),
        ),
        (
            "a second genesis",
            next(
                &log,
                &lead,
                Body::Genesis {
                    workspace: "x".into(),
                    epoch: 0,
                    coordinator: member_of(&lead.dev, roles::COORDINATOR),
                    restricted: None,
                },
            ),
        ),
    ] {
        let answer = append_raw(&server, &lead.dev, &[entry], vec![]).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{what}");
        answer.expect_error(StatusCode::BAD_REQUEST, codes::BAD_REQUEST);
    }
    // Limits: entries per append, bytes per entry, and bodies that are not an append.
    let one = next(&log, &lead, admit(&ben.dev, roles::MEMBER));
    let too_many = vec![one.clone(); limits::MAX_LOG_ENTRIES + 1];
    append_raw(&server, &lead.dev, &too_many, vec![])
        .await
        .expect_error(StatusCode::PAYLOAD_TOO_LARGE, codes::TOO_LARGE);
    let long = SignedEntry {
        entry: vec![0; limits::MAX_LOG_ENTRY_BYTES + 1],
        signature: [0; 64],
    };
    append_raw(&server, &lead.dev, &[long], vec![])
        .await
        .expect_error(StatusCode::BAD_REQUEST, codes::BAD_REQUEST);
    for body in [b"\xff\x00garbage".to_vec(), Vec::new()] {
        server
            .send(
                Method::POST,
                "/v1/team/log",
                Some(&lead.dev.token),
                Some(body),
            )
            .await
            .expect_error(StatusCode::BAD_REQUEST, codes::BAD_REQUEST);
    }
    assert_eq!(team(&server, &lead.dev).await.log, log, "nothing stored");
    assert_eq!(
        append(&server, &lead.dev, std::slice::from_ref(&one), vec![]).await,
        3
    );
    // A device the server has no record of anywhere (it enrolled in a database since restored
    // from a backup) is history the team signed: kept, acting on nothing, and no key envelope
    // is stored for it.
    let mut with_ben = log.clone();
    with_ben.push(one);
    not_here.sign_key = SigningKey::from_bytes(&rand::random())
        .verifying_key()
        .to_bytes();
    not_here.box_key = rand::random();
    let lost = next(&with_ben, &lead, admit(&not_here, roles::MEMBER));
    let envelope = KeyEnvelope {
        device_id: not_here.id.clone(),
        epoch: 0,
        sealed_key: vec![1; 48],
        signer_key: lead.dev.sign_key,
        signature: [0; 64],
    };
    assert_eq!(append(&server, &lead.dev, &[lost], vec![envelope]).await, 4);
    let listed = team(&server, &lead.dev).await;
    assert!(!listed.devices.iter().any(|d| d.device_id == not_here.id));
}

async fn the_servers_records_follow_the_log_revocations_roles_and_rotations(backend: Backend) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let (lead, members) = signers(&server, &ws, 2).await;
    let (ana, ben) = (&members[0], &members[1]);
    let log = extend(
        &[genesis(&lead, 0)],
        &lead,
        vec![
            admit(&ana.dev, roles::MEMBER),
            admit(&ben.dev, roles::MEMBER),
        ],
    );
    append(&server, &lead.dev, &log, vec![]).await;
    server
        .push(&ben.dev.token, vec![blob(1, b"ben 1"), blob(2, b"ben 2")])
        .await;

    // A revocation in the log: the token dies in the same transaction, the boundary the server
    // records is its own head, and a rotation is due.
    let log = extend(
        &log,
        &lead,
        vec![Body::Revoke {
            sign_key: ben.dev.sign_key,
            after_seq: 1,
        }],
    );
    append(&server, &lead.dev, &log, vec![]).await;
    server
        .send(Method::GET, "/v1/team", Some(&ben.dev.token), None)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, codes::DEVICE_REVOKED);
    let seen = team(&server, &lead.dev).await;
    assert!(seen.rotation_needed);
    let listed = seen.devices.iter().find(|d| d.device_id == ben.dev.id);
    assert_eq!(listed.unwrap().revoked_at_seq, Some(2));

    // A rotation moves the workspace's epoch and clears the flag.
    let log = extend(
        &log,
        &lead,
        vec![Body::Rotate {
            epoch: 1,
            restricted: None,
        }],
    );
    let envelopes = vec![
        envelope(&lead.dev, 1, &lead.dev),
        envelope(&ana.dev, 1, &lead.dev),
    ];
    append(&server, &lead.dev, &log, envelopes.clone()).await;
    let seen = team(&server, &ana.dev).await;
    assert_eq!((seen.epoch, seen.rotation_needed), (1, false));
    assert_eq!(seen.envelopes, vec![envelopes[1].clone()]);

    // A role change: the server lets the new coordinator do what coordinators do.
    invite_raw(&server, &ana.dev, Some(roles::COORDINATOR))
        .await
        .expect_error(StatusCode::FORBIDDEN, codes::FORBIDDEN);
    let log = extend(
        &log,
        &lead,
        vec![Body::Role {
            sign_key: ana.dev.sign_key,
            role: roles::COORDINATOR.into(),
            grants: vec![],
        }],
    );
    append(&server, &lead.dev, &log, vec![]).await;
    invite(&server, &ana.dev, Some(roles::COORDINATOR)).await;
    let seen = team(&server, &lead.dev).await;
    let role = |id: &str| {
        seen.devices
            .iter()
            .find(|d| d.device_id == id)
            .unwrap()
            .role
            .clone()
    };
    assert_eq!(role(&ana.dev.id), roles::COORDINATOR);
}

async fn envelopes_go_only_to_devices_the_log_admits_and_a_rotation_seals_to_all_of_them(
    backend: Backend,
) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let (lead, members) = signers(&server, &ws, 3).await;
    let (ana, unadmitted, gone) = (&members[0], &members[1], &members[2]);
    let log = extend(
        &[genesis(&lead, 0)],
        &lead,
        vec![
            admit(&ana.dev, roles::MEMBER),
            admit(&gone.dev, roles::MEMBER),
            Body::Revoke {
                sign_key: gone.dev.sign_key,
                after_seq: 0,
            },
        ],
    );
    append(&server, &lead.dev, &log, vec![]).await;

    let mut empty = envelope(&ana.dev, 0, &lead.dev);
    empty.sealed_key.clear();
    let mut long = envelope(&ana.dev, 0, &lead.dev);
    long.sealed_key = vec![1; limits::MAX_SEALED_KEY_BYTES + 1];
    for (what, envelopes) in [
        (
            "a device the server lists but the log does not admit",
            vec![envelope(&unadmitted.dev, 0, &lead.dev)],
        ),
        (
            "an epoch the log has not reached",
            vec![envelope(&ana.dev, 1, &lead.dev)],
        ),
        (
            "a signer that is not a coordinator of the log",
            vec![envelope(&ana.dev, 0, &ana.dev)],
        ),
        ("an empty sealed key", vec![empty]),
        ("a sealed key over the limit", vec![long]),
        (
            "two envelopes for one device and epoch",
            vec![
                envelope(&ana.dev, 0, &lead.dev),
                envelope(&ana.dev, 0, &lead.dev),
            ],
        ),
    ] {
        let answer = append_raw(&server, &lead.dev, &[], envelopes).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{what}");
        answer.expect_error(StatusCode::BAD_REQUEST, codes::BAD_REQUEST);
    }
    append_raw(
        &server,
        &lead.dev,
        &[],
        vec![envelope(&gone.dev, 0, &lead.dev)],
    )
    .await
    .expect_error(StatusCode::CONFLICT, codes::CONFLICT);
    let too_many = (0..=limits::MAX_ENVELOPES)
        .map(|_| envelope(&ana.dev, 0, &lead.dev))
        .collect();
    append_raw(&server, &lead.dev, &[], too_many)
        .await
        .expect_error(StatusCode::PAYLOAD_TOO_LARGE, codes::TOO_LARGE);
    // A rotation must bring the new key to every device of the log, not just some.
    let rotated = extend(
        &log,
        &lead,
        vec![Body::Rotate {
            epoch: 1,
            restricted: None,
        }],
    );
    let message = append_raw(
        &server,
        &lead.dev,
        &rotated,
        vec![envelope(&lead.dev, 1, &lead.dev)],
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, codes::BAD_REQUEST);
    assert!(message.contains("every device"), "{message}");
    let seen = team(&server, &lead.dev).await;
    assert_eq!((seen.epoch, seen.log_len), (0, 4), "nothing stored");
    assert!(seen.devices.iter().all(|d| d.key_epochs.is_empty()));

    // Topping a device up, with no entry: stored; a second envelope for it is ignored.
    let first = envelope(&ana.dev, 0, &lead.dev);
    append(&server, &lead.dev, &[], vec![first.clone()]).await;
    append(
        &server,
        &lead.dev,
        &[],
        vec![envelope(&ana.dev, 0, &lead.dev)],
    )
    .await;
    assert_eq!(team(&server, &ana.dev).await.envelopes, vec![first]);
    // The rotation with every device of the log (the unadmitted one left out): stored.
    let envelopes = vec![
        envelope(&lead.dev, 1, &lead.dev),
        envelope(&ana.dev, 1, &lead.dev),
    ];
    append(&server, &lead.dev, &rotated, envelopes).await;
    let seen = team(&server, &lead.dev).await;
    assert_eq!(seen.epoch, 1);
    let held = |d: &Dev| {
        seen.devices
            .iter()
            .find(|l| l.device_id == d.id)
            .unwrap()
            .key_epochs
            .clone()
    };
    assert_eq!(held(&ana.dev), vec![0, 1]);
    assert!(held(&unadmitted.dev).is_empty() && held(&gone.dev).is_empty());
}

async fn once_a_log_exists_pushes_follow_its_epoch_and_the_old_key_upload_is_refused(
    backend: Backend,
) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let (lead, members) = signers(&server, &ws, 1).await;
    let ana = &members[0];
    // Before the log (a team from before issue 12): a blob under an epoch nobody rotated to is
    // refused, one under an older epoch still accepted.
    server
        .push_raw(&ana.dev.token, vec![blob_at(1, None)])
        .await
        .expect_error(StatusCode::BAD_REQUEST, codes::BAD_REQUEST);
    upload(
        &server,
        &lead.dev,
        &rotation(1, &lead.dev, &[&lead.dev, &ana.dev]),
    )
    .await;
    server.push(&ana.dev.token, vec![blob_at(0, None)]).await;

    let log = extend(
        &[genesis(&lead, 1)],
        &lead,
        vec![admit(&ana.dev, roles::MEMBER)],
    );
    append(&server, &lead.dev, &log, vec![]).await;
    // At the log's epoch: stored. Above: 400. Below (a retired key, which revoked devices may
    // hold): 409 stale_epoch, and nothing of the batch is stored.
    server.push(&ana.dev.token, vec![blob_at(1, None)]).await;
    server
        .push_raw(&ana.dev.token, vec![blob_at(2, None)])
        .await
        .expect_error(StatusCode::BAD_REQUEST, codes::BAD_REQUEST);
    let head = server.pull(&lead.dev.token, 0, None).await.head;
    server
        .push_raw(&ana.dev.token, vec![blob_at(1, None), blob_at(0, None)])
        .await
        .expect_error(StatusCode::CONFLICT, codes::STALE_EPOCH);
    assert_eq!(server.pull(&lead.dev.token, 0, None).await.head, head);
    // Compaction drops history: a coordinator's only.
    server
        .push_raw(&ana.dev.token, vec![blob_at(1, Some(1))])
        .await
        .expect_error(StatusCode::FORBIDDEN, codes::FORBIDDEN);
    server
        .push(&lead.dev.token, vec![blob_at(1, Some(1))])
        .await;
    // Keys now go through the log: the old upload is refused, rotation or top-up.
    for request in [
        rotation(2, &lead.dev, &[&lead.dev, &ana.dev]),
        KeysRequest {
            rotate_to: None,
            envelopes: vec![envelope(&ana.dev, 1, &lead.dev)],
        },
    ] {
        keys_raw(&server, &lead.dev, &request)
            .await
            .expect_error(StatusCode::CONFLICT, codes::CONFLICT);
    }
    assert_eq!(team(&server, &lead.dev).await.epoch, 1);
}

async fn the_actor_a_device_enrolls_with_is_checked_and_listed(backend: Backend) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let lead = coordinator(&server, &ws).await;
    let token = invite(&server, &lead, None).await;
    let mut body = enroll_body(&token, rand::random(), rand::random());
    for bad in [Vec::new(), vec![1; limits::MAX_ACTOR_BYTES + 1]] {
        body.actor = Some(bad);
        let message = enroll_raw(&server, &body)
            .await
            .expect_error(StatusCode::BAD_REQUEST, codes::BAD_REQUEST);
        assert!(message.contains("actor"), "{message}");
    }
    // Neither used the token.
    body.actor = Some(vec![7; 16]);
    let answer = enroll_raw(&server, &body).await;
    assert_eq!(answer.status, StatusCode::OK);
    let joined: EnrollResponse = answer.decode();
    let seen = team(&server, &lead).await;
    let listed = |id: &str| seen.devices.iter().find(|d| d.device_id == id).unwrap();
    assert_eq!(listed(&joined.device_id).actor, Some(vec![7; 16]));
    assert_eq!(listed(&lead.id).actor, None, "declared by none");
}

common::backend_tests!(async:
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
    the_team_log_starts_with_a_genesis_by_an_enrolled_coordinator_and_is_served_from_any_index,
    appends_are_compare_and_swap_on_the_head_and_a_resent_log_is_stored_once,
    entries_that_are_forged_unauthorised_or_disagree_with_enrolment_are_refused,
    the_servers_records_follow_the_log_revocations_roles_and_rotations,
    envelopes_go_only_to_devices_the_log_admits_and_a_rotation_seals_to_all_of_them,
    once_a_log_exists_pushes_follow_its_epoch_and_the_old_key_upload_is_refused,
    the_actor_a_device_enrolls_with_is_checked_and_listed,
);
