//! The HTTP API: routes, handlers, and the middleware that logs and measures every request.
//! Endpoints and error codes are documented in `sync-server/API.md`.
//!
//! Handlers never touch the database on the async executor: every storage call goes through
//! [`AppState::blocking`] (`spawn_blocking`).

mod address_limits;
pub mod error;
pub mod extract;
pub mod tips;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::catch_panic::CatchPanicLayer;
use waymark_protocol::{
    AppendRequest, AppendResponse, CheckInRequest, EnrollRequest, EnrollResponse,
    HEADER_REQUEST_ID, InviteRequest, InviteResponse, KeysRequest, KeysResponse, PATH_CHAIN,
    PATH_CHECK_INS, PATH_ENROLL, PATH_HEALTHZ, PATH_INVITES, PATH_KEYS, PATH_METRICS,
    PATH_PUBLIC_TIPS, PATH_PULL, PATH_PUSH, PATH_REVOKE, PATH_TEAM, PATH_TEAM_LOG, PATH_TIP_PAGE,
    PATH_TIP_REPLIES, PATH_TIPS, PATH_TIPS_DONE, PullRequest, PushRequest, PushResponse,
    QUERY_AFTER, QUERY_AT, QUERY_LOG_FROM, QUERY_MAX_BYTES, RevokeRequest, RevokeResponse,
    content_id_of, limits, roles,
};

use self::error::{ApiError, ErrorCode, cbor, cbor_bytes};
use self::extract::{Authed, Cbor, RequestContext};
use crate::config::Limits;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::storage::{NewDevice, Storage, StorageError};
use crate::tokens;

/// How often a pull may update a device's "last sync" time (pushes always do).
const TOUCH_INTERVAL: Duration = Duration::from_secs(60);

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    storage: Arc<dyn Storage>,
    limits: Limits,
    metrics: Metrics,
    limiter: RateLimiter,
    address_limits: address_limits::AddressLimiters,
    tips: tips::TipLimiters,
    touched: Mutex<HashMap<String, Instant>>,
}

impl AppState {
    /// State over a storage backend with the given limits.
    pub fn new(storage: Arc<dyn Storage>, limits: Limits) -> Result<Self, prometheus::Error> {
        Ok(Self {
            inner: Arc::new(Inner {
                storage,
                limiter: RateLimiter::new(limits.rate_per_second, limits.rate_burst),
                address_limits: address_limits::AddressLimiters::new(&limits),
                tips: tips::TipLimiters::new(&limits),
                limits,
                metrics: Metrics::new()?,
                touched: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The storage backend.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.inner.storage
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The server's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The per-device rate limiter.
    pub fn limiter(&self) -> &RateLimiter {
        &self.inner.limiter
    }

    /// Runs a storage call on a blocking thread.
    pub async fn blocking<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Storage) -> Result<T, StorageError> + Send + 'static,
    {
        let storage = Arc::clone(&self.inner.storage);
        match tokio::task::spawn_blocking(move || f(storage.as_ref())).await {
            Ok(result) => result.map_err(ApiError::from),
            Err(join) => Err(ApiError::internal(format!("storage task failed: {join}"))),
        }
    }

    /// Whether a pull by this device should record its sync time now (at most once a minute).
    fn should_touch(&self, device_id: &str) -> bool {
        let now = Instant::now();
        let mut touched = self
            .inner
            .touched
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match touched.get(device_id) {
            Some(last) if now.duration_since(*last) < TOUCH_INTERVAL => false,
            _ => {
                touched.insert(device_id.to_owned(), now);
                true
            }
        }
    }
}

/// The server's router: every route, the fallbacks, panic catching, logging and metrics.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route(PATH_ENROLL, post(enroll))
        .route(PATH_INVITES, post(invite))
        .route(PATH_PUSH, post(push))
        .route(PATH_PULL, get(pull))
        .route(PATH_CHAIN, get(chain))
        .route(PATH_TEAM, get(team))
        .route(PATH_TEAM_LOG, post(append_team_log))
        .route(PATH_KEYS, post(keys))
        .route(PATH_REVOKE, post(revoke))
        .route(PATH_CHECK_INS, get(list_check_ins).post(put_check_in))
        .route(PATH_TIPS, get(tips::list))
        .route(PATH_TIPS_DONE, post(tips::done))
        .route(PATH_TIP_PAGE, get(tips::get_page).put(tips::put_page))
        .route(PATH_TIP_REPLIES, post(tips::reply))
        .route(&format!("{PATH_PUBLIC_TIPS}/{{page}}"), get(tips::page))
        .route(
            &format!("{PATH_PUBLIC_TIPS}/{{page}}/tips"),
            post(tips::submit),
        )
        .route(
            &format!("{PATH_PUBLIC_TIPS}/{{page}}/replies/{{lookup}}"),
            get(tips::replies),
        )
        .route(PATH_HEALTHZ, get(healthz))
        .route(PATH_METRICS, get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(CatchPanicLayer::custom(
            |_panic: Box<dyn std::any::Any + Send>| {
                ApiError::internal("a request handler panicked").into_response()
            },
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            address_limits::limit,
        ))
        .layer(middleware::from_fn(tips::public))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// The metrics and log label of a path: the route it matches, [`tips::PUBLIC_ROUTE`] for every
/// public tip route (their paths hold the secret page), or "other" (bounded cardinality).
pub(crate) fn route_label(path: &str) -> &'static str {
    if tips::is_public(path) {
        return tips::PUBLIC_ROUTE;
    }
    [
        PATH_ENROLL,
        PATH_INVITES,
        PATH_PUSH,
        PATH_PULL,
        PATH_CHAIN,
        PATH_TEAM,
        PATH_TEAM_LOG,
        PATH_KEYS,
        PATH_REVOKE,
        PATH_CHECK_INS,
        PATH_TIPS,
        PATH_TIPS_DONE,
        PATH_TIP_PAGE,
        PATH_TIP_REPLIES,
        PATH_HEALTHZ,
        PATH_METRICS,
    ]
    .into_iter()
    .find(|route| *route == path)
    .unwrap_or("other")
}

/// Logs and measures every request; adds the `x-request-id` header.
async fn observe(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = {
        let mut bytes = [0u8; 8];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
        hex::encode(bytes)
    };
    let method = req.method().clone();
    let route = route_label(req.uri().path());
    let ctx = RequestContext::default();
    req.extensions_mut().insert(ctx.clone());

    let timeout = state.limits().request_timeout;
    let mut response = match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(response) => response,
        // A storage call already handed to a blocking thread still completes; pushes are
        // idempotent, so the client's retry is safe either way.
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            waymark_protocol::codes::TIMEOUT,
            format!(
                "the request took longer than {} s (stalled upload?); retry it",
                timeout.as_secs_f64()
            ),
        )
        .into_response(),
    };

    let elapsed = started.elapsed();
    let status = response.status();
    let code = response.extensions().get::<ErrorCode>().map(|c| c.0);
    let metrics = state.metrics();
    metrics
        .requests
        .with_label_values(&[route, method.as_str(), status.as_str()])
        .inc();
    metrics
        .latency
        .with_label_values(&[route])
        .observe(elapsed.as_secs_f64());
    if let Some(bytes) = axum::body::HttpBody::size_hint(response.body()).exact() {
        metrics.bytes_out.with_label_values(&[route]).inc_by(bytes);
    }
    if let Some(code) = code {
        metrics.errors.with_label_values(&[code]).inc();
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(HEADER_REQUEST_ID, value);
    }
    let device_id = ctx.device_id.get().map_or("-", String::as_str);
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    if status.is_server_error() {
        tracing::error!(request_id, %method, route, status = status.as_u16(), latency_ms,
            device_id, error_code = code.unwrap_or("-"), "request failed");
    } else {
        tracing::info!(request_id, %method, route, status = status.as_u16(), latency_ms,
            device_id, error_code = code.unwrap_or("-"), "request");
    }
    response
}

fn validate_device_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > limits::MAX_DEVICE_NAME_CHARS {
        return Err(ApiError::bad_request(format!(
            "device_name must be 1 to {} characters",
            limits::MAX_DEVICE_NAME_CHARS
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "device_name must not contain control characters",
        ));
    }
    Ok(name.to_owned())
}

/// Longest device id accepted in a request body; real ones are 32 hex characters. Bounds what an
/// error message may echo back.
const MAX_DEVICE_ID_CHARS: usize = 64;

/// Checks a device id named in a request body.
fn validate_device_id(what: &str, id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.len() > MAX_DEVICE_ID_CHARS {
        return Err(ApiError::bad_request(format!(
            "{what}: device_id must be 1 to {MAX_DEVICE_ID_CHARS} characters"
        )));
    }
    Ok(())
}

/// Checks a device public key from a request: all zeros is no key.
fn validate_public_key(field: &str, key: &[u8; 32]) -> Result<(), ApiError> {
    if key.iter().all(|b| *b == 0) {
        return Err(ApiError::bad_request(format!(
            "{field} must not be all zeros"
        )));
    }
    Ok(())
}

async fn enroll(
    State(state): State<AppState>,
    Cbor(body): Cbor<EnrollRequest>,
) -> Result<Response, ApiError> {
    let name = validate_device_name(&body.device_name)?;
    validate_public_key("sign_key", &body.sign_key)?;
    validate_public_key("box_key", &body.box_key)?;
    if body
        .join_proof
        .as_ref()
        .is_some_and(|proof| proof.is_empty() || proof.len() > limits::MAX_JOIN_PROOF_BYTES)
    {
        return Err(ApiError::bad_request(format!(
            "join_proof must be 1 to {} bytes",
            limits::MAX_JOIN_PROOF_BYTES
        )));
    }
    if body
        .actor
        .as_ref()
        .is_some_and(|a| a.is_empty() || a.len() > limits::MAX_ACTOR_BYTES)
    {
        return Err(ApiError::bad_request(format!(
            "actor must be 1 to {} bytes",
            limits::MAX_ACTOR_BYTES
        )));
    }
    let enrollment = tokens::hash_token(body.token.trim());
    let device_token = tokens::new_token();
    let device = NewDevice {
        id: tokens::new_id(),
        name,
        token_hash: tokens::hash_token(&device_token),
        sign_key: body.sign_key,
        box_key: body.box_key,
        join_proof: body.join_proof,
        actor: body.actor,
    };
    let device_id = device.id.clone();
    let enrolled = state
        .blocking(move |s| s.enroll(&enrollment, &device, tokens::now()))
        .await?;
    tracing::info!(
        device_id,
        workspace_id = enrolled.workspace_id,
        role = enrolled.role,
        "device enrolled"
    );
    Ok(cbor(
        StatusCode::OK,
        &EnrollResponse {
            workspace_id: enrolled.workspace_id,
            device_id,
            device_token,
            role: enrolled.role,
        },
    ))
}

async fn invite(
    State(state): State<AppState>,
    Authed(device): Authed,
    Cbor(body): Cbor<InviteRequest>,
) -> Result<Response, ApiError> {
    if body.ttl_seconds == 0 || body.ttl_seconds > limits::MAX_INVITE_TTL_SECONDS {
        return Err(ApiError::bad_request(format!(
            "ttl_seconds must be 1 to {}",
            limits::MAX_INVITE_TTL_SECONDS
        )));
    }
    let role = body.role.unwrap_or_else(|| roles::MEMBER.to_owned());
    if !roles::is_known(&role) {
        return Err(ApiError::bad_request(format!(
            "role must be {:?} or {:?}",
            roles::COORDINATOR,
            roles::MEMBER
        )));
    }
    if role == roles::COORDINATOR && !device.is_coordinator() {
        return Err(ApiError::forbidden(
            "only a coordinator's device may invite a coordinator",
        ));
    }
    let token = tokens::new_token();
    let hash = tokens::hash_token(&token);
    let now = tokens::now();
    let expires_at = now.saturating_add(i64::try_from(body.ttl_seconds).unwrap_or(i64::MAX));
    state
        .blocking(move |s| {
            s.issue_enrollment_token(
                &device.workspace_id,
                &hash,
                expires_at,
                Some(&device.id),
                &role,
                now,
            )
        })
        .await?;
    Ok(cbor(
        StatusCode::OK,
        &InviteResponse {
            enrollment_token: token,
            expires_at,
        },
    ))
}

async fn team(
    State(state): State<AppState>,
    Authed(device): Authed,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let log_from = parse_log_from(query.as_deref())?;
    let team = state.blocking(move |s| s.team(&device, log_from)).await?;
    Ok(cbor(StatusCode::OK, &team))
}

/// Parses the team query string: `log_from` (default 0). Unknown parameters are ignored.
fn parse_log_from(raw: Option<&str>) -> Result<u64, ApiError> {
    let mut from = None;
    for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == QUERY_LOG_FROM {
            if from.is_some() {
                return Err(ApiError::bad_request("`log_from` is given more than once"));
            }
            from = Some(parse_number(QUERY_LOG_FROM, value, Overflow::Reject)?);
        }
    }
    Ok(from.unwrap_or(0))
}

async fn append_team_log(
    State(state): State<AppState>,
    Authed(device): Authed,
    Cbor(body): Cbor<AppendRequest>,
) -> Result<Response, ApiError> {
    if body.entries.len() > limits::MAX_LOG_ENTRIES {
        return Err(ApiError::too_large(format!(
            "at most {} entries per append, this one has {}",
            limits::MAX_LOG_ENTRIES,
            body.entries.len()
        )));
    }
    if body.envelopes.len() > limits::MAX_ENVELOPES {
        return Err(ApiError::too_large(format!(
            "at most {} envelopes per request, this one has {}",
            limits::MAX_ENVELOPES,
            body.envelopes.len()
        )));
    }
    for (index, envelope) in body.envelopes.iter().enumerate() {
        validate_device_id(&format!("envelope {index}"), &envelope.device_id)?;
    }
    let caller = device.id.clone();
    let log_len = state
        .blocking(move |s| s.append_team_log(&device, &body, tokens::now()))
        .await?;
    tracing::info!(device_id = caller, log_len, "team log appended");
    Ok(cbor(StatusCode::OK, &AppendResponse { log_len }))
}

async fn keys(
    State(state): State<AppState>,
    Authed(device): Authed,
    Cbor(body): Cbor<KeysRequest>,
) -> Result<Response, ApiError> {
    if !device.is_coordinator() {
        return Err(ApiError::forbidden(
            "only a coordinator's device may upload workspace keys",
        ));
    }
    if body.envelopes.len() > limits::MAX_ENVELOPES {
        return Err(ApiError::too_large(format!(
            "at most {} envelopes per request, this one has {}",
            limits::MAX_ENVELOPES,
            body.envelopes.len()
        )));
    }
    for (index, envelope) in body.envelopes.iter().enumerate() {
        validate_device_id(&format!("envelope {index}"), &envelope.device_id)?;
        let size = envelope.sealed_key.len();
        if size == 0 || size > limits::MAX_SEALED_KEY_BYTES {
            return Err(ApiError::bad_request(format!(
                "envelope {index}: sealed_key must be 1 to {} bytes, it has {size}",
                limits::MAX_SEALED_KEY_BYTES
            )));
        }
    }
    let epoch = state
        .blocking(move |s| s.upload_keys(&device, &body, tokens::now()))
        .await?;
    Ok(cbor(StatusCode::OK, &KeysResponse { epoch }))
}

async fn revoke(
    State(state): State<AppState>,
    Authed(device): Authed,
    Cbor(body): Cbor<RevokeRequest>,
) -> Result<Response, ApiError> {
    validate_device_id("device to revoke", &body.device_id)?;
    let caller = device.id.clone();
    let target = body.device_id.clone();
    let revoked_at_seq = state
        .blocking(move |s| s.revoke_device_by(Some(&device), &body.device_id, tokens::now()))
        .await?;
    tracing::info!(
        device_id = target,
        revoked_by = caller,
        revoked_at_seq,
        "device revoked"
    );
    Ok(cbor(StatusCode::OK, &RevokeResponse { revoked_at_seq }))
}

async fn push(
    State(state): State<AppState>,
    Authed(device): Authed,
    Cbor(body): Cbor<PushRequest>,
) -> Result<Response, ApiError> {
    let limits = state.limits();
    if body.blobs.len() > limits.max_batch_blobs {
        return Err(ApiError::too_large(format!(
            "a push may carry at most {} blobs, this one has {}",
            limits.max_batch_blobs,
            body.blobs.len()
        )));
    }
    for (index, blob) in body.blobs.iter().enumerate() {
        let size = u64::try_from(blob.ciphertext.len()).unwrap_or(u64::MAX);
        if size > limits.max_blob_bytes {
            return Err(ApiError::too_large(format!(
                "blob {index}: ciphertext of {size} bytes exceeds the limit of {} bytes",
                limits.max_blob_bytes
            )));
        }
        if blob.ciphertext.is_empty() {
            return Err(ApiError::bad_request(format!(
                "blob {index}: ciphertext is empty"
            )));
        }
        if content_id_of(&blob.ciphertext) != blob.content_id {
            return Err(ApiError::bad_request(format!(
                "blob {index}: content_id is not the SHA-256 of its ciphertext"
            )));
        }
        if blob.supersedes.is_some_and(|n| n > limits::MAX_CURSOR) {
            return Err(ApiError::bad_request(format!(
                "blob {index}: supersedes must be at most {}",
                limits::MAX_CURSOR
            )));
        }
    }
    if body.blobs.is_empty() {
        return Ok(cbor(StatusCode::OK, &PushResponse { assigned: vec![] }));
    }
    let count = body.blobs.len();
    let outcome = state
        .blocking(move |s| s.push(&device, &body.blobs, tokens::now()))
        .await?;
    let metrics = state.metrics();
    metrics.blobs_stored.inc_by(outcome.newly_stored);
    metrics.blobs_repeated.inc_by(
        u64::try_from(count)
            .unwrap_or(0)
            .saturating_sub(outcome.newly_stored),
    );
    Ok(cbor(
        StatusCode::OK,
        &PushResponse {
            assigned: outcome.assigned,
        },
    ))
}

/// Parses the pull query string: `after` (default 0) and `max_bytes` (default and clamp from the
/// limits). Unknown parameters are ignored.
pub fn parse_pull_query(raw: Option<&str>, limits: &Limits) -> Result<PullRequest, ApiError> {
    let mut after: Option<u64> = None;
    let mut max_bytes: Option<u64> = None;
    for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            QUERY_AFTER => {
                if after.is_some() {
                    return Err(ApiError::bad_request("`after` is given more than once"));
                }
                after = Some(parse_number(QUERY_AFTER, value, Overflow::Reject)?);
            }
            QUERY_MAX_BYTES => {
                if max_bytes.is_some() {
                    return Err(ApiError::bad_request("`max_bytes` is given more than once"));
                }
                max_bytes = Some(parse_number(QUERY_MAX_BYTES, value, Overflow::Clamp)?);
            }
            _ => {}
        }
    }
    Ok(PullRequest {
        after: after.unwrap_or(0),
        max_bytes: Some(
            max_bytes
                .unwrap_or(limits.pull_default_bytes)
                .min(limits.pull_max_bytes),
        ),
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Overflow {
    Reject,
    Clamp,
}

fn parse_number(name: &str, value: &str, overflow: Overflow) -> Result<u64, ApiError> {
    let shown: String = value.chars().take(40).collect();
    if value.is_empty() {
        return Err(ApiError::bad_request(format!(
            "`{name}` must be a non-negative integer, got an empty value"
        )));
    }
    if value.starts_with('-') {
        return Err(ApiError::bad_request(format!(
            "`{name}` must not be negative, got {shown:?}"
        )));
    }
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad_request(format!(
            "`{name}` must be a non-negative integer, got {shown:?}"
        )));
    }
    let parsed = value
        .parse::<u64>()
        .ok()
        .filter(|n| *n <= limits::MAX_CURSOR);
    match (parsed, overflow) {
        (Some(n), _) => Ok(n),
        (None, Overflow::Clamp) => Ok(limits::MAX_CURSOR),
        (None, Overflow::Reject) => Err(ApiError::bad_request(format!(
            "`{name}` is too large (at most {})",
            limits::MAX_CURSOR
        ))),
    }
}

async fn pull(
    State(state): State<AppState>,
    Authed(device): Authed,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let request = parse_pull_query(query.as_deref(), state.limits())?;
    let max_bytes = request
        .max_bytes
        .unwrap_or(state.limits().pull_default_bytes);
    let touch = state.should_touch(&device.id);
    let coordinator = device.is_coordinator();
    let page = state
        .blocking(move |s| {
            let page = s.pull_encoded(
                &device.workspace_id,
                request.after,
                max_bytes,
                limits::MAX_PULL_BLOBS,
            )?;
            if touch && let Err(err) = s.touch_device(&device.id, tokens::now()) {
                tracing::warn!(error = %err, "could not record the device's sync time");
            }
            Ok(page)
        })
        .await?;
    let page = if coordinator {
        page
    } else {
        page.without_tips()
    };
    state
        .metrics()
        .blobs_served
        .inc_by(u64::try_from(page.blobs).unwrap_or(0));
    // Sent from the buffer it was written into, without a copy.
    let (buffer, start) = page.into_parts();
    Ok(cbor_bytes(
        StatusCode::OK,
        axum::body::Bytes::from(buffer).slice(start..),
    ))
}

/// Parses the chain query string: `at`, comma-separated sequence numbers (1 to
/// [`limits::MAX_CHAIN_QUERY`] of them). Unknown parameters are ignored.
pub fn parse_chain_query(raw: Option<&str>) -> Result<Vec<u64>, ApiError> {
    let mut at = None;
    for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key != QUERY_AT {
            continue;
        }
        if at.is_some() {
            return Err(ApiError::bad_request("`at` is given more than once"));
        }
        let seqs = value
            .split(',')
            .map(|v| parse_number(QUERY_AT, v, Overflow::Reject))
            .collect::<Result<Vec<u64>, ApiError>>()?;
        if seqs.len() > limits::MAX_CHAIN_QUERY {
            return Err(ApiError::bad_request(format!(
                "`at` names {} sequence numbers; at most {} per request",
                seqs.len(),
                limits::MAX_CHAIN_QUERY
            )));
        }
        at = Some(seqs);
    }
    at.ok_or_else(|| ApiError::bad_request("`at` (comma-separated sequence numbers) is required"))
}

async fn chain(
    State(state): State<AppState>,
    Authed(device): Authed,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let seqs = parse_chain_query(query.as_deref())?;
    let answer = state
        .blocking(move |s| s.chain(&device.workspace_id, &seqs))
        .await?;
    Ok(cbor(StatusCode::OK, &answer))
}

/// Stores an update of one of the caller's check-ins. Nothing of it is logged beyond the request
/// line: its sealed details are opaque here, and its state and timing are the team's business.
async fn put_check_in(
    State(state): State<AppState>,
    Authed(device): Authed,
    Cbor(body): Cbor<CheckInRequest>,
) -> Result<Response, ApiError> {
    let answer = state
        .blocking(move |s| s.put_check_in(&device, &body, tokens::now()))
        .await?;
    Ok(cbor(StatusCode::OK, &answer))
}

async fn list_check_ins(
    State(state): State<AppState>,
    Authed(device): Authed,
) -> Result<Response, ApiError> {
    let grace = state.limits().check_in_grace.as_secs();
    let answer = state
        .blocking(move |s| s.check_ins(&device.workspace_id, tokens::now(), grace))
        .await?;
    Ok(cbor(StatusCode::OK, &answer))
}

async fn healthz(State(state): State<AppState>) -> Response {
    match state.blocking(|s| s.health()).await {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let text = state.metrics().render().map_err(ApiError::internal)?;
    Ok((
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response())
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint (see API.md; versioned routes are under /v1)")
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        waymark_protocol::codes::METHOD_NOT_ALLOWED,
        format!("method {method} is not allowed on this endpoint"),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn parse(q: &str) -> Result<PullRequest, ApiError> {
        parse_pull_query(Some(q), &Limits::default())
    }

    #[test]
    fn pull_query_defaults_and_clamps() {
        let limits = Limits::default();
        let req = parse_pull_query(None, &limits).unwrap();
        assert_eq!(req.after, 0);
        assert_eq!(req.max_bytes, Some(limits.pull_default_bytes));
        let req = parse("after=7&max_bytes=99999999999999999999999").unwrap();
        assert_eq!(req.after, 7);
        assert_eq!(req.max_bytes, Some(limits.pull_max_bytes));
        assert_eq!(parse("max_bytes=0&x=y").unwrap().max_bytes, Some(0));
    }

    #[test]
    fn pull_query_rejects_bad_cursors_with_a_reason() {
        for (query, needle) in [
            ("after=-1", "negative"),
            ("after=abc", "non-negative integer"),
            ("after=", "empty"),
            ("after=1.5", "non-negative integer"),
            ("after=9223372036854775808", "too large"),
            ("after=99999999999999999999999", "too large"),
            ("after=1&after=2", "more than once"),
            ("max_bytes=-5", "negative"),
        ] {
            let err = parse(query).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST, "{query}");
            assert!(err.message.contains(needle), "{query}: {}", err.message);
        }
        assert_eq!(
            parse("after=9223372036854775807").unwrap().after,
            limits::MAX_CURSOR
        );
    }

    #[test]
    fn chain_queries_name_one_to_64_numbers() {
        assert_eq!(parse_chain_query(Some("at=0,5,3")).unwrap(), vec![0, 5, 3]);
        let too_many: Vec<String> = (0..=limits::MAX_CHAIN_QUERY)
            .map(|n| n.to_string())
            .collect();
        for (query, needle) in [
            (None, "required"),
            (Some("after=3"), "required"),
            (Some("at="), "empty"),
            (Some("at=1,x"), "non-negative integer"),
            (Some("at=1&at=2"), "more than once"),
            (Some(&*format!("at={}", too_many.join(","))), "at most"),
        ] {
            let err = parse_chain_query(query).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST, "{query:?}");
            assert!(err.message.contains(needle), "{query:?}: {}", err.message);
        }
    }
}
