//! The built `waymark-server` under hostile clients and beside other users of the machine, as a
//! real process on loopback: floods of stalled connections, connection caps per address and in
//! total, enrollments and failed authentications limited per address, and files only the
//! server's user can read.
//!
//! Linux routes all of 127.0.0.0/8 to loopback, so a test plays several clients by binding its
//! sockets to 127.0.0.2, 127.0.0.3, ... (127.0.0.1 is a trusted proxy by default). Each test uses
//! addresses of its own, as the tests run in parallel.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::ffi::OsStr;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{SERVER_BIN, ServerProcess};
use waymark_protocol::{
    EnrollRequest, EnrollResponse, ErrorBody, PullResponse, PushBlob, PushRequest, PushResponse,
    codes, content_id_of, decode, encode,
};

/// An HTTP answer read off a raw connection.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn code(&self) -> String {
        decode::<ErrorBody>(&self.body).unwrap().code
    }

    /// `Retry-After` in seconds; panics if absent.
    fn retry_after(&self) -> u64 {
        self.header("retry-after")
            .unwrap_or_else(|| panic!("no Retry-After in {:?}", self.headers))
            .parse()
            .unwrap()
    }
}

/// A client of the server at `server` whose connections come from the address `from`.
struct Client {
    server: SocketAddr,
    from: IpAddr,
}

impl Client {
    fn new(server: &ServerProcess, from: &str) -> Self {
        let server = server
            .base
            .strip_prefix("http://")
            .unwrap()
            .parse()
            .unwrap();
        Self {
            server,
            from: from.parse().unwrap(),
        }
    }

    /// A TCP connection from this client's address.
    fn connect(&self) -> TcpStream {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.bind(&SocketAddr::new(self.from, 0).into()).unwrap();
        socket.connect(&self.server.into()).unwrap();
        socket.into()
    }

    /// One request on a new connection (`Connection: close`); `None` if the server closed the
    /// connection without answering.
    fn try_send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Option<Answer> {
        let mut stream = self.connect();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nhost: waymark\r\nconnection: close\r\n\
             content-length: {}\r\n",
            body.len()
        );
        if !body.is_empty() {
            head.push_str("content-type: application/cbor\r\n");
        }
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        // A refused connection may already be closed: the write can fail, the read tells.
        let _ = stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(body));
        let mut raw = Vec::new();
        match stream.read_to_end(&mut raw) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            Err(e) => panic!("reading the answer to {method} {path}: {e}"),
        }
        if raw.is_empty() {
            return None;
        }
        Some(parse_answer(&raw))
    }

    fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
        self.try_send(method, path, headers, body)
            .unwrap_or_else(|| panic!("{method} {path}: the server closed the connection"))
    }

    fn healthz(&self) -> u16 {
        self.send("GET", "/healthz", &[], b"").status
    }

    fn enroll(&self, token: &str, headers: &[(&str, &str)]) -> Answer {
        let body = encode(&EnrollRequest {
            token: token.to_owned(),
            device_name: "field phone".into(),
            sign_key: rand::random(),
            box_key: rand::random(),
            join_proof: None,
            actor: None,
        });
        self.send("POST", "/v1/enroll", headers, &body)
    }

    fn pull(&self, token: &str) -> Answer {
        let auth = format!("Bearer {token}");
        self.send("GET", "/v1/pull?after=0", &[("authorization", &auth)], b"")
    }

    fn push(&self, token: &str, blobs: Vec<PushBlob>) -> Answer {
        let auth = format!("Bearer {token}");
        self.send(
            "POST",
            "/v1/push",
            &[("authorization", &auth)],
            &encode(&PushRequest { blobs }),
        )
    }
}

fn parse_answer(raw: &[u8]) -> Answer {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Answer {
        status: status.parse().unwrap(),
        headers,
        body: raw[end + 4..].to_vec(),
    }
}

/// Whether the server has closed `stream` (end of stream or reset), waiting at most `wait`.
fn closed_by_server(stream: &mut TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            // Anything the server said before closing (there should be nothing) is skipped.
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(e) => panic!("reading a stalled connection: {e}"),
        }
    }
}

fn sealed(i: usize) -> PushBlob {
    let ciphertext = format!("sealed bytes #{i}").into_bytes();
    PushBlob {
        content_id: content_id_of(&ciphertext),
        doc_id: [i as u8; 16],
        epoch: 0,
        ciphertext,
        supersedes: None,
        forget: false,
        covers: Vec::new(),
    }
}

/// A server on a fresh data directory with `extra` serve flags, and an enrollment token for a
/// new workspace on it.
fn start(data: &Path, extra: &[&str]) -> (ServerProcess, String) {
    start_logging_to(data, extra, Stdio::null())
}

/// [`start`], the server's log going to `log`.
fn start_logging_to(data: &Path, extra: &[&str], log: Stdio) -> (ServerProcess, String) {
    let backend = [OsStr::new("--data-dir"), data.as_os_str()];
    let ws = common::admin(&backend, &["workspace", "create"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let server = common::serve(&backend, extra, log);
    (server, issue_token(data, &ws))
}

fn issue_token(data: &Path, ws: &str) -> String {
    let backend = [OsStr::new("--data-dir"), data.as_os_str()];
    common::admin(&backend, &["token", "issue", "--workspace", ws])["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A metric's value from `/metrics` (the sum over its label sets).
fn metric(client: &Client, name: &str) -> f64 {
    let text = String::from_utf8(client.send("GET", "/metrics", &[], b"").body).unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter(|l| l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Raises this process's open-file limit to at least `wanted` if it can (the hard limit too when
/// privileged); returns the soft limit in force.
fn raise_open_file_limit(wanted: u64) -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let current = limit.current.unwrap_or(u64::MAX);
    if current >= wanted {
        return current;
    }
    let hard = limit.maximum.unwrap_or(u64::MAX);
    let both = Rlimit {
        current: Some(wanted),
        maximum: Some(hard.max(wanted)),
    };
    if setrlimit(Resource::Nofile, both).is_err() {
        let soft = Rlimit {
            current: Some(hard.min(wanted)),
            maximum: limit.maximum,
        };
        let _ = setrlimit(Resource::Nofile, soft);
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// What a stalled connection of the flood sends: half a request header, or (every other one)
/// nothing at all.
fn stall(client: &Client, i: usize) -> TcpStream {
    let mut stream = client.connect();
    if i.is_multiple_of(2) {
        let _ = stream.write_all(b"POST /v1/push HTTP/1.1\r\nhost: waymark\r\ncontent-le");
    }
    stream
}

/// How many of `streams` the server has not closed.
fn still_open(streams: &mut [TcpStream]) -> usize {
    streams
        .iter_mut()
        .map(|s| closed_by_server(s, Duration::from_millis(200)))
        .filter(|closed| !closed)
        .count()
}

/// Environment variable that makes [`stalled_connections_of_a_second_process`] act: the server
/// address, the source address and how many connections, e.g. `127.0.0.1:7878 127.0.0.2 10000`.
const FLOOD_ENV: &str = "WAYMARK_TEST_FLOOD";

/// Not a test of its own: the flood test runs this test binary again with [`FLOOD_ENV`] set, so
/// that half of the connections use another process's file descriptors (one process's open-file
/// limit may be 20,000 or less, and cannot be raised without privileges). It opens the stalled
/// connections, says `opened N`, waits for a line on stdin, then says `still open N`.
#[test]
#[ignore = "run by the flood test in a second process"]
fn stalled_connections_of_a_second_process() {
    let Ok(spec) = std::env::var(FLOOD_ENV) else {
        return;
    };
    let [server, from, count] = spec.split(' ').collect::<Vec<_>>()[..] else {
        panic!("{FLOOD_ENV}={spec:?}");
    };
    let client = Client {
        server: server.parse().unwrap(),
        from: from.parse().unwrap(),
    };
    let count: usize = count.parse().unwrap();
    let limit = raise_open_file_limit(count as u64 + 64);
    let count = count.min(usize::try_from(limit - 64).unwrap());
    let mut streams: Vec<TcpStream> = (0..count).map(|i| stall(&client, i)).collect();
    println!("opened {}", streams.len());
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    println!("still open {}", still_open(&mut streams));
}

/// The second process of the flood test.
struct Helper {
    child: std::process::Child,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
}

impl Helper {
    fn start(server: &Client, count: usize) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "stalled_connections_of_a_second_process",
                "--exact",
                "--ignored",
                "--nocapture",
            ])
            .env(
                FLOOD_ENV,
                format!("{} {} {count}", server.server, server.from),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
        Self { child, lines }
    }

    /// The number the helper prints after `prefix`.
    fn said(&mut self, prefix: &str) -> usize {
        self.lines
            .by_ref()
            .map(Result::unwrap)
            .find_map(|l| l.strip_prefix(prefix).map(|n| n.trim().parse().unwrap()))
            .unwrap_or_else(|| panic!("the helper process did not say {prefix:?}"))
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn twenty_thousand_stalled_connections_from_one_address_leave_the_server_serving_everyone_else() {
    const WANTED: usize = 20_000;
    /// Descriptors left for the rest of this process (other tests run beside this one).
    const SPARE: u64 = 500;
    const HEADER_TIMEOUT: Duration = Duration::from_secs(3);
    const PER_ADDRESS: f64 = 64.0;

    let dir = tempfile::tempdir().unwrap();
    let (server, token) = start(dir.path(), &["--header-read-timeout", "3s"]);
    let attacker = Client::new(&server, "127.0.0.2");
    let started = Instant::now();
    // Half from a second process, half from this one (as many as its open-file limit allows).
    let mut helper = Helper::start(&attacker, WANTED / 2);
    let limit = raise_open_file_limit((WANTED / 2) as u64 + SPARE);
    let here = (WANTED / 2).min(usize::try_from(limit.saturating_sub(SPARE)).unwrap());
    let mut stalled: Vec<TcpStream> = (0..here).map(|i| stall(&attacker, i)).collect();
    let count = here + helper.said("opened ");
    let opened = started.elapsed();

    // Another address, and the proxy's, are answered at once.
    let other = Client::new(&server, "127.0.0.3");
    let proxy = Client::new(&server, "127.0.0.1");
    let asked = Instant::now();
    assert_eq!(other.healthz(), 200);
    let healthz = asked.elapsed();
    assert_eq!(proxy.healthz(), 200);
    assert!(
        healthz < Duration::from_secs(1),
        "/healthz took {healthz:?} during the flood"
    );
    // A real device enrolls, pushes and pulls.
    let device: EnrollResponse = decode(&other.enroll(&token, &[]).body).unwrap();
    let pushed = other.push(&device.device_token, (0..3).map(sealed).collect());
    assert_eq!(pushed.status, 200);
    assert_eq!(
        decode::<PushResponse>(&pushed.body).unwrap().assigned,
        [1, 2, 3]
    );
    let pulled = other.pull(&device.device_token);
    assert_eq!(decode::<PullResponse>(&pulled.body).unwrap().blobs.len(), 3);
    let synced = asked.elapsed();

    // The server held at most its per-address cap of them at a time (a new batch each time the
    // header timeout closed the last) and closed the others at once.
    let open = metric(&proxy, "waymark_connections_open");
    assert!(open <= PER_ADDRESS + 2.0, "{open} connections open");
    let refused = metric(&proxy, "waymark_connections_refused_total");
    let batches = 1.0 + (opened.as_secs_f64() / HEADER_TIMEOUT.as_secs_f64()).ceil();
    assert!(
        count as f64 - refused <= PER_ADDRESS * batches,
        "{refused} refused of {count} in {opened:?}"
    );

    // Once the header timeout has passed since the last was opened, the server has closed every
    // one of them.
    std::thread::sleep(
        (HEADER_TIMEOUT + Duration::from_secs(1)).saturating_sub(started.elapsed() - opened),
    );
    writeln!(helper.child.stdin.as_mut().unwrap(), "check").unwrap();
    let open_here = still_open(&mut stalled);
    let open_there = helper.said("still open ");
    assert_eq!(
        (open_here, open_there),
        (0, 0),
        "stalled connections the server kept open"
    );
    assert!(metric(&proxy, "waymark_connections_timed_out_total") >= PER_ADDRESS);
    assert!(metric(&proxy, "waymark_connections_open") <= 2.0);
    eprintln!(
        "{count} stalled connections ({here} here, open-file limit {limit}) opened in \
         {opened:.2?}; /healthz from another address answered in {healthz:.2?}; enroll + push \
         + pull done {synced:.2?} after; all closed by the server {:.2?} after the first",
        started.elapsed()
    );
}

#[test]
fn a_connection_past_the_per_address_cap_is_closed_at_once_while_other_addresses_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = start(dir.path(), &["--max-connections-per-address", "4"]);
    let crowd = Client::new(&server, "127.0.0.4");
    let mut held: Vec<TcpStream> = (0..4).map(|_| crowd.connect()).collect();
    let mut fifth = crowd.connect();
    assert!(
        closed_by_server(&mut fifth, Duration::from_secs(5)),
        "the fifth connection from one address stayed open"
    );
    assert!(
        !closed_by_server(&mut held[0], Duration::from_millis(100)),
        "the first four are kept"
    );
    assert_eq!(
        crowd
            .try_send("GET", "/healthz", &[], b"")
            .map(|a| a.status),
        None
    );
    assert_eq!(Client::new(&server, "127.0.0.5").healthz(), 200);
    // A trusted proxy (127.0.0.1 by default) carries many clients: not capped per address.
    let proxy = Client::new(&server, "127.0.0.1");
    let _proxied: Vec<TcpStream> = (0..8).map(|_| proxy.connect()).collect();
    assert_eq!(proxy.healthz(), 200);
    // A closed connection gives its place back.
    drop(held.remove(0));
    let deadline = Instant::now() + Duration::from_secs(5);
    while crowd.try_send("GET", "/healthz", &[], b"").is_none() {
        assert!(
            Instant::now() < deadline,
            "the freed place was not given back"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn past_the_total_cap_connections_are_closed_at_once_until_stalled_ones_time_out() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = start(
        dir.path(),
        &[
            "--max-connections",
            "6",
            "--max-connections-per-address",
            "0",
            "--header-read-timeout",
            "2s",
        ],
    );
    let late = Client::new(&server, "127.0.0.7");
    // A kept-alive connection that went quiet after its request is closed like a stalled one.
    let mut idle = late.connect();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: waymark\r\n\r\n")
        .unwrap();
    let mut answer = [0u8; 12];
    idle.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    let started = Instant::now();
    let mut stalled: Vec<TcpStream> = (0..5)
        .map(|i| Client::new(&server, &format!("127.0.0.{}", 10 + i)).connect())
        .collect();
    assert_eq!(
        late.try_send("GET", "/healthz", &[], b"").map(|a| a.status),
        None,
        "the seventh connection is refused"
    );
    // The header timeout frees every place.
    assert!(closed_by_server(&mut idle, Duration::from_secs(4)));
    for stream in &mut stalled {
        assert!(closed_by_server(stream, Duration::from_secs(4)));
    }
    let freed = started.elapsed();
    assert!(
        freed >= Duration::from_millis(1500) && freed < Duration::from_secs(4),
        "closed after {freed:?}, timeout 2 s"
    );
    assert_eq!(late.healthz(), 200);
}

#[test]
fn told_to_stop_the_server_finishes_the_request_in_flight_and_takes_no_new_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, token) = start(dir.path(), &[]);
    let phone = Client::new(&server, "127.0.0.50");
    let device: EnrollResponse = decode(&phone.enroll(&token, &[]).body).unwrap();
    // A push whose body is half uploaded when SIGTERM arrives, and a connection that is silent.
    let body = encode(&PushRequest {
        blobs: vec![sealed(7)],
    });
    let mut in_flight = phone.connect();
    write!(
        in_flight,
        "POST /v1/push HTTP/1.1\r\nhost: waymark\r\nauthorization: Bearer {}\r\n\
         content-type: application/cbor\r\ncontent-length: {}\r\n\r\n",
        device.device_token,
        body.len()
    )
    .unwrap();
    let (first, rest) = body.split_at(body.len() / 2);
    in_flight.write_all(first).unwrap();
    let mut silent = phone.connect();
    std::thread::sleep(Duration::from_millis(200));
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );

    assert!(
        closed_by_server(&mut silent, Duration::from_secs(5)),
        "a silent connection is closed at once"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(phone.server).is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    in_flight.write_all(rest).unwrap();
    let mut raw = Vec::new();
    in_flight.read_to_end(&mut raw).unwrap();
    let answer = parse_answer(&raw);
    assert_eq!(answer.status, 200);
    assert_eq!(decode::<PushResponse>(&answer.body).unwrap().assigned, [1]);
    let status = server.child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
}

#[test]
fn enrollments_past_the_per_address_limit_are_answered_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let (server, token) = start(
        dir.path(),
        &[
            "--enroll-rate-limit",
            "0.01",
            "--enroll-rate-burst",
            "3",
            "--failed-auth-rate-limit",
            "0",
        ],
    );
    let guesser = Client::new(&server, "127.0.0.20");
    for _ in 0..3 {
        assert_eq!(guesser.enroll("a guess", &[]).status, 401);
    }
    let refused = guesser.enroll(&token, &[]);
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (429, codes::RATE_LIMITED)
    );
    let wait = refused.retry_after();
    assert!((90..=100).contains(&wait), "Retry-After: {wait}");
    // Another address enrolls with the same token: it was not spent by the refusal.
    let phone = Client::new(&server, "127.0.0.21");
    assert_eq!(phone.enroll(&token, &[]).status, 200);

    // Behind the trusted proxy, clients count by the address the proxy forwarded for; what a
    // client writes in X-Forwarded-For itself counts for nothing.
    let proxy = Client::new(&server, "127.0.0.1");
    let forwarded = [("x-forwarded-for", "198.51.100.9, 203.0.113.7")];
    for _ in 0..3 {
        assert_eq!(proxy.enroll("a guess", &forwarded).status, 401);
    }
    assert_eq!(proxy.enroll("a guess", &forwarded).status, 429);
    let next_client = [("x-forwarded-for", "203.0.113.8")];
    assert_eq!(proxy.enroll("a guess", &next_client).status, 401);
    let spoofing = [("x-forwarded-for", "203.0.113.99")];
    assert_eq!(guesser.enroll("a guess", &spoofing).status, 429);

    // The only unauthenticated body the server reads is small.
    let big = vec![0u8; 20_000];
    let phone2 = Client::new(&server, "127.0.0.22");
    let answer = phone2.send("POST", "/v1/enroll", &[], &big);
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (413, codes::TOO_LARGE)
    );
}

#[test]
fn failed_authentications_past_the_limit_lock_the_address_out_with_429_and_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let (server, token) = start_logging_to(
        &dir.path().join("data"),
        &[
            "--failed-auth-rate-limit",
            "0.01",
            "--failed-auth-burst",
            "3",
        ],
        Stdio::from(std::fs::File::create(&log).unwrap()),
    );
    let phone = Client::new(&server, "127.0.0.30");
    let device: EnrollResponse = decode(&phone.enroll(&token, &[]).body).unwrap();
    assert_eq!(phone.pull(&device.device_token).status, 200);

    let guesser = Client::new(&server, "127.0.0.31");
    for _ in 0..3 {
        let answer = guesser.pull("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(
            (answer.status, answer.code().as_str()),
            (401, codes::UNAUTHORIZED)
        );
    }
    let refused = guesser.pull("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (429, codes::RATE_LIMITED)
    );
    assert!((90..=100).contains(&refused.retry_after()));
    // A locked-out address is not even asked for its token: a right guess would not show.
    assert_eq!(guesser.pull(&device.device_token).status, 429);
    assert_eq!(guesser.enroll("a guess", &[]).status, 429);
    // Nothing else is affected: other addresses, and the same address's health checks.
    assert_eq!(phone.pull(&device.device_token).status, 200);
    assert_eq!(guesser.healthz(), 200);

    // The refusals are logged with their code; client addresses and tokens never are.
    drop(server);
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(logs.contains("rate_limited"), "{logs}");
    for secret in ["127.0.0.30", "127.0.0.31", &token, &device.device_token] {
        assert!(!logs.contains(secret), "the log contains {secret}");
    }
}

#[cfg(unix)]
#[test]
fn the_data_directory_database_and_backups_are_private_and_a_backup_never_follows_a_symlink() {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let db = data.join("waymark.sqlite3");
    let (server, token) = start(&data, &[]);
    let phone = Client::new(&server, "127.0.0.40");
    let device: EnrollResponse = decode(&phone.enroll(&token, &[]).body).unwrap();
    assert_eq!(
        phone.push(&device.device_token, vec![sealed(1)]).status,
        200
    );
    assert_eq!(mode(&data), 0o700);
    for file in [
        "waymark.sqlite3",
        "waymark.sqlite3-wal",
        "waymark.sqlite3-shm",
    ] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }

    let backend = [OsStr::new("--data-dir"), data.as_os_str()];
    let backup = tmp.path().join("backup.sqlite3");
    common::admin(&backend, &["backup", "--to", backup.to_str().unwrap()]);
    assert_eq!(mode(&backup), 0o600);
    let backup_of = |to: &Path| {
        Command::new(SERVER_BIN)
            .args(backend)
            .args(["backup", "--to"])
            .arg(to)
            .output()
            .unwrap()
    };
    // Never over a file, never through a symlink (to a file or to nowhere yet).
    let before = std::fs::read(&backup).unwrap();
    assert!(!backup_of(&backup).status.success());
    assert_eq!(std::fs::read(&backup).unwrap(), before);
    let victim = tmp.path().join("victim");
    std::fs::write(&victim, b"someone else's file").unwrap();
    let to_victim = tmp.path().join("to-victim.sqlite3");
    symlink(&victim, &to_victim).unwrap();
    let to_nowhere = tmp.path().join("to-nowhere.sqlite3");
    let nowhere = tmp.path().join("nowhere");
    symlink(&nowhere, &to_nowhere).unwrap();
    for link in [&to_victim, &to_nowhere] {
        let out = backup_of(link);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("exists"));
    }
    assert_eq!(std::fs::read(&victim).unwrap(), b"someone else's file");
    assert!(!nowhere.exists());
    assert!(std::fs::symlink_metadata(&to_nowhere).unwrap().is_symlink());

    // A data directory and database others could read (an older server, a careless copy) are
    // made private on the next start or command, and the operator is told.
    drop(server);
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(SERVER_BIN)
        .args(backend)
        .arg("usage")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("was mode 0755") && stderr.contains("was mode 0644"),
        "{stderr}"
    );
    assert_eq!((mode(&data), mode(&db)), (0o700, 0o600));
}
