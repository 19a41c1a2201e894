//! The tip routes (docs/0008-tips.md).
//!
//! For coordinators' devices, under `/v1` like every device route: the waiting tips, saying which
//! are done, publishing the tip page, and leaving replies. Any device of the workspace may read
//! the page as published, to check it.
//!
//! For tipsters, without a token, under [`PATH_PUBLIC_TIPS`]: the page, the submission of a
//! sealed tip, and the sealed replies under a receipt. These keep no trace of who called:
//! - the request log and the metrics name them all [`PUBLIC_ROUTE`], never their path (the page
//!   segment is secret) nor an address or user agent, and nothing of them is stored but the
//!   sealed tip and the hour it came;
//! - rate limits per client address and per page are buckets in memory
//!   ([`crate::ratelimit`]), forgotten on restart;
//! - every answer may be read from any origin (a page saved as a file posts from origin
//!   `null`) and is never cached, never sniffed, and sends no referrer; errors are JSON for the
//!   page's script.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use waymark_protocol::{
    CONTENT_TYPE_CBOR, ErrorBody, PATH_PUBLIC_TIPS, TipPageRequest, TipPageStatement,
    TipReplyRequest, TipsDoneRequest, TipsResponse, decode, limits,
};

use super::AppState;
use super::error::{ApiError, cbor};
use super::extract::{Authed, Cbor, is_length_limit};
use crate::clients::{address_key, client_address};
use crate::config::Limits;
use crate::ratelimit::RateLimiter;
use crate::storage::{Device, TipReceipt};
use crate::tips::{MIN_SEALED_BYTES, decode_submission, is_page_path, render_page, replies_json};
use crate::tokens;

/// The label of every public tip route in logs and metrics.
pub(crate) const PUBLIC_ROUTE: &str = "tips-public";

/// Error code of a submission refused because the workspace has as many tips waiting as it may.
pub const TIPS_FULL: &str = "tips_full";

/// How long a tipster's browser is told to wait when the workspace's queue is full: until a
/// coordinator's device has synced, which is not known; a quarter of an hour is a guess.
const FULL_RETRY_SECS: u64 = 900;

/// The page's Content-Security-Policy: its own inline style and script only, posts only to its
/// own origin, no form, no frame, no base, nothing fetched from anywhere.
const PAGE_CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; connect-src 'self'; img-src data:; form-action 'none'; \
     base-uri 'none'; frame-ancestors 'none'";

/// The per-address and per-page buckets of the public routes.
#[derive(Debug)]
pub(crate) struct TipLimiters {
    per_address: RateLimiter<IpAddr>,
    per_page: RateLimiter<String>,
}

impl TipLimiters {
    /// Buckets sized by `limits`.
    pub(crate) fn new(limits: &Limits) -> Self {
        Self {
            per_address: RateLimiter::new(limits.tip_rate_per_second, limits.tip_rate_burst),
            per_page: RateLimiter::new(limits.tip_page_rate_per_second, limits.tip_page_rate_burst),
        }
    }
}

/// Whether `path` is one of the public tip routes (or would be, under their prefix).
pub(crate) fn is_public(path: &str) -> bool {
    path.strip_prefix(PATH_PUBLIC_TIPS)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The calling device, if it is a coordinator's (403 `forbidden` otherwise).
fn coordinator(device: Device) -> Result<Device, ApiError> {
    if device.is_coordinator() {
        Ok(device)
    } else {
        Err(ApiError::forbidden(
            "only a coordinator's device may handle the workspace's tips",
        ))
    }
}

/// `GET /v1/tips`: the waiting tips, oldest first.
pub(super) async fn list(
    State(state): State<AppState>,
    Authed(device): Authed,
) -> Result<Response, ApiError> {
    let device = coordinator(device)?;
    let tips = state
        .blocking(move |s| s.tips(&device.workspace_id, limits::MAX_TIPS_LISTED))
        .await?;
    Ok(cbor(StatusCode::OK, &TipsResponse { tips }))
}

/// `POST /v1/tips/done`: deletes the tips the device stored as records. Answers CBOR `null`.
pub(super) async fn done(
    State(state): State<AppState>,
    Authed(device): Authed,
    Cbor(body): Cbor<TipsDoneRequest>,
) -> Result<Response, ApiError> {
    let device = coordinator(device)?;
    let most = usize::try_from(limits::MAX_WAITING_TIPS).unwrap_or(usize::MAX);
    if body.ids.len() > most {
        return Err(ApiError::too_large(format!(
            "at most {most} ids at once, this request has {}",
            body.ids.len()
        )));
    }
    let caller = device.id.clone();
    let deleted = state
        .blocking(move |s| s.tips_done(&device, &body.ids))
        .await?;
    tracing::info!(device_id = caller, deleted, "tips done");
    Ok(cbor(StatusCode::OK, &()))
}

/// `PUT /v1/tips/page`: publishes the workspace's tip page. Answers CBOR `null`.
pub(super) async fn put_page(
    State(state): State<AppState>,
    Authed(device): Authed,
    Cbor(body): Cbor<TipPageRequest>,
) -> Result<Response, ApiError> {
    let device = coordinator(device)?;
    if body.statement.len() > limits::MAX_TIP_STATEMENT_BYTES {
        return Err(ApiError::too_large(format!(
            "the statement is {} bytes, at most {} are allowed",
            body.statement.len(),
            limits::MAX_TIP_STATEMENT_BYTES
        )));
    }
    super::validate_device_id("the statement's signer", &body.device_id)?;
    let caller = device.id.clone();
    state
        .blocking(move |s| s.put_tip_page(&device, &body, tokens::now()))
        .await?;
    // The page's path is a secret of the team and its tipsters: not logged.
    tracing::info!(device_id = caller, "tip page published");
    Ok(cbor(StatusCode::OK, &()))
}

/// `GET /v1/tips/page`: the page as published (404 before the first).
pub(super) async fn get_page(
    State(state): State<AppState>,
    Authed(device): Authed,
) -> Result<Response, ApiError> {
    let page = state
        .blocking(move |s| s.tip_page(&device.workspace_id))
        .await?
        .ok_or_else(|| ApiError::not_found("this workspace has published no tip page"))?;
    Ok(cbor(StatusCode::OK, &page))
}

/// `POST /v1/tips/replies`: keeps a reply sealed to a tipster. Answers CBOR `null`.
pub(super) async fn reply(
    State(state): State<AppState>,
    Authed(device): Authed,
    Cbor(body): Cbor<TipReplyRequest>,
) -> Result<Response, ApiError> {
    let device = coordinator(device)?;
    if body.lookup.len() != limits::TIP_LOOKUP_BYTES {
        return Err(ApiError::bad_request(format!(
            "lookup must be {} bytes, it has {}",
            limits::TIP_LOOKUP_BYTES,
            body.lookup.len()
        )));
    }
    if !(MIN_SEALED_BYTES..=limits::MAX_TIP_REPLY_SEALED_BYTES).contains(&body.sealed.len()) {
        return Err(ApiError::bad_request(format!(
            "sealed must be {MIN_SEALED_BYTES} to {} bytes, it has {}",
            limits::MAX_TIP_REPLY_SEALED_BYTES,
            body.sealed.len()
        )));
    }
    state
        .blocking(move |s| s.put_tip_reply(&device, &body))
        .await?;
    Ok(cbor(StatusCode::OK, &()))
}

/// A caller of the public routes, within its address's rate limit, and the server's URL as the
/// caller reached it.
pub(super) struct Tipster {
    server: String,
}

impl FromRequestParts<AppState> for Tipster {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let limits = state.limits();
        // Without a peer address (the router driven in-process by tests) nothing is limited.
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip());
        if let Some(peer) = peer {
            let client = address_key(client_address(
                peer,
                &parts.headers,
                &limits.trusted_proxies,
            ));
            if let Err(wait) = state.inner.tips.per_address.check(&client, Instant::now()) {
                return Err(ApiError::too_many(
                    wait,
                    "too many requests from this address",
                ));
            }
        }
        Ok(Self {
            server: server_url(limits, peer, &parts.headers),
        })
    }
}

/// The absolute URL tip pages post to: `--public-url` when set; else `http://` and the request's
/// `Host`, `https://` when a trusted proxy says the client came over HTTPS (a client's own
/// `X-Forwarded-Proto` proves nothing); empty (the page's own origin) without a usable `Host`.
fn server_url(limits: &Limits, peer: Option<IpAddr>, headers: &HeaderMap) -> String {
    if let Some(url) = &limits.public_url {
        return url.clone();
    }
    let Some(host) = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|host| is_host(host))
    else {
        return String::new();
    };
    let from_proxy = peer.is_some_and(|p| limits.trusted_proxies.contains(p.to_canonical()));
    // The proxy's own entry is the right-most one.
    let https = from_proxy
        && headers
            .get_all("x-forwarded-proto")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.rsplit(','))
            .next()
            .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"));
    let scheme = if https { "https" } else { "http" };
    format!("{scheme}://{host}")
}

/// Whether `host` looks like a `Host` header (a name or an address, and a port): anything else
/// is not put into a page.
fn is_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
}

fn no_page() -> ApiError {
    ApiError::not_found("no tip page here")
}

/// `GET /t/{page}`: the tip page.
pub(super) async fn page(
    State(state): State<AppState>,
    tipster: Tipster,
    Path(page): Path<String>,
) -> Result<Response, ApiError> {
    if !is_page_path(&page) {
        return Err(no_page());
    }
    let stored = state
        .blocking(move |s| s.tip_page_statement(&page))
        .await?
        .ok_or_else(no_page)?;
    let statement: TipPageStatement = decode(&stored).map_err(|err| {
        ApiError::internal(format!(
            "a stored tip page statement does not decode: {err}"
        ))
    })?;
    let html = render_page(&statement, &tipster.server);
    Ok((
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(PAGE_CSP),
            ),
        ],
        html,
    )
        .into_response())
}

/// `POST /t/{page}/tips`: takes a sealed tip (JSON [`waymark_protocol::TipSubmission`], whatever
/// the content type: the page sends `text/plain` so that no preflight is needed). Answers 201
/// `{"received":true}`.
pub(super) async fn submit(
    State(state): State<AppState>,
    _tipster: Tipster,
    Path(page): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if !is_page_path(&page) {
        return Err(no_page());
    }
    if let Err(wait) = state
        .inner
        .tips
        .per_page
        .check(page.as_str(), Instant::now())
    {
        return Err(ApiError::too_many(wait, "too many tips to this page"));
    }
    let bytes = read_body(&headers, body, limits::MAX_TIP_BODY_BYTES).await?;
    state
        .metrics()
        .bytes_in
        .with_label_values(&[PUBLIC_ROUTE])
        .inc_by(u64::try_from(bytes.len()).unwrap_or(u64::MAX));
    let tip = decode_submission(&bytes).map_err(ApiError::bad_request)?;
    let max_waiting = state.limits().max_waiting_tips;
    let receipt = state
        .blocking(move |s| s.submit_tip(&page, &tip, max_waiting, tokens::now()))
        .await
        .map_err(|err| match err.status {
            StatusCode::NOT_FOUND => no_page(),
            _ => err,
        })?;
    match receipt {
        TipReceipt::Stored => Ok(json(StatusCode::CREATED, "{\"received\":true}".to_owned())),
        TipReceipt::Full => Err(ApiError {
            retry_after: Some(FULL_RETRY_SECS),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                TIPS_FULL,
                "this page cannot take more tips until the team has read the waiting ones; \
                 try again later",
            )
        }),
    }
}

/// `GET /t/{page}/replies/{lookup}`: the sealed replies under a receipt, JSON
/// `{"replies":[...]}` (empty when there are none).
pub(super) async fn replies(
    State(state): State<AppState>,
    _tipster: Tipster,
    Path((page, lookup)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    if !is_page_path(&page) {
        return Err(no_page());
    }
    let lookup = hex::decode(&lookup)
        .ok()
        .filter(|l| l.len() == limits::TIP_LOOKUP_BYTES)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "the lookup id must be {} hex characters",
                limits::TIP_LOOKUP_BYTES * 2
            ))
        })?;
    let replies = state
        .blocking(move |s| s.tip_replies(&page, &lookup))
        .await?
        .ok_or_else(no_page)?;
    Ok(json(StatusCode::OK, replies_json(&replies)))
}

/// Reads a body of at most `limit` bytes (413 above it).
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Vec<u8>, ApiError> {
    let too_large = || ApiError::too_large(format!("a tip is at most {limit} bytes"));
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > u64::try_from(limit).unwrap_or(u64::MAX)) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit)
        .await
        .map(|bytes| bytes.to_vec())
        .map_err(|err| {
            if is_length_limit(&err) {
                too_large()
            } else {
                ApiError::bad_request("the request body could not be read completely")
            }
        })
}

fn json(status: StatusCode, body: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// Middleware for the public routes: answers CORS preflights, turns error answers into JSON,
/// and adds the headers every public answer carries.
pub(super) async fn public(req: Request, next: Next) -> Response {
    if !is_public(req.uri().path()) {
        return next.run(req).await;
    }
    let mut response = if req.method() == Method::OPTIONS {
        let mut preflight = StatusCode::NO_CONTENT.into_response();
        let headers = preflight.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, OPTIONS"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("content-type"),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("86400"),
        );
        preflight
    } else {
        json_error(next.run(req).await).await
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ] {
        headers.insert::<HeaderName>(name, HeaderValue::from_static(value));
    }
    response
}

/// An error answer (CBOR [`ErrorBody`]) as JSON `{"code","message"}`, for the page's script; any
/// other answer as it is.
async fn json_error(response: Response) -> Response {
    let is_cbor = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == CONTENT_TYPE_CBOR.as_bytes());
    if !is_cbor {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // Error bodies are a code and a sentence.
    let error = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(bytes) => decode::<ErrorBody>(&bytes).ok(),
        Err(_) => None,
    };
    let text = error
        .and_then(|e| serde_json::to_string(&e).ok())
        .unwrap_or_else(|| "{\"code\":\"internal\",\"message\":\"\"}".to_owned());
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(text))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::clients::TrustedProxies;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        map
    }

    #[test]
    fn only_paths_under_t_are_public() {
        for path in ["/t", "/t/", "/t/abc", "/t/abc/tips", "/t/a/replies/b"] {
            assert!(is_public(path), "{path}");
        }
        for path in ["/", "/tips", "/t2", "/v1/tips", "/v1/t/abc", "/healthz"] {
            assert!(!is_public(path), "{path}");
        }
    }

    #[test]
    fn pages_post_to_the_public_url_or_where_the_request_came_and_https_only_by_a_trusted_proxy() {
        let limits = Limits {
            trusted_proxies: TrustedProxies::parse("10.0.0.1").unwrap(),
            ..Limits::default()
        };
        let proxy = Some("10.0.0.1".parse().unwrap());
        let stranger = Some("203.0.113.9".parse().unwrap());
        let https = headers(&[("host", "tips.example.org"), ("x-forwarded-proto", "https")]);
        assert_eq!(
            server_url(&limits, proxy, &https),
            "https://tips.example.org"
        );
        assert_eq!(
            server_url(&limits, stranger, &https),
            "http://tips.example.org",
            "a client cannot say it came over HTTPS"
        );
        assert_eq!(server_url(&limits, None, &https), "http://tips.example.org");
        let spoofed = headers(&[("host", "h:8080"), ("x-forwarded-proto", "https, http")]);
        assert_eq!(server_url(&limits, proxy, &spoofed), "http://h:8080");
        for bad in ["evil.org/\"><script>", "a b", ""] {
            let mut map = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(bad) {
                map.insert(header::HOST, v);
            }
            assert_eq!(server_url(&limits, proxy, &map), "", "{bad}");
        }
        let configured = Limits {
            public_url: Some("https://tips.example.org".into()),
            ..limits
        };
        assert_eq!(
            server_url(&configured, stranger, &headers(&[("host", "other")])),
            "https://tips.example.org"
        );
    }
}
