//! Requests as the pages read them (path, query, form) and the answers they give (a page, a
//! redirect, JSON, a file), each with the gate's security headers.

use std::collections::HashMap;
use std::io::Read;

use tiny_http::{Header, Request, Response, StatusCode};

use super::gate::HEADERS;

/// Largest form body read; the dashboard's forms send a few hundred bytes, a tip reply a few
/// kilobytes.
const MAX_BODY: u64 = 256 * 1024;

/// A request, decoded.
pub struct Req {
    /// `true` for POST.
    pub post: bool,
    /// The path, without the query.
    pub path: String,
    /// The query parameters (the last of repeated names).
    pub query: HashMap<String, String>,
    /// The form fields of a POST.
    pub form: HashMap<String, String>,
}

impl Req {
    /// Decodes `request` (reading its body if it is a POST).
    pub fn read(request: &mut Request) -> Req {
        let post = *request.method() == tiny_http::Method::Post;
        let url = request.url().to_string();
        let (path, query) = url.split_once('?').unwrap_or((&url, ""));
        let mut body = Vec::new();
        if post {
            // A body that cannot be read is an empty form: the action then finds its fields
            // missing and says so.
            let _ = request.as_reader().take(MAX_BODY).read_to_end(&mut body);
        }
        Req {
            post,
            path: path.to_string(),
            query: form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
            form: form_urlencoded::parse(&body).into_owned().collect(),
        }
    }

    /// A query parameter, `None` when missing or blank.
    pub fn q(&self, name: &str) -> Option<String> {
        self.query
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    }

    /// A form field, or `BadRequest` naming it.
    pub fn field(&self, name: &str) -> Result<&str, super::Error> {
        self.form
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| super::Error::BadRequest(format!("the form has no {name}")))
    }

    /// Where a form asks to be sent back to: a path of this dashboard, `/` otherwise.
    pub fn back(&self) -> String {
        match self.form.get("back") {
            Some(b) if local_path(b) => b.clone(),
            _ => "/".to_string(),
        }
    }
}

/// A path on this server (not `//host`, which a browser reads as another site).
fn local_path(p: &str) -> bool {
    p.starts_with('/')
        && !p.starts_with("//")
        && !p.contains('\\')
        && !p.chars().any(char::is_control)
}

/// An answer to send.
pub struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    extra: Vec<(&'static str, String)>,
}

impl Reply {
    /// A page.
    pub fn html(status: u16, body: String) -> Reply {
        Reply {
            status,
            content_type: "text/html; charset=utf-8",
            body: body.into_bytes(),
            extra: Vec::new(),
        }
    }

    /// JSON.
    pub fn json(value: &serde_json::Value) -> Reply {
        Reply {
            status: 200,
            content_type: "application/json",
            body: value.to_string().into_bytes(),
            extra: Vec::new(),
        }
    }

    /// A file of the dashboard's own.
    pub fn asset(content_type: &'static str, body: String) -> Reply {
        Reply {
            status: 200,
            content_type,
            body: body.into_bytes(),
            extra: Vec::new(),
        }
    }

    /// "See other": after a form, the page to show (a reload then does not post again).
    pub fn redirect(to: &str) -> Reply {
        Reply {
            status: 303,
            content_type: "text/plain; charset=utf-8",
            body: Vec::new(),
            extra: vec![("Location", to.to_string())],
        }
    }

    /// The same answer with one more header.
    pub fn with(mut self, name: &'static str, value: String) -> Reply {
        self.extra.push((name, value));
        self
    }

    /// Sends it; a browser that went away meanwhile is no error of ours.
    pub fn send(self, request: Request) {
        let mut response = Response::from_data(self.body).with_status_code(StatusCode(self.status));
        let headers = HEADERS
            .iter()
            .map(|(n, v)| (*n, v.to_string()))
            .chain([("Content-Type", self.content_type.to_string())])
            .chain(self.extra);
        for (name, value) in headers {
            if let Ok(h) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
                response.add_header(h);
            }
        }
        let _ = request.respond(response);
    }
}

#[cfg(test)]
mod tests {
    use super::local_path;

    #[test]
    fn forms_send_back_to_this_dashboard_only() {
        assert!(local_path("/visits?area=North"));
        for p in ["//attacker.example/", "http://x/", "/\\x", "", "/a\nb"] {
            assert!(!local_path(p), "{p:?}");
        }
    }
}
