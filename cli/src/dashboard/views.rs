//! What every page shows around its content (navigation, the restricted toggle, sync now, a
//! message after an action), and values made into text once, before the templates show them.

use waymark_core as wc;

/// A message shown once, on the page after an action.
#[derive(Clone, Debug)]
pub struct Flash {
    /// The action worked (otherwise it is a refusal or an error).
    pub ok: bool,
    /// What happened.
    pub text: String,
    /// Something to copy from it (an invite code), shown apart.
    pub code: Option<String>,
}

impl Flash {
    /// A message that an action worked.
    pub fn ok(text: impl Into<String>) -> Flash {
        Flash {
            ok: true,
            text: text.into(),
            code: None,
        }
    }

    /// A message that an action failed.
    pub fn failed(text: impl Into<String>) -> Flash {
        Flash {
            ok: false,
            text: text.into(),
            code: None,
        }
    }
}

/// What surrounds every page.
pub struct Layout {
    /// The page's title.
    pub title: String,
    /// Which entry of the navigation is this page's.
    pub nav: &'static str,
    /// This page's path and query, for forms to come back to.
    pub path: String,
    /// Restricted records are shown.
    pub restricted: bool,
    /// The message of the last action, shown once.
    pub flash: Option<Flash>,
    /// How the last sync went, or that one runs.
    pub sync_summary: String,
    /// A sync runs now.
    pub syncing: bool,
}

/// A page saying what went wrong.
#[derive(askama::Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    /// What surrounds it.
    pub layout: Layout,
    /// What went wrong.
    pub message: String,
}

/// One option of a select.
pub struct Choice {
    /// The value sent.
    pub value: String,
    /// The text shown.
    pub label: String,
    /// Chosen now.
    pub selected: bool,
}

impl Choice {
    /// Options from (value, label) pairs, with `current` selected.
    pub fn list(pairs: Vec<(String, String)>, current: Option<&str>) -> Vec<Choice> {
        pairs
            .into_iter()
            .map(|(value, label)| Choice {
                selected: current == Some(value.as_str()),
                value,
                label,
            })
            .collect()
    }
}

/// Which page of a long list is shown, with links to the pages beside it that keep the
/// filters and search of this one.
pub struct Pager {
    /// The position of the first row shown (from 1), 0 when there is none.
    pub first: usize,
    /// The position of the last row shown.
    pub last: usize,
    /// Rows in the whole list.
    pub total: usize,
    /// The address of the page before, if any.
    pub prev: Option<String>,
    /// The address of the page after, if any.
    pub next: Option<String>,
}

impl Pager {
    /// Page `page` (from 1, as the `page` query parameter of `req` says) of `rows`, `size`
    /// at a time: the rows of that page and where it stands.
    pub fn cut<T>(rows: Vec<T>, req: &super::web::Req, size: usize) -> (Vec<T>, Pager) {
        let total = rows.len();
        let pages = total.div_ceil(size).max(1);
        let page = req
            .q("page")
            .and_then(|p| p.parse::<usize>().ok())
            .unwrap_or(1)
            .clamp(1, pages);
        let start = (page - 1) * size;
        let shown: Vec<T> = rows.into_iter().skip(start).take(size).collect();
        let link = |to: usize| {
            let mut q = form_urlencoded::Serializer::new(String::new());
            let mut params: Vec<(&String, &String)> =
                req.query.iter().filter(|(k, _)| *k != "page").collect();
            params.sort();
            for (k, v) in params {
                q.append_pair(k, v);
            }
            q.append_pair("page", &to.to_string());
            format!("{}?{}", req.path, q.finish())
        };
        let pager = Pager {
            first: if shown.is_empty() { 0 } else { start + 1 },
            last: start + shown.len(),
            total,
            prev: (page > 1).then(|| link(page - 1)),
            next: (page < pages).then(|| link(page + 1)),
        };
        (shown, pager)
    }
}

/// A moment (ms since 1970) as `YYYY-MM-DD HH:MM`, UTC.
pub fn when(ms: i64) -> String {
    crate::output::day(ms)
}

/// A taxonomy key as a label (`debt_bondage` -> `Debt bondage`), as the report shows it.
pub fn label(key: &str) -> String {
    crate::html::label(key)
}

/// A conflict's or a field's value as text.
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

/// A value as a form sends it back, to find it again among a conflict's values.
pub fn value_key(v: &wc::FieldValue) -> String {
    match v {
        wc::FieldValue::Text(s) => format!("text:{s}"),
        wc::FieldValue::Int(n) => format!("int:{n}"),
        wc::FieldValue::Float(f) => format!("float:{f}"),
        wc::FieldValue::Bool(b) => format!("bool:{b}"),
        wc::FieldValue::Null => "null".into(),
    }
}

/// Who wrote something: the device's name, or its actor id when the team has no name for it.
pub fn author(a: &wc::Author) -> String {
    a.device_name.clone().unwrap_or_else(|| {
        let short: String = a.actor.chars().take(12).collect();
        format!("device {short}")
    })
}

/// A verification code in groups of four digits, as phones show it.
pub fn code_groups(code: &str) -> String {
    let digits: Vec<char> = code.chars().filter(char::is_ascii_digit).collect();
    digits
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The entries of a taxonomy across the store's workspaces (archived ones left out), by key,
/// with the English label where the workspace has one.
pub fn taxonomy(store: &wc::Store, name: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for ws in store.workspaces().unwrap_or_default() {
        let Ok(settings) = store.settings(&ws.id) else {
            continue;
        };
        for t in settings.taxonomies.iter().filter(|t| t.name == name) {
            for e in t.entries.iter().filter(|e| !e.archived) {
                if out.iter().any(|(k, _)| *k == e.key) {
                    continue;
                }
                let text = e
                    .labels
                    .iter()
                    .find(|l| l.lang == "en")
                    .or(e.labels.first())
                    .map_or_else(|| label(&e.key), |l| l.text.clone());
                out.push((e.key.clone(), text));
            }
        }
    }
    out
}

/// The store's workspaces as (id, name).
pub fn workspaces(store: &wc::Store) -> Vec<(String, String)> {
    store
        .workspaces()
        .unwrap_or_default()
        .into_iter()
        .map(|w| (w.id, w.name))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_conflict_value_is_found_again_by_its_key() {
        let values = [
            wc::FieldValue::Text("5".into()),
            wc::FieldValue::Int(5),
            wc::FieldValue::Float(5.0),
            wc::FieldValue::Bool(true),
            wc::FieldValue::Null,
        ];
        let keys: Vec<String> = values.iter().map(value_key).collect();
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(keys.iter().filter(|o| *o == k).count(), 1, "{i}: {k}");
        }
        assert_eq!(code_groups("123456789012"), "1234 5678 9012");
    }

    #[test]
    fn a_long_list_is_cut_into_pages_that_keep_the_filters() {
        let req = |page: Option<&str>| super::super::web::Req {
            post: false,
            path: "/visits".into(),
            query: [("area", "Port & Dock"), ("q", "bus")]
                .into_iter()
                .chain(page.map(|p| ("page", p)))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            form: Default::default(),
        };
        let rows: Vec<u32> = (1..=450).collect();
        let (shown, p) = Pager::cut(rows.clone(), &req(None), 200);
        assert_eq!(
            (shown.len(), shown[0], p.first, p.last, p.total),
            (200, 1, 1, 200, 450)
        );
        assert_eq!(p.prev, None);
        assert_eq!(
            p.next.as_deref(),
            Some("/visits?area=Port+%26+Dock&q=bus&page=2")
        );
        let (shown, p) = Pager::cut(rows.clone(), &req(Some("3")), 200);
        assert_eq!(
            (shown.len(), shown[0], p.first, p.last),
            (50, 401, 401, 450)
        );
        assert_eq!(p.next, None);
        assert!(p.prev.unwrap().ends_with("page=2"));
        // A page past the end, or not a number, shows the nearest page there is.
        let (shown, _) = Pager::cut(rows.clone(), &req(Some("99")), 200);
        assert_eq!(shown[0], 401);
        let (shown, _) = Pager::cut(rows, &req(Some("x")), 200);
        assert_eq!(shown[0], 1);
        let (shown, p) = Pager::cut(Vec::<u32>::new(), &req(None), 200);
        assert!(shown.is_empty() && p.first == 0 && p.next.is_none());
    }
}
