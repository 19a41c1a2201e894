//! Questions the CLI's commands and its dashboard both ask of the store: periods typed as days
//! or months, devices by name, and lists narrowed by a full-text search with restricted records
//! hidden unless asked for.

use std::collections::HashMap;

use waymark_core as wc;

/// A UTC day or month as ms: its first instant, or (`end`) the first instant after it.
pub fn parse_day(s: &str, end: bool) -> Result<i64, String> {
    use time::{Date, Month};
    let bad = || format!("{s}: expected YYYY-MM-DD or YYYY-MM");
    let parts: Vec<&str> = s.split('-').collect();
    let num = |p: &str| p.parse::<i32>().map_err(|_| bad());
    let (y, m) = match parts.as_slice() {
        [y, m] | [y, m, _] => (num(y)?, num(m)?),
        _ => return Err(bad()),
    };
    let month = u8::try_from(m)
        .ok()
        .and_then(|m| Month::try_from(m).ok())
        .ok_or_else(bad)?;
    let date = match parts.as_slice() {
        [_, _, d] => {
            let d = u8::try_from(num(d)?).map_err(|_| bad())?;
            let day = Date::from_calendar_date(y, month, d).map_err(|_| bad())?;
            if end {
                day.next_day().ok_or_else(bad)?
            } else {
                day
            }
        }
        _ => {
            let first = Date::from_calendar_date(y, month, 1).map_err(|_| bad())?;
            if end {
                let (ny, nm) = if month == Month::December {
                    (y + 1, Month::January)
                } else {
                    (y, month.next())
                };
                Date::from_calendar_date(ny, nm, 1).map_err(|_| bad())?
            } else {
                first
            }
        }
    };
    let secs = date.midnight().assume_utc().unix_timestamp();
    Ok(secs * 1000)
}

/// Device names by actor, across the store's workspaces.
pub fn device_names(store: &wc::Store) -> Result<Vec<(String, String)>, String> {
    let mut names = Vec::new();
    for ws in store.workspaces().map_err(|e| e.to_string())? {
        if let Ok(s) = store.settings(&ws.id) {
            names.extend(s.devices);
        }
    }
    Ok(names)
}

/// The actor of the device named `w` (or whose actor id is `w`) in the store's workspaces.
pub fn worker_actor(store: &wc::Store, w: &str) -> Result<String, String> {
    let names = device_names(store)?;
    let by_name = names.iter().find(|(_, n)| n == w).map(|(a, _)| a.clone());
    let by_actor = names
        .iter()
        .find(|(a, _)| a.eq_ignore_ascii_case(w))
        .map(|(a, _)| a.clone());
    by_name.or(by_actor).ok_or_else(|| {
        format!("no device named {w} in this store's workspaces (see `waymark report`)")
    })
}

/// Ids of records of `kind` matching `words`, or `None` when there is no search.
pub fn search_ids(
    store: &wc::Store,
    words: Option<&str>,
    kind: wc::RecordKind,
) -> Result<Option<HashMap<String, String>>, String> {
    let Some(q) = words else { return Ok(None) };
    let hits = store.search(q, 10_000).map_err(|e| e.to_string())?;
    Ok(Some(
        hits.into_iter()
            .filter(|h| h.kind == kind)
            .map(|h| (h.id, h.snippet))
            .collect(),
    ))
}

/// Keeps the listed records that match the search (if any), hides restricted ones unless asked,
/// and cuts to `limit`; returns them with how many restricted ones were hidden.
pub fn narrow<T>(
    all: Vec<T>,
    hits: Option<&HashMap<String, String>>,
    include_restricted: bool,
    limit: u32,
    id_and_sensitivity: impl Fn(&T) -> (&String, wc::Sensitivity),
) -> (Vec<T>, usize) {
    let mut hidden = 0;
    let shown = all
        .into_iter()
        .filter(|r| hits.is_none_or(|h| h.contains_key(id_and_sensitivity(r).0)))
        .filter(|r| {
            let restricted = id_and_sensitivity(r).1 == wc::Sensitivity::Restricted;
            hidden += usize::from(restricted && !include_restricted);
            include_restricted || !restricted
        })
        .collect::<Vec<_>>()
        .into_iter()
        .take(limit as usize)
        .collect();
    (shown, hidden)
}

/// Today (UTC) as `YYYY-MM-DD`.
pub fn today() -> String {
    let d = time::OffsetDateTime::now_utc().date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::parse_day;

    #[test]
    fn days_and_months_bound_a_period_in_utc() {
        // 2026-11-01T00:00:00Z
        let nov1 = 1_793_491_200_000;
        assert_eq!(parse_day("2026-11-01", false).unwrap(), nov1);
        assert_eq!(parse_day("2026-11", false).unwrap(), nov1);
        assert_eq!(parse_day("2026-10-31", true).unwrap(), nov1);
        assert_eq!(parse_day("2026-10", true).unwrap(), nov1);
        assert_eq!(
            parse_day("2026-12", true).unwrap(),
            parse_day("2027-01-01", false).unwrap()
        );
        assert!(parse_day("2026-13", false).is_err());
        assert!(parse_day("2026-02-30", false).is_err());
        assert!(parse_day("last week", false).is_err());
    }
}
