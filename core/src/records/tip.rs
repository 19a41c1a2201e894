//! How an anonymous tip is laid out as a record: what the tipster's browser sealed (read-only),
//! the team's replies to the tipster, and the visit it was turned into.
//!
//! A tip's first change is made the same way by every coordinator's device that opens it (see
//! `sync::tips`): its fields come only from the sealed tip, and its time from the hour the
//! server received it.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT};
use serde::Deserialize;

use super::{Fields, Header, K_NOTES, K_SENSITIVITY, get_obj, put_header, put_text};
use crate::error::{Error, Result};
use crate::ids::new_id;
use crate::model::{RecordKind, Sensitivity, Tip, TipReply};

const K_WHAT: &str = "what";
const K_WHERE: &str = "where";
const K_WHEN: &str = "when";
const K_CONTACT: &str = "contact";
const K_LANG: &str = "lang";
const K_SENT_AT: &str = "sent_at";
const K_LOOKUP: &str = "lookup";
const K_REPLY_KEY: &str = "reply_key";
const K_REPLIES: &str = "replies";
const K_VISIT: &str = "visit";

/// Longest field of a tip kept, in characters (the sealed tip is at most 32 KiB anyway).
const MAX_FIELD_CHARS: usize = 20_000;

/// A tip as the page seals it (docs/0008-tips.md): UTF-8 JSON.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Sealed {
    /// Format version: 1.
    pub v: u32,
    #[serde(default)]
    pub lang: String,
    #[serde(default)]
    pub what: String,
    #[serde(default, rename = "where")]
    pub place: String,
    #[serde(default, rename = "when")]
    pub time: String,
    #[serde(default)]
    pub contact: String,
    #[serde(default)]
    pub sent_at: String,
    /// The receipt's lookup id, hex.
    #[serde(default)]
    pub lookup: String,
    /// The tipster's reply public key, base64.
    #[serde(default)]
    pub reply_key: String,
}

impl Sealed {
    /// Parses an opened tip; `Tampered` unless it is one.
    pub(crate) fn parse(plain: &[u8]) -> Result<Sealed> {
        let tip: Sealed = serde_json::from_slice(plain)
            .map_err(|_| Error::Tampered("an opened tip is not a tip".into()))?;
        if tip.v != 1 {
            return Err(Error::Tampered(format!("a tip of format {}", tip.v)));
        }
        Ok(tip)
    }
}

fn bounded(s: &str) -> String {
    s.chars().take(MAX_FIELD_CHARS).collect()
}

/// Writes a new tip record into an empty document.
pub(crate) fn create(
    doc: &mut AutoCommit,
    workspace: &str,
    tip: &Sealed,
    received_at: i64,
) -> Result<()> {
    put_header(doc, RecordKind::Tip, workspace, received_at)?;
    doc.put(&ROOT, K_SENSITIVITY, Sensitivity::Restricted.as_str())?;
    for (key, value) in [
        (K_WHAT, &tip.what),
        (K_WHERE, &tip.place),
        (K_WHEN, &tip.time),
        (K_CONTACT, &tip.contact),
        (K_LANG, &tip.lang),
        (K_SENT_AT, &tip.sent_at),
        (K_LOOKUP, &tip.lookup),
        (K_REPLY_KEY, &tip.reply_key),
    ] {
        doc.put(&ROOT, key, bounded(value))?;
    }
    doc.put_object(&ROOT, K_REPLIES, ObjType::Map)?;
    // The team's own notes on the tip, which the tipster never sees.
    put_text(doc, &ROOT, K_NOTES, "")?;
    Ok(())
}

/// Where a reply to the tip goes: the receipt's lookup id and the tipster's reply key; `None`
/// when the tipster's browser gave none that can be used.
pub(crate) fn reply_to(doc: &AutoCommit) -> Option<(Vec<u8>, [u8; 32])> {
    let f = Fields::of(doc, &ROOT);
    let lookup = hex::decode(f.str(K_LOOKUP)?).ok()?;
    let key = data_encoding::BASE64
        .decode(f.str(K_REPLY_KEY)?.as_bytes())
        .ok()?;
    let key = <[u8; 32]>::try_from(key.as_slice()).ok()?;
    (lookup.len() == waymark_protocol::limits::TIP_LOOKUP_BYTES).then_some((lookup, key))
}

/// Adds a reply the team sent, and returns its id.
pub(crate) fn add_reply(doc: &mut AutoCommit, text: &str, now: i64) -> Result<String> {
    let replies = get_obj(doc, &ROOT, K_REPLIES, ObjType::Map)
        .ok_or_else(|| Error::Corrupt("tip has no replies map".into()))?;
    let id = new_id();
    let m = doc.put_object(&replies, id.as_str(), ObjType::Map)?;
    doc.put(&m, "text", text)?;
    doc.put(&m, "sent_at", now)?;
    Ok(id)
}

/// Records the visit the tip was turned into.
pub(crate) fn set_visit(doc: &mut AutoCommit, visit_id: &str) -> Result<()> {
    doc.put(&ROOT, K_VISIT, visit_id)?;
    Ok(())
}

/// Reads a tip record.
pub(crate) fn read(doc: &AutoCommit, id: &str, h: &Header) -> Tip {
    let f = Fields::of(doc, &ROOT);
    let text = |k: &str| f.str(k).unwrap_or_default();
    let mut replies: Vec<TipReply> = f
        .map(K_REPLIES)
        .maps()
        .map(|(rid, r)| TipReply {
            id: rid.to_string(),
            text: r.str("text").unwrap_or_default(),
            sent_at: r.i64("sent_at").unwrap_or(0),
            author: r.writer("text"),
        })
        .collect();
    replies.sort_by(|a, b| (a.sent_at, &a.id).cmp(&(b.sent_at, &b.id)));
    Tip {
        id: id.to_string(),
        workspace_id: h.workspace.clone(),
        received_at: h.created_at,
        sent_at: text(K_SENT_AT),
        language: text(K_LANG),
        what: text(K_WHAT),
        place: text(K_WHERE),
        time: text(K_WHEN),
        contact: text(K_CONTACT),
        replies,
        visit_id: f.str(K_VISIT),
        deleted: h.deleted,
    }
}
