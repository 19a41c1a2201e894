//! Prometheus metrics of one server instance (its own registry, so tests can run many servers in
//! one process). Labels have bounded values: known routes only, status codes, error codes.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// The server's metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Requests by route, method and status.
    pub requests: IntCounterVec,
    /// Request latency by route, seconds.
    pub latency: HistogramVec,
    /// Request body bytes read, by route.
    pub bytes_in: IntCounterVec,
    /// Response body bytes written, by route.
    pub bytes_out: IntCounterVec,
    /// Error answers by error code.
    pub errors: IntCounterVec,
    /// Blobs newly stored by pushes.
    pub blobs_stored: IntCounter,
    /// Blobs pushed again that were already stored (idempotent retries).
    pub blobs_repeated: IntCounter,
    /// Blobs served by pulls.
    pub blobs_served: IntCounter,
    /// Client connections open now.
    pub connections_open: IntGauge,
    /// Connections closed at once because a cap was reached, by cap.
    pub connections_refused: IntCounterVec,
    /// Connections closed because a request header did not arrive in time.
    pub connections_timed_out: IntCounter,
}

impl Metrics {
    /// Creates and registers all metrics in a fresh registry.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "waymark_http_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "waymark_http_request_duration_seconds",
                "HTTP request latency",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["route"],
        )?;
        let bytes_in = IntCounterVec::new(
            Opts::new(
                "waymark_http_request_bytes_total",
                "Request body bytes read",
            ),
            &["route"],
        )?;
        let bytes_out = IntCounterVec::new(
            Opts::new(
                "waymark_http_response_bytes_total",
                "Response body bytes written",
            ),
            &["route"],
        )?;
        let errors = IntCounterVec::new(
            Opts::new("waymark_http_errors_total", "Error answers by error code"),
            &["code"],
        )?;
        let blobs_stored =
            IntCounter::new("waymark_blobs_stored_total", "Blobs newly stored by pushes")?;
        let blobs_repeated = IntCounter::new(
            "waymark_blobs_repeated_total",
            "Pushed blobs that were already stored (retries)",
        )?;
        let blobs_served = IntCounter::new("waymark_blobs_served_total", "Blobs served by pulls")?;
        let connections_open =
            IntGauge::new("waymark_connections_open", "Client connections open now")?;
        let connections_refused = IntCounterVec::new(
            Opts::new(
                "waymark_connections_refused_total",
                "Connections closed at once because a cap was reached",
            ),
            &["cap"],
        )?;
        let connections_timed_out = IntCounter::new(
            "waymark_connections_timed_out_total",
            "Connections closed because a request header did not arrive in time",
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(bytes_in.clone()))?;
        registry.register(Box::new(bytes_out.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(blobs_stored.clone()))?;
        registry.register(Box::new(blobs_repeated.clone()))?;
        registry.register(Box::new(blobs_served.clone()))?;
        registry.register(Box::new(connections_open.clone()))?;
        registry.register(Box::new(connections_refused.clone()))?;
        registry.register(Box::new(connections_timed_out.clone()))?;
        Ok(Self {
            registry,
            requests,
            latency,
            bytes_in,
            bytes_out,
            errors,
            blobs_stored,
            blobs_repeated,
            blobs_served,
            connections_open,
            connections_refused,
            connections_timed_out,
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        String::from_utf8(out).map_err(|err| prometheus::Error::Msg(err.to_string()))
    }
}
