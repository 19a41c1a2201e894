//! The wire decoder (`waymark_protocol::decode`) on every body type the server decodes from
//! devices and the client decodes from the server, and the server's pull query parser.

use serde::Serialize;
use serde::de::DeserializeOwned;
use waymark_protocol::{self as proto, decode, encode, limits};
use waymark_server::Limits;
use waymark_server::api::parse_pull_query;

/// Decodes `body` as `T`; a value that decodes must re-encode to bytes that decode to itself,
/// and a refusal must say why.
fn round_trip<T>(body: &[u8])
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    match decode::<T>(body) {
        Ok(value) => {
            let again: T = decode(&encode(&value)).unwrap_or_else(|e| {
                panic!("{value:?} decoded, but its own encoding does not: {e}")
            });
            assert_eq!(again, value, "re-encoding changed the value");
        }
        Err(e) => assert!(!e.message.is_empty(), "a decode error without a reason"),
    }
}

/// The pull query: whatever it parses to stays within the protocol's limits and renders back
/// to a query that parses to the same request.
fn pull_query(raw: &[u8]) {
    let Ok(raw) = std::str::from_utf8(raw) else {
        return;
    };
    let limits = Limits::default();
    match parse_pull_query(Some(raw), &limits) {
        Ok(request) => {
            assert!(request.after <= limits::MAX_CURSOR, "{raw:?}");
            let max = request.max_bytes.unwrap_or(0);
            assert!(max <= limits.pull_max_bytes, "{raw:?}");
            let rendered = request.to_path_and_query();
            let query = rendered.split_once('?').map_or("", |(_, q)| q);
            let again = parse_pull_query(Some(query), &limits)
                .unwrap_or_else(|e| panic!("{rendered} does not parse: {}", e.message));
            assert_eq!(again, request, "{raw:?}");
        }
        Err(e) => {
            assert_eq!(e.status.as_u16(), 400, "{raw:?}");
            assert!(!e.message.is_empty());
        }
    }
}

/// Which decoder the first byte selects.
const DECODERS: u8 = 16;

/// First byte: which decoder; the rest: the body.
pub fn protocol_decode(data: &[u8]) {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % DECODERS {
        // What the server decodes from devices.
        0 => round_trip::<proto::EnrollRequest>(body),
        1 => round_trip::<proto::InviteRequest>(body),
        2 => round_trip::<proto::PushRequest>(body),
        3 => round_trip::<proto::KeysRequest>(body),
        4 => round_trip::<proto::RevokeRequest>(body),
        5 => pull_query(body),
        // What the client decodes from the server.
        6 => round_trip::<proto::PullResponse>(body),
        7 => round_trip::<proto::TeamResponse>(body),
        8 => round_trip::<proto::EnrollResponse>(body),
        9 => round_trip::<proto::InviteResponse>(body),
        10 => round_trip::<proto::PushResponse>(body),
        11 => round_trip::<proto::KeysResponse>(body),
        12 => round_trip::<proto::RevokeResponse>(body),
        13 => round_trip::<proto::AppendRequest>(body),
        14 => round_trip::<proto::AppendResponse>(body),
        _ => round_trip::<proto::ErrorBody>(body),
    }
}

/// Seeds: one real encoding of each type, behind its selector byte.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let with = |which: u8, body: Vec<u8>| {
        let mut out = vec![which];
        out.extend(body);
        out
    };
    let blob = |c: &[u8]| proto::PushBlob {
        content_id: proto::content_id_of(c),
        doc_id: [3; 16],
        epoch: 1,
        ciphertext: c.to_vec(),
        supersedes: Some(4),
        forget: false,
        covers: Vec::new(),
    };
    let envelope = proto::KeyEnvelope {
        device_id: "d2".into(),
        epoch: 2,
        sealed_key: vec![9; 80],
        signer_key: [1; 32],
        signature: [2; 64],
    };
    vec![
        (
            "enroll".into(),
            with(
                0,
                encode(&proto::EnrollRequest {
                    token: "tok".into(),
                    device_name: "phone of Ana".into(),
                    sign_key: [1; 32],
                    box_key: [2; 32],
                    join_proof: Some(vec![5; 32]),
                    actor: None,
                }),
            ),
        ),
        (
            "invite".into(),
            with(
                1,
                encode(&proto::InviteRequest {
                    ttl_seconds: 600,
                    role: Some(proto::roles::MEMBER.into()),
                }),
            ),
        ),
        (
            "push".into(),
            with(
                2,
                encode(&proto::PushRequest {
                    blobs: vec![blob(b"sealed"), blob(b"")],
                }),
            ),
        ),
        (
            "keys".into(),
            with(
                3,
                encode(&proto::KeysRequest {
                    rotate_to: Some(2),
                    envelopes: vec![envelope.clone()],
                }),
            ),
        ),
        (
            "revoke".into(),
            with(
                4,
                encode(&proto::RevokeRequest {
                    device_id: "d2".into(),
                }),
            ),
        ),
        (
            "pull-query".into(),
            with(5, b"after=42&max_bytes=65536".to_vec()),
        ),
        (
            "pull-response".into(),
            with(
                6,
                encode(&proto::PullResponse {
                    blobs: vec![proto::PulledBlob {
                        seq: 7,
                        content_id: [1; 32],
                        doc_id: [2; 16],
                        epoch: 1,
                        ciphertext: vec![0, 1, 2],
                        device_id: "d1".into(),
                    }],
                    more: true,
                    head: 9,
                    team_version: 3,
                    chain_after: None,
                    chain_last: None,
                    chain_head: None,
                    check_ins: 0,
                    tips: 0,
                }),
            ),
        ),
        (
            "team".into(),
            with(
                7,
                encode(&proto::TeamResponse {
                    version: 3,
                    epoch: 2,
                    rotation_needed: false,
                    devices: vec![proto::TeamDevice {
                        device_id: "d2".into(),
                        name: "tablet".into(),
                        role: proto::roles::COORDINATOR.into(),
                        sign_key: [1; 32],
                        box_key: [2; 32],
                        join_proof: None,
                        enrolled_at: 1_764_000_000,
                        revoked_at_seq: Some(12),
                        key_epochs: vec![1, 2],
                        actor: None,
                        last_sync_at: None,
                    }],
                    envelopes: vec![envelope.clone()],
                    log: vec![proto::team_log::SignedEntry {
                        entry: vec![0xa0],
                        signature: [4; 64],
                    }],
                    log_len: 1,
                }),
            ),
        ),
        (
            "append".into(),
            with(
                13,
                encode(&proto::AppendRequest {
                    entries: vec![proto::team_log::SignedEntry {
                        entry: vec![0xa0],
                        signature: [4; 64],
                    }],
                    envelopes: vec![envelope],
                }),
            ),
        ),
        (
            "appended".into(),
            with(14, encode(&proto::AppendResponse { log_len: 2 })),
        ),
        (
            "error".into(),
            with(
                15,
                encode(&proto::ErrorBody {
                    code: proto::codes::BAD_REQUEST.into(),
                    message: "m".into(),
                }),
            ),
        ),
    ]
}
