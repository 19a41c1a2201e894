//! How each record is laid out as an Automerge document, and how it is read back.
//!
//! Every record document has the same root header: `schema` (int), `kind` (`visit`,
//! `workshop`, `settings`, `tip`), `workspace` (id), `created_at` (ms) and `deleted` (bool, the
//! tombstone). Every container a record will ever need (notes text, sets, attendee map, ...)
//! is created together with the record by the device that creates it: two devices creating
//! the same container concurrently would produce two objects of which only one stays visible.

pub(crate) mod meta;
pub(crate) mod settings;
pub(crate) mod tip;
pub(crate) mod visit;
pub(crate) mod workshop;

use automerge::iter::MapRangeItem;
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjId, ObjType, ReadDoc, ScalarValue, Value, ValueRef};

use crate::error::{Error, Result};
use crate::model::{RecordKind, Sensitivity};

/// The record schema version this build writes; readers accept this and older.
pub(crate) const SCHEMA: i64 = 1;

pub(crate) const K_SCHEMA: &str = "schema";
pub(crate) const K_KIND: &str = "kind";
pub(crate) const K_WORKSPACE: &str = "workspace";
pub(crate) const K_CREATED_AT: &str = "created_at";
pub(crate) const K_DELETED: &str = "deleted";
pub(crate) const K_NOTES: &str = "notes";
pub(crate) const K_SENSITIVITY: &str = "sensitivity";

impl RecordKind {
    /// The `kind` string stored in documents and tables.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RecordKind::Visit => "visit",
            RecordKind::Workshop => "workshop",
            RecordKind::Settings => "settings",
            RecordKind::Tip => "tip",
        }
    }

    /// Parses a stored `kind` string.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "visit" => Some(RecordKind::Visit),
            "workshop" => Some(RecordKind::Workshop),
            "settings" => Some(RecordKind::Settings),
            "tip" => Some(RecordKind::Tip),
            _ => None,
        }
    }
}

impl Sensitivity {
    /// The stored string.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Sensitivity::Normal => "normal",
            Sensitivity::Restricted => "restricted",
        }
    }

    /// Parses a stored string; anything unknown reads as restricted, the safe side.
    pub(crate) fn parse(s: &str) -> Self {
        match s {
            "normal" => Sensitivity::Normal,
            _ => Sensitivity::Restricted,
        }
    }
}

/// Writes the common header of a new record document.
pub(crate) fn put_header(
    doc: &mut AutoCommit,
    kind: RecordKind,
    workspace: &str,
    now: i64,
) -> Result<()> {
    let root = automerge::ROOT;
    doc.put(&root, K_SCHEMA, SCHEMA)?;
    doc.put(&root, K_KIND, kind.as_str())?;
    doc.put(&root, K_WORKSPACE, workspace)?;
    doc.put(&root, K_CREATED_AT, now)?;
    doc.put(&root, K_DELETED, false)?;
    Ok(())
}

/// The header of a stored document, if it is complete enough to have one.
pub(crate) struct Header {
    pub kind: RecordKind,
    pub workspace: String,
    pub created_at: i64,
    pub deleted: bool,
}

/// Reads a document's header; `None` while its first change has not arrived.
pub(crate) fn header(doc: &AutoCommit) -> Option<Header> {
    Fields::of(doc, &automerge::ROOT).header()
}

/// The device (Automerge actor, hex) that created a record: the writer of its `kind`, which
/// is put once, by the creating device, and never changed.
pub(crate) fn creator(doc: &AutoCommit) -> String {
    Fields::of(doc, &automerge::ROOT).creator()
}

/// Whether a record is restricted: any of its concurrent sensitivity values says so (a record
/// someone restricted stays restricted until the conflict is resolved).
pub(crate) fn is_restricted(doc: &AutoCommit) -> bool {
    doc.get_all(&automerge::ROOT, K_SENSITIVITY)
        .map(|values| {
            values.iter().any(|(v, _)| {
                matches!(v, Value::Scalar(s) if as_str(s).as_deref() == Some("restricted"))
            })
        })
        .unwrap_or(false)
}

/// The scalar at `obj[key]` (the deterministic winner when values conflict).
pub(crate) fn get_scalar(doc: &AutoCommit, obj: &ObjId, key: &str) -> Option<ScalarValue> {
    match doc.get(obj, key) {
        Ok(Some((Value::Scalar(v), _))) => Some(v.into_owned()),
        _ => None,
    }
}

/// The string at `obj[key]`.
pub(crate) fn get_str(doc: &AutoCommit, obj: &ObjId, key: &str) -> Option<String> {
    as_str(&get_scalar(doc, obj, key)?)
}

/// The integer at `obj[key]` (ints, uints, counters and timestamps all read as i64).
pub(crate) fn get_i64(doc: &AutoCommit, obj: &ObjId, key: &str) -> Option<i64> {
    as_i64(&get_scalar(doc, obj, key)?)
}

/// The boolean at `obj[key]`.
pub(crate) fn get_bool(doc: &AutoCommit, obj: &ObjId, key: &str) -> Option<bool> {
    as_bool(&get_scalar(doc, obj, key)?)
}

fn as_str(v: &ScalarValue) -> Option<String> {
    match v {
        ScalarValue::Str(s) => Some(s.to_string()),
        _ => None,
    }
}

fn as_i64(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::Int(i) | ScalarValue::Timestamp(i) => Some(*i),
        ScalarValue::Uint(u) => i64::try_from(*u).ok(),
        ScalarValue::Counter(c) => Some(i64::from(c)),
        _ => None,
    }
}

fn as_bool(v: &ScalarValue) -> Option<bool> {
    match v {
        ScalarValue::Boolean(b) => Some(*b),
        _ => None,
    }
}

/// The current entries of one map, read in one scan: what a record shows is read through it,
/// since looking fields up one by one searches the document once per field (the costliest
/// part of showing a document that has just arrived).
pub(crate) struct Fields<'a> {
    doc: &'a AutoCommit,
    items: Vec<MapRangeItem<'a>>,
}

impl<'a> Fields<'a> {
    /// The entries of the map `obj` (none if it is not a map).
    pub(crate) fn of(doc: &'a AutoCommit, obj: &ObjId) -> Fields<'a> {
        Fields {
            doc,
            items: doc.map_range(obj, ..).collect(),
        }
    }

    fn item(&self, key: &str) -> Option<&MapRangeItem<'a>> {
        self.items.iter().find(|i| i.key == key)
    }

    /// The keys, in the document's order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &str> {
        self.items.iter().map(|i| i.key.as_ref())
    }

    /// The scalar at `key` (the deterministic winner when values conflict).
    pub(crate) fn scalar(&self, key: &str) -> Option<ScalarValue> {
        match &self.item(key)?.value {
            ValueRef::Scalar(s) => match Value::from(ValueRef::Scalar(s.clone())) {
                Value::Scalar(v) => Some(v.into_owned()),
                Value::Object(_) => None,
            },
            ValueRef::Object(_) => None,
        }
    }

    /// The string at `key`.
    pub(crate) fn str(&self, key: &str) -> Option<String> {
        as_str(&self.scalar(key)?)
    }

    /// The integer at `key` (as [`get_i64`] reads it).
    pub(crate) fn i64(&self, key: &str) -> Option<i64> {
        as_i64(&self.scalar(key)?)
    }

    /// The boolean at `key`.
    pub(crate) fn bool(&self, key: &str) -> Option<bool> {
        as_bool(&self.scalar(key)?)
    }

    /// The object of type `ty` at `key`.
    pub(crate) fn obj(&self, key: &str, ty: ObjType) -> Option<ObjId> {
        let item = self.item(key)?;
        matches!(item.value, ValueRef::Object(t) if t == ty).then(|| item.id())
    }

    /// The entries of the map at `key` (none if there is no map there).
    pub(crate) fn map(&self, key: &str) -> Fields<'a> {
        match self.obj(key, ObjType::Map) {
            Some(m) => Fields::of(self.doc, &m),
            None => Fields {
                doc: self.doc,
                items: Vec::new(),
            },
        }
    }

    /// The entries of this map that are maps themselves (attendees, referrals...), by key.
    pub(crate) fn maps(&self) -> impl Iterator<Item = (&str, Fields<'a>)> {
        self.items
            .iter()
            .filter(|i| matches!(i.value, ValueRef::Object(ObjType::Map)))
            .map(|i| (i.key.as_ref(), Fields::of(self.doc, &i.id())))
    }

    /// The members of the set (a map of `member -> true`) at `key`, sorted.
    pub(crate) fn set(&self, key: &str) -> Vec<String> {
        let set = self.map(key);
        let mut members: Vec<String> = set
            .keys()
            .filter(|k| set.bool(k).unwrap_or(false))
            .map(str::to_string)
            .collect();
        members.sort();
        members
    }

    /// The text of the Text object at `key`, or empty.
    pub(crate) fn text(&self, key: &str) -> String {
        self.obj(key, ObjType::Text)
            .and_then(|t| self.doc.text(&t).ok())
            .unwrap_or_default()
    }

    /// The record header, read from a document's root.
    pub(crate) fn header(&self) -> Option<Header> {
        Some(Header {
            kind: RecordKind::parse(&self.str(K_KIND)?)?,
            workspace: self.str(K_WORKSPACE)?,
            created_at: self.i64(K_CREATED_AT).unwrap_or(0),
            deleted: self.bool(K_DELETED).unwrap_or(false),
        })
    }

    /// The record's creator (see [`creator`]), read from a document's root.
    pub(crate) fn creator(&self) -> String {
        self.writer(K_KIND)
    }

    /// The device (Automerge actor, hex) that wrote the value at `key`; empty if none.
    pub(crate) fn writer(&self, key: &str) -> String {
        match self.item(key).map(MapRangeItem::id) {
            Some(ObjId::Id(_, actor, _)) => actor.to_hex_string(),
            _ => String::new(),
        }
    }
}

/// The object of type `ty` at `obj[key]`.
pub(crate) fn get_obj(doc: &AutoCommit, obj: &ObjId, key: &str, ty: ObjType) -> Option<ObjId> {
    match doc.get(obj, key) {
        Ok(Some((Value::Object(t), id))) if t == ty => Some(id),
        _ => None,
    }
}

/// Adds or removes `member` of the set at `obj[key]`.
pub(crate) fn set_member(
    doc: &mut AutoCommit,
    obj: &ObjId,
    key: &str,
    member: &str,
    present: bool,
) -> Result<()> {
    let set = get_obj(doc, obj, key, ObjType::Map)
        .ok_or_else(|| Error::corrupt(format!("record has no {key} set")))?;
    if present {
        doc.put(&set, member, true)?;
    } else if doc.get(&set, member)?.is_some() {
        doc.delete(&set, member)?;
    }
    Ok(())
}

/// Replaces the Text at `obj[key]` with `text`, as a character-level diff.
pub(crate) fn set_text(doc: &mut AutoCommit, obj: &ObjId, key: &str, text: &str) -> Result<()> {
    let t = get_obj(doc, obj, key, ObjType::Text)
        .ok_or_else(|| Error::corrupt(format!("record has no {key} text")))?;
    doc.update_text(&t, text)?;
    Ok(())
}

/// Creates a new set at `obj[key]` holding `members`.
pub(crate) fn put_set(
    doc: &mut AutoCommit,
    obj: &ObjId,
    key: &str,
    members: &[String],
) -> Result<()> {
    let set = doc.put_object(obj, key, ObjType::Map)?;
    for m in members {
        doc.put(&set, m.as_str(), true)?;
    }
    Ok(())
}

/// Creates a new Text at `obj[key]` holding `text`.
pub(crate) fn put_text(doc: &mut AutoCommit, obj: &ObjId, key: &str, text: &str) -> Result<()> {
    let t = doc.put_object(obj, key, ObjType::Text)?;
    doc.splice_text(&t, 0, 0, text)?;
    Ok(())
}

/// The sum of all concurrent values of a counter at `obj[key]`.
///
/// Two devices that first tap a tally offline each create the counter; each holds its own
/// increments, and the people they counted are all real, so they add up.
pub(crate) fn get_counter_sum(doc: &AutoCommit, obj: &ObjId, key: &str) -> i64 {
    doc.get_all(obj, key)
        .map(|vals| {
            vals.iter()
                .filter_map(|(v, _)| match v {
                    Value::Scalar(s) => match s.as_ref() {
                        ScalarValue::Counter(c) => Some(i64::from(c)),
                        ScalarValue::Int(i) => Some(*i),
                        _ => None,
                    },
                    Value::Object(_) => None,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// True if any scalar field of `obj` or of the maps nested one or two levels below holds
/// concurrent differing values.
pub(crate) fn has_conflicts(doc: &AutoCommit) -> bool {
    meta::any_conflict(doc)
}
