//! Extractors: the authenticated device (bearer token, rate limit) and CBOR bodies (size limit,
//! content type, decoding), each rejecting with a precise [`ApiError`].

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use waymark_protocol::{BEARER_PREFIX, CONTENT_TYPE_CBOR, decode};

use super::error::ApiError;
use super::{AppState, route_label};
use crate::storage::Device;
use crate::tokens;

/// Per-request facts that handlers learn and the logging middleware reports.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// The authenticated device, once known.
    pub device_id: Arc<OnceLock<String>>,
}

/// The device that sent the request, authenticated by its bearer token and within its rate limit.
#[derive(Debug, Clone)]
pub struct Authed(pub Device);

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| {
                ApiError::unauthorized("missing header `Authorization: Bearer <device token>`")
            })?
            .to_str()
            .map_err(|_| ApiError::unauthorized("unknown device token"))?;
        let token = value
            .strip_prefix(BEARER_PREFIX)
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be `Bearer <device token>`")
            })?
            .trim();
        let hash = tokens::hash_token(token);
        let device = state
            .blocking(move |storage| storage.authenticate(&hash))
            .await?
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "unknown device token: this server does not know the device (restored from \
                     a backup, or another server); enrol it again",
                )
            })?;
        if let Some(ctx) = parts.extensions.get::<RequestContext>() {
            let _ = ctx.device_id.set(device.id.clone());
        }
        if let Err(wait) = state.limiter().check(&device.id, Instant::now()) {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return Err(ApiError::rate_limited(secs.max(1)));
        }
        Ok(Self(device))
    }
}

/// A request body decoded from CBOR.
#[derive(Debug, Clone)]
pub struct Cbor<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for Cbor<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let limit = state.limits().max_body_bytes;
        if let Some(content_type) = req.headers().get(header::CONTENT_TYPE) {
            let essence = content_type
                .to_str()
                .unwrap_or("")
                .split(';')
                .next()
                .unwrap_or("")
                .trim();
            if !essence.eq_ignore_ascii_case(CONTENT_TYPE_CBOR) {
                return Err(ApiError::new(
                    axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    waymark_protocol::codes::UNSUPPORTED_MEDIA_TYPE,
                    format!("the body must be `Content-Type: {CONTENT_TYPE_CBOR}`"),
                ));
            }
        }
        let too_large = || ApiError::too_large(format!("the request body exceeds {limit} bytes"));
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit) {
            return Err(too_large());
        }
        let route = route_label(req.uri().path());
        let bytes = axum::body::to_bytes(
            req.into_body(),
            usize::try_from(limit).unwrap_or(usize::MAX),
        )
        .await
        .map_err(|err| {
            if is_length_limit(&err) {
                too_large()
            } else {
                ApiError::bad_request("the request body could not be read completely")
            }
        })?;
        state
            .metrics()
            .bytes_in
            .with_label_values(&[route])
            .inc_by(u64::try_from(bytes.len()).unwrap_or(u64::MAX));
        decode(&bytes)
            .map(Cbor)
            .map_err(|err| ApiError::bad_request(err.to_string()))
    }
}

/// Whether reading a body failed because it exceeded its length limit.
pub(super) fn is_length_limit(err: &axum::Error) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        current = e.source();
    }
    false
}
