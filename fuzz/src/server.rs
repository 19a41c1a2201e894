//! The sync server's real router, in process, on a fresh SQLite storage per input, fed arbitrary
//! requests: every route, method, header and body a device (or anyone on the internet) can send.
//!
//! What an operator relies on: no input takes the server down or makes it fail (no 5xx, and it
//! still answers `/healthz` afterwards), and every refusal is a 4xx with a CBOR error body that
//! names a stable code and says what was wrong.

use std::sync::{Arc, OnceLock};

use arbitrary::{Arbitrary, Unstructured};
use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use tower::ServiceExt;
use waymark_protocol::{self as proto, encode};
use waymark_server::{AppState, Limits, SqliteStorage, Storage, app, tokens};

/// The signing key the fuzzer's coordinator device enrolled with (envelopes may claim it).
const COORDINATOR_SIGN_KEY: [u8; 32] = [0x11; 32];

/// One request, described so the fuzzer can reach every handler past its extractors.
#[derive(Debug, Arbitrary)]
pub struct HttpInput {
    method: MethodPick,
    path: PathPick,
    query: Option<String>,
    auth: AuthPick,
    content_type: Option<ContentTypePick>,
    declared_length: Option<u64>,
    body: BodyPick,
}

#[derive(Debug, Arbitrary)]
enum MethodPick {
    Get,
    Post,
    Put,
    Delete,
    Head,
    Options,
    Patch,
}

#[derive(Debug, Arbitrary)]
enum PathPick {
    Enroll,
    Invites,
    Push,
    Pull,
    Team,
    TeamLog,
    Keys,
    Revoke,
    Healthz,
    Metrics,
    Other(String),
}

#[derive(Debug, Arbitrary)]
enum AuthPick {
    None,
    Coordinator,
    Member,
    LowercaseScheme,
    Raw(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
enum ContentTypePick {
    Cbor,
    CborWithParameters,
    Raw(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
enum DevicePick {
    Coordinator,
    Member,
    Other(String),
}

#[derive(Debug, Arbitrary)]
struct BlobPick {
    doc_id: [u8; 16],
    epoch: u32,
    ciphertext: Vec<u8>,
    supersedes: Option<u64>,
    forget: bool,
    covers: Vec<u8>,
    wrong_content_id: Option<[u8; 32]>,
}

#[derive(Debug, Arbitrary)]
struct EnvelopePick {
    device: DevicePick,
    epoch: u32,
    sealed_key: Vec<u8>,
    signer_is_caller: bool,
    signer_key: [u8; 32],
    signature: [u8; 64],
}

#[derive(Debug, Arbitrary)]
enum BodyPick {
    None,
    Raw(Vec<u8>),
    Enroll {
        valid_token: bool,
        token: String,
        device_name: String,
        sign_key: [u8; 32],
        box_key: [u8; 32],
        join_proof: Option<Vec<u8>>,
    },
    Invite {
        ttl_seconds: u64,
        role: Option<String>,
    },
    Push(Vec<BlobPick>),
    Keys {
        rotate_to: Option<u32>,
        envelopes: Vec<EnvelopePick>,
    },
    Revoke(DevicePick),
}

/// A fresh server: storage, router, and two enrolled devices.
struct Fresh {
    router: Router,
    coordinator: proto::EnrollResponse,
    member: proto::EnrollResponse,
    enrollment_token: String,
    // Last: removed after the database closes.
    _dir: tempfile::TempDir,
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("no tokio runtime: {e}"))
    })
}

async fn send(router: &Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let response = router
        .clone()
        .oneshot(req)
        .await
        .unwrap_or_else(|e| match e {});
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap_or_else(|e| panic!("the response body could not be read: {e}"))
        .to_vec();
    (status, headers, body)
}

/// Issues an enrollment token as the operator does (`token issue`).
fn operator_token(storage: &dyn Storage, workspace: &str, role: &str) -> String {
    let token = tokens::new_token();
    storage
        .issue_enrollment_token(
            workspace,
            &tokens::hash_token(&token),
            tokens::now() + 3600,
            None,
            role,
            tokens::now(),
        )
        .unwrap_or_else(|e| panic!("issuing a token failed: {e}"));
    token
}

async fn enroll(
    router: &Router,
    token: String,
    name: &str,
    sign_key: [u8; 32],
    box_key: [u8; 32],
) -> proto::EnrollResponse {
    let req = Request::post(proto::PATH_ENROLL)
        .header("content-type", proto::CONTENT_TYPE_CBOR)
        .body(Body::from(encode(&proto::EnrollRequest {
            token,
            device_name: name.into(),
            sign_key,
            box_key,
            join_proof: None,
            actor: None,
        })))
        .unwrap_or_else(|e| panic!("{e}"));
    let (status, _, body) = send(router, req).await;
    assert_eq!(status, StatusCode::OK, "fixture enrollment failed");
    proto::decode(&body).unwrap_or_else(|e| panic!("fixture enrollment answer: {e}"))
}

/// A server database with a workspace, an enrolled coordinator and member, and an unused
/// enrollment token, made once per process: each input gets a copy (making one through the
/// router takes far longer than copying it).
struct Template {
    db: Vec<u8>,
    coordinator: proto::EnrollResponse,
    member: proto::EnrollResponse,
    enrollment_token: String,
}

const DB_FILE: &str = "server.sqlite3";

fn template() -> &'static Template {
    static TEMPLATE: OnceLock<Template> = OnceLock::new();
    TEMPLATE.get_or_init(|| runtime().block_on(make_template()))
}

async fn make_template() -> Template {
    let dir = crate::client::scratch_dir();
    let path = dir.path().join(DB_FILE);
    let storage: Arc<dyn Storage> =
        Arc::new(SqliteStorage::open(&path).unwrap_or_else(|e| panic!("storage: {e}")));
    let workspace = storage
        .create_workspace(Some("fuzz"), tokens::now())
        .unwrap_or_else(|e| panic!("workspace: {e}"))
        .id;
    let state = AppState::new(Arc::clone(&storage), Limits::unlimited_rate())
        .unwrap_or_else(|e| panic!("state: {e}"));
    let router = app(state);
    let coordinator = enroll(
        &router,
        operator_token(storage.as_ref(), &workspace, proto::roles::COORDINATOR),
        "coordinator",
        COORDINATOR_SIGN_KEY,
        [0x12; 32],
    )
    .await;
    let member = enroll(
        &router,
        operator_token(storage.as_ref(), &workspace, proto::roles::MEMBER),
        "member",
        [0x33; 32],
        [0x34; 32],
    )
    .await;
    let enrollment_token = operator_token(storage.as_ref(), &workspace, proto::roles::MEMBER);
    // Closing the database checkpoints its write-ahead log into the file.
    drop(router);
    drop(storage);
    assert!(
        !dir.path().join(format!("{DB_FILE}-wal")).exists(),
        "the template database kept a write-ahead log"
    );
    Template {
        db: std::fs::read(&path).unwrap_or_else(|e| panic!("reading the template: {e}")),
        coordinator,
        member,
        enrollment_token,
    }
}

/// A fresh server on a copy of the template database.
fn fresh(t: &Template) -> Fresh {
    let dir = crate::client::scratch_dir();
    let path = dir.path().join(DB_FILE);
    std::fs::write(&path, &t.db).unwrap_or_else(|e| panic!("copying the template: {e}"));
    let storage: Arc<dyn Storage> =
        Arc::new(SqliteStorage::open(&path).unwrap_or_else(|e| panic!("storage: {e}")));
    let state =
        AppState::new(storage, Limits::unlimited_rate()).unwrap_or_else(|e| panic!("state: {e}"));
    Fresh {
        _dir: dir,
        router: app(state),
        coordinator: t.coordinator.clone(),
        member: t.member.clone(),
        enrollment_token: t.enrollment_token.clone(),
    }
}

impl Fresh {
    fn device_id(&self, d: &DevicePick) -> String {
        match d {
            DevicePick::Coordinator => self.coordinator.device_id.clone(),
            DevicePick::Member => self.member.device_id.clone(),
            DevicePick::Other(s) => s.clone(),
        }
    }

    fn body(&self, b: &BodyPick) -> Option<Vec<u8>> {
        Some(match b {
            BodyPick::None => return None,
            BodyPick::Raw(bytes) => bytes.clone(),
            BodyPick::Enroll {
                valid_token,
                token,
                device_name,
                sign_key,
                box_key,
                join_proof,
            } => encode(&proto::EnrollRequest {
                token: if *valid_token {
                    self.enrollment_token.clone()
                } else {
                    token.clone()
                },
                device_name: device_name.clone(),
                sign_key: *sign_key,
                box_key: *box_key,
                join_proof: join_proof.clone(),
                actor: None,
            }),
            BodyPick::Invite { ttl_seconds, role } => encode(&proto::InviteRequest {
                ttl_seconds: *ttl_seconds,
                role: role.clone(),
            }),
            BodyPick::Push(blobs) => encode(&proto::PushRequest {
                blobs: blobs
                    .iter()
                    .map(|b| proto::PushBlob {
                        content_id: b
                            .wrong_content_id
                            .unwrap_or_else(|| proto::content_id_of(&b.ciphertext)),
                        doc_id: b.doc_id,
                        epoch: b.epoch,
                        ciphertext: b.ciphertext.clone(),
                        supersedes: b.supersedes,
                        forget: b.forget,
                        covers: b.covers.clone(),
                    })
                    .collect(),
            }),
            BodyPick::Keys {
                rotate_to,
                envelopes,
            } => encode(&proto::KeysRequest {
                rotate_to: *rotate_to,
                envelopes: envelopes
                    .iter()
                    .map(|e| proto::KeyEnvelope {
                        device_id: self.device_id(&e.device),
                        epoch: e.epoch,
                        sealed_key: e.sealed_key.clone(),
                        signer_key: if e.signer_is_caller {
                            COORDINATOR_SIGN_KEY
                        } else {
                            e.signer_key
                        },
                        signature: e.signature,
                    })
                    .collect(),
            }),
            BodyPick::Revoke(d) => encode(&proto::RevokeRequest {
                device_id: self.device_id(d),
            }),
        })
    }

    fn request(&self, input: &HttpInput) -> Option<Request<Body>> {
        let method = match input.method {
            MethodPick::Get => Method::GET,
            MethodPick::Post => Method::POST,
            MethodPick::Put => Method::PUT,
            MethodPick::Delete => Method::DELETE,
            MethodPick::Head => Method::HEAD,
            MethodPick::Options => Method::OPTIONS,
            MethodPick::Patch => Method::PATCH,
        };
        let path = match &input.path {
            PathPick::Enroll => proto::PATH_ENROLL.to_owned(),
            PathPick::Invites => proto::PATH_INVITES.to_owned(),
            PathPick::Push => proto::PATH_PUSH.to_owned(),
            PathPick::Pull => proto::PATH_PULL.to_owned(),
            PathPick::Team => proto::PATH_TEAM.to_owned(),
            PathPick::TeamLog => proto::PATH_TEAM_LOG.to_owned(),
            PathPick::Keys => proto::PATH_KEYS.to_owned(),
            PathPick::Revoke => proto::PATH_REVOKE.to_owned(),
            PathPick::Healthz => proto::PATH_HEALTHZ.to_owned(),
            PathPick::Metrics => proto::PATH_METRICS.to_owned(),
            PathPick::Other(p) => format!("/{}", p.trim_start_matches('/')),
        };
        let uri = match &input.query {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        let mut req = Request::builder().method(method).uri(uri);
        let bearer = |t: &str| format!("{}{t}", proto::BEARER_PREFIX).into_bytes();
        let auth = match &input.auth {
            AuthPick::None => None,
            AuthPick::Coordinator => Some(bearer(&self.coordinator.device_token)),
            AuthPick::Member => Some(bearer(&self.member.device_token)),
            AuthPick::LowercaseScheme => {
                Some(format!("bearer {}", self.member.device_token).into_bytes())
            }
            AuthPick::Raw(bytes) => Some(bytes.clone()),
        };
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        match &input.content_type {
            None => {}
            Some(ContentTypePick::Cbor) => {
                req = req.header("content-type", proto::CONTENT_TYPE_CBOR)
            }
            Some(ContentTypePick::CborWithParameters) => {
                req = req.header("content-type", "Application/CBOR; charset=binary")
            }
            Some(ContentTypePick::Raw(bytes)) => req = req.header("content-type", bytes.as_slice()),
        }
        if let Some(len) = input.declared_length {
            req = req.header("content-length", len);
        }
        let body = self.body(&input.body).map_or_else(Body::empty, Body::from);
        // A request the HTTP layer could never deliver (an invalid URI or header value) is not
        // the router's to answer.
        req.body(body).ok()
    }
}

/// Whether `code` looks like a stable machine code (`snake_case` ASCII).
fn is_machine_code(code: &str) -> bool {
    !code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

/// Sends the decoded request to a fresh server and checks the answer.
pub fn http_request(data: &[u8]) {
    let Ok(input) = HttpInput::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let server = fresh(template());
    runtime().block_on(async {
        let Some(req) = server.request(&input) else {
            return;
        };
        // HEAD answers carry no body to check.
        let versioned =
            req.uri().path().starts_with(proto::API_PREFIX) && req.method() != Method::HEAD;
        let (status, headers, body) = send(&server.router, req).await;
        assert!(
            !status.is_server_error(),
            "{status} for {input:?}: {:?}",
            proto::decode::<proto::ErrorBody>(&body)
        );
        assert!(
            headers.contains_key(proto::HEADER_REQUEST_ID),
            "no request id"
        );
        if status.is_client_error() && versioned {
            let error: proto::ErrorBody = proto::decode(&body)
                .unwrap_or_else(|e| panic!("{status} without a CBOR error body ({e}): {input:?}"));
            assert!(is_machine_code(&error.code), "{error:?}");
            assert!(!error.message.is_empty(), "{error:?}");
        }
        if status.is_success() && versioned && !body.is_empty() {
            let decodes = match input.path {
                PathPick::Enroll => proto::decode::<proto::EnrollResponse>(&body).is_ok(),
                PathPick::Invites => proto::decode::<proto::InviteResponse>(&body).is_ok(),
                PathPick::Push => proto::decode::<proto::PushResponse>(&body).is_ok(),
                PathPick::Pull => proto::decode::<proto::PullResponse>(&body).is_ok(),
                PathPick::Team => proto::decode::<proto::TeamResponse>(&body).is_ok(),
                PathPick::TeamLog => proto::decode::<proto::AppendResponse>(&body).is_ok(),
                PathPick::Keys => proto::decode::<proto::KeysResponse>(&body).is_ok(),
                PathPick::Revoke => proto::decode::<proto::RevokeResponse>(&body).is_ok(),
                _ => true,
            };
            assert!(decodes, "{status} with an undecodable answer for {input:?}");
        }
        // Still serving.
        let health = Request::get(proto::PATH_HEALTHZ)
            .body(Body::empty())
            .unwrap_or_else(|e| panic!("{e}"));
        let (status, _, _) = send(&server.router, health).await;
        assert_eq!(status, StatusCode::OK, "unhealthy after {input:?}");
    });
}
