//! `waymark dashboard` end to end: the real binary serves the coordinator's store (joined to a
//! real `waymark-server` with two phones' records) and headless Chromium drives it as a
//! coordinator would: logs in with the printed address, filters and searches, opens a record,
//! resolves a conflict two phones made offline, syncs, and approves a device that joined with
//! an invite made on the page. Nothing else may answer: a request without the token, with
//! another site's Host or Origin, or on another address is refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::json;
use support::*;
use waymark_core::*;
use waymark_e2e::browser::Browser;

/// 2026-11-01T09:00:00Z in ms.
const NOV_1: i64 = 1_793_523_600_000;
const DAY: i64 = 86_400_000;

/// A running `waymark dashboard`, stopped on drop.
struct Dashboard {
    child: Child,
    /// The address it printed, with the token.
    url: String,
    port: u16,
    /// What it wrote to standard error.
    log: Arc<Mutex<String>>,
    /// What it printed after its first address.
    printed: Arc<Mutex<Vec<String>>>,
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dashboard {
    fn start(store: &Path) -> Dashboard {
        Self::start_with(store, &[])
    }

    fn start_with(store: &Path, extra: &[&str]) -> Dashboard {
        let mut child = Command::new(WAYMARK)
            .arg("--data-dir")
            .arg(store)
            .args(["dashboard", "--no-open", "--port", "0"])
            .args(extra)
            .env("WAYMARK_PASSPHRASE", PASSPHRASE)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = lines
            .by_ref()
            .take(5)
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("dashboard: ").map(str::to_string))
            .expect("the dashboard printed its address");
        let printed = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&printed);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                kept.lock().unwrap().push(line);
            }
        });
        let log = Arc::new(Mutex::new(String::new()));
        let (mut stderr, kept) = (child.stderr.take().unwrap(), Arc::clone(&log));
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                kept.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let port = url
            .strip_prefix("http://127.0.0.1:")
            .and_then(|rest| rest.split('/').next())
            .expect("on 127.0.0.1")
            .parse()
            .unwrap();
        Dashboard {
            child,
            url,
            port,
            log,
            printed,
        }
    }

    /// The newest address printed after the first (one per login), waiting for it a while.
    fn newest_url(&self) -> String {
        for _ in 0..100 {
            let printed = self.printed.lock().unwrap();
            if let Some(url) = printed
                .iter()
                .rev()
                .find_map(|l| l.strip_prefix("dashboard: "))
            {
                return url.to_string();
            }
            drop(printed);
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("no new address printed");
    }

    fn token(&self) -> String {
        self.url.split_once("?token=").unwrap().1.to_string()
    }

    fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// An answer read off the wire: status, head, body.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// Sends one raw HTTP/1.1 request to `addr`, headers as given (no browser adds any).
fn raw(addr: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    let body = if method == "POST" {
        "show=1&back=/"
    } else {
        ""
    };
    req.push_str(&format!(
        "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    ));
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    Answer {
        status: head.split(' ').nth(1).unwrap().parse().unwrap(),
        head: head.to_string(),
        body: body.to_string(),
    }
}

/// A CLI store joined to a workspace that syncs with no server (enough for the gate).
fn local_store(cli: &Path) -> (tempfile::TempDir, Store, PathBuf) {
    let dir = cli.join("store");
    let (phone_dir, phone) = phone("Coordinator phone");
    let ws = phone.create_workspace("Team").unwrap().id;
    ok(waymark(
        &dir,
        &["join", &phone.create_invite(&ws, 3600).unwrap()],
    ));
    (phone_dir, phone, dir)
}

#[test]
fn the_dashboard_answers_only_the_browser_that_opened_its_address() {
    let cli = tempfile::tempdir().unwrap();
    let (_phone_dir, _phone, dir) = local_store(cli.path());
    let d = Dashboard::start(&dir);
    let token = d.token();
    assert_eq!(token.len(), 64);
    assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
    let addr = format!("127.0.0.1:{}", d.port);
    let host = addr.as_str();

    // Without the token, with a wrong one, or with another site's Host (DNS rebinding): refused,
    // saying where the right address is, and the token still works afterwards.
    let wrong = format!("/?token={}", "f".repeat(64));
    let right = format!("/?token={token}");
    let evil_host = format!("rebound.example:{}", d.port);
    for (path, h) in [
        ("/", host),
        ("/visits", host),
        ("/static/dashboard.js", host),
        ("/sync/status", host),
        (wrong.as_str(), host),
        (right.as_str(), evil_host.as_str()),
    ] {
        let a = raw(&addr, "GET", path, &[("Host", h)]);
        assert_eq!(a.status, 403, "{path} with Host {h}");
        assert!(a.body.contains("printed in the terminal"), "{}", a.body);
        assert!(a.header("Set-Cookie").is_none());
    }

    // The token logs in once: a session cookie (not the token), and on to `/` without it.
    let login = raw(&addr, "GET", &right, &[("Host", host)]);
    assert_eq!(login.status, 303);
    assert_eq!(login.header("Location").as_deref(), Some("/"));
    let set = login.header("Set-Cookie").unwrap();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(part), "{set}");
    }
    let cookie = set.split(';').next().unwrap().to_string();
    assert!(!cookie.contains(&token));
    assert_eq!(raw(&addr, "GET", &right, &[("Host", host)]).status, 403);
    // The terminal then shows a fresh address for a second browser: it works once too.
    let second = d.newest_url();
    let second_token = second.split_once("?token=").unwrap().1.to_string();
    assert_ne!(second_token, token);
    let second = format!("/?token={second_token}");
    assert_eq!(raw(&addr, "GET", &second, &[("Host", host)]).status, 303);
    assert_eq!(raw(&addr, "GET", &second, &[("Host", host)]).status, 403);

    // With the cookie: served, with the headers that keep the page to itself.
    let page = raw(&addr, "GET", "/", &[("Host", host), ("Cookie", &cookie)]);
    assert_eq!(page.status, 200, "{}", page.body);
    let csp = page.header("Content-Security-Policy").unwrap();
    for rule in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(rule), "{csp}");
    }
    assert_eq!(
        page.header("Referrer-Policy").as_deref(),
        Some("same-origin")
    );
    assert_eq!(page.header("Cache-Control").as_deref(), Some("no-store"));
    let localhost = format!("localhost:{}", d.port);
    let via_name = raw(
        &addr,
        "GET",
        "/visits",
        &[("Host", &localhost), ("Cookie", &cookie)],
    );
    assert_eq!(via_name.status, 200);
    let rebound = raw(
        &addr,
        "GET",
        "/visits",
        &[("Host", &evil_host), ("Cookie", &cookie)],
    );
    assert_eq!(rebound.status, 403);

    // A form posted from another site is refused even with the cookie; from the dashboard's
    // own page it is not.
    for from_elsewhere in [
        ("Origin", "http://attacker.example"),
        ("Origin", "null"),
        ("Sec-Fetch-Site", "cross-site"),
    ] {
        let evil = raw(
            &addr,
            "POST",
            "/restricted",
            &[("Host", host), ("Cookie", &cookie), from_elsewhere],
        );
        assert_eq!(evil.status, 403, "{from_elsewhere:?}");
    }
    let own = raw(
        &addr,
        "POST",
        "/restricted",
        &[("Host", host), ("Cookie", &cookie), ("Origin", &d.origin())],
    );
    assert_eq!(own.status, 303);

    // Nothing listens on another address of this machine for the same port.
    for other in [format!("127.0.0.2:{}", d.port), format!("[::1]:{}", d.port)] {
        assert!(TcpStream::connect(&other).is_err(), "{other} answered");
    }
    // The refusals are told at the terminal, without the secrets.
    let log = d.log.lock().unwrap().clone();
    assert!(log.contains("refused"), "{log}");
    assert!(!log.contains(&token) && !log.contains(&cookie), "{log}");
    assert!(!log.contains(&second_token), "{log}");
}

/// Clicks the element `selector` (a link or a form's button) and waits for the page it leads
/// to.
fn click_and_wait(b: &mut Browser, selector: &str) {
    let sel = serde_json::to_string(selector).unwrap();
    b.eval(&format!(
        "window.waymarkOld = true; const e = document.querySelector({sel}); \
         if (!e) throw new Error('nothing matches ' + {sel}); \
         setTimeout(() => e.click(), 0); true"
    ));
    b.wait_for("!window.waymarkOld && document.readyState === 'complete'");
}

/// Fills the GET form `form` with `fields` and opens the address it makes, as pressing its
/// button would.
fn filter(b: &mut Browser, form: &str, fields: &[(&str, &str)]) {
    let fields = serde_json::to_string(&fields).unwrap();
    let url = b.eval(&format!(
        "const f = document.getElementById('{form}');
         for (const [name, value] of {fields}) f.elements[name].value = value;
         const u = new URL(f.action);
         u.search = new URLSearchParams(new FormData(f)).toString();
         u.href"
    ));
    b.open(url.as_str().unwrap());
}

fn text(b: &mut Browser, selector: &str) -> String {
    let sel = serde_json::to_string(selector).unwrap();
    b.eval(&format!(
        "(document.querySelector({sel}) || {{textContent: ''}}).textContent"
    ))
    .as_str()
    .unwrap()
    .to_string()
}

fn rows(b: &mut Browser, table: &str) -> Vec<String> {
    let v = b.eval(&format!(
        "[...document.querySelectorAll('#{table} tbody tr')].map(r => r.textContent)"
    ));
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect()
}

fn visit(place: &str, area: &str, ty: &str, day: i64, notes: &str) -> NewVisit {
    let referral = |kind: &str, status| NewReferral {
        kind: kind.into(),
        to: "Partner".into(),
        status,
    };
    NewVisit {
        referrals: match area {
            "North" => vec![referral("shelter", ReferralStatus::Made)],
            "Port" => vec![
                referral("labour_inspection", ReferralStatus::Accepted),
                referral("legal_aid", ReferralStatus::Suggested),
            ],
            _ => Vec::new(),
        },
        place: Place {
            name: place.into(),
            area: area.into(),
            coordinates: None,
        },
        occurred_at: NOV_1 + day * DAY,
        visit_type: ty.into(),
        people_reached: 3,
        indicators: vec!["deception".into()],
        notes: notes.into(),
        ..Default::default()
    }
}

/// Saves a PNG of the whole page, or (`first_screen`) of what a 1280×1400 window shows.
fn screenshot(b: &mut Browser, dir: &Path, name: &str, first_screen: bool) {
    let path = dir.join(name);
    if first_screen {
        let shot = b.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = data_encoding::BASE64
            .decode(shot["data"].as_str().unwrap().as_bytes())
            .unwrap();
        std::fs::write(&path, png).unwrap();
    } else {
        b.screenshot(&path);
    }
    let png = std::fs::read(&path).unwrap();
    assert_eq!(&png[1..4], b"PNG", "{name}");
    assert!(png.len() > 20_000, "{name} is {} bytes", png.len());
}

#[test]
fn a_coordinator_follows_the_team_resolves_a_conflict_and_approves_a_join_in_the_browser() {
    let server_dir = tempfile::tempdir().unwrap();
    let (server, token) = server_with_workspace(server_dir.path());

    // Two phones of the team: Amina's (a coordinator's, which connects the workspace) and
    // Bilal's, admitted by Amina's next sync.
    let (_a_dir, amina) = phone("Amina's phone");
    let ws = amina
        .create_workspace("North district outreach")
        .unwrap()
        .id;
    amina.connect_workspace(&ws, &server.url, &token).unwrap();
    amina.sync().unwrap();
    let (_b_dir, bilal) = phone("Bilal's phone");
    bilal
        .join(&amina.create_invite(&ws, 3600).unwrap())
        .unwrap();
    bilal.sync().unwrap();
    amina.sync().unwrap();
    bilal.sync().unwrap();
    bilal.set_device_name("Bilal's phone").unwrap();

    let bus = amina
        .create_visit(
            &ws,
            &visit(
                "Bus station, north gate",
                "North",
                "street_outreach",
                -3,
                "Two young men waiting for a recruiter",
            ),
        )
        .unwrap();
    amina
        .create_visit(
            &ws,
            &visit(
                "Brick kiln, east road",
                "Port",
                "worksite_visit",
                -2,
                "Families in debt to the kiln owner",
            ),
        )
        .unwrap();
    let workshop = amina
        .create_workshop(
            &ws,
            &NewWorkshop {
                title: "Safe migration with students".into(),
                topic: "safe_migration".into(),
                occurred_at: NOV_1 - DAY,
                duration_minutes: 90,
                venue: "Community hall".into(),
                area: "North".into(),
                audience: "students".into(),
                language: "en".into(),
                ..Default::default()
            },
        )
        .unwrap();
    for (band, gender, n) in [
        ("12_17", "female", 7),
        ("12_17", "male", 5),
        ("18_24", "female", 2),
    ] {
        amina.add_to_tally(&workshop, band, gender, n).unwrap();
    }
    amina
        .add_feedback(&workshop, 5, "Clear and useful")
        .unwrap();
    bilal
        .create_visit(
            &ws,
            &visit(
                "Market square",
                "South",
                "street_outreach",
                1,
                "Talked to vendors",
            ),
        )
        .unwrap();
    let mut shelter = visit(
        "Shelter intake",
        "South",
        "home_visit",
        2,
        "A girl of fifteen, brought by a neighbour",
    );
    shelter.sensitivity = Sensitivity::Restricted;
    bilal.create_visit(&ws, &shelter).unwrap();
    bilal.sync().unwrap();
    amina.sync().unwrap();
    bilal.sync().unwrap();

    // The coordinator's laptop joins and pulls everything.
    let (_cli, dir) = laptop_coordinator(&amina, &ws);
    json(&dir, &["sync", "--json"]);

    // The laptop sets up the workspace's tip page, and someone sends a tip through it; Amina
    // goes out on a safety check-in.
    let page_url = json(&dir, &["tip-page", "--json"])["url"]
        .as_str()
        .unwrap()
        .to_string();
    json(&dir, &["sync", "--json"]);
    let receipt = send_tip(
        &page_url,
        &TipFields {
            what: "Girls kept locked above the Orchid massage parlour".into(),
            place: "Riverside lane 14".into(),
            time: "Last night".into(),
            contact: String::new(),
            language: "en".into(),
        },
    )
    .unwrap();
    let in_an_hour = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 3_600_000;
    amina
        .start_check_in(
            &ws,
            in_an_hour,
            &CheckInDetails {
                place: "Brick kiln, east gate".into(),
                with_whom: "Joseph".into(),
                note: String::new(),
            },
        )
        .unwrap();

    // Meanwhile, offline, both phones change how many people the bus station visit reached.
    amina
        .update_visit(&bus, &[VisitEdit::PeopleReached(5)])
        .unwrap();
    bilal
        .update_visit(&bus, &[VisitEdit::PeopleReached(8)])
        .unwrap();
    amina.sync().unwrap();
    bilal.sync().unwrap();

    let d = Dashboard::start(&dir);
    let origin = d.origin();
    // Screenshots go where WAYMARK_SCREENSHOTS says (`docs/` for the README), or nowhere kept.
    let kept_dir = tempfile::tempdir().unwrap();
    let shots_dir = std::env::var_os("WAYMARK_SCREENSHOTS")
        .map_or_else(|| kept_dir.path().to_path_buf(), PathBuf::from);
    let mut b = Browser::launch();
    b.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false}),
    );

    // Logged in with the printed address, which then leaves the address bar.
    b.open(&d.url);
    assert_eq!(
        b.eval("location.href").as_str().unwrap(),
        format!("{origin}/")
    );
    assert_eq!(
        b.eval("document.querySelectorAll('#report figure').length")
            .as_i64()
            .unwrap(),
        11,
        "every chart of the report"
    );
    assert!(
        b.eval("document.querySelectorAll('#report svg.line-chart polyline').length")
            .as_i64()
            .unwrap()
            >= 4,
        "trends by month"
    );
    let figures = text(&mut b, ".figures");
    assert!(figures.contains("4Visits"), "{figures}");
    filter(&mut b, "report-filters", &[("area", "North")]);
    assert!(text(&mut b, "#report-filter").contains("area North"));
    assert!(text(&mut b, ".figures").contains("1Visits"));

    // Lists: filtered, searched; the restricted visit hidden until asked for.
    b.open(&format!("{origin}/visits"));
    assert_eq!(rows(&mut b, "visits").len(), 3);
    assert!(text(&mut b, "#count").contains("1 restricted hidden"));
    filter(&mut b, "visit-filters", &[("area", "South")]);
    let south = rows(&mut b, "visits");
    assert_eq!(south.len(), 1, "{south:?}");
    assert!(south[0].contains("Market square"));
    filter(&mut b, "visit-filters", &[("area", ""), ("q", "kiln")]);
    let found = rows(&mut b, "visits");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("Brick kiln") && found[0].contains("[kiln]"),
        "{found:?}"
    );
    filter(&mut b, "visit-filters", &[("q", ""), ("area", "South")]);
    click_and_wait(&mut b, "#restricted-toggle");
    let south = rows(&mut b, "visits");
    assert_eq!(south.len(), 2, "{south:?}");
    assert!(south.iter().any(|r| r.contains("Shelter intake")));
    assert!(!text(&mut b, "#restricted-banner").is_empty());
    click_and_wait(&mut b, "#restricted-toggle");
    assert_eq!(rows(&mut b, "visits").len(), 1);
    b.open(&format!("{origin}/workshops"));
    assert!(rows(&mut b, "workshops")[0].contains("Safe migration with students"));

    // Sync now brings the phones' concurrent edits, with its progress polled.
    b.open(&format!("{origin}/visits"));
    // The page reloads once the sync is over.
    click_and_wait(&mut b, "#sync-now");
    let status = text(&mut b, "#sync-status");
    assert!(status.starts_with("Synced at"), "{status}");
    assert!(
        b.requests.iter().any(|r| r.ends_with("/sync/status")),
        "{:?}",
        b.requests
    );
    let row = format!("tr[data-id=\"{bus}\"]");
    assert!(!text(&mut b, &format!("{row} .tag.conflict")).is_empty());

    // It brought Amina's check-in, and the tip, shown only with restricted records; the
    // coordinator answers the tipster from the tip's page.
    b.open(&format!("{origin}/check-ins"));
    let check_ins = text(&mut b, "#check-ins");
    assert!(
        check_ins.contains("open")
            && check_ins.contains("Amina's phone")
            && check_ins.contains("Brick kiln, east gate"),
        "{check_ins}"
    );
    b.open(&format!("{origin}/tips"));
    assert!(text(&mut b, "#tips-hidden").starts_with("1 tips"));
    click_and_wait(&mut b, "#restricted-toggle");
    assert!(rows(&mut b, "tips")[0].contains("Orchid massage parlour"));
    click_and_wait(&mut b, "#tips tbody a");
    assert!(text(&mut b, "#what").contains("Orchid massage parlour"));
    let answer = "Thank you. We are looking into it.";
    b.eval(&format!(
        "document.querySelector('#reply-form textarea').value = {}; true",
        serde_json::to_string(answer).unwrap()
    ));
    click_and_wait(&mut b, "#reply-form button");
    assert!(text(&mut b, "#flash").contains("Reply sealed"));
    assert!(text(&mut b, "#replies").contains(answer));
    // ... and makes it a restricted visit to follow up, the tip's place filled in.
    let tip_page = b.eval("location.href").as_str().unwrap().to_string();
    b.eval("document.querySelector('#visit-form input[name=area]').value = 'Riverside'; true");
    click_and_wait(&mut b, "#visit-form button");
    assert!(text(&mut b, "#flash").contains("Visit made from the tip"));
    assert_eq!(text(&mut b, "#title"), "Riverside lane 14restricted");
    assert!(text(&mut b, "#notes").contains("Orchid massage parlour"));
    let from_tip = b
        .eval("decodeURIComponent(location.pathname.split('/').pop())")
        .as_str()
        .unwrap()
        .to_string();
    b.open(&tip_page);
    assert!(text(&mut b, "main").contains("Turned into a visit"));
    click_and_wait(&mut b, "#restricted-toggle");
    assert!(text(&mut b, "#hidden").contains("restricted"));
    b.open(&format!("{origin}/visits"));

    // The record's page: its fields, its history, and the conflict, resolved with a click.
    click_and_wait(&mut b, &format!("{row} a"));
    assert_eq!(text(&mut b, "#title"), "Bus station, north gate");
    assert!(text(&mut b, "#notes").contains("recruiter"));
    assert!(rows(&mut b, "history").len() >= 3);
    let conflict = text(&mut b, "section.conflict[data-field=\"people_reached\"]");
    assert!(
        conflict.contains("“5” from Amina's phone") && conflict.contains("“8” from Bilal's phone"),
        "{conflict}"
    );
    screenshot(&mut b, &shots_dir, "dashboard-conflict.png", false);
    let keep = b.eval(
        "[...document.querySelectorAll('section.conflict li')].findIndex(li => \
         li.textContent.includes('“8”'))",
    );
    click_and_wait(
        &mut b,
        &format!(
            "section.conflict li:nth-child({}) button.keep",
            keep.as_i64().unwrap() + 1
        ),
    );
    assert!(text(&mut b, "#flash").contains("Kept “8”"));
    assert_eq!(
        b.eval("document.querySelectorAll('section.conflict').length"),
        0
    );
    assert!(text(&mut b, "#fields").contains("People reached8"));

    // A third phone joins with an invite made on the team page; the page shows the code the
    // phone shows, and admits it.
    b.open(&format!("{origin}/team"));
    let members = text(&mut b, "table.members");
    assert!(
        members.contains("Amina's phone") && members.contains("Bilal's phone"),
        "{members}"
    );
    // Each phone's last sync, as the server listed it (both synced before the laptop did).
    let amina_synced = b.eval(
        "/\\d{4}-\\d{2}-\\d{2}/.test([...document.querySelectorAll('table.members tr')]
           .find(r => r.textContent.includes(\"Amina's phone\")).textContent)",
    );
    assert_eq!(amina_synced, json!(true), "{members}");
    click_and_wait(&mut b, "form.invite button");
    let code = text(&mut b, "#invite-code");
    let (_c_dir, carla) = phone("Carla's phone");
    carla.join(&code).unwrap();
    let digits = carla.verification_code(&ws).unwrap();
    let _ = carla.sync();
    assert!(carla.get_visit(&bus).is_err(), "nothing readable yet");
    b.open(&format!("{origin}/team"));
    let pending = text(&mut b, "table.pending");
    let grouped: Vec<String> = digits
        .chars()
        .filter(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .chunks(4)
        .map(|c| c.iter().collect())
        .collect();
    assert!(
        pending.contains("Carla's phone") && pending.contains(&grouped.join(" ")),
        "{pending} vs {digits}"
    );
    screenshot(&mut b, &shots_dir, "dashboard-team.png", false);
    click_and_wait(&mut b, "table.pending button.approve");
    assert!(
        text(&mut b, "#flash").contains("Admitted Carla's phone"),
        "{}",
        text(&mut b, "#flash")
    );
    assert!(text(&mut b, "table.members").contains("Carla's phone"));

    // The resolution goes out with the next sync; every phone then holds it, Carla's too.
    click_and_wait(&mut b, "#sync-now");
    let status = text(&mut b, "#sync-status");
    assert!(
        status.starts_with("Synced at") && !status.contains(": 0 sent"),
        "{status}"
    );
    for p in [&amina, &bilal, &carla] {
        p.sync().unwrap();
        assert!(p.conflicts(&bus).unwrap().is_empty());
        assert_eq!(p.get_visit(&bus).unwrap().people_reached, 8);
    }
    // The visit made from the tip reached Amina's phone, a coordinator's: restricted, readable.
    let v = amina.get_visit(&from_tip).unwrap();
    assert_eq!(
        (v.place.name.as_str(), v.sensitivity),
        ("Riverside lane 14", Sensitivity::Restricted)
    );

    // A phone invited by Amina's phone, not by this computer: the page admits it only as
    // "the codes match", after the coordinator compared them.
    let approval = amina.create_approval_invite(&ws, 3600).unwrap();
    let (_d_dir, dmitri) = phone("Dmitri's phone");
    dmitri.join(&approval).unwrap();
    let _ = dmitri.sync();
    b.open(&format!("{origin}/team"));
    let pending = text(&mut b, "table.pending");
    assert!(pending.contains("Dmitri's phone"), "{pending}");
    assert_eq!(
        b.eval("document.querySelectorAll('table.pending button.approve').length"),
        0,
        "not invited here: no plain approve"
    );
    click_and_wait(&mut b, "table.pending button.confirm");
    assert!(
        text(&mut b, "#flash").contains("Admitted Dmitri's phone"),
        "{}",
        text(&mut b, "#flash")
    );
    dmitri.sync().unwrap();
    assert_eq!(dmitri.get_visit(&bus).unwrap().people_reached, 8);

    // Dmitri's phone is then lost: revoked from the team page (after the page asks to be
    // sure), its next sync is refused.
    let dmitri_id = b.eval(
        "[...document.querySelectorAll('table.members tr')]
           .find(r => r.textContent.includes(\"Dmitri's phone\")).dataset.device",
    );
    let dmitri_id = dmitri_id.as_str().unwrap().to_string();
    b.eval("window.confirm = () => true; true");
    click_and_wait(
        &mut b,
        &format!("table.members tr[data-device=\"{dmitri_id}\"] button.danger"),
    );
    assert!(text(&mut b, "#flash").contains("Revoked Dmitri's phone"));
    assert!(matches!(dmitri.sync(), Err(Error::DeviceRevoked)));

    // The tipster reads the answer with their receipt code.
    let replies = read_tip_replies(&page_url, &receipt).unwrap();
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].text, answer);

    // The figures page, for the README.
    b.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1280, "height": 1400, "deviceScaleFactor": 1, "mobile": false}),
    );
    b.open(&format!("{origin}/"));
    screenshot(&mut b, &shots_dir, "dashboard.png", true);

    // Nothing asked of any other origin, and nothing printed to the console.
    let elsewhere: Vec<&String> = b
        .requests
        .iter()
        .filter(|r| !r.starts_with(&format!("{origin}/")) && !r.starts_with("data:"))
        .collect();
    assert!(elsewhere.is_empty(), "{elsewhere:?}");
    assert!(b.console.is_empty(), "{:?}", b.console);
    // The dashboard's own log holds no record's words.
    let log = d.log.lock().unwrap().clone();
    for word in ["recruiter", "kiln", "fifteen", "Orchid", &d.token()] {
        assert!(!log.contains(word), "{word} in {log}");
    }
}

#[test]
fn the_figures_show_the_workspaces_labels_in_the_language_asked_for() {
    let cli = tempfile::tempdir().unwrap();
    let (_phone_dir, phone, dir) = local_store(cli.path());
    let ws = phone.workspaces().unwrap()[0].id.clone();
    phone
        .create_visit(
            &ws,
            &NewVisit {
                place: Place {
                    name: "Bus depot".into(),
                    area: "North".into(),
                    coordinates: None,
                },
                occurred_at: 1_793_523_600_000,
                visit_type: "street_outreach".into(),
                ..Default::default()
            },
        )
        .unwrap();
    let card = cli.path().join("card.waymark");
    std::fs::write(&card, phone.export_changes(None).unwrap()).unwrap();
    ok(waymark(&dir, &["import-changes", card.to_str().unwrap()]));

    let figures = |extra: &[&str]| {
        let d = Dashboard::start_with(&dir, extra);
        let addr = format!("127.0.0.1:{}", d.port);
        let login = raw(
            &addr,
            "GET",
            &format!("/?token={}", d.token()),
            &[("Host", &addr)],
        );
        let cookie = login.header("Set-Cookie").unwrap();
        let cookie = cookie.split(';').next().unwrap().to_string();
        raw(&addr, "GET", "/", &[("Host", &addr), ("Cookie", &cookie)]).body
    };
    let spanish = figures(&["--lang", "es"]);
    assert!(spanish.contains("Alcance en la calle"), "{spanish}");
    let english = figures(&[]);
    assert!(english.contains("Street outreach") && !english.contains("Alcance en la calle"));
}
