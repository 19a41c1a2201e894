//! Error answers: every failure becomes a status code plus a CBOR [`ErrorBody`] with a stable
//! code and a message for people. Internal details are logged, never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use waymark_protocol::{CONTENT_TYPE_CBOR, ErrorBody, HEADER_RETRY_AFTER, codes, encode};

use crate::storage::StorageError;

/// The error code of an error answer, attached to the response for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode(pub &'static str);

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine code from [`waymark_protocol::codes`].
    pub code: &'static str,
    /// What was wrong, for people.
    pub message: String,
    /// Seconds to wait, sent as `Retry-After`.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with the given status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, codes::BAD_REQUEST, message)
    }

    /// 401 `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, codes::UNAUTHORIZED, message)
    }

    /// 403 `forbidden`: the device's role does not allow this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, codes::FORBIDDEN, message)
    }

    /// 413 `too_large`.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, codes::TOO_LARGE, message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, codes::NOT_FOUND, message)
    }

    /// 500 `internal`: logs `detail` and answers a generic message.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::INTERNAL,
            "internal server error; retry later (quote the x-request-id header when reporting)",
        )
    }

    /// 429 `rate_limited` saying what was too much, with `Retry-After` of `wait` in whole
    /// seconds (at least 1).
    pub fn too_many(wait: std::time::Duration, what: &str) -> Self {
        let secs = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
        Self {
            retry_after: Some(secs),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                codes::RATE_LIMITED,
                format!("{what}; retry after {secs} s"),
            )
        }
    }

    /// 429 `rate_limited` with `Retry-After`.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self {
            retry_after: Some(retry_after_secs),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                codes::RATE_LIMITED,
                format!("too many requests from this device; retry after {retry_after_secs} s"),
            )
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(err: StorageError) -> Self {
        match err {
            StorageError::NotFound { what } => Self::not_found(format!("{what} not found")),
            StorageError::TokenUnknown => Self::unauthorized("unknown enrollment token"),
            StorageError::TokenExpired => Self::new(
                StatusCode::UNAUTHORIZED,
                codes::TOKEN_EXPIRED,
                "the enrollment token has expired; ask for a new one",
            ),
            StorageError::TokenUsed => Self::new(
                StatusCode::UNAUTHORIZED,
                codes::TOKEN_USED,
                "the enrollment token was already used; ask for a new one",
            ),
            StorageError::DeviceRevoked => Self::new(
                StatusCode::UNAUTHORIZED,
                codes::DEVICE_REVOKED,
                "this device was revoked; it may not sync with this workspace any more",
            ),
            StorageError::Conflict(message) => {
                Self::new(StatusCode::CONFLICT, codes::CONFLICT, message)
            }
            StorageError::LogMoved(message) => {
                Self::new(StatusCode::CONFLICT, codes::TEAM_LOG_MOVED, message)
            }
            StorageError::StaleEpoch(message) => {
                Self::new(StatusCode::CONFLICT, codes::STALE_EPOCH, message)
            }
            StorageError::Forbidden(message) => Self::forbidden(message),
            StorageError::Invalid(message) => Self::bad_request(message),
            other @ (StorageError::NewerSchema { .. }
            | StorageError::Io { .. }
            | StorageError::Backend(_)) => Self::internal(other),
        }
    }
}

/// A CBOR response with the given status.
pub fn cbor<T: Serialize>(status: StatusCode, body: &T) -> Response {
    cbor_bytes(status, encode(body).into())
}

/// A response with the given status and body, already encoded as CBOR.
pub fn cbor_bytes(status: StatusCode, body: axum::body::Bytes) -> Response {
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(CONTENT_TYPE_CBOR),
            ),
            // Answers are per device and change with every push: never cache them.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = cbor(
            self.status,
            &ErrorBody {
                code: self.code.to_owned(),
                message: self.message,
            },
        );
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(HEADER_RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"waymark\""),
            );
        }
        response.extensions_mut().insert(ErrorCode(self.code));
        response
    }
}
