//! Headless Chromium (Debian's `chromium`) driven over the DevTools protocol: open a page, run
//! script in it as a person's clicks would, and keep every request it made and every console
//! message and error it printed, so that a test can assert on them; take screenshots.
//!
//! Only tests and benchmarks drive it, so anything unexpected fails the caller at once, with a
//! message saying what (hence `expect` and `panic` here, unlike the rest of this crate).
#![allow(clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// How long any one step may take before the test fails.
const STEP: Duration = Duration::from_secs(30);

/// A headless Chromium with one page open.
pub struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    loaded: bool,
    /// Every URL the page requested, in order (navigations included).
    pub requests: Vec<String>,
    /// Console messages, uncaught exceptions and browser log errors, as text.
    pub console: Vec<String>,
}

/// The Chromium binary on this machine (`scripts/install-deps` installs it).
pub fn chromium() -> &'static str {
    ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("chromium is installed (scripts/install-deps installs it)")
}

impl Browser {
    /// Starts Chromium with a fresh profile and attaches to its page.
    pub fn launch() -> Browser {
        let profile = tempfile::tempdir().expect("a profile directory");
        let mut child = Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--remote-debugging-port=0",
                "--window-size=800,1100",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium starts");
        let stderr = child.stderr.take().expect("chromium's stderr");
        let mut lines = BufReader::new(stderr).lines();
        let browser_ws = loop {
            let line = lines
                .next()
                .expect("chromium printed where DevTools listens")
                .expect("chromium's stderr is readable");
            if let Some(url) = line.strip_prefix("DevTools listening on ") {
                break url.trim().to_string();
            }
        };
        // The rest of stderr is drained so that Chromium never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        let port = browser_ws
            .trim_start_matches("ws://127.0.0.1:")
            .split('/')
            .next()
            .expect("a port")
            .to_string();
        let targets: Value = reqwest::blocking::get(format!("http://127.0.0.1:{port}/json/list"))
            .and_then(reqwest::blocking::Response::bytes)
            .map(|b| serde_json::from_slice(&b).expect("DevTools answers JSON"))
            .expect("DevTools lists the targets");
        let page_ws = targets
            .as_array()
            .and_then(|t| t.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_string();
        let (ws, _) = tungstenite::connect(page_ws).expect("DevTools accepts the connection");
        if let MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(Duration::from_millis(100)))
                .expect("a read timeout");
        }
        let mut browser = Browser {
            child,
            _profile: profile,
            ws,
            next_id: 0,
            loaded: false,
            requests: Vec::new(),
            console: Vec::new(),
        };
        for domain in ["Page", "Network", "Runtime", "Log"] {
            browser.call(&format!("{domain}.enable"), json!({}));
        }
        browser
    }

    /// Sends one DevTools command and returns its result; panics on a protocol error.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let text = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws
            .send(Message::text(text))
            .expect("DevTools takes the command");
        let deadline = Instant::now() + STEP;
        loop {
            if let Some(reply) = self.read_one(deadline)
                && reply["id"] == id
            {
                assert!(
                    reply.get("error").is_none(),
                    "{method} failed: {}",
                    reply["error"]
                );
                return reply["result"].clone();
            }
        }
    }

    /// Reads one message (recording it if it is an event); `None` when none came in 100 ms.
    fn read_one(&mut self, deadline: Instant) -> Option<Value> {
        assert!(Instant::now() < deadline, "Chromium did not answer in time");
        match self.ws.read() {
            Ok(Message::Text(t)) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("DevTools sends JSON");
                self.record(&v);
                Some(v)
            }
            Ok(_) => None,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) => panic!("the DevTools connection failed: {e}"),
        }
    }

    fn record(&mut self, v: &Value) {
        let p = &v["params"];
        match v["method"].as_str() {
            Some("Network.requestWillBeSent") => {
                if let Some(url) = p["request"]["url"].as_str() {
                    self.requests.push(url.to_string());
                }
            }
            Some("Runtime.consoleAPICalled") => self.console.push(format!(
                "console.{}: {}",
                p["type"].as_str().unwrap_or(""),
                p["args"]
            )),
            Some("Runtime.exceptionThrown") => self
                .console
                .push(format!("exception: {}", p["exceptionDetails"])),
            Some("Log.entryAdded") => self.console.push(format!(
                "log {}: {}",
                p["entry"]["level"].as_str().unwrap_or(""),
                p["entry"]["text"].as_str().unwrap_or("")
            )),
            Some("Page.loadEventFired") => self.loaded = true,
            _ => {}
        }
    }

    /// Opens `url` and waits for its load event.
    pub fn open(&mut self, url: &str) {
        self.loaded = false;
        let result = self.call("Page.navigate", json!({"url": url}));
        assert!(
            result.get("errorText").is_none(),
            "navigation failed: {}",
            result["errorText"]
        );
        let deadline = Instant::now() + STEP;
        while !self.loaded {
            self.read_one(deadline);
        }
    }

    /// Evaluates `js` in the page (awaiting a promise) and returns its value; panics if it
    /// threw.
    pub fn eval(&mut self, js: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": js, "awaitPromise": true, "returnByValue": true}),
        );
        assert!(
            r.get("exceptionDetails").is_none(),
            "script failed: {}",
            r["exceptionDetails"]
        );
        r["result"]["value"].clone()
    }

    /// Evaluates `js` until it returns something truthy (a string not empty, `true`), and
    /// returns that.
    pub fn wait_for(&mut self, js: &str) -> Value {
        let deadline = Instant::now() + STEP;
        loop {
            let v = self.eval(js);
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return v;
            }
            assert!(Instant::now() < deadline, "the page never showed: {js}");
            // Events that arrive meanwhile are recorded.
            self.read_one(deadline);
        }
    }

    /// Saves a PNG of the page as it is now.
    pub fn screenshot(&mut self, path: &std::path::Path) {
        let shot = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        );
        let png = data_encoding::BASE64
            .decode(shot["data"].as_str().expect("screenshot data").as_bytes())
            .expect("base64 screenshot");
        std::fs::write(path, png).expect("the screenshot is written");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
