//! A record's conflicts, their resolution, and its history.

use serde_json::{Value, json};
use waymark_core as wc;

use crate::output::{Out, day, table};

fn err(e: wc::Error) -> String {
    e.to_string()
}

/// A field's value as text.
pub fn value_text(v: &wc::FieldValue) -> String {
    match v {
        wc::FieldValue::Text(s) if s.is_empty() => "(empty)".into(),
        wc::FieldValue::Text(s) => s.clone(),
        wc::FieldValue::Int(n) => n.to_string(),
        wc::FieldValue::Float(f) => f.to_string(),
        wc::FieldValue::Bool(true) => "yes".into(),
        wc::FieldValue::Bool(false) => "no".into(),
        wc::FieldValue::Null => "(none)".into(),
    }
}

fn value_json(v: &wc::FieldValue) -> Value {
    match v {
        wc::FieldValue::Text(s) => json!(s),
        wc::FieldValue::Int(n) => json!(n),
        wc::FieldValue::Float(f) => json!(f),
        wc::FieldValue::Bool(b) => json!(b),
        wc::FieldValue::Null => Value::Null,
    }
}

/// Who wrote something: the device's name, or its actor id when the team has no name for it.
pub fn author(a: &wc::Author) -> String {
    a.device_name.clone().unwrap_or_else(|| {
        let short: String = a.actor.chars().take(12).collect();
        format!("device {short}")
    })
}

/// A record with conflicting fields.
struct Conflicted {
    id: String,
    kind: &'static str,
    workspace: String,
    conflicts: Vec<wc::Conflict>,
}

/// The visits and workshops of `workspace` (every one if `None`) whose fields hold concurrent
/// values, each value with who wrote it. Restricted records are left out unless asked for.
pub fn conflicts(
    store: &wc::Store,
    workspace: Option<String>,
    include_restricted: bool,
    json: bool,
) -> Result<(), String> {
    let visits = store
        .list_visits(&wc::VisitFilter {
            workspace_id: workspace.clone(),
            limit: Some(100_000),
            ..Default::default()
        })
        .map_err(err)?;
    let workshops = store
        .list_workshops(&wc::WorkshopFilter {
            workspace_id: workspace,
            limit: Some(100_000),
            ..Default::default()
        })
        .map_err(err)?;
    let mut hidden = 0usize;
    let mut candidates = Vec::new();
    for v in visits.iter().filter(|v| v.has_conflicts) {
        candidates.push((v.id.clone(), "visit", v.workspace_id.clone(), v.sensitivity));
    }
    for w in workshops.iter().filter(|w| w.has_conflicts) {
        candidates.push((
            w.id.clone(),
            "workshop",
            w.workspace_id.clone(),
            w.sensitivity,
        ));
    }
    let mut all = Vec::new();
    for (id, kind, workspace, sensitivity) in candidates {
        if sensitivity == wc::Sensitivity::Restricted && !include_restricted {
            hidden += 1;
            continue;
        }
        let conflicts = store.conflicts(&id).map_err(err)?;
        if !conflicts.is_empty() {
            all.push(Conflicted {
                id,
                kind,
                workspace,
                conflicts,
            });
        }
    }
    if json {
        Out::print_json(&json!(
            all.iter()
                .map(|r| json!({
                    "id": r.id, "kind": r.kind, "workspace_id": r.workspace,
                    "conflicts": r.conflicts.iter().map(|c| json!({
                        "field": c.field,
                        "current": value_json(&c.current),
                        "values": c.values.iter().enumerate().map(|(i, v)| json!({
                            "index": i + 1,
                            "value": value_json(&v.value),
                            "author": author(&v.author),
                            "actor": v.author.actor,
                        })).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                }))
                .collect::<Vec<_>>()
        ));
        return Ok(());
    }
    if all.is_empty() {
        say!("no conflicts");
    }
    for r in &all {
        let mut t = table(&["field", "#", "value", "written by", "shown now"]);
        for c in &r.conflicts {
            for (i, v) in c.values.iter().enumerate() {
                t.add_row(vec![
                    c.field.clone(),
                    (i + 1).to_string(),
                    value_text(&v.value),
                    author(&v.author),
                    if v.value == c.current { "yes" } else { "" }.into(),
                ]);
            }
        }
        say!("{} {}\n{t}", r.kind, r.id);
    }
    if !all.is_empty() {
        say!("keep one with: waymark resolve RECORD FIELD --pick # (or --value TEXT)");
    }
    if hidden > 0 {
        say!(
            "{hidden} restricted records with conflicts hidden (--include-restricted to show them)"
        );
    }
    Ok(())
}

/// Which of a conflict's values to keep.
pub enum Choice {
    /// The value shown as this number (from 1) by `waymark conflicts`.
    Pick(usize),
    /// The value whose text is this.
    Value(String),
}

/// Keeps one of the concurrent values of `field` in record `id`.
pub fn resolve(store: &wc::Store, id: &str, field: &str, choice: &Choice) -> Result<(), String> {
    let conflicts = store.conflicts(id).map_err(err)?;
    let conflict = conflicts
        .iter()
        .find(|c| c.field == field)
        .ok_or_else(|| format!("{id} has no conflict in {field} (see `waymark conflicts`)"))?;
    let chosen = match choice {
        Choice::Pick(n) => conflict.values.get(n.wrapping_sub(1)).ok_or_else(|| {
            format!(
                "the conflict in {field} has {} values: pick one from 1 to {}",
                conflict.values.len(),
                conflict.values.len()
            )
        })?,
        Choice::Value(text) => conflict
            .values
            .iter()
            .find(|v| value_text(&v.value) == *text)
            .ok_or_else(|| {
                format!("none of the conflicting values of {field} is that text: use --pick")
            })?,
    };
    store
        .resolve_conflict(id, field, &chosen.value)
        .map_err(err)?;
    say!(
        "kept the value {} wrote for {field}; sync to send it to the team",
        author(&chosen.author)
    );
    Ok(())
}

/// The changes of a record, oldest first, with who made them and which fields they touched.
pub fn history(store: &wc::Store, id: &str, json: bool) -> Result<(), String> {
    let entries = store.history(id).map_err(err)?;
    if json {
        Out::print_json(&json!(
            entries
                .iter()
                .map(|h| json!({
                    "change": h.change, "at": h.at, "author": author(&h.author),
                    "actor": h.author.actor, "fields": h.fields,
                }))
                .collect::<Vec<_>>()
        ));
        return Ok(());
    }
    let mut t = table(&["when (device clock, UTC)", "who", "fields", "change"]);
    for h in &entries {
        t.add_row(vec![
            day(h.at),
            author(&h.author),
            h.fields.join(", "),
            h.change.chars().take(12).collect(),
        ]);
    }
    say!("{t}");
    Ok(())
}
