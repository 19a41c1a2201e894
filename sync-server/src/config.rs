//! Server limits, set from the command line or environment (see `cli`).

use std::time::Duration;

use waymark_protocol::limits;

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
        }
    }
}

impl Limits {
    /// The default limits without rate limiting (for tests and trusted deployments).
    pub fn unlimited_rate() -> Self {
        Self {
            rate_per_second: 0.0,
            ..Self::default()
        }
    }
}
