//! What a record's Automerge history tells beyond its current values: fields holding
//! concurrent values (conflicts), resolving them, and who changed which fields when.

use std::collections::BTreeMap;

use automerge::transaction::Transactable;
use automerge::{
    AutoCommit, ObjId, ObjType, PatchAction, Prop, ROOT, ReadDoc, ScalarValue, Value, ValueRef,
};

use crate::error::{Error, Result};
use crate::model::{Author, Conflict, ConflictValue, FieldValue, HistoryEntry};

/// How deep nested maps are searched for conflicts (root, e.g. attendees, one attendee).
const MAX_DEPTH: usize = 3;

/// A scalar as a caller-facing value.
pub(crate) fn field_value(s: &ScalarValue) -> FieldValue {
    match s {
        ScalarValue::Str(s) => FieldValue::Text(s.to_string()),
        ScalarValue::Int(i) | ScalarValue::Timestamp(i) => FieldValue::Int(*i),
        ScalarValue::Uint(u) => i64::try_from(*u).map_or(FieldValue::Null, FieldValue::Int),
        ScalarValue::Counter(c) => FieldValue::Int(i64::from(c)),
        ScalarValue::F64(f) => FieldValue::Float(*f),
        ScalarValue::Boolean(b) => FieldValue::Bool(*b),
        ScalarValue::Bytes(_) | ScalarValue::Unknown { .. } | ScalarValue::Null => FieldValue::Null,
    }
}

fn scalar(v: &FieldValue) -> ScalarValue {
    match v {
        FieldValue::Text(s) => ScalarValue::Str(s.as_str().into()),
        FieldValue::Int(i) => ScalarValue::Int(*i),
        FieldValue::Float(f) => ScalarValue::F64(*f),
        FieldValue::Bool(b) => ScalarValue::Boolean(*b),
        FieldValue::Null => ScalarValue::Null,
    }
}

/// The actor (hex) that wrote the op `id`.
fn actor_of(id: &ObjId) -> String {
    match id {
        ObjId::Id(_, actor, _) => actor.to_hex_string(),
        ObjId::Root => String::new(),
    }
}

/// Fields (as `a/b/c` paths) whose concurrent values differ, with those values and writers.
pub(crate) fn conflicting_fields(doc: &AutoCommit) -> Vec<(String, Vec<(FieldValue, String)>)> {
    let mut out = Vec::new();
    walk(doc, &ROOT, "", 0, &mut out);
    out
}

/// Whether any field holds concurrent different values: what `conflicting_fields` finds, told
/// without building paths and values (every projection refresh asks).
pub(crate) fn any_conflict(doc: &AutoCommit) -> bool {
    any_conflict_in(doc, &ROOT, 0)
}

fn any_conflict_in(doc: &AutoCommit, obj: &ObjId, depth: usize) -> bool {
    // One scan of the map flags the keys holding concurrent values; only those are looked at
    // closely (concurrent equal values, or counters, are no conflict).
    for item in doc.map_range(obj, ..) {
        if item.conflict && differing_values(doc, obj, &item.key) {
            return true;
        }
        if depth + 1 < MAX_DEPTH
            && matches!(item.value, ValueRef::Object(ObjType::Map))
            && any_conflict_in(doc, &item.id(), depth + 1)
        {
            return true;
        }
    }
    false
}

/// Whether `obj[key]` holds concurrent scalar values that differ (counters excepted).
fn differing_values(doc: &AutoCommit, obj: &ObjId, key: &str) -> bool {
    let Ok(values) = doc.get_all(obj, key) else {
        return false;
    };
    let mut scalars = values.iter().filter_map(|(v, _)| match v {
        Value::Scalar(s) if !s.is_counter() => Some(field_value(s)),
        _ => None,
    });
    scalars
        .next()
        .is_some_and(|first| scalars.any(|v| v != first))
}

fn walk(
    doc: &AutoCommit,
    obj: &ObjId,
    prefix: &str,
    depth: usize,
    out: &mut Vec<(String, Vec<(FieldValue, String)>)>,
) {
    for key in doc.keys(obj) {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}/{key}")
        };
        let Ok(values) = doc.get_all(obj, key.as_str()) else {
            continue;
        };
        let scalars: Vec<(FieldValue, String)> = values
            .iter()
            .filter_map(|(v, id)| match v {
                // Concurrent counters add up (see `get_counter_sum`): never a conflict.
                Value::Scalar(s) if !s.is_counter() => Some((field_value(s), actor_of(id))),
                _ => None,
            })
            .collect();
        let distinct = scalars
            .iter()
            .any(|(v, _)| scalars.first().is_some_and(|(first, _)| first != v));
        if scalars.len() > 1 && distinct {
            out.push((path.clone(), scalars));
        }
        if depth + 1 < MAX_DEPTH
            && let Ok(Some((Value::Object(ObjType::Map), child))) = doc.get(obj, key.as_str())
        {
            walk(doc, &child, &path, depth + 1, out);
        }
    }
}

/// The conflicts of a document, with writers named from `names` (actor hex -> device name).
pub(crate) fn conflicts(doc: &AutoCommit, names: &BTreeMap<String, String>) -> Vec<Conflict> {
    conflicting_fields(doc)
        .into_iter()
        .map(|(field, values)| {
            let current = current_value(doc, &field).unwrap_or(FieldValue::Null);
            Conflict {
                field,
                current,
                values: values
                    .into_iter()
                    .map(|(value, actor)| ConflictValue {
                        value,
                        author: author(&actor, names),
                    })
                    .collect(),
            }
        })
        .collect()
}

/// An author from an actor id and the workspace's device names.
pub(crate) fn author(actor: &str, names: &BTreeMap<String, String>) -> Author {
    Author {
        actor: actor.to_string(),
        device_name: names.get(actor).cloned(),
    }
}

/// The parent object and final key of a field path.
fn locate(doc: &AutoCommit, path: &str) -> Option<(ObjId, String)> {
    let mut parts: Vec<&str> = path.split('/').collect();
    let last = parts.pop()?.to_string();
    let mut obj = ROOT;
    for p in parts {
        match doc.get(&obj, p) {
            Ok(Some((Value::Object(ObjType::Map), id))) => obj = id,
            _ => return None,
        }
    }
    Some((obj, last))
}

fn current_value(doc: &AutoCommit, path: &str) -> Option<FieldValue> {
    let (obj, key) = locate(doc, path)?;
    match doc.get(&obj, key.as_str()).ok()?? {
        (Value::Scalar(s), _) => Some(field_value(&s)),
        _ => None,
    }
}

/// Resolves the conflict at `path` by writing `chosen`, which must be one of its values.
pub(crate) fn resolve(doc: &mut AutoCommit, path: &str, chosen: &FieldValue) -> Result<()> {
    let (obj, key) = locate(doc, path).ok_or_else(|| Error::not_found(format!("field {path}")))?;
    let values = doc.get_all(&obj, key.as_str())?;
    let known = values.iter().any(|(v, _)| match v {
        Value::Scalar(s) => &field_value(s) == chosen,
        Value::Object(_) => false,
    });
    if !known {
        return Err(Error::invalid(
            "value",
            format!("is not one of the values of {path}"),
        ));
    }
    // A put supersedes every value visible here, so the conflict is gone on every device
    // that receives this change.
    doc.put(&obj, key.as_str(), scalar(chosen))?;
    Ok(())
}

/// Every change of a document in causal order, with the top-level fields it touched.
pub(crate) fn history(doc: &mut AutoCommit, names: &BTreeMap<String, String>) -> Vec<HistoryEntry> {
    let changes: Vec<_> = doc
        .get_changes(&[])
        .into_iter()
        .map(|c| {
            (
                c.hash(),
                c.deps().to_vec(),
                c.timestamp(),
                c.actor_id().to_hex_string(),
            )
        })
        .collect();
    changes
        .into_iter()
        .map(|(hash, deps, at, actor)| {
            let mut fields: Vec<String> = doc
                .diff(&deps, &[hash])
                .into_iter()
                .filter_map(|p| match p.path.first() {
                    Some((_, Prop::Map(k))) => Some(k.clone()),
                    Some((_, Prop::Seq(_))) => None,
                    None => match p.action {
                        PatchAction::PutMap { key, .. } | PatchAction::DeleteMap { key } => {
                            Some(key)
                        }
                        PatchAction::Increment {
                            prop: Prop::Map(k), ..
                        }
                        | PatchAction::Conflict { prop: Prop::Map(k) } => Some(k),
                        _ => None,
                    },
                })
                .collect();
            fields.sort();
            fields.dedup();
            HistoryEntry {
                change: hash.to_string(),
                at,
                author: author(&actor, names),
                fields,
            }
        })
        .collect()
}
