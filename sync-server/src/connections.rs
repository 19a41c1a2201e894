//! The accept loop: every client connection, from accept to close, under caps and timeouts that
//! keep the server answering while hostile clients hold connections open.
//!
//! `axum::serve` has no header timeout and no connection caps: 20,000 connections that sent half
//! a request header (or nothing) stopped the server from accepting. Here:
//! - a connection must deliver a complete request header within the header read timeout, counted
//!   from the moment it is accepted and, on a kept-alive connection, from the end of the previous
//!   answer; otherwise it is closed. This is hyper's HTTP/1 `header_read_timeout`, used through
//!   hyper's own `http1` builder, whose timer starts with the connection, so a client that sends
//!   nothing is closed too (hyper-util's `auto` builder first reads to pick a protocol, untimed:
//!   hyper issue 3756). Bodies are timed by the request timeout (`api`);
//! - open connections are capped in total and per client address (trusted proxies exempt, see
//!   [`crate::clients`]); a connection over a cap is closed at once, before anything is read, so
//!   refusing costs next to nothing and everyone else keeps being served;
//! - the open-file limit is raised to fit the total cap (or the cap lowered to fit the limit);
//! - on shutdown the listener closes, idle connections close, and requests in flight finish.
//!
//! Handlers see the peer address as axum's `ConnectInfo<SocketAddr>`.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpSocket};
use tower::ServiceExt as _;

use crate::clients::{TrustedProxies, address_key};
use crate::metrics::Metrics;

/// How often, at most, refused connections and accept failures are logged (a flood must not
/// become a flood of log lines).
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Default `--max-connections`: far below common open-file limits, far above what a team's
/// devices (or a proxy in front of them) hold open.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

/// Default `--max-connections-per-address`: a phone holds one or two connections, an office
/// behind one NAT a few dozen; a reverse proxy is exempt (see `TrustedProxies`).
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 64;

/// File descriptors kept free for everything but client connections: the database files, the
/// SQLite reader pool, logs.
pub const RESERVED_FILES: u64 = 256;

/// Caps and timeouts on client connections.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionLimits {
    /// Longest wait for a complete request header, from accept or from the previous answer.
    pub header_read_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
    /// Most connections open at once from one client address (0: no cap). Trusted proxies are
    /// exempt.
    pub max_connections_per_address: usize,
    /// Addresses exempt from the per-address cap.
    pub trusted_proxies: TrustedProxies,
    /// Longest wait for requests in flight on shutdown.
    pub shutdown_grace: Duration,
}

/// Connections the kernel may hold completed for the accept loop (clamped by the kernel to
/// `net.core.somaxconn`, 4096 on current Linux). A flood arrives faster than any loop accepts:
/// with tokio's default of 1024 the queue overflowed and the kernel dropped the SYNs of real
/// clients too, each then waiting a second or more to retry.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds a listener on `addr` with a deep accept queue (see [`LISTEN_BACKLOG`]).
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As `TcpListener::bind` does: a restarted server can bind while old connections linger.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves `router` on `listener` until `shutdown` completes, then lets requests in flight finish
/// (for at most `limits.shutdown_grace`).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    metrics: Metrics,
    shutdown: impl Future<Output = ()>,
) {
    let tracker = Arc::new(Tracker::new(&limits, metrics.clone()));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let mut accept_errors = Throttle::default();
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(&err, &mut accept_errors).await;
                    continue;
                }
            },
        };
        // Over a cap: dropped here, closed before a byte is read.
        let Some(slot) = tracker.admit(peer.ip()) else {
            continue;
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(req.map(Body::new))
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        let metrics = metrics.clone();
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                if err.is_timeout() {
                    metrics.connections_timed_out.inc();
                }
                tracing::debug!(error = %err, "connection closed on an error");
            }
            drop(slot);
        });
    }
    // New connections are refused by the kernel from here on.
    drop(listener);
    let grace = limits.shutdown_grace;
    tokio::select! {
        () = graceful.shutdown() => {},
        () = tokio::time::sleep(grace) => tracing::warn!(
            grace_secs = grace.as_secs(),
            "connections still open after the shutdown grace period; closing them"
        ),
    }
}

/// An accept that failed: nothing to do for a connection the client already dropped; otherwise
/// (out of file descriptors or memory) a short pause so that closing connections can free some,
/// instead of a busy loop.
async fn accept_failed(err: &io::Error, log: &mut Throttle) {
    if matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    ) {
        return;
    }
    if let Some(count) = log.tick() {
        tracing::error!(error = %err, count, "accepting connections failed; retrying");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Counts events and says when to log them: at most once per [`LOG_EVERY`].
#[derive(Debug, Default)]
struct Throttle {
    last: Option<Instant>,
    count: u64,
}

impl Throttle {
    /// Counts one event; returns the count since the last log line when one is due.
    fn tick(&mut self) -> Option<u64> {
        self.count += 1;
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < LOG_EVERY)
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.count))
    }
}

/// Which cap refused a connection.
#[derive(Debug, Clone, Copy)]
enum Cap {
    Total,
    PerAddress,
}

impl Cap {
    fn label(self) -> &'static str {
        match self {
            Cap::Total => "max_connections",
            Cap::PerAddress => "max_connections_per_address",
        }
    }
}

/// Open connections, in total and per client address.
#[derive(Debug)]
struct Tracker {
    max_total: usize,
    max_per_address: usize,
    trusted: TrustedProxies,
    metrics: Metrics,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
    refused: Throttle,
}

/// A connection's place under the caps, given back when it is dropped.
#[derive(Debug)]
struct Slot {
    tracker: Arc<Tracker>,
    address: Option<IpAddr>,
}

impl Tracker {
    fn new(limits: &ConnectionLimits, metrics: Metrics) -> Self {
        Self {
            max_total: limits.max_connections.max(1),
            max_per_address: limits.max_connections_per_address,
            trusted: limits.trusted_proxies.clone(),
            metrics,
            open: Mutex::new(Open::default()),
        }
    }

    /// A slot for a connection from `peer`, or `None` when a cap is reached.
    fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<Slot> {
        let address =
            (self.max_per_address > 0 && !self.trusted.contains(peer)).then(|| address_key(peer));
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let refused = if open.total >= self.max_total {
            Some(Cap::Total)
        } else if address
            .is_some_and(|a| open.per_address.get(&a).copied().unwrap_or(0) >= self.max_per_address)
        {
            Some(Cap::PerAddress)
        } else {
            None
        };
        if let Some(cap) = refused {
            let log = open.refused.tick();
            drop(open);
            self.metrics
                .connections_refused
                .with_label_values(&[cap.label()])
                .inc();
            // Addresses are not logged (see API.md, "No secrets at rest or in logs"); the
            // metrics and the proxy's logs tell more.
            if let Some(count) = log {
                tracing::warn!(
                    refused = count,
                    cap = cap.label(),
                    max_connections = self.max_total,
                    max_connections_per_address = self.max_per_address,
                    "refusing connections over a cap"
                );
            }
            return None;
        }
        open.total += 1;
        if let Some(a) = address {
            *open.per_address.entry(a).or_insert(0) += 1;
        }
        self.metrics
            .connections_open
            .set(i64::try_from(open.total).unwrap_or(i64::MAX));
        Some(Slot {
            tracker: Arc::clone(self),
            address,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .tracker
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        open.total = open.total.saturating_sub(1);
        if let Some(a) = self.address
            && let Some(count) = open.per_address.get_mut(&a)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.per_address.remove(&a);
            }
        }
        self.tracker
            .metrics
            .connections_open
            .set(i64::try_from(open.total).unwrap_or(i64::MAX));
    }
}

/// Raises the process's soft open-file limit so that `max_connections` sockets fit beside
/// `reserved` other files (at most up to the hard limit). Returns how many connections fit, and
/// a warning when that is fewer than asked: a cap above the limit would let a flood exhaust
/// file descriptors, which is what stops a server from accepting at all.
pub fn fit_open_file_limit(max_connections: usize, reserved: u64) -> (usize, Option<String>) {
    let wanted = u64::try_from(max_connections)
        .unwrap_or(u64::MAX)
        .saturating_add(reserved);
    let available = raise_open_file_limit(wanted);
    if available >= wanted {
        return (max_connections, None);
    }
    let fits = usize::try_from(available.saturating_sub(reserved))
        .unwrap_or(usize::MAX)
        .max(1);
    let warning = format!(
        "the open-file limit is {available} (hard limit reached): --max-connections lowered \
         from {max_connections} to {fits}; raise the limit (e.g. systemd LimitNOFILE) to allow more"
    );
    (fits, Some(warning))
}

/// Raises the soft `RLIMIT_NOFILE` towards `wanted`; returns the soft limit in force after.
#[cfg(unix)]
fn raise_open_file_limit(wanted: u64) -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let Some(current) = limit.current else {
        return u64::MAX;
    };
    if current >= wanted {
        return current;
    }
    let target = limit.maximum.map_or(wanted, |hard| hard.min(wanted));
    let mut raised = limit;
    raised.current = Some(target);
    if setrlimit(Resource::Nofile, raised).is_ok() {
        target
    } else {
        current
    }
}

#[cfg(not(unix))]
fn raise_open_file_limit(_wanted: u64) -> u64 {
    u64::MAX
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn tracker(total: usize, per_address: usize) -> Arc<Tracker> {
        Arc::new(Tracker::new(
            &ConnectionLimits {
                header_read_timeout: Duration::from_secs(10),
                max_connections: total,
                max_connections_per_address: per_address,
                trusted_proxies: TrustedProxies::loopback(),
                shutdown_grace: Duration::from_secs(1),
            },
            Metrics::new().unwrap(),
        ))
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn caps_count_per_address_and_in_total_and_free_on_close() {
        let t = tracker(5, 2);
        let a1 = t.admit(ip("203.0.113.1")).unwrap();
        let _a2 = t.admit(ip("203.0.113.1")).unwrap();
        assert!(
            t.admit(ip("203.0.113.1")).is_none(),
            "third from one address"
        );
        // One IPv6 subscriber's /64 is one address.
        let _b1 = t.admit(ip("2001:db8::1")).unwrap();
        let _b2 = t.admit(ip("2001:db8::ffff:2")).unwrap();
        assert!(t.admit(ip("2001:db8::3")).is_none());
        drop(a1);
        let _a3 = t.admit(ip("203.0.113.1")).unwrap();
        // A trusted proxy is only under the total cap.
        let _p = t.admit(ip("127.0.0.1")).unwrap();
        assert!(t.admit(ip("127.0.0.1")).is_none(), "total cap of 5");
        assert!(t.admit(ip("198.51.100.1")).is_none());
        assert_eq!(t.metrics.connections_open.get(), 5);
    }

    #[test]
    fn a_per_address_cap_of_zero_is_off() {
        let t = tracker(100, 0);
        let slots: Vec<Slot> = (0..100)
            .map(|_| t.admit(ip("203.0.113.1")).unwrap())
            .collect();
        assert!(t.admit(ip("203.0.113.1")).is_none());
        drop(slots);
        assert_eq!(t.metrics.connections_open.get(), 0);
        assert!(t.open.lock().unwrap().per_address.is_empty());
    }

    #[test]
    fn the_open_file_limit_fits_the_cap() {
        let (fits, warning) = fit_open_file_limit(64, RESERVED_FILES);
        assert_eq!((fits, warning), (64, None));
    }
}
