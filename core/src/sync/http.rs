//! The HTTP side of sync: CBOR requests to the relay server with timeouts, retries with
//! backoff for transient failures, and server answers turned into errors a caller can act on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use waymark_protocol as proto;

use super::pace::Pace;
use super::{NetworkError, Refusal};
use crate::error::{Error, Result};

/// Attempts per request before giving up on a transient failure.
const ATTEMPTS: u32 = 4;
/// First backoff; doubled each attempt.
const BACKOFF: Duration = Duration::from_millis(250);
/// Longest wait a server's `Retry-After` may impose before we give up for now.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Which request this is, for mapping a 401 to the right error.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    /// Enrolment with a one-time token.
    Enroll,
    /// Anything authenticated by the device token.
    Device,
}

/// A client for one server, optionally authenticated as one device.
pub(crate) struct Server {
    base: String,
    token: Option<String>,
    http: Client,
    cancel: Option<Arc<AtomicBool>>,
    /// Throughput learnt from this client's exchanges: sizes the next push batch or pull page.
    pace: Mutex<Pace>,
}

impl Refusal {
    fn into_error(self) -> Error {
        Error::Network(NetworkError::Refused(self))
    }
}

/// How a request ended when it did not succeed.
enum Failed {
    Error(Error),
    Refused(Refusal),
}

impl From<Error> for Failed {
    fn from(e: Error) -> Self {
        Failed::Error(e)
    }
}

/// What one exchange with the server moved.
pub(crate) struct Exchange<T> {
    pub body: T,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

impl Server {
    /// A client for the server at `base` (e.g. `https://sync.example.org`). Plain `http://` is
    /// refused unless the host is this machine (loopback) or `insecure` is set: device tokens
    /// and enrolment tokens must not cross a network in clear text.
    pub(crate) fn new(base: &str, token: Option<String>, insecure: bool) -> Result<Server> {
        let base = base.trim_end_matches('/').to_string();
        check_url(&base, insecure)?;
        let http = shared_client()?;
        Ok(Server {
            base,
            token,
            http,
            cancel: None,
            pace: Mutex::new(Pace::default()),
        })
    }

    /// Makes waits between retries end early, with `Cancelled`, once `cancel` is set.
    pub(crate) fn cancellable(mut self, cancel: Option<Arc<AtomicBool>>) -> Server {
        self.cancel = cancel;
        self
    }

    /// Bytes the next push batch or pull page should move at most, for the link in use.
    pub(crate) fn budget(&self) -> usize {
        self.pace
            .lock()
            .map_or(super::pace::START_BYTES, |p| p.budget())
    }

    /// Sleeps `d`, waking every 50 ms to see whether the sync was cancelled.
    fn wait(&self, d: Duration) -> Result<()> {
        let until = std::time::Instant::now() + d;
        loop {
            if self
                .cancel
                .as_ref()
                .is_some_and(|c| c.load(Ordering::Relaxed))
            {
                return Err(Error::Cancelled);
            }
            let now = std::time::Instant::now();
            if now >= until {
                return Ok(());
            }
            std::thread::sleep((until - now).min(Duration::from_millis(50)));
        }
    }

    /// POSTs `body` as CBOR to `path` and decodes the CBOR answer.
    pub(crate) fn post<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        call: Call,
        path: &str,
        body: &Req,
    ) -> Result<Exchange<Resp>> {
        match self.try_post(call, path, body)? {
            Ok(exchange) => Ok(exchange),
            Err(refusal) => Err(refusal.into_error()),
        }
    }

    /// [`Server::post`], telling a refusal (which the caller may act on, e.g. a stale epoch)
    /// apart from other failures.
    pub(crate) fn try_post<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        call: Call,
        path: &str,
        body: &Req,
    ) -> Result<std::result::Result<Exchange<Resp>, Refusal>> {
        self.try_send(reqwest::Method::POST, call, path, body)
    }

    /// PUTs `body` as CBOR to `path` and decodes the CBOR answer.
    pub(crate) fn put<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        call: Call,
        path: &str,
        body: &Req,
    ) -> Result<Exchange<Resp>> {
        match self.try_send(reqwest::Method::PUT, call, path, body)? {
            Ok(exchange) => Ok(exchange),
            Err(refusal) => Err(refusal.into_error()),
        }
    }

    fn try_send<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        call: Call,
        path: &str,
        body: &Req,
    ) -> Result<std::result::Result<Exchange<Resp>, Refusal>> {
        let bytes = proto::encode(body);
        let up = bytes.len() as u64;
        self.send(call, up, || {
            let mut rb = self
                .http
                .request(method.clone(), format!("{}{path}", self.base))
                .header(reqwest::header::CONTENT_TYPE, proto::CONTENT_TYPE_CBOR)
                .body(bytes.clone());
            if let Some(t) = &self.token {
                rb = rb.bearer_auth(t);
            }
            rb.send()
        })
        .map(Ok)
        .or_else(|f| match f {
            Failed::Error(e) => Err(e),
            Failed::Refused(r) => Ok(Err(r)),
        })
    }

    /// GETs `path_and_query` and decodes the CBOR answer.
    pub(crate) fn get<Resp: DeserializeOwned>(
        &self,
        path_and_query: &str,
    ) -> Result<Exchange<Resp>> {
        self.send(Call::Device, 0, || {
            let mut rb = self.http.get(format!("{}{path_and_query}", self.base));
            if let Some(t) = &self.token {
                rb = rb.bearer_auth(t);
            }
            rb.send()
        })
        .map_err(|f| match f {
            Failed::Error(e) => e,
            Failed::Refused(r) => r.into_error(),
        })
    }

    /// GETs `path` and decodes the CBOR answer; `None` when the server has nothing there (404).
    pub(crate) fn get_optional<Resp: DeserializeOwned>(&self, path: &str) -> Result<Option<Resp>> {
        let answer = self.send(Call::Device, 0, || {
            let mut rb = self.http.get(format!("{}{path}", self.base));
            if let Some(t) = &self.token {
                rb = rb.bearer_auth(t);
            }
            rb.send()
        });
        match answer {
            Ok(exchange) => Ok(Some(exchange.body)),
            Err(Failed::Refused(r)) if r.status == StatusCode::NOT_FOUND.as_u16() => Ok(None),
            Err(Failed::Refused(r)) => Err(r.into_error()),
            Err(Failed::Error(e)) => Err(e),
        }
    }

    fn send<Resp: DeserializeOwned>(
        &self,
        call: Call,
        bytes_up: u64,
        request: impl Fn() -> reqwest::Result<Response>,
    ) -> std::result::Result<Exchange<Resp>, Failed> {
        let mut last = None;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                self.wait(backoff(attempt))?;
            }
            let started = std::time::Instant::now();
            let resp = match request() {
                Ok(r) => r,
                Err(e) => {
                    // Connection refused, reset, timed out: the network comes and goes.
                    last = Some(NetworkError::Transport(e));
                    continue;
                }
            };
            let status = resp.status();
            let retry_after = resp
                .headers()
                .get(proto::HEADER_RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .map(Duration::from_secs);
            let body = match resp.bytes() {
                Ok(b) => b,
                Err(e) => {
                    last = Some(NetworkError::Transport(e));
                    continue;
                }
            };
            let bytes_down = body.len() as u64;
            if let Ok(mut pace) = self.pace.lock() {
                pace.record(bytes_up + bytes_down, started.elapsed());
            }
            if status.is_success() {
                // An empty answer (204) reads as CBOR null, which only a caller that ignores
                // the answer accepts.
                let answer: &[u8] = if body.is_empty() { &[0xf6] } else { &body };
                return match proto::decode::<Resp>(answer) {
                    Ok(body) => Ok(Exchange {
                        body,
                        bytes_up,
                        bytes_down,
                    }),
                    // A cut-short body that still claimed success: try again.
                    Err(e) => {
                        last = Some(NetworkError::Unreadable(e));
                        continue;
                    }
                };
            }
            let err: Option<proto::ErrorBody> = proto::decode(&body).ok();
            let code = err.as_ref().map_or("", |e| e.code.as_str());
            let message = err.as_ref().map_or(String::new(), |e| e.message.clone());
            match status {
                StatusCode::UNAUTHORIZED => {
                    return Err(Failed::Error(match (call, code) {
                        (Call::Enroll, proto::codes::TOKEN_EXPIRED) => Error::InviteExpired,
                        (Call::Enroll, proto::codes::TOKEN_USED) => Error::InviteUsed,
                        (Call::Enroll, _) => {
                            Error::InvalidInvite("the server does not know this invite".into())
                        }
                        (Call::Device, proto::codes::DEVICE_REVOKED) => Error::DeviceRevoked,
                        // Not a revocation: the token is unknown to this server (a restore
                        // from backup, another server at the address) or never reached it.
                        (Call::Device, _) => Error::DeviceUnknown,
                    }));
                }
                StatusCode::TOO_MANY_REQUESTS => {
                    let wait = retry_after.unwrap_or(BACKOFF);
                    if wait > MAX_RETRY_AFTER {
                        return Err(Failed::Error(Error::Network(NetworkError::Busy {
                            wait_secs: wait.as_secs(),
                        })));
                    }
                    self.wait(wait)?;
                    last = Some(NetworkError::RateLimited);
                }
                StatusCode::FORBIDDEN => return Err(Failed::Error(Error::NotPermitted(message))),
                s if s.is_server_error() => {
                    last = Some(NetworkError::Server { status: s, message });
                }
                s => {
                    // A request the server will never accept as it is: retrying cannot help.
                    return Err(Failed::Refused(Refusal {
                        status: s.as_u16(),
                        code: code.to_string(),
                        message,
                    }));
                }
            }
        }
        Err(Failed::Error(Error::Network(NetworkError::GaveUp {
            attempts: ATTEMPTS,
            last: Box::new(last.unwrap_or(NetworkError::Other("no attempt was made".into()))),
        })))
    }
}

/// Refuses a server URL that is not `https://`, or `http://` to this machine, unless
/// `insecure` (an app's explicit choice, e.g. a test server or a closed network).
fn check_url(base: &str, insecure: bool) -> Result<()> {
    let rest = if let Some(rest) = base.strip_prefix("https://") {
        rest
    } else if let Some(rest) = base.strip_prefix("http://") {
        if !insecure && !is_loopback(rest) {
            return Err(Error::invalid(
                "server_url",
                "plain http:// would send the device's token in clear text: use https:// \
                 (http:// is only accepted for this machine, or when the app allows insecure \
                 transport explicitly)",
            ));
        }
        rest
    } else {
        return Err(Error::invalid(
            "server_url",
            "must start with https:// (or http:// for this machine)",
        ));
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err(Error::invalid("server_url", "names no host"));
    }
    // A user name or password in the URL would be stored with the membership and could be
    // quoted by a transport error's message; the device proves itself with its token instead.
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    if authority.contains('@') {
        return Err(Error::invalid(
            "server_url",
            "must not carry a user name or password: the device signs in with its own token",
        ));
    }
    Ok(())
}

/// Whether the authority part of a URL (after the scheme) names this machine.
fn is_loopback(rest: &str) -> bool {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    // Credentials before an '@' would let "http://127.0.0.1@evil.example" pass as loopback.
    if authority.contains('@') {
        return false;
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// One HTTP client for the whole process: building one parses the trust roots, which is slow,
/// and a shared one keeps connections alive across syncs.
pub(crate) fn shared_client() -> Result<Client> {
    static CLIENT: OnceLock<Client> = OnceLock::new();
    if let Some(c) = CLIENT.get() {
        return Ok(c.clone());
    }
    // Trust the Mozilla root store compiled in, not the platform's: the same on every phone,
    // no CA bundle needed in minimal images, and no JNI set-up before the first sync on
    // Android (which the platform verifier requires).
    let roots = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .filter_map(|c| reqwest::Certificate::from_der(c.as_ref()).ok());
    let c = Client::builder()
        .tls_certs_only(roots)
        .connect_timeout(Duration::from_secs(15))
        .timeout(Duration::from_secs(60))
        .user_agent(concat!("waymark-core/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(NetworkError::Client)?;
    Ok(CLIENT.get_or_init(|| c).clone())
}

fn backoff(attempt: u32) -> Duration {
    let base = BACKOFF * 2u32.saturating_pow(attempt - 1);
    // Jitter so that a team's phones regaining the network together do not retry in step.
    base + Duration::from_millis(rand::random::<u64>() % 200)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn the_client_builds_with_compiled_in_roots_and_reports_unreachable_servers() {
        // No CA bundle is needed on the machine: the roots are compiled in.
        let server = Server::new("https://127.0.0.1:9", Some("t".into()), false).unwrap();
        let r = server.get::<proto::PullResponse>("/v1/pull?after=0");
        assert!(matches!(r, Err(Error::Network(_))), "{:?}", r.err());
        assert!(matches!(
            Server::new("ftp://example.org", None, false).err(),
            Some(Error::InvalidInput { .. })
        ));
    }

    #[test]
    fn an_unreachable_server_is_reported_with_the_transport_error_behind_it() {
        let server = Server::new("http://127.0.0.1:9", Some("t".into()), false).unwrap();
        let Err(err) = server.get::<proto::PullResponse>("/v1/pull?after=0") else {
            panic!("nothing listens on port 9");
        };
        assert!(
            err.to_string()
                .starts_with("network: no answer after 4 attempts: "),
            "{err}"
        );
        // Walking source(): the network error, how the last attempt failed, then reqwest's own.
        let mut causes = Vec::new();
        let mut cause = std::error::Error::source(&err);
        while let Some(c) = cause {
            causes.push(c);
            cause = c.source();
        }
        assert!(
            causes.iter().any(|c| c.is::<reqwest::Error>()),
            "{causes:?}"
        );
        assert!(
            causes.iter().all(|c| !c.to_string().contains("Bearer")),
            "{causes:?}"
        );
    }

    #[test]
    fn plain_http_is_refused_unless_loopback_or_explicitly_allowed() {
        for ok in [
            "https://sync.example.org",
            "http://127.0.0.1:7878",
            "http://127.9.9.9",
            "http://localhost:80/",
            "http://[::1]:7878",
        ] {
            assert!(Server::new(ok, None, false).is_ok(), "{ok}");
        }
        for refused in [
            "http://sync.example.org",
            "http://10.0.0.5:7878",
            "http://192.168.1.2",
            "http://127.0.0.1@evil.example",
            "http://localhost.evil.example",
            "http://[::2]:80",
            "https://",
            "https://user:secret@sync.example.org",
            "https://operator@sync.example.org/waymark",
        ] {
            assert!(
                matches!(
                    Server::new(refused, None, false).err(),
                    Some(Error::InvalidInput { .. })
                ),
                "{refused}"
            );
        }
        assert!(Server::new("http://10.0.0.5:7878", None, true).is_ok());
    }
}
