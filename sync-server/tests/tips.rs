//! Anonymous tips on the server (docs/0008-tips.md), as coordinators' devices and tipsters'
//! browsers use them: only a coordinator's device handles tips and publishes the page, signed
//! with its own key for its own workspace; the page is served with its key and strict headers;
//! a tip is stored as it came, counted in coordinators' pulls, listed and deleted when done;
//! sizes, formats, the queue's cap and the rate limits are enforced; replies go back to the
//! tipster by the receipt's lookup; a page moved leaves nothing at its old path.
//!
//! The router tests run against every storage backend (the `backend_tests!` lists at the
//! bottom). Then the page itself, in headless Chromium: it seals a tip that opens with the
//! coordinators' `crypto_box` into exactly what docs/0008-tips.md says, and opens a reply sealed
//! to its receipt. And the real binary: nothing of the tipster (address, user agent) reaches its
//! logs or its database, nor the page's path its logs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use base64::Engine as _;
use common::{Answer, Backend, TestServer};
use ed25519_dalek::{Signer as _, SigningKey};
use serde_json::Value;
use sha2::{Digest, Sha512};
use waymark_protocol::{
    EnrollRequest, EnrollResponse, PullResponse, TipEntry, TipPageLanguage, TipPageRequest,
    TipPageStatement, TipReplyRequest, TipsDoneRequest, TipsResponse, codes, decode, encode,
    limits, roles, tip_labels,
};
use waymark_server::{Limits, tokens};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The tip public key the router tests publish (the server never opens tips).
const TIP_KEY: [u8; 32] = [9; 32];

/// The CSP the page is served with.
const PAGE_CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; connect-src 'self'; img-src data:; form-action 'none'; \
     base-uri 'none'; frame-ancestors 'none'";

/// An enrolled device whose signing key the test holds.
struct Signer {
    device: EnrollResponse,
    key: SigningKey,
}

impl Signer {
    fn token(&self) -> &str {
        &self.device.device_token
    }
}

async fn signer(server: &TestServer, ws: &str, role: &str) -> Signer {
    let key = SigningKey::from_bytes(&rand::random());
    let token = tokens::new_token();
    server
        .storage()
        .issue_enrollment_token(
            ws,
            &tokens::hash_token(&token),
            tokens::now() + 3600,
            None,
            role,
            tokens::now(),
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
                sign_key: key.verifying_key().to_bytes(),
                box_key: rand::random(),
                join_proof: None,
                actor: None,
            })),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    Signer {
        device: answer.decode(),
        key,
    }
}

/// A fresh page path: 26 characters of lowercase base32.
fn page_path() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    (0..limits::TIP_PAGE_CHARS)
        .map(|_| char::from(ALPHABET[usize::from(rand::random::<u8>() % 32)]))
        .collect()
}

fn labels(prefix: &str) -> BTreeMap<String, String> {
    tip_labels::ALL
        .iter()
        .map(|name| ((*name).to_owned(), format!("{prefix} {name}")))
        .collect()
}

fn statement(ws: &str, page: &str) -> TipPageStatement {
    TipPageStatement {
        workspace_id: ws.to_owned(),
        page: page.to_owned(),
        epoch: 2,
        public_key: TIP_KEY,
        languages: vec![TipPageLanguage {
            code: "en".into(),
            labels: labels("EN"),
        }],
        signed_at: 1_765_000_000_000,
    }
}

fn signed(by: &Signer, statement: &TipPageStatement) -> TipPageRequest {
    let bytes = encode(statement);
    TipPageRequest {
        signature: by.key.sign(&bytes).to_bytes().to_vec(),
        statement: bytes,
        device_id: by.device.device_id.clone(),
    }
}

async fn put_page(server: &TestServer, by: &Signer, request: &TipPageRequest) -> Answer {
    server
        .send(
            Method::PUT,
            "/v1/tips/page",
            Some(by.token()),
            Some(encode(request)),
        )
        .await
}

/// Publishes a page for `by`'s workspace at a fresh path; returns the path.
async fn publish(server: &TestServer, by: &Signer) -> String {
    let page = page_path();
    let answer = put_page(
        server,
        by,
        &signed(by, &statement(&by.device.workspace_id, &page)),
    )
    .await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "{:?}",
        error_message(&answer)
    );
    page
}

fn error_message(answer: &Answer) -> String {
    decode::<waymark_protocol::ErrorBody>(&answer.body)
        .map(|e| e.message)
        .unwrap_or_default()
}

/// A request to a public route, from `from` (a peer address, as the real server sets it) when
/// given.
async fn public(
    server: &TestServer,
    method: Method,
    path: &str,
    from: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Answer {
    let mut builder = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let mut req = builder
        .body(body.map_or_else(Body::empty, Body::from))
        .unwrap();
    if let Some(ip) = from {
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::new(ip.parse().unwrap(), 40_000)));
    }
    server.request(req).await
}

/// The JSON a browser posts for a tip sealed as `sealed`.
fn tip_json(sealed: &[u8]) -> Vec<u8> {
    serde_json::json!({
        "epoch": 2,
        "ephemeral": B64.encode([1u8; 32]),
        "nonce": B64.encode([2u8; 24]),
        "sealed": B64.encode(sealed),
    })
    .to_string()
    .into_bytes()
}

async fn post_tip(server: &TestServer, page: &str, body: Vec<u8>, from: Option<&str>) -> Answer {
    public(
        server,
        Method::POST,
        &format!("/t/{page}/tips"),
        from,
        &[("content-type", "text/plain")],
        Some(body),
    )
    .await
}

/// Asserts what every public answer carries.
#[track_caller]
fn assert_public_headers(answer: &Answer) {
    for (name, value) in [
        ("access-control-allow-origin", "*"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
        ("x-content-type-options", "nosniff"),
    ] {
        assert_eq!(
            answer.headers.get(name).map(|v| v.to_str().unwrap()),
            Some(value),
            "{name} on a {} answer",
            answer.status
        );
    }
}

/// Asserts a public error answer: JSON with this status and code, and the public headers.
#[track_caller]
fn expect_public_error(answer: &Answer, status: StatusCode, code: &str) -> String {
    assert_public_headers(answer);
    let body: Value = serde_json::from_slice(&answer.body).unwrap_or_else(|err| {
        panic!(
            "{}: not JSON ({err}): {:?}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        )
    });
    assert_eq!(
        (answer.status, body["code"].as_str().unwrap()),
        (status, code),
        "{body}"
    );
    assert_eq!(
        answer.headers.get("content-type").unwrap(),
        "application/json"
    );
    body["message"].as_str().unwrap().to_owned()
}

async fn list_tips(server: &TestServer, token: &str) -> Vec<TipEntry> {
    let answer = server
        .send(Method::GET, "/v1/tips", Some(token), None)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", error_message(&answer));
    answer.decode::<TipsResponse>().tips
}

async fn done(server: &TestServer, token: &str, ids: Vec<u64>) {
    let answer = server
        .send(
            Method::POST,
            "/v1/tips/done",
            Some(token),
            Some(encode(&TipsDoneRequest { ids })),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", error_message(&answer));
    // No fields to report: CBOR null, which a client reads as anything it ignores.
    assert_eq!(answer.body, [0xf6]);
}

async fn pulled_tips(server: &TestServer, token: &str) -> u64 {
    server.pull(token, 0, None).await.tips
}

async fn only_a_coordinators_device_handles_tips_and_any_device_reads_the_page(backend: Backend) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let ana = signer(&server, &ws, roles::COORDINATOR).await;
    let ben = signer(&server, &ws, roles::MEMBER).await;

    // Before any page: nothing to read, for anyone.
    for who in [&ana, &ben] {
        server
            .send(Method::GET, "/v1/tips/page", Some(who.token()), None)
            .await
            .expect_error(StatusCode::NOT_FOUND, codes::NOT_FOUND);
    }
    // A member's device may do none of it, its own signature notwithstanding.
    let page = page_path();
    let by_ben = signed(&ben, &statement(&ws, &page));
    let refusals = [
        put_page(&server, &ben, &by_ben).await,
        server
            .send(Method::GET, "/v1/tips", Some(ben.token()), None)
            .await,
        server
            .send(
                Method::POST,
                "/v1/tips/done",
                Some(ben.token()),
                Some(encode(&TipsDoneRequest { ids: vec![1] })),
            )
            .await,
        server
            .send(
                Method::POST,
                "/v1/tips/replies",
                Some(ben.token()),
                Some(encode(&reply_request([1; 16], b"a sealed reply!!!"))),
            )
            .await,
    ];
    for answer in refusals {
        let message = answer.expect_error(StatusCode::FORBIDDEN, codes::FORBIDDEN);
        assert!(message.contains("coordinator"), "{message}");
    }
    assert_eq!(
        public(&server, Method::GET, &format!("/t/{page}"), None, &[], None)
            .await
            .status,
        StatusCode::NOT_FOUND,
        "the member's page was not published"
    );

    // The coordinator's is; every device of the workspace reads it back as signed.
    let by_ana = signed(&ana, &statement(&ws, &page));
    let answer = put_page(&server, &ana, &by_ana).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", error_message(&answer));
    assert_eq!(answer.body, [0xf6]);
    for who in [&ana, &ben] {
        let answer = server
            .send(Method::GET, "/v1/tips/page", Some(who.token()), None)
            .await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.decode::<TipPageRequest>(), by_ana);
    }
    // Another workspace has none.
    let other = server.workspace();
    let carl = signer(&server, &other, roles::COORDINATOR).await;
    server
        .send(Method::GET, "/v1/tips/page", Some(carl.token()), None)
        .await
        .expect_error(StatusCode::NOT_FOUND, codes::NOT_FOUND);
    // Unauthenticated, the device routes answer 401.
    server
        .send(Method::GET, "/v1/tips", None, None)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, codes::UNAUTHORIZED);
}

async fn a_page_is_published_only_signed_by_the_caller_for_its_workspace_at_a_free_path(
    backend: Backend,
) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let ana = signer(&server, &ws, roles::COORDINATOR).await;
    let dora = signer(&server, &ws, roles::COORDINATOR).await;
    let page = page_path();
    let good = statement(&ws, &page);

    let mut flipped = signed(&ana, &good);
    flipped.signature[10] ^= 1;
    let mut by_dora_as_ana = signed(&dora, &good);
    by_dora_as_ana.device_id = ana.device.device_id.clone();
    let mut short = signed(&ana, &good);
    short.signature.truncate(63);
    let cases: Vec<(TipPageRequest, &str)> = vec![
        (flipped, "signature"),
        (by_dora_as_ana, "signature"),
        (signed(&dora, &good), "device_id"),
        (short, "64 bytes"),
        (
            signed(
                &ana,
                &TipPageStatement {
                    workspace_id: server.workspace(),
                    ..good.clone()
                },
            ),
            "another workspace",
        ),
        (
            signed(
                &ana,
                &TipPageStatement {
                    page: page.to_uppercase(),
                    ..good.clone()
                },
            ),
            "base32",
        ),
        (
            signed(
                &ana,
                &TipPageStatement {
                    page: format!("{}1", &page[..25]),
                    ..good.clone()
                },
            ),
            "base32",
        ),
        (
            signed(
                &ana,
                &TipPageStatement {
                    page: format!("{page}a"),
                    ..good.clone()
                },
            ),
            "base32",
        ),
        (
            signed(
                &ana,
                &TipPageStatement {
                    languages: vec![TipPageLanguage {
                        code: "en".into(),
                        labels: BTreeMap::from([("onload".into(), "x".into())]),
                    }],
                    ..good.clone()
                },
            ),
            "no label",
        ),
        (
            signed(
                &ana,
                &TipPageStatement {
                    languages: vec![],
                    ..good.clone()
                },
            ),
            "languages",
        ),
    ];
    for (request, needle) in cases {
        let message = put_page(&server, &ana, &request)
            .await
            .expect_error(StatusCode::BAD_REQUEST, codes::BAD_REQUEST);
        assert!(message.contains(needle), "{message:?} lacks {needle:?}");
    }
    // Longer than a statement may be: 413, before anything is checked.
    let mut huge = good.clone();
    huge.languages[0]
        .labels
        .insert("intro".into(), "x".repeat(limits::MAX_TIP_STATEMENT_BYTES));
    put_page(&server, &ana, &signed(&ana, &huge))
        .await
        .expect_error(StatusCode::PAYLOAD_TOO_LARGE, codes::TOO_LARGE);
    server
        .send(Method::GET, "/v1/tips/page", Some(ana.token()), None)
        .await
        .expect_error(StatusCode::NOT_FOUND, codes::NOT_FOUND);

    // Published; another workspace may not take its path, even signed properly.
    assert_eq!(
        put_page(&server, &ana, &signed(&ana, &good)).await.status,
        StatusCode::OK
    );
    let other = server.workspace();
    let carl = signer(&server, &other, roles::COORDINATOR).await;
    let message = put_page(&server, &carl, &signed(&carl, &statement(&other, &page)))
        .await
        .expect_error(StatusCode::CONFLICT, codes::CONFLICT);
    assert!(message.contains("another workspace"), "{message}");
    // A revoked coordinator's device publishes nothing more.
    server
        .storage()
        .revoke_device(&dora.device.device_id, tokens::now())
        .unwrap();
    put_page(
        &server,
        &dora,
        &signed(&dora, &statement(&ws, &page_path())),
    )
    .await
    .expect_error(StatusCode::UNAUTHORIZED, codes::DEVICE_REVOKED);
    let served: TipPageRequest = server
        .send(Method::GET, "/v1/tips/page", Some(ana.token()), None)
        .await
        .decode();
    assert_eq!(served, signed(&ana, &good));
}

/// The configuration the page carries, parsed back.
fn page_config(html: &str) -> Value {
    let json = html
        .split_once("<script type=\"application/json\" id=\"tip-config\">")
        .unwrap()
        .1
        .split_once("</script>")
        .unwrap()
        .0;
    serde_json::from_str(json).unwrap()
}

async fn a_published_page_is_served_with_its_key_and_strict_headers(backend: Backend) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let ana = signer(&server, &ws, roles::COORDINATOR).await;
    let page = page_path();
    let mut two = statement(&ws, &page);
    two.languages.push(TipPageLanguage {
        code: "fr".into(),
        labels: BTreeMap::from([("title".into(), "Signaler </script> & <b>".into())]),
    });
    assert_eq!(
        put_page(&server, &ana, &signed(&ana, &two)).await.status,
        StatusCode::OK
    );

    let answer = public(
        &server,
        Method::GET,
        &format!("/t/{page}"),
        None,
        &[("host", "tips.test:8080")],
        None,
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_public_headers(&answer);
    assert_eq!(
        answer.headers.get("content-security-policy").unwrap(),
        PAGE_CSP
    );
    assert_eq!(
        answer.headers.get("content-type").unwrap(),
        "text/html; charset=utf-8"
    );
    let html = String::from_utf8(answer.body.clone()).unwrap();
    let config = page_config(&html);
    assert_eq!(config["server"], "http://tips.test:8080");
    assert_eq!(config["page"], page.as_str());
    assert_eq!(config["epoch"], 2);
    assert_eq!(config["public_key"], B64.encode(TIP_KEY));
    assert_eq!(config["languages"][0]["code"], "en");
    assert_eq!(config["languages"][0]["labels"]["no_reply"], "EN no_reply");
    assert_eq!(
        config["languages"][1]["labels"]["title"],
        "Signaler </script> & <b>"
    );
    assert!(!html.contains("<b>"), "a label reached the markup");
    // Self-contained: no URL but the form's own, nothing loaded from anywhere.
    for bad in [
        "src=",
        "href=\"http",
        "@import",
        "url(",
        "//cdn",
        "https://",
    ] {
        assert!(!html.contains(bad), "the page contains {bad}");
    }
    assert!(html.contains("<meta name=\"viewport\""));
    for id in [
        "what",
        "where",
        "when",
        "contact",
        "send",
        "lang",
        "code",
        "check",
        "receipt",
        "fingerprint",
        "replies",
    ] {
        assert!(html.contains(&format!("id=\"{id}\"")), "no element {id}");
    }

    // Behind a trusted proxy that says HTTPS, the page posts over HTTPS; a client's own say-so
    // changes nothing.
    let proto = [("host", "tips.example.org"), ("x-forwarded-proto", "https")];
    let path = format!("/t/{page}");
    let via_proxy = public(&server, Method::GET, &path, Some("127.0.0.1"), &proto, None).await;
    assert_eq!(
        page_config(std::str::from_utf8(&via_proxy.body).unwrap())["server"],
        "https://tips.example.org"
    );
    let direct = public(
        &server,
        Method::GET,
        &path,
        Some("203.0.113.5"),
        &proto,
        None,
    )
    .await;
    assert_eq!(
        page_config(std::str::from_utf8(&direct.body).unwrap())["server"],
        "http://tips.example.org"
    );

    // Unknown and malformed paths: 404, in JSON, with the same headers.
    for path in [
        format!("/t/{}", page_path()),
        "/t/short".to_owned(),
        format!("/t/{page}/nothing"),
        "/t".to_owned(),
    ] {
        let answer = public(&server, Method::GET, &path, None, &[], None).await;
        expect_public_error(&answer, StatusCode::NOT_FOUND, codes::NOT_FOUND);
    }
}

async fn the_page_posts_to_the_configured_public_url(backend: Backend) {
    let server = TestServer::with_limits(
        backend,
        Limits {
            public_url: Some("https://tips.example.org/waymark".into()),
            ..Limits::unlimited_rate()
        },
    );
    let ws = server.workspace();
    let ana = signer(&server, &ws, roles::COORDINATOR).await;
    let page = publish(&server, &ana).await;
    let answer = public(
        &server,
        Method::GET,
        &format!("/t/{page}"),
        None,
        &[("host", "10.0.0.7:7878")],
        None,
    )
    .await;
    assert_eq!(
        page_config(std::str::from_utf8(&answer.body).unwrap())["server"],
        "https://tips.example.org/waymark"
    );
}

async fn a_tip_is_stored_as_posted_counted_for_coordinators_and_deleted_when_done(
    backend: Backend,
) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let ana = signer(&server, &ws, roles::COORDINATOR).await;
    let dora = signer(&server, &ws, roles::COORDINATOR).await;
    let ben = signer(&server, &ws, roles::MEMBER).await;
    let page = publish(&server, &ana).await;
    assert_eq!(pulled_tips(&server, ana.token()).await, 0);
    assert!(list_tips(&server, ana.token()).await.is_empty());

    let before = tokens::now();
    let first = post_tip(
        &server,
        &page,
        tip_json(b"first sealed tip, opaque here"),
        None,
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_public_headers(&first);
    assert_eq!(
        first.headers.get("content-type").unwrap(),
        "application/json"
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&first.body).unwrap(),
        serde_json::json!({"received": true})
    );
    // Any content type: a browser's text/plain, JSON, or none at all.
    for content_type in [Some("application/json"), None] {
        let headers: Vec<(&str, &str)> = content_type
            .map(|c| ("content-type", c))
            .into_iter()
            .collect();
        let answer = public(
            &server,
            Method::POST,
            &format!("/t/{page}/tips"),
            None,
            &headers,
            Some(tip_json(
                format!("a later sealed tip {content_type:?}").as_bytes(),
            )),
        )
        .await;
        assert_eq!(answer.status, StatusCode::CREATED);
    }

    // Coordinators' pulls count them; a member's says nothing of them.
    assert_eq!(pulled_tips(&server, ana.token()).await, 3);
    assert_eq!(pulled_tips(&server, dora.token()).await, 3);
    assert_eq!(pulled_tips(&server, ben.token()).await, 0);
    let raw = server
        .send(Method::GET, "/v1/pull?after=0", Some(ben.token()), None)
        .await;
    assert_eq!(raw.decode::<PullResponse>().tips, 0);

    let tips = list_tips(&server, ana.token()).await;
    assert_eq!(tips.len(), 3);
    let ids: Vec<u64> = tips.iter().map(|t| t.id).collect();
    assert_eq!(ids, vec![1, 2, 3], "oldest first");
    let tip = &tips[0];
    assert_eq!(tip.received_hour % 3600, 0, "only the hour is kept");
    let hour = |t: i64| u64::try_from(t - t.rem_euclid(3600)).unwrap();
    assert!((hour(before)..=hour(tokens::now())).contains(&tip.received_hour));
    assert_eq!(tip.submission.epoch, 2);
    assert_eq!(tip.submission.ephemeral, B64.encode([1u8; 32]));
    assert_eq!(tip.submission.nonce, B64.encode([2u8; 24]));
    assert_eq!(
        B64.decode(&tip.submission.sealed).unwrap(),
        b"first sealed tip, opaque here"
    );

    // Another workspace's coordinator sees none of them and cannot delete them.
    let other = server.workspace();
    let carl = signer(&server, &other, roles::COORDINATOR).await;
    assert!(list_tips(&server, carl.token()).await.is_empty());
    done(&server, carl.token(), vec![1, 2, 3]).await;
    assert_eq!(pulled_tips(&server, ana.token()).await, 3);

    // Done: deleted, whoever of the coordinators says so; unknown numbers are ignored.
    done(&server, dora.token(), vec![1, 99, u64::MAX]).await;
    assert_eq!(pulled_tips(&server, ana.token()).await, 2);
    done(&server, ana.token(), vec![1, 2]).await;
    assert_eq!(pulled_tips(&server, ana.token()).await, 1);
    let left = list_tips(&server, ana.token()).await;
    assert_eq!(left.iter().map(|t| t.id).collect::<Vec<_>>(), vec![3]);
    // Numbers are never given twice: a late "done" for a deleted tip cannot hit a new one.
    post_tip(&server, &page, tip_json(b"fourth sealed tip"), None).await;
    done(&server, ana.token(), vec![1, 2]).await;
    let left = list_tips(&server, ana.token()).await;
    assert_eq!(left.iter().map(|t| t.id).collect::<Vec<_>>(), vec![3, 4]);
    done(&server, ana.token(), vec![3, 4]).await;
    assert_eq!(pulled_tips(&server, ana.token()).await, 0);
    assert!(list_tips(&server, ana.token()).await.is_empty());
}

async fn submissions_of_the_wrong_size_or_form_are_refused_and_store_nothing(backend: Backend) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let ana = signer(&server, &ws, roles::COORDINATOR).await;
    let page = publish(&server, &ana).await;
    let with = |ephemeral: &[u8], nonce: &[u8], sealed: &[u8]| {
        serde_json::json!({
            "epoch": 1,
            "ephemeral": B64.encode(ephemeral),
            "nonce": B64.encode(nonce),
            "sealed": B64.encode(sealed),
        })
        .to_string()
        .into_bytes()
    };
    let unpadded = String::from_utf8(tip_json(b"seventeen bytes!!"))
        .unwrap()
        .replace('=', "")
        .into_bytes();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"not json at all".to_vec(), "JSON"),
        (br#"{"epoch":1,"ephemeral":"AA=="}"#.to_vec(), "JSON"),
        (with(&[1; 31], &[2; 24], &[3; 16]), "ephemeral"),
        (with(&[1; 33], &[2; 24], &[3; 16]), "ephemeral"),
        (with(&[1; 32], &[2; 12], &[3; 16]), "nonce"),
        (with(&[1; 32], &[2; 24], &[3; 15]), "sealed"),
        (with(&[1; 32], &[2; 24], &[]), "sealed"),
        (
            with(&[1; 32], &[2; 24], &[3; limits::MAX_TIP_SEALED_BYTES + 1]),
            "sealed",
        ),
        (unpadded, "base64"),
        (
            br#"{"epoch":1,"ephemeral":"not*base64","nonce":"x","sealed":"y"}"#.to_vec(),
            "ephemeral",
        ),
    ];
    for (body, needle) in cases {
        let answer = post_tip(&server, &page, body, None).await;
        let message = expect_public_error(&answer, StatusCode::BAD_REQUEST, codes::BAD_REQUEST);
        assert!(message.contains(needle), "{message:?} lacks {needle:?}");
    }
    // Over 64 KiB: 413, whether the length is declared or not.
    let huge = vec![b' '; limits::MAX_TIP_BODY_BYTES + 1];
    let answer = post_tip(&server, &page, huge.clone(), None).await;
    expect_public_error(&answer, StatusCode::PAYLOAD_TOO_LARGE, codes::TOO_LARGE);
    let answer = server
        .request(
            Request::post(format!("/t/{page}/tips"))
                .body(Body::new(Chunked(huge)))
                .unwrap(),
        )
        .await;
    expect_public_error(&answer, StatusCode::PAYLOAD_TOO_LARGE, codes::TOO_LARGE);
    // The largest sealed tip fits in a body.
    let largest = with(&[1; 32], &[2; 24], &[3; limits::MAX_TIP_SEALED_BYTES]);
    assert!(largest.len() <= limits::MAX_TIP_BODY_BYTES);
    assert_eq!(
        post_tip(&server, &page, largest, None).await.status,
        StatusCode::CREATED
    );
    // No page there: 404.
    for path in [page_path(), "nopage".to_owned()] {
        let answer = post_tip(&server, &path, tip_json(b"sealed for nobody"), None).await;
        expect_public_error(&answer, StatusCode::NOT_FOUND, codes::NOT_FOUND);
    }
    assert_eq!(pulled_tips(&server, ana.token()).await, 1);
}

/// A body sent in 4 KiB chunks without a declared length, as a chunked upload.
struct Chunked(Vec<u8>);

impl axum::body::HttpBody for Chunked {
    type Data = axum::body::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        if self.0.is_empty() {
            return std::task::Poll::Ready(None);
        }
        let at = self.0.len().min(4096);
        let rest = self.0.split_off(at);
        let chunk = std::mem::replace(&mut self.0, rest);
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(chunk.into()))))
    }
}

async fn past_the_cap_tips_are_refused_with_503_until_the_team_has_read_them(backend: Backend) {
    let server = TestServer::with_limits(
        backend,
        Limits {
            max_waiting_tips: 3,
            ..Limits::unlimited_rate()
        },
    );
    let ws = server.workspace();
    let ana = signer(&server, &ws, roles::COORDINATOR).await;
    let page = publish(&server, &ana).await;
    for i in 0..3 {
        let answer = post_tip(
            &server,
            &page,
            tip_json(format!("sealed tip number {i}").as_bytes()),
            None,
        )
        .await;
        assert_eq!(answer.status, StatusCode::CREATED);
    }
    let answer = post_tip(&server, &page, tip_json(b"one too many tips"), None).await;
    let message = expect_public_error(&answer, StatusCode::SERVICE_UNAVAILABLE, "tips_full");
    assert!(message.contains("later"), "{message}");
    let wait: u64 = answer.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait >= 60, "{wait}");
    assert_eq!(list_tips(&server, ana.token()).await.len(), 3);
    // Another workspace's page is not held up by this one's queue.
    let other = server.workspace();
    let carl = signer(&server, &other, roles::COORDINATOR).await;
    let other_page = publish(&server, &carl).await;
    assert_eq!(
        post_tip(&server, &other_page, tip_json(b"elsewhere, sealed"), None)
            .await
            .status,
        StatusCode::CREATED
    );
    // Once a coordinator has stored one, there is room for one more.
    done(&server, ana.token(), vec![2]).await;
    assert_eq!(
        post_tip(&server, &page, tip_json(b"room again, sealed"), None)
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        post_tip(&server, &page, tip_json(b"and full again...."), None)
            .await
            .status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let ids: Vec<u64> = list_tips(&server, ana.token())
        .await
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(ids, vec![1, 3, 4]);
}

async fn public_routes_are_rate_limited_per_address_and_per_page(backend: Backend) {
    let server = TestServer::with_limits(
        backend,
        Limits {
            tip_rate_per_second: 0.001,
            tip_rate_burst: 3,
            tip_page_rate_per_second: 0.001,
            tip_page_rate_burst: 4,
            ..Limits::unlimited_rate()
        },
    );
    let ws = server.workspace();
    let ana = signer(&server, &ws, roles::COORDINATOR).await;
    let page = publish(&server, &ana).await;
    let other_ws = server.workspace();
    let carl = signer(&server, &other_ws, roles::COORDINATOR).await;
    let other_page = publish(&server, &carl).await;

    // One address: three requests of any kind, then 429 with Retry-After.
    let from = Some("203.0.113.10");
    let page_path = format!("/t/{page}");
    assert_eq!(
        public(&server, Method::GET, &page_path, from, &[], None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        post_tip(&server, &page, tip_json(b"from .10, sealed"), from)
            .await
            .status,
        StatusCode::CREATED
    );
    let lookup_path = format!("/t/{page}/replies/{}", "ab".repeat(16));
    assert_eq!(
        public(&server, Method::GET, &lookup_path, from, &[], None)
            .await
            .status,
        StatusCode::OK
    );
    for answer in [
        public(&server, Method::GET, &page_path, from, &[], None).await,
        post_tip(&server, &other_page, tip_json(b"from .10 again...."), from).await,
    ] {
        expect_public_error(&answer, StatusCode::TOO_MANY_REQUESTS, codes::RATE_LIMITED);
        let wait: u64 = answer.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(wait >= 1);
    }
    // Another address is served; so is a client a trusted proxy names, by its own address.
    assert_eq!(
        public(
            &server,
            Method::GET,
            &page_path,
            Some("203.0.113.11"),
            &[],
            None
        )
        .await
        .status,
        StatusCode::OK
    );
    let forwarded = [("x-forwarded-for", "198.51.100.4")];
    for _ in 0..3 {
        let answer = public(
            &server,
            Method::GET,
            &page_path,
            Some("127.0.0.1"),
            &forwarded,
            None,
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK);
    }
    let answer = public(
        &server,
        Method::GET,
        &page_path,
        Some("127.0.0.1"),
        &forwarded,
        None,
    )
    .await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);

    // One page: four tips from anywhere, then 429; the other page still takes them.
    for i in 0..3 {
        let address = format!("192.0.2.{i}");
        let answer = post_tip(
            &server,
            &page,
            tip_json(b"another sealed tip"),
            Some(&address),
        )
        .await;
        assert_eq!(answer.status, StatusCode::CREATED, "tip {i}");
    }
    let answer = post_tip(
        &server,
        &page,
        tip_json(b"one tip too many!!"),
        Some("192.0.2.50"),
    )
    .await;
    let message = expect_public_error(&answer, StatusCode::TOO_MANY_REQUESTS, codes::RATE_LIMITED);
    assert!(message.contains("page"), "{message}");
    assert_eq!(
        post_tip(
            &server,
            &other_page,
            tip_json(b"other page sealed!"),
            Some("192.0.2.51")
        )
        .await
        .status,
        StatusCode::CREATED
    );
    assert_eq!(list_tips(&server, ana.token()).await.len(), 4);
    // Devices are not limited by the public buckets.
    for _ in 0..5 {
        list_tips(&server, ana.token()).await;
    }
}

fn reply_request(lookup: [u8; 16], sealed: &[u8]) -> TipReplyRequest {
    TipReplyRequest {
        lookup: lookup.to_vec(),
        ephemeral: [4; 32],
        nonce: [5; 24],
        sealed: sealed.to_vec(),
    }
}

async fn post_reply(server: &TestServer, by: &Signer, request: &TipReplyRequest) -> Answer {
    server
        .send(
            Method::POST,
            "/v1/tips/replies",
            Some(by.token()),
            Some(encode(request)),
        )
        .await
}

async fn read_replies(server: &TestServer, page: &str, lookup: &str) -> Answer {
    public(
        server,
        Method::GET,
        &format!("/t/{page}/replies/{lookup}"),
        None,
        &[],
        None,
    )
    .await
}

async fn replies_are_kept_under_the_receipts_lookup_and_read_back_through_the_page(
    backend: Backend,
) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let ana = signer(&server, &ws, roles::COORDINATOR).await;
    let page = publish(&server, &ana).await;
    let lookup = [0xab; 16];
    let hex_lookup = hex::encode(lookup);

    let answer = read_replies(&server, &page, &hex_lookup).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_public_headers(&answer);
    assert_eq!(
        serde_json::from_slice::<Value>(&answer.body).unwrap(),
        serde_json::json!({"replies": []})
    );
    for text in [&b"first reply, sealed"[..], b"second reply, sealed"] {
        let answer = post_reply(&server, &ana, &reply_request(lookup, text)).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", error_message(&answer));
        assert_eq!(answer.body, [0xf6]);
    }
    post_reply(
        &server,
        &ana,
        &reply_request([0xcd; 16], b"for another receipt"),
    )
    .await;
    let answer = read_replies(&server, &page, &hex_lookup).await;
    assert_eq!(
        answer.headers.get("content-type").unwrap(),
        "application/json"
    );
    let body: Value = serde_json::from_slice(&answer.body).unwrap();
    let replies = body["replies"].as_array().unwrap();
    assert_eq!(replies.len(), 2, "{body}");
    assert_eq!(replies[0]["ephemeral"], B64.encode([4u8; 32]));
    assert_eq!(replies[0]["nonce"], B64.encode([5u8; 24]));
    assert_eq!(replies[0]["sealed"], B64.encode(b"first reply, sealed"));
    assert_eq!(replies[1]["sealed"], B64.encode(b"second reply, sealed"));
    // Upper-case hex is the same lookup.
    let upper = read_replies(&server, &page, &hex_lookup.to_uppercase()).await;
    assert_eq!(upper.body, answer.body);

    // Another workspace's page never shows this workspace's replies, same lookup or not.
    let other = server.workspace();
    let carl = signer(&server, &other, roles::COORDINATOR).await;
    let other_page = publish(&server, &carl).await;
    let theirs = read_replies(&server, &other_page, &hex_lookup).await;
    assert_eq!(
        serde_json::from_slice::<Value>(&theirs.body).unwrap()["replies"],
        serde_json::json!([])
    );
    // Bad lookups, unknown pages.
    for bad in ["abab", &"zz".repeat(16), &"ab".repeat(17)] {
        let answer = read_replies(&server, &page, bad).await;
        let message = expect_public_error(&answer, StatusCode::BAD_REQUEST, codes::BAD_REQUEST);
        assert!(message.contains("32 hex"), "{message}");
    }
    let answer = read_replies(&server, &page_path(), &hex_lookup).await;
    expect_public_error(&answer, StatusCode::NOT_FOUND, codes::NOT_FOUND);

    // What a coordinator's device may leave: a 16-byte lookup, 16 to 16 KiB sealed, at most
    // 32 replies under one receipt.
    let mut short = reply_request(lookup, b"sealed reply here");
    short.lookup.pop();
    let message = post_reply(&server, &ana, &short)
        .await
        .expect_error(StatusCode::BAD_REQUEST, codes::BAD_REQUEST);
    assert!(message.contains("lookup"), "{message}");
    for sealed in [vec![1; 15], vec![1; limits::MAX_TIP_REPLY_SEALED_BYTES + 1]] {
        let message = post_reply(&server, &ana, &reply_request(lookup, &sealed))
            .await
            .expect_error(StatusCode::BAD_REQUEST, codes::BAD_REQUEST);
        assert!(message.contains("sealed"), "{message}");
    }
    for i in 2..limits::MAX_TIP_REPLIES {
        let answer = post_reply(
            &server,
            &ana,
            &reply_request(lookup, format!("reply {i:>20}").as_bytes()),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK);
    }
    let message = post_reply(&server, &ana, &reply_request(lookup, b"one reply too many"))
        .await
        .expect_error(StatusCode::CONFLICT, codes::CONFLICT);
    assert!(message.contains("32"), "{message}");
    let body: Value =
        serde_json::from_slice(&read_replies(&server, &page, &hex_lookup).await.body).unwrap();
    assert_eq!(
        body["replies"].as_array().unwrap().len(),
        limits::MAX_TIP_REPLIES
    );
}

async fn a_page_published_again_at_a_new_path_leaves_nothing_at_the_old_one(backend: Backend) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let ana = signer(&server, &ws, roles::COORDINATOR).await;
    let old = publish(&server, &ana).await;
    post_reply(
        &server,
        &ana,
        &reply_request([7; 16], b"a reply kept across moves"),
    )
    .await;
    assert_eq!(
        post_tip(&server, &old, tip_json(b"sent to the old page"), None)
            .await
            .status,
        StatusCode::CREATED
    );
    let new = publish(&server, &ana).await;
    assert_ne!(old, new);

    for answer in [
        public(&server, Method::GET, &format!("/t/{old}"), None, &[], None).await,
        post_tip(&server, &old, tip_json(b"sent to the old page"), None).await,
        read_replies(&server, &old, &hex::encode([7; 16])).await,
    ] {
        expect_public_error(&answer, StatusCode::NOT_FOUND, codes::NOT_FOUND);
    }
    let answer = public(&server, Method::GET, &format!("/t/{new}"), None, &[], None).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        page_config(std::str::from_utf8(&answer.body).unwrap())["page"],
        new.as_str()
    );
    // The workspace's tips and replies stay its own.
    let body: Value = serde_json::from_slice(
        &read_replies(&server, &new, &hex::encode([7; 16]))
            .await
            .body,
    )
    .unwrap();
    assert_eq!(body["replies"].as_array().unwrap().len(), 1);
    assert_eq!(list_tips(&server, ana.token()).await.len(), 1);
    // Publishing the same again changes nothing a tipster sees.
    let again = signed(&ana, &statement(&ws, &new));
    assert_eq!(put_page(&server, &ana, &again).await.status, StatusCode::OK);
    assert_eq!(
        public(&server, Method::GET, &format!("/t/{new}"), None, &[], None)
            .await
            .status,
        StatusCode::OK
    );
}

async fn preflights_and_every_public_answer_allow_any_origin_and_keep_no_trace(backend: Backend) {
    let server = TestServer::new(backend);
    let ws = server.workspace();
    let ana = signer(&server, &ws, roles::COORDINATOR).await;
    let page = publish(&server, &ana).await;
    for path in [
        format!("/t/{page}/tips"),
        format!("/t/{page}"),
        format!("/t/{page}/replies/{}", "00".repeat(16)),
    ] {
        let answer = public(
            &server,
            Method::OPTIONS,
            &path,
            None,
            &[
                ("origin", "null"),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "content-type"),
            ],
            None,
        )
        .await;
        assert_eq!(answer.status, StatusCode::NO_CONTENT, "{path}");
        assert_public_headers(&answer);
        let methods = answer.headers["access-control-allow-methods"]
            .to_str()
            .unwrap();
        assert!(
            methods.contains("POST") && methods.contains("GET"),
            "{methods}"
        );
        assert!(
            answer.headers["access-control-allow-headers"]
                .to_str()
                .unwrap()
                .contains("content-type")
        );
    }
    let answer = public(&server, Method::PUT, &format!("/t/{page}"), None, &[], None).await;
    expect_public_error(
        &answer,
        StatusCode::METHOD_NOT_ALLOWED,
        codes::METHOD_NOT_ALLOWED,
    );
    // Device routes are not opened to other origins.
    let answer = server
        .send(Method::GET, "/v1/tips/page", Some(ana.token()), None)
        .await;
    assert!(answer.headers.get("access-control-allow-origin").is_none());

    // Metrics count the public routes under one label, never their path.
    let metrics =
        String::from_utf8(server.send(Method::GET, "/metrics", None, None).await.body).unwrap();
    assert!(metrics.contains("route=\"tips-public\""), "{metrics}");
    assert!(!metrics.contains(&page), "the page path is in the metrics");
    assert!(metrics.contains("route=\"/v1/tips/page\""), "{metrics}");
}

common::backend_tests!(async:
    only_a_coordinators_device_handles_tips_and_any_device_reads_the_page,
    a_page_is_published_only_signed_by_the_caller_for_its_workspace_at_a_free_path,
    a_published_page_is_served_with_its_key_and_strict_headers,
    the_page_posts_to_the_configured_public_url,
    a_tip_is_stored_as_posted_counted_for_coordinators_and_deleted_when_done,
    submissions_of_the_wrong_size_or_form_are_refused_and_store_nothing,
    past_the_cap_tips_are_refused_with_503_until_the_team_has_read_them,
    public_routes_are_rate_limited_per_address_and_per_page,
    replies_are_kept_under_the_receipts_lookup_and_read_back_through_the_page,
    a_page_published_again_at_a_new_path_leaves_nothing_at_the_old_one,
    preflights_and_every_public_answer_allow_any_origin_and_keep_no_trace,
);

/// An HTTP client for the real binary's tests; statuses are answers, not errors.
fn http() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

fn answer(mut response: ureq::http::Response<ureq::Body>) -> (u16, Vec<u8>) {
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_vec().unwrap())
}

/// A workspace and an operator's enrollment token in `data`, made by the admin commands.
fn workspace_and_token(data: &std::path::Path) -> (String, String) {
    let backend = [OsStr::new("--data-dir"), data.as_os_str()];
    let ws = common::admin(&backend, &["workspace", "create"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = common::admin(&backend, &["token", "issue", "--workspace", &ws])["token"]
        .as_str()
        .unwrap()
        .to_owned();
    (ws, token)
}

/// Enrolls a coordinator's device with a signing key the test holds, over HTTP.
fn enroll_over_http(agent: &ureq::Agent, base: &str, token: &str) -> Signer {
    let key = SigningKey::from_bytes(&rand::random());
    let body = encode(&EnrollRequest {
        token: token.to_owned(),
        device_name: "Coordinator's phone".into(),
        sign_key: key.verifying_key().to_bytes(),
        box_key: rand::random(),
        join_proof: None,
        actor: None,
    });
    let (status, body) = answer(
        agent
            .post(format!("{base}/v1/enroll"))
            .header("content-type", "application/cbor")
            .send(&body[..])
            .unwrap(),
    );
    assert_eq!(status, 200);
    Signer {
        device: decode(&body).unwrap(),
        key,
    }
}

fn publish_over_http(agent: &ureq::Agent, base: &str, by: &Signer, statement: &TipPageStatement) {
    let (status, body) = answer(
        agent
            .put(format!("{base}/v1/tips/page"))
            .header("content-type", "application/cbor")
            .header("authorization", format!("Bearer {}", by.token()))
            .send(&encode(&signed(by, statement))[..])
            .unwrap(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}

fn tips_over_http(agent: &ureq::Agent, base: &str, by: &Signer) -> Vec<TipEntry> {
    let (status, body) = answer(
        agent
            .get(format!("{base}/v1/tips"))
            .header("authorization", format!("Bearer {}", by.token()))
            .call()
            .unwrap(),
    );
    assert_eq!(status, 200);
    decode::<TipsResponse>(&body).unwrap().tips
}

/// Headless Chromium (scripts/install-deps installs it).
fn chromium() -> &'static str {
    ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("chromium is installed (scripts/install-deps installs it)")
}

/// Loads `url` in headless Chromium, lets its script and requests run, and returns the DOM
/// then; fails on any console message (a script error, a CSP violation, a failed request).
fn rendered(url: &str, profile: &std::path::Path) -> String {
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--lang=en-US",
        ])
        .args(["--enable-logging=stderr", "--v=0"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--virtual-time-budget=10000", "--dump-dom"])
        .arg(url)
        .output()
        .unwrap();
    assert!(out.status.success(), "chromium failed");
    let log = String::from_utf8_lossy(&out.stderr);
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The text inside the element `<tag id="{id}"...>` of a dumped DOM (its markup, if it has
/// children).
fn element<'a>(dom: &'a str, tag: &str, id: &str) -> &'a str {
    let open = format!("<{tag} id=\"{id}\"");
    let start = dom
        .find(&open)
        .unwrap_or_else(|| panic!("no {open} in {dom}"));
    let rest = &dom[start..];
    let inner = &rest[rest.find('>').unwrap() + 1..];
    &inner[..inner.find(&format!("</{tag}>")).unwrap()]
}

/// The page as a tipster saves it, with a script after the page's own doing what a person
/// would (typing, clicking).
fn saved_with(html: &str, actions: &str, dir: &std::path::Path, name: &str) -> String {
    let page = html.replacen("</body>", &format!("<script>{actions}</script></body>"), 1);
    assert_ne!(page, html);
    let path = dir.join(name);
    std::fs::write(&path, page).unwrap();
    format!("file://{}", path.display())
}

fn derive(label: &str, code: &str) -> [u8; 64] {
    Sha512::new()
        .chain_update(label.as_bytes())
        .chain_update(code.as_bytes())
        .finalize()
        .into()
}

/// The page in a real browser: shows the tip key's fingerprint and the browser's language with
/// fallbacks, seals the tip so that a coordinator's `crypto_box` opens it into what
/// docs/0008-tips.md says (the receipt's lookup and reply key derived from the code it shows),
/// and, given the code back in any case and spacing, opens the team's reply as text.
#[test]
fn the_page_in_a_browser_seals_a_tip_the_team_opens_and_opens_the_teams_reply() {
    use crypto_box::aead::Aead as _;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (ws, token) = workspace_and_token(&data);
    let server = common::serve(
        &[OsStr::new("--data-dir"), data.as_os_str()],
        &[],
        Stdio::null(),
    );
    let base = server.base.clone();
    let agent = http();
    let ana = enroll_over_http(&agent, &base, &token);
    let tip_secret = crypto_box::SecretKey::from_bytes(rand::random());
    let page = page_path();
    let mut english = labels("EN");
    english.remove("no_reply");
    let mut st = statement(&ws, &page);
    st.public_key = tip_secret.public_key().to_bytes();
    st.languages = vec![
        TipPageLanguage {
            code: "fr".into(),
            labels: labels("FR"),
        },
        TipPageLanguage {
            code: "en".into(),
            labels: english,
        },
    ];
    publish_over_http(&agent, &base, &ana, &st);
    let url = format!("{base}/t/{page}");
    let profile = tempfile::tempdir().unwrap();

    // Served, under its CSP: the fingerprint coordinators see, the language switcher, the
    // browser's language (English), and French for the label English lacks.
    let dom = rendered(&url, profile.path());
    let digest = Sha512::digest(st.public_key);
    let fingerprint = hex::encode(&digest[..8])
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(element(&dom, "code", "fingerprint"), fingerprint);
    assert!(dom.contains("<html lang=\"en\">"), "{dom}");
    assert!(
        dom.contains("<h1 data-label=\"title\">EN title</h1>"),
        "{dom}"
    );
    assert!(dom.contains("<title>EN title</title>"), "{dom}");
    assert!(dom.contains(">EN send</button>"), "{dom}");
    assert!(
        !dom.contains("<select id=\"lang\" hidden"),
        "two languages: a switcher"
    );

    // Saved as a file (origin null), typed into and sent.
    let (_, html) = answer(agent.get(&url).call().unwrap());
    let html = String::from_utf8(html).unwrap();
    let what = "Girls kept <b>upstairs</b> above the shop";
    let send = saved_with(
        &html,
        &format!(
            "document.getElementById('what').value = {};
             document.getElementById('where').value = 'Rue des Lilas 5';
             document.getElementById('contact').value = 'signal +1 555 0100';
             document.getElementById('send').click();",
            serde_json::to_string(what).unwrap()
        ),
        dir.path(),
        "send.html",
    );
    let dom = rendered(&send, profile.path());
    let receipt = element(&dom, "code", "receipt").to_owned();
    assert!(
        !dom.contains("<div id=\"done\" hidden"),
        "the receipt is shown: {dom}"
    );
    assert!(
        dom.contains("<div id=\"form\" hidden"),
        "the form is put away"
    );
    let groups: Vec<&str> = receipt.split('-').collect();
    assert_eq!(groups.len(), 4, "{receipt}");
    let code: String = groups.concat();
    assert_eq!(code.len(), 20);
    assert!(
        code.chars()
            .all(|c| "abcdefghijkmnpqrstuvwxyz23456789".contains(c)),
        "{code}"
    );

    // The coordinator opens it with the tip secret, as its device does.
    let tips = tips_over_http(&agent, &base, &ana);
    assert_eq!(tips.len(), 1);
    let tip = &tips[0].submission;
    assert_eq!(tip.epoch, st.epoch);
    let ephemeral: [u8; 32] = B64.decode(&tip.ephemeral).unwrap().try_into().unwrap();
    let nonce: [u8; 24] = B64.decode(&tip.nonce).unwrap().try_into().unwrap();
    let sealed = B64.decode(&tip.sealed).unwrap();
    let opened = crypto_box::SalsaBox::new(&ephemeral.into(), &tip_secret)
        .decrypt((&nonce).into(), &sealed[..])
        .expect("the coordinators' crypto_box opens what the page sealed");
    let plain: Value = serde_json::from_slice(&opened).unwrap();
    assert_eq!(plain["v"], 1);
    assert_eq!(plain["page"], page.as_str());
    assert_eq!(plain["lang"], "en");
    assert_eq!(plain["what"], what);
    assert_eq!(plain["where"], "Rue des Lilas 5");
    assert_eq!(plain["when"], "");
    assert_eq!(plain["contact"], "signal +1 555 0100");
    let sent_at = plain["sent_at"].as_str().unwrap();
    assert!(
        time::OffsetDateTime::parse(sent_at, &time::format_description::well_known::Rfc3339)
            .is_ok(),
        "{sent_at}"
    );
    assert_eq!(
        plain["lookup"],
        hex::encode(&derive("waymark/tip-lookup/v1:", &code)[..16])
    );
    let reply_secret: [u8; 32] = derive("waymark/tip-reply/v1:", &code)[..32]
        .try_into()
        .unwrap();
    let reply_public = crypto_box::SecretKey::from_bytes(reply_secret).public_key();
    assert_eq!(plain["reply_key"], B64.encode(reply_public.as_bytes()));

    // The team replies, sealed to the reply key; something else is also kept under the lookup.
    let text = "We read it. <img src=x onerror=alert(1)> Stay safe.";
    let one_time = crypto_box::SecretKey::from_bytes(rand::random());
    let reply_nonce: [u8; 24] = rand::random();
    let reply = serde_json::json!({"v": 1, "text": text, "sent_at": "2026-12-05T10:00:00Z"});
    let sealed_reply = crypto_box::SalsaBox::new(&reply_public, &one_time)
        .encrypt((&reply_nonce).into(), reply.to_string().as_bytes())
        .unwrap();
    let lookup: [u8; 16] = hex::decode(plain["lookup"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    for request in [
        TipReplyRequest {
            lookup: lookup.to_vec(),
            ephemeral: one_time.public_key().to_bytes(),
            nonce: reply_nonce,
            sealed: sealed_reply,
        },
        reply_request(lookup, b"not sealed to this receipt at all"),
    ] {
        let (status, _) = answer(
            agent
                .post(format!("{base}/v1/tips/replies"))
                .header("content-type", "application/cbor")
                .header("authorization", format!("Bearer {}", ana.token()))
                .send(&encode(&request)[..])
                .unwrap(),
        );
        assert_eq!(status, 200);
    }

    // The tipster types the code back, in capitals and spaces: the reply opens, as text only.
    let typed = receipt.to_uppercase().replace('-', " ");
    let read = saved_with(
        &html,
        &format!(
            "document.getElementById('code').value = {};
             document.getElementById('check').click();",
            serde_json::to_string(&typed).unwrap()
        ),
        dir.path(),
        "read.html",
    );
    let dom = rendered(&read, profile.path());
    let replies = element(&dom, "div", "replies");
    assert!(
        replies.contains("We read it. &lt;img src=x onerror=alert(1)&gt; Stay safe."),
        "{replies}"
    );
    assert!(
        !replies.contains("<img"),
        "a reply became markup: {replies}"
    );
    assert_eq!(
        replies.matches("<p>").count(),
        1,
        "only the reply that opens: {replies}"
    );

    // A code with no reply: the label for that, from French as English has none.
    let wrong = saved_with(
        &html,
        "document.getElementById('code').value = 'abcde-fghij-kmnpq-rstuv';
         document.getElementById('check').click();",
        dir.path(),
        "wrong.html",
    );
    let dom = rendered(&wrong, profile.path());
    assert_eq!(element(&dom, "div", "replies"), "FR no_reply");
    assert!(
        dom.contains("<p id=\"error\" role=\"alert\" hidden"),
        "no failure shown"
    );
    assert_eq!(
        tips_over_http(&agent, &base, &ana).len(),
        1,
        "one tip, sent once"
    );
}

/// The real binary, logging everything at debug level: a tipster who loads the page, sends a
/// tip, reads replies and makes mistakes leaves its address, user agent and the page's path in
/// no log line, and its address and user agent nowhere in the database, which holds the sealed
/// bytes as sent and the hour, in a table with no room for more.
#[test]
fn a_tipster_leaves_no_address_user_agent_or_page_path_in_the_servers_logs_or_database() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    let (ws, token) = workspace_and_token(&data);
    let mut server = common::serve_in_env(
        &[OsStr::new("--data-dir"), data.as_os_str()],
        &["--log-format", "json"],
        &[("RUST_LOG", "debug")],
        Stdio::from(std::fs::File::create(&log).unwrap()),
    );
    let base = server.base.clone();
    let agent = http();
    let ana = enroll_over_http(&agent, &base, &token);
    let page = page_path();
    publish_over_http(&agent, &base, &ana, &statement(&ws, &page));

    // The server trusts loopback as its proxy, so the forwarded address is the tipster's.
    let address = "198.51.100.173";
    let user_agent = "TipsterBrowser/9.7 (distinctive-agent-4c1f)";
    let lookup = hex::encode(rand::random::<[u8; 16]>());
    let mut sealed = b"SEALED-MARKER-".to_vec();
    sealed.extend(rand::random::<[u8; 48]>());
    let tipster = |method: &str, path: &str, body: Option<Vec<u8>>| {
        let url = format!("{base}{path}");
        let headers = [
            ("user-agent", user_agent),
            ("x-forwarded-for", address),
            ("content-type", "text/plain;charset=UTF-8"),
            ("origin", "null"),
        ];
        let response = match (method, body) {
            ("POST", Some(body)) => {
                let mut req = agent.post(url);
                for (k, v) in headers {
                    req = req.header(k, v);
                }
                req.send(&body[..])
            }
            ("OPTIONS", _) => {
                let mut req = agent.options(url);
                for (k, v) in headers {
                    req = req.header(k, v);
                }
                req.call()
            }
            _ => {
                let mut req = agent.get(url);
                for (k, v) in headers {
                    req = req.header(k, v);
                }
                req.call()
            }
        };
        answer(response.unwrap()).0
    };
    assert_eq!(tipster("GET", &format!("/t/{page}"), None), 200);
    assert_eq!(tipster("OPTIONS", &format!("/t/{page}/tips"), None), 204);
    assert_eq!(
        tipster("POST", &format!("/t/{page}/tips"), Some(tip_json(&sealed))),
        201
    );
    assert_eq!(
        tipster("POST", &format!("/t/{page}/tips"), Some(b"{oops".to_vec())),
        400
    );
    assert_eq!(
        tipster("GET", &format!("/t/{page}/replies/{lookup}"), None),
        200
    );
    assert_eq!(
        tipster("GET", &format!("/t/{page}/replies/nothex"), None),
        400
    );
    assert_eq!(tipster("GET", &format!("/t/{page}/elsewhere"), None), 404);

    let tips = tips_over_http(&agent, &base, &ana);
    assert_eq!(tips.len(), 1);
    assert_eq!(B64.decode(&tips[0].submission.sealed).unwrap(), sealed);

    let killed = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(server.child.wait().unwrap().success());

    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(
        logs.matches("\"route\":\"tips-public\"").count() >= 7,
        "every public request is logged, under its label: {logs}"
    );
    assert!(logs.contains("tip page published"), "{logs}");
    for (what, needle) in [
        ("address", address),
        ("user agent", user_agent),
        ("user agent", "distinctive-agent"),
        ("page path", page.as_str()),
        ("lookup", lookup.as_str()),
    ] {
        assert!(!logs.contains(needle), "the log holds the tipster's {what}");
    }

    let db_path = data.join("waymark.sqlite3");
    let mut stored = std::fs::read(&db_path).unwrap();
    if let Ok(wal) = std::fs::read(data.join("waymark.sqlite3-wal")) {
        stored.extend(wal);
    }
    let holds = |needle: &[u8]| stored.windows(needle.len()).any(|w| w == needle);
    assert!(holds(&sealed), "the sealed tip is stored as sent");
    let address_bytes: Vec<u8> = address.split('.').map(|p| p.parse().unwrap()).collect();
    for needle in [
        address.as_bytes(),
        &address_bytes,
        user_agent.as_bytes(),
        b"distinctive-agent",
        b"TipsterBrowser",
    ] {
        assert!(
            !holds(needle),
            "the database holds {:?}",
            String::from_utf8_lossy(needle)
        );
    }
    let conn = rusqlite::Connection::open(&db_path).unwrap();
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('tips') ORDER BY cid")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        columns,
        [
            "workspace",
            "id",
            "received_hour",
            "epoch",
            "ephemeral",
            "nonce",
            "sealed"
        ]
    );
    let hour: i64 = conn
        .query_row("SELECT received_hour FROM tips", [], |row| row.get(0))
        .unwrap();
    assert_eq!(hour % 3600, 0);
}
