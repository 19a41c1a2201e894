//! The CLI's own words in the language a coordinator asks for: the column headers and titles of
//! reports and exports, the summary's figure names and the HTML report's text. The workspace's
//! labels translate the values (visit types, topics: see `labels`); these translate the frame
//! around them.
//!
//! Catalogues are JSON files in `cli/locales/`, one per language, mapping the English source
//! text (or a column key) to its translation; `{name}` marks where a value goes. A language
//! without a catalogue reads English. Adding a language is adding a file and a line to
//! [`CATALOGUES`].

use std::collections::HashMap;

use waymark_core as wc;

/// The shipped catalogues, by language code.
const CATALOGUES: &[(&str, &str)] = &[
    ("en", include_str!("../locales/en.json")),
    ("es", include_str!("../locales/es.json")),
    ("fr", include_str!("../locales/fr.json")),
];

/// Columns whose cells are `yes`/`no`, and the column whose cells are a sensitivity: their
/// values are words of the CLI, not of the workspace.
const WORD_COLUMNS: &[&str] = &["follow_up_needed", "follow_up_done", "sensitivity"];

/// The source text of the summary's one formatted figure name (the core writes it with the
/// report's date).
const OVERDUE_ON: &str = "Follow-ups overdue on {date}";

/// The CLI's words in one language.
pub struct Words {
    lang: &'static str,
    map: HashMap<String, String>,
}

impl Words {
    /// The words in `lang` (`es`, or `es-MX` read as `es`); English when no catalogue has it.
    pub fn new(lang: &str) -> Words {
        let base = lang.split(['-', '_']).next().unwrap_or(lang);
        let (code, json) = CATALOGUES
            .iter()
            .find(|(code, _)| code.eq_ignore_ascii_case(lang))
            .or_else(|| {
                CATALOGUES
                    .iter()
                    .find(|(code, _)| code.eq_ignore_ascii_case(base))
            })
            .copied()
            .unwrap_or(CATALOGUES[0]);
        // The catalogues are part of the build and a unit test parses each: an unreadable one
        // can only be a broken build, which reads English rather than failing a report.
        let map = serde_json::from_str(json).unwrap_or_default();
        Words { lang: code, map }
    }

    /// The language these words are in (for `<html lang>`).
    pub fn lang(&self) -> &'static str {
        self.lang
    }

    /// `source` in this language, or `source` itself when the catalogue has no entry.
    pub fn get<'a>(&'a self, source: &'a str) -> &'a str {
        self.map.get(source).map_or(source, String::as_str)
    }

    /// `source` in this language with each `{name}` replaced by its value.
    pub fn fill(&self, source: &str, values: &[(&str, &str)]) -> String {
        let mut s = self.get(source).to_string();
        for (name, value) in values {
            s = s.replace(&format!("{{{name}}}"), value);
        }
        s
    }

    /// Tables of a report or an export in this language: titles, column headers, the summary's
    /// figure names, and the yes/no and sensitivity cells. Table names (file names) stay.
    pub fn tables(&self, tables: &mut [wc::Table]) {
        let (overdue_head, overdue_tail) = OVERDUE_ON.split_at(OVERDUE_ON.len() - "{date}".len());
        debug_assert_eq!(overdue_tail, "{date}");
        for t in tables {
            let summary = t.name.trim_start_matches("report_") == "summary";
            let words: Vec<bool> = t
                .columns
                .iter()
                .map(|c| WORD_COLUMNS.contains(&c.as_str()))
                .collect();
            for row in &mut t.rows {
                for (i, cell) in row.iter_mut().enumerate() {
                    let wc::Cell::Text(s) = cell else { continue };
                    if summary && i == 0 {
                        *s = match s.strip_prefix(overdue_head) {
                            Some(date) => self.fill(OVERDUE_ON, &[("date", date)]),
                            None => self.get(s).to_string(),
                        };
                    } else if words.get(i).copied().unwrap_or(false) {
                        *s = self.get(s).to_string();
                    }
                }
            }
            t.title = self.get(&t.title).to_string();
            for c in &mut t.columns {
                *c = self.get(c).to_string();
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Every catalogue parses, and each non-English one translates every source text the
    /// others know: a string added in one language and forgotten in another fails here.
    #[test]
    fn every_catalogue_parses_and_covers_the_same_texts() {
        let maps: Vec<(&str, HashMap<String, String>)> = CATALOGUES
            .iter()
            .map(|(code, json)| (*code, serde_json::from_str(json).unwrap()))
            .collect();
        let (_, en) = &maps[0];
        let (_, es) = &maps[1];
        for (code, map) in &maps[1..] {
            for key in en.keys().chain(es.keys()) {
                assert!(map.contains_key(key), "{code} has no {key:?}");
            }
            for (key, text) in map {
                for name in [
                    "{date}", "{n}", "{total}", "{scope}", "{today}", "{from}", "{to}",
                ] {
                    assert_eq!(
                        key.contains(name),
                        text.contains(name),
                        "{code}: {key:?} and {text:?} disagree on {name}"
                    );
                }
            }
        }
    }

    #[test]
    fn report_tables_read_in_the_language_asked_for() {
        let report = wc::Report {
            today: "2026-11-30".into(),
            ..Default::default()
        };
        let mut tables = report.tables();
        Words::new("es-MX").tables(&mut tables);
        assert_eq!(tables[0].title, "Resumen");
        assert_eq!(tables[0].columns, ["Cifra", "Valor"]);
        let figures: Vec<String> = tables[0].rows.iter().map(|r| r[0].display()).collect();
        assert!(figures.contains(&"Seguimientos vencidos al 2026-11-30".to_string()));
        assert!(figures.contains(&"Personas alcanzadas".to_string()));
        // Every header and title of the report has a Spanish word.
        let english = report.tables();
        for (t, e) in tables.iter().zip(&english) {
            assert_ne!(t.title, e.title);
            for (c, ec) in t.columns.iter().zip(&e.columns) {
                assert_ne!(c, ec, "{} has no Spanish header for {ec}", e.name);
            }
        }
        // A language without a catalogue reads English, and names itself as such.
        let th = Words::new("th");
        assert_eq!(th.lang(), "en");
        assert_eq!(th.get("Summary"), "Summary");
    }
}
