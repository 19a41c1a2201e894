//! What can go wrong talking to a server, with the cause kept: the transport's error, the
//! server's refusal in its own words, or an answer that does not fit.

use reqwest::StatusCode;
use thiserror::Error;
use waymark_protocol as proto;

/// The server could not be reached, refused the request, or answered with something unusable.
#[derive(Debug, Error)]
pub enum NetworkError {
    /// The request did not complete (no connection, reset, timed out, a body cut short).
    #[error("{}", describe(.0))]
    Transport(#[source] reqwest::Error),
    /// The HTTP client could not be built (e.g. no usable TLS set-up).
    #[error("cannot build an HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// The server answered with a body that does not decode.
    #[error("unreadable answer: {0}")]
    Unreadable(#[from] proto::DecodeError),
    /// The server asked to slow down, and the wait did not end the refusals.
    #[error("rate limited")]
    RateLimited,
    /// The server asked to wait longer than a sync may.
    #[error("the server asks to wait {wait_secs} s before syncing again")]
    Busy {
        /// The wait it asked for, in seconds.
        wait_secs: u64,
    },
    /// The server failed (a 5xx).
    #[error("server error {status}: {message}")]
    Server {
        /// The HTTP status.
        status: StatusCode,
        /// The server's message for people.
        message: String,
    },
    /// Every attempt failed; `last` says how the last one did.
    #[error("no answer after {attempts} attempts: {last}")]
    GaveUp {
        /// How many attempts were made.
        attempts: u32,
        /// How the last attempt failed.
        #[source]
        last: Box<NetworkError>,
    },
    /// The server refused the request for good.
    #[error("server refused ({} {}): {}", .0.status, .0.code, .0.message)]
    Refused(Refusal),
    /// The server refused one step of a larger operation for good.
    #[error("the server refused {step} ({} {}): {}", .refusal.status, .refusal.code, .refusal.message)]
    RefusedStep {
        /// The step refused, e.g. "a team log append".
        step: &'static str,
        /// The refusal.
        refusal: Refusal,
    },
    /// A tip page's server failed; the error has no URL, which names the tipster's lookup.
    #[error("{what}: {source}")]
    TipPage {
        /// The step that failed.
        what: &'static str,
        /// The transport's error, its URL removed.
        #[source]
        source: reqwest::Error,
    },
    /// A tip page's server sent replies that are not the expected JSON.
    #[error("the server's list of replies is unreadable: {0}")]
    TipReplies(#[source] serde_json::Error),
    /// The server's answers do not fit together (e.g. its log changed during a pull).
    #[error("{0}")]
    Other(String),
}

/// An inconsistency noticed by Waymark itself, with no error behind it.
impl From<&str> for NetworkError {
    fn from(what: &str) -> Self {
        NetworkError::Other(what.into())
    }
}

/// A request the server refused for good (a 4xx other than 401, 403 and 429): retrying it as it
/// is cannot help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The HTTP status.
    pub status: u16,
    /// The stable error code from `waymark_protocol::codes`.
    pub code: String,
    /// The server's message for people.
    pub message: String,
}

/// A transport error in a few words for the common cases; otherwise reqwest's message, which
/// names the URL (a server address and a path, no token: tokens go in headers).
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "could not connect".into()
    } else {
        e.to_string()
    }
}
