//! What the commands print: readable tables for a person at a terminal, or JSON for scripts.

use std::collections::HashMap;

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::{Map, Value, json};
use waymark_core as wc;

use crate::words::Words;

/// Ends the program after standard output failed: quietly when its reader went away (a pipe
/// closed by `head`), saying why otherwise.
pub fn stdout_failed(e: &std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("waymark: writing the output failed: {e}");
    std::process::exit(1);
}

/// Where output goes and in which form.
pub struct Out {
    json: bool,
}

fn counts(c: &[wc::Count]) -> Value {
    Value::Object(
        c.iter()
            .map(|c| (c.key.clone(), json!(c.count)))
            .collect::<Map<_, _>>(),
    )
}

fn visit_figures(v: &wc::VisitFigures) -> Value {
    json!({
        "visits": v.visits,
        "people_reached": v.people_reached,
        "by_type": counts(&v.by_type),
        "by_area": counts(&v.by_area),
        "indicators": counts(&v.indicators),
        "referrals": v.referrals,
        "referrals_by_kind": counts(&v.referrals_by_kind),
        "referrals_by_status": counts(&v.referrals_by_status),
        "follow_ups_due": v.follow_ups_due,
        "follow_ups_overdue": v.follow_ups_overdue,
    })
}

fn workshop_figures(w: &wc::WorkshopFigures) -> Value {
    json!({
        "workshops": w.workshops,
        "by_topic": counts(&w.by_topic),
        "by_audience": counts(&w.by_audience),
        "attendance": w.attendance,
        "named": w.named,
        "unique_people": w.unique_people,
        "anonymous": w.anonymous,
        "by_age_band": counts(&w.by_age_band),
        "by_gender": counts(&w.by_gender),
        "feedback_count": w.feedback_count,
        "feedback_average": w.feedback_average,
    })
}

/// The report as JSON.
pub fn report_json(r: &wc::Report) -> Value {
    let f = &r.filter;
    json!({
        "today": r.today,
        "filter": {
            "workspace_id": f.workspace_id, "from": f.from, "to": f.to, "area": f.area,
            "topic": f.topic, "worker": f.worker,
        },
        "visits": visit_figures(&r.visits),
        "workshops": workshop_figures(&r.workshops),
        "months": r.months.iter().map(|m| json!({
            "month": m.month,
            "visits": visit_figures(&m.visits),
            "workshops": workshop_figures(&m.workshops),
        })).collect::<Vec<_>>(),
    })
}

/// A table in the CLI's style with these column headers.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    t.set_header(header.to_vec());
    t
}

/// A moment (ms since 1970) as `YYYY-MM-DD HH:MM`, UTC.
pub fn day(ms: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

fn sensitivity(s: wc::Sensitivity) -> &'static str {
    match s {
        wc::Sensitivity::Normal => "",
        wc::Sensitivity::Restricted => "restricted",
    }
}

impl Out {
    /// Output as JSON (`true`) or tables.
    pub fn new(json: bool) -> Out {
        Out { json }
    }

    /// Prints a value as indented JSON.
    pub fn print_json(v: &Value) {
        say!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    }

    /// What a sync did.
    pub fn sync(&self, r: &wc::SyncReport) {
        if self.json {
            Self::print_json(&json!({
                "pushed": r.pushed, "pulled": r.pulled, "changed": r.changed.len(),
                "bytes_up": r.bytes_up, "bytes_down": r.bytes_down,
                "duration_ms": r.duration_ms, "set_aside": r.set_aside.len(),
            }));
            return;
        }
        say!(
            "pushed {} and pulled {} changes ({} records changed) in {:.1} s",
            r.pushed,
            r.pulled,
            r.changed.len(),
            r.duration_ms as f64 / 1000.0
        );
        if !r.set_aside.is_empty() {
            say!(
                "{} changes failed authentication and were set aside, not applied",
                r.set_aside.len()
            );
        }
    }

    /// Safety check-ins, the most urgent first.
    pub fn check_ins(&self, cs: &[wc::CheckIn]) {
        if self.json {
            Self::print_json(&json!(
                cs.iter()
                    .map(|c| json!({
                        "id": c.id, "workspace_id": c.workspace_id, "device_id": c.device_id,
                        "device_name": c.device_name, "own": c.own,
                        "state": c.state.as_str(), "started_at": c.started_at,
                        "expected_back": c.expected_back, "closed_at": c.closed_at,
                        "place": c.details.place, "with_whom": c.details.with_whom,
                        "note": c.details.note, "watched": c.watched,
                    }))
                    .collect::<Vec<_>>()
            ));
            return;
        }
        if cs.is_empty() {
            say!("no open check-ins");
            return;
        }
        let mut t = table(&["state", "who", "expected back", "where", "with", "note"]);
        for c in cs {
            let state = match (c.state, c.watched) {
                (wc::CheckInState::Open, false) => "open (not watched yet)".to_string(),
                (s, _) => s.as_str().to_string(),
            };
            t.add_row(vec![
                state,
                c.device_name.clone(),
                day(c.expected_back),
                c.details.place.clone(),
                c.details.with_whom.clone(),
                c.details.note.clone(),
            ]);
        }
        say!("{t}");
    }

    /// Anonymous tips.
    pub fn tips(&self, tips: &[wc::Tip]) {
        if self.json {
            Self::print_json(&json!(
                tips.iter()
                    .map(|t| json!({
                        "id": t.id, "workspace_id": t.workspace_id, "received_at": t.received_at,
                        "sent_at": t.sent_at, "language": t.language, "what": t.what,
                        "where": t.place, "when": t.time, "contact": t.contact,
                        "replies": t.replies.iter().map(|r| json!({
                            "text": r.text, "sent_at": r.sent_at,
                        })).collect::<Vec<_>>(),
                        "visit_id": t.visit_id,
                    }))
                    .collect::<Vec<_>>()
            ));
            return;
        }
        if tips.is_empty() {
            say!("no tips");
            return;
        }
        let mut t = table(&[
            "id", "received", "what", "where", "when", "contact", "replies",
        ]);
        for tip in tips {
            t.add_row(vec![
                tip.id.clone(),
                day(tip.received_at),
                tip.what.clone(),
                tip.place.clone(),
                tip.time.clone(),
                tip.contact.clone(),
                tip.replies.len().to_string(),
            ]);
        }
        say!("{t}");
    }

    /// The workspace's tip page.
    pub fn tip_page(&self, p: &wc::TipPage) {
        if self.json {
            Self::print_json(&json!({
                "workspace_id": p.workspace_id, "url": p.url, "fingerprint": p.fingerprint,
                "epoch": p.epoch, "published": p.published,
                "languages": p.languages.iter().map(|l| l.code.clone()).collect::<Vec<_>>(),
            }));
            return;
        }
        say!("tip page: {}", p.url);
        say!(
            "key fingerprint (print it next to the address): {}",
            p.fingerprint
        );
        if !p.published {
            say!("not published yet: sync to publish it");
        }
    }

    /// The store's workspaces.
    pub fn workspaces(&self, ws: &[wc::Workspace]) {
        if self.json {
            Self::print_json(&json!(
                ws.iter()
                    .map(|w| json!({"id": w.id, "name": w.name}))
                    .collect::<Vec<_>>()
            ));
            return;
        }
        let mut t = table(&["workspace", "id"]);
        for w in ws {
            t.add_row(vec![w.name.clone(), w.id.clone()]);
        }
        say!("{t}");
    }

    /// A list of visits, with search snippets when searching.
    pub fn visits(
        &self,
        vs: &[wc::VisitSummary],
        hidden: usize,
        snippets: Option<&HashMap<String, String>>,
    ) {
        if self.json {
            Self::print_json(&json!({
                "restricted_hidden": hidden,
                "visits": vs.iter().map(|v| json!({
                    "id": v.id, "workspace_id": v.workspace_id, "occurred_at": v.occurred_at,
                    "place": v.place_name, "area": v.area, "visit_type": v.visit_type,
                    "people_reached": v.people_reached, "indicators": v.indicators,
                    "follow_up_needed": v.follow_up.needed, "follow_up_due": v.follow_up.due,
                    "follow_up_done": v.follow_up.done,
                    "restricted": v.sensitivity == wc::Sensitivity::Restricted,
                    "snippet": snippets.and_then(|s| s.get(&v.id)),
                })).collect::<Vec<_>>(),
            }));
            return;
        }
        let mut header = vec![
            "when (UTC)",
            "place",
            "area",
            "type",
            "people",
            "indicators",
            "follow-up",
            "",
        ];
        if snippets.is_some() {
            header.push("match");
        }
        let mut t = table(&header);
        for v in vs {
            let follow_up = match (&v.follow_up.needed, v.follow_up.done, &v.follow_up.due) {
                (false, _, _) => String::new(),
                (true, true, _) => "done".into(),
                (true, false, Some(d)) => format!("due {d}"),
                (true, false, None) => "open".into(),
            };
            let mut row = vec![
                day(v.occurred_at),
                v.place_name.clone(),
                v.area.clone(),
                v.visit_type.clone(),
                v.people_reached.to_string(),
                v.indicators.join(", "),
                follow_up,
                sensitivity(v.sensitivity).into(),
            ];
            if let Some(s) = snippets {
                row.push(s.get(&v.id).cloned().unwrap_or_default());
            }
            t.add_row(row);
        }
        say!("{t}");
        say!("{} visits", vs.len());
        if hidden > 0 {
            say!("{hidden} restricted visits hidden (--include-restricted to show them)");
        }
    }

    /// A list of workshops, with search snippets when searching.
    pub fn workshops(
        &self,
        ws: &[wc::WorkshopSummary],
        hidden: usize,
        snippets: Option<&HashMap<String, String>>,
    ) {
        if self.json {
            Self::print_json(&json!({
                "restricted_hidden": hidden,
                "workshops": ws.iter().map(|w| json!({
                    "id": w.id, "workspace_id": w.workspace_id, "occurred_at": w.occurred_at,
                    "title": w.title, "topic": w.topic, "area": w.area, "audience": w.audience,
                    "attendance": w.attendance,
                    "restricted": w.sensitivity == wc::Sensitivity::Restricted,
                    "snippet": snippets.and_then(|s| s.get(&w.id)),
                })).collect::<Vec<_>>(),
            }));
            return;
        }
        let mut header = vec![
            "when (UTC)",
            "title",
            "topic",
            "area",
            "audience",
            "attendance",
            "",
        ];
        if snippets.is_some() {
            header.push("match");
        }
        let mut t = table(&header);
        for w in ws {
            let mut row = vec![
                day(w.occurred_at),
                w.title.clone(),
                w.topic.clone(),
                w.area.clone(),
                w.audience.clone(),
                w.attendance.to_string(),
                sensitivity(w.sensitivity).into(),
            ];
            if let Some(s) = snippets {
                row.push(s.get(&w.id).cloned().unwrap_or_default());
            }
            t.add_row(row);
        }
        say!("{t}");
        say!("{} workshops", ws.len());
        if hidden > 0 {
            say!("{hidden} restricted workshops hidden (--include-restricted to show them)");
        }
    }

    /// A report: the summary, the months, and each breakdown with its total.
    pub fn report(&self, r: &wc::Report, names: &[(String, String)], words: &Words) {
        if self.json {
            Self::print_json(&report_json(r));
            return;
        }
        say!("{}", crate::html::describe_filter(r, names, words));
        let mut tables = r.tables();
        words.tables(&mut tables);
        for t in tables {
            // Breakdowns carry a column per month: the terminal shows their totals only, the
            // months are in the monthly table, the HTML page and the exports.
            let width = if t.columns.len() > 2 && t.name != "monthly" {
                2
            } else {
                t.columns.len()
            };
            if t.rows.is_empty() {
                continue;
            }
            let header: Vec<&str> = t.columns[..width].iter().map(String::as_str).collect();
            let mut out = table(&header);
            for row in &t.rows {
                out.add_row(
                    row[..width]
                        .iter()
                        .map(wc::Cell::display)
                        .collect::<Vec<_>>(),
                );
            }
            say!("\n{}\n{out}", t.title);
        }
    }
}
