//! The workspace's taxonomies from the CLI: list them, add entries with their labels, translate
//! and archive them (`SettingsEdit`); and the labels that reports and exports show instead of
//! the keys, in the language asked for.

use std::collections::HashMap;

use serde_json::json;
use waymark_core as wc;

use crate::output::{Out, table};

fn err(e: wc::Error) -> String {
    e.to_string()
}

/// The language labels are shown in when none is asked for. The core keeps no list of a
/// workspace's languages: its default entries are labelled in English first, so English it is.
pub const DEFAULT_LANG: &str = "en";

/// A `lang=text` label from the command line.
pub fn parse_label(s: &str) -> Result<wc::Label, String> {
    match s.split_once('=') {
        Some((lang, text)) if !lang.trim().is_empty() && !text.trim().is_empty() => Ok(wc::Label {
            lang: lang.trim().to_string(),
            text: text.trim().to_string(),
        }),
        _ => Err(format!(
            "invalid --label {s:?}: give LANG=TEXT, e.g. es=\"Trabajo forzoso\""
        )),
    }
}

fn check_taxonomy(name: &str) -> Result<(), String> {
    if wc::TAXONOMIES.contains(&name) {
        Ok(())
    } else {
        Err(format!(
            "no taxonomy {name}: one of {}",
            wc::TAXONOMIES.join(", ")
        ))
    }
}

/// Applies one settings edit to `workspace`.
pub fn edit(store: &wc::Store, workspace: &str, edit: wc::SettingsEdit) -> Result<(), String> {
    match &edit {
        wc::SettingsEdit::AddEntry { taxonomy, .. }
        | wc::SettingsEdit::SetLabel { taxonomy, .. }
        | wc::SettingsEdit::Archive { taxonomy, .. } => check_taxonomy(taxonomy)?,
        wc::SettingsEdit::Rename(_) => {}
    }
    store.update_settings(workspace, &[edit]).map_err(err)
}

/// The entries of the workspace's taxonomies (one of them if `only`), with every label.
pub fn list(
    store: &wc::Store,
    workspace: &str,
    only: Option<&str>,
    archived: bool,
    json: bool,
) -> Result<(), String> {
    if let Some(t) = only {
        check_taxonomy(t)?;
    }
    let settings = store.settings(workspace).map_err(err)?;
    let taxonomies: Vec<&wc::Taxonomy> = settings
        .taxonomies
        .iter()
        .filter(|t| only.is_none_or(|o| o == t.name))
        .collect();
    let shown = |e: &&wc::TaxonomyEntry| archived || !e.archived;
    if json {
        Out::print_json(&json!(
            taxonomies
                .iter()
                .map(|t| json!({
                    "name": t.name,
                    "entries": t.entries.iter().filter(shown).map(|e| json!({
                        "key": e.key, "archived": e.archived,
                        "labels": e.labels.iter()
                            .map(|l| (l.lang.clone(), json!(l.text)))
                            .collect::<serde_json::Map<_, _>>(),
                    })).collect::<Vec<_>>(),
                }))
                .collect::<Vec<_>>()
        ));
        return Ok(());
    }
    for t in taxonomies {
        let mut out = table(&["key", "labels", "archived"]);
        for e in t.entries.iter().filter(shown) {
            let labels = e
                .labels
                .iter()
                .map(|l| format!("{}: {}", l.lang, l.text))
                .collect::<Vec<_>>()
                .join("\n");
            out.add_row(vec![
                e.key.clone(),
                labels,
                if e.archived { "archived" } else { "" }.into(),
            ]);
        }
        say!("{}\n{out}", t.name);
    }
    Ok(())
}

/// Labels of taxonomy keys in one language, from the settings of the workspaces a report or an
/// export covers.
pub struct Labels {
    /// (taxonomy, key) -> label.
    by_taxonomy: HashMap<(String, String), String>,
}

impl Labels {
    /// The labels in `lang` (default [`DEFAULT_LANG`]) of `workspace`, or of every workspace in
    /// the store (the first that labels a key wins).
    pub fn load(
        store: &wc::Store,
        workspace: Option<&str>,
        lang: Option<&str>,
    ) -> Result<Labels, String> {
        let lang = lang.unwrap_or(DEFAULT_LANG);
        let mut by_taxonomy = HashMap::new();
        let mut known_lang = false;
        for ws in crate::team::workspaces(store, workspace)? {
            // A workspace joined but not synced yet has no settings: nothing to label with.
            let settings = match store.settings(&ws) {
                Ok(s) => s,
                Err(wc::Error::NotFound { .. }) => continue,
                Err(e) => return Err(err(e)),
            };
            for t in &settings.taxonomies {
                for e in &t.entries {
                    if let Some(l) = e.labels.iter().find(|l| l.lang == lang) {
                        known_lang = true;
                        by_taxonomy
                            .entry((t.name.clone(), e.key.clone()))
                            .or_insert_with(|| l.text.clone());
                    }
                }
            }
        }
        if !known_lang && lang != DEFAULT_LANG {
            return Err(format!(
                "no label in language {lang:?} in this workspace (see `waymark taxonomy list`)"
            ));
        }
        Ok(Labels { by_taxonomy })
    }

    /// The label of `key` in `taxonomy`, or the key itself when it has none in this language.
    pub fn get(&self, taxonomy: &str, key: &str) -> String {
        self.by_taxonomy
            .get(&(taxonomy.to_string(), key.to_string()))
            .cloned()
            .unwrap_or_else(|| key.to_string())
    }

    fn relabel(&self, taxonomy: &str, counts: &mut [wc::Count]) {
        for c in counts {
            c.key = self.get(taxonomy, &c.key);
        }
    }

    /// The report with its taxonomy keys replaced by their labels (areas are typed in the
    /// field, not keys: they stay).
    pub fn report(&self, r: &mut wc::Report) {
        let figures = |v: &mut wc::VisitFigures, w: &mut wc::WorkshopFigures| {
            self.relabel("visit_types", &mut v.by_type);
            self.relabel("risk_indicators", &mut v.indicators);
            self.relabel("referral_kinds", &mut v.referrals_by_kind);
            self.relabel("referral_statuses", &mut v.referrals_by_status);
            self.relabel("workshop_topics", &mut w.by_topic);
            self.relabel("audiences", &mut w.by_audience);
            self.relabel("age_bands", &mut w.by_age_band);
            self.relabel("genders", &mut w.by_gender);
        };
        figures(&mut r.visits, &mut r.workshops);
        for m in &mut r.months {
            figures(&mut m.visits, &mut m.workshops);
        }
        if let Some(t) = &r.filter.topic {
            r.filter.topic = Some(self.get("workshop_topics", t));
        }
    }

    /// An export's tables with the taxonomy keys in their cells replaced by labels: the record
    /// tables' typed columns, and the first column of the report's breakdowns.
    pub fn tables(&self, tables: &mut [wc::Table]) {
        for t in tables {
            let by_column: Vec<Option<&str>> = t
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| column_taxonomy(&t.name, i, c))
                .collect();
            for row in &mut t.rows {
                for (cell, taxonomy) in row.iter_mut().zip(&by_column) {
                    if let (Some(taxonomy), wc::Cell::Text(s)) = (taxonomy, &mut *cell) {
                        *s = self.list(taxonomy, s);
                    }
                }
            }
        }
    }

    /// A cell that may hold several keys (`a; b`, as the export writes lists).
    fn list(&self, taxonomy: &str, s: &str) -> String {
        for sep in ["; ", ";", ", "] {
            if s.contains(sep) {
                return s
                    .split(sep)
                    .map(|k| self.get(taxonomy, k))
                    .collect::<Vec<_>>()
                    .join(sep);
            }
        }
        self.get(taxonomy, s)
    }
}

/// The taxonomy whose keys column `index` (named `column`) of table `table` holds.
fn column_taxonomy(table: &str, index: usize, column: &str) -> Option<&'static str> {
    let table = table.strip_prefix("report_").unwrap_or(table);
    let breakdown = match table {
        "visits_by_type" => Some("visit_types"),
        "risk_indicators" => Some("risk_indicators"),
        "referrals_by_kind" => Some("referral_kinds"),
        "referrals_by_status" => Some("referral_statuses"),
        "workshops_by_topic" => Some("workshop_topics"),
        "workshops_by_audience" => Some("audiences"),
        "attendance_by_age_band" => Some("age_bands"),
        "attendance_by_gender" => Some("genders"),
        _ => None,
    };
    if breakdown.is_some() {
        return breakdown.filter(|_| index == 0);
    }
    match (table, column) {
        ("visits", "visit_type") => Some("visit_types"),
        ("visits", "indicators") => Some("risk_indicators"),
        ("referrals", "kind") => Some("referral_kinds"),
        ("referrals", "status") => Some("referral_statuses"),
        ("workshops", "topic") => Some("workshop_topics"),
        ("workshops", "audience") => Some("audiences"),
        _ => None,
    }
}
