//! The tipster's side of anonymous tips, for apps and tools that send a tip without the page
//! (a partner organisation's app, a terminal): exactly what the page's script does
//! (docs/0008-tips.md), against the page's own address. Nothing is kept: the caller shows the
//! receipt code to the tipster, who writes it down.

use serde::Deserialize;
use sha2::{Digest, Sha512};
use waymark_protocol as proto;
use zeroize::Zeroizing;

use super::NetworkError;
use super::http::shared_client;
use crate::crypto;
use crate::error::{Error, Result, StorageError};
use crate::validate;

/// The alphabet of receipt codes: no `0`, `1`, `l` or `o`, which read alike.
const CODE_ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
/// Characters of a receipt code (5 bits each: 100 bits).
const CODE_CHARS: usize = 20;

/// What a tipster says; every field optional, but not all empty.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TipFields {
    /// What happened.
    pub what: String,
    /// Where.
    pub place: String,
    /// When.
    pub time: String,
    /// How to reach them, if they want to be reached.
    pub contact: String,
    /// The language they write in (`en`, ...).
    pub language: String,
}

/// A reply from the team, as the tipster reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TipAnswer {
    /// What the team said.
    pub text: String,
    /// When, as the team's device wrote it (ISO-8601).
    pub sent_at: String,
}

/// What the page tells its script: where to post, and the key to seal to.
#[derive(Deserialize)]
struct PageConfig {
    server: String,
    page: String,
    epoch: u32,
    public_key: String,
}

/// A receipt code typed back, reduced to its alphabet (dashes, spaces and case dropped).
fn normalize_code(code: &str) -> String {
    code.to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii() && CODE_ALPHABET.contains(&(*c as u8)))
        .collect()
}

fn derive(label: &str, code: &str) -> Zeroizing<[u8; 64]> {
    Zeroizing::new(
        Sha512::new()
            .chain_update(label.as_bytes())
            .chain_update(code.as_bytes())
            .finalize()
            .into(),
    )
}

/// The receipt's lookup id (hex) and the tipster's reply key pair secret.
fn receipt_keys(code: &str) -> (String, Zeroizing<[u8; 32]>) {
    let lookup = hex::encode(&derive("waymark/tip-lookup/v1:", code)[..16]);
    let mut secret = Zeroizing::new([0u8; 32]);
    secret.copy_from_slice(&derive("waymark/tip-reply/v1:", code)[..32]);
    (lookup, secret)
}

fn page_base(page_url: &str) -> Result<String> {
    let url = page_url.trim_end_matches('/');
    if !(url.starts_with("https://") || url.starts_with("http://"))
        || !url.contains(&format!("{}/", proto::PATH_PUBLIC_TIPS))
    {
        return Err(Error::invalid(
            "page_url",
            "must be a tip page's address (…/t/…)",
        ));
    }
    Ok(url.to_string())
}

fn network(what: &'static str) -> impl Fn(reqwest::Error) -> Error {
    move |e| {
        Error::Network(NetworkError::TipPage {
            what,
            source: e.without_url(),
        })
    }
}

/// Reads the page's configuration from the page itself, as its script does.
fn page_config(page_url: &str) -> Result<PageConfig> {
    let html = shared_client()?
        .get(page_url)
        .send()
        .and_then(reqwest::blocking::Response::error_for_status)
        .and_then(reqwest::blocking::Response::text)
        .map_err(network("the tip page"))?;
    let start = r#"<script type="application/json" id="tip-config">"#;
    let json = html
        .split_once(start)
        .and_then(|(_, rest)| rest.split_once("</script>"))
        .map(|(json, _)| json)
        .ok_or_else(|| Error::invalid("page_url", "is not a Waymark tip page"))?;
    serde_json::from_str(json).map_err(|_| Error::invalid("page_url", "is not a Waymark tip page"))
}

/// Sends a tip through the tip page at `page_url`, sealed here to the team's tip key; returns
/// the receipt code the tipster needs to read a reply.
pub fn send_tip(page_url: &str, fields: &TipFields) -> Result<String> {
    let page_url = page_base(page_url)?;
    for (name, value) in [
        ("what", &fields.what),
        ("place", &fields.place),
        ("time", &fields.time),
        ("contact", &fields.contact),
    ] {
        validate::notes(name, value)?;
    }
    if [&fields.what, &fields.place, &fields.time, &fields.contact]
        .iter()
        .all(|f| f.trim().is_empty())
    {
        return Err(Error::invalid(
            "what",
            "a tip needs at least one field filled in",
        ));
    }
    let config = page_config(&page_url)?;
    let key = data_encoding::BASE64
        .decode(config.public_key.as_bytes())
        .ok()
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
        .ok_or_else(|| Error::invalid("page_url", "the page carries no tip key"))?;
    let code: String = (0..CODE_CHARS)
        .map(|_| char::from(CODE_ALPHABET[usize::from(rand::random::<u8>() % 32)]))
        .collect();
    let (lookup, secret) = receipt_keys(&code);
    let reply_key = crypto::tip_public(&secret);
    let sent_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let plain = serde_json::json!({
        "v": 1, "page": config.page, "lang": fields.language, "what": fields.what,
        "where": fields.place, "when": fields.time, "contact": fields.contact,
        "sent_at": sent_at, "lookup": lookup,
        "reply_key": data_encoding::BASE64.encode(&reply_key),
    })
    .to_string();
    let (ephemeral, nonce, sealed) = crypto::seal_box_once(&key, plain.as_bytes())?;
    let body = serde_json::to_string(&proto::TipSubmission {
        epoch: config.epoch,
        ephemeral: data_encoding::BASE64.encode(&ephemeral),
        nonce: data_encoding::BASE64.encode(&nonce),
        sealed: data_encoding::BASE64.encode(&sealed),
    })
    .map_err(|source| StorageError::Json {
        what: "a tip could not be written",
        source,
    })?;
    shared_client()?
        .post(format!(
            "{}{}/{}/tips",
            config.server.trim_end_matches('/'),
            proto::PATH_PUBLIC_TIPS,
            config.page
        ))
        .header(reqwest::header::CONTENT_TYPE, "text/plain")
        .body(body)
        .send()
        .and_then(reqwest::blocking::Response::error_for_status)
        .map_err(network("sending the tip"))?;
    Ok(code
        .as_bytes()
        .chunks(5)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-"))
}

/// The team's replies to the tip whose receipt code is `code`, opened here; empty when there
/// are none yet (or the code is wrong: the two look the same to anyone who asks).
pub fn read_tip_replies(page_url: &str, code: &str) -> Result<Vec<TipAnswer>> {
    #[derive(Deserialize)]
    struct Sealed {
        ephemeral: String,
        nonce: String,
        sealed: String,
    }
    #[derive(Deserialize)]
    struct Replies {
        replies: Vec<Sealed>,
    }
    #[derive(Deserialize)]
    struct Plain {
        text: String,
        #[serde(default)]
        sent_at: String,
    }
    let page_url = page_base(page_url)?;
    let code = normalize_code(code);
    if code.len() != CODE_CHARS {
        return Err(Error::invalid(
            "code",
            "a receipt code has 20 letters and digits",
        ));
    }
    let config = page_config(&page_url)?;
    let (lookup, secret) = receipt_keys(&code);
    let answer = shared_client()?
        .get(format!(
            "{}{}/{}/replies/{lookup}",
            config.server.trim_end_matches('/'),
            proto::PATH_PUBLIC_TIPS,
            config.page
        ))
        .send()
        .and_then(reqwest::blocking::Response::error_for_status)
        .and_then(reqwest::blocking::Response::bytes)
        .map_err(network("reading replies"))?;
    let answer: Replies = serde_json::from_slice(&answer).map_err(NetworkError::TipReplies)?;
    let b64 = |s: &str| data_encoding::BASE64.decode(s.as_bytes()).ok();
    let mut out = Vec::new();
    for r in answer.replies {
        let (Some(from), Some(nonce), Some(sealed)) = (
            b64(&r.ephemeral).and_then(|k| <[u8; 32]>::try_from(k).ok()),
            b64(&r.nonce).and_then(|n| <[u8; 24]>::try_from(n).ok()),
            b64(&r.sealed),
        ) else {
            continue;
        };
        // A reply that does not open was not sealed to this receipt: not the team's.
        let Ok(plain) = crypto::open_box(&secret, &from, &nonce, &sealed) else {
            continue;
        };
        if let Ok(p) = serde_json::from_slice::<Plain>(&plain) {
            out.push(TipAnswer {
                text: p.text,
                sent_at: p.sent_at,
            });
        }
    }
    Ok(out)
}
