//! Server limits, set from the command line or environment (see `cli`).

use std::time::Duration;

use waymark_protocol::limits;

use crate::clients::TrustedProxies;

/// How long past its deadline a check-in is overdue unless told otherwise: a worker ten minutes
/// late is worth a call, and a phone that lost signal on the way back has time to get through.
pub const DEFAULT_CHECK_IN_GRACE: Duration = Duration::from_secs(600);

/// Limits the server enforces on every request.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Largest request body, bytes (413 above).
    pub max_body_bytes: u64,
    /// Largest blob ciphertext, bytes (413 above).
    pub max_blob_bytes: u64,
    /// Most blobs per push (413 above).
    pub max_batch_blobs: usize,
    /// Pull byte budget when the client gives none.
    pub pull_default_bytes: u64,
    /// Largest pull byte budget; larger requests are clamped.
    pub pull_max_bytes: u64,
    /// Sustained requests per second per device; 0 disables rate limiting.
    pub rate_per_second: f64,
    /// Requests a device may make in a burst above the sustained rate.
    pub rate_burst: u32,
    /// Longest time spent on one request, reading its body included (408 above).
    pub request_timeout: Duration,
    /// Sustained enrollments per second per client address; 0 disables the limit.
    pub enroll_rate_per_second: f64,
    /// Enrollments a client address may burst above the sustained rate.
    pub enroll_rate_burst: u32,
    /// Sustained failed authentications (401 answers) per second per client address; once its
    /// burst is spent, the address's requests are answered 429 without being checked. 0
    /// disables the limit.
    pub failed_auth_rate_per_second: f64,
    /// Failed authentications a client address may burst above the sustained rate.
    pub failed_auth_burst: u32,
    /// Reverse proxies whose `X-Forwarded-For` names the client address (see `clients`).
    pub trusted_proxies: TrustedProxies,
    /// Time past a check-in's deadline before it is overdue (listed so, and alerted).
    pub check_in_grace: Duration,
    /// Sustained requests per second to the public tip routes (`/t/...`) per client address;
    /// 0 disables the limit.
    pub tip_rate_per_second: f64,
    /// Requests to the public tip routes a client address may burst above the sustained rate.
    pub tip_rate_burst: u32,
    /// Sustained tips per second posted to one tip page, from all addresses together; 0
    /// disables the limit.
    pub tip_page_rate_per_second: f64,
    /// Tips one page may take in a burst above the sustained rate.
    pub tip_page_rate_burst: u32,
    /// Most tips waiting in one workspace; submissions beyond are answered 503.
    pub max_waiting_tips: u64,
    /// The server's absolute URL as tipsters reach it (e.g. `https://tips.example.org`), which
    /// tip pages post to; `None`: taken from each request's `Host` (see `api::tips`).
    pub public_url: Option<String>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: limits::DEFAULT_MAX_BODY_BYTES,
            max_blob_bytes: limits::DEFAULT_MAX_BLOB_BYTES,
            max_batch_blobs: limits::DEFAULT_MAX_BATCH_BLOBS,
            pull_default_bytes: limits::DEFAULT_PULL_MAX_BYTES,
            pull_max_bytes: limits::DEFAULT_PULL_MAX_BYTES_CLAMP,
            rate_per_second: 20.0,
            rate_burst: 100,
            request_timeout: Duration::from_secs(limits::DEFAULT_REQUEST_TIMEOUT_SECS),
            // A training session enrolls a room of phones behind one address: 30 at once, then
            // one every 2 s. Unknown tokens also count as failed authentications below.
            enroll_rate_per_second: 0.5,
            enroll_rate_burst: 30,
            // Devices almost never fail authentication (a revoked phone stops at its first 401),
            // so 20 failures, then one every 5 s, is plenty for people and nothing for a guesser.
            failed_auth_rate_per_second: 0.2,
            failed_auth_burst: 20,
            trusted_proxies: TrustedProxies::loopback(),
            check_in_grace: DEFAULT_CHECK_IN_GRACE,
            // A tipster loads the page, posts once and later reads replies: 30 requests, then
            // one every 5 s, leaves room for people behind one address (a shelter, a carrier's
            // NAT) and little for a script.
            tip_rate_per_second: 0.2,
            tip_rate_burst: 30,
            // A page on a poster gets a few tips an hour; 60 at once, then one a minute, keeps
            // a flood from many addresses from filling the workspace's queue in minutes.
            tip_page_rate_per_second: 1.0 / 60.0,
            tip_page_rate_burst: 60,
            max_waiting_tips: limits::MAX_WAITING_TIPS,
            public_url: None,
        }
    }
}

impl Limits {
    /// The default limits without rate limiting (for tests and trusted deployments).
    pub fn unlimited_rate() -> Self {
        Self {
            rate_per_second: 0.0,
            enroll_rate_per_second: 0.0,
            failed_auth_rate_per_second: 0.0,
            tip_rate_per_second: 0.0,
            tip_page_rate_per_second: 0.0,
            ..Self::default()
        }
    }
}
