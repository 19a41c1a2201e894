//! An emulated poor mobile link between simulated phones and a real server process.
//!
//! The server runs in its own network namespace, reached over a veth pair. The kernel does what
//! it can: `tc netem` (rate, delay, loss) when the kernel has it; otherwise a `tbf` rate limit on
//! both ends of the veth pair and random drops by nftables, with the delay added in user space.
//! Cuts are always made in user space: a proxy on the phones' side of the link closes every open
//! connection every few seconds and refuses new ones for a moment, as a phone losing its signal
//! would see. The proxy also reads the HTTP exchanges it carries, so a test can tell what the
//! client sent again after a cut.
//!
//! Everything needs root (as CI has); a link that cannot be set up fails the test, loudly.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// What the link should look like.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Bandwidth each way, kbit/s.
    pub rate_kbit: u32,
    /// Round trip added to every exchange, ms.
    pub rtt_ms: u64,
    /// Packets dropped, percent, each way.
    pub loss_percent: u32,
    /// A cut comes after a random time in this range, ms.
    pub cut_every_ms: (u64, u64),
    /// How long no connection gets through after a cut, ms.
    pub cut_for_ms: u64,
}

fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd} {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn must(cmd: &str, args: &[&str]) {
    if let Err(e) = run(cmd, args) {
        panic!(
            "cannot set up the emulated mobile link (needs root, iproute2 and nftables, as \
             scripts/install-deps installs): {e}"
        );
    }
}

fn nft(ns: Option<&str>, script: &str) -> Result<(), String> {
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "nft", "-f", "-"]);
            c
        }
        None => {
            let mut c = Command::new("nft");
            c.args(["-f", "-"]);
            c
        }
    };
    let mut child = cmd
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("nft: {e}"))?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .map_err(|e| format!("nft: {e}"))?;
    let out = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A network namespace joined to this one by a veth pair, shaped like a poor mobile link.
pub struct Link {
    pub ns: String,
    host_if: String,
    table: String,
    /// Address of this side (the phones').
    pub host_ip: String,
    /// Address inside the namespace (the server's).
    pub ns_ip: String,
    /// How the link is emulated, for the test's output and the README.
    pub emulation: String,
    /// Delay the proxy must add each way (zero when netem adds it).
    pub proxy_delay: Duration,
}

impl Link {
    /// Creates the namespace and the shaped veth pair.
    pub fn new(shape: Shape) -> Link {
        let id = std::process::id();
        let ns = format!("wmfield{id}");
        let (host_if, ns_if) = (format!("wmf{id}h"), format!("wmf{id}n"));
        let net = format!("10.{}.{}", 200 + (id / 250) % 50, id % 250);
        let (host_ip, ns_ip) = (format!("{net}.1"), format!("{net}.2"));
        let table = format!("wmfield{id}");
        // Leftovers of an earlier run with the same process id.
        let _ = run("ip", &["netns", "del", &ns]);
        let _ = run("ip", &["link", "del", &host_if]);
        must("ip", &["netns", "add", &ns]);
        let mut link = Link {
            ns: ns.clone(),
            host_if: host_if.clone(),
            table,
            host_ip: host_ip.clone(),
            ns_ip: ns_ip.clone(),
            emulation: String::new(),
            proxy_delay: Duration::ZERO,
        };
        must(
            "ip",
            &[
                "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
            ],
        );
        must("ip", &["link", "set", &ns_if, "netns", &ns]);
        must(
            "ip",
            &["addr", "add", &format!("{host_ip}/30"), "dev", &host_if],
        );
        must("ip", &["link", "set", &host_if, "up"]);
        must(
            "ip",
            &[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{ns_ip}/30"),
                "dev",
                &ns_if,
            ],
        );
        must("ip", &["-n", &ns, "link", "set", &ns_if, "up"]);
        must("ip", &["-n", &ns, "link", "set", "lo", "up"]);

        let rate = format!("{}kbit", shape.rate_kbit);
        let one_way = format!("{}ms", shape.rtt_ms / 2);
        let loss = format!("{}%", shape.loss_percent);
        let netem = |pre: &[&str], dev: &str| {
            let mut args = pre.to_vec();
            args.extend([
                "qdisc", "add", "dev", dev, "root", "netem", "delay", &one_way, "loss", &loss,
                "rate", &rate,
            ]);
            run("tc", &args)
        };
        if netem(&[], &host_if).is_ok() {
            netem(&["-n", &ns], &ns_if).unwrap_or_else(|e| panic!("{e}"));
            link.emulation = format!(
                "kernel netem on a veth pair into a network namespace: {rate}, {} ms round \
                 trip, {loss} loss each way; cuts by a proxy",
                shape.rtt_ms
            );
        } else {
            // No netem in this kernel: rate by tbf (each end shapes what it sends), loss by
            // nftables, delay by the proxy.
            for (pre, dev) in [
                (vec![], host_if.as_str()),
                (vec!["-n", ns.as_str()], &ns_if),
            ] {
                let mut args = pre.clone();
                args.extend([
                    "qdisc", "add", "dev", dev, "root", "tbf", "rate", &rate, "burst", "1600",
                    "latency", "1s",
                ]);
                must("tc", &args);
            }
            let drop_rule = |table: &str, dev: &str| {
                format!(
                    "table inet {table} {{\n  chain input {{\n    type filter hook input \
                     priority 0; policy accept;\n    iifname \"{dev}\" numgen random mod 100 < \
                     {} drop\n  }}\n}}\n",
                    shape.loss_percent
                )
            };
            nft(None, &drop_rule(&link.table, &host_if))
                .and_then(|()| nft(Some(&ns), &drop_rule(&link.table, &ns_if)))
                .unwrap_or_else(|e| panic!("cannot set up packet loss on the emulated link: {e}"));
            link.proxy_delay = Duration::from_millis(shape.rtt_ms / 2);
            link.emulation = format!(
                "no netem in this kernel: veth pair into a network namespace with tbf at {rate} \
                 each way and nftables dropping {loss} of packets each way (kernel); {} ms round \
                 trip and cuts added by a user-space proxy",
                shape.rtt_ms
            );
        }
        link
    }

    /// Starts the server binary `bin` inside the namespace, listening on the link.
    pub fn start_server(&self, bin: &str, data: &Path) -> NsServer {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.ns, bin, "--data-dir"])
            .arg(data)
            .args(["serve", "--listen", &format!("{}:0", self.ns_ip)])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        NsServer {
            addr: crate::support::listening_addr(&mut child),
            child,
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        let _ = run("nft", &["delete", "table", "inet", &self.table]);
        // Deleting the namespace deletes its end of the pair, and so the pair.
        let _ = run("ip", &["netns", "del", &self.ns]);
        let _ = run("ip", &["link", "del", &self.host_if]);
    }
}

/// The server process inside the namespace; killed on drop.
pub struct NsServer {
    pub addr: String,
    child: Child,
}

impl Drop for NsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP request and its answer as the proxy carried them.
#[derive(Clone, Debug)]
pub struct Exchange {
    /// Which connection carried it.
    pub conn: u64,
    pub method: String,
    pub target: String,
    /// The bearer token (tells the devices apart).
    pub token: Option<String>,
    pub request_body: Vec<u8>,
    /// Status and body, once the whole answer reached the client.
    pub response: Option<(u16, Vec<u8>)>,
    /// A cut came before the client was known to have read the answer: the client may
    /// rightly send it again.
    pub at_risk: bool,
    pub started: Instant,
    pub finished: Option<Instant>,
}

#[derive(Default)]
struct Log {
    exchanges: Vec<Exchange>,
    cuts: u64,
}

/// Incremental parser of one direction of an HTTP/1.1 stream (Content-Length bodies only).
#[derive(Default)]
struct Http {
    buf: Vec<u8>,
}

struct Message {
    head: String,
    body: Vec<u8>,
}

impl Http {
    fn feed(&mut self, bytes: &[u8]) -> Vec<Message> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&self.buf[..end]).to_string();
            let lower = head.to_ascii_lowercase();
            assert!(
                !lower.contains("transfer-encoding: chunked"),
                "the field proxy reads Content-Length bodies only"
            );
            let len = lower
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse::<usize>().unwrap());
            if self.buf.len() < end + 4 + len {
                break;
            }
            let body = self.buf[end + 4..end + 4 + len].to_vec();
            self.buf.drain(..end + 4 + len);
            out.push(Message { head, body });
        }
        out
    }
}

struct Conn {
    client: TcpStream,
    upstream: TcpStream,
}

/// A proxy on the phones' side of the link: delay each way, cuts, and a log of exchanges.
pub struct FieldProxy {
    pub addr: String,
    /// Whether cuts happen.
    pub cutting: Arc<AtomicBool>,
    pub bytes_up: Arc<AtomicU64>,
    pub bytes_down: Arc<AtomicU64>,
    log: Arc<Mutex<Log>>,
    stop: Arc<AtomicBool>,
}

impl FieldProxy {
    /// Listens on loopback and forwards to `upstream` (across the link).
    pub fn start(upstream: &str, delay: Duration, shape: Shape) -> FieldProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let log = Arc::new(Mutex::new(Log::default()));
        let live: Arc<Mutex<HashMap<u64, Conn>>> = Arc::default();
        let dead_until = Arc::new(Mutex::new(Instant::now()));
        let (cutting, stop) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let (up, down) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));

        // The cutter: every few seconds every open connection dies and, for a moment, no new
        // one gets through.
        {
            let (live, log, dead_until, cutting, stop) = (
                live.clone(),
                log.clone(),
                dead_until.clone(),
                cutting.clone(),
                stop.clone(),
            );
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let (lo, hi) = shape.cut_every_ms;
                    thread::sleep(Duration::from_millis(
                        lo + rand::random::<u64>() % (hi - lo + 1),
                    ));
                    if !cutting.load(Ordering::Relaxed) {
                        continue;
                    }
                    *dead_until.lock().unwrap() =
                        Instant::now() + Duration::from_millis(shape.cut_for_ms);
                    let conns: Vec<(u64, Conn)> = live.lock().unwrap().drain().collect();
                    let mut log = log.lock().unwrap();
                    log.cuts += 1;
                    for (id, c) in conns {
                        // The last exchange on a cut connection may not have reached the client.
                        if let Some(x) = log.exchanges.iter_mut().rev().find(|x| x.conn == id) {
                            x.at_risk = true;
                        }
                        let _ = c.client.shutdown(Shutdown::Both);
                        let _ = c.upstream.shutdown(Shutdown::Both);
                    }
                }
            });
        }

        let (log2, stop2, up2, down2) = (log.clone(), stop.clone(), up.clone(), down.clone());
        let upstream = upstream.to_string();
        thread::spawn(move || {
            let mut next_id = 0u64;
            for conn in listener.incoming() {
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = conn else { continue };
                if Instant::now() < *dead_until.lock().unwrap() {
                    drop(client);
                    continue;
                }
                let Ok(server) =
                    TcpStream::connect_timeout(&upstream.parse().unwrap(), Duration::from_secs(10))
                else {
                    continue;
                };
                next_id += 1;
                let id = next_id;
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                live.lock().unwrap().insert(
                    id,
                    Conn {
                        client: client.try_clone().unwrap(),
                        upstream: server.try_clone().unwrap(),
                    },
                );
                // Client to server: requests are logged as they arrive whole.
                let log_req = log2.clone();
                let on_request = move |bytes: &[u8], http: &mut Http| {
                    for m in http.feed(bytes) {
                        let first = m.head.lines().next().unwrap_or("").to_string();
                        let mut parts = first.split(' ');
                        let method = parts.next().unwrap_or("").to_string();
                        let target = parts.next().unwrap_or("").to_string();
                        let token = m.head.lines().find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("authorization")
                                .then(|| v.trim().trim_start_matches("Bearer ").to_string())
                        });
                        log_req.lock().unwrap().exchanges.push(Exchange {
                            conn: id,
                            method,
                            target,
                            token,
                            request_body: m.body,
                            response: None,
                            at_risk: false,
                            started: Instant::now(),
                            finished: None,
                        });
                    }
                };
                let log_resp = log2.clone();
                let on_response = move |bytes: &[u8], http: &mut Http| {
                    for m in http.feed(bytes) {
                        let status = m
                            .head
                            .split(' ')
                            .nth(1)
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(0);
                        let mut log = log_resp.lock().unwrap();
                        if let Some(x) = log
                            .exchanges
                            .iter_mut()
                            .find(|x| x.conn == id && x.response.is_none())
                        {
                            x.response = Some((status, m.body));
                            x.finished = Some(Instant::now());
                        }
                    }
                };
                delay_line(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    delay,
                    up2.clone(),
                    on_request,
                    true,
                    || {},
                );
                let live = live.clone();
                delay_line(
                    server,
                    client,
                    delay,
                    down2.clone(),
                    on_response,
                    false,
                    move || {
                        live.lock().unwrap().remove(&id);
                    },
                );
            }
        });
        FieldProxy {
            addr,
            cutting,
            bytes_up: up,
            bytes_down: down,
            log,
            stop,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every exchange so far, in the order requests arrived.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.log.lock().unwrap().exchanges.clone()
    }

    /// Cuts so far.
    pub fn cuts(&self) -> u64 {
        self.log.lock().unwrap().cuts
    }
}

impl Drop for FieldProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(&self.addr);
    }
}

/// Copies `from` to `to`, each chunk `delay` after it was read (a delay, not a rate limit:
/// chunks in flight overlap). `observe` sees the bytes: on arrival when `observe_on_read`,
/// else once written to `to`. `on_close` runs when the copy ends.
fn delay_line(
    mut from: TcpStream,
    mut to: TcpStream,
    delay: Duration,
    count: Arc<AtomicU64>,
    observe: impl FnMut(&[u8], &mut Http) + Send + 'static,
    observe_on_read: bool,
    on_close: impl FnOnce() + Send + 'static,
) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let observer = Arc::new(Mutex::new((observe, Http::default())));
    let on_read = observer.clone();
    thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if observe_on_read {
                let mut g = on_read.lock().unwrap();
                let (f, http) = &mut *g;
                f(&buf[..n], http);
            }
            if tx
                .send((Instant::now() + delay, buf[..n].to_vec()))
                .is_err()
            {
                break;
            }
        }
        let _ = from.shutdown(Shutdown::Read);
    });
    thread::spawn(move || {
        for (at, bytes) in rx {
            let now = Instant::now();
            if at > now {
                thread::sleep(at - now);
            }
            if to.write_all(&bytes).is_err() {
                break;
            }
            count.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            if !observe_on_read {
                let mut g = observer.lock().unwrap();
                let (f, http) = &mut *g;
                f(&bytes, http);
            }
        }
        let _ = to.shutdown(Shutdown::Write);
        on_close();
    });
}
