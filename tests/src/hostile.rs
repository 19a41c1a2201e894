//! A hostile sync server: an HTTP proxy in front of a real `waymark-server` process that
//! rewrites what the server answers (and may answer requests itself), the way a breached or
//! seized server would. The security suites drive it from Rust through [`HostileServer`]; the
//! binding suites start it as a process (`hostile-server --upstream URL`) and choose an attack
//! with `GET /_hostile/attack?name=NAME` (see [`Attack`]).
//!
//! Every exchange is recorded, so a test can look at exactly what devices sent it: the envelopes
//! a coordinator sealed, the entries it signed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use waymark_protocol as proto;

/// One request as the proxy received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET` or `POST`.
    pub method: String,
    /// The path with its query string.
    pub path: String,
    /// The bearer token, if any.
    pub token: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

impl Request {
    /// The path without its query string.
    pub fn route(&self) -> &str {
        self.path.split('?').next().unwrap_or("")
    }
}

/// One answer, as the proxy sends it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

/// A request and the answer the device got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// What the device sent.
    pub request: Request,
    /// What it got back.
    pub answer: Answer,
}

type Intercept = Box<dyn Fn(&mut Request) -> Option<Answer> + Send + Sync>;
type Rewrite = Box<dyn Fn(&Request, &mut Answer) + Send + Sync>;

#[derive(Default)]
struct Rules {
    intercepts: Vec<Intercept>,
    rewrites: Vec<Rewrite>,
}

/// Named attacks, for suites in other languages (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attack {
    /// Relay faithfully.
    None,
    /// Show a team log whose entries after the genesis carry signatures the team never made.
    ForgeLog,
    /// Show the team log without its last entry (hides, e.g., a revocation and rotation).
    WithholdLastEntry,
    /// List every other device with a sealing key of the server's own choosing.
    SwapBoxKeys,
}

impl Attack {
    /// The attack called `name` (`none`, `forge-log`, `withhold-last-entry`, `swap-box-keys`).
    pub fn parse(name: &str) -> Option<Attack> {
        Some(match name {
            "none" => Attack::None,
            "forge-log" => Attack::ForgeLog,
            "withhold-last-entry" => Attack::WithholdLastEntry,
            "swap-box-keys" => Attack::SwapBoxKeys,
            _ => return None,
        })
    }
}

/// The proxy, running on a loopback port until dropped.
pub struct HostileServer {
    addr: String,
    rules: Arc<Mutex<Rules>>,
    exchanges: Arc<Mutex<Vec<Exchange>>>,
    stop: Arc<AtomicBool>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl HostileServer {
    /// Starts relaying to the server at `upstream` (e.g. `http://127.0.0.1:7878`).
    pub fn start(upstream: &str) -> std::io::Result<HostileServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?.to_string();
        let server = HostileServer {
            addr,
            rules: Arc::new(Mutex::new(Rules::default())),
            exchanges: Arc::new(Mutex::new(Vec::new())),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (rules, exchanges, stop) = (
            server.rules.clone(),
            server.exchanges.clone(),
            server.stop.clone(),
        );
        let upstream = upstream.trim_end_matches('/').to_string();
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(std::io::Error::other)?;
        thread::spawn(move || {
            for conn in listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (rules, exchanges, upstream, http) = (
                    rules.clone(),
                    exchanges.clone(),
                    upstream.clone(),
                    http.clone(),
                );
                thread::spawn(move || {
                    let _ = serve(conn, &rules, &exchanges, &upstream, &http);
                });
            }
        });
        Ok(server)
    }

    /// The base URL devices use.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers requests `f` returns an answer for itself, instead of the server; `f` may also
    /// change a request before it is relayed.
    pub fn intercept(&self, f: impl Fn(&mut Request) -> Option<Answer> + Send + Sync + 'static) {
        lock(&self.rules).intercepts.push(Box::new(f));
    }

    /// Rewrites the server's answers.
    pub fn rewrite(&self, f: impl Fn(&Request, &mut Answer) + Send + Sync + 'static) {
        lock(&self.rules).rewrites.push(Box::new(f));
    }

    /// Rewrites every successful `GET /v1/team` answer.
    pub fn rewrite_team(&self, f: impl Fn(&mut proto::TeamResponse) + Send + Sync + 'static) {
        lock(&self.rules).rewrites.push(team_rewrite(f));
    }

    /// Rewrites every successful `GET /v1/check-ins` answer.
    pub fn rewrite_check_ins(
        &self,
        f: impl Fn(&mut proto::CheckInsResponse) + Send + Sync + 'static,
    ) {
        self.rewrite(move |req, answer| {
            if req.method == "GET"
                && req.route() == proto::PATH_CHECK_INS
                && answer.status == 200
                && let Ok(mut list) = proto::decode::<proto::CheckInsResponse>(&answer.body)
            {
                f(&mut list);
                answer.body = proto::encode(&list);
            }
        });
    }

    /// Rewrites every successful `GET /v1/pull` answer.
    pub fn rewrite_pull(&self, f: impl Fn(&mut proto::PullResponse) + Send + Sync + 'static) {
        self.rewrite(move |req, answer| {
            if req.method == "GET"
                && req.route() == proto::PATH_PULL
                && answer.status == 200
                && let Ok(mut page) = proto::decode::<proto::PullResponse>(&answer.body)
            {
                f(&mut page);
                answer.body = proto::encode(&page);
            }
        });
    }

    /// Stops every attack: relays faithfully from now on.
    pub fn honest(&self) {
        *lock(&self.rules) = Rules::default();
    }

    /// Mounts a named attack instead of any before.
    pub fn attack(&self, attack: Attack) {
        *lock(&self.rules) = rules_for(attack);
    }

    /// Every exchange so far, oldest first.
    pub fn exchanges(&self) -> Vec<Exchange> {
        lock(&self.exchanges).clone()
    }

    /// The bodies of every `POST path` request that was answered 200.
    pub fn accepted(&self, path: &str) -> Vec<Vec<u8>> {
        self.exchanges()
            .into_iter()
            .filter(|e| e.request.method == "POST" && e.request.route() == path)
            .filter(|e| e.answer.status == 200)
            .map(|e| e.request.body)
            .collect()
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(&self.addr);
    }
}

/// The secret half of the X25519 key [`Attack::SwapBoxKeys`] lists: a test can try to open
/// every envelope with it.
pub const ATTACKER_BOX_SECRET: [u8; 32] = [0x66; 32];

/// The public half of [`ATTACKER_BOX_SECRET`].
pub fn attacker_box_public() -> [u8; 32] {
    crypto_box::SecretKey::from_bytes(ATTACKER_BOX_SECRET)
        .public_key()
        .to_bytes()
}

/// Whether any envelope in `envelopes` opens with the attacker's key.
pub fn attacker_opens_any(envelopes: &[proto::KeyEnvelope]) -> bool {
    let secret = crypto_box::SecretKey::from_bytes(ATTACKER_BOX_SECRET);
    envelopes
        .iter()
        .any(|e| secret.unseal(&e.sealed_key).is_ok())
}

/// Reads one request from `conn`, relays or intercepts it, and writes the answer.
fn serve(
    mut conn: TcpStream,
    rules: &Mutex<Rules>,
    exchanges: &Mutex<Vec<Exchange>>,
    upstream: &str,
    http: &reqwest::blocking::Client,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        return Ok(());
    };
    let (method, path) = (method.to_string(), path.to_string());
    let mut length = 0usize;
    let mut token = None;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            continue;
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().unwrap_or(0),
            "authorization" => {
                token = value
                    .trim()
                    .strip_prefix("Bearer ")
                    .map(|t| t.trim().to_string());
            }
            _ => {}
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    let mut request = Request {
        method,
        path,
        token,
        body,
    };
    let answer = if let Some(name) = request.path.strip_prefix("/_hostile/attack?name=") {
        control(name)
    } else {
        let intercepted = {
            let rules = lock(rules);
            rules.intercepts.iter().find_map(|f| f(&mut request))
        };
        let mut answer = match intercepted {
            Some(a) => a,
            None => relay(http, upstream, &request),
        };
        for f in &lock(rules).rewrites {
            f(&request, &mut answer);
        }
        answer
    };
    if let Some(attack) = request
        .path
        .strip_prefix("/_hostile/attack?name=")
        .and_then(Attack::parse)
    {
        *lock(rules) = rules_for(attack);
    }
    let head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        answer.status,
        reason(answer.status),
        proto::CONTENT_TYPE_CBOR,
        answer.body.len()
    );
    conn.write_all(head.as_bytes())?;
    conn.write_all(&answer.body)?;
    conn.flush()?;
    let _ = conn.shutdown(Shutdown::Both);
    lock(exchanges).push(Exchange { request, answer });
    Ok(())
}

/// The rules of a named attack.
fn rules_for(attack: Attack) -> Rules {
    let mut rules = Rules::default();
    match attack {
        Attack::None => {}
        Attack::ForgeLog => rules.rewrites.push(team_rewrite(|team| {
            // Entries after the genesis (or all, when the answer starts later): signatures the
            // team never made.
            let skip = usize::from(team.log_len == team.log.len() as u64);
            for e in team.log.iter_mut().skip(skip) {
                e.signature[0] ^= 0x5a;
            }
        })),
        Attack::WithholdLastEntry => rules.rewrites.push(team_rewrite(|team| {
            if team.log_len > 1 && !team.log.is_empty() {
                team.log_len -= 1;
                team.log.pop();
            }
        })),
        Attack::SwapBoxKeys => rules.rewrites.push(team_rewrite(|team| {
            let planted = attacker_box_public();
            for d in &mut team.devices {
                d.box_key = planted;
                d.key_epochs.clear();
            }
        })),
    }
    rules
}

/// A rewrite of every successful `GET /v1/team` answer.
fn team_rewrite(f: impl Fn(&mut proto::TeamResponse) + Send + Sync + 'static) -> Rewrite {
    Box::new(move |req, answer| {
        if req.method == "GET"
            && req.route() == proto::PATH_TEAM
            && answer.status == 200
            && let Ok(mut team) = proto::decode::<proto::TeamResponse>(&answer.body)
        {
            f(&mut team);
            answer.body = proto::encode(&team);
        }
    })
}

fn control(name: &str) -> Answer {
    match Attack::parse(name) {
        Some(_) => Answer {
            status: 200,
            body: b"ok".to_vec(),
        },
        None => Answer {
            status: 400,
            body: b"unknown attack".to_vec(),
        },
    }
}

/// Relays `request` to the real server.
fn relay(http: &reqwest::blocking::Client, upstream: &str, request: &Request) -> Answer {
    let url = format!("{upstream}{}", request.path);
    let mut rb = match request.method.as_str() {
        "POST" => http
            .post(url)
            .header("content-type", proto::CONTENT_TYPE_CBOR)
            .body(request.body.clone()),
        _ => http.get(url),
    };
    if let Some(t) = &request.token {
        rb = rb.bearer_auth(t);
    }
    match rb.send() {
        Ok(resp) => Answer {
            status: resp.status().as_u16(),
            body: resp.bytes().map(|b| b.to_vec()).unwrap_or_default(),
        },
        Err(_) => Answer {
            status: 502,
            body: Vec::new(),
        },
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        429 => "Too Many Requests",
        502 => "Bad Gateway",
        _ => "Status",
    }
}
