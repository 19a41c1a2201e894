//! The PostgreSQL backend's connections: a small bounded pool of blocking clients, each opened
//! with the TLS the URL asked for ([`super::tls`]), and the one rule every call to them follows:
//! never block an async executor thread.
//!
//! The blocking `postgres` client runs its own small runtime per connection, so opening, using
//! or closing a client must happen off the executor ([`off_executor`]). The pool holds at most
//! `max_connections` clients (the blocking thread pool can be much larger); a call beyond that
//! waits up to [`CHECKOUT_TIMEOUT`] for one to come back. A client whose connection broke, or
//! that was in use when its thread panicked, is dropped instead of pooled again.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use postgres::{Client, Config};

use super::{backend, tls};
use crate::storage::StorageResult;

/// Connections one process opens at most unless told otherwise (`--database-pool-size`); the
/// blocking thread pool can be much larger, and calls beyond this wait for a free connection.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16;

/// How long a call waits for a free connection before failing.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(30);

struct PoolState {
    idle: Vec<Client>,
    open: usize,
}

/// At most `max_connections` clients to one database, opened on demand and kept once idle.
pub(super) struct Pool {
    config: Config,
    tls: tls::Tls,
    max_connections: usize,
    state: Mutex<PoolState>,
    freed: Condvar,
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Closing a client blocks on its runtime, which must not happen on an executor thread
        // (the last `Arc` of a server state may well be dropped there).
        let idle = std::mem::take(&mut lock(&self.state).idle);
        if !idle.is_empty() {
            off_executor(move || drop(idle));
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The pool's bookkeeping stays consistent under a panic (no invariant spans an unlock).
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `f` where the blocking client may start its own runtime: directly on ordinary and
/// `spawn_blocking` threads, via `block_in_place` on a multi-threaded executor thread, and on a
/// scoped helper thread on a current-thread executor.
pub(super) fn off_executor<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Err(_) => f(),
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        Ok(_) => std::thread::scope(|scope| match scope.spawn(f).join() {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        }),
    }
}

impl Pool {
    /// A pool of at most `max_connections` (at least one) clients to the database `config`
    /// names, over `tls`. Connects nothing yet.
    pub(super) fn new(config: Config, tls: tls::Tls, max_connections: usize) -> Self {
        Self {
            config,
            tls,
            max_connections: max_connections.max(1),
            state: Mutex::new(PoolState {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
        }
    }

    /// Where the data lives, without credentials (e.g. `postgres://app@db:5432/waymark`).
    pub(super) fn describe(&self) -> String {
        describe(&self.config, &self.tls)
    }

    /// Runs `f` with a client of the pool, off the executor; the client goes back to the pool
    /// afterwards unless its connection broke or `f` panicked.
    pub(super) fn with_client<T: Send>(
        &self,
        f: impl FnOnce(&mut Client) -> StorageResult<T> + Send,
    ) -> StorageResult<T> {
        off_executor(|| {
            struct Lease<'a> {
                pool: &'a Pool,
                client: Option<Client>,
            }
            impl Drop for Lease<'_> {
                fn drop(&mut self) {
                    // After a panic mid-transaction the connection is dropped, not reused.
                    let client = self.client.take().filter(|_| !std::thread::panicking());
                    self.pool.checkin(client);
                }
            }
            let mut lease = Lease {
                pool: self,
                client: Some(self.checkout()?),
            };
            let client = lease
                .client
                .as_mut()
                .ok_or_else(|| backend("connection lease is empty".into()))?;
            f(client)
        })
    }

    fn checkout(&self) -> StorageResult<Client> {
        let mut state = lock(&self.state);
        loop {
            if let Some(client) = state.idle.pop() {
                if !client.is_closed() {
                    return Ok(client);
                }
                state.open -= 1;
                continue;
            }
            if state.open < self.max_connections {
                state.open += 1;
                drop(state);
                return match self.tls.connect(&self.config) {
                    Ok(client) => Ok(client),
                    Err(err) => {
                        lock(&self.state).open -= 1;
                        self.freed.notify_one();
                        Err(err.into())
                    }
                };
            }
            let (next, timeout) = self
                .freed
                .wait_timeout(state, CHECKOUT_TIMEOUT)
                .unwrap_or_else(PoisonError::into_inner);
            state = next;
            if timeout.timed_out() && state.idle.is_empty() && state.open >= self.max_connections {
                return Err(backend(format!(
                    "no database connection free after {CHECKOUT_TIMEOUT:?}"
                )));
            }
        }
    }

    fn checkin(&self, client: Option<Client>) {
        let mut state = lock(&self.state);
        match client {
            Some(client) if !client.is_closed() => state.idle.push(client),
            _ => state.open -= 1,
        }
        drop(state);
        self.freed.notify_one();
    }
}

fn describe(config: &Config, tls: &tls::Tls) -> String {
    use postgres::config::Host;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("");
    let db = config.get_dbname().unwrap_or(user);
    let at = if user.is_empty() {
        String::new()
    } else {
        format!("{user}@")
    };
    let mode = match (tls.enabled(), config.get_ssl_mode()) {
        (false, _) => "",
        (true, postgres::config::SslMode::Prefer) => "?sslmode=prefer",
        (true, _) => "?sslmode=require",
    };
    format!("postgres://{at}{host}:{port}/{db}{mode}")
}
