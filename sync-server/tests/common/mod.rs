//! Helpers shared by the server's integration tests: a fresh backend per test, a router driven
//! with `oneshot`, and typed shortcuts for enrolling devices, pushing and pulling.
//!
//! Every backend constructor here ([`sqlite`], [`postgres`], [`pairs`] for two stores over
//! one database, and [`old`] for databases earlier releases made) runs the same suites:
//! [`backend_tests!`] at the bottom of each suite names each test once and runs it as
//! `sqlite::name` and `postgres::name`.
//!
//! PostgreSQL tests need a running server: `eval "$(sync-server/scripts/start-postgres.sh)"`
//! exports `WAYMARK_TEST_POSTGRES_URL`; without it they fail (never silently pass). Each test
//! gets its own schema, dropped when the test ends, so tests run in parallel.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod old;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use serde::de::DeserializeOwned;
use tower::ServiceExt;
use waymark_protocol::{
    CONTENT_TYPE_CBOR, EnrollRequest, EnrollResponse, ErrorBody, PullRequest, PullResponse,
    PushBlob, PushRequest, PushResponse, content_id_of, decode, encode,
};
use waymark_server::storage::NewDevice;
use waymark_server::{AppState, Limits, PostgresStorage, SqliteStorage, Storage, app, tokens};

/// A storage backend for one test, and what keeps it alive (and cleans up after it).
pub struct Backend {
    pub storage: Arc<dyn Storage>,
    _guard: Box<dyn Send + Sync>,
}

/// A fresh SQLite backend in a temporary directory.
pub fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let storage = SqliteStorage::open_in_dir(dir.path()).unwrap();
    Backend {
        storage: Arc::new(storage),
        _guard: Box::new(dir),
    }
}

/// The PostgreSQL database the tests use; panics with instructions when it is not configured.
pub fn postgres_url() -> String {
    match std::env::var("WAYMARK_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "WAYMARK_TEST_POSTGRES_URL is not set: the PostgreSQL tests need a real server. Run \
             `eval \"$(sync-server/scripts/start-postgres.sh)\"` first (scripts/test does)."
        ),
    }
}

/// A fresh schema name, unique across parallel tests and runs.
pub fn fresh_schema() -> String {
    format!("test_{}", tokens::new_id().to_lowercase())
}

/// Drops a test's schema when the test ends.
pub struct SchemaGuard {
    pub url: String,
    pub schema: String,
}

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        let (url, schema) = (self.url.clone(), std::mem::take(&mut self.schema));
        // On its own thread: the blocking client must not run on an async executor thread.
        let _ = std::thread::spawn(move || {
            if let Ok(mut client) = postgres::Client::connect(&url, postgres::NoTls) {
                let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
            }
        })
        .join();
    }
}

/// A fresh PostgreSQL backend in its own schema of the test database.
pub fn postgres() -> Backend {
    let url = postgres_url();
    let schema = fresh_schema();
    let storage = PostgresStorage::open_in_schema(&url, &schema)
        .unwrap_or_else(|err| panic!("PostgreSQL at {url}: {err}"));
    Backend {
        storage: Arc::new(storage),
        _guard: Box::new(SchemaGuard { url, schema }),
    }
}

/// Two stores over one database (two server processes, or an admin command beside `serve`).
pub mod pairs {
    use super::*;

    /// Two stores over one database, and what keeps the database alive.
    pub struct Pair {
        pub a: Arc<dyn Storage>,
        pub b: Arc<dyn Storage>,
        pub _guard: Box<dyn Send + Sync>,
    }

    /// Two SQLite stores over one file in a temporary directory.
    pub fn sqlite() -> Pair {
        let dir = tempfile::tempdir().unwrap();
        Pair {
            a: Arc::new(SqliteStorage::open_in_dir(dir.path()).unwrap()),
            b: Arc::new(SqliteStorage::open_in_dir(dir.path()).unwrap()),
            _guard: Box::new(dir),
        }
    }

    /// Two PostgreSQL stores over one fresh schema of the test database.
    pub fn postgres() -> Pair {
        let url = postgres_url();
        let schema = fresh_schema();
        Pair {
            a: Arc::new(PostgresStorage::open_in_schema(&url, &schema).unwrap()),
            b: Arc::new(PostgresStorage::open_in_schema(&url, &schema).unwrap()),
            _guard: Box::new(SchemaGuard { url, schema }),
        }
    }
}

/// Runs every named test once per storage backend, as `sqlite::name` and `postgres::name`, the
/// way `matrix-sdk-base`'s store integration tests run against every store. Each test is a
/// function of the suite taking what [`sqlite`] / [`postgres`] build:
///
/// - `backend_tests!(a, b)`: `fn a(backend: Backend)`, a plain `#[test]`;
/// - `backend_tests!(pairs: a, b)`: `fn a(pair: Pair)`, two stores over one database
///   ([`pairs`]);
/// - `backend_tests!(async: a, b)`: `async fn a(backend: Backend)` on a two-thread runtime
///   (`async, worker_threads = 4: a` for more).
/// - `backend_tests!(old: a, b)`: `fn a(old: Old)`, databases as earlier releases left them
///   ([`old`]).
#[allow(unused_macros)] // Suites without backend tests (`binary.rs`, ...) share this module.
macro_rules! backend_tests {
    (@both $kind:tt $make:tt $($name:ident),*) => {
        mod sqlite {
            $crate::common::backend_tests!(@each $kind $make sqlite $($name),*);
        }
        mod postgres {
            $crate::common::backend_tests!(@each $kind $make postgres $($name),*);
        }
    };
    (@each [] [$($make:tt)*] $backend:ident $($name:ident),*) => {
        use $($make)*::$backend as new_backend;
        $(
            #[test]
            fn $name() {
                super::$name(new_backend());
            }
        )*
    };
    (@each [$threads:literal] [$($make:tt)*] $backend:ident $($name:ident),*) => {
        use $($make)*::$backend as new_backend;
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = $threads)]
            async fn $name() {
                super::$name(new_backend()).await;
            }
        )*
    };
    (async, worker_threads = $threads:literal: $($name:ident),* $(,)?) => {
        $crate::common::backend_tests!(@both [$threads] [$crate::common] $($name),*);
    };
    (async: $($name:ident),* $(,)?) => {
        $crate::common::backend_tests!(@both [2] [$crate::common] $($name),*);
    };
    (old: $($name:ident),* $(,)?) => {
        $crate::common::backend_tests!(@both [] [$crate::common::old] $($name),*);
    };
    (pairs: $($name:ident),* $(,)?) => {
        $crate::common::backend_tests!(@both [] [$crate::common::pairs] $($name),*);
    };
    ($($name:ident),* $(,)?) => {
        $crate::common::backend_tests!(@both [] [$crate::common] $($name),*);
    };
}
#[allow(unused_imports)]
pub(crate) use backend_tests;

/// A router over a fresh backend.
pub struct TestServer {
    pub backend: Backend,
    pub state: AppState,
    pub router: Router,
}

/// An HTTP answer, body undecoded.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn decode<T: DeserializeOwned>(&self) -> T {
        decode(&self.body).unwrap_or_else(|err| {
            panic!(
                "status {}: body is not the expected CBOR: {err}; body {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Asserts an error answer with this status and code; returns its message.
    #[track_caller]
    pub fn expect_error(&self, status: StatusCode, code: &str) -> String {
        let body: ErrorBody = self.decode();
        assert_eq!(
            (self.status, body.code.as_str()),
            (status, code),
            "message: {}",
            body.message
        );
        assert!(!body.message.is_empty());
        body.message
    }
}

impl TestServer {
    pub fn new(backend: Backend) -> Self {
        Self::with_limits(backend, Limits::unlimited_rate())
    }

    pub fn with_limits(backend: Backend, limits: Limits) -> Self {
        let state = AppState::new(Arc::clone(&backend.storage), limits).unwrap();
        let router = app(state.clone());
        Self {
            backend,
            state,
            router,
        }
    }

    pub fn storage(&self) -> &dyn Storage {
        self.backend.storage.as_ref()
    }

    /// Sends one request through the router.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let req = match body {
            Some(bytes) => req
                .header("content-type", CONTENT_TYPE_CBOR)
                .body(Body::from(bytes)),
            None => req.body(Body::empty()),
        }
        .unwrap();
        self.request(req).await
    }

    pub async fn request(&self, req: Request<Body>) -> Answer {
        let response = self.router.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        Answer {
            status,
            headers,
            body,
        }
    }

    /// Creates a workspace through the storage API.
    pub fn workspace(&self) -> String {
        self.storage()
            .create_workspace(Some("test"), tokens::now())
            .unwrap()
            .id
    }

    /// Issues an enrollment token through the storage API, valid for an hour.
    pub fn enrollment_token(&self, workspace: &str) -> String {
        let token = tokens::new_token();
        self.storage()
            .issue_enrollment_token(
                workspace,
                &tokens::hash_token(&token),
                tokens::now() + 3600,
                None,
                waymark_protocol::roles::COORDINATOR,
                tokens::now(),
            )
            .unwrap();
        token
    }

    /// Enrolls a new device in `workspace` through the API.
    pub async fn device(&self, workspace: &str) -> EnrollResponse {
        let token = self.enrollment_token(workspace);
        let answer = self
            .send(
                Method::POST,
                "/v1/enroll",
                None,
                Some(encode(&EnrollRequest {
                    token,
                    device_name: "test phone".into(),
                    sign_key: rand::random(),
                    box_key: rand::random(),
                    join_proof: None,
                    actor: None,
                })),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK);
        answer.decode()
    }

    pub async fn push_raw(&self, token: &str, blobs: Vec<PushBlob>) -> Answer {
        self.send(
            Method::POST,
            "/v1/push",
            Some(token),
            Some(encode(&PushRequest { blobs })),
        )
        .await
    }

    /// Pushes and expects success.
    pub async fn push(&self, token: &str, blobs: Vec<PushBlob>) -> Vec<u64> {
        let answer = self.push_raw(token, blobs).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{:?}",
            decode::<ErrorBody>(&answer.body)
        );
        answer.decode::<PushResponse>().assigned
    }

    /// Pulls once and expects success.
    pub async fn pull(&self, token: &str, after: u64, max_bytes: Option<u64>) -> PullResponse {
        let path = PullRequest { after, max_bytes }.to_path_and_query();
        let answer = self.send(Method::GET, &path, Some(token), None).await;
        assert_eq!(answer.status, StatusCode::OK);
        answer.decode()
    }

    /// Pulls everything after `after`, following `more`.
    pub async fn pull_all(&self, token: &str, mut after: u64) -> Vec<waymark_protocol::PulledBlob> {
        let mut all = Vec::new();
        loop {
            let page = self.pull(token, after, None).await;
            if let Some(last) = page.blobs.last() {
                after = last.seq;
            }
            all.extend(page.blobs);
            if !page.more {
                return all;
            }
        }
    }
}

/// A device to enroll through the storage API: a fresh id, random keys, and this device token.
pub fn new_device(device_token: &str) -> NewDevice {
    NewDevice {
        id: tokens::new_id(),
        name: "phone".into(),
        token_hash: tokens::hash_token(device_token),
        sign_key: rand::random(),
        box_key: rand::random(),
        join_proof: None,
        actor: None,
    }
}

/// A blob of `doc` with this ciphertext.
pub fn blob(doc: u8, ciphertext: &[u8]) -> PushBlob {
    PushBlob {
        content_id: content_id_of(ciphertext),
        doc_id: [doc; 16],
        epoch: 0,
        ciphertext: ciphertext.to_vec(),
        supersedes: None,
        forget: false,
        covers: Vec::new(),
    }
}

/// The built `waymark-server` binary.
pub const SERVER_BIN: &str = env!("CARGO_BIN_EXE_waymark-server");

/// Runs an admin command of the binary with `--json` and returns its parsed output. `backend` is
/// `["--data-dir", dir]` or `["--database", url]`.
pub fn admin<S: AsRef<std::ffi::OsStr>>(backend: &[S], args: &[&str]) -> serde_json::Value {
    let output = std::process::Command::new(SERVER_BIN)
        .args(backend)
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A running `serve` process of the binary, killed on drop if still running.
pub struct ServerProcess {
    pub child: std::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The lines it printed on start (address, data directory or storage, database).
    pub printed: Vec<String>,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `serve` on a free loopback port with `backend` (as for [`admin`]) and `extra` serve
/// arguments, its logs going to `stderr`; returns once it printed where it listens.
pub fn serve<S: AsRef<std::ffi::OsStr>>(
    backend: &[S],
    extra: &[&str],
    stderr: std::process::Stdio,
) -> ServerProcess {
    serve_in_env(backend, extra, &[], stderr)
}

/// [`serve`] with these environment variables set too (options given as `WAYMARK_*`).
pub fn serve_in_env<S: AsRef<std::ffi::OsStr>>(
    backend: &[S],
    extra: &[&str],
    env: &[(&str, &str)],
    stderr: std::process::Stdio,
) -> ServerProcess {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(SERVER_BIN)
        .args(backend)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let printed: Vec<String> = lines.by_ref().take(3).map(Result::unwrap).collect();
    let base = printed
        .iter()
        .find_map(|l| l.strip_prefix("listening on "))
        .unwrap_or_else(|| panic!("no `listening on` line in {printed:?}"))
        .to_owned();
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    ServerProcess {
        child,
        base,
        printed,
    }
}
