//! Limits per client address on what anyone may try without a device token: enrollments, and
//! authentications that fail. Token buckets in memory, like the per-device limiter; the client
//! address is the peer's, or the one a trusted proxy forwarded for (see `crate::clients`).
//!
//! - Every `POST /v1/enroll` takes a token from the address's enrollment bucket, before its body
//!   is read; the body of an enrollment is at most [`MAX_ENROLL_BODY_BYTES`] (the only
//!   unauthenticated body the server reads).
//! - Every 401 answer takes a token from the address's failed-authentication bucket. While that
//!   bucket is empty, the address's `/v1` requests are answered 429 without looking at their
//!   token: a guesser learns nothing more, and the database is spared. A real device sharing the
//!   address (one NAT) waits too, for `Retry-After`.
//!
//! Requests without a peer address (the router driven in-process by tests) are not limited.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use waymark_protocol::PATH_ENROLL;

use super::AppState;
use super::error::ApiError;
use super::extract::is_length_limit;
use crate::clients::{address_key, client_address};
use crate::config::Limits;
use crate::ratelimit::RateLimiter;

/// Largest enrollment body: a token, a device name, two keys and a join proof fit in 1 KiB.
pub const MAX_ENROLL_BODY_BYTES: usize = 16 * 1024;

/// The per-address buckets.
#[derive(Debug)]
pub(crate) struct AddressLimiters {
    enroll: RateLimiter<IpAddr>,
    failed_auth: RateLimiter<IpAddr>,
}

impl AddressLimiters {
    /// Buckets sized by `limits`.
    pub(crate) fn new(limits: &Limits) -> Self {
        Self {
            enroll: RateLimiter::new(limits.enroll_rate_per_second, limits.enroll_rate_burst),
            failed_auth: RateLimiter::new(
                limits.failed_auth_rate_per_second,
                limits.failed_auth_burst,
            ),
        }
    }
}

/// Middleware applying the per-address limits to `/v1` requests.
pub(crate) async fn limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if !path.starts_with("/v1/") {
        return next.run(req).await;
    }
    let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() else {
        return next.run(req).await;
    };
    let client = address_key(client_address(
        peer.ip(),
        req.headers(),
        &state.limits().trusted_proxies,
    ));
    let limiters = &state.inner.address_limits;
    if let Err(wait) = limiters.failed_auth.peek(&client, Instant::now()) {
        return too_many(wait, "too many failed authentications from this address");
    }
    let req = if path == PATH_ENROLL {
        if let Err(wait) = limiters.enroll.check(&client, Instant::now()) {
            return too_many(wait, "too many enrollments from this address");
        }
        match read_enroll_body(req).await {
            Ok(req) => req,
            Err(err) => return err.into_response(),
        }
    } else {
        req
    };
    let response = next.run(req).await;
    if response.status() == StatusCode::UNAUTHORIZED {
        // Spent or not, the answer stays the 401: the next request gets the 429.
        let _ = limiters.failed_auth.check(&client, Instant::now());
    }
    response
}

/// 429 `rate_limited` with `Retry-After` in whole seconds (at least 1).
fn too_many(wait: Duration, what: &str) -> Response {
    ApiError::too_many(wait, what).into_response()
}

/// Reads an enrollment's body, refusing one over [`MAX_ENROLL_BODY_BYTES`] (413).
async fn read_enroll_body(req: Request) -> Result<Request, ApiError> {
    let too_large = || {
        ApiError::too_large(format!(
            "an enrollment body is at most {MAX_ENROLL_BODY_BYTES} bytes"
        ))
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_ENROLL_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_ENROLL_BODY_BYTES)
        .await
        .map_err(|err| {
            if is_length_limit(&err) {
                too_large()
            } else {
                ApiError::bad_request("the request body could not be read completely")
            }
        })?;
    Ok(Request::from_parts(parts, Body::from(bytes)))
}
