//! Who may talk to the dashboard. It listens on loopback, but loopback is shared with every
//! program and every web page this computer runs: another user's process can connect, and a
//! page from anywhere can make the browser send requests to `127.0.0.1` (or, by DNS
//! rebinding, to a name of its own that resolves there). So every request must prove it comes
//! from the person who started `waymark dashboard`:
//!
//! - the address printed in the terminal carries a random one-time token; the first request
//!   with it gets a session cookie holding a second random secret (`HttpOnly`, so no script
//!   reads it; `SameSite=Strict`, so no other site's page sends it) and is sent on without the
//!   token, which then stops working; a fresh one-time address is then printed in the terminal
//!   for another browser (or the same one after its cookie is gone);
//! - a request whose `Host` is not this server's own address is refused (DNS rebinding), and so
//!   is a POST whose `Origin` is another site's, or that the browser says came from another
//!   site (`Sec-Fetch-Site`): cross-site request forgery;
//! - secrets are compared in constant time.
//!
//! Every answer carries headers that keep the page from being framed, cached, leaking its
//! address through `Referer`, or loading anything from elsewhere. The referrer policy is
//! `same-origin`, not `no-referrer`: under `no-referrer` browsers send `Origin: null` with the
//! dashboard's own forms, which the Origin check would then have to accept from anywhere; the
//! pages link to and load nothing of another origin, so no address leaves either way.

use std::sync::Mutex;

/// Name of the session cookie.
pub const COOKIE: &str = "waymark_dashboard";

/// The security headers every answer carries: no script or style from anywhere but the
/// dashboard (none inline), no frame, no cache, no referrer.
pub const HEADERS: &[(&str, &str)] = &[
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("Referrer-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
];

/// What to do with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It carries the session cookie: serve it.
    Allow,
    /// It carries the one-time token: set the session cookie and send it on to `/`.
    Login,
    /// Refused, with why (for the person at the terminal, never the secrets).
    Refuse(&'static str),
}

/// The parts of a request the gate looks at.
#[derive(Debug, Default)]
pub struct Knock<'a> {
    /// `POST` or another method.
    pub post: bool,
    /// The `token` query parameter, if any.
    pub token: Option<&'a str>,
    /// The `Host` header.
    pub host: Option<&'a str>,
    /// The `Origin` header.
    pub origin: Option<&'a str>,
    /// The `Cookie` header.
    pub cookie: Option<&'a str>,
    /// The `Sec-Fetch-Site` header: where the browser says the request comes from.
    pub fetch_site: Option<&'a str>,
}

/// The dashboard's secrets and the port it listens on.
pub struct Gate {
    port: u16,
    /// The one-time token, until it is used.
    token: Mutex<Option<[u8; 32]>>,
    /// The session cookie's secret.
    session: [u8; 32],
}

impl Gate {
    /// A gate with fresh random secrets for a server on `127.0.0.1:port`.
    pub fn new(port: u16) -> Gate {
        Gate {
            port,
            token: Mutex::new(Some(rand::random())),
            session: rand::random(),
        }
    }

    /// The address to open, with the one-time token.
    pub fn login_url(&self) -> String {
        let token = self
            .token
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map(hex::encode)
            .unwrap_or_default();
        format!("http://127.0.0.1:{}/?token={token}", self.port)
    }

    /// Draws a fresh one-time token (the last one was spent) and returns its address.
    pub fn renew(&self) -> String {
        *self.token.lock().unwrap_or_else(|e| e.into_inner()) = Some(rand::random());
        self.login_url()
    }

    /// The `Set-Cookie` value that starts the session.
    pub fn session_cookie(&self) -> String {
        format!(
            "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
            hex::encode(self.session)
        )
    }

    /// Decides what to do with a request.
    pub fn check(&self, k: &Knock) -> Verdict {
        let own = |value: &str, scheme: &str| {
            [
                format!("{scheme}127.0.0.1:{}", self.port),
                format!("{scheme}localhost:{}", self.port),
            ]
            .iter()
            .any(|o| o.eq_ignore_ascii_case(value))
        };
        if !k.host.is_some_and(|h| own(h, "")) {
            return Verdict::Refuse("its Host is not this dashboard's address");
        }
        if k.post
            && (k.origin.is_some_and(|o| !own(o, "http://"))
                || k.fetch_site.is_some_and(|s| s != "same-origin"))
        {
            return Verdict::Refuse("it was sent from another site");
        }
        // The token first: once shown it is spent, even to a browser that has a session.
        if let (false, Some(given)) = (k.post, k.token) {
            let mut token = self.token.lock().unwrap_or_else(|e| e.into_inner());
            if token.is_some_and(|t| same(given.as_bytes(), hex::encode(t).as_bytes())) {
                *token = None;
                return Verdict::Login;
            }
        }
        let session = hex::encode(self.session);
        let has_session = k.cookie.is_some_and(|header| {
            header
                .split(';')
                .filter_map(|c| c.trim().split_once('='))
                .any(|(name, value)| name == COOKIE && same(value.as_bytes(), session.as_bytes()))
        });
        if has_session {
            return Verdict::Allow;
        }
        Verdict::Refuse("it carries neither the session cookie nor the token")
    }
}

/// Compares two secrets in time that depends on their length only.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn token_of(g: &Gate) -> String {
        g.login_url().split_once("token=").unwrap().1.to_string()
    }

    fn cookie_of(g: &Gate) -> String {
        g.session_cookie().split(';').next().unwrap().to_string()
    }

    #[test]
    fn the_token_logs_in_once_and_the_cookie_stays_valid() {
        let g = Gate::new(4000);
        let token = token_of(&g);
        assert_eq!(token.len(), 64);
        let host = Some("127.0.0.1:4000");
        let knock = Knock {
            token: Some(&token),
            host,
            ..Default::default()
        };
        assert_eq!(g.check(&knock), Verdict::Login);
        assert!(matches!(g.check(&knock), Verdict::Refuse(_)), "one time");
        let cookie = format!("other=1; {}", cookie_of(&g));
        let knock = Knock {
            cookie: Some(&cookie),
            host: Some("localhost:4000"),
            ..Default::default()
        };
        assert_eq!(g.check(&knock), Verdict::Allow);
        assert!(
            g.session_cookie()
                .contains("HttpOnly; SameSite=Strict; Path=/")
        );
    }

    #[test]
    fn a_wrong_secret_host_or_origin_is_refused() {
        let g = Gate::new(4000);
        let cookie = cookie_of(&g);
        let ok = Knock {
            cookie: Some(&cookie),
            host: Some("127.0.0.1:4000"),
            ..Default::default()
        };
        assert_eq!(g.check(&ok), Verdict::Allow);
        let wrong = format!("{COOKIE}={}", "0".repeat(64));
        let short = format!("{COOKIE}=00");
        for cookie in [wrong.as_str(), short.as_str(), "", COOKIE] {
            let k = Knock {
                cookie: Some(cookie),
                ..ok
            };
            assert!(matches!(g.check(&k), Verdict::Refuse(_)), "{cookie}");
        }
        for host in [
            None,
            Some("attacker.example:4000"),
            Some("127.0.0.1:4001"),
            Some("127.0.0.1"),
        ] {
            let k = Knock { host, ..ok };
            assert!(matches!(g.check(&k), Verdict::Refuse(_)), "{host:?}");
        }
        let wrong_token = "f".repeat(64);
        let k = Knock {
            token: Some(&wrong_token),
            cookie: None,
            ..ok
        };
        assert!(matches!(g.check(&k), Verdict::Refuse(_)));
        // POSTs: from the dashboard's own pages (or with no Origin) only.
        for (origin, allowed) in [
            (None, true),
            (Some("http://127.0.0.1:4000"), true),
            (Some("http://localhost:4000"), true),
            (Some("http://attacker.example"), false),
            (Some("null"), false),
            (Some("http://127.0.0.1:4001"), false),
        ] {
            let k = Knock {
                post: true,
                origin,
                ..ok
            };
            assert_eq!(g.check(&k) == Verdict::Allow, allowed, "{origin:?}");
        }
        for (site, allowed) in [
            (Some("same-origin"), true),
            (Some("same-site"), false),
            (Some("cross-site"), false),
        ] {
            let k = Knock {
                post: true,
                fetch_site: site,
                ..ok
            };
            assert_eq!(g.check(&k) == Verdict::Allow, allowed, "{site:?}");
        }
        // The token never logs a POST in.
        let token = token_of(&g);
        let k = Knock {
            post: true,
            token: Some(&token),
            host: Some("127.0.0.1:4000"),
            ..Default::default()
        };
        assert!(matches!(g.check(&k), Verdict::Refuse(_)));
    }
}
