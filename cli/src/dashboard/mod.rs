//! `waymark dashboard`: the team in a browser, served from the coordinator's own store.
//!
//! The sync server is blind, so no console can run there; this one runs on the coordinator's
//! computer, on the same core and store as the other commands, and works offline. It listens on
//! `127.0.0.1` only and answers only the browser that opened the address printed in the
//! terminal (see [`gate`]). Pages are rendered on this side from templates that escape every
//! value; the only script is the dashboard's own small file (sync progress), nothing is fetched
//! from anywhere else.
//!
//! Requests are served by a few threads, so that a page stays quick while another waits on the
//! network (the team page asks the server for waiting devices; a sync runs on its own thread).

mod actions;
mod gate;
mod pages;
mod sync_job;
mod views;
mod web;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tiny_http::{Request, Server};
use waymark_core as wc;

use self::gate::{Gate, Knock, Verdict};
use self::sync_job::SyncJob;
use self::views::{Flash, Layout};
use self::web::{Reply, Req};

/// Threads answering requests.
const WORKERS: usize = 4;

/// The dashboard's own style, after the report's.
const STYLE: &str = include_str!("assets/dashboard.css");
/// The dashboard's one script: sync progress and confirmations.
const SCRIPT: &str = include_str!("assets/dashboard.js");

/// How `waymark dashboard` was asked to run.
pub struct Options {
    /// Port on 127.0.0.1 (0: any free port).
    pub port: u16,
    /// Open the address in the default browser.
    pub open: bool,
    /// The language of the workspace's labels the figures show (default English).
    pub lang: Option<String>,
}

/// Why a page or the dashboard failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The port could not be listened on.
    #[error("cannot listen on 127.0.0.1:{port}: {reason}")]
    Listen {
        /// The port asked for.
        port: u16,
        /// What the system said.
        reason: String,
    },
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] wc::Error),
    /// A template failed to render.
    #[error("the page could not be made: {0}")]
    Render(#[from] askama::Error),
    /// The request asked for something that makes no sense (a bad date, a missing field).
    #[error("{0}")]
    BadRequest(String),
    /// No such page.
    #[error("no such page")]
    NotFound,
}

/// What the request handlers share.
pub struct App {
    store: Arc<wc::Store>,
    gate: Gate,
    sync: Arc<SyncJob>,
    show_restricted: AtomicBool,
    flash: Mutex<Option<Flash>>,
    /// The file that opened the browser (it holds the token until the first login).
    opener: Mutex<Option<PathBuf>>,
    /// The language of the labels shown (see [`Options::lang`]).
    lang: Option<String>,
}

impl App {
    /// Restricted records are shown.
    fn restricted(&self) -> bool {
        self.show_restricted.load(Ordering::Relaxed)
    }

    /// Leaves a message for the next page.
    fn flash(&self, f: Flash) {
        *self.flash.lock().unwrap_or_else(|e| e.into_inner()) = Some(f);
    }

    /// What surrounds a page (taking the message left for it).
    fn layout(&self, title: &str, nav: &'static str, req: &Req) -> Layout {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(req.query.iter().filter(|(k, _)| k.as_str() != "token"))
            .finish();
        Layout {
            title: title.to_string(),
            nav,
            path: if query.is_empty() {
                req.path.clone()
            } else {
                format!("{}?{query}", req.path)
            },
            restricted: self.restricted(),
            flash: self.flash.lock().unwrap_or_else(|e| e.into_inner()).take(),
            sync_summary: self.sync.summary(),
            syncing: self.sync.running(),
        }
    }
}

/// Percent-encodes a path segment (record ids are plain, but a link must never break).
fn encode(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Serves the dashboard until the process is stopped.
pub fn serve(store: wc::Store, dir: &Path, opts: &Options) -> Result<(), Error> {
    let server = Server::http(("127.0.0.1", opts.port)).map_err(|e| Error::Listen {
        port: opts.port,
        reason: e.to_string(),
    })?;
    let port = server
        .server_addr()
        .to_ip()
        .map(|a| a.port())
        .ok_or_else(|| Error::Listen {
            port: opts.port,
            reason: "not an IP address".into(),
        })?;
    let gate = Gate::new(port);
    let url = gate.login_url();
    say!("dashboard: {url}");
    say!(
        "open it in a browser on this computer (it works once, then the browser keeps a \
         session); stop with Ctrl-C"
    );
    let opener = if opts.open {
        open_browser(dir, &url)
    } else {
        None
    };
    let app = Arc::new(App {
        store: Arc::new(store),
        gate,
        sync: Arc::new(SyncJob::default()),
        show_restricted: AtomicBool::new(false),
        flash: Mutex::new(None),
        opener: Mutex::new(opener),
        lang: opts.lang.clone(),
    });
    let server = Arc::new(server);
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (server, app) = (Arc::clone(&server), Arc::clone(&app));
            std::thread::spawn(move || {
                for request in server.incoming_requests() {
                    handle(&app, request);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    Ok(())
}

/// Opens the address in the default browser through a private file that redirects to it, so
/// the token never shows in the list of processes other users can read; returns the file.
fn open_browser(dir: &Path, url: &str) -> Option<PathBuf> {
    let file = dir.join("dashboard-open.html");
    let page = format!(
        "<!DOCTYPE html><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"0;url={url}\">\
         <title>Waymark dashboard</title><p>Opening the dashboard…</p>\n"
    );
    if let Err(e) = crate::files::write_private(&file, page.as_bytes(), true) {
        eprintln!("waymark: cannot open a browser ({e}): open the address above");
        return None;
    }
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    match std::process::Command::new(opener)
        .arg(&file)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(mut child) => {
            // Reaped on a thread of its own: the browser may outlive it, or not.
            std::thread::spawn(move || child.wait());
        }
        Err(e) => eprintln!("waymark: cannot run {opener} ({e}): open the address above"),
    }
    Some(file)
}

fn header(request: &Request, name: &'static str) -> Option<String> {
    request
        .headers()
        .iter()
        .find(|h| h.field.equiv(name))
        .map(|h| h.value.as_str().to_string())
}

/// Answers one request: through the gate, then to its page or action.
fn handle(app: &App, mut request: Request) {
    let (host, origin, cookie, fetch_site) = (
        header(&request, "Host"),
        header(&request, "Origin"),
        header(&request, "Cookie"),
        header(&request, "Sec-Fetch-Site"),
    );
    let req = Req::read(&mut request);
    let knock = Knock {
        post: req.post,
        token: req.query.get("token").map(String::as_str),
        host: host.as_deref(),
        origin: origin.as_deref(),
        cookie: cookie.as_deref(),
        fetch_site: fetch_site.as_deref(),
    };
    let reply = match app.gate.check(&knock) {
        Verdict::Refuse(why) => {
            eprintln!("waymark dashboard: refused a request: {why}");
            refused()
        }
        Verdict::Login => {
            if let Some(file) = app.opener.lock().unwrap_or_else(|e| e.into_inner()).take() {
                let _ = std::fs::remove_file(file);
            }
            // The terminal is where addresses come from: the next browser gets its own.
            say!("dashboard: {}", app.gate.renew());
            say!("(that address is for another browser on this computer; it works once too)");
            Reply::redirect("/").with("Set-Cookie", app.gate.session_cookie())
        }
        Verdict::Allow => route(app, &req).unwrap_or_else(|e| error_page(app, &req, &e)),
    };
    reply.send(request);
}

/// The answer to a request the gate refused.
fn refused() -> Reply {
    Reply::html(
        403,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Waymark dashboard</title></head><body>\
         <h1>Not allowed</h1><p>Open the dashboard with the address that \
         <code>waymark dashboard</code> printed in the terminal. Each address works once; \
         after a browser logs in, the terminal prints a new one for the next.</p>\
         </body></html>\n"
            .to_string(),
    )
}

/// A page saying what went wrong.
fn error_page(app: &App, req: &Req, e: &Error) -> Reply {
    let status = match e {
        Error::NotFound | Error::Store(wc::Error::NotFound { .. }) => 404,
        Error::BadRequest(_) | Error::Store(wc::Error::InvalidInput { .. }) => 400,
        _ => 500,
    };
    let page = views::ErrorPage {
        layout: app.layout("Error", "", req),
        message: e.to_string(),
    };
    let body = askama::Template::render(&page).unwrap_or_else(|_| e.to_string());
    Reply::html(status, body)
}

/// Finds the page or action a request is for.
fn route(app: &App, req: &Req) -> Result<Reply, Error> {
    let decoded: Vec<String> = req
        .path
        .trim_matches('/')
        .split('/')
        .map(|p| {
            percent_encoding::percent_decode_str(p)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let segs: Vec<&str> = decoded.iter().map(String::as_str).collect();
    match (req.post, segs.as_slice()) {
        (false, [""]) => pages::overview(app, req),
        (false, ["visits"]) => pages::visits(app, req),
        (false, ["visits", id]) => pages::visit(app, req, id),
        (false, ["workshops"]) => pages::workshops(app, req),
        (false, ["workshops", id]) => pages::workshop(app, req, id),
        (false, ["team"]) => pages::team(app, req),
        (false, ["check-ins"]) => pages::check_ins(app, req),
        (false, ["tips"]) => pages::tips(app, req),
        (false, ["tips", id]) => pages::tip(app, req, id),
        (false, ["sync", "status"]) => Ok(Reply::json(&app.sync.status())),
        (false, ["static", "dashboard.css"]) => Ok(Reply::asset(
            "text/css; charset=utf-8",
            format!("{}{STYLE}", crate::html::STYLE),
        )),
        (false, ["static", "dashboard.js"]) => Ok(Reply::asset(
            "text/javascript; charset=utf-8",
            SCRIPT.to_string(),
        )),
        (true, [base @ ("visits" | "workshops"), id, "resolve"]) => {
            actions::resolve(app, req, base, id)
        }
        (true, ["team", "invite"]) => actions::invite(app, req),
        (true, ["team", "approve"]) => actions::approve(app, req),
        (true, ["team", "revoke"]) => actions::revoke(app, req),
        (true, ["tips", id, "reply"]) => actions::reply_to_tip(app, req, id),
        (true, ["tips", id, "visit"]) => actions::tip_to_visit(app, req, id),
        (true, ["sync"]) => Ok(actions::sync(app, req)),
        (true, ["restricted"]) => Ok(actions::toggle_restricted(app, req)),
        _ => Err(Error::NotFound),
    }
}
